"""The floating-point multipliers: exact, and rounded once."""

from amaranth.hdl import Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.formats import product_format

from . import fp_datapath as fp
from ._unit import check_format, check_latency

__all__ = ["FloatMultiplier", "RoundedMultiplier"]


class FloatMultiplier(wiring.Component):
    """The exact product ``a * b``, in ``product_format(fmt)``.

    The product format has two more exponent bits and ``2*man_bits + 1`` mantissa bits, so
    it holds every product of two ``fmt`` values with no rounding, underflow or overflow.
    Golden model: ``sim.golden.numerics.fmul``.

    Parameters
    ----------
    fmt : FloatFormat
        Format of ``a`` and ``b``.
    latency : int
        Register stages: at the output, then after the multiplier; further stages delay
        the output.

    Members
    -------
    a, b : In(fmt.width)
    i_valid : In(1)
    product : Out(product_format(fmt).width)
    o_valid : Out(1)
    """

    BOUNDARIES = ("output", "product")

    def __init__(self, fmt, *, latency=1):
        self.fmt = check_format("Format", fmt)
        self.product_fmt = product_format(fmt)
        self.latency = check_latency(latency)
        super().__init__({
            "a": In(fmt.width),
            "b": In(fmt.width),
            "i_valid": In(1),
            "product": Out(self.product_fmt.width),
            "o_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ew = fp.exponent_width(self.product_fmt)
        pipe = fp.Pipeline(m, self.BOUNDARIES, self.latency)
        a = fp.unpack(m, self.fmt, self.a, ew, "a", mask_zero=False)
        b = fp.unpack(m, self.fmt, self.b, ew, "b", mask_zero=False)
        prod = fp.multiply(m, a, b, ew)
        s = pipe.stage("product", sign=prod.sign, exp=prod.exp, sig=prod.sig, zero=prod.zero)
        prod = fp.normalize_product(m, fp.Unpacked(s["sign"], s["exp"], s["sig"], s["zero"],
                                                   prod.precision), ew)
        pipe.drive(self, fp.pack_exact(m, prod, self.product_fmt), port="product")
        return m


class RoundedMultiplier(wiring.Component):
    """``a * b`` rounded once to ``out_fmt``: the golden ``fmac(+0, a, b, fmt, out_fmt)``, bit
    for bit, in the area of a multiplier (no adder).

    The product is exact, then rounded to nearest even, flushed below ``out_fmt``'s smallest
    normal and saturated beyond its largest value, as :class:`hw.mac.FloatMAC` rounds its
    sum; an exact zero product is ``+0``, as an FMA's ``-0 + +0`` is (``docs/numerics.md``).
    For a unit whose FMAs only ever multiply (their addend is always zero).

    Parameters
    ----------
    fmt : FloatFormat
        Format of ``a`` and ``b``.
    out_fmt : FloatFormat
        Format of ``result``.
    latency : int
        Register stages: at the output, after the multiplier blocks (the partial products),
        after the product's normalization; further stages delay the output.

    Members
    -------
    a, b : In(fmt.width)
    i_valid : In(1)
    result : Out(out_fmt.width)
    o_valid : Out(1)
    """

    BOUNDARIES = ("output", "product", "normalized")

    def __init__(self, fmt, out_fmt, *, latency=3):
        self.fmt = check_format("Format", fmt)
        self.out_fmt = check_format("Result format", out_fmt)
        self.latency = check_latency(latency)
        super().__init__({
            "a": In(fmt.width),
            "b": In(fmt.width),
            "i_valid": In(1),
            "result": Out(out_fmt.width),
            "o_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, out = self.fmt, self.out_fmt
        pf = product_format(fmt)
        ew = fp.exponent_width(fmt, out, pf)
        pipe = fp.Pipeline(m, self.BOUNDARIES, self.latency)
        a = fp.unpack(m, fmt, self.a, ew, "a", mask_zero=False)
        b = fp.unpack(m, fmt, self.b, ew, "b", mask_zero=False)
        # As in FloatMAC: the multiplier blocks' partial products are registered, and
        # joined after the register.
        s, joined = fp.staged_product(m, pipe, a, b, ew)
        prod = fp.normalize_product(m, fp.Unpacked(s["p_sign"], s["p_exp"], joined, s["p_zero"],
                                                   len(joined)), ew)
        n = pipe.stage("normalized", sign=prod.sign, exp=prod.exp, sig=prod.sig,
                       zero=prod.zero)
        pipe.drive(self, fp.round_pack(m, n["sign"], n["exp"], n["sig"], n["zero"],
                                       Const(0, 1), out, ew))
        return m
