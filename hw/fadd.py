"""The pipelined floating-point adder."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import fp_datapath as fp
from ._unit import check_format, check_latency

__all__ = ["FloatAdder"]


class FloatAdder(wiring.Component):
    """``a + b`` rounded once (to nearest, ties to even) to the output format.

    The operands may be of different formats (an fp32 accumulator plus a bf16 value, say);
    the sum is computed as if exactly and rounded once. Semantics: ``docs/numerics.md``;
    golden model: ``sim.golden.numerics.fadd``.

    Parameters
    ----------
    a_fmt, b_fmt : FloatFormat
        Formats of ``a`` and ``b``.
    out_fmt : FloatFormat or None
        Format of ``result``; ``a_fmt`` when None.
    latency : int
        Register stages: at the output, after alignment, after normalization, after operand
        ordering, after the addition, after the rounding increment (before the carry's
        choices) and after the leading-zero count (before the shift), in that order of
        preference; further stages delay the output.
    paths : int
        2 (the default): the sum on a near and a far path, the faster; 1: on one path (a
        signed add, then a leading-zero count and a shift), the smaller. The result is the
        same bit for bit (``hw.fp_datapath.add``).

    Members
    -------
    a : In(a_fmt.width)
    b : In(b_fmt.width)
    i_valid : In(1)
    result : Out(out_fmt.width)
    o_valid : Out(1)
    """

    BOUNDARIES = ("output", "aligned", "normalized", "ordered", "summed", "rounded",
                  "counted")

    def __init__(self, a_fmt, b_fmt=None, out_fmt=None, *, latency=2, paths=2):
        self.a_fmt = check_format("Format of a", a_fmt)
        self.b_fmt = check_format("Format of b", a_fmt if b_fmt is None else b_fmt)
        self.out_fmt = check_format("Output format", a_fmt if out_fmt is None else out_fmt)
        self.latency = check_latency(latency)
        if paths not in (1, 2) or isinstance(paths, bool):
            raise ValueError(f"paths must be 1 or 2, not {paths!r}")
        self.paths = paths
        super().__init__({
            "a": In(self.a_fmt.width),
            "b": In(self.b_fmt.width),
            "i_valid": In(1),
            "result": Out(self.out_fmt.width),
            "o_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fa, fb, fo = self.a_fmt, self.b_fmt, self.out_fmt
        ew = fp.exponent_width(fa, fb, fo)
        pipe = fp.Pipeline(m, self.BOUNDARIES, self.latency)
        a = fp.unpack(m, fa, self.a, ew, "a")
        b = fp.unpack(m, fb, self.b, ew, "b")
        summed = fp.add(m, pipe, a, b, fp.adder_window(fa, fb, fo), ew, paths=self.paths)
        pipe.drive(self, fp.round_pack(m, fmt=fo, ew=ew, pipe=pipe, **summed))
        return m
