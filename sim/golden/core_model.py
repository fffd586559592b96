"""Golden model of the training core's operations, bit-exact (pure NumPy).

Every operation of a training step on one R x C core, on fp32 bit patterns (``uint64``
arrays holding fp32 words, the scratchpad's and the accumulators' format). The order in which
values are added is part of the semantics and follows the hardware's dataflow
(``docs/architecture.md``):

* ``W[i][j]`` lives in ``PE(i mod R, j mod C)``: weights are spread 2-D round-robin.
* Forward ``Y = W X + b``: each PE accumulates, from ``+0`` and in increasing ``j``, the
  products of its weights and the inputs broadcast on its column bus; the partial sums of a
  row of PEs are then reduced over the row bus (``reduction="bus"``: a chain, column 0 first;
  ``"tree"``: pairwise over neighbour links). There is no separate bias: the compiler makes it
  the last column of ``W`` and gives ``X`` a row of ones, so it is one more product.
* Backward ``dX = W^T dY``: the same with the roles of rows and columns swapped (the
  transpose is free): PEs accumulate in increasing ``i``, partial sums are reduced over the
  column bus, row 0 first.
* Weight gradient ``dW = dY X^T``: accumulated in place, in the PE that holds ``W[i][j]``,
  from ``+0`` over the batch in increasing ``b`` (the bias's gradient is that of its column).
* Update ``W <- W - lr dW`` (optionally with momentum) on the fp32 master weights, in place:
  a separate pass (:func:`update`), or fused into the weight gradient
  (:func:`fused_weight_gradient`): the chain starts from the fp32 weight instead of ``+0``,
  with ``-lr`` carried in ``dY`` (the loss gradient's scale is ``-lr/B``).

Multiplicands are the operand-format copies of fp32 values, made by round-to-nearest-even
conversion when used (``q`` below); accumulation is in the accumulator format. Padding
(layers that are not a multiple of R or C): every PE runs every step of its chain, and a
padded step adds the product ``+0 * +0 = +0``. That changes no value but the sign of a zero:
an accumulator can be ``-0`` (``2**-70 * -2**-70`` flushes to ``-0``, and ``+0 + -0`` rounds
to ``-0`` only when both are ``-0``), and ``-0 + +0`` is ``+0``. The edge reducers start
from ``+0`` too (:func:`edge_reduce`), so a sum over the bus is never ``-0``.
"""

from dataclasses import dataclass

import numpy as np

from chrysalis.gen.spec.formats import BF16, FP32, FloatFormat
from chrysalis.sim.golden import numerics as nx

__all__ = ["CoreNumerics", "reduce_partials", "edge_reduce", "forward", "relu", "relu_mask", "backward_dx",
           "weight_gradient", "fused_weight_gradient", "update", "softmax_xent_gradient",
           "zeros"]

_U = np.uint64


@dataclass(frozen=True)
class CoreNumerics:
    """The numeric parameters of a core: array shape, formats and reduction order.

    Parameters
    ----------
    rows, cols : int
        PE array shape R x C.
    operand : FloatFormat
        Format of the multiplicands (the MAC's operand format).
    accumulator : FloatFormat
        Format of accumulators, master weights and the scratchpad (fp32 only, for now).
    reduction : str
        ``"bus"`` (a chain over the bus, in PE order) or ``"tree"`` (pairwise, log depth).
    """

    rows: int = 4
    cols: int = 4
    operand: FloatFormat = BF16
    accumulator: FloatFormat = FP32
    reduction: str = "bus"

    def __post_init__(self):
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.accumulator != FP32:
            # Named as a config names a format ('fp16'), not by the dataclass's repr.
            name = (self.accumulator.name if isinstance(self.accumulator, FloatFormat)
                    else self.accumulator)
            raise ValueError(f"accumulator must be 'fp32' (the format of the accumulators, "
                             f"master weights and scratchpad), not {name!r}")
        if self.reduction not in ("bus", "tree"):
            raise ValueError(f"reduction must be 'bus' or 'tree', not {self.reduction!r}")

    @classmethod
    def from_config(cls, config):
        """The numerics of a :class:`gen.spec.config.Config`'s core."""
        return cls(rows=config.core.rows, cols=config.core.cols, operand=config.mac.operand,
                   accumulator=config.mac.accumulator, reduction=config.core.reduction)

    def q(self, bits):
        """Operand-format copies of fp32 values (RNE), as used by the multipliers."""
        return nx.fconvert(bits, self.accumulator, self.operand)

    def mac(self, acc, a, b):
        """``acc + q(a) * q(b)``, rounded once to fp32."""
        return nx.fmac(acc, self.q(a), self.q(b), self.operand, self.accumulator)

    def add(self, a, b):
        return nx.fadd(a, self.accumulator, b, self.accumulator, self.accumulator)


def zeros(shape):
    """fp32 ``+0`` bit patterns."""
    return np.zeros(shape, dtype=_U)


def _as_bits(x):
    return np.asarray(x, dtype=_U)


def reduce_partials(num, partials, axis):
    """Reduce partial sums over the PEs along ``axis`` in the hardware's order.

    ``bus``: ``((p0 + p1) + p2) + ...``, PE 0 first. ``tree``: pairs ``(p0+p1), (p2+p3), ...``
    at every level, an odd last element passed up unchanged, until one value is left.
    """
    parts = [np.take(partials, k, axis=axis) for k in range(partials.shape[axis])]
    if num.reduction == "bus":
        total = parts[0]
        for part in parts[1:]:
            total = num.add(total, part)
        return total
    while len(parts) > 1:
        paired = [num.add(parts[k], parts[k + 1]) for k in range(0, len(parts) - 1, 2)]
        if len(parts) % 2:
            paired.append(parts[-1])
        parts = paired
    return parts[0]


def edge_reduce(num, partials, axis):
    """The edge reducer's sum of the partial sums along ``axis``: it starts from ``+0``.

    ``bus``: ``((+0 + p0) + p1) + ...``, PE 0 first. ``tree``: the PEs add pairwise over the
    neighbour links (:func:`reduce_partials`) and the sum passes the reducer as ``+0 + S``.
    """
    zero = zeros(np.take(partials, 0, axis=axis).shape)
    if num.reduction == "tree":
        return num.add(zero, reduce_partials(num, partials, axis))
    total = zero
    for k in range(partials.shape[axis]):
        total = num.add(total, np.take(partials, k, axis=axis))
    return total


def _partials(num, a, b, lanes, contract):
    """Partial dot products of the PEs along one array dimension.

    ``a`` is ``(out, K)``, ``b`` is ``(K, batch)``; the contraction index ``k`` goes to lane
    ``k mod lanes``, and each lane accumulates its ``k`` in increasing order from ``+0``,
    for ``ceil(K / lanes)`` steps: past ``K`` both operands are padded with ``+0``.
    Returns ``(out, lanes, batch)``.
    """
    out, k_total = a.shape
    batch = b.shape[1]
    steps = -(-k_total // lanes)
    padded = steps * lanes
    a = np.concatenate([a, zeros((out, padded - k_total))], axis=1)
    b = np.concatenate([b, zeros((padded - k_total, batch))], axis=0)
    acc = zeros((out, lanes, batch))
    for step in range(steps):
        ks = step * lanes + np.arange(lanes)
        prod_a = a[:, ks][:, :, None]                       # (out, lanes, 1)
        prod_b = b[ks, :][None, :, :]                       # (1, lanes, batch)
        acc = num.mac(acc, np.broadcast_to(prod_a, acc.shape), np.broadcast_to(prod_b, acc.shape))
    return acc


def forward(num, w, x):
    """``Y = W X``: ``w`` is ``(M, N)``, ``x`` is ``(N, B)``."""
    w, x = _as_bits(w), _as_bits(x)
    partials = _partials(num, w, x, num.cols, contract="j")
    return edge_reduce(num, partials, axis=1)


def relu(num, y):
    """``y`` where ``y > 0``, else ``+0`` (a ``-0`` or negative input gives ``+0``)."""
    y = _as_bits(y)
    positive = _positive(y)
    return np.where(positive, y, _U(0))


def _positive(bits):
    field = (bits >> _U(FP32.man_bits)) & _U((1 << FP32.exp_bits) - 1)
    return ((bits >> _U(31)) == 0) & (field != 0)


def relu_mask(num, grad, activation):
    """The ReLU derivative applied to a gradient: ``grad`` where ``activation > 0``, else
    ``+0``. ``activation`` is the layer's output after ReLU (positive exactly where the
    pre-activation was)."""
    return np.where(_positive(_as_bits(activation)), _as_bits(grad), _U(0))


def backward_dx(num, w, dy):
    """``dX = W^T dY``: ``w`` is ``(M, N)``, ``dy`` is ``(M, B)``; returns ``(N, B)``.

    Rows and columns swap roles: PE lane ``i mod R`` accumulates in increasing ``i`` and
    the partial sums are reduced over the column bus, row 0 first.
    """
    w, dy = _as_bits(w), _as_bits(dy)
    partials = _partials(num, w.T, dy, num.rows, contract="i")
    return edge_reduce(num, partials, axis=1)


def weight_gradient(num, dy, x):
    """``dW = dY X^T`` from ``+0``, each element accumulated over ``b`` in increasing order."""
    dy, x = _as_bits(dy), _as_bits(x)
    m, batch = dy.shape
    n = x.shape[0]
    acc = zeros((m, n))
    for b in range(batch):
        acc = num.mac(acc, np.broadcast_to(dy[:, b:b + 1], (m, n)),
                      np.broadcast_to(x[None, :, b], (m, n)))
    return acc


def fused_weight_gradient(num, w, dy, x):
    """The SGD step fused into the weight gradient: returns the new weights.

    ``W[i][j] <- W[i][j] + sum_b q(dY[i][b]) * q(X[j][b])``: the chain of
    :func:`weight_gradient` started from the fp32 weight instead of ``+0``, over the batch in
    increasing ``b``, each MAC rounded once to fp32. ``dy`` carries ``-lr`` (the loss
    gradient's scale is ``-lr/B``), so no separate update (and no rounding of ``dW`` and
    ``lr`` to the operand format) is made. ``w`` is ``(M, N)``, ``dy`` ``(M, B)``, ``x``
    ``(N, B)``.
    """
    w, dy, x = _as_bits(w), _as_bits(dy), _as_bits(x)
    m, batch = dy.shape
    n = x.shape[0]
    if w.shape != (m, n):
        raise ValueError(f"w must be {m} x {n} (dY's rows by X's rows), not {w.shape!r}")
    acc = w
    for b in range(batch):
        acc = num.mac(acc, np.broadcast_to(dy[:, b:b + 1], (m, n)),
                      np.broadcast_to(x[None, :, b], (m, n)))
    return acc


def update(num, w, grad, lr_bits, velocity=None, momentum_bits=None):
    """SGD update on fp32 master values, in place semantics: returns ``(w, velocity)``.

    Without momentum: ``w <- w + q(-lr) * q(grad)`` (one MAC). With momentum ``mu``:
    ``v <- grad + q(mu) * q(v)``, then ``w <- w + q(-lr) * q(v)``. ``lr_bits`` and
    ``momentum_bits`` are fp32 bit patterns of ``lr`` and ``mu``.
    """
    w, grad = _as_bits(w), _as_bits(grad)
    neg_lr = _U(int(lr_bits) ^ (1 << 31))
    if momentum_bits is None:
        return num.mac(w, grad, np.full(w.shape, neg_lr)), None
    velocity = num.mac(grad, _as_bits(velocity), np.full(w.shape, _U(int(momentum_bits))))
    return num.mac(w, velocity, np.full(w.shape, neg_lr)), velocity


def softmax_xent_gradient(num, y, labels, inv_batch_bits):
    """``dY = (softmax(Y) - onehot) / B`` per column, through the special-function path.

    For each column: ``m = max_i Y[i]``; ``e_i = exp(Y[i] - m)``; ``s = sum_i e_i`` in fp32
    adds from ``+0``, ``i`` increasing; ``r = 1/s``; ``p_i = e_i * r`` (an fp32 product
    rounded once); ``g = p - 1`` at the label, ``p`` elsewhere; ``dY = g * (1/B)`` rounded
    once, with ``1/B`` given as an fp32 value (exact when B is a power of two).
    Returns ``(dY, p)``.
    """
    from chrysalis.sim.golden import sfu
    y = _as_bits(y)
    m_out, batch = y.shape
    values = nx.to_float(y, FP32)
    # max by value; the maximum's bit pattern (any of equal values: they add identically)
    top = y[np.argmax(values, axis=0), np.arange(batch)]
    neg_top = top ^ _U(1 << 31)
    z = num.add(y, neg_top[None, :])
    e = sfu.exp(z)
    s = zeros(batch)
    for i in range(m_out):
        s = num.add(s, e[i])
    r = sfu.reciprocal(s)
    p = nx.fmac(zeros(y.shape), e, np.broadcast_to(r, y.shape), FP32, FP32)
    one = nx.from_float32(np.float32(-1.0))
    labels = np.asarray(labels, dtype=np.int64)
    onehot = np.arange(m_out)[:, None] == labels[None, :]
    g = np.where(onehot, num.add(p, np.full(y.shape, one)), p)
    dy = nx.fmac(zeros(y.shape), g, np.full(y.shape, _U(int(inv_batch_bits))), FP32, FP32)
    return dy, p
