"""A job: a memory image and the runs (doorbells) to make over it, and how the golden
machine runs it.

A :class:`Job` is a memory image and a list of :class:`Run` s (each: memory patches the host
writes first, the DMA window, the command buffer, a cycle bound). :func:`run_job_golden`
runs it on the golden machine model (``sim.golden.machine``, or ``sim.golden.cluster_machine``
for a cluster) and returns what a host would see after each run; the RTL runs the same job
through :func:`chrysalis.sim.verify.rtl_job.run_job`, and :func:`golden_mismatches` compares
the two.
"""

from dataclasses import dataclass, field

import numpy as np

from chrysalis.gen.spec import isa

__all__ = ["Run", "Job", "RunOutput", "dma_window", "run_job_golden", "golden_mismatches",
           "training_job", "GOLDEN_COUNTERS"]
#: Counters the golden machine model predicts exactly (the others depend on memory timing).
GOLDEN_COUNTERS = ("commands", "fetch_beats", "dma_read_beats", "dma_write_beats",
                   "core_cycles", "mac_slots", "update_slots", "stall_cycles", "bus_words",
                   "high_products", "low_products", "bypass_products",
                   "reuse_lookups", "reuse_hits", "multiplies_avoided", "ring_words",
                   "ring_cycles")


@dataclass
class Run:
    """One doorbell: patches, window, command buffer, bound.

    Members
    -------
    cmd_base, cmd_count : int
    writes : list of (int, array)
        ``(byte address, uint32 words)`` the host writes into memory before the doorbell.
    dma_base, dma_last : int
        The DMA window (``dma_last=None``: the top of the address space).
    max_cycles : int
        Cycles to wait for the interrupt before the run counts as hung.
    dump : bool
        Read the whole memory image back after the run.
    dual_seed : int
        The DUAL_SEED register (the ``random`` dual-precision policy's seed).
    reuse_strength : int
        The REUSE_STRENGTH register (the reuse cache's key, ``docs/reuse.md``; 0: off).
    """
    cmd_base: int
    cmd_count: int
    writes: list = field(default_factory=list)
    dma_base: int = 0
    dma_last: int = None
    max_cycles: int = 2_000_000
    dump: bool = True
    dual_seed: int = 0
    reuse_strength: int = 0


@dataclass
class RunOutput:
    """What the host reads after a run."""
    status: int
    error: isa.ErrorCode
    index: int
    cycles: int
    wall_s: float
    counters: dict
    image: np.ndarray = None


@dataclass
class Job:
    """A memory image (``uint32`` words at byte ``mem_base``) and the runs on it."""
    image: np.ndarray
    runs: list = field(default_factory=list)
    mem_base: int = 0

    @property
    def mem_bytes(self):
        end = self.mem_base + 4 * len(self.image)
        return max(4096, -(-end // 4096) * 4096)


def dma_window(config, run):
    last = (1 << config.host.axi_addr_width) - 1 if run.dma_last is None else run.dma_last
    return run.dma_base, last


def run_job_golden(config, job, machine=None):
    """Run ``job`` on the golden machine model (``sim.golden.cluster_machine.machine_for``: a
    cluster's for ``cluster.cores > 1``); :class:`RunOutput` s with the counters of
    :data:`GOLDEN_COUNTERS` (cumulative, as the registers) and no cycles."""
    from chrysalis.sim.golden.cluster_machine import machine_for

    machine = machine_for(config) if machine is None else machine
    image = np.array(job.image, dtype=np.uint32)
    outputs = []
    for run in job.runs:
        for addr, words in run.writes:
            start = (addr - job.mem_base) // 4
            image[start:start + len(words)] = words
        machine.dma_base, machine.dma_last = dma_window(config, run)
        machine.dual_seed = run.dual_seed
        machine.reuse_strength = run.reuse_strength
        result = machine.run(image, run.cmd_base, run.cmd_count, mem_base=job.mem_base)
        ok = result.error == isa.ErrorCode.NONE
        status = 0b010 if ok else 0b100
        counters = {key: machine.counters[key] for key in GOLDEN_COUNTERS}
        outputs.append(RunOutput(status, result.error, 0 if ok else result.index, 0, 0.0,
                                 counters, image.copy() if run.dump else None))
    return outputs


def golden_mismatches(outputs, golden):
    """How the RTL's runs (``run_job``) differ from the golden machine's (``run_job_golden``)
    on the same job: one line per run whose outcome is not a clean end (status done, no
    error) in both, or whose memory image or counters of :data:`GOLDEN_COUNTERS` differ.
    An empty list: equal in every bit."""
    if len(outputs) != len(golden):
        return [f"{len(outputs)} runs, the golden machine {len(golden)}"]
    lines = []
    for i, (r, g) in enumerate(zip(outputs, golden)):
        outcome = (r.status, r.error, r.index)
        if outcome != (g.status, g.error, g.index) or outcome != (0b010, isa.ErrorCode.NONE, 0):
            lines.append(f"run {i}: {r.error.name} at command {r.index} (status {r.status:#05b}), "
                         f"the golden machine {g.error.name} at {g.index}")
            continue
        differ = np.flatnonzero(np.asarray(r.image, dtype=np.uint32) != g.image)
        if differ.size:
            lines.append(f"run {i}: {differ.size} words of the memory image differ, the first "
                         f"at byte {4 * differ[0]:#x}")
        counters = [f"{k} {r.counters[k]} != {g.counters[k]}" for k in GOLDEN_COUNTERS
                    if r.counters[k] != g.counters[k]]
        if counters:
            lines.append(f"run {i}: " + ", ".join(counters))
    return lines


def training_job(program, weights, minibatches, velocities=None, slot=0, max_cycles=5_000_000,
                 image=None, dual_seed=0, reuse_strength=0):
    """The job of a training run: the prologue, then one run (doorbell) per minibatch.

    Parameters
    ----------
    program : sim.compile.program.TrainingProgram
    weights : list of arrays
        Initial weights (fp32 bit patterns, bias as the last column).
    minibatches : sequence of (x_bits, labels)
        ``x_bits`` is ``(sizes[0], batch)`` fp32 bit patterns without the row of ones.
    slot : int
        Without prefetch: the minibatch slot every step uses; the host rewrites it before
        each doorbell. With prefetch (``program.prefetch``) it must be 0: step ``k`` runs
        slot ``k mod slots``, and the host follows the program's contract
        (``sim.compile.program``): minibatch 0 goes into slot 0 before the prologue, which
        loads it, and minibatch ``k + 1`` into its slot before step ``k``'s doorbell, which
        loads it beside its last weight-gradient pass.
    image : numpy.ndarray, optional
        Start from this image of the program (for example where an earlier job left it)
        instead of ``program.initial_image(weights, velocities)``.
    dual_seed : int
        The DUAL_SEED register of every run.
    reuse_strength : int or sequence of int
        The REUSE_STRENGTH register: of every run, or one value per minibatch (the
        prologue and the checkpoint, which make no products, take the first and the last).

    Returns
    -------
    Job
        ``runs[0]`` is the prologue, ``runs[1 + s]`` step ``s``; the ``writes`` of a run
        carry the input and label regions of the minibatch its commands load (with
        prefetch: the prologue's minibatch 0, step ``s``'s minibatch ``s + 1``, none for
        the last step). When the program does not store the weights every step, a last
        run is its checkpoint (the weights into the image).
    """
    if image is None:
        image = program.initial_image(weights, velocities)
    image = np.array(image, dtype=np.uint32)
    job = Job(image, mem_base=program.mem_base)
    minibatches = list(minibatches)
    if np.ndim(reuse_strength) == 0:
        strengths = [int(reuse_strength)] * max(1, len(minibatches))
    else:
        strengths = [int(k) for k in reuse_strength]
        if len(strengths) != len(minibatches) or not strengths:
            raise ValueError(f"reuse_strength must be one value or one per minibatch "
                             f"({len(minibatches)}), not {list(reuse_strength)!r}")
    scratch = image.copy()
    if program.prefetch:
        if slot != 0:
            raise ValueError(f"slot must be 0 with prefetch (step k runs slot k mod "
                             f"{program.slots}), not {slot!r}")
        # Each run carries the minibatch its commands load: the next step's.
        loads = [_batch_writes(program, scratch, program.slot_of_step(k), *batch)
                 for k, batch in enumerate(minibatches)] + [[]]
        slots = [program.slot_of_step(k) for k in range(len(minibatches))]
    else:
        loads = [[]] + [_batch_writes(program, scratch, slot, *batch) for batch in minibatches]
        slots = [slot] * len(minibatches)
    job.runs.append(Run(program.prologue.cmd_base, program.prologue.cmd_count,
                        writes=loads[0], max_cycles=max_cycles, dual_seed=dual_seed,
                        reuse_strength=strengths[0]))
    for k, strength in enumerate(strengths[:len(minibatches)]):
        step = program.step_run(1, slots[k])
        job.runs.append(Run(step.cmd_base, step.cmd_count, writes=loads[k + 1],
                            max_cycles=max_cycles, dual_seed=dual_seed,
                            reuse_strength=strength))
    if not program.store_every_step:
        job.runs.append(Run(program.checkpoint.cmd_base, program.checkpoint.cmd_count,
                            max_cycles=max_cycles, dual_seed=dual_seed,
                            reuse_strength=strengths[-1]))
    return job


def _batch_writes(program, scratch, slot, x_bits, labels):
    """The host's writes of a minibatch into slot ``slot``: its input and label regions,
    as ``write_batch`` leaves them in ``scratch`` (a copy of the image)."""
    program.write_batch(scratch, slot, x_bits, labels)
    writes = []
    for name in (f"inputs[{slot}]", f"labels[{slot}]"):
        region = program.regions[name]
        lo = (region.addr - program.mem_base) // 4
        hi = (region.end - program.mem_base) // 4
        writes.append((region.addr, scratch[lo:hi].copy()))
    return writes
