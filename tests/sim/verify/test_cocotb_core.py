"""Every core operation, RTL == golden model bit for bit, under Icarus and Verilator.

The cocotb testbench (``sim/verify/tb/core.py``) runs LOAD_W, STORE_W, LOAD_COL, FORWARD (ReLU),
LOAD_ROW, BACKWARD (ReLU mask), WGRAD and STORE_W on the core's Verilog, as
``tests/hw/test_core.py`` does in Amaranth's simulator, and checks every result against
``sim.golden.core_model``, the counters against the work done and the scratchpad for stray writes.
One simulation per config runs several layer shapes (one cocotb test each, the core reset
between them), so a Verilator model is built once per config; the shapes are not multiples
of the array's rows or columns.
"""

import json

import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.sim.verify.runner import run_testbench
from chrysalis.sim.verify.tb.core_data import case_env
from tests.sim.verify.core_builds import core_verilog

#: name -> (config, shapes (m, n, batch)). A core's Verilator build costs far more CPU than
#: its shapes' runs (about 20 s against 1 s), so each config here is one the default suite
#: needs anyway: the 2x3 core is test_cocotb_training.py's too (one build serves both).
CASES = {
    "tiny_2x3_l3": (with_overrides(PRESETS["tiny"], {"core.cols": 3, "mac.latency": 3}),
                    [(5, 3, 2), (3, 7, 3), (4, 6, 1), (7, 5, 6), (1, 1, 1)]),
    # The neighbour-link tree reduction (core.reduction = "tree") on a 4x2 core.
    "tiny_4x2_tree": (with_overrides(PRESETS["tiny"], {"core.rows": 4, "core.reduction": "tree"}),
                      [(5, 3, 2), (3, 9, 3), (7, 6, 3)]),
    # The tiny preset's own 2x2 core: `slow`. The default suite runs it, inside the tiny
    # accelerator, under both simulators (test_cocotb_accelerator.py's fuzz and training
    # jobs against the golden machine, test_native_job.py under Icarus), and the 2x3
    # core's shapes.
    "tiny_2x2": (PRESETS["tiny"], [(5, 3, 2), (3, 7, 3), (7, 6, 3), (1, 1, 1)]),
}
#: The tree core is `slow` too (a build of its own under each simulator): the default suite
#: runs the tree reduction against the golden model in Amaranth's simulator
#: (tests/hw/test_core.py, tests/sim/golden/test_machine.py's 4x2 tree core), and this
#: testbench on the 2x3 core (the build test_cocotb_training.py shares) under both.
SLOW = {"tiny_2x2", "tiny_4x2_tree"}

SEED = 7


@pytest.mark.parametrize("case", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW
                                  else name for name in sorted(CASES)])
def test_core_rtl_equals_golden(case, simulator, build_root):
    config, shapes = CASES[case]
    source, toplevel, build_dir = core_verilog(config)
    report = build_root / "report.json"
    report.unlink(missing_ok=True)
    result = run_testbench(
        sources=[source], toplevel=toplevel, module="chrysalis.sim.verify.tb.core",
        simulator=simulator, build_dir=build_dir, timeout_s=300,
        extra_env=case_env(config, shapes, SEED, report=report))
    assert result["tests"] == len(shapes)
    # The testbench reports every command of every shape (cycles and counters).
    done = json.loads(report.read_text())
    assert sorted(done) == sorted(f"{m}x{n}x{b}" for m, n, b in shapes)
    assert all(not entry["failures"] for entry in done.values())
