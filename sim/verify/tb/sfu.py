"""cocotb testbench: the special-function unit's RTL against its golden model, bit for bit.

Runs inside the simulator (Icarus or Verilator) on ``hw.sfu.SpecialFunctionUnit``. The
parameters come from the environment, set by ``tests/sim/verify/test_cocotb_sfu.py``:

``CHRYSALIS_MAC_LATENCY``, ``CHRYSALIS_THREADS``
    The unit's ``mac_latency`` and ``threads`` (empty or absent: the default,
    ``mac_latency + 1``), needed to check its timing.
``CHRYSALIS_VECTORS``, ``CHRYSALIS_SEED``
    How many elements per function (exp and reciprocal, interleaved at random) and the
    seed that picks them (``sim.golden.sfu.random_inputs``, edge cases first).

The elements are offered back to back (``i_valid`` held high). Every result must equal the
golden model's, in acceptance order, and every acceptance and result must fall in exactly
the cycle that ``hw.sfu.SpecialFunctionUnit.schedule`` predicts.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from chrysalis.hw.sfu import SpecialFunctionUnit
from chrysalis.sim.golden import sfu
from chrysalis.sim.verify.tb.clocked import ClockedTB

__all__ = ["TB"]


class TB(ClockedTB):
    """Owns the clock and reset of the unit and streams ``(op, x)`` elements through it."""

    IDLE = {"restart": 0, "i_valid": 0, "op": 0, "x": 0}

    async def run(self, ops, xs, limit_cycles):
        """Offer every element as soon as the unit is ready; collect the results.

        Inputs change on the falling edge; outputs and ``i_ready`` are read once the rising
        edge has settled (``i_ready`` depends on the unit's state only, not on its inputs).
        Returns the results and, per element, the cycle of its acceptance and of its result.
        """
        dut = self.dut
        ops, xs = [int(v) for v in ops], [int(v) for v in xs]
        results, accepted, produced = [], [], []
        index, cycle = 0, 0
        await ReadOnly()
        ready = bool(int(dut.i_ready.value))
        while len(results) < len(xs):
            await FallingEdge(dut.clk)
            offer = index < len(xs)
            if offer:
                dut.op.value = ops[index]
                dut.x.value = xs[index]
            dut.i_valid.value = int(offer)
            await RisingEdge(dut.clk)
            if offer and ready:
                accepted.append(cycle)
                index += 1
            cycle += 1
            await ReadOnly()
            ready = bool(int(dut.i_ready.value))
            if int(dut.o_valid.value):
                results.append(int(dut.y.value))
                produced.append(cycle)
            assert cycle <= limit_cycles, f"only {len(results)} of {len(xs)} results in {cycle} cycles"
        return (np.array(results, dtype=np.uint64), np.array(accepted), np.array(produced))


@cocotb.test()
async def rtl_equals_golden(dut):
    """Every result equals the golden model's bit pattern, in order, on the documented
    schedule."""
    latency = int(os.environ.get("CHRYSALIS_MAC_LATENCY", "2"))
    threads = os.environ.get("CHRYSALIS_THREADS") or None
    unit = SpecialFunctionUnit(mac_latency=latency,
                               threads=None if threads is None else int(threads))
    count = int(os.environ.get("CHRYSALIS_VECTORS", "200"))
    seed = int(os.environ.get("CHRYSALIS_SEED", "1"))
    rng = np.random.default_rng(seed)
    ops = rng.permutation(np.repeat([0, 1], count))
    xs = np.empty(len(ops), dtype=np.uint64)
    xs[ops == 0] = sfu.random_inputs(0, count, seed)
    xs[ops == 1] = sfu.random_inputs(1, count, seed + 1)
    expected = np.where(ops == 1, sfu.reciprocal(xs), sfu.exp(xs))
    want_accepted, want_produced = unit.schedule(ops)

    tb = TB(dut)
    await tb.reset()
    got, accepted, produced = await tb.run(ops, xs, limit_cycles=want_produced[-1] + 8)
    bad = np.flatnonzero(got != expected)
    if bad.size:
        i = bad[0]
        raise AssertionError(f"{bad.size} of {len(expected)} results differ; first op {ops[i]} "
                             f"x {int(xs[i]):#010x}: rtl {int(got[i]):#010x}, "
                             f"golden {int(expected[i]):#010x}")
    np.testing.assert_array_equal(accepted, want_accepted)
    np.testing.assert_array_equal(produced, want_produced)
    fmas = int(np.where(ops == 1, sfu.RECIP_FMAS, sfu.EXP_FMAS).sum())
    dut._log.info("%d elements (%d FMAs) bit-exact and in order in %d cycles, %d threads",
                  len(expected), fmas, int(produced[-1]), unit.threads)
