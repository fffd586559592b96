"""Data- and model-parallel training on a cluster: the digits MLP on the golden cluster (the
program: :mod:`chrysalis.sim.compile.parallel_program`; the strategy of the epoch loop:
:class:`chrysalis.sim.train.golden.GoldenSteps` on a
:class:`~chrysalis.sim.golden.cluster_machine.ClusterMachine`)."""

import time
from dataclasses import dataclass, field

from .dataset import DATA_SEED, DigitsTask
from .golden import GoldenSteps
from .loop import epoch_chunks, reporter, run_epochs
from .reference import Float32Reference
from .settings import DEFAULT_BATCH, DEFAULT_EPOCHS, DEFAULT_LR, DIGITS_SIZES, check_arguments

__all__ = ["ParallelTrainResult", "train_parallel"]


@dataclass
class ParallelTrainResult:
    """What :func:`train_parallel` measured.

    Members
    -------
    mode : str
    cores : int
    sizes : tuple of int
    batch : int
    lr : float
    seed : int
    momentum : float or None
    update : str
        The SGD update the cluster ran: ``"fused"`` into the weight gradient or
        ``"separate"`` (``sim.compile.parallel_program``).
    history : list of sim.train.loop.EpochStats
        After every epoch: the training loss and test accuracy of the cluster and of the
        float32 reference (one core's step in float32 on the same minibatches).
    weights, ref_weights : list of numpy.ndarray
        Final weights: fp32 bits read from the image, and the reference's float32.
    counters : dict
        The cluster's counters over the run (``sim.golden.cluster_machine``).
    steps : int
    wall_s : float
    """
    mode: str
    cores: int
    sizes: tuple
    batch: int
    lr: float
    seed: int
    momentum: float = None
    update: str = "separate"
    history: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    ref_weights: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    steps: int = 0
    wall_s: float = 0.0

    @property
    def accuracy(self):
        """Test accuracy after each epoch."""
        return [h.acc for h in self.history]

    @property
    def final(self):
        return self.history[-1]

    def to_dict(self):
        return {"mode": self.mode, "cores": self.cores, "sizes": list(self.sizes),
                "batch": self.batch, "lr": self.lr, "momentum": self.momentum, "seed": self.seed,
                "update": self.update,
                "steps": self.steps,
                "history": [h.to_dict() for h in self.history],
                "counters": dict(self.counters), "wall_s": round(self.wall_s, 3)}


def train_parallel(config, mode, *, sizes=None, batch=None, lr=None, momentum=None,
                   epochs=None, seed=0, progress=True, log=print, data_seed=None,
                   update=None):
    """Train an MLP on the digits on the golden model of a cluster, data or model parallel.

    The data, the split, the minibatch order, the initial weights
    (:func:`sim.compile.program.initial_weights`), the float32 reference and the accuracy measure
    are those of :func:`sim.train.single.train`, and so is the epoch loop
    (:func:`sim.train.loop.run_epochs`); each step is one doorbell of a
    :class:`ParallelProgram` on :class:`sim.golden.cluster_machine.ClusterMachine`, and the
    checkpoint after every epoch brings the weights into the image for the test.

    Parameters
    ----------
    config : gen.spec.config.Config
        A cluster (``cluster.cores >= 2``).
    mode : {"data", "model"}
    sizes, batch, lr, epochs :
        As :func:`sim.train.single.train` (defaults :data:`sim.train.settings.DIGITS_SIZES`,
        :data:`~sim.train.settings.DEFAULT_BATCH`, :data:`~sim.train.settings.DEFAULT_LR`,
        :data:`~sim.train.settings.DEFAULT_EPOCHS`).
    momentum : float, optional
        SGD with momentum (model parallel only).
    update : {"fused", "separate"}, optional
        The SGD update. The default is ``"fused"`` where it applies (model parallel, plain
        SGD, ``mac.dual = "single"``) and ``"separate"`` elsewhere; ``"fused"`` in data
        parallel (whose gradients are all-reduced first), with momentum or a dual policy is
        refused (``sim.compile.parallel_program.resolve_parallel_update``).
    seed : int
        Initial weights and minibatch order.
    progress : bool
        A progress bar over the steps.
    log : callable or None
        Called with a line per epoch.
    data_seed : int, optional
        The train/test split (default :data:`sim.train.dataset.DATA_SEED`).

    Returns
    -------
    ParallelTrainResult
    """
    from chrysalis.gen.spec.config import Config
    from chrysalis.sim.compile.parallel_program import ParallelProgram, resolve_parallel_update
    from chrysalis.sim.compile.program import initial_weights
    from chrysalis.sim.golden.cluster_machine import ClusterMachine

    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    sizes = DIGITS_SIZES if sizes is None else sizes
    batch = DEFAULT_BATCH if batch is None else batch
    lr = DEFAULT_LR if lr is None else lr
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    data_seed = DATA_SEED if data_seed is None else data_seed
    check_arguments(sizes, batch, lr, momentum, None, epochs, seed, "golden")
    sizes = tuple(int(s) for s in sizes)
    batch, seed, epochs = int(batch), int(seed), int(epochs)
    start_time = time.perf_counter()
    # A bad update is the user's to fix, said as itself (not as a network that does not fit).
    update = resolve_parallel_update(config, mode, momentum, update)
    try:
        program = ParallelProgram(config, list(sizes), batch, lr, mode, momentum=momentum,
                                  update=update)
    except ValueError as error:
        raise ValueError(f"a {'-'.join(map(str, sizes))} MLP with batch {batch} cannot train "
                         f"{mode} parallel on config {config.name!r}: {error}") from None
    task = DigitsTask(batch, seed, data_seed)
    task.check_batch()
    weights0 = initial_weights(list(sizes), seed)
    reference = Float32Reference(weights0, lr, momentum)
    result = ParallelTrainResult(mode, config.cluster.cores, sizes, batch, float(lr), seed,
                                 None if momentum is None else float(momentum),
                                 update=program.update)
    strategy = GoldenSteps(program, program.initial_image(weights0), ClusterMachine(config),
                           "the golden cluster",
                           f"train ({mode} parallel, {result.cores} cores)")

    def describe(stats):
        return (f"epoch {stats.epoch}: loss {stats.loss:.4f} (float32 {stats.ref_loss:.4f}), "
                f"test accuracy {stats.acc:.2%} (float32 {stats.ref_acc:.2%})")

    chunks = epoch_chunks(task.per_epoch, epochs, fractional=False)
    history = run_epochs(strategy, chunks, task, reference, progress=progress,
                         say=reporter(log), describe=describe)
    result.history = history.epochs
    result.steps = chunks[-1].stop
    result.weights = strategy.read_weights()
    result.ref_weights = reference.weights
    result.counters = strategy.counters
    result.wall_s = time.perf_counter() - start_time
    return result
