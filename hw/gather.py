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

A sum (more taps) runs *steps*, one every two cycles, and reads one word per cycle through
the read port (its data arrives in the next cycle):

==============  ==========================================  ==============================
cycle of step   reads                                       data arriving (last cycle's)
==============  ==========================================  ==============================
first           table entry of step ``k`` (with ``flag``,   window word of step ``k - 2``
                a mask step reads the element's old word)
second          window word of step ``k - 1``               table entry of step ``k``
==============  ==========================================  ==============================

An entry is registered as a window line and bank in the cycle it arrives and used a cycle
later, so no read data reaches a read address in the cycle it arrives.

A column of the destination is cut into groups of ``P`` (:func:`group_size`) elements, each
with its running sum in a register. A group takes its mask steps (``flag``), then ``T``
rounds of ``slots`` steps: round ``t`` reads tap ``t`` of every element of the group, so
an element's taps are ``2 * slots`` cycles apart and its running sum is back from the fp32
adder (latency ``L - 1``, as the core's reducers) before its next tap: ``slots`` is at least
:func:`min_slots` with more than one tap (steps past the group's elements read nothing).
Tap 0 is stored as it is, each later tap added to the running sum, and an element's last
tap's sum is written to the destination in order, one element after the other, masked by
the bit its mask step kept.

Addresses are stepped, never multiplied out: the table entry's index ``(r0 + p) * T + t``
adds ``T`` per step of a round and starts the next round one further, the columns' lines
add their ``lpc``, and the window's line is its base plus the entry shifted right by
``log2(S)``. ``sim.golden.core_counts`` predicts the cycles exactly.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from chrysalis.gen.spec.formats import FP32

from .fadd import FloatAdder
from .issue import SIZE_BITS

__all__ = ["Gather", "group_size", "min_slots"]


def min_slots(latency):
    """The fewest steps of a round with more than one tap, ``ceil(L / 2)`` on a core of
    MAC latency ``L``: an element's taps come ``2 * slots`` cycles apart and its running
    sum is ready ``L`` cycles after the previous tap's word (``sim.golden.core_counts``'s
    ``gather_min_slots``)."""
    return (latency + 1) // 2


def group_size(latency):
    """Elements per group (running sums): :func:`min_slots`, at least two."""
    return max(2, min_slots(latency))


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
        The core's MAC latency ``L``; the unit's fp32 adder has latency ``L - 1``.
    lanes : int
        Lanes ``W`` of the read port the unit uses (at most ``banks``): a copy (one tap)
        reads the table entries and the old values of ``W`` elements at once.

    Attributes
    ----------
    group, slots : int
        :func:`group_size` and :func:`min_slots` of ``mac_latency``.

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
        self.group, self.slots = group_size(mac_latency), min_slots(mac_latency)
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
        P = self.group
        # What travels with a read, from its issue to its data (and through the adder).
        tag_layout = data.StructLayout({"tap": 1, "mask": 1, "p": range(P), "par": 1,
                                        "first": 1, "last": 1, "copy_table": 1,
                                        "copy_mask": 1, "copy_window": 1})
        issued = Signal(tag_layout, name="issued")
        self._steps(m, issued)
        self._copy(m, issued)
        delayed = self._datapath(m, issued, tag_layout)
        self._copy_data(m, delayed[1])
        return m

    # --- the steps ------------------------------------------------------------------------

    def _steps(self, m, issued):
        """The loops: columns, groups, (mask steps,) rounds, slots; one step per two
        cycles. Drives ``issued`` (the read of this cycle's step) and :attr:`finish`."""
        P, Q = self.group, self.slots
        lb = self.line_bits
        running = Signal(name="running")
        second = Signal(name="second_cycle")       # the step's window-read cycle
        b = Signal(SIZE_BITS, name="column")
        t_off = Signal(lb, name="table_offset")    # b * tab_lpc
        d_off = Signal(lb, name="mask_offset")     # b * dst_lpc
        r0 = Signal(SIZE_BITS, name="r0")          # the group's first element
        masking = Signal(name="masking")           # the group's mask steps are to come
        t = Signal(SIZE_BITS, name="round")
        p = Signal(range(max(P, Q)), name="slot")
        idx = Signal(SIZE_BITS, name="entry")      # (r0 + p) * T + t
        round_base = Signal(SIZE_BITS, name="round_base")    # r0 * T + t
        next_base = Signal(SIZE_BITS, name="next_base")      # (r0 + count) * T
        par = Signal(name="parity")                # the group's parity (its mask bits)
        left = Signal(SIZE_BITS, name="left")      # the column's elements from r0 on
        count = Signal(range(P + 1), name="count")
        slots = Signal(range(max(P, Q) + 1), name="slots")
        m.d.comb += [left.eq(self.n - r0), count.eq(Mux(left >= P, P, left)),
                     slots.eq(Mux(count >= Q, count, Q))]

        with m.If(self.start):
            m.d.sync += [running.eq(1), second.eq(0), b.eq(0), t_off.eq(0), d_off.eq(0),
                         r0.eq(0), t.eq(0), p.eq(0), idx.eq(0), round_base.eq(0),
                         par.eq(0), masking.eq(1)]
        step = Signal(name="step")
        # One tap: the copy engine runs the command instead (_copy).
        run = self.run & (self.taps != 1)
        m.d.comb += step.eq(run & running & ~second)
        with m.If(run & running):
            m.d.sync += second.eq(~second)
        with m.If(step & self.mask & masking):
            m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(self.dst_base + d_off),
                         self.rd_e0.eq(r0 + p), self.rd_lanes.eq(1), issued.mask.eq(1),
                         issued.p.eq(p), issued.par.eq(par)]
            with m.If(p + 1 == count):
                m.d.sync += [p.eq(0), masking.eq(0)]
            with m.Else():
                m.d.sync += p.eq(p + 1)
        with m.Elif(step):
            with m.If(p < count):
                m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(self.tab_base + t_off),
                             self.rd_e0.eq(idx), self.rd_lanes.eq(1), issued.tap.eq(1),
                             issued.p.eq(p), issued.par.eq(par), issued.first.eq(t == 0),
                             issued.last.eq(t + 1 == self.taps)]
            # In round 0, the last element's entry plus T is where the next group's start.
            with m.If((t == 0) & (p + 1 == count)):
                m.d.sync += next_base.eq(idx + self.taps)
            with m.If(p + 1 != slots):
                m.d.sync += [p.eq(p + 1), idx.eq(idx + self.taps)]
            with m.Elif(t + 1 != self.taps):
                m.d.sync += [p.eq(0), t.eq(t + 1), round_base.eq(round_base + 1),
                             idx.eq(round_base + 1)]
            with m.Else():
                m.d.sync += [p.eq(0), t.eq(0), par.eq(~par), masking.eq(1)]
                with m.If(left == count):               # the column's last group
                    m.d.sync += [r0.eq(0), idx.eq(0), round_base.eq(0)]
                    with m.If(b + 1 == self.batch):
                        m.d.comb += self.finish.eq(1)
                        m.d.sync += running.eq(0)
                    with m.Else():
                        m.d.sync += [b.eq(b + 1), t_off.eq(t_off + self.tab_lpc),
                                     d_off.eq(d_off + self.dst_lpc)]
                with m.Else():
                    m.d.sync += [r0.eq(r0 + count), idx.eq(next_base),
                                 round_base.eq(next_base)]

    # --- the reads' data ------------------------------------------------------------------

    def _datapath(self, m, issued, tag_layout):
        """Each read's tag travels beside it: the entry's data (a cycle after its read)
        becomes the window read's address, issued two cycles later; the window word (a
        cycle after that) is stored, added or written."""
        P, lb = self.group, self.line_bits
        delayed = [issued]
        for k in range(4):
            reg = Signal(tag_layout, name=f"tag_d{k + 1}")
            m.d.sync += reg.eq(delayed[-1])
            delayed.append(reg)
        _, d1, _, d3, d4 = delayed
        self._keep_many = [[Signal(name=f"keep{par}_{p}") for p in range(P)] for par in range(2)]

        # d1: the entry (or the mask word) is back.
        word = self.rd_data[0]
        w_line = Signal(lb, name="window_line")
        w_e0 = Signal(max(1, self.log_banks), name="window_bank")
        w_in = Signal(name="window_inside")
        above = word[self.log_banks:]                   # the entry's line in the window
        # The checks allow no empty window: an lpc of 0 is a window of 2**line_bits lines.
        lines = Cat(self.win_lpc, self.win_lpc == 0)
        keep = self._keep_many
        with m.If(d1.tap):
            m.d.sync += [w_line.eq(self.win_base + above),
                         w_e0.eq(word[:self.log_banks] if self.log_banks else 0),
                         w_in.eq(above < lines)]
        with m.If(d1.mask):
            for par in range(2):
                for p in range(P):
                    with m.If((d1.par == par) & (d1.p == p)):
                        m.d.sync += keep[par][p].eq(_positive(word))

        # d3: the window word's read (its lane off past the window: it reads +0).
        with m.If(d3.tap):
            m.d.comb += [self.rd_en.eq(1), self.rd_line.eq(w_line), self.rd_e0.eq(w_e0),
                         self.rd_lanes.eq(w_in)]

        # d4: the window word is back.
        kept = Signal(name="kept")
        for par in range(2):
            for p in range(P):
                with m.If((d4.par == par) & (d4.p == p)):
                    m.d.comb += kept.eq(keep[par][p])
        keep_it = ~self.mask | kept
        acc = [Signal(32, name=f"sum{p}") for p in range(P)]
        m.submodules.adder = adder = FloatAdder(FP32, FP32, FP32, latency=self.mac_latency - 1)
        # What travels beside the adder: the element, whether this is its last tap, its mask.
        out_layout = data.StructLayout({"p": range(P), "last": 1, "keep": 1})
        beside_in = Signal(out_layout, name="adder_tag")
        out = self._delayed(m, beside_in, out_layout, adder.latency)
        running_sum = Signal(32, name="running_sum")
        for p in range(P):
            with m.If(d4.p == p):
                m.d.comb += running_sum.eq(acc[p])
        with m.If(d4.tap & d4.first & d4.last):
            self._write(m, Mux(keep_it, word, 0))
        with m.Elif(d4.tap & d4.first):
            for p in range(P):
                with m.If(d4.p == p):
                    m.d.sync += acc[p].eq(word)
        with m.Elif(d4.tap):
            m.d.comb += [adder.a.eq(running_sum), adder.b.eq(word), adder.i_valid.eq(1),
                         beside_in.p.eq(d4.p), beside_in.last.eq(d4.last),
                         beside_in.keep.eq(keep_it)]
        with m.If(adder.o_valid):
            for p in range(P):
                with m.If(out.p == p):
                    m.d.sync += acc[p].eq(adder.result)
            with m.If(out.last):
                self._write(m, Mux(out.keep, adder.result, 0))
        self._write_pointer(m)
        return delayed

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
        lines = Cat(self.win_lpc, self.win_lpc == 0)
        keep = [Signal(name=f"copy_keep{lane}") for lane in range(W)]
        with m.If(d1.copy_table):
            for lane in range(W):
                word = self.rd_data[lane]
                above = word[self.log_banks:]
                m.d.sync += [self._entry_line[lane].eq(self.win_base + above),
                             self._entry_bank[lane].eq(word[:self.log_banks]
                                                       if self.log_banks else 0),
                             self._entry_in[lane].eq(above < lines)]
        with m.If(d1.copy_mask):
            m.d.sync += [keep[lane].eq(_positive(self.rd_data[lane])) for lane in range(W)]
        kept = Signal(name="copy_kept")
        for lane in range(W):
            with m.If(self._w_lane == lane):
                m.d.comb += kept.eq(keep[lane])
        with m.If(d1.copy_window):
            self._write(m, Mux(~self.mask | kept, self.rd_data[0], 0))
