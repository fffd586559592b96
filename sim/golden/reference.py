"""Outside references for measuring the golden model: NumPy's own rounding.

Not part of the golden model (whose arithmetic is its own, in ``sim.golden.numerics``): these
turn exact float64 values into what a correctly rounded fp32 result would be under this
project's rules, so that tests and benchmarks can measure errors against NumPy.
"""

import numpy as np

__all__ = ["round_fp32"]

_U = np.uint64


def round_fp32(values):
    """float64 values rounded to fp32 bits by NumPy, then flushed or saturated.

    NumPy rounds to nearest even; the value is first scaled by an exact power of two so
    that NumPy rounds on the normal grid (this project has no subnormals and an ordinary
    top binade), and the exponent is put back afterwards: below ``2**-126`` the result is
    a signed zero, above the largest value it saturates.
    """
    v = np.asarray(values, dtype=np.float64)
    a = np.abs(v)
    shift = np.where(a < 2.0 ** -100, 64, np.where(a >= 2.0 ** 100, -64, 0))
    with np.errstate(over="ignore"):
        b = np.ldexp(a, shift).astype(np.float32).view(np.uint32).astype(np.int64)
    field = (b >> 23) - shift
    bits = (np.clip(field, 0, 255) << 23) | (b & 0x7FFFFF)
    bits = np.where(field < 1, 0, np.where(field > 255, 0x7FFFFFFF, bits))
    bits = np.where(a == 0, 0, bits)
    return bits.astype(_U) | (np.signbit(v).astype(_U) << _U(31))
