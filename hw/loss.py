"""The loss-gradient unit: ``dY = (softmax(Y) - onehot) / B`` at the output layer, on chip.

It works on a chunk of up to ``columns`` samples (columns of ``Y``) at a time with one fp32
FMA unit and the special-function unit (``hw.sfu``), reading and writing the scratchpad one
word per cycle (lane 0 of its lane ports), in passes over the chunk. Every pass goes over
the classes ``i`` and, inside, over the chunk's columns, so that consecutive operations on
one column's running values are a chunk apart: the chunk has at least ``mac_latency + 1``
slots (unused slots issue nothing), which hides the FMA's latency.

The passes, each in the golden model's order for every column
(``sim.golden.core_model.softmax_xent_gradient``):

1. ``LABEL``: the label of each column (an integer word of the label vector);
2. ``MAX``: ``m = max_i Y[i]`` (the first largest, by value);
3. ``SUB``: ``z_i = Y[i] - m``, kept in ``dY[i]``;
4. ``EXP``: ``e_i = exp(z_i)`` through the special-function unit, in order, into ``dY[i]``;
5. ``SUM``: ``s = s + e_i`` from ``s = +0``, ``i`` increasing;
6. ``RECIP``: ``r = 1 / s``;
7. ``MUL``: ``p_i = e_i * r`` into ``dY[i]``;
8. ``LABEL_SUB``: ``p - 1`` at the label (a label that is not below ``m`` marks no class);
9. ``SCALE``: ``dY[i] = g_i * inv_batch``.

Adds and multiplies are the FMA's ``c + a * b`` with ``b = 1`` (an add: the product is
exact) or ``c = +0`` (a multiply, rounded once), so they are bit-identical to the golden
model's. Between passes the unit waits for the FMA's last write.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.formats import FP32

from .issue import SIZE_BITS
from .mac import FloatMAC
from .sfu import SpecialFunctionUnit

__all__ = ["LossGradient"]

ONE = 0x3F80_0000
MINUS_ONE = 0xBF80_0000


class Pass(enum.Enum, shape=4):
    IDLE = 0
    LABEL = 1
    MAX = 2
    SUB = 3
    EXP = 4
    SUM = 5
    RECIP = 6
    MUL = 7
    LABEL_SUB = 8
    SCALE = 9
    NEXT = 10


def _greater(a, b):
    """``a > b`` for fp32 bit patterns read as values (zero of either sign is 0)."""
    a_zero = a[23:31] == 0
    b_zero = b[23:31] == 0
    a_neg = a[31] & ~a_zero
    b_neg = b[31] & ~b_zero
    a_mag = Mux(a_zero, 0, a[:31])
    b_mag = Mux(b_zero, 0, b[:31])
    return Mux(a_neg != b_neg, b_neg, Mux(a_neg, a_mag < b_mag, a_mag > b_mag))


class LossGradient(wiring.Component):
    """Sequencer of the softmax cross-entropy gradient (see the module docstring).

    Parameters
    ----------
    line_bits : int
        Width of a scratchpad line number.
    mac_latency : int
        Latency of the FMA (and of the special-function unit's FMA).
    columns : int
        Most samples in a chunk (registers per sample: maximum, sum, reciprocal, label);
        at least ``mac_latency + 1``.

    Members
    -------
    start : In(1)
        Begin with the parameters below (held until ``done``).
    m, batch : In(hw.issue.SIZE_BITS)
        Rows of ``Y`` (classes) and columns (samples).
    y_base, y_lpc, dy_base, dy_lpc, label_base, label_lpc : In(line_bits)
        Scratchpad matrices: ``Y``, ``dY`` and the labels (one integer word per column).
    inv_batch : In(32)
        ``1/B`` as an fp32 bit pattern.
    done : Out(1)
        High for one cycle when finished.
    rd_en, wr_en : Out(1); rd_e0, wr_e0 : Out(hw.issue.SIZE_BITS); rd_line, wr_line : Out(line_bits)
        One-word scratchpad accesses (lane 0); read data on ``rd_data`` one cycle later.
    rd_data : In(32); wr_data : Out(32)
    """

    def __init__(self, *, line_bits, mac_latency=6, columns=16):
        if columns < mac_latency + 1:
            raise ValueError(f"columns must be at least mac_latency + 1 = {mac_latency + 1}, "
                             f"not {columns!r}")
        self.mac_latency = mac_latency
        self.columns = columns
        self.line_bits = line_bits
        super().__init__({
            "start": In(1), "m": In(SIZE_BITS), "batch": In(SIZE_BITS),
            "y_base": In(line_bits), "y_lpc": In(line_bits),
            "dy_base": In(line_bits), "dy_lpc": In(line_bits),
            "label_base": In(line_bits), "label_lpc": In(line_bits),
            "inv_batch": In(32),
            "done": Out(1),
            "rd_en": Out(1), "rd_e0": Out(SIZE_BITS), "rd_line": Out(line_bits), "rd_data": In(32),
            "wr_en": Out(1), "wr_e0": Out(SIZE_BITS), "wr_line": Out(line_bits), "wr_data": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.mac_latency
        m.submodules.fma = fma = FloatMAC(FP32, FP32, latency=L)
        m.submodules.sfu = sfu = SpecialFunctionUnit(mac_latency=L)
        p = _Passes(m, self, fma, sfu)

        with m.Switch(p.stage):
            with m.Case(Pass.IDLE):
                with m.If(self.start):
                    # The SFU is empty: restart its turns, so that every command has the
                    # same schedule whatever cycle it starts in (sim/golden/core_counts.py).
                    m.d.comb += sfu.restart.eq(1)
                    m.d.sync += [p.stage.eq(Pass.NEXT), p.b0.eq(0), p.wait.eq(0)]
            with m.Case(Pass.NEXT):
                p.next_chunk()
            with m.Case(Pass.LABEL):
                p.read_pass(0, p.label_line, 1)
                with m.If(p.r_valid):
                    p.store(p.label, self.rd_data)
                p.next_pass(Pass.MAX)
            with m.Case(Pass.MAX):
                p.read_pass(p.i, p.y_line, self.m)
                with m.If(p.r_valid & ((p.r_i == 0) | _greater(self.rd_data, p.r_top))):
                    p.store(p.top, self.rd_data)
                p.next_pass(Pass.SUB)
            with m.Case(Pass.SUB):
                p.read_pass(p.i, p.y_line, self.m)
                with m.If(p.r_valid):
                    p.fma_issue(self.rd_data, p.r_top ^ 0x8000_0000, ONE)
                p.next_pass(Pass.EXP)
            with m.Case(Pass.EXP):
                p.exp_pass()
            with m.Case(Pass.SUM):
                p.read_pass(p.i, p.dy_line, self.m)
                with m.If(p.r_valid):
                    p.fma_issue(Mux(p.r_i == 0, 0, p.r_total), self.rd_data, ONE, to_sum=1)
                p.next_pass(Pass.RECIP)
            with m.Case(Pass.RECIP):
                p.recip_pass()
            with m.Case(Pass.MUL):
                p.read_pass(p.i, p.dy_line, self.m)
                with m.If(p.r_valid):
                    p.fma_issue(0, self.rd_data, p.r_recip)
                p.next_pass(Pass.LABEL_SUB)
            with m.Case(Pass.LABEL_SUB):
                # One element per column: its label's (a pass of one "class"). A label that
                # is not a class index (>= m) marks no class: nothing is subtracted.
                p.read_pass(p.slot_label[:SIZE_BITS], p.dy_line, 1, when=p.slot_label < self.m)
                with m.If(p.r_valid):
                    p.fma_issue(self.rd_data, MINUS_ONE, ONE, i=p.r_label[:SIZE_BITS])
                p.next_pass(Pass.SCALE)
            with m.Case(Pass.SCALE):
                p.read_pass(p.i, p.dy_line, self.m)
                with m.If(p.r_valid):
                    p.fma_issue(0, self.rd_data, self.inv_batch)
                with m.If(~p.issuing & ~p.r_valid):
                    with m.If(p.wait == 0):
                        m.d.sync += [p.stage.eq(Pass.NEXT), p.b0.eq(p.b0 + p.valid_cols)]
                    with m.Else():
                        m.d.sync += p.wait.eq(p.wait - 1)
        return m


class _Passes:
    """The state of a :class:`LossGradient` and the steps its passes are made of."""

    def __init__(self, m, unit, fma, sfu):
        self.m, self.unit, self.fma, self.sfu = m, unit, fma, sfu
        L, CH = unit.mac_latency, unit.columns
        self.top = [Signal(32, name=f"max{c}") for c in range(CH)]
        self.total = [Signal(32, name=f"sum{c}") for c in range(CH)]
        self.recip = [Signal(32, name=f"recip{c}") for c in range(CH)]
        self.label = [Signal(32, name=f"label{c}") for c in range(CH)]

        self.stage = Signal(Pass)
        self.b0 = Signal(SIZE_BITS)               # first column of the chunk
        self.valid_cols = Signal(range(CH + 1))   # columns of the chunk that exist
        self.slots = Signal(range(CH + 1))        # slots per class (at least L + 1)
        self.i = Signal(SIZE_BITS)
        self.slot = Signal(range(CH))
        self.wait = Signal(range(L + 4))          # drain countdown between passes
        self.issuing = Signal()                   # the pass still has elements to issue

        # The element read in the previous cycle (reads have one cycle of latency).
        self.r_valid = Signal()
        self.r_i = Signal(SIZE_BITS)
        self.r_slot = Signal(range(CH))
        m.d.sync += [self.r_valid.eq(0), self.r_i.eq(self.i), self.r_slot.eq(self.slot)]
        # FMA results and where they go, L cycles after issue.
        tag = data.StructLayout({"to_sum": 1, "i": SIZE_BITS, "slot": range(CH)})
        self.issued = Signal(tag)
        tags = [Signal(tag, name=f"fma_tag{k}") for k in range(L)]
        m.d.sync += tags[0].eq(self.issued)
        for prev, nxt in zip(tags, tags[1:]):
            m.d.sync += nxt.eq(prev)
        self.done_tag = tags[-1]

        self.r_top = self.pick(self.top, self.r_slot, "r_top")
        self.r_total = self.pick(self.total, self.r_slot, "r_total")
        self.r_recip = self.pick(self.recip, self.r_slot, "r_recip")
        self.r_label = self.pick(self.label, self.r_slot, "r_label")
        self.slot_label = self.pick(self.label, self.slot, "slot_label")

        # The SFU takes elements in order and returns them in order.
        self.sfu_out_i = Signal(SIZE_BITS)
        self.sfu_out_slot = Signal(range(CH))
        self.sfu_pending = Signal(SIZE_BITS)      # elements given to the SFU, not yet back
        self.held = Signal()                      # an element read and waiting for the SFU
        self.held_x = Signal(32)
        self.writeback()

    # Scratchpad lines of column `column` of Y, dY and the labels.
    def y_line(self, column):
        return self.unit.y_base + column * self.unit.y_lpc

    def dy_line(self, column):
        return self.unit.dy_base + column * self.unit.dy_lpc

    def label_line(self, column):
        return self.unit.label_base + column * self.unit.label_lpc

    def pick(self, regs, index, name):
        """``regs[index]``, as a signal."""
        value = Signal(len(regs[0]), name=name)
        with self.m.Switch(index):
            for c, reg in enumerate(regs):
                with self.m.Case(c):
                    self.m.d.comb += value.eq(reg)
        return value

    def writeback(self):
        """FMA write-back: into dY (most passes) or a column's running sum."""
        m, unit, fma, done_tag = self.m, self.unit, self.fma, self.done_tag
        with m.If(fma.o_valid):
            with m.If(done_tag.to_sum):
                for c in range(unit.columns):
                    with m.If(done_tag.slot == c):
                        m.d.sync += self.total[c].eq(fma.result)
            with m.Else():
                m.d.comb += [unit.wr_en.eq(1), unit.wr_e0.eq(done_tag.i),
                             unit.wr_line.eq(self.dy_line(self.b0 + done_tag.slot)),
                             unit.wr_data.eq(fma.result)]

    def next_chunk(self):
        """A new chunk, or the end."""
        m, unit = self.m, self.unit
        L, CH = unit.mac_latency, unit.columns
        with m.If(self.b0 >= unit.batch):
            m.d.comb += unit.done.eq(1)
            m.d.sync += self.stage.eq(Pass.IDLE)
        with m.Else():
            remaining = unit.batch - self.b0
            cols = Mux(remaining > CH, CH, remaining)
            m.d.sync += [self.valid_cols.eq(cols), self.slots.eq(Mux(cols > L + 1, cols, L + 1)),
                         self.stage.eq(Pass.LABEL), self.i.eq(0), self.slot.eq(0),
                         self.issuing.eq(1), self.wait.eq(0)]

    def advance(self, last_i):
        """Next (i, slot) of a pass over `last_i` classes; clears `issuing` at the end."""
        m, slot, i = self.m, self.slot, self.i
        with m.If(slot + 1 == self.slots):
            m.d.sync += slot.eq(0)
            with m.If(i + 1 == last_i):
                m.d.sync += self.issuing.eq(0)
            with m.Else():
                m.d.sync += i.eq(i + 1)
        with m.Else():
            m.d.sync += slot.eq(slot + 1)

    def next_pass(self, after):
        """When the pass has issued everything and the FMA has drained, go on."""
        m = self.m
        with m.If(~self.issuing & ~self.r_valid):
            with m.If(self.wait == 0):
                m.d.sync += [self.stage.eq(after), self.i.eq(0), self.slot.eq(0),
                             self.issuing.eq(1), self.wait.eq(self.unit.mac_latency + 2)]
            with m.Else():
                m.d.sync += self.wait.eq(self.wait - 1)

    def read_pass(self, e0, line_of_column, last_i, when=1):
        """Issue the pass's reads: element ``e0`` of column ``b0 + slot`` for every
        existing column (and ``when``), over ``last_i`` classes."""
        m, unit = self.m, self.unit
        with m.If(self.issuing):
            with m.If((self.slot < self.valid_cols) & when):
                m.d.comb += [unit.rd_en.eq(1), unit.rd_e0.eq(e0),
                             unit.rd_line.eq(line_of_column(self.b0 + self.slot))]
                m.d.sync += self.r_valid.eq(1)
            self.advance(last_i)

    def store(self, regs, value):
        """``regs[r_slot] = value``: the register of the column just read."""
        for c in range(self.unit.columns):
            with self.m.If(self.r_slot == c):
                self.m.d.sync += regs[c].eq(value)

    def fma_issue(self, c, a, b, to_sum=0, i=None):
        fma, issued = self.fma, self.issued
        self.m.d.comb += [fma.c.eq(c), fma.a.eq(a), fma.b.eq(b), fma.i_valid.eq(1),
                          issued.to_sum.eq(to_sum), issued.i.eq(self.r_i if i is None else i),
                          issued.slot.eq(self.r_slot)]

    def exp_pass(self):
        """Read an element, hold it until the SFU takes it, write the results in order."""
        m, unit, sfu = self.m, self.unit, self.sfu
        with m.If(~self.held & ~self.r_valid):
            self.read_pass(self.i, self.dy_line, unit.m)
        with m.If(self.r_valid):
            m.d.sync += [self.held.eq(1), self.held_x.eq(unit.rd_data)]
        with m.If(self.held):
            m.d.comb += [sfu.op.eq(0), sfu.x.eq(self.held_x), sfu.i_valid.eq(1)]
            with m.If(sfu.i_ready):
                m.d.sync += self.held.eq(0)
        taken = self.held & sfu.i_ready
        m.d.sync += self.sfu_pending.eq(self.sfu_pending + taken - sfu.o_valid)
        with m.If(sfu.o_valid):
            m.d.comb += [unit.wr_en.eq(1), unit.wr_e0.eq(self.sfu_out_i),
                         unit.wr_line.eq(self.dy_line(self.b0 + self.sfu_out_slot)),
                         unit.wr_data.eq(sfu.y)]
            with m.If(self.sfu_out_slot + 1 == self.valid_cols):
                m.d.sync += [self.sfu_out_slot.eq(0), self.sfu_out_i.eq(self.sfu_out_i + 1)]
            with m.Else():
                m.d.sync += self.sfu_out_slot.eq(self.sfu_out_slot + 1)
        with m.If(~self.issuing & ~self.r_valid & ~self.held & (self.sfu_pending == 0)
                  & ~sfu.o_valid):
            m.d.sync += [self.stage.eq(Pass.SUM), self.i.eq(0), self.slot.eq(0),
                         self.issuing.eq(1), self.wait.eq(unit.mac_latency + 2),
                         self.sfu_out_i.eq(0), self.sfu_out_slot.eq(0)]

    def recip_pass(self):
        """One reciprocal per column, through the SFU in order."""
        m, sfu, slot = self.m, self.sfu, self.slot
        with m.If(self.issuing):
            m.d.comb += [sfu.op.eq(1), sfu.x.eq(self.pick(self.total, slot, "recip_in")),
                         sfu.i_valid.eq(1)]
            with m.If(sfu.i_ready):
                with m.If(slot + 1 == self.valid_cols):
                    m.d.sync += [self.issuing.eq(0), slot.eq(0)]
                with m.Else():
                    m.d.sync += slot.eq(slot + 1)
        taken = self.issuing & sfu.i_ready
        m.d.sync += self.sfu_pending.eq(self.sfu_pending + taken - sfu.o_valid)
        with m.If(sfu.o_valid):
            for c in range(self.unit.columns):
                with m.If(self.sfu_out_slot == c):
                    m.d.sync += self.recip[c].eq(sfu.y)
            m.d.sync += self.sfu_out_slot.eq(self.sfu_out_slot + 1)
        with m.If(~self.issuing & (self.sfu_pending == 0) & ~sfu.o_valid):
            m.d.sync += [self.stage.eq(Pass.MUL), self.i.eq(0), slot.eq(0), self.issuing.eq(1),
                         self.sfu_out_slot.eq(0)]
