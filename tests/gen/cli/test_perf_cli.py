"""``chrysalis perf`` and ``chrysalis search`` (gen.cli.perf)."""

import json

import pytest

import chrysalis.gen.cli.perf  # noqa: F401  (registers the subcommands)
from chrysalis.gen.cli import main


def test_perf_prints_layers_phases_utilization_and_energy(capsys, tmp_path):
    out_json = tmp_path / "perf.json"
    assert main(["perf", "--network", "vgg16-cifar10", "--preset", "default", "--batch", "4",
                 "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    for word in ("conv1", "conv13", "fc14", "forward", "backward", "wgrad", "update", "dma",
                 "util", "energy", "GFLOPS/W", "**step**"):
        assert word in text, word
    report = json.loads(out_json.read_text())
    assert len(report["layers"]) == 14
    assert 0 < report["utilization"] <= 1
    total = sum(l["cycles"] for l in report["layers"])
    # The controller fetches each command while the core runs the one before.
    assert report["fetch_hidden_cycles"] > 0
    assert report["cycles_per_step"] == pytest.approx(
        total - report["fetch_hidden_cycles"] - report["side_hidden_cycles"]
        - report["drain_hidden_cycles"] - report["ring_hidden_cycles"]
        - report["prefetch_hidden_cycles"])
    assert report["energy_pj"] == pytest.approx(sum(l["energy_pj"] for l in report["layers"]),
                                                rel=1e-6)


def test_perf_cluster_modes(capsys):
    for mode in ("cp", "data", "model"):
        assert main(["perf", "--network", "mnist-500x3", "--preset", "default", "--mode",
                     mode, "--cores", "4", "--mapping", "default"]) == 0
        assert f"mode {mode}, 4 core(s)" in capsys.readouterr().out


def test_perf_errors_name_the_bad_value(capsys):
    assert main(["perf", "--network", "alexnet", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chrysalis: error: --network: network must be one of") and \
        "'alexnet'" in err
    assert main(["perf", "--network", "digits-mlp", "--preset", "tiny", "--batch", "0"]) == 2
    assert "--batch must be a positive integer, not 0" in capsys.readouterr().err
    assert main(["perf", "--network", "digits-mlp", "--preset", "tiny", "--mode", "data",
                 "--cores", "3", "--batch", "4"]) == 2
    assert "multiple of cluster.cores" in capsys.readouterr().err


def test_search_command(capsys, tmp_path):
    out_json = tmp_path / "search.json"
    assert main(["search", "--network", "digits-mlp", "--batch", "8", "--area-mm2", "20",
                 "--top-k", "1", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "critical-path search:" in text and "samples/s" in text
    assert json.loads(out_json.read_text())["heuristic"]["best"]["feasible"]
    assert main(["search", "--network", "digits-mlp", "--top-k", "0"]) == 2
    assert "--top-k must be a positive integer, not 0" in capsys.readouterr().err
    assert main(["search", "--network", "digits-mlp", "--area-mm2", "-1"]) == 2
    assert "budgets must be positive, not -1.0" in capsys.readouterr().err


def test_perf_reads_a_config_file(capsys, tmp_path):
    from chrysalis.gen.spec.config import PRESETS, with_overrides
    path = tmp_path / "wide.toml"
    with_overrides(PRESETS["default"], {"name": "wide", "core.cols": 8}).save(path)
    assert main(["perf", "--network", "resnet18-cifar10", "--config", str(path), "--batch",
                 "2", "--mapping", "default"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("resnet18-cifar10 on wide: mode mbgd, 1 core(s), batch 2")


def test_perf_reuse_hit_rate_lowers_the_energy(capsys, tmp_path):
    base = ["perf", "--network", "digits-mlp", "--preset", "default", "--batch", "8",
            "--set", "pe.reuse_entries=16", "--mapping", "default", "--json"]
    assert main(base + [str(tmp_path / "a.json")]) == 0
    assert main(base + [str(tmp_path / "b.json"), "--reuse-hit-rate", "0.5"]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["energy_pj"] < a["energy_pj"] and b["cycles_per_step"] == a["cycles_per_step"]
    capsys.readouterr()
    assert main(base + [str(tmp_path / "c.json"), "--reuse-hit-rate", "2"]) == 2
    assert "--reuse-hit-rate must be in [0, 1], not 2.0" in capsys.readouterr().err


def test_perf_update_default_rule_and_json(capsys, tmp_path):
    """``--update``: fused by default where the programs fuse (plain SGD, one MAC stream,
    not data parallel), recorded in the JSON; fused saves the update phase's cycles."""
    reports = {}
    for mode, cores, update in (("sgd", 2, None), ("sgd", 2, "separate"), ("data", 2, None),
                                ("cp", 4, None)):
        path = tmp_path / f"{mode}-{update}.json"
        argv = ["perf", "--network", "mnist-500x3", "--preset", "default", "--mode", mode,
                "--cores", str(cores), "--json", str(path)]
        if update is not None:
            argv += ["--update", update]
        assert main(argv) == 0
        reports[mode, update] = json.loads(path.read_text())
    capsys.readouterr()
    fused, separate = reports["sgd", None], reports["sgd", "separate"]
    assert fused["update"] == "fused" and separate["update"] == "separate"
    assert fused["phase_cycles"]["update"] == 0 < separate["phase_cycles"]["update"]
    assert fused["cycles_per_step"] < separate["cycles_per_step"]
    assert fused["utilization"] > separate["utilization"]
    assert fused["gflops_per_watt"] > separate["gflops_per_watt"]
    assert fused["useful_macs"] == separate["useful_macs"]
    assert reports["data", None]["update"] == "separate"
    assert reports["cp", None]["update"] == "fused"
    dual = ["perf", "--network", "digits-mlp", "--preset", "default", "--set",
            "mac.dual=\"value\"", "--set", "pe.acc_regs=32"]
    assert main(dual) == 0
    assert "mapping, separate update" in capsys.readouterr().out


def test_perf_of_a_cnn_adds_the_compiled_program_with_its_gathers(capsys, tmp_path):
    """``--network digits-cnn``: the layer model's table, then the compiled program's
    (``gen.perf.cnn``), GATHER included, at batch 8 by default; its step is the stream
    model's, which the RTL tests hold equal to the RTL's CYCLES."""
    from chrysalis.gen.perf.cnn import cnn_step, layer_macs
    from chrysalis.gen.spec.config import get_preset
    from chrysalis.gen.spec.model import digits_cnn
    out_json = tmp_path / "perf.json"
    assert main(["perf", "--network", "digits-cnn", "--preset", "default",
                 "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "as compiled for the RTL" in text and "| gather |" in text
    report = json.loads(out_json.read_text())
    compiled = report["compiled"]
    step = cnn_step(get_preset("default"), digits_cnn(), 8)
    assert report["batch"] == compiled["batch"] == 8
    assert compiled["cycles_per_step"] == step["cycles"]
    assert [l["useful_macs"] for l in compiled["layers"]] == layer_macs(digits_cnn(), 8)
    assert sum(layer_macs(digits_cnn(), 8)) == digits_cnn().macs(8) == 592_112
    # The layers' cycles, each command alone, with the step's DMA less the overlap and
    # the doorbell's START cycle, are the step's.
    layers = sum(l["cycles"] for l in compiled["layers"])
    assert compiled["cycles_per_step"] == layers + compiled["io_cycles"] \
        - compiled["hidden_cycles"] + 1
    # The convolutions' col2im and im2col: most of the step is GATHER.
    assert compiled["phase_cycles"]["gather"] > compiled["cycles_per_step"] / 2
    assert compiled["layers"][1]["phase_cycles"]["gather"] > \
        compiled["layers"][0]["phase_cycles"]["gather"]


def test_perf_of_a_cnn_that_does_not_fit_says_why_beside_the_layer_model(capsys):
    assert main(["perf", "--network", "digits-cnn", "--preset", "tiny"]) == 0
    text = capsys.readouterr().out
    assert "**step**" in text
    assert ("not compiled for the RTL: digits-cnn at batch 8 needs 43706 scratchpad words"
            in text)


def test_layer_model_prices_the_cnns_gathers_within_3_percent_of_the_compiled_step():
    """The layer model (``network_cost`` of ``Model.network()``) costs each layer's
    GATHERs as the compiler emits them, so its GATHER cycles are the compiled step's and
    its step and convolutions are within 3% of the compiled step's, whose cycles the RTL
    tests hold equal to the RTL's."""
    from chrysalis.gen.perf import network_cost
    from chrysalis.gen.perf.cnn import cnn_step
    from chrysalis.gen.perf.mapping import optimize
    from chrysalis.gen.spec.config import get_preset
    from chrysalis.gen.spec.model import digits_cnn
    config, model = get_preset("default"), digits_cnn()
    network = model.network()
    assert [l.gathers for l in network.layers] == [
        ((1, 9, 64, False),), ((1, 72, 16, False), (4, 8, 64, True)),
        ((1, 256, 1, False), (1, 16, 16, True))]
    mappings, _ = optimize(config, network, 8, "mbgd", update="fused")
    layer_model = network_cost(config, network, 8, "mbgd", mappings, update="fused")
    step = cnn_step(config, model, 8)
    assert layer_model["phases"]["gather"]["cycles"] == step["phases"]["gather"]["cycles"]
    assert abs(layer_model["cycles"] / step["cycles"] - 1) <= 0.03
    for ours, compiled in zip(layer_model["layers"][:2], step["layers"][:2]):
        assert abs(ours["cycles"] / compiled["cycles"] - 1) <= 0.03, ours["name"]
