"""The core's scratchpad: fp32 words in banks, so that a row or a column of the PE array
gets one word per PE per cycle.

A word address ``A`` lives in bank ``A mod S`` at line ``A div S``, with ``S`` banks (the
smallest power of two at least ``max(R, C)``: ``gen.spec.layout.bank_count``). A matrix is
stored column-major with each column padded to whole lines: element ``(e, b)`` of a matrix
at line ``base`` with ``lpc`` lines per column has the word address
``(base + b * lpc) * S + e``. Any ``L <= S`` consecutive elements of a column therefore sit
in ``L`` different banks and are read or written in one cycle: a *lane access* (lane ``l``
is element ``e0 + l``).
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .issue import SIZE_BITS

__all__ = ["Scratchpad"]


class Scratchpad(wiring.Component):
    """Banked scratchpad with one lane-access read port and one lane-access write port.

    Reads are synchronous: ``rd_data[l]`` is lane ``l``'s word one cycle after the request
    (``+0`` for a lane that was not enabled). The host port (word addressed) shares the
    banks' ports and wins when it is used; the core uses it only while idle.

    Parameters
    ----------
    words : int
        Capacity in 32-bit words (a multiple of the bank count).
    banks : int
        Number of banks (a power of two).
    lanes : int
        Number of lanes of the lane-access ports (at most ``banks``).

    Members
    -------
    rd_en : In(1)
    rd_e0 : In(hw.issue.SIZE_BITS)
        Element index of lane 0 (a column holds at most ``2**SIZE_BITS`` elements).
    rd_line : In(line bits)
        First line of the column accessed.
    rd_lanes : In(lanes)
        Per-lane enable (lanes past a column's end are disabled).
    rd_data : Out(32) x lanes
    wr_e0, wr_line, wr_lanes, wr_data : the same for writes (written at the clock edge).
    host_addr, host_wdata, host_we, host_re, host_rdata : the host's word port.
    """

    def __init__(self, *, words, banks, lanes):
        if not isinstance(banks, int) or isinstance(banks, bool) or banks < 1 \
                or banks & (banks - 1):
            raise ValueError(f"banks must be a power of two, not {banks!r}")
        if not isinstance(words, int) or words < banks or words % banks:
            raise ValueError(f"words must be a positive multiple of {banks}, not {words!r}")
        if not 1 <= lanes <= banks:
            raise ValueError(f"lanes must be between 1 and {banks}, not {lanes!r}")
        self.words, self.banks, self.lanes = words, banks, lanes
        self.depth = words // banks
        self.line_bits = max(1, ceil_log2(self.depth))
        self.log_banks = exact_log2(banks)
        members = {}
        for port in ("rd", "wr"):
            members[f"{port}_en"] = In(1)
            members[f"{port}_e0"] = In(SIZE_BITS)
            members[f"{port}_line"] = In(self.line_bits)
            members[f"{port}_lanes"] = In(lanes)
        members["rd_data"] = Out(32).array(lanes)
        members["wr_data"] = In(32).array(lanes)
        addr_bits = max(1, ceil_log2(words))
        members.update({"host_addr": In(addr_bits), "host_wdata": In(32), "host_we": In(1),
                        "host_re": In(1), "host_rdata": Out(32)})
        super().__init__(members)

    def _route(self, m, e0, line, lanes, bank):
        """For ``bank``: the lane it serves (``e0 + lane`` maps here), its line and enable."""
        mask = self.banks - 1
        lane = Signal(range(self.banks), name=f"lane_of_bank{bank}")
        m.d.comb += lane.eq((bank - e0[:self.log_banks]) & mask if self.log_banks else 0)
        element = e0 + lane
        bank_line = line + (element >> self.log_banks)
        enabled = Signal(name=f"enable_bank{bank}")
        m.d.comb += enabled.eq(0)
        for index in range(self.lanes):
            with m.If(lane == index):
                m.d.comb += enabled.eq(lanes[index])
        return lane, bank_line, enabled

    def elaborate(self, platform):
        m = Module()
        host_bank = self.host_addr[:self.log_banks] if self.log_banks else Const(0, 1)
        host_line = self.host_addr >> self.log_banks
        rd_data = []
        rd_e0 = Signal(SIZE_BITS)
        rd_lanes = Signal(self.lanes)
        m.d.sync += [rd_e0.eq(self.rd_e0), rd_lanes.eq(Mux(self.rd_en, self.rd_lanes, 0))]
        host_rd_bank = Signal.like(host_bank)
        m.d.sync += host_rd_bank.eq(host_bank)
        for bank in range(self.banks):
            mem = Memory(shape=32, depth=self.depth, init=[])
            m.submodules[f"bank{bank}"] = mem
            rd = mem.read_port()
            wr = mem.write_port()
            _, rd_line, rd_on = self._route(m, self.rd_e0, self.rd_line, self.rd_lanes, bank)
            wr_lane, wr_line, wr_on = self._route(m, self.wr_e0, self.wr_line, self.wr_lanes, bank)
            host_here = host_bank == bank
            m.d.comb += rd.addr.eq(Mux(self.host_re, host_line, rd_line))
            wr_word = Signal(32, name=f"wr_word{bank}")
            for index in range(self.lanes):
                with m.If(wr_lane == index):
                    m.d.comb += wr_word.eq(self.wr_data[index])
            with m.If(self.host_we):
                m.d.comb += [wr.addr.eq(host_line), wr.data.eq(self.host_wdata),
                             wr.en.eq(host_here)]
            with m.Else():
                m.d.comb += [wr.addr.eq(wr_line), wr.data.eq(wr_word),
                             wr.en.eq(self.wr_en & wr_on)]
            rd_data.append(rd.data)
        # Read data back to lanes: lane l read bank (e0 + l) mod S, a cycle ago.
        for index in range(self.lanes):
            word = Signal(32, name=f"rd_lane{index}")
            source = (rd_e0 + index)[:self.log_banks] if self.log_banks else Const(0, 1)
            for bank in range(self.banks):
                with m.If(source == bank):
                    m.d.comb += word.eq(rd_data[bank])
            m.d.comb += self.rd_data[index].eq(Mux(rd_lanes[index], word, 0))
        for bank in range(self.banks):
            with m.If(host_rd_bank == bank):
                m.d.comb += self.host_rdata.eq(rd_data[bank])
        return m
