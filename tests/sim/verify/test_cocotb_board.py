"""The on-board self-test (``hw.board.SelfTest``) under Icarus and Verilator: the stored
digits step of a 2x2 accelerator passes with the golden machine's checksum, and the same
design built from an image with one weight bit flipped fails with a checksum mismatch
(``sim/verify/tb/board.py``; in Amaranth's simulator: ``tests/hw/test_board.py``)."""

import json

import pytest
from amaranth.back import verilog

from chrysalis.gen.emit.verilog import time_zero_initializers
from chrysalis.hw.board import Reason, SelfTest
from chrysalis.sim.compile.selftest import selftest_image
from chrysalis.sim.verify.runner import run_testbench
from tests.hw.test_board import BATCH, BOARD_TINY, SIZES


@pytest.fixture(scope="module")
def stored():
    return selftest_image(BOARD_TINY, SIZES, BATCH, seed=0, runs=1)


@pytest.mark.parametrize("corrupt", [False, True], ids=["golden", "corrupted"])
def test_selftest_under_a_simulator(simulator, build_root, stored, corrupt):
    if corrupt:
        lo, _ = stored.regions["weights[0]"]
        image = stored.corrupted(lo // 4 + 3, 1 << 20)
        expect = {"passed": False, "reason": int(Reason.MISMATCH),
                  "result_differs": int(stored.golden[0])}
    else:
        image = stored
        expect = {"passed": True, "reason": int(Reason.NONE), "result": int(stored.golden[0])}
    name = f"selftest_{'corrupted' if corrupt else 'golden'}"
    source = build_root / f"{name}.v"
    text = verilog.convert(SelfTest(image, timeout_cycles=100_000), name=name, emit_src=False)
    source.write_text(time_zero_initializers(text))
    result = run_testbench(sources=[source], toplevel=name, module="chrysalis.sim.verify.tb.board",
                           simulator=simulator, build_dir=build_root, timeout_s=600,
                           extra_env={"CHRYSALIS_EXPECT": json.dumps(expect)})
    assert result["tests"] == 1
