"""The on-board self-test (``hw.board.SelfTest``) under Icarus and Verilator: the stored
digits step of a 2x2 accelerator passes with the golden machine's checksum, and the same
design built from an image with one weight bit flipped fails with a checksum mismatch
(``slow``; in the default suite in Amaranth's simulator, ``tests/hw/test_board.py``). The
testbench is ``sim/verify/tb/board.py``."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from amaranth.back import verilog

from chrysalis.gen.emit.verilog import time_zero_initializers
from chrysalis.hw.board import Reason, SelfTest
from chrysalis.sim.compile.selftest import selftest_image
from chrysalis.sim.verify.runner import run_testbench
from chrysalis.sim.verify.verilog_cache import cached_design
from tests.hw.test_board import BATCH, BOARD_TINY, SIZES


def _image_parts(image):
    """Every field of a ``SelfTestImage``, arrays by the hash of their bytes: what the
    self-test's Verilog depends on besides the sources."""
    parts = []
    for field in dataclasses.fields(image):
        value = getattr(image, field.name)
        if isinstance(value, np.ndarray):
            value = f"{value.dtype}{value.shape}:{hashlib.sha256(value.tobytes()).hexdigest()}"
        parts.append(f"{field.name}={value!r}")
    return parts


@pytest.fixture(scope="module")
def stored():
    return selftest_image(BOARD_TINY, SIZES, BATCH, seed=0, runs=1)


# The corrupted image is `slow`: its design (the image is in the Verilog) is a conversion and
# a build of its own under each simulator, about 33 s of CPU, for a check of the comparison
# that Amaranth's simulator makes in the default suite (tests/hw/test_board.py).
@pytest.mark.parametrize("corrupt", [pytest.param(False, id="golden"),
                                     pytest.param(True, marks=pytest.mark.slow,
                                                  id="corrupted")])
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
    # Converted once per image and machine, not once per simulator.
    source = cached_design(
        name, ["SelfTest timeout_cycles=100000", *_image_parts(image)],
        lambda: time_zero_initializers(verilog.convert(
            SelfTest(image, timeout_cycles=100_000), name=name, emit_src=False)),
        build_root)
    result = run_testbench(sources=[source], toplevel=name, module="chrysalis.sim.verify.tb.board",
                           simulator=simulator, build_dir=build_root, timeout_s=600,
                           extra_env={"CHRYSALIS_EXPECT": json.dumps(expect)})
    assert result["tests"] == 1
