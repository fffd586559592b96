# amaranth: UnusedElaboratable=no
"""RTL == golden model, bit for bit, for every floating-point unit (Amaranth's simulator).

Glasgow's pattern: ``rtl(case)`` runs the unit and returns plain integers, ``ref(case)`` is
the golden model, and the test asserts they are equal over generated cases.
"""

import numpy as np
import pytest

from chrysalis.gen.spec.formats import BF16, FP16, FP32, FP8_E4M3, FP8_E5M2, FloatFormat
from chrysalis.hw.fadd import FloatAdder
from chrysalis.hw.fconv import FloatConverter
from chrysalis.hw.fmul import FloatMultiplier, RoundedMultiplier
from chrysalis.hw.mac import FloatMAC
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden import vectors

from .streaming import stream


def _assert_equal(got, ref, inputs):
    bad = np.flatnonzero(got != ref)
    if bad.size:
        i = bad[0]
        case = {k: hex(int(v[i])) for k, v in inputs.items()}
        raise AssertionError(f"{bad.size} of {len(ref)} differ; first {case}: "
                             f"rtl {int(got[i]):#x}, golden {int(ref[i]):#x}")


# The exhaustive and 100k-vector runs take 10 s each in Amaranth's simulator: ``slow``. The
# default suite keeps the 4000-vector runs of every format below, and the units run under
# Icarus and Verilator in tests/sim/verify/test_cocotb_arith.py.
@pytest.mark.slow
@pytest.mark.parametrize("fmt", [FP8_E4M3, FP8_E5M2], ids=["e4m3", "e5m2"])
def test_multiplier_all_fp8_pairs(fmt):
    a, b = (x.ravel().astype(np.uint64) for x in np.meshgrid(np.arange(256), np.arange(256)))
    inputs = {"a": a, "b": b}
    got = stream(FloatMultiplier(fmt, latency=2), inputs, "product")
    _assert_equal(got, nx.fmul(a, b, fmt), inputs)


@pytest.mark.parametrize("count", [pytest.param(100_000, marks=pytest.mark.slow), 4000])
def test_mac_bf16_fp32_vectors(count):
    # 100k vectors take over a minute in Amaranth's simulator: the default suite runs 4000,
    # as for every other format and latency below.
    inputs = vectors.mac_vectors(BF16, FP32, count, seed=21)
    got = stream(FloatMAC(BF16, FP32, latency=3), inputs)
    _assert_equal(got, nx.fmac(inputs["c"], inputs["a"], inputs["b"], BF16, FP32), inputs)


# The latency changes only the pipeline: the default suite runs bf16 x fp32 at the extremes
# (0 and 6; test_mac_bf16_fp32_vectors runs latency 3), the others are `slow`.
@pytest.mark.parametrize("op_fmt,acc_fmt,latency", [
    (BF16, FP32, 0), pytest.param(BF16, FP32, 1, marks=pytest.mark.slow),
    pytest.param(BF16, FP32, 2, marks=pytest.mark.slow),
    pytest.param(BF16, FP32, 4, marks=pytest.mark.slow), (BF16, FP32, 6),
    (FP16, FP32, 3), (FP8_E4M3, FP32, 3), (FP8_E5M2, FP32, 3), (FP8_E4M3, FP16, 2),
    (FP32, FP32, 3), (FP8_E4M3, FloatFormat(5, 7), 1),
])
def test_mac_formats_and_latencies(op_fmt, acc_fmt, latency):
    inputs = vectors.mac_vectors(op_fmt, acc_fmt, 4000, seed=22 + latency)
    got = stream(FloatMAC(op_fmt, acc_fmt, latency=latency), inputs)
    _assert_equal(got, nx.fmac(inputs["c"], inputs["a"], inputs["b"], op_fmt, acc_fmt), inputs)


# The rounded multiplier is an FMA with a zero addend: the golden fmac(+0, a, b), over the
# FMA's vectors (edge values crossed, uniform, near one), and at every latency's register.
@pytest.mark.parametrize("fmt,out_fmt,latency", [
    (FP32, FP32, 0), (FP32, FP32, 3), (FP32, FP32, 6), (BF16, FP32, 2), (FP16, BF16, 1),
    (FP8_E4M3, FP8_E5M2, 2),
])
def test_rounded_multiplier(fmt, out_fmt, latency):
    inputs = vectors.mac_vectors(fmt, out_fmt, 4000, seed=26)
    del inputs["c"]
    a, b = inputs["a"], inputs["b"]
    got = stream(RoundedMultiplier(fmt, out_fmt, latency=latency), inputs)
    _assert_equal(got, nx.fmac(np.zeros_like(a), a, b, fmt, out_fmt), inputs)
    # The case an FMA settles by its addend: an exact zero product of either sign is +0.
    assert ((a & ((1 << (fmt.width - 1)) - 1) == 0) & (b >> (fmt.width - 1) == 1)).any()


@pytest.mark.slow
def test_converter_fp32_to_bf16_100k_vectors():
    inputs = vectors.convert_vectors(FP32, 100_000, seed=23)
    got = stream(FloatConverter(FP32, BF16, latency=1), inputs)
    _assert_equal(got, nx.fconvert(inputs["a"], FP32, BF16), inputs)


def test_converter_fp32_to_bf16_edges():
    """``fp.narrow``'s cases: a zero field with mantissa bits, ties either way, a mantissa
    carry into the field, the largest value (saturation) and the field of all ones."""
    edges = [0x0000_0000, 0x8000_0000, 0x007F_FFFF, 0x807F_FFFF, 0x0080_0000, 0x3F80_8000,
             0x3F81_8000, 0x3F80_8001, 0x3F80_7FFF, 0x3FFF_8000, 0x3FFF_FFFF, 0x7F7F_8000,
             0x7FFF_7FFF, 0x7FFF_8000, 0x7FFF_FFFF, 0xFFFF_FFFF, 0xFF7F_FFFF, 0x7F80_0000,
             0x7FFE_8000, 0x7FFE_C000]
    rng = np.random.default_rng(25)
    tails = rng.integers(0, 1 << 16, 2000)
    heads = rng.choice([0x0000, 0x0001, 0x3F80, 0x7F7F, 0x7FFE, 0x7FFF, 0x8000, 0xFFFF], 2000)
    a = np.array(edges + list((heads << 16) | tails), dtype=np.uint64)
    inputs = {"a": a}
    got = stream(FloatConverter(FP32, BF16, latency=1), inputs)
    _assert_equal(got, nx.fconvert(a, FP32, BF16), inputs)


@pytest.mark.parametrize("src,dst", [
    (FP32, BF16), (FP32, FP16), (FP32, FP8_E4M3), (FP16, FP8_E5M2), (BF16, FP32),
    (FP8_E4M3, BF16), (FP16, BF16), (BF16, FP16),
])
def test_converter_formats(src, dst):
    inputs = vectors.convert_vectors(src, 4000, seed=24, spread=20)
    got = stream(FloatConverter(src, dst, latency=2), inputs)
    _assert_equal(got, nx.fconvert(inputs["a"], src, dst), inputs)


# Every pair of edge values (676), then random, near and cancelling pairs: 3,000 vectors in
# all by default, 6,000 with `slow`. (Under Icarus and Verilator the adder runs inside the
# tree reduction and the ring's reductions: test_cocotb_core.py, test_cocotb_cluster.py.)
@pytest.mark.parametrize("count", [3000, pytest.param(6000, marks=pytest.mark.slow)])
# Both of the adder's forms: two paths (near and far) and one path (the k-pair's adder).
@pytest.mark.parametrize("a_fmt,b_fmt,out_fmt,latency,paths", [
    (FP32, FP32, FP32, 2, 2), (FP32, BF16, FP32, 1, 2), (BF16, BF16, BF16, 3, 2),
    (BF16, BF16, FP32, 0, 2), (FP8_E4M3, FP8_E4M3, FP8_E4M3, 2, 2),
    (FP32, FP32, FP32, 3, 1), (BF16, BF16, FP32, 2, 1),
    # Every boundary registered (rounded, counted), on both forms.
    (FP32, BF16, FP32, 7, 2), (FP32, BF16, FP32, 7, 1),
])
def test_adder(a_fmt, b_fmt, out_fmt, latency, paths, count):
    inputs = vectors.add_vectors(a_fmt, b_fmt, count, seed=25)
    got = stream(FloatAdder(a_fmt, b_fmt, out_fmt, latency=latency, paths=paths), inputs)
    _assert_equal(got, nx.fadd(inputs["a"], a_fmt, inputs["b"], b_fmt, out_fmt), inputs)


@pytest.mark.parametrize("width", [1, 2, 5, 8])
def test_below_is_signed_less_than(width):
    """``fp.below``, the rounding's range test written as bit logic: ``value < bound`` for
    every value of a signed width and every bound from below its range to above it."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator

    from chrysalis.hw import fp_datapath as fp
    low, high = -(1 << (width - 1)), 1 << (width - 1)
    bounds = range(low - 2, high + 3)
    value = Signal(signed(width))
    m = Module()
    flags = [Signal(name=f"below_{i}") for i in range(len(bounds))]
    m.d.comb += [flag.eq(fp.below(value, bound)) for flag, bound in zip(flags, bounds)]
    got, ref = [], []

    async def testbench(ctx):
        for x in range(low, high):
            ctx.set(value, x)
            got.append([ctx.get(flag) for flag in flags])
            ref.append([int(x < bound) for bound in bounds])

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert got == ref
    with pytest.raises(TypeError, match="below compares a signed value, not"):
        fp.below(Signal(width), 0)


@pytest.mark.parametrize("make,message", [
    (lambda: FloatMAC("bf16", FP32), "Operand format must be a FloatFormat, not 'bf16'"),
    (lambda: FloatMAC(BF16, FP32, latency=-1), "Latency must be a non-negative integer, not -1"),
    (lambda: FloatConverter(FP32, None), "Target format must be a FloatFormat, not None"),
    (lambda: FloatAdder(BF16, latency=True), "Latency must be a non-negative integer, not True"),
    (lambda: FloatAdder(BF16, paths=3), "paths must be 1 or 2, not 3"),
    (lambda: RoundedMultiplier(FP32, "fp32"), "Result format must be a FloatFormat, not 'fp32'"),
])
def test_bad_parameters_are_named(make, message):
    with pytest.raises((TypeError, ValueError), match=message.replace("(", r"\(")):
        make()
