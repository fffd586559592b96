"""The core's compute and drain engines: FORWARD, BACKWARD and WGRAD (``hw.core``).

The compute engine issues the compute slot of the micro-ops: the MACs of a group of
outputs, one accumulator each, step after step, then the next group; for WGRAD, the
update passes of the group (velocity, update) after its last step, or, with the update
fused (``fused``), none: the group's first MAC starts from the weight and its last one
writes the weight back. Each PE has two groups
of accumulators: in FORWARD and BACKWARD, while the compute engine fills one, the drain
engine sends the partial sums of the other over the buses to the edge reducers, one PE
along the bus after the other (or, with the neighbour-link tree, a level of neighbour adds
after the other and one bus pass). A :class:`GroupHandoff` passes the groups between them.

Outputs are numbered ``o = g * G + k`` (group ``g``, accumulator ``k`` of ``G``); output
``o`` sits at position ``(p1, p2)``: FORWARD ``Y[R*p1 + r][p2]``, BACKWARD
``dX[C*p1 + c][p2]``, WGRAD ``dW[R*p1 + r][C*p2 + c]`` in PE ``(r, c)``.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.isa import Opcode

from .issue import (SIZE_BITS, EngineControl, lane_mask, popcount, request_layout,
                    requested)
from .pe import ComputeOp, TransferOp

__all__ = ["GroupHandoff", "ComputeEngine", "DrainEngine"]

#: Width of an output number (``o``, a product of two sizes).
OUTPUT_BITS = 2 * SIZE_BITS


class GroupHandoff(wiring.Signature):
    """The accumulator groups, from the compute engine (``Out``) to the drain engine.

    Members
    -------
    outputs : Out(OUTPUT_BITS)
        Outputs per PE of the command.
    groups : Out(SIZE_BITS)
        Groups of the command: ``ceil(outputs / G)``.
    claim : Out(2)
        The compute engine starts filling buffer 0 (bit 0) or 1 (bit 1).
    filled : Out(1)
        A group is accumulated (FORWARD, BACKWARD): it waits to be drained.
    release : In(2)
        The drain engine has drained buffer 0 (bit 0) or 1 (bit 1); it may be refilled.
    drained : In(1)
        Every group of the command is drained.
    """

    def __init__(self):
        super().__init__({
            "outputs": Out(OUTPUT_BITS),
            "groups": Out(SIZE_BITS),
            "claim": Out(2),
            "filled": Out(1),
            "release": In(2),
            "drained": In(1),
        })


def _next_position(hi, lo, limit):
    """The position after ``(hi, lo)``: ``lo`` counts to ``limit``, then ``hi``."""
    wraps = lo + 1 == limit
    return Mux(wraps, hi + 1, hi), Mux(wraps, 0, lo + 1)


class _Engine(wiring.Component):
    """Parameters and members common to both engines."""

    def __init__(self, command, issue, *, rows, cols, group, members):
        for name, layout in (("command", command), ("issue", issue)):
            if not isinstance(layout, data.StructLayout):
                raise TypeError(f"{name} must be a StructLayout, not {layout!r}")
        for name, value in (("rows", rows), ("cols", cols), ("group", group)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.rows, self.cols, self.group = rows, cols, group
        super().__init__({
            "control": In(EngineControl(command)),
            "issue": Out(issue),
            **members,
        })

    def _request(self, m):
        """The engine's requests, as a signal that drives ``issue`` (see
        ``hw.issue.requested``)."""
        request = Signal(request_layout(self.issue.shape(), self.requests), name="request")
        m.d.comb += self.issue.eq(requested(self.issue.shape(), request))
        return request

    def _phases(self):
        op = self.control.cmd.op
        return op == Opcode.FORWARD, op == Opcode.BACKWARD, op == Opcode.WGRAD


class ComputeEngine(_Engine):
    """Issues the compute slots of FORWARD, BACKWARD and WGRAD (see the module docstring).

    With dual precision (``streams = 2``) a MAC slot takes outputs ``o`` (pair 0) and
    ``o + 1`` (pair 1, at the position after), and the slot after starts two outputs on;
    WGRAD's update and velocity passes stay one output per slot
    (``docs/dual_precision.md``).

    Held operands (one stream): a MAC slot whose stationary operand -- the weight at
    ``waddr`` in FORWARD and BACKWARD, the gradient at ``aaddr2`` in WGRAD -- has the
    address of the previous MAC slot's of the same command is issued with ``c_hold``, and
    the PEs do not read it again (``hw.pe.PE``); likewise ``c_hold_b`` for the streaming
    operand at ``aaddr``. Consecutive slots of a group share the stationary operand when
    their outputs have the same ``p1`` (FORWARD: the batch columns of one row tile share
    ``W[i][k]`` at step ``k``; BACKWARD: ``W[k][j]``; WGRAD: ``dY[i][b]`` is shared by the
    outputs of one ``i``), and the streaming one when they have the same ``p2`` (with batch
    1, FORWARD's and BACKWARD's outputs all take ``X[k]``, resp. ``dY[k]``, at step ``k``;
    WGRAD with ``nt = 1``). No slot of the command writes those words: FORWARD and BACKWARD
    write no weight and fill (``fill``) only words they do not read, WGRAD's write-backs
    (the update passes, the fused update's last MAC) go to the weight bank, which holds
    neither of its operands, and a load beside a WGRAD writes no word it reads
    (``hw.sequencer``). With two streams nothing is held: pair 0 and pair 1 take turns on
    positions two outputs apart, and the argument above was not extended to them. The
    reuse cache keys the stationary operand by its address and the streaming one by its
    value, neither of which a hold changes, so holds are issued with a reuse cache too.
    ``sim.golden.core_counts.stationary_reads`` and ``streaming_reads`` count the reads
    that remain.

    Parameters
    ----------
    command, issue : data.StructLayout
        The command and issue layouts (``hw.issue``).
    rows, cols : int
        The PE array.
    group : int
        ``G``, accumulators per group.
    streams : int
        Outputs per MAC slot: 1, or 2 with dual precision.
    random_policy : bool
        The PEs' dual-precision policy is ``"random"``: issue its bit with each pair 1.
    reuse, reuse_shared : bool
        The PEs have reuse caches (mark the first MAC of a command); their tags are shared
        along lines of PEs (say which lines: rows in BACKWARD).

    Members
    -------
    control : In(hw.issue.EngineControl(command))
    issue : Out(issue)
        The compute slot of this cycle (the micro-op's ``c_*`` and address fields).
    handoff : Out(GroupHandoff())
    dual_seed : In(gen.spec.isa.DUAL_SEED_BITS)
        Seed of the ``random`` policy.
    stall : Out(1)
        The engine waits for a buffer to be drained in this cycle.
    finish : Out(1)
        The command's last slot is issued and every group is drained.
    handover : Out(1)
        A FORWARD or BACKWARD has issued its last slot, and only its last group is left to
        drain (the other buffer is free): a WGRAD may start beside that drain
        (``hw.sequencer``'s drain slot).

    Attributes
    ----------
    requests : tuple of str
        The fields of ``issue`` the engine drives (paths such as ``"bus.uop.c_op"``).
    """

    def __init__(self, command, issue, *, rows, cols, group, streams=1, random_policy=False,
                 reuse=False, reuse_shared=False):
        if streams not in (1, 2):
            raise ValueError(f"streams must be 1 or 2, not {streams!r}")
        self.streams = streams
        self.random_policy = bool(random_policy)
        self.reuse, self.reuse_shared = bool(reuse), bool(reuse_shared)
        super().__init__(command, issue, rows=rows, cols=cols, group=group, members={
            "handoff": Out(GroupHandoff()),
            "dual_seed": In(isa.DUAL_SEED_BITS),
            "stall": Out(1),
            "finish": Out(1),
            "handover": Out(1),
        })

    @property
    def requests(self):
        fields = ["c_op", "c_acc", "c_clear", "a_act", "waddr", "aaddr", "aaddr2"]
        if self.streams == 1:
            fields += ["c_init_w", "c_to_w", "c_hold", "c_hold_b"]
        if self.streams == 2:
            fields += ["pair1", "waddr1", "aaddr1", "aaddr2_1"]
        if self.random_policy:
            fields.append("rand")
        if self.reuse:
            fields.append("c_fresh")
        if self.reuse_shared:
            fields.append("c_rows")
        return tuple(f"bus.uop.{name}" for name in fields)

    def elaborate(self, platform):
        m = Module()
        G = self.group
        ctl, hand = self.control, self.handoff
        cmd, nt, mt = ctl.cmd, ctl.nt, ctl.mt
        uop = self._request(m).bus.uop
        fwd, bwd, wgr = self._phases()
        active = ctl.active & (fwd | bwd | wgr)
        fused = self._fused()

        # Outputs per PE, steps per output, and the wrap of the (p1, p2) position counter.
        outputs = hand.outputs
        steps = Signal(SIZE_BITS, name="steps")
        wrap = Signal(SIZE_BITS, name="wrap")
        # outputs and groups come registered from the sequencer (products of sizes).
        m.d.comb += [
            outputs.eq(ctl.outputs),
            steps.eq(Mux(fwd, nt, Mux(bwd, mt, cmd.batch))),
            wrap.eq(Mux(wgr, nt, cmd.batch)),
            hand.groups.eq(ctl.groups),
        ]

        g = Signal(SIZE_BITS, name="group")
        s = Signal(SIZE_BITS, name="step")
        k = Signal(range(G + 1), name="k")
        upd = Signal(name="updating")         # WGRAD: the update pass of a group
        vel = Signal(name="velocity")         # WGRAD with momentum: the velocity pass
        o = Signal(OUTPUT_BITS, name="output")  # g * G + k
        p1 = Signal(SIZE_BITS, name="p1")
        p2 = Signal(SIZE_BITS, name="p2")
        g_p1 = Signal(SIZE_BITS, name="group_p1")   # position at the group's first output
        g_p2 = Signal(SIZE_BITS, name="group_p2")
        done = Signal(name="done")
        buf = Signal(name="buffer")
        free = Signal(2, name="buffer_free", init=0b11)
        fresh = Signal(name="fresh")          # no MAC issued yet in this command
        # The buffer parity and the free bits carry over from one command to the next: a
        # WGRAD taken while the command before drains its last group (hw.sequencer's drain
        # slot) accumulates in the other buffer.
        with m.If(ctl.start):
            m.d.sync += [fresh.eq(1), g.eq(0), s.eq(0), k.eq(0), upd.eq(0), vel.eq(0),
                         o.eq(0), p1.eq(0), p2.eq(0), g_p1.eq(0), g_p2.eq(0), done.eq(0)]
        # The operand addresses of the command's last MAC slot (none yet after `start`).
        width = max(len(uop.waddr), len(uop.aaddr2))
        last = (Signal(width, name="last_stationary"),
                Signal.like(uop.aaddr, name="last_streaming"), Signal(name="last_valid"))
        with m.If(ctl.start):
            m.d.sync += last[2].eq(0)

        next_p1, next_p2 = _next_position(p1, p2, wrap)
        products = self._stepped_products(m, uop, p1, p2, s, wrap) if self.streams == 1 \
            else None
        if self.streams == 2:
            after2_p1, after2_p2 = _next_position(next_p1, next_p2, wrap)
            one_output = upd | vel
            inc = Mux(one_output, 1, 2)
            after_p1 = Mux(one_output, next_p1, after2_p1)
            after_p2 = Mux(one_output, next_p2, after2_p2)
        else:
            inc = 1
            after_p1, after_p2 = next_p1, next_p2
        can_start = free.bit_select(buf, 1) | (s != 0) | (k != 0) | upd | vel | wgr
        # Unconditional: a drain slot's last group is released after the WGRAD beside it
        # may have ended.
        m.d.sync += free.eq((free & ~hand.claim) | hand.release)

        with m.If(active & ~done):
            with m.If(~can_start):
                m.d.comb += self.stall.eq(1)
            with m.Else():
                with m.If((fwd | bwd) & (s == 0) & (k == 0)):
                    m.d.comb += hand.claim.eq(Mux(buf, 0b10, 0b01))
                with m.If(o < outputs):
                    self._slot(m, uop, (buf * G + k)[:len(uop.c_acc)], upd, vel, fresh,
                               o, s, (p1, p2), (next_p1, next_p2), last, products)
                # Advance k (and the position), then s, then the group.
                with m.If(k + inc == G):
                    m.d.sync += [k.eq(0), o.eq(o - G + inc), p1.eq(g_p1), p2.eq(g_p2)]
                    self._step(m, products, "group")
                    last_step = Mux(wgr & ~fused, upd, s + 1 == steps)
                    with m.If(wgr & ~fused & ~upd & ~vel & (s + 1 == steps)):
                        # The batch is accumulated: the velocity pass (momentum), the update.
                        m.d.sync += [vel.eq(cmd.flag), upd.eq(~cmd.flag), s.eq(0)]
                        self._step(m, products, "first_step")
                    with m.Elif(vel):
                        m.d.sync += [vel.eq(0), upd.eq(1)]
                    with m.Elif(last_step):
                        m.d.sync += [s.eq(0), upd.eq(0), g.eq(g + 1), o.eq(o + inc),
                                     p1.eq(after_p1), p2.eq(after_p2),
                                     g_p1.eq(after_p1), g_p2.eq(after_p2)]
                        self._step(m, products, "first_step", "next", "next_group")
                        m.d.comb += hand.filled.eq(~wgr)
                        with m.If(~wgr):
                            m.d.sync += buf.eq(~buf)
                        with m.If(g + 1 == hand.groups):
                            m.d.sync += done.eq(1)
                    with m.Else():
                        m.d.sync += s.eq(s + 1)
                        self._step(m, products, "next_step")
                with m.Else():
                    m.d.sync += [k.eq(k + inc), o.eq(o + inc),
                                 p1.eq(after_p1), p2.eq(after_p2)]
                    self._step(m, products, "next")

        # The command ends when the last slot is issued and every group is drained.
        m.d.comb += self.finish.eq(active & done & (wgr | hand.drained))
        # Only the last group is left to drain, and the other buffer is free.
        m.d.comb += self.handover.eq(active & (fwd | bwd) & done & free.bit_select(buf, 1))
        return m

    def _fused(self):
        """WGRAD with the update fused into the MAC passes: the ``fused`` bit, without
        momentum, on one stream (``sim.golden.core_counts.wgrad_fused``)."""
        cmd = self.control.cmd
        if self.streams != 1:
            return Const(0, 1)
        return (cmd.op == Opcode.WGRAD) & cmd.fused & ~cmd.flag

    def _slot(self, m, uop, acc, upd, vel, fresh, o, s, position, next_position, last,
              products):
        """The compute slot of output ``o`` at ``position``, step ``s``: a velocity or an
        update pass of WGRAD, or a MAC (and its pair 1 at ``next_position``); ``last`` holds
        the operand addresses of the command's last MAC slot and whether there was one;
        ``products`` the stepped products of the position (:meth:`_stepped_products`), or
        None to multiply them out."""
        cmd = self.control.cmd
        fwd, bwd, wgr = phases = self._phases()
        p1, p2 = position
        if products is None:
            products = self._products(s, p1, p2)
        with m.If(vel):
            m.d.comb += [uop.c_op.eq(ComputeOp.UPDATE_V), uop.c_acc.eq(acc),
                         uop.waddr.eq(cmd.wbase2 + products["p1_nt"] + p2)]
        with m.Elif(upd):
            m.d.comb += [uop.c_op.eq(ComputeOp.UPDATE), uop.c_acc.eq(acc),
                         uop.waddr.eq(cmd.wbase + products["p1_nt"] + p2)]
        with m.Else():
            m.d.comb += [uop.c_op.eq(ComputeOp.MAC), uop.c_acc.eq(acc),
                         uop.c_clear.eq(s == 0), uop.a_act.eq(wgr)]
            if self.streams == 1:
                # Fused update: the chain of W(wbase + p1*nt + p2) starts from it (first
                # sample) and ends in it (last sample).
                fused = self._fused()
                with m.If(fused):
                    m.d.comb += [uop.c_init_w.eq(s == 0), uop.c_to_w.eq(s + 1 == cmd.batch),
                                 uop.waddr.eq(cmd.wbase + products["p1_nt"] + p2)]
            if self.reuse:
                # The first MAC of a command starts the reuse caches afresh.
                m.d.comb += uop.c_fresh.eq(fresh)
                m.d.sync += fresh.eq(0)
            if self.reuse_shared:
                m.d.comb += uop.c_rows.eq(bwd)
            self._mac_addresses(m, s, p1, p2, phases, uop.waddr, uop.aaddr, uop.aaddr2,
                                products)
            if self.streams == 1:
                self._hold(m, uop, wgr, last)
            if self.streams == 2:
                self._pair1(m, uop, o, s, next_position, phases)

    def _hold(self, m, uop, wgr, last):
        """``c_hold`` (``c_hold_b``) for a MAC slot whose stationary operand (WGRAD: the
        gradient at ``aaddr2``, else the weight at ``waddr``; streaming operand: at
        ``aaddr``) is the last MAC slot's of the command; the addresses are remembered for
        the next one."""
        last_a, last_b, valid = last
        stationary = Mux(wgr, uop.aaddr2, uop.waddr)
        m.d.comb += [uop.c_hold.eq(valid & (stationary == last_a)),
                     uop.c_hold_b.eq(valid & (uop.aaddr == last_b))]
        m.d.sync += [last_a.eq(stationary), last_b.eq(uop.aaddr), valid.eq(1)]

    def _products(self, s, p1, p2):
        """The products of a position and step with the command's sizes that the bank
        addresses use, multiplied out."""
        nt, batch = self.control.nt, self.control.cmd.batch
        return {"p1_nt": p1 * nt, "s_nt": s * nt, "s_batch": s * batch,
                "p1_batch": p1 * batch, "p2_batch": p2 * batch}

    def _stepped_products(self, m, uop, p1, p2, s, wrap):
        """:meth:`_products` of the current position ``(p1, p2)`` and step ``s`` held in
        registers that step with them (``hw.compute`` addresses every bank without a
        multiplier), with those of the group's first position and of the next position;
        :meth:`_step` moves them."""
        nt, batch = self.control.nt, self.control.cmd.batch
        width = max(len(uop.waddr), len(uop.aaddr), len(uop.aaddr2))
        now = {name: Signal(width, name=f"{name}_now")
               for name in ("p1_nt", "s_nt", "s_batch", "p1_batch", "p2_batch")}
        group = {name: Signal(width, name=f"{name}_group")
                 for name in ("p1_nt", "p1_batch", "p2_batch")}
        wraps = p2 + 1 == wrap
        nxt = {"p1_nt": Mux(wraps, now["p1_nt"] + nt, now["p1_nt"]),
               "p1_batch": Mux(wraps, now["p1_batch"] + batch, now["p1_batch"]),
               "p2_batch": Mux(wraps, 0, now["p2_batch"] + batch)}
        with m.If(self.control.start):
            m.d.sync += [reg.eq(0) for reg in (*now.values(), *group.values())]
        return {**now, "group": group, "next": nxt, "nt": nt, "batch": batch}

    @staticmethod
    def _step(m, products, *moves):
        """Move the stepped products (:meth:`_stepped_products`, nothing if None) as the
        position and step move: ``group`` (back to the group's first position),
        ``next`` (to the next position), ``next_group`` (the group starts at the next
        position), ``first_step`` (step 0), ``next_step`` (step + 1)."""
        if products is None:
            return
        group, nxt = products["group"], products["next"]
        for move in moves:
            if move == "group":
                m.d.sync += [products[name].eq(group[name]) for name in group]
            elif move == "next":
                m.d.sync += [products[name].eq(nxt[name]) for name in nxt]
            elif move == "next_group":
                m.d.sync += [group[name].eq(nxt[name]) for name in group]
            elif move == "first_step":
                m.d.sync += [products["s_nt"].eq(0), products["s_batch"].eq(0)]
            else:
                m.d.sync += [products["s_nt"].eq(products["s_nt"] + products["nt"]),
                             products["s_batch"].eq(products["s_batch"] + products["batch"])]

    def _mac_addresses(self, m, s, p1, p2, phases, waddr, aaddr, aaddr2, products=None):
        """The bank addresses of the MAC of output ``(p1, p2)`` at step ``s``: the weight
        (FORWARD, BACKWARD) or the gradient (WGRAD, ``aaddr2``) and the activation;
        ``products`` as :meth:`_slot`'s."""
        cmd = self.control.cmd
        fwd, bwd, wgr = phases
        x = self._products(s, p1, p2) if products is None else products
        with m.If(fwd):
            m.d.comb += [waddr.eq(cmd.wbase + x["p1_nt"] + s),
                         aaddr.eq(cmd.abase + x["s_batch"] + p2)]
        with m.If(bwd):
            m.d.comb += [waddr.eq(cmd.wbase + x["s_nt"] + p1),
                         aaddr.eq(cmd.abase + x["s_batch"] + p2)]
        with m.If(wgr):
            m.d.comb += [aaddr2.eq(cmd.abase2 + x["p1_batch"] + s),
                         aaddr.eq(cmd.abase + x["p2_batch"] + s)]

    def _pair1(self, m, uop, o, s, position, phases):
        """Pair 1 of a dual-precision MAC slot: output ``o + 1`` at ``position``, the same
        step ``s``; its addresses as pair 0's, and the ``random`` policy's bit."""
        q1, q2 = position
        m.d.comb += uop.pair1.eq(o + 1 < self.handoff.outputs)
        self._mac_addresses(m, s, q1, q2, phases, uop.waddr1, uop.aaddr1, uop.aaddr2_1)
        if self.random_policy:
            # sim.golden.dual.random_bits(o, s, seed) in 16-bit arithmetic: a hash of the
            # slot, so that the bit does not depend on the order in which slots are issued.
            x = Signal(16, name="random_x")
            y = Signal(16, name="random_y")
            m.d.comb += [x.eq(o[:16] * 40503 + s * 10007 + self.dual_seed * 49297),
                         y.eq(x * 25173 + 13849),
                         uop.rand.eq(y[15])]


class DrainEngine(_Engine):
    """Drains the accumulated groups of FORWARD and BACKWARD to the edge reducers (see the
    module docstring).

    Its ``control`` is the sequencer's ``drain_control``: the running command, or, once a
    WGRAD has been taken beside the last group's drain, the command in the drain slot. So
    the engine keeps the command's outputs and groups from the hand-over of its groups,
    and its buffer parity from one command to the next, as the compute engine does.

    A group is drained in passes: one per PE along the bus (FORWARD: the row buses, column
    0 first; BACKWARD: the column buses, row 0 first), each sending accumulator ``k`` of
    every PE of the pass, ``k`` from 0 to ``G - 1``, with the reducer step of output
    ``g * G + k``; with the neighbour-link tree, one pass per tree level and one bus pass
    that sends the sums from PE 0.

    With ``fill`` (on a square array) each send also asks for its results to go into the
    activation banks at ``abase2 + o``: output ``o = p1 * batch + p2`` is element
    ``R * p1 + l`` (``C * p1 + l``) of batch column ``p2`` on lane ``l``, which LOAD_COL
    (LOAD_ROW) puts at ``abase + p1 * batch + p2`` of PE column (row) ``l``.

    Parameters
    ----------
    command, issue : data.StructLayout
        The command and issue layouts (``hw.issue``).
    rows, cols : int
        The PE array.
    group : int
        ``G``, accumulators per group.
    mac_latency : int
        The PEs' MAC latency ``L``.
    streams : int
        Outputs per MAC slot (1, or 2 with dual precision).
    tree : bool
        Reduce over the neighbour links (``core.reduction = "tree"``).

    Members
    -------
    control : In(hw.issue.EngineControl(command))
    issue : Out(issue)
        The transfer slot, the bus selection, the reducer step and the tree level.
    handoff : In(GroupHandoff())
    bus_words : Out(range(max(rows, cols) + 1))
        Words sent over the buses to the reducers in this cycle.

    Attributes
    ----------
    requests : tuple of str
        The fields of ``issue`` the engine drives (paths such as ``"bus.red"``).
    """

    def __init__(self, command, issue, *, rows, cols, group, mac_latency, streams=1,
                 tree=False):
        self.mac_latency, self.streams, self.tree = mac_latency, streams, bool(tree)
        super().__init__(command, issue, rows=rows, cols=cols, group=group, members={
            "handoff": In(GroupHandoff()),
            "bus_words": Out(range(max(rows, cols) + 1)),
        })

    @property
    def requests(self):
        tree = ("bus.tree_level", "bus.tree_cols") if self.tree else ()
        red = tuple(f"bus.red.{name}" for name in ("on", "cols", "first", "last", "k", "e0",
                                                   "line", "lanes", "relu", "mask",
                                                   "mask_line"))
        fill = ("bus.fill", "bus.fill_addr") if self.rows == self.cols else ()
        return ("bus.uop.t_op", "bus.uop.t_acc", "bus.sel_col", "bus.sel_row") + red + tree \
            + fill

    def elaborate(self, platform):
        m = Module()
        R, C, G, L = self.rows, self.cols, self.group, self.mac_latency
        ctl, hand = self.control, self.handoff
        cmd = ctl.cmd
        bus = self._request(m).bus
        red = bus.red
        fwd, bwd, _ = self._phases()

        pending = Signal(2, name="pending")       # groups waiting to be drained (count)
        group = Signal(SIZE_BITS, name="group")
        lane = Signal(range(max(R, C) + 1), name="lane")   # the pass
        k = Signal(range(G + 1), name="k")
        wait = Signal(8, name="wait")
        running = Signal(name="running")
        p1 = Signal(SIZE_BITS, name="p1")
        p2 = Signal(SIZE_BITS, name="p2")
        g_p1 = Signal(SIZE_BITS, name="group_p1")
        g_p2 = Signal(SIZE_BITS, name="group_p2")
        buf = Signal(name="buffer")
        # The buffer parity carries over, as the compute engine's does. The command's
        # outputs and groups are kept from its groups' hand-over: in the drain slot the
        # compute engine runs the next command.
        outputs = Signal.like(hand.outputs, name="drain_outputs")
        groups = Signal.like(hand.groups, name="drain_groups")
        with m.If(hand.filled):
            m.d.sync += [outputs.eq(hand.outputs), groups.eq(hand.groups)]
        with m.If(ctl.start):
            m.d.sync += [pending.eq(0), group.eq(0), lane.eq(0), k.eq(0), running.eq(0),
                         wait.eq(0), p1.eq(0), p2.eq(0), g_p1.eq(0), g_p2.eq(0)]
        m.d.comb += hand.drained.eq(group == groups)

        # Passes over a group: one per PE along the bus (a chain of adds at the edge), or
        # with the tree one per level of neighbour-link adds and one bus pass.
        if self.tree:
            tree_levels = Mux(fwd, ceil_log2(C), ceil_log2(R))
            passes = tree_levels + 1
            reducing = lane < tree_levels
            sender = Const(0, 1)
        else:
            passes = Mux(fwd, C, R)
            reducing = Const(0, 1)
            sender = lane
        drained = Signal(name="group_drained")
        with m.If(hand.filled & ~drained):
            m.d.sync += pending.eq(pending + 1)
        with m.If(~hand.filled & drained):
            m.d.sync += pending.eq(pending - 1)

        output = Signal(OUTPUT_BITS, name="output")
        m.d.comb += output.eq(group * G + k)
        next_p1, next_p2 = _next_position(p1, p2, cmd.batch)
        sending = running & (wait == 0)
        acc = (buf * G + k)[:len(bus.uop.t_acc)]
        with m.If(ctl.active & (fwd | bwd)):
            with m.If(~running & (pending != 0)):
                # The first send (accumulator 0) reads L + 2 cycles after its last MAC at the
                # earliest; that MAC was issued P - 1 cycles before the group ended (P =
                # G / streams slots per step), and the drain starts 2 cycles after that, so
                # it waits only if P < L + 1.
                m.d.sync += [running.eq(1), wait.eq(max(0, L + 1 - G // self.streams)),
                             lane.eq(0), k.eq(0)]
            with m.If(running & (wait != 0)):
                m.d.sync += wait.eq(wait - 1)
            if self.tree:
                with m.If(sending & reducing):
                    # Tree: a level of neighbour-link additions; nothing crosses a bus.
                    m.d.comb += [bus.uop.t_op.eq(TransferOp.REDUCE_ACC),
                                 bus.uop.t_acc.eq(acc),
                                 bus.tree_level.eq(lane + 1), bus.tree_cols.eq(bwd)]
            with m.If(sending & ~reducing):
                # Bus: the partial sums of PE `sender` to the edge reducers (tree: the
                # finished sums of PE 0, which the reducer passes through: +0 + S is S).
                m.d.comb += [bus.uop.t_op.eq(TransferOp.SEND_ACC), bus.uop.t_acc.eq(acc),
                             bus.sel_col.eq(Mux(fwd, sender, 0)),
                             bus.sel_row.eq(Mux(bwd, sender, 0)),
                             red.on.eq(output < outputs), red.cols.eq(bwd),
                             red.first.eq(sender == 0), red.last.eq(lane + 1 == passes),
                             red.k.eq(k), red.relu.eq(fwd & cmd.flag),
                             red.mask.eq(bwd & cmd.flag)]
            with m.If(sending):
                self._destination(m, red, p1, p2)
                if self.rows == self.cols:
                    m.d.comb += [bus.fill.eq(cmd.fill & ~reducing),
                                 bus.fill_addr.eq(cmd.abase2 + output)]
                with m.If(red.on):
                    m.d.comb += self.bus_words.eq(popcount(red.lanes))
                with m.If(k + 1 == G):
                    m.d.sync += [k.eq(0), p1.eq(g_p1), p2.eq(g_p2)]
                    with m.If(lane + 1 == passes):
                        # The group is drained: its buffer may be reused.
                        m.d.comb += [drained.eq(1), hand.release.eq(Mux(buf, 0b10, 0b01))]
                        m.d.sync += [lane.eq(0), running.eq(0), buf.eq(~buf),
                                     group.eq(group + 1),
                                     p1.eq(next_p1), p2.eq(next_p2),
                                     g_p1.eq(next_p1), g_p2.eq(next_p2)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                with m.Else():
                    m.d.sync += [k.eq(k + 1), p1.eq(next_p1), p2.eq(next_p2)]
        return m

    def _destination(self, m, red, p1, p2):
        """Where the reduced outputs of position ``(p1, p2)`` go: FORWARD ``Y[R*p1 + r][p2]``,
        BACKWARD ``dX[C*p1 + c][p2]`` (``p1`` the tile, ``p2`` the batch column), and the
        activations of BACKWARD's ReLU mask."""
        R, C = self.rows, self.cols
        lanes = max(R, C)
        cmd = self.control.cmd
        fwd, _, _ = self._phases()
        with m.If(fwd):
            m.d.comb += [red.e0.eq(p1 * R), red.lanes.eq(lane_mask(p1 * R, cmd.m, R, lanes))]
        with m.Else():
            m.d.comb += [red.e0.eq(p1 * C), red.lanes.eq(lane_mask(p1 * C, cmd.n, C, lanes))]
        m.d.comb += [red.line.eq(cmd.sp_base + p2 * cmd.sp_lpc),
                     red.mask_line.eq(cmd.sp2_base + p2 * cmd.sp2_lpc)]
