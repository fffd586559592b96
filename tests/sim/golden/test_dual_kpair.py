"""The k-paired accumulation order of dual precision (sim/golden/dual.py,
sim/golden/dual_model.py).

A k-paired slot multiplies steps ``k`` and ``k + 1`` of one output, sums the two products
(rounded once to 24 significant bits) and adds the sum to the fp32 accumulator (rounded once).
The references here are written out scalar by scalar from that rule, or come from NumPy's
float32 arithmetic where the rule and NumPy must agree.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chrysalis.gen.spec.formats import BF16, FP8_E4M3, FP32, pair_sum_format, product_format
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import dual_model as dm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.dual import DualPath, accumulate_k_pairs, random_bits

PF = product_format(BF16)
SUM = pair_sum_format(BF16)
NEG_ZERO = np.uint64(1) << np.uint64(PF.width - 1)
bf16_bits = st.integers(0, 0xFFFF)


def bf16(values):
    return nx.fconvert(nx.from_float32(np.asarray(values, dtype=np.float32)), FP32, BF16)


def scalar_k_paired(path, a, b, valid=None, bits=None):
    """The rule for one dot product, one scalar at a time: slot ``j`` adds
    ``round24(p[2j] + p[2j+1])`` to the fp32 accumulator; an odd last step is added alone."""
    steps = len(a)
    valid = [True] * steps if valid is None else valid
    acc = np.uint64(0)
    for k in range(0, steps, 2):
        paired = k + 1 < steps
        bit = 0 if bits is None else bits[k // 2]
        if paired:
            p0, p1, _, _ = path.products(a[k], b[k], a[k + 1], b[k + 1], True, bit)
        else:
            p0, p1, _, _ = path.products(a[k], b[k], 0, 0, False, bit)
            p1 = NEG_ZERO
        p0 = p0 if valid[k] else NEG_ZERO
        p1 = p1 if paired and valid[k + 1] else NEG_ZERO
        s = nx.fadd(p0, PF, p1, PF, SUM)
        acc = nx.fadd(acc, FP32, s, SUM, FP32)
    return int(acc)


def test_pair_sum_format_holds_a_product_and_fp32():
    assert SUM.exp_bits == PF.exp_bits and SUM.man_bits == FP32.man_bits
    assert pair_sum_format(FP8_E4M3).man_bits == 23


@settings(max_examples=300, deadline=None)
@given(st.lists(bf16_bits, min_size=4, max_size=4), st.sampled_from(["dual-full", "value",
                                                                    "static", "random"]))
def test_pair_sum_is_the_rounded_sum_of_the_products(ops, policy):
    """The pair sum is the sum of the two products, rounded once to 24 bits: where the products
    are within float64's exact range of each other and the sum is an fp32 normal, NumPy's
    float32 rounding of the float64 sum gives the same value."""
    path = DualPath(BF16, 3, policy)
    a0, b0, a1, b1 = (np.array([v], dtype=np.uint64) for v in ops)
    p0, p1, _, _ = path.products(a0, b0, a1, b1, True, 1)
    s = path.pair_sum(p0, p1)
    v0, v1 = nx.to_float(p0, PF)[0], nx.to_float(p1, PF)[0]
    exact = v0 + v1
    small = min(abs(v0), abs(v1))
    if small and abs(np.log2(abs(v0)) - np.log2(abs(v1))) > 28:
        return                    # the float64 sum itself would round
    if exact == 0 or not 2.0**-126 <= abs(exact) < 2.0**127:
        return
    assert nx.to_float(s, SUM)[0] == float(np.float32(exact))
    # The sum does not depend on the order of the two products.
    assert int(path.pair_sum(p1, p0)[0]) == int(s[0])


@settings(max_examples=200, deadline=None)
@given(st.lists(bf16_bits, min_size=2, max_size=2))
def test_a_lone_product_passes_exactly(ops):
    """Pair 1 absent contributes -0: the pair sum is the product itself, whatever pair 1
    holds (so a lone step is single's step)."""
    path = DualPath(BF16, 3, "dual-full")
    a, b = (np.array([v], dtype=np.uint64) for v in ops)
    p = nx.fmul(a, b, BF16)
    s = path.pair_sum(p, np.array([0x1234567], dtype=np.uint64), pair1=False)
    assert int(s[0]) == int(nx.fconvert(p, PF, SUM)[0])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.sampled_from(["dual-full", "value", "static", "random"]),
       st.integers(0, 2**32 - 1))
def test_accumulation_is_the_scalar_rule(steps, policy, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 0x10000, (3, steps), dtype=np.uint64)
    b = rng.integers(0, 0x10000, (3, steps), dtype=np.uint64)
    a[rng.random(a.shape) < 0.2] = 0
    valid = rng.random((3, steps)) < 0.85
    bits = rng.integers(0, 2, (3, -(-steps // 2)))
    path = DualPath(BF16, 3, policy)
    got = accumulate_k_pairs(path, a, b, bits, valid)
    for row in range(3):
        assert int(got[row]) == scalar_k_paired(path, a[row], b[row], valid[row], bits[row])


def test_single_is_one_product_per_step():
    """``single`` keeps its order: one exact product per step, each rounded into fp32."""
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 0x10000, (2, 50, 7), dtype=np.uint64)
    path = DualPath(BF16, 3, "single")
    acc = np.zeros(50, dtype=np.uint64)
    for k in range(7):
        acc = nx.fmac(acc, a[:, k], b[:, k], BF16, FP32)
    assert np.array_equal(accumulate_k_pairs(path, a, b), acc)


def test_dual_full_differs_from_single():
    """``dual-full`` is its own order: 1 + 2**-24 + 2**-24 is 1 in single's order (each tiny
    product rounds away) but 1 + 2**-23 when the two tiny products are summed first."""
    a = bf16([1.0, 2.0**-12, 2.0**-12, 0.0])
    b = bf16([1.0, 2.0**-12, 2.0**-12, 0.0])
    # Steps: (1*1, 0) pair, then (2^-24, 2^-24) pair... order the tiny ones into one pair.
    a, b = a[[0, 3, 1, 2]], b[[0, 3, 1, 2]]
    single = accumulate_k_pairs(DualPath(BF16, 3, "single"), a, b)
    full = accumulate_k_pairs(DualPath(BF16, 3, "dual-full"), a, b)
    assert nx.to_float32(single) == np.float32(1.0)
    assert nx.to_float32(full) == np.float32(1.0 + 2.0**-23)


def test_small_integers_sum_exactly():
    """Where every partial sum is exact the order does not matter: integer dot products."""
    rng = np.random.default_rng(4)
    x, y = rng.integers(-16, 17, (2, 20, 13))
    for policy in ("dual-full", "value", "static", "random"):
        # 3 low mantissa bits hold every integer below 16 exactly: LOW changes nothing.
        got = accumulate_k_pairs(DualPath(BF16, 3, policy), bf16(x), bf16(y), 1)
        assert np.array_equal(nx.to_float32(got), (x * y).sum(-1).astype(np.float32)), policy


def test_value_policy_gives_each_full_pair_one_high_and_one_low():
    rng = np.random.default_rng(5)
    a = bf16(rng.standard_normal((40, 10)))
    b = bf16(rng.standard_normal((40, 10)))
    counts = np.zeros(3, dtype=np.int64)
    accumulate_k_pairs(DualPath(BF16, 3, "value"), a, b, counts=counts)
    assert counts.tolist() == [200, 200, 0]
    a[:, 0::2] = 0               # pair 0 of every slot bypasses: pair 1 gets high
    counts[:] = 0
    accumulate_k_pairs(DualPath(BF16, 3, "value"), a, b, counts=counts)
    assert counts.tolist() == [200, 0, 200]


def test_full_low_width_makes_every_policy_dual_full():
    rng = np.random.default_rng(6)
    a, b = rng.integers(0, 256, (2, 30, 11), dtype=np.uint64)
    full = accumulate_k_pairs(DualPath(FP8_E4M3, 3, "dual-full"), a, b)
    for policy in ("value", "static", "random"):
        got = accumulate_k_pairs(DualPath(FP8_E4M3, 3, policy), a, b, 1)
        assert np.array_equal(got, full), policy


def test_low_pair_is_rounded_to_the_low_format():
    """``static``: pair 1 (the odd step) is LOW: 1.7 * 3.3 becomes 1.75 * 3.25."""
    a, b = bf16([1.0, 1.7]), bf16([1.0, 3.3])
    counts = np.zeros(3, dtype=np.int64)
    got = accumulate_k_pairs(DualPath(BF16, 3, "static"), a, b, counts=counts)
    assert float(nx.to_float32(got)) == np.float32(1.0 + 1.75 * 3.25)
    assert counts.tolist() == [1, 1, 0]


def ops(policy, shape, rows, cols, reduction, pairing, seed=1):
    num = cm.CoreNumerics(rows=rows, cols=cols, reduction=reduction)
    dual = DualPath(BF16, 3, policy)
    rng = np.random.default_rng(seed)
    m, n, batch = shape

    def gen(s):
        v = rng.standard_normal(s) * np.exp2(rng.integers(-4, 4, s))
        v[rng.random(s) < 0.3] = 0.0
        return nx.from_float32(v.astype(np.float32))

    w, x, dy = gen((m, n)), gen((n, batch)), gen((m, batch))
    counters = dm.new_counters()
    out = (dm.forward(num, dual, w, x, 7, counters, pairing),
           dm.backward_dx(num, dual, w, dy, 7, counters, pairing),
           dm.weight_gradient(num, dual, dy, x, 7, counters, pairing))
    return num, dual, out, (w, x, dy), counters


SHAPES = [(7, 10, 5), (8, 8, 8), (5, 13, 1), (1, 3, 2)]
ARRAYS = [(4, 4, "bus"), (2, 3, "tree"), (1, 1, "bus")]


@pytest.mark.parametrize("rows,cols,reduction", ARRAYS)
@pytest.mark.parametrize("shape", SHAPES)
def test_single_with_k_pairing_is_core_model(rows, cols, reduction, shape):
    num, _, (y, dx, dw), (w, x, dy), _ = ops("single", shape, rows, cols, reduction, "k")
    np.testing.assert_array_equal(y, cm.forward(num, w, x))
    np.testing.assert_array_equal(dx, cm.backward_dx(num, w, dy))
    np.testing.assert_array_equal(dw, cm.weight_gradient(num, dy, x))


@pytest.mark.parametrize("policy", ["dual-full", "value", "random"])
@pytest.mark.parametrize("rows,cols,reduction", ARRAYS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_pairs_the_steps_of_each_pe(policy, rows, cols, reduction, shape):
    """FORWARD, written out: PE column ``c`` pairs its steps ``k = sC + c`` and ``(s+1)C + c``
    of output ``o = p1 * batch + b``; the PEs' partial sums are reduced as before."""
    num, dual, (y, _, _), (w, x, _), _ = ops(policy, shape, rows, cols, reduction, "k")
    m, n, batch = shape
    nt = -(-n // cols)
    qw, qx = num.q(w), num.q(x)
    partials = np.zeros((m, cols, batch), dtype=np.uint64)
    for i in range(m):
        p1, r = divmod(i, rows)
        for b in range(batch):
            o = p1 * batch + b
            bits = [int(random_bits(o, 2 * j, 7)) for j in range(-(-nt // 2))]
            for c in range(cols):
                ks = [s * cols + c for s in range(nt)]
                a = [qw[i, k] if k < n else 0 for k in ks]
                bb = [qx[k, b] if k < n else 0 for k in ks]
                partials[i, c, b] = scalar_k_paired(dual, np.array(a, dtype=np.uint64),
                                                    np.array(bb, dtype=np.uint64),
                                                    [k < n for k in ks], bits)
    np.testing.assert_array_equal(y, cm.edge_reduce(num, partials, axis=1))


@pytest.mark.parametrize("shape", SHAPES)
def test_weight_gradient_pairs_consecutive_samples(shape):
    num, dual, (_, _, dw), (_, x, dy), _ = ops("dual-full", shape, 2, 3, "bus", "k")
    qd, qx = num.q(dy), num.q(x)
    for i in range(shape[0]):
        for j in range(shape[1]):
            assert int(dw[i, j]) == scalar_k_paired(dual, qd[i], qx[j])


def test_counters_count_every_product():
    shape, (rows, cols, _) = (7, 10, 5), ARRAYS[0]
    *_, counters = ops("value", shape, rows, cols, "bus", "k")
    m, n, batch = shape
    mt, nt = -(-m // rows), -(-n // cols)
    expected = {"forward": mt * batch * nt, "backward": nt * batch * mt, "wgrad": mt * nt * batch}
    for phase, per_pe in expected.items():
        row = counters[phase]
        assert row["high"] + row["low"] + row["bypass"] == per_pe * rows * cols, phase
        assert row["low"] > 0 and row["padding"] > 0


def test_value_is_close_to_dual_full_and_differs_only_through_low():
    """With operands exact in 3 mantissa bits LOW changes no product: value == dual-full."""
    num = cm.CoreNumerics(rows=2, cols=2)
    rng = np.random.default_rng(8)

    def exact_low(s):
        v = (8 + rng.integers(0, 8, s)) / 8.0 * np.exp2(rng.integers(-3, 3, s))
        return nx.from_float32((v * rng.choice([-1.0, 1.0], s)).astype(np.float32))

    w, x = exact_low((6, 9)), exact_low((9, 4))
    full = dm.forward(num, DualPath(BF16, 3, "dual-full"), w, x, pairing="k")
    value = dm.forward(num, DualPath(BF16, 3, "value"), w, x, pairing="k")
    np.testing.assert_array_equal(value, full)


def test_bad_pairing_names_the_value():
    num = cm.CoreNumerics(rows=1, cols=1)
    w = nx.from_float32(np.ones((1, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="pairing must be one of outputs, k, not 'steps'"):
        dm.forward(num, DualPath(BF16, 3, "value"), w, w, pairing="steps")
