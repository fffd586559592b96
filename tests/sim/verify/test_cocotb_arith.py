"""RTL == golden, bit for bit, for the MAC, the rounded multiplier, the converter, the
dual-precision multiply path and the k-paired slot (multiply path and pair sum) under Icarus
and Verilator.

The cocotb testbench (``sim/verify/tb/arith.py``) generates the vectors with ``sim.golden.vectors`` and
checks every result against ``sim.golden.numerics``; fewer vectors than in Amaranth's simulator
(``tests/hw/test_arith.py``), the same generators.
"""

import pytest
from amaranth.back import verilog

from chrysalis.gen.spec.formats import FORMATS
from chrysalis.hw.dual import DualMultiplyPath, KPairMultiplyAdd
from chrysalis.hw.fconv import FloatConverter
from chrysalis.hw.fmul import RoundedMultiplier
from chrysalis.hw.mac import FloatMAC
from chrysalis.sim.verify.runner import run_testbench
from chrysalis.sim.verify.verilog_cache import cached_design

CASES = {
    "mac_bf16_fp32_l6": ("mac", "bf16", "fp32", 6),
    "mac_fp8_e4m3_fp32_l2": ("mac", "fp8_e4m3", "fp32", 2),
    "multiply_fp32_fp32_l6": ("multiply", "fp32", "fp32", 6),
    "convert_fp32_bf16": ("convert", "fp32", "bf16", 1),
    "dual_value_bf16_l2": ("dual", "bf16", "value", 2),
    "dual_random_bf16_l3": ("dual", "bf16", "random", 3),
    "kpair_value_bf16_l2": ("kpair", "bf16", "value", 2),
    "kpair_dual_full_fp8_e4m3_l1": ("kpair", "fp8_e4m3", "dual-full", 1),
}


def build_unit(unit, first, second, latency):
    if unit == "dual":                  # second: the policy
        return DualMultiplyPath(FORMATS[first], 3, second, latency=latency)
    if unit == "kpair":                 # the pair adder has one stage of its own
        return KPairMultiplyAdd(FORMATS[first], 3, second, latency=latency, sum_latency=1)
    if unit == "mac":
        return FloatMAC(FORMATS[first], FORMATS[second], latency=latency)
    if unit == "multiply":
        return RoundedMultiplier(FORMATS[first], FORMATS[second], latency=latency)
    return FloatConverter(FORMATS[first], FORMATS[second], latency=latency)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unit_rtl_equals_golden(case, simulator, build_root):
    unit, first, second, latency = CASES[case]
    # Converted once per machine, not once per simulator.
    source = cached_design(
        case, [f"{unit} {first} {second} latency={latency} low_man_bits=3"],
        lambda: verilog.convert(build_unit(unit, first, second, latency), name=case,
                                emit_src=False),
        build_root)
    result = run_testbench(
        sources=[source], toplevel=case, module="chrysalis.sim.verify.tb.arith", simulator=simulator,
        build_dir=build_root, timeout_s=600,
        extra_env={"CHRYSALIS_UNIT": unit, "CHRYSALIS_FORMATS": f"{first},{second}",
                   "CHRYSALIS_POLICY": second, "CHRYSALIS_LOW_MAN_BITS": 3,
                   "CHRYSALIS_VECTORS": 3000, "CHRYSALIS_SEED": 31})
    assert result["tests"] == 1
