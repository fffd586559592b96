"""The exact floating-point multiplier."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.formats import product_format

from . import fp_datapath as fp
from ._unit import check_format, check_latency

__all__ = ["FloatMultiplier"]


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
