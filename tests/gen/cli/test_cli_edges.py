"""The edges of the command line: outputs that cannot be written are refused before any
work, one output flag on every command (old spellings kept, hidden), a reader of stdout that
goes away early, operating-system errors as one line."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chrysalis.gen.cli import build_parser, main

REPO = Path(__file__).resolve().parents[3]

#: The commands that write files into a folder, and the options each needs besides it.
WRITERS = {"verilog": [], "synth": [], "pnr": [], "sweep": ["s.toml"], "report": ["r"],
           "board": ["--board", "ulx3s_85f"], "demo": [], "train": []}


def _script():
    script = shutil.which("chrysalis", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "chrysalis.gen.cli"]


def _one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("chrysalis: error: ")
    return captured.out, lines[0]


def _a_file(tmp_path):
    """A plain file, where an output folder would have to be made."""
    path = tmp_path / "plain"
    path.write_text("not a folder\n")
    return path


# --- outputs refused before any work -------------------------------------------------------

@pytest.mark.parametrize("command", ["perf", "search"])
def test_json_into_a_missing_folder_is_written(command, tmp_path, capsys):
    args = ["--network", "digits-mlp", "--batch", "8"]
    args += ["--preset", "tiny"] if command == "perf" else ["--area-mm2", "20"]
    out = tmp_path / "missing" / "deeper" / "figures.json"
    assert main([command, *args, "--json", str(out)]) == 0
    assert out.read_text().startswith("{")


@pytest.mark.parametrize("command", ["perf", "search"])
def test_json_that_cannot_be_written_is_refused_before_any_output(command, tmp_path,
                                                                   capsys):
    args = ["--network", "digits-mlp", "--batch", "8"]
    args += ["--preset", "tiny"] if command == "perf" else ["--area-mm2", "20"]
    target = _a_file(tmp_path) / "figures.json"
    assert main([command, *args, "--json", str(target)]) == 2
    out, line = _one_error_line(capsys)
    assert out == ""
    assert line.endswith(f"--json {str(target)!r} cannot be written: "
                         f"{str(target.parent)!r} is a file, not a folder")


def test_the_json_check_makes_nothing(tmp_path):
    # A later check may still refuse the run: the folder is made when the file is written.
    from chrysalis.gen.cli.app import check_writable
    target = tmp_path / "missing" / "deeper" / "figures.json"
    assert check_writable(target, "--json") == target
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["perf", "search"])
def test_json_refused_by_a_later_check_leaves_no_folder(command, tmp_path, capsys):
    args = (["--network", "digits-mlp", "--cores", "2", "--mode", "data", "--batch", "3"]
            if command == "perf" else ["--network", "digits-mlp", "--area-mm2", "0.001"])
    assert main([command, *args, "--json", str(tmp_path / "out" / "r.json")]) == 2
    out, _ = _one_error_line(capsys)
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_verilog_into_a_path_under_a_file_is_one_line_and_status_2(tmp_path, capsys):
    target = _a_file(tmp_path) / "out"
    assert main(["verilog", "--preset", "tiny", "-o", str(target)]) == 2
    out, line = _one_error_line(capsys)
    assert out == ""
    assert line == (f"chrysalis: error: --output must be a folder that can be made "
                    f"({str(target.parent)!r} is a file), not {str(target)!r}")


def test_verilog_into_a_file_is_refused(tmp_path, capsys):
    target = _a_file(tmp_path)
    assert main(["verilog", "--preset", "tiny", "-o", str(target)]) == 2
    _, line = _one_error_line(capsys)
    assert line == f"chrysalis: error: --output must name a folder, not the file {str(target)!r}"
    assert target.read_text() == "not a folder\n"


@pytest.mark.parametrize("command, flow", [("synth", "synthesize_config"),
                                           ("pnr", "place_config")])
def test_tools_do_not_run_for_an_output_they_cannot_write(command, flow, tmp_path, capsys,
                                                          monkeypatch):
    import importlib
    module = importlib.import_module(f"chrysalis.gen.flows.{command}")
    monkeypatch.setattr(module, flow, lambda *a, **k: pytest.fail(f"{command} ran"))
    target = _a_file(tmp_path) / "work"
    assert main([command, "--preset", "tiny", "-o", str(target)]) == 2
    assert "--output must be a folder that can be made" in _one_error_line(capsys)[1]
    assert main([command, "--preset", "tiny", "-o", str(tmp_path / "ok"), "--json",
                 str(target / "r.json")]) == 2
    assert "--json" in _one_error_line(capsys)[1]


def test_os_error_during_the_work_is_one_line_without_errno(monkeypatch, capsys, tmp_path):
    from chrysalis.gen.emit import verilog

    def full_disk(config, out_dir):
        raise OSError(28, "No space left on device", str(Path(out_dir) / "tiny.v"))
    monkeypatch.setattr(verilog, "emit", full_disk)
    assert main(["verilog", "--preset", "tiny", "-o", str(tmp_path / "out")]) == 1
    _, line = _one_error_line(capsys)
    assert line == f"chrysalis: error: {tmp_path / 'out' / 'tiny.v'}: No space left on device"


def test_mode_on_one_core_names_the_missing_cluster(capsys):
    # --steps is wrong with the golden backend too, but the cluster is what is missing.
    assert main(["train", "--mode", "data", "--steps", "2", "--quiet"]) == 2
    _, line = _one_error_line(capsys)
    assert line == ("chrysalis: error: --mode data trains on a cluster: cluster.cores must "
                    "be at least 2 (--set cluster.cores=2), not 1")


# --- one output flag -------------------------------------------------------------------------

def _help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_every_command_that_writes_files_takes_o_output(command, capsys):
    assert "-o DIR, --output DIR" in _help(command, capsys)


@pytest.mark.parametrize("command, old", [("board", "--out"), ("demo", "--out"),
                                          ("train", "--build-dir")])
def test_old_spellings_still_work_and_are_hidden(command, old, capsys):
    assert not re.search(rf"{old}\b", _help(command, capsys))
    base = [command, *WRITERS[command]]
    dest = "build_dir" if command == "train" else "output"
    for flag in (old, "-o", "--output"):
        args = build_parser().parse_args([*base, flag, "build/x"])
        assert str(getattr(args, dest)) == "build/x", flag
    # Without either, the command's default.
    assert getattr(build_parser().parse_args(base), dest) == \
        ("build/train" if command == "train" else None)


def test_board_out_reaches_the_build(monkeypatch, tmp_path, capsys):
    from chrysalis.gen.flows import board as board_flow

    class Stop(Exception):
        pass

    seen = []

    def fake_build(config, out, **kwargs):
        seen.append(out)
        raise Stop
    monkeypatch.setattr(board_flow, "build_board", fake_build)
    for flag in ("--out", "-o"):
        with pytest.raises(Stop):
            main(["board", "--board", "ulx3s_85f", "--preset", "tiny", flag,
                  str(tmp_path / flag.strip("-"))])
    assert seen == [str(tmp_path / "out"), str(tmp_path / "o")]
    # A folder that cannot be made is refused before the build.
    assert main(["board", "--board", "ulx3s_85f", "--preset", "tiny", "-o",
                 str(_a_file(tmp_path) / "b")]) == 2
    assert len(seen) == 2


# --- stdout closed early -----------------------------------------------------------------------

@pytest.mark.parametrize("args", [["config", "show", "--preset", "default"],
                                  ["config", "show", "--format", "json"],
                                  ["config", "presets"]],
                         ids=" ".join)
def test_a_reader_gone_early_ends_quietly(args):
    """`chrysalis config show | head -0`: the reader closes the pipe before anything is
    written; the command ends without a word on stderr, as a tool killed by SIGPIPE."""
    process = subprocess.Popen([*_script(), *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()      # before the interpreter has even started
    err = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert err == ""
