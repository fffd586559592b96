"""The native simulator (``sim.verify.native_job``): a job on the Verilated RTL with the host
and the memory in C++, or on the RTL under Icarus with the host and the memory in Verilog,
gives the golden machine's images and counters, and the same counters, cycles included, as
the cocotb testbench with cocotbext-axi's AxiRam."""

import subprocess
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

needs_verilator = pytest.mark.skipif("verilator" not in available_simulators(),
                                     reason="Verilator is not installed (run `make setup`)")
needs_icarus = pytest.mark.skipif("icarus" not in available_simulators(),
                                  reason="Icarus Verilog is not installed (run `make setup`)")

TINY = PRESETS["tiny"]
SIZES, BATCH = [16, 8, 4], 2
SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "native"
#: The cocotb builds of test_cocotb_accelerator.py, shared with them.
COCOTB_SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "accelerator"


def _training_job(config, steps, seed=0, prefetch=None):
    program = TrainingProgram(config, SIZES, BATCH, lr=0.25, store_every_step=False,
                              prefetch=prefetch)
    x, y, _, _ = digits(seed)
    minibatches = [(nx.from_float32(x[s * BATCH:(s + 1) * BATCH, :SIZES[0]].T
                                    .astype(np.float32)),
                    y[s * BATCH:(s + 1) * BATCH] % SIZES[-1]) for s in range(steps)]
    return training_job(program, initial_weights(SIZES, seed), minibatches)


@needs_verilator
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


@needs_verilator
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


@needs_verilator
def test_a_hung_run_is_reported(tmp_path):
    # A DMA window that ends before the command buffer: the fetch fails at once, so the
    # bound is the only way to hang; a bound of zero cycles does.
    job = _training_job(TINY, steps=0)
    job.runs = [Run(job.runs[0].cmd_base, job.runs[0].cmd_count, max_cycles=1)]
    with pytest.raises(RuntimeError, match="no interrupt within 1 cycles"):
        native_job.run_job(TINY, job, SHARED / TINY.name, fast_build=True)


@needs_verilator
def test_builds_are_cached_by_content(tmp_path):
    from chrysalis.sim.verify.verilog_cache import cached_verilog
    verilog = cached_verilog(TINY, SHARED / TINY.name / "rtl")
    first = native_job.build(TINY, verilog, fast_build=True)
    again = native_job.build(TINY, verilog, fast_build=True)
    assert again.executable == first.executable and again.seconds == 0.0
    # The design's AXI4 master and irq are registered: one evaluation a cycle.
    assert first.one_eval and again.one_eval and not first.pgo
    assert native_job.build_key(TINY, verilog, fast_build=True) == first.key
    # The optimised build is another build.
    assert native_job.build_key(TINY, verilog) != first.key
    narrow = with_overrides(TINY, {"host.axi_data_width": 32})
    assert native_job.build_key(narrow, cached_verilog(narrow, tmp_path / "rtl")) != first.key


# The Verilated code one_eval_safe reads, in Verilator 5's layout, cut to what it looks at.
_HEADER = "VL_IN8(&clk,0,0);\nVL_OUT8(&m_axi_arvalid,0,0);\nVL_OUT8(&irq,0,0);\n" \
          "VL_OUTW(&m_axi_wdata,127,0,4);\nVL_OUT8(&s_axil_awready,0,0);\n"
_ROOT_HEADER = "CData/*0:0*/ __Vtrigprevexpr___TOP__clk__0;\n"
_TRIGGERS = """void Vt___024root___eval_triggers_vec__act(Vt___024root* vlSelf) {
    vlSelfRef.__VactTriggered[0U] = (QData)((IData)(
                                                    ((IData)(vlSelfRef.clk) 
                                                     & (~ (IData)(vlSelfRef.__Vtrigprevexpr___TOP__clk__0)))));
}
"""


def _ico(*statements):
    """An input-combinational region whose last function holds ``statements``."""
    return ("bool Vt___024root___eval_phase__ico(Vt___024root* vlSelf) {\n"
            "    Vt___024root___ico_sequent__TOP__0(vlSelf);\n}\n"
            "void Vt___024root___ico_sequent__TOP__0(Vt___024root* vlSelf) {\n"
            "    vlSelfRef.s_axil_awready = vlSelfRef.s_axil_awvalid;\n"
            "    if (vlSelfRef.m_axi_arvalid) {\n        vlSelfRef.x = 1U;\n    }\n"
            "    Vt___024root___combo__TOP__1(vlSelf);\n}\n"
            "void Vt___024root___combo__TOP__1(Vt___024root* vlSelf) {\n"
            + "".join(f"    {s};\n" for s in statements) + "}\n")


def test_one_eval_needs_outputs_of_the_state_alone():
    safe = native_job.one_eval_safe
    # Reading a sampled output or writing another output in the region is fine.
    assert safe(_HEADER, _ROOT_HEADER, [_TRIGGERS, _ico("vlSelfRef.y = vlSelfRef.irq")])
    # A sampled output written there, even two calls deep, is not; nor one in a VL_ macro.
    for statement in ("vlSelfRef.m_axi_arvalid = vlSelfRef.m_axi_arready",
                      "vlSelfRef.irq |= 1U", "vlSelfRef.m_axi_wdata[1U] = 0U",
                      "VL_ASSIGN_W(128, vlSelfRef.m_axi_wdata, __Vtemp_1)"):
        assert not safe(_HEADER, _ROOT_HEADER, [_TRIGGERS, _ico(statement)]), statement
    # Another trigger (a second clock, an asynchronous reset), the falling edge, or code
    # of another shape: two evaluations a cycle.
    two = _ROOT_HEADER + "CData/*0:0*/ __Vtrigprevexpr___TOP__rst__0;\n"
    assert not safe(_HEADER, two, [_TRIGGERS, _ico()])
    negedge = _TRIGGERS.replace("((IData)(vlSelfRef.clk) \n", "((~ (IData)(vlSelfRef.clk)) \n")
    assert negedge != _TRIGGERS and not safe(_HEADER, _ROOT_HEADER, [negedge, _ico()])
    assert not safe(_HEADER, _ROOT_HEADER, [_TRIGGERS])
    assert not safe(_HEADER, "", [_TRIGGERS, _ico()])


@pytest.mark.slow
@needs_verilator
def test_a_profile_guided_build_gives_the_same_results(tmp_path):
    # Slow: two -O3 compiles of the model (instrumented, then with the profile).
    job = _training_job(TINY, steps=2)
    verilog = native_job.verilog_of(TINY, SHARED / TINY.name / "rtl")
    lines = []
    built = native_job.build(TINY, verilog, cache=tmp_path, profile=job, log=lines.append)
    assert built.pgo and built.one_eval and built.seconds > 0
    assert built.key == native_job.build_key(TINY, verilog, pgo=True)
    assert built.key != native_job.build_key(TINY, verilog)
    assert "profile-guided" in lines[0] and not any("note" in line for line in lines)
    # The training run left its profile, and the second compile used it.
    assert any((built.executable.parent).glob("*.gcda"))
    assert "-fprofile-use" in (tmp_path / built.key / "build.log").read_text()
    outputs = native_job.run_job(TINY, job, SHARED / TINY.name, cache=tmp_path, pgo=True)
    assert golden_mismatches(outputs, run_job_golden(TINY, job)) == []
    quick = native_job.run_job(TINY, job, SHARED / TINY.name, fast_build=True)
    assert _outcomes(outputs) == _outcomes(quick)


@needs_verilator
@pytest.mark.slow
def test_a_failed_profile_guided_build_falls_back_with_a_note(monkeypatch):
    # An instrumented compile that fails: the plain -O3 build is used, with one note. The
    # machine's cache keeps that build (and the failure, under the failing flag's key).
    # Slow: the -O3 build of its own (about 30 s); the profile-guided build is opt-in.
    monkeypatch.setattr(native_job, "_PROFILE_GENERATE", "-fprofile-no-such-option")
    job = _training_job(TINY, steps=1)
    verilog = native_job.verilog_of(TINY, SHARED / TINY.name / "rtl")
    lines = []
    built = native_job.build(TINY, verilog, profile=job, log=lines.append)
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == 1 and "profile-guided build of 'tiny' failed" in notes[0]
    assert "-fprofile-no-such-option" in notes[0] and notes[0].endswith("plain -O3 build")
    assert not built.pgo and built.key == native_job.build_key(TINY, verilog)
    failed = native_job.cache_dir() / native_job.build_key(TINY, verilog, pgo=True)
    assert (failed / "pgo-failed.txt").is_file() and not (failed / "obj" / "Vsim").exists()
    # The failure is remembered: the next call goes straight to the plain build.
    lines.clear()
    again = native_job.build(TINY, verilog, profile=job, log=lines.append)
    assert again.executable == built.executable and again.seconds == 0.0
    assert lines == notes
    monkeypatch.setenv(native_job.PGO_ENV, "1")
    outputs = native_job.run_job(TINY, job, SHARED / TINY.name, log=lines.append)
    assert golden_mismatches(outputs, run_job_golden(TINY, job)) == []
    assert lines[-1] == notes[0]


def test_job_files_round_trip(tmp_path):
    job = _training_job(TINY, steps=1)
    path = tmp_path / "job.bin"
    native_job.write_job(path, TINY, job)
    data = path.read_bytes()
    assert data[:8] == b"CHRJOB01"
    mem_base, mem_bytes, words = np.frombuffer(data, dtype="<u8", count=3, offset=8)
    assert (mem_base, mem_bytes, words) == (job.mem_base, job.mem_bytes, len(job.image))


# ---- The Icarus harness (native/harness.v) ---------------------------------------------------

def _outcomes(outputs):
    """What a host sees after each run, images as lists: comparable with ``==``."""
    return [(o.status, o.error, o.index, o.cycles, o.counters,
             None if o.image is None else o.image.tolist()) for o in outputs]


def _error_job():
    """Two runs: the first halts at its second command (an opcode the command set does not
    have), the second rewrites that command into a DMA store and runs cleanly."""
    words = np.zeros(0x2000 // 4, dtype=np.uint32)
    load = isa.encode("DMA_LOAD", n=8, batch=2, mem_addr=0x1000, mem_stride=64, sp_base=0,
                      sp_lpc=4)
    store = isa.encode("DMA_STORE", n=8, batch=2, mem_addr=0x1800, mem_stride=64, sp_base=0,
                       sp_lpc=4)
    bad = list(store)
    bad[0] = (bad[0] & ~0xFF) | 0x3F
    words[:len(load)] = load
    words[len(load):2 * len(load)] = bad
    words[0x1000 // 4:0x1000 // 4 + 64] = np.arange(1, 65, dtype=np.uint32) * 0x01010101
    patch = (4 * len(load), np.array(store, dtype=np.uint32))
    return Job(words, [Run(0, 2), Run(0, 2, writes=[patch])])


@needs_icarus
@needs_verilator
def test_icarus_training_steps_equal_verilator_and_cocotb(build_root):
    # The prologue, two steps and the checkpoint; the host writes a minibatch before each
    # run that loads one: the prologue (step 0's) and step 0 (step 1's, prefetched).
    job = _training_job(TINY, steps=2)
    assert [bool(run.writes) for run in job.runs] == [True, True, False, False]
    icarus = native_job.run_job(TINY, job, SHARED / TINY.name, simulator="icarus")
    assert golden_mismatches(icarus, run_job_golden(TINY, job)) == []
    assert all(o.wall_s > 0 for o in icarus)
    verilator = native_job.run_job(TINY, job, SHARED / TINY.name, fast_build=True)
    assert _outcomes(icarus) == _outcomes(verilator)
    from chrysalis.sim.verify.rtl_job import run_job
    cocotb = run_job(TINY, job, "icarus", COCOTB_SHARED / TINY.name, job_dir=build_root,
                     timeout_s=1800, quiet=True)
    assert _outcomes(icarus) == _outcomes(cocotb)


@needs_icarus
@needs_verilator
def test_icarus_error_then_patched_run_equal_verilator_and_cocotb(build_root):
    job = _error_job()
    icarus = native_job.run_job(TINY, job, SHARED / TINY.name, simulator="icarus")
    golden = run_job_golden(TINY, job)
    assert [(o.error, o.index) for o in icarus] == [(g.error, g.index) for g in golden] == [
        (isa.ErrorCode.BAD_OPCODE, 1), (isa.ErrorCode.NONE, 0)]
    assert [o.status for o in icarus] == [g.status for g in golden]
    assert all(np.array_equal(o.image, g.image) for o, g in zip(icarus, golden))
    # The patched run stored what the first run loaded: two columns of eight words, 64
    # bytes apart.
    for column in (0, 64):
        assert np.array_equal(icarus[1].image[(0x1800 + column) // 4:][:8],
                              job.image[(0x1000 + column) // 4:][:8])
    assert not icarus[0].image[0x1800 // 4:].any()
    verilator = native_job.run_job(TINY, job, SHARED / TINY.name, fast_build=True)
    assert _outcomes(icarus) == _outcomes(verilator)
    from chrysalis.sim.verify.rtl_job import run_job
    cocotb = run_job(TINY, job, "icarus", COCOTB_SHARED / TINY.name, job_dir=build_root,
                     timeout_s=1800, quiet=True)
    assert _outcomes(icarus) == _outcomes(cocotb)


def _run_on(rtl_harness, config, job, build_root):
    simulator, harness = rtl_harness
    if harness == "native":
        return native_job.run_job(config, job, SHARED / config.name, simulator=simulator,
                                  fast_build=True)
    from chrysalis.sim.verify.rtl_job import run_job
    return run_job(config, job, simulator, COCOTB_SHARED / config.name, job_dir=build_root,
                   timeout_s=1800, quiet=True)


def test_prefetch_hides_the_minibatch_loads(rtl_harness, build_root):
    """Two steps with and without prefetch: every run's ``CYCLES`` equal the model's
    (``gen.perf.stream.stream_cost`` of its commands) and the golden machine's images and
    counters; with prefetch a step takes at least the cycles of its two minibatch loads
    fewer, the loads of the next step running beside its last ``WGRAD``."""
    from chrysalis.gen.perf.commands import command_cost
    from chrysalis.gen.perf.stream import stream_cost
    steps = {}
    for prefetch in (True, False):
        job = _training_job(TINY, steps=2, prefetch=prefetch)
        program = TrainingProgram(TINY, SIZES, BATCH, lr=0.25, store_every_step=False,
                                  prefetch=prefetch)
        outputs = _run_on(rtl_harness, TINY, job, build_root)
        assert golden_mismatches(outputs, run_job_golden(TINY, job)) == []
        base = program.regions["commands"].addr
        runs = [program.commands[(r.cmd_base - base) // 64:][:r.cmd_count] for r in job.runs]
        assert [o.cycles for o in outputs] == [stream_cost(TINY, c)["total"]["cycles"]
                                               for c in runs]
        steps[prefetch] = [o.cycles for o in outputs[1:3]]
        if prefetch:
            # After the last WGRAD: the next minibatch's DMA_LOADs and its LOAD_COL into
            # the PEs (the core's side slot), beside the WGRAD, then the logits' store.
            wgrad = max(i for i, c in enumerate(runs[1]) if c["op"] == "WGRAD")
            ahead = len(program.input_places) == 2
            assert [c["op"] for c in runs[1][wgrad + 1:]] == \
                ["DMA_LOAD", "DMA_LOAD"] + ["LOAD_COL"] * ahead + ["DMA_STORE"]
            loads = [c for c in runs[1] if c["op"] == "DMA_LOAD"]
            hidden = sum(command_cost(TINY, c)["cycles"] for c in loads)
    assert all(a + hidden <= b for a, b in zip(steps[True], steps[False])), (steps, hidden)


@needs_icarus
def test_icarus_hung_run_is_reported():
    job = _training_job(TINY, steps=0)
    job.runs = [Run(job.runs[0].cmd_base, job.runs[0].cmd_count, max_cycles=1)]
    with pytest.raises(RuntimeError, match=r"no interrupt within 1 cycles of the doorbell "
                                           r"\(STATUS 0x1\)"):
        native_job.run_job(TINY, job, SHARED / TINY.name, simulator="icarus")


@needs_icarus
def test_icarus_job_past_its_timeout_is_killed():
    # The steps take over a second of simulation; the harness is stopped long before.
    job = _training_job(TINY, steps=2)
    with pytest.raises(subprocess.TimeoutExpired):
        native_job.run_job(TINY, job, SHARED / TINY.name, simulator="icarus", timeout_s=0.2)


@needs_icarus
def test_icarus_builds_are_cached_by_content(tmp_path, monkeypatch):
    from chrysalis.sim.verify.verilog_cache import cached_verilog
    verilog = cached_verilog(TINY, SHARED / TINY.name / "rtl")
    first = native_job.build(TINY, verilog, simulator="icarus")
    again = native_job.build(TINY, verilog, simulator="icarus")
    assert again.executable == first.executable and again.seconds == 0.0
    assert first.simulator == "icarus" and first.executable.name == "sim.vvp"
    assert first.executable.parent.parent == native_job.cache_dir("icarus")
    key = native_job.build_key(TINY, verilog, simulator="icarus")
    assert key == first.key
    # Every job up to 4 MiB shares a build; a larger one needs a larger memory array.
    assert native_job.build_key(TINY, verilog, simulator="icarus", mem_bytes=4 << 20) == key
    assert native_job.build_key(TINY, verilog, simulator="icarus", mem_bytes=8 << 20) != key
    narrow = with_overrides(TINY, {"host.axi_data_width": 32})
    assert native_job.build_key(narrow, cached_verilog(narrow, tmp_path / "rtl"),
                                simulator="icarus") != key
    monkeypatch.setenv("CHRYSALIS_CACHE", str(tmp_path / "cache"))
    assert native_job.cache_dir("icarus") == tmp_path / "cache" / "icarus"
    assert native_job.cache_dir() == tmp_path / "cache" / "verilator"


def test_icarus_job_files(tmp_path):
    job = _error_job()
    # A patch that runs past the end of the memory wraps to its start, as in AxiRam.
    job.runs[1].writes.append((job.mem_bytes - 8, np.array([1, 2, 3], dtype=np.uint32)))
    native_job.write_icarus_job(tmp_path, TINY, job)
    script = [int(v, 16) for v in (tmp_path / "script.hex").read_text().split()]
    assert script[:4] == [job.mem_bytes, 0, len(job.image), 2]
    runs = [script[4:13], script[13:]]
    assert runs[1][:2] == [0, 2]                            # cmd_base, cmd_count
    assert [run[-1] for run in runs] == [0, 1]              # patches: run 1 only
    image = (tmp_path / "image.hex").read_text().split()
    assert image[0] == "@0" and [int(w, 16) for w in image[1:]] == job.image.tolist()
    last = job.mem_bytes // 4 - 2
    assert (tmp_path / "writes_1.hex").read_text().split()[-5:] == [
        f"@{last:x}", "00000001", "00000002", "@0", "00000003"]
    assert not (tmp_path / "writes_0.hex").exists()


def test_icarus_job_files_refuse_unaligned_addresses(tmp_path):
    job = _error_job()
    job.runs[1].writes = [(0x102, np.array([1], dtype=np.uint32))]
    with pytest.raises(ValueError, match=r"^the address of a write of run 1 must be a "
                                         r"multiple of 4 under Icarus, not 258$"):
        native_job.write_icarus_job(tmp_path / "job", TINY, job)
    assert not (tmp_path / "job").exists()


def test_an_unknown_simulator_is_refused():
    with pytest.raises(ValueError, match=r"^simulator must be one of verilator, icarus, "
                                         r"not 'questa'$"):
        native_job.run_job(TINY, _error_job(), SHARED / TINY.name, simulator="questa")
