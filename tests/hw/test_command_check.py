# amaranth: UnusedElaboratable=no
"""The command checker (``hw.command_check.CommandChecker``) against ``gen.spec.isa.check``
on DMA commands around the edges of the DMA window, and on core commands whose bank
regions end around the banks' ends or run into each other: the error code, read in the
third cycle the command is held, equal for every command.

``ref(case)`` is the ISA's check, ``rtl(cases)`` the checker's codes in Amaranth's
simulator.
"""

import math

import numpy as np
from amaranth.sim import Simulator

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import PRESETS
from chrysalis.hw.command_check import CommandChecker

CONFIG = PRESETS["tiny"]


def cases(rng, count):
    """DMA loads and stores whose last byte falls just inside, on or just past the window's
    ends (and a few far outside), with windows of their own."""
    limits = isa.Limits.from_config(CONFIG)
    beat = limits.beat_bytes
    out = []
    for _ in range(count):
        n, batch = int(rng.integers(1, 40)), int(rng.integers(1, 6))
        stride = beat * int(rng.integers(0, 6))
        base = beat * int(rng.integers(0, 1 << 20))
        last = base + beat * int(rng.integers(1, 1 << 12)) - 1
        fields = dict(op=str(rng.choice(["DMA_LOAD", "DMA_STORE"])), n=n, batch=batch,
                      mem_stride=stride, sp_base=0, sp_lpc=-(-n // limits.banks))
        first, span_last = isa.dma_region(dict(fields, mem_addr=0), beat)
        span = span_last - first + 1
        # The command's last byte lands near `last` (or near `base` for its first byte).
        aim = int(rng.choice([last - span + 1, base, base - beat, last - span + 1 + beat,
                              last + beat * 100]))
        addr = max(0, aim + beat * int(rng.integers(-1, 2)))
        out.append((dict(fields, mem_addr=addr - addr % beat), base, last))
    return out


def bank_cases(rng, count):
    """FORWARD, BACKWARD, WGRAD, LOAD_COL and LOAD_W with bank regions that end just
    before, at or just past a bank's end, and FORWARD and BACKWARD with their two
    activation regions touching, overlapping or apart. The DMA window is everything."""
    limits = isa.Limits.from_config(CONFIG)
    out = []
    for _ in range(count):
        op = str(rng.choice(["FORWARD", "BACKWARD", "WGRAD", "LOAD_COL", "LOAD_W"]))
        m, n, batch = (int(v) for v in rng.integers(1, 9, size=3))
        fields = dict(op=op, m=m, n=n, batch=batch, sp_base=0, sp_lpc=8, sp2_base=64,
                      sp2_lpc=8)
        for base, words in (("wbase", limits.weight_words), ("wbase2", limits.weight_words),
                            ("abase", limits.act_words), ("abase2", limits.act_words)):
            fields[base] = max(0, words - int(rng.integers(0, 40)))
        if op in ("FORWARD", "BACKWARD") and rng.integers(2):
            # One activation region starting around the other's end, either way round.
            first, second = isa.DISJOINT[isa.Opcode[op]]
            values = isa.size_values(fields, limits)
            words = {r.base: math.prod(r.shape(values)) for r in (first, second)}
            lower, upper = (first, second) if rng.integers(2) else (second, first)
            fields["wbase"] = 0          # no WEIGHT_RANGE ahead of the overlap
            for region in (first, second):
                if region.when:          # the flag that makes the command touch it
                    fields[region.when] = 1
            fields[lower.base] = int(rng.integers(0, 40))
            fields[upper.base] = max(0, fields[lower.base] + words[lower.base]
                                     + int(rng.integers(-2, 2)))
        used = isa.OP_FIELDS[isa.Opcode[op]]
        out.append(({k: v for k, v in fields.items() if k == "op" or k in used}, 0,
                    (1 << 32) - 1))
    return out


def ref(case):
    fields, base, last = case
    limits = isa.Limits.from_config(CONFIG, dma_base=base, dma_last=last)
    return int(isa.check(isa.decode(isa.encode(**fields)), limits))


def rtl(all_cases):
    dut = CommandChecker(CONFIG)
    codes = []

    async def testbench(ctx):
        for fields, base, last in all_cases:
            words = isa.encode(**fields)
            ctx.set(dut.command.as_value(), sum(w << (32 * i) for i, w in enumerate(words)))
            ctx.set(dut.dma_base, base)
            ctx.set(dut.dma_last, last)
            # Held for three cycles before the code is read.
            await ctx.tick().repeat(3)
            codes.append(ctx.get(dut.code))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return codes


def test_dma_window_edges_equal_the_isa_check():
    all_cases = cases(np.random.default_rng(3), 300)
    expected = [ref(case) for case in all_cases]
    # The edges are hit from both sides.
    assert expected.count(int(isa.ErrorCode.DMA_RANGE)) > 50
    assert expected.count(int(isa.ErrorCode.NONE)) > 50
    assert rtl(all_cases) == expected


def test_bank_ranges_and_overlaps_equal_the_isa_check():
    all_cases = bank_cases(np.random.default_rng(4), 400)
    expected = [ref(case) for case in all_cases]
    for code in (isa.ErrorCode.NONE, isa.ErrorCode.WEIGHT_RANGE, isa.ErrorCode.ACT_RANGE):
        assert expected.count(int(code)) > 30, code
    assert rtl(all_cases) == expected
