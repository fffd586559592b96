# amaranth: UnusedElaboratable=no
"""The on-board self-test (``hw.board``) in Amaranth's simulator: a stored digits training
step runs on a small accelerator and passes against the golden checksum; a corrupted stored
image fails; a reset runs the next stored step."""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.isa import ErrorCode
from chrysalis.hw.board import AXI4Memory, BoardTop, Reason, SelfTest, checksum, ecp5_pll_params
from chrysalis.sim.compile.selftest import selftest_image

#: A 2x2 core with room for a 64-8-10 MLP at batch 2 (its weights resident in the PEs).
BOARD_TINY = with_overrides(PRESETS["tiny"], {"name": "board_tiny",
                                               "core.scratchpad_words": 2048,
                                               "pe.act_words": 256, "pe.weight_words": 512})
SIZES, BATCH = (64, 8, 10), 2


@pytest.fixture(scope="module")
def stored():
    return selftest_image(BOARD_TINY, SIZES, BATCH, seed=0, runs=2)


def reference_checksum(words):
    """The checksum's definition, one word at a time."""
    a = b = 0
    for w in words:
        a = (a + int(w)) % 2**32
        b = (b + a) % 2**32
    return b << 32 | a


def test_checksum_is_the_fletcher_pair():
    rng = np.random.default_rng(3)
    words = rng.integers(0, 1 << 32, 1000, dtype=np.uint64)
    assert checksum(words) == reference_checksum(words)
    assert checksum([]) == 0
    swapped = words.copy()
    swapped[[10, 11]] = swapped[[11, 10]]
    assert words[10] != words[11] and checksum(swapped) != checksum(words)
    with pytest.raises(ValueError, match="32-bit"):
        checksum([1 << 32])


def test_selftest_image_golden_values(stored):
    # The golden checksum is the checksum of the golden machine's image, and the step
    # changed the memory (the weights and the logits), so the test is not of an idle run.
    assert stored.golden[0] == checksum(stored.golden_image)
    assert stored.golden[0] != checksum(stored.image)
    assert stored.golden[1] != stored.golden[0]
    lo, hi = stored.regions["weights[0]"]
    assert not np.array_equal(stored.image[lo // 4:hi // 4], stored.golden_image[lo // 4:hi // 4])
    assert stored.dma_last == 4 * stored.words - 1


def test_selftest_image_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sizes must run from 64 inputs to 10 classes"):
        selftest_image(BOARD_TINY, (16, 8, 4))
    with pytest.raises(ValueError, match="runs must be an integer from 1 to 255, not 0"):
        selftest_image(BOARD_TINY, SIZES, BATCH, runs=0)
    with pytest.raises(TypeError, match="config must be a Config"):
        selftest_image("tiny")
    with pytest.raises(ValueError, match="scratchpad"):
        selftest_image(PRESETS["tiny"])           # 64-32-10 at batch 8 does not fit


def test_corrupted_copy(stored):
    bad = stored.corrupted(5, 0x100)
    assert int(bad.image[5]) == int(stored.image[5]) ^ 0x100
    assert np.array_equal(np.delete(bad.image, 5), np.delete(stored.image, 5))
    assert bad.golden == stored.golden
    with pytest.raises(ValueError, match="word must be an index"):
        stored.corrupted(stored.words)
    with pytest.raises(ValueError, match="xor must be a non-zero 32-bit value"):
        stored.corrupted(0, 0)


def simulate(stored, resets=0, timeout_cycles=100_000, max_cycles=40_000):
    """Run the self-test, then ``resets`` more times after a reset; the outcome of each."""
    dut = SelfTest(stored, timeout_cycles=timeout_cycles)
    m = Module()
    m.domains.sync = sync = ClockDomain("sync")
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-8, domain="sync")
    outcomes = []

    async def host(ctx):
        for attempt in range(resets + 1):
            if attempt:
                ctx.set(sync.rst, 1)
                await ctx.tick()
                assert not ctx.get(dut.passed) and not ctx.get(dut.failed)
                ctx.set(sync.rst, 0)
            for _ in range(max_cycles):
                if ctx.get(dut.passed) or ctx.get(dut.failed):
                    break
                await ctx.tick()
            outcomes.append({name: ctx.get(getattr(dut, name)) for name in
                             ("passed", "failed", "busy", "reason", "error_code", "run",
                              "cycles", "result")})

    sim.add_testbench(host)
    sim.run()
    return outcomes


def test_selftest_passes_and_reset_runs_the_next_step(stored):
    first, second, third = simulate(stored, resets=2)
    # Run 0: the stored step, checked against the golden machine.
    assert (first["passed"], first["failed"], first["busy"]) == (1, 0, 0)
    assert first["reason"] == Reason.NONE and first["error_code"] == 0
    assert first["result"] == stored.golden[0]
    assert 0 < first["cycles"] < 100_000
    # After a reset the memory holds the trained weights: the next step, its own checksum.
    assert (second["passed"], second["run"], second["result"]) == (1, 1, stored.golden[1])
    # Only two runs are stored: the third reset finds the table used up.
    assert (third["passed"], third["failed"], third["reason"]) == (0, 1, Reason.EXHAUSTED)


# The default suite runs the corrupted image here (about 10 s of CPU); under Icarus and
# Verilator (tests/sim/verify/test_cocotb_board.py) it is `slow`, because there it needs a
# Verilog conversion and a simulator build of its own (about 33 s), while the golden image
# runs the same self-test's Verilog under both simulators by default.
def test_selftest_fails_on_a_corrupted_image(stored):
    # One bit of one weight flipped: the step still runs to the end without an error,
    # but the memory it leaves differs from the golden machine's.
    lo, _ = stored.regions["weights[0]"]
    bad = stored.corrupted(lo // 4 + 3, 1 << 20)
    outcome, = simulate(bad)
    assert (outcome["passed"], outcome["failed"]) == (0, 1)
    assert (outcome["reason"], outcome["error_code"]) == (Reason.MISMATCH, 0)
    assert outcome["result"] != stored.golden[0]


def test_selftest_reports_an_accelerator_error(stored):
    # The opcode of the first command zeroed: the accelerator halts with BAD_OPCODE.
    bad = stored.corrupted(stored.cmd_base // 4, int(stored.image[stored.cmd_base // 4]) & 0xFF)
    outcome, = simulate(bad)
    assert (outcome["failed"], outcome["reason"]) == (1, Reason.ACCELERATOR_ERROR)
    assert outcome["error_code"] == ErrorCode.BAD_OPCODE


def test_components_validate_their_arguments(stored):
    with pytest.raises(TypeError, match="selftest must be a SelfTestImage"):
        SelfTest(None)
    with pytest.raises(ValueError, match="timeout_cycles must be a positive integer, not 0"):
        SelfTest(stored, timeout_cycles=0)
    with pytest.raises(ValueError, match="init must hold at least one row"):
        AXI4Memory(addr_width=32, data_width=64, init=[])
    with pytest.raises(ValueError, match="64-bit values"):
        AXI4Memory(addr_width=32, data_width=64, init=[1 << 64])
    with pytest.raises(ValueError, match="output_mhz must be from 3.125 to 400 MHz"):
        BoardTop(stored, pll_mhz=1000)
    with pytest.raises(TypeError, match="needs a platform"):
        BoardTop(stored).elaborate(None)


@pytest.mark.parametrize("mhz", [25, 40, 50, 75, 100, 133.33])
def test_pll_dividers_meet_the_ecp5_ranges(mhz):
    p = ecp5_pll_params(25, mhz)
    pfd = 25 / p["clki_div"]
    vco = p["achieved_mhz"] * p["clkop_div"]
    assert 3.125 <= pfd <= 400 and 400 <= vco <= 800
    assert p["achieved_mhz"] == pytest.approx(25 * p["clkfb_div"] / p["clki_div"])
    assert abs(p["achieved_mhz"] - mhz) < 0.5


def test_board_build_plan_with_a_pll(stored):
    """The files a ULX3S build would run on (no toolchain): the PLL with its dividers and
    the constraint of its output clock, the board clock, the reset button and the LEDs."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    top = BoardTop(stored, pll_mhz=40)
    p = ecp5_pll_params(25, 40)
    assert top.clock_mhz == p["achieved_mhz"] == 40
    plan = ULX3S_85F_Platform(toolchain="Trellis").build(top, do_build=False)
    rtlil = plan.files["top.il"]
    assert "EHXPLLL" in rtlil
    # The reset reaches the flip-flops through a global buffer.
    assert "cell \\DCCA " in rtlil
    for name in ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"):
        assert f"parameter \\{name} {p[name.lower()]}\n" in rtlil, name
    lpf = plan.files["top.lpf"]
    assert 'SITE "G2"' in lpf and 'SITE "R1"' in lpf          # clk25 and FIRE1
    assert all(f'LOCATE COMP "led_{k}__io"' in lpf for k in range(8))
    assert "FREQUENCY NET" in lpf and "40000000.0 HZ" in lpf
