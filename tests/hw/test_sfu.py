# amaranth: UnusedElaboratable=no
"""The special-function unit's RTL == its golden model (``sim.golden.sfu``), bit for bit.

Runs the barrel ``hw.sfu.SpecialFunctionUnit`` in Amaranth's simulator over seeded vectors
of ``sim.golden.sfu.random_inputs`` (every edge case of ``sim.golden.sfu.edge_inputs`` first), exp and
reciprocal mixed, with and without idle gaps. Every result must equal the golden model's,
come out in acceptance order, and every acceptance and result must fall in exactly the
cycle that ``SpecialFunctionUnit.schedule`` (the documented handshake) predicts; a long
back-to-back stream checks the throughput: 9 cycles per exp and 4 per reciprocal.
"""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from chrysalis.hw.sfu import (
    EXP_PROGRAM, MAX_THREADS, RECIP_PROGRAM, PipelinedSFU, SpecialFunctionUnit)
from chrysalis.gen.spec import sfu as spec_sfu
from chrysalis.sim.golden import sfu


def run(dut, ops, xs, *, gaps=None):
    """Offer ``(op, x)`` pairs to ``dut``, ``gaps[i]`` idle cycles after the cycle that
    follows the acceptance of pair ``i - 1`` (the convention of ``dut.schedule``).

    Returns the results and, per element, the cycle it was accepted and the cycle its
    result appeared (``o_valid`` high); cycle 0 is the first after reset.
    """
    ops = [int(v) for v in ops]
    xs = [int(v) for v in xs]
    gaps = [0] * len(xs) if gaps is None else [int(v) for v in gaps]
    results, accepted, produced = [], [], []
    limit = max(dut.schedule(ops, gaps)[1], default=0) + 10

    async def testbench(ctx):
        index, idle, cycle = 0, 0, 0
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
        for _ in range(2 * dut.latency(0)):     # nothing more comes out
            await ctx.tick()
            assert not ctx.get(dut.o_valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results, dtype=np.uint64), np.array(accepted), np.array(produced)


def golden(ops, xs):
    ops = np.asarray(ops)
    return np.where(ops == 1, sfu.reciprocal(xs), sfu.exp(xs))


def assert_equal(got, ref, ops, xs):
    assert len(got) == len(ref)
    bad = np.flatnonzero(got != ref)
    if bad.size:
        i = bad[0]
        raise AssertionError(f"{bad.size} of {len(ref)} differ; first op {int(ops[i])} x "
                             f"{int(xs[i]):#010x}: rtl {int(got[i]):#010x}, "
                             f"golden {int(ref[i]):#010x}")


def check(dut, ops, xs, gaps=None):
    """Run, compare with the golden model (in order) and with ``dut.schedule``, exactly."""
    got, accepted, produced = run(dut, ops, xs, gaps=gaps)
    assert_equal(got, golden(ops, xs), ops, xs)
    want_accepted, want_produced = dut.schedule(ops, gaps)
    np.testing.assert_array_equal(accepted, want_accepted)
    np.testing.assert_array_equal(produced, want_produced)
    # The documented rule: a result comes ``latency(op)`` cycles after its acceptance, or
    # in the cycle after the previous result if that is later.
    due = accepted + np.array([dut.latency(int(op)) for op in ops])
    np.testing.assert_array_equal(produced[0], due[0])
    np.testing.assert_array_equal(produced[1:], np.maximum(due[1:], produced[:-1] + 1))
    return accepted, produced


def mixed_inputs(count, seed):
    rng = np.random.default_rng(seed)
    ops = rng.integers(0, 2, count)
    xs = np.where(ops == 1, sfu.random_inputs(1, count, seed + 1),
                  sfu.random_inputs(0, count, seed + 2))
    return ops, xs


# Every edge case comes first (421 for exp, 258 for the reciprocal), then random ones: the
# default suite runs 700 of each function (test_cocotb_sfu.py adds 300 of each under Icarus
# and Verilator); the longer streams, 1,500 and 2,000, are `slow`.
@pytest.mark.parametrize("op,count,mac_latency", [
    pytest.param(0, 700, 1, id="exp"), pytest.param(1, 700, 2, id="reciprocal"),
    pytest.param(0, 1500, 1, marks=pytest.mark.slow, id="exp-long"),
    pytest.param(1, 2000, 2, marks=pytest.mark.slow, id="reciprocal-long")])
def test_rtl_equals_golden(op, count, mac_latency):
    """Every edge case and many random ones, back to back: one function per element
    every 9 (exp) or 4 (reciprocal) cycles once the unit is full."""
    xs = sfu.random_inputs(op, count, seed=40 + op)
    ops = np.full(count, op)
    dut = SpecialFunctionUnit(mac_latency=mac_latency)
    accepted, produced = check(dut, ops, xs)
    threads, fmas = dut.threads, dut.interval(op)
    index = np.arange(count)
    np.testing.assert_array_equal(accepted, index % threads + fmas * threads * (index // threads))
    np.testing.assert_array_equal(produced - accepted, dut.latency(op))


@pytest.mark.parametrize("mac_latency,threads", [(2, None), (6, None), (3, 3), (2, 4)])
def test_mixed_functions_and_timing(mac_latency, threads):
    """exp and reciprocal interleaved at random with idle gaps, at both ends of the
    thread count (``threads == mac_latency``: the result goes straight back into the MAC;
    more: one or two registers after it)."""
    ops, xs = mixed_inputs(160, seed=42 + mac_latency)
    rng = np.random.default_rng(7 + mac_latency)
    gaps = np.where(rng.random(len(ops)) < 0.2, rng.integers(1, 12, len(ops)), 0)
    check(SpecialFunctionUnit(mac_latency=mac_latency, threads=threads), ops, xs, gaps)


def test_stream_throughput():
    """A long stream with ``i_valid`` held high, at the config default ``mac_latency = 6``
    (7 threads): exps, reciprocals, an exp followed by reciprocals that overtake it until
    the reorder buffer is full, and a random mix. Results in order, the cycles exact."""
    dut = SpecialFunctionUnit(mac_latency=6)
    E, R = dut.threads, dut.rob_depth
    n_exp, n_recip, n_over = 10 * E, 10 * E, 3 * R
    rng = np.random.default_rng(5)
    ops = np.concatenate([np.zeros(n_exp, int), np.ones(n_recip, int),
                          [0], np.ones(n_over, int), rng.integers(0, 2, 20 * E)])
    xs = np.empty(len(ops), dtype=np.uint64)
    xs[ops == 0] = sfu.random_inputs(0, int((ops == 0).sum()), 61)
    xs[ops == 1] = sfu.random_inputs(1, int((ops == 1).sum()), 62)
    accepted, produced = check(dut, ops, xs)

    # exps: element j + E enters the slot that element j left, 9 E cycles later, so once the
    # E slots are full one exp is accepted (and produced) every 9 cycles on average.
    a = accepted[:n_exp]
    np.testing.assert_array_equal(a[E:] - a[:-E], 9 * E)
    np.testing.assert_array_equal(a[:E], np.arange(E))
    assert a[-1] - a[E - 1] == 9 * (n_exp - E)
    np.testing.assert_array_equal(produced[:n_exp] - a, dut.latency(0))
    # reciprocals after them: 4 cycles per element once the last exps have left.
    r = accepted[n_exp:n_exp + n_recip]
    np.testing.assert_array_equal(r[2 * E:] - r[E:-E], 4 * E)
    p = produced[n_exp:n_exp + n_recip]
    assert p[-1] - p[E - 1] == 4 * (n_recip - E)
    # An exp and reciprocals behind it: they finish first and wait; the unit stops taking
    # elements when R are pending, and outputs them one per cycle once the exp is out.
    start = n_exp + n_recip
    over = produced[start:start + 1 + n_over]
    assert np.any(np.diff(over) == 1)
    pending = np.array([np.sum(accepted < c) - np.sum(produced <= c)    # in the cycle c
                        for c in range(int(produced[-1]) + 1)])
    assert pending.max() == R
    # The random mix: its results take the cycles of its FMAs (one FMA per cycle), within
    # 2% (the exact cycles are the schedule's, checked above).
    mix = slice(start + 1 + n_over, None)
    fmas = sum(dut.interval(int(op)) for op in ops[mix])
    span = produced[mix][-1] - produced[mix][0] + dut.interval(int(ops[mix][0]))
    assert fmas - 9 * E <= span <= 1.02 * fmas


def test_latency_and_interval():
    dut = SpecialFunctionUnit(mac_latency=6)
    assert dut.threads == 7 and dut.rob_depth == 16
    assert (dut.interval(0), dut.interval(1)) == (9, 4)
    assert (dut.latency(0), dut.latency(1)) == (64, 29)
    lean = SpecialFunctionUnit(mac_latency=6, threads=6)       # the former sequencer's
    assert (lean.latency(0), lean.latency(1), lean.rob_depth) == (55, 25, 16)
    assert SpecialFunctionUnit(mac_latency=1, threads=1).rob_depth == 2
    assert (len(EXP_PROGRAM), len(RECIP_PROGRAM)) == (sfu.EXP_FMAS, sfu.RECIP_FMAS)


def test_one_thread():
    """``threads = mac_latency = 1``: one element at a time, as the former sequencer."""
    ops, xs = mixed_inputs(60, seed=9)
    dut = SpecialFunctionUnit(mac_latency=1, threads=1)
    accepted, produced = check(dut, ops, xs)
    fmas = np.array([dut.interval(int(op)) for op in ops])
    np.testing.assert_array_equal(np.diff(accepted), fmas[:-1])


@pytest.mark.parametrize("value", [0, 13, -1, True, 2.0, "3"])
def test_bad_latency(value):
    with pytest.raises(ValueError, match=rf"mac_latency .*, not {value!r}$"):
        SpecialFunctionUnit(mac_latency=value)


@pytest.mark.parametrize("value", [2, 0, MAX_THREADS + 1, True, 4.0, "4"])
def test_bad_threads(value):
    with pytest.raises(ValueError, match=rf"threads .*, not {value!r}$"):
        SpecialFunctionUnit(mac_latency=3, threads=value)


def test_bad_op():
    dut = SpecialFunctionUnit(mac_latency=1)
    with pytest.raises(ValueError, match=r", not 2$"):
        dut.latency(2)
    with pytest.raises(ValueError, match=r", not 2$"):
        dut.schedule([0, 2])


def test_verilog_is_deterministic():
    first = verilog.convert(SpecialFunctionUnit(mac_latency=3), name="sfu", emit_src=False)
    second = verilog.convert(SpecialFunctionUnit(mac_latency=3), name="sfu", emit_src=False)
    assert first == second
    assert "module sfu(" in first


# --- The pipelined unit (hw.sfu.PipelinedSFU): one element per cycle, fixed latency.

def run_pipelined(dut, ops, xs, valid, early=None):
    """Offer element ``i`` in the ``i``-th cycle whose ``valid`` entry is true; returns the
    results and, per element, the cycle it was offered and the cycle it came out.
    ``early``, a list, gets ``(cycle, bits)`` of every result on the early reciprocal
    output."""
    ops, xs = [int(v) for v in ops], [int(v) for v in xs]
    results, offered, produced = [], [], []
    early = [] if early is None else early

    async def testbench(ctx):
        index = cycle = 0
        def out():
            return len(results) + (len(early) if dut.early_reciprocal else 0)

        while out() < len(xs):
            offer = index < len(xs) and bool(valid[cycle % len(valid)])
            if offer:
                ctx.set(dut.op, ops[index])
                x = xs[index]
                if dut.prepared:
                    # What the user prepares: a clamped exp argument, a reciprocal's seed.
                    mag = min(x & 0x7FFF_FFFF, spec_sfu.EXP_CLAMP)
                    x = x if ops[index] else (x & 0x8000_0000) | mag
                    bits = spec_sfu.RECIP_TABLE_BITS
                    ctx.set(dut.seed,
                            spec_sfu.RECIP_TABLE[(x >> (23 - bits)) & ((1 << bits) - 1)])
                ctx.set(dut.x, x)
                offered.append(cycle)
                index += 1
            ctx.set(dut.i_valid, offer)
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.o_valid):
                results.append(ctx.get(dut.y))
                produced.append(cycle)
            if ctx.get(dut.recip_valid):
                early.append((cycle, ctx.get(dut.recip_y)))
            assert cycle <= 4 * len(xs) + 2 * dut.latency + 10
        for _ in range(dut.latency + 2):     # nothing more comes out
            await ctx.tick()
            assert not ctx.get(dut.o_valid) and not ctx.get(dut.recip_valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results, dtype=np.uint64), np.array(offered), np.array(produced)


# mac_latency 2 runs every edge case (679) and 400 random elements (1,200 with `slow`).
@pytest.mark.parametrize("mac_latency,count", [
    (1, 300), (2, 400), pytest.param(2, 1200, marks=pytest.mark.slow, id="2-long"), (6, 300),
    (8, 300)])
def test_pipelined_equals_golden(mac_latency, count):
    """Mixed exp and reciprocal, every edge case, back to back and with holes: the golden
    model's bits, in order, each exactly ``latency`` cycles after it went in."""
    ops, xs = mixed_inputs(count, seed=40 + mac_latency)
    edges = [(0, x) for x in sfu.edge_inputs(0)] + [(1, x) for x in sfu.edge_inputs(1)]
    if mac_latency == 2:
        ops = np.concatenate([[op for op, _ in edges], ops])
        xs = np.concatenate([np.array([x for _, x in edges], dtype=np.uint64), xs])
    dut = PipelinedSFU(mac_latency=mac_latency)
    assert dut.latency == 9 * mac_latency + 2
    assert dut.recip_latency == 4 * mac_latency + 2
    valid = [1] * 7 + [0, 1, 0, 0, 1]       # bursts and holes
    early = []
    got, offered, produced = run_pipelined(dut, ops, xs, valid, early)
    expected = golden(ops, xs)
    assert_equal(got, expected, ops, xs)
    np.testing.assert_array_equal(produced, offered + dut.latency)
    # The reciprocals, early too: the same bits, recip_latency cycles after going in.
    recips = np.asarray(ops) == 1
    assert recips.any() and not recips.all()
    np.testing.assert_array_equal([c for c, _ in early], offered[recips] + dut.recip_latency)
    assert_equal(np.array([y for _, y in early], dtype=np.uint64), expected[recips],
                 np.asarray(ops)[recips], np.asarray(xs)[recips])


def assert_early_split(dut, ops, xs, got, offered, produced, early):
    """With ``early_reciprocal``: the exps left at ``y`` after ``latency`` cycles, the
    reciprocals early after ``recip_latency``, each with the golden model's bits."""
    expected, ops, xs = golden(ops, xs), np.asarray(ops), np.asarray(xs)
    exps = ops == 0
    assert_equal(got, expected[exps], ops[exps], xs[exps])
    np.testing.assert_array_equal(produced, offered[exps] + dut.latency)
    assert_equal(np.array([y for _, y in early], dtype=np.uint64), expected[~exps],
                 ops[~exps], xs[~exps])
    np.testing.assert_array_equal([c for c, _ in early], offered[~exps] + dut.recip_latency)


@pytest.mark.parametrize("mac_latency", [2, 6])
def test_pipelined_early_reciprocal(mac_latency):
    """``early_reciprocal``: reciprocals leave only early (``recip_latency``), exps only at
    ``y`` (``latency``), each with the golden model's bits."""
    ops, xs = mixed_inputs(150, seed=60 + mac_latency)
    dut = PipelinedSFU(mac_latency=mac_latency, early_reciprocal=True)
    early = []
    got, offered, produced = run_pipelined(dut, ops, xs, [1, 1, 0, 1], early)
    assert_early_split(dut, ops, xs, got, offered, produced, early)


@pytest.mark.parametrize("mac_latency", [2, 6])
def test_pipelined_prepared(mac_latency):
    """``prepared``: clamped exp arguments and the reciprocals' seeds from the user give
    the golden model's bits with the same timing."""
    ops, xs = mixed_inputs(150, seed=70 + mac_latency)
    edges = [(0, x) for x in sfu.edge_inputs(0)] + [(1, x) for x in sfu.edge_inputs(1)]
    ops = np.concatenate([[op for op, _ in edges], ops])
    xs = np.concatenate([np.array([x for _, x in edges], dtype=np.uint64), xs])
    dut = PipelinedSFU(mac_latency=mac_latency, early_reciprocal=True, prepared=True)
    early = []
    got, offered, produced = run_pipelined(dut, ops, xs, [1, 1, 0, 1], early)
    assert_early_split(dut, ops, xs, got, offered, produced, early)


def test_pipelined_bad_early_reciprocal():
    with pytest.raises(TypeError, match=r"early_reciprocal must be a bool, not 1$"):
        PipelinedSFU(mac_latency=2, early_reciprocal=1)


def test_pipelined_one_per_cycle():
    ops, xs = mixed_inputs(200, seed=7)
    dut = PipelinedSFU(mac_latency=3)
    got, offered, produced = run_pipelined(dut, ops, xs, [1])
    assert_equal(got, golden(ops, xs), ops, xs)
    np.testing.assert_array_equal(offered, np.arange(200))
    np.testing.assert_array_equal(produced, np.arange(200) + dut.latency)


@pytest.mark.parametrize("value", [0, 13, 2.0, True, None])
def test_pipelined_bad_latency(value):
    with pytest.raises(ValueError, match=rf"mac_latency .*, not {value!r}$"):
        PipelinedSFU(mac_latency=value)
