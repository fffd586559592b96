"""The command checker: the rules of :func:`chrysalis.gen.spec.isa.check` in gateware.

The checks are generated from the command set's tables: the fields (``isa.FIELDS``, as the
layout :data:`COMMAND_LAYOUT`), the reserved bits (``isa.RESERVED``), the sizes each
operation needs (``isa.NEEDS``), the regions each operation touches (``isa.OP_REGIONS``)
and the cores a command names (``isa.core_error``). They take three registered steps --
tile counts and the shapes of the scratchpad matrices, then region ends and sizes, then the
comparisons -- so :attr:`CommandChecker.code` is valid from the third cycle after the
command was last changed. No step has more than one multiplier on a path: a DMA
command's span in memory, a 16 x 32-bit product, is two 16-bit products in the first step
and their sum in the second.
"""

from functools import reduce
from operator import mul

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from chrysalis.gen.spec import isa

__all__ = ["COMMAND_LAYOUT", "CommandChecker"]

#: A command as the DMA engine fetches it: every field of ``isa.FIELDS`` at its bit (fields
#: that no operation uses together share bits).
COMMAND_LAYOUT = data.FlexibleLayout(32 * isa.COMMAND_WORDS, {
    f.name: data.Field(unsigned(f.width), f.bit) for f in isa.FIELDS})

#: Width of the values a size term takes before the tile counts (``m``, ``n``, ``batch``).
_SIZE_BITS = isa.FIELD["n"].width


class CommandChecker(wiring.Component):
    """The error code of a command (:class:`chrysalis.gen.spec.isa.ErrorCode`), and the
    cores it runs on.

    Parameters
    ----------
    config : chrysalis.gen.spec.config.Config
        The machine the command is checked against (``isa.Limits.from_config``).

    Members
    -------
    command : In(COMMAND_LAYOUT)
        The command, held for three cycles before :attr:`code` is read.
    dma_base, dma_last : In(64)
        The DMA window (registers ``DMA_BASE``, ``DMA_LAST``); ``dma_last`` is sampled a
        cycle before :attr:`code` is read.
    code : Out(8)
        The first failing check's error code, ``ErrorCode.NONE`` if the command may run.
    mask : Out(cluster.cores)
        The cores a core or DMA command runs on (``isa.core_mask``), from :attr:`command`
        at once.
    sp_end : Out(48)
        The line after the command's scratchpad matrix ``sp`` (``sp_base + columns *
        sp_lpc``), valid with :attr:`code` when the command has one (the controller's
        scoreboard, ``hw.controller``).
    act_end, act2_end : Out(33)
        The word after the command's activation-bank region at ``abase`` (``abase2``):
        ``abase + nt * batch`` for ``LOAD_COL``, ``abase + mt * batch`` for ``LOAD_ROW``,
        ``WGRAD``'s inputs and gradients (``isa.OP_REGIONS``); valid with :attr:`code`
        (the controller's scoreboard).
    """

    def __init__(self, config):
        self.limits = isa.Limits.from_config(config)
        self.cores = self.limits.cores
        super().__init__({
            "command": In(COMMAND_LAYOUT),
            "dma_base": In(64), "dma_last": In(64),
            "code": Out(8),
            "mask": Out(self.cores),
            "sp_end": Out(48),
            "act_end": Out(33), "act2_end": Out(33),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.command
        self._is_op = {o: Signal(name=f"is_{o.name.lower()}") for o in isa.Opcode}
        for o, sig in self._is_op.items():
            m.d.comb += sig.eq(f.op == int(o))
        everyone = (1 << self.cores) - 1
        m.d.comb += self.mask.eq(Mux(f.cores == 0, everyone, f.cores[:self.cores]))

        terms = self._tile_counts(m)
        matrices = self._matrix_shapes(m, terms)
        sizes = self._bank_sizes(m, terms)
        E = isa.ErrorCode
        checks = (
            (E.BAD_OPCODE, ~Cat(*self._is_op.values()).any()),
            (E.RESERVED_BITS, self._reserved_set()),
            (E.ZERO_SIZE, self._ops_where(lambda o: Cat(*[f[s] == 0 for s in isa.NEEDS[o]])
                                          .any())),
            (E.WEIGHT_RANGE, self._bank_past("weight", sizes, self.limits.weight_words)),
            (E.ACT_RANGE, self._bank_past("act", sizes, self.limits.act_words)
                          | self._overlap(sizes)),
            (E.SCRATCHPAD_RANGE, self._scratchpad_bad(m, matrices)),
            *self._dma_bad(m, terms),
            (E.BAD_CORE, self._core_bad(m)),
        )
        code = E.NONE
        for error, bad in reversed(checks):      # the first failing check wins
            code = Mux(bad, error, code)
        m.d.comb += self.code.eq(code)
        self._act_ends(m, sizes)
        return m

    def _act_ends(self, m, sizes):
        """:attr:`act_end` and :attr:`act2_end`: the ends of the regions at ``abase`` and
        ``abase2`` of the command's operation (0 for an operation without one)."""
        f = self.command
        for base, out in (("abase", self.act_end), ("abase2", self.act2_end)):
            end = Const(0, 33)
            for region, ops in self._by_shape("act").items():
                if region.base == base:
                    end = Mux(self._any_op(ops),
                              f[base] + sizes[region.row_terms + region.col_terms], end)
            m.d.comb += out.eq(end)

    # --- the operation ------------------------------------------------------------------

    def _any_op(self, ops):
        return Cat(*[self._is_op[o] for o in ops]).any()

    def _ops_where(self, condition):
        """Some operation holds and ``condition(op)`` holds for it."""
        return Cat(*[self._is_op[o] & condition(o) for o in isa.Opcode]).any()

    def _touched(self, region, ops):
        """The command is one of ``ops`` and touches ``region`` (``region.when``)."""
        cond = self._any_op(ops)
        return cond & self.command[region.when] if region.when else cond

    def _reserved_set(self):
        value = self.command.as_value()
        return Cat(*[value[32 * w:32 * w + 32] & mask
                     for w, mask in enumerate(isa.RESERVED)]).any()

    @staticmethod
    def _by_shape(memory):
        """``{(base, rows, cols, when): [ops]}`` of the regions in ``memory``, in the order of
        ``isa.OP_REGIONS``."""
        groups = {}
        for op, regions in isa.OP_REGIONS.items():
            for r in regions:
                if r.memory == memory:
                    groups.setdefault(r, []).append(op)
        return groups

    # --- step 1: tile counts and scratchpad matrices ---------------------------------------

    def _tile_counts(self, m):
        """The values of ``isa.SIZE_TERMS``: the fields, the cores, and the tile counts
        ``mt`` and ``nt`` (registered)."""
        f = self.command
        R, C = self.limits.rows, self.limits.cols
        mt = Signal(16, name="chk_mt")
        nt = Signal(16, name="chk_nt")
        m.d.sync += [mt.eq((f.m + (R - 1)) // R if R > 1 else f.m),
                     nt.eq((f.n + (C - 1)) // C if C > 1 else f.n)]
        return dict(m=f.m, n=f.n, batch=f.batch, mt=mt, nt=nt,
                    cores=Const(self.cores, ceil_log2(self.cores + 1)))

    def _matrix_shapes(self, m, terms):
        """Per scratchpad matrix (``sp``, ``sp2``, ``sp3``): ``(prefix, used, rows, cols)``,
        registered. A collective's matrix of every core's chunks has ``cores * n`` rows, and
        a GATHER's table ``m * n``, which may exceed the 2**16 elements a lane access
        addresses (``SCRATCHPAD_RANGE``)."""
        # Wide enough for every shape's product (GATHER's table has m * n rows).
        rows_bits = max(len(_product(terms, region.row_terms, _SIZE_BITS))
                        for region in self._by_shape("scratchpad"))
        by_prefix = {}
        for region, ops in self._by_shape("scratchpad").items():
            by_prefix.setdefault(region.base, []).append((region, ops))
        matrices = []
        for prefix, entries in by_prefix.items():
            used = Signal(name=f"chk_{prefix}_used")
            rows = Signal(rows_bits, name=f"chk_{prefix}_rows")
            cols = Signal(_SIZE_BITS, name=f"chk_{prefix}_cols")
            ops_of = [op for _, ops in entries for op in ops]
            if len(set(ops_of)) != len(ops_of):
                raise ValueError(f"an operation touches scratchpad matrix {prefix} twice in "
                                 f"isa.OP_REGIONS, not once: {ops_of!r}")
            conds = []
            for region, ops in entries:
                # Each operation touches each matrix once: the conditions exclude each other.
                cond = self._touched(region, ops)
                with m.If(cond):
                    m.d.sync += [rows.eq(_product(terms, region.row_terms, _SIZE_BITS)),
                                 cols.eq(_product(terms, region.col_terms, _SIZE_BITS))]
                conds.append(cond)
            m.d.sync += used.eq(Cat(*conds).any())
            matrices.append((prefix, used, rows, cols))
        return matrices

    # --- step 2: region sizes and ends; step 3: comparisons --------------------------------

    def _bank_sizes(self, m, terms):
        """The words of every bank region's shape (``mt*nt``, ``nt*batch``, ...),
        registered."""
        sizes = {}
        for memory in ("weight", "act"):
            for region in self._by_shape(memory):
                key = region.row_terms + region.col_terms
                if key not in sizes:
                    sizes[key] = Signal(32, name="chk_" + "_".join(key))
                    m.d.sync += sizes[key].eq(_product(terms, key, 32))
        return sizes

    def _bank_past(self, memory, sizes, depth):
        """A region of the command in bank ``memory`` runs past its ``depth``."""
        f = self.command
        return Cat(*[self._touched(region, ops)
                     & (f[region.base] + sizes[region.row_terms + region.col_terms] > depth)
                     for region, ops in self._by_shape(memory).items()]).any()

    def _overlap(self, sizes):
        """Two regions of ``isa.DISJOINT`` that the command touches overlap."""
        f = self.command
        bad = []
        for op, (a, b) in isa.DISJOINT.items():
            a0, b0 = f[a.base], f[b.base]
            a1 = a0 + sizes[a.row_terms + a.col_terms]
            b1 = b0 + sizes[b.row_terms + b.col_terms]
            bad.append(self._touched(a, [op]) & self._touched(b, [op]) & (a0 < b1) & (b0 < a1))
        return Cat(*bad).any()

    def _scratchpad_bad(self, m, matrices):
        """A matrix's columns are shorter than its rows, or it runs past the scratchpad."""
        f = self.command
        log_banks = exact_log2(self.limits.banks)
        bad = []
        for prefix, used, rows, cols in matrices:
            base, lpc = f[f"{prefix}_base"], f[f"{prefix}_lpc"]
            short = Signal(name=f"chk_{prefix}_short")
            end = Signal(48, name=f"chk_{prefix}_end")
            too_long = (lpc << log_banks) < rows
            if len(rows) > _SIZE_BITS:
                too_long = too_long | (rows > 0xFFFF)
            m.d.sync += [short.eq(too_long), end.eq(base + cols * lpc)]
            if prefix == "sp":
                m.d.comb += self.sp_end.eq(end)
            bad.append(used & (short | (end > self.limits.sp_lines)))
        return Cat(*bad).any()

    def _dma_bad(self, m, terms):
        """``(DMA_ALIGN, bad)`` and ``(DMA_RANGE, bad)`` of the memory regions: the address
        and stride are whole beats, and the columns (whole beats) lie in the DMA window."""
        f = self.command
        bb = self.limits.beat_bytes
        K, log_bb = bb // 4, exact_log2(bb)
        align, span = [], []
        for region, ops in self._by_shape("memory").items():
            is_dma = self._touched(region, ops)
            words = _product(terms, region.row_terms, _SIZE_BITS)
            columns = _product(terms, region.col_terms, _SIZE_BITS)
            # (columns - 1) * mem_stride + col_bytes in two registered steps (the code is
            # read in the third cycle): the product's two halves, one multiplier each, then
            # their sum.
            stride = f.mem_stride
            half = len(stride) // 2
            # Signed, as columns - 1 is: the sum is the one product exactly.
            lo = Signal(signed(half + _SIZE_BITS + 2), name="chk_dma_span_lo")
            hi = Signal(signed(len(stride) - half + _SIZE_BITS + 2), name="chk_dma_span_hi")
            col_bytes = Signal(_SIZE_BITS + log_bb, name="chk_dma_col_bytes")
            m.d.sync += [lo.eq((columns - 1) * stride[:half]),
                         hi.eq((columns - 1) * stride[half:]),
                         col_bytes.eq(((words + (K - 1)) >> exact_log2(K)) << log_bb)]
            dma_span = Signal(66, name="chk_dma_span")
            m.d.sync += dma_span.eq((hi << half) + lo + col_bytes)
            addr = f[region.base]
            align.append(is_dma & ((addr[:log_bb] != 0) | (f.mem_stride[:log_bb] != 0)))
            # addr + dma_span - 1 > dma_last, as dma_span > dma_last - addr + 1: the room
            # is registered beside the span, so the third cycle has one compare, not an
            # add and then a compare.
            room = Signal(signed(len(addr) + 3), name="chk_dma_room")
            m.d.sync += room.eq(self.dma_last - addr + 1)
            span.append(is_dma & ((addr < self.dma_base) | (dma_span > room)))
        E = isa.ErrorCode
        return (E.DMA_ALIGN, Cat(*align).any()), (E.DMA_RANGE, Cat(*span).any())

    def _core_bad(self, m):
        """``isa.core_error``: the command names cores the machine lacks."""
        f = self.command
        count, mask = self.cores, self.mask
        bad = Signal(name="chk_core_bad")
        O = isa.Opcode
        if count > 1:
            send = self._is_op[O.SEND]
            collective_bad = ((f.root >= count) |
                              (send & ((f.peer >= count) | (f.peer == f.root))))
        else:
            collective_bad = Const(1, 1)        # a collective needs two cores
        absent = (f.cores[count:] != 0) if count < len(f.cores) else Const(0, 1)
        several = (mask & (mask - 1)[:count]) != 0
        m.d.comb += bad.eq(Mux(self._any_op(sorted(isa.COLLECTIVES)), collective_bad,
                               absent | (self._is_op[O.DMA_STORE] & several)))
        return bad


def _product(terms, names, width):
    """The product of the size terms ``names`` (1 for none), ``width`` bits wide."""
    if not names:
        return Const(1, width)
    return reduce(mul, [terms[name] for name in names])
