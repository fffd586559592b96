"""The special functions' golden model (``sim.golden.sfu``) against an outside reference.

The reference is NumPy: ``np.exp`` and ``1 / x`` in float64 (far more accurate than fp32),
rounded to fp32 by NumPy's own float32 conversion, with the project's flush and saturation
rules applied (``docs/numerics.md``). These are **measured error bounds, not bit-exact
comparisons**: exp and the reciprocal are approximations, and the tests assert that their
error stays within the bound documented in ``docs/special_functions.md`` — at most one unit
in the last place from the correctly rounded result, and less than one ulp from the exact
value (the results are faithfully rounded). That the RTL equals this model bit for bit is
checked in ``tests/hw/test_sfu.py`` and ``tests/sim/verify/test_cocotb_sfu.py``.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from chrysalis.sim.golden import sfu
from chrysalis.sim.golden.reference import round_fp32
from chrysalis.sim.golden.numerics import to_float
from chrysalis.gen.spec.formats import FP32

#: The documented bound: distance in ulps from the correctly rounded result.
MAX_ULPS = 1

_U = np.uint64


def f32_bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32).astype(_U)


def ulp_distance(got, ref):
    """Distance in fp32 steps between two bit patterns of the same sign (zero: both ways)."""
    got, ref = np.asarray(got, dtype=_U), np.asarray(ref, dtype=_U)
    mag = lambda bits: (bits & _U(0x7FFFFFFF)).astype(np.int64)  # noqa: E731
    same_sign = ((got ^ ref) >> _U(31) == 0) | (mag(got) == 0) & (mag(ref) == 0)
    return np.where(same_sign, np.abs(mag(got) - mag(ref)), np.iinfo(np.int64).max)


def exact_ulp_error(got, exact):
    """``|got - exact|`` in ulps of ``exact`` (float64, on the unbounded-exponent grid)."""
    value = to_float(got, FP32)
    exponent = np.floor(np.log2(np.abs(exact)))
    return np.abs(value - exact) / np.ldexp(1.0, (exponent - 23).astype(np.int32))


def check(got, exact, inputs, limit=MAX_ULPS):
    """Assert ``got`` is within ``limit`` ulps of the rounded reference and return the
    distances."""
    distance = ulp_distance(got, round_fp32(exact))
    worst = int(np.argmax(distance))
    assert distance[worst] <= limit, (
        f"x = {int(inputs[worst]):#010x}: got {int(got[worst]):#010x}, reference "
        f"{int(round_fp32(exact)[worst]):#010x} ({exact[worst]!r}), {distance[worst]} ulps")
    return distance


def test_reference_rounding_is_numpys():
    rng = np.random.default_rng(1)
    v = rng.uniform(-1, 1, 100_000) * 2.0 ** rng.integers(-120, 120, 100_000)
    v = v[np.abs(v) >= 2.0 ** -126]       # NumPy's subnormals are flushed here, by design
    np.testing.assert_array_equal(round_fp32(v), f32_bits(v))
    assert round_fp32(2.0 ** 128) == 0x7F800000           # the top binade is ordinary
    assert round_fp32(2.0 ** 129) == 0x7FFFFFFF           # saturation
    assert round_fp32(-(2.0 ** -127)) == 0x80000000       # flush, with the sign
    assert round_fp32(2.0 ** -126 * (1 - 2.0 ** -26)) == 0x00800000   # rounds up: kept


# ---------------------------------------------------------------------------------------
# Constants: each hex pattern is what its comment says.
# ---------------------------------------------------------------------------------------

LN2 = Fraction("0.6931471805599453094172321214581765680755001343602552541206800094933936")


def test_constants():
    value = lambda bits: float(to_float(np.uint64(bits), FP32))  # noqa: E731
    assert sfu.LOG2E == f32_bits(1 / math.log(2))
    assert sfu.EXP_SHIFTER == f32_bits(1.5 * 2 ** 23)
    assert sfu.EXP_CLAMP == f32_bits(128.0)
    assert sfu.ONE == f32_bits(1.0) and sfu.SATURATED == 0x7FFFFFFF
    hi = -value(sfu.NEG_LN2_HI)
    assert sfu.NEG_LN2_HI == f32_bits(-float(LN2))
    assert sfu.NEG_LN2_LO == f32_bits(-float(LN2 - Fraction(hi)))
    expected = [f32_bits(128 / (129 + 2 * i)) for i in range(64)]
    assert list(sfu.RECIP_TABLE) == expected
    assert len(sfu.RECIP_TABLE) == 1 << sfu.RECIP_TABLE_BITS


def test_polynomial_relative_error():
    """p(r) with the fp32 coefficients, evaluated exactly enough (float64), on |r| <= ln2/2."""
    coefficients = [1.0] + [float(to_float(np.uint64(c), FP32)) for c in sfu.EXP_POLY]
    r = np.linspace(-0.3466, 0.3466, 200_001)
    p = np.polynomial.polynomial.polyval(r, coefficients)
    assert np.max(np.abs(p / np.exp(r) - 1)) < 2.0 ** -28.2


def test_int_to_fp32():
    k = np.arange(-300, 301)
    np.testing.assert_array_equal(sfu.int_to_fp32(k), f32_bits(k))
    assert sfu.int_to_fp32(0) == 0   # +0, never -0


# ---------------------------------------------------------------------------------------
# exp
# ---------------------------------------------------------------------------------------

def test_exp_softmax_range_dense():
    """Dense sweep of [-104, 0] (softmax arguments are <= 0 after the max is subtracted),
    then (0, 89.5]: up to where the result saturates."""
    x = np.concatenate([np.linspace(-104, 0, 1_000_000), np.linspace(0, 89.5, 300_000)])
    xs = f32_bits(x)
    exact = np.exp(x.astype(np.float32).astype(np.float64))
    got = sfu.exp(xs)
    distance = check(got, exact, xs)
    normal = (exact >= 2.0 ** -126) & (exact < FP32.max_value)
    assert np.max(exact_ulp_error(got[normal], exact[normal])) < 1
    assert np.mean(distance == 0) > 0.9          # mostly correctly rounded
    assert np.all(got[exact < 2.0 ** -127] == 0)


def test_exp_every_float_near_the_thresholds():
    """Every fp32 argument around the flush (-87.34) and saturation (89.42) thresholds and
    the IEEE overflow point (88.72): no disagreement about flushing or saturating."""
    for lo, hi in ((-87.5, -87.2), (88.6, 88.8), (89.3, 89.5)):
        a, b = sorted(int(f32_bits(v)) for v in (lo, hi))
        xs = np.arange(a, b + 1, dtype=_U)
        x = to_float(xs, FP32)
        check(sfu.exp(xs), np.exp(x), xs)


def test_exp_random_and_small_arguments():
    rng = np.random.default_rng(2)
    # Small arguments of every magnitude, where exp(x) is 1 + x + ... and k is 0.
    x = rng.uniform(-1, 1, 200_000) * 2.0 ** rng.integers(-40, 0, 200_000)
    xs = f32_bits(x)
    check(sfu.exp(xs), np.exp(to_float(xs, FP32)), xs)
    xs = sfu.random_inputs(0, 100_000, seed=3)
    with np.errstate(over="ignore"):
        check(sfu.exp(xs), np.exp(to_float(xs, FP32)), xs)


def test_exp_edges():
    exp = lambda bits: int(sfu.exp(np.uint64(bits)))  # noqa: E731
    one = sfu.ONE
    assert exp(0x00000000) == one and exp(0x80000000) == one            # exp(+-0) = 1
    assert exp(0x00000001) == one and exp(0x807FFFFF) == one            # zero patterns
    assert exp(f32_bits(2.0 ** -26)) == one and exp(f32_bits(-(2.0 ** -26))) == one
    assert exp(f32_bits(1.0)) == f32_bits(math.e)
    # Saturation: every argument from 89.42 up, the top binade included.
    for x in (89.42, 100.0, 128.0, 1e30, 3e38):
        assert exp(f32_bits(x)) == sfu.SATURATED
    for bits in (0x7F800000, 0x7FC00000, 0x7FFFFFFF):
        assert exp(bits) == sfu.SATURATED
    # IEEE's overflow is an ordinary value here: exp(88.8) lies in the top binade.
    assert exp(f32_bits(88.8)) >> 23 == 255
    # Flush: the result is +0 from about -87.34 down, the most negative values included.
    for x in (-87.34, -90.0, -103.97, -104.0, -128.0, -1e30):
        assert exp(f32_bits(x)) == 0
    for bits in (0xFF800000, 0xFFFFFFFF):
        assert exp(bits) == 0
    assert exp(f32_bits(-87.33)) == f32_bits(np.exp(np.float64(np.float32(-87.33))))


# ---------------------------------------------------------------------------------------
# reciprocal
# ---------------------------------------------------------------------------------------

def test_reciprocal_every_mantissa_of_one_binade():
    """All 2**23 significands: the error depends on the significand only (the exponent is
    put back exactly), so this covers every input whose result is normal."""
    correct = 0
    for start in range(0, 1 << 23, 1 << 18):        # blocks: faster than one huge array
        xs = _U(0x3F800000 + start) + np.arange(1 << 18, dtype=_U)
        got = sfu.reciprocal(xs)
        exact = 1 / to_float(xs, FP32)
        correct += np.count_nonzero(check(got, exact, xs) == 0)
        assert np.max(exact_ulp_error(got, exact)) < 0.6
    assert correct > 0.99 * (1 << 23)


def test_reciprocal_random_exponents():
    rng = np.random.default_rng(4)
    count = 300_000
    sign = rng.integers(0, 2, count).astype(_U)
    field = rng.integers(1, 256, count).astype(_U)
    man = rng.integers(0, 1 << 23, count).astype(_U)
    xs = (sign << _U(31)) | (field << _U(23)) | man
    got = sfu.reciprocal(xs)
    check(got, 1 / to_float(xs, FP32), xs)
    # Same significand, any exponent: the same significand bits of the result.
    normal = (got >> _U(23)) & _U(0xFF) != 0
    one_binade = sfu.reciprocal(_U(0x3F800000) | man)
    np.testing.assert_array_equal((got & _U(0x7FFFFF))[normal], (one_binade & _U(0x7FFFFF))[normal])


def test_reciprocal_edges():
    rec = lambda bits: int(sfu.reciprocal(np.uint64(bits)))  # noqa: E731
    # 1/+-0 saturates, with the sign of the zero (zero patterns with mantissa bits too).
    assert rec(0x00000000) == 0x7FFFFFFF and rec(0x80000000) == 0xFFFFFFFF
    assert rec(0x007FFFFF) == 0x7FFFFFFF and rec(0x80000001) == 0xFFFFFFFF
    # Powers of two are exact, from 2**-126 (result 2**126) to 2**126 (result 2**-126).
    for n in range(-126, 127):
        assert rec(f32_bits(2.0 ** n)) == f32_bits(2.0 ** -n)
        assert rec(f32_bits(-(2.0 ** n))) == f32_bits(-(2.0 ** -n))
    # Above 2**126 the result is below 2**-126: a zero with the sign of x.
    assert rec(f32_bits(2.0 ** 126 * 1.0000001)) == 0
    assert rec(f32_bits(-(2.0 ** 127))) == 0x80000000
    for bits in (0x7F800000, 0x7FFFFFFF):   # the all-ones binade: ordinary values
        assert rec(bits) == 0 and rec(bits | 0x80000000) == 0x80000000
    assert rec(f32_bits(3.0)) == f32_bits(1 / 3)
    assert rec(f32_bits(-10.0)) == f32_bits(-0.1)


def test_random_inputs_are_seeded_and_hold_the_edges():
    for op in (0, 1):
        first, again = sfu.random_inputs(op, 2000, 5), sfu.random_inputs(op, 2000, 5)
        np.testing.assert_array_equal(first, again)
        assert len(first) == 2000 and set(sfu.edge_inputs(op).tolist()) <= set(first.tolist())
        assert len(sfu.random_inputs(op, 100, 5)) == 100
    with pytest.raises(ValueError, match=r", not 2$"):
        sfu.edge_inputs(2)
