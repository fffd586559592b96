# amaranth: UnusedElaboratable=no
"""The k-paired slot's RTL (``hw.dual.KPairMultiplyAdd``) against its golden model: the two
products of ``sim.golden.dual.DualPath.products`` summed by ``DualPath.pair_sum``, bit for bit,
with the classes of both products."""

import zlib

import numpy as np
import pytest
from amaranth.sim import Simulator

from chrysalis.gen.spec.formats import BF16, FP8_E4M3, FP16
from chrysalis.hw.dual import KPairMultiplyAdd
from chrysalis.sim.golden.dual import DualPath

POLICIES = ("dual-full", "value", "static", "random")


def vectors(rng, fmt, n):
    """Operands with zeros, both signs, the extreme binades and mantissas near rounding ties,
    so that sums cancel, round to even, and pair 1 bypasses or is absent."""
    top = (1 << fmt.exp_bits) - 1
    exp = rng.choice([0, 1, 2, top - 1, top, fmt.bias, fmt.bias + 1, fmt.bias - 1],
                     size=(4, n), p=[.1, .05, .05, .05, .05, .3, .2, .2])
    exp = np.where(rng.random((4, n)) < 0.3, rng.integers(0, top + 1, (4, n)), exp)
    man = rng.integers(0, 1 << fmt.man_bits, (4, n))
    sign = rng.integers(0, 2, (4, n))
    ops = (sign << (fmt.width - 1)) | (exp << fmt.man_bits) | man
    # Some slots: step k + 1 the negation of step k's operand (exact cancellation).
    cancel = rng.random(n) < 0.15
    ops[2] = np.where(cancel, ops[0] ^ (1 << (fmt.width - 1)), ops[2])
    ops[3] = np.where(cancel, ops[1], ops[3])
    return ops.astype(np.uint64), rng.random(n) < 0.8, rng.integers(0, 2, n)


def ref(fmt, policy, ops, pair1, bits):
    path = DualPath(fmt, 3 if fmt.man_bits >= 3 else 1, policy)
    p0, p1, c0, c1 = path.products(*ops, pair1, bits)
    return [tuple(int(v) for v in row) for row in zip(path.pair_sum(p0, p1, pair1), c0, c1)]


def rtl(fmt, policy, ops, pair1, bits, latency, sum_latency):
    dut = KPairMultiplyAdd(fmt, 3 if fmt.man_bits >= 3 else 1, policy, latency=latency,
                           sum_latency=sum_latency)
    n = ops.shape[1]
    out = []

    async def bench(ctx):
        for t in range(n + latency + sum_latency + 1):
            if t < n:
                for name, row in zip(("a0", "b0", "a1", "b1"), ops):
                    ctx.set(getattr(dut, name), int(row[t]))
                ctx.set(dut.pair1, int(pair1[t]))
                ctx.set(dut.random_bit, int(bits[t]))
            ctx.set(dut.i_valid, t < n)
            if ctx.get(dut.o_valid):
                out.append((ctx.get(dut.sum), ctx.get(dut.c0), ctx.get(dut.c1)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(out) == n
    return out


@pytest.mark.parametrize("fmt", [BF16, FP16, FP8_E4M3], ids=str)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("latency,sum_latency", [(1, 1), (2, 2), (3, 1)])
def test_kpair_rtl_equals_golden(fmt, policy, latency, sum_latency):
    rng = np.random.default_rng(zlib.crc32(f"{fmt}{policy}{latency}".encode()))
    ops, pair1, bits = vectors(rng, fmt, 300)
    got = rtl(fmt, policy, ops, pair1, bits, latency, sum_latency)
    want = ref(fmt, policy, ops, pair1, bits)
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, (f"{len(bad)} mismatches, first at {bad[0]}: rtl {got[bad[0]]} "
                     f"golden {want[bad[0]]}")


@pytest.mark.parametrize("kwargs,message", [
    ({"policy": "single"}, "A k-pair needs a policy with two pairs, not 'single'"),
    ({"sum_latency": 0}, "sum_latency must be a positive integer, not 0"),
])
def test_bad_kpair_parameters(kwargs, message):
    args = {"policy": "value", **kwargs}
    policy = args.pop("policy")
    with pytest.raises(ValueError, match=message):
        KPairMultiplyAdd(BF16, 3, policy, **args)
