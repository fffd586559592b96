"""Training a network of ``gen.spec.model`` (a CNN) on scikit-learn's digits: the golden
CNN step (``sim.golden.cnn``) or its compiled program on the RTL once per minibatch,
beside a float32 NumPy reference (``sim.train.cnn_reference``) trained from the same
initial weights on the same minibatches, in the epoch loop of every driver
(``sim.train.loop``).

The golden backend computes what the accelerator's commands compute (FORWARD with the
ReLU fused, LOSS_GRAD, BACKWARD, GATHER, the fused WGRAD), bit for bit, with the
numerics of the config's core (operand format, reduction order, banks). The RTL backends
(``"icarus"``, ``"verilator"``) run the compiled program (``sim.compile.cnn_program``) on
the accelerator's Verilog, a simulation per chunk of steps as the MLP's
(:class:`chrysalis.sim.train.rtl.RtlSteps`), and the same job on the golden machine model:
``golden_match`` says whether every run left the same memory image and counters.
A network that is an MLP (``Model.is_mlp``) runs through the MLP driver
(``sim.train.single``), which has every backend.

The initial weights (:func:`initial_weights`) follow the MLP's rule: uniform, He for the
layers a ReLU follows, Glorot for the others, zero biases; a convolution's fan-in is
``c_in * k * k`` and its fan-out ``c_out * k * k``.

Measurements are the MLP driver's: after every epoch the training loss (of the logits each
step computed before its update) and the test accuracy, of the golden weights through a
float32 forward pass on the host, and the same for the reference, and the gap.
"""

import math
import time

import numpy as np

from chrysalis.gen.spec.checks import is_int, is_real
from chrysalis.gen.spec.model import Model
from chrysalis.sim.golden import numerics as nx

from .cnn_reference import CnnFloat32Reference, accuracy
from .dataset import DATA_SEED, DigitsTask
from .loop import ChunkOutcome, epoch_chunks, reporter, run_epochs
from .reference import softmax_xent
from .settings import DIGITS_SIZES

__all__ = ["CNN_LR", "CNN_BATCH", "CNN_EPOCHS", "CNN_BACKENDS", "initial_weights", "ModelTask",
           "GoldenModelSteps", "check_weights", "train_model"]

#: The defaults of a CNN run (``benchmarks/train_cnn.py`` measures them over seeds).
CNN_LR = 0.1
CNN_BATCH = 8
CNN_EPOCHS = 20


def initial_weights(model, seed):
    """Seeded initial weights of a model, fp32 bit patterns (see the module's docstring)."""
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    rng = np.random.default_rng(int(seed))
    weights = []
    for t in model.trainable:
        rows, columns = t.weight_shape
        fan_in = t.layer.fan_in
        fan_out = rows * (t.layer.k * t.layer.k if t.is_conv else 1)
        limit = math.sqrt(6.0 / (fan_in if t.relu else fan_in + fan_out))
        w = np.zeros((rows, columns))
        w[:, :-1] = rng.uniform(-limit, limit, (rows, fan_in))
        weights.append(nx.from_float32(w.astype(np.float32)))
    return weights


def check_weights(model, weights):
    """Refuse weights that are not ``model``'s matrices."""
    shapes = model.weight_shapes
    if len(weights) != len(shapes):
        raise ValueError(f"weights must be {len(shapes)} matrices (one per trainable layer "
                         f"of {model.name}), not {len(weights)!r}")
    for k, (w, shape) in enumerate(zip(weights, shapes)):
        if np.shape(w) != shape:
            raise ValueError(f"weights[{k}] must have shape {shape!r}, not {np.shape(w)!r}")


class ModelTask(DigitsTask):
    """The digits as a run of ``model`` sees them: the test accuracy is the model's."""

    def __init__(self, model, batch, seed, data_seed=DATA_SEED):
        super().__init__(batch, seed, data_seed)
        self.model = model

    def test_accuracy(self, weights):
        return accuracy(self.model, weights, self.x_test_t, self.y_test)


class GoldenModelSteps:
    """Golden CNN steps (a :class:`chrysalis.sim.train.loop.Strategy`).

    Parameters
    ----------
    golden : chrysalis.sim.golden.cnn.CnnGolden
    weights : list of numpy.ndarray
        The initial weights (fp32 bit patterns).
    lr : float

    Members
    -------
    accel_s : float
        Wall time spent in the golden steps.
    counters : dict
        Empty: the golden step computes values, not the machine's events.
    """

    unit = "step"
    description = "train (golden CNN)"

    def __init__(self, golden, weights, lr):
        self.golden, self.weights, self.lr = golden, list(weights), lr
        self.accel_s = 0.0
        self.counters = {}

    def work(self, chunk):
        return chunk.steps

    def run(self, chunk, minibatches, strength, progress):
        losses = []
        for batch in minibatches:
            start = time.perf_counter()
            self.weights, _, logits = self.golden.step(self.weights, batch.x_bits,
                                                       batch.labels, self.lr)
            self.accel_s += time.perf_counter() - start
            losses.append(softmax_xent(nx.to_float32(logits), batch.labels))
            progress.advance(1, losses)
        return ChunkOutcome.of_steps(losses)

    def read_weights(self):
        return list(self.weights)


#: The backends of a CNN run.
CNN_BACKENDS = ("golden", "icarus", "verilator")


def _check_config(config, backend):
    if backend not in CNN_BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(CNN_BACKENDS)}, not "
                         f"{backend!r}")
    if config.cluster.cores != 1:
        raise ValueError(f"a convolutional network trains on one core: cluster.cores must "
                         f"be 1, not {config.cluster.cores!r}")
    if config.mac.dual != "single":
        raise ValueError(f"the golden CNN step has one multiplier per PE: mac.dual must be "
                         f"'single', not {config.mac.dual!r}")


def train_model(config, model, *, batch=CNN_BATCH, lr=CNN_LR, steps=None, epochs=None,
                seed=0, backend="golden", weights=None, progress=True, log=print,
                data_seed=DATA_SEED, build_dir="build/train", waves=False, harness=None):
    """Train ``model`` on the digits with the golden CNN step, or its compiled program on
    the RTL, beside the float32 reference.

    Parameters
    ----------
    config : gen.spec.config.Config
        The core whose numerics the golden step follows (one core, ``mac.dual = single``).
    model : gen.spec.model.Model
        64 inputs (an 8x8 image or 64 features), 10 classes.
    batch : int
    lr : float
        Plain SGD, the update fused into the weight gradient.
    steps, epochs : int, optional
        At most one; neither means :data:`CNN_EPOCHS`.
    seed : int
        Initial weights (unless ``weights``) and minibatch order.
    backend : {"golden", "icarus", "verilator"}
        The golden CNN step, or the compiled program on the RTL under that simulator,
        checked against the golden machine model.
    weights : list of numpy.ndarray, optional
        Initial weights (fp32 bit patterns), e.g. an ONNX model's.
    progress : bool
    log : callable or None
    data_seed : int
    build_dir : path-like
        RTL backends: the Verilog, the simulator builds and the waveforms go here.
    waves : bool
        RTL backends: dump waveforms (the cocotb harness).
    harness : {"native", "cocotb"}, optional
        RTL backends: as :func:`chrysalis.sim.train.single.train`'s.

    Returns
    -------
    chrysalis.sim.train.single.TrainResult
        ``network`` names the model; ``sizes`` is empty. The RTL backends add the cycles,
        the utilization, the counters and ``golden_match``.

    Raises
    ------
    ValueError
        A bad argument, or a model that does not fit ``config`` on an RTL backend (one
        line: what does not fit).
    RuntimeError
        The accelerator halted with an error code, or a simulation failed.
    """
    from chrysalis.gen.spec.config import Config
    from chrysalis.sim.golden.cnn import CnnGolden
    from chrysalis.sim.golden.core_model import CoreNumerics

    from .single import TrainResult, _harness, _record

    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    if not isinstance(model, Model):
        raise TypeError(f"model must be a gen.spec.model.Model, not {model!r}")
    _check_config(config, backend)
    harness = _harness(backend, harness, waves)
    if model.input_features != DIGITS_SIZES[0] or model.classes != DIGITS_SIZES[-1]:
        raise ValueError(f"a digits network takes {DIGITS_SIZES[0]} inputs and gives "
                         f"{DIGITS_SIZES[-1]} classes, not {model.input_features} inputs "
                         f"and {model.classes} classes ({model.name})")
    if not is_int(batch) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    if not is_real(lr) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive number, not {lr!r}")
    if steps is not None and epochs is not None:
        raise ValueError(f"give steps or epochs, not both (steps={steps!r}, "
                         f"epochs={epochs!r})")
    for name, value in (("steps", steps), ("epochs", epochs)):
        if value is not None and (not is_int(value) or value < 1):
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    weights0 = initial_weights(model, seed) if weights is None else \
        [np.asarray(w, dtype=np.uint64) for w in weights]
    check_weights(model, weights0)
    start_time = time.perf_counter()
    task = ModelTask(model, int(batch), int(seed), data_seed)
    task.check_batch()
    if steps is None and epochs is None:
        epochs = CNN_EPOCHS
    chunks = epoch_chunks(task.per_epoch, epochs, steps)
    reference = CnnFloat32Reference(model, weights0, float(lr))
    result = TrainResult(backend, config.name, (), int(batch), float(lr), None, int(seed),
                         update="fused", network=model.name, harness=harness)
    result.steps = chunks[-1].stop
    step_macs = model.macs(int(batch))
    result.useful_macs = result.steps * step_macs
    say = reporter(log)
    pes = config.core.rows * config.core.cols
    if backend == "golden":
        golden = CnnGolden(model, CoreNumerics.from_config(config))
        strategy = GoldenModelSteps(golden, weights0, float(lr))
    else:
        strategy = _rtl_strategy(config, model, int(batch), float(lr), weights0, backend,
                                 build_dir, waves, say, harness, progress)

    def describe(stats):
        label = (f"epoch {stats.epoch:g}" if steps is None
                 else f"steps {stats.steps} ({stats.epoch:.2f} epochs)")
        line = (f"{label}: loss {stats.loss:.4f} (float32 {stats.ref_loss:.4f}), test "
                f"accuracy {stats.acc:.2%} (float32 {stats.ref_acc:.2%}, gap "
                f"{stats.gap:+.2f} points)")
        if backend != "golden":
            cycles = strategy.chunk_cycles[-1]
            done = stats.steps - sum(strategy.chunk_steps[:-1])
            line += f"; {cycles} cycles, utilization {done * step_macs / (pes * cycles):.1%}"
        return line

    history = run_epochs(strategy, chunks, task, reference, progress=progress, say=say,
                         describe=describe)
    _record(result, strategy, history, reference, pes)
    result.wall_s = time.perf_counter() - start_time
    final = result.final
    say(f"final test accuracy {final.acc:.2%}; float32 reference {final.ref_acc:.2%}; "
        f"gap {final.gap:+.2f} points ({result.steps} steps, {model.name}, {backend})")
    if backend == "golden":
        say(f"golden CNN step: {result.step_s * 1e3:.1f} ms per step")
    else:
        say(f"{backend}: {result.cycles} cycles, utilization {result.utilization:.1%} over "
            f"all cycles, {result.core_utilization:.1%} over core-busy cycles; wall time "
            f"{result.accel_s:.1f} s ({result.sim_s:.1f} s simulating)")
        say("the RTL's memory images and counters equal the golden machine model's"
            if result.golden_match else
            "the RTL's memory images or counters DIFFER from the golden machine model's")
    return result


def _rtl_strategy(config, model, batch, lr, weights, backend, build_dir, waves, say,
                  harness, progress):
    """The compiled program's steps on the RTL (``sim.train.rtl``); a network that does
    not fit the config is refused here, in one line."""
    from chrysalis.sim.compile.cnn_program import CnnTrainingProgram

    from .rtl import RtlSteps
    try:
        # The weights stay in the PEs between steps; the checkpoint that ends each chunk
        # stores them into the image, where the host reads them.
        program = CnnTrainingProgram(config, model, batch, lr, store_every_step=False)
    except ValueError as error:
        raise ValueError(f"{model.name} with batch {batch} does not fit config "
                         f"{config.name!r}: {error}") from None
    return RtlSteps(config, program, program.initial_image(weights), backend, build_dir,
                    waves, say, harness, quiet=not progress)
