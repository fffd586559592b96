"""The value of one step of a :class:`sim.compile.parallel_program.ParallelProgram`,
computed with ``sim.golden.core_model`` and the ring's chain order (``sim.golden.ring``),
without commands: what the program's streams must compute on the golden cluster, bit for
bit (the data- and model-parallel sections of ``sim.compile.parallel_program``'s
docstring)."""

import numpy as np

from chrysalis.gen.spec.isa import Opcode
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden import ring
from chrysalis.sim.golden.mlp import augment

from .parallel_panels import join_rows, split_rows
from .parallel_program import MODES

__all__ = ["golden_parallel_step"]

_U = np.uint64


def _all_reduced(num, parts):
    """The sum over the cores of ``parts`` (one ``(rows, cols)`` array per core) as
    ``ALL_REDUCE`` adds it: every chunk of rows along its chain (``sim.golden.ring.chain_order``)."""
    out = np.zeros(parts[0].shape, dtype=_U)
    for end, row, rows, order in ring.chain_order(Opcode.ALL_REDUCE, len(parts),
                                                  parts[0].shape[0]):
        total = parts[order[0]][row:row + rows]
        for k in order[1:]:
            total = num.add(total, parts[k][row:row + rows])
        out[row:row + rows] = total
    return out


def golden_parallel_step(config, weights, x, labels, lr, mode, momentum=None,
                         velocities=None, update="separate"):
    """One step of a :class:`ParallelProgram`, computed with ``sim.golden.core_model``.

    Parameters
    ----------
    config : gen.spec.config.Config
        The cluster (``cluster.cores``, the core's numerics).
    weights : list of array_like
        The whole network's fp32 bits (bias last).
    x : array_like
        ``(sizes[0], batch)`` fp32 bits, without the row of ones.
    labels : array_like of int
    lr : float
    mode : {"data", "model"}
    momentum : float, optional
        Model parallel: SGD with momentum; ``velocities`` (the whole network's, one per
        layer) are then updated in place in that list.
    update : str
        ``"separate"``, or (model parallel) ``"fused"``: the loss gradient scaled by
        ``-lr/batch`` and each panel's ``W' = fused_weight_gradient(W, dY', X)``
        (``sim.compile.compiler``).

    Returns
    -------
    (list of numpy.ndarray, numpy.ndarray)
        The new weights and the logits of the forward pass (``(classes, batch)``).
    """
    num = cm.CoreNumerics.from_config(config)
    c = config.cluster.cores
    x = np.asarray(x, dtype=_U)
    labels = np.asarray(labels)
    batch = x.shape[1]
    fused = update == "fused"
    if fused and (mode != "model" or momentum is not None):
        raise ValueError(f"the fused update is model parallel's with plain SGD, not mode "
                         f"{mode!r} with momentum {momentum!r}")
    inv_batch = nx.fp32_bits(-lr / batch if fused else 1.0 / batch)
    lr_bits = nx.fp32_bits(lr)
    weights = [np.asarray(w, dtype=_U) for w in weights]
    layers = len(weights)
    if mode == "data" and momentum is not None:
        raise ValueError(f"data parallel is plain SGD, so momentum must be None, not "
                         f"{momentum!r}")
    if mode == "data":
        shard = batch // c
        grads, logits = [], []
        for k in range(c):
            cols = slice(k * shard, (k + 1) * shard)
            acts = [augment(x[:, cols])]
            for l, w in enumerate(weights):
                y = cm.forward(num, w, acts[-1])
                acts.append(augment(cm.relu(num, y)) if l < layers - 1 else y)
            logits.append(acts[-1])
            dy, _ = cm.softmax_xent_gradient(num, acts[-1], labels[cols], inv_batch)
            per_layer = [None] * layers
            for l in reversed(range(layers)):
                per_layer[l] = cm.weight_gradient(num, dy, acts[l])
                if l > 0:
                    dy = cm.relu_mask(num, cm.backward_dx(num, weights[l], dy), acts[l])[:-1]
            grads.append(per_layer)
        new = []
        for l, w in enumerate(weights):
            total = _all_reduced(num, [g[l] for g in grads])
            new.append(cm.update(num, w, total, lr_bits)[0])
        return new, np.hstack(logits)
    if mode != "model":
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")

    def step(l, w, dy, x_, rows):
        """Layer ``l``'s rows ``rows`` (a panel, or every row) after the update."""
        if fused:
            return cm.fused_weight_gradient(num, w, dy, x_)
        return update(l, w, cm.weight_gradient(num, dy, x_), rows)

    def update(l, w, dw, rows):
        """The update of layer ``l``'s rows ``rows`` (a panel, or every row)."""
        if momentum is None:
            return cm.update(num, w, dw, lr_bits)[0]
        new_w, new_v = cm.update(num, w, dw, lr_bits, velocity=velocities[l][rows],
                                 momentum_bits=nx.fp32_bits(momentum))
        velocities[l][rows] = new_v
        return new_w

    panels = [split_rows(w, c) if l < layers - 1 else None for l, w in enumerate(weights)]
    acts = [augment(x)]
    for l, w in enumerate(weights):
        if l < layers - 1:
            y = join_rows(cm.relu(num, cm.forward(num, p, acts[-1])) for p in panels[l])
            acts.append(augment(y))
        else:
            acts.append(cm.forward(num, w, acts[-1]))
    dy, _ = cm.softmax_xent_gradient(num, acts[-1], labels, inv_batch)
    new = list(weights)
    top = layers - 1
    if momentum is not None:
        velocities[:] = [np.array(v, dtype=_U) for v in velocities]
    new[top] = step(top, weights[top], dy, acts[top], slice(None))
    grad = cm.relu_mask(num, cm.backward_dx(num, weights[top], dy), acts[top])[:-1]
    for l in reversed(range(top)):
        rows = weights[l].shape[0] // c
        dys = [grad[k * rows:(k + 1) * rows] for k in range(c)]
        new[l] = join_rows(step(l, p, d, acts[l], slice(k * rows, (k + 1) * rows))
                           for k, (p, d) in enumerate(zip(panels[l], dys)))
        if l > 0:
            partials = [cm.relu_mask(num, cm.backward_dx(num, p, d), acts[l])
                        for p, d in zip(panels[l], dys)]
            # Core k's chunk of the reduce-scatter is its panel; stacked, the gradient.
            grad = _scattered(num, partials, weights[l - 1].shape[0] // c)
    return new, acts[-1]


def _scattered(num, partials, n):
    """The whole of a reduce-scatter's result: core ``k``'s ``n`` rows, stacked."""
    c = len(partials)
    out = []
    for end, row, rows, order in sorted(ring.chain_order(Opcode.REDUCE_SCATTER, c, n)):
        total = partials[order[0]][end * n:end * n + rows]
        for k in order[1:]:
            total = num.add(total, partials[k][end * n:end * n + rows])
        out.append(total)
    return np.vstack(out)
