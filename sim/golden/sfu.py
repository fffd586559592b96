"""Special functions for the softmax cross-entropy gradient: fp32 ``exp`` and reciprocal.

Bit-exact golden model of ``hw.sfu.SpecialFunctionUnit`` and ``hw.sfu.PipelinedSFU`` (pure
NumPy, vectorized over uint64 arrays of fp32 bit patterns). Both functions are built only from operations whose bit-exact
semantics ``docs/numerics.md`` already defines:

* the fp32 fused multiply-add ``fmac(c, a, b, FP32, FP32)`` = ``c + a*b``, the product exact
  and the sum rounded once (RNE, flush, saturate);
* comparisons, integer and bit manipulation (clamping, exponent-field arithmetic, the exact
  conversion of a small integer to fp32, table look-up);
* the constants of :mod:`chrysalis.gen.spec.sfu`, each written as its fp32 bit pattern.
  The RTL imports them from there too, so the two cannot drift apart.

The order of the FMAs is part of the definition: it is written out in the functions below,
in ``docs/special_functions.md`` and, as the sequencer's microprogram, in ``hw/sfu.py``.

``exp(x)``
    Cody-Waite range reduction ``x = k*ln2 + r``, ``|r| <= ln2/2``; a degree-6 polynomial
    ``p(r) ~ e**r`` (fp32 coefficients, minimax relative error 2**-28.3 on that interval);
    the result ``p * 2**k`` by adding ``k`` to ``p``'s exponent field. Below ``2**-126`` the
    result is ``+0``, above the largest value it saturates to ``0x7FFFFFFF``.
``reciprocal(x)``
    A 64-entry seed table indexed by the top six mantissa bits, two Newton-Raphson steps
    on the significand ``m`` in ``[1, 2)``, then the exponent ``-e`` and the sign put back.
    ``1/(+-0)`` is the saturated largest value with the sign of the zero; results below
    ``2**-126`` flush to a zero with the sign of ``x``.

Both are faithfully rounded: never more than 1 ulp from the correctly rounded result, at
most 0.891 ulp (exp, every fp32 argument in [-104, 89.5]) and 0.557 ulp (reciprocal, every
significand) from the exact value (``benchmarks/sfu_error.py``,
``docs/special_functions.md``).
"""

import numpy as np

from chrysalis.gen.spec.formats import FP32
from chrysalis.gen.spec.sfu import (
    EXP_CLAMP, EXP_FMAS, EXP_POLY, EXP_SHIFTER, LOG2E, NEG_LN2_HI, NEG_LN2_LO, ONE,
    RECIP_FMAS, RECIP_TABLE, RECIP_TABLE_BITS, SATURATED)
from chrysalis.sim.golden.numerics import fmac

__all__ = [
    "ONE", "SATURATED", "LOG2E", "EXP_SHIFTER", "EXP_CLAMP", "NEG_LN2_HI", "NEG_LN2_LO",
    "EXP_POLY", "RECIP_TABLE_BITS", "RECIP_TABLE", "EXP_FMAS", "RECIP_FMAS",
    "int_to_fp32", "exp_reduce", "exp_poly", "scale", "recip_seed", "exp", "reciprocal",
    "edge_inputs", "random_inputs",
]

_U = np.uint64
_I = np.int64

#: Elements per block in :func:`exp` and :func:`reciprocal`: NumPy runs several times
#: faster on blocks that stay in cache than on arrays of millions (the results are the same).
BLOCK = 1 << 15


def _bits(x):
    return np.asarray(x, dtype=_U) & _U(0xFFFFFFFF)


def _blockwise(function, bits):
    """``function`` applied to ``bits`` in blocks of :data:`BLOCK` elements, same shape."""
    flat = _bits(bits).ravel()
    if flat.size <= BLOCK:
        return function(flat).reshape(np.shape(bits))
    out = np.empty_like(flat)
    for start in range(0, flat.size, BLOCK):
        out[start:start + BLOCK] = function(flat[start:start + BLOCK])
    return out.reshape(np.shape(bits))


def int_to_fp32(k):
    """fp32 bit patterns of small integers (``|k| < 2**24``: exact); ``0`` gives ``+0``."""
    k = np.asarray(k, dtype=_I)
    return np.abs(k).astype(np.float32).view(np.uint32).astype(_U) | (
        (k < 0).astype(_U) << _U(31))


def _fma(c, a, b):
    """``c + a*b`` in fp32: the one arithmetic operation used here (``sim.golden.numerics.fmac``)."""
    return fmac(c, a, b, FP32, FP32)


def _const(value, like):
    return np.full(np.shape(like), value, dtype=_U)


def exp_reduce(x):
    """Range reduction of :func:`exp`: ``(k, r)`` with ``x ~ k*ln2 + r``.

    Returns the integer ``k`` (int64 array) and ``r`` (fp32 bits); three FMAs.
    """
    x = _bits(x)
    sign = x >> _U(31)
    xc = (sign << _U(31)) | np.minimum(x & _U(0x7FFFFFFF), _U(EXP_CLAMP))
    # FMA 1: t = SHIFTER + x * LOG2E, an integer-valued fp32 in [2**23, 2**24).
    t = _fma(_const(EXP_SHIFTER, x), xc, _const(LOG2E, x))
    k = (t & _U(0x7FFFFF)).astype(_I) - 0x400000
    kf = int_to_fp32(k)
    # FMA 2 and 3: r = (x - k*LN2_HI) - k*LN2_LO; the first is exact.
    r1 = _fma(xc, kf, _const(NEG_LN2_HI, x))
    r = _fma(r1, kf, _const(NEG_LN2_LO, x))
    return k, r


def exp_poly(r):
    """``p(r) ~ exp(r)`` by Horner's rule in six FMAs (fp32 bits in, fp32 bits out)."""
    r = _bits(r)
    p1, p2, p3, p4, p5, p6 = (_const(c, r) for c in EXP_POLY)
    q = _fma(p5, p6, r)        # FMA 4: P5 + P6 r
    q = _fma(p4, q, r)         # FMA 5: P4 + q r
    q = _fma(p3, q, r)         # FMA 6: P3 + q r
    q = _fma(p2, q, r)         # FMA 7: P2 + q r
    q = _fma(p1, q, r)         # FMA 8: P1 + q r
    return _fma(_const(ONE, r), q, r)   # FMA 9: 1 + q r


def scale(p, n, sign=0):
    """``p * 2**n`` by exponent arithmetic: flush below ``2**-126``, saturate above the top.

    ``p`` is a normal fp32 (bits), ``n`` an integer array, ``sign`` the result's sign bit
    (a flushed result is a zero of that sign, a saturated one the largest value).
    """
    p = _bits(p)
    field = ((p >> _U(23)) & _U(0xFF)).astype(_I) + np.asarray(n, dtype=_I)
    sign = np.asarray(sign, dtype=_U) << _U(31)
    packed = sign | (np.clip(field, 0, 255).astype(_U) << _U(23)) | (p & _U(0x7FFFFF))
    packed = np.where(field < 1, sign, packed)
    return np.where(field > 255, sign | _U(SATURATED), packed)


def exp(bits):
    """``e**x`` of fp32 bit patterns, as fp32 bit patterns (uint64 array).

    Inputs are clamped to ``[-128, 128]``; ``exp(+-0)`` is exactly 1; results below
    ``2**-126`` (x below about -87.34) are ``+0``; results above the largest value (x above
    about 89.42) are ``0x7FFFFFFF``. Nine FMAs, in the order of :func:`exp_reduce` and
    :func:`exp_poly`.
    """
    return _blockwise(_exp, bits)


def _exp(bits):
    k, r = exp_reduce(bits)
    return scale(exp_poly(r), k)


def recip_seed(bits):
    """The table seed ``y0 ~ 1/m`` for the significand ``m`` of each fp32 input."""
    table = np.array(RECIP_TABLE, dtype=_U)
    return table[(_bits(bits) >> _U(23 - RECIP_TABLE_BITS)) & _U((1 << RECIP_TABLE_BITS) - 1)]


def reciprocal(bits):
    """``1/x`` of fp32 bit patterns, as fp32 bit patterns (uint64 array).

    ``1/(+-0)`` is ``+-0x7FFFFFFF`` (saturated, with the sign of the zero); results below
    ``2**-126`` (``|x| > 2**126``) are zeros with the sign of ``x``. Four FMAs on the
    significand ``m`` in ``[1, 2)``: ``e0 = 1 - m*y0``, ``y1 = y0 + y0*e0``,
    ``e1 = 1 - m*y1``, ``y2 = y1 + y1*e1``; then the exponent.
    """
    return _blockwise(_reciprocal, bits)


def _reciprocal(bits):
    x = _bits(bits)
    sign = x >> _U(31)
    field = ((x >> _U(23)) & _U(0xFF)).astype(_I)
    neg_m = _U(0xBF800000) | (x & _U(0x7FFFFF))   # -m, m = 1.mantissa in [1, 2)
    one = _const(ONE, x)
    y0 = recip_seed(x)
    e0 = _fma(one, neg_m, y0)       # FMA 1: 1 - m*y0
    y1 = _fma(y0, y0, e0)           # FMA 2: y0 + y0*e0
    e1 = _fma(one, neg_m, y1)       # FMA 3: 1 - m*y1
    y2 = _fma(y1, y1, e1)           # FMA 4: y1 + y1*e1, in (0.5, 1]
    # 1/x = y2 * 2**-(field - 127): subtract the unbiased exponent from y2's field.
    result = scale(y2, 127 - field, sign)
    return np.where(field == 0, (sign << _U(31)) | _U(SATURATED), result)


# ----------------------------------------------------------------------------------------
# Test vectors (shared by the Amaranth and cocotb tests and the benchmark)
# ----------------------------------------------------------------------------------------

def edge_inputs(op):
    """Edge arguments of ``exp`` (``op`` 0) or ``reciprocal`` (``op`` 1), as fp32 bits.

    Both: zeros of both signs and zero patterns with mantissa bits, the smallest normals,
    one and its neighbours, the largest values and the all-ones-exponent binade. exp: the
    clamp (+-128), the flush (about -87.34) and saturation (about 89.42) thresholds and
    their neighbours, half-way points of the reduction (x*log2(e) = n + 1/2). Reciprocal:
    powers of two, every seed-table boundary, the flush threshold 2**126.
    """
    common = [0x00000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x00800001, 0x3F7FFFFF,
              0x3F800000, 0x3F800001, 0x7F000000, 0x7F7FFFFF, 0x7F800000, 0x7F800001,
              0x7FC00000, 0x7FFFFFFF]
    common = np.array(common + [c | 0x80000000 for c in common], dtype=_U)
    if op == 0:
        points = np.array([128.0, 127.99999, 128.00002, 1e10, 88.72283, 88.72284, 89.0,
                           89.41598, 89.416, 89.42, -87.33655, -87.3365, -87.34, -87.0,
                           -103.97, -104.0, -126.0, -150.0, 0.5, 1.0, 1e-8, 2.0 ** -24,
                           0.34657359, 0.3465736, 0.693147, 0.6931472, 1.0397208, 50.0],
                          dtype=np.float64)
        halves = (np.arange(-185, 186, 5) + 0.5) * np.log(2)
        values = np.concatenate([points, -points, halves])
        bits = values.astype(np.float32).view(np.uint32).astype(_U)
        near = np.concatenate([bits, bits + _U(1), bits - _U(1)]) & _U(0xFFFFFFFF)
        return np.concatenate([common, near])
    if op == 1:
        fields = np.array([1, 2, 100, 126, 127, 128, 200, 252, 253, 254, 255], dtype=_U)
        grid = (fields[:, None] << _U(23)) | np.array([0, 1, 0x400000, 0x7FFFFF], dtype=_U)
        # Every seed-table boundary and the mantissa just below it, at varied exponents.
        index = np.arange(128, dtype=_U)
        mans = ((index >> _U(1)) << _U(17)) - (index & _U(1))
        bounds = (fields[index % _U(len(fields))] << _U(23)) | (mans & _U(0x7FFFFF))
        bits = np.concatenate([grid.ravel(), bounds])
        return np.concatenate([common, bits, bits[::3] | _U(0x80000000)])
    raise ValueError(f"op must be 0 (exp) or 1 (reciprocal), not {op!r}")


def random_inputs(op, count, seed):
    """``count`` seeded fp32 arguments for ``op``: the edges of :func:`edge_inputs` first (a
    seeded half of ``count`` of them when they are more), then a mix of uniform bit patterns
    and values from the range that matters (exp: uniform in [-104, 90]; reciprocal:
    uniform mantissas with exponents of magnitude up to 40)."""
    rng = np.random.default_rng(seed)
    edges = edge_inputs(op)
    if len(edges) > count:
        edges = np.sort(rng.choice(edges, count // 2, replace=False))
    rest = count - len(edges)
    uniform = rng.integers(0, 1 << 32, rest // 4, dtype=np.uint64)
    n = rest - len(uniform)
    if op == 0:
        values = rng.uniform(-104.0, 90.0, n).astype(np.float32)
        focused = values.view(np.uint32).astype(_U)
    else:
        sign = rng.integers(0, 2, n).astype(_U)
        field = rng.integers(127 - 40, 127 + 41, n).astype(_U)
        man = rng.integers(0, 1 << 23, n).astype(_U)
        focused = (sign << _U(31)) | (field << _U(23)) | man
    mixed = np.concatenate([uniform, focused])
    rng.shuffle(mixed)
    return np.concatenate([edges, mixed])
