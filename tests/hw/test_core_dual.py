# amaranth: UnusedElaboratable=no
"""A dual-precision core, RTL == golden model bit for bit, in Amaranth's simulator.

``rtl(case)`` runs FORWARD, BACKWARD and WGRAD (with and without momentum) on the core
through ``CoreRunner`` and returns the results and the product counters; ``ref(case)``
computes them with ``sim.golden.dual_model`` (the pairing of ``docs/dual_precision.md``) and
``sim.golden.core_model`` (the update). Every policy, on shapes that are not multiples of the array,
with odd and even output counts.
"""

from dataclasses import dataclass

import numpy as np
import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.isa import Opcode
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import dual_model as dm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.verify.core_sim import CoreRunner
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles
from tests.params import covering

POLICIES = ("dual-full", "value", "static", "random")


def dual_config(policy, rows=2, cols=2, latency=3, acc_regs=16, **extra):
    return with_overrides(PRESETS["tiny"], {"mac.dual": policy, "mac.latency": latency,
                                            "pe.acc_regs": acc_regs, "core.rows": rows,
                                            "core.cols": cols, **extra})


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


@dataclass
class Case:
    config: object
    m: int
    n: int
    batch: int
    seed: int = 0          # the random policy's seed (DUAL_SEED)
    momentum: bool = False

    def operands(self):
        rng = np.random.default_rng(self.m * 1000 + self.n * 100 + self.batch * 10 + self.seed)
        w = _f32(rng.standard_normal((self.m, self.n)))
        x = _f32(np.maximum(rng.standard_normal((self.n, self.batch)), 0))
        dy = _f32(rng.standard_normal((self.m, self.batch)) * 0.5)
        v = _f32(rng.standard_normal((self.m, self.n)) * 0.1)
        return w, x, dy, v


LR = _f32([0.125])[0]
MU = _f32([0.875])[0]


def ref(case):
    """Results and product counters of the golden model."""
    num, dual = dm.from_config(case.config)
    w, x, dy, v = case.operands()
    counters = dm.new_counters()
    y = cm.relu(num, dm.forward(num, dual, w, x, case.seed, counters))
    dx = cm.relu_mask(num, dm.backward_dx(num, dual, w, dy, case.seed, counters), x)
    grad = dm.weight_gradient(num, dual, dy, x, case.seed, counters)
    if case.momentum:
        w_new, v_new = cm.update(num, w, grad, int(LR), velocity=v, momentum_bits=int(MU))
    else:
        w_new, v_new = cm.update(num, w, grad, int(LR))
    products = {key: sum(row[key] for row in counters.values())
                for key in ("high", "low", "bypass")}
    return dict(y=y, dx=dx, w=w_new, v=v_new if case.momentum else None, **products)


def rtl(case):
    """Results and product counters of the RTL core."""
    config, m, n, batch = case.config, case.m, case.n, case.batch
    R, C = config.core.rows, config.core.cols
    w, x, dy, v = case.operands()
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    mats = {name: alloc.matrix(*shape, name) for name, shape in
            dict(w=(m, n), v=(m, n), w_out=(m, n), v_out=(m, n), x=(n, batch), y=(m, batch),
                 dy=(m, batch), dx=(n, batch)).items()}
    mt, nt = tiles(m, R), tiles(n, C)
    x_at, dy_at = 0, nt * batch
    v_at = mt * nt
    lines = lambda mat: dict(sp_base=mat.base, sp_lpc=mat.lines_per_column)  # noqa: E731
    core = CoreRunner(config)
    core.dual_seed = case.seed
    for name, value in (("w", w), ("v", v), ("x", x), ("dy", dy)):
        core.write(mats[name], value)
    core.command(op=Opcode.LOAD_W, m=m, n=n, **lines(mats["w"]))
    core.command(op=Opcode.LOAD_W, m=m, n=n, wbase=v_at, **lines(mats["v"]))
    core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=x_at, **lines(mats["x"]))
    core.command(op=Opcode.FORWARD, m=m, n=n, batch=batch, abase=x_at, flag=1,
                 **lines(mats["y"]))
    core.read(mats["y"])
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=dy_at, **lines(mats["dy"]))
    core.command(op=Opcode.BACKWARD, m=m, n=n, batch=batch, abase=dy_at, flag=1,
                 sp2_base=mats["x"].base, sp2_lpc=mats["x"].lines_per_column,
                 **lines(mats["dx"]))
    core.read(mats["dx"])
    core.command(op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=x_at, abase2=dy_at,
                 scalar=int(LR) ^ (1 << 31), flag=int(case.momentum), scalar2=int(MU),
                 wbase2=v_at)
    core.command(op=Opcode.STORE_W, m=m, n=n, **lines(mats["w_out"]))
    core.read(mats["w_out"])
    core.command(op=Opcode.STORE_W, m=m, n=n, wbase=v_at, **lines(mats["v_out"]))
    core.read(mats["v_out"])
    y, dx, w_new, v_new = core.run()
    assert not any(core.errors)
    c = core.counters
    return dict(y=y, dx=dx, w=w_new, v=v_new if case.momentum else None,
                high=c["high_products"], low=c["low_products"],
                bypass=c["bypass_products"])


def _same(got, want):
    assert set(got) == set(want)
    for key in want:
        if isinstance(want[key], np.ndarray):
            assert np.array_equal(got[key], want[key]), key
        else:
            assert got[key] == want[key], key


CASES = [
    # Odd and even output counts in every phase; sizes not multiples of the array. Every
    # policy and every shape in the default suite (each policy with one shape), the whole
    # product `slow` (tests/params.py).
    pytest.param(Case(dual_config(policy), m, n, batch), marks=param.marks)
    for param in covering(POLICIES, [(3, 5, 2), (5, 3, 3), (4, 4, 1)])
    for policy, m, n, batch in [param.values]
] + [
    Case(dual_config("value", 2, 3), 7, 6, 3),
    Case(dual_config("value", 3, 2, **{"core.reduction": "tree"}), 5, 7, 2),
    Case(dual_config("random", 2, 3), 4, 5, 3, seed=0x1234),
    Case(dual_config("static"), 5, 6, 4, momentum=True),
    Case(dual_config("value"), 3, 3, 2, momentum=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: (
    f"{c.config.mac.dual}-{c.config.core.rows}x{c.config.core.cols}-{c.m}x{c.n}x{c.batch}"
    f"{'-mom' if c.momentum else ''}{'-seed' if c.seed else ''}"))
def test_dual_core_equals_golden(case):
    _same(rtl(case), ref(case))


def test_value_policy_uses_the_low_multiplier():
    """The case is not vacuous: products are split over all three classes, and the
    ``value`` results differ from ``dual-full``'s (some products were rounded)."""
    value = ref(Case(dual_config("value"), 5, 6, 4))
    full = ref(Case(dual_config("dual-full"), 5, 6, 4))
    assert value["low"] > 0 and value["high"] > 0 and value["bypass"] > 0
    assert full["low"] == 0
    assert not np.array_equal(value["y"], full["y"])
