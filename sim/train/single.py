"""The training driver: an MLP learns scikit-learn's digits on the accelerator.

:func:`train` compiles the network with :class:`sim.compile.program.TrainingProgram`, writes every
minibatch into the memory image as a host would (:meth:`~sim.compile.program.TrainingProgram.
write_batch`) and rings the doorbell once per SGD step (:meth:`~sim.compile.program.TrainingProgram.
step_run`). The accelerator is one of three backends:

``"golden"``
    The golden machine model (:class:`sim.golden.machine.Machine`), called once per step. It is
    bit-exact with the RTL, so it gives the RTL's accuracy without simulating it.
``"icarus"``, ``"verilator"``
    The accelerator's Verilog under that simulator, through cocotb (:func:`sim.verify.rtl_job.
    run_job`). One simulation runs a *chunk* of steps (an epoch, or all of ``steps``): one
    :class:`sim.verify.rtl_job.Run` per step, whose memory patches are that step's minibatch and
    labels. Each simulation starts from reset, so the first run of a chunk starts with the
    prologue, which loads the weights the previous chunk left in the image. The same job
    also runs on the golden machine model, and the driver reports whether both left the same
    memory image (:attr:`TrainResult.golden_match`).

Between steps the weights stay on chip: the prologue runs once per machine (once per chunk
on the RTL). The host never changes the weights in the image, so it never needs to run the
prologue again.

Data and order: the digits are split once (``data_seed``, 1347 training and 450 test
images, ``sim.compile.data.digits``: pixels scaled to [0, 1] and rounded to fp32). Each epoch
visits the training set in a new seeded permutation, in minibatches of ``batch``; the last
``1347 mod batch`` images of a permutation, too few for a minibatch, are left out of that
epoch (a different few each epoch), so every step has the same batch size, the one the
program was compiled for. ``steps`` runs that many steps through consecutive epochs'
permutations.

Measurements, after every epoch (or once at the end with ``steps``):

* the training loss: the mean softmax cross-entropy of the logits each step wrote back to
  the image (:meth:`~sim.compile.program.TrainingProgram.read_logits`; the logits of the forward
  pass, before that step's update), in float64 on the host;
* the test accuracy of the weights read back from the image, with a float32 forward pass
  on the host;
* the same two for a float32 NumPy reference trained from the same initial weights on the
  same minibatches with the same ``lr`` and momentum, and the gap in accuracy (accelerator
  minus reference, in points).

Everything is deterministic for a seed: the initial weights
(:func:`sim.compile.program.initial_weights`), the minibatch order and, with it, every bit the
accelerator computes.

This module imports NumPy and tqdm only; :func:`train` loads the data with scikit-learn,
and the RTL backends import Amaranth and cocotb when they run.
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from chrysalis.sim.golden import numerics as nx

__all__ = ["BACKENDS", "DIGITS_SIZES", "DEFAULT_LR", "DEFAULT_BATCH", "DEFAULT_EPOCHS",
           "DATA_SEED", "EpochStats", "TrainResult", "train", "reference_step", "forward32",
           "softmax_xent"]

#: Where the accelerator runs: the golden machine model or the RTL under a simulator.
BACKENDS = ("golden", "icarus", "verilator")
#: The digits network: 64 pixels in, 10 classes out.
DIGITS_SIZES = (64, 32, 10)
#: Plain SGD at these settings reaches >= 95% test accuracy on the default preset within
#: :data:`DEFAULT_EPOCHS` epochs (``benchmarks/train_digits.py`` measures it over seeds).
DEFAULT_LR = 0.1
DEFAULT_BATCH = 8
DEFAULT_EPOCHS = 12
#: The train/test split of the digits (fixed, so that seeds are compared on one test set).
DATA_SEED = 0


@dataclass
class EpochStats:
    """The measurements after one epoch (or after the ``steps`` of a steps-run).

    Members
    -------
    epoch : float
        Epochs completed (a fraction with ``steps`` that end inside an epoch).
    steps : int
        Steps completed.
    loss, ref_loss : float
        Mean softmax cross-entropy of the steps since the previous record, on the
        accelerator and on the float32 reference.
    acc, ref_acc : float
        Test accuracy in [0, 1] of the accelerator's weights and of the reference's.
    reuse_strength : int
        The ``REUSE_STRENGTH`` these steps ran with (0: the reuse cache off, or none).
    """

    epoch: float
    steps: int
    loss: float
    ref_loss: float
    acc: float
    ref_acc: float
    reuse_strength: int = 0

    @property
    def gap(self):
        """Accelerator minus reference test accuracy, in points."""
        return 100.0 * (self.acc - self.ref_acc)

    def to_dict(self):
        return {"epoch": self.epoch, "steps": self.steps, "loss": self.loss,
                "ref_loss": self.ref_loss, "acc": self.acc, "ref_acc": self.ref_acc,
                "gap_points": self.gap, "reuse_strength": self.reuse_strength}


@dataclass
class TrainResult:
    """What :func:`train` measured.

    Members
    -------
    backend : str
    config_name : str
    sizes : tuple of int
    batch : int
    lr : float
    momentum : float or None
    seed : int
    steps : int
        Steps run.
    history : list of EpochStats
        One record per epoch (one in all with ``steps``).
    step_losses, ref_step_losses : list of float
        The loss of every step's minibatch before its update, on the accelerator and on the
        reference.
    weights : list of numpy.ndarray
        The accelerator's final weights, ``uint64`` fp32 bit patterns, layer ``l`` of shape
        ``(sizes[l+1], sizes[l] + 1)`` with the bias in the last column.
    ref_weights : list of numpy.ndarray
        The float32 reference's final weights, same shapes.
    counters : dict
        The accelerator's counters over the whole training (``gen.spec.isa.COUNTERS``
        lowercased). The golden model has those of ``sim.golden.machine.COUNTER_NAMES`` (no
        ``cycles``, ``dma_cycles``); the RTL has them all.
    cycles : int or None
        Simulated cycles, doorbell to done, of every run (RTL backends only).
    useful_macs : int
        MACs the network needs: per step, forward and weight gradient plus update of every
        layer and the backward pass of every layer but the first.
    utilization : float or None
        ``useful_macs / (PEs * cycles)``: the README's definition over every cycle of the
        runs, the DMA and the prologues included (RTL backends only).
    core_utilization : float or None
        ``useful_macs / (PEs * core_cycles)``: over the cycles the core was busy.
    wall_s : float
        Wall time of the whole call.
    accel_s : float
        Wall time spent running the accelerator (for the RTL: the simulations, builds
        included).
    sim_s : float or None
        RTL backends: wall time inside the simulations, from doorbell to interrupt.
    golden_match : bool or None
        RTL backends: the memory image after every run equals the golden machine model's.
    waves : list of str
        RTL backends with ``waves``: the waveform file of each chunk.
    reuse : str
        The reuse-strength schedule (``sim.golden.reuse_schedule``), described.
    """

    backend: str
    config_name: str
    sizes: tuple
    batch: int
    lr: float
    momentum: float
    seed: int
    steps: int = 0
    history: list = field(default_factory=list)
    step_losses: list = field(default_factory=list)
    ref_step_losses: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    ref_weights: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    cycles: int = None
    useful_macs: int = 0
    utilization: float = None
    core_utilization: float = None
    wall_s: float = 0.0
    accel_s: float = 0.0
    sim_s: float = None
    golden_match: bool = None
    waves: list = field(default_factory=list)
    reuse: str = "fixed k=0"

    @property
    def final(self):
        """The last :class:`EpochStats`."""
        return self.history[-1]

    @property
    def step_s(self):
        """Accelerator wall time per step."""
        return self.accel_s / self.steps if self.steps else math.nan

    def to_dict(self, weights=True):
        """A JSON-ready dict; ``weights``: with the final weights as fp32 bit patterns."""
        out = {
            "backend": self.backend, "config": self.config_name, "sizes": list(self.sizes),
            "batch": self.batch, "lr": self.lr, "momentum": self.momentum, "seed": self.seed,
            "steps": self.steps, "history": [h.to_dict() for h in self.history],
            "step_losses": list(self.step_losses), "ref_step_losses": list(self.ref_step_losses),
            "counters": dict(self.counters), "cycles": self.cycles,
            "useful_macs": self.useful_macs, "utilization": self.utilization,
            "core_utilization": self.core_utilization, "wall_s": round(self.wall_s, 3),
            "accel_s": round(self.accel_s, 3), "step_s": round(self.step_s, 6),
            "sim_s": None if self.sim_s is None else round(self.sim_s, 3),
            "golden_match": self.golden_match, "waves": list(self.waves),
            "reuse": self.reuse,
        }
        if weights:
            out["weights_bits"] = [w.astype(np.uint32).tolist() for w in self.weights]
        return out


# ---------------------------------------------------------------------------------------
# Host-side arithmetic: the loss, the test forward pass and the float32 reference
# ---------------------------------------------------------------------------------------

def softmax_xent(logits, labels):
    """Mean softmax cross-entropy in float64.

    Parameters
    ----------
    logits : array_like
        ``(classes, batch)`` values.
    labels : array_like of int
        ``batch`` classes.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=0, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=0, keepdims=True))
    labels = np.asarray(labels)
    return float(-log_p[labels, np.arange(z.shape[1])].mean())


def _augment32(x):
    """``x`` (features x samples, float32) with a row of ones below: the bias input."""
    return np.vstack([x, np.ones((1, x.shape[1]), dtype=np.float32)])


def forward32(weights, x):
    """Logits of a float32 forward pass: ReLU after every layer but the last.

    Parameters
    ----------
    weights : list of numpy.ndarray
        float32, layer ``l`` of shape ``(sizes[l+1], sizes[l] + 1)``, bias last.
    x : numpy.ndarray
        ``(sizes[0], samples)`` float32.

    Returns
    -------
    numpy.ndarray
        ``(sizes[-1], samples)`` float32.
    """
    a = np.asarray(x, dtype=np.float32)
    for l, w in enumerate(weights):
        a = w @ _augment32(a)
        if l < len(weights) - 1:
            a = np.maximum(a, np.float32(0))
    return a


def _accuracy(weights, x, y):
    return float(np.mean(forward32(weights, x).argmax(axis=0) == y))


def reference_step(weights, x, labels, lr, momentum=None, velocities=None):
    """One SGD step in plain float32 NumPy, the same step the accelerator takes.

    Forward with ReLU on the hidden layers, ``dY = (softmax(Y) - onehot) / B``, backward
    through the old weights (the accelerator updates a layer after its backward pass), then
    ``W -= lr * dW``, or with momentum ``v = dW + mu * v; W -= lr * v``.

    Parameters
    ----------
    weights : list of numpy.ndarray
        float32, updated in place.
    x : numpy.ndarray
        ``(sizes[0], batch)`` float32.
    labels : numpy.ndarray of int
    lr : float
    momentum : float, optional
    velocities : list of numpy.ndarray, optional
        With momentum: float32 like ``weights``, updated in place.

    Returns
    -------
    numpy.ndarray
        The logits of the forward pass (before the update), ``(classes, batch)`` float32.
    """
    batch = x.shape[1]
    layers = len(weights)
    acts = [_augment32(np.asarray(x, dtype=np.float32))]
    for l, w in enumerate(weights):
        y = w @ acts[-1]
        if l < layers - 1:
            acts.append(_augment32(np.maximum(y, np.float32(0))))
    logits = y
    z = logits - logits.max(axis=0, keepdims=True)
    e = np.exp(z)
    grad = e / e.sum(axis=0, keepdims=True)
    grad[labels, np.arange(batch)] -= np.float32(1)
    grad /= np.float32(batch)
    lr32 = np.float32(lr)
    for l in reversed(range(layers)):
        dw = grad @ acts[l].T
        if l > 0:
            # Through the weights before this step's update, masked by the ReLU.
            grad = (weights[l][:, :-1].T @ grad) * (acts[l][:-1] > 0)
        if momentum is None:
            weights[l] -= lr32 * dw
        else:
            velocities[l][:] = dw + np.float32(momentum) * velocities[l]
            weights[l] -= lr32 * velocities[l]
    return logits


# ---------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_arguments(sizes, batch, lr, momentum, steps, epochs, seed, backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if (not isinstance(sizes, (list, tuple)) or len(sizes) < 2
            or any(not _is_int(s) or s < 1 for s in sizes)):
        raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
    if sizes[0] != DIGITS_SIZES[0] or sizes[-1] != DIGITS_SIZES[-1]:
        raise ValueError(f"a digits network takes {DIGITS_SIZES[0]} inputs and gives "
                         f"{DIGITS_SIZES[-1]} classes, so sizes must start with "
                         f"{DIGITS_SIZES[0]} and end with {DIGITS_SIZES[-1]}, not "
                         f"{tuple(int(s) for s in sizes)!r}")
    if not _is_int(batch) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) \
            or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive number, not {lr!r}")
    if momentum is not None and (isinstance(momentum, bool)
                                 or not isinstance(momentum, (int, float, np.number))
                                 or not 0 <= momentum < math.inf):
        raise ValueError(f"momentum must be None or a non-negative number, not {momentum!r}")
    if steps is not None and epochs is not None:
        raise ValueError(f"give steps or epochs, not both (steps={steps!r}, "
                         f"epochs={epochs!r})")
    if steps is not None and (not _is_int(steps) or steps < 1):
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    if epochs is not None and (not _is_int(epochs) or epochs < 1):
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")


class _Order:
    """The minibatch of every step: consecutive ``batch``-sized slices of a fresh seeded
    permutation of the training set per epoch (the remainder of each is dropped)."""

    def __init__(self, samples, batch, seed):
        self.samples, self.batch = samples, batch
        self.per_epoch = samples // batch
        # Its own stream: initial_weights draws from default_rng(seed).
        self._rng = np.random.default_rng([seed, 1])
        self._perms = []

    def indices(self, step):
        epoch, k = divmod(step, self.per_epoch)
        while len(self._perms) <= epoch:
            self._perms.append(self._rng.permutation(self.samples))
        return self._perms[epoch][k * self.batch:(k + 1) * self.batch]


def train(config, *, sizes=DIGITS_SIZES, batch=DEFAULT_BATCH, lr=DEFAULT_LR, momentum=None,
          steps=None, epochs=None, seed=0, backend="golden", build_dir="build/train",
          waves=False, progress=True, log=print, data_seed=DATA_SEED, reuse=None):
    """Train an MLP on the digits on the accelerator and on a float32 reference.

    Parameters
    ----------
    config : gen.spec.config.Config
        The accelerator (one core).
    sizes : sequence of int
        Layer sizes: 64 inputs first, 10 classes last.
    batch : int
        Samples per minibatch; the remainder of each epoch's permutation is dropped.
    lr : float
    momentum : float, optional
        SGD with momentum (needs the weights resident in the PEs).
    steps, epochs : int, optional
        How long to train: ``steps`` SGD steps (measured once, at the end) or ``epochs``
        epochs (measured after each). At most one; neither means :data:`DEFAULT_EPOCHS`.
    seed : int
        Initial weights and minibatch order.
    backend : {"golden", "icarus", "verilator"}
    build_dir : path-like
        RTL backends: the Verilog, the simulator builds and the waveforms go here.
    waves : bool
        RTL backends: dump waveforms (one file per chunk, under ``build_dir/waves``).
    progress : bool
        Show a progress bar over the steps (tqdm, on stderr).
    log : callable
        Called with each line of the per-epoch report and the summary (``None``: quiet).
    data_seed : int
        The train/test split.
    reuse : None, int, "adaptive" or sim.golden.reuse_schedule.ReuseSchedule
        The reuse cache's strength (``REUSE_STRENGTH``, ``docs/reuse.md``) over the
        training: off (None or 0), a fixed ``k``, or a schedule that sets ``k`` per epoch
        from the training loss (``"adaptive"``: :class:`sim.golden.reuse_schedule.
        AdaptiveStrength` with its defaults). Needs a config with ``pe.reuse_entries > 0``
        unless off. With ``steps`` the run is one window: the first strength holds.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        A bad argument, or a network that does not fit ``config`` (the compiler's message
        says what does not fit and by how much).
    RuntimeError
        The accelerator halted with an error code, or a simulation failed.
    """
    from chrysalis.gen.spec.config import Config
    from chrysalis.sim.compile.data import digits
    from chrysalis.sim.compile.program import TrainingProgram, initial_weights
    from chrysalis.sim.golden.reuse_schedule import FixedStrength, schedule_of
    from chrysalis.sim.compile.job import useful_macs  # NumPy and gen.spec.isa only

    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    _check_arguments(sizes, batch, lr, momentum, steps, epochs, seed, backend)
    schedule = schedule_of(reuse)
    if config.pe.reuse_entries == 0 and not (isinstance(schedule, FixedStrength)
                                             and schedule.strength == 0):
        raise ValueError(f"reuse needs a reuse cache (pe.reuse_entries > 0 in config "
                         f"{config.name!r}), not reuse={reuse!r}")
    sizes = tuple(int(s) for s in sizes)
    batch, seed = int(batch), int(seed)
    start_time = time.perf_counter()
    # Construction compiles the network: a network that does not fit fails here, at once.
    try:
        # The weights stay on chip between steps; a checkpoint run stores them into the
        # image when the host evaluates them (at the end of an epoch or of the run).
        program = TrainingProgram(config, list(sizes), batch, lr, momentum=momentum, slots=1,
                                  store_every_step=False)
    except ValueError as error:
        raise ValueError(f"a {'-'.join(map(str, sizes))} MLP with batch {batch} does not fit "
                         f"config {config.name!r}: {error}") from None

    x_train, y_train, x_test, y_test = digits(data_seed)
    order = _Order(len(x_train), batch, seed)
    if order.per_epoch == 0:
        raise ValueError(f"batch must be at most the {len(x_train)} training samples, "
                         f"not {batch!r}")
    if steps is None and epochs is None:
        epochs = DEFAULT_EPOCHS
    if steps is not None:
        total = int(steps)
        chunks = [(0, total)]
    else:
        total = int(epochs) * order.per_epoch
        chunks = [(e * order.per_epoch, (e + 1) * order.per_epoch) for e in range(epochs)]

    weights0 = initial_weights(list(sizes), seed)
    image = program.initial_image(weights0)
    ref_weights = [nx.to_float32(w).copy() for w in weights0]
    ref_velocities = None if momentum is None else [np.zeros_like(w) for w in ref_weights]
    x_test_t = x_test.T.copy()

    result = TrainResult(backend, config.name, sizes, batch, float(lr),
                         None if momentum is None else float(momentum), seed,
                         reuse=schedule.describe())
    result.useful_macs = total * useful_macs(sizes, batch)
    pes = config.core.rows * config.core.cols
    bar = tqdm(total=total, unit="step", desc=f"train ({backend})", disable=not progress,
               dynamic_ncols=True)

    def say(line):
        if log is None:
            return
        # Lines written while the bar is on screen would tear it: write above it.
        with tqdm.external_write_mode():
            log(line)

    def batch_of(step):
        idx = order.indices(step)
        return nx.from_float32(x_train[idx].T), y_train[idx], x_train[idx].T

    if backend == "golden":
        from chrysalis.sim.golden.machine import Machine
        machine = Machine(config)
        t0 = time.perf_counter()
        _check_run(machine.run(image, program.prologue.cmd_base, program.prologue.cmd_count,
                               mem_base=program.mem_base), "the prologue", backend)
        result.accel_s += time.perf_counter() - t0
    else:
        build_dir = Path(build_dir)
        result.sim_s = 0.0
        result.golden_match = True
        totals = {}

    try:
        for start, stop in chunks:
            losses, ref_losses = [], []
            strength = schedule.strength

            def reference(step, x32, labels):
                logits = reference_step(ref_weights, x32, labels, lr, momentum, ref_velocities)
                ref_losses.append(softmax_xent(logits, labels))

            if backend == "golden":
                step_run = program.step_run(1, 0)
                machine.reuse_strength = strength
                for step in range(start, stop):
                    x_bits, labels, x32 = batch_of(step)
                    t0 = time.perf_counter()
                    program.write_batch(image, 0, x_bits, labels)
                    _check_run(machine.run(image, step_run.cmd_base, step_run.cmd_count,
                                           mem_base=program.mem_base),
                               f"step {step}", backend)
                    result.accel_s += time.perf_counter() - t0
                    losses.append(softmax_xent(nx.to_float32(program.read_logits(image, 0)),
                                               labels))
                    reference(step, x32, labels)
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses):.4f}", refresh=False)
                t0 = time.perf_counter()
                _check_run(machine.run(image, program.checkpoint.cmd_base,
                                       program.checkpoint.cmd_count, mem_base=program.mem_base),
                           "the checkpoint", backend)
                result.accel_s += time.perf_counter() - t0
            else:
                bar.set_postfix_str(f"simulating steps {start}-{stop - 1}")
                image, chunk_losses, counters = _rtl_chunk(
                    config, program, image, start, stop, batch_of, backend, build_dir, waves,
                    result, say, strength)
                losses.extend(chunk_losses)
                for key, value in counters.items():
                    totals[key] = totals.get(key, 0) + value
                for step in range(start, stop):
                    _, labels, x32 = batch_of(step)
                    reference(step, x32, labels)
                bar.update(stop - start)
                bar.set_postfix(loss=f"{np.mean(losses):.4f}", refresh=False)

            weights = [nx.to_float32(w) for w in program.read_weights(image)]
            stats = EpochStats(epoch=stop / order.per_epoch, steps=stop,
                               loss=float(np.mean(losses)), ref_loss=float(np.mean(ref_losses)),
                               acc=_accuracy(weights, x_test_t, y_test),
                               ref_acc=_accuracy(ref_weights, x_test_t, y_test),
                               reuse_strength=strength)
            schedule.observe(stats.loss)
            result.history.append(stats)
            result.step_losses += losses
            result.ref_step_losses += ref_losses
            label = (f"epoch {stats.epoch:g}" if steps is None
                     else f"steps {stats.steps} ({stats.epoch:.2f} epochs)")
            say(f"{label}: loss {stats.loss:.4f} (float32 {stats.ref_loss:.4f}), test "
                f"accuracy {stats.acc:.2%} (float32 {stats.ref_acc:.2%}, gap "
                f"{stats.gap:+.2f} points)"
                + (f", reuse strength {strength}" if config.pe.reuse_entries else ""))
    finally:
        bar.close()

    result.steps = total
    result.weights = program.read_weights(image)
    result.ref_weights = ref_weights
    if backend == "golden":
        result.counters = dict(machine.counters)
    else:
        result.counters = totals
        result.cycles = totals.get("cycles")
        if result.cycles:
            result.utilization = result.useful_macs / (pes * result.cycles)
    core_cycles = result.counters.get("core_cycles")
    if core_cycles:
        result.core_utilization = result.useful_macs / (pes * core_cycles)
    result.wall_s = time.perf_counter() - start_time
    for line in _summary(result, config.mac.macs_per_cycle):
        say(line)
    return result


def _check_run(run_result, what, backend):
    from chrysalis.gen.spec.isa import ErrorCode
    if run_result.error != ErrorCode.NONE:
        raise RuntimeError(f"{what}: the {backend} accelerator halted with "
                           f"{run_result.error.name} at command {run_result.index}")


def _rtl_chunk(config, program, image, start, stop, batch_of, simulator, build_dir, waves,
               result, say, reuse_strength=0):
    """Steps ``start`` to ``stop - 1`` in one simulation; returns the image after them, the
    loss of each step and the counters of the simulation (they count from its reset)."""
    from chrysalis.gen.spec.isa import ErrorCode
    from chrysalis.sim.compile import job as jobs
    from chrysalis.sim.verify import rtl_job

    minibatches = [batch_of(step)[:2] for step in range(start, stop)]
    # The image as the previous chunk left it, rebuilt from its weights (and velocities);
    # run 0 is the prologue, which loads them (a simulation starts from reset), run 1 + k
    # step start + k, whose memory patches are its minibatch and labels.
    # The last run is the checkpoint: the next chunk starts from this image.
    job = jobs.training_job(program, None, minibatches, image=image,
                               reuse_strength=reuse_strength)

    t0 = time.perf_counter()
    # Verilator's optimised model build takes about 90 s longer than the -O0 one and then
    # simulates about 4x faster (benchmarks/sim_speed.py): worth it past about 50 steps.
    fast_build = stop - start <= OPTIMISED_BUILD_STEPS
    outputs = rtl_job.run_job(config, job, simulator, build_dir, waves=waves,
                              fast_build=fast_build)
    result.accel_s += time.perf_counter() - t0
    for k, out in enumerate(outputs):
        if out.error != ErrorCode.NONE:
            what = _run_name(k, stop - start, start)
            raise RuntimeError(f"{what}: the {simulator} accelerator halted with "
                               f"{out.error.name} at command {out.index}")
        result.sim_s += out.wall_s
    losses = [softmax_xent(nx.to_float32(program.read_logits(out.image.astype(np.uint32), 0)),
                           labels)
              for out, (_, labels) in zip(outputs[1:], minibatches)]
    if waves:
        path = _keep_waves(build_dir, config, simulator, start, stop)
        if path is not None:
            result.waves.append(str(path))
            say(f"waveforms of steps {start}-{stop - 1}: {path}")

    # The same job on the golden machine model: the RTL must leave the same images.
    golden = jobs.run_job_golden(config, job)
    for k, (out, gold) in enumerate(zip(outputs, golden)):
        if not np.array_equal(out.image.astype(np.uint32), gold.image):
            result.golden_match = False
            what = _run_name(k, stop - start, start)
            say(f"warning: after {what} the {simulator} memory image differs from the golden "
                f"machine model's")
            break
    return outputs[-1].image.astype(np.uint32), losses, dict(outputs[-1].counters)


#: Simulations of more steps than this build Verilator's model optimised.
OPTIMISED_BUILD_STEPS = 50


def _run_name(k, steps, start):
    """What run ``k`` of a chunk's job is: the prologue, a step, or the checkpoint."""
    if k == 0:
        return "the prologue"
    return f"step {start + k - 1}" if k <= steps else "the checkpoint"


def _keep_waves(build_dir, config, simulator, start, stop):
    """Move the waveform file of the simulation that just ended out of the build directory
    (the next simulation would overwrite it); its new path, or ``None`` if there is none."""
    names = (f"{config.name}.fst",) if simulator == "icarus" else ("dump.fst", "dump.vcd")
    found = [p for d in build_dir.glob(f"{simulator}-{config.name}-*") for name in names
             if (p := d / name).is_file()]
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime)
    target = build_dir / "waves" / f"{simulator}-steps{start}-{stop - 1}{newest.suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    newest.replace(target)
    return target.resolve()


def _summary(result, peak=1):
    final = result.final
    lines = [f"final test accuracy {final.acc:.2%}; float32 reference {final.ref_acc:.2%}; "
             f"gap {final.gap:+.2f} points ({result.steps} steps, {result.backend})"]
    if result.backend == "golden":
        lines.append(f"golden machine model: {result.step_s * 1e3:.1f} ms per step, "
                     f"core utilization {result.core_utilization:.1%} (useful MACs / "
                     f"(PEs x core cycles){_peak_note(peak)})")
    else:
        lines.append(f"{result.backend}: {result.cycles} cycles, utilization "
                     f"{result.utilization:.1%} over all cycles, "
                     f"{result.core_utilization:.1%} over core-busy cycles"
                     f"{_peak_note(peak)}; wall time "
                     f"{result.accel_s:.1f} s ({result.sim_s:.1f} s simulating)")
        lines.append("the RTL's memory images equal the golden machine model's"
                     if result.golden_match else
                     "the RTL's memory images DIFFER from the golden machine model's")
    c = result.counters
    if c.get("reuse_lookups"):
        # Multiplies the run needed: the products made by a multiplier, and those the cache
        # gave instead (zero products need no multiplier either way).
        needed = c["high_products"] + c["low_products"] + c["multiplies_avoided"]
        lines.append(f"reuse cache ({result.reuse}): {c['reuse_hits'] / c['reuse_lookups']:.1%}"
                     f" of {c['reuse_lookups']} lookups hit; {c['multiplies_avoided']} "
                     f"multiplies avoided, {c['multiplies_avoided'] / max(1, needed):.1%} of "
                     f"the {needed} needed")
    return lines


def _peak_note(peak):
    """Utilization counts MACs per PE per cycle: a dual-precision PE's peak is 2 (100% is
    then half of it)."""
    return "" if peak == 1 else f"; a dual-precision PE makes up to {peak} MACs per cycle"
