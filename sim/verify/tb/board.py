"""cocotb testbench: the on-board self-test (``hw.board.SelfTest``) in Icarus or Verilator.

The design has no inputs but its clock and reset: after reset it runs the stored training
step on the accelerator and checks the memory's checksum. The testbench waits for ``passed``
or ``failed`` and compares the outcome with what ``tests/sim/verify/test_cocotb_board.py`` expects
(``CHRYSALIS_EXPECT``, JSON: ``passed``, ``reason``, ``result`` — the golden checksum — or
``result_differs``).
"""

import json
import os

import cocotb
from cocotb.triggers import RisingEdge

from chrysalis.sim.verify.tb.clocked import ClockedTB

__all__ = ["BoardTB"]


class BoardTB(ClockedTB):
    """Clock and reset of the self-test, and its outcome."""

    async def outcome(self, max_cycles):
        for _ in range(max_cycles):
            await RisingEdge(self.dut.clk)
            if int(self.dut.passed.value) or int(self.dut.failed.value):
                break
        return {name: int(getattr(self.dut, name).value)
                for name in ("passed", "failed", "reason", "error_code", "cycles", "result")}


@cocotb.test()
async def selftest(dut):
    """The self-test ends as the golden model says: passed with the golden checksum, or
    failed for the expected reason."""
    expect = json.loads(os.environ["CHRYSALIS_EXPECT"])
    tb = BoardTB(dut)
    await tb.reset()
    got = await tb.outcome(int(os.environ.get("CHRYSALIS_MAX_CYCLES", "100000")))
    dut._log.info("self-test: %s", got)
    assert (got["passed"], got["failed"]) == (int(expect["passed"]), int(not expect["passed"]))
    assert got["reason"] == expect["reason"], got
    if "result" in expect:
        assert got["result"] == expect["result"], f"{got['result']:#x} != {expect['result']:#x}"
    if expect.get("result_differs") is not None:
        assert got["result"] != expect["result_differs"]
