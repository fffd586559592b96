"""The golden core model: its vectorized operations against a plain scalar spelling of the
documented order (bit-exact), against exact integer arithmetic where every value is
representable (bit-exact), and against float64 NumPy (a measured delta, not bit-exact).
"""

import numpy as np
import pytest

from chrysalis.gen.spec.formats import BF16, FP32
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def _val(bits):
    return nx.to_float(bits, FP32)


def _random(rng, shape, scale=1.0):
    return _f32(rng.standard_normal(shape) * scale)


# --- a scalar spelling of docs/architecture.md, one value at a time ----------------------

def _scalar_mac(num, acc, a, b):
    return int(num.mac(np.array([acc], np.uint64), np.array([a], np.uint64),
                       np.array([b], np.uint64))[0])


def _scalar_add(num, a, b):
    return int(num.add(np.array([a], np.uint64), np.array([b], np.uint64))[0])


def _scalar_reduce(num, parts):
    """The edge reducer, from +0: a chain over the bus, or the tree's sum passed through."""
    if num.reduction == "bus":
        total = 0
        for part in parts:
            total = _scalar_add(num, total, part)
        return total
    while len(parts) > 1:
        nxt = [_scalar_add(num, parts[k], parts[k + 1]) for k in range(0, len(parts) - 1, 2)]
        parts = nxt + ([parts[-1]] if len(parts) % 2 else [])
    return _scalar_add(num, 0, parts[0])


def scalar_forward(num, w, x):
    m, n = w.shape
    y = np.zeros((m, x.shape[1]), np.uint64)
    for i in range(m):
        for b in range(x.shape[1]):
            parts = []
            for c in range(num.cols):                 # PE (i mod R, c) of row i mod R
                acc = 0
                for j in range(c, -(-n // num.cols) * num.cols, num.cols):   # j increasing,
                    wj, xj = (int(w[i, j]), int(x[j, b])) if j < n else (0, 0)  # padded: +0
                    acc = _scalar_mac(num, acc, wj, xj)
                parts.append(acc)
            y[i, b] = _scalar_reduce(num, parts)
    return y


def scalar_backward(num, w, dy):
    m, n = w.shape
    dx = np.zeros((n, dy.shape[1]), np.uint64)
    for j in range(n):
        for b in range(dy.shape[1]):
            parts = []
            for r in range(num.rows):
                acc = 0
                for i in range(r, -(-m // num.rows) * num.rows, num.rows):
                    wi, dyi = (int(w[i, j]), int(dy[i, b])) if i < m else (0, 0)
                    acc = _scalar_mac(num, acc, wi, dyi)
                parts.append(acc)
            dx[j, b] = _scalar_reduce(num, parts)
    return dx


SHAPES = [(2, 2, 5, 3, 1), (2, 2, 4, 4, 3), (2, 3, 7, 5, 2), (4, 4, 9, 13, 4), (3, 2, 1, 6, 2),
          (4, 4, 3, 2, 1)]


@pytest.mark.parametrize("reduction", ["bus", "tree"])
@pytest.mark.parametrize("rows,cols,m,n,batch", SHAPES)
def test_forward_and_backward_follow_the_documented_order(rows, cols, m, n, batch, reduction):
    num = cm.CoreNumerics(rows=rows, cols=cols, reduction=reduction)
    rng = np.random.default_rng(rows * 100 + cols * 10 + m)
    w, x = _random(rng, (m, n)), _random(rng, (n, batch))
    assert np.array_equal(cm.forward(num, w, x), scalar_forward(num, w, x))
    dy = _random(rng, (m, batch))
    assert np.array_equal(cm.backward_dx(num, w, dy), scalar_backward(num, w, dy))


NEG_ZERO = 0x8000_0000


@pytest.mark.parametrize("reduction", ["bus", "tree"])
@pytest.mark.parametrize("rows,cols,m,n", [(2, 2, 3, 4), (2, 2, 3, 3), (4, 4, 2, 5), (1, 3, 2, 1)])
def test_products_that_flush_to_minus_zero_sum_to_plus_zero(rows, cols, m, n, reduction):
    # 2**-70 * -2**-70 flushes to -0, so every PE's chain can end at -0; the reducer starts
    # from +0 (and padded steps add +0), as the RTL does, so no output is -0.
    num = cm.CoreNumerics(rows=rows, cols=cols, reduction=reduction)
    tiny = int(_f32(2.0 ** -70)[()])
    w = np.full((m, n), tiny, np.uint64)
    x = np.full((n, 2), tiny | NEG_ZERO, np.uint64)
    assert cm.forward(num, w, x).tolist() == [[0, 0]] * m
    dy = np.full((m, 2), tiny | NEG_ZERO, np.uint64)
    assert cm.backward_dx(num, w, dy).tolist() == [[0, 0]] * n
    parts = np.full((3, 4), NEG_ZERO, np.uint64)
    assert cm.reduce_partials(num, parts, axis=1).tolist() == [NEG_ZERO] * 3
    assert cm.edge_reduce(num, parts, axis=1).tolist() == [0] * 3


def test_weight_gradient_follows_the_documented_order():
    num = cm.CoreNumerics(rows=2, cols=3)
    rng = np.random.default_rng(5)
    dy, x = _random(rng, (5, 4)), _random(rng, (7, 4))
    dw = cm.weight_gradient(num, dy, x)
    for i in range(5):
        for j in range(7):
            acc = 0
            for b in range(4):
                acc = _scalar_mac(num, acc, int(dy[i, b]), int(x[j, b]))
            assert dw[i, j] == acc


@pytest.mark.parametrize("reduction", ["bus", "tree"])
def test_exact_when_every_value_is_representable(reduction):
    """Small integers: every product and partial sum is exact in fp32, so any order gives
    the integer result, bit for bit (indexing and padding checked independently of order)."""
    num = cm.CoreNumerics(rows=3, cols=4, reduction=reduction)
    rng = np.random.default_rng(7)
    w = rng.integers(-8, 9, (10, 11))
    x = rng.integers(-8, 9, (11, 3))
    y = cm.forward(num, _f32(w), _f32(x))
    assert np.array_equal(y, _f32(w @ x))
    dy = rng.integers(-8, 9, (10, 3))
    assert np.array_equal(cm.backward_dx(num, _f32(w), _f32(dy)), _f32(w.T @ dy))
    assert np.array_equal(cm.weight_gradient(num, _f32(dy), _f32(x)), _f32(dy @ x.T))


def test_forward_close_to_float64():
    """Measured delta against float64 NumPy on the bf16-rounded operands (not bit-exact:
    the order of fp32 roundings differs); the bound is a few fp32 ulps of the sum of
    magnitudes."""
    num = cm.CoreNumerics(rows=4, cols=4)
    rng = np.random.default_rng(9)
    w, x = _random(rng, (32, 64)), _random(rng, (64, 8))
    y = _val(cm.forward(num, w, x))
    wq = nx.to_float(num.q(w), BF16)
    xq = nx.to_float(num.q(x), BF16)
    ref = wq @ xq
    scale = np.abs(wq) @ np.abs(xq)
    assert np.max(np.abs(y - ref) / scale) < 64 * 2.0 ** -24


def test_relu_and_mask():
    num = cm.CoreNumerics()
    y = _f32([1.5, -2.0, 0.0, -0.0, 3e-30])
    assert np.array_equal(cm.relu(num, y), _f32([1.5, 0.0, 0.0, 0.0, 3e-30]))
    grad = _f32([1.0, 2.0, 3.0, 4.0, 5.0])
    assert np.array_equal(cm.relu_mask(num, grad, cm.relu(num, y)), _f32([1.0, 0, 0, 0, 5.0]))


def test_update_is_one_mac_per_weight():
    num = cm.CoreNumerics()
    w, g = _f32([1.0, -2.0]), _f32([0.5, 4.0])
    lr = int(_f32([0.25])[0])
    new_w, velocity = cm.update(num, w, g, lr)
    assert velocity is None
    assert np.array_equal(new_w, _f32([1.0 - 0.125, -2.0 - 1.0]))
    v0 = _f32([2.0, 0.0])
    new_w, v = cm.update(num, w, g, lr, velocity=v0, momentum_bits=int(_f32([0.5])[0]))
    assert np.array_equal(v, _f32([0.5 + 1.0, 4.0]))
    assert np.array_equal(new_w, _f32([1.0 - 0.375, -3.0]))


def test_fused_weight_gradient_follows_the_documented_order():
    """Each weight's chain starts from it and adds q(dY') q(X) in increasing b."""
    num = cm.CoreNumerics(rows=2, cols=3)
    rng = np.random.default_rng(6)
    w, dy, x = _random(rng, (5, 7)), _random(rng, (5, 4), 0.01), _random(rng, (7, 4))
    new_w = cm.fused_weight_gradient(num, w, dy, x)
    for i in range(5):
        for j in range(7):
            acc = int(w[i, j])
            for b in range(4):
                acc = _scalar_mac(num, acc, int(dy[i, b]), int(x[j, b]))
            assert new_w[i, j] == acc


def test_fused_weight_gradient_is_exact_with_representable_values():
    """Small integers: W + dY X^T exactly, as NumPy computes it."""
    num = cm.CoreNumerics()
    rng = np.random.default_rng(8)
    w, dy, x = (rng.integers(-64, 65, (6, 9)), rng.integers(-8, 9, (6, 3)),
                rng.integers(-8, 9, (9, 3)))
    got = cm.fused_weight_gradient(num, _f32(w), _f32(dy), _f32(x))
    assert np.array_equal(got, _f32(w + dy @ x.T))
    # From zero weights it is the weight gradient itself.
    assert np.array_equal(cm.fused_weight_gradient(num, cm.zeros((6, 9)), _f32(dy), _f32(x)),
                          cm.weight_gradient(num, _f32(dy), _f32(x)))


def test_fused_rounds_each_sample_into_the_weight():
    """The fused rule rounds after every sample, the separate update once: two products
    of half an ulp of 1.0 each round away (ties to even), while their sum (one ulp) survives
    the separate update; and the separate update rounds dW and lr to the operand format."""
    num = cm.CoreNumerics()                    # bf16 operands
    half_ulp = 2.0 ** -24
    w, dy, x = _f32([[1.0]]), _f32([[half_ulp, half_ulp]]), _f32([[1.0, 1.0]])
    assert np.array_equal(cm.fused_weight_gradient(num, w, dy, x), w)
    minus_one = int(_f32([-1.0])[0])           # lr = -1: W + q(dW) * 1
    separate, _ = cm.update(num, w, cm.weight_gradient(num, dy, x), minus_one)
    assert np.array_equal(separate, _f32([[1.0 + 2.0 ** -23]]))


def test_fused_weight_gradient_refuses_a_weight_of_another_shape():
    num = cm.CoreNumerics()
    with pytest.raises(ValueError, match=r"w must be 2 x 3 \(dY's rows by X's rows\), not"):
        cm.fused_weight_gradient(num, cm.zeros((3, 2)), cm.zeros((2, 1)), cm.zeros((3, 1)))


def test_bad_numerics_are_named():
    with pytest.raises(ValueError, match="rows must be a positive integer, not 0"):
        cm.CoreNumerics(rows=0)
    with pytest.raises(ValueError, match="reduction must be 'bus' or 'tree', not 'ring'"):
        cm.CoreNumerics(reduction="ring")
