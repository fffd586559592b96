# amaranth: UnusedElaboratable=no
"""One complete training step of a small MLP on a 4x4 core: forward, loss gradient,
backward, weight gradient and update, every word bit-exact with the golden model."""

import numpy as np
import pytest

from gen.config import PRESETS, with_overrides
from hw.core import CoreOp
from sim import core_model as cm
from sim import numerics as nx
from sim.compiler import augment, compile_mlp, golden_step
from sim.core_sim import CoreRunner

CORE_4X4 = with_overrides(PRESETS["default"], {"pe.weight_words": 256, "pe.act_words": 256,
                                               "core.scratchpad_words": 4096})


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def run_step(config, sizes, batch, seed, steps=1):
    rng = np.random.default_rng(seed)
    weights = [_f32(rng.standard_normal((sizes[l + 1], sizes[l] + 1)) / np.sqrt(sizes[l]))
               for l in range(len(sizes) - 1)]
    xs = [_f32(rng.random((sizes[0], batch))) for _ in range(steps)]
    labels = [rng.integers(0, sizes[-1], batch) for _ in range(steps)]
    lr = 0.25
    prog = compile_mlp(config, sizes, batch, lr)

    core = CoreRunner(config)
    for matrix, w in zip(prog.weights, weights):
        core.write(matrix, w)
    for command in prog.load_weights:
        core.command(**{**command, "op": CoreOp[command["op"]]})
    for act in prog.acts[1:-1]:               # the rows of ones of the hidden layers
        ones = np.zeros((act.n, batch), dtype=np.uint64)
        ones[-1] = 0x3F80_0000
        core.write(act, ones)
    for x, label in zip(xs, labels):
        core.write(prog.acts[0], augment(x))
        core.write(prog.labels, label[None, :].astype(np.uint64))
        for command in prog.step:
            core.command(**{**command, "op": CoreOp[command["op"]]})
        core.read(prog.grads[-1])
    for command in prog.store_weights:
        core.command(**{**command, "op": CoreOp[command["op"]]})
    for matrix in prog.weights:
        core.read(matrix)
    return weights, xs, labels, lr, core


@pytest.mark.parametrize("sizes,batch,steps", [([12, 8, 5], 4, 2), ([9, 6, 7, 3], 2, 1)])
def test_training_steps_equal_golden(sizes, batch, steps):
    weights, xs, labels, lr, core = run_step(CORE_4X4, sizes, batch, seed=sum(sizes), steps=steps)
    outputs = core.run()
    num = cm.CoreNumerics.from_config(CORE_4X4)
    expected = weights
    for step, (x, label) in enumerate(zip(xs, labels)):
        new, probs = golden_step(num, expected, x, label, lr)
        # The output-layer gradient of this step, as the core left it in the scratchpad.
        grad, _ = cm.softmax_xent_gradient(
            num, cm.forward(num, expected[-1], _hidden(num, expected, x)), label,
            int(nx.from_float32(np.float32(1.0 / len(label)))))
        assert np.array_equal(outputs[step][:-1], grad), f"loss gradient of step {step}"
        expected = new
    for layer, (got, want) in enumerate(zip(outputs[steps:], expected)):
        assert np.array_equal(got, want), f"weights of layer {layer} after {steps} step(s)"
        assert not np.array_equal(got, weights[layer]), "the update changed nothing"


def _hidden(num, weights, x):
    """The input of the last layer (with its row of ones)."""
    act = augment(x)
    for w in weights[:-1]:
        act = augment(cm.relu(num, cm.forward(num, w, act)))
    return act
