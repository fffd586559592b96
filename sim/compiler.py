"""Compile one training step of an MLP into core commands, and its golden reference.

The network: fully connected layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, ReLU after
every hidden layer, softmax cross-entropy at the output, SGD with learning rate ``lr``.
Biases are folded into the weights: layer ``l`` has an ``sizes[l+1] x (sizes[l] + 1)``
matrix whose last column is the bias, and its input carries a row of ones (written once).

Layout: every layer's weights stay in the PEs' weight banks (loaded once with ``LOAD_W``);
each layer's input and output-gradient tiles have their own place in the activation banks,
so the weight gradient finds them after the backward pass; the scratchpad holds the
activations, gradients and labels of the minibatch. A network that does not fit raises a
``ValueError`` that says what does not fit and by how much.

Command order of a step: for each layer, ``LOAD_COL`` its input and ``FORWARD`` (ReLU on
hidden layers); ``LOSS_GRAD``; then from the last layer down: ``LOAD_ROW`` its output
gradient, ``BACKWARD`` (not for the first layer; ReLU mask from the stored activations) and
``WGRAD`` (gradient and update in place).
"""

from dataclasses import dataclass, field

import numpy as np

from gen.formats import FP32
from sim import core_model as cm
from sim import numerics as nx
from sim.layout import Allocator, Matrix, bank_count, tiles

__all__ = ["MlpProgram", "compile_mlp", "augment", "golden_step", "MlpCase", "mlp_case"]

ONE = 0x3F80_0000


def _bits32(value):
    return int(nx.from_float32(np.float32(value)))


@dataclass
class MlpProgram:
    """The placement of an MLP on a core and the commands of one training step.

    Members
    -------
    sizes : list of int
    batch : int
    weights : list of Matrix
        Scratchpad matrices to load the weights from (and store them back to).
    wbase : list of int
        Weight-bank base of each layer.
    acts : list of Matrix
        ``acts[0]`` is the input minibatch (with its row of ones), ``acts[l]`` the output of
        layer ``l - 1`` (after ReLU, with a row of ones except for the last).
    grads : list of Matrix
        ``grads[l]`` is the gradient at the output of layer ``l`` (pre-activation).
    labels : Matrix
        One integer word per sample.
    load_weights, step, store_weights : list of dict
        Core commands (fields of ``hw.core.command_layout``; ``op`` as a name).
    """

    sizes: list
    batch: int
    weights: list = field(default_factory=list)
    wbase: list = field(default_factory=list)
    acts: list = field(default_factory=list)
    grads: list = field(default_factory=list)
    labels: Matrix = None
    load_weights: list = field(default_factory=list)
    step: list = field(default_factory=list)
    store_weights: list = field(default_factory=list)


def _lines(matrix, prefix="sp"):
    return {f"{prefix}_base": matrix.base, f"{prefix}_lpc": matrix.lines_per_column}


def compile_mlp(config, sizes, batch, lr):
    """Place an MLP on ``config``'s core and list the commands of one SGD step."""
    if len(sizes) < 2 or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    R, C = config.core.rows, config.core.cols
    banks = bank_count(R, C)
    alloc = Allocator(config.core.scratchpad_words, banks)
    prog = MlpProgram(list(sizes), batch)
    layers = len(sizes) - 1
    # Inputs and activations carry a row of ones (the bias input), except the network output.
    for l in range(layers + 1):
        rows = sizes[l] + (1 if l < layers else 0)
        prog.acts.append(alloc.matrix(rows, batch, f"activations of layer {l}"))
    for l in range(layers):
        prog.grads.append(alloc.matrix(sizes[l + 1] + 1, batch, f"gradient of layer {l}"))
    prog.labels = alloc.matrix(1, batch, "labels")
    for l in range(layers):
        prog.weights.append(alloc.matrix(sizes[l + 1], sizes[l] + 1, f"weights of layer {l}"))

    weight_next, act_next = 0, 0
    act_x, act_dy = [], []
    for l in range(layers):
        m, n = sizes[l + 1], sizes[l] + 1
        mt, nt = tiles(m, R), tiles(n, C)
        prog.wbase.append(weight_next)
        weight_next += mt * nt
        act_x.append(act_next)
        act_next += nt * batch
        act_dy.append(act_next)
        act_next += mt * batch
    if weight_next > config.pe.weight_words:
        raise ValueError(f"the weights need {weight_next} words per PE, more than "
                         f"pe.weight_words = {config.pe.weight_words}")
    if act_next > config.pe.act_words:
        raise ValueError(f"inputs and gradients need {act_next} words per PE, more than "
                         f"pe.act_words = {config.pe.act_words}")

    neg_lr = _bits32(-lr)
    inv_batch = _bits32(1.0 / batch)
    for l in range(layers):
        m, n = sizes[l + 1], sizes[l] + 1
        prog.load_weights.append(dict(op="LOAD_W", m=m, n=n, wbase=prog.wbase[l],
                                      **_lines(prog.weights[l])))
        prog.store_weights.append(dict(op="STORE_W", m=m, n=n, wbase=prog.wbase[l],
                                       **_lines(prog.weights[l])))
    for l in range(layers):
        m, n = sizes[l + 1], sizes[l] + 1
        prog.step.append(dict(op="LOAD_COL", n=n, batch=batch, abase=act_x[l],
                              **_lines(prog.acts[l])))
        prog.step.append(dict(op="FORWARD", m=m, n=n, batch=batch, wbase=prog.wbase[l],
                              abase=act_x[l], flag=int(l < layers - 1),
                              **_lines(prog.acts[l + 1])))
    prog.step.append(dict(op="LOSS_GRAD", m=sizes[-1], batch=batch, scalar=inv_batch,
                          **_lines(prog.acts[-1]), **_lines(prog.grads[-1], "sp2"),
                          **_lines(prog.labels, "sp3")))
    for l in reversed(range(layers)):
        m, n = sizes[l + 1], sizes[l] + 1
        prog.step.append(dict(op="LOAD_ROW", m=m, batch=batch, abase=act_dy[l],
                              **_lines(prog.grads[l])))
        if l > 0:
            prog.step.append(dict(op="BACKWARD", m=m, n=n, batch=batch, wbase=prog.wbase[l],
                                  abase=act_dy[l], flag=1, **_lines(prog.grads[l - 1]),
                                  **_lines(prog.acts[l], "sp2")))
        prog.step.append(dict(op="WGRAD", m=m, n=n, batch=batch, wbase=prog.wbase[l],
                              abase=act_x[l], abase2=act_dy[l], scalar=neg_lr))
    return prog


def augment(x):
    """fp32 bit patterns of an ``(n, batch)`` input with a row of ones below."""
    x = np.asarray(x, dtype=np.uint64)
    return np.vstack([x, np.full((1, x.shape[1]), ONE, dtype=np.uint64)])


def golden_step(num, weights, x, labels, lr, with_gradient=False):
    """One SGD step on the golden model; returns the new weights and the softmax output
    (and the loss gradient at the output, with ``with_gradient``).

    ``weights`` are the augmented fp32 matrices (bias in the last column), ``x`` the
    ``(sizes[0], batch)`` input bits, ``labels`` integers. Every value follows the order the
    core computes it in (``sim.core_model``).
    """
    batch = x.shape[1]
    layers = len(weights)
    acts = [augment(x)]
    for l, w in enumerate(weights):
        y = cm.forward(num, w, acts[-1])
        if l < layers - 1:
            acts.append(augment(cm.relu(num, y)))
        else:
            acts.append(y)
    grad, probs = cm.softmax_xent_gradient(num, acts[-1], labels, _bits32(1.0 / batch))
    output_grad = grad
    new_weights = list(weights)
    for l in reversed(range(layers)):
        w = weights[l]
        below = None
        if l > 0:
            below = cm.relu_mask(num, cm.backward_dx(num, w, grad), acts[l])[:-1]
        new_weights[l], _ = cm.update(num, w, cm.weight_gradient(num, grad, acts[l]),
                                      _bits32(lr))
        grad = below
    if with_gradient:
        return new_weights, probs, output_grad
    return new_weights, probs


@dataclass
class MlpCase:
    """Seeded random weights, inputs and labels for testing training steps."""

    weights: list
    inputs: list
    labels: list
    lr: float = 0.25


def mlp_case(sizes, batch, steps, seed):
    """Weights scaled by 1/sqrt(fan-in), inputs uniform in [0, 1), labels uniform."""
    rng = np.random.default_rng(seed)
    f32 = lambda v: nx.from_float32(np.asarray(v, dtype=np.float32))
    weights = [f32(rng.standard_normal((sizes[l + 1], sizes[l] + 1)) / np.sqrt(sizes[l]))
               for l in range(len(sizes) - 1)]
    inputs = [f32(rng.random((sizes[0], batch))) for _ in range(steps)]
    labels = [rng.integers(0, sizes[-1], batch) for _ in range(steps)]
    return MlpCase(weights, inputs, labels)
