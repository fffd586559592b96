"""The core's mover: the operations that move matrices between the scratchpad and the PEs'
banks (``LOAD_COL``, ``LOAD_ROW``, ``LOAD_W``, ``STORE_W``; ``hw.core`` describes them)."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.isa import Opcode

from .issue import (SIZE_BITS, EngineControl, lane_mask, popcount, request_layout,
                    requested)
from .pe import TransferOp

__all__ = ["Mover"]


class Mover(wiring.Component):
    """Issues the transfers of LOAD_COL, LOAD_ROW, LOAD_W and STORE_W.

    A load is a scratchpad read and a micro-op that writes the words read into the PEs'
    banks; the read is issued one cycle after the mover computes it and the micro-op one
    cycle after the read, so that the micro-op meets the words, which the core registers as
    they leave the scratchpad (``hw.core``), in the broadcast stage. A store sends one PE
    column's weights a cycle over the row buses, straight into the scratchpad.

    The addresses are stepped, never multiplied out: beside each loop counter a register
    holds the counter times its stride (``b * sp_lpc``, ``t * batch``, ``t * nt``, ``j *
    sp_lpc``), which adds the stride when the counter steps and clears when it wraps, so
    an address is a field plus registers (the command is held while it runs).

    Parameters
    ----------
    command, issue : data.StructLayout
        The command layout (``hw.issue.command_layout``) and the issue layout
        (``hw.issue.issue_layout``).
    rows, cols : int
        The PE array.

    Members
    -------
    control : In(hw.issue.EngineControl(command))
        The running command.
    issue : Out(issue)
        The requests of this cycle.
    bus_words : Out(range(max(rows, cols) + 1))
        Words moved over the buses in this cycle.
    finish : Out(1)
        The command's last transfer is issued.

    Attributes
    ----------
    requests : tuple of str
        The fields of ``issue`` the mover drives (paths such as ``"bus.uop"``).
    """

    requests = ("bus.uop", "bus.sel_col", "bus.sel_all", "bus.bus_from", "bus.red.on",
                "bus.red.store_w", "bus.red.e0", "bus.red.line", "bus.red.lanes", "rd")

    def __init__(self, command, issue, *, rows, cols):
        for name, layout in (("command", command), ("issue", issue)):
            if not isinstance(layout, data.StructLayout):
                raise TypeError(f"{name} must be a StructLayout, not {layout!r}")
        self.rows, self.cols = rows, cols
        super().__init__({
            "control": In(EngineControl(command)),
            "issue": Out(issue),
            "bus_words": Out(range(max(rows, cols) + 1)),
            "finish": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        lanes = max(R, C)
        ctl = self.control
        cmd, mt, nt, op = ctl.cmd, ctl.mt, ctl.nt, ctl.cmd.op
        request = Signal(request_layout(self.issue.shape(), self.requests), name="request")
        m.d.comb += self.issue.eq(requested(self.issue.shape(), request))
        bus, rd = request.bus, request.rd

        # Loop counters: t (tile), b (column, or inner tile), c (PE column).
        t = Signal(SIZE_BITS, name="t")
        b = Signal(SIZE_BITS, name="b")
        c = Signal(range(C), name="c")
        # Beside them, the counters times their strides: b * sp_lpc (LOAD_COL, LOAD_ROW),
        # t * batch (LOAD_COL, LOAD_ROW) or t * nt (LOAD_W, STORE_W); and for LOAD_W and
        # STORE_W the column j = c + b * C and j * sp_lpc.
        line_bits, addr_bits = len(rd.line), max(len(bus.uop.t_addr), SIZE_BITS)
        b_off = Signal(line_bits, name="b_offset")
        t_off = Signal(addr_bits, name="t_offset")
        j = Signal(SIZE_BITS, name="j")
        j_off = Signal(line_bits, name="j_offset")
        with m.If(ctl.start):
            m.d.sync += [t.eq(0), b.eq(0), c.eq(0), b_off.eq(0), t_off.eq(0), j.eq(0),
                         j_off.eq(0)]

        def nested_loop(levels):
            """One step of nested counters, innermost first: ``[(counter, limit, steps),
            ...]``, where ``steps`` is a list of ``(register, stride, clear)`` that follow
            the counter: ``+ stride`` when it steps, and when it wraps, cleared (``clear``)
            or left to an outer level's steps; the command finishes after the last step of
            the outermost."""
            (counter, limit, steps), outer = levels[0], levels[1:]
            with m.If(counter + 1 == limit):
                m.d.sync += [counter.eq(0)] + [reg.eq(0) for reg, _, clear in steps if clear]
                if outer:
                    nested_loop(outer)
                else:
                    m.d.comb += self.finish.eq(1)
            with m.Else():
                m.d.sync += [counter.eq(counter + 1)] + [reg.eq(reg + stride)
                                                         for reg, stride, _ in steps]

        # The load computed in this cycle, issued in the next: its read and its micro-op.
        place = data.StructLayout({"e0": SIZE_BITS, "line": len(rd.line), "lanes": len(rd.lanes)})
        read = Signal(place, name="read")
        load = Signal(place, name="load_read")
        load_uop = Signal(bus.uop.shape(), name="load_uop")
        load_from = Signal(2, name="load_from")
        load_valid = Signal(name="load_valid")
        load_col = Signal(range(C), name="load_col")
        m.d.sync += [load_valid.eq(0), load_from.eq(0), load_uop.eq(0), load.eq(read),
                     load_col.eq(c)]

        # LOAD_COL / LOAD_ROW: t over tiles, b over columns; t_addr = abase + t*B + b.
        with m.If(ctl.active & ((op == Opcode.LOAD_COL) | (op == Opcode.LOAD_ROW))):
            cols = op == Opcode.LOAD_COL
            tiles = Mux(cols, nt, mt)
            e0 = Mux(cols, t * C, t * R)
            mask = Mux(cols, lane_mask(e0, cmd.n, C, lanes), lane_mask(e0, cmd.m, R, lanes))
            m.d.comb += [read.e0.eq(e0), read.line.eq(cmd.sp_base + b_off),
                         read.lanes.eq(mask)]
            m.d.sync += [load_valid.eq(1), load_from.eq(Mux(cols, 2, 1)),
                         load_uop.t_op.eq(Mux(cols, TransferOp.ACT_FROM_COL,
                                              TransferOp.ACT_FROM_ROW)),
                         load_uop.t_addr.eq(cmd.abase + t_off + b)]
            m.d.comb += self.bus_words.eq(popcount(read.lanes))
            nested_loop([(b, cmd.batch, [(b_off, cmd.sp_lpc, True)]),
                         (t, tiles, [(t_off, cmd.batch, True)])])

        # LOAD_W / STORE_W: t = ti, b = tj, c = PE column; j = c + b * C steps with c and
        # with b (c wraps as b steps), and clears as t steps.
        w_line = Signal(len(rd.line), name="w_line")
        m.d.comb += w_line.eq(cmd.sp_base + j_off)
        w_mask = Signal(lanes, name="w_mask")
        m.d.comb += w_mask.eq(Mux(j < cmd.n, lane_mask(t * R, cmd.m, R, lanes), 0))
        with m.If(ctl.active & (op == Opcode.LOAD_W)):
            m.d.comb += [read.e0.eq(t * R), read.line.eq(w_line), read.lanes.eq(w_mask)]
            m.d.sync += [load_valid.eq(1), load_from.eq(1),
                         load_uop.t_op.eq(TransferOp.W_FROM_ROW),
                         load_uop.t_addr.eq(cmd.wbase + t_off + b)]
        with m.If(ctl.active & ((op == Opcode.LOAD_W) | (op == Opcode.STORE_W))):
            nested_loop([(c, C, [(j, 1, False), (j_off, cmd.sp_lpc, False)]),
                         (b, nt, [(j, 1, True), (j_off, cmd.sp_lpc, True)]),
                         (t, mt, [(t_off, nt, True)])])
            m.d.comb += self.bus_words.eq(popcount(w_mask))

        with m.If(load_valid):
            m.d.comb += [rd.en.eq(1), rd.e0.eq(load.e0), rd.line.eq(load.line),
                         rd.lanes.eq(load.lanes)]
        # The load's micro-op, a cycle after its read. The command's last one goes out a
        # cycle after `finish`, well inside the settling the sequencer gives every command.
        sent_uop = Signal.like(load_uop, name="sent_uop")
        sent_from = Signal.like(load_from, name="sent_from")
        sent_valid = Signal(name="sent_valid")
        sent_col = Signal.like(load_col, name="sent_col")
        m.d.sync += [sent_uop.eq(load_uop), sent_from.eq(load_from), sent_valid.eq(load_valid),
                     sent_col.eq(load_col)]
        with m.If(sent_valid):
            m.d.comb += [bus.uop.eq(sent_uop), bus.bus_from.eq(sent_from),
                         bus.sel_col.eq(sent_col),
                         bus.sel_all.eq(sent_uop.t_op != TransferOp.W_FROM_ROW)]
        with m.If(ctl.active & (op == Opcode.STORE_W)):
            m.d.comb += [bus.uop.t_op.eq(TransferOp.SEND_W),
                         bus.uop.t_addr.eq(cmd.wbase + t_off + b),
                         bus.sel_col.eq(c), bus.sel_all.eq(0),
                         bus.red.on.eq(1), bus.red.store_w.eq(1), bus.red.e0.eq(t * R),
                         bus.red.line.eq(w_line), bus.red.lanes.eq(w_mask)]
        return m
