"""cocotb testbench: a floating-point unit's RTL against the golden model, bit for bit.

Runs inside the simulator (Icarus or Verilator). The unit and its parameters come from the
environment, set by the caller (``tests/sim/test_cocotb_arith.py`` or ``sim.demo``):

``CHRYSALIS_UNIT``
    ``mac`` (ports ``a``, ``b``, ``c`` -> ``result``) or ``convert`` (``a`` -> ``result``).
``CHRYSALIS_FORMATS``
    ``op,acc`` for ``mac``, ``src,dst`` for ``convert``: format names (``gen.formats``).
``CHRYSALIS_VECTORS``, ``CHRYSALIS_SEED``
    How many vectors and the seed that generates them (``sim.vectors``).
``CHRYSALIS_REPORT``
    Optional path of a JSON file to write the counts and cycles to.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from gen.formats import parse_format
from sim import numerics as nx
from sim import vectors
from sim.tb.clocked import ClockedTB

__all__ = ["TB"]


class TB(ClockedTB):
    """Owns the clock and reset of a fixed-latency unit and streams vectors through it."""

    IDLE = {"i_valid": 0}

    async def stream(self, inputs, limit_cycles):
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
                results.append(int(dut.result.value))
            cycles += 1
            assert cycles <= limit_cycles, f"only {len(results)} of {count} results in {cycles} cycles"
        return np.array(results, dtype=np.uint64), cycles


def _case():
    unit = os.environ.get("CHRYSALIS_UNIT", "mac")
    first, second = (parse_format(name, "CHRYSALIS_FORMATS")
                     for name in os.environ.get("CHRYSALIS_FORMATS", "bf16,fp32").split(","))
    count = int(os.environ.get("CHRYSALIS_VECTORS", "2000"))
    seed = int(os.environ.get("CHRYSALIS_SEED", "1"))
    if unit == "mac":
        inputs = vectors.mac_vectors(first, second, count, seed)
        expected = nx.fmac(inputs["c"], inputs["a"], inputs["b"], first, second)
    elif unit == "convert":
        inputs = vectors.convert_vectors(first, count, seed)
        expected = nx.fconvert(inputs["a"], first, second)
    else:
        raise ValueError(f"CHRYSALIS_UNIT must be 'mac' or 'convert', not {unit!r}")
    return unit, inputs, expected


@cocotb.test()
async def rtl_equals_golden(dut):
    """Every result of the unit equals the golden model's bit pattern."""
    unit, inputs, expected = _case()
    tb = TB(dut)
    await tb.reset()
    got, cycles = await tb.stream(inputs, limit_cycles=len(expected) + 64)
    bad = np.flatnonzero(got != expected)
    report = os.environ.get("CHRYSALIS_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump({"unit": unit, "vectors": int(len(expected)), "mismatches": int(bad.size),
                       "cycles": cycles}, f)
    if bad.size:
        i = bad[0]
        case = {name: hex(int(values[i])) for name, values in inputs.items()}
        raise AssertionError(f"{bad.size} of {len(expected)} results differ; first {case}: "
                             f"rtl {int(got[i]):#x}, golden {int(expected[i]):#x}")
    dut._log.info("%s: %d vectors bit-exact in %d cycles", unit, len(expected), cycles)
