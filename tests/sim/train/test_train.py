"""The training driver (``sim/train/single.py``) and ``chrysalis train``.

The golden backend is held to ``sim.compile.compiler.golden_step`` applied step after step to the
documented minibatch order, bit for bit; the float32 reference to finite differences and
to itself; the command line to its defaults and its error messages. One slow test trains
the default preset to 95% test accuracy; one RTL smoke test runs two steps under Icarus.
"""

import json

import numpy as np
import pytest

from chrysalis.gen import cli
from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.train import single as tr
from chrysalis.sim.train.dataset import MinibatchOrder
from chrysalis.sim.golden.mlp import golden_step
from chrysalis.sim.compile.data import digits
from chrysalis.sim.compile.program import initial_weights

#: The tiny preset with stores just large enough for a digits MLP at batch 4, weights
#: resident (with room for the velocities): a quick machine for many golden steps. It is
#: test_cocotb_accelerator.py's SMALL, name included, so the RTL runs share its builds.
OVERRIDES = {"name": "small_core", "core.scratchpad_words": 4096, "pe.act_words": 1024,
             "pe.weight_words": 1024}
SMALL = with_overrides(get_preset("tiny"), OVERRIDES)
SIZES = (64, 16, 10)
BATCH = 4
SET_ARGS = [arg for key, value in OVERRIDES.items()
            for arg in ("--set", f"{key}={json.dumps(value)}")]


def _train(**kwargs):
    args = dict(sizes=SIZES, batch=BATCH, lr=0.1, seed=3, progress=False, log=None)
    args.update(kwargs)
    return tr.train(SMALL, **args)


def _minibatches(seed, batch, steps):
    """The documented order: a permutation per epoch from default_rng([seed, 1]), cut into
    whole minibatches."""
    x_train, y_train, _, _ = digits(tr.DATA_SEED)
    rng = np.random.default_rng([seed, 1])
    per_epoch = len(x_train) // batch
    perms = []
    for step in range(steps):
        epoch, k = divmod(step, per_epoch)
        while len(perms) <= epoch:
            perms.append(rng.permutation(len(x_train)))
        idx = perms[epoch][k * batch:(k + 1) * batch]
        yield nx.from_float32(x_train[idx].T), y_train[idx]


@pytest.mark.parametrize("momentum, update, expected", [
    (None, None, "fused"),           # the default where it applies
    (None, "separate", "separate"),
    (0.5, None, "separate"),         # momentum keeps the separate passes
])
def test_golden_backend_equals_golden_step_bit_for_bit(momentum, update, expected):
    steps, seed, lr = 5, 3, 0.1
    result = _train(steps=steps, lr=lr, momentum=momentum, seed=seed, update=update)
    assert result.update == expected and result.to_dict()["update"] == expected
    num = cm.CoreNumerics.from_config(SMALL)
    weights = initial_weights(list(SIZES), seed)
    velocities = None if momentum is None else [np.zeros_like(w) for w in weights]
    for x_bits, labels in _minibatches(seed, BATCH, steps):
        weights, _ = golden_step(num, weights, x_bits, labels, lr, momentum=momentum,
                                 velocities=velocities, update=expected)
    assert len(result.weights) == len(weights)
    for got, want in zip(result.weights, weights):
        np.testing.assert_array_equal(got, want)
    assert result.steps == steps and len(result.step_losses) == steps
    assert len(result.history) == 1 and result.history[0].steps == steps


def test_golden_chunks_reload_what_the_last_step_could_not_prefetch():
    """The driver's program prefetches; the last step of a chunk loads a slot that does not
    hold the next chunk's first minibatch yet, so the next chunk starts with that slot's
    load run: steps split over chunks (the second starting at an odd step, on the second
    buffer) equal the same steps in one chunk and golden_step, bit for bit."""
    from chrysalis.sim.golden.machine import Machine
    from chrysalis.sim.train.dataset import DigitsTask
    from chrysalis.sim.train.golden import GoldenSteps
    from chrysalis.sim.train.loop import Chunk, run_epochs
    from chrysalis.sim.train.reference import Float32Reference
    seed, lr, steps = 3, 0.1, 5
    program = tr._compile(SMALL, SIZES, BATCH, lr, None, None)
    assert program.prefetch and program.slots == 2
    weights0 = initial_weights(list(SIZES), seed)
    task = DigitsTask(BATCH, seed, tr.DATA_SEED)

    def run(chunks):
        strategy = GoldenSteps(program, program.initial_image(weights0), Machine(SMALL),
                               "the golden accelerator", "train")
        history = run_epochs(strategy, chunks, task, Float32Reference(weights0, lr, None),
                             progress=False)
        return strategy.read_weights(), history.step_losses

    split = run([Chunk(0, 3, 0), Chunk(3, steps, 0)])
    whole = run([Chunk(0, steps, 0)])
    num = cm.CoreNumerics.from_config(SMALL)
    weights = initial_weights(list(SIZES), seed)
    for x_bits, labels in _minibatches(seed, BATCH, steps):
        weights, _ = golden_step(num, weights, x_bits, labels, lr, update=program.update)
    for a, b, want in zip(split[0], whole[0], weights):
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(b, want)
    assert split[1] == whole[1] and len(split[1]) == steps


def test_training_is_deterministic_for_a_seed():
    a, b, c = _train(steps=6), _train(steps=6), _train(steps=6, seed=4)
    assert [h.to_dict() for h in a.history] == [h.to_dict() for h in b.history]
    assert a.step_losses == b.step_losses and a.ref_step_losses == b.ref_step_losses
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)
    for wa, wb in zip(a.ref_weights, b.ref_weights):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert a.counters == b.counters and a.counters["commands"] > 0


def test_loss_decreases_and_the_reference_tracks_the_accelerator():
    result = _train(steps=80)
    losses, ref = np.array(result.step_losses), np.array(result.ref_step_losses)
    # From about ln(10) = 2.3 at the start: a real decrease, not noise.
    assert losses[:10].mean() > 1.8
    assert losses[-10:].mean() < losses[:10].mean() - 0.5
    # Same network and minibatches; bf16 operands against float32 only move it slightly.
    assert np.abs(losses - ref).max() < 0.05
    final = result.final
    assert final.acc > 0.6 and abs(final.gap) < 5
    assert final.loss == pytest.approx(losses.mean())
    assert result.core_utilization is not None and 0 < result.core_utilization < 1
    assert result.cycles is None and result.utilization is None   # golden: no RTL cycles


def test_epochs_record_one_entry_each():
    calls = []
    # Large minibatches, so that an epoch is 10 steps: 1347 = 10 * 128 + 67.
    big = with_overrides(SMALL, {"core.scratchpad_words": 32768, "pe.act_words": 8192})
    result = tr.train(big, sizes=(64, 4, 10), batch=128, lr=0.5, epochs=2, seed=1,
                      progress=False, log=calls.append)
    assert [h.steps for h in result.history] == [10, 20]
    assert [h.epoch for h in result.history] == [1.0, 2.0]
    assert sum(line.startswith("epoch ") for line in calls) == 2
    assert any("final test accuracy" in line for line in calls)
    assert result.history[1].loss < result.history[0].loss


def test_the_order_drops_the_remainder_and_reshuffles_each_epoch():
    order = MinibatchOrder(10, 3, seed=7)
    assert order.per_epoch == 3
    first = np.concatenate([order.indices(k) for k in range(3)])
    second = np.concatenate([order.indices(k) for k in range(3, 6)])
    assert len(set(first)) == 9 and len(set(second)) == 9   # no sample twice in an epoch
    assert not np.array_equal(first, second)
    assert np.array_equal(order.indices(1), MinibatchOrder(10, 3, seed=7).indices(1))


def test_reference_step_follows_the_gradient_of_the_loss():
    rng = np.random.default_rng(5)
    sizes, batch = (5, 4, 3), 6
    weights = [rng.standard_normal((sizes[l + 1], sizes[l] + 1)).astype(np.float32)
               for l in range(2)]
    x = rng.random((sizes[0], batch)).astype(np.float32)
    labels = rng.integers(0, sizes[-1], batch)

    def loss(ws):
        a = x.astype(np.float64)
        for l, w in enumerate(ws):
            a = w @ np.vstack([a, np.ones((1, batch))])
            if l < len(ws) - 1:
                a = np.maximum(a, 0)
        return tr.softmax_xent(a, labels)

    before = [w.astype(np.float64) for w in weights]
    logits = tr.reference_step(weights, x, labels, lr=1.0)
    assert tr.softmax_xent(logits, labels) == pytest.approx(loss(before), rel=1e-6)
    eps = 1e-6
    for l, w in enumerate(before):
        numeric = np.zeros_like(w)
        for i, j in np.ndindex(w.shape):
            plus = [v.copy() for v in before]
            minus = [v.copy() for v in before]
            plus[l][i, j] += eps
            minus[l][i, j] -= eps
            numeric[i, j] = (loss(plus) - loss(minus)) / (2 * eps)
        np.testing.assert_allclose(w - weights[l], numeric, rtol=1e-3, atol=1e-5)


def test_reference_momentum_zero_is_plain_sgd_and_momentum_accumulates():
    rng = np.random.default_rng(6)
    w0 = [rng.standard_normal((4, 6)).astype(np.float32),
          rng.standard_normal((3, 5)).astype(np.float32)]
    x = rng.random((5, 3)).astype(np.float32)
    labels = np.array([0, 2, 1])
    plain, zero, heavy = ([w.copy() for w in w0] for _ in range(3))
    v0, v9 = [np.zeros_like(w) for w in w0], [np.zeros_like(w) for w in w0]
    for _ in range(2):
        tr.reference_step(plain, x, labels, 0.1)
        tr.reference_step(zero, x, labels, 0.1, momentum=0.0, velocities=v0)
        tr.reference_step(heavy, x, labels, 0.1, momentum=0.9, velocities=v9)
    for a, b, c in zip(plain, zero, heavy):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_result_is_json_ready():
    result = _train(steps=2)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["steps"] == 2 and data["sizes"] == list(SIZES)
    assert [np.array(w).shape for w in data["weights_bits"]] == [(16, 65), (10, 17)]
    np.testing.assert_array_equal(np.array(data["weights_bits"][1], dtype=np.uint64),
                                  result.weights[1])
    assert data["history"][0]["gap_points"] == result.final.gap   # JSON keeps a float exactly


@pytest.mark.parametrize("kwargs, match", [
    (dict(backend="modelsim"), "backend must be one of golden, icarus, verilator, not "
                               "'modelsim'"),
    (dict(sizes=(60, 10)), r"must start with 64 and end with 10, not \(60, 10\)"),
    (dict(sizes=(64, 0, 10)), r"positive layer sizes, not \(64, 0, 10\)"),
    (dict(batch=0), "batch must be a positive integer, not 0"),
    (dict(lr=-0.1), "lr must be a positive number, not -0.1"),
    (dict(momentum=-1), "momentum must be None or a non-negative number, not -1"),
    (dict(steps=2, epochs=1), "give steps or epochs, not both"),
    (dict(steps=0), "steps must be a positive integer, not 0"),
    (dict(epochs=1.5), "epochs must be a positive integer, not 1.5"),
    (dict(seed=-1), "seed must be a non-negative integer, not -1"),
    (dict(update="lazy"), "update must be one of fused, separate, not 'lazy'"),
    (dict(update="fused", momentum=0.5),
     "update must be 'separate' with momentum 0.5, not 'fused'"),
])
def test_bad_arguments_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _train(**kwargs)


def test_a_network_that_does_not_fit_says_so():
    with pytest.raises(ValueError, match=r"a 64-32-10 MLP with batch 8 does not fit config "
                                         r"'tiny': .*scratchpad"):
        tr.train(get_preset("tiny"), steps=1, progress=False, log=None)


# --- chrysalis train ----------------------------------------------------------------------

def test_cli_defaults_are_the_drivers():
    from chrysalis.gen.cli import train as train_cli
    parser = cli.build_parser()
    args = parser.parse_args(["train"])
    # --lr and --batch default per mode (None on the command line).
    assert (train_cli.LR, train_cli.BATCH, args.sizes) == (tr.DEFAULT_LR, tr.DEFAULT_BATCH,
                                                             tr.DIGITS_SIZES)
    assert args.lr is None and args.batch is None and args.mode is None
    assert train_cli.EPOCHS == tr.DEFAULT_EPOCHS
    from chrysalis.sim.train import cluster as cluster_train
    from chrysalis.sim.compile import cp_program
    assert train_cli.MODES == cluster_train.MODES
    assert (train_cli.CP_LR, train_cli.CP_EPOCHS) == (cp_program.DEFAULT_CP_LR,
                                                        cp_program.DEFAULT_CP_EPOCHS)
    assert train_cli.BACKENDS == tr.BACKENDS
    from chrysalis.sim.compile.compiler import UPDATES
    assert train_cli.UPDATES == UPDATES and args.update is None
    assert (args.backend, args.seed, args.build_dir) == ("golden", 0, "build/train")


@pytest.mark.parametrize("argv, bad", [
    (["--batch", "0"], "'0'"),
    (["--lr", "-1"], "'-1'"),
    (["--lr", "fast"], "'fast'"),
    (["--momentum", "-0.5"], "'-0.5'"),
    (["--sizes", "64,x,10"], "'64,x,10'"),
    (["--steps", "3", "--epochs", "2"], "not allowed with"),
    (["--backend", "spice"], "'spice'"),
    (["--update", "lazy"], "'lazy'"),
])
def test_cli_argument_errors_exit_2_naming_the_value(capsys, argv, bad):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *argv])
    assert exit_info.value.code == 2
    assert bad in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--preset", "tiny", "--steps", "1"],
     "a 64-32-10 MLP with batch 8 does not fit config 'tiny'"),
    (["--sizes", "60,10", "--steps", "1"], "not (60, 10)"),
    (["--waves", "--steps", "1"], "--waves needs an RTL backend"),
    (["--preset", "huge"], "huge"),
    # An output that cannot be written is refused before the training, not after it.
    (["--steps", "1", "--json", "/proc/no-such-folder/result.json"],
     "--json '/proc/no-such-folder/result.json' cannot be written"),
    (["--steps", "1", "--json", "."], "--json must name a file"),
    (["--backend", "verilator", "--harness", "native", "--waves", "--steps", "1"],
     "waves need the cocotb harness"),
    (["--harness", "cocotb", "--steps", "1"], "harness is for the RTL backends"),
])
def test_cli_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert cli.main(["train", "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chrysalis: error: ")
    assert message in err


def test_cli_trains_and_writes_json(capsys, tmp_path):
    out = tmp_path / "result.json"
    argv = ["train", "--preset", "tiny", *SET_ARGS, "--sizes", "64,16,10", "--batch", "4",
            "--steps", "3", "--seed", "3", "--quiet", "--json", str(out)]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "steps 3" in stdout and "final test accuracy" in stdout
    data = json.loads(out.read_text())
    expected = _train(steps=3)
    assert data["backend"] == "golden" and data["config"] == "small_core"
    for got, want in zip(data["weights_bits"], expected.weights):
        np.testing.assert_array_equal(np.array(got, dtype=np.uint64), want)
    assert data["history"] == [h.to_dict() for h in expected.history]


@pytest.mark.cocotb
def _cli_rtl_run(capfd, build_root, backend, *extra):
    """Two steps on the RTL through ``chrysalis train --quiet``: the RTL leaves the golden
    model's memory images, counters and weights, reports cycles and utilization, and the
    simulator prints nothing of its own (no cocotb log lines, no warnings)."""
    from chrysalis.sim.verify.runner import available_simulators
    if backend not in available_simulators():
        pytest.skip(f"{backend} is not available on this machine")
    out = build_root / "result.json"
    # A small network keeps the simulation to a few seconds.
    argv = ["train", "--backend", backend, "--preset", "tiny", *SET_ARGS, "--sizes",
            "64,8,10", "--batch", "2", "--steps", "2", "--seed", "3", "--quiet",
            "--build-dir", str(build_root), "--json", str(out), *extra]
    assert cli.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["golden_match"] is True
    assert data["cycles"] > data["counters"]["core_cycles"] > 0
    assert data["chunk_cycles"] == [data["cycles"]]
    assert 0 < data["utilization"] < data["core_utilization"] < 1
    expected = _train(steps=2, sizes=(64, 8, 10), batch=2)
    for got, want in zip(data["weights_bits"], expected.weights):
        np.testing.assert_array_equal(np.array(got, dtype=np.uint64), want)
    assert data["step_losses"] == expected.step_losses
    printed = capfd.readouterr().out
    assert "cycles, utilization" in printed
    assert "INFO" not in printed and "Warning" not in printed, printed[:2000]
    return data


def test_cli_icarus_cocotb_is_quiet(capfd, build_root):
    # The cocotb harness (cocotb's and cocotbext-axi's loggers) prints nothing with --quiet.
    assert _cli_rtl_run(capfd, build_root, "icarus", "--harness", "cocotb")["harness"] == "cocotb"


@pytest.mark.parametrize("backend, waves, expected", [
    ("icarus", False, "native"), ("verilator", False, "native"),
    ("icarus", True, "cocotb"), ("verilator", True, "cocotb"), ("golden", False, None)])
def test_native_harness_is_the_default_without_waves(backend, waves, expected):
    from chrysalis.sim.train.single import _harness
    assert _harness(backend, None, waves) == expected


def test_cli_verilator_runs_natively(capfd, build_root):
    assert _cli_rtl_run(capfd, build_root, "verilator")["harness"] == "native"


@pytest.mark.slow
def test_default_settings_reach_95_percent_on_golden():
    result = tr.train(get_preset("default"), seed=0, progress=False, log=None)
    assert len(result.history) == tr.DEFAULT_EPOCHS
    assert result.final.acc >= 0.95
    # bf16 operands against float32 arithmetic: the accuracies stay within a point.
    assert abs(result.final.gap) <= 1.0


def test_fused_update_on_a_dual_precision_core_is_refused_and_defaults_to_separate():
    dual = with_overrides(SMALL, {"mac.dual": "dual-full", "pe.acc_regs": 16})
    with pytest.raises(ValueError, match=r"update must be 'separate' with mac\.dual = "
                                         r"'dual-full', not 'fused'"):
        tr.train(dual, sizes=SIZES, batch=BATCH, steps=1, update="fused", progress=False,
                 log=None)
    result = tr.train(dual, sizes=SIZES, batch=BATCH, steps=1, progress=False, log=None)
    assert result.update == "separate"
