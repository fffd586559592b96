"""``sim.verify.shared_sim``: one compiled simulation, reset and run again, behaves as a fresh
simulator would (signals, memories, clocks and every slot restarted)."""

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from chrysalis.sim.verify import shared_sim


class _Counter(wiring.Component):
    """A counter that counts while ``en`` is high, and a memory written at ``count``."""

    en: In(1)
    count: Out(8)
    wdata: In(8)
    rdata: Out(8)

    def __init__(self):
        super().__init__()
        self.mem = Memory(shape=8, depth=4, init=[1, 2, 3, 4])

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        wr = self.mem.write_port()
        rd = self.mem.read_port(domain="comb")
        m.d.comb += [wr.addr.eq(self.count[:2]), wr.data.eq(self.wdata), wr.en.eq(self.en),
                     rd.addr.eq(self.count[:2]), self.rdata.eq(rd.data)]
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


@pytest.fixture(autouse=True)
def _empty_cache(monkeypatch):
    monkeypatch.delenv("CHRYSALIS_SHARED_SIM", raising=False)
    shared_sim.clear()
    yield
    shared_sim.clear()


def _count_run(sim, cycles, write):
    seen = {}

    async def testbench(ctx):
        dut = sim.dut
        seen["start"] = (ctx.get(dut.count), ctx.get(dut.rdata))
        ctx.set(dut.en, 1)
        ctx.set(dut.wdata, write)
        await ctx.tick().repeat(cycles)
        ctx.set(dut.en, 0)
        seen["end"] = ctx.get(dut.count)

    sim.run(testbench)
    return seen


def test_a_second_run_starts_from_the_initial_state():
    made = []

    def make():
        made.append(_Counter())
        return made[-1]

    first = shared_sim.shared_simulation("counter", make)
    assert _count_run(first, 3, write=9) == {"start": (0, 1), "end": 3}
    again = shared_sim.shared_simulation("counter", make)
    assert again is first and len(made) == 1
    # The count and the memory the first run wrote (9 at 0..2) are back to their init.
    assert _count_run(again, 5, write=7) == {"start": (0, 1), "end": 5}
    assert again.runs == 2


def test_slots_run_in_order_and_idle_slots_return_at_once():
    sim = shared_sim.shared_simulation(
        "counter", _Counter, slots=("testbench", "background", "process"))
    log = []

    async def main(ctx):
        ctx.set(sim.dut.en, 1)
        await ctx.tick().repeat(4)
        log.append(("main", ctx.get(sim.dut.count)))

    async def forever(ctx):
        while True:                     # a background testbench never ends the run
            await ctx.tick()
            log.append(("bg", ctx.get(sim.dut.count)))

    sim.run(main, forever, None)
    # At every edge the slots run in the order they were added: the main testbench first.
    assert log.index(("bg", 3)) < log.index(("main", 4)) < log.index(("bg", 4))
    log.clear()
    sim.run(main, None, None)
    assert log == [("main", 4)]
    with pytest.raises(ValueError, match="one function per slot"):
        sim.run(main)


def test_a_failed_run_is_not_reused():
    sim = shared_sim.shared_simulation("counter", _Counter)

    async def failing(ctx):
        await ctx.tick()
        raise AssertionError("boom")

    with pytest.raises(AssertionError, match="boom"):
        sim.run(failing)
    assert sim.broken
    fresh = shared_sim.shared_simulation("counter", _Counter)
    assert fresh is not sim
    assert _count_run(fresh, 2, write=0) == {"start": (0, 1), "end": 2}


def test_keys_and_slots_tell_simulations_apart():
    a = shared_sim.shared_simulation("a", _Counter)
    b = shared_sim.shared_simulation("b", _Counter)
    c = shared_sim.shared_simulation("a", _Counter, slots=("testbench", "testbench"))
    assert len({id(a), id(b), id(c)}) == 3
    for sim in (a, b, c):
        sim.run(*[None] * len(sim.slots))
    with pytest.raises(ValueError, match=r"a slot is one of .*, not 'later'"):
        shared_sim.shared_simulation("a", _Counter, slots=["later"])


def test_the_environment_turns_sharing_off(monkeypatch):
    monkeypatch.setenv("CHRYSALIS_SHARED_SIM", "0")
    first = shared_sim.shared_simulation("counter", _Counter)
    second = shared_sim.shared_simulation("counter", _Counter)
    assert first is not second
    for sim in (first, second):
        assert _count_run(sim, 1, write=0) == {"start": (0, 1), "end": 1}
