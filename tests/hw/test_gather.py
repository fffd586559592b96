# amaranth: UnusedElaboratable=no
"""The gather unit (``hw.gather.Gather``) alone, against the golden model.

A Python scratchpad answers the unit's one-word reads a cycle later (``+0`` for a read
without its lane) and takes its writes. The whole scratchpad after a ``GATHER`` must equal
the golden machine's bit for bit (``sim.golden.machine``, through ``sim.golden.gather``),
and ``finish`` must come exactly in the cycle ``sim.golden.core_counts`` predicts: one
tap and several, with and without the mask, entries past the window, ``-0`` and NaN in
the window, groups cut short at a column's end, and MAC latencies 2 to 8.
"""

import sys

import numpy as np
import pytest

from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.hw.gather import Gather, group_size
from chrysalis.sim.golden import core_counts as cc
from chrysalis.sim.golden.gather import NO_ENTRY
from chrysalis.sim.golden.machine import Machine
from chrysalis.sim.verify.shared_sim import shared_simulation

WORDS = 1024
S = 4                                      # banks of the 4 x 4 configs below
LANES = 4                                  # their read lanes, max(R, C)
LINE_BITS = 8


def _config(latency):
    return with_overrides(get_preset("tiny"), {
        "core.rows": 4, "core.cols": 4, "core.scratchpad_words": WORDS,
        "mac.latency": latency, "pe.acc_regs": 2 * (latency + 1)})


def run_unit(memory, command, latency):
    """Run the unit on ``memory`` (the scratchpad's words, changed in place); returns the
    cycle of ``finish`` (1 = the first cycle after the one with ``start``)."""
    shared = shared_simulation((Gather, latency, LANES, S, LINE_BITS), lambda: Gather(
        line_bits=LINE_BITS, banks=S, mac_latency=latency, lanes=LANES))
    dut = shared.dut
    result = {}
    ports = dict(taps="m", n="n", batch="batch", mask="flag", win_base="sp_base",
                 win_lpc="sp_lpc", dst_base="sp2_base", dst_lpc="sp2_lpc",
                 tab_base="sp3_base", tab_lpc="sp3_lpc")

    async def testbench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for port, field in ports.items():
            signal = getattr(dut, port)         # a window of 2**LINE_BITS lines is lpc 0
            ctx.set(signal, command[field] & ((1 << len(signal)) - 1))
        ctx.set(dut.run, 1)
        cycle, pending, tail = 0, [0] * LANES, None
        limit = 4 * cc.predict(_config(latency), command)["cycles"] + 50
        while tail is None or tail > 0:
            cycle += 1
            for lane in range(LANES):
                ctx.set(dut.rd_data[lane], pending[lane])
            pending = [0] * LANES
            if ctx.get(dut.rd_en):
                on = ctx.get(dut.rd_lanes)
                for lane in range(LANES):
                    if (on >> lane) & 1:
                        address = ctx.get(dut.rd_line) * S + ctx.get(dut.rd_e0) + lane
                        assert address < WORDS
                        pending[lane] = int(memory[address])
            if ctx.get(dut.wr_en):
                address = ctx.get(dut.wr_line) * S + ctx.get(dut.wr_e0)
                assert result.get("finish") is None or cycle <= result["finish"] + latency + 3
                memory[address] = ctx.get(dut.wr_data)
            if ctx.get(dut.finish):
                assert "finish" not in result, "finish twice"
                result["finish"] = cycle
                tail = latency + 5
            if tail is not None:
                tail -= 1
            await ctx.tick()
            if tail is not None:
                ctx.set(dut.run, 0)       # the command ends in the cycle after finish
            assert cycle < limit, "no finish"

    shared.run(testbench)
    return result["finish"]


def _command(rng, taps, n, batch, flag, words):
    win_lpc = -(-words // S)
    t_lpc = -(-(taps * n) // S) + int(rng.integers(0, 2))
    d_lpc = -(-n // S) + int(rng.integers(0, 2))
    t_base = win_lpc + int(rng.integers(0, 3))
    d_base = t_base + batch * t_lpc + int(rng.integers(0, 3))
    assert d_base + batch * d_lpc <= WORDS // S
    return dict(op="GATHER", m=taps, n=n, batch=batch, flag=flag, sp_base=0,
                sp_lpc=win_lpc, sp2_base=d_base, sp2_lpc=d_lpc, sp3_base=t_base,
                sp3_lpc=t_lpc)


def check(taps, n, batch, flag, latency, seed, words=37, command=None):
    rng = np.random.default_rng(seed)
    config = _config(latency)
    if command is None:
        command = _command(rng, taps, n, batch, flag, words)
    machine = Machine(config)
    values = rng.uniform(-3, 3, WORDS).astype(np.float32)
    values[rng.random(WORDS) < 0.3] *= -1
    machine.scratchpad[:] = values.view(np.uint32)
    # -0, +0, NaN and a value whose sums round in the window.
    special = rng.integers(0, command["sp_lpc"] * S, 8)
    machine.scratchpad[special] = [0x8000_0000, 0, 0x7FC0_0000, 0xFFC0_0001, 0x3F80_0000,
                                   0x3380_0000, 0x3380_0000, 0xBF80_0000]
    table = rng.integers(0, min(command["sp_lpc"] * S, 40), (taps * n, batch)).astype(np.uint64)
    table[rng.random(table.shape) < 0.2] = NO_ENTRY
    table[rng.random(table.shape) < 0.1] = command["sp_lpc"] * S      # the first word past
    table[0, 0] = command["sp_lpc"] * S - 1                           # the window's last
    machine.write_matrix(command["sp3_base"], command["sp3_lpc"], table)
    memory = machine.scratchpad.copy()
    assert machine.execute(command) == 0
    finish = run_unit(memory, command, latency)
    bad = np.flatnonzero(memory != machine.scratchpad)
    assert bad.size == 0, (f"{bad.size} words differ, first at {bad[0]}: "
                           f"{int(memory[bad[0]]):#x} != {int(machine.scratchpad[bad[0]]):#x}")
    assert finish + latency + 5 == cc.predict(config, command)["cycles"]


@pytest.mark.parametrize("taps", [1, 2, 3, 4])
@pytest.mark.parametrize("flag", [0, 1])
def test_gather_unit_matches_the_golden_machine(taps, flag):
    check(taps, n=7, batch=3, flag=flag, latency=6, seed=10 * taps + flag)


@pytest.mark.parametrize("n,batch", [(1, 1), (1, 5), (3, 2), (4, 3), (5, 1), (8, 2), (13, 3)])
@pytest.mark.parametrize("flag", [0, 1])
def test_copies_in_blocks(n, batch, flag):
    """One tap: blocks of 4 elements (the lanes), whole, cut short at a column's end, or a
    lone element; with and without the mask."""
    check(1, n=n, batch=batch, flag=flag, latency=3, seed=100 * n + 10 * batch + flag)


@pytest.mark.parametrize("latency", [3, 6])
@pytest.mark.parametrize("taps", [5, 8, 9])
def test_sums_of_several_chunks(latency, taps):
    """Taps in chunks of 4 (the lanes): the next chunk's entries read in the last round of
    the one before; groups cut short at a column's end; with the mask."""
    check(taps, n=13, batch=2, flag=1, latency=latency, seed=taps * 10 + latency)


def test_a_window_of_the_whole_scratchpad():
    """A window of every line, 2**8 of them, whose lpc is 0 in the unit's 8-bit field:
    entries up to the last word read it, the first past it reads +0."""
    for taps in (1, 2):
        command = dict(op="GATHER", m=taps, n=5, batch=2, flag=0, sp_base=0,
                       sp_lpc=WORDS // S, sp2_base=100, sp2_lpc=2, sp3_base=12, sp3_lpc=3)
        check(taps, 5, 2, 0, latency=6, seed=3, command=command)


# The shortest, a middle and the longest latency by default; the others are `slow`.
@pytest.mark.parametrize("latency", [
    pytest.param(latency, marks=pytest.mark.slow) if latency in (3, 4, 7) else latency
    for latency in (2, 3, 4, 5, 7, 8)])
def test_every_latency(latency):
    for taps, n, flag in ((1, 5, 1), (1, 9, 0), (3, 5, 0), (2, 1, 1), (5, 4, 1)):
        check(taps, n, batch=2, flag=flag, latency=latency, seed=latency * 7 + taps)


def test_group_is_the_cycle_models():
    for latency in range(2, 9):
        assert group_size(latency) == cc.gather_group(latency)


@pytest.mark.parametrize("args,message", [
    (dict(line_bits=0, banks=4, mac_latency=6), "line_bits must be a positive integer, not 0"),
    (dict(line_bits=8, banks=3, mac_latency=6), "banks must be a power of two, not 3"),
    (dict(line_bits=8, banks=4, mac_latency=1), "mac_latency must be at least 2"),
    (dict(line_bits=8, banks=4, mac_latency=6, lanes=8), "lanes must be at most banks = 4, "
                                                         "not 8"),
])
def test_bad_parameters(args, message):
    with pytest.raises(ValueError, match=message):
        Gather(**args)


def test_command_checker_on_gathers():
    """The RTL checker (``hw.command_check``) gives ``isa.check``'s code for GATHERs at the
    edges of their three regions: the window's last line, an empty window, a table of
    ``m * n`` rows up to and past the 2**16 a lane access addresses, short columns."""
    from amaranth.sim import Simulator

    from chrysalis.gen.spec import isa
    from chrysalis.hw.command_check import CommandChecker
    config = get_preset("tiny")
    limits = isa.Limits.from_config(config)
    lines = limits.sp_lines
    ok = dict(m=2, n=3, batch=2, sp_base=0, sp_lpc=4, sp2_base=10, sp2_lpc=2, sp3_base=20,
              sp3_lpc=3)
    cases = [ok, {**ok, "sp_base": lines - 4}, {**ok, "sp_base": lines - 3},
             {**ok, "sp_lpc": 0}, {**ok, "sp_lpc": lines}, {**ok, "sp2_lpc": 1},
             {**ok, "sp3_lpc": 2}, {**ok, "sp3_base": lines - 6}, {**ok, "sp3_base": lines - 5},
             {**ok, "m": 0}, {**ok, "flag": 1},
             {**ok, "m": 0x3FFF, "n": 4, "batch": 1, "sp3_lpc": 0x10000 // 2},
             {**ok, "m": 0x4000, "n": 4, "batch": 1, "sp3_lpc": 0x10000 // 2},
             {**ok, "m": 0xFFFF, "n": 0xFFFF, "batch": 1, "sp3_lpc": 0xFFFFFF}]
    words = [isa.encode("GATHER", **c) for c in cases]
    want = [int(isa.check(isa.decode(w), limits)) for w in words]
    assert set(want) == {0, int(isa.ErrorCode.ZERO_SIZE), int(isa.ErrorCode.SCRATCHPAD_RANGE)}
    checker = CommandChecker(config)
    got = []

    async def testbench(ctx):
        for w in words:
            ctx.set(checker.command.as_value(), sum(v << 32 * i for i, v in enumerate(w)))
            ctx.set(checker.dma_last, (1 << 32) - 1)
            await ctx.tick().repeat(2)
            got.append(ctx.get(checker.code))

    sim = Simulator(checker)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == want


@pytest.mark.parametrize("rows,cols,width", [(1, 1, 32), (2, 2, 64), (3, 1, 64)])
def test_other_cores(monkeypatch, rows, cols, width):
    """A 1 x 1 core (one bank, one lane: blocks and chunks of one), a 2 x 2 and a 3 x 1
    (three lanes on four banks): copies and sums, with the mask."""
    banks = 1 << (max(rows, cols) - 1).bit_length()
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "S", banks)
    monkeypatch.setattr(module, "LANES", max(rows, cols))
    monkeypatch.setattr(module, "LINE_BITS", (WORDS // banks - 1).bit_length())
    base = with_overrides(get_preset("tiny"), {"host.axi_data_width": width})
    monkeypatch.setattr(module, "_config", lambda latency: with_overrides(base, {
        "core.rows": rows, "core.cols": cols, "core.scratchpad_words": WORDS,
        "mac.latency": latency, "pe.acc_regs": 2 * (latency + 1)}))
    for taps, n, batch, flag, latency in ((1, 5, 2, 1, 3), (1, 1, 3, 0, 2), (3, 5, 2, 1, 3),
                                          (6, 4, 2, 1, 6), (2, 1, 1, 0, 2)):
        check(taps, n, batch, flag, latency, seed=taps + n, words=13)
