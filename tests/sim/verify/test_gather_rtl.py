"""``GATHER`` on the accelerator's RTL under Icarus and Verilator (the tiny preset's shared
build, in the native harness and, with ``slow``, cocotb), against the golden machine.

A random scratchpad (``-0``, ``+0`` and NaN among its words) is loaded by DMA, then random
GATHERs run (1 to 4 taps, with and without the mask, table entries inside the window, at
its last word and past it), each in a doorbell of its own and then all in one; the whole
scratchpad is stored to memory after each. The whole memory image and every counter equal
the golden machine's, and each GATHER's ``CORE_CYCLES`` and ``CYCLES`` are the cycle
model's (``sim.golden.core_counts``, ``gen.perf``).
"""

import numpy as np

from chrysalis.gen.perf.commands import RUN_START, command_cost
from chrysalis.gen.spec import isa
from chrysalis.gen.spec.layout import tiles
from chrysalis.sim.compile.job import Job, Run, golden_mismatches, run_job_golden
from chrysalis.sim.golden import core_counts
from chrysalis.sim.golden.gather import NO_ENTRY
from tests.sim.verify.test_cocotb_accelerator import TINY, rtl

DATA, DUMP, STREAM = 0x8000, 0xC000, 0x1000
#: Lines of the scratchpad each GATHER's regions are drawn from (windows, tables one after
#: the other, destinations), so that no destination overlaps a window or a table.
WINDOWS, TABLES, DESTS = (0, 100), (100, 420), (420, 512)


def _place(rng, span, rows, cols):
    """A matrix ``(base, lpc)`` of ``rows x cols`` inside lines ``span``."""
    lpc = tiles(rows, 2) + int(rng.integers(0, 2))
    base = int(rng.integers(span[0], span[1] - cols * lpc + 1))
    return base, lpc


def _gathers(rng, count):
    """``count`` random GATHERs and, for each, its table's words (written into the
    scratchpad image before the load)."""
    S = 2
    commands, tables = [], []
    free = TABLES[0]
    for k in range(count):
        taps = [1, 2, 3, 4][k % 4]
        n, batch = int(rng.integers(1, 7)), int(rng.integers(1, 4))
        lines = int(rng.integers(1, 30))
        win = int(rng.integers(WINDOWS[0], WINDOWS[1] - lines + 1))
        table = _place(rng, (free, free + batch * (tiles(taps * n, S) + 1)), taps * n, batch)
        free = table[0] + batch * table[1]
        assert free <= TABLES[1]
        dst = _place(rng, DESTS, n, batch)
        entries = rng.integers(0, lines * S, (taps * n, batch)).astype(np.uint64)
        entries[rng.random(entries.shape) < 0.15] = NO_ENTRY
        entries[rng.random(entries.shape) < 0.1] = lines * S
        entries[0, 0] = lines * S - 1
        commands.append(dict(op="GATHER", m=taps, n=n, batch=batch, flag=(k // 4) % 2,
                             sp_base=win, sp_lpc=lines, sp2_base=dst[0], sp2_lpc=dst[1],
                             sp3_base=table[0], sp3_lpc=table[1]))
        tables.append(entries)
    return commands, tables


def gather_job(seed, count=8):
    """The job (see the module docstring) and its GATHERs."""
    rng = np.random.default_rng(seed)
    words, S = TINY.core.scratchpad_words, 2
    lines = words // S
    values = (rng.standard_normal(words) * 3).astype(np.float32)
    values[rng.random(words) < 0.3] *= -1
    sp = values.view(np.uint32).copy()
    special = rng.integers(0, WINDOWS[1] * S, 24)
    sp[special] = np.resize(np.array([0x8000_0000, 0, 0x7FC0_0000, 0xFFC0_0001],
                                     dtype=np.uint32), special.size)
    commands, tables = _gathers(rng, count)
    for c, t in zip(commands, tables):
        for b in range(t.shape[1]):
            start = (c["sp3_base"] + b * c["sp3_lpc"]) * S
            sp[start:start + t.shape[0]] = t[:, b]
    image = np.zeros(0x10000 // 4, dtype=np.uint32)
    image[DATA // 4:DATA // 4 + words] = sp
    whole = dict(n=S, batch=lines, mem_stride=4 * S, sp_base=0, sp_lpc=1)
    load = list(isa.encode("DMA_LOAD", mem_addr=DATA, **whole))
    store = list(isa.encode("DMA_STORE", mem_addr=DUMP, **whole))
    stream = load + [w for c in commands for w in isa.encode(**c)] + store
    image[STREAM // 4:STREAM // 4 + len(stream)] = stream
    at = lambda k: STREAM + 64 * k
    runs = [Run(at(0), 1)]
    runs += [Run(at(1 + k), 1) for k in range(count)]
    runs += [Run(at(1 + count), 1), Run(at(1), count + 1)]
    return Job(image, runs), commands


def test_gathers_on_the_rtl_equal_the_golden_machine(rtl_harness, build_root):
    job, commands = gather_job(seed=2)
    outs = rtl(TINY, job, rtl_harness, build_root)
    golden = run_job_golden(TINY, job)
    assert golden_mismatches(outs, golden) == []
    # Every GATHER's core cycles are the cycle model's; its CYCLES (one doorbell: START,
    # the fetch and check, the core) are the performance model's.
    for k, c in enumerate(commands):
        before, after = outs[k], outs[k + 1]
        core = after.counters["core_cycles"] - before.counters["core_cycles"]
        assert core == core_counts.predict(TINY, c)["cycles"] - 1, c
        assert after.cycles == command_cost(TINY, c)["cycles"] + RUN_START, c
    # The GATHERs did write: the stored scratchpad is not the one loaded.
    words = TINY.core.scratchpad_words
    loaded = job.image[DATA // 4:DATA // 4 + words]
    stored = outs[-2].image[DUMP // 4:DUMP // 4 + words]
    assert np.count_nonzero(stored != loaded) > 20


def test_gathers_on_a_cluster_run_on_the_cores_of_their_mask(rtl_harness, build_root):
    """On two cores (the collectives' shared build): each core's scratchpad loaded with
    its own words, a GATHER on core 1 alone, then one on both, and each core's scratchpad
    stored: the memory image and every counter are the golden cluster's."""
    from tests.sim.verify.test_cocotb_cluster import SHARED as CLUSTER, cluster_config
    config = cluster_config(2)
    single, commands = gather_job(seed=5, count=4)
    words, S = config.core.scratchpad_words, 2
    lines = words // S
    image = np.array(single.image)
    second = 0xC000
    rng = np.random.default_rng(6)
    other = image[DATA // 4:DATA // 4 + words].copy()
    other[rng.random(words) < 0.3] ^= 0x8000_0000           # other signs: other masks
    image[second // 4:second // 4 + words] = other
    whole = dict(n=S, batch=lines, mem_stride=4 * S, sp_base=0, sp_lpc=1)
    stream = list(isa.encode("DMA_LOAD", mem_addr=DATA, cores=1, **whole))
    stream += isa.encode("DMA_LOAD", mem_addr=second, cores=2, **whole)
    stream += isa.encode(**commands[1], cores=2)
    stream += isa.encode(**commands[2])
    stream += isa.encode("DMA_STORE", mem_addr=DATA, cores=1, **whole)
    stream += isa.encode("DMA_STORE", mem_addr=second, cores=2, **whole)
    start = 0x3000
    image[start // 4:start // 4 + len(stream)] = stream
    job = Job(image, [Run(start, len(stream) // 16)])
    outs = rtl(config, job, rtl_harness, build_root, shared=CLUSTER)
    golden = run_job_golden(config, job)
    assert golden_mismatches(outs, golden) == []
    # Both cores' scratchpads changed, and differently.
    core0 = outs[0].image[DATA // 4:DATA // 4 + words]
    core1 = outs[0].image[second // 4:second // 4 + words]
    assert np.count_nonzero(core0 != image[DATA // 4:DATA // 4 + words]) > 10
    assert np.count_nonzero(core1 != other) > 10
