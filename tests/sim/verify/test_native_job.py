"""The native simulator (``sim.verify.native_job``): a job on the Verilated RTL with the host
and the memory in C++ gives the golden machine's images and counters, and the same counters,
cycles included, as the cocotb testbench with cocotbext-axi's AxiRam."""

from pathlib import Path

import numpy as np
import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.sim.compile.data import digits
from chrysalis.sim.compile.job import Job, Run, golden_mismatches, run_job_golden, training_job
from chrysalis.sim.compile.program import TrainingProgram, initial_weights
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.verify import native_job
from chrysalis.sim.verify.runner import available_simulators

pytestmark = pytest.mark.skipif("verilator" not in available_simulators(),
                                reason="Verilator is not installed (run `make setup`)")

TINY = PRESETS["tiny"]
SIZES, BATCH = [16, 8, 4], 2
SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "native"
#: The cocotb builds of test_cocotb_accelerator.py, shared with them.
COCOTB_SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "accelerator"


def _training_job(config, steps, seed=0):
    program = TrainingProgram(config, SIZES, BATCH, lr=0.25, store_every_step=False)
    x, y, _, _ = digits(seed)
    minibatches = [(nx.from_float32(x[s * BATCH:(s + 1) * BATCH, :SIZES[0]].T
                                    .astype(np.float32)),
                    y[s * BATCH:(s + 1) * BATCH] % SIZES[-1]) for s in range(steps)]
    return training_job(program, initial_weights(SIZES, seed), minibatches)


def test_training_steps_equal_golden_and_cocotb(build_root):
    job = _training_job(TINY, steps=2)
    native = native_job.run_job(TINY, job, SHARED / TINY.name, fast_build=True)
    assert golden_mismatches(native, run_job_golden(TINY, job)) == []
    from chrysalis.sim.verify.rtl_job import run_job
    cocotb = run_job(TINY, job, "verilator", COCOTB_SHARED / TINY.name,
                     job_dir=build_root, timeout_s=1800)
    assert [o.cycles for o in native] == [o.cycles for o in cocotb]
    assert [o.counters for o in native] == [o.counters for o in cocotb]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(native, cocotb))


def test_a_malformed_command_halts_with_the_golden_error():
    words = np.zeros(0x2000 // 4, dtype=np.uint32)
    good = isa.encode("DMA_LOAD", n=8, batch=2, mem_addr=0x1000, mem_stride=64, sp_base=0,
                      sp_lpc=4)
    words[:len(good)] = good
    bad = list(good)
    bad[0] = (bad[0] & ~0xFF) | 0x3F            # an opcode the command set does not have
    words[len(good):2 * len(good)] = bad
    job = Job(words, [Run(0, 2)])
    native = native_job.run_job(TINY, job, SHARED / TINY.name, fast_build=True)
    golden = run_job_golden(TINY, job)
    assert native[0].error == golden[0].error == isa.ErrorCode.BAD_OPCODE
    assert native[0].index == golden[0].index == 1
    assert np.array_equal(native[0].image, golden[0].image)


def test_a_hung_run_is_reported(tmp_path):
    # A DMA window that ends before the command buffer: the fetch fails at once, so the
    # bound is the only way to hang; a bound of zero cycles does.
    job = _training_job(TINY, steps=0)
    job.runs = [Run(job.runs[0].cmd_base, job.runs[0].cmd_count, max_cycles=1)]
    with pytest.raises(RuntimeError, match="no interrupt within 1 cycles"):
        native_job.run_job(TINY, job, SHARED / TINY.name, fast_build=True)


def test_builds_are_cached_by_content(tmp_path):
    from chrysalis.gen.emit.verilog import emit
    paths = emit(TINY, SHARED / TINY.name / "rtl")
    first = native_job.build(TINY, paths["verilog"], fast_build=True)
    again = native_job.build(TINY, paths["verilog"], fast_build=True)
    assert again.executable == first.executable and again.seconds == 0.0
    assert native_job.build_key(TINY, paths["verilog"], fast_build=True) == first.key
    # The optimised build is another build.
    assert native_job.build_key(TINY, paths["verilog"]) != first.key
    narrow = with_overrides(TINY, {"host.axi_data_width": 32})
    assert native_job.build_key(narrow, emit(narrow, tmp_path / "rtl")["verilog"]) != first.key


def test_job_files_round_trip(tmp_path):
    job = _training_job(TINY, steps=1)
    path = tmp_path / "job.bin"
    native_job.write_job(path, TINY, job)
    data = path.read_bytes()
    assert data[:8] == b"CHRJOB01"
    mem_base, mem_bytes, words = np.frombuffer(data, dtype="<u8", count=3, offset=8)
    assert (mem_base, mem_bytes, words) == (job.mem_base, job.mem_bytes, len(job.image))
