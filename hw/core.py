"""The training core: an R x C array of PEs with row and column buses, edge reducers, a
banked scratchpad and a sequencer that expands core operations into micro-ops.

Data layout (``docs/architecture.md``): weight ``W[i][j]`` of a layer lives in
``PE(i mod R, j mod C)`` at weight-bank address ``wbase + (i div R) * NT + (j div C)``
with ``NT = ceil(N / C)``; an input ``X[j][b]`` is in the activation bank of every PE of
column ``j mod C`` at ``abase + (j div C) * B + b``; a gradient ``dY[i][b]`` in every PE
of row ``i mod R`` at ``abase + (i div R) * B + b``. Matrices in the scratchpad are
column-major (``hw.scratchpad``).

Operations (one command each):

``LOAD_COL`` / ``LOAD_ROW``
    A scratchpad matrix (``n`` elements per column, ``batch`` columns) into the activation
    banks over the column buses (inputs X) or the row buses (gradients dY); elements past
    ``n`` load as ``+0``.
``LOAD_W`` / ``STORE_W``
    An ``m x n`` weight matrix between the scratchpad (``n`` columns of ``m``) and the weight
    banks, over the row buses, one PE column at a time.
``FORWARD``
    ``Y = W X`` (the bias is a column of W with a row of ones in X), ReLU optional. Each PE
    accumulates its partial sums in a group of accumulators; the group's partial sums are
    then sent over the row buses to the row-end reducers, column 0 first, while the other
    group accumulates.
``BACKWARD``
    ``dX = W^T dY`` with the roles of the buses swapped; partial sums go over the column
    buses to the column-end reducers, row 0 first; the ReLU derivative of the layer below is
    applied from its stored activations (optional).
``fill`` (FORWARD, BACKWARD; a square array)
    Each result also goes into the activation banks at ``abase2``, in the cycle it is
    written into the scratchpad, as LOAD_COL (FORWARD) or LOAD_ROW (BACKWARD) of the result
    matrix would put it after the command: over the buses the partial sums leave free,
    through the activation banks' write port (``Core._fill``). On an array with
    ``rows != cols`` the bit is ignored.
``WGRAD``
    ``dW = dY X^T`` accumulated in place over the batch, then ``W += q(dW) * q(scalar)``
    with ``scalar = -lr`` (the update), in the PE that holds ``W[i][j]``. With ``flag``
    (momentum), first ``v = dW + q(v) * q(scalar2)`` with ``scalar2 = mu`` and the velocity
    ``v`` kept in the weight bank at ``wbase2``, then ``W += q(v) * q(scalar)``. With
    ``fused`` (and no ``flag``, on one MAC stream) the update is folded into the gradient:
    each weight's chain starts from it and ends in it, ``W + sum_b q(dY[i][b]) * q(X[j][b])``
    with ``-lr`` carried in dY, and no update pass runs.
``LOSS_GRAD``
    ``dY = (softmax(Y) - onehot) / B`` for an ``m x batch`` matrix ``Y`` (``sp_*``) into
    ``dY`` (``sp2_*``) with the labels (``sp3_*``) and ``scalar = 1/B`` (``hw.loss``).
``GATHER``
    A table-driven copy (``m = 1`` tap) or fp32 sum (``m`` taps) of words of the window
    ``sp_*`` into matrix ``sp2_*``, the table in ``sp3_*``, masked by the old values with
    ``flag`` (``hw.gather``): im2col, col2im, flatten. It reads through the scratchpad's
    read port (``max(R, C)`` table entries at once, a window word at a time) and writes a
    word at a time through its write port.

With dual precision (``mac.dual``, ``docs/dual_precision.md``) every MAC slot of FORWARD,
BACKWARD and WGRAD computes two outputs of the accumulator group, ``o`` and ``o + 1``, at the
same step: a group's step takes half the slots. WGRAD's velocity and update passes stay one
output per slot.

Structure: a :class:`~hw.sequencer.Sequencer` takes the commands and hands the running one
to the engines (``hw.issue.EngineControl``): the :class:`~hw.mover.Mover` (loads and stores),
the :class:`~hw.compute.ComputeEngine` and :class:`~hw.compute.DrainEngine` (FORWARD,
BACKWARD, WGRAD, joined by a ``hw.compute.GroupHandoff``), the loss-gradient unit
(``hw.loss``) and the gather unit (``hw.gather``). Their requests of each cycle
(``hw.issue.issue_layout``) drive the datapath: the scratchpad, the PE array with its
buses, and the :class:`~hw.reducers.EdgeReducers`. A ``LOAD_COL`` or ``LOAD_ROW`` may run beside a
``WGRAD`` (the sequencer's side slot, ``side_valid``): the mover then runs the load while
the compute engine runs the gradient, through the transfer slot and the compute slot of
the same micro-ops, the scratchpad's read port and the activation banks' write port, which
``WGRAD`` does not use.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.layout import bank_count

from .compute import ComputeEngine, DrainEngine
from .gather import Gather
from .issue import CORE_OPS, SIZE_BITS, command_layout, issue_layout, popcount
from .loss import LossGradient
from .mover import Mover
from .pe import PE, ComputeOp
from .reducers import EdgeReducers
from .scratchpad import Scratchpad
from .sequencer import Sequencer

__all__ = ["CORE_OPS", "command_layout", "Core"]


class Core(wiring.Component):
    """An R x C training core.

    Parameters
    ----------
    config : gen.spec.config.Config
        Uses ``core.rows``, ``core.cols``, ``core.scratchpad_words``, ``pe.*`` and ``mac.*``.

    Members
    -------
    cmd : In(command_layout(...))
    cmd_valid : In(1)
        A command is taken in a cycle where ``cmd_valid`` and ``cmd_ready``.
    cmd_ready : Out(1)
        The core is idle.
    side_valid : In(1)
        Take ``cmd`` beside the running command (with ``side_ready``): a ``LOAD_COL`` or
        ``LOAD_ROW`` beside a ``WGRAD`` (``hw.sequencer``). The load must write no
        activation word the ``WGRAD`` reads; ``hw.controller`` checks it.
    side_ready : Out(1)
        The core runs a ``WGRAD`` and can take a load beside it.
    side_busy : Out(1)
        A load runs (or settles) beside the ``WGRAD``.
    drain_valid : In(1)
        Take ``cmd``, a ``WGRAD``, while the running ``FORWARD`` or ``BACKWARD`` drains its
        last group (with ``drain_ready``; ``hw.sequencer``'s drain slot). The ``WGRAD`` must
        read no activation word the drain fills; ``hw.controller`` checks it.
    drain_ready : Out(1)
        The running ``FORWARD`` or ``BACKWARD`` has only its last group left to drain.
    drain_busy : Out(1)
        A ``FORWARD`` or ``BACKWARD`` drains (or settles) in the drain slot.
    host_addr, host_wdata, host_we, host_re, host_rdata :
        Word access to the scratchpad (use only while idle); read data one cycle later.
    dma_we, dma_re, dma_e0, dma_line, dma_lanes, dma_wdata, dma_rdata :
        Lane access to the scratchpad for the DMA engine (``hw.dma``), ``K`` lanes with
        ``K = host.axi_data_width / 32`` (use only while idle; read data one cycle later).
    error : Out(1)
        The last command was malformed (an unknown operation, or a size of zero that the
        operation needs): it did nothing, and the core is ready for the next one.
    dual_seed : In(gen.spec.isa.DUAL_SEED_BITS)
        Seed of the ``random`` dual-precision policy (``sim.golden.dual.random_bits``).
    mac_slots, update_slots, busy_cycles, stall_cycles, bus_words : Out(48)
        Counters: compute slots that issued a MAC or an UPDATE to every PE, cycles busy
        (summed over the commands: a command beside another counts its own), cycles the
        compute engine waited for the reducers, words moved over the buses.
    high_products, low_products, bypass_products : Out(48)
        Counters: the products of MAC slots, summed over the PEs, by class
        (``hw.dual``): made by a high-precision multiplier, by the low-precision one, or
        bypassed (a zero operand). With the reuse hits, their sum is the MACs done (padding
        included).
    reuse_strength : In(gen.spec.isa.REUSE_STRENGTH_BITS)
        The ``REUSE_STRENGTH`` register (``docs/reuse.md``; 0: off).
    reuse_lookups, reuse_hits, multiplies_avoided : Out(48)
        Counters of the reuse caches, summed over the PEs (zero without a cache).
    ring_rd_en, ring_rd_e0, ring_rd_line, ring_rd_lanes, ring_rd_data, ring_wr_en, ring_wr_e0,
    ring_wr_line, ring_wr_lanes, ring_wr_data :
        Only on a cluster (``cluster.cores > 1``): the ring engine's lane access to the
        scratchpad (``hw.ring``), ``nr = gen.spec.ring.link_words(config)`` lanes, with separate
        read and write addresses in the same cycle (use only while idle; read data one cycle
        later).
    """

    COUNTER_BITS = 48
    COUNTERS = ("mac_slots", "update_slots", "busy_cycles", "stall_cycles", "bus_words",
                "high_products", "low_products", "bypass_products",
                "reuse_lookups", "reuse_hits", "multiplies_avoided")

    def __init__(self, config):
        from chrysalis.gen.spec.config import Config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        self.config = config
        self.tree = config.core.reduction == "tree"
        self.rows, self.cols = config.core.rows, config.core.cols
        self.banks = bank_count(self.rows, self.cols)
        self.latency = config.mac.latency
        self.group = config.pe.acc_regs // 2
        self.pe_args = dict(weight_words=config.pe.weight_words, act_words=config.pe.act_words,
                            acc_regs=config.pe.acc_regs, mac_latency=config.mac.latency,
                            tree=self.tree, dual=config.mac.dual,
                            low_man_bits=config.mac.low_man_bits,
                            reuse_entries=config.pe.reuse_entries,
                            reuse_ways=config.pe.reuse_ways,
                            reuse_scope=config.pe.reuse_scope,
                            fill=self.rows == self.cols)
        self.reuse = config.pe.reuse_entries > 0
        self.reuse_shared = self.reuse and config.pe.reuse_scope == "row"
        # Outputs per compute slot of a MAC pass (docs/dual_precision.md).
        self.streams = config.mac.macs_per_cycle
        probe = PE(config.mac.operand, **self.pe_args)
        self.uop_layout = probe.layout
        probe._MustUse__silence = True
        self.sp_words = config.core.scratchpad_words
        self.line_bits = line_bits = max(1, ceil_log2(self.sp_words // self.banks))
        self.dma_words = config.host.axi_data_width // 32
        # The ring engine's lanes (a cluster only): a link beat is one lane access.
        self.ring_words = (max(1, config.cluster.link_width // 32)
                           if config.cluster.cores > 1 else 0)
        if self.ring_words > self.banks:
            raise ValueError(f"cluster.link_width carries {self.ring_words} words per cycle, "
                             f"more than the {self.banks} scratchpad banks of a "
                             f"{self.rows}x{self.cols} core; it must be at most "
                             f"{32 * self.banks}, not {config.cluster.link_width!r}")
        self.layout = command_layout(max(1, ceil_log2(config.pe.weight_words)),
                                     max(1, ceil_log2(config.pe.act_words)), line_bits)
        self.issue_layout = issue_layout(self.uop_layout, self.rows, self.cols, self.group,
                                         line_bits)
        addr_bits = max(1, ceil_log2(self.sp_words))
        counters = {name: Out(self.COUNTER_BITS) for name in self.COUNTERS}
        ring = {}
        if self.ring_words:
            nr = self.ring_words
            ring = {"ring_rd_en": In(1), "ring_rd_e0": In(SIZE_BITS),
                    "ring_rd_line": In(line_bits), "ring_rd_lanes": In(nr),
                    "ring_rd_data": Out(32).array(nr),
                    "ring_wr_en": In(1), "ring_wr_e0": In(SIZE_BITS),
                    "ring_wr_line": In(line_bits), "ring_wr_lanes": In(nr),
                    "ring_wr_data": In(32).array(nr)}
        super().__init__({
            "cmd": In(self.layout),
            "cmd_valid": In(1),
            "cmd_ready": Out(1),
            "side_valid": In(1),
            "side_ready": Out(1),
            "side_busy": Out(1),
            "drain_valid": In(1),
            "drain_ready": Out(1),
            "drain_busy": Out(1),
            "error": Out(1),
            "host_addr": In(addr_bits),
            "host_wdata": In(32),
            "host_we": In(1),
            "host_re": In(1),
            "host_rdata": Out(32),
            "dma_we": In(1), "dma_re": In(1), "dma_e0": In(SIZE_BITS),
            "dma_line": In(line_bits), "dma_lanes": In(self.dma_words),
            "dma_wdata": In(32).array(self.dma_words),
            "dma_rdata": Out(32).array(self.dma_words),
            "dual_seed": In(isa.DUAL_SEED_BITS),
            "reuse_strength": In(isa.REUSE_STRENGTH_BITS),
            **counters,
            **ring,
        })

    # The core is a datapath (scratchpad, PE array, buses, edge reducers) and engines that
    # drive it (sequencer, mover, compute and drain engines, loss-gradient unit); they meet
    # in the `issue` of each cycle.
    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        m.submodules.scratchpad = sp = Scratchpad(
            words=self.sp_words, banks=self.banks,
            lanes=max(R, C, self.dma_words, self.ring_words))
        m.d.comb += [sp.host_addr.eq(self.host_addr), sp.host_wdata.eq(self.host_wdata),
                     sp.host_we.eq(self.host_we), sp.host_re.eq(self.host_re),
                     self.host_rdata.eq(sp.host_rdata)]

        pes = [[PE(self.config.mac.operand, **self.pe_args) for c in range(C)]
               for r in range(R)]
        for r in range(R):
            for c in range(C):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                m.d.comb += pes[r][c].reuse_strength.eq(self.reuse_strength)
        if self.reuse_shared:
            self._shared_tags(m, pes)
        self._product_counters(m, [pe for row in pes for pe in row])

        # The loss unit's maximum reads up to 4 classes at once (the largest power of two
        # at most max(R, C): sim.golden.core_counts.loss_lanes).
        widest = min(4, max(R, C))
        m.submodules.loss = loss = LossGradient(
            line_bits=self.line_bits, mac_latency=self.latency, sfu=self.config.core.sfu,
            lanes=4 if widest >= 4 else 2 if widest >= 2 else 1)
        issue = Signal(self.issue_layout, name="issue")
        # The datapath's own reads: the loss-gradient unit's and the reducers' mask words.
        own = Signal(self.issue_layout.members["rd"], name="datapath_read")
        # Words a fill moves into the activation banks this cycle (counted in bus_words).
        fill_words = Signal(range(max(R, C) + 1), name="fill_words")
        engines, cmd = self._engines(m, issue, loss, own, fill_words)
        m.d.comb += [sp.rd_en.eq(issue.rd.en), sp.rd_e0.eq(issue.rd.e0),
                     sp.rd_line.eq(issue.rd.line), sp.rd_lanes.eq(issue.rd.lanes)]

        # The broadcast stage: the issue reaches the PE array a cycle later, with the words
        # read a cycle before it; the send stage, a cycle after, puts the PEs' words on the
        # buses.
        step = Signal(self.issue_layout.members["bus"], name="broadcast")
        m.d.sync += step.eq(issue.bus)
        # The words a load broadcasts, registered as they leave the scratchpad (the mover
        # issues a load's micro-op a cycle after its read, hw.mover), so that a block RAM's
        # output and the trip across the array to the PEs are two paths, not one.
        lane_words = [Signal(32, name=f"lane_word{l}") for l in range(max(R, C))]
        m.d.sync += [word.eq(sp.rd_data[l]) for l, word in enumerate(lane_words)]
        row_in, col_in = self._broadcast(m, pes, step, cmd, lane_words)
        sent = Signal(step.red.shape(), name="send_step")
        m.d.sync += sent.eq(step.red)
        row_bus, col_bus, store_bus = self._buses(m, pes, step)
        # The store stage, a cycle after the send stage: a SEND_W's weight leaves its PE a
        # cycle later than a partial sum (it is registered as it leaves the weight bank,
        # hw.pe), so that no path runs from a PE's block RAM across the array into the
        # scratchpad's. A command settles for longer than that, so no cycle count moves.
        stored = Signal(step.red.shape(), name="store_step")
        m.d.sync += stored.eq(sent)

        m.submodules.reducers = red = EdgeReducers(
            rows=R, cols=C, group=self.group, line_bits=self.line_bits,
            latency=self.latency - 1)
        m.d.comb += red.step.eq(step.red)
        m.d.comb += [red.row_bus[r].eq(row_bus[r]) for r in range(R)]
        m.d.comb += [red.col_bus[c].eq(col_bus[c]) for c in range(C)]
        m.d.comb += [red.mask[l].eq(sp.rd_data[l]) for l in range(red.lanes)]
        if R == C:
            m.d.comb += fill_words.eq(self._fill(m, pes, step, red, row_in, col_in))
        # The reducers read BACKWARD's mask words two cycles before their results.
        pre = red.mask_step
        with m.If(pre.on & pre.last & pre.mask):
            m.d.comb += [own.en.eq(1), own.e0.eq(pre.e0), own.line.eq(pre.mask_line),
                         own.lanes.eq(pre.lanes)]
        # The engines ask for different fields, or in different cycles (hw.issue).
        own_issue = Cat(Const(0, self.issue_layout["rd"].offset), own.as_value())
        m.d.comb += issue.as_value().eq(
            _any([own_issue] + [engine.issue.as_value() for engine in engines]))
        self._scratchpad_writes(m, sp, stored, store_bus, red, loss, m.submodules.gather)
        self._lane_ports(m, sp)
        return m

    def _engines(self, m, issue, loss, loss_read, fill_words):
        """The sequencer and the engines, with the counters of what they issue (``issue``:
        the merge of their requests; ``fill_words``: the words a fill moves into the
        activation banks this cycle, counted with the bus words). Returns the engines that
        issue, and the running command."""
        R, C, G = self.rows, self.cols, self.group
        m.submodules.sequencer = seq = Sequencer(self.layout, rows=R, cols=C,
                                                 settle_cycles=self.latency + 4, group=G)
        m.d.comb += [seq.command.payload.eq(self.cmd), seq.command.valid.eq(self.cmd_valid),
                     self.cmd_ready.eq(seq.command.ready), self.error.eq(seq.error),
                     seq.side_valid.eq(self.side_valid), self.side_ready.eq(seq.side_ready),
                     self.side_busy.eq(seq.side_busy),
                     seq.drain_valid.eq(self.drain_valid),
                     self.drain_ready.eq(seq.drain_ready), self.drain_busy.eq(seq.drain_busy)]
        engine = dict(command=self.layout, issue=self.issue_layout, rows=R, cols=C)
        m.submodules.mover = mover = Mover(**engine)
        m.submodules.compute = compute = ComputeEngine(
            **engine, group=G, streams=self.streams,
            random_policy=self.config.mac.dual == "random",
            reuse=self.reuse, reuse_shared=self.reuse_shared)
        m.submodules.drain = drain = DrainEngine(
            **engine, group=G, mac_latency=self.latency, streams=self.streams, tree=self.tree)
        wiring.connect(m, seq.control, compute.control)
        wiring.connect(m, seq.drain_control, drain.control)
        wiring.connect(m, seq.mover_control, mover.control)
        wiring.connect(m, compute.handoff, drain.handoff)
        m.d.comb += compute.dual_seed.eq(self.dual_seed)
        loss_finish = self._loss(m, seq.control, loss, loss_read)
        m.submodules.gather = gather = Gather(line_bits=self.line_bits, banks=self.banks,
                                              mac_latency=self.latency, lanes=max(R, C))
        self._gather(m, seq.control, gather, loss_read)
        m.d.comb += [seq.finish.eq(compute.finish | loss_finish | gather.finish),
                     seq.mover_finish.eq(mover.finish),
                     seq.handover.eq(compute.handover),
                     seq.drain_finish.eq(drain.handoff.drained)]

        # Summed over the commands, so that a load beside a WGRAD, or a WGRAD beside a
        # drain, leaves the count that of the stream run in order (what the golden machine
        # counts).
        m.d.sync += self.busy_cycles.eq(self.busy_cycles + seq.busy + seq.side_busy
                                        + seq.drain_busy)
        c_op = issue.bus.uop.c_op
        with m.If(c_op == ComputeOp.MAC):
            m.d.sync += self.mac_slots.eq(self.mac_slots + 1)
        with m.If((c_op == ComputeOp.UPDATE) | (c_op == ComputeOp.UPDATE_V)):
            m.d.sync += self.update_slots.eq(self.update_slots + 1)
        with m.If(compute.stall):
            m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
        m.d.sync += self.bus_words.eq(self.bus_words + mover.bus_words + drain.bus_words
                                      + fill_words)
        return (mover, compute, drain), seq.control.cmd

    def _broadcast(self, m, pes, step, cmd, rd_data):
        """The broadcast stage into the PEs: the micro-op, the scalars, the bus words read
        for it, and which PEs take part in the transfer (the selected ones, and with the
        neighbour-link tree the receiving ones of this level). Returns the words of the row
        buses and of the column buses into the PEs."""
        R, C = self.rows, self.cols
        levels = max(1, ceil_log2(max(R, C)))
        # The bus words each PE may write into its activation bank: the scratchpad's words
        # of a load (a fill overrides them, hw.core.Core._fill).
        row_in = [Signal(32, name=f"row_in{r}") for r in range(R)]
        col_in = [Signal(32, name=f"col_in{c}") for c in range(C)]
        m.d.comb += [row_in[r].eq(Mux(step.bus_from == 1, rd_data[r], 0)) for r in range(R)]
        m.d.comb += [col_in[c].eq(Mux(step.bus_from == 2, rd_data[c], 0)) for c in range(C)]

        # At level l, a PE at a multiple of 2**l along the reduction adds the partial sum of
        # the PE 2**(l-1) further along (if there is one): pairs, then pairs of pairs, an
        # odd one carried up -- the golden model's tree order.
        def receives(pos, count, level):
            return pos % (1 << level) == 0 and pos + (1 << (level - 1)) < count

        for r in range(R):
            for c in range(C):
                receiving = Signal(name=f"receiving_{r}_{c}")
                with m.Switch(step.tree_level):
                    for level in range(1, levels + 1):
                        with m.Case(level):
                            m.d.comb += receiving.eq(Mux(step.tree_cols, receives(r, R, level),
                                                         receives(c, C, level)))
                pe = pes[r][c]
                m.d.comb += [
                    pe.uop.eq(step.uop),
                    pe.scalar.eq(cmd.scalar),
                    pe.scalar2.eq(cmd.scalar2),
                    pe.select.eq(step.sel_all | (step.sel_col == c) | receiving),
                    pe.row_in.eq(row_in[r]),
                    pe.col_in.eq(col_in[c]),
                ]
        return row_in, col_in

    def _buses(self, m, pes, step):
        """The send stage, a cycle after the broadcast stage: the selected PE column's words
        on the row buses, the selected PE row's on the column buses, and the neighbour
        links; and a cycle later the store stage's row buses (a ``SEND_W``'s words, which
        leave the PEs a cycle later). Returns the row buses, the column buses and the store
        stage's row buses."""
        R, C = self.rows, self.cols
        levels = max(1, ceil_log2(max(R, C)))
        sel_col = Signal.like(step.sel_col, name="send_sel_col")
        sel_row = Signal.like(step.sel_row, name="send_sel_row")
        level = Signal.like(step.tree_level, name="send_tree_level")
        tree_cols = Signal(name="send_tree_cols")
        m.d.sync += [sel_col.eq(step.sel_col), sel_row.eq(step.sel_row),
                     level.eq(step.tree_level), tree_cols.eq(step.tree_cols)]
        rows = [[pe.out for pe in line] for line in pes]
        columns = [list(words) for words in zip(*rows)]
        row_bus = _picked(m, rows, sel_col, "row_bus")
        col_bus = _picked(m, columns, sel_row, "col_bus")
        store_col = Signal.like(sel_col, name="store_sel_col")
        m.d.sync += store_col.eq(sel_col)
        store_bus = _picked(m, rows, store_col, "store_bus")

        # Neighbour links: the partial sum of the PE 2**(level-1) further along arrives in
        # the cycle after the REDUCE_ACC micro-op (the send stage).
        for r in range(R):
            for c in range(C):
                with m.Switch(level):
                    for lv in range(1, levels + 1):
                        d = 1 << (lv - 1)
                        along_row = pes[r][c + d].out if c + d < C else 0
                        along_col = pes[r + d][c].out if r + d < R else 0
                        with m.Case(lv):
                            m.d.comb += pes[r][c].nbr_in.eq(Mux(tree_cols, along_col, along_row))
        return row_bus, col_bus, store_bus

    def _fill(self, m, pes, step, red, row_in, col_in):
        """FORWARD and BACKWARD with ``fill`` (a square array): each result the reducers
        write into the scratchpad also goes to the activation banks a cycle later (registered
        before it crosses the array; the PEs write it a cycle after that, ``hw.pe.PE``),
        where LOAD_COL (FORWARD) or LOAD_ROW
        (BACKWARD) would put it. Lane ``l`` is element
        ``e0 + l``, which those loads give every PE of column (row) ``l``: FORWARD's results
        take the column buses, which its partial sums leave free, BACKWARD's the row buses;
        lanes past the last element load as ``+0``. The drain's request travels beside the
        reducers' step (the send stage, then their latency). Returns the words moved."""
        R, C = self.rows, self.cols
        fill = Signal(name="fill_sent")
        addr = Signal(len(step.fill_addr), name="fill_addr_sent")
        m.d.sync += [fill.eq(step.fill), addr.eq(step.fill_addr)]
        for index in range(red.latency):
            fill_d = Signal(name=f"fill_d{index}")
            addr_d = Signal(len(addr), name=f"fill_addr_d{index}")
            m.d.sync += [fill_d.eq(fill), addr_d.eq(addr)]
            fill, addr = fill_d, addr_d
        done = red.done
        # The results are registered before they cross the array to the PEs, so that the
        # reducers' rounding and the buses into every activation bank are two paths, not one.
        now = Signal(name="fill_now")
        cols = Signal(name="fill_cols")
        words = [Signal(32, name=f"fill_word{l}") for l in range(R)]
        count = Signal(range(R + 1), name="fill_count")
        m.d.sync += [now.eq(fill & done.on & done.last & ~done.store_w), cols.eq(done.cols),
                     count.eq(popcount(done.lanes))]
        m.d.sync += [words[l].eq(Mux(done.lanes[l], red.result[l], 0)) for l in range(R)]
        addr_now = Signal.like(addr, name="fill_addr_now")
        m.d.sync += addr_now.eq(addr)
        with m.If(now):
            with m.If(cols):
                m.d.comb += [row_in[r].eq(words[r]) for r in range(R)]
            with m.Else():
                m.d.comb += [col_in[c].eq(words[c]) for c in range(C)]
        for r in range(R):
            for c in range(C):
                m.d.comb += [pes[r][c].fill.eq(Mux(now, Mux(cols, 0b01, 0b10), 0)),
                             pes[r][c].fill_addr.eq(addr_now)]
        return Mux(now, count, 0)

    def _scratchpad_writes(self, m, sp, stored, store_bus, red, loss, gather):
        """The scratchpad's lane write port: STORE_W's weights straight from the row buses
        (store stage), the reducers' results, or the loss-gradient unit's words."""
        done = red.done
        with m.If(stored.on & stored.store_w):
            m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(stored.e0), sp.wr_line.eq(stored.line),
                         sp.wr_lanes.eq(stored.lanes)]
            m.d.comb += [sp.wr_data[r].eq(store_bus[r]) for r in range(self.rows)]
        with m.Elif(done.on & done.last & ~done.store_w):
            m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(done.e0), sp.wr_line.eq(done.line),
                         sp.wr_lanes.eq(done.lanes)]
            m.d.comb += [sp.wr_data[l].eq(red.result[l]) for l in range(red.lanes)]
        with m.Elif(loss.wr_en):
            m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(loss.wr_e0), sp.wr_line.eq(loss.wr_line),
                         sp.wr_lanes.eq(loss.wr_lanes)]
            m.d.comb += [sp.wr_data[l].eq(loss.wr_data[l]) for l in range(loss.out_lanes)]
        with m.Elif(gather.wr_en):
            m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(gather.wr_e0),
                         sp.wr_line.eq(gather.wr_line), sp.wr_lanes.eq(1),
                         sp.wr_data[0].eq(gather.wr_data)]
        m.d.comb += [gather.rd_data[l].eq(sp.rd_data[l]) for l in range(gather.lanes)]
        m.d.comb += [loss.rd_data[l].eq(sp.rd_data[l]) for l in range(loss.lanes)]

    def _lane_ports(self, m, sp):
        """The DMA engine's lane port and, on a cluster, the ring engine's: used only while
        the core is idle or runs commands that use no scratchpad port (``hw.controller``'s
        rules: a WGRAD), so they override the engines."""
        K = self.dma_words
        with m.If(self.dma_we):
            m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(self.dma_e0), sp.wr_line.eq(self.dma_line),
                         sp.wr_lanes.eq(self.dma_lanes)]
            m.d.comb += [sp.wr_data[l].eq(self.dma_wdata[l]) for l in range(K)]
        with m.If(self.dma_re):
            m.d.comb += [sp.rd_en.eq(1), sp.rd_e0.eq(self.dma_e0), sp.rd_line.eq(self.dma_line),
                         sp.rd_lanes.eq(self.dma_lanes)]
        m.d.comb += [self.dma_rdata[l].eq(sp.rd_data[l]) for l in range(K)]
        if self.ring_words:
            nr = self.ring_words
            with m.If(self.ring_wr_en):
                m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(self.ring_wr_e0),
                             sp.wr_line.eq(self.ring_wr_line), sp.wr_lanes.eq(self.ring_wr_lanes)]
                m.d.comb += [sp.wr_data[l].eq(self.ring_wr_data[l]) for l in range(nr)]
            with m.If(self.ring_rd_en):
                m.d.comb += [sp.rd_en.eq(1), sp.rd_e0.eq(self.ring_rd_e0),
                             sp.rd_line.eq(self.ring_rd_line), sp.rd_lanes.eq(self.ring_rd_lanes)]
            m.d.comb += [self.ring_rd_data[l].eq(sp.rd_data[l]) for l in range(nr)]

    def _loss(self, m, ctl, loss, read):
        """LOSS_GRAD: the loss-gradient unit runs the command, reading through the first lanes
        of the scratchpad (``read``). Returns its finish request."""
        cmd = ctl.cmd
        started = Signal(name="loss_started")
        finish = Signal(name="loss_finish")
        with m.If(ctl.start):
            m.d.sync += started.eq(0)
        with m.If(ctl.active & (cmd.op == isa.Opcode.LOSS_GRAD)):
            m.d.comb += [loss.start.eq(~started), loss.m.eq(cmd.m), loss.batch.eq(cmd.batch),
                         loss.y_base.eq(cmd.sp_base), loss.y_lpc.eq(cmd.sp_lpc),
                         loss.dy_base.eq(cmd.sp2_base), loss.dy_lpc.eq(cmd.sp2_lpc),
                         loss.label_base.eq(cmd.sp3_base), loss.label_lpc.eq(cmd.sp3_lpc),
                         loss.inv_batch.eq(cmd.scalar)]
            m.d.sync += started.eq(1)
            with m.If(loss.rd_en):
                m.d.comb += [read.en.eq(1), read.e0.eq(loss.rd_e0), read.line.eq(loss.rd_line),
                             read.lanes.eq(loss.rd_lanes)]
            with m.If(loss.done):
                m.d.comb += finish.eq(1)
        return finish
    def _gather(self, m, ctl, gather, read):
        """GATHER: the gather unit runs the command, reading through the first
        ``max(R, C)`` lanes of the scratchpad's read port (``read``) and writing one word at
        a time through its write port; nothing runs beside it (``gen.spec.isa.SP_READERS``,
        ``SP_WRITERS``)."""
        cmd = ctl.cmd
        m.d.comb += [gather.start.eq(ctl.start),
                     gather.run.eq(ctl.active & (cmd.op == isa.Opcode.GATHER)),
                     gather.taps.eq(cmd.m), gather.n.eq(cmd.n), gather.batch.eq(cmd.batch),
                     gather.mask.eq(cmd.flag),
                     gather.win_base.eq(cmd.sp_base), gather.win_lpc.eq(cmd.sp_lpc),
                     gather.dst_base.eq(cmd.sp2_base), gather.dst_lpc.eq(cmd.sp2_lpc),
                     gather.tab_base.eq(cmd.sp3_base), gather.tab_lpc.eq(cmd.sp3_lpc)]
        with m.If(gather.rd_en):
            m.d.comb += [read.en.eq(1), read.e0.eq(gather.rd_e0), read.line.eq(gather.rd_line),
                         read.lanes.eq(gather.rd_lanes)]

    def _shared_tags(self, m, pes):
        """Reuse tags shared along lines of PEs (``pe.reuse_scope = "row"``): tag unit ``i``
        serves column ``i`` in FORWARD and WGRAD and row ``i`` in BACKWARD, where the PEs of
        the line see the same streaming operands and stationary addresses and therefore hit
        and miss alike (docs/reuse.md); each PE keeps its own products."""
        from .reuse import LOOKUP_FIELDS, RESULT_FIELDS, ReuseTags
        R, C = self.rows, self.cols
        first = pes[0][0]
        rows = first.reuse_lookup.rows          # the same micro-op in every PE
        units = []
        for i in range(max(R, C)):
            unit = ReuseTags(self.config.mac.operand, self.config.pe.reuse_entries,
                             self.config.pe.reuse_ways, first.stationary_bits)
            m.submodules[f"reuse_tags_{i}"] = unit
            units.append(unit)
            # The line's streaming operands: from its first PE (column i, or row i).
            by_col = pes[0][min(i, C - 1)].reuse_lookup
            by_row = pes[min(i, R - 1)][0].reuse_lookup
            m.d.comb += unit.strength.eq(self.reuse_strength)
            for name in LOOKUP_FIELDS:
                m.d.comb += getattr(unit, name).eq(
                    Mux(rows, getattr(by_row, name), getattr(by_col, name)))
        for r in range(R):
            for c in range(C):
                result = pes[r][c].reuse_result
                for name in RESULT_FIELDS:
                    m.d.comb += getattr(result, name).eq(
                        Mux(rows, getattr(units[r], name), getattr(units[c], name)))

    def _product_counters(self, m, pes):
        """The product and reuse counters: each cycle, the PEs' products of each class (and
        their reuse lookups, hits and multiplies avoided) are counted by an adder tree
        (registered every few levels, so that a large array does not set the clock) and
        added to the counter a few cycles later."""
        from .dual import BYPASS, HIGH, LOW

        def of_class(cls):
            return lambda pe: Cat(pe.made[0] & (pe.class0 == cls),
                                  pe.made[1] & (pe.class1 == cls))

        events = {"high_products": of_class(HIGH), "low_products": of_class(LOW),
                  "bypass_products": of_class(BYPASS)}
        if self.reuse:
            events.update({"reuse_lookups": lambda pe: pe.reuse_look,
                           "reuse_hits": lambda pe: pe.reuse_hit,
                           "multiplies_avoided": lambda pe: pe.reuse_avoided})
        for name, flags_of in events.items():
            flags = Signal(2 * len(pes), name=f"{name}_flags")
            m.d.sync += flags.eq(Cat(*[flags_of(pe) for pe in pes]))
            level = [flags[i] for i in range(len(flags))]
            depth = 0
            while len(level) > 1:
                pairs = [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                         for i in range(0, len(level), 2)]
                depth += 1
                if depth % 3 == 0:
                    staged = []
                    for index, value in enumerate(pairs):
                        reg = Signal(len(value), name=f"{name}_sum{depth}_{index}")
                        m.d.sync += reg.eq(value)
                        staged.append(reg)
                    pairs = staged
                level = pairs
            counter = getattr(self, name)
            m.d.sync += counter.eq(counter + level[0])



def _any(values):
    """The bitwise OR of ``values``."""
    values = list(values)
    result = values[0]
    for value in values[1:]:
        result = result | value
    return result



def _picked(m, lines, select, name):
    """One bus per line of words: word ``select`` of each (``lines[i][select]``)."""
    buses = [Signal(32, name=f"{name}{i}") for i in range(len(lines))]
    for bus, words in zip(buses, lines):
        with m.Switch(select):
            for k, word in enumerate(words):
                with m.Case(k):
                    m.d.comb += bus.eq(word)
    return buses
