"""The arithmetic of a dual-precision slot (sim/golden/dual.py)."""

import numpy as np
import pytest

from chrysalis.gen.spec.formats import BF16, FP32, FP8_E4M3, FloatFormat, product_format
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.dual import BYPASS, HIGH, LOW, DualPath, random_bits


def bf16(*values):
    return nx.fconvert(nx.from_float32(np.asarray(values, dtype=np.float32)), FP32, BF16)


def value_of(bits, fmt=product_format(BF16)):
    return [float(v) for v in nx.to_float(bits, fmt)]


@pytest.mark.parametrize("a0,b0,a1,b1,expected", [
    ((1.5, 2.0, 8.0, 8.0), None, None, None, (LOW, HIGH)),     # 64 beats 3
    ((8.0, 8.0, 1.5, 2.0), None, None, None, (HIGH, LOW)),
    ((2.0, 3.0, 3.0, 2.0), None, None, None, (HIGH, LOW)),     # a tie: pair 0
    ((0.0, 9.0, 1.5, 1.5), None, None, None, (BYPASS, HIGH)),  # zero hands over the high one
    ((9.0, 9.0, -0.0, 1.5), None, None, None, (HIGH, BYPASS)),
    ((0.0, 1.0, 0.0, 1.0), None, None, None, (BYPASS, BYPASS)),
])
def test_value_policy_classes(a0, b0, a1, b1, expected):
    a0, b0, a1, b1 = a0
    path = DualPath(BF16, 3, "value")
    c0, c1 = path.classes(bf16(a0), bf16(b0), bf16(a1), bf16(b1))
    assert (int(c0[0]), int(c1[0])) == expected


def test_low_product_rounds_both_operands_to_the_low_format():
    path = DualPath(BF16, 3, "static")
    p0, p1, c0, c1 = path.products(bf16(1.7), bf16(3.3), bf16(1.7), bf16(3.3))
    assert (int(c0[0]), int(c1[0])) == (HIGH, LOW)
    high = float(nx.to_float(bf16(1.7), BF16)[0]) * float(nx.to_float(bf16(3.3), BF16)[0])
    assert value_of(p0) == [high]                  # exact in the product format
    assert value_of(p1) == [1.75 * 3.25]           # 1.7 -> 1.75, 3.3 -> 3.25 with 3 bits


def test_low_format_saturates():
    """The largest bf16 value rounds up past the top of e8m3 and saturates (no Inf)."""
    path = DualPath(BF16, 3, "static")
    big = np.array([0x7FFF], dtype=np.uint64)
    _, p1, _, _ = path.products(big, bf16(1.0), big, bf16(1.0))
    top = float(nx.to_float(np.array([0x7FF], dtype=np.uint64), FloatFormat(8, 3))[0])
    assert value_of(p1) == [top]


@pytest.mark.parametrize("policy", ["single", "dual-full"])
def test_full_policies_are_exact(policy):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (4, 500), dtype=np.uint64)
    path = DualPath(FP8_E4M3, 1, policy)
    p0, p1, c0, c1 = path.products(*a)
    assert np.array_equal(p0, nx.fmul(a[0], a[1], FP8_E4M3))
    assert np.array_equal(p1, nx.fmul(a[2], a[3], FP8_E4M3))
    assert set(np.unique(c0)) <= {HIGH, BYPASS}


def test_full_low_width_changes_nothing():
    """With as many low mantissa bits as the operand, every policy gives the exact products."""
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (4, 2000), dtype=np.uint64)
    exact = (nx.fmul(a[0], a[1], FP8_E4M3), nx.fmul(a[2], a[3], FP8_E4M3))
    for policy in ("value", "static", "random"):
        p0, p1, _, _ = DualPath(FP8_E4M3, 3, policy).products(*a, random_bit=1)
        assert np.array_equal(p0, exact[0]) and np.array_equal(p1, exact[1]), policy


def test_unpaired_slot_keeps_the_high_multiplier():
    path = DualPath(BF16, 3, "value")
    c0, _ = path.classes(bf16(1.0), bf16(1.0), bf16(100.0), bf16(100.0), pair1=False)
    assert int(c0[0]) == HIGH
    c0, _ = DualPath(BF16, 3, "random").classes(bf16(1.0), bf16(1.0), bf16(1.0), bf16(1.0),
                                                 pair1=False, random_bit=1)
    assert int(c0[0]) == HIGH


def test_random_bits_are_a_function_of_the_slot():
    outputs, steps = np.meshgrid(np.arange(64), np.arange(64))
    bits = random_bits(outputs, steps, 0xBEEF)
    assert np.array_equal(bits, random_bits(outputs, steps, 0xBEEF))
    assert 0.4 < bits.mean() < 0.6
    other = random_bits(outputs, steps, 0x1234)
    assert 0.3 < (bits != other).mean() < 0.7


@pytest.mark.parametrize("args,message", [
    ((FP32.__class__(8, 7), 0, "value"), "low_man_bits must be from 1 to 7, not 0"),
    ((BF16, 3, "smart"), "policy must be one of"),
    (("bf16", 3, "value"), "operand must be a FloatFormat"),
])
def test_bad_parameters(args, message):
    with pytest.raises((TypeError, ValueError), match=message):
        DualPath(*args)


def test_dual_policies_need_groups_of_pairs():
    from chrysalis.gen.spec.config import ConfigError, PRESETS, with_overrides
    assert with_overrides(PRESETS["tiny"], {"mac.dual": "value", "pe.acc_regs": 12}).mac.macs_per_cycle == 2
    with pytest.raises(ConfigError, match="pe.acc_regs must give accumulator groups of an "
                                          "even size .* not 10"):
        with_overrides(PRESETS["tiny"], {"mac.dual": "value", "pe.acc_regs": 10})
    assert with_overrides(PRESETS["tiny"], {"pe.acc_regs": 10}).pe.acc_regs == 10
