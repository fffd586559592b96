# amaranth: UnusedElaboratable=no
"""``sim.verify.runner.run_testbench`` works under both simulators and fails loudly.

The design is ``sim.verify.tb.smoke.Accumulator``; its cocotb testbench is ``sim.verify.tb.smoke``.
"""

import os
from pathlib import Path

import pytest
from amaranth.back import verilog

from chrysalis.sim.verify.runner import run_testbench
from chrysalis.sim.verify.tb.smoke import Accumulator

TB_MODULE = "chrysalis.sim.verify.tb.smoke"
#: One build of the smoke design per simulator for the tests that run it unchanged (the
#: runner names each build after a hash of its sources and locks it while it builds).
SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "smoke"


def _smoke_verilog(build_root):
    path = build_root / "smoke.v"
    # Written beside and renamed: a test sharing the folder may be building from it now.
    part = build_root / f"smoke.v.{os.getpid()}"
    part.write_text(verilog.convert(Accumulator(), name="smoke", emit_src=False))
    os.replace(part, path)
    return path


def _run(simulator, build_root, **kwargs):
    return run_testbench(
        sources=[_smoke_verilog(build_root)],
        toplevel="smoke",
        module=TB_MODULE,
        simulator=simulator,
        build_dir=build_root,
        timeout_s=300,
        **kwargs,
    )


def test_smoke_accumulator(simulator):
    SHARED.mkdir(parents=True, exist_ok=True)
    result = _run(simulator, SHARED, extra_env={"SMOKE_CYCLES": 300}, seed=1)
    assert result["failures"] == 0
    assert result["tests"] >= 1
    assert result["results_xml"].is_file()


def test_failing_cocotb_test_raises(simulator):
    SHARED.mkdir(parents=True, exist_ok=True)
    with pytest.raises(RuntimeError, match=rf"{simulator}.*'smoke'.*1 of 1 cocotb test"):
        _run(simulator, SHARED, testcase="must_fail_for_runner_check")


def test_failure_raises_outside_pytest(build_root, monkeypatch):
    # cocotb's runner only checks results itself when PYTEST_CURRENT_TEST is set; without it
    # (a script, `chrysalis demo`) a failure must still raise.
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    with pytest.raises(RuntimeError, match="1 of 1 cocotb test"):
        _run("icarus", build_root, testcase="must_fail_for_runner_check")


def test_no_test_ran_raises(build_root):
    with pytest.raises(RuntimeError, match="no cocotb test ran"):
        _run("icarus", build_root, testcase="no_such_test")


def test_unknown_simulator_rejected(build_root):
    with pytest.raises(ValueError, match="simulator must be one of"):
        run_testbench(sources=[], toplevel="smoke", module=TB_MODULE, simulator="xsim",
                      build_dir=build_root)


def test_changed_sources_get_a_fresh_build(build_root):
    # Verilator's make is incremental and ignores `always=True`, so a changed design must
    # land in a different build directory, and an identical one may reuse its build.
    first = _run("icarus", build_root, extra_env={"SMOKE_CYCLES": 5})
    again = _run("icarus", build_root, extra_env={"SMOKE_CYCLES": 5})
    changed = build_root / "smoke_changed.v"
    changed.write_text("// changed\n" + (build_root / "smoke.v").read_text())
    other = run_testbench(sources=[changed], toplevel="smoke", module=TB_MODULE,
                          simulator="icarus", build_dir=build_root,
                          extra_env={"SMOKE_CYCLES": 5})
    assert first["build_dir"] == again["build_dir"]
    assert other["build_dir"] != first["build_dir"]


def test_build_failure_raises(build_root):
    broken = build_root / "broken.v"
    broken.write_text("module smoke(input clk, input rst);\n  this is not verilog;\nendmodule\n")
    with pytest.raises(RuntimeError, match="icarus.*build failed"):
        run_testbench(sources=[broken], toplevel="smoke", module=TB_MODULE,
                      simulator="icarus", build_dir=build_root)
