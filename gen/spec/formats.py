"""Floating-point number formats.

A format is a pair (exponent bits, mantissa bits); the semantics shared by the RTL and the
golden model are written down once, in ``docs/numerics.md``. This module is pure Python: the
hardware (``hw``), the golden model (``sim``) and the tools (``gen``) all import it.
"""

import re
from dataclasses import dataclass

__all__ = ["FloatFormat", "FORMATS", "FP32", "BF16", "FP16", "FP8_E4M3", "FP8_E5M2",
           "EXP_BITS", "MAN_BITS", "product_format", "parse_format"]

#: The widths a :class:`FloatFormat` may have, as ``(smallest, largest)``: exponent fields
#: of 2 to 11 bits and stored mantissas of 1 to 52 bits (up to IEEE binary64's).
EXP_BITS = (2, 11)
MAN_BITS = (1, 52)


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with an implicit leading one.

    Every exponent code but 0 encodes a normal number (there is no Inf and no NaN), and
    exponent code 0 encodes a signed zero whatever the mantissa bits say.

    Parameters
    ----------
    exp_bits : int
        Width of the biased exponent field, 2 to 11.
    man_bits : int
        Width of the stored mantissa field (the fraction, without the implicit one), 1 to 52.

    Members
    -------
    width : int
        Total width in bits: sign, exponent, mantissa.
    precision : int
        Significand width including the implicit one, ``man_bits + 1``.
    bias : int
        Exponent bias, ``2**(exp_bits-1) - 1``.
    emin, emax : int
        Smallest and largest unbiased exponent of a normal number.
    """

    exp_bits: int = 8
    man_bits: int = 7

    def __post_init__(self):
        for field, (lo, hi) in (("exp_bits", EXP_BITS), ("man_bits", MAN_BITS)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{field} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{field} must be between {lo} and {hi}, not {value!r}")

    @property
    def width(self):
        return 1 + self.exp_bits + self.man_bits

    @property
    def precision(self):
        return self.man_bits + 1

    @property
    def bias(self):
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self):
        return 1 - self.bias

    @property
    def emax(self):
        return (1 << self.exp_bits) - 1 - self.bias

    @property
    def max_bits(self):
        """Encoding of the largest finite positive value (the saturation value)."""
        return (1 << (self.exp_bits + self.man_bits)) - 1

    @property
    def max_value(self):
        return (2.0 - 2.0 ** -self.man_bits) * 2.0 ** self.emax

    @property
    def min_normal(self):
        return 2.0 ** self.emin

    @property
    def name(self):
        """The preset name of this format, or ``"e{E}m{M}"`` when it is not a preset."""
        for name, fmt in FORMATS.items():
            if fmt == self:
                return name
        return f"e{self.exp_bits}m{self.man_bits}"

    def __str__(self):
        return self.name


FP32 = FloatFormat(8, 23)
BF16 = FloatFormat(8, 7)
FP16 = FloatFormat(5, 10)
FP8_E4M3 = FloatFormat(4, 3)
FP8_E5M2 = FloatFormat(5, 2)

#: The named presets, by the name used in configs and on the command line.
FORMATS = {
    "fp32": FP32,
    "bf16": BF16,
    "fp16": FP16,
    "fp8_e4m3": FP8_E4M3,
    "fp8_e5m2": FP8_E5M2,
}


def product_format(fmt):
    """The format that holds every product of two ``fmt`` values exactly.

    The significand of a product has ``2 * precision`` bits and its exponent spans about
    twice the range, so ``(exp_bits + 2, 2 * man_bits + 1)`` holds it with no rounding and
    no overflow or underflow.
    """
    return FloatFormat(fmt.exp_bits + 2, 2 * fmt.man_bits + 1)


def pair_sum_format(fmt):
    """The format of the sum of two products of ``fmt`` values in a k-paired dual-precision
    slot (``docs/dual_precision.md``): the exponent range of :func:`product_format` and the
    wider of its mantissa and fp32's (23 bits), so that a lone product passes exactly and the
    sum of two products never flushes nor saturates."""
    pf = product_format(fmt)
    return FloatFormat(pf.exp_bits, max(pf.man_bits, 23))


def parse_format(value, field="format"):
    """A :class:`FloatFormat` from a preset name, ``"eEmM"``, a mapping, or a format.

    Raises ``ValueError`` naming ``field`` and the value when it is none of those or its
    widths are out of range, and ``TypeError`` for a value of the wrong type (a number, or
    a table whose widths are not integers).
    """
    if isinstance(value, FloatFormat):
        return value
    if isinstance(value, str):
        if value in FORMATS:
            return FORMATS[value]
        match = re.fullmatch(r"e(\d+)m(\d+)", value)
        if match:
            # Said in the user's own spelling: "e12m3", not the FloatFormat field it sets.
            for digits, what, (lo, hi) in ((match[1], "exponent", EXP_BITS),
                                           (match[2], "mantissa", MAN_BITS)):
                if not lo <= int(digits) <= hi:
                    raise ValueError(f"{field} must have {lo} to {hi} {what} bits, "
                                     f"not {value!r}")
            return FloatFormat(int(match[1]), int(match[2]))
        names = ", ".join(FORMATS)
        raise ValueError(f"{field} must be one of {names} or 'eEmM', not {value!r}")
    if isinstance(value, dict):
        unknown = set(value) - {"exp_bits", "man_bits"}
        if unknown:
            raise ValueError(f"{field} has unknown keys {sorted(unknown)}, not {value!r}")
        # A table names both widths: a missing one is a mistake, not a default.
        missing = [key for key in ("exp_bits", "man_bits") if key not in value]
        if missing:
            raise ValueError(f"{field} must give both exp_bits and man_bits (missing "
                             f"{' and '.join(missing)}), not {value!r}")
        try:
            return FloatFormat(**value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{field}.{error}") from None
    raise TypeError(f"{field} must be a format name or a table, not {value!r}")
