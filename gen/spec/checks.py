"""Small shared rules: what counts as an integer or a real argument, and ceiling division.

One definition for the checks that configs, programs, compilers and models all make, so that
``True`` is never accepted as ``1`` in one place and refused in another.
"""

import numbers

__all__ = ["is_int", "is_real", "ceil_div", "ceil_log2", "exact_log2"]


def is_int(value):
    """``value`` is an integer (Python or NumPy) and not a ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) \
        and type(value).__name__ != "bool_"


def is_real(value):
    """``value`` is a real number (integer or float, Python or NumPy) and not a ``bool``."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and type(value).__name__ != "bool_"


def ceil_div(a, b):
    """``ceil(a / b)`` for integers, exactly (no floating point)."""
    return -(-a // b)


def ceil_log2(n):
    """The bits that count ``n`` values (``ceil(log2(n))``, 0 for ``n = 1``), as
    ``amaranth.utils.ceil_log2`` gives it; for the layers that do not import Amaranth."""
    if not is_int(n) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    return (n - 1).bit_length()


def exact_log2(n):
    """``log2(n)`` of a power of two ``n``, as ``amaranth.utils.exact_log2`` gives it."""
    if not is_int(n) or n < 1 or n & (n - 1):
        raise ValueError(f"n must be a power of two, not {n!r}")
    return n.bit_length() - 1
