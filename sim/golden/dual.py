"""Golden model of the dual-precision multiply path (after DAA): two operand pairs per cycle,
one high-precision and one low-precision multiplier, and a controller that assigns them.

Two *streams* share a PE: in every compute slot the PE multiplies pair 0 ``(a0, b0)`` and
pair 1 ``(a1, b1)``. Both products leave in ``product_format(operand)`` and are accumulated
in fp32 like any product (``hw.pe.PE``, ``hw.dual.DualMultiplyPath``). Each pair is one of:

``HIGH``
    multiplied exactly in the operand format (the high-precision multiplier);
``LOW``
    both operands rounded to nearest even to ``low_operand`` (the operand's exponent range,
    ``mac.low_man_bits`` mantissa bits, saturating), then multiplied exactly;
``BYPASS``
    an operand is zero: the product is a zero of sign ``sign(a) ^ sign(b)``, exactly what
    either multiplier would give, and no multiplier is used.

Policies (``mac.dual``):

``single``
    one pair per slot: pair 0 only, always ``HIGH`` (the baseline).
``dual-full``
    two high-precision multipliers: both pairs ``HIGH`` (the upper baseline).
``value``
    a pair with a zero operand bypasses, and the other pair gets the high-precision
    multiplier. Otherwise the pair with the larger exponent sum ``E(a) + E(b)`` (biased
    exponent fields: the larger product up to a factor of 4) gets it and the other is
    ``LOW``; on a tie pair 0 gets it.
``static``
    pair 0 ``HIGH``, pair 1 ``LOW`` (zeros bypass, which changes no value).
``random``
    a pseudo-random bit per slot (:func:`random_bits`) picks the pair that gets ``HIGH``;
    zeros bypass.

Where the streams come from (the pairing of outputs) is the core's business
(``docs/dual_precision.md``); this module is the arithmetic of one slot.
"""

import numpy as np

from chrysalis.gen.spec.config import DUAL_POLICIES
from chrysalis.gen.spec.formats import FloatFormat, product_format
from chrysalis.sim.golden import numerics as nx

__all__ = ["HIGH", "LOW", "BYPASS", "DualPath", "random_bits"]

#: Classes of a pair (what the counters count).
HIGH, LOW, BYPASS = 0, 1, 2

_U = np.uint64


def random_bits(output, step, seed):
    """The ``random`` policy's bit for the slot of output ``output`` at step ``step``: 1
    gives pair 1 the high-precision multiplier.

    A function of the slot, not of a sequence, so that it does not depend on the order in
    which slots are issued: with 16-bit arithmetic,
    ``x = output * 40503 + step * 10007 + seed * 49297``, then one linear congruential step
    ``y = x * 25173 + 13849``, and the bit is the top bit of ``y``.
    """
    output = np.asarray(output, dtype=np.int64)
    step = np.asarray(step, dtype=np.int64)
    x = (output * 40503 + step * 10007 + (int(seed) & 0xFFFF) * 49297) & 0xFFFF
    y = (x * 25173 + 13849) & 0xFFFF
    return y >> 15


class DualPath:
    """The products of a dual-precision slot.

    Parameters
    ----------
    operand : FloatFormat
        Format of the multiplicands.
    low_man_bits : int
        Mantissa bits of the low-precision multiplier.
    policy : str
        One of ``gen.spec.config.DUAL_POLICIES``.
    """

    def __init__(self, operand, low_man_bits, policy):
        if not isinstance(operand, FloatFormat):
            raise TypeError(f"operand must be a FloatFormat, not {operand!r}")
        if not isinstance(low_man_bits, int) or not 1 <= low_man_bits <= operand.man_bits:
            raise ValueError(f"low_man_bits must be from 1 to {operand.man_bits}, "
                             f"not {low_man_bits!r}")
        if policy not in DUAL_POLICIES:
            raise ValueError(f"policy must be one of {', '.join(DUAL_POLICIES)}, "
                             f"not {policy!r}")
        self.operand, self.policy = operand, policy
        self.low = FloatFormat(operand.exp_bits, low_man_bits)
        self.product = product_format(operand)

    @classmethod
    def from_config(cls, config):
        return cls(config.mac.operand, config.mac.low_man_bits, config.mac.dual)

    def _exponent(self, x):
        return (x >> _U(self.operand.man_bits)) & _U((1 << self.operand.exp_bits) - 1)

    def high_product(self, a, b):
        """Exact product of operand-format ``a`` and ``b``."""
        return nx.fmul(a, b, self.operand)

    def low_product(self, a, b):
        """Both operands rounded to the low format, then the exact product (in the operand's
        product format, which holds it exactly)."""
        la = nx.fconvert(a, self.operand, self.low)
        lb = nx.fconvert(b, self.operand, self.low)
        return nx.fconvert(nx.fmul(la, lb, self.low), product_format(self.low), self.product)

    def classes(self, a0, b0, a1, b1, pair1=True, random_bit=0):
        """The class of each pair: ``(c0, c1)`` arrays of HIGH, LOW, BYPASS.

        ``pair1`` (broadcastable bool) says where pair 1 exists (an unpaired slot has pair 0
        alone, which then is ``HIGH`` or ``BYPASS``); ``random_bit`` is the ``random``
        policy's bit (:func:`random_bits`).
        """
        a0, b0, a1, b1 = (np.asarray(v, dtype=_U) for v in (a0, b0, a1, b1))
        shape = np.broadcast(a0, b0, a1, b1).shape
        pair1 = np.broadcast_to(np.asarray(pair1, dtype=bool), shape)
        zero0 = (self._exponent(a0) == 0) | (self._exponent(b0) == 0)
        zero1 = (self._exponent(a1) == 0) | (self._exponent(b1) == 0)
        if self.policy in ("single", "dual-full"):
            c0 = np.full(shape, HIGH)
            c1 = np.full(shape, HIGH)
        else:
            if self.policy == "value":
                sum0 = self._exponent(a0).astype(np.int64) + self._exponent(b0)
                sum1 = self._exponent(a1).astype(np.int64) + self._exponent(b1)
                one_high = sum1 > sum0            # a tie goes to pair 0
                # A zero pair bypasses: the other pair gets the high-precision multiplier.
                one_high = np.where(zero0, True, np.where(zero1, False, one_high))
            elif self.policy == "static":
                one_high = np.zeros(shape, dtype=bool)
            else:
                one_high = np.broadcast_to(np.asarray(random_bit, dtype=bool), shape)
            one_high = one_high & pair1           # an unpaired pair 0 keeps the multiplier
            c0 = np.where(one_high, LOW, HIGH)
            c1 = np.where(one_high, HIGH, LOW)
        c0 = np.where(zero0, BYPASS, c0)
        c1 = np.where(zero1, BYPASS, c1)
        return c0, c1

    def products(self, a0, b0, a1, b1, pair1=True, random_bit=0):
        """``(p0, p1, c0, c1)``: the two products (``product_format(operand)`` bits) and
        their classes. Where pair 1 does not exist ``p1`` is meaningless."""
        a0, b0, a1, b1 = (np.asarray(v, dtype=_U) for v in (a0, b0, a1, b1))
        c0, c1 = self.classes(a0, b0, a1, b1, pair1, random_bit)
        # A bypassed pair's zero equals the exact product's, so HIGH covers it.
        p0 = np.where(c0 == LOW, self.low_product(a0, b0), self.high_product(a0, b0))
        p1 = np.where(c1 == LOW, self.low_product(a1, b1), self.high_product(a1, b1))
        return p0, p1, c0, c1
