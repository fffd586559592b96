"""The DMA engine: AXI4 bursts between memory and the scratchpad, and command fetch.

A transfer is ``batch`` columns of ``n`` 32-bit words; column ``b`` is at byte address
``mem_addr + b * mem_stride`` in memory and is scratchpad column ``b`` of the matrix at line
``sp_base`` with ``sp_lpc`` lines per column (``hw.scratchpad``). A beat carries
``K = data_width / 32`` consecutive words of a column, which sit in ``K`` different banks,
so one beat is one lane access of the scratchpad. Each column is cut into INCR bursts of at
most 256 beats that do not cross a 4 KiB boundary; one burst is in flight at a time (the
transfers are column-sized, and the simple order makes the counters exact). Stores write
whole beats with byte strobes for the words past ``n``. A fetch reads one command
(``gen.spec.isa.COMMAND_BYTES``) into :attr:`command` instead of the scratchpad.

The addresses must be aligned to the beat (``gen.spec.isa.check`` refuses other commands
before they get here). An error response (SLVERR, DECERR) does not stop the burst -- the
protocol is completed -- but ends the transfer after it with ``bus_error``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from chrysalis.gen.spec.isa import COMMAND_BYTES

from .axi import AXI4Signature, Burst

__all__ = ["DmaEngine"]


class DmaEngine(wiring.Component):
    """AXI4 manager for DMA_LOAD, DMA_STORE and command fetch.

    Parameters
    ----------
    addr_width : int
    data_width : int
        AXI data width; ``data_width // 32`` words per beat.
    line_bits : int
        Width of a scratchpad line address.

    Members
    -------
    bus : Out(AXI4Signature(addr_width, data_width))
    start : In(1)
        Start a transfer (when idle) with the parameters below, held while busy.
    store : In(1)
        Scratchpad to memory (otherwise memory to scratchpad).
    fetch : In(1)
        Read one command from ``mem_addr`` into ``command`` (``store`` ignored).
    mem_addr : In(addr_width)
    mem_stride : In(32)
    n, batch : In(16)
    sp_base, sp_lpc : In(line_bits)
    busy : Out(1)
    done : Out(1)
        One cycle at the end of a transfer (``bus_error`` is valid then).
    bus_error : Out(1)
        The last transfer got an error response.
    command : Out(8 * COMMAND_BYTES)
    sp_we, sp_re, sp_e0, sp_line, sp_lanes, sp_wdata, sp_rdata :
        Lane access to the scratchpad (``sp_rdata`` one cycle after ``sp_re``).
    read_beat, write_beat : Out(1)
        A beat was taken on the R (W) channel this cycle (for the counters).
    """

    def __init__(self, *, addr_width, data_width, line_bits):
        self.words = data_width // 32
        self.beat_bytes = data_width // 8
        self.addr_width, self.data_width, self.line_bits = addr_width, data_width, line_bits
        K = self.words
        super().__init__({
            "bus": Out(AXI4Signature(addr_width, data_width)),
            "start": In(1), "store": In(1), "fetch": In(1),
            "mem_addr": In(addr_width), "mem_stride": In(32), "n": In(16), "batch": In(16),
            "sp_base": In(line_bits), "sp_lpc": In(line_bits),
            "busy": Out(1), "done": Out(1), "bus_error": Out(1),
            "command": Out(8 * COMMAND_BYTES),
            "sp_we": Out(1), "sp_re": Out(1), "sp_e0": Out(16), "sp_line": Out(line_bits),
            "sp_lanes": Out(K), "sp_wdata": Out(32).array(K), "sp_rdata": In(32).array(K),
            "read_beat": Out(1), "write_beat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        K, bb = self.words, self.beat_bytes
        log_bb = exact_log2(bb)
        bus = self.bus
        aw = self.addr_width

        store = Signal()
        fetch = Signal()
        col = Signal(16)                  # column
        col_addr = Signal(aw)             # its first byte
        addr = Signal(aw)                 # the next burst's first byte
        line = Signal(self.line_bits)     # the column's first scratchpad line
        beat = Signal(17)                 # beats of the column done (taken on R / sent on W)
        col_beats = Signal(17)
        blen = Signal(9)                  # beats of the current burst
        error = Signal()

        # The flag itself: valid in the cycle of ``done`` and after it, cleared at a start.
        m.d.comb += self.bus_error.eq(error)
        m.d.comb += [
            col_beats.eq((self.n + (K - 1)) >> exact_log2(K)),
            bus.arid.eq(0), bus.awid.eq(0), bus.arsize.eq(log_bb), bus.awsize.eq(log_bb),
            bus.arburst.eq(Burst.INCR), bus.awburst.eq(Burst.INCR),
            bus.arcache.eq(0b0011), bus.awcache.eq(0b0011),
            bus.arlen.eq(blen - 1), bus.awlen.eq(blen - 1),
            bus.araddr.eq(addr), bus.awaddr.eq(addr),
        ]

        def lane_mask(e0):
            return Cat(*[e0 + l < self.n for l in range(K)])

        # Store data path: scratchpad reads run ahead of the W channel through a small FIFO.
        depth = 4
        m.submodules.wfifo = wfifo = SyncFIFOBuffered(width=K * 32 + K * 4 + 1, depth=depth)
        issued = Signal(9)                # reads issued in the current burst
        rd_beat = Signal(17)              # column beat of the next read
        inflight = Signal()               # a read was issued last cycle
        inflight_side = Signal(K * 4 + 1)
        m.d.sync += inflight.eq(0)
        m.d.comb += wfifo.w_en.eq(inflight)
        m.d.comb += wfifo.w_data.eq(Cat(*[self.sp_rdata[l] for l in range(K)], inflight_side))
        # Zero while not valid: the FIFO's storage is uninitialised (no X on the outputs).
        head = Mux(wfifo.r_rdy, wfifo.r_data, 0)
        m.d.comb += [bus.wdata.eq(head[:K * 32]), bus.wstrb.eq(head[K * 32:K * 36]),
                     bus.wlast.eq(head[K * 36])]

        with m.FSM(name="dma"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [store.eq(self.store & ~self.fetch), fetch.eq(self.fetch),
                                 col.eq(0), col_addr.eq(self.mem_addr), addr.eq(self.mem_addr),
                                 line.eq(self.sp_base), beat.eq(0), rd_beat.eq(0),
                                 error.eq(0)]
                    m.next = "PLAN"
            with m.State("PLAN"):
                m.d.comb += self.busy.eq(1)
                # The burst: the rest of the column, at most 256 beats, within 4 KiB.
                left = Signal(17)
                boundary = Signal(13)
                m.d.comb += [left.eq(col_beats - beat),
                             boundary.eq((4096 - addr[:12]) >> log_bb)]
                pick = Signal(17)
                m.d.comb += pick.eq(Mux(left < boundary, left, boundary))
                m.d.sync += [blen.eq(Mux(pick > 256, 256, pick)), issued.eq(0)]
                m.next = "ADDR"
            with m.State("ADDR"):
                m.d.comb += self.busy.eq(1)
                with m.If(store):
                    m.d.comb += bus.awvalid.eq(1)
                    with m.If(bus.awready):
                        m.next = "WRITE"
                with m.Else():
                    m.d.comb += bus.arvalid.eq(1)
                    with m.If(bus.arready):
                        m.next = "READ"
            with m.State("READ"):
                m.d.comb += [self.busy.eq(1), bus.rready.eq(1)]
                with m.If(bus.rvalid):
                    m.d.comb += self.read_beat.eq(1)
                    with m.If(bus.rresp[1]):
                        m.d.sync += error.eq(1)
                    with m.If(fetch):
                        with m.Switch(beat):
                            for i in range(COMMAND_BYTES // bb):
                                with m.Case(i):
                                    m.d.sync += self.command[i * self.data_width:
                                                             (i + 1) * self.data_width].eq(bus.rdata)
                    with m.Else():
                        m.d.comb += [self.sp_we.eq(1), self.sp_e0.eq(beat * K),
                                     self.sp_line.eq(line), self.sp_lanes.eq(lane_mask(beat * K))]
                        for l in range(K):
                            m.d.comb += self.sp_wdata[l].eq(bus.rdata[32 * l:32 * l + 32])
                    m.d.sync += [beat.eq(beat + 1), addr.eq(addr + bb)]
                    with m.If(bus.rlast):
                        m.next = "NEXT"
            with m.State("WRITE"):
                m.d.comb += self.busy.eq(1)
                # Reads of the burst's beats, as long as the FIFO has room for them.
                room = wfifo.level + inflight < depth - 1
                with m.If((issued != blen) & room):
                    e0 = rd_beat * K
                    mask = lane_mask(e0)
                    m.d.comb += [self.sp_re.eq(1), self.sp_e0.eq(e0), self.sp_line.eq(line),
                                 self.sp_lanes.eq(mask)]
                    strobes = Cat(*[Mux(mask[l], 0xF, 0) for l in range(K)])
                    m.d.sync += [inflight.eq(1), issued.eq(issued + 1), rd_beat.eq(rd_beat + 1),
                                 inflight_side.eq(Cat(strobes, issued + 1 == blen))]
                m.d.comb += [bus.wvalid.eq(wfifo.r_rdy), wfifo.r_en.eq(bus.wready)]
                with m.If(bus.wvalid & bus.wready):
                    m.d.comb += self.write_beat.eq(1)
                    m.d.sync += [beat.eq(beat + 1), addr.eq(addr + bb)]
                    with m.If(bus.wlast):
                        m.next = "RESP"
            with m.State("RESP"):
                m.d.comb += [self.busy.eq(1), bus.bready.eq(1)]
                with m.If(bus.bvalid):
                    with m.If(bus.bresp[1]):
                        m.d.sync += error.eq(1)
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                last_col = col + 1 == Mux(fetch, 1, self.batch)
                with m.If(error | ((beat == col_beats) & last_col)):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Elif(beat == col_beats):
                    next_col = Signal(aw)
                    m.d.comb += next_col.eq(col_addr + self.mem_stride)
                    m.d.sync += [col.eq(col + 1), col_addr.eq(next_col), addr.eq(next_col),
                                 line.eq(line + self.sp_lpc), beat.eq(0), rd_beat.eq(0)]
                    m.next = "PLAN"
                with m.Else():
                    m.next = "PLAN"
        return m
