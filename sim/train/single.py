"""The training driver: an MLP learns scikit-learn's digits on the accelerator.

:func:`train` compiles the network with :class:`sim.compile.program.TrainingProgram`, writes every
minibatch into the memory image as a host would (:meth:`~sim.compile.program.TrainingProgram.
write_batch`) and rings the doorbell once per SGD step (:meth:`~sim.compile.program.TrainingProgram.
step_run`), in the epoch loop of :func:`sim.train.loop.run_epochs`. Where the scratchpad
has room for a second minibatch buffer the program prefetches: each step loads the next
step's minibatch, from the other of two memory slots, beside its last weight-gradient pass,
so the host writes minibatch ``k + 1`` before step ``k``'s doorbell (the host contract of
:mod:`sim.compile.program`). The accelerator is one of
three backends, each a strategy of that loop:

``"golden"``
    The golden machine model (:class:`sim.golden.machine.Machine`), called once per step
    (:class:`sim.train.golden.GoldenSteps`). It is bit-exact with the RTL, so it gives the RTL's accuracy without simulating it.
``"icarus"``, ``"verilator"``
    The accelerator's Verilog under that simulator, through cocotb (:func:`sim.verify.rtl_job.
    run_job`; :class:`sim.train.rtl.RtlSteps`). One simulation runs a *chunk* of steps (an epoch, or all of ``steps``): one
    :class:`sim.compile.job.Run` per step, whose memory patches are the next step's minibatch
    and labels. Each simulation starts from reset, so the first run of a chunk starts with the
    prologue, which loads the weights the previous chunk left in the image and the chunk's
    first minibatch. The same job
    also runs on the golden machine model, and the driver reports whether both left the same
    memory image (:attr:`TrainResult.golden_match`).

Between steps the weights stay on chip: the prologue runs once per machine (once per chunk
on the RTL). The host never changes the weights in the image, so it never needs to run the
prologue again.

Data and order: :mod:`sim.train.dataset` (the digits split once by ``data_seed``, a seeded
permutation per epoch cut into whole minibatches of the batch the program was compiled
for). ``steps`` runs that many steps through consecutive epochs' permutations.

Measurements, after every epoch (or once at the end with ``steps``):

* the training loss: the mean softmax cross-entropy of the logits each step wrote back to
  the image (:meth:`~sim.compile.program.TrainingProgram.read_logits`; the logits of the forward
  pass, before that step's update), in float64 on the host;
* the test accuracy of the weights read back from the image, with a float32 forward pass
  on the host;
* the same two for a float32 NumPy reference (:mod:`sim.train.reference`) trained from the same initial weights on the
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

import numpy as np

from .dataset import DATA_SEED, DigitsTask
from .golden import GoldenSteps
from .loop import EpochStats, epoch_chunks, reporter, run_epochs
from .reference import Float32Reference, forward32, reference_step, softmax_xent
from .rtl import HARNESSES, OPTIMISED_BUILD_STEPS, RtlSteps
from .settings import (BACKENDS, DEFAULT_BATCH, DEFAULT_EPOCHS, DEFAULT_LR, DIGITS_SIZES,
                       check_arguments)

__all__ = ["BACKENDS", "DIGITS_SIZES", "DEFAULT_LR", "DEFAULT_BATCH", "DEFAULT_EPOCHS",
           "DATA_SEED", "OPTIMISED_BUILD_STEPS", "EpochStats", "TrainResult", "train",
           "reference_step", "forward32", "softmax_xent"]


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
    update : str
        The SGD update the accelerator ran: ``"fused"`` into the weight gradient or
        ``"separate"`` (``sim.compile.compiler``).
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
        ``useful_macs / (PEs * cycles)``: the definition of ``docs/results.md`` over every
        cycle of the runs, the DMA and the prologues included (RTL backends only).
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
        RTL backends: the memory image and the counters after every run equal the golden
        machine model's.
    waves : list of str
        RTL backends with ``waves``: the waveform file of each chunk.
    reuse : str
        The reuse-strength schedule (``sim.golden.reuse_schedule``), described.
    harness : str or None
        RTL backends: ``"native"`` or ``"cocotb"`` (:mod:`sim.train.rtl`).
    chunk_cycles : list of int
        RTL backends: ``CYCLES`` of each simulation (an epoch, or the steps of a steps run,
        with its prologue and checkpoint).
    network : str or None
        The trained ``gen.spec.model.Model``'s name, for a run of one
        (``sim.train.cnn.train_model``; ``sizes`` is then empty).
    """

    backend: str
    config_name: str
    sizes: tuple
    batch: int
    lr: float
    momentum: float
    seed: int
    update: str = "separate"
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
    harness: str = None
    chunk_cycles: list = field(default_factory=list)
    network: str = None

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
            "update": self.update,
            "steps": self.steps, "history": [h.to_dict() for h in self.history],
            "step_losses": list(self.step_losses), "ref_step_losses": list(self.ref_step_losses),
            "counters": dict(self.counters), "cycles": self.cycles,
            "useful_macs": self.useful_macs, "utilization": self.utilization,
            "core_utilization": self.core_utilization, "wall_s": round(self.wall_s, 3),
            "accel_s": round(self.accel_s, 3), "step_s": round(self.step_s, 6),
            "sim_s": None if self.sim_s is None else round(self.sim_s, 3),
            "golden_match": self.golden_match, "waves": list(self.waves),
            "reuse": self.reuse, "harness": self.harness,
            "chunk_cycles": list(self.chunk_cycles), "network": self.network,
        }
        if weights:
            out["weights_bits"] = [w.astype(np.uint32).tolist() for w in self.weights]
        return out


def train(config, *, sizes=DIGITS_SIZES, batch=DEFAULT_BATCH, lr=DEFAULT_LR, momentum=None,
          steps=None, epochs=None, seed=0, backend="golden", build_dir="build/train",
          waves=False, progress=True, log=print, data_seed=DATA_SEED, reuse=None,
          harness=None, update=None, weights=None):
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
    update : {"fused", "separate"}, optional
        The SGD update: fused into the weight-gradient pass, or a separate pass
        (``sim.compile.compiler``). The default is ``"fused"`` where it applies (plain SGD,
        ``mac.dual = "single"``) and ``"separate"`` elsewhere; ``"fused"`` with momentum or
        a dual policy is refused.
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
    harness : {"native", "cocotb"}, optional
        RTL backends: how the RTL is driven (:mod:`sim.train.rtl`). The default is
        ``native`` for Verilator (a C++ host and memory, no Python during a run; about 20x
        faster) and ``cocotb`` for Icarus or with ``waves``.
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
    weights : list of numpy.ndarray, optional
        The initial weights, fp32 bit patterns of ``(sizes[l+1], sizes[l] + 1)`` with the
        bias last (an ONNX model's); the default is :func:`sim.compile.program.
        initial_weights` of ``seed``.

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
    from chrysalis.gen.spec.networks import mlp
    from chrysalis.sim.compile.program import initial_weights
    from chrysalis.sim.golden.reuse_schedule import FixedStrength, schedule_of

    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    check_arguments(sizes, batch, lr, momentum, steps, epochs, seed, backend)
    harness = _harness(backend, harness, waves)
    schedule = schedule_of(reuse)
    if config.pe.reuse_entries == 0 and not (isinstance(schedule, FixedStrength)
                                             and schedule.strength == 0):
        raise ValueError(f"reuse needs a reuse cache (pe.reuse_entries > 0 in config "
                         f"{config.name!r}), not reuse={reuse!r}")
    sizes = tuple(int(s) for s in sizes)
    batch, seed = int(batch), int(seed)
    start_time = time.perf_counter()
    program = _compile(config, sizes, batch, lr, momentum, update)
    task = DigitsTask(batch, seed, data_seed)
    task.check_batch()
    if steps is None and epochs is None:
        epochs = DEFAULT_EPOCHS
    chunks = epoch_chunks(task.per_epoch, None if epochs is None else int(epochs),
                          None if steps is None else int(steps))
    weights0 = initial_weights(list(sizes), seed) if weights is None else \
        _given_weights(sizes, weights)
    image = program.initial_image(weights0)
    reference = Float32Reference(weights0, lr, momentum)
    result = TrainResult(backend, config.name, sizes, batch, float(lr),
                         None if momentum is None else float(momentum), seed,
                         update=program.update, reuse=schedule.describe())
    result.steps = chunks[-1].stop
    result.useful_macs = result.steps * mlp(list(sizes)).macs(batch)
    say = reporter(log)
    if backend == "golden":
        from chrysalis.sim.golden.machine import Machine
        strategy = GoldenSteps(program, image, Machine(config), "the golden accelerator",
                               "train (golden)")
    else:
        strategy = RtlSteps(config, program, image, backend, build_dir, waves, say, harness,
                            quiet=not progress)
    pes = config.core.rows * config.core.cols

    def describe(stats):
        label = (f"epoch {stats.epoch:g}" if steps is None
                 else f"steps {stats.steps} ({stats.epoch:.2f} epochs)")
        return (f"{label}: loss {stats.loss:.4f} (float32 {stats.ref_loss:.4f}), test "
                f"accuracy {stats.acc:.2%} (float32 {stats.ref_acc:.2%}, gap "
                f"{stats.gap:+.2f} points)"
                + (f", reuse strength {stats.reuse_strength}" if config.pe.reuse_entries
                   else "")
                + (_chunk_figures(strategy, stats, batch, sizes, pes)
                   if isinstance(strategy, RtlSteps) else ""))

    history = run_epochs(strategy, chunks, task, reference, schedule=schedule,
                         progress=progress, say=say, describe=describe)
    _record(result, strategy, history, reference, config.core.rows * config.core.cols)
    result.wall_s = time.perf_counter() - start_time
    for line in _summary(result, config.mac.macs_per_cycle):
        say(line)
    return result


def _given_weights(sizes, weights):
    """The initial weights a caller gave (an ONNX model's), checked against ``sizes``."""
    shapes = [(sizes[l + 1], sizes[l] + 1) for l in range(len(sizes) - 1)]
    if len(weights) != len(shapes) or any(np.shape(w) != s for w, s in zip(weights, shapes)):
        raise ValueError(f"weights must be matrices of shapes {shapes!r} (bias last), not "
                         f"{[np.shape(w) for w in weights]!r}")
    return [np.asarray(w, dtype=np.uint64) for w in weights]


def _harness(backend, harness, waves):
    """The harness of an RTL run (``None`` for the golden backend); ``ValueError`` for one
    that cannot run it."""
    if backend == "golden":
        if harness is not None:
            raise ValueError(f"harness is for the RTL backends, not backend 'golden' "
                             f"(harness={harness!r})")
        return None
    if harness is None:
        return "cocotb" if waves else "native"
    if harness not in HARNESSES:
        raise ValueError(f"harness must be one of {', '.join(HARNESSES)}, not {harness!r}")
    if harness == "native" and waves:
        raise ValueError("waves need the cocotb harness, not harness 'native'")
    return harness


def _chunk_figures(strategy, stats, batch, sizes, pes):
    """The RTL cycles and utilization of the chunk that just ended (its prologue and
    checkpoint included) for the epoch line."""
    from chrysalis.gen.spec.networks import mlp
    cycles = strategy.chunk_cycles[-1]
    steps = stats.steps - sum(strategy.chunk_steps[:-1])
    utilization = steps * mlp(list(sizes)).macs(batch) / (pes * cycles)
    return f"; {cycles} cycles, utilization {utilization:.1%}"


def _compile(config, sizes, batch, lr, momentum, update):
    """The program of the run; a network that does not fit fails here, at once."""
    from chrysalis.sim.compile.compiler import resolve_update
    from chrysalis.sim.compile.program import TrainingProgram
    update = resolve_update(config, momentum, update)
    try:
        # The weights stay on chip between steps; a checkpoint run stores them into the
        # image when the host evaluates them (at the end of an epoch or of the run). Where
        # the scratchpad has room, each step loads the next one's minibatch beside its
        # last weight-gradient pass, from the other of two slots (the host contract of
        # sim.compile.program).
        return TrainingProgram(config, list(sizes), batch, lr, momentum=momentum,
                               store_every_step=False, update=update)
    except ValueError as error:
        raise ValueError(f"a {'-'.join(map(str, sizes))} MLP with batch {batch} does not fit "
                         f"config {config.name!r}: {error}") from None


def _record(result, strategy, history, reference, pes):
    """What the run measured, into ``result``."""
    result.history = history.epochs
    result.step_losses = history.step_losses
    result.ref_step_losses = history.ref_step_losses
    result.weights = strategy.read_weights()
    result.ref_weights = reference.weights
    result.counters = strategy.counters
    result.accel_s = strategy.accel_s
    if isinstance(strategy, RtlSteps):
        result.sim_s, result.golden_match = strategy.sim_s, strategy.golden_match
        result.waves = strategy.waves
        result.harness = strategy.harness
        result.chunk_cycles = list(strategy.chunk_cycles)
        result.cycles = result.counters.get("cycles")
        if result.cycles:
            result.utilization = result.useful_macs / (pes * result.cycles)
    core_cycles = result.counters.get("core_cycles")
    if core_cycles:
        result.core_utilization = result.useful_macs / (pes * core_cycles)


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
        lines.append("the RTL's memory images and counters equal the golden machine "
                     "model's"
                     if result.golden_match else
                     "the RTL's memory images or counters DIFFER from the golden machine "
                     "model's")
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
