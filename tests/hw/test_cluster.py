"""A cluster's accelerator (``hw.accelerator.Accelerator`` with ``cluster.cores`` cores) in
Amaranth's simulator, against the golden models (``sim.golden.cluster_machine.machine_for``).

The memory and the host are those of ``tests/hw/test_accelerator.py``: test_dma's AXI4
subordinate (seeded stalls, the protocol checked every cycle) and the AXI4-Lite
:class:`~tests.hw.test_accelerator.Host`. Every simulation runs command streams (one
doorbell each) on the RTL and on the golden model of the same config over the same memory
image, and compares each run's status, error code and index and counters, and the memory
the RTL wrote; the tests then check what they are about on top of that:

* the ``cores`` mask and ``BAD_CORE`` (every case of ``gen.spec.isa.core_error``, also on one
  core, where a collective or a ``cores`` bit other than bit 0 is refused);
* ``DMA_LOAD`` fanned out to the cores of its mask, ``DMA_STORE`` from each core;
* core commands on different cores overlap, and the run ends only once every core is idle;
* the collectives on the ring, and a mixed stream of core commands on masks.
"""

import random

import numpy as np
import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.spec.isa import ErrorCode, Opcode
from chrysalis.hw.accelerator import Accelerator
from chrysalis.sim.golden.cluster_machine import machine_for
from chrysalis.sim.verify.shared_sim import shared_simulation
from tests.hw.test_accelerator import (CMD_BASE, EXACT_COUNTERS, STATUS_DONE, STATUS_ERROR, WIDTH,
                                       Bench, Host, _DmaView, _Memory, image_of)
from tests.hw.test_dma import Case, Subordinate, _mem_init
from tests.sim.verify.test_cocotb_cluster import collective_job, random_words

TINY = get_preset("tiny")
#: Memory the golden model sees (the tests keep every access below it).
MEM_BYTES = 0x20000


def cluster(cores):
    """The ``tiny`` preset with ``cores`` cores."""
    if cores == 1:
        return TINY
    return with_overrides(TINY, {"name": f"tiny_cluster{cores}", "cluster.cores": cores})


class _Cluster(Accelerator):
    """The accelerator, keeping its DMA engine for the subordinate's per-cycle checks."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        self.dma = m.submodules.dma
        return m


def memory_words(seed, image):
    """The memory the subordinate starts with, as ``uint32`` words: test_dma's seeded
    pattern under ``image`` (bytes by address)."""
    addr = np.arange(MEM_BYTES, dtype=np.uint64)
    x = (addr * np.uint64(0x9E3779B1) + np.uint64(seed * 0x632BE5AB + 0x5BD1E995)) \
        & np.uint64(0xFFFFFFFF)
    data = ((x ^ (x >> np.uint64(13)) ^ (x >> np.uint64(24))) & np.uint64(0xFF)).astype(np.uint8)
    assert data[12345] == _mem_init(seed, 12345)
    for a, value in image.items():
        data[a] = value
    return data.view("<u4").astype(np.uint32)


def image_bytes(words, base=0):
    """``uint32`` words at byte ``base`` as bytes by address."""
    raw = np.asarray(words, dtype="<u4").tobytes()
    return {base + i: b for i, b in enumerate(raw)}


def with_data(stream, *regions, seed=0):
    """The bytes of a command stream at :data:`CMD_BASE` and of random fp32 words in
    ``regions`` (``(byte address, words)``), for the memory's image."""
    rng = np.random.default_rng(seed)
    image = image_of(stream)
    for addr, count in regions:
        image.update(image_bytes(random_words(rng, count), addr))
    return image


def simulate(config, runs, *, image, seed=1, stall=0.0, max_cycles=20_000, limit=400_000):
    """``runs`` (``(cmd_base, count)``) one after the other on the RTL of ``config``; each
    run's outcome (status, error code and index, counters, CYCLES) and the final memory
    image (``uint32`` words of the first :data:`MEM_BYTES`)."""
    # One compiled simulation per config in this worker (sim.verify.shared_sim).
    shared = shared_simulation((_Cluster, config.to_toml()), lambda: _Cluster(config))
    acc = shared.dut
    sub = Subordinate(_DmaView(acc), Case(WIDTH, config.core.banks, seed, stall, ()),
                      random.Random(seed))
    sub.mem = _Memory(seed, image)
    host = Host(acc, random.Random(seed + 1000), 0.0)
    outs = []

    async def testbench(ctx):
        bench = Bench(ctx, acc, sub, host, limit)
        for _ in range(2):
            await bench.tick()
        for cmd_base, count in runs:
            before = await bench.get64("CYCLES")
            out, _ = await bench.run(cmd_base, count, max_cycles=max_cycles)
            out["cycles"] = await bench.get64("CYCLES") - before
            outs.append(out)

    shared.run(testbench)
    memory = memory_words(seed, image).view(np.uint8).copy()
    for a, value in sub.mem.written.items():
        assert a < MEM_BYTES, f"a write at {a:#x}, past the memory the test models"
        memory[a] = value
    return outs, memory.view("<u4").astype(np.uint32)


def golden(config, runs, *, image, seed=1):
    """The same runs on the golden model: outcomes as :func:`simulate`'s, and the image."""
    machine = machine_for(config)
    memory = memory_words(seed, image)
    outs = []
    for cmd_base, count in runs:
        result = machine.run(memory, cmd_base, count)
        ok = result.error == ErrorCode.NONE
        outs.append(dict(status=STATUS_DONE if ok else STATUS_ERROR, error_code=result.error,
                         error_index=0 if ok else result.index,
                         counters={name: machine.counters[name.lower()]
                                   for name in EXACT_COUNTERS}))
    return outs, memory


def compare(config, runs, *, image, seed=1, stall=0.0, max_cycles=20_000):
    """Run on both and assert the same outcomes and memory; the RTL's outcomes and final
    memory."""
    got, got_memory = simulate(config, runs, image=image, seed=seed, stall=stall,
                               max_cycles=max_cycles)
    want, want_memory = golden(config, runs, image=image, seed=seed)
    for index, (g, w) in enumerate(zip(got, want)):
        seen = {key: g[key] for key in w}
        assert seen == w, f"run {index}: {runs[index]}"
    differ = np.flatnonzero(got_memory != want_memory)
    assert differ.size == 0, (f"{differ.size} words differ, the first at byte "
                              f"{4 * differ[0]:#x}")
    return got, got_memory


# --- the cores mask and BAD_CORE --------------------------------------------------------------

def _load(**fields):
    return dict(op="DMA_LOAD", n=4, batch=2, mem_addr=0x8000, mem_stride=0x40, sp_base=0,
                sp_lpc=2, **fields)


def bad_core_cases(cores):
    """Commands that each follow a good DMA_LOAD in a run of their own: ``(command, code
    expected)``. Every case of ``gen.spec.isa.core_error``, commands it lets through, and the
    checks that come before it."""
    B, N = ErrorCode.BAD_CORE, ErrorCode.NONE
    cluster_only = N if cores > 1 else B
    fwd = dict(op="FORWARD", m=2, n=2, batch=2, wbase=0, abase=0, sp_base=8, sp_lpc=1)
    coll = dict(n=3, batch=2, sp_base=16, sp_lpc=8, sp2_base=40, sp2_lpc=8)
    store = dict(_load(), op="DMA_STORE", mem_addr=0x9000)
    last = 1 << (cores - 1)
    cases = [
        (dict(fwd, cores=1 << cores), B),                     # the bit after the last core
        (dict(fwd, cores=1 << 15), B),
        (dict(fwd, cores=last | 1 << cores), B),
        (dict(fwd, cores=last), N),
        (_load(cores=1 << cores), B),
        (dict(op="LOAD_COL", n=2, batch=2, abase=0, sp_base=0, sp_lpc=1,
              cores=(1 << cores) - 1), N),
        (dict(store, cores=0b11), B),                          # a store from two cores
        (dict(store, cores=0), B if cores > 1 else N),         # from every core
        (dict(store, cores=last), N),
        (dict(store, cores=0b101), B),
        # Collectives: a root or a peer the machine lacks, a SEND to itself; one core.
        *[(dict(coll, op=op.name), cluster_only)
          for op in (Opcode.BROADCAST, Opcode.REDUCE, Opcode.ALL_GATHER,
                     Opcode.REDUCE_SCATTER, Opcode.ALL_REDUCE)],
        (dict(coll, op="BROADCAST", root=cores - 1), cluster_only),
        (dict(coll, op="BROADCAST", root=cores), B),
        (dict(coll, op="REDUCE", root=255), B),
        (dict(coll, op="SEND", root=0, peer=cores - 1), cluster_only),
        (dict(coll, op="SEND", root=0, peer=cores), B),
        (dict(coll, op="SEND", root=cores - 1, peer=cores - 1), B),
        (dict(coll, op="SEND", root=cores, peer=0), B),
        # The checks before BAD_CORE win.
        (dict(coll, op="BROADCAST", root=cores, n=0), ErrorCode.ZERO_SIZE),
        (dict(coll, op="SEND", root=0, peer=0, sp_lpc=1), ErrorCode.SCRATCHPAD_RANGE),
        (dict(coll, op="REDUCE_SCATTER", n=0x8000, sp_lpc=0x4000, sp2_lpc=0x4000, batch=1,
              sp_base=0, sp2_base=0), ErrorCode.SCRATCHPAD_RANGE),
        (dict(fwd, cores=1 << cores, wbase=TINY.pe.weight_words), ErrorCode.WEIGHT_RANGE),
        (dict(store, cores=0b11, mem_addr=0x9004), ErrorCode.DMA_ALIGN),
        (dict(store, cores=0b11, mem_addr=0xFFFF_FFC0), ErrorCode.DMA_RANGE),
    ]
    return cases


@pytest.mark.parametrize("cores", [1, 2])
def test_bad_core(cores):
    """Each case halts at its command with the code of ``gen.spec.isa.check`` (BAD_CORE where a
    core is missing, the earlier checks first) and nothing of it happens, or runs as the
    golden model's; a good run afterwards works."""
    config = cluster(cores)
    limits = isa.Limits.from_config(config)
    cases = bad_core_cases(cores)
    stream, runs = [], []
    for command, code in cases:
        fields = isa.decode(isa.encode(**command))
        assert isa.check(fields, limits) == code, (command, isa.check(fields, limits))
        runs.append((CMD_BASE + 64 * len(stream), 2))
        stream += [_load(), command]
    runs.append((CMD_BASE, 1))
    got, _ = compare(config, runs, image=with_data(stream, (0x8000, 64)), seed=cores)
    codes = [out["error_code"] for out in got]
    assert codes == [code for _, code in cases] + [ErrorCode.NONE]
    assert codes.count(ErrorCode.BAD_CORE) >= 10


# --- overlap and the end of a run -------------------------------------------------------------

def _forward_setup():
    """Random weights and inputs into every core's banks (a 4x6 layer, batch 8)."""
    return [dict(op="DMA_LOAD", n=8, batch=14, mem_addr=0x4000, mem_stride=0x20, sp_base=0,
                 sp_lpc=4, cores=0),
            dict(op="LOAD_W", m=4, n=6, wbase=0, sp_base=0, sp_lpc=4, cores=0),
            dict(op="LOAD_COL", n=6, batch=8, abase=0, sp_base=24, sp_lpc=4, cores=0)]


def _forward(core, sp_base=60):
    return dict(op="FORWARD", m=4, n=6, batch=8, wbase=0, abase=0, sp_base=sp_base, sp_lpc=4,
                cores=1 << core)


def _streams(streams):
    """One stream of the named streams back to back, and the run of each."""
    stream, runs = [], {}
    for name, commands in streams.items():
        runs[name] = (CMD_BASE + 64 * len(stream), len(commands))
        stream += commands
    return stream, runs


@pytest.fixture(scope="module")
def two_cores():
    """Runs on two cores, compared with the cluster model: the setup; one FORWARD; two
    FORWARDs on the two cores; a FORWARD then a DMA_STORE from both cores (BAD_CORE, while
    core 0 computes); the stores of every result."""
    store = dict(op="DMA_STORE", n=4, batch=8, mem_stride=0x20, sp_lpc=4)
    stream, runs = _streams({
        "setup": _forward_setup(),
        "one": [_forward(0)],
        "two": [_forward(0), _forward(1, sp_base=100)],
        "halted": [_forward(0, sp_base=140), dict(store, mem_addr=0x9000, sp_base=60,
                                                   cores=0b11)],
        "store": [dict(store, mem_addr=0x8000 + 0x400 * k + 0x100 * i, sp_base=base,
                       cores=1 << k) for k in range(2) for i, base in enumerate((60, 100, 140))],
    })
    got, _ = compare(cluster(2), list(runs.values()),
                     image=with_data(stream, (0x4000, 8 * 14)), seed=3)
    return dict(zip(runs, got))


def test_core_commands_overlap(two_cores):
    """Two FORWARDs on two cores take less than one FORWARD plus half the busy time of one:
    the controller hands the second to core 1 while core 0 computes; the results and
    counters are the stream's run in order."""
    setup, one, two = two_cores["setup"], two_cores["one"], two_cores["two"]
    busy_one = one["counters"]["CORE_CYCLES"] - setup["counters"]["CORE_CYCLES"]
    busy_two = two["counters"]["CORE_CYCLES"] - one["counters"]["CORE_CYCLES"]
    assert busy_two == 2 * busy_one
    assert one["cycles"] > busy_one                     # the run waited for the core
    assert two["cycles"] < one["cycles"] + busy_one // 2, (one["cycles"], two["cycles"],
                                                            busy_one)


def test_run_ends_when_every_core_is_idle(two_cores):
    """A run whose last command is a core command ends once the core is idle (its busy
    cycles are all counted when STATUS says done: the comparison with the model); a run
    that halts (BAD_CORE) while a core computes ends after the core's FORWARD, whose result
    the next run stores."""
    halted = two_cores["halted"]
    assert (halted["status"], halted["error_code"], halted["error_index"]) == (
        STATUS_ERROR, ErrorCode.BAD_CORE, 1)
    assert halted["cycles"] > halted["counters"]["CORE_CYCLES"] - \
        two_cores["two"]["counters"]["CORE_CYCLES"]
    assert two_cores["store"]["status"] == STATUS_DONE


# --- three cores: DMA fan-out, and a mixed stream --------------------------------------------

def _fan_out_stream():
    """A DMA_LOAD to every core, one to cores 1 and 2 and one to core 0 at the same lines;
    a DMA_STORE of both matrices from each core."""
    load = dict(op="DMA_LOAD", n=5, batch=3, mem_stride=0x40, sp_lpc=3)
    stream = [dict(load, mem_addr=0x4000, sp_base=0, cores=0),
              dict(load, mem_addr=0x5000, sp_base=12, cores=0b110),
              dict(load, mem_addr=0x6000, sp_base=12, cores=0b001)]
    for k in range(3):
        for region, base in enumerate((0, 12)):
            stream.append(dict(load, op="DMA_STORE", sp_base=base, cores=1 << k,
                               mem_addr=0x8000 + 0x1000 * k + 0x400 * region))
    return stream


def _mixed_stream():
    """Core commands of every kind on masks of three cores, between DMA fan-outs and
    stores."""
    stream = [
        dict(op="DMA_LOAD", n=8, batch=16, mem_addr=0x4000, mem_stride=0x20, sp_base=0,
             sp_lpc=4, cores=0),
        dict(op="DMA_LOAD", n=8, batch=4, mem_addr=0x5000, mem_stride=0x20, sp_base=0,
             sp_lpc=4, cores=0b100),
        dict(op="LOAD_W", m=4, n=6, wbase=0, sp_base=0, sp_lpc=4, cores=0),
        dict(op="LOAD_COL", n=6, batch=4, abase=0, sp_base=24, sp_lpc=4, cores=0b011),
        dict(op="LOAD_COL", n=6, batch=4, abase=0, sp_base=40, sp_lpc=4, cores=0b100),
        dict(op="FORWARD", flag=1, m=4, n=6, batch=4, wbase=0, abase=0, sp_base=80, sp_lpc=4,
             cores=0b101),
        dict(op="LOAD_ROW", m=4, batch=4, abase=20, sp_base=40, sp_lpc=4, cores=0b010),
        dict(op="BACKWARD", m=4, n=6, batch=4, wbase=0, abase=20, sp_base=100, sp_lpc=4,
             cores=0b010),
        dict(op="WGRAD", m=4, n=6, batch=4, wbase=0, abase=0, abase2=20,
             scalar=0xBE000000, cores=0b010),
        dict(op="STORE_W", m=4, n=6, wbase=0, sp_base=120, sp_lpc=4, cores=0b110),
    ]
    for k in range(3):
        stream += [dict(op="DMA_STORE", n=8, batch=4, mem_addr=0xC000 + 0x400 * k,
                        mem_stride=0x20, sp_base=80, sp_lpc=4, cores=1 << k),
                   dict(op="DMA_STORE", n=8, batch=6, mem_addr=0xC200 + 0x400 * k,
                        mem_stride=0x20, sp_base=100, sp_lpc=4, cores=1 << k),
                   dict(op="DMA_STORE", n=4, batch=6, mem_addr=0xE000 + 0x400 * k,
                        mem_stride=0x20, sp_base=120, sp_lpc=4, cores=1 << k)]
    return stream


@pytest.fixture(scope="module")
def three_cores():
    """The fan-out stream, then the mixed stream, on three cores with memory stalls,
    compared with the cluster model: the outcomes, the final memory and its start."""
    stream, runs = _streams({"fan_out": _fan_out_stream(), "mixed": _mixed_stream()})
    image = with_data(stream, (0x4000, 8 * 16), (0x5000, 8 * 4), (0x6000, 16))
    got, memory = compare(cluster(3), list(runs.values()), image=image, seed=7, stall=0.3)
    return dict(zip(runs, got)), memory, memory_words(7, image)


def test_dma_fan_out(three_cores):
    """One memory read per DMA_LOAD (DMA_READ_BEATS), every masked core's scratchpad
    written; a DMA_STORE from each core gives back what its loads wrote."""
    got, memory, source = three_cores
    n, batch = 5, 3
    beats = -(-4 * n // (WIDTH // 8)) * batch
    assert got["fan_out"]["counters"]["DMA_READ_BEATS"] == 3 * beats
    assert got["fan_out"]["counters"]["DMA_WRITE_BEATS"] == 6 * beats
    for k in range(3):
        for region, src in enumerate((0x4000, 0x6000 if k == 0 else 0x5000)):
            for b in range(batch):
                at = (0x8000 + 0x1000 * k + 0x400 * region + 0x40 * b) // 4
                assert np.array_equal(memory[at:at + n], source[(src + 0x40 * b) // 4:][:n])


def test_mixed_stream_equals_cluster_machine(three_cores):
    """Core commands of every kind on masks of three cores: the memory image and the
    counters equal the cluster model's (compared in the fixture), and they computed."""
    got, _, _ = three_cores
    counters = got["mixed"]["counters"]
    assert counters["MAC_SLOTS"] > 0 and counters["UPDATE_SLOTS"] > 0


# --- collectives and mixed streams against the golden model -----------------------------------

def test_collectives_equal_cluster_machine():
    """Every collective on two cores (random data, random root and peer): the memory image
    and every counter (RING_WORDS and RING_CYCLES among them) equal the cluster model's."""
    config = cluster(2)
    job = collective_job(config, seed=11, n=3, batch=2)
    image = image_bytes(job.image)
    runs = [(run.cmd_base, run.cmd_count) for run in job.runs]
    got, _ = compare(config, runs, image=image, seed=11)
    ring_words = [out["counters"]["RING_WORDS"] for out in got]
    assert all(b > a for a, b in zip([0] + ring_words, ring_words)), ring_words
