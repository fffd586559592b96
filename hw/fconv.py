"""The floating-point format converter."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import fp_datapath as fp
from ._unit import check_format, check_latency

__all__ = ["FloatConverter"]


class FloatConverter(wiring.Component):
    """Convert between formats: exact when the target is wider, else rounded (RNE).

    A narrowing conversion (fp32 to bf16, say) rounds to nearest even, flushes results below
    the target's smallest normal to zero and saturates beyond its largest value.
    Golden model: ``sim.golden.numerics.fconvert``.

    Parameters
    ----------
    src, dst : FloatFormat
        Source and target formats.
    latency : int
        Register stages (the first at the output, the others delaying it).

    Members
    -------
    a : In(src.width)
    i_valid : In(1)
    result : Out(dst.width)
    o_valid : Out(1)
    """

    BOUNDARIES = ("output",)

    def __init__(self, src, dst, *, latency=1):
        self.src = check_format("Source format", src)
        self.dst = check_format("Target format", dst)
        self.latency = check_latency(latency)
        super().__init__({
            "a": In(src.width),
            "i_valid": In(1),
            "result": Out(dst.width),
            "o_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ew = fp.exponent_width(self.src, self.dst)
        pipe = fp.Pipeline(m, self.BOUNDARIES, self.latency)
        if self.src.exp_bits == self.dst.exp_bits and self.dst.man_bits < self.src.man_bits:
            # fp32 to bf16: the exponent field passes through, one carry chain.
            pipe.drive(self, fp.narrow(m, self.a, self.src, self.dst))
            return m
        a = fp.unpack(m, self.src, self.a, ew, "a")
        pipe.drive(self, fp.round_pack(m, a.sign, a.exp, a.sig, a.zero, a.sign, self.dst, ew))
        return m
