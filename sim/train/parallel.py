"""Data- and model-parallel training on a cluster: the digits MLP on the golden cluster (the
program: :mod:`chrysalis.sim.compile.parallel_program`)."""

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from chrysalis.gen.spec import isa
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.compile.parallel_program import ParallelProgram

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
    history : list of sim.train.single.EpochStats
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
                "steps": self.steps,
                "history": [h.to_dict() for h in self.history],
                "counters": dict(self.counters), "wall_s": round(self.wall_s, 3)}


def train_parallel(config, mode, *, sizes=None, batch=None, lr=None, momentum=None,
                   epochs=None, seed=0, progress=True, log=print, data_seed=None):
    """Train an MLP on the digits on the golden model of a cluster, data or model parallel.

    The data, the split, the minibatch order, the initial weights
    (:func:`sim.compile.program.initial_weights`), the float32 reference and the accuracy measure
    are those of :func:`sim.train.single.train`; each step is one doorbell of a
    :class:`ParallelProgram` on :class:`sim.golden.cluster_machine.ClusterMachine`, and the
    checkpoint after every epoch brings the weights into the image for the test.

    Parameters
    ----------
    config : gen.spec.config.Config
        A cluster (``cluster.cores >= 2``).
    mode : {"data", "model"}
    sizes, batch, lr, epochs :
        As :func:`sim.train.single.train` (defaults :data:`sim.train.single.DIGITS_SIZES`,
        :data:`~sim.train.single.DEFAULT_BATCH`, :data:`~sim.train.single.DEFAULT_LR`,
        :data:`~sim.train.single.DEFAULT_EPOCHS`).
    momentum : float, optional
        SGD with momentum (model parallel only).
    seed : int
        Initial weights and minibatch order.
    progress : bool
        A progress bar over the steps.
    log : callable or None
        Called with a line per epoch.
    data_seed : int, optional
        The train/test split (default :data:`sim.train.single.DATA_SEED`).

    Returns
    -------
    ParallelTrainResult
    """
    from chrysalis.gen.spec.config import Config
    from chrysalis.sim.train import single as tr
    from chrysalis.sim.golden.cluster_machine import ClusterMachine
    from chrysalis.sim.compile.data import digits
    from chrysalis.sim.compile.program import initial_weights

    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    sizes = tr.DIGITS_SIZES if sizes is None else sizes
    batch = tr.DEFAULT_BATCH if batch is None else batch
    lr = tr.DEFAULT_LR if lr is None else lr
    epochs = tr.DEFAULT_EPOCHS if epochs is None else epochs
    data_seed = tr.DATA_SEED if data_seed is None else data_seed
    tr._check_arguments(sizes, batch, lr, momentum, None, epochs, seed, "golden")
    sizes = tuple(int(s) for s in sizes)
    batch, seed, epochs = int(batch), int(seed), int(epochs)
    start_time = time.perf_counter()
    try:
        program = ParallelProgram(config, list(sizes), batch, lr, mode, momentum=momentum)
    except ValueError as error:
        raise ValueError(f"a {'-'.join(map(str, sizes))} MLP with batch {batch} cannot train "
                         f"{mode} parallel on config {config.name!r}: {error}") from None
    x_train, y_train, x_test, y_test = digits(data_seed)
    order = tr._Order(len(x_train), batch, seed)
    if order.per_epoch == 0:
        raise ValueError(f"batch must be at most the {len(x_train)} training samples, "
                         f"not {batch!r}")
    weights0 = initial_weights(list(sizes), seed)
    image = program.initial_image(weights0)
    ref_weights = [nx.to_float32(w).copy() for w in weights0]
    ref_velocities = None if momentum is None else [np.zeros_like(w) for w in ref_weights]
    x_test_t = x_test.T.copy()
    machine = ClusterMachine(config)
    result = ParallelTrainResult(mode, config.cluster.cores, sizes, batch, float(lr), seed,
                                 None if momentum is None else float(momentum))

    def run(which, what):
        outcome = machine.run(image, which.cmd_base, which.cmd_count, mem_base=program.mem_base)
        if outcome.error != isa.ErrorCode.NONE:
            raise RuntimeError(f"{what}: the golden cluster halted with {outcome.error.name} "
                               f"at command {outcome.index}")

    run(program.prologue, "the prologue")
    step_run = program.step_run(1, 0)
    total = epochs * order.per_epoch
    bar = tqdm(total=total, unit="step", desc=f"train ({mode} parallel, {result.cores} cores)",
               disable=not progress, dynamic_ncols=True)
    try:
        for epoch in range(epochs):
            losses, ref_losses = [], []
            for step in range(epoch * order.per_epoch, (epoch + 1) * order.per_epoch):
                idx = order.indices(step)
                x32, labels = x_train[idx].T, y_train[idx]
                program.write_batch(image, 0, nx.from_float32(x32), labels)
                run(step_run, f"step {step}")
                losses.append(tr.softmax_xent(nx.to_float32(program.read_logits(image, 0)),
                                              labels))
                ref_logits = tr.reference_step(ref_weights, x32, labels, lr, momentum,
                                               ref_velocities)
                ref_losses.append(tr.softmax_xent(ref_logits, labels))
                bar.update(1)
            run(program.checkpoint, "the checkpoint")
            weights = [nx.to_float32(w) for w in program.read_weights(image)]
            stats = tr.EpochStats(epoch=epoch + 1, steps=(epoch + 1) * order.per_epoch,
                                  loss=float(np.mean(losses)),
                                  ref_loss=float(np.mean(ref_losses)),
                                  acc=tr._accuracy(weights, x_test_t, y_test),
                                  ref_acc=tr._accuracy(ref_weights, x_test_t, y_test))
            result.history.append(stats)
            if log is not None:
                with tqdm.external_write_mode():
                    log(f"epoch {epoch + 1}: loss {stats.loss:.4f} (float32 "
                        f"{stats.ref_loss:.4f}), test accuracy {stats.acc:.2%} (float32 "
                        f"{stats.ref_acc:.2%})")
    finally:
        bar.close()
    result.steps = total
    result.weights = program.read_weights(image)
    result.ref_weights = ref_weights
    result.counters = dict(machine.counters)
    result.wall_s = time.perf_counter() - start_time
    return result
