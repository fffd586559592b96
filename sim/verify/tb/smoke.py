"""cocotb smoke testbench for :func:`sim.verify.runner.run_testbench`: an 8-bit accumulator.

The design is :class:`Accumulator` (``acc <= acc + din`` when ``en``), converted to Verilog by
the caller (``tests/sim/verify/test_runner.py``). The testbench drives random inputs and compares
``acc`` with a Python model every cycle.

Environment (set by the caller through ``extra_env``):

``SMOKE_CYCLES``
    Number of random cycles to drive (default 200).
"""

import os
import random

import cocotb
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

__all__ = ["Accumulator", "TB"]

WIDTH = 8


class Accumulator(wiring.Component):
    """A ``WIDTH``-bit accumulator: ``acc <= acc + din`` on every clock edge with ``en`` high.

    Members
    -------
    din : In(WIDTH)
        Value to add.
    en : In(1)
        Add ``din`` on this clock edge.
    acc : Out(WIDTH)
        The running sum, modulo ``2**WIDTH``; 0 after reset.
    """

    din: In(WIDTH)
    en: In(1)
    acc: Out(WIDTH)

    def elaborate(self, platform):
        m = Module()
        total = Signal(WIDTH, init=0)
        with m.If(self.en):
            m.d.sync += total.eq(self.din + total)
        m.d.comb += self.acc.eq(total)
        return m


class TB:
    """Owns the accumulator's clock and reset (cocotbext-axi style)."""

    def __init__(self, dut, period_ns=10):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
        dut.rst.value = 1
        dut.en.value = 0
        dut.din.value = 0

    async def reset(self):
        """Hold reset for two rising edges; release it on a falling edge."""
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def cycle(self, din, en):
        """Drive ``din``/``en`` for one clock edge; return ``acc`` after it.

        Inputs change and outputs are sampled on the falling edge, half a period away from
        the active edge, so the testbench never races the design under either simulator.
        """
        self.dut.din.value = din
        self.dut.en.value = en
        await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        return int(self.dut.acc.value)


@cocotb.test()
async def accumulates_random_inputs(dut):
    """``acc`` matches a Python model over random ``din``/``en``."""
    tb = TB(dut)
    await tb.reset()
    assert int(dut.acc.value) == 0, "acc is not 0 after reset"
    cycles = int(os.environ.get("SMOKE_CYCLES", "200"))
    rng = random.Random(cocotb.RANDOM_SEED)
    model = 0
    for cycle in range(cycles):
        din = rng.randrange(1 << WIDTH)
        en = rng.random() < 0.7
        got = await tb.cycle(din, int(en))
        if en:
            model = (model + din) % (1 << WIDTH)
        assert got == model, f"cycle {cycle}: acc={got}, expected {model} (din={din}, en={en})"
    dut._log.info("%d cycles checked", cycles)


@cocotb.test(skip=True)
async def must_fail_for_runner_check(dut):
    """Fails on purpose: proves ``run_testbench`` raises when a cocotb test fails.

    Skipped unless selected explicitly (``testcase="must_fail_for_runner_check"``).
    """
    tb = TB(dut)
    await tb.reset()
    got = await tb.cycle(1, 1)
    assert got == 2, f"deliberate failure: acc={got} after adding 1 to 0 (expected to fail)"
