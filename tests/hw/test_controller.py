"""The controller's overlap (``hw.controller``) on one core in Amaranth's simulator: the next
command fetched and checked while a core command runs, a DMA beside a core command when the
scoreboard allows it, and errors on a command fetched ahead -- every outcome, counter and
memory image that of the golden machine (the stream run in order), and ``CYCLES`` exactly
the model's composition (``gen.perf.network.cluster_stream_cost``) of the commands' own
costs, measured one doorbell each.
"""

import random

import numpy as np
import pytest

from chrysalis.gen.perf.network import cluster_stream_cost
from chrysalis.gen.perf.stream import dma_beside
from chrysalis.gen.spec import isa
from chrysalis.gen.spec.isa import ErrorCode, Opcode
from chrysalis.hw.axi import Resp
from chrysalis.sim.verify.shared_sim import shared_simulation
from tests.hw.test_accelerator import (CMD_BASE, FETCH_BEATS, STATUS_DONE,
                                       STATUS_ERROR, WIDTH, Bench, Host, _DmaView, _Memory)
from tests.hw.test_cluster import (MEM_BYTES, _Cluster, _forward, _forward_setup, cluster,
                                   golden, memory_words, with_data)
from tests.hw.test_dma import Case, Subordinate

CONFIG = cluster(1)
LOAD = dict(op="DMA_LOAD", n=8, batch=4, mem_addr=0x6000, mem_stride=0x20, sp_lpc=4)
STORE = dict(op="DMA_STORE", n=8, batch=8, mem_stride=0x20, sp_lpc=4)
LOAD_COL = dict(op="LOAD_COL", n=6, batch=8, abase=0, sp_base=24, sp_lpc=4)
#: A FORWARD whose weights run past the weight banks: the checker refuses it.
BAD = dict(_forward(0), wbase=CONFIG.pe.weight_words)

#: name -> (commands, the DMA may run beside the core command before it)
STREAMS = {
    # A DMA_LOAD takes the write port, which FORWARD writes its result through (here into
    # the very lines the load writes): it waits.
    "load_after_forward": ([_forward(0, sp_base=60), dict(LOAD, sp_base=60)], False),
    # LOAD_COL only reads the scratchpad, other lines: the load runs beside it.
    "load_beside_load_col": ([LOAD_COL, dict(LOAD, sp_base=200)], True),
    # ... but not into the lines LOAD_COL reads.
    "load_into_load_col": ([LOAD_COL, dict(LOAD, sp_base=40)], False),
    # A DMA_STORE takes the read port, which FORWARD does not use: beside it, other lines.
    "store_beside_forward": ([_forward(0, sp_base=100), dict(STORE, mem_addr=0x9000,
                                                             sp_base=60)], True),
    # The store of the FORWARD's own result waits for it.
    "store_after_forward": ([_forward(0, sp_base=140), dict(STORE, mem_addr=0xA000,
                                                            sp_base=140)], False),
    # Core commands back to back: each fetched while the one before runs.
    "core_commands": ([LOAD_COL, _forward(0, sp_base=180), LOAD_COL,
                       _forward(0, sp_base=220)], None),
}
#: Runs that halt on the command fetched ahead: name -> (commands, error injected).
HALTS = {
    "check_error": [_forward(0, sp_base=260), BAD],
    "fetch_error": [_forward(0, sp_base=300), dict(STORE, mem_addr=0xB000, sp_base=300)],
}


def _layout():
    """Every command stream at CMD_BASE, the runs ``(name, cmd_base, count, errors)`` --
    the setup, each stream, each halt, a final store of every result -- then each command
    of the streams alone, and the refused command alone (its cost is the overhead)."""
    stream, runs = [], []

    def add(name, commands, errors=(), alone=False):
        base = CMD_BASE + 64 * len(stream)
        stream.extend(commands)
        if alone:
            runs.extend((f"{name}/{i}", base + 64 * i, 1, ()) for i in range(len(commands)))
        else:
            runs.append((name, base, len(commands), errors))

    add("setup", [dict(c, cores=0) for c in _forward_setup()])
    for name, (commands, _) in STREAMS.items():
        add(name, commands)
    for name, commands in HALTS.items():
        errors = [("r", 1, Resp.SLVERR, 3)] if name == "fetch_error" else []
        add(name, commands, errors)
    add("store_all", [dict(STORE, mem_addr=0xC000 + 0x400 * i, sp_base=base)
                      for i, base in enumerate((60, 100, 140, 180, 220, 260, 300))])
    for name, (commands, _) in STREAMS.items():
        add(name, commands, alone=True)
    add("bad", [BAD])
    return stream, runs


def _simulate(stream, runs, seed=2, config=CONFIG):
    """The runs on the RTL: per run its outcome and CYCLES growth; the final memory."""
    image = with_data(stream, (0x4000, 8 * 14), (0x6000, 8 * 4))
    # One compiled simulation per config in this worker (sim.verify.shared_sim).
    shared = shared_simulation((_Cluster, config.to_toml()), lambda: _Cluster(config))
    acc = shared.dut
    sub = Subordinate(_DmaView(acc), Case(WIDTH, config.core.banks, seed, 0.0, ()),
                      random.Random(seed))
    sub.mem = _Memory(seed, image)
    host = Host(acc, random.Random(seed + 1000), 0.0)
    outs = {}

    async def testbench(ctx):
        bench = Bench(ctx, acc, sub, host, 400_000)
        for _ in range(2):
            await bench.tick()
        for name, cmd_base, count, errors in runs:
            before = await bench.get64("CYCLES")
            out, _ = await bench.run(cmd_base, count, errors, max_cycles=20_000)
            out["cycles"] = await bench.get64("CYCLES") - before
            outs[name] = out

    shared.run(testbench)
    memory = memory_words(seed, image).view(np.uint8).copy()
    for a, value in sub.mem.written.items():
        assert a < MEM_BYTES, f"a write at {a:#x}, past the memory the test models"
        memory[a] = value
    return outs, memory.view("<u4").astype(np.uint32), image


@pytest.fixture(scope="module")
def runs():
    """The runs on the RTL, checked against the golden machine: every run's status, error
    code and index and exact counters, and the final memory. The fetch error's run is the
    golden machine's run of the command before it, halted at the fetch."""
    stream, layout = _layout()
    got, memory, image = _simulate(stream, layout)
    golden_runs = [(base, 1 if name == "fetch_error" else count)
                   for name, base, count, _ in layout]
    want, want_memory = golden(CONFIG, golden_runs, image=image, seed=2)
    extra = 0              # the beats of the fetch that erred (the counters are cumulative)
    for (name, *_), w in zip(layout, want):
        if name == "fetch_error":
            w = dict(w, status=STATUS_ERROR, error_code=ErrorCode.BUS_ERROR, error_index=1)
            extra = FETCH_BEATS
        w = dict(w, counters=dict(w["counters"],
                                  FETCH_BEATS=w["counters"]["FETCH_BEATS"] + extra))
        assert {key: got[name][key] for key in w} == w, name
    differ = np.flatnonzero(memory != want_memory)
    assert differ.size == 0, f"{differ.size} words differ, the first at byte {4 * differ[0]:#x}"
    return got


def _measured(got, name, commands):
    """The commands' own costs from their runs alone (less the START cycle), as
    ``cluster_stream_cost`` takes them."""
    overhead = got["bad"]["cycles"] - 1
    costs = []
    for i, command in enumerate(commands):
        alone = got[f"{name}/{i}"]["cycles"] - 1
        dma = alone - overhead if command["op"].startswith("DMA") else 0
        costs.append(dict(overhead_cycles=overhead, cycles=alone, dma_cycles=dma))
    return costs


@pytest.mark.parametrize("name", list(STREAMS))
def test_cycles_are_the_model_composition(runs, name):
    """CYCLES of each stream equals the model's composition of its commands' measured
    costs, exactly; the DMA overlaps (fewer cycles than with the DMA after the core
    command) exactly where the scoreboard's rule says it may, and core commands hide the
    fetch of the next command."""
    commands, beside = STREAMS[name]
    costs = _measured(runs, name, commands)
    model = cluster_stream_cost(CONFIG, commands, costs=costs)["cycles"]
    assert runs[name]["status"] == STATUS_DONE
    assert runs[name]["cycles"] == model, (runs[name]["cycles"], model)
    overhead = costs[0]["overhead_cycles"]
    in_order = 1 + sum(c["cycles"] for c in costs)           # fetch, check, run: no overlap
    if beside is None:
        # Each fetch after a core command is hidden: the core runs longer than it.
        hidden = (len(commands) - 1) * overhead
        assert runs[name]["cycles"] == in_order - hidden
        return
    assert dma_beside(commands[1], commands[0]) == beside
    core_end = 1 + costs[0]["cycles"]                        # the core command alone
    dma_alone = costs[1]["dma_cycles"]
    if beside:
        # The DMA starts when it is checked: overhead + 1 cycles after the core command.
        want = max(1 + overhead + 1 + overhead + dma_alone, core_end)
    else:
        # The DMA starts the cycle the core is idle.
        want = core_end + dma_alone
    assert runs[name]["cycles"] == want
    # Without the overlap, only the DMA's fetch is hidden.
    assert (runs[name]["cycles"] < in_order - overhead) == beside


def test_halt_on_a_command_fetched_ahead(runs):
    """A check error and a fetch bus error on the command fetched while a FORWARD runs halt
    with that command's index only after the FORWARD has ended: its MACs are counted (and
    its results and every counter are the golden machine's, checked in the fixture), and
    the next run stores them."""
    before = runs["core_commands"]["counters"]["MAC_SLOTS"]
    for name, code in (("check_error", ErrorCode.WEIGHT_RANGE),
                       ("fetch_error", ErrorCode.BUS_ERROR)):
        out = runs[name]
        assert (out["status"], out["error_code"], out["error_index"]) == (STATUS_ERROR, code, 1)
        assert out["counters"]["MAC_SLOTS"] > before
        before = out["counters"]["MAC_SLOTS"]
    assert runs["store_all"]["status"] == STATUS_DONE


#: Two cores: FORWARDs on each; the store of core 0's result (it waits for core 0 only); a
#: load into both beside core 0's LOAD_COL and core 1's WGRAD; a store from core 1.
TWO_CORES = [
    _forward(0, sp_base=60), _forward(1, sp_base=100),
    dict(STORE, mem_addr=0x9000, sp_base=60, cores=0b01),
    dict(LOAD_COL, cores=0b01), dict(op="WGRAD", m=4, n=6, batch=8, wbase=0, abase=0,
                                     abase2=0, scalar=0xBE000000, cores=0b10),
    dict(LOAD, sp_base=200, cores=0b11),
    dict(STORE, mem_addr=0xA000, sp_base=200, cores=0b10),
]


def test_two_cores_compose_like_the_model():
    """On two cores the stream's CYCLES equals the model's composition of the commands'
    measured costs, and its results the cluster machine's."""
    config = cluster(2)
    setup = [dict(c, cores=0) for c in _forward_setup()]
    stream = setup + TWO_CORES + [BAD]
    runs = [("setup", CMD_BASE, len(setup), ()),
            ("two", CMD_BASE + 64 * len(setup), len(TWO_CORES), ())]
    runs += [(f"two/{i}", CMD_BASE + 64 * (len(setup) + i), 1, ())
             for i in range(len(TWO_CORES))]
    runs.append(("bad", CMD_BASE + 64 * (len(stream) - 1), 1, ()))
    got, memory, image = _simulate(stream, runs, seed=4, config=config)
    want, want_memory = golden(config, [(base, count) for _, base, count, _ in runs],
                               image=image, seed=4)
    for (name, *_), w in zip(runs, want):
        assert {key: got[name][key] for key in w} == w, name
    assert np.array_equal(memory, want_memory)
    costs = _measured(got, "two", TWO_CORES)
    model = cluster_stream_cost(config, TWO_CORES, costs=costs)["cycles"]
    assert got["two"]["cycles"] == model, (got["two"]["cycles"], model)
    assert not dma_beside(TWO_CORES[2], TWO_CORES[0])
    assert dma_beside(TWO_CORES[5], TWO_CORES[3]) and dma_beside(TWO_CORES[5], TWO_CORES[4])


def test_port_tables_name_scratchpad_users():
    """Every operation of the scratchpad port tables has a scratchpad matrix ``sp``."""
    readers_writers = isa.SP_READERS | isa.SP_WRITERS
    assert all(op in isa.OP_REGIONS and any(r.memory == "scratchpad" and r.base == "sp"
                                            for r in isa.OP_REGIONS[op])
               for op in readers_writers)
    assert Opcode.WGRAD not in readers_writers
