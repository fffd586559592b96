"""The accelerator's RTL (``hw.accelerator``) under Icarus and Verilator, with cocotbext-axi as
the host and the memory: the register map, DMA, error handling, and command streams
against the golden machine model."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import RTL_HARNESSES

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.sim.compile.job import (
    GOLDEN_COUNTERS, Job, Run, golden_mismatches, run_job_golden, training_job)
from chrysalis.sim.verify.rtl_job import run_job

TINY = PRESETS["tiny"]
#: Builds shared by the tests of a config (the runner keys them by the Verilog's hash).
SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "accelerator"


def rtl(config, job, simulator, build_root, shared=SHARED):
    """Run ``job`` on the build of ``config`` shared under ``shared``; the job's files in
    ``build_root``. ``simulator`` is a name (the cocotb harness) or a ``(simulator,
    harness)`` pair."""
    simulator, harness = (simulator, "cocotb") if isinstance(simulator, str) else simulator
    if harness == "native":
        from chrysalis.sim.verify import native_job
        return native_job.run_job(config, job, shared / config.name, fast_build=True,
                                  simulator=simulator)
    return run_job(config, job, simulator, shared / config.name, timeout_s=1800,
                   job_dir=build_root)


#: The reuse and dual-precision jobs, the three-step training and the fuzz: under Icarus
#: (either harness) only with ``slow``. Icarus runs a job at about 1 ms per cycle, and the
#: default suite checks Icarus's native harness on a training job already
#: (``test_native_job.py::test_icarus_training_steps_equal_verilator_and_cocotb``).
SLOW_ICARUS = [pytest.param(p.values[0], marks=(*p.marks, pytest.mark.slow), id=p.id)
               if p.id.startswith("icarus") else p for p in RTL_HARNESSES]


def test_registers(simulator, build_root):
    from chrysalis.sim.verify.verilog_cache import cached_verilog
    from chrysalis.sim.verify.runner import run_testbench
    verilog = cached_verilog(TINY, SHARED / TINY.name / "rtl")
    result = run_testbench(sources=[verilog], toplevel=TINY.name,
                           module="chrysalis.sim.verify.tb.accelerator", simulator=simulator,
                           build_dir=SHARED / TINY.name, testcase="registers", timeout_s=600,
                           extra_env={"CHRYSALIS_CONFIG": TINY.to_toml()})
    assert result["tests"] == 1


def dma_round_trip_case(config, seed):
    """A memory image with a matrix at 0x1000, a command buffer that DMA-loads it into the
    scratchpad and stores it back at 0x4000, and the expected image."""
    rng = np.random.default_rng(seed)
    beat = config.host.axi_data_width // 8
    n, batch, stride = 13, 3, 2 * 64
    words = 0x6000 // 4
    image = rng.integers(0, 1 << 32, words, dtype=np.uint64).astype(np.uint32)
    lpc = -(-n // 2)
    stream = isa.encode_stream([
        dict(op="DMA_LOAD", n=n, batch=batch, mem_addr=0x1000, mem_stride=stride,
             sp_base=3, sp_lpc=lpc),
        dict(op="DMA_STORE", n=n, batch=batch, mem_addr=0x4000, mem_stride=stride,
             sp_base=3, sp_lpc=lpc)])
    image[0:len(stream)] = stream
    expected = image.copy()
    for b in range(batch):
        src = (0x1000 + b * stride) // 4
        dst = (0x4000 + b * stride) // 4
        expected[dst:dst + n] = image[src:src + n]
    assert beat <= 8
    return Job(image, [Run(0, 2)]), expected


def test_dma_round_trip(simulator, build_root):
    job, expected = dma_round_trip_case(TINY, seed=1)
    out, = rtl(TINY, job, simulator, build_root)
    assert (out.status, out.error) == (0b010, isa.ErrorCode.NONE)
    assert np.array_equal(out.image, expected)
    beats = -(-13 * 4 // (TINY.host.axi_data_width // 8)) * 3
    assert out.counters["dma_read_beats"] == beats
    assert out.counters["dma_write_beats"] == beats
    assert out.counters["commands"] == 2


def bad_input_case(config):
    """Runs that must halt with an error code (and one that must then work again): a bad
    opcode, reserved bits, a region past the weight bank, a DMA outside the window, a
    misaligned DMA, a misaligned command buffer. Returns the job and the expected
    ``(error, index, commands executed)`` of each run."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 1 << 32, 0x3000 // 4, dtype=np.uint64).astype(np.uint32)
    load = dict(op="DMA_LOAD", n=8, batch=2, mem_addr=0x2000, mem_stride=64, sp_base=0,
                sp_lpc=4)
    store = dict(load, op="DMA_STORE", mem_addr=0x2800)
    streams = {
        "opcode": [load, None, store],                       # None: a word of 0xEE
        "reserved": [load, "reserved", store],
        "weights": [load, dict(op="LOAD_W", m=2, n=2, wbase=config.pe.weight_words - 0,
                               sp_base=0, sp_lpc=1), store],
        "window": [load, dict(store, mem_addr=0x2FC0)],      # runs past DMA_LAST
        "align": [dict(load, mem_addr=0x2004)],
        "good": [load, store],
    }
    expected = {"opcode": (isa.ErrorCode.BAD_OPCODE, 1, 1),
                "reserved": (isa.ErrorCode.RESERVED_BITS, 1, 1),
                "weights": (isa.ErrorCode.WEIGHT_RANGE, 1, 1),
                "window": (isa.ErrorCode.DMA_RANGE, 1, 1),
                "align": (isa.ErrorCode.DMA_ALIGN, 0, 0),
                "fetch": (isa.ErrorCode.FETCH_RANGE, 0, 0),
                "good": (isa.ErrorCode.NONE, 0, 2)}
    base = 0
    runs, outcomes = [], []
    for name, stream in streams.items():
        words = []
        for command in stream:
            if command is None:
                words.extend([0xEE] + [0] * (isa.COMMAND_WORDS - 1))
            elif command == "reserved":
                w = list(isa.encode(**load))
                w[0] |= 1 << 12
                words.extend(w)
            else:
                words.extend(isa.encode(**command))
        image[base // 4:base // 4 + len(words)] = words
        runs.append(Run(base, len(stream), dma_last=0x2FFF, max_cycles=50_000))
        outcomes.append(expected[name])
        base += 0x200
        if name == "align":
            runs.append(Run(0x20, 1, dma_last=0x2FFF, max_cycles=50_000))  # misaligned buffer
            outcomes.append(expected["fetch"])
    return Job(image, runs), outcomes


def test_bad_input_halts_with_error_code(simulator, build_root):
    job, outcomes = bad_input_case(TINY)
    outs = rtl(TINY, job, simulator, build_root)
    commands = 0
    for run, out, (error, index, executed) in zip(job.runs, outs, outcomes):
        assert out.error == error, (run, out.error)
        commands += executed
        assert out.counters["commands"] == commands
        if error == isa.ErrorCode.NONE:
            assert (out.status, out.index) == (0b010, 0)
        else:
            assert (out.status, out.index) == (0b100, index)
    # Nothing but the good run's store changed memory.
    final = outs[-1].image
    changed = np.flatnonzero(final != job.image)
    assert changed.size and changed.min() >= 0x2800 // 4 and changed.max() < 0x2880 // 4


#: A small core that holds a 64-32-10 MLP at batch 8 with its weights resident in the PEs.
SMALL = with_overrides(TINY, {"name": "small_core", "core.scratchpad_words": 4096,
                              "pe.act_words": 1024, "pe.weight_words": 1024})


#: SMALL with the value-based dual-precision MAC (the dual rules: latency 3 needs 16
#: accumulators).
SMALL_VALUE = with_overrides(SMALL, {"name": "small_value", "mac.dual": "value",
                                     "mac.latency": 3, "pe.acc_regs": 16})


#: SMALL_VALUE with a reuse cache of 8 entries in 2 ways per PE (docs/reuse.md).
SMALL_REUSE = with_overrides(SMALL_VALUE, {"name": "small_reuse", "pe.reuse_entries": 8,
                                           "pe.reuse_ways": 2})


def digits_training_job(config, steps, seed=0, batch=8, sizes=(64, 32, 10), dual_seed=0,
                        reuse_strength=0):
    """Prologue plus ``steps`` SGD steps (one doorbell each) on real digits minibatches."""
    from chrysalis.sim.golden import numerics as nx
    from chrysalis.sim.compile.data import digits
    from chrysalis.sim.compile.program import TrainingProgram, initial_weights
    program = TrainingProgram(config, list(sizes), batch, lr=0.25)
    x_train, y_train, _, _ = digits(seed)
    batches = [(nx.from_float32(x_train[s * batch:(s + 1) * batch].T.astype(np.float32)),
                y_train[s * batch:(s + 1) * batch]) for s in range(steps)]
    return program, training_job(program, initial_weights(list(sizes), seed), batches,
                                 dual_seed=dual_seed, reuse_strength=reuse_strength)


def assert_runs_equal_golden(outs, golden):
    """Every run ended well, and left the golden machine's memory image and counters."""
    assert golden_mismatches(outs, golden) == []


@pytest.mark.parametrize("rtl_harness", SLOW_ICARUS, indirect=True)
def test_training_steps_equal_golden_machine(rtl_harness, build_root):
    """Three consecutive SGD steps of a 64-32-10 MLP on digits: after the prologue and after
    every step the whole memory image and the counters equal the golden machine's."""
    program, job = digits_training_job(SMALL, steps=3)
    outs = rtl(SMALL, job, rtl_harness, build_root)
    golden = run_job_golden(SMALL, job)
    assert_runs_equal_golden(outs, golden)
    # The steps changed the weights (the comparison above is not of two idle machines).
    assert not np.array_equal(program.read_weights(outs[-1].image)[0],
                              program.read_weights(outs[0].image)[0])


# Tags shared along the lines of PEs (``row``) are a build of their own: `slow`. The default
# suite runs them in Amaranth's simulator against the golden machine
# (tests/hw/test_core_reuse.py, tests/hw/test_core.py's fill) and the per-PE cache here.
@pytest.mark.parametrize("rtl_harness", SLOW_ICARUS, indirect=True)
@pytest.mark.parametrize("scope", ["pe", pytest.param("row", marks=pytest.mark.slow)])
def test_reuse_training_steps_equal_golden_machine(rtl_harness, build_root, scope):
    """Three SGD steps on a ``value`` dual-precision core with a reuse cache (per PE, or tags
    shared along the lines of PEs), at reuse strength 0 (the cache off: the PEs work as
    without one), then 6, then 3 (REUSE_STRENGTH written before each doorbell): after every
    run the whole memory image and every counter (the high, low and bypass products, the
    reuse lookups, hits and multiplies avoided among them) equal the golden machine's."""
    config = with_overrides(SMALL_REUSE, {"name": f"small_reuse_{scope}",
                                          "pe.reuse_scope": scope})
    program, job = digits_training_job(config, steps=3, reuse_strength=[0, 6, 3])
    outs = rtl(config, job, rtl_harness, build_root)
    golden = run_job_golden(config, job)
    assert_runs_equal_golden(outs, golden)
    grown = {name: [outs[i].counters[name] - outs[i - 1].counters[name] for i in (1, 2, 3)]
             for name in ("multiplies_avoided", "low_products", "high_products")}
    # Strength 0: nothing from the cache, and both multipliers of the value policy used.
    assert grown["multiplies_avoided"][0] == 0, grown
    assert 0 < grown["low_products"][0] < grown["high_products"][0], grown
    # The cache worked: non-zero products taken from it in each step, fewer at strength 3.
    assert grown["multiplies_avoided"][1] > grown["multiplies_avoided"][2] > 0, grown
    # The steps trained.
    assert not np.array_equal(program.read_weights(outs[-1].image)[0],
                              program.read_weights(outs[0].image)[0])


# `slow` under every harness: the default suite runs the same policy's training steps on
# the design with a reuse cache, at strength 0 first (the cache off), above; this keeps a
# build of the dual-precision core without a cache out of the default suite.
@pytest.mark.slow
@pytest.mark.parametrize("rtl_harness", SLOW_ICARUS, indirect=True)
def test_dual_value_training_steps_equal_golden_machine(rtl_harness, build_root):
    """Two SGD steps of a 64-32-10 MLP on digits on a dual-precision core with the ``value``
    policy: after the prologue, every step and the checkpoint the whole memory image and the
    counters (the high, low and bypass products among them) equal the golden machine's."""
    program, job = digits_training_job(SMALL_VALUE, steps=2)
    outs = rtl(SMALL_VALUE, job, rtl_harness, build_root)
    golden = run_job_golden(SMALL_VALUE, job)
    assert_runs_equal_golden(outs, golden)
    # Both multipliers were used, and the steps trained.
    last = outs[-1].counters
    assert last["low_products"] > 0 and last["high_products"] > last["low_products"]
    assert not np.array_equal(program.read_weights(outs[-1].image)[0],
                              program.read_weights(outs[0].image)[0])


def _random_command(rng, config, limits, sp_lines):
    """One command: well formed with fields in range, but one in 20 broken (a bad opcode,
    a reserved bit, a zero size, a field past its region, a misaligned DMA, a core or a
    collective that one core does not have)."""
    R, C = config.core.rows, config.core.cols
    roll = rng.random()
    if roll < 0.01:
        words = [int(rng.integers(17, 256))] + [0] * (isa.COMMAND_WORDS - 1)
        return words
    op = isa.Opcode(int(rng.integers(1, 11)))
    m, n, batch = (int(v) for v in rng.integers(1, 7, 3))
    mt, nt = -(-m // R), -(-n // C)
    fields = dict(op=op, m=m, n=n, batch=batch, flag=int(rng.integers(0, 2)))
    # Bank regions in range.
    fields["wbase"] = int(rng.integers(0, limits.weight_words - mt * nt + 1))
    fields["wbase2"] = int(rng.integers(0, limits.weight_words - mt * nt + 1))
    span = max(mt, nt) * batch
    fields["abase"] = int(rng.integers(0, limits.act_words - span + 1))
    fields["abase2"] = int(rng.integers(0, limits.act_words - span + 1))
    # Three disjoint scratchpad matrices (sources and destinations must not overlap).
    lpc = -(-max(m, n, 1) // limits.banks)
    cols = max(batch, n)
    third = sp_lines // 3
    for k, prefix in enumerate(("sp", "sp2", "sp3")):
        fields[f"{prefix}_lpc"] = lpc
        fields[f"{prefix}_base"] = k * third + int(rng.integers(0, third - cols * lpc + 1))
    fields["scalar"] = int(np.float32(rng.choice([-0.125, -0.5, 0.25])).view(np.uint32))
    fields["scalar2"] = int(np.float32(0.5).view(np.uint32))
    beat = limits.beat_bytes
    fields["mem_stride"] = beat * int(rng.integers(-(-4 * n // beat), 8))
    fields["mem_addr"] = 0x4000 + beat * int(rng.integers(0, 64))
    if roll < 0.02:
        fields[str(rng.choice(["m", "n", "batch"]))] = 0
    elif roll < 0.03:
        key = str(rng.choice(["wbase", "abase", "sp_base", "mem_addr"]))
        fields[key] = {"wbase": limits.weight_words, "abase": limits.act_words,
                       "sp_base": sp_lines, "mem_addr": 0x10000 - 8}[key]
    elif roll < 0.035:
        fields["mem_addr"] += 4
    used = {k: v for k, v in fields.items() if k == "op" or k in isa.OP_FIELDS[op]}
    words = list(isa.encode(**used))
    if 0.035 <= roll < 0.04:
        words[0] |= 1 << 12                     # a reserved bit
    elif 0.04 <= roll < 0.045:
        words[2] |= 1 << 17                     # cores bit 1: a core one core lacks
    elif 0.045 <= roll < 0.05:
        # A collective, which one core refuses (or an earlier check does).
        words[0] = (words[0] & ~0xFF) | int(rng.choice(sorted(isa.COLLECTIVES)))
    return words


def fuzz_case(config, seed, length=24):
    """A seeded random command stream after a DMA_LOAD of random data into the whole
    scratchpad, and a second run that dumps the scratchpad and the weight banks to memory
    (so the state after an error is compared too)."""
    rng = np.random.default_rng(seed)
    limits = isa.Limits.from_config(config, dma_last=0xFFFF)
    S, lines = limits.banks, limits.sp_lines
    words = config.core.scratchpad_words
    image = np.zeros(0x10000 // 4, dtype=np.uint32)
    values = rng.standard_normal(words).astype(np.float32) * np.float32(4)
    values[rng.random(words) < 0.05] = 0.0
    image[0x8000 // 4:0x8000 // 4 + words] = values.view(np.uint32)
    whole = dict(n=S, batch=lines, mem_stride=4 * S, sp_base=0, sp_lpc=1)
    stream = list(isa.encode("DMA_LOAD", mem_addr=0x8000, **whole))
    for _ in range(length):
        stream += _random_command(rng, config, limits, lines)
    image[:len(stream)] = stream
    R, C, WW = config.core.rows, config.core.cols, config.pe.weight_words
    dump = list(isa.encode("DMA_STORE", mem_addr=0x8000, **whole))
    dump += isa.encode("STORE_W", m=R * WW, n=C, wbase=0, sp_base=0, sp_lpc=-(-R * WW // S))
    dump += isa.encode("DMA_STORE", mem_addr=0xC000, **whole)
    image[0x3000 // 4:0x3000 // 4 + len(dump)] = dump
    return Job(image, [Run(0, 1 + length, dma_last=0xFFFF, max_cycles=400_000),
                       Run(0x3000, 3, dma_last=0xFFFF, max_cycles=400_000)])


@pytest.mark.parametrize("rtl_harness", SLOW_ICARUS, indirect=True)
def test_fuzz_rtl_equals_golden(rtl_harness, build_root):
    """Random command streams never hang the RTL (each run ends within its cycle bound) and
    the RTL and the golden machine agree on the error code and index, the counters and the
    whole memory image, with the scratchpad and weight banks dumped after each stream."""
    jobs = [fuzz_case(TINY, seed) for seed in range(8)]
    # One simulation for every stream: before each stream the host rewrites the memory.
    job = Job(jobs[0].image, [])
    for j in jobs:
        first, *rest = j.runs
        job.runs += [dataclasses.replace(first, writes=[(0, j.image)]), *rest]
    outs = rtl(TINY, job, rtl_harness, build_root)
    golden = run_job_golden(TINY, job)
    errors = set()
    for i, (r, g) in enumerate(zip(outs, golden)):
        assert (r.status, r.error, r.index) == (g.status, g.error, g.index), f"run {i}"
        errors.add(r.error)
        differ = np.flatnonzero(r.image != g.image)
        assert differ.size == 0, (f"run {i}: {differ.size} words differ, the first at byte "
                                  f"{4 * differ[0]:#x}")
        assert {k: r.counters[k] for k in GOLDEN_COUNTERS} == g.counters, f"run {i}"
    # The streams reached both ends: some ran to completion, some halted.
    assert isa.ErrorCode.NONE in errors and len(errors) > 1, errors
