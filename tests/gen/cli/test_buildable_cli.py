"""A config that the RTL cannot build is one error line and exit status 2, before anything is
written or run (``gen.spec.config.check_buildable``)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chrysalis.gen.cli import main

REPO = Path(__file__).resolve().parents[3]


def _chrysalis(*args):
    script = shutil.which("chrysalis", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "chrysalis.gen.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)


def test_verilog_of_17_cores_is_one_line_and_status_2(tmp_path):
    out = tmp_path / "never"
    result = _chrysalis("verilog", "--preset", "tiny", "--set", "cluster.cores=17", "-o", out)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chrysalis: error: cluster.cores ")
    assert lines[0].endswith(", not 17")
    assert not out.exists()


# Configs the models accept and the RTL does not, with the field and value the line names.
UNBUILDABLE = [
    (["cluster.cores=64"], "cluster.cores", "64"),
    (["mac.accumulator=bf16"], "mac.accumulator", "'bf16'"),
    (["cluster.cores=2", "cluster.ring=bidirectional"], "cluster.ring", "'bidirectional'"),
    (["cluster.cores=2", "cluster.link_width=128"], "cluster.link_width", "128"),
]


@pytest.mark.parametrize("command", ["verilog", "synth", "pnr", "board", "demo"])
@pytest.mark.parametrize("overrides, field, value", UNBUILDABLE, ids=lambda x: str(x))
def test_every_command_that_builds_refuses_it(command, overrides, field, value, tmp_path,
                                              monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [command, "--preset", "tiny"]
    for text in overrides:
        args += ["--set", text]
    if command == "verilog":
        args += ["-o", "out"]
    if command == "board":
        args += ["--board", "ulx3s_85f"]
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"chrysalis: error: {field} ")
    assert lines[0].endswith(f", not {value}")
    assert list(tmp_path.iterdir()) == []
