"""The golden model against references nobody on this project wrote (NumPy's float32 and
float16 arithmetic) and against exact rational arithmetic (``tests/sim/golden/exact.py``).

Every comparison here is exact, bit for bit. Where NumPy is the reference, vectors whose
exact result (or float32 product) is subnormal or beyond float32's range are left out:
there the two semantics differ by design (flush to zero, saturation, the all-ones binade).
"""

import numpy as np
import pytest

from chrysalis.gen.spec.formats import (
    BF16, FORMATS, FP16, FP32, FP8_E4M3, FP8_E5M2, FloatFormat, product_format)
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden import vectors

from . import exact

F32_MIN_NORMAL = np.float64(2.0 ** -126)
F32_MAX = np.float64(np.finfo(np.float32).max)


def _normal_or_zero(x):
    x = np.abs(x)
    return (x == 0) | ((x >= F32_MIN_NORMAL) & (x <= F32_MAX))


@pytest.mark.parametrize("op_fmt", [BF16, FP16])
def test_mac_equals_numpy_float32(op_fmt):
    """``acc + a*b`` equals NumPy's float32 ``acc + a*b`` over a million vectors."""
    n = 1_000_000
    v = vectors.mac_vectors(op_fmt, FP32, n, seed=11)
    got = nx.fmac(v["c"], v["a"], v["b"], op_fmt, FP32)

    a = nx.to_float(v["a"], op_fmt)
    b = nx.to_float(v["b"], op_fmt)
    c = nx.to_float(v["c"], FP32)
    with np.errstate(all="ignore"):
        ref32 = np.float32(c) + np.float32(a) * np.float32(b)
    # The float32 product is exact (at most 22 significand bits) unless out of range.
    exact_sum = c + a * b                   # float64, to find the vectors to leave out
    keep = (_normal_or_zero(a * b) & _normal_or_zero(c) & _normal_or_zero(exact_sum)
            & np.isfinite(ref32) & _normal_or_zero(ref32.astype(np.float64)))
    assert keep.sum() >= n * 0.6, "too few comparable vectors"
    ref = nx.from_float32(ref32)
    mismatch = np.flatnonzero(keep & (got != ref))
    assert mismatch.size == 0, f"{mismatch.size} mismatches, first at {mismatch[:5]}"


def test_add_equals_numpy_float32():
    n = 1_000_000
    v = vectors.add_vectors(FP32, FP32, n, seed=12)
    got = nx.fadd(v["a"], FP32, v["b"], FP32, FP32)
    x, y = nx.to_float32(v["a"]), nx.to_float32(v["b"])
    with np.errstate(all="ignore"):
        ref32 = x + y
        xd, yd = x.astype(np.float64), y.astype(np.float64)
    keep = (np.isfinite(x) & np.isfinite(y) & _normal_or_zero(xd) & _normal_or_zero(yd)
            & np.isfinite(ref32) & _normal_or_zero(ref32.astype(np.float64)))
    assert keep.sum() >= n * 0.6
    mismatch = np.flatnonzero(keep & (got != nx.from_float32(ref32)))
    assert mismatch.size == 0, f"{mismatch.size} mismatches, first at {mismatch[:5]}"


def test_convert_fp32_to_fp16_equals_numpy():
    v = vectors.convert_vectors(FP32, 300_000, seed=13, spread=18)["a"]
    x = nx.to_float32(v)
    with np.errstate(all="ignore"):
        ref = x.astype(np.float16)
    # Leave out inputs below fp16's smallest normal: IEEE rounds those on the subnormal
    # grid, Chrysalis at full precision and then flushes (docs/numerics.md).
    with np.errstate(all="ignore"):
        keep = np.isfinite(x) & np.isfinite(ref) & (
            (x == 0) | (np.abs(x.astype(np.float64)) >= 2.0 ** -14))
    assert keep.sum() > 100_000
    got = nx.fconvert(v, FP32, FP16)
    mismatch = np.flatnonzero(keep & (got != ref.view(np.uint16).astype(np.uint64)))
    assert mismatch.size == 0, f"{mismatch.size} mismatches, first at {mismatch[:5]}"


def test_convert_fp32_to_bf16_equals_rounding_by_integer_add():
    """The usual integer trick for fp32 -> bf16 RNE (add 0x7fff plus the kept LSB, then
    truncate) on normal values that do not overflow."""
    v = vectors.convert_vectors(FP32, 300_000, seed=14)["a"]
    field = (v >> np.uint64(23)) & np.uint64(0xFF)
    keep = (field > 0) & (field < 0xFE)
    ref = (v + np.uint64(0x7FFF) + ((v >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    got = nx.fconvert(v, FP32, BF16)
    assert keep.sum() > 100_000
    assert np.array_equal(got[keep], ref[keep])


@pytest.mark.parametrize("fmt", [FP8_E4M3, FP8_E5M2], ids=["e4m3", "e5m2"])
def test_multiplier_exact_over_all_fp8_pairs(fmt):
    """Every pair: the product's value is the exact float64 product, and its sign right."""
    a, b = (x.ravel().astype(np.uint64) for x in np.meshgrid(np.arange(256), np.arange(256)))
    prod = nx.fmul(a, b, fmt)
    pf = product_format(fmt)
    assert np.array_equal(nx.to_float(prod, pf), nx.to_float(a, fmt) * nx.to_float(b, fmt))
    sign = (prod >> np.uint64(pf.width - 1))
    assert np.array_equal(sign, ((a ^ b) >> np.uint64(7)) & np.uint64(1))


@pytest.mark.parametrize("fmt", [FP8_E4M3, FP8_E5M2], ids=["e4m3", "e5m2"])
def test_add_exact_over_all_fp8_pairs(fmt):
    a, b = (x.ravel().astype(np.uint64) for x in np.meshgrid(np.arange(256), np.arange(256)))
    got = nx.fadd(a, fmt, b, fmt, fmt)
    ref = np.array([exact.add(int(x), fmt, int(y), fmt, fmt) for x, y in zip(a, b)],
                   dtype=np.uint64)
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("op_fmt,acc_fmt", [
    (FP8_E4M3, FloatFormat(5, 7)), (FP8_E5M2, FP16), (BF16, FP32), (FP16, FP32),
    (FP32, FP32), (FP8_E4M3, BF16),
])
def test_mac_exact_rational(op_fmt, acc_fmt):
    v = vectors.mac_vectors(op_fmt, acc_fmt, 6000, seed=15)
    got = nx.fmac(v["c"], v["a"], v["b"], op_fmt, acc_fmt)
    ref = np.array([exact.mac(int(c), int(a), int(b), op_fmt, acc_fmt)
                    for a, b, c in zip(v["a"], v["b"], v["c"])], dtype=np.uint64)
    mismatch = np.flatnonzero(got != ref)
    assert mismatch.size == 0, f"first mismatches at {mismatch[:5]}"


@pytest.mark.parametrize("src,dst", [
    (FP32, BF16), (FP32, FP16), (FP32, FP8_E4M3), (FP16, FP8_E5M2), (BF16, FP8_E4M3),
    (BF16, FP32), (FP8_E4M3, FP16), (FP16, BF16),
])
def test_convert_exact_rational(src, dst):
    v = vectors.convert_vectors(src, 6000, seed=16)["a"]
    got = nx.fconvert(v, src, dst)
    ref = np.array([exact.convert(int(x), src, dst) for x in v], dtype=np.uint64)
    assert np.array_equal(got, ref)


# --- the documented edge rules, one by one -------------------------------------------

def _b(fmt, value):
    return nx.from_float(np.array([value]), fmt)


def test_signed_zero_rules():
    pz, nz, one = _b(FP32, 0.0), _b(FP32, -0.0), _b(FP32, 1.0)
    assert nx.fadd(nz, FP32, nz, FP32, FP32)[0] == 0x8000_0000      # -0 + -0 = -0
    assert nx.fadd(pz, FP32, nz, FP32, FP32)[0] == 0                # +0 + -0 = +0
    neg_one = _b(FP32, -1.0)
    assert nx.fadd(one, FP32, neg_one, FP32, FP32)[0] == 0          # x - x = +0
    # acc = -0, product = -0 (zero times negative): -0.
    assert nx.fmac(nz, _b(BF16, 0.0), _b(BF16, -2.0), BF16, FP32)[0] == 0x8000_0000


def test_subnormal_inputs_read_as_zero():
    subnormal = np.array([0x0000_0001, 0x8040_0000], dtype=np.uint64)
    one = np.repeat(_b(FP32, 1.0), 2)
    assert np.array_equal(nx.fadd(subnormal, FP32, one, FP32, FP32), one)
    assert np.array_equal(nx.fconvert(subnormal, FP32, BF16), np.array([0, 0x8000]))


def test_underflow_flushes_to_signed_zero():
    tiny = _b(FP32, 2.0 ** -100)
    prod = nx.fmac(_b(FP32, -0.0), _b(BF16, -(2.0 ** -100)), _b(BF16, 2.0 ** -100), BF16, FP32)
    assert prod[0] == 0x8000_0000                                    # -2**-200 -> -0
    assert nx.fconvert(tiny, FP32, FP16)[0] == 0


def test_overflow_saturates_to_largest_value():
    big = np.array([FP32.max_bits], dtype=np.uint64)
    assert nx.fadd(big, FP32, big, FP32, FP32)[0] == FP32.max_bits
    assert nx.fconvert(_b(FP32, -1e10), FP32, FP16)[0] == 0x8000 | FP16.max_bits
    assert nx.to_float(np.array([FP8_E4M3.max_bits]), FP8_E4M3)[0] == 480.0


def test_rounding_ties_to_even():
    # 1 + 2**-8 is halfway between two bf16 neighbours of 1: it rounds to 1 (even).
    assert nx.fconvert(_b(FP32, 1 + 2.0 ** -8), FP32, BF16)[0] == 0x3F80
    # 1 + 3 * 2**-8 is halfway between 1+2**-7 (odd) and 1+2**-6: it rounds up.
    assert nx.fconvert(_b(FP32, 1 + 3 * 2.0 ** -8), FP32, BF16)[0] == 0x3F82


def test_all_ones_exponent_is_an_ordinary_binade():
    top = np.array([0x7F80_0000], dtype=np.uint64)                 # IEEE would read +Inf
    assert nx.to_float(top, FP32)[0] == 2.0 ** 128
    assert nx.fadd(top, FP32, _b(FP32, -(2.0 ** 127)), FP32, FP32)[0] == 0x7F00_0000


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_round_trip_through_wider_format_is_exact(name):
    fmt = FORMATS[name]
    values = vectors.random_values(fmt, 5000, np.random.default_rng(3))
    zero = ((values >> np.uint64(fmt.man_bits)) & np.uint64((1 << fmt.exp_bits) - 1)) == 0
    values = np.where(zero, values & np.uint64(1 << (fmt.width - 1)), values)
    wide = FloatFormat(fmt.exp_bits + 1, min(52, fmt.man_bits + 4))
    back = nx.fconvert(nx.fconvert(values, fmt, wide), wide, fmt)
    assert np.array_equal(back, values)
