"""The matrix-level golden model of training with dual precision (sim/golden/dual_model.py)."""

import numpy as np
import pytest

from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.spec.formats import BF16
from chrysalis.sim.golden import mlp
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import dual_model as dm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.dual import DualPath, random_bits

POLICIES = ("single", "dual-full", "value", "static", "random")


def f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def values(bits):
    return nx.to_float32(np.asarray(bits, dtype=np.uint64)).astype(np.float64)


def rand(rng, shape, zeros=0.3):
    v = rng.standard_normal(shape) * np.exp2(rng.integers(-4, 4, shape))
    v[rng.random(shape) < zeros] = 0.0
    return f32(v)


def exact_low(rng, shape, zeros=0.3):
    """Values exact in 3 mantissa bits (so LOW changes no product)."""
    v = (8 + rng.integers(0, 8, shape)) / 8.0 * np.exp2(rng.integers(-3, 3, shape))
    v = v * rng.choice([-1.0, 1.0], shape)
    v[rng.random(shape) < zeros] = 0.0
    return f32(v)


def ops(num, dual, shapes_seed, m=7, n=10, batch=5, gen=rand):
    rng = np.random.default_rng(shapes_seed)
    w, x, dy = gen(rng, (m, n)), gen(rng, (n, batch)), gen(rng, (m, batch))
    return (dm.forward(num, dual, w, x), dm.backward_dx(num, dual, w, dy),
            dm.weight_gradient(num, dual, dy, x)), (w, x, dy)


@pytest.mark.parametrize("rows,cols,reduction", [(4, 4, "bus"), (2, 3, "tree"), (1, 1, "bus"),
                                                 (3, 2, "bus")])
@pytest.mark.parametrize("policy", ["single", "dual-full"])
@pytest.mark.parametrize("shape", [(7, 10, 5), (8, 8, 8), (5, 13, 1), (1, 3, 2)])
def test_single_and_dual_full_are_core_model(rows, cols, reduction, policy, shape):
    num = cm.CoreNumerics(rows=rows, cols=cols, reduction=reduction)
    dual = DualPath(BF16, 3, policy)
    m, n, batch = shape
    (y, dx, dw), (w, x, dy) = ops(num, dual, 1, m, n, batch)
    np.testing.assert_array_equal(y, cm.forward(num, w, x))
    np.testing.assert_array_equal(dx, cm.backward_dx(num, w, dy))
    np.testing.assert_array_equal(dw, cm.weight_gradient(num, dy, x))


@pytest.mark.parametrize("policy", ["value", "static", "random"])
def test_full_low_mantissa_is_single(policy):
    num = cm.CoreNumerics(rows=2, cols=3)
    got, _ = ops(num, DualPath(BF16, BF16.man_bits, policy), 2)
    want, _ = ops(num, DualPath(BF16, 3, "single"), 2)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("policy", ["value", "static", "random"])
def test_operands_exact_in_low_format_change_nothing(policy):
    num = cm.CoreNumerics(rows=3, cols=2)
    got, _ = ops(num, DualPath(BF16, 3, policy), 3, gen=exact_low)
    want, _ = ops(num, DualPath(BF16, 3, "single"), 3, gen=exact_low)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("policy", ["value", "static", "random"])
def test_only_outputs_with_a_low_product_differ(policy):
    """One operand not exact in the low format: only the outputs it is a factor of (and
    only when it was LOW) can differ from single."""
    num = cm.CoreNumerics(rows=2, cols=2)
    dual, single = DualPath(BF16, 3, policy), DualPath(BF16, 3, "single")
    rng = np.random.default_rng(4)
    m, n, batch = 6, 9, 6
    w, x, dy = exact_low(rng, (m, n), 0), exact_low(rng, (n, batch), 0), \
        exact_low(rng, (m, batch), 0)
    x[4, 3] = f32(1.0625 * 3)        # 1.1001b * 2: rounds to 3 mantissa bits
    y, y0 = dm.forward(num, dual, w, x), dm.forward(num, single, w, x)
    assert np.array_equal(np.delete(y, 3, axis=1), np.delete(y0, 3, axis=1))
    dw, dw0 = dm.weight_gradient(num, dual, dy, x), dm.weight_gradient(num, single, dy, x)
    assert np.array_equal(np.delete(dw, 4, axis=1), np.delete(dw0, 4, axis=1))
    # With 6 rows of W and static, x[4][3] is pair 1 (output p2 = 3 is odd): LOW everywhere.
    if policy == "static":
        assert not np.array_equal(y[:, 3], y0[:, 3])
        assert not np.array_equal(dw[:, 4], dw0[:, 4])


def hand_case(policy, seed=0):
    """A 1x1 core; W is 1x2, X is 2x2: outputs o = 0, 1 (batch columns) pair up, steps
    s = 0, 1 are the columns of W."""
    num = cm.CoreNumerics(rows=1, cols=1)
    dual = DualPath(BF16, 3, policy)
    w = f32([[1.0, 0.5]])
    x = f32([[1.0625, 4.0],           # s = 0: E sums 254 vs 256; 1.0625 rounds to 1.0 in LOW
             [0.0, 3.0]])             # s = 1: pair 0 is zero (bypass); 0.5 * 3 exact in LOW
    counters = {}
    y = dm.forward(num, dual, w, x, seed=seed, counters=counters)
    return values(y)[0].tolist(), counters["forward"]


def test_hand_made_case():
    # single / dual-full: every nonzero product HIGH.
    for policy in ("single", "dual-full"):
        y, c = hand_case(policy)
        assert y == [1.0625, 5.5]
        assert c == {"high": 3, "low": 0, "bypass": 1, "padding": 0}
    # value: s = 0 pair 1 (1 * 4) is larger -> HIGH, pair 0 LOW -> 1.0; s = 1 pair 0 bypasses
    # and pair 1 keeps HIGH.
    y, c = hand_case("value")
    assert y == [1.0, 5.5]
    assert c == {"high": 2, "low": 1, "bypass": 1, "padding": 0}
    # static: pair 0 HIGH (1.0625 kept), pair 1 LOW at both steps (4 and 1.5 exact).
    y, c = hand_case("static")
    assert y == [1.0625, 5.5]
    assert c == {"high": 1, "low": 2, "bypass": 1, "padding": 0}
    # random: the bit of (o_even = 0, s) picks; bit 1 gives pair 1 HIGH.
    for seed in range(4):
        bits = [int(random_bits(0, s, seed)) for s in (0, 1)]
        y, c = hand_case("random", seed)
        assert y == ([1.0, 5.5] if bits[0] else [1.0625, 5.5])
        # s = 1: pair 0 bypasses; pair 1 is HIGH if the bit says so, else LOW.
        assert c == {"high": 1 + bits[1], "low": 2 - bits[1], "bypass": 1, "padding": 0}


def test_unpaired_last_output_keeps_high():
    # batch 3 on a 1x1 core: outputs 0, 1, 2; output 2 has no partner -> HIGH under static.
    num = cm.CoreNumerics(rows=1, cols=1)
    w = f32([[1.0]])
    x = f32([[1.0625, 1.0625, 1.0625]])
    y = values(dm.forward(num, DualPath(BF16, 3, "static"), w, x))[0].tolist()
    assert y == [1.0625, 1.0, 1.0625]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("rows,cols", [(4, 4), (2, 3)])
def test_counters_add_up(policy, rows, cols):
    num = cm.CoreNumerics(rows=rows, cols=cols)
    dual = DualPath(BF16, 3, policy)
    rng = np.random.default_rng(5)
    m, n, batch = 7, 10, 5
    w, x, dy = rand(rng, (m, n)), rand(rng, (n, batch)), rand(rng, (m, batch))
    counters = dm.new_counters()
    dm.forward(num, dual, w, x, counters=counters)
    dm.backward_dx(num, dual, w, dy, counters=counters)
    dm.weight_gradient(num, dual, dy, x, counters=counters)
    mt, nt = -(-m // rows), -(-n // cols)
    expected = {"forward": mt * batch * nt, "backward": nt * batch * mt, "wgrad": mt * nt * batch}
    for phase, per_pe in expected.items():
        c = counters[phase]
        assert c["high"] + c["low"] + c["bypass"] == rows * cols * per_pe
        assert c["padding"] == rows * cols * per_pe - m * n * batch
        assert c["bypass"] >= c["padding"]
        if policy in ("single", "dual-full"):
            assert c["low"] == 0
        else:
            assert c["low"] > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_golden_step_deterministic_and_single_is_compiler(policy):
    config = with_overrides(get_preset("default"), {"mac.dual": policy, "pe.acc_regs": 28})
    num, dual = dm.from_config(config)
    case = mlp.mlp_case([64, 32, 10], 8, 2, 0)
    runs = []
    for _ in range(2):
        weights, counters = case.weights, dm.new_counters()
        for x, labels in zip(case.inputs, case.labels):
            weights, probs = dm.golden_step(num, dual, weights, x, labels, 0.1,
                                            counters=counters)
        runs.append((weights, probs, counters))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][2] == runs[1][2]
    weights = case.weights
    for x, labels in zip(case.inputs, case.labels):
        weights, probs = mlp.golden_step(num, weights, x, labels, 0.1)
    same = all(np.array_equal(a, b) for a, b in zip(runs[0][0], weights))
    assert same == (policy in ("single", "dual-full"))


def test_golden_step_momentum_and_tiny_single():
    config = get_preset("tiny")
    num, dual = dm.from_config(config)
    case = mlp.mlp_case([5, 7, 3], 3, 2, 1)
    w0, w1 = case.weights, case.weights
    v0 = [cm.zeros(w.shape) for w in w0]
    v1 = [cm.zeros(w.shape) for w in w1]
    for x, labels in zip(case.inputs, case.labels):
        w0, p0, g0 = mlp.golden_step(num, w0, x, labels, 0.25, True, 0.5, v0)
        w1, p1, g1 = dm.golden_step(num, dual, w1, x, labels, 0.25, True, 0.5, v1)
        np.testing.assert_array_equal(p0, p1)
        np.testing.assert_array_equal(g0, g1)
    for a, b in zip(w0 + v0, w1 + v1):
        np.testing.assert_array_equal(a, b)


def test_random_seed_changes_the_bits_deterministically():
    num = cm.CoreNumerics(rows=2, cols=2)
    a0, _ = ops(num, DualPath(BF16, 3, "random"), 6)
    rng = np.random.default_rng(6)
    w, x = rand(rng, (7, 10)), rand(rng, (10, 5))
    y0 = dm.forward(num, DualPath(BF16, 3, "random"), w, x, seed=0)
    y1 = dm.forward(num, DualPath(BF16, 3, "random"), w, x, seed=1)
    np.testing.assert_array_equal(y0, a0[0])
    np.testing.assert_array_equal(y1, dm.forward(num, DualPath(BF16, 3, "random"), w, x,
                                                 seed=1))
    assert not np.array_equal(y0, y1)


def test_from_config_needs_even_groups():
    # gen.spec.config already refuses such a config; from_config checks it again.
    with pytest.raises(ValueError, match="acc_regs"):
        dm.from_config(with_overrides(get_preset("default"),
                                      {"mac.dual": "value", "pe.acc_regs": 18}))
    dm.from_config(with_overrides(get_preset("default"), {"pe.acc_regs": 18}))  # single: fine


def test_operand_mismatch_is_refused():
    num = cm.CoreNumerics(rows=2, cols=2)
    from chrysalis.gen.spec.formats import FP8_E4M3
    with pytest.raises(ValueError, match="operand"):
        dm.forward(num, DualPath(FP8_E4M3, 3, "value"), f32([[1.0]]), f32([[1.0]]))


def test_step_is_fast():
    import time
    config = with_overrides(get_preset("default"), {"mac.dual": "value", "pe.acc_regs": 28})
    num, dual = dm.from_config(config)
    case = mlp.mlp_case([64, 32, 10], 8, 1, 0)
    dm.golden_step(num, dual, case.weights, case.inputs[0], case.labels[0], 0.1)
    t = time.perf_counter()
    dm.golden_step(num, dual, case.weights, case.inputs[0], case.labels[0], 0.1)
    assert time.perf_counter() - t < 0.5       # about 0.02 s on an idle core
