"""The same bits as :class:`chrysalis.sim.golden.core_model.CoreNumerics`, faster: bf16
operands and fp32 accumulation through NumPy's float32, where that is exact.

A bf16 value has an 8-bit significand, so the product of two is exact in 16 bits and, when
it lies in float32's normal range, exact as a float32; then ``acc + a*b`` rounded once to
fp32 (:func:`chrysalis.sim.golden.numerics.fmac`) is NumPy's float32 addition, which rounds
to nearest even, with the same signs of zero (``-0`` only from ``-0 + -0``). The operand
copy (round to nearest even from fp32 to bf16) is the usual bit trick on normal inputs.
Where a value falls outside that ground (a subnormal or non-finite input, an operand that
rounds up to the all-ones exponent, a product or a sum below the smallest normal or at
infinity: flush and saturation rules the hardware has and NumPy has not) the whole call is
redone by the exact model. ``tests/sim/golden/test_cnn.py`` checks both give the same bits.

:class:`FastNumerics` is a ``CoreNumerics`` (so ``core_model``'s functions take it) whose
``mac`` takes this path for a bf16 operand and an fp32 accumulator, and is exactly
``CoreNumerics.mac`` otherwise.
"""

from dataclasses import dataclass

import numpy as np

from chrysalis.gen.spec.formats import BF16, FP32

from . import core_model as cm
from .core_model import CoreNumerics

__all__ = ["FastNumerics", "fast", "fused_weight_gradient"]

_U32 = np.uint32
_MIN_NORMAL = np.float64(2.0 ** -126)
_MAX = np.float64(np.finfo(np.float32).max)


def _bf16_values(bits):
    """float32 values of the bf16 copies of fp32 ``bits``, or None where the fast path does
    not hold (a subnormal, infinite or NaN input, or one rounding to the top binade)."""
    u = np.asarray(bits).astype(_U32)
    field = (u >> _U32(23)) & _U32(0xFF)
    if np.any((field == 0) & ((u & _U32(0x7FFFFF)) != 0)) or np.any(field == 0xFF):
        return None
    rounded = (u + _U32(0x7FFF) + ((u >> _U32(16)) & _U32(1))) & _U32(0xFFFF0000)
    if np.any(((rounded >> _U32(23)) & _U32(0xFF)) == 0xFF):
        return None
    return rounded.view(np.float32)


def _fp32_values(bits):
    """float32 values of fp32 ``bits``, or None where one is subnormal, infinite or NaN."""
    u = np.asarray(bits).astype(_U32)
    field = (u >> _U32(23)) & _U32(0xFF)
    if np.any((field == 0) & ((u & _U32(0x7FFFFF)) != 0)) or np.any(field == 0xFF):
        return None
    return u.view(np.float32)


def _fast_mac(acc, a, b):
    """``acc + q(a) * q(b)`` through float32, or None where that is not exact."""
    qa, qb, acc32 = _bf16_values(a), _bf16_values(b), _fp32_values(acc)
    if qa is None or qb is None or acc32 is None:
        return None
    product = qa.astype(np.float64) * qb.astype(np.float64)
    magnitude = np.abs(product)
    if np.any((magnitude < _MIN_NORMAL) & (product != 0)) or np.any(magnitude > _MAX):
        return None
    total = acc32 + product.astype(np.float32)
    magnitude = np.abs(total)
    if np.any((magnitude < np.float32(_MIN_NORMAL)) & (total != 0)) or \
            not np.all(np.isfinite(total)):
        return None
    return total.view(_U32).astype(np.uint64)


@dataclass(frozen=True)
class FastNumerics(CoreNumerics):
    """:class:`CoreNumerics` whose ``mac`` goes through float32 where that is exact (bf16
    operands, fp32 accumulator; see the module's docstring)."""

    def mac(self, acc, a, b):
        if self.operand == BF16 and self.accumulator == FP32:
            with np.errstate(over="ignore", under="ignore"):
                out = _fast_mac(acc, a, b)
            if out is not None:
                return np.broadcast_to(out, np.broadcast_shapes(
                    np.shape(acc), np.shape(a), np.shape(b))).copy()
        return super().mac(acc, a, b)


def fast(num):
    """The :class:`FastNumerics` of ``num``'s parameters."""
    return FastNumerics(rows=num.rows, cols=num.cols, operand=num.operand,
                        accumulator=num.accumulator, reduction=num.reduction)


def fused_weight_gradient(num, w, dy, x):
    """:func:`chrysalis.sim.golden.core_model.fused_weight_gradient`, the same bits: each
    weight's chain over the columns through float32 where that is exact (bf16 operands),
    the operand copies made once for the whole matrices."""
    if num.operand == BF16 and num.accumulator == FP32:
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            out = _fast_fused(w, dy, x)
        if out is not None:
            return out
    return cm.fused_weight_gradient(num, w, dy, x)


def _fast_fused(w, dy, x):
    w, dy, x = (np.asarray(v, dtype=np.uint64) for v in (w, dy, x))
    m, columns = dy.shape
    n = x.shape[0]
    if w.shape != (m, n) or x.shape[1] != columns:
        return None     # the exact model says what is wrong
    qa, qb, acc = _bf16_values(dy), _bf16_values(x), _fp32_values(w)
    if qa is None or qb is None or acc is None:
        return None
    products = qa.astype(np.float64)[:, None, :] * qb.astype(np.float64)[None, :, :]
    magnitude = np.abs(products)
    if np.any((magnitude < _MIN_NORMAL) & (products != 0)) or np.any(magnitude > _MAX):
        return None
    products = products.astype(np.float32)
    sums = np.empty((columns, m, n), dtype=np.float32)
    for b in range(columns):
        acc = acc + products[:, :, b]
        sums[b] = acc
    magnitude = np.abs(sums)
    if np.any((magnitude < np.float32(_MIN_NORMAL)) & (sums != 0)) or \
            not np.all(np.isfinite(sums)):
        return None
    return acc.view(_U32).astype(np.uint64)
