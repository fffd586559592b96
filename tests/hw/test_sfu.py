# amaranth: UnusedElaboratable=no
"""The special-function unit's RTL == its golden model (``sim.sfu``), bit for bit.

Runs ``hw.sfu.SpecialFunctionUnit`` in Amaranth's simulator over seeded vectors of
``sim.sfu.random_inputs`` (every edge case of ``sim.sfu.edge_inputs`` first), and checks
the handshake timing: one element every ``cycles(op)`` cycles, its result one cycle after
the last FMA.
"""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hw.sfu import EXP_PROGRAM, RECIP_PROGRAM, SpecialFunctionUnit
from sim import sfu


def run(dut, ops, xs, *, gaps=None):
    """Offer ``(op, x)`` pairs to ``dut`` (``gaps[i]`` idle cycles before pair ``i``).

    Returns the results and, per element, the cycle it was accepted and the cycle its
    result appeared (``o_valid`` high).
    """
    ops = [int(v) for v in ops]
    xs = [int(v) for v in xs]
    gaps = [0] * len(xs) if gaps is None else [int(v) for v in gaps]
    results, accepted, produced = [], [], []

    async def testbench(ctx):
        index, idle, cycle = 0, 0, 0
        limit = sum(dut.cycles(op) + 2 + gap for op, gap in zip(ops, gaps)) + 10
        while len(results) < len(xs):
            offer = index < len(xs) and idle >= gaps[index]
            if offer:
                ctx.set(dut.op, ops[index])
                ctx.set(dut.x, xs[index])
            ctx.set(dut.i_valid, offer)
            taken = offer and ctx.get(dut.i_ready)
            await ctx.tick()
            cycle += 1
            if taken:
                accepted.append(cycle - 1)
                index, idle = index + 1, 0
            elif index < len(xs):
                idle += 1
            if ctx.get(dut.o_valid):
                results.append(ctx.get(dut.y))
                produced.append(cycle)
            assert cycle <= limit, f"{len(results)} of {len(xs)} results after {cycle} cycles"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results, dtype=np.uint64), np.array(accepted), np.array(produced)


def golden(ops, xs):
    ops = np.asarray(ops)
    return np.where(ops == 1, sfu.reciprocal(xs), sfu.exp(xs))


def assert_equal(got, ref, ops, xs):
    bad = np.flatnonzero(got != ref)
    if bad.size:
        i = bad[0]
        raise AssertionError(f"{bad.size} of {len(ref)} differ; first op {int(ops[i])} x "
                             f"{int(xs[i]):#010x}: rtl {int(got[i]):#010x}, "
                             f"golden {int(ref[i]):#010x}")


@pytest.mark.parametrize("op,count", [(0, 2000), (1, 2500)], ids=["exp", "reciprocal"])
def test_rtl_equals_golden(op, count):
    xs = sfu.random_inputs(op, count, seed=40 + op)
    ops = np.full(count, op)
    got, accepted, produced = run(SpecialFunctionUnit(mac_latency=1), ops, xs)
    assert_equal(got, golden(ops, xs), ops, xs)


@pytest.mark.parametrize("mac_latency", [2, 6])
def test_mixed_functions_and_timing(mac_latency):
    rng = np.random.default_rng(42 + mac_latency)
    count = 160
    ops = rng.integers(0, 2, count)
    xs = np.where(ops == 1, sfu.random_inputs(1, count, seed=43), sfu.random_inputs(0, count, 44))
    gaps = np.where(rng.random(count) < 0.2, rng.integers(1, 5, count), 0)
    dut = SpecialFunctionUnit(mac_latency=mac_latency)
    got, accepted, produced = run(dut, ops, xs, gaps=gaps)
    assert_equal(got, golden(ops, xs), ops, xs)
    cycles = np.array([dut.cycles(op) for op in ops])
    # The result comes one cycle after the last FMA; the next element is accepted as soon as
    # it is offered, at the earliest in the cycle of the last FMA's result.
    np.testing.assert_array_equal(produced - accepted, cycles + 1)
    np.testing.assert_array_equal(accepted[1:], np.maximum(accepted[:-1] + cycles[:-1],
                                                           accepted[:-1] + 1 + gaps[1:]))


def test_cycles_per_element():
    dut = SpecialFunctionUnit(mac_latency=6)
    assert (dut.cycles(0), dut.cycles(1)) == (54, 24)
    assert (len(EXP_PROGRAM), len(RECIP_PROGRAM)) == (sfu.EXP_FMAS, sfu.RECIP_FMAS)


@pytest.mark.parametrize("value", [0, 9, -1, True, 2.0, "3"])
def test_bad_latency(value):
    with pytest.raises(ValueError, match=rf"mac_latency .*, not {value!r}$"):
        SpecialFunctionUnit(mac_latency=value)


def test_bad_op():
    with pytest.raises(ValueError, match=r", not 2$"):
        SpecialFunctionUnit(mac_latency=1).cycles(2)


def test_verilog_is_deterministic():
    first = verilog.convert(SpecialFunctionUnit(mac_latency=3), name="sfu", emit_src=False)
    second = verilog.convert(SpecialFunctionUnit(mac_latency=3), name="sfu", emit_src=False)
    assert first == second
    assert "module sfu(" in first
