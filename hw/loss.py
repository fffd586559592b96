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

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.formats import FP32

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
    m, batch : In(16)
        Rows of ``Y`` (classes) and columns (samples).
    y_base, y_lpc, dy_base, dy_lpc, label_base, label_lpc : In(line_bits)
        Scratchpad matrices: ``Y``, ``dY`` and the labels (one integer word per column).
    inv_batch : In(32)
        ``1/B`` as an fp32 bit pattern.
    done : Out(1)
        High for one cycle when finished.
    rd_en, wr_en : Out(1); rd_e0, wr_e0 : Out(16); rd_line, wr_line : Out(line_bits)
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
            "start": In(1), "m": In(16), "batch": In(16),
            "y_base": In(line_bits), "y_lpc": In(line_bits),
            "dy_base": In(line_bits), "dy_lpc": In(line_bits),
            "label_base": In(line_bits), "label_lpc": In(line_bits),
            "inv_batch": In(32),
            "done": Out(1),
            "rd_en": Out(1), "rd_e0": Out(16), "rd_line": Out(line_bits), "rd_data": In(32),
            "wr_en": Out(1), "wr_e0": Out(16), "wr_line": Out(line_bits), "wr_data": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        L, CH = self.mac_latency, self.columns
        m.submodules.fma = fma = FloatMAC(FP32, FP32, latency=L)
        m.submodules.sfu = sfu = SpecialFunctionUnit(mac_latency=L)

        top = [Signal(32, name=f"max{c}") for c in range(CH)]
        total = [Signal(32, name=f"sum{c}") for c in range(CH)]
        recip = [Signal(32, name=f"recip{c}") for c in range(CH)]
        label = [Signal(32, name=f"label{c}") for c in range(CH)]

        def pick(regs, index, name):
            value = Signal(len(regs[0]), name=name)
            with m.Switch(index):
                for c, reg in enumerate(regs):
                    with m.Case(c):
                        m.d.comb += value.eq(reg)
            return value

        stage = Signal(Pass)
        b0 = Signal(16)                    # first column of the chunk
        valid_cols = Signal(range(CH + 1))   # columns of the chunk that exist
        slots = Signal(range(CH + 1))        # slots per class (at least L + 1)
        i = Signal(16)
        slot = Signal(range(CH))
        wait = Signal(range(L + 4))          # drain countdown between passes
        issuing = Signal()                   # the pass still has elements to issue

        col = b0 + slot
        def line(base, lpc, column):
            return base + column * lpc

        # The element read in the previous cycle (reads have one cycle of latency).
        r_valid = Signal()
        r_i = Signal(16)
        r_slot = Signal(range(CH))
        m.d.sync += [r_valid.eq(0), r_i.eq(i), r_slot.eq(slot)]
        # FMA results and where they go, L cycles after issue.
        tag = data.StructLayout({"to_sum": 1, "i": 16, "slot": range(CH)})
        issued = Signal(tag)
        tags = [Signal(tag, name=f"fma_tag{k}") for k in range(L)]
        m.d.sync += tags[0].eq(issued)
        for prev, nxt in zip(tags, tags[1:]):
            m.d.sync += nxt.eq(prev)
        done_tag = tags[-1]

        r_col = b0 + r_slot
        r_top = pick(top, r_slot, "r_top")
        r_total = pick(total, r_slot, "r_total")
        r_recip = pick(recip, r_slot, "r_recip")
        r_label = pick(label, r_slot, "r_label")
        slot_label = pick(label, slot, "slot_label")
        dy_line_of = lambda column: line(self.dy_base, self.dy_lpc, column)

        # FMA write-back: into dY (most passes) or a column's running sum.
        with m.If(fma.o_valid):
            with m.If(done_tag.to_sum):
                for c in range(CH):
                    with m.If(done_tag.slot == c):
                        m.d.sync += total[c].eq(fma.result)
            with m.Else():
                m.d.comb += [self.wr_en.eq(1), self.wr_e0.eq(done_tag.i),
                             self.wr_line.eq(dy_line_of(b0 + done_tag.slot)),
                             self.wr_data.eq(fma.result)]

        def advance(last_i):
            """Next (i, slot) of a pass over `last_i` classes; clears `issuing` at the end."""
            with m.If(slot + 1 == slots):
                m.d.sync += slot.eq(0)
                with m.If(i + 1 == last_i):
                    m.d.sync += issuing.eq(0)
                with m.Else():
                    m.d.sync += i.eq(i + 1)
            with m.Else():
                m.d.sync += slot.eq(slot + 1)

        def next_pass(after):
            """When the pass has issued everything and the FMA has drained, go on."""
            with m.If(~issuing & ~r_valid):
                with m.If(wait == 0):
                    m.d.sync += [stage.eq(after), i.eq(0), slot.eq(0), issuing.eq(1),
                                 wait.eq(L + 2)]
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)

        def read_pass(e0, line_of_column, last_i, when=1):
            """Issue the pass's reads: element ``e0`` of column ``b0 + slot`` for every
            existing column (and ``when``), over ``last_i`` classes."""
            with m.If(issuing):
                with m.If((slot < valid_cols) & when):
                    m.d.comb += [self.rd_en.eq(1), self.rd_e0.eq(e0),
                                 self.rd_line.eq(line_of_column(col))]
                    m.d.sync += r_valid.eq(1)
                advance(last_i)

        def store(regs, value):
            """``regs[r_slot] = value``: the register of the column just read."""
            for c in range(CH):
                with m.If(r_slot == c):
                    m.d.sync += regs[c].eq(value)

        def fma_issue(c, a, b, to_sum=0, i=None):
            m.d.comb += [fma.c.eq(c), fma.a.eq(a), fma.b.eq(b), fma.i_valid.eq(1),
                         issued.to_sum.eq(to_sum), issued.i.eq(r_i if i is None else i),
                         issued.slot.eq(r_slot)]

        y_of = lambda column: line(self.y_base, self.y_lpc, column)

        # The SFU takes elements in order and returns them in order.
        sfu_out_i = Signal(16)
        sfu_out_slot = Signal(range(CH))
        sfu_pending = Signal(16)             # elements given to the SFU, not yet back
        held = Signal()                      # an element read and waiting for the SFU
        held_x = Signal(32)

        with m.Switch(stage):
            with m.Case(Pass.IDLE):
                with m.If(self.start):
                    # The SFU is empty: restart its turns, so that every command has the
                    # same schedule whatever cycle it starts in (sim/golden/core_counts.py).
                    m.d.comb += sfu.restart.eq(1)
                    m.d.sync += [stage.eq(Pass.NEXT), b0.eq(0), wait.eq(0)]
            with m.Case(Pass.NEXT):
                # A new chunk, or the end.
                with m.If(b0 >= self.batch):
                    m.d.comb += self.done.eq(1)
                    m.d.sync += stage.eq(Pass.IDLE)
                with m.Else():
                    remaining = self.batch - b0
                    cols = Mux(remaining > CH, CH, remaining)
                    m.d.sync += [valid_cols.eq(cols), slots.eq(Mux(cols > L + 1, cols, L + 1)),
                                 stage.eq(Pass.LABEL), i.eq(0), slot.eq(0), issuing.eq(1),
                                 wait.eq(0)]
            with m.Case(Pass.LABEL):
                read_pass(0, lambda column: line(self.label_base, self.label_lpc, column), 1)
                with m.If(r_valid):
                    store(label, self.rd_data)
                next_pass(Pass.MAX)
            with m.Case(Pass.MAX):
                read_pass(i, y_of, self.m)
                with m.If(r_valid & ((r_i == 0) | _greater(self.rd_data, r_top))):
                    store(top, self.rd_data)
                next_pass(Pass.SUB)
            with m.Case(Pass.SUB):
                read_pass(i, y_of, self.m)
                with m.If(r_valid):
                    fma_issue(self.rd_data, r_top ^ 0x8000_0000, ONE)
                next_pass(Pass.EXP)
            with m.Case(Pass.EXP):
                # Read an element, hold it until the SFU takes it, write results in order.
                with m.If(~held & ~r_valid):
                    read_pass(i, dy_line_of, self.m)
                with m.If(r_valid):
                    m.d.sync += [held.eq(1), held_x.eq(self.rd_data)]
                with m.If(held):
                    m.d.comb += [sfu.op.eq(0), sfu.x.eq(held_x), sfu.i_valid.eq(1)]
                    with m.If(sfu.i_ready):
                        m.d.sync += held.eq(0)
                taken = held & sfu.i_ready
                m.d.sync += sfu_pending.eq(sfu_pending + taken - sfu.o_valid)
                with m.If(sfu.o_valid):
                    m.d.comb += [self.wr_en.eq(1), self.wr_e0.eq(sfu_out_i),
                                 self.wr_line.eq(dy_line_of(b0 + sfu_out_slot)),
                                 self.wr_data.eq(sfu.y)]
                    with m.If(sfu_out_slot + 1 == valid_cols):
                        m.d.sync += [sfu_out_slot.eq(0), sfu_out_i.eq(sfu_out_i + 1)]
                    with m.Else():
                        m.d.sync += sfu_out_slot.eq(sfu_out_slot + 1)
                with m.If(~issuing & ~r_valid & ~held & (sfu_pending == 0) & ~sfu.o_valid):
                    m.d.sync += [stage.eq(Pass.SUM), i.eq(0), slot.eq(0), issuing.eq(1),
                                 wait.eq(L + 2), sfu_out_i.eq(0), sfu_out_slot.eq(0)]
            with m.Case(Pass.SUM):
                read_pass(i, dy_line_of, self.m)
                with m.If(r_valid):
                    fma_issue(Mux(r_i == 0, 0, r_total), self.rd_data, ONE, to_sum=1)
                next_pass(Pass.RECIP)
            with m.Case(Pass.RECIP):
                # One reciprocal per column, through the SFU in order.
                with m.If(issuing):
                    m.d.comb += [sfu.op.eq(1), sfu.x.eq(pick(total, slot, "recip_in")),
                                 sfu.i_valid.eq(1)]
                    with m.If(sfu.i_ready):
                        with m.If(slot + 1 == valid_cols):
                            m.d.sync += [issuing.eq(0), slot.eq(0)]
                        with m.Else():
                            m.d.sync += slot.eq(slot + 1)
                taken = issuing & sfu.i_ready
                m.d.sync += sfu_pending.eq(sfu_pending + taken - sfu.o_valid)
                with m.If(sfu.o_valid):
                    for c in range(CH):
                        with m.If(sfu_out_slot == c):
                            m.d.sync += recip[c].eq(sfu.y)
                    m.d.sync += sfu_out_slot.eq(sfu_out_slot + 1)
                with m.If(~issuing & (sfu_pending == 0) & ~sfu.o_valid):
                    m.d.sync += [stage.eq(Pass.MUL), i.eq(0), slot.eq(0), issuing.eq(1),
                                 sfu_out_slot.eq(0)]
            with m.Case(Pass.MUL):
                read_pass(i, dy_line_of, self.m)
                with m.If(r_valid):
                    fma_issue(0, self.rd_data, r_recip)
                next_pass(Pass.LABEL_SUB)
            with m.Case(Pass.LABEL_SUB):
                # One element per column: its label's (a pass of one "class"). A label that
                # is not a class index (>= m) marks no class: nothing is subtracted.
                read_pass(slot_label[:16], dy_line_of, 1, when=slot_label < self.m)
                with m.If(r_valid):
                    fma_issue(self.rd_data, MINUS_ONE, ONE, i=r_label[:16])
                next_pass(Pass.SCALE)
            with m.Case(Pass.SCALE):
                read_pass(i, dy_line_of, self.m)
                with m.If(r_valid):
                    fma_issue(0, self.rd_data, self.inv_batch)
                with m.If(~issuing & ~r_valid):
                    with m.If(wait == 0):
                        m.d.sync += [stage.eq(Pass.NEXT), b0.eq(b0 + valid_cols)]
                    with m.Else():
                        m.d.sync += wait.eq(wait - 1)
        return m
