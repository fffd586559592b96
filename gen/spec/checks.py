"""Small shared rules: what counts as an integer or a real argument, and ceiling division.

One definition for the checks that configs, programs, compilers and models all make, so that
``True`` is never accepted as ``1`` in one place and refused in another.
"""

import numbers

__all__ = ["is_int", "is_real", "ceil_div"]


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
