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
        pipe = fp.Pipeline(m, self.BOUNDARIES, self.latency)
        pipe.drive(self, fp.convert(m, self.a, self.src, self.dst, "a"))
        return m
