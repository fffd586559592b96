"""The pipelined floating-point multiply-accumulate unit."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.formats import product_format

from . import fp_datapath as fp
from ._unit import check_format, check_latency

__all__ = ["FloatMAC"]


class FloatMAC(wiring.Component):
    """Fused multiply-add ``c + a*b``: the product is exact, the sum is rounded once.

    Operands ``a`` and ``b`` are in the operand format, the addend ``c`` and the result in
    the accumulator format. The unit accepts a new set of operands every cycle and returns
    the result ``latency`` cycles later; ``o_valid`` follows ``i_valid`` with the same delay.
    Semantics: ``docs/numerics.md``; golden model: ``sim.golden.numerics.fmac``.

    Parameters
    ----------
    op_fmt : FloatFormat
        Format of ``a`` and ``b``.
    acc_fmt : FloatFormat
        Format of ``c`` and ``result``.
    latency : int
        Register stages from inputs to ``result``. Registers go, in this order of
        preference, at the output, after alignment, after the multiplier, after
        normalization, after operand ordering and after the addition; further stages delay
        the output. Six stages run a bf16 x bf16 + fp32 MAC at over 100 MHz on ECP5
        (``benchmarks/arith.py``).

    Members
    -------
    a, b : In(op_fmt.width)
        Multiplicands.
    c : In(acc_fmt.width)
        Addend.
    i_valid : In(1)
        The inputs hold a new operation.
    result : Out(acc_fmt.width)
        ``c + a*b``, ``latency`` cycles after the inputs.
    o_valid : Out(1)
        ``result`` holds the result of an operation.
    """

    BOUNDARIES = ("output", "aligned", "product", "normalized", "ordered", "summed")

    def __init__(self, op_fmt, acc_fmt, *, latency=3):
        self.op_fmt = check_format("Operand format", op_fmt)
        self.acc_fmt = check_format("Accumulator format", acc_fmt)
        self.latency = check_latency(latency)
        super().__init__({
            "a": In(op_fmt.width),
            "b": In(op_fmt.width),
            "c": In(acc_fmt.width),
            "i_valid": In(1),
            "result": Out(acc_fmt.width),
            "o_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        op, acc = self.op_fmt, self.acc_fmt
        pf = product_format(op)
        ew = fp.exponent_width(op, acc, pf)
        pipe = fp.Pipeline(m, self.BOUNDARIES, self.latency)

        a = fp.unpack(m, op, self.a, ew, "a", mask_zero=False)
        b = fp.unpack(m, op, self.b, ew, "b", mask_zero=False)
        c = fp.unpack(m, acc, self.c, ew, "c")
        # The product register holds the partial products (their sum is in the next stage),
        # and the addend waits beside them; the product's exponent is taken one up (below)
        # before the register.
        s, joined = fp.staged_product(m, pipe, a, b, ew, exp_offset=1, c_sign=c.sign,
                                      c_exp=c.exp, c_sig=c.sig, c_zero=c.zero)
        c = fp.Unpacked(s["c_sign"], s["c_exp"], s["c_sig"], s["c_zero"], c.precision)
        # The product enters the adder as its joined significand, not normalized: the value
        # ``joined * 2**(a.exp + b.exp + 1 - (len(joined) - 1))`` with at most one leading
        # zero. The one-path adder's sum is exact and its normalization counts any leading
        # zeros, so the result is the same bit for bit; the operand ordering then waits for
        # the exponents alone, not for the end of the join's carry chains (where the
        # normalization bit comes out), which was the loss unit's critical path.
        sig = Signal(len(joined), name="prod_sig")
        m.d.comb += sig.eq(Mux(s["p_zero"], 0, joined))
        prod = fp.Unpacked(s["p_sign"], s["p_exp"], sig, s["p_zero"], len(joined))

        # The window has one bit more than the normalized operands need: the addend is then
        # shifted one place further (the product's exponent is one above its value's when
        # its leading bit is zero), and a subtraction may cancel two leading bits where the
        # shift dropped bits into the sticky; the extra bit keeps the sticky below the
        # rounding's guard bits as it would be with a normalized product.
        # One adder path: two paths over a 51-bit window cost the loss unit 4,422 LUT4
        # (24,260 -> 28,682), and no FMA's adder sets its clock.
        summed = fp.add(m, pipe, c, prod, fp.adder_window(acc, pf, acc) + 1, ew, paths=1)
        pipe.drive(self, fp.round_pack(m, fmt=acc, ew=ew, **summed))
        return m
