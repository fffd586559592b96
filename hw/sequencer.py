"""The core's sequencer: takes the commands, refuses malformed ones, and keeps the core busy
from a command's start until its last results have landed. A load into the activation banks
may run beside a ``WGRAD`` (the side slot), which leaves the mover, the scratchpad's read
port and the activation banks' write port free; a ``WGRAD`` may start while a ``FORWARD`` or
``BACKWARD`` drains its last group (the drain slot), as it uses neither the drain engine nor
the buffer being drained."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec import isa

from .issue import CORE_OPS, SIZE_BITS, EngineControl

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

    The side slot: while the running command is a ``WGRAD`` and no side command runs
    (``side_ready``), a ``LOAD_COL`` or ``LOAD_ROW`` presented with ``side_valid`` is taken
    beside it and handed to the mover (``mover_control``); it finishes with the mover's
    ``mover_finish`` and settles like any command. Whoever asserts ``side_valid`` makes
    sure that the load writes no activation word the ``WGRAD`` reads (``hw.controller``
    does), so the results are those of the two commands in order.

    The drain slot: once a ``FORWARD`` or ``BACKWARD`` has issued its last compute slot and
    only its last group is left to drain (the compute engine's ``handover``), a ``WGRAD``
    presented with ``drain_valid`` (while ``drain_ready``) is taken: the running command
    moves into the drain slot, where the drain engine finishes it (``drain_control``; it
    ends with ``drain_finish`` and settles like any command), and the ``WGRAD`` runs in the
    main slot, accumulating in the other buffer. Whoever asserts ``drain_valid`` makes sure
    that the ``WGRAD`` reads no activation word the drain fills (``hw.controller`` does).
    No load is taken beside the ``WGRAD`` while the drain slot is busy (the drain uses the
    buses and the activation banks' write port). The core is idle (``command.ready``) when
    no slot is busy.

    Parameters
    ----------
    layout : data.StructLayout
        The command layout (``hw.issue.command_layout``).
    rows, cols : int
        The PE array (for the tile counts).
    settle_cycles : int
        Busy cycles after ``finish``.
    group : int
        Accumulators per group of the compute engine (for ``control.groups``).

    The sizes the engines derive from a command (``mt``, ``nt``, ``outputs``, ``groups``:
    a division by the array's side and a product of two sizes) are registered when the
    command is taken, from the command presented, so that no engine multiplies in the
    cycle it issues.

    Members
    -------
    command : In(stream.Signature(layout))
        The commands.
    side_valid : In(1)
        Take ``command.payload`` into the side slot (with ``side_ready``; a ``LOAD_COL`` or
        ``LOAD_ROW`` only).
    side_ready : Out(1)
        The running command is a ``WGRAD``, the side slot is free and the drain slot idle.
    drain_valid : In(1)
        Take ``command.payload`` (a ``WGRAD``) into the main slot, the running command into
        the drain slot (with ``drain_ready``).
    drain_ready : Out(1)
        The running command is a ``FORWARD`` or ``BACKWARD`` with only its last group left
        to drain (``handover``, and not yet ``drain_finish``), and the drain and side slots
        are free.
    error : Out(1)
        The last command taken was malformed.
    busy, side_busy, drain_busy : Out(1)
        A command runs or settles, in the main slot, the side slot and the drain slot.
    control : Out(hw.issue.EngineControl(layout))
        The running command, to the engines.
    mover_control : Out(hw.issue.EngineControl(layout))
        The mover's command: the side slot's while it is busy, else the running one.
    drain_control : Out(hw.issue.EngineControl(layout))
        The drain engine's command: the drain slot's while it is busy, else the running
        one (``start`` only for a command taken while the drain slot is free; ``mt``,
        ``nt``, ``outputs`` and ``groups`` are not driven).
    finish : In(1)
        An engine other than the mover has issued the running command's last micro-op.
    mover_finish : In(1)
        The mover has issued its command's last micro-op (the side slot's if it is busy).
    handover : In(1)
        The compute engine's ``handover``.
    drain_finish : In(1)
        The drain engine has drained every group of its command.
    """

    def __init__(self, layout, *, rows, cols, settle_cycles, group=1):
        if not isinstance(layout, data.StructLayout):
            raise TypeError(f"layout must be a StructLayout, not {layout!r}")
        for name, value in (("rows", rows), ("cols", cols), ("settle_cycles", settle_cycles),
                            ("group", group)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.layout = layout
        self.rows, self.cols = rows, cols
        self.settle_cycles = settle_cycles
        self.group = group
        super().__init__({
            "command": In(stream.Signature(layout)),
            "side_valid": In(1),
            "side_ready": Out(1),
            "drain_valid": In(1),
            "drain_ready": Out(1),
            "error": Out(1),
            "busy": Out(1),
            "side_busy": Out(1),
            "drain_busy": Out(1),
            "control": Out(EngineControl(layout)),
            "mover_control": Out(EngineControl(layout)),
            "drain_control": Out(EngineControl(layout)),
            "finish": In(1),
            "mover_finish": In(1),
            "handover": In(1),
            "drain_finish": In(1),
        })

    def elaborate(self, platform):
        m = self._m = Module()
        new, ctl, busy = self.command.payload, self.control, self.busy
        m.d.comb += self.command.ready.eq(~busy & ~self.side_busy & ~self.drain_busy)

        # The sizes each operation needs (gen.spec.isa's rule).
        malformed = Signal(name="malformed")
        m.d.comb += malformed.eq(1)
        with m.Switch(new.op):
            for op in CORE_OPS:
                with m.Case(op.value):
                    sizes = [getattr(new, size) for size in isa.NEEDS[op]]
                    m.d.comb += malformed.eq(sum((size == 0 for size in sizes), Const(0, 4)) != 0)
        taken = self.command.valid & self.command.ready
        # The drain slot: a WGRAD taken while the running command drains its last group.
        drain = Signal.like(ctl.cmd, name="drain_cmd")
        m.d.comb += self.drain_ready.eq(
            busy & Cat(*[ctl.cmd.op == op for op in (isa.Opcode.FORWARD,
                                                     isa.Opcode.BACKWARD)]).any()
            & self.handover & ~self.drain_finish & ~self.drain_busy & ~self.side_busy)
        drain_taken = Signal(name="drain_taken")
        m.d.comb += drain_taken.eq(self.drain_valid & self.drain_ready
                                   & (new.op == isa.Opcode.WGRAD))
        m.d.comb += ctl.start.eq((taken | drain_taken) & ~malformed)
        new_sizes = self._sizes(new)
        main_sizes = self._sizes_of(m, "main")
        with m.If(taken | drain_taken):
            m.d.sync += self.error.eq(malformed)
            with m.If(~malformed):
                m.d.sync += [ctl.cmd.eq(new), busy.eq(1)]
                m.d.sync += [reg.eq(value) for reg, value in zip(main_sizes, new_sizes)]
        with m.If(drain_taken & ~malformed):
            m.d.sync += [drain.eq(ctl.cmd), self.drain_busy.eq(1)]

        # The side slot: a load beside a WGRAD.
        side = Signal.like(ctl.cmd, name="side_cmd")
        is_side_op = Cat(*[new.op == op for op in sorted(isa.SIDE_OPS)]).any()
        m.d.comb += self.side_ready.eq(busy & (ctl.cmd.op == isa.SIDE_HOST) & ~self.side_busy
                                       & ~self.drain_busy)
        side_taken = Signal(name="side_taken")
        m.d.comb += side_taken.eq(self.side_valid & self.side_ready & is_side_op)
        side_sizes = self._sizes_of(m, "side")
        with m.If(side_taken):
            m.d.sync += [self.error.eq(malformed), side.eq(new)]
            m.d.sync += [reg.eq(value) for reg, value in zip(side_sizes, new_sizes)]
            with m.If(~malformed):
                m.d.sync += self.side_busy.eq(1)

        # Each slot runs, then settles for a countdown once its engine finishes.
        side_finish = self.mover_finish & self.side_busy
        main_active = self._life(m, "main", busy, ctl.start, self.finish
                                 | (self.mover_finish & ~self.side_busy))
        side_active = self._life(m, "side", self.side_busy, side_taken & ~malformed,
                                 side_finish)
        drain_active = self._life(m, "drain", self.drain_busy, drain_taken & ~malformed,
                                  self.drain_finish & self.drain_busy)
        m.d.comb += ctl.active.eq(main_active)

        dctl = self.drain_control
        m.d.comb += [dctl.cmd.eq(Mux(self.drain_busy, drain, ctl.cmd)),
                     dctl.start.eq(taken & ~malformed),
                     dctl.active.eq(Mux(self.drain_busy, drain_active, main_active))]

        mover = self.mover_control
        m.d.comb += [mover.cmd.eq(Mux(self.side_busy, side, ctl.cmd)),
                     mover.start.eq(ctl.start | (side_taken & ~malformed)),
                     mover.active.eq(Mux(self.side_busy, side_active, main_active))]
        m.d.comb += [ctl.mt.eq(main_sizes[0]), ctl.nt.eq(main_sizes[1]),
                     ctl.outputs.eq(main_sizes[2]), ctl.groups.eq(main_sizes[3]),
                     mover.mt.eq(Mux(self.side_busy, side_sizes[0], main_sizes[0])),
                     mover.nt.eq(Mux(self.side_busy, side_sizes[1], main_sizes[1]))]
        return m

    def _life(self, m, name, busy, start, finish):
        """A slot's run and settling countdown (``busy`` is cleared at its end). Returns
        the signal that the slot's command runs."""
        running = Signal(name=f"{name}_running")
        settling = Signal(range(self.settle_cycles + 1), name=f"{name}_settling")
        with m.If(start):
            m.d.sync += [running.eq(1), settling.eq(0)]
        with m.If(finish):
            m.d.sync += [running.eq(0), settling.eq(self.settle_cycles)]
        with m.If(busy & ~running & (settling != 0)):
            m.d.sync += settling.eq(settling - 1)
            with m.If(settling == 1):
                m.d.sync += busy.eq(0)
        return busy & running

    def _sizes_of(self, m, name):
        """The registers of a slot's :meth:`_sizes`."""
        ctl = self.control
        return [Signal.like(getattr(ctl, field), name=f"{name}_{field}")
                for field in ("mt", "nt", "outputs", "groups")]

    def _sizes(self, cmd):
        """``mt``, ``nt``, ``outputs`` and ``groups`` of the command ``cmd`` (see
        ``hw.issue.EngineControl``)."""
        R, C, G = self.rows, self.cols, self.group
        mt = Signal(SIZE_BITS, name="new_mt")
        nt = Signal(SIZE_BITS, name="new_nt")
        outputs = Signal(2 * SIZE_BITS, name="new_outputs")
        groups = Signal(SIZE_BITS, name="new_groups")
        fwd, bwd = cmd.op == isa.Opcode.FORWARD, cmd.op == isa.Opcode.BACKWARD
        # One product whose factors the operation picks (mt * batch, nt * batch or mt *
        # nt), so that only the operation's decode, not the take, is before the multiplier.
        self._m.d.comb += [
            mt.eq((cmd.m + (R - 1)) // R if R > 1 else cmd.m),
            nt.eq((cmd.n + (C - 1)) // C if C > 1 else cmd.n),
            outputs.eq(Mux(bwd, nt, mt) * Mux(fwd | bwd, cmd.batch, nt)),
            groups.eq((outputs + (G - 1)) // G if G > 1 else outputs)]
        return mt, nt, outputs, groups
