"""The loss-gradient unit: ``dY = (softmax(Y) - onehot) / B`` at the output layer, on chip.

It works on a chunk of up to ``columns`` samples (columns of ``Y``) at a time, with two
fp32 FMAs (A, B), a rounded fp32 multiplier (C: ``hw.fmul.RoundedMultiplier``, an FMA with a
zero addend bit for bit), two such multipliers per further output lane, and a special-function
unit (``core.sfu``): the pipelined one (``hw.sfu.PipelinedSFU``: one exp or reciprocal
enters per cycle; a reciprocal leaves after its own four FMAs) or the barrel
(``hw.sfu.SpecialFunctionUnit``, one FMA), to which the exponential and reciprocal passes
offer one element per 9 cycles, each taken at once (:func:`barrel_threads`). It reads and
writes the scratchpad through its lane ports: the maximum pass reads ``lanes``
consecutive classes of a column at once, the output pass reads and writes ``min(lanes,
OUT_LANES)``, the exponential and reciprocal passes one word (lane 0).

Four passes per chunk. The maximum, exponential and reciprocal passes go over the classes
``i`` and, inside, over the chunk's ``slots`` (``max(columns of the chunk, mac_latency +
1)``; a slot past the chunk's columns issues nothing), so that consecutive operations on
one column's running values are at least ``mac_latency + 1`` cycles apart: the FMAs'
latency is hidden. The output pass runs nothing from one class to the next, so it has a
slot per column only. Each pass is a stream of fused operations, in the golden model's
order for every column (``sim.golden.core_model.softmax_xent_gradient``):

1. ``MAX``: read ``Y``, ``lanes`` classes (1, 2 or 4) per read; ``m = max_i Y[i]`` (the
   first largest, by value), in three registered steps (two pairs of lanes, the pairs, the
   column's running maximum).
2. ``EXP``: read ``Y``; ``z_i = Y[i] - m`` (FMA A) -> ``e_i = exp(z_i)`` (the SFU) -> ``e_i``
   written into ``dY[i]`` and ``s = s + e_i`` (FMA B; ``s = +0`` before ``i = 0``, ``i``
   increasing).
3. ``RECIP``: ``r = 1/s`` through the SFU, one column per issue, while the labels are read
   (one integer word per column). With the pipelined unit it starts while the last exps
   and sums are still on their way: column ``c``'s reciprocal goes in the cycle after its
   last sum is written.
4. ``OUT``: read ``e_i``, up to two classes per read; on each lane ``p_i = e_i * r``
   (FMA A, or the lane's multiplier) -> ``g_i = p_i - 1`` at the label, ``p_i`` elsewhere
   (FMA B, one for the lanes: a column has one label; a label that is not below ``m``
   marks no class) -> ``dY[i] = g_i * inv_batch`` (FMA C, or the lane's multiplier), the
   lanes written at once.

Every pass ends with a fixed drain (the cycles its last element needs to be written), and
the reciprocal pass hands over to ``OUT`` as soon as the first reciprocal is due, so the
schedule depends only on ``m``, the batch, the FMA latency, ``lanes`` and the
special-function unit (``sim.golden.core_counts._trace_loss``). With the pipelined unit
and four lanes, 10 classes and 8 samples at latency 6 take 258 cycles: the maximum's 24
reads (26 cycles), the exponential pass's 80 elements and its drain (143: FMA A, 56
cycles of exp, FMA B, less the 7 cycles the reciprocals start early), the reciprocals
(27: a trip of 26 cycles) and the output's 40 reads (59); with the barrel, 964.

Scratchpad lines are stepped, never multiplied out: each matrix keeps the line of the
chunk's first column, which steps by a registered ``columns * lpc`` from one chunk to the
next, and the read and write addresses are registers that add ``lpc`` when their column
steps, in the same cycle as the column counter (``base + column * lpc`` in one cycle, a
multiplier and two adders before the scratchpad's address, was the core's critical path).
The reciprocal pass's input, the sum of the slot it issues, is likewise read a cycle ahead
(the next cycle's slot, or the sum being written to it) into a register, and the
special-function unit's operation follows the pass, not the issue decision.

Adds and multiplies are the FMA's ``c + a * b`` with ``b = 1`` (an add: the product is
exact) or ``c = +0`` (a multiply, rounded once; the rounded multipliers compute exactly
that), so they are bit-identical to the golden model's.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.formats import FP32

from .fmul import RoundedMultiplier
from .issue import SIZE_BITS
from .mac import FloatMAC
from .sfu import EXP_PROGRAM, RECIP_PROGRAM, PipelinedSFU, SpecialFunctionUnit

__all__ = ["LossGradient", "SFU_KINDS", "OUT_LANES", "barrel_threads"]

#: The special-function units the loss unit can be built with (``core.sfu``).
SFU_KINDS = ("pipelined", "barrel")

#: The most classes the output pass takes at once (``min(lanes, OUT_LANES)``): each lane
#: past the first costs two fp32 multipliers (about 1,700 LUT4 and 4 DSP blocks each on
#: ECP5), so four lanes would not leave the default core room on an LFE5U-85F.
OUT_LANES = 2

ONE = 0x3F80_0000
MINUS_ONE = 0xBF80_0000


class SlotStep(enum.Enum, shape=2):
    """How the loss unit's next slot follows from this one's."""
    KEEP = 0    # the same slot
    STEP = 1    # ``slot + 1``
    ZERO = 2    # slot 0


class Pass(enum.Enum, shape=3):
    IDLE = 0
    NEXT = 1
    MAX = 2
    EXP = 3
    RECIP = 4
    OUT = 5


def barrel_threads(mac_latency):
    """Threads of the barrel special-function unit in a loss unit: ``mac_latency + 1``, or
    ``mac_latency + 2`` when that is a multiple of 3, so that it is coprime with the 9
    FMAs of an exp. Then elements offered every 9 cycles each find their slot free (an
    element's slot comes back to the same turn after ``9 * threads`` cycles, when its
    previous element finishes), so every one is taken at once and leaves a fixed time
    later, as with the pipelined unit."""
    threads = mac_latency + 1
    return threads + 1 if threads % 3 == 0 else threads


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
        Latency of the FMAs (those of the special-function unit too).
    columns : int
        Most samples in a chunk (registers per sample: maximum, sum, reciprocal, label);
        at least ``mac_latency + 1``.
    lanes : int
        Classes of a column the maximum pass reads at once: 1, 2 or 4 (at most the
        scratchpad's lanes). The output pass reads and writes ``out_lanes = min(lanes,
        OUT_LANES)``.
    sfu : str
        The special-function unit, one of :data:`SFU_KINDS`: ``"pipelined"``
        (``hw.sfu.PipelinedSFU``, nine FMAs: one exp per cycle) or ``"barrel"``
        (``hw.sfu.SpecialFunctionUnit`` with :func:`barrel_threads` threads, one FMA: the
        exponential and reciprocal passes issue one element per 9 cycles).

    Attributes
    ----------
    interval : int
        Cycles between two elements of the exponential and reciprocal passes: 1 or 9.
    exp_latency, recip_latency : int
        Cycles from offering an exp (a reciprocal) to the special-function unit to its
        result.
    out_lanes : int
        Classes of a column the output pass reads and writes at once.

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
        Scratchpad accesses through its lane ports: reads and writes of the lanes in
        ``rd_lanes`` and ``wr_lanes``; read data on ``rd_data`` one cycle later.
    rd_lanes : Out(lanes); wr_lanes : Out(out_lanes)
    rd_data : In(32) x lanes; wr_data : Out(32) x out_lanes
    """

    def __init__(self, *, line_bits, mac_latency=6, columns=16, lanes=1, sfu="pipelined"):
        if lanes not in (1, 2, 4) or isinstance(lanes, bool):
            raise ValueError(f"lanes must be 1, 2 or 4, not {lanes!r}")
        if sfu not in SFU_KINDS:
            raise ValueError(f"sfu must be one of {', '.join(map(repr, SFU_KINDS))}, "
                             f"not {sfu!r}")
        if columns < mac_latency + 1:
            raise ValueError(f"columns must be at least mac_latency + 1 = {mac_latency + 1}, "
                             f"not {columns!r}")
        self.mac_latency = mac_latency
        self.columns = columns
        self.line_bits = line_bits
        self.sfu = sfu
        self.lanes = lanes
        self.out_lanes = min(lanes, OUT_LANES)
        if sfu == "pipelined":
            self.interval = 1
            self.exp_latency = PipelinedSFU.latency_of(mac_latency)
            self.recip_latency = PipelinedSFU.recip_latency_of(mac_latency)
        else:
            threads = barrel_threads(mac_latency)
            self.interval = len(EXP_PROGRAM)
            self.exp_latency = len(EXP_PROGRAM) * threads + 1
            self.recip_latency = len(RECIP_PROGRAM) * threads + 1
        super().__init__({
            "start": In(1), "m": In(SIZE_BITS), "batch": In(SIZE_BITS),
            "y_base": In(line_bits), "y_lpc": In(line_bits),
            "dy_base": In(line_bits), "dy_lpc": In(line_bits),
            "label_base": In(line_bits), "label_lpc": In(line_bits),
            "inv_batch": In(32),
            "done": Out(1),
            "rd_en": Out(1), "rd_e0": Out(SIZE_BITS), "rd_line": Out(line_bits),
            "rd_lanes": Out(lanes), "rd_data": In(32).array(lanes),
            "wr_en": Out(1), "wr_e0": Out(SIZE_BITS), "wr_line": Out(line_bits),
            "wr_lanes": Out(self.out_lanes), "wr_data": Out(32).array(self.out_lanes),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.mac_latency
        # FMA A: subtract (EXP) / multiply by r (OUT); B: sum (EXP) / label (OUT); C: scale.
        m.submodules.fma_a = fma_a = FloatMAC(FP32, FP32, latency=L)
        m.submodules.fma_b = fma_b = FloatMAC(FP32, FP32, latency=L)
        # C and the output pass's other lanes only multiply (p = e * r, then g * inv_batch):
        # rounded multipliers, the FMA's result with a zero addend bit for bit and a
        # quarter of its area.
        m.submodules.mul_c = mul_c0 = RoundedMultiplier(FP32, FP32, latency=L)
        mul_a, mul_c = [fma_a], [mul_c0]
        for lane in range(1, self.out_lanes):
            m.submodules[f"mul_a{lane}"] = lane_a = RoundedMultiplier(FP32, FP32, latency=L)
            m.submodules[f"mul_c{lane}"] = lane_c = RoundedMultiplier(FP32, FP32, latency=L)
            mul_a.append(lane_a)
            mul_c.append(lane_c)
        if self.sfu == "pipelined":
            m.submodules.sfu = sfu = PipelinedSFU(mac_latency=L, early_reciprocal=True,
                                                  prepared=True)
        else:
            m.submodules.sfu = sfu = SpecialFunctionUnit(mac_latency=L,
                                                         threads=barrel_threads(L))
        p = _Passes(m, self, mul_a, fma_b, mul_c, sfu)

        with m.Switch(p.stage):
            with m.Case(Pass.IDLE):
                with m.If(self.start):
                    m.d.sync += [p.stage.eq(Pass.NEXT), p.remaining.eq(self.batch),
                                 p.wait.eq(0)]
                    for matrix in (p.y, p.dy, p.labels):
                        matrix.first_chunk()
            with m.Case(Pass.NEXT):
                p.next_chunk()
            with m.Case(Pass.MAX):
                p.max_pass()
            with m.Case(Pass.EXP):
                p.exp_pass()
            with m.Case(Pass.RECIP):
                p.recip_pass()
            with m.Case(Pass.OUT):
                p.out_pass()
        return m


class _Matrix:
    """The chunk line of a scratchpad matrix of a :class:`LossGradient` (``y``, ``dy`` or
    ``label``): ``chunk``, the line of column ``b0``, stepped from one chunk to the next
    by a registered ``columns * lpc`` (a constant times an input held from ``start`` to
    ``done``, so never a multiplier on a timed path). Only the last chunk has fewer than
    ``columns`` columns, so a chunk always starts ``columns`` columns after the previous
    one."""

    def __init__(self, m, unit, name):
        self.m = m
        self.base = getattr(unit, f"{name}_base")
        self.lpc = getattr(unit, f"{name}_lpc")
        self.chunk = Signal(unit.line_bits, name=f"{name}_chunk")
        self.stride = Signal(unit.line_bits, name=f"{name}_stride")
        m.d.sync += self.stride.eq(self.lpc * unit.columns)

    def first_chunk(self):
        self.m.d.sync += self.chunk.eq(self.base)

    def next_chunk(self):
        self.m.d.sync += self.chunk.eq(self.chunk + self.stride)


class _Groups:
    """Signals of :meth:`_Passes.lane_groups`."""

    def __init__(self, lanes, e0, on, count, r_on):
        self.shift = lanes.bit_length() - 1
        self.e0, self.on, self.count, self.r_on = e0, on, count, r_on


class _Passes:
    """The state of a :class:`LossGradient` and the steps its passes are made of."""

    def __init__(self, m, unit, mul_a, fma_b, mul_c, sfu):
        self.m, self.unit, self.sfu = m, unit, sfu
        self.mul_a, self.mul_c = mul_a, mul_c      # per lane; lane 0's also do EXP's work
        self.fma_a, self.fma_b = mul_a[0], fma_b
        L, CH = unit.mac_latency, unit.columns
        self.top = [Signal(32, name=f"max{c}") for c in range(CH)]
        self.total = [Signal(32, name=f"sum{c}") for c in range(CH)]
        self.recip = [Signal(32, name=f"recip{c}") for c in range(CH)]
        self.label = [Signal(32, name=f"label{c}") for c in range(CH)]
        # Drains: cycles a pass waits after its last read so that its last result is
        # written when the next pass starts (EXP: FMA A, the SFU's input register, the SFU,
        # FMA B; OUT: FMAs A, B, C). RECIP's is set per chunk (recip_drain), and so is
        # EXP's with the pipelined unit (exp_wait: see `early`).
        self.exp_drain = 2 * L + unit.exp_latency
        self.out_drain = 3 * L - 1
        # With the pipelined unit (reciprocals on their own output) RECIP starts while
        # the last exps and sums are still on their way: it issues slot c in the cycle
        # after slot c's last sum is written, and the exps go on into RECIP.
        self.early = unit.sfu == "pipelined"

        self.stage = Signal(Pass)
        # Columns from the chunk's first (b0) to the batch's end, counted down rather than
        # ``batch - b0`` (a subtraction before the chunk's compares was the unit's
        # critical path); chunks take at most all of them, so it ends at exactly 0.
        self.remaining = Signal(SIZE_BITS)
        self.valid_cols = Signal(range(CH + 1))   # columns of the chunk that exist
        self.slots = Signal(range(CH + 1))        # slots per class (at least L + 1)
        self.i = Signal(SIZE_BITS)
        self.slot = Signal(range(CH))
        # The slot of the next cycle is `slot`, `slot + 1` or 0: the passes say which
        # (`slot_step`, the last assignment wins), and whatever takes the next slot chooses
        # among the three by that, not by comparing `slot_next`: a compare after the
        # passes' logic was the unit's critical path.
        self.slot_step = Signal(SlotStep)
        self.slot_next = Signal(range(CH))
        # `slot + 1`, in a register of its own, so that a pick by the next slot can start
        # from registers (:meth:`pick_next`).
        self.slot_inc = Signal(range(CH + 1), init=1)
        m.d.comb += self.slot_next.eq(self.by_slot_step(self.slot, self.slot_inc, 0))
        m.d.sync += [self.slot.eq(self.slot_next),
                     self.slot_inc.eq(self.by_slot_step(self.slot_inc, self.slot_inc + 1, 1))]
        self.wait = Signal(range(max(self.exp_drain, unit.recip_latency) + 1))
        self.issuing = Signal()                   # the pass still has elements to issue
        # Scratchpad lines, stepped rather than multiplied (``base + column * lpc`` in one
        # cycle was the core's critical path): each matrix's line of column b0, and the
        # lines of the column being read (b0 + slot, in the pass's matrix) and written
        # (b0 + out_slot, in dY).
        self.y = _Matrix(m, unit, "y")
        self.dy = _Matrix(m, unit, "dy")
        self.labels = _Matrix(m, unit, "label")
        self.rd_col = Signal(unit.line_bits)
        self.wr_col = Signal(unit.line_bits)
        # The exponential and reciprocal passes issue every `interval` cycles: when
        # `tick` is 0 (it counts down from interval - 1 after an issue).
        self.issue_now = Signal()
        if unit.interval == 1:
            m.d.comb += self.issue_now.eq(self.issuing)
        else:
            self.tick = Signal(range(unit.interval))
            paced = (self.stage == Pass.EXP) | (self.stage == Pass.RECIP)
            m.d.comb += self.issue_now.eq(self.issuing & (self.tick == 0))
            with m.If(self.issue_now & paced):
                m.d.sync += self.tick.eq(unit.interval - 1)
            with m.Elif(self.tick != 0):
                m.d.sync += self.tick.eq(self.tick - 1)

        # The element read in the previous cycle (reads have one cycle of latency).
        self.r_valid = Signal()
        self.r_i = Signal(SIZE_BITS)
        self.r_slot = Signal(range(CH))
        m.d.sync += [self.r_valid.eq(0), self.r_i.eq(self.i), self.r_slot.eq(self.slot)]
        self.max_groups = self.lane_groups(unit.lanes, "max_group")
        self.out_groups = self.lane_groups(unit.out_lanes, "out_group")
        # The read column's max, reciprocal and label, registered a cycle ahead (picked by
        # `slot`, with a store of that cycle bypassed in :meth:`store`), so that no slot
        # multiplexer is before the FMAs' multipliers (it was the loss unit's critical path).
        self.ahead = {}
        self.r_top = self.pick_ahead(self.top, "r_top")
        self.r_recip = self.pick_ahead(self.recip, "r_recip")
        self.r_label = self.pick_ahead(self.label, "r_label")

        # What travels beside each FMA: the element's group of classes (EXP: its class),
        # column slot and lanes, which lane is at its column's label (FMAs A, OUT) and the
        # lanes' p (FMA B, OUT).
        W = unit.out_lanes
        place = {"i": SIZE_BITS, "slot": range(CH), "lanes": W}
        self.tag_a_in, self.tag_a = self.delay_line(data.StructLayout({**place, "lab": W}),
                                                    "tag_a")
        self.tag_b_in, self.tag_b = self.delay_line(
            data.StructLayout({**place, "lab": W, "p": data.ArrayLayout(32, W)}), "tag_b")
        self.tag_c_in, self.tag_c = self.delay_line(
            data.StructLayout({"i": SIZE_BITS, "lanes": W}), "tag_c")

        # The SFU's input register (EXP: the difference, from FMA A) and its results'
        # position: they come out in order, so counters follow them.
        # The pipelined unit takes its inputs prepared (clamped, the reciprocal's seed
        # looked up) from these registers, so that only the pass's multiplexer is before
        # its first FMA's multiplier.
        self.sfu_v = Signal()
        self.sfu_x = Signal(32)
        m.d.sync += [self.sfu_v.eq(0),
                     self.sfu_x.eq(PipelinedSFU.clamp_input(self.fma_a.result) if self.early
                                   else self.fma_a.result)]
        self.out_i = Signal(SIZE_BITS)
        self.out_slot = Signal(range(CH))
        self.recip_slot = Signal(range(CH))      # the reciprocals' (their own output)
        self.recip_drain = Signal.like(self.wait)
        over = unit.recip_latency - 1
        m.d.comb += self.recip_drain.eq(Mux(self.slots > over, 0, over - self.slots))
        # EXP's drain: the early start is slots - 1 cycles sooner (one less when the last
        # slot holds no column: the pass's end is a cycle sooner already), but never before
        # the last exp has gone into the SFU (L cycles).
        self.exp_wait = Signal.like(self.wait)
        if self.early:
            soon = self.exp_drain - (self.slots - 1) + (self.valid_cols != self.slots)
            m.d.comb += self.exp_wait.eq(Mux(soon < L, L, soon))
        else:
            m.d.comb += self.exp_wait.eq(self.exp_drain)
        self.datapath()
        self.max_reduce()

    def pick(self, regs, index, name):
        """``regs[index]``, as a signal."""
        value = Signal(len(regs[0]), name=name)
        with self.m.Switch(index):
            for c, reg in enumerate(regs):
                with self.m.Case(c):
                    self.m.d.comb += value.eq(reg)
        return value

    def delay_line(self, layout, name):
        """A signal of ``layout`` and the same delayed by the FMA latency."""
        first = Signal(layout, name=f"{name}_in")
        value = first
        for k in range(self.unit.mac_latency):
            reg = Signal(layout, name=f"{name}{k}")
            self.m.d.sync += reg.eq(value)
            value = reg
        return first, value

    def pick_next(self, regs, name):
        """``regs[slot_next]``, as a signal. The next slot is ``slot``, ``slot + 1`` or 0
        and comes late (the passes' logic decides it): the three candidates are picked by
        registers, side by side, and the next slot chooses among them at the end, so that
        its logic is not before a multiplexer of every column (with the slot's fan-out,
        three quarters of the unit's critical path was routing)."""
        same = self.pick(regs, self.slot, f"{name}_same")
        after = self.pick(regs, self.slot_inc, f"{name}_after")
        value = Signal(len(regs[0]), name=name)
        self.m.d.comb += value.eq(self.by_slot_step(same, after, regs[0]))
        return value

    def by_slot_step(self, keep, step, zero):
        """``keep``, ``step`` or ``zero``, as the next slot follows from this one
        (``slot_step``: kept, ``slot + 1`` or 0)."""
        return Mux(self.slot_step == SlotStep.KEEP, keep,
                   Mux(self.slot_step == SlotStep.STEP, step, zero))

    def is_next_slot(self, index):
        """``index == slot_next``, by compares with registers side by side, chosen by
        ``slot_step`` at the end."""
        return self.by_slot_step(index == self.slot, index == self.slot_inc, index == 0)

    def pick_ahead(self, regs, name):
        """A register holding ``regs[r_slot]``: ``regs[slot]`` as it will be after this
        cycle's store (``r_slot`` is ``slot`` a cycle later)."""
        value = Signal(len(regs[0]), name=name)
        self.m.d.sync += value.eq(self.pick(regs, self.slot, f"{name}_ahead"))
        self.ahead[id(regs)] = value
        return value

    def store(self, regs, value, index=None):
        """``regs[index] = value`` (by default the register of the column just read)."""
        index = self.r_slot if index is None else index
        for c in range(self.unit.columns):
            with self.m.If(index == c):
                self.m.d.sync += regs[c].eq(value)
        if id(regs) in self.ahead:
            # Later than pick_ahead's assignment, so it wins: the store's value bypasses.
            with self.m.If(index == self.slot):
                self.m.d.sync += self.ahead[id(regs)].eq(value)

    def write(self, e0, values, lanes=1):
        """Write ``values`` (one per lane, from lane 0) at element ``e0`` of ``dY``'s
        column ``b0 + out_slot``, in the lanes ``lanes``; then :meth:`next_out`."""
        unit = self.unit
        self.m.d.comb += [unit.wr_en.eq(1), unit.wr_e0.eq(e0), unit.wr_lanes.eq(lanes),
                          unit.wr_line.eq(self.wr_col)]
        self.m.d.comb += [unit.wr_data[lane].eq(value) for lane, value in enumerate(values)]
        self.next_out()

    def next_out(self):
        """Advance the position of the next write (class-major over the columns: both the
        exponential and the output pass write their results in the order they read)."""
        with self.m.If(self.out_slot + 1 == self.valid_cols):
            self.m.d.sync += [self.out_slot.eq(0), self.out_i.eq(self.out_i + 1),
                              self.wr_col.eq(self.dy.chunk)]
        with self.m.Else():
            self.m.d.sync += [self.out_slot.eq(self.out_slot + 1),
                              self.wr_col.eq(self.wr_col + self.dy.lpc)]

    def datapath(self):
        """The FMAs' and the SFU's results, routed by the pass they belong to (a pass
        starts only when the previous one's results are all written)."""
        m, unit, sfu = self.m, self.unit, self.sfu
        fma_a, fma_b = self.fma_a, self.fma_b
        exp = self.stage == Pass.EXP
        # The exps' results and the sums (with `early`, they go on into RECIP).
        sums = (exp | (self.stage == Pass.RECIP)) if self.early else exp
        # EXP: z = Y - m into the SFU (through a register); e out of it, written and summed.
        with m.If(exp & fma_a.o_valid):
            m.d.sync += self.sfu_v.eq(1)
        with m.If(exp):
            m.d.comb += [sfu.op.eq(0), sfu.x.eq(self.sfu_x), sfu.i_valid.eq(self.sfu_v)]
        with m.If(sums & sfu.o_valid):
            r_total = self.pick(self.total, self.out_slot, "out_total")
            m.d.comb += [fma_b.c.eq(Mux(self.out_i == 0, 0, r_total)), fma_b.a.eq(sfu.y),
                         fma_b.b.eq(ONE), fma_b.i_valid.eq(1),
                         self.tag_b_in.slot.eq(self.out_slot)]
            self.write(self.out_i, [sfu.y])
        with m.If(sums & fma_b.o_valid):
            self.store(self.total, fma_b.result, self.tag_b.slot)
        # RECIP's input, the sum of the slot it issues, read a cycle ahead into a register
        # (the sum of the next cycle's slot, or the one being written to it now), so that
        # no slot multiplexer is before the special-function unit.
        self.recip_in = Signal(32)
        ahead = self.pick_next(self.total, "recip_ahead")
        written = sums & fma_b.o_valid & self.is_next_slot(self.tag_b.slot)
        recip_next = Signal(32)
        m.d.comb += recip_next.eq(Mux(written, fma_b.result, ahead))
        m.d.sync += self.recip_in.eq(recip_next)
        if self.early:
            # Its seed too, read a cycle ahead (the pipelined unit takes it prepared). Each
            # sum's seed is looked up as the sum is stored, beside it, so that the table is
            # not behind the slot multiplexer (it was the unit's critical path).
            seeds = [Signal(32, name=f"seed{c}") for c in range(len(self.total))]
            seed = PipelinedSFU.seed_of(fma_b.result)
            with m.If(sums & fma_b.o_valid):
                self.store(seeds, seed, self.tag_b.slot)
            recip_seed = Signal(32)
            m.d.sync += recip_seed.eq(Mux(written, seed, self.pick_next(seeds, "seed_ahead")))
            m.d.comb += sfu.seed.eq(recip_seed)
        # A reciprocal (RECIP, and the first cycles of OUT): the pipelined unit's come out
        # early, on their own output; the barrel's at its only one, when no exp is left.
        if unit.sfu == "pipelined":
            recip_valid, recip_y = sfu.recip_valid, sfu.recip_y
        else:
            recip_valid, recip_y = sfu.o_valid & ~exp, sfu.y
        with m.If(recip_valid):
            self.store(self.recip, recip_y, self.recip_slot)
            m.d.sync += self.recip_slot.eq(self.recip_slot + 1)
        self.out_datapath(~sums)

    def out_datapath(self, out):
        """OUT, on every lane of a read: ``p = e * r`` (A) -> ``p - 1`` at the label (B,
        one per column, so one for the lanes) -> ``g * inv_batch`` (C) -> ``dY``."""
        m, unit, fma_b, W = self.m, self.unit, self.fma_b, self.unit.out_lanes
        tag_a, tag_b = self.tag_a, self.tag_b
        with m.If(out & self.fma_a.o_valid):
            at_label = self.fma_a.result
            for lane in range(1, W):       # the label's lane's p (lane 0's if none)
                at_label = Mux(tag_a.lab[lane], self.mul_a[lane].result, at_label)
            m.d.comb += [fma_b.c.eq(at_label), fma_b.a.eq(MINUS_ONE), fma_b.b.eq(ONE),
                         fma_b.i_valid.eq(1), self.tag_b_in.i.eq(tag_a.i),
                         self.tag_b_in.slot.eq(tag_a.slot),
                         self.tag_b_in.lanes.eq(tag_a.lanes), self.tag_b_in.lab.eq(tag_a.lab)]
            m.d.comb += [self.tag_b_in.p[lane].eq(mul.result)
                         for lane, mul in enumerate(self.mul_a)]
        # The C multipliers work for OUT alone: their operands are wired whatever the pass
        # (only `i_valid` waits for it), so that the pass's decode is not before the
        # multiplier (it was the unit's critical path).
        for lane, mul in enumerate(self.mul_c):
            m.d.comb += [mul.b.eq(unit.inv_batch),
                         mul.a.eq(Mux(tag_b.lab[lane], fma_b.result, tag_b.p[lane]))]
        with m.If(out & fma_b.o_valid):
            for mul in self.mul_c:
                m.d.comb += mul.i_valid.eq(1)
            m.d.comb += [self.tag_c_in.i.eq(tag_b.i), self.tag_c_in.lanes.eq(tag_b.lanes)]
        with m.If(self.mul_c[0].o_valid):
            tag_c = self.tag_c
            self.write(tag_c.i << self.out_groups.shift, [mul.result for mul in self.mul_c],
                       tag_c.lanes)

    def next_chunk(self):
        """A new chunk, or the end."""
        m, unit = self.m, self.unit
        L, CH = unit.mac_latency, unit.columns
        with m.If(self.remaining == 0):
            m.d.comb += unit.done.eq(1)
            m.d.sync += self.stage.eq(Pass.IDLE)
        with m.Else():
            # min(remaining, CH) columns, max(columns, L + 1) slots: the two compares side
            # by side, from the register.
            rest = self.remaining
            big, long = rest > CH, rest > L + 1
            m.d.sync += [self.valid_cols.eq(Mux(big, CH, rest)),
                         self.slots.eq(Mux(big, max(CH, L + 1), Mux(long, rest, L + 1))),
                         self.stage.eq(Pass.MAX), self.i.eq(0),
                         self.rd_col.eq(self.y.chunk), self.issuing.eq(1), self.wait.eq(0),
                         self.out_i.eq(0), self.out_slot.eq(0), self.wr_col.eq(self.dy.chunk),
                         self.recip_slot.eq(0)]
            m.d.comb += self.slot_step.eq(SlotStep.ZERO)

    def advance(self, matrix, last_i, slots):
        """Next (i, slot) of a pass over `last_i` classes of `slots` slots of `matrix`;
        clears `issuing` at the end."""
        m, i = self.m, self.i
        with m.If(self.slot_inc == slots):
            m.d.sync += self.rd_col.eq(matrix.chunk)
            m.d.comb += self.slot_step.eq(SlotStep.ZERO)
            with m.If(i + 1 == last_i):
                m.d.sync += self.issuing.eq(0)
            with m.Else():
                m.d.sync += i.eq(i + 1)
        with m.Else():
            m.d.sync += self.rd_col.eq(self.rd_col + matrix.lpc)
            m.d.comb += self.slot_step.eq(SlotStep.STEP)

    def next_pass(self, after, matrix, drain):
        """When the pass has issued everything, its last read is back and its drain has
        counted down, go on to ``after``, which reads ``matrix`` and whose drain is
        ``drain``."""
        m = self.m
        with m.If(~self.issuing & ~self.r_valid):
            with m.If(self.wait == 0):
                m.d.sync += [self.stage.eq(after), self.i.eq(0), self.rd_col.eq(matrix.chunk),
                             self.issuing.eq(1), self.wait.eq(drain)]
                m.d.comb += self.slot_step.eq(SlotStep.ZERO)
            with m.Else():
                m.d.sync += self.wait.eq(self.wait - 1)

    def read_pass(self, e0, matrix, last_i, lanes=1, slots=None):
        """Issue the pass's reads: element ``e0`` (and the next of ``lanes``) of column
        ``b0 + slot`` of ``matrix`` (its line is ``rd_col``) for every existing column,
        over ``last_i`` classes of ``slots`` slots (by default the chunk's)."""
        m, unit = self.m, self.unit
        with m.If(self.issue_now):
            with m.If(self.slot < self.valid_cols):
                m.d.comb += [unit.rd_en.eq(1), unit.rd_e0.eq(e0), unit.rd_lanes.eq(lanes),
                             unit.rd_line.eq(self.rd_col)]
                m.d.sync += self.r_valid.eq(1)
            self.advance(matrix, last_i, self.slots if slots is None else slots)

    def lane_groups(self, W, name):
        """The groups of ``W`` consecutive classes that a pass reads at once: group ``i``
        starts at class ``e0``; its lanes past the column's classes are off (``on``;
        ``r_on`` those of the read of the previous cycle); ``count`` groups per column."""
        m, unit = self.m, self.unit
        g = _Groups(W, Signal(SIZE_BITS, name=f"{name}_e0"), Signal(W, name=f"{name}_on"),
                    Signal(SIZE_BITS + 1, name=f"{name}_count"), Signal(W, name=f"{name}_r_on"))
        m.d.comb += g.e0.eq(self.i << g.shift)
        for lane in range(W):
            m.d.comb += g.on[lane].eq(g.e0 + lane < unit.m)
        m.d.comb += g.count.eq((unit.m + (W - 1)) >> g.shift)
        m.d.sync += g.r_on.eq(g.on)
        return g

    def max_pass(self):
        """Read ``lanes`` classes of a column at once (``max_reduce`` does the rest)."""
        g = self.max_groups
        self.read_pass(g.e0, self.y, g.count, lanes=g.on)
        self.next_pass(Pass.EXP, self.y, self.exp_wait)

    def max_reduce(self):
        """The maximum pass's data: the lanes of a read reduced to their first largest in
        two registered steps, then merged into the column's running maximum and stored a
        step later. A column's next read comes ``slots >= 3`` cycles later, so the running
        maximum (read in step 2) is current, and the last merges (after the pass has ended)
        are done before ``EXP`` reads it."""
        m, unit, W, r_lanes = self.m, self.unit, self.unit.lanes, self.max_groups.r_on
        # Step 1 (the read data's cycle): lanes 0-1 and 2-3. Step 2: the two pairs.
        here = self.r_valid & (self.stage == Pass.MAX)
        values = [(unit.rd_data[lane], r_lanes[lane] & here) for lane in range(W)]
        values += [(Const(0, 32), Const(0, 1))] * (4 - W)
        step1 = [self.first_largest(values[0], values[1], "max01"),
                 self.first_largest(values[2], values[3], "max23")]
        s1 = [(Signal(32, name=f"s1_v{k}"), Signal(name=f"s1_ok{k}")) for k in range(2)]
        for (value, ok), (v_in, ok_in) in zip(s1, step1):
            m.d.sync += [value.eq(v_in), ok.eq(ok_in)]
        s1_slot, s1_first = Signal.like(self.r_slot), Signal()
        m.d.sync += [s1_slot.eq(self.r_slot), s1_first.eq(self.r_i == 0)]
        v2, ok2 = self.first_largest(s1[0], s1[1], "max0123")
        s2, s2_ok = Signal(32), Signal()
        s2_slot, s2_first = Signal.like(self.r_slot), Signal()
        m.d.sync += [s2.eq(v2), s2_ok.eq(ok2), s2_slot.eq(s1_slot), s2_first.eq(s1_first)]
        # Step 3: into the running maximum (none yet at a column's first group), read a
        # cycle ahead into a register: the column's last merge is at least two cycles
        # old then, and the slot multiplexer is not before the comparison.
        running = Signal(32, name="running_max")
        m.d.sync += running.eq(self.pick(self.top, s1_slot, "running_ahead"))
        new, _ = self.first_largest((running, ~s2_first), (s2, s2_ok), "max_new")
        # Step 4: the merged maximum is registered before it is stored (the compare, then
        # the store's and the output pass's bypass multiplexers, in one cycle were the
        # unit's critical path). The column's next read loads its running maximum a cycle
        # after the store still (slots >= 3), and EXP reads a column's at least `slots`
        # cycles after its last merge.
        s3, s3_ok, s3_slot = Signal(32), Signal(), Signal.like(self.r_slot)
        m.d.sync += [s3.eq(new), s3_ok.eq(s2_ok), s3_slot.eq(s2_slot)]
        with m.If(s3_ok):
            self.store(self.top, s3, s3_slot)

    def first_largest(self, a, b, name):
        """The first largest of ``a`` then ``b`` (each a ``(value, valid)`` pair): ``b``
        only if it is valid and ``a`` is not, or ``b`` is greater."""
        (a_value, a_ok), (b_value, b_ok) = a, b
        take_b = Signal(name=f"{name}_b")
        value = Signal(32, name=name)
        ok = Signal(name=f"{name}_ok")
        self.m.d.comb += [take_b.eq(b_ok & (~a_ok | _greater(b_value, a_value))),
                          value.eq(Mux(take_b, b_value, a_value)), ok.eq(a_ok | b_ok)]
        return value, ok

    def exp_pass(self):
        """Read ``Y[i]``; FMA A subtracts the maximum (the datapath does the rest)."""
        m, unit, fma_a = self.m, self.unit, self.fma_a
        self.read_pass(self.i, self.y, unit.m)
        with m.If(self.r_valid):
            m.d.comb += [fma_a.c.eq(unit.rd_data[0]), fma_a.a.eq(self.r_top ^ 0x8000_0000),
                         fma_a.b.eq(ONE), fma_a.i_valid.eq(1)]
        self.next_pass(Pass.RECIP, self.labels, self.recip_drain)

    def recip_pass(self):
        """One reciprocal per column into the SFU, while the labels are read."""
        m, unit, sfu = self.m, self.unit, self.sfu
        # The operation and the input follow the pass alone (the unit reads them only with
        # i_valid): the issue decision is not before the SFU's operand selection.
        m.d.comb += [sfu.op.eq(1), sfu.x.eq(self.recip_in)]
        with m.If(self.issue_now & (self.slot < self.valid_cols)):
            m.d.comb += sfu.i_valid.eq(1)
        self.read_pass(0, self.labels, 1)
        with m.If(self.r_valid):
            self.store(self.label, unit.rd_data[0])
        with m.If(~self.issuing & ~self.r_valid):
            with m.If(self.wait == 0):
                # OUT keeps the SFU's result counter: reciprocals are still coming out.
                m.d.sync += [self.stage.eq(Pass.OUT), self.i.eq(0),
                             self.rd_col.eq(self.dy.chunk), self.issuing.eq(1),
                             self.wait.eq(self.out_drain)]
                m.d.comb += self.slot_step.eq(SlotStep.ZERO)
            with m.Else():
                m.d.sync += self.wait.eq(self.wait - 1)

    def out_pass(self):
        """Read ``lanes`` classes ``e_i`` of a column at once; the lanes' FMAs A multiply
        them by the column's reciprocal (``out_datapath`` does the rest); then the next
        chunk. Nothing here runs a column's values from one class to the next, so the
        pass has a slot per existing column only."""
        m, unit, tag, g = self.m, self.unit, self.tag_a_in, self.out_groups
        self.read_pass(g.e0, self.dy, g.count, lanes=g.on, slots=self.valid_cols)
        with m.If(self.r_valid):
            for lane, mul in enumerate(self.mul_a):
                m.d.comb += [mul.a.eq(unit.rd_data[lane]), mul.b.eq(self.r_recip),
                             mul.i_valid.eq(1),
                             tag.lab[lane].eq(g.r_on[lane] & (
                                 self.r_label == (self.r_i << g.shift) + lane))]
            m.d.comb += [self.fma_a.c.eq(0), tag.i.eq(self.r_i), tag.slot.eq(self.r_slot),
                         tag.lanes.eq(g.r_on)]
        with m.If(~self.issuing & ~self.r_valid):
            with m.If(self.wait == 0):
                m.d.sync += [self.stage.eq(Pass.NEXT),
                             self.remaining.eq(self.remaining - self.valid_cols)]
                for matrix in (self.y, self.dy, self.labels):
                    matrix.next_chunk()
            with m.Else():
                m.d.sync += self.wait.eq(self.wait - 1)
