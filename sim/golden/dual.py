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

Where the streams come from is the core's business (``docs/dual_precision.md``); this module is
the arithmetic of one slot.

**k-pairing** (:meth:`DualPath.pair_sum`, :func:`accumulate_k_pairs`): when the two pairs of a
slot are two k-steps ``(k, k + 1)`` of one output, their products are summed first and the sum
is accumulated once. The rule, with ``p0`` the product of step ``k`` and ``p1`` that of step
``k + 1`` (each exact in ``product_format(operand)``):

1. the **pair sum** ``s = p0 + p1``, rounded once to
   :func:`gen.spec.formats.pair_sum_format` (24 significant
   bits, fp32's precision, and the product format's exponent range, so that the sum of two
   products never flushes nor saturates; only its significand is rounded);
2. ``acc = acc + s``, rounded once to fp32 (the rule of every accumulation).

A slot with pair 0 alone (the odd last step of an output, or an ``UPDATE``) has ``p1 = -0``,
the additive identity of round-to-nearest (``+0 + -0 = +0``, ``-0 + -0 = -0``): then
``s = p0`` exactly (a product has at most 24 significant bits for the operand formats whose
mantissa is at most 11 bits) and the step is the one-product step of ``single``, bit for bit.
Every output therefore accumulates from ``+0`` one pair sum per slot, in increasing k.
"""

import numpy as np

from chrysalis.gen.spec.config import DUAL_POLICIES
from chrysalis.gen.spec.formats import FP32, FloatFormat, pair_sum_format, product_format
from chrysalis.sim.golden import numerics as nx

__all__ = ["HIGH", "LOW", "BYPASS", "DualPath", "random_bits", "accumulate_k_pairs"]

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
        self.sum = pair_sum_format(operand)

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

    def pair_sum(self, p0, p1, pair1=True):
        """The k-pair's sum ``p0 + p1`` rounded once to ``pair_sum_format(operand)`` (bits of that
        format). Where ``pair1`` is false pair 1 contributes ``-0``: the sum is ``p0``."""
        p0, p1 = np.asarray(p0, dtype=_U), np.asarray(p1, dtype=_U)
        neg_zero = _U(1) << _U(self.product.width - 1)
        p1 = np.where(np.asarray(pair1, dtype=bool), p1, neg_zero)
        return nx.fadd(p0, self.product, p1, self.product, self.sum)


def accumulate_k_pairs(path, a, b, random_bit=0, valid=True, counts=None):
    """Accumulate dot products two k-steps per slot (the k-paired order, module docstring).

    Parameters
    ----------
    path : DualPath
    a, b : array_like of uint64
        Operand-format bits, shape ``(..., K)``: the last axis is the contraction, in the
        order the products are accumulated. Slot ``j`` pairs steps ``2j`` (pair 0) and
        ``2j + 1`` (pair 1); with ``K`` odd the last slot has pair 0 alone.
    random_bit : array_like
        The ``random`` policy's bit of each slot, broadcastable to ``(..., ceil(K / 2))``.
    valid : array_like of bool
        Broadcastable to ``(..., K)``: a step that is false contributes nothing (its product
        is replaced by ``-0``, which leaves a sum unchanged), as a step past the end of the
        contraction; its class is still counted.
    counts : numpy.ndarray, optional
        Three integers, incremented by the number of products of class HIGH, LOW, BYPASS
        (pair 1 counted only where it exists).

    Returns
    -------
    numpy.ndarray
        The fp32 accumulators, shape ``(...)``: from ``+0``, one pair sum per slot in
        increasing ``j``, each added with one rounding to fp32. The ``single`` policy has
        one step per slot: from ``+0``, one product per step, each added with one rounding.
    """
    a, b = np.asarray(a, dtype=_U), np.asarray(b, dtype=_U)
    a, b = np.broadcast_arrays(a, b)
    steps = a.shape[-1]
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), a.shape)
    if path.policy == "single":
        return _accumulate_single(path, a, b, valid, counts)
    if steps % 2:         # the odd last step: pair 0 alone
        pad = np.zeros(a.shape[:-1] + (1,), dtype=_U)
        a, b = np.concatenate([a, pad], -1), np.concatenate([b, pad], -1)
        valid = np.concatenate([valid, np.zeros(pad.shape, dtype=bool)], -1)
    slots = a.shape[-1] // 2
    pair1 = np.broadcast_to(2 * np.arange(slots) + 1 < steps, a.shape[:-1] + (slots,))
    p0, p1, c0, c1 = path.products(a[..., 0::2], b[..., 0::2], a[..., 1::2], b[..., 1::2],
                                   pair1, random_bit)
    if counts is not None:
        counts += np.bincount(c0.ravel(), minlength=3)[:3]
        counts += np.bincount(c1[pair1].ravel(), minlength=3)[:3]
    neg_zero = _U(1) << _U(path.product.width - 1)
    p0 = np.where(valid[..., 0::2], p0, neg_zero)
    p1 = np.where(valid[..., 1::2], p1, neg_zero)
    sums = path.pair_sum(p0, p1, pair1)
    acc = np.zeros(a.shape[:-1], dtype=_U)
    for j in range(slots):
        acc = nx.fadd(acc, FP32, sums[..., j], path.sum, FP32)
    return acc


def _accumulate_single(path, a, b, valid, counts):
    """The ``single`` policy's order: one exact product per step, each rounded once into
    fp32 (``sim.golden.core_model``)."""
    products = path.high_product(a, b)
    if counts is not None:
        zero = (path._exponent(a) == 0) | (path._exponent(b) == 0)
        counts += [int(np.count_nonzero(~zero)), 0, int(np.count_nonzero(zero))]
    acc = np.zeros(a.shape[:-1], dtype=_U)
    for k in range(a.shape[-1]):
        acc = np.where(valid[..., k], nx.fadd(acc, FP32, products[..., k], path.product, FP32),
                       acc)
    return acc
