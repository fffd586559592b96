"""Convolutional networks on the accelerator's RTL under Icarus and Verilator: consecutive
SGD steps of a compiled CNN (``sim.compile.cnn_program``) against the golden machine, the
whole memory image and every counter after every run (the native harnesses on the tiny
preset's shared build; cocotb and the digits CNN on the default preset with ``slow``)."""

import numpy as np
import pytest

from tests.conftest import RTL_HARNESSES

from chrysalis.gen.perf.stream import stream_cost
from chrysalis.gen.spec.config import PRESETS
from chrysalis.gen.spec.model import digits_cnn
from chrysalis.sim.compile.cnn_program import CnnTrainingProgram
from chrysalis.sim.compile.job import golden_mismatches, run_job_golden, training_job
from chrysalis.sim.train.cnn import initial_weights
from tests.sim.compile.test_cnn_program import TINY_CNN, golden_steps, minibatches
from tests.sim.verify.test_cocotb_accelerator import TINY, rtl

DEFAULT = PRESETS["default"]


def cnn_job(config, model, batch, steps, seed):
    """The job of ``steps`` SGD steps (the weights stored into the image after each), its
    program, initial weights and minibatches."""
    program = CnnTrainingProgram(config, model, batch, 0.1, store_every_step=True)
    weights = initial_weights(model, seed)
    batches = minibatches(model, batch, steps, seed + 1)
    return training_job(program, weights, batches), program, weights, batches


def check_steps(config, model, batch, harness, build_root, steps=2, seed=0):
    job, program, weights, batches = cnn_job(config, model, batch, steps, seed)
    outs = rtl(config, job, harness, build_root)
    assert golden_mismatches(outs, run_job_golden(config, job)) == []
    # The performance model's stream cost, GATHERs included, is each run's CYCLES.
    assert [o.cycles for o in outs] == [
        stream_cost(config, program.run_commands(run))["total"]["cycles"] for run in job.runs]
    # ... and the golden machine is the golden CNN step: the RTL's weights and logits
    # after each step are its.
    for k, (w, logits) in enumerate(golden_steps(config, model, weights, batches, 0.1)):
        image = outs[1 + k].image.astype(np.uint32)
        assert np.array_equal(program.read_logits(image, 0), logits), f"step {k}"
        assert all(np.array_equal(a, b) for a, b in zip(program.read_weights(image), w))
    return outs, program


def test_tiny_cnn_steps_on_the_rtl_equal_the_golden_machine(rtl_harness, build_root):
    outs, program = check_steps(TINY, TINY_CNN, 2, rtl_harness, build_root)
    # Every GATHER of the steps ran: 5 kinds x 2 samples per step.
    assert outs[-1].counters["commands"] == program.prologue.cmd_count + 2 * program.step_commands


SLOW = [pytest.param(p.values[0], marks=(*p.marks, pytest.mark.slow), id=p.id)
        for p in RTL_HARNESSES if p.id.endswith("native")]


@pytest.mark.parametrize("rtl_harness", SLOW, indirect=True)
def test_digits_cnn_steps_on_the_default_rtl_equal_the_golden_machine(rtl_harness, build_root):
    check_steps(DEFAULT, digits_cnn(), 8, rtl_harness, build_root)
