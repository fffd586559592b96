"""The reuse cache of a PE (sim/golden/reuse.py) on hand-made slot sequences (docs/reuse.md)."""

import numpy as np
import pytest

from chrysalis.gen.spec.formats import BF16
from chrysalis.sim.golden.dual import BYPASS, HIGH, LOW
from chrysalis.sim.golden.reuse import HIT, ReuseCache, reuse_classes, reuse_key


def cache(entries=4, ways=4, strength=1, lanes=1):
    return ReuseCache(lanes, entries, ways, BF16, strength)


def run(c, stationary, operand, product, stationary1=None, operand1=None, product1=None,
        pair1=None):
    """One slot of a one-lane cache; returns (hit0, value0, hit1, value1, look1) as Python
    values."""
    arg = (lambda v: None if v is None else np.array([v], dtype=np.uint64))
    r = c.slot(np.array([stationary]), arg(operand),
               None if stationary1 is None else np.array([stationary1]), arg(operand1),
               pair1=pair1, products=(product, product1))
    return (bool(r.hit0[0]), int(r.value0[0]), bool(r.hit1[0]), int(r.value1[0]),
            bool(r.look1[0]))


def hits(c, keys):
    """Which of ``keys`` the (one-lane) cache holds now, without changing it."""
    return [bool(c.lookup(np.array([k], dtype=np.uint64))[0][0]) for k in keys]


def test_hit_and_miss():
    c = cache()
    assert run(c, 0, 10, 100)[:2] == (False, 0)
    assert run(c, 0, 10, 999)[:2] == (True, 100)     # the cached product, not the new one
    assert run(c, 0, 11, 110)[:2] == (False, 0)
    assert run(c, 0, 11, 999)[:2] == (True, 110)
    assert run(c, 0, 10, 999)[:2] == (True, 100)


@pytest.mark.parametrize("ways", [1, 2, 4])
def test_fifo_eviction_in_one_set(ways):
    c = cache(entries=ways, ways=ways)                 # one set: every key in it
    keys = list(range(100, 100 + ways + 1))
    for k in keys:
        assert not run(c, 0, k, k)[0]
    # ways + 1 keys in a set of `ways`: the first one went.
    assert hits(c, keys) == [False] + [True] * ways
    if ways > 1:
        # Hits change nothing: the next insert still evicts the oldest (keys[1]), not the
        # least recently used.
        assert run(c, 0, keys[1], 0)[:2] == (True, keys[1])
        run(c, 0, 7, 7)
        assert hits(c, [keys[1], keys[2], 7]) == [False, True, True]


def test_set_and_tag_split():
    c = cache(entries=4, ways=2)                       # 2 sets: set = key & 1
    for k in (0, 2, 1):
        run(c, 0, k, k + 50)
    assert c.pointer[0].tolist() == [0, 1]             # set 0 full (wrapped), set 1 one in
    run(c, 0, 4, 54)                                   # set 0 again: evicts key 0
    assert hits(c, [0, 2, 4, 1, 3]) == [False, True, True, True, False]
    assert c.tag[0, 0].tolist() == [2, 1]              # key 4 = tag 2 in way 0, key 2 = tag 1
    assert run(c, 0, 4, 0)[:2] == (True, 54)


def test_a_new_stationary_address_empties_the_cache():
    c = cache(entries=4, ways=2)
    run(c, 5, 10, 100)
    run(c, 5, 12, 120)
    assert run(c, 5, 10, 0)[:2] == (True, 100)
    assert run(c, 6, 10, 200)[:2] == (False, 0)        # new stationary operand: all invalid
    assert c.valid[0].sum() == 1 and c.pointer[0].tolist() == [1, 0]
    assert run(c, 6, 10, 0)[:2] == (True, 200)
    assert run(c, 5, 12, 0)[:2] == (False, 0)          # back to 5: still a new cache
    assert int(c.current[0]) == 5
    c.reset()
    assert int(c.current[0]) == -1 and not c.valid.any()


def test_pair1_lookups_see_the_state_before_the_slot():
    c = cache()
    # Pair 0 inserts 10 in this slot; pair 1 looking up 10 in the same slot misses, and
    # does not insert (the same key): the cache keeps pair 0's product.
    assert run(c, 0, 10, 100, 0, 10, 111) == (False, 0, False, 0, True)
    assert c.valid[0].sum() == 1
    assert run(c, 0, 10, 0, 0, 10, 0) == (True, 100, True, 100, True)


def test_pair1_inserts_after_pair0():
    c = cache(entries=2, ways=2)
    run(c, 0, 10, 100, 0, 12, 120)
    assert c.tag[0, 0].tolist() == [10, 12] and c.pointer[0].tolist() == [0]
    # A hit for pair 0, a miss for pair 1 (inserted into way 0, evicting 10).
    assert run(c, 0, 12, 0, 0, 14, 140) == (True, 120, False, 0, True)
    assert hits(c, [10, 12, 14]) == [False, True, True]


def test_pair1_with_another_stationary_address_neither_looks_up_nor_inserts():
    c = cache()
    run(c, 0, 10, 100)
    assert run(c, 0, 12, 120, 1, 10, 101) == (False, 0, False, 0, False)
    assert hits(c, [10, 12]) == [True, True] and c.valid[0].sum() == 2
    # Nor where pair 1 does not exist.
    assert run(c, 0, 12, 0, 0, 10, 0, pair1=np.array([False])) == (True, 120, False, 0, False)
    assert run(c, 0, 14, 140, 0, 16, 160, pair1=np.array([False]))[4] is False
    assert hits(c, [14, 16]) == [True, False]


def test_lanes_are_independent():
    c = cache(lanes=3)
    c.slot(np.array([0, 0, 1]), np.array([10, 11, 10], dtype=np.uint64),
           products=(np.array([1, 2, 3]), None))
    r = c.slot(np.array([0, 0, 0]), np.array([10, 10, 10], dtype=np.uint64),
               products=(0, None), active=np.array([True, True, False]))
    assert r.hit0.tolist() == [True, False, False] and r.value0.tolist() == [1, 0, 0]
    assert r.look0.tolist() == [True, True, False]
    assert int(c.current[2]) == 1                      # the inactive lane was left alone


def test_strength_sets_the_key():
    # bf16 1.0 = 0x3F80; 1.0 + 2^-7 = 0x3F81; 1.0 + 2^-6 = 0x3F82; 1.5 = 0x3FC0.
    x = np.array([0x3F80, 0x3F81, 0x3F82, 0x3FC0, 0xBF80], dtype=np.uint64)
    assert reuse_key(x, BF16, 1).tolist() == x.tolist()
    assert reuse_key(x, BF16, 2).tolist() == [0x1FC0, 0x1FC0, 0x1FC1, 0x1FE0, 0x5FC0]
    assert reuse_key(x, BF16, 3).tolist() == [0xFE0, 0xFE0, 0xFE0, 0xFF0, 0x2FE0]
    # man_bits + 1 = 8: sign and exponent only; larger values clamp to 8.
    for s in (8, 9, 31):
        assert reuse_key(x, BF16, s).tolist() == [0x7F, 0x7F, 0x7F, 0x7F, 0x17F]
    with pytest.raises(ValueError):
        reuse_key(x, BF16, 0)


@pytest.mark.parametrize("strength,hit", [(1, [False, False, False]), (2, [True, False, False]),
                                          (3, [True, True, False]), (8, [True, True, True]),
                                          (31, [True, True, True])])
def test_a_coarse_key_returns_a_nearby_product(strength, hit):
    c = cache(strength=strength)
    run(c, 0, 0x3F80, 1000)
    got = [run(c, 0, x, 0)[:2] for x in (0x3F81, 0x3F82, 0x3FC0)]
    assert [h for h, _ in got] == hit
    assert all(v == 1000 for h, v in got if h)


def test_strength_0_is_off():
    c = cache(strength=0)
    assert not c.enabled
    for _ in range(3):
        assert run(c, 0, 10, 100, 0, 10, 100) == (False, 0, False, 0, False)
    assert not c.valid.any() and int(c.current[0]) == -1


def test_products_may_depend_on_the_hits():
    c = cache()
    run(c, 0, 10, 100)
    seen = []

    def multiply(result):
        seen.append((result.hit0.tolist(), result.hit1.tolist()))
        return np.where(result.hit0, 0, 7), np.where(result.hit0, 300, 8)

    c.slot(np.array([0]), np.array([10], dtype=np.uint64), np.array([0]),
           np.array([30], dtype=np.uint64), products=multiply)
    assert seen == [([True], [False])]
    assert run(c, 0, 30, 0)[:2] == (True, 300)


def test_bad_geometry():
    for entries, ways in ((3, 1), (4, 3), (2, 4), (0, 1)):
        with pytest.raises(ValueError):
            ReuseCache(1, entries, ways, BF16, 1)
    assert ReuseCache.HIT == HIT == 3


@pytest.mark.parametrize("c0,c1,hit0,hit1,expected", [
    (HIGH, LOW, True, False, (HIT, HIGH)),       # the partner gets the high multiplier
    (LOW, HIGH, False, True, (HIGH, HIT)),
    (HIGH, LOW, False, True, (HIGH, HIT)),
    (HIGH, BYPASS, True, False, (HIT, BYPASS)),  # a zero partner still needs none
    (BYPASS, LOW, False, False, (BYPASS, LOW)),
    (LOW, HIGH, True, True, (HIT, HIT)),
])
def test_reuse_classes(c0, c1, hit0, hit1, expected):
    got = reuse_classes(np.array([c0]), np.array([c1]), np.array([hit0]), np.array([hit1]))
    assert (int(got[0][0]), int(got[1][0])) == expected
    # Without pair 1 its hit flag does not count.
    got = reuse_classes(np.array([LOW]), np.array([c1]), np.array([False]), np.array([True]),
                        pair1=np.array([False]))
    assert int(got[0][0]) == LOW
