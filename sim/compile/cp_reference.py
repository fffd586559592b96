"""Continuous propagation computed from its staleness rule on ``sim.golden.core_model``,
without commands: what :class:`sim.compile.cp_program.CpProgram`'s streams must compute on
the golden cluster, bit for bit (the staleness section of its module's docstring)."""

import numpy as np

from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.mlp import augment

from .compiler import check_sizes
from .cp_stages import assign_stages, forward_version, staleness

__all__ = ["cp_reference"]


def cp_reference(config, sizes, weights, x_bits, labels, lr, batch=1, stages=None,
                 update="separate"):
    """Continuous propagation computed from its staleness rule on ``sim.golden.core_model``.

    Micro-batch by micro-batch: the forward pass of ``s`` through layer ``l`` (stage
    ``k``) with ``W_l^{forward_version(s, k, c)}``, the loss gradient, then from the top
    layer down the input gradient through ``W_l^s``, masked by the stored activations, and
    the update of ``W_l^s`` by ``q(dY X^T) q(-lr)``.

    Parameters
    ----------
    config : gen.spec.config.Config
        The core numerics and ``cluster.cores``.
    sizes : sequence of int
    weights : list of array
        Initial weights, fp32 bit patterns, bias last.
    x_bits : array
        ``(sizes[0], samples)`` fp32 bits.
    labels : array of int
    lr : float
    batch : int
    stages : list of tuple, optional
        The stages (default :func:`assign_stages`).
    update : str
        ``"separate"``, or ``"fused"``: the loss gradient scaled by ``-lr/batch`` and
        ``W_l^{s+1} = fused_weight_gradient(W_l^s, dY', X)`` (``sim.compile.compiler``).

    Returns
    -------
    (list of ndarray, ndarray)
        The weights after every update, and the logits of every sample's forward pass
        (``(sizes[-1], samples)`` bits).
    """
    sizes = check_sizes(sizes)
    num = cm.CoreNumerics.from_config(config)
    c = config.cluster.cores
    stages = assign_stages(sizes, c) if stages is None else stages
    stage_of = {l: k for k, ls in enumerate(stages) for l in ls}
    layers = len(sizes) - 1
    x_bits = np.asarray(x_bits, dtype=np.uint64)
    labels = np.asarray(labels)
    # history[l][v] is W_l^v; only the versions a later forward pass can ask for are kept.
    history = [{0: np.asarray(w, dtype=np.uint64)} for w in weights]
    keep = max(staleness(k, c) for k in range(c))
    fused = update == "fused"
    lr_bits = nx.fp32_bits(lr)
    inv_batch = nx.fp32_bits(-lr / batch if fused else 1.0 / batch)
    logits = []
    for s in range(x_bits.shape[1] // batch):
        cols = slice(s * batch, (s + 1) * batch)
        acts = [augment(x_bits[:, cols])]
        for l in range(layers):
            w = history[l][forward_version(s, stage_of[l], c)]
            y = cm.forward(num, w, acts[-1])
            acts.append(augment(cm.relu(num, y)) if l < layers - 1 else y)
        logits.append(acts[-1])
        grad, _ = cm.softmax_xent_gradient(num, acts[-1], labels[cols], inv_batch)
        for l in reversed(range(layers)):
            w = history[l][s]
            below = None
            if l > 0:
                below = cm.relu_mask(num, cm.backward_dx(num, w, grad), acts[l])[:-1]
            if fused:
                history[l][s + 1] = cm.fused_weight_gradient(num, w, grad, acts[l])
            else:
                dw = cm.weight_gradient(num, grad, acts[l])
                history[l][s + 1] = cm.update(num, w, dw, lr_bits)[0]
            history[l].pop(s - keep, None)
            grad = below
    final = len(logits)
    return [h[final] for h in history], np.concatenate(logits, axis=1)
