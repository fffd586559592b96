"""``chrysalis synth``: ECP5 resources, CMOS transistors and Liberty area, per module.

The default tests synthesize a small hand-written design (a counter and a memory in a
submodule) for the generic targets; synthesizing the 2x2 ``tiny`` core takes minutes
(over 3 minutes for ECP5 on a busy 2-core machine), so those runs are marked slow.
"""

import hashlib
import json
import os

import pytest

from chrysalis.gen.cli import main
from chrysalis.gen.flows.synth import (
    GROUPS, breakdown, module_group, synth_ecp5, synth_generic, synthesize_config)

#: A cell library of four cells and a flip-flop, areas in um^2: enough for ``abc -liberty``
#: (which needs a buffer and an inverter) and ``dfflibmap``.
LIBERTY = """\
library (tiny_cells) {
  delay_model : table_lookup;
  time_unit : "1ns";
  voltage_unit : "1V";
  current_unit : "1mA";
  capacitive_load_unit (1, pf);
  area_unit : "1um2";
  cell (INV) {
    area : 1.0;
    pin (A) { direction : input; capacitance : 0.002; }
    pin (Y) { direction : output; function : "A'"; }
  }
  cell (BUF) {
    area : 1.25;
    pin (A) { direction : input; capacitance : 0.002; }
    pin (Y) { direction : output; function : "A"; }
  }
  cell (NAND2) {
    area : 1.5;
    pin (A) { direction : input; capacitance : 0.002; }
    pin (B) { direction : input; capacitance : 0.002; }
    pin (Y) { direction : output; function : "(A B)'"; }
  }
  cell (NOR2) {
    area : 1.5;
    pin (A) { direction : input; capacitance : 0.002; }
    pin (B) { direction : input; capacitance : 0.002; }
    pin (Y) { direction : output; function : "(A+B)'"; }
  }
  cell (DFF) {
    area : 6.0;
    ff (IQ, IQN) { clocked_on : "CK"; next_state : "D"; }
    pin (CK) { direction : input; clock : true; capacitance : 0.002; }
    pin (D) { direction : input; capacitance : 0.002; }
    pin (Q) { direction : output; function : "IQ"; }
  }
}
"""

#: A 64 x 8 memory and a 4-bit ROM in a submodule, an 8-bit accumulator at the top.
DESIGN = """\
module sub(input clk, input [5:0] a, input [7:0] d, input we, output reg [7:0] q,
           output reg [3:0] r);
  reg [7:0] mem [0:63];
  always @(posedge clk) begin if (we) mem[a] <= d; q <= mem[a]; end
  always @(posedge clk) case (a[2:0])
    0: r <= 4'd3; 1: r <= 4'd7; 2: r <= 4'd1; 3: r <= 4'd9;
    4: r <= 4'd2; 5: r <= 4'd12; 6: r <= 4'd0; 7: r <= 4'd5;
  endcase
endmodule
module top(input clk, input [5:0] a, input [7:0] d, input we, output [7:0] q,
           output [3:0] r, output [7:0] s);
  sub u(.clk(clk), .a(a), .d(d), .we(we), .q(q), .r(r));
  reg [7:0] acc;
  always @(posedge clk) acc <= acc + d;
  assign s = acc;
endmodule
"""


@pytest.fixture
def design(tmp_path, monkeypatch):
    # YoWASP tools see a private /tmp: work through relative paths from the test's directory.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "design.v").write_text(DESIGN)
    (tmp_path / "cells.lib").write_text(LIBERTY)
    return tmp_path


def test_cmos_counts_transistors_per_module(design):
    result = synth_generic("design.v", "top", "cmos")
    top, sub = result["modules"]["top"], result["modules"]["sub"]
    # 8 accumulator bits at the top; the ROM's output (4) in the submodule. The memory is a
    # macro, counted in bits, its registered read port with it.
    assert top["flip_flops"] == 8 and sub["flip_flops"] == 4
    assert (top["memory_bits"], sub["memory_bits"]) == (0, 64 * 8)
    # Yosys prices a flip-flop at 16 transistors and a gate at 2 (NOT) or 4 (NAND2, NOR2):
    # a module's count is even and above its flip-flops'.
    for module in (top, sub):
        assert module["transistors"] > 16 * module["flip_flops"]
        assert module["transistors"] % 2 == 0
    assert result["total"] == {key: top[key] + sub[key] for key in top}


def test_ecp5_netlist_leaves_the_verilog_sidecar_alone(design):
    # chrysalis synth emits <name>.v and its sidecar <name>.json into the folder it
    # synthesizes in: the netlist must not take the sidecar's name.
    (design / "ecp5").mkdir()
    sidecar = design / "ecp5" / "top.json"
    sidecar.write_text('{"sidecar": true}\n')
    result = synth_ecp5("design.v", "top", "ecp5", lut_mapper="abc")
    assert sidecar.read_text() == '{"sidecar": true}\n'
    assert result["netlist"].endswith("top.netlist.json")
    assert "top" in json.loads((design / "ecp5" / "top.netlist.json").read_text())["modules"]


def test_liberty_area_per_module(design):
    result = synth_generic("design.v", "top", "lib", liberty="cells.lib")
    top, sub = result["modules"]["top"], result["modules"]["sub"]
    # Every flip-flop is the library's DFF (6 um^2): enables and resets became gates.
    assert top["sequential_area"] == 8 * 6.0 and sub["sequential_area"] == 4 * 6.0
    assert top["area"] > top["sequential_area"] and sub["area"] > sub["sequential_area"]
    assert result["total"]["area"] == pytest.approx(top["area"] + sub["area"])
    assert result["total"]["memory_bits"] == 512
    stat = json.loads((design / "lib" / "top.liberty.json").read_text())
    cells = stat["modules"]["\\top"]["num_cells_by_type"]
    assert set(cells) <= {"INV", "BUF", "NAND2", "NOR2", "DFF", "sub"}


def test_missing_liberty_file_is_refused(design):
    from chrysalis.gen.flows.synth import SynthError
    with pytest.raises(SynthError, match="Liberty file 'nothing.lib' not found"):
        synth_generic("design.v", "top", "lib", liberty="nothing.lib")


def test_cli_refuses_a_missing_liberty_file(tmp_path, capsys):
    assert main(["synth", "--preset", "tiny", "--liberty", str(tmp_path / "no.lib")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chrysalis: error: --liberty must be an existing Liberty file")
    assert err.count("\n") == 1


def test_cli_target_and_liberty_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--preset", "tiny", "--target", "cmos", "--liberty", "x.lib"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_synthesize_config_checks_its_target(tmp_path):
    from chrysalis.gen.spec.config import get_preset
    with pytest.raises(ValueError, match="target must be one of ecp5, cmos, liberty, not 'asic'"):
        synthesize_config(get_preset("tiny"), tmp_path, target="asic")
    with pytest.raises(ValueError, match="liberty target only"):
        synthesize_config(get_preset("tiny"), tmp_path, target="cmos", liberty="x.lib")


@pytest.mark.parametrize("path, group", [
    ("", "top"), ("dma", "top"), ("regs", "top"), ("core", "core"),
    ("core.scratchpad", "core"), ("core.loss.sfu", "core"), ("core.reducer3", "interconnect"),
    ("core.pe_0_1", "pe"), ("core.pe_3_2.multiply.high0", "mac"),
    ("core.pe_1_1.accumulate1", "mac"), ("core.pe_0_0.reduce", "interconnect"),
    ("core.pe_0_0.reuse", "reuse_cache"), ("core.row_reuse_1", "reuse_cache"),
])
def test_module_groups(path, group):
    assert module_group(path) == group


def test_breakdown_folds_the_pes():
    modules = {"t": {"lut4": 5}, "t.core": {"lut4": 10}, "t.core.pe_0_0": {"lut4": 3},
               "t.core.pe_0_1": {"lut4": 4}, "t.core.pe_0_0.multiply": {"lut4": 7},
               "t.core.pe_0_1.multiply": {"lut4": 7}, "t.core.reducer0": {"lut4": 2},
               "other": {"lut4": 100}}
    result = breakdown(modules, "t")
    assert tuple(result["groups"]) == GROUPS
    assert result["groups"]["reuse_cache"] == {"lut4": 0}
    assert result["groups"]["mac"] == {"lut4": 14} and result["groups"]["pe"] == {"lut4": 7}
    assert result["groups"]["interconnect"] == {"lut4": 2}
    assert result["groups"]["core"] == {"lut4": 10} and result["groups"]["top"] == {"lut4": 5}
    assert result["paths"] == {".": {"lut4": 5}, "core": {"lut4": 10},
                               "core.pe": {"lut4": 7}, "core.pe.multiply": {"lut4": 14},
                               "core.reducer0": {"lut4": 2}}


# --- the 2x2 core (minutes each) -------------------------------------------------------------

@pytest.mark.slow
def test_synth_ecp5_of_the_tiny_core(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["synth", "--preset", "tiny", "-o", "out", "--json", "tiny.json"]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "tiny.json").read_text())
    total = result["total"]
    assert total["lut4"] > 1000 and total["ff"] > 1000
    # Four bf16 multipliers on DSPs (one per PE) and the PE banks in block RAM at least.
    assert total["dsp"] >= 4 and total["bram"] >= 8
    groups = result["breakdown"]["groups"]
    assert groups["mac"]["dsp"] >= 4 and groups["pe"]["bram"] >= 8
    assert groups["interconnect"]["lut4"] > 0 and groups["top"]["lut4"] > 0
    # The unflattened run optimizes less across modules: its sum is near the flat total.
    summed = sum(g["lut4"] for g in groups.values())
    assert 0.8 * total["lut4"] <= summed <= 1.3 * total["lut4"]
    assert result["config"]["core"]["rows"] == 2
    assert "| design |" in out and "| mac |" in out and "core.pe.multiply" in out


@pytest.mark.slow
@pytest.mark.parametrize("flags, figure", [(["--target", "cmos"], "transistors"),
                                           (["--liberty", "cells.lib"], "area")])
def test_synth_generic_of_the_tiny_core(tmp_path, monkeypatch, capsys, flags, figure):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cells.lib").write_text(LIBERTY)
    assert main(["synth", "--preset", "tiny", "-o", "out", "--json", "r.json"] + flags) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    groups = result["breakdown"]["groups"]
    assert result["total"][figure] > 0
    assert sum(g[figure] for g in groups.values()) == pytest.approx(result["total"][figure])
    # 4 PEs x (64 fp32 weight words + 64 bf16 activation words: the operand format) in the
    # banks, as macros.
    assert groups["pe"]["memory_bits"] == 4 * 64 * (32 + 16)
    assert groups["mac"][figure] > 0 and groups["interconnect"][figure] > 0
    # The four identical PEs (and their submodules) are mapped once.
    assert result["folded"] >= 3
    if figure == "area":
        assert result["area_unit"] == "µm²" and result["memories"].startswith("excluded")
        assert result["liberty_path"] == str(tmp_path / "cells.lib")
        assert result["liberty_sha256"] == hashlib.sha256(LIBERTY.encode()).hexdigest()
