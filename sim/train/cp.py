"""Continuous propagation on a cluster: the digits MLP trained one sample per tick, the
layers pipelined over the cores (the program: :mod:`chrysalis.sim.compile.cp_program`)."""

import time
from dataclasses import dataclass, field

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.compile.cp_program import (
    DEFAULT_CP_EPOCHS, DEFAULT_CP_LR, CpProgram, _check_sizes, _is_int)

__all__ = ["CpEpoch", "CpResult", "train_cp"]


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
        The same for plain batch-``batch`` SGD in float32 (``sim.train.single.reference_step``)
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


def train_cp(config, *, sizes=(64, 32, 10), lr=DEFAULT_CP_LR, epochs=DEFAULT_CP_EPOCHS,
             seed=0, batch=1, ticks_per_run=256, progress=True, log=print, data_seed=0):
    """Train an MLP on the digits with continuous propagation on the golden cluster.

    The split and the test accuracy are ``sim.train.single``'s (``sim.compile.data.digits(data_seed)``,
    float32 forward pass), the initial weights ``sim.compile.program.initial_weights(sizes,
    seed)``, the order of each epoch ``sim.train.single``'s seeded permutations. An epoch is one
    session: ``G = 1347 // batch`` micro-batches through the pipeline, filled and drained
    once. The machine runs ``ticks_per_run`` ticks per call.

    Returns
    -------
    CpResult
    """
    from tqdm import tqdm

    from chrysalis.sim.golden.cluster_machine import ClusterMachine
    from chrysalis.sim.compile.data import digits
    from chrysalis.sim.compile.program import initial_weights
    from chrysalis.sim.train.single import _Order, forward32, reference_step, softmax_xent

    if not _is_int(epochs) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    if not _is_int(ticks_per_run) or ticks_per_run < 1:
        raise ValueError(f"ticks_per_run must be a positive integer, not {ticks_per_run!r}")
    sizes = tuple(_check_sizes(sizes))
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = digits(data_seed)
    order = _Order(len(x_train), batch, seed)
    samples = order.per_epoch * batch
    program = CpProgram(config, list(sizes), lr, samples, batch=batch)
    weights0 = initial_weights(list(sizes), seed)
    image = program.initial_image(weights0)
    machine = ClusterMachine(config)
    result = CpResult(sizes, float(lr), batch, seed, program.cores, program.stages,
                      ticks=epochs * program.ticks)
    steady = program.steady_tick()
    result.profile = None if steady is None else program.tick_profile(steady)
    ref = [nx.to_float32(w).copy() for w in weights0]
    x_test_t = x_test.T.copy()

    def run(r, what):
        t0 = time.perf_counter()
        out = machine.run(image, r.cmd_base, r.cmd_count, mem_base=program.mem_base)
        result.accel_s += time.perf_counter() - t0
        if out.error != isa.ErrorCode.NONE:
            raise RuntimeError(f"{what}: the golden cluster halted with {out.error.name} at "
                               f"command {out.index}")
        result.commands += r.cmd_count

    def say(line):
        if log is not None:
            with tqdm.external_write_mode():
                log(line)

    run(program.prologue, "the prologue")
    bar = tqdm(total=epochs * program.ticks, unit="tick", desc="train (CP, golden)",
               disable=not progress, dynamic_ncols=True)
    try:
        for epoch in range(epochs):
            idx = np.concatenate([order.indices(epoch * order.per_epoch + g)
                                  for g in range(order.per_epoch)])
            x32, labels = x_train[idx].T, y_train[idx]
            program.write_samples(image, nx.from_float32(x32), labels)
            for t in range(0, program.ticks, ticks_per_run):
                count = min(ticks_per_run, program.ticks - t)
                run(program.tick_run(t, count), f"epoch {epoch}, ticks {t}-{t + count - 1}")
                bar.update(count)
            run(program.checkpoint, "the checkpoint")
            for g in range(order.per_epoch):
                cols = slice(g * batch, (g + 1) * batch)
                reference_step(ref, x32[:, cols], labels[cols], lr)
            logits = nx.to_float32(program.read_logits(image))
            weights = [nx.to_float32(w) for w in program.read_weights(image)]
            acc = float(np.mean(forward32(weights, x_test_t).argmax(axis=0) == y_test))
            ref_acc = float(np.mean(forward32(ref, x_test_t).argmax(axis=0) == y_test))
            stats = CpEpoch(epoch + 1, softmax_xent(logits, labels), acc, ref_acc)
            result.history.append(stats)
            say(f"epoch {stats.epoch}: loss {stats.loss:.4f}, test accuracy {acc:.2%} "
                f"(float32 SGD without the pipeline {ref_acc:.2%})")
    finally:
        bar.close()
    result.weights = program.read_weights(image)
    result.counters = dict(machine.counters)
    result.wall_s = time.perf_counter() - start
    say(f"final test accuracy {result.history[-1].acc:.2%} after {epochs} epochs of "
        f"{program.ticks} ticks on {program.cores} cores (stages {program.stages}); golden "
        f"cluster {1e3 * result.accel_s / result.ticks:.1f} ms per tick, "
        f"{result.commands} commands")
    return result
