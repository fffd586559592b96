"""The special-function unit's RTL == its golden model, bit for bit, under Icarus and Verilator.

The cocotb testbench (``sim/tb/sfu.py``) interleaves exp and reciprocal elements (the edge
cases of ``sim.sfu.edge_inputs`` among them), checks every result against ``sim.sfu`` and
checks the schedule: one element every ``9 * mac_latency`` (exp) or ``4 * mac_latency``
(reciprocal) cycles. Fewer vectors than in Amaranth's simulator (``tests/hw/test_sfu.py``).
"""

from amaranth.back import verilog

from hw.sfu import SpecialFunctionUnit
from sim.runner import run_testbench

MAC_LATENCY = 2
VECTORS = 300          # per function


def test_sfu_rtl_equals_golden(simulator, build_root):
    name = f"sfu_l{MAC_LATENCY}"
    source = build_root / f"{name}.v"
    source.write_text(verilog.convert(SpecialFunctionUnit(mac_latency=MAC_LATENCY), name=name,
                                      emit_src=False))
    result = run_testbench(
        sources=[source], toplevel=name, module="sim.tb.sfu", simulator=simulator,
        build_dir=build_root, timeout_s=300,
        extra_env={"CHRYSALIS_MAC_LATENCY": MAC_LATENCY, "CHRYSALIS_VECTORS": VECTORS,
                   "CHRYSALIS_SEED": 51})
    assert result["tests"] == 1
