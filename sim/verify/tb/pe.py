"""cocotb testbench: one PE (``hw.pe.PE``) running a micro-op program.

Runs inside the simulator (Icarus or Verilator). The caller
(``tests/sim/verify/test_cocotb_pe.py``) writes the program as JSON and checks the report
against the golden model:

``CHRYSALIS_PE_PROGRAM``
    Path of a JSON file: ``scalar``, ``scalar2`` and ``steps``, each
    ``[uop, row_in, col_in, sends]`` with ``uop`` the micro-op's bits and ``sends`` the
    number of clock edges after which the step's sent word is on ``out`` (1 for
    ``SEND_ACC``, 2 for ``SEND_W``; 0: it sends nothing).
``CHRYSALIS_REPORT``
    Path of the JSON file to write: ``sent`` (the words sent, in order) and ``made`` (the
    products each pair made, summed over the run).
"""

import json
import os

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from chrysalis.sim.verify.tb.clocked import ClockedTB

__all__ = ["TB"]


class TB(ClockedTB):
    """Owns the clock and reset of a PE and steps it through a program, one micro-op a
    cycle, as ``tests.hw.test_pe.run_pe`` does in Amaranth's simulator."""

    IDLE = {"uop": 0, "select": 0, "row_in": 0, "col_in": 0, "scalar": 0, "scalar2": 0,
            "nbr_in": 0}

    async def run(self, program):
        dut = self.dut
        dut.scalar.value = program["scalar"]
        dut.scalar2.value = program["scalar2"]
        dut.select.value = 1
        sent, made = [], [0, 0]
        due = set()                   # the steps after whose edge `out` is read
        idle = [0, 0, 0, 0]
        for index, (uop, row_in, col_in, sends) in enumerate([*program["steps"], idle]):
            # Inputs change on the falling edge, the sent word is read once the rising
            # edge has settled: the testbench never races the design.
            await FallingEdge(dut.clk)
            dut.uop.value = uop
            dut.row_in.value = row_in
            dut.col_in.value = col_in
            bits = int(dut.made.value)         # a register: this cycle's value
            made[0] += bits & 1
            made[1] += bits >> 1
            await RisingEdge(dut.clk)
            await ReadOnly()
            if sends:
                assert index + sends - 1 not in due, f"two sends show after step {index}"
                due.add(index + sends - 1)
            if index in due:
                due.remove(index)
                sent.append(int(dut.out.value))
        return sent, made


@cocotb.test()
async def pe_program(dut):
    """The program's sent words and product counts, written to ``CHRYSALIS_REPORT``."""
    with open(os.environ["CHRYSALIS_PE_PROGRAM"]) as f:
        program = json.load(f)
    tb = TB(dut)
    await tb.reset()
    sent, made = await tb.run(program)
    with open(os.environ["CHRYSALIS_REPORT"], "w") as f:
        json.dump({"sent": sent, "made": made}, f)
