"""Consecutive training steps of small MLPs under Icarus and Verilator: forward, loss
gradient, backward, weight gradient and update (with momentum on the 2x3 core; fused into
the weight gradient in one case) on chip, and
after every step the loss gradient (and at the end every weight and velocity) equal to the
golden model's, bit for bit."""

import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.sim.verify.runner import SIMULATORS, run_testbench
from tests.sim.verify.core_builds import core_verilog

CORE_4X4 = with_overrides(PRESETS["default"], {"name": "core4x4", "pe.weight_words": 256,
                                               "pe.act_words": 256,
                                               "core.scratchpad_words": 4096})


#: A tiny non-square core: the loss gradient (and everything else) on a 2x3 array too.
CORE_2X3 = with_overrides(PRESETS["tiny"], {"name": "core2x3", "core.cols": 3,
                                            "mac.latency": 3})
CONFIGS = {"core4x4": CORE_4X4, "core2x3": CORE_2X3}


CASES = [
    ("core4x4", (12, 8, 5), 4, 2, None, "separate"),
    ("core2x3", (7, 5, 3), 3, 2, 0.875, "separate"),
    # The update fused into the weight-gradient pass: dY carries -lr.
    ("core4x4", (12, 8, 5), 4, 2, None, "fused")]
#: The 4x4 core under Icarus is `slow` (a build of its own): the default suite runs its steps
#: under Verilator, and the 2x3 core's (the build test_cocotb_core.py shares) under both.
SLOW_UNDER_ICARUS = {"core4x4"}


@pytest.mark.parametrize("simulator,name,sizes,batch,steps,momentum,update", [
    pytest.param(simulator, *case, id=f"{simulator}-{case[0]}-{case[-1]}", marks=(
        pytest.mark.cocotb,
        *([pytest.mark.slow] if simulator == "icarus" and case[0] in SLOW_UNDER_ICARUS
          else [])))
    for simulator in SIMULATORS for case in CASES], indirect=["simulator"])
def test_training_steps_rtl_equal_golden(name, sizes, batch, steps, momentum, update,
                                         simulator):
    config = CONFIGS[name]
    # The 2x3 core is test_cocotb_core.py's tiny_2x3_l3: one build serves both files.
    source, toplevel, build_dir = core_verilog(config)
    result = run_testbench(
        sources=[source], toplevel=toplevel, module="chrysalis.sim.verify.tb.training",
        simulator=simulator, build_dir=build_dir, timeout_s=900,
        extra_env={"CHRYSALIS_CONFIG": config.to_toml(),
                   "CHRYSALIS_SIZES": ",".join(map(str, sizes)), "CHRYSALIS_BATCH": batch,
                   "CHRYSALIS_STEPS": steps, "CHRYSALIS_SEED": 3,
                   "CHRYSALIS_MOMENTUM": "" if momentum is None else momentum,
                   "CHRYSALIS_UPDATE": update})
    assert result["tests"] == 1
