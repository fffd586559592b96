"""Golden model of one training step of an MLP, at matrix level (pure NumPy).

The network and its conventions are the compiler's (:mod:`chrysalis.sim.compile.compiler`):
biases folded into the weights as a last column, an input row of ones, ReLU after every
hidden layer, softmax cross-entropy at the output, SGD (optionally with momentum). Every
value follows the order the core computes it in (:mod:`chrysalis.sim.golden.core_model`).
"""

from dataclasses import dataclass

import numpy as np

from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx

__all__ = ["ONE", "augment", "golden_step", "MlpCase", "mlp_case"]

#: fp32 1.0: the bias input row and the ones the compiler writes.
ONE = 0x3F80_0000


def augment(x):
    """fp32 bit patterns of an ``(n, batch)`` input with a row of ones below."""
    x = np.asarray(x, dtype=np.uint64)
    return np.vstack([x, np.full((1, x.shape[1]), ONE, dtype=np.uint64)])


def golden_step(num, weights, x, labels, lr, with_gradient=False, momentum=None,
                velocities=None, phases=None, update="separate"):
    """One SGD step on the golden model; returns the new weights and the softmax output
    (and the loss gradient at the output, with ``with_gradient``). With ``momentum``, the
    ``velocities`` (one per layer) are updated in place in that list.

    ``weights`` are the augmented fp32 matrices (bias in the last column), ``x`` the
    ``(sizes[0], batch)`` input bits, ``labels`` integers. Every value follows the order the
    core computes it in (``sim.golden.core_model``). ``phases``, if given, replaces the matrix
    products: ``(forward(w, x), backward_dx(w, dy), weight_gradient(dy, x))`` (the
    dual-precision core's, ``sim.golden.dual_model``); the loss gradient and the update stay.
    ``update = "fused"`` (plain SGD, one stream): the loss gradient is scaled by ``-lr/B``
    and each layer's weights by ``sim.golden.core_model.fused_weight_gradient``, as
    ``sim.compile.compiler`` compiles it.
    """
    fused = update == "fused"
    if update not in ("fused", "separate"):
        raise ValueError(f"update must be 'fused' or 'separate', not {update!r}")
    if fused and (momentum is not None or phases is not None):
        raise ValueError("the fused update is plain SGD on one MAC stream: no momentum, "
                         "no phases")
    if phases is None:
        phases = (lambda w, a: cm.forward(num, w, a),
                  lambda w, dy: cm.backward_dx(num, w, dy),
                  lambda dy, a: cm.weight_gradient(num, dy, a))
    forward, backward_dx, weight_gradient = phases
    batch = x.shape[1]
    layers = len(weights)
    acts = [augment(x)]
    for l, w in enumerate(weights):
        y = forward(w, acts[-1])
        if l < layers - 1:
            acts.append(augment(cm.relu(num, y)))
        else:
            acts.append(y)
    scale = nx.fp32_bits(-lr / batch if fused else 1.0 / batch)
    grad, probs = cm.softmax_xent_gradient(num, acts[-1], labels, scale)
    output_grad = grad
    new_weights = list(weights)
    for l in reversed(range(layers)):
        w = weights[l]
        below = None
        if l > 0:
            below = cm.relu_mask(num, backward_dx(w, grad), acts[l])[:-1]
        if fused:
            new_weights[l] = cm.fused_weight_gradient(num, w, grad, acts[l])
            grad = below
            continue
        dw = weight_gradient(grad, acts[l])
        if momentum is None:
            new_weights[l], _ = cm.update(num, w, dw, nx.fp32_bits(lr))
        else:
            new_weights[l], velocities[l] = cm.update(
                num, w, dw, nx.fp32_bits(lr),
                velocity=velocities[l], momentum_bits=nx.fp32_bits(momentum))
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
