"""``chrysalis sweep``: points, keys, persistence, resuming after a kill or an interrupt,
failures, Dask."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chrysalis.gen.cli import main
from chrysalis.gen.spec.config import ConfigError
from chrysalis.gen.flows.sweep import ResultStore, load_sweep, load_results, point_key

ROOT = Path(__file__).resolve().parents[3]
FLOW = "tests.gen.flows.test_sweep:sleepy_flow"
STUBBORN = "tests.gen.flows.test_sweep:stubborn_flow"


def sleepy_flow(config, seconds=0.0, marks=None, fail_rows=None):
    """A sweep flow for these tests: sleeps, then appends the config's hash to ``marks`` (one
    line per completed run), and fails for a core of ``fail_rows`` rows."""
    if fail_rows is not None and config.core.rows == fail_rows:
        raise RuntimeError(f"no flow for {fail_rows} rows")
    time.sleep(seconds)
    if marks:
        with open(marks, "a") as stream:
            stream.write(config.config_hash() + "\n")
    return {"pes": config.core.pes, "operand": config.mac.operand.name}


def stubborn_flow(config, slow_rows=(), hold="", pids=""):
    """A sweep flow for the interrupt test: for a core of ``slow_rows`` rows, while the file
    ``hold`` exists, it runs a tool that takes ten minutes and does not stop on Ctrl-C (as
    Yosys in WebAssembly, busy in one long call), after appending its worker's and the
    tool's process ids to ``pids``; other cores return at once."""
    if config.core.rows in slow_rows and Path(hold).exists():
        tool = subprocess.Popen(["sh", "-c", "trap '' INT; exec sleep 600"])
        with open(pids, "a") as stream:
            stream.write(f"{os.getpid()} {tool.pid}\n")
        tool.wait()
    return {"pes": config.core.pes}


def _sweep_file(tmp_path, body, name="s.toml"):
    path = tmp_path / name
    path.write_text(body)
    return path


def _records(out):
    lines = (out / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_grid_points_and_stable_keys(tmp_path):
    path = _sweep_file(tmp_path, f"""
base = "tiny"
flows = ["cycles", "{FLOW}"]
set = {{"pe.act_words" = 128}}
[grid]
"core.rows,core.cols" = [[2, 2], [4, 4]]
"mac.operand" = ["bf16", "fp8_e4m3", "bf16"]
["{FLOW}"]
seconds = 0.5
""")
    sweep = load_sweep(path)
    assert sweep.name == "s"
    # 2 sizes x 2 distinct operands x 2 flows: the repeated bf16 adds nothing.
    assert len(sweep.points) == 8
    first = sweep.points[0]
    assert first.overrides == {"pe.act_words": 128, "core.rows": 2, "core.cols": 2,
                               "mac.operand": "bf16"}
    assert first.flow == "cycles" and first.options["sizes"] == [8, 8, 4]
    assert sweep.points[1].options == {"seconds": 0.5}
    assert [p.key for p in load_sweep(path).points] == [p.key for p in sweep.points]
    assert first.key == point_key(first.config, "cycles", first.options)
    assert point_key(first.config, "cycles", {**first.options, "batch": 4}) != first.key
    assert len({p.key for p in sweep.points}) == 8


@pytest.mark.parametrize("body, message", [
    ('flows = ["synth"]\ncolour = 1', "colour is not a sweep key"),
    ('flows = ["place"]', "a flow must be one of verilog, synth, pnr, cycles, perf"),
    ('[grid]\n"core.rows" = [2, 100]', "point core.rows=100: core.rows must be at most 64, not 100"),
    ('[grid]\n"core.rows,core.cols" = [[2]]', "must hold lists of 2 values"),
    ('[synth]\ntargett = "cmos"', "synth.targett is not an option of the synth flow"),
    ('base = "huge"', "huge"),
])
def test_bad_sweep_files_are_one_error_line(tmp_path, capsys, body, message):
    path = _sweep_file(tmp_path, body)
    assert main(["sweep", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chrysalis: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_four_point_sweep_records_every_point(tmp_path, capsys):
    path = _sweep_file(tmp_path, """
name = "four"
base = "tiny"
flows = ["verilog", "cycles"]
[grid]
"mac.operand" = ["bf16", "fp8_e4m3"]
""")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-j", "2", "-o", str(out), "--quiet"]) == 0
    records = _records(out)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    by_flow = {}
    for r in records:
        by_flow.setdefault(r["flow"], []).append(r)
    for r in by_flow["verilog"]:
        assert r["result"]["verilog_lines"] > 1000
        assert Path(r["workdir"], "tiny.v").is_file()
    cycles = {r["config"]["mac"]["operand"]: r["result"] for r in by_flow["cycles"]}
    # The schedule does not depend on the operand format; the counts are the RTL's.
    assert cycles["bf16"]["cycles"] == cycles["fp8_e4m3"]["cycles"] > 100
    assert 0 < cycles["bf16"]["utilization"] < 1
    # Run again: nothing to do, nothing appended.
    assert main(["sweep", str(path), "-o", str(out), "--quiet"]) == 0
    assert "4 of 4 points already done" in capsys.readouterr().out
    assert len(_records(out)) == 4


def test_failed_point_is_recorded_and_the_others_finish(tmp_path, capsys):
    path = _sweep_file(tmp_path, f"""
base = "tiny"
flows = ["{FLOW}", "perf"]
[grid]
"core.rows" = [1, 2, 3]
["{FLOW}"]
fail_rows = 2
""")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-j", "2", "-o", str(out), "--quiet"]) == 1
    records = {(r["flow"], r["config"]["core"]["rows"]): r for r in _records(out)}
    assert len(records) == 6
    failed = records[FLOW, 2]
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: no flow for 2 rows"
    assert "Traceback" in failed["log"] and "sleepy_flow" in failed["log"]
    for rows in (1, 3):
        assert records[FLOW, rows]["status"] == "ok"
        assert records[FLOW, rows]["result"]["pes"] == rows * 2
    # The perf flow is gen.perf.evaluate(config): recorded either way, never a crash.
    for rows in (1, 2, 3):
        assert records["perf", rows]["status"] in ("ok", "failed")
    assert "failed" in capsys.readouterr().out
    # A failed point is done: a rerun skips it, unless asked to retry it.
    assert main(["sweep", str(path), "-o", str(out), "--quiet"]) == 0
    assert len(_records(out)) == 6
    main(["sweep", str(path), "-o", str(out), "--quiet", "--retry-failed"])
    retried = [r for r in _records(out)[6:]]
    assert (FLOW, 2) in {(r["flow"], r["config"]["core"]["rows"]) for r in retried}
    assert all(r["status"] == "failed" for r in retried if r["flow"] == FLOW)
    # The last record of a key counts.
    latest = {r["key"]: r for r in load_results(out)}
    assert len(latest) == 6 and all(latest[r["key"]] == r for r in retried)


def test_a_line_cut_short_by_a_crash_is_dropped_and_rerun(tmp_path):
    path = _sweep_file(tmp_path, f"""
base = "tiny"
flows = ["{FLOW}"]
[grid]
"core.rows" = [1, 2]
""")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--quiet"]) == 0
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text(lines[0] + lines[1][:40])
    assert len(ResultStore(out / "results.jsonl").records) == 1
    assert main(["sweep", str(path), "-o", str(out), "--quiet"]) == 0
    records = _records(out)
    assert len(records) == 2 and {r["config"]["core"]["rows"] for r in records} == {1, 2}


def test_killed_sweep_resumes_and_loses_nothing(tmp_path):
    marks = tmp_path / "marks.txt"
    path = _sweep_file(tmp_path, f"""
base = "tiny"
flows = ["{FLOW}"]
[grid]
"core.rows" = [1, 2, 3, 4, 5, 6, 7, 8]
["{FLOW}"]
seconds = 1.0
marks = "{marks}"
""")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "chrysalis.gen.cli", "sweep", str(path), "-j", "2", "-o", str(out),
               "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    try:
        # Kill the sweep (and its workers) once some points are recorded, not all.
        while time.monotonic() < deadline:
            if results.exists() and len(results.read_text().splitlines()) >= 2:
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("the sweep recorded no point in 120 s")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    first = [json.loads(line) for line in results.read_text().splitlines()]
    assert 2 <= len(first) < 8, "the sweep was not killed mid-way"
    done_before = {r["key"] for r in first}

    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(first)} of 8 points already done" in resumed.stdout
    records = _records(out)
    keys = [r["key"] for r in records]
    assert len(keys) == 8 == len(set(keys)), "a point recorded twice or lost"
    assert records[:len(first)] == first, "the resumed sweep rewrote finished points"
    assert all(r["status"] == "ok" for r in records)
    # Points finished before the kill were not run again; the others ran to the end once
    # after it (a point in flight at the kill ran twice, but was recorded once).
    runs = marks.read_text().splitlines()
    for record in records:
        count = runs.count(record["config_hash"])
        if record["key"] in done_before:
            assert count == 1, record["overrides"]
        else:
            assert count in (1, 2), record["overrides"]


def _interruptible():
    """Run in the sweep's process before it starts: SIGINT at its default. A suite started
    as a background job of a non-interactive shell runs with SIGINT ignored, which every
    child inherits, and a sweep that inherits it rightly ignores Ctrl-C as its shell asked;
    this test is about a sweep that can be interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _gone(pid):
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("whom", ["sweep", "group"])
def test_interrupted_sweep_stops_its_workers_at_once_and_resumes(tmp_path, whom):
    """Ctrl-C (SIGINT to the whole process group) or SIGINT to the sweep alone, while both
    workers run a slow tool: the sweep exits at once, no worker or tool is left running, the
    points finished before are on disk, and the same command run again does the rest."""
    hold, pids = tmp_path / "hold", tmp_path / "pids.txt"
    hold.touch()
    path = _sweep_file(tmp_path, f"""
base = "tiny"
flows = ["{STUBBORN}"]
[grid]
"core.rows" = [1, 2, 3, 4]
["{STUBBORN}"]
slow_rows = [3, 4]
hold = "{hold}"
pids = "{pids}"
""")
    out = tmp_path / "out"
    results = out / "results.jsonl"
    command = [sys.executable, "-m", "chrysalis.gen.cli", "sweep", str(path), "-j", "2",
               "-o", str(out), "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                               preexec_fn=_interruptible,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # Both fast points recorded, both slow ones in their tool.
        while time.monotonic() < deadline:
            if (results.exists() and len(results.read_text().splitlines()) == 2
                    and pids.exists() and len(pids.read_text().splitlines()) == 2):
                break
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        else:
            pytest.fail("the sweep did not reach its slow points in 120 s")
        started = time.monotonic()
        if whom == "group":
            os.killpg(process.pid, signal.SIGINT)
        else:
            os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail("the sweep still runs 5 s after SIGINT")
        seconds = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    processes = [int(pid) for line in pids.read_text().splitlines() for pid in line.split()]
    deadline = time.monotonic() + 5
    while not all(map(_gone, processes)) and time.monotonic() < deadline:
        time.sleep(0.05)    # killed; the system reaps them a moment later
    left = [pid for pid in processes if not _gone(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers or tools still running after the sweep exited: {left}"
    assert process.returncode == 130 and seconds < 3, seconds
    err = process.stderr.read().splitlines()
    assert len(err) == 1 and err[0].startswith("chrysalis: error: interrupted"), err
    first = _records(out)
    assert sorted(r["config"]["core"]["rows"] for r in first) == [1, 2]

    hold.unlink()
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 of 4 points already done" in resumed.stdout
    records = _records(out)
    assert records[:2] == first, "the resumed sweep rewrote finished points"
    assert sorted(r["config"]["core"]["rows"] for r in records) == [1, 2, 3, 4]
    assert all(r["status"] == "ok" for r in records)


def test_dask_executor_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = _sweep_file(tmp_path, f"""
base = "tiny"
flows = ["{FLOW}", "cycles"]
[grid]
"core.rows,core.cols" = [[2, 2], [4, 4]]
""")
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  host="127.0.0.1", protocol="tcp", dashboard_address=None) \
            as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        status = main(["sweep", str(path), "--executor", "dask", "--scheduler",
                       cluster.scheduler_address, "-o", str(out), "--quiet"])
    assert status == 0
    records = _records(out)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    pes = sorted(r["result"]["pes"] for r in records if r["flow"] == FLOW)
    assert pes == [4, 16]
    local = tmp_path / "local"
    assert main(["sweep", str(path), "-o", str(local), "--quiet"]) == 0
    # The same points and figures, whichever executor ran them.
    assert ({r["key"]: r["result"] for r in _records(local)}
            == {r["key"]: r["result"] for r in records})


def test_dask_needs_a_scheduler(tmp_path, capsys):
    path = _sweep_file(tmp_path, 'flows = ["cycles"]')
    assert main(["sweep", str(path), "--executor", "dask"]) == 2
    assert "--executor dask needs --scheduler ADDR" in capsys.readouterr().err


def test_list_shows_points_and_their_state(tmp_path, capsys):
    path = _sweep_file(tmp_path, f"""
base = "tiny"
flows = ["{FLOW}"]
[grid]
"core.rows" = [1, 2]
""")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "-o", str(out), "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and all("pending" in line for line in listed)
    assert not (out / "results.jsonl").read_text() if (out / "results.jsonl").exists() else True
    with pytest.raises(ConfigError):
        load_sweep(tmp_path / "missing.toml")
