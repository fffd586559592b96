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
``WGRAD``
    ``dW = dY X^T`` accumulated in place over the batch, then ``W += q(dW) * q(scalar)``
    with ``scalar = -lr`` (the update), in the PE that holds ``W[i][j]``. With ``flag``
    (momentum), first ``v = dW + q(v) * q(scalar2)`` with ``scalar2 = mu`` and the velocity
    ``v`` kept in the weight bank at ``wbase2``, then ``W += q(v) * q(scalar)``.
``LOSS_GRAD``
    ``dY = (softmax(Y) - onehot) / B`` for an ``m x batch`` matrix ``Y`` (``sp_*``) into
    ``dY`` (``sp2_*``) with the labels (``sp3_*``) and ``scalar = 1/B`` (``hw.loss``).

With dual precision (``mac.dual``, ``docs/dual_precision.md``) every MAC slot of FORWARD,
BACKWARD and WGRAD computes two outputs of the accumulator group, ``o`` and ``o + 1``, at the
same step: a group's step takes half the slots. WGRAD's velocity and update passes stay one
output per slot.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.formats import FP32

from .fadd import FloatAdder
from .loss import LossGradient
from .pe import PE, ComputeOp, TransferOp
from .scratchpad import Scratchpad, bank_count

__all__ = ["CoreOp", "command_layout", "Core"]


class CoreOp(enum.Enum, shape=4):
    """The core's operations, numbered as ``gen.spec.isa.Opcode`` (``tests/gen/spec/test_isa.py``
    holds them equal); ``NONE`` is no operation."""
    NONE = 0
    LOAD_COL = 1
    LOAD_ROW = 2
    LOAD_W = 3
    STORE_W = 4
    FORWARD = 5
    BACKWARD = 6
    WGRAD = 7
    LOSS_GRAD = 8


def command_layout(weight_addr_bits, act_addr_bits, line_bits):
    """Fields of a core command (see the module docstring for their use per operation)."""
    return data.StructLayout({
        "op": CoreOp,
        "m": 16,            # output features (rows of W); elements per column for LOAD_ROW
        "n": 16,            # input features (columns of W); elements per column for LOAD_COL
        "batch": 16,
        "wbase": weight_addr_bits,
        "abase": act_addr_bits,     # X (FORWARD, WGRAD), dY (BACKWARD), load target
        "abase2": act_addr_bits,    # dY (WGRAD)
        "sp_base": line_bits,       # scratchpad matrix: first line
        "sp_lpc": line_bits,        # scratchpad matrix: lines per column
        "sp2_base": line_bits,      # BACKWARD: activations of the layer below (ReLU mask)
        "sp2_lpc": line_bits,
        "sp3_base": line_bits,      # LOSS_GRAD: the labels (one integer word per column)
        "sp3_lpc": line_bits,
        "flag": 1,                  # FORWARD: ReLU; BACKWARD: apply the ReLU mask
        "scalar": 32,               # WGRAD: -lr; LOSS_GRAD: 1/B (fp32)
        "scalar2": 32,              # WGRAD with momentum (flag): mu (fp32)
        "wbase2": weight_addr_bits, # WGRAD with momentum: the velocities' weight-bank base
    })


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
    host_addr, host_wdata, host_we, host_re, host_rdata :
        Word access to the scratchpad (use only while idle); read data one cycle later.
    dma_we, dma_re, dma_e0, dma_line, dma_lanes, dma_wdata, dma_rdata :
        Lane access to the scratchpad for the DMA engine (``hw.dma``), ``K`` lanes with
        ``K = host.axi_data_width / 32`` (use only while idle; read data one cycle later).
    error : Out(1)
        The last command was malformed (an unknown operation, or a size of zero that the
        operation needs): it did nothing, and the core is ready for the next one.
    dual_seed : In(16)
        Seed of the ``random`` dual-precision policy (``sim.golden.dual.random_bits``).
    mac_slots, update_slots, busy_cycles, stall_cycles, bus_words : Out(48)
        Counters: compute slots that issued a MAC or an UPDATE to every PE, cycles busy,
        cycles the compute engine waited for the reducers, words moved over the buses.
    high_products, low_products, bypass_products : Out(48)
        Counters: the products of MAC slots, summed over the PEs, by class
        (``hw.dual``): made by a high-precision multiplier, by the low-precision one, or
        bypassed (a zero operand). With the reuse hits, their sum is the MACs done (padding
        included).
    reuse_strength : In(5)
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
                            reuse_scope=config.pe.reuse_scope)
        self.reuse = config.pe.reuse_entries > 0
        self.reuse_shared = self.reuse and config.pe.reuse_scope == "row"
        # Outputs per compute slot of a MAC pass (docs/dual_precision.md).
        self.streams = config.mac.macs_per_cycle
        probe = PE(config.mac.operand, **self.pe_args)
        self.uop_layout = probe.layout
        probe._MustUse__silence = True
        self.sp_words = config.core.scratchpad_words
        line_bits = max(1, (self.sp_words // self.banks - 1).bit_length())
        self.line_bits = line_bits
        self.dma_words = config.host.axi_data_width // 32
        # The ring engine's lanes (a cluster only): a link beat is one lane access.
        self.ring_words = (max(1, config.cluster.link_width // 32)
                           if config.cluster.cores > 1 else 0)
        if self.ring_words > self.banks:
            raise ValueError(f"cluster.link_width carries {self.ring_words} words per cycle, "
                             f"more than the {self.banks} scratchpad banks of a "
                             f"{self.rows}x{self.cols} core; it must be at most "
                             f"{32 * self.banks}, not {config.cluster.link_width!r}")
        self.layout = command_layout((config.pe.weight_words - 1).bit_length() or 1,
                                     (config.pe.act_words - 1).bit_length() or 1, line_bits)
        addr_bits = max(1, (self.sp_words - 1).bit_length())
        counters = {name: Out(self.COUNTER_BITS) for name in self.COUNTERS}
        ring = {}
        if self.ring_words:
            nr = self.ring_words
            ring = {"ring_rd_en": In(1), "ring_rd_e0": In(16), "ring_rd_line": In(line_bits),
                    "ring_rd_lanes": In(nr), "ring_rd_data": Out(32).array(nr),
                    "ring_wr_en": In(1), "ring_wr_e0": In(16), "ring_wr_line": In(line_bits),
                    "ring_wr_lanes": In(nr), "ring_wr_data": In(32).array(nr)}
        super().__init__({
            "cmd": In(self.layout),
            "cmd_valid": In(1),
            "cmd_ready": Out(1),
            "error": Out(1),
            "host_addr": In(addr_bits),
            "host_wdata": In(32),
            "host_we": In(1),
            "host_re": In(1),
            "host_rdata": Out(32),
            "dma_we": In(1), "dma_re": In(1), "dma_e0": In(16), "dma_line": In(line_bits),
            "dma_lanes": In(self.dma_words), "dma_wdata": In(32).array(self.dma_words),
            "dma_rdata": Out(32).array(self.dma_words),
            "dual_seed": In(16),
            "reuse_strength": In(5),
            **counters,
            **ring,
        })

    # The elaboration is split by concern: datapath (PEs, buses, reducers, scratchpad) and
    # sequencer (engines); they meet in the `issue` signals below.
    def elaborate(self, platform):
        m = Module()
        R, C, S, G, L = self.rows, self.cols, self.banks, self.group, self.latency
        lanes = max(R, C)
        cfg = self.config

        m.submodules.scratchpad = sp = Scratchpad(words=self.sp_words, banks=S,
                                                  lanes=max(lanes, self.dma_words,
                                                            self.ring_words))
        m.d.comb += [sp.host_addr.eq(self.host_addr), sp.host_wdata.eq(self.host_wdata),
                     sp.host_we.eq(self.host_we), sp.host_re.eq(self.host_re),
                     self.host_rdata.eq(sp.host_rdata)]

        pes = [[PE(cfg.mac.operand, **self.pe_args) for c in range(C)] for r in range(R)]
        for r in range(R):
            for c in range(C):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                m.d.comb += pes[r][c].reuse_strength.eq(self.reuse_strength)
        if self.reuse_shared:
            self._shared_tags(m, pes)
        self._product_counters(m, [pe for row in pes for pe in row])

        # --- issue signals: what the sequencer asks for in this cycle ----------------------
        uop = Signal(self.uop_layout, name="issue_uop")
        sel_col = Signal(range(C), name="issue_sel_col")     # PE column taking/sending
        sel_row = Signal(range(R), name="issue_sel_row")
        sel_all = Signal(name="issue_sel_all")               # every PE takes the transfer
        bus_from = Signal(2, name="issue_bus_from")          # 0 none, 1 scratchpad->row, 2 ->col
        rd = dict(en=Signal(name="issue_rd_en"), e0=Signal(16, name="issue_rd_e0"),
                  line=Signal(self.line_bits, name="issue_rd_line"),
                  lanes=Signal(lanes, name="issue_rd_lanes"))
        scalar = Signal(32, name="scalar")
        scalar2 = Signal(32, name="scalar2")
        # Reducer control, issued with the SEND micro-op.
        red_layout = data.StructLayout({
            "on": 1, "cols": 1, "first": 1, "last": 1, "k": range(G),
            "e0": 16, "line": self.line_bits, "lanes": lanes, "relu": 1, "mask": 1,
            "mask_line": self.line_bits, "store_w": 1,
        })
        red = Signal(red_layout, name="issue_red")
        # Neighbour-link reduction (``core.reduction = "tree"``): the level of this cycle's
        # REDUCE_ACC (0: none) and its direction (down the columns for BACKWARD).
        levels = max(1, (max(R, C) - 1).bit_length())
        tree_level = Signal(range(levels + 1), name="issue_tree_level")
        tree_cols = Signal(name="issue_tree_cols")


        # --- broadcast stage (+1): micro-op and scratchpad words reach the PEs --------------
        b_uop = Signal(self.uop_layout)
        b_sel_col = Signal.like(sel_col)
        b_sel_row = Signal.like(sel_row)
        b_sel_all = Signal()
        b_bus_from = Signal(2)
        b_red = Signal(red_layout)
        b_level, b_tcols = Signal.like(tree_level), Signal()
        s_level, s_tcols = Signal.like(tree_level), Signal()
        m.d.sync += [b_level.eq(tree_level), b_tcols.eq(tree_cols),
                     s_level.eq(b_level), s_tcols.eq(b_tcols)]
        m.d.sync += [b_uop.eq(uop), b_sel_col.eq(sel_col), b_sel_row.eq(sel_row),
                     b_sel_all.eq(sel_all), b_bus_from.eq(bus_from), b_red.eq(red)]
        m.d.comb += [sp.rd_en.eq(rd["en"]), sp.rd_e0.eq(rd["e0"]), sp.rd_line.eq(rd["line"]),
                     sp.rd_lanes.eq(rd["lanes"])]
        # At level l, a PE at a multiple of 2**l along the reduction adds the partial sum of
        # the PE 2**(l-1) further along (if there is one): pairs, then pairs of pairs, an
        # odd one carried up -- the golden model's tree order.
        def receives(pos, count, level):
            return pos % (1 << level) == 0 and pos + (1 << (level - 1)) < count
        receiving = [[Signal(name=f"receiving_{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            for c in range(C):
                with m.Switch(b_level):
                    for level in range(1, levels + 1):
                        with m.Case(level):
                            m.d.comb += receiving[r][c].eq(
                                Mux(b_tcols, receives(r, R, level), receives(c, C, level)))
        for r in range(R):
            for c in range(C):
                pe = pes[r][c]
                m.d.comb += [
                    pe.uop.eq(b_uop),
                    pe.scalar.eq(scalar),
                    pe.scalar2.eq(scalar2),
                    pe.select.eq(b_sel_all | (b_sel_col == c) | receiving[r][c]),
                    pe.row_in.eq(Mux(b_bus_from == 1, sp.rd_data[r], 0)),
                    pe.col_in.eq(Mux(b_bus_from == 2, sp.rd_data[c], 0)),
                ]

        # --- send stage (+2): partial sums or weights on the buses, into the reducers ------
        s_sel_col = Signal.like(sel_col)
        s_sel_row = Signal.like(sel_row)
        s_red = Signal(red_layout)
        m.d.sync += [s_sel_col.eq(b_sel_col), s_sel_row.eq(b_sel_row), s_red.eq(b_red)]
        row_bus = [Signal(32, name=f"row_bus{r}") for r in range(R)]
        col_bus = [Signal(32, name=f"col_bus{c}") for c in range(C)]
        for r in range(R):
            with m.Switch(s_sel_col):
                for c in range(C):
                    with m.Case(c):
                        m.d.comb += row_bus[r].eq(pes[r][c].out)
        for c in range(C):
            with m.Switch(s_sel_row):
                for r in range(R):
                    with m.Case(r):
                        m.d.comb += col_bus[c].eq(pes[r][c].out)

        # Neighbour links: the partial sum of the PE 2**(level-1) further along arrives in
        # the cycle after the REDUCE_ACC micro-op (the send stage).
        for r in range(R):
            for c in range(C):
                with m.Switch(s_level):
                    for level in range(1, levels + 1):
                        d = 1 << (level - 1)
                        along_row = pes[r][c + d].out if c + d < C else 0
                        along_col = pes[r + d][c].out if r + d < R else 0
                        with m.Case(level):
                            m.d.comb += pes[r][c].nbr_in.eq(Mux(s_tcols, along_col, along_row))

        # Reducers: lane l reduces row bus l (rows) or column bus l (columns).
        ew_latency = L - 1
        sums = [[Signal(32, name=f"sum{l}_{k}") for k in range(G)] for l in range(lanes)]
        adders = []
        for l in range(lanes):
            adder = FloatAdder(FP32, FP32, FP32, latency=ew_latency)
            m.submodules[f"reducer{l}"] = adder
            adders.append(adder)
            bus_word = Signal(32, name=f"reducer{l}_in")
            if l < R and l < C:
                m.d.comb += bus_word.eq(Mux(s_red.cols, col_bus[l], row_bus[l]))
            elif l < R:
                m.d.comb += bus_word.eq(row_bus[l])
            else:
                m.d.comb += bus_word.eq(col_bus[l])
            running = Signal(32, name=f"reducer{l}_running")
            with m.Switch(s_red.k):
                for k in range(G):
                    with m.Case(k):
                        m.d.comb += running.eq(sums[l][k])
            m.d.comb += [adder.a.eq(Mux(s_red.first, 0, running)), adder.b.eq(bus_word),
                         adder.i_valid.eq(s_red.on & ~s_red.store_w)]
        # The control travels beside the reducer adders.
        o_red = s_red
        for index in range(ew_latency):
            nxt = Signal(red_layout, name=f"red_d{index}")
            m.d.sync += nxt.eq(o_red)
            o_red = nxt
        # Mask words for BACKWARD are read one cycle before the reducers' results come out.
        pre_red = s_red if ew_latency == 1 else Signal(red_layout)
        if ew_latency > 1:
            chain = s_red
            for index in range(ew_latency - 1):
                nxt = Signal(red_layout, name=f"mask_d{index}")
                m.d.sync += nxt.eq(chain)
                chain = nxt
            m.d.comb += pre_red.eq(chain)

        results = [Signal(32, name=f"reduced{l}") for l in range(lanes)]
        for l in range(lanes):
            adder = adders[l]
            with m.If(adder.o_valid & o_red.on):
                with m.Switch(o_red.k):
                    for k in range(G):
                        with m.Case(k):
                            m.d.sync += sums[l][k].eq(adder.result)
            value = adder.result
            positive = ~value[31] & (value[23:31] != 0)
            mask_positive = ~sp.rd_data[l][31] & (sp.rd_data[l][23:31] != 0)
            m.d.comb += results[l].eq(
                Mux(o_red.relu & ~positive, 0, Mux(o_red.mask & ~mask_positive, 0, value)))

        m.submodules.loss = loss = LossGradient(line_bits=self.line_bits, mac_latency=L)
        # STORE_W: the sent weights go straight from the row buses to the scratchpad.
        writing_red = o_red.on & o_red.last & ~o_red.store_w
        with m.If(s_red.on & s_red.store_w):
            m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(s_red.e0), sp.wr_line.eq(s_red.line),
                         sp.wr_lanes.eq(s_red.lanes)]
            for r in range(R):
                m.d.comb += sp.wr_data[r].eq(row_bus[r])
        with m.Elif(writing_red):
            m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(o_red.e0), sp.wr_line.eq(o_red.line),
                         sp.wr_lanes.eq(o_red.lanes)]
            for l in range(lanes):
                m.d.comb += sp.wr_data[l].eq(results[l])
        with m.Elif(loss.wr_en):
            m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(loss.wr_e0), sp.wr_line.eq(loss.wr_line),
                         sp.wr_lanes.eq(1), sp.wr_data[0].eq(loss.wr_data)]
        m.d.comb += loss.rd_data.eq(sp.rd_data[0])

        self._sequencer(m, uop, sel_col, sel_row, sel_all, bus_from, rd, (scalar, scalar2),
                        (tree_level, tree_cols), loss, red,
                        pre_red)

        # The DMA's lane port: used only while the core is idle, so it overrides the engines.
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
            # The ring engine's lane port: also used only while the core is idle (a
            # collective waits for every core), with its own read and write addresses.
            nr = self.ring_words
            with m.If(self.ring_wr_en):
                m.d.comb += [sp.wr_en.eq(1), sp.wr_e0.eq(self.ring_wr_e0),
                             sp.wr_line.eq(self.ring_wr_line), sp.wr_lanes.eq(self.ring_wr_lanes)]
                m.d.comb += [sp.wr_data[l].eq(self.ring_wr_data[l]) for l in range(nr)]
            with m.If(self.ring_rd_en):
                m.d.comb += [sp.rd_en.eq(1), sp.rd_e0.eq(self.ring_rd_e0),
                             sp.rd_line.eq(self.ring_rd_line), sp.rd_lanes.eq(self.ring_rd_lanes)]
            m.d.comb += [self.ring_rd_data[l].eq(sp.rd_data[l]) for l in range(nr)]
        return m

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

    def _sequencer(self, m, uop, sel_col, sel_row, sel_all, bus_from, rd, scalars, tree, loss,
                   red,
                   pre_red):
        """Engines that turn commands into micro-ops, scratchpad accesses and reducer steps."""
        R, C, G, L = self.rows, self.cols, self.group, self.latency
        lanes = max(R, C)
        cmd = Signal(self.layout, name="command")
        busy = Signal()
        m.d.comb += self.cmd_ready.eq(~busy)
        # A malformed command is refused at once: it never starts an engine, so it cannot
        # leave the core waiting for a loop end that never comes.
        c = self.cmd
        # The sizes each operation needs: gen.spec.isa's rule (the core keeps its numbering).
        needs = {op: [getattr(c, size) for size in isa.NEEDS[isa.Opcode[op.name]]]
                 for op in CoreOp if op != CoreOp.NONE}
        malformed = Signal(name="malformed")
        m.d.comb += malformed.eq(1)
        with m.Switch(c.op):
            for known, sizes in needs.items():
                with m.Case(known):
                    m.d.comb += malformed.eq(sum((size == 0 for size in sizes), Const(0, 4)) != 0)
        # A command starts in the cycle it is taken, unless it is malformed.
        start = Signal(name="start")
        m.d.comb += start.eq(self.cmd_valid & ~busy & ~malformed)
        with m.If(self.cmd_valid & ~busy):
            m.d.sync += self.error.eq(malformed)
            with m.If(~malformed):
                m.d.sync += [cmd.eq(self.cmd), busy.eq(1)]
        m.d.comb += [scalars[0].eq(cmd.scalar), scalars[1].eq(cmd.scalar2)]

        # Tile counts of the current command.
        mt = Signal(16, name="mt")     # ceil(m / R)
        nt = Signal(16, name="nt")     # ceil(n / C)
        m.d.comb += [mt.eq((cmd.m + (R - 1)) // R if R > 1 else cmd.m),
                     nt.eq((cmd.n + (C - 1)) // C if C > 1 else cmd.n)]
        op = cmd.op

        # Counters.
        with m.If(busy):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.If(uop.c_op == ComputeOp.MAC):
            m.d.sync += self.mac_slots.eq(self.mac_slots + 1)
        with m.If((uop.c_op == ComputeOp.UPDATE) | (uop.c_op == ComputeOp.UPDATE_V)):
            m.d.sync += self.update_slots.eq(self.update_slots + 1)

        def popcount(value):
            return sum((value[i] for i in range(len(value))), Const(0, 8))

        # Lane enables: element e0 + l exists (below `limit`) and l is a real lane.
        def lane_mask(e0, limit, count):
            return Cat(*[(e0 + l < limit) if l < count else Const(0, 1) for l in range(lanes)])

        # ============ mover: LOAD_COL, LOAD_ROW, LOAD_W, STORE_W ==========================
        # Loop counters shared by the mover: t (tile), b (column / inner tile), c (PE column).
        t = Signal(16, name="mv_t")
        b = Signal(16, name="mv_b")
        c_sel = Signal(range(C), name="mv_c")
        running = Signal(name="mv_running")
        finishing = Signal(8, name="finishing")   # pipeline drain countdown
        is_mover = (op == CoreOp.LOAD_COL) | (op == CoreOp.LOAD_ROW) | \
            (op == CoreOp.LOAD_W) | (op == CoreOp.STORE_W)
        is_compute = (op == CoreOp.FORWARD) | (op == CoreOp.BACKWARD) | (op == CoreOp.WGRAD)

        # --- command start / finish ---
        with m.If(start):
            m.d.sync += [t.eq(0), b.eq(0), c_sel.eq(0), running.eq(1), finishing.eq(0)]

        def finish():
            # The last micro-op's results land within L + 3 cycles (an UPDATE's write-back, a
            # reducer's scratchpad write): stay busy until then.
            m.d.sync += [running.eq(0), finishing.eq(L + 4)]

        with m.If(busy & ~running & (finishing != 0)):
            m.d.sync += finishing.eq(finishing - 1)
            with m.If(finishing == 1):
                m.d.sync += busy.eq(0)

        # A load is issued one cycle after the mover computes it, with its scratchpad read,
        # so that the word read and the micro-op that takes it meet in the broadcast stage.
        mv_rd = dict(e0=Signal(16, name="mv_rd_e0"), line=Signal(self.line_bits, name="mv_rd_line"),
                     lanes=Signal(lanes, name="mv_rd_lanes"))
        ld_rd = dict(e0=Signal(16, name="ld_rd_e0"), line=Signal(self.line_bits, name="ld_rd_line"),
                     lanes=Signal(lanes, name="ld_rd_lanes"))
        load_uop = Signal(self.uop_layout, name="load_uop")
        load_from = Signal(2, name="load_from")
        load_valid = Signal(name="load_valid")
        m.d.sync += [load_valid.eq(0), load_from.eq(0), load_uop.eq(0)]
        m.d.sync += [ld_rd[key].eq(mv_rd[key]) for key in ld_rd]

        def nested_loop(levels):
            """One step of nested counters, innermost first: ``[(counter, limit), ...]``;
            the command finishes after the last step of the outermost."""
            (counter, limit), outer = levels[0], levels[1:]
            with m.If(counter + 1 == limit):
                m.d.sync += counter.eq(0)
                if outer:
                    nested_loop(outer)
                else:
                    finish()
            with m.Else():
                m.d.sync += counter.eq(counter + 1)

        # --- LOAD_COL / LOAD_ROW: t over tiles, b over columns; t_addr = abase + t*B + b ---
        line_of = Signal(self.line_bits, name="mv_line")
        m.d.comb += line_of.eq(cmd.sp_base + b * cmd.sp_lpc)
        with m.If(busy & running & ((op == CoreOp.LOAD_COL) | (op == CoreOp.LOAD_ROW))):
            cols = op == CoreOp.LOAD_COL
            tiles = Mux(cols, nt, mt)
            e0 = t * Mux(cols, C, R)
            mask = Mux(cols, lane_mask(e0, cmd.n, C), lane_mask(e0, cmd.m, R))
            m.d.comb += [mv_rd["e0"].eq(e0), mv_rd["line"].eq(line_of), mv_rd["lanes"].eq(mask)]
            m.d.sync += [load_valid.eq(1), load_from.eq(Mux(cols, 2, 1)),
                         load_uop.t_op.eq(Mux(cols, TransferOp.ACT_FROM_COL,
                                              TransferOp.ACT_FROM_ROW)),
                         load_uop.t_addr.eq(cmd.abase + t * cmd.batch + b)]
            m.d.sync += self.bus_words.eq(self.bus_words + popcount(mv_rd["lanes"]))
            nested_loop([(b, cmd.batch), (t, tiles)])

        # --- LOAD_W / STORE_W: t = ti, b = tj, c_sel = PE column ---
        w_line = Signal(self.line_bits, name="w_line")
        j = Signal(16, name="w_j")
        m.d.comb += [j.eq(c_sel + b * C), w_line.eq(cmd.sp_base + j * cmd.sp_lpc)]
        w_mask = Signal(lanes, name="w_mask")
        m.d.comb += w_mask.eq(Mux(j < cmd.n, lane_mask(t * R, cmd.m, R), 0))
        with m.If(busy & running & (op == CoreOp.LOAD_W)):
            m.d.comb += [mv_rd["e0"].eq(t * R), mv_rd["line"].eq(w_line), mv_rd["lanes"].eq(w_mask)]
            m.d.sync += [load_valid.eq(1), load_from.eq(1),
                         load_uop.t_op.eq(TransferOp.W_FROM_ROW),
                         load_uop.t_addr.eq(cmd.wbase + t * nt + b)]
        with m.If(busy & running & ((op == CoreOp.LOAD_W) | (op == CoreOp.STORE_W))):
            nested_loop([(c_sel, C), (b, nt), (t, mt)])
            m.d.sync += self.bus_words.eq(self.bus_words + popcount(w_mask))
        load_sel_col = Signal(range(C), name="load_sel_col")
        m.d.sync += load_sel_col.eq(c_sel)

        # The issue mux: a load's registered micro-op, or the engines' micro-ops below.
        with m.If(load_valid):
            m.d.comb += [uop.eq(load_uop), bus_from.eq(load_from), sel_col.eq(load_sel_col),
                         sel_all.eq(load_uop.t_op != TransferOp.W_FROM_ROW),
                         rd["en"].eq(1), rd["e0"].eq(ld_rd["e0"]), rd["line"].eq(ld_rd["line"]),
                         rd["lanes"].eq(ld_rd["lanes"])]

        with m.If(busy & running & (op == CoreOp.STORE_W)):
            m.d.comb += [uop.t_op.eq(TransferOp.SEND_W), uop.t_addr.eq(cmd.wbase + t * nt + b),
                         sel_col.eq(c_sel), sel_all.eq(0),
                         red.on.eq(1), red.store_w.eq(1), red.e0.eq(t * R), red.line.eq(w_line),
                         red.lanes.eq(w_mask)]

        # ============ compute and drain engines: FORWARD, BACKWARD, WGRAD ==================
        self._compute_engines(m, cmd, busy, running, start, op, mt, nt, uop, sel_col, sel_row,
                              red, tree, loss, rd, pre_red, finish, lane_mask, popcount)

    def _compute_engines(self, m, cmd, busy, running, start, op, mt, nt, uop, sel_col, sel_row,
                         red, tree, loss, rd, pre_red, finish, lane_mask, popcount):
        R, C, G, L = self.rows, self.cols, self.group, self.latency
        lanes = max(R, C)
        fwd = op == CoreOp.FORWARD
        bwd = op == CoreOp.BACKWARD
        wgr = op == CoreOp.WGRAD
        active = busy & running & (fwd | bwd | wgr)

        # Outputs per PE, steps per output, and the wrap of the (p1, p2) position counter.
        outputs = Signal(32, name="outputs")
        steps = Signal(16, name="steps")
        wrap = Signal(16, name="wrap")
        m.d.comb += [
            outputs.eq(Mux(fwd, mt * cmd.batch, Mux(bwd, nt * cmd.batch, mt * nt))),
            steps.eq(Mux(fwd, nt, Mux(bwd, mt, cmd.batch))),
            wrap.eq(Mux(wgr, nt, cmd.batch)),
        ]

        # --- compute engine -------------------------------------------------------------
        g = Signal(16, name="ce_group")           # group index
        s = Signal(16, name="ce_step")
        k = Signal(range(G + 1), name="ce_k")
        upd = Signal(name="ce_updating")          # WGRAD: the update pass of a group
        vel = Signal(name="ce_velocity")          # WGRAD with momentum: the velocity pass
        o = Signal(32, name="ce_output")          # g * G + k
        p1 = Signal(16, name="ce_p1")
        p2 = Signal(16, name="ce_p2")
        g_p1 = Signal(16, name="ce_group_p1")     # position at the group's first output
        g_p2 = Signal(16, name="ce_group_p2")
        ce_done = Signal(name="ce_done")
        buf = Signal(name="ce_buffer")
        free = Signal(2, name="buffer_free", init=0b11)

        # --- drain engine (FORWARD, BACKWARD) -------------------------------------------------
        pending = Signal(2, name="dr_pending")    # groups waiting to be drained (count)
        dr_group = Signal(16, name="dr_group")
        dr_lane = Signal(range(max(R, C) + 1), name="dr_lane")
        dr_k = Signal(range(G + 1), name="dr_k")
        dr_wait = Signal(8, name="dr_wait")
        dr_running = Signal(name="dr_running")
        dr_p1 = Signal(16, name="dr_p1")
        dr_p2 = Signal(16, name="dr_p2")
        dr_g_p1 = Signal(16, name="dr_group_p1")
        dr_g_p2 = Signal(16, name="dr_group_p2")
        dr_buf = Signal(name="dr_buffer")
        groups = Signal(16, name="groups")
        m.d.comb += groups.eq((outputs + (G - 1)) // G if G > 1 else outputs)

        fresh = Signal(name="ce_fresh")            # no MAC issued yet in this command
        with m.If(start):
            m.d.sync += [fresh.eq(1), g.eq(0), s.eq(0), k.eq(0), upd.eq(0), vel.eq(0), o.eq(0), p1.eq(0),
                         p2.eq(0),
                         g_p1.eq(0), g_p2.eq(0), ce_done.eq(0), buf.eq(0), free.eq(0b11),
                         pending.eq(0), dr_group.eq(0), dr_lane.eq(0), dr_k.eq(0),
                         dr_running.eq(0), dr_wait.eq(0), dr_p1.eq(0), dr_p2.eq(0),
                         dr_g_p1.eq(0), dr_g_p2.eq(0), dr_buf.eq(0)]

        def next_position(hi, lo, limit):
            """The position after ``(hi, lo)``: ``lo`` counts to ``limit``, then ``hi``."""
            wraps = lo + 1 == limit
            return Mux(wraps, hi + 1, hi), Mux(wraps, 0, lo + 1)

        next_p1, next_p2 = next_position(p1, p2, wrap)
        # Dual precision: a MAC slot takes outputs o (pair 0) and o + 1 (pair 1, at the
        # position after p), and the slot after starts two positions on; the update and
        # velocity passes of WGRAD stay one output per slot (docs/dual_precision.md).
        dual = self.streams == 2
        if dual:
            q1, q2 = next_p1, next_p2
            after2_p1, after2_p2 = next_position(q1, q2, wrap)
            one_output = upd | vel
            inc = Mux(one_output, 1, 2)
            after_p1 = Mux(one_output, next_p1, after2_p1)
            after_p2 = Mux(one_output, next_p2, after2_p2)
        else:
            inc = 1
            after_p1, after_p2 = next_p1, next_p2
        dr_next_p1, dr_next_p2 = next_position(dr_p1, dr_p2, cmd.batch)
        valid_o = o < outputs
        acc_index = (buf * G + k)[:len(uop.c_acc)]
        can_start = free.bit_select(buf, 1) | (s != 0) | (k != 0) | upd | vel | wgr
        group_done_signal = Signal(name="ce_group_done")
        drain_done_signal = Signal(name="dr_group_done")
        claim = Signal(2, name="buffer_claim")
        release = Signal(2, name="buffer_release")
        with m.If(active):
            m.d.sync += free.eq((free & ~claim) | release)

        with m.If(active & ~ce_done):
            with m.If(~can_start):
                m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
            with m.Else():
                with m.If((fwd | bwd) & (s == 0) & (k == 0)):
                    m.d.comb += claim.eq(Mux(buf, 0b10, 0b01))
                # The compute slot of this cycle.
                with m.If(valid_o):
                    with m.If(vel):
                        m.d.comb += [uop.c_op.eq(ComputeOp.UPDATE_V), uop.c_acc.eq(acc_index),
                                     uop.waddr.eq(cmd.wbase2 + p1 * nt + p2)]
                    with m.Elif(upd):
                        m.d.comb += [uop.c_op.eq(ComputeOp.UPDATE), uop.c_acc.eq(acc_index),
                                     uop.waddr.eq(cmd.wbase + p1 * nt + p2)]
                    with m.Else():
                        m.d.comb += [uop.c_op.eq(ComputeOp.MAC), uop.c_acc.eq(acc_index),
                                     uop.c_clear.eq(s == 0), uop.a_act.eq(wgr)]
                        if self.reuse:
                            # The first MAC of a command starts the reuse caches afresh.
                            m.d.comb += uop.c_fresh.eq(fresh)
                            m.d.sync += fresh.eq(0)
                        if self.reuse_shared:
                            m.d.comb += uop.c_rows.eq(bwd)
                        phases = (fwd, bwd, wgr)
                        self._mac_addresses(m, cmd, s, p1, p2, nt, phases,
                                            uop.waddr, uop.aaddr, uop.aaddr2)
                        if dual:
                            self._pair1(m, cmd, uop, o, s, q1, q2, nt, outputs, phases)
                # Advance k (and the position), then s, then the group.
                with m.If(k + inc == G):
                    m.d.sync += [k.eq(0), o.eq(o - G + inc), p1.eq(g_p1), p2.eq(g_p2)]
                    last_step = Mux(wgr, upd, s + 1 == steps)
                    with m.If(wgr & ~upd & ~vel & (s + 1 == steps)):
                        # The batch is accumulated: the velocity pass (momentum), the update.
                        m.d.sync += [vel.eq(cmd.flag), upd.eq(~cmd.flag), s.eq(0)]
                    with m.Elif(vel):
                        m.d.sync += [vel.eq(0), upd.eq(1)]
                    with m.Elif(last_step):
                        m.d.sync += [s.eq(0), upd.eq(0), g.eq(g + 1), o.eq(o + inc),
                                     p1.eq(after_p1), p2.eq(after_p2),
                                     g_p1.eq(after_p1), g_p2.eq(after_p2)]
                        m.d.comb += group_done_signal.eq(~wgr)
                        with m.If(~wgr):
                            m.d.sync += buf.eq(~buf)
                        with m.If(g + 1 == groups):
                            m.d.sync += ce_done.eq(1)
                    with m.Else():
                        m.d.sync += s.eq(s + 1)
                with m.Else():
                    m.d.sync += [k.eq(k + inc), o.eq(o + inc),
                                 p1.eq(after_p1), p2.eq(after_p2)]

        # --- drain engine ---------------------------------------------------------------
        lanes_count = Mux(fwd, C, R)     # partial sums per output (PEs along the bus)
        # Passes of the drain over a group: one per PE along the bus (a chain of adds at the
        # edge), or with the tree one per level of neighbour-link adds and one bus pass.
        if self.tree:
            tree_levels = Mux(fwd, (C - 1).bit_length(), (R - 1).bit_length())
            passes_count = tree_levels + 1
            reducing_pass = dr_lane < tree_levels
            send_lane = Const(0, 1)
        else:
            passes_count = lanes_count
            reducing_pass = Const(0, 1)
            send_lane = dr_lane
        with m.If(group_done_signal & ~drain_done_signal):
            m.d.sync += pending.eq(pending + 1)
        with m.If(~group_done_signal & drain_done_signal):
            m.d.sync += pending.eq(pending - 1)

        dr_o = Signal(32, name="dr_output")
        m.d.comb += dr_o.eq(dr_group * G + dr_k)
        with m.If(active & (fwd | bwd)):
            with m.If(~dr_running & (pending != 0)):
                # The first send (accumulator 0) reads L + 2 cycles after its last MAC at the
                # earliest; that MAC was issued P - 1 cycles before the group ended (P =
                # G / streams slots per step), and the drain starts 2 cycles after that, so
                # it waits only if P < L + 1.
                m.d.sync += [dr_running.eq(1), dr_wait.eq(max(0, L + 1 - G // self.streams)),
                             dr_lane.eq(0), dr_k.eq(0)]
            with m.If(dr_running & (dr_wait != 0)):
                m.d.sync += dr_wait.eq(dr_wait - 1)
            with m.If(dr_running & (dr_wait == 0) & reducing_pass):
                # Tree: a level of neighbour-link additions; nothing crosses a bus.
                tree_level, tree_cols = tree
                m.d.comb += [uop.t_op.eq(TransferOp.REDUCE_ACC),
                             uop.t_acc.eq((dr_buf * G + dr_k)[:len(uop.t_acc)]),
                             tree_level.eq(dr_lane + 1), tree_cols.eq(bwd)]
            with m.If(dr_running & (dr_wait == 0) & ~reducing_pass):
                # Bus: the partial sums of PE `send_lane` to the edge reducers (tree: the
                # finished sums of PE 0, which the reducer passes through: +0 + S is S).
                m.d.comb += [uop.t_op.eq(TransferOp.SEND_ACC),
                             uop.t_acc.eq((dr_buf * G + dr_k)[:len(uop.t_acc)]),
                             sel_col.eq(Mux(fwd, send_lane, 0)), sel_row.eq(Mux(bwd, send_lane, 0)),
                             red.on.eq(dr_o < outputs), red.cols.eq(bwd),
                             red.first.eq(send_lane == 0),
                             red.last.eq(dr_lane + 1 == passes_count),
                             red.k.eq(dr_k), red.relu.eq(fwd & cmd.flag),
                             red.mask.eq(bwd & cmd.flag)]
            with m.If(dr_running & (dr_wait == 0)):
                # Where the reduced outputs go: FORWARD: Y[R*p1 + r][p2]; BACKWARD:
                # dX[C*p1 + c][p2] (p1 = tile, p2 = batch column).
                with m.If(fwd):
                    m.d.comb += [red.e0.eq(dr_p1 * R), red.lanes.eq(lane_mask(dr_p1 * R, cmd.m, R))]
                with m.Else():
                    m.d.comb += [red.e0.eq(dr_p1 * C), red.lanes.eq(lane_mask(dr_p1 * C, cmd.n, C))]
                m.d.comb += [red.line.eq(cmd.sp_base + dr_p2 * cmd.sp_lpc),
                             red.mask_line.eq(cmd.sp2_base + dr_p2 * cmd.sp2_lpc)]
                with m.If(red.on):
                    m.d.sync += self.bus_words.eq(self.bus_words + popcount(red.lanes))
                with m.If(dr_k + 1 == G):
                    m.d.sync += [dr_k.eq(0), dr_p1.eq(dr_g_p1), dr_p2.eq(dr_g_p2)]
                    with m.If(dr_lane + 1 == passes_count):
                        # The group is drained: its buffer may be reused.
                        m.d.comb += [drain_done_signal.eq(1),
                                     release.eq(Mux(dr_buf, 0b10, 0b01))]
                        m.d.sync += [dr_lane.eq(0), dr_running.eq(0), dr_buf.eq(~dr_buf),
                                     dr_group.eq(dr_group + 1),
                                     dr_p1.eq(dr_next_p1), dr_p2.eq(dr_next_p2),
                                     dr_g_p1.eq(dr_next_p1), dr_g_p2.eq(dr_next_p2)]
                    with m.Else():
                        m.d.sync += dr_lane.eq(dr_lane + 1)
                with m.Else():
                    m.d.sync += [dr_k.eq(dr_k + 1),
                                 dr_p1.eq(dr_next_p1), dr_p2.eq(dr_next_p2)]

        # Mask words: read in the cycle before the reducers' results come out.
        with m.If(pre_red.on & pre_red.last & pre_red.mask):
            m.d.comb += [rd["en"].eq(1), rd["e0"].eq(pre_red.e0), rd["line"].eq(pre_red.mask_line),
                         rd["lanes"].eq(pre_red.lanes)]

        # LOSS_GRAD: the loss-gradient unit runs the command and uses lane 0 of the scratchpad.
        loss_started = Signal(name="loss_started")
        with m.If(start):
            m.d.sync += loss_started.eq(0)
        with m.If(busy & running & (op == CoreOp.LOSS_GRAD)):
            m.d.comb += [loss.start.eq(~loss_started), loss.m.eq(cmd.m), loss.batch.eq(cmd.batch),
                         loss.y_base.eq(cmd.sp_base), loss.y_lpc.eq(cmd.sp_lpc),
                         loss.dy_base.eq(cmd.sp2_base), loss.dy_lpc.eq(cmd.sp2_lpc),
                         loss.label_base.eq(cmd.sp3_base), loss.label_lpc.eq(cmd.sp3_lpc),
                         loss.inv_batch.eq(cmd.scalar)]
            m.d.sync += loss_started.eq(1)
            with m.If(loss.rd_en):
                m.d.comb += [rd["en"].eq(1), rd["e0"].eq(loss.rd_e0), rd["line"].eq(loss.rd_line),
                             rd["lanes"].eq(1)]
            with m.If(loss.done):
                finish()

        # The command ends when the compute engine is done and every group is drained.
        with m.If(active & ce_done & ((wgr) | (dr_group == groups))):
            finish()

    @staticmethod
    def _mac_addresses(m, cmd, s, p1, p2, nt, phases, waddr, aaddr, aaddr2):
        """The bank addresses of the MAC of output ``(p1, p2)`` at step ``s``: the weight
        (FORWARD, BACKWARD) or the gradient (WGRAD, ``aaddr2``) and the activation."""
        fwd, bwd, wgr = phases
        with m.If(fwd):
            m.d.comb += [waddr.eq(cmd.wbase + p1 * nt + s),
                         aaddr.eq(cmd.abase + s * cmd.batch + p2)]
        with m.If(bwd):
            m.d.comb += [waddr.eq(cmd.wbase + s * nt + p1),
                         aaddr.eq(cmd.abase + s * cmd.batch + p2)]
        with m.If(wgr):
            m.d.comb += [aaddr2.eq(cmd.abase2 + p1 * cmd.batch + s),
                         aaddr.eq(cmd.abase + p2 * cmd.batch + s)]

    def _pair1(self, m, cmd, uop, o, s, q1, q2, nt, outputs, phases):
        """Pair 1 of a dual-precision MAC slot: output ``o + 1`` at position ``(q1, q2)``,
        the same step ``s``; its addresses as pair 0's, and the ``random`` policy's bit."""
        m.d.comb += uop.pair1.eq(o + 1 < outputs)
        self._mac_addresses(m, cmd, s, q1, q2, nt, phases, uop.waddr1, uop.aaddr1,
                            uop.aaddr2_1)
        if self.config.mac.dual == "random":
            # sim.golden.dual.random_bits(o, s, seed) in 16-bit arithmetic: a hash of the slot, so
            # that the bit does not depend on the order in which slots are issued.
            x = Signal(16, name="random_x")
            y = Signal(16, name="random_y")
            m.d.comb += [x.eq(o[:16] * 40503 + s * 10007 + self.dual_seed * 49297),
                         y.eq(x * 25173 + 13849),
                         uop.rand.eq(y[15])]
