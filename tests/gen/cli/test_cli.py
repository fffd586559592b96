"""The ``chrysalis`` command line and Verilog emission.

The real console script runs in a subprocess (as users run it); help texts and the
emission with a stand-in top level run in-process, which is faster.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.cli import COMMANDS, main
from chrysalis.gen.spec.config import PRESETS, Config, with_overrides

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "build" / "tests" / "gen" / "cli"


def _script():
    """The installed console script next to this interpreter, else ``python -m gen.cli``."""
    script = shutil.which("chrysalis", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "chrysalis.gen.cli"]


def chrysalis(*args, command=None):
    return subprocess.run([*(command or _script()), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO)


def _fresh(name):
    path = BUILD / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def _files(directory):
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


# --- emission with the real top level ------------------------------------------------------

#: The files `chrysalis verilog` writes for a config called NAME, in the order it prints them.
def _emitted(name):
    return [f"{name}.v", f"{name}.h", "chrysalis_isa.h", "chrysalis_regs.rdl", "chrysalis_regs.h",
            "chrysalis_regs.xml", "chrysalis_regs.md", f"{name}.f", f"{name}.rel.f",
            f"{name}.vlt", f"{name}_tb.sv", f"{name}.core", f"{name}.json"]


@pytest.fixture(scope="module")
def tiny_outputs():
    """``chrysalis verilog --preset tiny`` run twice, each in a process of its own, into two
    folders (each emission takes seconds: the tests of this module share them). Returns the
    folders and the two runs. The folders are named after this process: with pytest-xdist,
    another worker may make its own pair at the same time."""
    outs = [_fresh(f"same_a-{os.getpid()}"), _fresh(f"same_b-{os.getpid()}")]
    results = [chrysalis("verilog", "--preset", "tiny", "-o", out.relative_to(REPO))
               for out in outs]
    return outs, results


def test_verilog_is_byte_identical(tiny_outputs):
    outs, results = tiny_outputs
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        written = result.stdout.splitlines()
        assert [Path(line).name for line in written] == _emitted("tiny")
    first, second = (_files(out) for out in outs)
    assert sorted(first) == sorted(_emitted("tiny"))  # no temporaries
    # The absolute file list names its own folder (so that `iverilog -f` works from
    # anywhere); every other file is the same bytes in both folders.
    for out, files in zip(outs, (first, second)):
        assert files.pop("tiny.f") == f"{out.resolve() / 'tiny.v'}\n".encode()
    assert first == second
    # Nothing else depends on where or when it ran.
    for name, data in first.items():
        assert str(REPO).encode() not in data, name


def test_sidecar_describes_the_output(tiny_outputs):
    (out, _), (result, _) = tiny_outputs
    config = PRESETS["tiny"]
    assert result.returncode == 0, result.stderr
    text = (out / "tiny.json").read_text()
    assert text.endswith("}\n")
    sidecar = json.loads(text)
    assert json.dumps(sidecar, sort_keys=True, indent=2) + "\n" == text
    assert Config.from_dict(sidecar["config"]) == config
    assert sidecar["config_hash"] == config.config_hash()
    assert set(sidecar["tools"]) == {"chrysalis", "amaranth", "yosys", "python",
                                     "systemrdl-compiler", "peakrdl-cheader", "peakrdl-ipxact",
                                     "peakrdl-markdown"}
    assert "Yosys" in sidecar["tools"]["yosys"]
    ports = {port["name"]: (port["dir"], port["width"]) for port in sidecar["ports"]}
    # The top level is the accelerator: the Verilog's ports are those its metadata declares.
    members = sidecar["metadata"]["interface"]["members"]
    declared = {name: (member["dir"], member["width"]) for name, member in members.items()}
    assert ports == {"clk": ("in", 1), "rst": ("in", 1), **declared}
    assert ports["s_axil_awaddr"] == ("in", 12) and ports["irq"] == ("out", 1)
    assert ports["m_axi_wdata"] == ("out", config.host.axi_data_width)
    assert set(sidecar["metadata"]["interface"]["members"]) == set(ports) - {"clk", "rst"}
    assert (out / "tiny.f").read_text() == f"{out.resolve() / 'tiny.v'}\n"
    assert (out / "tiny.rel.f").read_text() == "tiny.v\n"
    assert (out / "tiny.h").read_text() == config.c_header()
    from chrysalis.gen.spec import isa
    assert (out / "chrysalis_isa.h").read_text() == isa.c_header()
    import hashlib
    # Every file but the sidecar and the absolute file list has its SHA-256 in the sidecar.
    assert "sha256" not in sidecar["files"]["filelist"]
    for kind, entry in sidecar["files"].items():
        if kind in ("filelist", "sidecar"):
            continue
        assert hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    assert "module tiny(" in (out / "tiny.v").read_text()


# --- emission with a stand-in top level ------------------------------------------------------

class StandIn(wiring.Component):
    """A registered adder with a nested interface: its ports flatten to ``bus__data``."""

    def __init__(self, width):
        super().__init__({
            "x": In(width),
            "bus": Out(wiring.Signature({"data": Out(width + 1), "valid": Out(1)})),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.bus.data.eq(self.x + 1), self.bus.valid.eq(1)]
        return m


def test_emit_with_stand_in(monkeypatch, capsys):
    from chrysalis.hw import top
    monkeypatch.setattr(top, "build_top", lambda config: StandIn(config.core.rows))
    out = _fresh("stand_in")
    assert main(["verilog", "--preset", "tiny", "--set", "core.rows=5", "--set", "name=probe",
                 "-o", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(out / name) for name in _emitted("probe")]
    sidecar = json.loads((out / "probe.json").read_text())
    assert sidecar["config"]["core"]["rows"] == 5
    assert sidecar["ports"] == [
        {"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1},
        {"name": "x", "dir": "in", "width": 5}, {"name": "bus__data", "dir": "out", "width": 6},
        {"name": "bus__valid", "dir": "out", "width": 1}]
    assert "module probe(" in (out / "probe.v").read_text()


def test_keyword_name_is_refused():
    result = chrysalis("verilog", "--preset", "tiny", "--set", "name=default", "-o",
                  str(_fresh("keyword")))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("name must not be a Verilog keyword, not 'default'")


# Each case: command-line arguments ("{file}" stands for a TOML file holding `toml`), the
# TOML text or None, and words the one-line error must contain (the field and the value).
BAD = {
    "bad_value": (["--preset", "tiny", "--set", "core.rows=0"], None, ["core.rows", "0"]),
    "bad_format": (["--preset", "tiny", "--set", "mac.operand=fp7"], None,
                   ["mac.operand", "'fp7'"]),
    "unknown_preset": (["--preset", "huge"], None, ["preset", "'huge'"]),
    "unknown_override": (["--preset", "tiny", "--set", "core.rowz=2"], None, ["core.rowz"]),
    "unknown_key": (["--config", "{file}"], "[core]\nrowz = 2\n", ["core.rowz"]),
    "unknown_table": (["--config", "{file}"], "[corez]\nrows = 2\n", ["corez"]),
    "bad_type": (["--config", "{file}"], '[core]\nrows = "four"\n', ["core.rows", "'four'"]),
    "bad_toml": (["--config", "{file}"], "[core\nrows = \n", ["toml"]),
    "bad_choice": (["--config", "{file}"], '[core]\nreduction = "ring"\n',
                   ["core.reduction", "'ring'"]),
    "missing_file": (["--config", "build/tests/gen/cli/no-such-file.toml"], None,
                     ["no-such-file.toml"]),
    "keyword_name": (["--config", "{file}"], 'name = "module"\n', ["name", "'module'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_line_and_status_2(case):
    args, toml, words = BAD[case]
    if toml is not None:
        path = BUILD / "configs" / f"{case}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(toml)
        args = [str(path.relative_to(REPO)) if arg == "{file}" else arg for arg in args]
    never = BUILD / f"never-{case}"
    result = chrysalis("verilog", *args, "-o", never)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chrysalis: error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert not never.exists()


def test_bad_config_in_process(capsys):
    assert main(["config", "show", "--preset", "tiny", "--set", "pe.reuse_scope=core"]) == 2
    err = capsys.readouterr().err
    assert err == "chrysalis: error: pe.reuse_scope must be one of 'pe', 'row', not 'core'\n"


# --- help, version, config subcommand ---------------------------------------------------------

HELP = [[], ["verilog"], ["config"], ["config", "show"], ["config", "presets"]]


@pytest.mark.parametrize("words", HELP, ids=lambda words: " ".join(words) or "top")
def test_help(words, capsys):
    with pytest.raises(SystemExit) as info:
        main([*words, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: chrysalis {' '.join(words)}".rstrip())


def test_every_command_has_examples():
    for command in COMMANDS.values():
        assert command.description and "chrysalis " + command.name in command.epilog


def test_version_through_python_m():
    result = chrysalis("--version", command=[sys.executable, "-m", "chrysalis.gen.cli"])
    assert result.returncode == 0
    assert result.stdout.startswith("chrysalis ")


def test_config_show_round_trips(capsys):
    assert main(["config", "show", "--preset", "tiny", "--set", "core.rows=3"]) == 0
    shown = Config.from_toml(capsys.readouterr().out)
    assert shown == with_overrides(PRESETS["tiny"], {"core.rows": 3})
    assert main(["config", "show"]) == 0
    assert Config.from_toml(capsys.readouterr().out) == Config()
    assert main(["config", "show", "--preset", "tiny", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == PRESETS["tiny"].to_dict()
    assert main(["config", "show", "--preset", "tiny", "--format", "header"]) == 0
    assert capsys.readouterr().out == PRESETS["tiny"].c_header()


def test_config_show_from_file(capsys):
    path = BUILD / "configs" / "show.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    with_overrides(PRESETS["tiny"], {"name": "mine"}).save(path)
    assert main(["config", "show", "--config", str(path), "--set", "mac.latency=3"]) == 0
    shown = Config.from_toml(capsys.readouterr().out)
    assert (shown.name, shown.mac.latency, shown.core.rows) == ("mine", 3, 2)


def test_config_presets(capsys):
    assert main(["config", "presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)
