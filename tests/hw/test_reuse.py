# amaranth: UnusedElaboratable=no
"""The reuse cache's RTL (``hw.reuse``) against its golden model ``sim.golden.reuse.ReuseCache``.

A case is a stream of slots (stationary addresses, streaming operands, pair 1, a command
start now and then, idle cycles) drawn from small spaces, so that keys repeat, sets collide,
ways are evicted and stationary operands change. ``ref`` runs the golden cache slot by slot;
``rtl`` runs :class:`ReuseTags` and :class:`ReuseValues` with a stand-in multiply path that
delivers, ``latency`` cycles after each lookup, a distinct product per pair (a slot number).
Both return, per slot, the lookups, hits and the two products the slot ends with.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from chrysalis.gen.spec.formats import BF16, FP8_E4M3
from chrysalis.hw.reuse import ReuseTags, ReuseValues
from chrysalis.sim.golden.reuse import ReuseCache


@dataclasses.dataclass
class Case:
    operand: object
    entries: int
    ways: int
    strength: int
    latency: int
    slots: list        # (fresh, stationary0, b0, stationary1, b1, pair1) or None (idle)

    def __repr__(self):
        return (f"Case({self.operand}, entries={self.entries}, ways={self.ways}, "
                f"strength={self.strength}, latency={self.latency}, {len(self.slots)} slots)")


def _product(index, pair):
    """The stand-in multiply path's product of pair ``pair`` of slot ``index``."""
    return 2 * index + pair + 1


def ref(case):
    cache = ReuseCache(1, case.entries, case.ways, case.operand, case.strength)
    out = []
    for index, slot in enumerate(case.slots):
        if slot is None:
            continue
        fresh, st0, b0, st1, b1, pair1 = slot
        if fresh:
            cache.reset()
        r = cache.slot([st0], [b0], [st1], [b1], pair1=[pair1],
                       products=(_product(index, 0), _product(index, 1)))
        q0 = int(r.value0[0]) if r.hit0[0] else _product(index, 0)
        q1 = int(r.value1[0]) if r.hit1[0] else _product(index, 1)
        out.append((bool(r.look0[0]), bool(r.hit0[0]), q0,
                    bool(r.look1[0]), bool(r.hit1[0]), q1 if pair1 else None))
    return out


def rtl(case):
    addr_bits = 4
    tags = ReuseTags(case.operand, case.entries, case.ways, addr_bits)
    values = ReuseValues(32, case.entries, case.latency)
    from amaranth.hdl import Module
    m = Module()
    m.submodules.tags, m.submodules.values = tags, values
    for name in ("hit0", "hit1", "insert0", "insert1",
                 "hit_index0", "hit_index1", "insert_index0", "insert_index1"):
        m.d.comb += getattr(values, name).eq(getattr(tags, name))
    out = []

    async def testbench(ctx):
        ctx.set(tags.strength, case.strength)
        pending = {}                       # cycle -> (slot index, look0, hit0, look1, hit1, pair1)
        total = len(case.slots) + case.latency + 1
        for cycle in range(total):
            slot = case.slots[cycle] if cycle < len(case.slots) else None
            ctx.set(tags.valid, slot is not None)
            if slot is not None:
                fresh, st0, b0, st1, b1, pair1 = slot
                for name, value in dict(fresh=fresh, stationary0=st0, b0=b0, stationary1=st1,
                                        b1=b1, pair1=pair1).items():
                    ctx.set(getattr(tags, name), value)
                pending[cycle + case.latency] = (cycle, ctx.get(tags.look0), ctx.get(tags.hit0),
                                                 ctx.get(tags.look1), ctx.get(tags.hit1), pair1)
            if cycle in pending:
                index, look0, hit0, look1, hit1, pair1 = pending.pop(cycle)
                ctx.set(values.p0, _product(index, 0))
                ctx.set(values.p1, _product(index, 1))
                q0, q1 = ctx.get(values.q0), ctx.get(values.q1)
                out.append((bool(look0), bool(hit0), q0, bool(look1), bool(hit1),
                            q1 if pair1 else None))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return out


def _case(seed, operand, entries, ways, strength, latency, count=160):
    """Slots from small spaces: 3 stationary addresses (runs of them), operands from a few
    values with a few low-bit variants, pair 1 mostly present and mostly on pair 0's
    stationary address, a command start and an idle cycle now and then."""
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 1 << operand.width, 6)
    slots, st = [], 0
    for index in range(count):
        if rng.random() < 0.08:
            slots.append(None)
            continue
        if rng.random() < 0.1:
            st = int(rng.integers(0, 3))
        operands = [int(rng.choice(bases)) ^ int(rng.integers(0, 8)) for _ in range(2)]
        st1 = st if rng.random() < 0.8 else (st + 1) % 3
        slots.append((int(rng.random() < 0.04), st, operands[0], st1, operands[1],
                      int(rng.random() < 0.85)))
    return Case(operand, entries, ways, strength, latency, slots)


CASES = [_case(seed, op, entries, ways, strength, latency)
         for seed, (op, entries, ways, strength, latency) in enumerate([
             (BF16, 8, 2, 4, 2), (BF16, 4, 1, 8, 1), (BF16, 16, 4, 1, 2), (BF16, 2, 2, 30, 3),
             (BF16, 1, 1, 6, 2), (FP8_E4M3, 8, 8, 2, 1), (FP8_E4M3, 4, 2, 4, 0),
             (BF16, 8, 2, 0, 2)])]


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_reuse_cache_equals_golden(case):
    got, want = rtl(case), ref(case)
    assert got == want
    if case.strength:
        hits = sum(row[1] + row[4] for row in want)
        assert 0 < hits < 2 * len(want), "the case exercises hits and misses"


@pytest.mark.parametrize("cls,args,message", [
    (ReuseTags, (BF16, 6, 2, 4), r"^entries must be a power of two, not 6$"),
    (ReuseTags, (BF16, 4, 8, 4), r"^ways must be at most entries \(4\), not 8$"),
    (ReuseTags, (BF16, 4, 2, 0), r"^addr_bits must be a positive integer, not 0$"),
    (ReuseValues, (0, 4, 1), r"^width must be a positive integer, not 0$"),
    (ReuseValues, (8, 4, -1), r"^latency must be a non-negative integer, not -1$"),
])
def test_bad_parameters_are_refused(cls, args, message):
    with pytest.raises(ValueError, match=message):
        cls(*args)
