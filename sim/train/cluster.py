"""Training on a cluster: the three modes behind one entry point, on the golden cluster or
on its RTL.

``mode``:

``"data"``
    data parallel (:mod:`sim.compile.parallel_program`): the minibatch split over the cores, the
    weight gradients all-reduced over the ring before the update;
``"model"``
    model parallel (:mod:`sim.compile.parallel_program`): row panels of every hidden layer per core,
    all-gather forward, reduce-scatter backward;
``"cp"``
    continuous propagation (:mod:`sim.compile.cp_program`): the layers pipelined over the cores,
    the weights updated per sample.

:func:`train_cluster` trains the digits MLP on the golden cluster
(:class:`sim.golden.cluster_machine.ClusterMachine`) and measures the test accuracy after every
epoch. :func:`run_cluster_rtl` runs the first steps of the same training on the RTL of the
cluster (Icarus or Verilator, through ``sim.verify.rtl_job``) and on the golden cluster, and
checks that every memory image and every counter the golden model has are equal.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chrysalis.gen.spec.checks import is_int
from chrysalis.sim.golden import numerics as nx

from .dataset import DATA_SEED, DigitsTask
from .settings import DEFAULT_BATCH, DEFAULT_LR

__all__ = ["MODES", "ClusterRtlResult", "train_cluster", "run_cluster_rtl", "cluster_job",
           "resolve_cluster_update"]

MODES = ("data", "model", "cp")


def _check_mode(config, mode):
    from chrysalis.gen.spec.config import ConfigError
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if config.cluster.cores < 2:
        raise ConfigError(f"mode {mode!r} trains on a cluster: cluster.cores must be at least "
                          f"2, not {config.cluster.cores!r}")


def train_cluster(config, mode, *, sizes=(64, 32, 10), batch=None, lr=None, epochs=None,
                  seed=0, progress=True, log=print, update=None):
    """Train the digits MLP in ``mode`` on the golden cluster of ``config``.

    ``batch`` and ``lr`` default to each mode's: the minibatch of ``sim.train.settings`` for
    ``data`` and ``model``, one sample per update for ``cp`` (``batch`` is then the
    micro-batch). Returns the mode's result (:class:`sim.compile.parallel_program.
    ParallelTrainResult` or :class:`sim.compile.cp_program.CpResult`), whose ``history`` holds
    the test accuracy of every epoch. ``update`` (``"fused"``, ``"separate"`` or ``None``
    for the default: fused where it applies, in ``model`` and ``cp`` with plain SGD on one
    MAC stream; never in ``data``) is the SGD update.
    """
    _check_mode(config, mode)
    kwargs = {"sizes": tuple(sizes), "seed": seed, "progress": progress, "log": log,
              "update": update}
    if epochs is not None:
        kwargs["epochs"] = epochs
    if lr is not None:
        kwargs["lr"] = lr
    if mode == "cp":
        from chrysalis.sim.train.cp import train_cp
        return train_cp(config, batch=1 if batch is None else batch, **kwargs)
    from chrysalis.sim.train.parallel import train_parallel
    if batch is not None:
        kwargs["batch"] = batch
    return train_parallel(config, mode, **kwargs)


@dataclass
class ClusterRtlResult:
    """What :func:`run_cluster_rtl` measured.

    Members
    -------
    mode, simulator : str
    update : str
        The SGD update the cluster ran (``"fused"`` or ``"separate"``).
    cores, steps, batch : int
        ``steps`` minibatches (``cp``: micro-batches) of ``batch`` samples.
    cycles : int
        Accelerator cycles of the training runs (the prologue and checkpoint not counted).
    useful_macs : int
        MACs the training needs (``gen.spec.networks.Network.macs`` per minibatch or
        micro-batch).
    utilization : float
        ``useful_macs / (PEs per core * cores * cycles)``.
    counters : dict
        The RTL's counters after the last run (cumulative).
    golden_match : bool
        Every memory image and every counter of ``sim.compile.job.GOLDEN_COUNTERS`` equal the
        golden cluster's, after every run.
    mismatches : list of str
    wall_s : float
    """
    mode: str
    simulator: str
    cores: int
    steps: int
    batch: int
    update: str = "separate"
    cycles: int = 0
    useful_macs: int = 0
    utilization: float = 0.0
    counters: dict = field(default_factory=dict)
    golden_match: bool = False
    mismatches: list = field(default_factory=list)
    wall_s: float = 0.0

    def to_dict(self):
        return {"mode": self.mode, "simulator": self.simulator, "cores": self.cores,
                "steps": self.steps, "batch": self.batch, "update": self.update,
                "cycles": self.cycles,
                "useful_macs": self.useful_macs,
                "utilization": round(self.utilization, 4), "counters": dict(self.counters),
                "golden_match": self.golden_match, "mismatches": list(self.mismatches),
                "wall_s": round(self.wall_s, 2)}


def cluster_job(config, mode, *, steps, sizes=(64, 32, 10), batch=None, lr=None, seed=0,
                data_seed=None, update=None):
    """The job of the first ``steps`` steps of :func:`train_cluster`'s training and the
    indices of its training runs: ``(job, runs, batch)``; ``update`` as there."""
    from chrysalis.sim.compile.program import initial_weights

    _check_mode(config, mode)
    if not is_int(steps) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    sizes = [int(s) for s in sizes]
    data_seed = DATA_SEED if data_seed is None else data_seed
    weights = initial_weights(sizes, seed)
    if mode == "cp":
        from chrysalis.sim.compile.cp_program import DEFAULT_CP_LR, CpProgram, cp_job
        batch = 1 if batch is None else int(batch)
        task = DigitsTask(batch, seed, data_seed)
        minibatches = [task.minibatch(s) for s in range(steps)]
        program = CpProgram(config, sizes, DEFAULT_CP_LR if lr is None else lr,
                            steps * batch, batch=batch,
                            update=resolve_cluster_update(config, mode, update))
        job = cp_job(program, weights,
                     nx.from_float32(np.concatenate([b.x32 for b in minibatches], axis=1)),
                     np.concatenate([b.labels for b in minibatches]))
        return job, list(range(1, len(job.runs) - 1)), batch
    from chrysalis.sim.compile.parallel_program import ParallelProgram, parallel_job
    batch = DEFAULT_BATCH if batch is None else int(batch)
    task = DigitsTask(batch, seed, data_seed)
    program = ParallelProgram(config, sizes, batch, DEFAULT_LR if lr is None else lr,
                              mode=mode, update=resolve_cluster_update(config, mode, update))
    minibatches = [(b.x_bits, b.labels) for b in map(task.minibatch, range(steps))]
    job = parallel_job(program, weights, minibatches)
    return job, list(range(1, 1 + steps)), batch


def resolve_cluster_update(config, mode, update):
    """The SGD update a plain-SGD ``mode`` run gets (``update``, or ``None`` for the
    default): as one core in ``model`` and ``cp``, always separate in ``data``
    (``sim.compile.parallel_program.resolve_parallel_update``)."""
    from chrysalis.sim.compile.parallel_program import resolve_parallel_update
    return resolve_parallel_update(config, "model" if mode == "cp" else mode, None, update)


def run_cluster_rtl(config, mode, *, steps, simulator="verilator", build_dir="build/train",
                    sizes=(64, 32, 10), batch=None, lr=None, seed=0, log=print, update=None):
    """Run the first ``steps`` steps of ``mode``'s training on the RTL of the cluster and on
    the golden cluster; compare every memory image and counter. Returns
    :class:`ClusterRtlResult`; raises ``RuntimeError`` if the RTL halts with an error."""
    from chrysalis.gen.spec.isa import ErrorCode
    from chrysalis.gen.spec.networks import mlp
    from chrysalis.sim.compile.job import golden_mismatches, run_job_golden
    from chrysalis.sim.verify.rtl_job import run_job

    job, training_runs, batch = cluster_job(config, mode, steps=steps, sizes=sizes,
                                            batch=batch, lr=lr, seed=seed, update=update)
    start = time.perf_counter()
    outputs = run_job(config, job, simulator, Path(build_dir))
    golden = run_job_golden(config, job)
    result = ClusterRtlResult(mode, simulator, config.cluster.cores, steps, batch,
                              update=resolve_cluster_update(config, mode, update),
                              wall_s=time.perf_counter() - start)
    for k, out in enumerate(outputs):
        if out.error != ErrorCode.NONE:
            raise RuntimeError(f"run {k}: the {simulator} cluster halted with "
                               f"{out.error.name} at command {out.index}")
    result.mismatches = golden_mismatches(outputs, golden)
    result.golden_match = not result.mismatches
    result.counters = dict(outputs[-1].counters)
    result.cycles = sum(outputs[k].cycles for k in training_runs)
    # cp updates per micro-batch: the MACs of one step of batch `batch` per micro-batch.
    result.useful_macs = steps * mlp([int(s) for s in sizes]).macs(batch)
    pes = config.core.rows * config.core.cols * config.cluster.cores
    result.utilization = result.useful_macs / (pes * result.cycles) if result.cycles else 0.0
    if log is not None:
        log(f"{mode} on {config.cluster.cores} cores, {steps} steps of {batch}: "
            f"{result.cycles} cycles, utilization {100 * result.utilization:.1f}%; "
            + ("every image and counter equals the golden cluster's" if result.golden_match
               else f"DIFFERS from the golden cluster: {'; '.join(result.mismatches[:4])}"))
    return result
