"""The core's sequencer: takes one command at a time, refuses malformed ones, and keeps the
core busy from the command's start until its last results have landed."""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec import isa

from .issue import CORE_OPS, EngineControl

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """Command intake and life cycle of the core.

    A command is taken in a cycle where ``command.valid`` and ``command.ready``; ``ready``
    is high while the core is idle. A command that is malformed (an operation that is not a
    core operation, or a size of zero that the operation needs, ``gen.spec.isa.NEEDS``) is
    refused at once: it sets ``error`` and never starts an engine, so it cannot leave the
    core waiting for a loop end that never comes. Any other command clears ``error`` and
    starts (``control.start``); it runs (``control.active``) until an engine raises
    ``finish``, and the core stays busy ``settle_cycles`` cycles more, while the last
    micro-op's results land.

    Parameters
    ----------
    layout : data.StructLayout
        The command layout (``hw.issue.command_layout``).
    rows, cols : int
        The PE array (for the tile counts).
    settle_cycles : int
        Busy cycles after ``finish``.

    Members
    -------
    command : In(stream.Signature(layout))
        The commands.
    error : Out(1)
        The last command taken was malformed.
    busy : Out(1)
        A command runs or settles.
    control : Out(hw.issue.EngineControl(layout))
        The running command, to the engines.
    finish : In(1)
        An engine has issued the command's last micro-op.
    """

    def __init__(self, layout, *, rows, cols, settle_cycles):
        if not isinstance(layout, data.StructLayout):
            raise TypeError(f"layout must be a StructLayout, not {layout!r}")
        for name, value in (("rows", rows), ("cols", cols), ("settle_cycles", settle_cycles)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.layout = layout
        self.rows, self.cols = rows, cols
        self.settle_cycles = settle_cycles
        super().__init__({
            "command": In(stream.Signature(layout)),
            "error": Out(1),
            "busy": Out(1),
            "control": Out(EngineControl(layout)),
            "finish": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        new, ctl, busy = self.command.payload, self.control, self.busy
        m.d.comb += self.command.ready.eq(~busy)

        # The sizes each operation needs (gen.spec.isa's rule).
        malformed = Signal(name="malformed")
        m.d.comb += malformed.eq(1)
        with m.Switch(new.op):
            for op in CORE_OPS:
                with m.Case(op.value):
                    sizes = [getattr(new, size) for size in isa.NEEDS[op]]
                    m.d.comb += malformed.eq(sum((size == 0 for size in sizes), Const(0, 4)) != 0)
        taken = self.command.valid & ~busy
        m.d.comb += ctl.start.eq(taken & ~malformed)
        with m.If(taken):
            m.d.sync += self.error.eq(malformed)
            with m.If(~malformed):
                m.d.sync += [ctl.cmd.eq(new), busy.eq(1)]

        # Running, then settling for a countdown once an engine finishes.
        running = Signal(name="running")
        settling = Signal(range(self.settle_cycles + 1), name="settling")
        m.d.comb += ctl.active.eq(busy & running)
        with m.If(ctl.start):
            m.d.sync += [running.eq(1), settling.eq(0)]
        with m.If(self.finish):
            m.d.sync += [running.eq(0), settling.eq(self.settle_cycles)]
        with m.If(busy & ~running & (settling != 0)):
            m.d.sync += settling.eq(settling - 1)
            with m.If(settling == 1):
                m.d.sync += busy.eq(0)

        # Tile counts of the command.
        cmd = ctl.cmd
        m.d.comb += [ctl.mt.eq((cmd.m + (R - 1)) // R if R > 1 else cmd.m),
                     ctl.nt.eq((cmd.n + (C - 1)) // C if C > 1 else cmd.n)]
        return m
