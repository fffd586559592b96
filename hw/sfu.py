"""The special-function unit: fp32 ``exp`` and reciprocal on one fused multiply-add."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.formats import FP32
from sim import sfu as golden

from .mac import FloatMAC

__all__ = ["SpecialFunctionUnit", "EXP_PROGRAM", "RECIP_PROGRAM"]

#: The microprograms: one ``(c, a, b, capture)`` row per FMA ``c + a*b``, in issue order.
#: An operand is an fp32 constant (int bit pattern) or a source: ``"x"`` the prepared input
#: (exp: ``x`` clamped to +-128; reciprocal: ``-m``, the negated significand), ``"res"`` the
#: result of the previous FMA, ``"hold"`` the hold register, ``"k"`` the fp32 value of the
#: integer k. ``capture`` names the register that takes the previous FMA's result when the
#: row issues (``"k"``: k is extracted from it); a row reads the value it captures.
#: They are ``sim.sfu.exp`` and ``sim.sfu.reciprocal``, FMA for FMA.
EXP_PROGRAM = (
    (golden.EXP_SHIFTER, "x", golden.LOG2E, None),   # t  = SHIFTER + x*LOG2E
    ("x", "k", golden.NEG_LN2_HI, "k"),              # r1 = x - k*LN2_HI       (k from t)
    ("res", "k", golden.NEG_LN2_LO, None),           # r  = r1 - k*LN2_LO
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


class SpecialFunctionUnit(wiring.Component):
    """fp32 ``exp(x)`` and ``1/x`` for the softmax cross-entropy gradient.

    One :class:`~hw.mac.FloatMAC` (fp32 x fp32 + fp32) runs a short microprogram per element
    (:data:`EXP_PROGRAM`, 9 FMAs; :data:`RECIP_PROGRAM`, 4 FMAs); small combinational logic
    clamps the input, extracts the integer ``k`` of the exp range reduction, looks up the
    reciprocal seed and scales the result by a power of two. Bit-exact golden model:
    ``sim.sfu.exp`` and ``sim.sfu.reciprocal``; algorithms, constants and errors:
    ``docs/special_functions.md``.

    One element is in flight at a time and every FMA waits for the one before, so the unit
    accepts an element every ``9 * mac_latency`` cycles for exp and ``4 * mac_latency`` for
    the reciprocal (:meth:`cycles`); its result appears one cycle after the last FMA, that
    is ``cycles(op) + 1`` cycles after ``x`` was accepted, in the cycle in which the unit is
    ready to accept again.

    Parameters
    ----------
    mac_latency : int
        Register stages of the FMA, 1 to 8 (see :class:`~hw.mac.FloatMAC`). The FMA's
        result feeds its own inputs through a multiplexer, so at least one stage is needed.

    Members
    -------
    op : In(1)
        Function: 0 = ``exp``, 1 = reciprocal. Sampled with ``x``.
    x : In(32)
        The fp32 argument (bit pattern).
    i_valid : In(1)
        ``op`` and ``x`` hold an element; it is accepted in a cycle where ``i_ready`` is high.
    i_ready : Out(1)
        The unit can accept an element in this cycle (idle, or finishing its last FMA).
    y : Out(32)
        The fp32 result; holds its value until the next result.
    o_valid : Out(1)
        High for one cycle when ``y`` holds a new result. There is no back-pressure: a result
        is presented once.
    """

    op: In(1)
    x: In(32)
    i_valid: In(1)
    i_ready: Out(1)
    y: Out(32)
    o_valid: Out(1)

    def __init__(self, *, mac_latency=6):
        if (not isinstance(mac_latency, int) or isinstance(mac_latency, bool)
                or not 1 <= mac_latency <= 8):
            raise ValueError(f"mac_latency must be an integer from 1 to 8, not {mac_latency!r}")
        self.mac_latency = mac_latency
        super().__init__()

    def cycles(self, op):
        """Cycles between accepted elements of function ``op`` (0 exp, 1 reciprocal)."""
        if op not in (0, 1):
            raise ValueError(f"op must be 0 (exp) or 1 (reciprocal), not {op!r}")
        return len(RECIP_PROGRAM if op else EXP_PROGRAM) * self.mac_latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = FloatMAC(FP32, FP32, latency=self.mac_latency)
        res = mac.result

        busy = Signal()
        op = Signal()
        step = Signal(range(len(EXP_PROGRAM) + 1))
        x_reg = Signal(32)          # exp: clamped x; reciprocal: -m
        hold = Signal(32)           # exp: r; reciprocal: y0, then y1
        k_reg = Signal(signed(10))
        kf_reg = Signal(32)
        sign = Signal()
        field = Signal(8)           # reciprocal: the biased exponent of x

        # Input preparation, from the ports (used in the cycle an element is accepted).
        x_sign, x_mag, x_field = self.x[31], self.x[:31], self.x[23:31]
        clamped = Cat(Mux(x_mag > golden.EXP_CLAMP, golden.EXP_CLAMP, x_mag)[:31], x_sign)
        neg_m = Cat(self.x[:23], Const(0b1_01111111, 9))
        table = Array(Const(v, 32) for v in golden.RECIP_TABLE)
        seed = table[self.x[23 - golden.RECIP_TABLE_BITS:23]]
        x_prep = Signal(32)
        m.d.comb += x_prep.eq(Mux(self.op, neg_m, clamped))

        # k from the shifter's result: its low 23 bits are 0x400000 + k and |k| <= 185, so
        # the low ten bits are k in two's complement. kf is k as an exact fp32.
        k_res = Signal(signed(10))
        m.d.comb += k_res.eq(res[:10])
        k_mag = Signal(9)
        kf_res = Signal(32)
        m.d.comb += k_mag.eq(Mux(k_res < 0, -k_res, k_res))
        for pos in range(9):   # the highest set bit wins: the last assignment
            with m.If(k_mag[pos]):
                m.d.comb += kf_res.eq(Cat((k_mag << (23 - pos))[:23], Const(127 + pos, 8),
                                          k_res < 0))

        accept = Signal()
        issue = Signal()
        last = Signal()
        finish = Signal()
        n_steps = Mux(op, len(RECIP_PROGRAM), len(EXP_PROGRAM))
        m.d.comb += [
            last.eq(step == n_steps),
            finish.eq(busy & mac.o_valid & last),
            self.i_ready.eq(~busy | finish),
            accept.eq(self.i_valid & self.i_ready),
        ]

        # Operand sources, with write-through captures (a row reads what it captures).
        capture_hold = Signal()
        capture_k = Signal()
        hold_now = Signal(32)
        kf_now = Signal(32)
        x_now = Signal(32)
        m.d.comb += [
            hold_now.eq(Mux(accept, seed, Mux(capture_hold, res, hold))),
            kf_now.eq(Mux(capture_k, kf_res, kf_reg)),
            x_now.eq(Mux(accept, x_prep, x_reg)),
        ]
        sources = {"x": x_now, "res": res, "hold": hold_now, "k": kf_now}

        def operand(spec):
            return Const(spec, 32) if isinstance(spec, int) else sources[spec]

        def drive_row(row):
            c, a, b, capture = row
            m.d.comb += [mac.c.eq(operand(c)), mac.a.eq(operand(a)), mac.b.eq(operand(b)),
                         issue.eq(1)]
            if capture == "hold":
                m.d.comb += capture_hold.eq(1)
            elif capture == "k":
                m.d.comb += capture_k.eq(1)

        with m.If(accept):
            with m.If(self.op):
                drive_row(RECIP_PROGRAM[0])
            with m.Else():
                drive_row(EXP_PROGRAM[0])
        with m.Elif(busy & mac.o_valid & ~last):
            with m.Switch(Cat(step, op)):
                for code, program in enumerate((EXP_PROGRAM, RECIP_PROGRAM)):
                    for index, row in enumerate(program[1:], start=1):
                        with m.Case(index | (code << len(step))):
                            drive_row(row)
        m.d.comb += mac.i_valid.eq(issue)

        with m.If(issue & ~accept):
            m.d.sync += step.eq(step + 1)
        with m.If(capture_hold):
            m.d.sync += hold.eq(res)
        with m.If(capture_k):
            m.d.sync += [k_reg.eq(k_res), kf_reg.eq(kf_res)]

        # Scale the last result by 2**n: n = k (exp) or 127 - field(x) (reciprocal).
        res_field = Signal(signed(11))
        m.d.comb += res_field.eq(res[23:31] + Mux(op, Const(127, signed(10)) - field, k_reg))
        out_sign = Mux(op, sign, 0)
        scaled = Signal(32)
        with m.If(op & (field == 0)):
            m.d.comb += scaled.eq(Cat(Const(golden.SATURATED, 31), sign))
        with m.Elif(res_field < 1):
            m.d.comb += scaled.eq(Cat(Const(0, 31), out_sign))
        with m.Elif(res_field > 255):
            m.d.comb += scaled.eq(Cat(Const(golden.SATURATED, 31), out_sign))
        with m.Else():
            m.d.comb += scaled.eq(Cat(res[:23], res_field[:8], out_sign))

        m.d.sync += self.o_valid.eq(finish)
        with m.If(finish):
            m.d.sync += [self.y.eq(scaled), busy.eq(0)]
        with m.If(accept):
            m.d.sync += [busy.eq(1), step.eq(1), op.eq(self.op), x_reg.eq(x_prep),
                         sign.eq(x_sign), field.eq(x_field)]
            with m.If(self.op):
                m.d.sync += hold.eq(seed)
        return m
