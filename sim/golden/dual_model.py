"""Golden model of a training step with dual precision, at matrix level (pure NumPy).

The single-stream model is :mod:`sim.golden.core_model`; this module adds the per-product choice of
multiplier of a dual-precision PE (:class:`sim.golden.dual.DualPath`, ``docs/dual_precision.md``).

Mapping (``docs/dual_precision.md``): the two streams of a PE are outputs ``2q`` and
``2q + 1`` of the PE, numbered as the core's compute engine numbers them, multiplied at the
same step with the same contraction index. Per phase, in ``PE(r, c)`` of an R x C core:

``FORWARD`` (``Y = W X``, ``W`` is ``M x N``)
    outputs ``o = p1 * batch + p2`` (``p1 < mt = ceil(M/R)``), output ``Y[p1*R + r][p2]``;
    step ``s < nt = ceil(N/C)`` multiplies ``W[i][k] X[k][p2]`` with ``k = s*C + c``.
``BACKWARD`` (``dX = W^T dY``)
    outputs ``o = p1 * batch + p2`` (``p1 < nt``), output ``dX[p1*C + c][p2]``; step
    ``s < mt`` multiplies ``W[k][j] dY[k][p2]`` with ``k = s*R + r``.
``WGRAD`` (``dW = dY X^T``)
    outputs ``o = p1 * nt + p2`` (``p1 < mt``, ``p2 < nt``), output ``dW[p1*R + r][p2*C + c]``;
    step ``s < batch`` multiplies ``dY[i][s] X[j][s]``.

A product's partner is the product of output ``o ^ 1`` at the same step in the same PE (none
when ``o ^ 1`` is not an output of the phase); pair 0 is the even output. Padding (rows past
``M``, contraction indices past ``N`` or ``M``) multiplies the zeros the loads put there, so it
bypasses. The ``random`` policy's bit is ``random_bits(o_even, s, seed)``.

Each phase is one command over the whole layer, as :func:`sim.compile.compiler.compile_mlp` issues
them when the weights stay in the PEs. A streamed layer is split into commands over chunks of
rows (or columns), each numbering its outputs from 0: that can change the pairing (of WGRAD
when ``nt`` is odd, of FORWARD and BACKWARD when the batch is odd), which this model does
not follow.

Each output accumulates its products exactly as in :mod:`sim.golden.core_model` (from ``+0``, one
product per step, each added to fp32 with one rounding; the partial sums of a row or column
of PEs are reduced in the same order), so the ``single`` and ``dual-full`` policies are bit
for bit :mod:`sim.golden.core_model`; the others differ only where a product is ``LOW``.

**k-pairing** (``pairing="k"``; ``docs/dual_precision.md``): the two streams of a slot are two
k-steps of one output instead, steps ``2j`` (pair 0) and ``2j + 1`` (pair 1) of output ``o``
in the same PE, their products summed and accumulated once
(:func:`sim.golden.dual.accumulate_k_pairs`: one rounding to 24 bits, then one to fp32; an odd
last step alone). The ``random`` policy's bit is ``random_bits(o, 2j, seed)``. The partial sums
of the PEs are reduced as before. ``single`` is then still :mod:`sim.golden.core_model`, and
``dual-full`` is its own order (each pair sum rounded, then accumulated), not ``single``'s.

Counters: the functions take an optional ``counters`` dict and add, per phase
(``"forward"``, ``"backward"``, ``"wgrad"``), the products of the whole array per class:
``{"high", "low", "bypass", "padding"}`` where ``high + low + bypass`` is every product the
array computes (``R * C * outputs * steps``) and ``padding`` (a part of ``bypass``) counts
those that multiply padding.
"""

import numpy as np

from chrysalis.gen.spec.formats import FP32, product_format
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.dual import (BYPASS, HIGH, LOW, DualPath, accumulate_k_pairs,
                                       random_bits)

__all__ = ["PHASES", "PAIRINGS", "from_config", "forward", "backward_dx", "weight_gradient",
           "golden_step", "new_counters", "add_counters"]

_U = np.uint64
PHASES = ("forward", "backward", "wgrad")
#: What the two streams of a slot are: two outputs at one step, or two k-steps of one output.
PAIRINGS = ("outputs", "k")
_KEYS = ("high", "low", "bypass", "padding")


def new_counters():
    """Zero counters: ``{phase: {"high", "low", "bypass", "padding"}}``."""
    return {phase: dict.fromkeys(_KEYS, 0) for phase in PHASES}


def add_counters(total, counters):
    """Add ``counters`` into ``total`` (both as :func:`new_counters`); returns ``total``."""
    for phase, row in counters.items():
        dest = total.setdefault(phase, dict.fromkeys(_KEYS, 0))
        for key, value in row.items():
            dest[key] = dest.get(key, 0) + int(value)
    return total


def from_config(config):
    """``(CoreNumerics, DualPath)`` of a :class:`gen.spec.config.Config`. A dual policy needs
    ``pe.acc_regs / 2`` even, so that outputs ``2q`` and ``2q + 1`` share a group."""
    if config.mac.dual != "single":
        group = config.pe.acc_regs // 2
        if config.pe.acc_regs % 2 or group % 2:
            raise ValueError(f"a dual policy needs pe.acc_regs / 2 even, not "
                             f"{config.pe.acc_regs} / 2")
    return cm.CoreNumerics.from_config(config), DualPath.from_config(config)


def _check(num, dual):
    if dual.operand != num.operand:
        raise ValueError(f"the dual path's operand {dual.operand!r} is not the core's "
                         f"{num.operand!r}")


def _pad(bits, rows, cols):
    """``bits`` (fp32) zero-padded (``+0``) to ``rows x cols``."""
    out = np.zeros((rows, cols), dtype=_U)
    out[:bits.shape[0], :bits.shape[1]] = bits
    return out


def _slots(num, dual, a, b, valid, seed, counters, phase, pairing="outputs"):
    """Accumulate the products ``q(a) * q(b)`` of every slot, with dual precision.

    ``a`` and ``b`` are fp32 bits of shape ``(O, R, C, S)`` (output, PE row, PE column,
    step; padding is ``+0``), ``valid`` a boolean array broadcastable to it that is false on
    padding products. Returns the accumulators ``(O, R, C)`` (fp32 bits): per output, from
    ``+0``, the products of the valid steps in increasing step, each rounded once into fp32.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}, not {pairing!r}")
    if pairing == "k":
        return _k_slots(num, dual, a, b, valid, seed, counters, phase)
    outputs, rows, cols, steps = a.shape
    qa, qb = num.q(a), num.q(b)
    valid = np.broadcast_to(valid, a.shape)
    if outputs % 2:       # the missing partner of the last output: no pair 1
        pad = np.zeros((1, rows, cols, steps), dtype=_U)
        qa, qb = np.concatenate([qa, pad]), np.concatenate([qb, pad])
    pairs = qa.shape[0] // 2
    even = 2 * np.arange(pairs)
    pair1 = (even + 1 < outputs)[:, None, None, None]
    bit = random_bits(even[:, None, None, None], np.arange(steps)[None, None, None, :],
                      seed)
    p0, p1, c0, c1 = dual.products(qa[0::2], qb[0::2], qa[1::2], qb[1::2], pair1, bit)
    products = np.empty(qa.shape, dtype=_U)
    classes = np.empty(qa.shape, dtype=np.int64)
    products[0::2], products[1::2] = p0, p1
    classes[0::2], classes[1::2] = c0, c1
    products, classes = products[:outputs], classes[:outputs]
    if counters is not None:
        row = counters.setdefault(phase, dict.fromkeys(_KEYS, 0))
        row["high"] += int(np.count_nonzero(classes == HIGH))
        row["low"] += int(np.count_nonzero(classes == LOW))
        row["bypass"] += int(np.count_nonzero(classes == BYPASS))
        row["padding"] += int(np.count_nonzero(~valid))
    pf = product_format(num.operand)
    acc = cm.zeros((outputs, rows, cols))
    for s in range(steps):
        new = nx.fadd(acc, FP32, products[..., s], pf, FP32)
        acc = np.where(valid[..., s], new, acc)
    return acc


def _k_slots(num, dual, a, b, valid, seed, counters, phase):
    """:func:`_slots` with k-pairing: steps ``2j`` and ``2j + 1`` of an output share slot
    ``j``; the ``random`` bit of slot ``(o, j)`` is ``random_bits(o, 2j, seed)``."""
    outputs, steps = a.shape[0], a.shape[-1]
    valid = np.broadcast_to(valid, a.shape)
    first = 2 * np.arange(-(-steps // 2))
    bit = random_bits(np.arange(outputs)[:, None, None, None], first[None, None, None, :], seed)
    counts = np.zeros(3, dtype=np.int64)
    acc = accumulate_k_pairs(dual, num.q(a), num.q(b), bit, valid, counts)
    if counters is not None:
        row = counters.setdefault(phase, dict.fromkeys(_KEYS, 0))
        for key, count in zip(("high", "low", "bypass"), counts):
            row[key] += int(count)
        row["padding"] += int(np.count_nonzero(~valid))
    return acc


def forward(num, dual, w, x, seed=0, counters=None, pairing="outputs"):
    """``Y = W X``: ``w`` is ``(M, N)``, ``x`` is ``(N, B)`` fp32 bits; returns ``(M, B)``."""
    _check(num, dual)
    w, x = np.asarray(w, dtype=_U), np.asarray(x, dtype=_U)
    (m, n), batch = w.shape, x.shape[1]
    R, C = num.rows, num.cols
    mt, nt = -(-m // R), -(-n // C)
    wp, xp = _pad(w, mt * R, nt * C), _pad(x, nt * C, batch)
    # a[o, r, c, s] = W[p1*R + r][s*C + c], b[o, r, c, s] = X[s*C + c][p2]
    a = wp.reshape(mt, R, nt, C).transpose(0, 1, 3, 2)              # (mt, R, C, nt)
    a = np.broadcast_to(a[:, None], (mt, batch, R, C, nt)).reshape(mt * batch, R, C, nt)
    bx = xp.reshape(nt, C, batch).transpose(2, 1, 0)                # (batch, C, nt)
    b = np.broadcast_to(bx[None, :, None], (mt, batch, R, C, nt)).reshape(mt * batch, R, C, nt)
    k = np.arange(nt)[None, :] * C + np.arange(C)[:, None]           # (C, nt)
    rows = (np.arange(mt)[:, None] * R + np.arange(R)[None, :])     # (mt, R)
    valid = (k[None, None, None] < n) & (rows[:, None, :, None, None] < m)
    valid = np.broadcast_to(valid, (mt, batch, R, C, nt)).reshape(mt * batch, R, C, nt)
    acc = _slots(num, dual, a, b, valid, seed, counters, "forward", pairing)
    # (o, r, c) -> partials (i, c, b)
    partials = acc.reshape(mt, batch, R, C).transpose(0, 2, 3, 1).reshape(mt * R, C, batch)
    return cm.edge_reduce(num, partials[:m], axis=1)


def backward_dx(num, dual, w, dy, seed=0, counters=None, pairing="outputs"):
    """``dX = W^T dY``: ``w`` is ``(M, N)``, ``dy`` is ``(M, B)``; returns ``(N, B)``."""
    _check(num, dual)
    w, dy = np.asarray(w, dtype=_U), np.asarray(dy, dtype=_U)
    (m, n), batch = w.shape, dy.shape[1]
    R, C = num.rows, num.cols
    mt, nt = -(-m // R), -(-n // C)
    wp, dyp = _pad(w, mt * R, nt * C), _pad(dy, mt * R, batch)
    # a[o, r, c, s] = W[s*R + r][p1*C + c], b[o, r, c, s] = dY[s*R + r][p2]
    a = wp.reshape(mt, R, nt, C).transpose(2, 1, 3, 0)              # (nt, R, C, mt)
    a = np.broadcast_to(a[:, None], (nt, batch, R, C, mt)).reshape(nt * batch, R, C, mt)
    bd = dyp.reshape(mt, R, batch).transpose(2, 1, 0)               # (batch, R, mt)
    b = np.broadcast_to(bd[None, :, :, None], (nt, batch, R, C, mt)).reshape(
        nt * batch, R, C, mt)
    k = np.arange(mt)[None, :] * R + np.arange(R)[:, None]           # (R, mt)
    cols = np.arange(nt)[:, None] * C + np.arange(C)[None, :]        # (nt, C)
    valid = (k[None, None, :, None, :] < m) & (cols[:, None, None, :, None] < n)
    valid = np.broadcast_to(valid, (nt, batch, R, C, mt)).reshape(nt * batch, R, C, mt)
    acc = _slots(num, dual, a, b, valid, seed, counters, "backward", pairing)
    # (o, r, c) -> partials (j, r, b)
    partials = acc.reshape(nt, batch, R, C).transpose(0, 3, 2, 1).reshape(nt * C, R, batch)
    return cm.edge_reduce(num, partials[:n], axis=1)


def weight_gradient(num, dual, dy, x, seed=0, counters=None, pairing="outputs"):
    """``dW = dY X^T``: ``dy`` is ``(M, B)``, ``x`` is ``(N, B)``; returns ``(M, N)``, each
    element accumulated from ``+0`` over ``b`` in increasing order."""
    _check(num, dual)
    dy, x = np.asarray(dy, dtype=_U), np.asarray(x, dtype=_U)
    (m, batch), n = dy.shape, x.shape[0]
    R, C = num.rows, num.cols
    mt, nt = -(-m // R), -(-n // C)
    dyp, xp = _pad(dy, mt * R, batch), _pad(x, nt * C, batch)
    # a[o, r, c, s] = dY[p1*R + r][s], b[o, r, c, s] = X[p2*C + c][s]
    ad = dyp.reshape(mt, R, batch)
    a = np.broadcast_to(ad[:, None, :, None, :], (mt, nt, R, C, batch)).reshape(
        mt * nt, R, C, batch)
    bx = xp.reshape(nt, C, batch)
    b = np.broadcast_to(bx[None, :, None, :, :], (mt, nt, R, C, batch)).reshape(
        mt * nt, R, C, batch)
    rows = np.arange(mt)[:, None] * R + np.arange(R)[None, :]        # (mt, R)
    cols = np.arange(nt)[:, None] * C + np.arange(C)[None, :]        # (nt, C)
    valid = (rows[:, None, :, None, None] < m) & (cols[None, :, None, :, None] < n)
    valid = np.broadcast_to(valid, (mt, nt, R, C, batch)).reshape(mt * nt, R, C, batch)
    acc = _slots(num, dual, a, b, valid, seed, counters, "wgrad", pairing)
    grad = acc.reshape(mt, nt, R, C).transpose(0, 2, 1, 3).reshape(mt * R, nt * C)
    return grad[:m, :n]


def golden_step(num, dual, weights, x, labels, lr, with_gradient=False, momentum=None,
                velocities=None, seed=0, counters=None, pairing="outputs"):
    """One SGD step as :func:`sim.golden.mlp.golden_step`, with the forward pass, the backward
    pass and the weight gradient of a dual-precision core. The loss gradient and the update
    (whose MAC is single-stream) are :mod:`sim.golden.core_model`'s. ``pairing`` is one of
    :data:`PAIRINGS`."""
    from chrysalis.sim.golden import mlp
    phases = (lambda w, a: forward(num, dual, w, a, seed, counters, pairing),
              lambda w, dy: backward_dx(num, dual, w, dy, seed, counters, pairing),
              lambda dy, a: weight_gradient(num, dual, dy, a, seed, counters, pairing))
    return mlp.golden_step(num, weights, x, labels, lr, with_gradient=with_gradient,
                                momentum=momentum, velocities=velocities, phases=phases)
