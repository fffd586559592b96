"""The special-function unit's RTL == its golden model, bit for bit, under Icarus and Verilator.

The cocotb testbench (``sim/verify/tb/sfu.py``) streams exp and reciprocal elements back to back,
interleaved at random (the edge cases of ``sim.golden.sfu.edge_inputs`` among them), checks every
result against ``sim.golden.sfu``, in acceptance order, and checks every acceptance and result
cycle against ``SpecialFunctionUnit.schedule``. Fewer vectors than in Amaranth's simulator
(``tests/hw/test_sfu.py``).
"""

from amaranth.back import verilog

from chrysalis.hw.sfu import SpecialFunctionUnit
from chrysalis.sim.verify.runner import run_testbench
from chrysalis.sim.verify.verilog_cache import cached_design

MAC_LATENCY = 2        # and the default threads = 3
VECTORS = 300          # per function


def test_sfu_rtl_equals_golden(simulator, build_root):
    name = f"sfu_l{MAC_LATENCY}"
    # Converted once per machine, not once per simulator.
    source = cached_design(
        name, [f"SpecialFunctionUnit mac_latency={MAC_LATENCY}"],
        lambda: verilog.convert(SpecialFunctionUnit(mac_latency=MAC_LATENCY), name=name,
                                emit_src=False),
        build_root)
    result = run_testbench(
        sources=[source], toplevel=name, module="chrysalis.sim.verify.tb.sfu", simulator=simulator,
        build_dir=build_root, timeout_s=300,
        extra_env={"CHRYSALIS_MAC_LATENCY": MAC_LATENCY, "CHRYSALIS_VECTORS": VECTORS,
                   "CHRYSALIS_SEED": 51})
    assert result["tests"] == 1
