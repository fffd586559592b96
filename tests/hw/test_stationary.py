# amaranth: UnusedElaboratable=no
"""Held operands: the reads the PEs really make, against the closed forms.

``sim.golden.core_counts.stationary_reads`` (``streaming_reads``) says how many times each
PE reads the stationary (streaming) operand of a FORWARD, BACKWARD or WGRAD (the compute
engine's ``c_hold`` and ``c_hold_b`` spare the rest). Here they are held to an enumeration
of the compute engine's MAC slots for many shapes, and to the RTL: a core in Amaranth's
simulator, counting the cycles in which each PE's ``stationary_read`` (``streaming_read``)
is on. That the results do not change is tests/hw/test_core.py's (and the dual, reuse and
native job tests').
"""

import pytest
from amaranth.sim import Simulator

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.isa import Opcode
from chrysalis.gen.spec.checks import ceil_div
from chrysalis.hw import core as core_module
from chrysalis.hw.compute import ComputeEngine
from chrysalis.hw.pe import PE
from chrysalis.sim.golden import core_counts

TINY = PRESETS["tiny"]                       # 2 x 2 PEs, G = 4
CONFIGS = {
    "2x2": TINY,
    "3x2-G3": with_overrides(TINY, {"core.rows": 3, "pe.acc_regs": 6, "mac.latency": 2}),
}


def enumerate_reads(config, command):
    """``(stationary, streaming)`` reads, from the compute engine's MAC slots in issue order
    (``hw.compute``): a slot reads an operand unless its address is the previous slot's."""
    R, C = config.core.rows, config.core.cols
    G = config.pe.acc_regs // 2
    op, m, n, batch = (command[key] for key in ("op", "m", "n", "batch"))
    mt, nt = ceil_div(m, R), ceil_div(n, C)
    outputs, steps, wrap = {"FORWARD": (mt * batch, nt, batch),
                            "BACKWARD": (nt * batch, mt, batch),
                            "WGRAD": (mt * nt, batch, nt)}[op]

    def addresses(o, s):
        p1, p2 = divmod(o, wrap)
        return {"FORWARD": (p1 * nt + s, s * batch + p2),
                "BACKWARD": (s * nt + p1, s * batch + p2),
                "WGRAD": (p1 * batch + s, p2 * batch + s)}[op]

    reads, last = [0, 0], (None, None)
    for g in range(ceil_div(outputs, G)):
        for s in range(steps):
            for o in range(g * G, min(g * G + G, outputs)):
                here = addresses(o, s)
                for index in (0, 1):
                    reads[index] += here[index] != last[index]
                last = here
    return tuple(reads)


def closed_forms(config, command):
    return (core_counts.stationary_reads(config, command),
            core_counts.streaming_reads(config, command))


SHAPES = [(m, n, b) for m in (1, 2, 3, 5, 8) for n in (1, 2, 3, 7) for b in (1, 2, 3, 4, 5, 9)]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("op", ["FORWARD", "BACKWARD", "WGRAD"])
def test_closed_form_equals_the_slot_order(name, op):
    config = CONFIGS[name]
    held = [0, 0]
    for m, n, batch in SHAPES:
        command = {"op": op, "m": m, "n": n, "batch": batch}
        reads = closed_forms(config, command)
        assert reads == enumerate_reads(config, command), (m, n, batch)
        slots = core_counts.predict(config, command)["mac_slots"]
        for index in (0, 1):
            assert 0 < reads[index] <= slots
            held[index] += slots - reads[index]
    assert min(held) > 0, "no shape holds an operand"


def test_closed_form_of_other_commands_and_two_streams():
    assert closed_forms(TINY, {"op": "LOAD_COL", "n": 4, "batch": 2}) == (0, 0)
    assert closed_forms(TINY, {"op": "FORWARD", "m": 4, "n": 0, "batch": 2}) == (0, 0)
    dual = with_overrides(TINY, {"mac.dual": "value", "pe.acc_regs": 12})
    # Nothing held with two streams: one read per output and step.
    assert closed_forms(dual, {"op": "FORWARD", "m": 5, "n": 4, "batch": 1}) == (6, 6)
    engine = ComputeEngine(*_layouts(dual), rows=2, cols=2, group=6, streams=2)
    assert "bus.uop.c_hold" not in engine.requests
    assert "bus.uop.c_hold_b" not in engine.requests


def _layouts(config):
    core = core_module.Core(config)
    return core.layout, core.issue_layout


def rtl_reads(config, commands, monkeypatch):
    """Run ``commands`` on a core; per command, the cycles each PE's ``stationary_read``
    and ``streaming_read`` were on (a list of pairs over the PEs)."""
    pes = []

    class Recorded(PE):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pes.append(self)

    monkeypatch.setattr(core_module, "PE", Recorded)
    dut = core_module.Core(config)
    pes.clear()                              # the layout probe
    sim = Simulator(dut)                     # elaborates: the array's PEs
    assert len(pes) == config.core.rows * config.core.cols
    signals = [s for pe in pes for s in (pe.stationary_read, pe.streaming_read)]
    counts = [0] * len(signals)
    per_command = []

    async def count(ctx):
        async for _, _, *reads in ctx.tick().sample(*signals):
            for index, read in enumerate(reads):
                counts[index] += read

    async def bench(ctx):
        for fields in commands:
            full = dict.fromkeys(dut.layout.members, 0)
            full.update(fields, op=Opcode[fields["op"]])
            ctx.set(dut.cmd, dut.layout.const(full))
            ctx.set(dut.cmd_valid, 1)
            await ctx.tick()
            ctx.set(dut.cmd_valid, 0)
            await ctx.tick().until(dut.cmd_ready)
            await ctx.tick().repeat(2)
            per_command.append(list(zip(counts[0::2], counts[1::2])))
            counts[:] = [0] * len(counts)

    sim.add_clock(1e-8)
    sim.add_testbench(count, background=True)
    sim.add_testbench(bench)
    sim.run()
    return per_command


def _commands(m, n, batch):
    """FORWARD, BACKWARD, WGRAD (separate update), WGRAD fused, WGRAD with momentum, at
    addresses that fit the tiny core's banks."""
    base = {"m": m, "n": n, "batch": batch}
    wgrad = dict(base, op="WGRAD", abase=0, abase2=20, wbase=0, wbase2=30, scalar=0)
    return [dict(base, op="FORWARD", wbase=0, abase=0),
            dict(base, op="BACKWARD", wbase=0, abase=20),
            wgrad, dict(wgrad, fused=1), dict(wgrad, flag=1)]


@pytest.mark.parametrize("name,m,n,batch", [
    ("2x2", 5, 7, 3),       # groups cut the rows' runs; several steps
    ("2x2", 4, 2, 5),       # one step (FORWARD), batch > G; WGRAD with nt = 1
    ("2x2", 7, 5, 1),       # batch 1: the streaming operand held
    ("3x2-G3", 7, 5, 2),    # G = 3, odd wraps
])
def test_rtl_reads_equal_closed_form(name, m, n, batch, monkeypatch):
    config = CONFIGS[name]
    commands = _commands(m, n, batch)
    got = rtl_reads(config, commands, monkeypatch)
    held = [0, 0]
    for command, per_pe in zip(commands, got):
        expected = closed_forms(config, command)
        assert per_pe == [expected] * len(per_pe), command
        for index in (0, 1):
            held[index] += core_counts.predict(config, command)["mac_slots"] - expected[index]
    assert held[0] > 0 and (held[1] > 0 or batch > 1)
