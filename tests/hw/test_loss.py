# amaranth: UnusedElaboratable=no
"""The loss-gradient unit (``hw.loss.LossGradient``) alone, against the golden model.

A Python scratchpad answers the unit's reads (one word, or up to four consecutive classes
of a column in the maximum pass) a cycle later and takes its writes.
Every ``dY`` word must equal ``sim.golden.core_model.softmax_xent_gradient``'s bit for
bit, and ``done`` must come exactly in the cycle ``sim.golden.core_counts._trace_loss``
(and its closed form ``gen.perf.commands.loss_grad_cycles``) predicts, at the edges:
one class, one sample, more samples than a chunk, class counts that are multiples of
nothing, labels that mark no class, every FMA latency from 2 to 12; with either
special-function unit (``core.sfu``: pipelined, barrel), and 1, 2 or 4 lanes in the
maximum pass.
"""

import numpy as np
import pytest

from chrysalis.gen.perf.commands import loss_grad_cycles
from chrysalis.gen.spec.config import get_preset
from chrysalis.hw.loss import OUT_LANES, LossGradient
from chrysalis.sim.golden import core_counts as cc
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.verify.shared_sim import shared_simulation
from chrysalis.gen.spec.formats import FP32

# Lines per column of each matrix, all different, so that a line stepped by the wrong
# matrix's lpc lands elsewhere (Y and dY have room for up to 4 * S and 5 * S classes).
Y_LPC, DY_LPC, LAB_LPC = 4, 5, 1
Y_BASE, DY_BASE, LAB_BASE = 0, 400, 1000


def _f32(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)


def run_unit(y, labels, inv, *, latency, sfu="pipelined", lanes=4):
    """Run the unit on ``y`` (classes x batch, fp32 bits); returns ``dY`` (bits) and the
    cycle of ``done`` (1 = the cycle in which ``start`` is first seen)."""
    classes, batch = y.shape
    words = {}
    for b in range(batch):
        for i in range(classes):
            words[(Y_BASE + b * Y_LPC, i)] = int(y[i, b])
        words[(LAB_BASE + b * LAB_LPC, 0)] = int(labels[b]) & 0xFFFF_FFFF
    # One compiled simulation per unit's parameters in this worker (sim.verify.shared_sim).
    shared = shared_simulation(
        (LossGradient, latency, sfu, lanes),
        lambda: LossGradient(line_bits=12, mac_latency=latency, sfu=sfu, lanes=lanes))
    dut = shared.dut
    result = {}

    async def testbench(ctx):
        for port, value in (("m", classes), ("batch", batch), ("y_base", Y_BASE),
                            ("y_lpc", Y_LPC), ("dy_base", DY_BASE), ("dy_lpc", DY_LPC),
                            ("label_base", LAB_BASE), ("label_lpc", LAB_LPC),
                            ("inv_batch", inv), ("start", 1)):
            ctx.set(getattr(dut, port), value)
        cycle, pending = 0, None
        limit = 3 * cc._trace_loss(latency, classes, batch, None, sfu=sfu, lanes=lanes) + 100
        while True:
            cycle += 1
            for lane in range(lanes):
                on = pending is not None and (pending[2] >> lane) & 1
                ctx.set(dut.rd_data[lane],
                        words.get((pending[0], pending[1] + lane), 0) if on else 0)
            done = ctx.get(dut.done)
            pending = ((ctx.get(dut.rd_line), ctx.get(dut.rd_e0), ctx.get(dut.rd_lanes))
                       if ctx.get(dut.rd_en) else None)
            if pending is not None:        # no lane past the column's classes
                assert pending[1] + pending[2].bit_length() <= classes
            if ctx.get(dut.wr_en):
                line, e0, on = ctx.get(dut.wr_line), ctx.get(dut.wr_e0), ctx.get(dut.wr_lanes)
                assert on and e0 + on.bit_length() <= classes    # no lane past the column
                for lane in range(lanes):
                    if (on >> lane) & 1:
                        words[(line, e0 + lane)] = ctx.get(dut.wr_data[lane])
            if done:
                result["done"] = cycle
                ctx.set(dut.start, 0)
                await ctx.tick()
                assert not ctx.get(dut.done)
                return
            await ctx.tick()
            assert cycle < limit, "no done"

    shared.run(testbench)
    dy = np.array([[words.get((DY_BASE + b * DY_LPC, i), 0) for b in range(batch)]
                   for i in range(classes)], dtype=np.uint64)
    return dy, result["done"]


def check(classes, batch, *, latency=6, seed=0, labels=None, scale=3.0, sfu="pipelined",
          lanes=4):
    rng = np.random.default_rng(seed)
    y = _f32(rng.standard_normal((classes, batch)) * scale)
    if labels is None:
        labels = rng.integers(0, classes, batch)
    inv = int(_f32([1.0 / batch])[0])
    dy, done = run_unit(y, labels, inv, latency=latency, sfu=sfu, lanes=lanes)
    num = cm.CoreNumerics.from_config(get_preset("default"))
    expected, _ = cm.softmax_xent_gradient(num, y, labels, inv)
    bad = np.argwhere(dy != expected)
    assert bad.size == 0, (f"{len(bad)} words differ, first at {tuple(bad[0])}: "
                           f"{int(dy[tuple(bad[0])]):#x} != {int(expected[tuple(bad[0])]):#x}")
    assert done == cc._trace_loss(latency, classes, batch, labels, sfu=sfu, lanes=lanes)
    assert done == loss_grad_cycles(latency, classes, batch, sfu, lanes)
    return dy


@pytest.mark.parametrize("classes,batch", [(10, 8), (1, 1), (1, 5), (3, 1), (7, 3), (5, 17),
                                           (2, 16), (13, 9)])
def test_equals_golden(classes, batch):
    check(classes, batch, seed=classes * 100 + batch)


# The RTL at latencies 2, 6 (the default) and 8 runs in the default suite (3 also in
# tests/hw/test_core_counts.py), at 3, 4, 5 and 7 it is `slow`.
@pytest.mark.parametrize("latency", [
    pytest.param(latency, marks=pytest.mark.slow) if latency in (3, 4, 5, 7, 9, 10, 11)
    else latency for latency in range(2, 13)])
def test_every_latency(latency):
    check(5, 9, latency=latency, seed=latency)
    check(3, 2, latency=latency, seed=latency + 50, lanes=(1, 2, 4)[latency % 3])


@pytest.mark.parametrize("lanes", [1, 2])
def test_fewer_lanes(lanes):
    check(10, 8, seed=60 + lanes, lanes=lanes)
    check(7, 3, seed=70 + lanes, lanes=lanes)


def test_maximum_ties_and_lane_order():
    """The first largest wins across lanes and reads: equal maxima in several lanes and
    groups, the largest in each lane position."""
    for latency, lanes in ((2, 4), (3, 2)):
        for k in range(4):
            y = np.full((9, 3), -1.0, dtype=np.float32)
            y[k, 0] = y[k + 4, 0] = 5.0          # a tie across groups
            y[k, 1] = 7.0
            y[(k + 1) % 9, 1] = 7.0              # a tie in one group
            y[8 - k, 2] = 9.0
            bits = _f32(y)
            labels = np.array([k, 0, 8])
            inv = int(_f32([1 / 3])[0])
            dy, _ = run_unit(bits, labels, inv, latency=latency, lanes=lanes)
            num = cm.CoreNumerics.from_config(get_preset("default"))
            expected, _ = cm.softmax_xent_gradient(num, bits, labels, inv)
            assert np.array_equal(dy, expected), (latency, lanes, k)


@pytest.mark.parametrize("latency", [2, 5, 6, 8])
def test_barrel_sfu(latency):
    """The one-FMA special-function unit (threads coprime with 9: 4, 7, 7 and 10), every
    element taken at once: the same bits, the schedule of its own timing."""
    check(5, 9, latency=latency, seed=latency + 20, sfu="barrel")
    if latency == 6:
        check(3, 17, latency=latency, seed=3, sfu="barrel")
        check(1, 1, latency=latency, seed=4, sfu="barrel")


def test_labels_that_mark_no_class():
    """Labels ``>= m`` (and one whose low 16 bits are a class) subtract nothing: those
    columns are the softmax itself, scaled by 1/B."""
    labels = np.array([2, 4, 0xFFFF_FFFF, 0x1_0001, 1], dtype=np.uint64)
    dy = check(4, 5, labels=labels, seed=9)
    rng = np.random.default_rng(9)
    y = _f32(rng.standard_normal((4, 5)) * 3.0)
    num = cm.CoreNumerics.from_config(get_preset("default"))
    _, probs = cm.softmax_xent_gradient(num, y, labels, int(_f32([1 / 5])[0]))
    inv = int(_f32([1 / 5])[0])
    for b in (1, 2, 3):
        assert np.array_equal(dy[:, b], nx.fmac(cm.zeros(4), probs[:, b], np.full(4, inv),
                                                FP32, FP32))


def test_extreme_values():
    """Large spreads (exps that flush to zero), ties for the maximum, signed zeros."""
    y = np.array([[0.0, -0.0, 100.0], [-0.0, 0.0, -100.0], [-200.0, 3.0, 100.0],
                  [50.0, 3.0, -0.0]], dtype=np.float32)
    bits = _f32(y)
    labels = np.array([0, 2, 3])
    inv = int(_f32([1 / 3])[0])
    dy, done = run_unit(bits, labels, inv, latency=3, lanes=2)
    num = cm.CoreNumerics.from_config(get_preset("default"))
    expected, _ = cm.softmax_xent_gradient(num, bits, labels, inv)
    assert np.array_equal(dy, expected)
    assert done == cc._trace_loss(3, 4, 3, None, lanes=2)


def test_demo_size_cycles():
    """The demo's output layer: 10 classes, batch 8, latency 6, four lanes."""
    assert cc._trace_loss(6, 10, 8, None, lanes=4) == 258
    assert cc._trace_loss(6, 10, 8, None, sfu="barrel", lanes=4) == 964


def test_output_lanes_agree():
    """The output pass's lanes: the unit's and the schedule's bound are one."""
    assert OUT_LANES == cc.LOSS_OUT_LANES == 2
    assert [LossGradient(line_bits=8, lanes=w).out_lanes for w in (1, 2, 4)] == [1, 2, 2]


@pytest.mark.parametrize("value", [3, 0, 8, True])
def test_bad_lanes(value):
    with pytest.raises(ValueError, match=rf"lanes must be 1, 2 or 4, not {value!r}$"):
        LossGradient(line_bits=8, lanes=value)


def test_bad_sfu():
    with pytest.raises(ValueError, match=r"sfu must be one of 'pipelined', 'barrel', "
                                         r"not 'fast'$"):
        LossGradient(line_bits=8, sfu="fast")


def test_columns_must_cover_the_latency():
    with pytest.raises(ValueError, match=r"columns must be at least .*, not 6$"):
        LossGradient(line_bits=8, mac_latency=6, columns=6)
