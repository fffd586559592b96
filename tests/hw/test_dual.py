# amaranth: UnusedElaboratable=no
"""The dual-precision multiply path's RTL against its golden model ``sim.golden.dual.DualPath``.

``ref(case)`` runs the golden model and ``rtl(case)`` runs ``hw.dual.DualMultiplyPath`` in
Amaranth's simulator; both return one ``(p0, p1, c0, c1)`` tuple per vector, which must be
equal bit for bit. The ``single`` policy has no pair 1: its ``p1`` is zero in the RTL and
meaningless in the golden model, so ``ref`` reports zero there.
"""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from chrysalis.gen.spec.config import DUAL_POLICIES
from chrysalis.gen.spec.formats import BF16, FP8_E4M3, FloatFormat
from chrysalis.hw.dual import BYPASS, HIGH, LOW, DualMultiplyPath
from chrysalis.hw.fmul import FloatMultiplier
from chrysalis.sim.golden import dual as sim_dual
from tests.params import covering


class Case:
    """Input vectors for one configuration of the path."""

    def __init__(self, operand, low_man_bits, policy, latency, a0, b0, a1, b1, pair1,
                 random_bit):
        self.operand, self.low_man_bits = operand, low_man_bits
        self.policy, self.latency = policy, latency
        self.a0, self.b0, self.a1, self.b1 = (np.asarray(v, dtype=np.uint64)
                                              for v in (a0, b0, a1, b1))
        self.pair1 = np.asarray(pair1, dtype=np.uint64)
        self.random_bit = np.asarray(random_bit, dtype=np.uint64)

    def __repr__(self):
        return (f"Case({self.operand}, {self.low_man_bits}, {self.policy!r}, "
                f"latency={self.latency}, {len(self.a0)} vectors)")


def ref(case):
    path = sim_dual.DualPath(case.operand, case.low_man_bits, case.policy)
    p0, p1, c0, c1 = path.products(case.a0, case.b0, case.a1, case.b1,
                                   case.pair1.astype(bool), case.random_bit)
    if case.policy == "single":
        p1 = np.zeros_like(p1)
    return [tuple(int(v) for v in row) for row in zip(p0, p1, c0, c1)]


def rtl(case):
    dut = DualMultiplyPath(case.operand, case.low_man_bits, case.policy,
                           latency=case.latency)
    inputs = {name: [int(v) for v in getattr(case, name)]
              for name in ("a0", "b0", "a1", "b1", "pair1", "random_bit")}
    count = len(inputs["a0"])
    results = []

    async def testbench(ctx):
        for index in range(count + case.latency + 1):
            if index < count:
                for name, values in inputs.items():
                    ctx.set(getattr(dut, name), values[index])
            ctx.set(dut.i_valid, index < count)
            if ctx.get(dut.o_valid):
                results.append((ctx.get(dut.p0), ctx.get(dut.p1),
                                ctx.get(dut.c0), ctx.get(dut.c1)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(results) == count, f"{len(results)} results for {count} vectors"
    return results


def _operands(rng, fmt, low_man_bits, n):
    """Operand bit patterns that stress the path: zeros (any mantissa), both signs, the
    smallest and largest binades, and mantissas that round up to the next binade, to a
    tie, or saturate in the low format."""
    emax_field = (1 << fmt.exp_bits) - 1
    sign = rng.integers(2, size=n)
    kind = rng.integers(5, size=n)
    exp = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3],
        [np.zeros(n, dtype=np.int64),                      # zero
         rng.integers(1, 3, size=n),                       # smallest binades
         rng.integers(emax_field - 1, emax_field + 1, size=n),   # largest (saturation)
         rng.integers(max(1, emax_field // 2 - 2), emax_field // 2 + 3, size=n)],
        rng.integers(0, emax_field + 1, size=n))
    drop = fmt.man_bits - low_man_bits
    man_kind = rng.integers(4, size=n)
    uniform = rng.integers(0, 1 << fmt.man_bits, size=n)
    all_ones = np.full(n, (1 << fmt.man_bits) - 1)          # rounds up to the next binade
    kept = rng.integers(0, 1 << low_man_bits, size=n) << drop
    tie = kept | ((1 << drop >> 1) if drop else 0)         # exactly halfway
    near = np.where(rng.integers(2, size=n) == 1, all_ones, tie)
    man = np.select([man_kind == 0, man_kind == 1, man_kind == 2], [uniform, all_ones, tie],
                    near)
    bits = (sign << (fmt.width - 1)) | (exp << fmt.man_bits) | man
    return bits.astype(np.uint64)


def _with_exponent(bits, exp, fmt):
    mask = ((1 << fmt.exp_bits) - 1) << fmt.man_bits
    return (bits & np.uint64(~mask & ((1 << fmt.width) - 1))) | (
        exp.astype(np.uint64) << np.uint64(fmt.man_bits))


def random_case(seed, operand, low_man_bits, policy, latency, n):
    rng = np.random.default_rng(seed)
    a0, b0, a1, b1 = (_operands(rng, operand, low_man_bits, n) for _ in range(4))
    # A third of the slots tie the exponent sums (swapped exponents or equal ones).
    exponent = lambda bits: ((bits >> np.uint64(operand.man_bits))
                             & np.uint64((1 << operand.exp_bits) - 1))
    tie = rng.integers(3, size=n) == 0
    swap = rng.integers(2, size=n) == 1
    ea1 = np.where(swap, exponent(b0), exponent(a0))
    eb1 = np.where(swap, exponent(a0), exponent(b0))
    a1 = np.where(tie, _with_exponent(a1, ea1, operand), a1)
    b1 = np.where(tie, _with_exponent(b1, eb1, operand), b1)
    pair1 = rng.integers(4, size=n) != 0
    random_bit = rng.integers(2, size=n)
    return Case(operand, low_man_bits, policy, latency, a0, b0, a1, b1, pair1, random_bit)


CONFIGS = [(BF16, 3), (FP8_E4M3, 3), (FP8_E4M3, 1)]


# Every format, policy and latency runs by default (tests/params.py's covering: 5 of the 30
# combinations, each value of each axis at least once); the whole product with `slow`.
@pytest.mark.parametrize("operand, low_man_bits, policy, latency",
                         covering(CONFIGS, DUAL_POLICIES, [1, 2]))
def test_random(operand, low_man_bits, policy, latency):
    n = 2000 if operand == BF16 else 1500
    seed = (DUAL_POLICIES.index(policy), latency, operand.width, low_man_bits)
    case = random_case(seed, operand, low_man_bits, policy, latency, n)
    assert rtl(case) == ref(case)


@pytest.mark.parametrize("policy", ["value", "random"])
def test_fp8_exhaustive_pair0(policy):
    """Every fp8 e4m3 pair 0 against a few pair 1s, both random bits, pair 1 present."""
    fmt = FP8_E4M3
    a0, b0 = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    a0, b0 = a0.ravel(), b0.ravel()
    # Keep the simulation short: every a0 with every b0 of a strided subset covering each
    # exponent field, sign and several mantissas.
    keep = (b0 % 5) == 0
    a0, b0 = a0[keep], b0[keep]
    n = len(a0)
    rng = np.random.default_rng(7)
    a1 = _operands(rng, fmt, 3, n)
    b1 = _operands(rng, fmt, 3, n)
    case = Case(fmt, 3, policy, 1, a0, b0, a1, b1, np.ones(n), rng.integers(2, size=n))
    assert rtl(case) == ref(case)


def test_classes_and_bypass():
    """Hand-picked slots of the ``value`` policy: ties, bypasses, an unpaired pair 0."""
    fmt = BF16
    one, two, four = 0x3F80, 0x4000, 0x4080
    zero, neg_zero, neg_one = 0x0000, 0x8000, 0xBF80
    rows = [
        # a0, b0, a1, b1, pair1 -> c0, c1
        (one, two, two, one, 1, HIGH, LOW),          # tie: pair 0
        (one, two, four, two, 1, LOW, HIGH),          # pair 1 larger
        (zero, four, one, one, 1, BYPASS, HIGH),      # pair 0 bypasses
        (neg_one, neg_zero, one, one, 1, BYPASS, HIGH),   # -1 * -0 = +0
        (neg_one, zero, one, one, 1, BYPASS, HIGH),       # -1 * +0 = -0
        (four, four, neg_zero, one, 1, HIGH, BYPASS),
        (zero, zero, zero, neg_one, 1, BYPASS, BYPASS),
        (one, one, four, four, 0, HIGH, LOW),         # unpaired: pair 0 keeps it
        (zero, one, four, four, 0, BYPASS, LOW),
    ]
    a0, b0, a1, b1, pair1, c0, c1 = (np.array(column) for column in zip(*rows))
    case = Case(fmt, 3, "value", 1, a0, b0, a1, b1, pair1, np.zeros(len(rows)))
    expected = ref(case)
    assert [(c0_, c1_) for _, _, c0_, c1_ in expected] == list(zip(c0.tolist(), c1.tolist()))
    assert rtl(case) == expected
    # Bypassed products are the signed zeros: the sign bit only.
    width = DualMultiplyPath(fmt, 3, "value").product.width
    assert expected[3][0] == 0
    assert expected[4][0] == 1 << (width - 1)
    assert expected[6][1] == 1 << (width - 1)


def _multipliers(dut):
    """The operand formats of the FloatMultipliers in ``dut``'s hierarchy."""
    found = []

    def walk(fragment):
        for sub, _name, _loc in fragment.subfragments:
            found.extend(o.fmt for o in (sub.origins or ()) if isinstance(o, FloatMultiplier))
            walk(sub)

    walk(Fragment.get(dut, None))
    return sorted(found, key=lambda fmt: fmt.man_bits)


@pytest.mark.parametrize("policy, expected", [
    ("single", [BF16]),
    ("dual-full", [BF16, BF16]),
    ("value", [FloatFormat(8, 3), BF16]),
    ("static", [FloatFormat(8, 3), BF16]),
    ("random", [FloatFormat(8, 3), BF16]),
])
def test_multiplier_count(policy, expected):
    assert _multipliers(DualMultiplyPath(BF16, 3, policy)) == expected


@pytest.mark.parametrize("args, kwargs, error, value", [
    (("bf16", 3, "value"), {}, TypeError, "'bf16'"),
    ((BF16, 0, "value"), {}, ValueError, "0"),
    ((BF16, 8, "value"), {}, ValueError, "8"),
    ((FP8_E4M3, 4, "value"), {}, ValueError, "4"),
    ((BF16, 3.0, "value"), {}, TypeError, "3.0"),
    ((BF16, True, "value"), {}, TypeError, "True"),
    ((BF16, 3, "half"), {}, ValueError, "'half'"),
    ((BF16, 3, None), {}, ValueError, "None"),
    ((BF16, 3, "value"), {"latency": 0}, ValueError, "0"),
    ((BF16, 3, "value"), {"latency": 1.5}, ValueError, "1.5"),
])
def test_parameters(args, kwargs, error, value):
    with pytest.raises(error, match=rf", not {value}$"):
        DualMultiplyPath(*args, **kwargs)
