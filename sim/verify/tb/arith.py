"""cocotb testbench: a floating-point unit's RTL against the golden model, bit for bit.

Runs inside the simulator (Icarus or Verilator). The unit and its parameters come from the
environment, set by the caller (``tests/sim/verify/test_cocotb_arith.py`` or ``chrysalis demo``):

``CHRYSALIS_UNIT``
    ``mac`` (ports ``a``, ``b``, ``c`` -> ``result``), ``multiply``
    (``hw.fmul.RoundedMultiplier``: ``a``, ``b`` -> ``result``, the ``mac``'s with ``c = +0``),
    ``convert`` (``a`` -> ``result``) or
    ``dual`` (``hw.dual.DualMultiplyPath``: ``a0, b0, a1, b1, pair1, random_bit`` and
    ``hit0, hit1`` held at 0 -> ``p0, p1, c0, c1``) or ``kpair`` (``hw.dual.KPairMultiplyAdd``:
    ``a0, b0, a1, b1, pair1, random_bit`` -> ``sum, c0, c1``).
``CHRYSALIS_FORMATS``
    ``op,acc`` for ``mac`` and ``multiply``, ``src,dst`` for ``convert``: format names
    (``gen.spec.formats``);
    ``dual``, ``kpair``: the operand format.
``CHRYSALIS_POLICY``, ``CHRYSALIS_LOW_MAN_BITS``
    ``dual``, ``kpair`` only: the policy and the low multiplier's mantissa bits.
``CHRYSALIS_VECTORS``, ``CHRYSALIS_SEED``
    How many vectors and the seed that generates them (``sim.golden.vectors``).
``CHRYSALIS_REPORT``
    Optional path of a JSON file to write the counts and cycles to.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from chrysalis.gen.spec.formats import parse_format
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden import vectors
from chrysalis.sim.verify.tb.clocked import ClockedTB

__all__ = ["TB"]


class TB(ClockedTB):
    """Owns the clock and reset of a fixed-latency unit and streams vectors through it."""

    IDLE = {"i_valid": 0}

    async def stream(self, inputs, limit_cycles, outputs=("result",)):
        """Drive one vector per cycle; collect ``result`` whenever ``o_valid`` is high.

        Inputs change on the falling edge and outputs are read once the rising edge has
        settled, so the testbench never races the design.
        """
        dut = self.dut
        count = len(next(iter(inputs.values())))
        columns = {name: [int(v) for v in values] for name, values in inputs.items()}
        results = []
        cycles = 0
        while len(results) < count:
            await FallingEdge(dut.clk)
            index = cycles
            if index < count:
                for name, values in columns.items():
                    getattr(dut, name).value = values[index]
            dut.i_valid.value = int(index < count)
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.o_valid.value):
                results.append([int(getattr(dut, name).value) for name in outputs])
            cycles += 1
            assert cycles <= limit_cycles, f"only {len(results)} of {count} results in {cycles} cycles"
        results = np.array(results, dtype=np.uint64)
        return (results[:, 0] if len(outputs) == 1 else results), cycles


def _case():
    unit = os.environ.get("CHRYSALIS_UNIT", "mac")
    names = os.environ.get("CHRYSALIS_FORMATS", "bf16,fp32").split(",")
    count = int(os.environ.get("CHRYSALIS_VECTORS", "2000"))
    seed = int(os.environ.get("CHRYSALIS_SEED", "1"))
    if unit in ("dual", "kpair"):
        return (unit,) + _dual_case(parse_format(names[0], "CHRYSALIS_FORMATS"), count, seed,
                                    kpair=unit == "kpair")
    first, second = (parse_format(name, "CHRYSALIS_FORMATS") for name in names)
    if unit == "mac":
        inputs = vectors.mac_vectors(first, second, count, seed)
        expected = nx.fmac(inputs["c"], inputs["a"], inputs["b"], first, second)
    elif unit == "multiply":
        inputs = vectors.mac_vectors(first, second, count, seed)
        del inputs["c"]
        expected = nx.fmac(np.zeros_like(inputs["a"]), inputs["a"], inputs["b"], first, second)
    elif unit == "convert":
        inputs = vectors.convert_vectors(first, count, seed)
        expected = nx.fconvert(inputs["a"], first, second)
    else:
        raise ValueError(f"CHRYSALIS_UNIT must be 'mac', 'multiply', 'convert', 'dual' or "
                         f"'kpair', "
                         f"not {unit!r}")
    return unit, inputs, expected


DUAL_OUTPUTS = ("p0", "p1", "c0", "c1")
KPAIR_OUTPUTS = ("sum", "c0", "c1")


def _dual_case(operand, count, seed, kpair=False):
    """Random slots for the dual-precision multiply path, with zeros and exponent ties, and
    the golden model's ``(p0, p1, c0, c1)`` for each (``p1`` is 0 under ``single``); with
    ``kpair`` the k-pair's ``(sum, c0, c1)`` (``DualPath.pair_sum``), and no reuse inputs."""
    from chrysalis.sim.golden.dual import DualPath
    policy = os.environ.get("CHRYSALIS_POLICY", "value")
    low = int(os.environ.get("CHRYSALIS_LOW_MAN_BITS", "3"))
    rng = np.random.default_rng(seed)
    ops = rng.integers(0, 1 << operand.width, (4, count), dtype=np.uint64)
    # Every fourth operand zero, and every third slot an exponent tie between the pairs.
    ops[rng.random((4, count)) < 0.25] = 0
    tie = rng.random(count) < 0.33
    ops[2, tie], ops[3, tie] = ops[0, tie], ops[1, tie]
    inputs = {"a0": ops[0], "b0": ops[1], "a1": ops[2], "b1": ops[3],
              "pair1": (rng.random(count) < 0.75).astype(np.uint64),
              "random_bit": rng.integers(0, 2, count, dtype=np.uint64),
              # No reuse-cache hits here (tests/hw/test_core_reuse.py has them); driven,
              # since Icarus leaves an undriven input X.
              "hit0": np.zeros(count, dtype=np.uint64), "hit1": np.zeros(count, dtype=np.uint64)}
    path = DualPath(operand, low, policy)
    p0, p1, c0, c1 = path.products(ops[0], ops[1], ops[2], ops[3],
                                   inputs["pair1"].astype(bool), inputs["random_bit"])
    if kpair:
        del inputs["hit0"], inputs["hit1"]
        total = path.pair_sum(p0, p1, inputs["pair1"].astype(bool))
        return inputs, np.stack([total, c0.astype(np.uint64), c1.astype(np.uint64)], axis=1)
    if policy == "single":
        p1 = np.zeros_like(p1)
    return inputs, np.stack([p0, p1, c0.astype(np.uint64), c1.astype(np.uint64)], axis=1)


@cocotb.test()
async def rtl_equals_golden(dut):
    """Every result of the unit equals the golden model's bit pattern."""
    unit, inputs, expected = _case()
    tb = TB(dut)
    await tb.reset()
    outputs = {"dual": DUAL_OUTPUTS, "kpair": KPAIR_OUTPUTS}.get(unit, ("result",))
    got, cycles = await tb.stream(inputs, limit_cycles=len(expected) + 64, outputs=outputs)
    bad = np.flatnonzero((got != expected).reshape(len(expected), -1).any(axis=1))
    report = os.environ.get("CHRYSALIS_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump({"unit": unit, "vectors": int(len(expected)), "mismatches": int(bad.size),
                       "cycles": cycles}, f)
    if bad.size:
        i = bad[0]
        case = {name: hex(int(values[i])) for name, values in inputs.items()}
        raise AssertionError(f"{bad.size} of {len(expected)} results differ; first {case}: "
                             f"rtl {got[i]}, golden {expected[i]}")
    dut._log.info("%s: %d vectors bit-exact in %d cycles", unit, len(expected), cycles)
