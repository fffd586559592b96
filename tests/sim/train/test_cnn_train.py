"""Training a model of ``gen.spec.model`` (``sim.train.cnn``) and ``chrysalis train
--network`` / ``--model``: the driver's golden weights are ``CnnGolden.step`` applied to
the documented minibatch order, bit for bit, and its reference is ``cnn_reference``'s SGD;
the command line's defaults, refusals and ONNX files. The full training runs in
``benchmarks/train_cnn.py``, not here."""

import numpy as np
import pytest

from chrysalis.gen import cli
from chrysalis.gen.spec.config import get_preset
from chrysalis.gen.spec.model import MODELS, digits_cnn, mlp_model
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.cnn import CnnGolden
from chrysalis.sim.train import cnn
from chrysalis.sim.train import cnn_reference as ref
from chrysalis.sim.train.dataset import DigitsTask

CONFIG = get_preset("default")


def test_the_driver_steps_the_golden_model_bit_for_bit():
    model = digits_cnn()
    result = cnn.train_model(CONFIG, model, batch=4, lr=0.1, steps=3, seed=5,
                             progress=False, log=None)
    task = DigitsTask(4, 5)
    golden = CnnGolden(model, cm.CoreNumerics.from_config(CONFIG))
    weights = cnn.initial_weights(model, 5)
    ref_weights = [nx.to_float32(w).copy() for w in weights]
    for step in range(3):
        batch = task.minibatch(step)
        weights, _, _ = golden.step(weights, batch.x_bits, batch.labels, 0.1)
        ref.sgd_step(model, ref_weights, batch.x32, batch.labels, 0.1)
    for a, b in zip(result.weights, weights):
        assert np.array_equal(a, b)
    for a, b in zip(result.ref_weights, ref_weights):
        assert np.array_equal(a, b)
    assert result.network == "digits-cnn" and result.steps == 3 and len(result.history) == 1
    final = result.final
    assert final.acc == ref.accuracy(model, [nx.to_float32(w) for w in weights],
                                     task.x_test_t, task.y_test)
    assert result.useful_macs == 3 * model.macs(4)
    assert result.to_dict()["network"] == "digits-cnn"


def test_initial_weights_follow_the_mlp_rule():
    model = digits_cnn()
    weights = [nx.to_float32(w) for w in cnn.initial_weights(model, 0)]
    assert [w.shape for w in weights] == list(model.weight_shapes)
    assert all(np.all(w[:, -1] == 0) for w in weights)
    # He for conv1 (fan-in 9), Glorot for the output (257 - 1 in, 10 out)
    assert np.abs(weights[0]).max() <= np.sqrt(6 / 9)
    assert np.abs(weights[2]).max() <= np.sqrt(6 / (256 + 10))
    assert np.abs(weights[0]).max() > 0.5 * np.sqrt(6 / 9)
    assert all(np.array_equal(a, b) for a, b in zip(cnn.initial_weights(model, 0),
                                                     cnn.initial_weights(model, 0)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(backend="spice"), "backend must be one of golden, icarus, verilator, not 'spice'"),
    (dict(lr=0), "lr must be a positive number, not 0"),
    (dict(batch=0), "batch must be a positive integer, not 0"),
    (dict(steps=1, epochs=1), "give steps or epochs, not both"),
    (dict(weights=[np.zeros((8, 10), np.uint64)]), "weights must be 3 matrices"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cnn.train_model(CONFIG, digits_cnn(), progress=False, log=None, **kwargs)


def test_a_network_not_for_digits_is_refused():
    with pytest.raises(ValueError, match="takes 64 inputs and gives 10 classes, not 32"):
        cnn.train_model(CONFIG, mlp_model((32, 10)), steps=1, progress=False, log=None)


def test_cli_defaults_are_the_drivers():
    from chrysalis.gen.cli import train as train_cli
    assert train_cli.NETWORKS == tuple(MODELS)
    assert (train_cli.CNN_LR, train_cli.CNN_BATCH, train_cli.CNN_EPOCHS) == \
        (cnn.CNN_LR, cnn.CNN_BATCH, cnn.CNN_EPOCHS)


@pytest.mark.parametrize("argv, message", [
    (["--network", "digits-cnn", "--backend", "verilator", "--preset", "tiny"],
     "digits-cnn with batch 8 does not fit config 'tiny': digits-cnn at batch 8 needs 43706 "
     "scratchpad words (activations, gradients, tables and weights), more than "
     "core.scratchpad_words = 1024"),
    (["--network", "digits-cnn", "--momentum", "0.5"], "--momentum is not supported"),
    (["--network", "digits-cnn", "--sizes", "64,16,10"], "--network and --model bring their"),
    (["--model", "missing.onnx"], "missing.onnx: no such file"),
    (["--out", "x.onnx"], "--out writes a network given by --network or --model"),
])
def test_cli_refusals_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_trains_the_cnn_and_writes_onnx_that_reads_back(tmp_path, capsys):
    pytest.importorskip("onnx")
    from chrysalis.sim.compile.onnx_io import read_onnx
    out = tmp_path / "nets" / "cnn.onnx"
    assert cli.main(["train", "--quiet", "--network", "digits-cnn", "--steps", "2",
                     "--batch", "4", "--out", str(out)]) == 0
    assert "digits-cnn, golden" in capsys.readouterr().out
    model, weights = read_onnx(out)
    assert model.layers == digits_cnn().layers
    # Trained from those weights, the same two minibatches give the driver's steps.
    again = tmp_path / "again.onnx"
    assert cli.main(["train", "--quiet", "--model", str(out), "--steps", "1", "--batch", "4",
                     "--out", str(again)]) == 0
    expected = cnn.train_model(CONFIG, model, batch=4, steps=1, weights=weights,
                               progress=False, log=None).weights
    for a, b in zip(read_onnx(again)[1], expected):
        assert np.array_equal(a, b)


def test_cli_trains_an_onnx_mlp_on_the_mlp_driver(tmp_path):
    pytest.importorskip("onnx")
    import json

    from chrysalis.sim.compile.onnx_io import read_onnx, write_onnx
    from chrysalis.sim.compile.program import initial_weights
    from chrysalis.sim.train import single as tr
    model = mlp_model((64, 32, 10))
    weights = initial_weights([64, 32, 10], 7)
    path = tmp_path / "mlp.onnx"
    write_onnx(path, model, weights)
    assert cli.main(["train", "--quiet", "--model", str(path), "--steps", "1",
                     "--json", str(tmp_path / "r.json"), "--out",
                     str(tmp_path / "out.onnx")]) == 0
    expected = tr.train(CONFIG, sizes=(64, 32, 10), steps=1, weights=weights,
                        progress=False, log=None).weights
    written = json.loads((tmp_path / "r.json").read_text())["weights_bits"]
    for a, b, c in zip(written, expected, read_onnx(tmp_path / "out.onnx")[1]):
        assert np.array_equal(np.asarray(a, dtype=np.uint64), b) and np.array_equal(b, c)


# `slow` under both simulators (the default suite's longest test): the default suite runs
# the CNN on the RTL under both in tests/sim/verify/test_cnn_rtl.py, and `chrysalis train`
# on the RTL with the MLP.
@pytest.mark.parametrize("backend", [
    pytest.param("verilator", marks=(pytest.mark.cocotb, pytest.mark.slow)),
    pytest.param("icarus", marks=(pytest.mark.cocotb, pytest.mark.slow))])
def test_cli_trains_the_cnn_on_the_rtl_checked_by_the_golden_machine(backend, capfd):
    """Two steps of the digits CNN (batch 2) on the default preset's RTL, in the native
    harness and the tests' shared build: every run equals the golden machine, and the
    weights and step losses are the golden CNN step's."""
    import json

    from chrysalis.sim.verify.runner import available_simulators
    from tests.sim.verify.test_cocotb_accelerator import SHARED
    if backend not in available_simulators():
        pytest.skip(f"{backend} is not available on this machine")
    build = SHARED / CONFIG.name
    out = build / f"cnn-train-{backend}.json"
    argv = ["train", "--network", "digits-cnn", "--backend", backend, "--batch", "2",
            "--steps", "2", "--seed", "3", "--quiet", "-o", str(build), "--json", str(out)]
    assert cli.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["golden_match"] is True and data["harness"] == "native"
    assert data["network"] == "digits-cnn"
    assert data["cycles"] > data["counters"]["core_cycles"] > 0
    assert 0 < data["utilization"] < data["core_utilization"] < 1
    expected = cnn.train_model(CONFIG, digits_cnn(), batch=2, steps=2, seed=3,
                               progress=False, log=None)
    for got, want in zip(data["weights_bits"], expected.weights):
        np.testing.assert_array_equal(np.array(got, dtype=np.uint64), want)
    assert data["step_losses"] == expected.step_losses
    printed = capfd.readouterr().out
    assert "cycles, utilization" in printed and "equal the golden machine" in printed
