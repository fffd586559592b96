"""An exact-arithmetic reference for the floating-point semantics, from their definition.

Written from ``docs/numerics.md`` alone with Python's ``fractions``: it shares no code and no
algorithm with ``sim.golden.numerics`` (no alignment, no guard bits), so agreement means the golden
model rounds the exact value correctly, not merely that two copies of one idea agree.
"""

from fractions import Fraction

__all__ = ["value", "round_to", "add", "mac", "convert"]


def value(bits, fmt):
    """The exact value of a bit pattern and its sign bit."""
    sign = (bits >> (fmt.width - 1)) & 1
    field = (bits >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    man = bits & ((1 << fmt.man_bits) - 1)
    if field == 0:
        return Fraction(0), sign
    magnitude = Fraction((1 << fmt.man_bits) | man, 1 << fmt.man_bits) * Fraction(2) ** (field - fmt.bias)
    return (-magnitude if sign else magnitude), sign


def round_to(q, fmt, zero_sign=0):
    """Bits of the exact rational ``q`` in ``fmt``: RNE, flush to zero, saturate."""
    if q == 0:
        return zero_sign << (fmt.width - 1)
    sign = int(q < 0)
    q = abs(q)
    exp = q.numerator.bit_length() - q.denominator.bit_length()
    while Fraction(2) ** exp > q:
        exp -= 1
    while Fraction(2) ** (exp + 1) <= q:
        exp += 1
    scaled = q / Fraction(2) ** (exp - fmt.man_bits)      # in [2**m, 2**(m+1))
    n = scaled.numerator // scaled.denominator
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    if n == 1 << (fmt.man_bits + 1):
        n >>= 1
        exp += 1
    if exp < fmt.emin:
        return sign << (fmt.width - 1)
    if exp > fmt.emax:
        return (sign << (fmt.width - 1)) | fmt.max_bits
    return (sign << (fmt.width - 1)) | ((exp + fmt.bias) << fmt.man_bits) | (n - (1 << fmt.man_bits))


def add(a, a_fmt, b, b_fmt, out_fmt):
    (x, sx), (y, sy) = value(a, a_fmt), value(b, b_fmt)
    both_negative_zero = x == 0 and y == 0 and sx and sy
    return round_to(x + y, out_fmt, int(both_negative_zero))


def mac(c, a, b, op_fmt, acc_fmt):
    (x, sx), (y, sy), (z, sz) = value(a, op_fmt), value(b, op_fmt), value(c, acc_fmt)
    product_sign = sx ^ sy
    both_negative_zero = x * y == 0 and z == 0 and product_sign and sz
    return round_to(z + x * y, acc_fmt, int(both_negative_zero))


def convert(a, src, dst):
    x, sx = value(a, src)
    return round_to(x, dst, sx)
