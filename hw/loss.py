"""The loss-gradient unit: ``dY = (softmax(Y) - onehot) / B`` at the output layer, on chip.

It works column by column of ``Y`` (one sample of the minibatch) with one fp32 FMA unit and
the special-function unit (``hw.sfu``), reading and writing the scratchpad one word at a time
(lane 0 of the scratchpad's lane ports). The order of every operation is that of the golden
model, ``sim.core_model.softmax_xent_gradient``:

1. the label of the column (an integer word of the label vector);
2. ``m = max_i Y[i]`` (the first largest, by value);
3. for each ``i`` in increasing order: ``e_i = exp(Y[i] - m)``, kept in ``dY[i]`` for now,
   and ``s = s + e_i`` from ``s = +0``;
4. ``r = 1 / s``;
5. for each ``i``: ``p = e_i * r``; ``g = p - 1`` at the label, else ``p``; ``dY[i] = g *
   inv_batch``.

Adds and multiplies are the FMA's ``c + a * b`` with ``b = 1`` (an add: the product is exact)
or ``c = +0`` (a multiply, rounded once), so they are bit-identical to the golden model's.
Elements are processed one at a time (no overlap): about ``12 * mac_latency`` cycles per
element plus a reciprocal per column.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.formats import FP32

from .mac import FloatMAC
from .sfu import SpecialFunctionUnit

__all__ = ["LossGradient"]

ONE = 0x3F80_0000
MINUS_ONE = 0xBF80_0000


def _greater(a, b):
    """``a > b`` for fp32 bit patterns read as values (zero of either sign is 0)."""
    a_zero = a[23:31] == 0
    b_zero = b[23:31] == 0
    a_neg = a[31] & ~a_zero
    b_neg = b[31] & ~b_zero
    a_mag = Mux(a_zero, 0, a[:31])
    b_mag = Mux(b_zero, 0, b[:31])
    return Mux(a_neg != b_neg, b_neg,
               Mux(a_neg, a_mag < b_mag, a_mag > b_mag))


class LossGradient(wiring.Component):
    """Sequencer of the softmax cross-entropy gradient (see the module docstring).

    Parameters
    ----------
    line_bits : int
        Width of a scratchpad line number.
    mac_latency : int
        Latency of the FMA and of the special-function unit's FMA.

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

    def __init__(self, *, line_bits, mac_latency=6):
        self.mac_latency = mac_latency
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
        L = self.mac_latency
        m.submodules.fma = fma = FloatMAC(FP32, FP32, latency=L)
        m.submodules.sfu = sfu = SpecialFunctionUnit(mac_latency=L)

        b = Signal(16)          # column
        i = Signal(16)          # element
        label = Signal(32)
        top = Signal(32)        # the maximum
        total = Signal(32)      # sum of exponentials
        recip = Signal(32)
        value = Signal(32)      # the element being worked on
        y_line = Signal.like(self.y_base)
        dy_line = Signal.like(self.dy_base)
        m.d.comb += [y_line.eq(self.y_base + b * self.y_lpc),
                     dy_line.eq(self.dy_base + b * self.dy_lpc)]

        def fma_issue(c, a, mult):
            m.d.comb += [fma.c.eq(c), fma.a.eq(a), fma.b.eq(mult), fma.i_valid.eq(1)]

        with m.FSM(name="loss"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += b.eq(0)
                    m.next = "LABEL"
            with m.State("LABEL"):
                with m.If(b == self.batch):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [self.rd_en.eq(1), self.rd_e0.eq(0),
                                 self.rd_line.eq(self.label_base + b * self.label_lpc)]
                    m.next = "LABEL_DATA"
            with m.State("LABEL_DATA"):
                m.d.sync += [label.eq(self.rd_data), i.eq(0)]
                m.next = "MAX_READ"
            # --- m = max_i Y[i]
            with m.State("MAX_READ"):
                m.d.comb += [self.rd_en.eq(1), self.rd_e0.eq(i), self.rd_line.eq(y_line)]
                m.next = "MAX_DATA"
            with m.State("MAX_DATA"):
                with m.If((i == 0) | _greater(self.rd_data, top)):
                    m.d.sync += top.eq(self.rd_data)
                m.d.sync += i.eq(i + 1)
                with m.If(i + 1 == self.m):
                    m.d.sync += [i.eq(0), total.eq(0)]
                    m.next = "EXP_READ"
                with m.Else():
                    m.next = "MAX_READ"
            # --- e_i = exp(Y[i] - m); s += e_i
            with m.State("EXP_READ"):
                m.d.comb += [self.rd_en.eq(1), self.rd_e0.eq(i), self.rd_line.eq(y_line)]
                m.next = "EXP_SUB"
            with m.State("EXP_SUB"):
                fma_issue(self.rd_data, top ^ 0x8000_0000, ONE)
                m.next = "EXP_SUB_WAIT"
            with m.State("EXP_SUB_WAIT"):
                with m.If(fma.o_valid):
                    m.d.sync += value.eq(fma.result)
                    m.next = "EXP_SFU"
            with m.State("EXP_SFU"):
                m.d.comb += [sfu.op.eq(0), sfu.x.eq(value), sfu.i_valid.eq(1)]
                with m.If(sfu.i_ready):
                    m.next = "EXP_SFU_WAIT"
            with m.State("EXP_SFU_WAIT"):
                with m.If(sfu.o_valid):
                    m.d.sync += value.eq(sfu.y)
                    m.next = "EXP_SUM"
            with m.State("EXP_SUM"):
                m.d.comb += [self.wr_en.eq(1), self.wr_e0.eq(i), self.wr_line.eq(dy_line),
                             self.wr_data.eq(value)]
                fma_issue(total, value, ONE)
                m.next = "EXP_SUM_WAIT"
            with m.State("EXP_SUM_WAIT"):
                with m.If(fma.o_valid):
                    m.d.sync += [total.eq(fma.result), i.eq(i + 1)]
                    with m.If(i + 1 == self.m):
                        m.next = "RECIP"
                    with m.Else():
                        m.next = "EXP_READ"
            # --- r = 1 / s
            with m.State("RECIP"):
                m.d.comb += [sfu.op.eq(1), sfu.x.eq(total), sfu.i_valid.eq(1)]
                with m.If(sfu.i_ready):
                    m.next = "RECIP_WAIT"
            with m.State("RECIP_WAIT"):
                with m.If(sfu.o_valid):
                    m.d.sync += [recip.eq(sfu.y), i.eq(0)]
                    m.next = "OUT_READ"
            # --- dY[i] = (e_i * r - [i == label]) * inv_batch
            with m.State("OUT_READ"):
                m.d.comb += [self.rd_en.eq(1), self.rd_e0.eq(i), self.rd_line.eq(dy_line)]
                m.next = "OUT_MUL"
            with m.State("OUT_MUL"):
                fma_issue(0, self.rd_data, recip)
                m.next = "OUT_MUL_WAIT"
            with m.State("OUT_MUL_WAIT"):
                with m.If(fma.o_valid):
                    m.d.sync += value.eq(fma.result)
                    with m.If(i == label):
                        m.next = "OUT_LABEL"
                    with m.Else():
                        m.next = "OUT_SCALE"
            with m.State("OUT_LABEL"):
                fma_issue(value, MINUS_ONE, ONE)
                m.next = "OUT_LABEL_WAIT"
            with m.State("OUT_LABEL_WAIT"):
                with m.If(fma.o_valid):
                    m.d.sync += value.eq(fma.result)
                    m.next = "OUT_SCALE"
            with m.State("OUT_SCALE"):
                fma_issue(0, value, self.inv_batch)
                m.next = "OUT_SCALE_WAIT"
            with m.State("OUT_SCALE_WAIT"):
                with m.If(fma.o_valid):
                    m.d.comb += [self.wr_en.eq(1), self.wr_e0.eq(i), self.wr_line.eq(dy_line),
                                 self.wr_data.eq(fma.result)]
                    m.d.sync += i.eq(i + 1)
                    with m.If(i + 1 == self.m):
                        m.d.sync += b.eq(b + 1)
                        m.next = "LABEL"
                    with m.Else():
                        m.next = "OUT_READ"
        return m
