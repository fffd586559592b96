"""Bit-exact golden model of Chrysalis floating-point arithmetic (pure NumPy).

Values travel as unsigned integer bit patterns (``numpy.uint64`` arrays); every function is
vectorized. The semantics are those of ``docs/numerics.md``: one rounding, to nearest with ties
to even; zero for every exponent code 0 (inputs and results: subnormals are flushed); no Inf or
NaN (exponent code all-ones is an ordinary binade); results beyond the largest finite value
saturate to it.

The algorithms follow the RTL datapath step by step (the same alignment window, guard bits and
sticky jam), so that a disagreement is a bug in one of them and not a matter of taste. That
they are also *correctly rounded* is checked against NumPy's own float32 and float16
arithmetic and against exact rational arithmetic in the tests.
"""

import numpy as np

from chrysalis.gen.spec.formats import FloatFormat, product_format

__all__ = [
    "GUARD_BITS", "adder_window", "decode", "round_pack",
    "fmul", "fadd", "fmac", "fconvert",
    "to_float", "from_float", "from_float32", "to_float32", "fp32_bits",
]

#: Bits kept below the aligned significands in the adder (guard, round and sticky room).
GUARD_BITS = 3

_U = np.uint64
_I = np.int64


def _bits(x):
    return np.asarray(x, dtype=np.uint64)


def adder_window(a_fmt, b_fmt, out_fmt):
    """Width ``W`` to which the adder aligns both significands before adding.

    The widest of the two operand precisions and the result precision, so that no operand
    bit is lost before alignment and the result has at least two bits below its rounding
    position (needed for the sticky jam to round correctly).
    """
    return max(a_fmt.precision, b_fmt.precision, out_fmt.precision)


def decode(bits, fmt):
    """Split bit patterns into ``(sign, exponent, significand, zero)``.

    ``significand`` includes the implicit one (``fmt.precision`` bits) and is 0 for a zero;
    ``exponent`` is unbiased: the value is ``significand * 2**(exponent - fmt.man_bits)``.
    """
    bits = _bits(bits)
    m, e = fmt.man_bits, fmt.exp_bits
    sign = ((bits >> _U(e + m)) & _U(1)).astype(_I)
    field = ((bits >> _U(m)) & _U((1 << e) - 1)).astype(_I)
    man = (bits & _U((1 << m) - 1)).astype(_I)
    zero = field == 0
    sig = np.where(zero, 0, man | (1 << m))
    return sign, field - fmt.bias, sig, zero


def _pack(sign, exponent, sig, fmt):
    """Bit pattern of a normalized value: ``sig`` has ``fmt.precision`` bits, in range."""
    m = fmt.man_bits
    field = (exponent + fmt.bias).astype(_U)
    man = (sig & ((1 << m) - 1)).astype(_U)
    return (sign.astype(_U) << _U(fmt.exp_bits + m)) | (field << _U(m)) | man


def _shift_right(x, n):
    """``x >> n`` for arrays, defined (as 0) for shifts of 63 and more."""
    n = np.asarray(n, dtype=_I)
    return np.where(n >= 63, 0, x >> np.minimum(n, 62))


def round_pack(sign, exponent, sig, width, zero, zero_sign, fmt):
    """Round a normalized significand to ``fmt`` (RNE), flush, saturate and pack.

    Parameters
    ----------
    sign, exponent : int arrays
        Sign and unbiased exponent of the value's leading bit.
    sig : int array
        Significand with its leading one at bit ``width - 1`` (ignored where ``zero``); any
        sticky information is already jammed into its least significant bit.
    width : int
        Width of ``sig``.
    zero : bool array
        The value is exactly zero; its sign is then ``zero_sign``.
    fmt : FloatFormat
        Result format.
    """
    p = fmt.precision
    sig = np.asarray(sig, dtype=_I)
    if width < p + 2:
        # Pad on the right: the value is exact, the rounding below then changes nothing.
        sig = sig << (p + 2 - width)
        width = p + 2
    drop = width - p
    keep = sig >> drop
    round_bit = (sig >> (drop - 1)) & 1
    sticky = (sig & ((1 << (drop - 1)) - 1)) != 0
    keep = keep + (round_bit & (sticky | (keep & 1)).astype(_I))
    carry = keep >> p
    keep = keep >> carry
    exponent = np.asarray(exponent, dtype=_I) + carry

    under = zero | (exponent < fmt.emin)
    over = ~under & (exponent > fmt.emax)
    out_sign = np.where(zero, zero_sign, sign).astype(_I)
    safe_exp = np.clip(exponent, fmt.emin, fmt.emax)
    packed = _pack(out_sign, safe_exp, keep, fmt)
    sign_bit = out_sign.astype(_U) << _U(fmt.width - 1)
    packed = np.where(over, sign_bit | _U(fmt.max_bits), packed)
    packed = np.where(under, sign_bit, packed)
    return packed


def fmul(a, b, fmt):
    """Exact product of two ``fmt`` values, as bits of ``product_format(fmt)``."""
    pf = product_format(fmt)
    sa, ea, ma, za = decode(a, fmt)
    sb, eb, mb, zb = decode(b, fmt)
    sign = sa ^ sb
    prod = ma * mb                       # 2p bits; leading one at 2m+1 or 2m
    top = (prod >> (2 * fmt.man_bits + 1)) & 1
    sig = np.where(top == 1, prod, prod << 1)
    exponent = ea + eb + top
    zero = za | zb
    packed = _pack(sign, np.where(zero, pf.emin, exponent), sig, pf)
    return np.where(zero, sign.astype(_U) << _U(pf.width - 1), packed)


def _add_unpacked(x, y, window, out_fmt):
    """Correctly rounded ``x + y`` of two decoded operands; see :func:`fadd`.

    ``x`` and ``y`` are ``(sign, exponent, significand, zero, precision)`` tuples.
    """
    g = GUARD_BITS
    (sx, ex, mx, zx, px), (sy, ey, my, zy, py) = x, y
    # Left-align both significands in a window of W bits, then add the guard bits.
    ax = mx << (window - px + g)
    ay = my << (window - py + g)
    x_big = zy | (~zx & (ex >= ey))
    s_big, s_small = np.where(x_big, sx, sy), np.where(x_big, sy, sx)
    e_big, e_small = np.where(x_big, ex, ey), np.where(x_big, ey, ex)
    m_big, m_small = np.where(x_big, ax, ay), np.where(x_big, ay, ax)
    # Alignment: shift the smaller operand right, jamming the lost bits into its LSB.
    d = np.clip(e_big - e_small, 0, window + g + 1)
    d = np.where(zx | zy, window + g + 1, d)
    kept = _shift_right(m_small, d)
    lost = m_small & ((np.left_shift(_I(1), d)) - 1)
    m_small = kept | (lost != 0)

    sub = s_big != s_small
    r = np.where(sub, m_big - m_small, m_big + m_small)
    sign = np.where(r < 0, s_small, s_big)
    r = np.abs(r)
    # Normalize: leading one to bit W+G (the top of a W+G+1 bit field).
    width = window + g + 1
    zero = r == 0
    nz = np.where(zero, 1, r)
    lead = np.floor(np.log2(nz.astype(np.float64))).astype(_I)
    # float64 log2 can be off by one near powers of two for 53+ bit values: fix it exactly.
    lead = np.where((nz >> lead) == 0, lead - 1, lead)
    lead = np.where((nz >> lead) >= 2, lead + 1, lead)
    lz = (width - 1) - lead
    norm = np.where(zero, 0, r << np.maximum(lz, 0))
    exponent = e_big + 1 - lz
    zero_sign = np.where(zx & zy, sx & sy, 0)
    return round_pack(sign, exponent, norm, width, zero, zero_sign, out_fmt)


def fadd(a, a_fmt, b, b_fmt, out_fmt):
    """``a + b`` rounded once to ``out_fmt``; the operands may be of different formats.

    An exact zero result is ``+0`` unless both operands are ``-0`` (round to nearest).
    """
    window = adder_window(a_fmt, b_fmt, out_fmt)
    x = decode(a, a_fmt) + (a_fmt.precision,)
    y = decode(b, b_fmt) + (b_fmt.precision,)
    return _add_unpacked(x, y, window, out_fmt)


def fmac(acc, a, b, op_fmt, acc_fmt):
    """``acc + a*b`` with the product exact and one rounding to ``acc_fmt``."""
    pf = product_format(op_fmt)
    return fadd(acc, acc_fmt, fmul(a, b, op_fmt), pf, acc_fmt)


def fconvert(x, src, dst):
    """Convert ``src`` bit patterns to ``dst``: exact when ``dst`` is wider, else RNE."""
    sign, exponent, sig, zero = decode(x, src)
    return round_pack(sign, exponent, sig, src.precision, zero, sign, dst)


def to_float(bits, fmt):
    """The values of bit patterns as float64 (exact for every format up to fp32-sized)."""
    sign, exponent, sig, zero = decode(bits, fmt)
    value = np.ldexp(sig.astype(np.float64), (exponent - fmt.man_bits).astype(np.int32))
    return np.where(sign == 1, -value, value)


def from_float32(values):
    """Bit patterns of float32 values, read as fp32 (subnormal inputs then read as zero)."""
    return np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)


def fp32_bits(value):
    """The fp32 bit pattern of one Python number (rounded to float32 first), as an ``int``."""
    return int(from_float32(np.float32(value)))


def to_float32(bits):
    """fp32 bit patterns as a float32 array (the all-ones binade shows as Inf/NaN there)."""
    return _bits(bits).astype(np.uint32).view(np.float32)


def from_float(values, fmt):
    """Round float values to ``fmt`` (through float32 first: exact for float32 inputs)."""
    from chrysalis.gen.spec.formats import FP32
    return fconvert(from_float32(values), FP32, fmt)
