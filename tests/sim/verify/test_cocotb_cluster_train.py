"""Training steps in every cluster mode on the cluster's RTL, under Icarus and Verilator
(cocotbext-axi as the host and the memory), against the golden cluster.

Data parallel and model parallel (``sim.compile.parallel_program``) run two SGD steps;
continuous propagation (``sim.compile.cp_program``) a session of three samples on two cores,
which fills and drains the pipeline; model parallel and CP with the separate and the fused
update. After every doorbell -- prologue, steps or ticks, checkpoint -- the whole memory
image and every counter the golden model keeps equal the golden cluster's, and the weights
moved.
"""

from pathlib import Path

import numpy as np
import pytest

from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.sim.golden.mlp import mlp_case
from chrysalis.sim.compile.cp_program import CpProgram, cp_job
from chrysalis.sim.compile.parallel_program import ParallelProgram, parallel_job
from chrysalis.sim.compile.job import golden_mismatches, run_job_golden
from chrysalis.sim.verify.rtl_job import run_job

#: Builds shared with tests/sim/verify/test_cocotb_cluster.py (the same Verilog).
SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "cluster"
LR = 0.125


def _config():
    return with_overrides(get_preset("tiny"), {"name": "tiny_cluster2", "cluster.cores": 2})


def _job(config, mode, update="separate"):
    if mode == "cp":
        sizes, samples = [4, 8, 3], 3
        case = mlp_case(sizes, 1, samples, seed=31)
        program = CpProgram(config, sizes, LR, samples, update=update)
        x = np.concatenate(case.inputs, axis=1)
        labels = np.concatenate([np.asarray(l) for l in case.labels])
        return program, cp_job(program, case.weights, x, labels), case.weights
    sizes = [4, 8, 3] if mode == "data" else [4, 8, 8, 3]
    case = mlp_case(sizes, 2, 2, seed=32)
    program = ParallelProgram(config, sizes, 2, LR, mode, update=update)
    return program, parallel_job(program, case.weights, zip(case.inputs, case.labels)), \
        case.weights


@pytest.mark.slow
@pytest.mark.parametrize("mode, update", [("data", "separate"), ("model", "separate"),
                                          ("cp", "separate"), ("model", "fused"),
                                          ("cp", "fused")])
def test_training_steps_on_the_cluster_rtl_equal_the_golden_cluster(simulator, build_root,
                                                                     mode, update):
    """Each mode with the update it can run; the fused update (model parallel and CP)
    spends no update slots."""
    config = _config()
    program, job, weights = _job(config, mode, update)
    assert program.update == update
    outputs = run_job(config, job, simulator, SHARED / config.name, timeout_s=1800,
                      job_dir=build_root)
    golden = run_job_golden(config, job)
    assert len(outputs) == len(job.runs)
    assert golden_mismatches(outputs, golden) == []
    final = program.read_weights(outputs[-1].image.astype(np.uint32))
    assert any(not np.array_equal(a, b) for a, b in zip(final, weights)), "no update"
    # Both cores worked, and the ring carried the collectives or the sends.
    assert outputs[-1].counters["ring_words"] > 0
    assert (outputs[-1].counters["update_slots"] == 0) == (update == "fused")
