"""The golden CNN step: its fast multiply-accumulate against the exact one (bit for bit),
its MLP case against the MLP's golden step (bit for bit), and against the float32 and
float64 NumPy reference (``sim.train.cnn_reference``: measured deltas, not bit-exact),
whose gradients are checked by float64 finite differences."""

import numpy as np
import pytest

from chrysalis.gen.spec.formats import FP32
from chrysalis.gen.spec.model import Conv2d, Dense, Flatten, Model, ReLU, digits_cnn, mlp_model
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.cnn import CnnGolden, image_matrix, sample_windows
from chrysalis.sim.golden.fast_mac import FastNumerics, _fast_mac, fused_weight_gradient
from chrysalis.sim.golden.mlp import golden_step
from chrysalis.sim.train import cnn_reference as ref

#: A small CNN with every case of the step: stride 1 and 2, padding, a conv without ReLU
#: below a conv, a flatten, dense on dense.
TINY = Model("tiny", (2, 6, 5), (
    Conv2d(2, 3, 3, stride=1, pad=1),
    Conv2d(3, 4, 3, stride=2, pad=1), ReLU(),
    Conv2d(4, 5, 2, stride=1, pad=0), ReLU(),
    Flatten(), Dense(5 * 2 * 2, 6), ReLU(), Dense(6, 4)))


def _weights(model, rng):
    return [nx.from_float32((rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32))
            for s in model.weight_shapes]


def _case(model, batch, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((model.input_features, batch)).astype(np.float32)
    labels = rng.integers(0, model.classes, batch)
    return _weights(model, rng), x, labels


def test_fast_mac_is_the_exact_mac():
    rng = np.random.default_rng(1)
    shape = (64, 64)
    acc = nx.from_float32(rng.standard_normal(shape).astype(np.float32))
    a = nx.from_float32(rng.standard_normal(shape).astype(np.float32))
    b = nx.from_float32(rng.standard_normal(shape).astype(np.float32))
    # zeros of both signs, exact cancellations and carries to the next binade
    a[0, :8] = 0
    a[1, :8] = 0x8000_0000
    acc[2] = 0
    acc[3] = 0x8000_0000
    b[3] = 0x8000_0000
    a[4], b[4] = nx.fp32_bits(1.0), nx.from_float32(-nx.to_float32(acc[4]))
    exact, quick = cm.CoreNumerics(), FastNumerics()
    assert _fast_mac(acc, a, b) is not None            # the float32 path, not the fallback
    assert np.array_equal(quick.mac(acc, a, b), exact.mac(acc, a, b))
    # a subnormal product: the fast path gives way to the exact one
    tiny = np.full(shape, nx.fp32_bits(2.0 ** -70), dtype=np.uint64)
    assert np.array_equal(quick.mac(acc * 0, tiny, tiny), exact.mac(acc * 0, tiny, tiny))


def test_fast_fused_weight_gradient_is_the_exact_one():
    rng = np.random.default_rng(2)
    w = nx.from_float32(rng.standard_normal((6, 7)).astype(np.float32))
    dy = nx.from_float32((rng.standard_normal((6, 40)) * 1e-3).astype(np.float32))
    x = nx.from_float32(np.maximum(rng.standard_normal((7, 40)), 0).astype(np.float32))
    num = cm.CoreNumerics()
    assert np.array_equal(fused_weight_gradient(num, w, dy, x),
                          cm.fused_weight_gradient(num, w, dy, x))


@pytest.mark.parametrize("num", [cm.CoreNumerics(), cm.CoreNumerics(rows=2, cols=4,
                                                                   reduction="tree")],
                         ids=["4x4-bus", "2x4-tree"])
def test_fast_step_is_the_exact_step(num):
    weights, x, labels = _case(TINY, 3, 3)
    fast = CnnGolden(TINY, num).step(weights, nx.from_float32(x), labels, 0.5)
    exact = CnnGolden(TINY, num, fast=False).step(weights, nx.from_float32(x), labels, 0.5)
    for a, b in zip(fast[0], exact[0]):
        assert np.array_equal(a, b)
    assert np.array_equal(fast[2], exact[2])


@pytest.mark.parametrize("reduction", ["bus", "tree"])
def test_an_mlp_model_steps_as_the_mlp_golden_step(reduction):
    model = mlp_model((12, 9, 7, 5))
    weights, x, labels = _case(model, 4, 4)
    num = cm.CoreNumerics(reduction=reduction)
    new, probs, _ = CnnGolden(model, num).step(weights, nx.from_float32(x), labels, 0.25)
    expected, expected_probs = golden_step(num, weights, nx.from_float32(x), labels, 0.25,
                                           update="fused")
    for a, b in zip(new, expected):
        assert np.array_equal(a, b)
    assert np.array_equal(probs, expected_probs)


def test_windows_and_image_layout():
    x = np.arange(2 * 3 * 2 * 2).reshape(2 * 2 * 2, 3)   # 3 samples of (2, 2, 2)
    m = image_matrix(x, (2, 2, 2))
    assert m.shape == (2, 12)
    assert m[1, 4 + 3] == x[1 * 4 + 3, 1]                  # channel 1, sample 1, pixel 3
    windows = sample_windows(m, 4, 4)
    assert windows.shape == (3, 16)
    assert windows[1, 3 * 4 + 1] == m[1, 4 + 3]


def _delta_vs_reference(num, model, batch, seed, lr=0.5):
    weights, x, labels = _case(model, batch, seed)
    new, _, logits = CnnGolden(model, num).step(weights, nx.from_float32(x), labels, lr)
    w32 = [nx.to_float32(w).copy() for w in weights]
    ref_logits = ref.forward(model, w32, x)
    ref.sgd_step(model, w32, x, labels, lr)
    logit_delta = np.abs(nx.to_float32(logits) - ref_logits).max() / np.abs(ref_logits).max()
    update_delta = max(
        np.abs((nx.to_float32(a) - nx.to_float32(w)) - (b - nx.to_float32(w))).max()
        / np.abs(b - nx.to_float32(w)).max() for a, b, w in zip(new, w32, weights))
    return logit_delta, update_delta


def test_golden_with_fp32_operands_is_close_to_the_float32_reference():
    # fp32 operands: only the order of the sums differs from NumPy's. Measured: logits
    # 1.1e-7 and updates 3.8e-6 of their largest element (the fp32 rounding of W + lr dW).
    logit, update = _delta_vs_reference(cm.CoreNumerics(operand=FP32), TINY, 3, 5)
    assert logit < 1e-6 and update < 1e-3


def test_golden_with_bf16_operands_is_near_the_float32_reference():
    # bf16 multiplicands (8-bit significands) on random inputs. Measured: logits 6.4e-3 of
    # the largest, updates 0.19 of the largest update (an element whose gradient is a
    # cancelling sum of 512 rounded products).
    logit, update = _delta_vs_reference(cm.CoreNumerics(), digits_cnn(), 4, 6, lr=0.1)
    assert logit < 2e-2 and update < 0.25


@pytest.mark.parametrize("model", [TINY, digits_cnn()], ids=["tiny", "digits-cnn"])
def test_reference_gradients_are_the_finite_differences(model):
    rng = np.random.default_rng(7)
    weights = [w.astype(np.float64) for w in
               (nx.to_float32(w) for w in _weights(model, rng))]
    x = rng.random((model.input_features, 3))
    labels = rng.integers(0, model.classes, 3)
    _, grads, _ = ref.gradients(model, weights, x, labels, np.float64)
    h = 1e-6
    for k, w in enumerate(weights):
        for index in [tuple(rng.integers(0, s) for s in w.shape) for _ in range(6)] + \
                [(0, w.shape[1] - 1)]:                     # a bias too
            saved = w[index]
            w[index] = saved + h
            up = ref.gradients(model, weights, x, labels, np.float64)[0]
            w[index] = saved - h
            down = ref.gradients(model, weights, x, labels, np.float64)[0]
            w[index] = saved
            assert (up - down) / (2 * h) == pytest.approx(grads[k][index], abs=1e-7,
                                                           rel=1e-5)


def test_bad_inputs_are_refused():
    golden = CnnGolden(digits_cnn())
    weights, x, labels = _case(digits_cnn(), 2, 8)
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(16, 73\)"):
        golden.step([weights[0], weights[0], weights[2]], nx.from_float32(x), labels, 0.1)
    with pytest.raises(ValueError, match="x must have 64 rows"):
        golden.step(weights, nx.from_float32(x[:10]), labels, 0.1)
    with pytest.raises(ValueError, match="labels must be one per sample"):
        golden.step(weights, nx.from_float32(x), labels[:1], 0.1)
    with pytest.raises(TypeError, match="model must be a gen.spec.model.Model"):
        CnnGolden("digits-cnn")
