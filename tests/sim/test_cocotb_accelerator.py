"""The accelerator's RTL (``hw.accelerator``) under Icarus and Verilator, with cocotbext-axi as
the host and the memory: the register map, DMA, error handling, and command streams
against the golden machine model."""

import numpy as np
import pytest

from gen import isa
from gen.config import PRESETS
from sim.rtl_job import Job, Run, run_job

TINY = PRESETS["tiny"]


def test_registers(simulator, build_root):
    from gen.verilog import emit
    from sim.runner import run_testbench
    paths = emit(TINY, build_root / "rtl")
    result = run_testbench(sources=[paths["verilog"]], toplevel=TINY.name,
                           module="sim.tb.accelerator", simulator=simulator,
                           build_dir=build_root, testcase="registers", timeout_s=600,
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
    out, = run_job(TINY, job, simulator, build_root, timeout_s=600)
    assert (out.status, out.error) == (0b010, isa.ErrorCode.NONE)
    assert np.array_equal(out.image, expected)
    beats = -(-13 * 4 // (TINY.host.axi_data_width // 8)) * 3
    assert out.counters["dma_read_beats"] == beats
    assert out.counters["dma_write_beats"] == beats
    assert out.counters["commands"] == 2
