# amaranth: UnusedElaboratable=no
"""Complete training steps of small MLPs on a 4x4 core in Amaranth's simulator: forward,
loss gradient, backward, weight gradient and update, bit-exact with the golden model."""

import numpy as np
import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.isa import Opcode
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden.mlp import augment, golden_step, mlp_case
from chrysalis.sim.compile.compiler import compile_mlp
from chrysalis.sim.verify.core_sim import CoreRunner

CORE_4X4 = with_overrides(PRESETS["default"], {"pe.weight_words": 256, "pe.act_words": 256,
                                               "core.scratchpad_words": 4096})


#: A core whose weight banks hold 4 words: the 12-8-5 network's weights are streamed from
#: the scratchpad in chunks of rows and columns every step.
STREAMING_4X4 = with_overrides(CORE_4X4, {"pe.weight_words": 4, "pe.act_words": 64})


def run_training(config, prog, case, read_gradients=True):
    """The steps of ``case`` on the RTL: the output gradient after every step (if asked),
    then the weights and velocities, as read back from the scratchpad."""
    batch = prog.batch
    core = CoreRunner(config)
    run = lambda command: core.command(**{**command, "op": Opcode[command["op"]]})
    for matrix, w in zip(prog.weights, case.weights):
        core.write(matrix, w)
    for matrix in prog.velocities:               # momentum starts from zero velocities
        core.write(matrix, np.zeros((matrix.n, matrix.batch), dtype=np.uint64))
    for command in prog.load_weights:
        run(command)
    for act in prog.acts[1:-1]:                 # the rows of ones of the hidden layers
        ones = np.zeros((act.n, batch), dtype=np.uint64)
        ones[-1] = 0x3F80_0000
        core.write(act, ones)
    for command in prog.setup:                  # the tiles of ones kept in the PEs
        run(command)
    for x, labels in zip(case.inputs, case.labels):
        core.write(prog.acts[0], augment(x))
        core.write(prog.labels, labels[None, :].astype(np.uint64))
        for command in prog.step:
            run(command)
        if read_gradients:
            core.read(prog.grads[-1])
    for command in prog.store_weights:
        run(command)
    for matrix in prog.weights + prog.velocities:
        core.read(matrix)
    return core.run()


# "resident" is `slow`: the default suite trains the same network on the same core (batch 4,
# two steps, the loss gradient after each and every weight at the end) under Icarus and
# Verilator, tests/sim/verify/test_cocotb_training.py.
@pytest.mark.parametrize("config,sizes,batch,steps", [
    pytest.param(CORE_4X4, [12, 8, 5], 4, 2, marks=pytest.mark.slow, id="resident"),
    pytest.param(CORE_4X4, [9, 6, 7, 3], 2, 1, id="four-layers"),
    pytest.param(STREAMING_4X4, [12, 8, 5], 4, 2, id="streamed")])
def test_training_steps_equal_golden(config, sizes, batch, steps):
    case = mlp_case(sizes, batch, steps, seed=sum(sizes))
    prog = compile_mlp(config, sizes, batch, case.lr)
    assert prog.streamed == (config is STREAMING_4X4)
    outputs = run_training(config, prog, case)

    num = cm.CoreNumerics.from_config(config)
    weights = case.weights
    for step, (x, labels) in enumerate(zip(case.inputs, case.labels)):
        weights, _, grad = golden_step(num, weights, x, labels, case.lr, with_gradient=True)
        assert np.array_equal(outputs[step][:-1], grad), f"loss gradient of step {step}"
    for layer, got in enumerate(outputs[steps:]):
        assert np.array_equal(got, weights[layer]), f"weights of layer {layer}"
        assert not np.array_equal(got, case.weights[layer]), "the update changed nothing"


def test_a_network_that_does_not_fit_is_refused_clearly():
    tight = with_overrides(CORE_4X4, {"core.scratchpad_words": 65536, "pe.weight_words": 16,
                                      "pe.act_words": 512})
    with pytest.raises(ValueError, match=r"^layer 0 \(100 x 201\) cannot fit even tiled: a tile "
                                         r"of 4 rows needs 51 words per PE, more than "
                                         r"pe.weight_words = 16$"):
        compile_mlp(tight, [200, 100, 10], 4, 0.1)
    with pytest.raises(ValueError, match=r"^weights of layer 0 of 100 x 201 needs 5025 "
                                         r"scratchpad lines; only 584 of 1024 are left$"):
        compile_mlp(CORE_4X4, [200, 100, 10], 4, 0.1)


def test_training_steps_with_momentum_equal_golden():
    sizes, batch, steps, mu = [10, 7, 4], 3, 2, 0.875
    case = mlp_case(sizes, batch, steps, seed=5)
    prog = compile_mlp(CORE_4X4, sizes, batch, case.lr, momentum=mu)
    outputs = run_training(CORE_4X4, prog, case, read_gradients=False)

    num = cm.CoreNumerics.from_config(CORE_4X4)
    weights = case.weights
    velocities = [cm.zeros(w.shape) for w in weights]
    for x, labels in zip(case.inputs, case.labels):
        weights, _ = golden_step(num, weights, x, labels, case.lr, momentum=mu,
                                 velocities=velocities)
    for got, want in zip(outputs, weights + velocities):
        assert np.array_equal(got, want)
    with pytest.raises(ValueError, match=r"^momentum keeps a velocity beside every weight"):
        compile_mlp(STREAMING_4X4, [12, 8, 5], 4, 0.1, momentum=0.9)
