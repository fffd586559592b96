"""The CNN compiler (``sim.compile.cnn_program``): the program run on the golden machine
(``sim.golden.machine``) for consecutive SGD steps gives, bit for bit, the logits and the
weights of the golden CNN step (``sim.golden.cnn.CnnGolden``), which composes the core
model's functions in the commands' order; its placement, tiling and refusals."""

import numpy as np
import pytest

from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.spec.model import (Conv2d, Dense, Flatten, Model, ReLU, digits_cnn,
                                      mlp_model)
from chrysalis.sim.compile.cnn_program import CnnTrainingProgram, compile_cnn
from chrysalis.sim.compile.job import run_job_golden, training_job
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.cnn import CnnGolden
from chrysalis.sim.golden.core_model import CoreNumerics
from chrysalis.sim.golden.machine import Machine
from chrysalis.sim.train.cnn import initial_weights
from tests.sim.golden.test_cnn import TINY as EVERY_CASE

TINY = get_preset("tiny")
DEFAULT = get_preset("default")
#: A CNN that fits the tiny core (2 x 2 PEs, 1,024 scratchpad words, 64 words per bank) at
#: batch 2: a 3x3 convolution of stride 1 with padding, whose FORWARD takes two column
#: tiles, one of stride 2, a flatten and a dense layer.
TINY_CNN = Model("tiny-cnn", (1, 3, 3), (
    Conv2d(1, 2, 3, stride=1, pad=1), ReLU(),
    Conv2d(2, 2, 3, stride=2, pad=1), ReLU(),
    Flatten(), Dense(8, 3)))


def minibatches(model, batch, steps, seed):
    """``steps`` minibatches of random images (a third of the pixels zero) and labels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.uniform(0, 1, (model.input_features, batch)).astype(np.float32)
        x[rng.random(x.shape) < 0.3] = 0
        out.append((nx.from_float32(x), rng.integers(0, model.classes, batch)))
    return out


def golden_steps(config, model, weights, batches, lr):
    """The weights and logits of :class:`CnnGolden` after each step."""
    golden = CnnGolden(model, CoreNumerics.from_config(config))
    out = []
    for x, labels in batches:
        weights, _, logits = golden.step(weights, x, labels, lr)
        out.append((weights, logits))
    return out


@pytest.mark.parametrize("config, model, batch", [
    (TINY, TINY_CNN, 2), (DEFAULT, digits_cnn(), 8), (DEFAULT, EVERY_CASE, 3),
    (TINY, mlp_model((12, 6, 5, 3)), 3),
    (TINY, Model("flat", (2, 3, 3), (Flatten(), Dense(18, 4), ReLU(), Dense(4, 3))), 2)],
    ids=["tiny", "default-digits", "default-every-case", "tiny-mlp", "tiny-flatten-first"])
def test_machine_steps_equal_the_golden_cnn_step(config, model, batch):
    lr = 0.1
    program = CnnTrainingProgram(config, model, batch, lr, store_every_step=True)
    weights = initial_weights(model, 3)
    batches = minibatches(model, batch, 3, seed=4)
    job = training_job(program, weights, batches)
    outputs = run_job_golden(config, job)
    expected = golden_steps(config, model, weights, batches, lr)
    assert all(out.error == 0 for out in outputs)
    for k, (w, logits) in enumerate(expected):
        image = outputs[1 + k].image
        assert np.array_equal(program.read_logits(image, 0), logits), f"step {k}"
        got = program.read_weights(image)
        for layer, (a, b) in enumerate(zip(got, w)):
            assert np.array_equal(a, b), f"step {k}, layer {layer}"
    # The steps trained every layer, and most weights.
    final = program.read_weights(outputs[-1].image)
    changed = [np.count_nonzero(a != b) for a, b in zip(final, weights)]
    assert all(changed) and sum(changed) > sum(w.size for w in weights) // 2, changed


def test_two_steps_in_one_doorbell_and_the_checkpoint():
    """Slots 0 and 1 in one run, the weights kept in the PEs until the checkpoint."""
    model, batch, lr = TINY_CNN, 2, 0.05
    program = CnnTrainingProgram(TINY, model, batch, lr, slots=2, store_every_step=False)
    weights = initial_weights(model, 5)
    batches = minibatches(model, batch, 2, seed=6)
    image = program.initial_image(weights)
    machine = Machine(TINY)
    assert machine.run(image, program.prologue.cmd_base, program.prologue.cmd_count).ok
    for s, (x, labels) in enumerate(batches):
        program.write_batch(image, s, x, labels)
    run = program.step_run(2)
    assert machine.run(image, run.cmd_base, run.cmd_count).ok
    assert np.array_equal(program.read_weights(image)[0], weights[0])   # not stored yet
    assert machine.run(image, program.checkpoint.cmd_base, program.checkpoint.cmd_count).ok
    expected = golden_steps(TINY, model, weights, batches, lr)
    for s, (w, logits) in enumerate(expected):
        assert np.array_equal(program.read_logits(image, s), logits)
    for a, b in zip(program.read_weights(image), expected[-1][0]):
        assert np.array_equal(a, b)


def test_products_are_tiled_to_the_activation_banks():
    place = compile_cnn(DEFAULT, digits_cnn(), 8, 0.1)
    conv1 = place.layers[0]
    # 10 rows of patches over 4 PE columns: 3 words a column, 512 columns.
    assert conv1.columns == 512 and conv1.tile_f == 341 and conv1.tile_w == 204
    forwards = [c for c in place.step if c["op"] == "FORWARD"]
    assert [c["batch"] for c in forwards[:2]] == [341, 171]
    wgrads = [c for c in place.step if c["op"] == "WGRAD" and c["m"] == 8]
    assert [c["batch"] for c in wgrads] == [204, 204, 104]
    assert place.act_words <= DEFAULT.pe.act_words
    gathers = [c for c in place.step if c["op"] == "GATHER"]
    # im2col of both convolutions, flatten, unflatten and col2im: one per sample each.
    assert len(gathers) == 5 * 8
    col2im = [c for c in gathers if c["m"] > 1]
    assert len(col2im) == 8 and all(c["m"] == 4 and c["flag"] == 1 for c in col2im)


@pytest.mark.parametrize("config, model, batch, message", [
    (TINY, digits_cnn(), 8, "digits-cnn at batch 8 needs 43706 scratchpad words (activations, "
     "gradients, tables and weights), more than core.scratchpad_words = 1024"),
    (with_overrides(DEFAULT, {"pe.weight_words": 256}), digits_cnn(), 8,
     "digits-cnn needs 277 weight-bank words per PE to keep its weights in the PEs, more "
     "than pe.weight_words = 256"),
    (with_overrides(DEFAULT, {"pe.act_words": 64}), digits_cnn(), 8,
     "digits-cnn: layer 5 needs 68 activation-bank words per PE for one column of its "
     "weight gradient, more than pe.act_words = 64"),
])
def test_a_network_that_does_not_fit_is_refused_in_one_line(config, model, batch, message):
    with pytest.raises(ValueError) as error:
        CnnTrainingProgram(config, model, batch, 0.1)
    assert str(error.value) == message


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch=0), "batch must be a positive integer, not 0"),
    (dict(lr=-1.0), "lr must be a positive number, not -1.0"),
    (dict(model="digits-cnn"), "model must be a gen.spec.model.Model, not 'digits-cnn'"),
])
def test_bad_arguments_are_refused(kwargs, message):
    args = dict(config=DEFAULT, model=digits_cnn(), batch=8, lr=0.1) | kwargs
    with pytest.raises((ValueError, TypeError)) as error:
        CnnTrainingProgram(**args)
    assert str(error.value) == message


def test_write_batch_checks_its_minibatch():
    program = CnnTrainingProgram(TINY, TINY_CNN, 2, 0.1)
    image = program.initial_image(initial_weights(TINY_CNN, 0))
    x = np.zeros((9, 2), dtype=np.uint32)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), not 3 \(sample 1\)"):
        program.write_batch(image, 0, x, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"x_bits must have shape \(9, 2\), not \(8, 2\)"):
        program.write_batch(image, 0, x[:8], np.array([0, 1]))
