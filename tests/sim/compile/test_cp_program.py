"""Continuous propagation on a cluster (``sim.compile.cp_program``): the golden cluster running the
program's command stream against the staleness rule computed directly on
``sim.golden.core_model`` (``cp_reference``), bit for bit, after every tick of fill, steady state
and drain; the degenerate pipeline with one sample in flight against plain SGD; the schedule
the docstring describes; and the errors."""

import numpy as np
import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import ConfigError, get_preset, with_overrides
from chrysalis.sim.golden import ring
from chrysalis.sim.golden.cluster_machine import ClusterMachine
from chrysalis.sim.golden.mlp import golden_step, mlp_case
from chrysalis.sim.golden.core_model import CoreNumerics
from chrysalis.gen.spec.networks import mlp
from chrysalis.sim.compile.cp_program import CpProgram, cp_job
from chrysalis.sim.compile.cp_reference import cp_reference
from chrysalis.sim.compile.cp_stages import assign_stages, forward_version, staleness
from chrysalis.sim.compile.job import run_job_golden

TINY = get_preset("tiny")
LR = 0.25


def _cluster(cores, **overrides):
    return with_overrides(TINY, {"cluster.cores": cores, **overrides})


def _case(sizes, samples, seed=3):
    case = mlp_case(sizes, samples, 1, seed)
    return case.weights, case.inputs[0], case.labels[0]


def _run(machine, image, run):
    result = machine.run(image, run.cmd_base, run.cmd_count)
    assert result.error == isa.ErrorCode.NONE, result


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("cores, sizes, samples, batch, stages, update", [
    (2, [6, 5, 3], 6, 1, [(0,), (1,)], "separate"),        # a layer per core
    (2, [6, 5, 4, 3], 5, 1, [(0,), (1, 2)], "separate"),   # two layers on the last core
    (2, [3, 3, 3, 8], 6, 1, [(0, 1), (2,)], "separate"),   # two layers on the first core
    (3, [6, 5, 4, 3], 8, 1, [(0,), (1,), (2,)], "separate"),   # backward sends go two hops
    (3, [6, 5, 4, 3], 6, 2, [(0,), (1,), (2,)], "separate"),   # micro-batches of 2
    # The update fused into the weight gradient (-lr carried in dY).
    (2, [6, 5, 4, 3], 5, 1, [(0,), (1, 2)], "fused"),
    (3, [6, 5, 4, 3], 6, 2, [(0,), (1,), (2,)], "fused"),
])
def test_cluster_equals_the_cp_rule_after_every_tick(cores, sizes, samples, batch, stages,
                                                     update):
    config = _cluster(cores)
    program = CpProgram(config, sizes, LR, samples, batch=batch, update=update)
    assert program.stages == stages and program.update == update
    wgrads = [c for c in program.commands if c["op"] == "WGRAD"]
    assert wgrads and all(c.get("fused", 0) == (update == "fused") for c in wgrads)
    weights, x, labels = _case(sizes, samples)
    image = program.initial_image(weights)
    program.write_samples(image, x, labels)
    machine = ClusterMachine(config)
    _run(machine, image, program.prologue)
    G = samples // batch
    # W_l^v is the rule's result on the first v micro-batches (the rule is causal).
    prefix = [cp_reference(config, sizes, weights, x[:, :v * batch], labels[:v * batch], LR,
                           batch=batch, update=update)[0] if v else weights
              for v in range(G + 1)]
    seen = set()
    for t in range(program.ticks):
        _run(machine, image, program.tick_run(t))
        _run(machine, image, program.checkpoint)
        versions = program.versions_after(t)
        seen.add(tuple(versions))
        got = program.read_weights(image)
        for l, v in enumerate(versions):
            assert np.array_equal(got[l], prefix[v][l]), (t, l, v)
    # Fill and drain: layers were at different versions after some ticks.
    assert any(len(set(v)) > 1 for v in seen)
    final, logits = cp_reference(config, sizes, weights, x, labels, LR, batch=batch,
                                 update=update)
    assert _same(program.read_weights(image), final)
    assert np.array_equal(program.read_logits(image), logits)
    # The staleness is real: sequential SGD on the same samples gives other weights.
    num = CoreNumerics.from_config(config)
    sgd = weights
    for s in range(G):
        cols = slice(s * batch, (s + 1) * batch)
        sgd, _ = golden_step(num, sgd, x[:, cols], labels[cols], LR, update=update)
    assert not _same(final, sgd)


@pytest.mark.parametrize("update", ["separate", "fused"])
def test_one_sample_in_flight_is_plain_sgd(update):
    """Sessions of one sample each: the pipeline never holds two samples, every weight
    version is the current one, and CP is golden_step's SGD, bit for bit."""
    config, sizes = _cluster(2), [6, 5, 4, 3]
    weights, x, labels = _case(sizes, 4)
    program = CpProgram(config, sizes, LR, 1, update=update)
    assert program.ticks == 1 + 2 * 2 - 2
    image = program.initial_image(weights)
    machine = ClusterMachine(config)
    _run(machine, image, program.prologue)
    num = CoreNumerics.from_config(config)
    sgd = weights
    for s in range(4):
        program.write_samples(image, x[:, s:s + 1], labels[s:s + 1])
        _run(machine, image, program.session_run())
        sgd, _ = golden_step(num, sgd, x[:, s:s + 1], labels[s:s + 1], LR, update=update)
    _run(machine, image, program.checkpoint)
    assert _same(program.read_weights(image), sgd)


def test_first_sample_and_last_stage_see_current_weights():
    # Sample 0 forwards with the initial weights everywhere; the last stage never lags.
    assert [forward_version(0, k, 3) for k in range(3)] == [0, 0, 0]
    assert [staleness(k, 3) for k in range(3)] == [3, 1, 0]
    assert [forward_version(10, k, 3) for k in range(3)] == [7, 9, 10]
    assert [staleness(k, 2) for k in range(2)] == [1, 0]


def test_schedule_fill_steady_drain_and_buffers():
    program = CpProgram(_cluster(3), [6, 5, 4, 3], LR, 6)
    assert program.ticks == 6 + 2 * 3 - 2
    assert program.depths == [5, 3, 1]
    # (backward, forward) micro-batch per core.
    assert program.tick_work(0) == [(None, 0), (None, None), (None, None)]
    assert program.tick_work(2) == [(None, 2), (None, 1), (0, 0)]
    assert program.tick_work(3) == [(None, 3), (0, 2), (1, 1)]
    assert program.steady_tick() == 4
    assert program.tick_work(4) == [(0, 4), (1, 3), (2, 2)]
    assert program.tick_work(9) == [(5, None), (None, None), (None, None)]
    assert program.versions_after(-1) == [0, 0, 0]
    assert program.versions_after(4) == [1, 2, 3]
    assert program.versions_after(9) == [6, 6, 6]
    # The steady tick ends with one forward and one backward send per boundary; a
    # backward send goes c - 1 = 2 hops the long way round the one-way ring.
    first = int(program._tick_first[4])
    sends = [c for c in program.commands[first:first + program.tick_counts[4]]
             if c["op"] == "SEND"]
    assert [(c["root"], c["peer"]) for c in sends] == [(0, 1), (1, 2), (1, 0), (2, 1)]
    assert ring.schedule(isa.Opcode.SEND, 3, 4, root=1, peer=0)[0].depth == 2
    # Every core's commands carry its mask, DMA_STORE names one core.
    for c in program.commands:
        if c["op"] not in ("SEND",):
            assert bin(c["cores"]).count("1") == 1


def test_steady_tick_profile_counts_every_useful_mac_once():
    for cores, sizes, batch in [(2, [6, 5, 3], 1), (3, [6, 5, 4, 3], 2)]:
        program = CpProgram(_cluster(cores), sizes, LR, 8 * batch, batch=batch)
        profile = program.tick_profile(program.steady_tick())
        assert sum(c["useful_macs"] for c in profile["cores"]) == mlp(sizes).macs(batch)
        assert all(c["pe_macs"] >= c["useful_macs"] > 0 for c in profile["cores"])
        assert profile["ring_cycles"] > 0
        assert profile["estimate_cycles"] >= max(c["core_cycles"] for c in profile["cores"])


def test_job_on_the_golden_runner_equals_the_direct_run():
    config, sizes = _cluster(2), [6, 5, 3]
    weights, x, labels = _case(sizes, 5)
    program = CpProgram(config, sizes, LR, 5)
    job = cp_job(program, weights, x, labels, ticks_per_run=2)
    assert len(job.runs) == 2 + 4                  # prologue, 7 ticks in 4 runs, checkpoint
    outputs = run_job_golden(config, job, ClusterMachine(config))
    assert all(o.error == isa.ErrorCode.NONE for o in outputs)
    final, logits = cp_reference(config, sizes, weights, x, labels, LR)
    image = outputs[-1].image
    assert _same(program.read_weights(image), final)
    assert np.array_equal(program.read_logits(image), logits)


def test_stage_assignment():
    assert assign_stages([64, 32, 10], 2) == [(0,), (1,)]
    assert assign_stages([8, 8, 8, 8], 3) == [(0,), (1,), (2,)]
    # The big first layer gets a core of its own; the small ones share.
    assert assign_stages([64, 32, 8, 8, 8], 2) == [(0,), (1, 2, 3)]
    assert assign_stages([4, 4, 4, 4, 64], 2) == [(0, 1, 2), (3,)]


def test_more_cores_than_layers_is_refused():
    with pytest.raises(ConfigError, match=r"cluster.cores must be at most the 2 layers.*"
                                          r"not 3"):
        CpProgram(_cluster(3), [6, 5, 3], LR, 4)
    with pytest.raises(ConfigError, match=r"cluster.cores must be at least 2.*not 1"):
        CpProgram(TINY, [6, 5, 3], LR, 4)


@pytest.mark.parametrize("overrides, sizes, batch, match", [
    ({}, [20, 12, 3], 1, r"stage 0 \(layers 0\) needs 66 weight words per PE, more "
                         r"than pe.weight_words = 64"),
    ({"pe.act_words": 16}, [6, 5, 3], 4, r"needs 28 activation words per PE for batch 4, "
                                         r"more than pe.act_words = 16"),
    ({"core.scratchpad_words": 64}, [6, 5, 3], 1, r"does not fit core 0's scratchpad, "
                                                  r"core.scratchpad_words = 64"),
])
def test_a_network_that_does_not_fit_names_the_field(overrides, sizes, batch, match):
    with pytest.raises(ValueError, match=match):
        CpProgram(_cluster(2, **overrides), sizes, LR, 4 * batch, batch=batch)


def test_bad_arguments():
    config = _cluster(2)
    with pytest.raises(ValueError, match="samples must be a positive multiple of batch = 2, "
                                         "not 5"):
        CpProgram(config, [6, 5, 3], LR, 5, batch=2)
    with pytest.raises(ValueError, match="lr must be a positive number, not -1"):
        CpProgram(config, [6, 5, 3], -1, 4)
    program = CpProgram(config, [6, 5, 3], LR, 2)
    image = program.initial_image(_case([6, 5, 3], 2)[0])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), not 3 \(sample 1\)"):
        program.write_samples(image, np.zeros((6, 2), np.uint32), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"count must be in \[1, 2\]"):
        program.tick_run(2, 3)
