"""The part every testbench shares: a clock and a synchronous reset of the design."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

__all__ = ["ClockedTB"]


class ClockedTB:
    """Owns the clock of ``dut`` (``clk``) and its reset (``rst``).

    ``IDLE`` maps input names to the values they hold during reset (subclasses set it).
    """

    IDLE = {}

    def __init__(self, dut, period_ns=10):
        self.dut = dut
        cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())

    async def reset(self, cycles=2):
        self.dut.rst.value = 1
        for name, value in self.IDLE.items():
            getattr(self.dut, name).value = value
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
