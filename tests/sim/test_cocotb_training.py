"""Consecutive training steps of a small MLP on a 4x4 core under Icarus and Verilator:
forward, loss gradient, backward, weight gradient and update on chip, and after every step
the loss gradient (and at the end every weight) equal to the golden model's, bit for bit."""

import pytest
from amaranth.back import verilog

from gen.config import PRESETS, with_overrides
from hw.core import Core
from sim.runner import run_testbench

CORE_4X4 = with_overrides(PRESETS["default"], {"name": "core4x4", "pe.weight_words": 256,
                                               "pe.act_words": 256,
                                               "core.scratchpad_words": 4096})


@pytest.mark.parametrize("sizes,batch,steps", [((12, 8, 5), 4, 2)])
def test_training_steps_rtl_equal_golden(sizes, batch, steps, simulator, build_root):
    source = build_root / "core4x4.v"
    source.write_text(verilog.convert(Core(CORE_4X4), name="core4x4", emit_src=False))
    result = run_testbench(
        sources=[source], toplevel="core4x4", module="sim.tb.training", simulator=simulator,
        build_dir=build_root, timeout_s=900,
        extra_env={"CHRYSALIS_CONFIG": CORE_4X4.to_toml(),
                   "CHRYSALIS_SIZES": ",".join(map(str, sizes)), "CHRYSALIS_BATCH": batch,
                   "CHRYSALIS_STEPS": steps, "CHRYSALIS_SEED": 3})
    assert result["tests"] == 1
