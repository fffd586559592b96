"""The special-function units: fp32 ``exp`` and reciprocal from fused multiply-adds.

Two units run the same microprograms (:data:`EXP_PROGRAM`, :data:`RECIP_PROGRAM`), so their
results are the same bits (``sim.golden.sfu``):

* :class:`SpecialFunctionUnit`, a barrel engine: up to ``threads`` elements share one
  pipelined FMA, each issuing one FMA every ``threads`` cycles, and the results leave in
  the order the elements came in (one exp per 9 cycles);
* :class:`PipelinedSFU`, the programs unrolled over nine FMAs, one per row: an element
  enters every cycle and leaves a fixed number of cycles later (one exp per cycle). The
  loss-gradient unit (``hw.loss``) uses it.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from chrysalis.gen.spec.config import MAX_MAC_LATENCY
from chrysalis.gen.spec.formats import FP32
from chrysalis.gen.spec import sfu as golden

from . import fp_datapath as fp
from .mac import FloatMAC

__all__ = ["SpecialFunctionUnit", "PipelinedSFU", "EXP_PROGRAM", "RECIP_PROGRAM",
           "MAX_THREADS"]

#: The microprograms: one ``(c, a, b, capture)`` row per FMA ``c + a*b``, in issue order.
#: An operand is an fp32 constant (int bit pattern) or a source of the element's thread:
#: ``"x"`` the prepared input (exp: ``x`` clamped to +-128; reciprocal: ``-m``, the negated
#: significand), ``"res"`` the result of the thread's previous FMA, ``"hold"`` the thread's
#: hold register. ``capture`` says what the hold register takes when the row issues:
#: ``"hold"`` the previous result; ``"k"`` the exact fp32 ``kf`` of the integer ``k``
#: extracted from the previous result (``k`` itself is kept for the final scaling). A row
#: reads the value it captures. The hold register holds: exp ``kf`` (FMAs 2-3), then ``r``
#: (FMAs 4-9); reciprocal ``y0`` (the seed, FMAs 1-2), then ``y1`` (FMAs 3-4).
#: They are ``sim.golden.sfu.exp`` and ``sim.golden.sfu.reciprocal``, FMA for FMA.
EXP_PROGRAM = (
    (golden.EXP_SHIFTER, "x", golden.LOG2E, None),   # t  = SHIFTER + x*LOG2E
    ("x", "hold", golden.NEG_LN2_HI, "k"),           # r1 = x - kf*LN2_HI     (kf, k from t)
    ("res", "hold", golden.NEG_LN2_LO, None),        # r  = r1 - kf*LN2_LO
    (golden.EXP_POLY[4], golden.EXP_POLY[5], "res", "hold"),  # q = P5 + P6*r  (hold = r)
    (golden.EXP_POLY[3], "res", "hold", None),       # q = P4 + q*r
    (golden.EXP_POLY[2], "res", "hold", None),       # q = P3 + q*r
    (golden.EXP_POLY[1], "res", "hold", None),       # q = P2 + q*r
    (golden.EXP_POLY[0], "res", "hold", None),       # q = P1 + q*r
    (golden.ONE, "res", "hold", None),               # p = 1 + q*r
)
RECIP_PROGRAM = (
    (golden.ONE, "x", "hold", None),                 # e0 = 1 - m*y0   (hold = y0, the seed)
    ("hold", "hold", "res", None),                   # y1 = y0 + y0*e0
    (golden.ONE, "x", "res", "hold"),                # e1 = 1 - m*y1   (hold = y1)
    ("hold", "hold", "res", None),                   # y2 = y1 + y1*e1
)
assert len(EXP_PROGRAM) == golden.EXP_FMAS and len(RECIP_PROGRAM) == golden.RECIP_FMAS

_PROGRAMS = (EXP_PROGRAM, RECIP_PROGRAM)

#: The largest number of threads (elements in flight).
MAX_THREADS = 32


def _check_op(op):
    if op not in (0, 1) or isinstance(op, bool):
        raise ValueError(f"op must be 0 (exp) or 1 (reciprocal), not {op!r}")
    return op


class SpecialFunctionUnit(wiring.Component):
    """fp32 ``exp(x)`` and ``1/x`` for the softmax cross-entropy gradient.

    One :class:`~hw.mac.FloatMAC` (fp32 x fp32 + fp32) runs a short microprogram per element
    (:data:`EXP_PROGRAM`, 9 FMAs; :data:`RECIP_PROGRAM`, 4 FMAs); small combinational logic
    clamps the input, extracts the integer ``k`` of the exp range reduction, looks up the
    reciprocal seed and scales the result by a power of two. Bit-exact golden model:
    ``sim.golden.sfu.exp`` and ``sim.golden.sfu.reciprocal``; algorithms, constants, errors and timing:
    ``docs/special_functions.md``.

    **Barrel.** ``E = threads`` thread slots take turns, one per cycle (slot ``t`` in the
    cycles ``c`` with ``c mod E = t``, counting from reset). In its turn a slot holding an
    element issues the element's next FMA, so each element issues one FMA every ``E``
    cycles, and its previous result is back when it does (``E >= mac_latency``). exp and
    reciprocal elements mix freely, each with its own program. A slot whose element issued
    its last FMA ``E`` cycles ago scales the result in its turn and is free again: it can
    take a new element in the same cycle.

    **Handshake.** ``i_ready`` is high in a cycle when the slot whose turn it is can take an
    element (it is empty, or its element finishes in this cycle) and fewer than
    :attr:`rob_depth` elements are accepted and not yet output. It depends on the unit's
    state only. An element (``op``, ``x``) is accepted in a cycle where ``i_valid`` and
    ``i_ready`` are both high; its first FMA issues in that cycle.

    **Order.** Results come out in the order the elements were accepted, one per cycle at
    most. A result that finishes before an older one (a reciprocal after an exp) waits in a
    reorder buffer of :attr:`rob_depth` entries, and its slot takes new elements meanwhile.
    A result comes ``latency(op) = FMAs * E + 1`` cycles after its element's acceptance
    (:meth:`latency`), or in the cycle after the previous result if that is later. There is
    no back-pressure: a result is presented once, for one cycle.

    **Throughput.** Every cycle issues at most one FMA, so a full unit takes ``FMAs`` cycles
    per element on average: 9 for exp and 4 for the reciprocal (:meth:`interval`), the sum of
    the FMAs for a mix. A long stream of one function reaches it exactly once ``E`` elements
    are in flight; :meth:`schedule` gives the exact cycles of any stream.

    Parameters
    ----------
    mac_latency : int
        Register stages of the FMA, 1 to the config's deepest MAC latency
        (:data:`~chrysalis.gen.spec.config.MAX_MAC_LATENCY`; see :class:`~hw.mac.FloatMAC`).
        The FMA's result feeds its own inputs through a multiplexer, so at least one stage
        is needed.
    threads : int or None
        ``E``, the elements in flight and the cycles between two FMAs of one element:
        ``mac_latency`` to :data:`MAX_THREADS`. ``None`` (the default) is
        ``mac_latency + 1``: one more register, in front of the FMA, so its operands come
        from registers into its multiplier and the operand selection (the slot's program
        row, or an element accepted from the ports) ends at them. Further threads delay
        the FMA's result. ``threads = mac_latency`` has no operand registers and uses the
        result in the cycle it appears (a longer combinational path).

    Attributes
    ----------
    threads : int
        ``E``.
    rob_depth : int
        Accepted elements not yet output, at most: the reorder buffer's size, the smallest
        power of two ``>= 2 E``.

    Members
    -------
    restart : In(1)
        Restart the turns: the cycle after one where ``restart`` is high is slot 0's turn,
        as the first cycle after reset is. Only while the unit is empty (no element in
        flight); it lets a user start a stream with the same schedule every time.
    op : In(1)
        Function: 0 = ``exp``, 1 = reciprocal. Sampled with ``x``.
    x : In(32)
        The fp32 argument (bit pattern).
    i_valid : In(1)
        ``op`` and ``x`` hold an element; it is accepted in a cycle where ``i_ready`` is high.
    i_ready : Out(1)
        A slot can take an element in this cycle (see above). Independent of ``i_valid``,
        ``op`` and ``x``.
    y : Out(32)
        The fp32 result; holds its value until the next result.
    o_valid : Out(1)
        High for one cycle when ``y`` holds a new result, in acceptance order. There is no
        back-pressure: a result is presented once.
    """

    restart: In(1)
    op: In(1)
    x: In(32)
    i_valid: In(1)
    i_ready: Out(1)
    y: Out(32)
    o_valid: Out(1)

    def __init__(self, *, mac_latency=6, threads=None):
        if (not isinstance(mac_latency, int) or isinstance(mac_latency, bool)
                or not 1 <= mac_latency <= MAX_MAC_LATENCY):
            raise ValueError(f"mac_latency must be an integer from 1 to {MAX_MAC_LATENCY}, "
                             f"not {mac_latency!r}")
        if threads is None:
            threads = mac_latency + 1
        elif (not isinstance(threads, int) or isinstance(threads, bool)
                or not mac_latency <= threads <= MAX_THREADS):
            raise ValueError(f"threads must be an integer from mac_latency ({mac_latency}) "
                             f"to {MAX_THREADS}, not {threads!r}")
        self.mac_latency = mac_latency
        self.threads = threads
        self.rob_depth = 1 << ceil_log2(2 * threads)
        super().__init__()

    def interval(self, op):
        """Cycles per element of function ``op`` (0 exp, 1 reciprocal) in a full unit: its
        FMAs, 9 or 4."""
        return len(_PROGRAMS[_check_op(op)])

    def latency(self, op):
        """Cycles from the acceptance of an element of function ``op`` to its result
        (``o_valid``) when no older result is still pending: ``FMAs * threads + 1``."""
        return self.interval(op) * self.threads + 1

    def schedule(self, ops, gaps=None):
        """The exact cycles of a stream: a cycle-by-cycle model of the handshake.

        Element ``i`` (function ``ops[i]``) is offered (``i_valid``) from ``gaps[i]`` cycles
        after the cycle that follows the acceptance of element ``i - 1`` (element 0: from
        cycle ``gaps[0]`` after reset), until it is accepted. ``gaps`` defaults to zeros:
        ``i_valid`` always high. Returns two lists: per element the cycle it was accepted,
        and the cycle ``o_valid`` is high with its result (cycle 0 is the first after reset).
        """
        ops = [_check_op(int(op)) for op in ops]
        count = len(ops)
        gaps = [0] * count if gaps is None else [int(gap) for gap in gaps]
        if len(gaps) != count or any(gap < 0 for gap in gaps):
            raise ValueError(f"gaps must be {count} non-negative integers, not {gaps!r}")
        rows = [len(program) for program in _PROGRAMS]
        threads = self.threads
        slots = [None] * threads      # per slot: [element, FMAs issued] or None
        parked = set()                # finished, waiting for an older result
        accepted, produced = [None] * count, [None] * count
        nxt = out = cycle = 0
        offer_at = gaps[0] if count else 0
        while out < count:
            slot = slots[cycle % threads]
            finishing = slot is not None and slot[1] == rows[ops[slot[0]]]
            ready = (slot is None or finishing) and nxt - out < self.rob_depth
            if finishing:
                slots[cycle % threads] = None
                if slot[0] != out:
                    parked.add(slot[0])
            elif slot is not None:
                slot[1] += 1
            if (finishing and slot[0] == out) or out in parked:
                parked.discard(out)
                produced[out] = cycle + 1
                out += 1
            if ready and nxt < count and cycle >= offer_at:
                accepted[nxt] = cycle
                slots[cycle % threads] = [nxt, 1]
                nxt += 1
                if nxt < count:
                    offer_at = cycle + 1 + gaps[nxt]
            cycle += 1
        return accepted, produced

    def elaborate(self, platform):
        m = Module()
        L, E, R = self.mac_latency, self.threads, self.rob_depth
        tag_bits = exact_log2(R)
        m.submodules.mac = mac = FloatMAC(FP32, FP32, latency=L)
        # With a thread to spare (E > L) its register goes in front of the FMA: the
        # operand selection, from the ports or the context, ends at a register rather than
        # running on into the multiplier blocks (the barrel loss unit's slowest path).
        registered = E > L
        operands = {name: Signal(len(getattr(mac, name)), name=f"mac_{name}")
                    for name in ("a", "b", "c", "i_valid")}
        for name, value in operands.items():
            if registered:
                m.d.sync += getattr(mac, name).eq(value)
            else:
                m.d.comb += getattr(mac, name).eq(value)

        res, k_res, kf_res = self._result(m, mac, E - L - registered)

        # --- The slots: whose turn it is, which are busy, and their context in a memory of
        # E words (read in the slot's turn, written back at its end).
        slot = Signal(range(E))
        m.d.sync += slot.eq(Mux(self.restart | (slot == E - 1), 0, slot + 1))
        busy = Signal(E)
        context = data.StructLayout({
            "op": 1,
            "step": range(len(EXP_PROGRAM) + 1),   # FMAs issued
            "tag": tag_bits,                        # acceptance number mod rob_depth
            "x": 32,                                # exp: clamped x; reciprocal: -m
            "hold": 32,                             # see EXP_PROGRAM
            "n": signed(10),                        # scale by 2**n: exp k; recip 127 - field
            "sign": 1,                              # of the result
            "zero": 1,                              # reciprocal of a zero pattern
        })
        m.submodules.contexts = contexts = Memory(shape=context, depth=E, init=[])
        ctx_rd = contexts.read_port(domain="comb")
        ctx_wr = contexts.write_port()
        ctx = ctx_rd.data
        m.d.comb += [ctx_rd.addr.eq(slot), ctx_wr.addr.eq(slot)]
        head_busy = Signal()
        m.d.comb += head_busy.eq(busy.bit_select(slot, 1))

        # --- Reorder: results that finish before an older one wait in a buffer indexed by
        # their tag; counters of accepted and output elements (one more bit than a tag).
        in_count = Signal(tag_bits + 1)
        out_count = Signal(tag_bits + 1)
        pending = Signal(tag_bits + 1)
        m.d.comb += pending.eq(in_count - out_count)
        m.submodules.rob = rob = Memory(shape=32, depth=R, init=[])
        rob_rd = rob.read_port(domain="comb")
        rob_wr = rob.write_port()
        rob_valid = Signal(R)
        m.d.comb += rob_rd.addr.eq(out_count[:tag_bits])

        # --- Control of the slot whose turn it is.
        rows = Mux(ctx.op, len(RECIP_PROGRAM), len(EXP_PROGRAM))
        finishing = Signal()     # its last FMA's result is here
        issue = Signal()         # it issues its next FMA
        direct = Signal()        # its result is the next to go out
        from_rob = Signal()      # the next result to go out waits in the buffer
        accept = Signal()
        m.d.comb += [
            finishing.eq(head_busy & (ctx.step == rows)),
            issue.eq(head_busy & (ctx.step != rows)),
            direct.eq(finishing & (ctx.tag == out_count[:tag_bits])),
            from_rob.eq(~direct & rob_valid.bit_select(out_count[:tag_bits], 1)),
            self.i_ready.eq((~head_busy | finishing) & ~pending[tag_bits]),
            accept.eq(self.i_valid & self.i_ready),
        ]

        # --- Input preparation, from the ports (used in the cycle an element is accepted).
        x_sign, x_mag, x_field = self.x[31], self.x[:31], self.x[23:31]
        clamped = Cat(Mux(x_mag > golden.EXP_CLAMP, golden.EXP_CLAMP, x_mag)[:31], x_sign)
        neg_m = Cat(self.x[:23], Const(0b1_01111111, 9))
        table = Array(Const(v, 32) for v in golden.RECIP_TABLE)
        seed = table[self.x[23 - golden.RECIP_TABLE_BITS:23]]
        x_prep = Signal(32)
        m.d.comb += x_prep.eq(Mux(self.op, neg_m, clamped))

        # --- Operand sources, with write-through captures (a row reads what it captures).
        capture_hold = Signal()
        capture_k = Signal()
        hold_now = Signal(32)
        x_now = Signal(32)
        m.d.comb += [
            hold_now.eq(Mux(accept, seed,
                            Mux(capture_hold, res, Mux(capture_k, kf_res, ctx.hold)))),
            x_now.eq(Mux(accept, x_prep, ctx.x)),
        ]
        sources = {"x": x_now, "res": res, "hold": hold_now}

        def operand(spec):
            return Const(spec, 32) if isinstance(spec, int) else sources[spec]

        def drive_row(row):
            c, a, b, capture = row
            m.d.comb += [operands["c"].eq(operand(c)), operands["a"].eq(operand(a)),
                         operands["b"].eq(operand(b))]
            if capture == "hold":
                m.d.comb += capture_hold.eq(1)
            elif capture == "k":
                m.d.comb += capture_k.eq(1)

        with m.If(accept):
            with m.If(self.op):
                drive_row(RECIP_PROGRAM[0])
            with m.Else():
                drive_row(EXP_PROGRAM[0])
        with m.Elif(issue):
            with m.Switch(Cat(ctx.step, ctx.op)):
                for code, program in enumerate(_PROGRAMS):
                    for index, row in enumerate(program[1:], start=1):
                        with m.Case(index | (code << len(ctx.step))):
                            drive_row(row)
        m.d.comb += operands["i_valid"].eq(accept | issue)

        # --- The slot's context, written back.
        wr = ctx_wr.data
        m.d.comb += ctx_wr.en.eq(accept | issue)
        with m.If(accept):
            m.d.comb += [wr.op.eq(self.op), wr.step.eq(1), wr.tag.eq(in_count[:tag_bits]),
                         wr.x.eq(x_prep), wr.hold.eq(seed),
                         wr.n.eq(Const(127, signed(10)) - x_field),
                         wr.sign.eq(self.op & x_sign), wr.zero.eq(self.op & (x_field == 0))]
        with m.Else():
            m.d.comb += [wr.eq(ctx), wr.step.eq(ctx.step + 1), wr.hold.eq(hold_now)]
            with m.If(capture_k):
                m.d.comb += wr.n.eq(k_res)
        for index in range(E):
            with m.If(slot == index):
                with m.If(accept):
                    m.d.sync += busy[index].eq(1)
                with m.Elif(finishing):
                    m.d.sync += busy[index].eq(0)

        scaled = self._scaled(m, res, ctx)

        # --- Output in acceptance order: the finishing result if it is next, else the next
        # one from the buffer; a finishing result that is not next goes into the buffer.
        m.d.comb += [rob_wr.addr.eq(ctx.tag), rob_wr.data.eq(scaled),
                     rob_wr.en.eq(finishing & ~direct)]
        for index in range(R):
            with m.If(finishing & ~direct & (ctx.tag == index)):
                m.d.sync += rob_valid[index].eq(1)
            with m.If(from_rob & (out_count[:tag_bits] == index)):
                m.d.sync += rob_valid[index].eq(0)
        m.d.sync += self.o_valid.eq(direct | from_rob)
        with m.If(direct):
            m.d.sync += self.y.eq(scaled)
        with m.Elif(from_rob):
            m.d.sync += self.y.eq(rob_rd.data)
        with m.If(direct | from_rob):
            m.d.sync += out_count.eq(out_count + 1)
        with m.If(accept):
            m.d.sync += in_count.eq(in_count + 1)
        return m

    def _result(self, m, mac, delay):
        """The FMA's result and ``k`` derived from it (and ``kf``, ``k`` as an fp32),
        delayed to the issuing slot's next turn by ``delay`` registers (the threads beyond
        the FMA's stages and its operand register)."""
        raw_k, raw_kf = _k_of(m, mac.result)
        res, k_res, kf_res = mac.result, raw_k, raw_kf
        for stage in range(delay):
            res_d = Signal(32, name=f"res_d{stage}")
            k_d = Signal(signed(10), name=f"k_d{stage}")
            kf_d = Signal(32, name=f"kf_d{stage}")
            m.d.sync += [res_d.eq(res), k_d.eq(k_res), kf_d.eq(kf_res)]
            res, k_res, kf_res = res_d, k_d, kf_d
        return res, k_res, kf_res

    def _scaled(self, m, res, ctx):
        """The last result of a slot scaled by ``2**n``, with the sign; a zero pattern's
        reciprocal saturates."""
        return _scaled(m, res, ctx)


def _clamp(x):
    """``x`` (fp32 bits) with its magnitude clamped to that of ``EXP_CLAMP``."""
    x_mag = x[:31]
    return Cat(Mux(x_mag > golden.EXP_CLAMP, golden.EXP_CLAMP, x_mag)[:31], x[31])


def _seed(x):
    """The reciprocal table's seed for ``x`` (fp32 bits), from its top mantissa bits."""
    table = Array(Const(v, 32) for v in golden.RECIP_TABLE)
    return table[x[23 - golden.RECIP_TABLE_BITS:23]]


def _k_of(m, result):
    """``(k, kf)`` of the range reduction's first FMA result ``t``: the shifter's result has
    ``0x400000 + k`` in its low 23 bits and ``|k| <= 185``, so its low ten bits are ``k`` in
    two's complement; ``kf`` is ``k`` as an exact fp32 (``+0`` for 0). Combinational."""
    raw_k = Signal(signed(10))
    raw_k_mag = Signal(9)
    raw_kf = Signal(32)
    m.d.comb += [raw_k.eq(result[:10]), raw_k_mag.eq(Mux(raw_k < 0, -raw_k, raw_k))]
    for pos in range(9):   # the highest set bit wins: the last assignment
        with m.If(raw_k_mag[pos]):
            m.d.comb += raw_kf.eq(Cat((raw_k_mag << (23 - pos))[:23], Const(127 + pos, 8),
                                      raw_k < 0))
    return raw_k, raw_kf


def _scaled(m, res, ctx):
    """``res`` scaled by ``2**ctx.n`` with the sign ``ctx.sign``: flushed to a signed zero
    below the smallest normal, saturated above the top; a zero pattern's reciprocal
    (``ctx.zero``) saturates."""
    res_field = Signal(signed(11))
    m.d.comb += res_field.eq(res[23:31] + ctx.n)
    scaled = Signal(32)
    with m.If(ctx.zero):
        m.d.comb += scaled.eq(Cat(Const(golden.SATURATED, 31), ctx.sign))
    # The range tests as bit logic (fp.below), not compares: a carry chain after the
    # field's add was the pipelined unit's critical path.
    with m.Elif(fp.below(res_field, 1)):
        m.d.comb += scaled.eq(Cat(Const(0, 31), ctx.sign))
    with m.Elif(~fp.below(res_field, 256)):
        m.d.comb += scaled.eq(Cat(Const(golden.SATURATED, 31), ctx.sign))
    with m.Else():
        m.d.comb += scaled.eq(Cat(res[:23], res_field[:8], ctx.sign))
    return scaled


class PipelinedSFU(wiring.Component):
    """fp32 ``exp(x)`` and ``1/x``, one element per cycle: the microprograms unrolled.

    Stage ``j`` (0 to 8) has its own :class:`~hw.mac.FloatMAC` and runs row ``j`` of
    :data:`EXP_PROGRAM`, or of :data:`RECIP_PROGRAM` for a reciprocal (rows 0 to 3; from
    stage 4 a reciprocal's result rides along in its context). Each element carries its
    context (function, prepared input, hold register, scale, sign) through the stages in
    registers beside the FMAs; one register after stage 0 holds ``t`` so that ``k`` and
    ``kf`` are derived from a register, and the scaled result is registered at the output.
    The rows, the input preparation (clamp, seed) and the final scaling are those of
    :class:`SpecialFunctionUnit`, so the results are bit-identical to it and to
    ``sim.golden.sfu``.

    **Timing.** No handshake: an element offered with ``i_valid`` in cycle ``t`` comes out
    with ``o_valid`` in cycle ``t + latency``, ``latency = 9 * mac_latency + 2``
    (:attr:`latency`), whatever its function; elements may enter every cycle, and leave in
    the order they came in. A reciprocal also comes out early, on ``recip_y`` with
    ``recip_valid`` in cycle ``t + recip_latency``, ``recip_latency = 4 * mac_latency + 2``
    (:attr:`recip_latency`: after its last FMA, scaled as at ``y``), for a user that keeps
    exps and reciprocals apart in time (nothing orders the two outputs); with
    ``early_reciprocal`` it comes out only there (``o_valid`` is for exps only).

    **Prepared inputs** (``prepared``): the user does the input preparation of stage 0
    before a register of its own, so that none of it is between that register and the
    first FMA's multiplier: an exp's ``x`` comes already clamped (:meth:`clamp_input`), and a
    reciprocal's seed (:meth:`seed_of` its ``x``) on ``seed``. The results are the same.

    Parameters
    ----------
    mac_latency : int
        Register stages of each FMA, 1 to the config's deepest MAC latency
        (:data:`~chrysalis.gen.spec.config.MAX_MAC_LATENCY`; see :class:`~hw.mac.FloatMAC`).
    early_reciprocal : bool
        Reciprocals leave on ``recip_y`` only, not also at ``y``.
    prepared : bool
        Inputs come prepared (see above), with a ``seed`` member.

    Attributes
    ----------
    latency : int
        Cycles from an element's ``i_valid`` to its ``o_valid``.
    recip_latency : int
        Cycles from a reciprocal's ``i_valid`` to its ``recip_valid``.

    Members
    -------
    op : In(1)
        Function: 0 = ``exp``, 1 = reciprocal.
    x : In(32)
        The fp32 argument (bit pattern).
    i_valid : In(1)
        ``op`` and ``x`` hold an element (taken in this cycle).
    y : Out(32)
        The fp32 result.
    o_valid : Out(1)
        ``y`` holds the result of the element offered ``latency`` cycles ago.
    recip_y : Out(32)
        The fp32 result of a reciprocal, early.
    recip_valid : Out(1)
        ``recip_y`` holds the result of the reciprocal offered ``recip_latency`` cycles
        ago.
    seed : In(32)
        With ``prepared``: :meth:`seed_of` a reciprocal's ``x``, sampled with it.
    """

    def __init__(self, *, mac_latency=6, early_reciprocal=False, prepared=False):
        if (not isinstance(mac_latency, int) or isinstance(mac_latency, bool)
                or not 1 <= mac_latency <= MAX_MAC_LATENCY):
            raise ValueError(f"mac_latency must be an integer from 1 to {MAX_MAC_LATENCY}, "
                             f"not {mac_latency!r}")
        if not isinstance(early_reciprocal, bool):
            raise TypeError(f"early_reciprocal must be a bool, not {early_reciprocal!r}")
        if not isinstance(prepared, bool):
            raise TypeError(f"prepared must be a bool, not {prepared!r}")
        self.mac_latency = mac_latency
        self.early_reciprocal = early_reciprocal
        self.prepared = prepared
        self.latency = self.latency_of(mac_latency)
        self.recip_latency = self.recip_latency_of(mac_latency)
        super().__init__({
            "op": In(1), "x": In(32), "i_valid": In(1), "y": Out(32), "o_valid": Out(1),
            "recip_y": Out(32), "recip_valid": Out(1),
            **({"seed": In(32)} if prepared else {}),
        })

    @staticmethod
    def clamp_input(x):
        """An exp's argument ``x`` (fp32 bits) clamped to +-128, as stage 0 prepares it."""
        return _clamp(x)

    @staticmethod
    def seed_of(x):
        """The reciprocal's seed of ``x`` (fp32 bits): a table read, as stage 0 does it."""
        return _seed(x)

    @staticmethod
    def latency_of(mac_latency):
        """:attr:`latency` of a unit whose FMAs have ``mac_latency`` stages."""
        return len(EXP_PROGRAM) * mac_latency + 2

    @staticmethod
    def recip_latency_of(mac_latency):
        """:attr:`recip_latency` of a unit whose FMAs have ``mac_latency`` stages."""
        return len(RECIP_PROGRAM) * mac_latency + 2

    def elaborate(self, platform):
        m = Module()
        L = self.mac_latency
        layout = data.StructLayout({
            "valid": 1, "op": 1,
            "x": 32,               # exp: clamped x; reciprocal: -m
            "hold": 32,            # see EXP_PROGRAM; a reciprocal's result from stage 4
            "n": signed(10),       # scale by 2**n: exp k; reciprocal 127 - field
            "sign": 1, "zero": 1,
        })
        # --- Input preparation (as SpecialFunctionUnit's, in the cycle of i_valid), unless
        # the user did it. An exp's scale, sign and zero flag are unused, so a clamped x
        # gives them as well as the raw one.
        x_sign, x_field = self.x[31], self.x[23:31]
        neg_m = Cat(self.x[:23], Const(0b1_01111111, 9))
        ctx = Signal(layout, name="ctx_in")
        m.d.comb += [
            ctx.valid.eq(self.i_valid), ctx.op.eq(self.op),
            ctx.x.eq(Mux(self.op, neg_m, self.x if self.prepared else _clamp(self.x))),
            ctx.hold.eq(self.seed if self.prepared else _seed(self.x)),
            ctx.n.eq(Const(127, signed(10)) - x_field),
            ctx.sign.eq(self.op & x_sign), ctx.zero.eq(self.op & (x_field == 0)),
        ]
        res = k = kf = None
        for j, exp_row in enumerate(EXP_PROGRAM):
            mac = FloatMAC(FP32, FP32, latency=L)
            m.submodules[f"fma{j}"] = mac
            ctx = self._stage(m, j, mac, ctx, res, k, kf, exp_row)
            res = mac.result
            if j == 0:
                # t, with k and kf derived from it, into registers: stage 1 reads them.
                raw_k, raw_kf = _k_of(m, mac.result)
                res_d, k_d, kf_d = Signal(32), Signal(signed(10)), Signal(32)
                m.d.sync += [res_d.eq(res), k_d.eq(raw_k), kf_d.eq(raw_kf)]
                res, k, kf = res_d, k_d, kf_d
            if j == len(RECIP_PROGRAM) - 1:
                # A reciprocal's last FMA: its result scaled into the early output.
                m.d.sync += [self.recip_valid.eq(ctx.valid & ctx.op),
                             self.recip_y.eq(_scaled(m, res, ctx))]
        final = Signal(32)
        m.d.comb += final.eq(Mux(ctx.op, ctx.hold, res))
        late = ctx.valid & ~ctx.op if self.early_reciprocal else ctx.valid
        m.d.sync += [self.o_valid.eq(late), self.y.eq(_scaled(m, final, ctx))]
        return m

    def _stage(self, m, j, mac, ctx, res, k, kf, exp_row):
        """Stage ``j``: drive its FMA from ``ctx`` (the element's context, aligned with
        ``res``, the previous stage's result) and return the context delayed to align with
        this stage's result."""
        hold_now = Signal(32, name=f"hold{j}")
        n_now = Signal(signed(10), name=f"n{j}")
        m.d.comb += [hold_now.eq(ctx.hold), n_now.eq(ctx.n)]
        sources = {"x": ctx.x, "res": res, "hold": hold_now}

        def operand(spec):
            return Const(spec, 32) if isinstance(spec, int) else sources[spec]

        def drive(row):
            c, a, b, capture = row
            if capture == "hold":
                m.d.comb += hold_now.eq(res)
            elif capture == "k":
                m.d.comb += [hold_now.eq(kf), n_now.eq(k)]
            m.d.comb += [mac.c.eq(operand(c)), mac.a.eq(operand(a)), mac.b.eq(operand(b))]

        with m.If(ctx.op):
            if j < len(RECIP_PROGRAM):
                drive(RECIP_PROGRAM[j])
            elif j == len(RECIP_PROGRAM):
                m.d.comb += hold_now.eq(res)      # the reciprocal's y2 rides along
        with m.Else():
            drive(exp_row)
        m.d.comb += mac.i_valid.eq(ctx.valid)
        out = Signal(ctx.shape(), name=f"ctx{j}_issue")
        m.d.comb += [out.eq(ctx), out.hold.eq(hold_now), out.n.eq(n_now)]
        for d in range(self.mac_latency + (1 if j == 0 else 0)):
            reg = Signal(ctx.shape(), name=f"ctx{j}_d{d}")
            m.d.sync += reg.eq(out)
            out = reg
        return out
