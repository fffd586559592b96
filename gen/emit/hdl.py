"""What the emitted Verilog is: its language standard, timescale, clock, reset and file types.

The facts that the sidecar (:mod:`gen.emit.sidecar`), the FuseSoC core
(:mod:`gen.emit.fusesoc`), the testbench (:mod:`gen.emit.testbench`) and the Verilog itself
(:mod:`gen.emit.verilog`) state, defined once here.

The clock and the reset are those of Amaranth's default ``sync`` domain, which the top level
uses: every flip-flop is clocked on the rising edge of ``clk``, and ``rst`` is active high and
synchronous (Yosys writes ``always @(posedge clk)`` blocks whose next state is the ``init``
value while ``rst`` is 1; no block is sensitive to ``rst``). Memories are not reset.
"""

__all__ = ["LANGUAGE", "STANDARD", "TIMESCALE", "timescale_directive", "CLOCK", "RESET",
           "FILE_TYPES"]

#: The language of the emitted Verilog and the standard it keeps to: Yosys's ``write_verilog``
#: uses nothing beyond IEEE 1364-2005 (attributes, escaped names, ``casez``, ``always @*``).
LANGUAGE = "Verilog"
STANDARD = "IEEE 1364-2005"

#: Time unit and precision of every emitted module: 1 ns keeps a testbench's 10 ns clock
#: exact, and Icarus needs a timescale for a cocotb ``Clock`` (see docs/toolchain.md).
TIMESCALE = ("1ns", "1ps")


def timescale_directive():
    """The `` `timescale`` line of every emitted Verilog file."""
    unit, precision = TIMESCALE
    return f"`timescale {unit} / {precision}"


#: The clock of the top level: Amaranth's ``sync`` domain.
CLOCK = {"port": "clk", "domain": "sync", "edge": "rising"}

#: The reset of the top level: Amaranth's ``sync`` domain's, active high and synchronous.
#: While it is 1 at a rising edge of the clock, every register takes its initial value (the
#: same value it holds at power-up); memories keep their contents.
RESET = {"port": "rst", "domain": "sync", "clock": "clk", "polarity": "active-high",
         "synchronous": True}

#: File type of each kind of emitted file, with FuseSoC's (CAPI2) names, which edalize maps to
#: each tool's options. Headers are ``cSource`` include files. The testbench is SystemVerilog
#: for one call, ``$fatal``: the only way a failed check ends a simulation with a non-zero exit
#: status in every simulator (Icarus accepts it in every language mode).
FILE_TYPES = {
    "verilog": "verilogSource-2005",
    "testbench": "systemVerilogSource",
    "header": "cSource",
    "isa_header": "cSource",
    "regs_rdl": "user",
    "regs_header": "cSource",
    "regs_ipxact": "user",
    "regs_markdown": "user",
    "waivers": "vlt",
    "filelist": "user",
    "relative_filelist": "user",
    "core": "user",
    "sidecar": "user",
}
