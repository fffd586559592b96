"""The gather unit: ``GATHER``, a table-driven copy and fp32 sum of scratchpad words
(im2col, col2im, flatten), on the scratchpad's lane ports.

The command's meaning is ``sim.golden.gather.gather``: destination element ``(r, b)`` of
matrix ``sp2`` takes ``T = m`` taps, tap ``t`` the window word that table entry
``(r * T + t, b)`` of matrix ``sp3`` names (``+0`` for an entry at or past the window's
``sp_lpc * S`` words), copied as it is with one tap and summed in tap order with more;
with ``flag`` the result is kept only where the element's old value is positive.

A copy (one tap) goes in blocks of ``W`` (``lanes``) elements of a column, from the
column's start: one lane read of the block's ``W`` table entries (with ``flag``, another of
their old values, kept as one bit each), then one window read per element, each word
written the cycle it arrives. The next block's entries are read in the cycle before the
block's last window read: they arrive, and are registered, as that read leaves the entry
registers. So a block of ``c`` elements takes ``c + 1`` cycles (``c + 2`` with ``flag``).

A sum (more taps) works on groups of ``P = L + 1`` (:func:`group_size`) elements of a
column, each with its running sum in a register, and on chunks of ``W`` taps. A group reads
(with ``flag``) its elements' old values, ``W`` per lane read; then the first chunk's
entries, one lane read per element (up to ``W`` consecutive entries: the chunk's taps of that
element), registered as window lines and banks; then, after a cycle for the last to
arrive, ``K`` rounds per chunk of ``K`` taps: round ``j`` reads the window word of tap
``j`` of every element, one per cycle, ``P`` cycles (steps past the group's elements read
nothing). So an element's taps come ``P`` cycles apart, and its running sum is back from
the fp32 adder (its operands registered, then ``L - 1`` stages) and registered in time.
In the last round of a chunk that has a next one, each element's window read is followed by the
read of its next chunk's entries, which arrive as the following element's window read
leaves the registers. Tap 0 is stored as it is and each later tap added; an element's
last sum is written to the destination in order, masked by the bit kept for it.

Addresses are stepped, never multiplied out: the entry index ``(r0 + p) * T + t0`` adds
``T`` per element and ``W`` per chunk, the copy's next block adds ``W`` to its row, the
columns' lines add their ``lpc``, and a window line is its base plus the entry shifted
right by ``log2(S)``. ``sim.golden.core_counts`` predicts the cycles exactly.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from chrysalis.gen.spec.formats import FP32

from .fadd import FloatAdder
from .issue import SIZE_BITS

__all__ = ["Gather", "group_size"]


def group_size(latency):
    """Elements per group of a sum (running sums), ``L + 1``: an element's taps come a
    round of ``L + 1`` cycles apart, and its running sum is ready ``L + 1`` cycles after
    the previous tap's word (the fp32 adder's operand registers, its ``L - 1`` stages, the
    running sum's register)."""
    return latency + 1


def _positive(word):
    """An fp32 word is a value above zero (sign 0, a non-zero exponent field)."""
    return ~word[31] & (word[23:31] != 0)


class Gather(wiring.Component):
    """The gather unit (see the module docstring).

    Parameters
    ----------
    line_bits : int
        Width of a scratchpad line number.
    banks : int
        Scratchpad banks ``S`` (a power of two).
    mac_latency : int
        The core's MAC latency ``L``; a sum's word is added ``L`` cycles after it
        arrives (the fp32 adder's operand registers and ``L - 1`` stages).
    lanes : int
        Lanes ``W`` of the read port the unit uses (at most ``banks``): a copy (one tap)
        reads the table entries and the old values of ``W`` elements at once.

    Attributes
    ----------
    group : int
        :func:`group_size` of ``mac_latency``.

    Members
    -------
    start : In(1)
        A command is taken in this cycle: the loops start over (the parameters below are
        valid from the next cycle, held while the command runs).
    run : In(1)
        The command is a ``GATHER`` and runs.
    taps, n, batch : In(hw.issue.SIZE_BITS)
        ``m`` (taps per element), rows and columns of the destination (each at least 1).
    mask : In(1)
        ``flag``: keep a result only where the destination's old element is positive.
    win_base, win_lpc : In(line_bits)
        The window: ``win_lpc`` lines from ``win_base`` (0: ``2**line_bits`` lines, a
        window of the whole scratchpad whose line count does not fit the field).
    dst_base, dst_lpc, tab_base, tab_lpc : In(line_bits)
        The destination matrix and the table matrix.
    finish : Out(1)
        The last read is issued in this cycle; every write lands within ``L + 3`` cycles.
    rd_en : Out(1); rd_e0 : Out(hw.issue.SIZE_BITS); rd_line : Out(line_bits)
    rd_lanes : Out(lanes)
        A read of the scratchpad's lane port (lane ``l`` is element ``e0 + l`` of the
        column at ``rd_line``; a lane that is off reads ``+0``).
    rd_data : In(32) x lanes
        The lanes' words, a cycle after the read.
    wr_en : Out(1); wr_e0 : Out(hw.issue.SIZE_BITS); wr_line : Out(line_bits); wr_data : Out(32)
        A one-word write (lane 0) of the destination.
    """

    def __init__(self, *, line_bits, banks, mac_latency, lanes=1):
        for name, value in (("line_bits", line_bits), ("banks", banks),
                            ("mac_latency", mac_latency), ("lanes", lanes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if banks & (banks - 1):
            raise ValueError(f"banks must be a power of two, not {banks!r}")
        if lanes > banks:
            raise ValueError(f"lanes must be at most banks = {banks}, not {lanes!r}")
        if mac_latency < 2:
            raise ValueError(f"mac_latency must be at least 2 (the adder's latency is "
                             f"mac_latency - 1), not {mac_latency!r}")
        self.line_bits, self.banks, self.mac_latency = line_bits, banks, mac_latency
        self.lanes = lanes
        self.log_banks = exact_log2(banks)
        self.group = group_size(mac_latency)
        super().__init__({
            "start": In(1), "run": In(1),
            "taps": In(SIZE_BITS), "n": In(SIZE_BITS), "batch": In(SIZE_BITS), "mask": In(1),
            "win_base": In(line_bits), "win_lpc": In(line_bits),
            "dst_base": In(line_bits), "dst_lpc": In(line_bits),
            "tab_base": In(line_bits), "tab_lpc": In(line_bits),
            "finish": Out(1),
            "rd_en": Out(1), "rd_e0": Out(SIZE_BITS), "rd_line": Out(line_bits),
            "rd_lanes": Out(lanes), "rd_data": In(32).array(lanes),
            "wr_en": Out(1), "wr_e0": Out(SIZE_BITS), "wr_line": Out(line_bits),
            "wr_data": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        P, W = self.group, self.lanes
        # What travels with a read to its data (a cycle later) and, for a sum's taps,
        # through the adder.
        tag_layout = data.StructLayout({
            "sum_entry": 1, "sum_mask": 1, "sum_window": 1, "p": range(P), "k": range(P),
            "par": 1, "first": 1, "last": 1,
            "copy_table": 1, "copy_mask": 1, "copy_window": 1})
        issued = Signal(tag_layout, name="issued")
        d1 = Signal(tag_layout, name="tag_d1")
        m.d.sync += d1.eq(issued)
        self._entries = [[(Signal(self.line_bits, name=f"entry_line{p}_{j}"),
                           Signal(max(1, self.log_banks), name=f"entry_bank{p}_{j}"),
                           Signal(name=f"entry_inside{p}_{j}")) for j in range(W)]
                         for p in range(P)]
        self._sum(m, issued)
        self._copy(m, issued)
        self._write_pointer(m)
        self._sum_data(m, d1)
        self._copy_data(m, d1)
        return m

    def _entry(self, word):
        """A table entry as a window line, bank and whether it is inside the window."""
        above = word[self.log_banks:]                   # the entry's line in the window
        # The checks allow no empty window: an lpc of 0 is a window of 2**line_bits lines.
        lines = Cat(self.win_lpc, self.win_lpc == 0)
        return (self.win_base + above, word[:self.log_banks] if self.log_banks else 0,
                above < lines)

    # --- more taps: the sum engine --------------------------------------------------------

    def _sum(self, m, issued):
        """The sum engine's loops: columns, groups of ``P`` elements, chunks of ``W`` taps,
        rounds (a tap of every element); one read per cycle. Drives ``issued`` and
        :attr:`finish` for commands of more than one tap."""
        P, W, lb = self.group, self.lanes, self.line_bits
        run = self.run & (self.taps != 1)
        MASKS, ENTRIES, BUBBLE, ROUND = 0, 1, 2, 3
        state = Signal(range(4), name="sum_state")
        b = Signal(SIZE_BITS, name="sum_column")
        t_off = Signal(lb, name="sum_table_offset")    # b * tab_lpc
        d_off = Signal(lb, name="sum_mask_offset")     # b * dst_lpc
        r0 = Signal(SIZE_BITS, name="sum_r0")          # the group's first element
        gbase = Signal(SIZE_BITS, name="sum_group_entry")     # r0 * T
        cbase = Signal(SIZE_BITS, name="sum_chunk_entry")     # r0 * T + t0
        next_gbase = Signal(SIZE_BITS, name="sum_next_group_entry")
        idx = Signal(SIZE_BITS, name="sum_entry_index")       # (r0 + p) * T + t0
        t0 = Signal(SIZE_BITS, name="sum_chunk_tap")
        j = Signal(range(W), name="sum_round")
        p = Signal(range(P), name="sum_slot")
        k = Signal(range(P), name="sum_mask_read")
        mrow = Signal(SIZE_BITS, name="sum_mask_row")         # r0 + k * W
        half = Signal(name="sum_entry_half")         # the interleaved round's entry cycle
        par = Signal(name="sum_parity")
        # Element p of the group is row r0 + p: it exists while row < n (a group is cut
        # short only at a column's end), so no element count is computed.
        row = Signal(SIZE_BITS, name="sum_row")
        exists = Signal(name="sum_exists")
        last_group = Signal(name="sum_last_group")
        # The chunk's taps are t0 to t0 + W - 1 (those below T): its lanes, whether a next
        # chunk follows (t0 + W < T) and its lanes, and whether round j is the chunk's
        # last, each one comparison with T (t0w = t0 + W is stepped beside t0).
        t0w = Signal(SIZE_BITS + 1, name="sum_next_chunk_tap")
        more = Signal(name="sum_more_chunks")
        last_round = Signal(name="sum_last_round")
        # t0 + j + 1 is stepped beside t0 and j too (`tj`): its adder before the compare
        # with T, then the round's steps, was the unit's critical path.
        tj = Signal(SIZE_BITS + 1, name="sum_round_tap_end")
        m.d.comb += [exists.eq(row < self.n), last_group.eq(r0 + P >= self.n),
                     more.eq(t0w < self.taps),
                     last_round.eq((j + 1 == W) | (tj == self.taps))]
        next_lanes = Signal(W, name="sum_next_chunk_lanes")
        m.d.comb += next_lanes.eq(Cat(*[t0w + lane < self.taps for lane in range(W)]))
        lanes = Signal(W, name="sum_chunk_lanes")
        m.d.comb += lanes.eq(Cat(*[t0 + lane < self.taps for lane in range(W)]))
        with m.If(self.start):
            m.d.sync += [state.eq(MASKS), b.eq(0), t_off.eq(0), d_off.eq(0), r0.eq(0),
                         gbase.eq(0), cbase.eq(0), idx.eq(0), t0.eq(0), t0w.eq(W), j.eq(0),
                         tj.eq(1),
                         p.eq(0), row.eq(0),
                         k.eq(0), mrow.eq(0), half.eq(0), par.eq(0)]
        line = self.tab_base + t_off

        def entry_read(chunk_lanes):
            m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(line), self.rd_e0.eq(idx),
                         self.rd_lanes.eq(chunk_lanes), issued.sum_entry.eq(1),
                         issued.p.eq(p)]
            m.d.sync += idx.eq(idx + self.taps)

        def window_read():
            entry_line, bank, inside = self._pick_entry(m, p, j)
            with m.If(exists):
                m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(entry_line),
                             self.rd_e0.eq(bank), self.rd_lanes.eq(inside),
                             issued.sum_window.eq(1), issued.p.eq(p), issued.par.eq(par),
                             issued.first.eq((t0 == 0) & (j == 0)),
                             issued.last.eq(tj == self.taps)]

        with m.If(run):
            with m.Switch(state):
                with m.Case(MASKS):
                    with m.If(self.mask):
                        self._mask_read(m, issued, k, mrow, d_off, par)
                        with m.If((mrow + W >= self.n) | (k + 1 == -(-P // W))):
                            m.d.sync += [k.eq(0), state.eq(ENTRIES)]
                        with m.Else():
                            m.d.sync += [k.eq(k + 1), mrow.eq(mrow + W)]
                    with m.Else():
                        self._entries_start(m, entry_read, lanes, p, row, r0, idx,
                                            next_gbase, state, ENTRIES, BUBBLE)
                with m.Case(ENTRIES):
                    self._entries_start(m, entry_read, lanes, p, row, r0, idx, next_gbase,
                                        state, ENTRIES, BUBBLE)
                with m.Case(BUBBLE):
                    m.d.sync += [state.eq(ROUND), p.eq(0), row.eq(r0), j.eq(0), half.eq(0),
                                 tj.eq(t0 + 1)]
                with m.Case(ROUND):
                    interleaved = last_round & more
                    with m.If(interleaved & half):
                        with m.If(exists):
                            entry_read(next_lanes)
                        m.d.sync += half.eq(0)
                    with m.Else():
                        window_read()
                        with m.If(interleaved):
                            m.d.sync += half.eq(1)
                    step_on = ~interleaved | half
                    with m.If(step_on & (p + 1 != P)):
                        m.d.sync += [p.eq(p + 1), row.eq(row + 1)]
                    with m.Elif(step_on & ~last_round):
                        m.d.sync += [p.eq(0), row.eq(r0), j.eq(j + 1), tj.eq(tj + 1)]
                    with m.Elif(step_on & more):
                        # The next chunk: its entries were read in this round.
                        m.d.sync += [p.eq(0), row.eq(r0), j.eq(0), t0.eq(t0w),
                                     t0w.eq(t0w + W), cbase.eq(cbase + W), tj.eq(t0w + 1)]
                    with m.Elif(step_on):
                        self._group_end(m, state, MASKS, b, t_off, d_off, r0, row, mrow,
                                        gbase, cbase, next_gbase, idx, t0, p, j, par,
                                        last_group)
                        m.d.sync += [t0w.eq(W), tj.eq(1)]
                    with m.If(interleaved & ~half & (p == 0)):
                        # The interleaved round's entry reads start at the next chunk.
                        m.d.sync += idx.eq(cbase + W)

    def _entries_start(self, m, entry_read, lanes, p, row, r0, idx, next_gbase, state,
                       ENTRIES, BUBBLE):
        """A group's first chunk: one entry read per element; the next group's entries
        start where the last element's end (saved here)."""
        entry_read(lanes)
        with m.If((row + 1 == self.n) | (p + 1 == self.group)):
            m.d.sync += [p.eq(0), row.eq(r0), state.eq(BUBBLE),
                         next_gbase.eq(idx + self.taps)]
        with m.Else():
            m.d.sync += [p.eq(p + 1), row.eq(row + 1), state.eq(ENTRIES)]

    def _mask_read(self, m, issued, k, mrow, d_off, par):
        """With ``flag``: mask read ``k`` of the group, the old values of up to ``W`` of
        its elements from ``mrow = r0 + k * W`` (those of the group, ``k * W + lane < P``,
        and of the column, ``mrow + lane < n``)."""
        W, P = self.lanes, self.group
        in_group = [Signal(name=f"sum_mask_in_group{lane}") for lane in range(W)]
        for lane in range(W):
            with m.Switch(k):
                for kk in range(-(-P // W)):
                    with m.Case(kk):
                        m.d.comb += in_group[lane].eq(kk * W + lane < P)
        on = Cat(*[(mrow + lane < self.n) & in_group[lane] for lane in range(W)])
        m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(self.dst_base + d_off),
                     self.rd_e0.eq(mrow), self.rd_lanes.eq(on), issued.sum_mask.eq(1),
                     issued.k.eq(k), issued.par.eq(par)]

    def _group_end(self, m, state, MASKS, b, t_off, d_off, r0, row, mrow, gbase, cbase,
                   next_gbase, idx, t0, p, j, par, last_group):
        """After a group's last round: the next group of the column, the next column, or
        the end of the command."""
        P = self.group
        m.d.sync += [state.eq(MASKS), p.eq(0), j.eq(0), t0.eq(0), par.eq(~par)]
        with m.If(last_group):                          # the column's last group
            m.d.sync += [r0.eq(0), row.eq(0), mrow.eq(0), gbase.eq(0), cbase.eq(0),
                         idx.eq(0)]
            with m.If(b + 1 == self.batch):
                m.d.comb += self.finish.eq(1)
            with m.Else():
                m.d.sync += [b.eq(b + 1), t_off.eq(t_off + self.tab_lpc),
                             d_off.eq(d_off + self.dst_lpc)]
        with m.Else():
            m.d.sync += [r0.eq(r0 + P), row.eq(r0 + P), mrow.eq(r0 + P),
                         gbase.eq(next_gbase), cbase.eq(next_gbase), idx.eq(next_gbase)]

    def _pick_entry(self, m, p, j):
        """Entry ``j`` of element ``p``'s chunk: its window line, bank and inside bit."""
        P, W = self.group, self.lanes
        line = Signal(self.line_bits, name="sum_line")
        bank = Signal(max(1, self.log_banks), name="sum_bank")
        inside = Signal(name="sum_inside")
        for pp in range(P):
            for jj in range(W):
                with m.If((p == pp) & (j == jj)):
                    e_line, e_bank, e_in = self._entries[pp][jj]
                    m.d.comb += [line.eq(e_line), bank.eq(e_bank), inside.eq(e_in)]
        return line, bank, inside

    def _sum_data(self, m, d1):
        """A sum's reads come back: entries into the element's entry registers, old values
        into one bit each (by group parity), window words into the running sums."""
        P, W = self.group, self.lanes
        keep = [[Signal(name=f"keep{par}_{p}") for p in range(P)] for par in range(2)]
        with m.If(d1.sum_entry):
            for pp in range(P):
                with m.If(d1.p == pp):
                    for lane in range(W):
                        e_line, e_bank, e_in = self._entries[pp][lane]
                        line, bank, inside = self._entry(self.rd_data[lane])
                        m.d.sync += [e_line.eq(line), e_bank.eq(bank), e_in.eq(inside)]
        with m.If(d1.sum_mask):
            for par in range(2):
                for kk in range(-(-P // W)):
                    with m.If((d1.par == par) & (d1.k == kk)):
                        for lane in range(W):
                            if kk * W + lane < P:
                                m.d.sync += keep[par][kk * W + lane].eq(
                                    _positive(self.rd_data[lane]))
        word = self.rd_data[0]
        kept = Signal(name="sum_kept")
        for par in range(2):
            for pp in range(P):
                with m.If((d1.par == par) & (d1.p == pp)):
                    m.d.comb += kept.eq(keep[par][pp])
        keep_it = ~self.mask | kept
        acc = [Signal(32, name=f"sum{pp}") for pp in range(P)]
        # The adder's operands and tag are registered first (the running sum's multiplexer
        # and the tag's decode stay out of its first stage), then its L - 1 stages, as the
        # edge reducers': the sum is back L cycles after the word.
        m.submodules.adder = adder = FloatAdder(FP32, FP32, FP32,
                                                latency=self.mac_latency - 1)
        # What travels beside the adder: the element, whether this is its last tap, its mask.
        out_layout = data.StructLayout({"p": range(P), "last": 1, "keep": 1})
        beside_in = Signal(out_layout, name="adder_tag")
        operand_a = Signal(32, name="adder_a")
        operand_b = Signal(32, name="adder_b")
        operand_valid = Signal(name="adder_valid")
        m.d.comb += [adder.a.eq(operand_a), adder.b.eq(operand_b),
                     adder.i_valid.eq(operand_valid)]
        out = self._delayed(m, beside_in, out_layout, adder.latency + 1)
        running_sum = Signal(32, name="running_sum")
        for pp in range(P):
            with m.If(d1.p == pp):
                m.d.comb += running_sum.eq(acc[pp])
        m.d.sync += operand_valid.eq(0)
        with m.If(d1.sum_window & d1.first):
            for pp in range(P):
                with m.If(d1.p == pp):
                    m.d.sync += acc[pp].eq(word)
        with m.Elif(d1.sum_window):
            m.d.sync += [operand_a.eq(running_sum), operand_b.eq(word), operand_valid.eq(1)]
            m.d.comb += [beside_in.p.eq(d1.p), beside_in.last.eq(d1.last),
                         beside_in.keep.eq(keep_it)]
        with m.If(adder.o_valid):
            for pp in range(P):
                with m.If(out.p == pp):
                    m.d.sync += acc[pp].eq(adder.result)
            with m.If(out.last):
                self._write(m, Mux(out.keep, adder.result, 0))

    @staticmethod
    def _delayed(m, first, layout, stages):
        """``first`` delayed by ``stages`` cycles."""
        value = first
        for k in range(stages):
            reg = Signal(layout, name=f"adder_tag_d{k + 1}")
            m.d.sync += reg.eq(value)
            value = reg
        return value

    def _write(self, m, value):
        m.d.comb += [self.wr_en.eq(1), self.wr_data.eq(value)]

    def _write_pointer(self, m):
        """The destination's elements are written in order: row by row, column by column."""
        w_row = Signal(SIZE_BITS, name="write_row")
        w_off = Signal(self.line_bits, name="write_offset")    # b * dst_lpc
        # The written element's lane in its copy block (blocks of W from a column's start).
        self._w_lane = w_lane = Signal(range(self.lanes), name="write_lane")
        m.d.comb += [self.wr_e0.eq(w_row), self.wr_line.eq(self.dst_base + w_off)]
        with m.If(self.start):
            m.d.sync += [w_row.eq(0), w_off.eq(0), w_lane.eq(0)]
        with m.Elif(self.wr_en):
            with m.If(w_row + 1 == self.n):
                m.d.sync += [w_row.eq(0), w_off.eq(w_off + self.dst_lpc), w_lane.eq(0)]
            with m.Else():
                m.d.sync += [w_row.eq(w_row + 1),
                             w_lane.eq(Mux(w_lane + 1 == self.lanes, 0, w_lane + 1))]

    # --- one tap: the copy engine ---------------------------------------------------------

    def _copy(self, m, issued):
        """A copy (``m = 1``) in blocks of ``W`` elements of a column (``W`` = lanes): one
        read of the block's ``W`` table entries (and with ``flag`` one of their old
        values), then a window read per element, one per cycle. The next block's entries
        are read in the cycle before the block's last window read, so that they arrive as
        that read leaves the entry registers, and its old values right after: a block of
        ``c`` elements takes ``c + 1`` cycles (``c + 2`` with ``flag``), the first block one
        more (an idle cycle, or its mask read, while its entries arrive)."""
        W, lb = self.lanes, self.line_bits
        run = self.run & (self.taps == 1)
        state = Signal(range(4), name="copy_state")          # 0 start, 1 pre, 2 window, 3 mask
        START, PRE, WINDOW, MASK = 0, 1, 2, 3
        # The next block to read (its entries, then its old values): column, offsets, row.
        nb_b = Signal(SIZE_BITS, name="copy_next_column")
        nb_t_off = Signal(lb, name="copy_next_table_offset")
        nb_d_off = Signal(lb, name="copy_next_mask_offset")
        nb_r0 = Signal(SIZE_BITS, name="copy_next_row")
        nb_valid = Signal(name="copy_next_valid")
        nb_left = Signal(SIZE_BITS, name="copy_next_left")
        nb_count = Signal(range(W + 1), name="copy_next_count")
        m.d.comb += [nb_left.eq(self.n - nb_r0),
                     nb_count.eq(Mux(nb_left >= W, W, nb_left))]
        nb_lanes = Signal(W, name="copy_next_lanes")
        m.d.comb += nb_lanes.eq(Cat(*[nb_count > lane for lane in range(W)]))
        count_next = Signal(range(W + 1), name="copy_count_next")
        count = Signal(range(W + 1), name="copy_count")       # the block being read out
        j = Signal(range(W), name="copy_element")
        next_read = Signal(name="copy_next_read")             # its entries are read
        self._copy_j = j
        with m.If(self.start):
            m.d.sync += [state.eq(START), nb_b.eq(0), nb_t_off.eq(0), nb_d_off.eq(0),
                         nb_r0.eq(0), nb_valid.eq(1), j.eq(0), next_read.eq(0)]

        def advance():
            """The next block: the column's next W elements, or the next column."""
            with m.If(nb_left <= W):
                m.d.sync += [nb_r0.eq(0), nb_b.eq(nb_b + 1),
                             nb_t_off.eq(nb_t_off + self.tab_lpc),
                             nb_d_off.eq(nb_d_off + self.dst_lpc)]
                with m.If(nb_b + 1 == self.batch):
                    m.d.sync += nb_valid.eq(0)
            with m.Else():
                m.d.sync += nb_r0.eq(nb_r0 + W)

        def read_table():
            m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(self.tab_base + nb_t_off),
                         self.rd_e0.eq(nb_r0), self.rd_lanes.eq(nb_lanes),
                         issued.copy_table.eq(1)]
            m.d.sync += count_next.eq(nb_count)
            with m.If(~self.mask):
                advance()

        def read_mask():
            m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(self.dst_base + nb_d_off),
                         self.rd_e0.eq(nb_r0), self.rd_lanes.eq(nb_lanes),
                         issued.copy_mask.eq(1)]
            advance()

        self._entry_line = [Signal(lb, name=f"copy_line{lane}") for lane in range(W)]
        self._entry_bank = [Signal(max(1, self.log_banks), name=f"copy_bank{lane}")
                            for lane in range(W)]
        self._entry_in = [Signal(name=f"copy_inside{lane}") for lane in range(W)]
        line_j = Signal(lb, name="copy_line")
        bank_j = Signal(max(1, self.log_banks), name="copy_bank")
        in_j = Signal(name="copy_inside")
        for lane in range(W):
            with m.If(j == lane):
                m.d.comb += [line_j.eq(self._entry_line[lane]),
                             bank_j.eq(self._entry_bank[lane]), in_j.eq(self._entry_in[lane])]

        with m.If(run):
            with m.Switch(state):
                with m.Case(START):
                    read_table()
                    m.d.sync += state.eq(PRE)
                with m.Case(PRE):
                    with m.If(self.mask):
                        read_mask()
                    m.d.sync += [count.eq(count_next), j.eq(0), next_read.eq(0),
                                 state.eq(WINDOW)]
                with m.Case(WINDOW):
                    with m.If(j + 1 < count):
                        self._read_window(m, issued, line_j, bank_j, in_j)
                        m.d.sync += j.eq(j + 1)
                    with m.Elif(nb_valid & ~next_read):
                        read_table()
                        m.d.sync += next_read.eq(1)
                    with m.Else():
                        self._read_window(m, issued, line_j, bank_j, in_j)
                        with m.If(next_read):
                            m.d.sync += [count.eq(count_next), j.eq(0), next_read.eq(0)]
                            with m.If(self.mask):
                                m.d.sync += state.eq(MASK)
                        with m.Else():
                            m.d.comb += self.finish.eq(1)
                with m.Case(MASK):
                    read_mask()
                    m.d.sync += state.eq(WINDOW)

    def _read_window(self, m, issued, line, bank, inside):
        """A copy's window read of the entry ``line``, ``bank`` (its lane off past the
        window: it reads +0)."""
        m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(line), self.rd_e0.eq(bank),
                     self.rd_lanes.eq(inside), issued.copy_window.eq(1)]

    def _copy_data(self, m, d1):
        """A copy's reads come back: the block's entries become window lines, banks and
        whether each is inside (registered, read by the window reads from the next cycle
        on); the old values become one bit each; a window word is written, masked."""
        W = self.lanes
        keep = [Signal(name=f"copy_keep{lane}") for lane in range(W)]
        with m.If(d1.copy_table):
            for lane in range(W):
                line, bank, inside = self._entry(self.rd_data[lane])
                m.d.sync += [self._entry_line[lane].eq(line), self._entry_bank[lane].eq(bank),
                             self._entry_in[lane].eq(inside)]
        with m.If(d1.copy_mask):
            m.d.sync += [keep[lane].eq(_positive(self.rd_data[lane])) for lane in range(W)]
        kept = Signal(name="copy_kept")
        for lane in range(W):
            with m.If(self._w_lane == lane):
                m.d.comb += kept.eq(keep[lane])
        with m.If(d1.copy_window):
            self._write(m, Mux(~self.mask | kept, self.rd_data[0], 0))
