"""Continuous propagation on a cluster: the digits MLP trained one sample per tick, the
layers pipelined over the cores (the program: :mod:`chrysalis.sim.compile.cp_program`).

:class:`CpSessions` is the strategy of the epoch loop (:func:`chrysalis.sim.train.loop.
run_epochs`): an epoch is one session of the pipeline, its ticks run on the golden cluster
in runs of ``ticks_per_run`` ticks.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from chrysalis.gen.spec.checks import is_int
from chrysalis.sim.compile.cp_program import DEFAULT_CP_EPOCHS, DEFAULT_CP_LR, CpProgram
from chrysalis.sim.compile.compiler import check_sizes
from chrysalis.sim.golden import numerics as nx

from .dataset import DigitsTask
from .golden import GoldenSteps
from .loop import ChunkOutcome, epoch_chunks, reporter, run_epochs
from .reference import Float32Reference, softmax_xent

__all__ = ["CpEpoch", "CpResult", "CpSessions", "train_cp"]


@dataclass
class CpEpoch:
    """One epoch (one session) of :func:`train_cp`.

    Members
    -------
    epoch : int
    loss : float
        Mean softmax cross-entropy of the logits each sample's forward pass wrote.
    acc : float
        Test accuracy of the weights after the epoch (float32 forward pass on the host).
    ref_acc : float
        The same for plain batch-``batch`` SGD in float32 (``sim.train.reference.reference_step``)
        on the same samples in the same order: no pipeline, no staleness.
    """
    epoch: int
    loss: float
    acc: float
    ref_acc: float

    def to_dict(self):
        return {"epoch": self.epoch, "loss": self.loss, "acc": self.acc,
                "ref_acc": self.ref_acc}


@dataclass
class CpResult:
    """What :func:`train_cp` measured: ``history`` (:class:`CpEpoch` per epoch),
    ``weights`` (final, fp32 bits), ``counters`` (the golden cluster's), ``stages``,
    ``ticks``, ``commands`` (executed), ``profile`` (:meth:`CpProgram.tick_profile` of a
    steady tick), ``wall_s`` and ``accel_s`` (time in the machine)."""
    sizes: tuple
    lr: float
    batch: int
    seed: int
    cores: int
    stages: list
    update: str = "separate"
    history: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    ticks: int = 0
    commands: int = 0
    profile: dict = None
    wall_s: float = 0.0
    accel_s: float = 0.0

    @property
    def accuracies(self):
        return [h.acc for h in self.history]

    def to_dict(self):
        """A JSON-ready dict (``chrysalis train --mode cp --json``)."""
        return {"mode": "cp", "cores": self.cores, "sizes": list(self.sizes),
                "batch": self.batch, "lr": self.lr, "seed": self.seed, "update": self.update,
                "stages": [list(s) for s in self.stages], "ticks": self.ticks,
                "commands": self.commands, "history": [h.to_dict() for h in self.history],
                "counters": dict(self.counters), "wall_s": round(self.wall_s, 3),
                "accel_s": round(self.accel_s, 3)}


class CpSessions(GoldenSteps):
    """Continuous-propagation sessions of a :class:`~chrysalis.sim.compile.cp_program.
    CpProgram` on the golden cluster, a session per chunk (a :class:`Strategy
    <chrysalis.sim.train.loop.Strategy>`).

    Parameters
    ----------
    program : chrysalis.sim.compile.cp_program.CpProgram
    image : numpy.ndarray
        The program's initial image.
    machine : chrysalis.sim.golden.cluster_machine.ClusterMachine
    ticks_per_run : int
        Ticks per doorbell.

    Members
    -------
    accel_s : float
        Wall time spent in the machine.
    commands : int
        Commands executed.

    The doorbells and the weights are :class:`~chrysalis.sim.train.golden.GoldenSteps`'s.
    """

    unit = "tick"

    def __init__(self, program, image, machine, ticks_per_run):
        self.ticks_per_run = ticks_per_run
        super().__init__(program, image, machine, "the golden cluster", "train (CP, golden)")

    def work(self, chunk):
        return self.program.ticks

    def run(self, chunk, minibatches, strength, progress):
        program = self.program
        x32 = np.concatenate([b.x32 for b in minibatches], axis=1)
        labels = np.concatenate([b.labels for b in minibatches])
        program.write_samples(self.image, nx.from_float32(x32), labels)
        epoch = chunk.epoch - 1
        for t in range(0, program.ticks, self.ticks_per_run):
            count = min(self.ticks_per_run, program.ticks - t)
            self._doorbell(program.tick_run(t, count),
                           f"epoch {epoch}, ticks {t}-{t + count - 1}")
            progress.advance(count)
        self._doorbell(program.checkpoint, "the checkpoint")
        # The loss of the session: every sample's logits from its forward pass.
        logits = nx.to_float32(program.read_logits(self.image))
        return ChunkOutcome(softmax_xent(logits, labels))


def train_cp(config, *, sizes=(64, 32, 10), lr=DEFAULT_CP_LR, epochs=DEFAULT_CP_EPOCHS,
             seed=0, batch=1, ticks_per_run=256, progress=True, log=print, data_seed=0,
             update=None):
    """Train an MLP on the digits with continuous propagation on the golden cluster.

    The split, the test accuracy and the order of each epoch are ``sim.train.dataset``'s
    (``sim.compile.data.digits(data_seed)``, float32 forward pass, seeded permutations), the
    initial weights ``sim.compile.program.initial_weights(sizes, seed)``, the epoch loop
    ``sim.train.loop.run_epochs``. An epoch is one
    session: ``G = 1347 // batch`` micro-batches through the pipeline, filled and drained
    once. The machine runs ``ticks_per_run`` ticks per call. ``update``: the SGD update,
    ``"separate"`` or ``"fused"`` into the weight gradient (``sim.compile.compiler``), or
    ``None`` for the default: fused where it applies (``mac.dual = "single"``).

    Returns
    -------
    CpResult
    """
    from chrysalis.sim.compile.program import initial_weights
    from chrysalis.sim.golden.cluster_machine import ClusterMachine

    if not is_int(epochs) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    if not is_int(ticks_per_run) or ticks_per_run < 1:
        raise ValueError(f"ticks_per_run must be a positive integer, not {ticks_per_run!r}")
    sizes = tuple(check_sizes(sizes))
    start = time.perf_counter()
    task = DigitsTask(batch, seed, data_seed)
    program = CpProgram(config, list(sizes), lr, task.per_epoch * batch, batch=batch,
                        update=update)
    weights0 = initial_weights(list(sizes), seed)
    result = CpResult(sizes, float(lr), batch, seed, program.cores, program.stages,
                      update=program.update, ticks=epochs * program.ticks)
    steady = program.steady_tick()
    result.profile = None if steady is None else program.tick_profile(steady)
    strategy = CpSessions(program, program.initial_image(weights0), ClusterMachine(config),
                          ticks_per_run)
    # Plain batch-`batch` SGD in float32 on the same samples: no pipeline, no staleness.
    reference = Float32Reference(weights0, lr)
    say = reporter(log)

    def describe(stats):
        return (f"epoch {stats.epoch}: loss {stats.loss:.4f}, test accuracy {stats.acc:.2%} "
                f"(float32 SGD without the pipeline {stats.ref_acc:.2%})")

    history = run_epochs(strategy, epoch_chunks(task.per_epoch, epochs, fractional=False),
                         task, reference, progress=progress, say=say, describe=describe)
    result.history = [CpEpoch(s.epoch, s.loss, s.acc, s.ref_acc) for s in history.epochs]
    result.weights = strategy.read_weights()
    result.counters = dict(strategy.machine.counters)
    result.commands, result.accel_s = strategy.commands, strategy.accel_s
    result.wall_s = time.perf_counter() - start
    say(f"final test accuracy {result.history[-1].acc:.2%} after {epochs} epochs of "
        f"{program.ticks} ticks on {program.cores} cores (stages {program.stages}); golden "
        f"cluster {1e3 * result.accel_s / result.ticks:.1f} ms per tick, "
        f"{result.commands} commands")
    return result
