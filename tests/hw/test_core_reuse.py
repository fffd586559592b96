"""The core with reuse caches (``docs/reuse.md``) against the golden machine, bit for bit.

Each case loads a layer (W, X, dY) into a core with a reuse cache, runs FORWARD, BACKWARD and
WGRAD at a reuse strength, and compares the whole scratchpad, every weight bank and every
counter (the product classes and the reuse lookups, hits and multiplies avoided included) of
the RTL core in Amaranth's simulator with ``sim.golden.machine.Machine``
(``tests/sim/golden/test_machine.py``'s ``ref`` and ``rtl``). The data come from a few values with
jitter in the low mantissa bits, so that a coarse key hits on values a fine key tells apart.
"""

import dataclasses

import numpy as np
import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.sim.golden import numerics as nx
from chrysalis.gen.spec.layout import Matrix, bank_count, tiles
from chrysalis.sim.golden.machine import Machine
from tests.sim.golden.test_machine import _compare_sequence, _random_sequence, _initial_scratchpad

TINY = PRESETS["tiny"]
LEVELS = (0.5, 1.0, -1.5, 3.0)


def config_of(policy, rows, cols, entries, ways, scope="pe"):
    extra = {"core.rows": rows, "core.cols": cols, "pe.reuse_entries": entries,
             "pe.reuse_ways": ways, "pe.reuse_scope": scope}
    if policy != "single":
        extra.update({"mac.dual": policy, "mac.latency": 3, "pe.acc_regs": 16})
    return with_overrides(TINY, extra)


@dataclasses.dataclass
class Case:
    policy: str
    rows: int
    cols: int
    m: int
    n: int
    batch: int
    entries: int
    ways: int
    strength: int
    seed: int = 0
    scope: str = "pe"

    @property
    def config(self):
        return config_of(self.policy, self.rows, self.cols, self.entries, self.ways,
                         self.scope)


def _words(rng, shape):
    values = rng.choice(LEVELS, shape) * (1 + rng.integers(0, 8, shape) / 128)
    values[rng.random(shape) < 0.06] = 0.0
    return nx.from_float32(values.astype(np.float32))


def layer(case):
    """The scratchpad and the commands of one layer's three phases."""
    config, m, n, batch = case.config, case.m, case.n, case.batch
    rng = np.random.default_rng(case.seed)
    S = bank_count(case.rows, case.cols)
    machine = Machine(config)
    mats, base = {}, 0
    for key, (rows, cols) in dict(w=(m, n), x=(n, batch), y=(m, batch), dy=(m, batch),
                                  dx=(n, batch)).items():
        mats[key] = Matrix(base, rows, cols, S)
        base += mats[key].lines
    for key, shape in dict(w=(m, n), x=(n, batch), dy=(m, batch)).items():
        machine.write_matrix(mats[key].base, mats[key].lines_per_column, _words(rng, shape))
    nt = tiles(n, case.cols)
    wb, xa, da = 1, 2, 3 + nt * batch

    def lines(key):
        return {"sp_base": mats[key].base, "sp_lpc": mats[key].lines_per_column}

    lr = int(nx.from_float32(np.float32([0.125]))[0]) ^ 1 << 31
    commands = [dict(op="LOAD_W", m=m, n=n, wbase=wb, **lines("w")),
                dict(op="LOAD_COL", n=n, batch=batch, abase=xa, **lines("x")),
                dict(op="LOAD_ROW", m=m, batch=batch, abase=da, **lines("dy")),
                dict(op="FORWARD", m=m, n=n, batch=batch, wbase=wb, abase=xa, **lines("y")),
                dict(op="BACKWARD", m=m, n=n, batch=batch, wbase=wb, abase=da, **lines("dx")),
                dict(op="WGRAD", m=m, n=n, batch=batch, wbase=wb, abase=xa, abase2=da,
                     scalar=lr)]
    return machine.scratchpad.copy(), commands


# Every policy and both scopes run in the default suite; the second case of a policy and
# scope (about 8 s each in Amaranth's simulator) runs with ``slow``.
_SLOW = pytest.mark.slow
CASES = [
    Case("single", 2, 2, 5, 5, 3, 8, 2, 8),
    pytest.param(Case("single", 2, 3, 7, 6, 3, 4, 1, 4, seed=1), marks=_SLOW),
    Case("value", 2, 2, 5, 5, 3, 8, 2, 8, seed=2),
    pytest.param(Case("value", 2, 2, 3, 2, 16, 4, 2, 6, seed=3), marks=_SLOW),
    Case("static", 2, 3, 9, 4, 6, 2, 2, 20, seed=4),
    Case("random", 2, 2, 4, 1, 13, 16, 4, 3, seed=5),
    Case("dual-full", 2, 2, 7, 6, 3, 8, 8, 1, seed=6),
    # Tags shared along the lines of PEs: columns in FORWARD and WGRAD, rows in BACKWARD
    # (non-square arrays, so that some tag units serve only one direction).
    Case("single", 2, 3, 7, 6, 3, 8, 2, 6, seed=7, scope="row"),
    pytest.param(Case("value", 3, 2, 5, 7, 4, 4, 2, 5, seed=8, scope="row"), marks=_SLOW),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: (f"{c.policy}-{c.rows}x{c.cols}-"
                                                        f"{c.m}x{c.n}x{c.batch}-"
                                                        f"e{c.entries}w{c.ways}-s{c.strength}"
                                                        f"-{c.scope}"))
def test_core_with_reuse_equals_golden_machine(case):
    scratchpad, commands = layer(case)
    counters = _compare_sequence(case.config, scratchpad, commands, products=True,
                                 reuse_strength=case.strength)
    # The case exercises the cache: hits of non-zero products, and misses.
    assert 0 < counters["multiplies_avoided"] <= counters["reuse_hits"]
    assert counters["reuse_hits"] < counters["reuse_lookups"]


@pytest.mark.parametrize("strength", [0, 8])
def test_reuse_on_random_command_sequences(strength):
    """Random command sequences (the machine tests' generator) on a core with a cache."""
    config = config_of("value", 2, 2, 8, 2)
    rng = np.random.default_rng(40 + strength)
    counters = _compare_sequence(config, _initial_scratchpad(rng, config),
                                 _random_sequence(rng, config, 5), products=True,
                                 reuse_strength=strength)
    assert (counters["reuse_lookups"] > 0) == (strength > 0)
