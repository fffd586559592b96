"""The controller's overlap on the generated Verilog (``sim.verify.native_job``), under
Verilator and Icarus: a DMA beside a core command and one that must wait, a load beside a
``WGRAD`` (the core's side slot) and one that must wait because it writes what the
``WGRAD`` reads, core commands fetched ahead, and a check error on a command fetched ahead
give the golden machine's images, counters and errors, and ``CYCLES`` exactly the model's
(``gen.perf.network.cluster_stream_cost`` with the memory timing of the harnesses); so
does a ``WGRAD`` beside a ``BACKWARD``'s last drain (the drain slot), with a DMA beside
both, and one that must wait because it reads what the drain fills."""

from pathlib import Path

import numpy as np
import pytest

from chrysalis.gen.perf.network import cluster_stream_cost
from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import PRESETS
from chrysalis.sim.compile.job import GOLDEN_COUNTERS, Job, Run, run_job_golden
from chrysalis.sim.verify import native_job
from chrysalis.sim.verify.runner import available_simulators
from tests.sim.verify.test_cocotb_cluster import random_words

TINY = PRESETS["tiny"]
SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "native"
STORE = dict(op="DMA_STORE", n=8, batch=8, mem_stride=0x20, sp_lpc=4)
LOAD_COL = dict(op="LOAD_COL", n=6, batch=8, abase=0, sp_base=24, sp_lpc=4)


#: WGRAD reads X at words [0, 24) and dY at [24, 40) of the activation banks.
WGRAD = dict(op="WGRAD", m=4, n=6, batch=8, wbase=0, abase=0, abase2=24, fused=1)


def _forward(sp_base):
    return dict(op="FORWARD", m=4, n=6, batch=8, wbase=0, abase=0, sp_base=sp_base, sp_lpc=4)


def _backward(fill_at):
    """dX = W^T dY (dY at [24, 40)) into lines 60.., filled into the banks at ``fill_at``."""
    return dict(op="BACKWARD", m=4, n=6, batch=8, wbase=0, abase=24, sp_base=60, sp_lpc=4,
                fill=1, abase2=fill_at)


#: name -> commands (the setup first; the halt's second command is refused: WEIGHT_RANGE).
STREAMS = {
    "setup": [dict(op="DMA_LOAD", n=8, batch=14, mem_addr=0x4000, mem_stride=0x20, sp_base=0,
                   sp_lpc=4),
              dict(op="LOAD_W", m=4, n=6, wbase=0, sp_base=0, sp_lpc=4), LOAD_COL],
    "load_beside": [LOAD_COL, dict(op="DMA_LOAD", n=8, batch=4, mem_addr=0x6000,
                                   mem_stride=0x20, sp_base=200, sp_lpc=4)],
    "store_beside": [_forward(60), dict(STORE, mem_addr=0x8000, sp_base=200)],
    "store_waits": [_forward(100), LOAD_COL, _forward(140),
                    dict(STORE, mem_addr=0x9000, sp_base=140)],
    "halt": [_forward(180), dict(_forward(60), wbase=TINY.pe.weight_words)],
    "store_all": [dict(STORE, mem_addr=0xA000 + 0x400 * i, sp_base=base)
                  for i, base in enumerate((60, 100, 180))],
    "load_beside_wgrad": [WGRAD, dict(LOAD_COL, abase=40)],
    "load_waits_for_wgrad": [WGRAD, dict(LOAD_COL, abase=16)],
    # BACKWARD's fill writes [40, 64) (beside: the WGRAD reads none of it) or [0, 24) (the
    # WGRAD's X: it waits); the DMA_STORE goes beside the WGRAD and the drain.
    "wgrad_beside_drain": [_backward(40), WGRAD, dict(STORE, mem_addr=0xB000, sp_base=200)],
    "wgrad_waits_for_fill": [_backward(0), WGRAD],
}


def _job():
    words = np.zeros(0x10000 // 4, dtype=np.uint32)
    rng = np.random.default_rng(5)
    words[0x4000 // 4:0x4000 // 4 + 8 * 14] = random_words(rng, 8 * 14)
    words[0x6000 // 4:0x6000 // 4 + 8 * 4] = random_words(rng, 8 * 4)
    runs, at = [], 0
    for commands in STREAMS.values():
        encoded = isa.encode_stream(commands)
        words[at // 4:at // 4 + len(encoded)] = encoded
        runs.append(Run(at, len(commands), max_cycles=100_000))
        at += 64 * len(commands)
    return Job(words, runs)


@pytest.mark.parametrize("simulator", [
    pytest.param(name, marks=pytest.mark.skipif(name not in available_simulators(),
                                                reason=f"{name} is not installed"))
    for name in ("verilator", "icarus")])
def test_overlap_equals_golden_and_the_model(simulator):
    job = _job()
    extra = dict(fast_build=True) if simulator == "verilator" else dict(simulator="icarus")
    outs = native_job.run_job(TINY, job, SHARED / TINY.name, **extra)
    golden = run_job_golden(TINY, job)
    for name, out, want in zip(STREAMS, outs, golden):
        assert (out.status, out.error, out.index) == (want.status, want.error, want.index), name
        assert np.array_equal(out.image, want.image), name
        assert {k: out.counters[k] for k in GOLDEN_COUNTERS} == {
            k: want.counters[k] for k in GOLDEN_COUNTERS}, name
    assert (outs[4].error, outs[4].index) == (isa.ErrorCode.WEIGHT_RANGE, 1)
    for name, out in zip(STREAMS, outs):
        if name == "halt":
            continue
        model = cluster_stream_cost(TINY, STREAMS[name])["cycles"]
        assert out.cycles == model, (name, out.cycles, model)
    # The DMA of "load_beside" and "store_beside" ran beside the core command: fewer cycles
    # than the core command and then the DMA.
    from chrysalis.gen.perf.commands import command_cost
    for name in ("load_beside", "store_beside"):
        core, dma = (command_cost(TINY, c) for c in STREAMS[name])
        assert outs[list(STREAMS).index(name)].cycles < (
            1 + core["cycles"] + dma["dma_cycles"])
    # The load into words the WGRAD does not read went beside it; the one into its X
    # waited: the same commands, fewer cycles.
    from chrysalis.gen.perf.stream import load_beside
    beside, waits = (STREAMS[name] for name in ("load_beside_wgrad", "load_waits_for_wgrad"))
    assert load_beside(TINY, beside[1], WGRAD) and not load_beside(TINY, waits[1], WGRAD)
    index = {name: i for i, name in enumerate(STREAMS)}
    assert outs[index["load_beside_wgrad"]].cycles < outs[index["load_waits_for_wgrad"]].cycles
    # The WGRAD that reads none of the words the BACKWARD fills started beside its last
    # drain; the one that reads them waited.
    from chrysalis.gen.perf.stream import drain_beside
    beside, waits = (STREAMS[name] for name in ("wgrad_beside_drain", "wgrad_waits_for_fill"))
    assert drain_beside(TINY, WGRAD, beside[0]) and not drain_beside(TINY, WGRAD, waits[0])
    pair = cluster_stream_cost(TINY, beside[:2])["cycles"]
    assert pair < cluster_stream_cost(TINY, beside[:2], drain_slot=False)["cycles"]
    assert outs[index["wgrad_waits_for_fill"]].cycles == cluster_stream_cost(
        TINY, waits, drain_slot=False)["cycles"]


def _wgrad_then_reduce_scatter(config, rng):
    """Two cores: each loads its X, dY and W (lines 100 on) and a reduce-scatter's matrices
    (``test_cocotb_cluster.collective_stream``), runs a fused WGRAD, then the
    REDUCE_SCATTER (which the controller starts beside the WGRAD), then stores both
    results. Returns the job and its commands."""
    from chrysalis.gen.spec.isa import Opcode
    from tests.sim.verify.test_cocotb_cluster import REGION, collective_stream
    image = np.zeros(2 * REGION // 4, dtype=np.uint32)
    ring, loads = collective_stream(config, Opcode.REDUCE_SCATTER, 0, n=6, batch=4)
    for addr, rows, stride in loads:
        for b in range(4):
            image[(addr + b * stride) // 4:(addr + b * stride) // 4 + rows] = random_words(rng,
                                                                                         rows)
    # X (6 x 4), dY (4 x 4) and W (4 x 6) in memory at REGION, scratchpad lines 100.. .
    mats = {"x": (6, 4, 100), "dy": (4, 4, 120), "w": (4, 6, 140)}
    setup = []
    for i, (name, (rows, cols, line)) in enumerate(mats.items()):
        addr = REGION + 0x200 * i
        for b in range(cols):
            image[addr // 4 + 8 * b:addr // 4 + 8 * b + rows] = random_words(rng, rows)
        setup.append(dict(op="DMA_LOAD", n=rows, batch=cols, mem_addr=addr, mem_stride=32,
                          sp_base=line, sp_lpc=4))
    setup += [dict(op="LOAD_W", m=4, n=6, wbase=0, sp_base=140, sp_lpc=4),
              dict(op="LOAD_COL", n=6, batch=4, abase=0, sp_base=100, sp_lpc=4),
              dict(op="LOAD_ROW", m=4, batch=4, abase=24, sp_base=120, sp_lpc=4)]
    wgrad = [WGRAD, dict(op="STORE_W", m=4, n=6, wbase=0, sp_base=160, sp_lpc=4),
             dict(op="DMA_STORE", n=4, batch=6, mem_addr=REGION + 0x800, mem_stride=32,
                  sp_base=160, sp_lpc=4, cores=1)]
    dmas = [c for c in ring if c["op"] == "DMA_LOAD"]
    rest = [c for c in ring if c["op"] != "DMA_LOAD"]
    commands = dmas + setup + wgrad[:1] + rest[:1] + wgrad[1:] + rest[1:]
    words = isa.encode_stream(commands)
    image[REGION // 4 + 0x1000 // 4:REGION // 4 + 0x1000 // 4 + len(words)] = words
    return Job(image, [Run(REGION + 0x1000, len(commands), max_cycles=100_000)]), commands


@pytest.mark.parametrize("simulator", [
    pytest.param(name, marks=pytest.mark.skipif(name not in available_simulators(),
                                                reason=f"{name} is not installed"))
    for name in ("verilator", "icarus")])
def test_collective_beside_a_wgrad_equals_golden_and_the_model(simulator):
    """A REDUCE_SCATTER after a WGRAD on both cores starts while the WGRAD runs (the ring
    engine takes the scratchpads' ports, which a WGRAD does not use): the golden machine's
    image and counters, and ``CYCLES`` the model's, which is fewer than waiting."""
    from tests.sim.verify.test_cocotb_cluster import cluster_config
    config = cluster_config(2)
    job, commands = _wgrad_then_reduce_scatter(config, np.random.default_rng(11))
    extra = dict(fast_build=True) if simulator == "verilator" else dict(simulator="icarus")
    outs = native_job.run_job(config, job, SHARED / config.name, **extra)
    golden = run_job_golden(config, job)
    assert (outs[0].status, outs[0].error) == (golden[0].status, golden[0].error)
    assert golden[0].error == isa.ErrorCode.NONE
    assert np.array_equal(outs[0].image, golden[0].image)
    assert {k: outs[0].counters[k] for k in GOLDEN_COUNTERS} == {
        k: golden[0].counters[k] for k in GOLDEN_COUNTERS}
    assert golden[0].counters["ring_words"] > 0
    model = cluster_stream_cost(config, commands)["cycles"]
    assert outs[0].cycles == model
    assert model < cluster_stream_cost(config, commands, ring_beside=False)["cycles"]
