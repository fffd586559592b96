"""Training on a cluster through one entry point (``sim.train.cluster``) and
``chrysalis train --mode``: the jobs of every mode run on the golden cluster, and bad
combinations are refused with a message that names what to change."""

import pytest

from chrysalis.gen import cli
from chrysalis.gen.spec.config import ConfigError, get_preset, with_overrides
from chrysalis.sim.train import cluster as cluster_train
from chrysalis.sim.compile.job import run_job_golden

CLUSTER = with_overrides(get_preset("default"), {"cluster.cores": 2})


@pytest.mark.parametrize("mode", cluster_train.MODES)
def test_each_mode_makes_a_job_the_golden_cluster_runs(mode):
    job, runs, batch = cluster_train.cluster_job(CLUSTER, mode, steps=2)
    outputs = run_job_golden(CLUSTER, job)
    assert all(out.error == 0 for out in outputs)
    assert runs and all(0 < k < len(job.runs) for k in runs)
    assert batch == (1 if mode == "cp" else 8)
    # The training runs did the work: products were made on both cores.
    assert outputs[runs[-1]].counters["mac_slots"] > outputs[0].counters["mac_slots"]


def test_modes_need_a_cluster_and_a_known_mode():
    with pytest.raises(ConfigError, match="cluster.cores must be at least 2, not 1"):
        cluster_train.cluster_job(get_preset("default"), "data", steps=1)
    with pytest.raises(ValueError, match="mode must be one of data, model, cp, not 'pipe'"):
        cluster_train.cluster_job(CLUSTER, "pipe", steps=1)
    with pytest.raises(ValueError, match="steps must be a positive integer, not 0"):
        cluster_train.cluster_job(CLUSTER, "cp", steps=0)


@pytest.mark.parametrize("argv, message", [
    (["train", "--set", "cluster.cores=2"], "say how to train on it with --mode"),
    (["train", "--mode", "data"], "cluster.cores must be at least 2"),
    (["train", "--set", "cluster.cores=2", "--mode", "cp", "--momentum", "0.5"],
     "--momentum is not supported with --mode cp"),
    (["train", "--set", "cluster.cores=2", "--mode", "data", "--steps", "3"],
     "the golden backend trains whole epochs"),
    (["train", "--set", "cluster.cores=2", "--mode", "model", "--backend", "icarus",
      "--epochs", "1"], "runs --steps N, not --epochs 1"),
])
def test_cli_refuses_what_a_cluster_cannot_do(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_cp_writes_its_json(tmp_path, capsys):
    out = tmp_path / "cp.json"
    # A narrow hidden layer and micro-batches of 4 (a quarter of the pipeline's fills and
    # drains, the learning rate raised to match) keep the epoch short: the JSON is what is
    # tested here, and that the epoch learns.
    argv = ["train", "--set", "cluster.cores=2", "--mode", "cp", "--epochs", "1", "--sizes",
            "64,8,10", "--batch", "4", "--lr", "0.1", "--quiet", "--json", str(out)]
    assert cli.main(argv) == 0
    import json
    data = json.loads(out.read_text())
    assert data["mode"] == "cp" and data["cores"] == 2 and len(data["history"]) == 1
    assert data["batch"] == 4
    assert data["stages"] and data["ticks"] > 0 and 0.5 < data["history"][0]["acc"] <= 1
    assert data["update"] == "fused"            # the default where it applies: it learns


def test_cli_cluster_update_flag_reaches_the_json(tmp_path, capsys):
    out = tmp_path / "model.json"
    argv = ["train", "--set", "cluster.cores=2", "--mode", "model", "--epochs", "1",
            "--update", "separate", "--quiet", "--json", str(out)]
    assert cli.main(argv) == 0
    import json
    data = json.loads(out.read_text())
    assert data["mode"] == "model" and data["update"] == "separate"


def test_cp_refuses_an_unknown_update():
    """(An epoch of CP with its default, the update fused into the weight gradient, learns
    and says which update ran: test_cli_cp_writes_its_json, through the CLI.)"""
    from chrysalis.sim.train.cp import train_cp
    with pytest.raises(ValueError, match="update must be one of fused, separate, not 'x'"):
        train_cp(CLUSTER, sizes=(64, 8, 10), epochs=1, update="x", progress=False, log=None)


def test_cp_and_model_default_to_the_fused_update_and_data_keeps_separate():
    """Plain SGD on one MAC stream: ``model`` and ``cp`` fuse the update by default (as one
    core), ``data`` keeps the separate pass (its gradients are all-reduced first); each
    mode's job runs on the golden cluster with its WGRADs fused or not (CP's training with
    its default: test_cli_cp_writes_its_json)."""
    for mode, update in (("model", "fused"), ("cp", "fused"), ("data", "separate")):
        assert cluster_train.resolve_cluster_update(CLUSTER, mode, None) == update
        job, runs, _ = cluster_train.cluster_job(CLUSTER, mode, steps=1)
        outputs = run_job_golden(CLUSTER, job)
        assert all(out.error == 0 for out in outputs)
        grown = outputs[runs[-1]].counters["update_slots"] - outputs[0].counters["update_slots"]
        assert (grown == 0) == (update == "fused"), (mode, grown)
    job, runs, _ = cluster_train.cluster_job(CLUSTER, "model", steps=1, update="separate")
    outputs = run_job_golden(CLUSTER, job)
    assert outputs[runs[-1]].counters["update_slots"] > outputs[0].counters["update_slots"]
    with pytest.raises(ValueError, match="mode 'data' keeps the separate update"):
        cluster_train.cluster_job(CLUSTER, "data", steps=1, update="fused")


def test_model_parallel_trains_with_the_fused_update_by_default():
    from chrysalis.sim.train.parallel import train_parallel
    result = train_parallel(CLUSTER, "model", sizes=(64, 32, 10), epochs=1, progress=False,
                            log=None)
    assert result.update == "fused" and result.to_dict()["update"] == "fused"
    assert result.history[0].acc > 0.8
    with pytest.raises(ValueError, match="update must be 'separate' with momentum 0.5"):
        train_parallel(CLUSTER, "model", momentum=0.5, update="fused", epochs=1,
                       progress=False, log=None)
