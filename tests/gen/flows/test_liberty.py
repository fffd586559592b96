"""Liberty area: PDK names, the library's SHA-256, identical modules synthesized once.

The design is hand-written in the shape Amaranth emits (one module per instance, escaped
dotted names, Yosys' numbered local names), and the library is the four-cell one of
``test_synth_cli``: each synthesis takes seconds. The real osu018 library runs only in the
``slow`` test at the end, skipped when ``make asic-lib`` has not installed it.
"""

import hashlib
import json

import pytest

from chrysalis.gen.cli import main
from chrysalis.gen.cli.synth import synth_tables
from chrysalis.gen.flows import liberty as liberty_module
from chrysalis.gen.flows.liberty import (
    PDKS, PdkError, drop_zero_initializers, file_sha256, fold_identical_modules, pdk_liberty,
    split_modules)
from chrysalis.gen.flows.synth import breakdown, liberty_facts, synth_generic

from ..cli.test_synth_cli import LIBERTY


def _pe(name, constant, auto):
    """A PE-like module: a registered multiply-free datapath, a 16 x 8 memory, a child."""
    return f"""\
module \\{name} (clk, d, s);
  reg \\$auto$verilog_backend.cc:2355:dump_module${auto} ;
  initial \\$auto$verilog_backend.cc:2355:dump_module${auto} = 1'h0;
  input clk; input [7:0] d; output [7:0] s;
  wire [7:0] m;
  reg [7:0] mem [0:15];
  reg [7:0] acc;
  always @(posedge clk) begin mem[d[3:0]] <= d; acc <= acc + mem[d[7:4]] + 8'd{constant}; end
  \\{name}.multiply  multiply (.clk(clk), .a(acc), .p(m));
  assign s = m;
endmodule
module \\{name}.multiply (clk, a, p);
  reg \\$auto$verilog_backend.cc:2355:dump_module${auto + 1} ;
  input clk; input [7:0] a; output reg [7:0] p;
  always @(posedge clk) p <= a ^ {{a[3:0], a[7:4]}};
endmodule
"""


def _design(third_constant=3):
    """``top`` with three PEs; the third differs from the other two when its constant
    is not 3."""
    return ("module top(clk, d, s0, s1, s2);\n"
            "  input clk; input [7:0] d; output [7:0] s0, s1, s2;\n"
            "  \\top.pe_0_0  pe_0_0 (.clk(clk), .d(d), .s(s0));\n"
            "  \\top.pe_0_1  pe_0_1 (.clk(clk), .d(d), .s(s1));\n"
            "  \\top.pe_1_0  pe_1_0 (.clk(clk), .d(d), .s(s2));\n"
            "endmodule\n"
            + _pe("top.pe_0_0", 3, 17) + _pe("top.pe_0_1", 3, 21)
            + _pe("top.pe_1_0", third_constant, 25))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    # YoWASP tools see a private /tmp: work through relative paths from the test's folder.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cells.lib").write_text(LIBERTY)
    return tmp_path


# --- folding ---------------------------------------------------------------------------------

def test_split_modules_keeps_every_byte():
    text = "// head\n" + _design() + "// tail\n"
    head, modules, tail = split_modules(text)
    assert head == "// head\n" and tail == "// tail\n"
    assert [name for name, _ in modules] == [
        "top", "top.pe_0_0", "top.pe_0_0.multiply", "top.pe_0_1", "top.pe_0_1.multiply",
        "top.pe_1_0", "top.pe_1_0.multiply"]
    assert head + "".join(source for _, source in modules) + tail == text


def test_identical_modules_are_defined_once():
    text, folded = fold_identical_modules(_design())
    # Identical but for their names and Yosys' numbered locals: folded, children first.
    assert folded == {"top.pe_0_1": "top.pe_0_0", "top.pe_1_0": "top.pe_0_0",
                      "top.pe_0_1.multiply": "top.pe_0_0.multiply",
                      "top.pe_1_0.multiply": "top.pe_0_0.multiply"}
    assert [name for name, _ in split_modules(text)[1]] == [
        "top", "top.pe_0_0", "top.pe_0_0.multiply"]
    assert text.count("\\top.pe_0_0  pe_") == 3 and "\\top.pe_0_1 " not in text


def test_a_module_that_differs_is_kept():
    _, folded = fold_identical_modules(_design(third_constant=0))
    # pe_1_0 adds 0, not 3: it stays, though its child is folded into pe_0_0's.
    assert folded == {"top.pe_0_1": "top.pe_0_0", "top.pe_0_1.multiply": "top.pe_0_0.multiply",
                      "top.pe_1_0.multiply": "top.pe_0_0.multiply"}


def test_split_modules_refuses_a_module_without_end():
    with pytest.raises(ValueError, match="module 'top' has no endmodule"):
        split_modules("module top(a);\n  input a;\n")


def test_folding_changes_no_figure(workdir):
    (workdir / "design.v").write_text(_design(third_constant=0))
    each = synth_generic("design.v", "top", "each", liberty="cells.lib", fold=False)
    once = synth_generic("design.v", "top", "once", liberty="cells.lib")
    assert each["folded"] == {} and len(once["folded"]) == 3
    assert (workdir / "once" / "design.folded.v").is_file()
    # Every module has the figures of its own synthesis, and the totals agree.
    assert once["modules"] == each["modules"] and once["total"] == each["total"]
    pe = once["modules"]["top.pe_0_0"]
    assert pe["area"] > 0 and pe["memory_bits"] == 16 * 8
    assert once["modules"]["top.pe_1_0"]["area"] != pe["area"]
    # The modules' areas add up to the total (each module is instantiated once).
    assert sum(m["area"] for m in once["modules"].values()) == pytest.approx(
        once["total"]["area"])
    assert once["total"]["memory_bits"] == 3 * 16 * 8
    rows = breakdown(once["modules"], "top")["paths"]
    assert rows["pe"]["area"] == pytest.approx(
        sum(once["modules"][f"top.pe_{i}"]["area"] for i in ("0_0", "0_1", "1_0")))
    assert set(rows) == {".", "pe", "pe.multiply"}


def test_a_cache_maps_a_shared_module_once(workdir):
    (workdir / "a.v").write_text(_design())
    (workdir / "b.v").write_text(_design(third_constant=0))
    first = synth_generic("a.v", "top", "a", liberty="cells.lib", cache="cache")
    assert first["cached"] == []
    kept = sorted(p.name for p in (workdir / "cache").iterdir())
    # pe_0_0 and its multiply (the top is never kept: it is the design itself).
    assert len(kept) == 2 and all(name.endswith(".liberty.json") for name in kept)
    # b's pe_0_0 (and its multiply, and pe_1_0's) is a's: a black box this time.
    again = synth_generic("b.v", "top", "b", liberty="cells.lib", cache="cache")
    fresh = synth_generic("b.v", "top", "fresh", liberty="cells.lib")
    assert again["cached"] == ["top.pe_0_0", "top.pe_0_0.multiply"]
    assert again["modules"] == fresh["modules"] and again["total"] == fresh["total"]
    assert again["total"]["memory_bits"] == 3 * 16 * 8


def test_a_cached_module_without_its_submodules_is_synthesized(workdir):
    (workdir / "a.v").write_text(_design())
    first = synth_generic("a.v", "top", "a", liberty="cells.lib", cache="cache")
    # Remove the multiply's entry: pe_0_0, kept, would hide it; both are mapped again.
    entries = {p: json.loads(p.read_text()) for p in (workdir / "cache").iterdir()}
    small = min(entries, key=lambda p: entries[p]["area"])
    small.unlink()
    again = synth_generic("a.v", "top", "again", liberty="cells.lib", cache="cache")
    assert again["cached"] == []
    assert again["modules"] == first["modules"] and again["total"] == first["total"]


def test_zero_initializers_of_written_memories_are_dropped():
    text = ("module \\top.ram (clk, a, d, q);\n"
            "  input clk; input [1:0] a; input [7:0] d; output reg [7:0] q;\n"
            "  reg [7:0] mem [3:0];\n"
            "  initial begin\n    mem[0] = 8'd0;\n    mem[1] = 8'd0;\n    mem[2] = 8'd0;\n"
            "    mem[3] = 8'd0;\n  end\n"
            "  always @(posedge clk) begin mem[a] <= d; q <= mem[a]; end\n"
            "endmodule\n"
            "module \\top.rom (clk, a, q);\n"
            "  input clk; input [1:0] a; output reg [7:0] q;\n"
            "  reg [7:0] table_ [1:0];\n"
            "  initial begin\n    table_[0] = 8'd0;\n    table_[1] = 8'd0;\n  end\n"
            "  always @(posedge clk) q <= table_[a[0]];\n"
            "endmodule\n")
    out, dropped = drop_zero_initializers(text)
    # The RAM's initializer goes; the ROM (no write port) keeps its contents.
    assert dropped == ["mem"]
    assert "mem[0] = 8'd0;" not in out and "table_[0] = 8'd0;" in out
    assert out == text.replace("  initial begin\n    mem[0] = 8'd0;\n    mem[1] = 8'd0;\n"
                               "    mem[2] = 8'd0;\n    mem[3] = 8'd0;\n  end\n", "")
    # A memory with a non-zero word keeps its initializer.
    assert drop_zero_initializers(text.replace("mem[2] = 8'd0;", "mem[2] = 8'd5;"))[1] == []


# --- the library's facts and the PDK names ---------------------------------------------------

def test_liberty_facts(workdir):
    facts = liberty_facts("cells.lib")
    expected = hashlib.sha256(LIBERTY.encode()).hexdigest()
    assert facts["liberty_sha256"] == file_sha256("cells.lib") == expected
    assert facts["liberty_path"] == str(workdir / "cells.lib")
    assert facts["liberty"] == "cells.lib" and facts["area_unit"] == "µm²"
    assert facts["memories"].startswith("excluded")


def test_synth_tables_state_the_unit_library_and_memories(workdir):
    (workdir / "design.v").write_text(_design())
    generic = synth_generic("design.v", "top", "lib", liberty="cells.lib")
    result = {"target": "liberty", "top": "top", "total": generic["total"],
              "breakdown": breakdown(generic["modules"], "top"), **liberty_facts("cells.lib")}
    text = synth_tables(result)
    assert f"sha256: {file_sha256('cells.lib')}" in text
    assert f"library: {workdir / 'cells.lib'}" in text
    assert "| area (µm²) |" in text and "memories: excluded" in text
    area = generic["total"]["area"]
    # As the table writes a number: four significant digits below 1000.
    assert f"| design | {area:.4g} | " in text
    assert area < 1000
    assert "| pe.multiply |" in text


def test_pdk_liberty(tmp_path):
    lib = tmp_path / "x.lib"
    pdks = {"x018": (lib, "pkg-x")}
    with pytest.raises(PdkError, match=r"--pdk must be one of x018, not 'y'$"):
        pdk_liberty("y", pdks)
    with pytest.raises(PdkError, match=r"is not installed: run `make asic-lib` "
                                       r"\(installs the Debian package pkg-x\)$"):
        pdk_liberty("x018", pdks)
    lib.write_text(LIBERTY)
    assert pdk_liberty("x018", pdks) == lib
    assert set(PDKS) == {"osu018"}


def test_cli_names_make_asic_lib_when_the_library_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(liberty_module.PDKS, "osu018", (tmp_path / "none.lib", "qflow-x"))
    assert main(["synth", "--preset", "tiny", "--pdk", "osu018"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"chrysalis: error: the osu018 Liberty file "
                            f"'{tmp_path / 'none.lib'}' is not installed: run `make asic-lib` "
                            f"(installs the Debian package qflow-x)\n")


# --- the real library (minutes) --------------------------------------------------------------

OSU018 = PDKS["osu018"][0]


@pytest.mark.slow
@pytest.mark.skipif(not OSU018.is_file(),
                    reason=f"{OSU018} is not installed (make asic-lib installs it)")
def test_tiny_core_on_osu018(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["synth", "--preset", "tiny", "--pdk", "osu018", "-o", "out",
                 "--json", "r.json"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["pdk"] == "osu018" and result["area_unit"] == "µm²"
    assert result["liberty_path"] == str(OSU018)
    assert result["liberty_sha256"] == file_sha256(OSU018)
    groups = result["breakdown"]["groups"]
    assert sum(g["area"] for g in groups.values()) == pytest.approx(result["total"]["area"])
    # The four PEs are one module synthesized once.
    assert result["folded"] >= 3
    # osu018's smallest cell is 16 µm² (INVX1): a 2x2 core is far above a square millimetre.
    assert result["total"]["area"] > 1e6
