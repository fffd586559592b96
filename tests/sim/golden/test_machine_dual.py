"""The golden machine (``sim.golden.machine``) with a dual-precision PE: its FORWARD, BACKWARD and
WGRAD equal the matrix-level dual golden model (``sim.golden.dual_model``) bit for bit, product
counters included, for every policy.

Both models count the same products: every product of a MAC slot in every PE, padding
included (``R * C * outputs * steps`` per command), by the multiplier that made it.
``sim.golden.dual_model`` counts per phase, the machine per command; one command per phase makes
them the same numbers. The padding is +0 here (the loads write it), as ``sim.golden.dual_model``
assumes, so its padding products bypass in both.
"""

import dataclasses

import numpy as np
import pytest

from chrysalis.gen.spec.config import DUAL_POLICIES, PRESETS
from chrysalis.gen.spec.isa import ErrorCode
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import dual_model as dm
from chrysalis.sim.golden import numerics as nx
from chrysalis.gen.spec.layout import Matrix, bank_count, tiles
from chrysalis.sim.golden.machine import Machine

TINY = PRESETS["tiny"]
PRODUCTS = ("high", "low", "bypass")
SHAPES = [(2, 2, 1), (5, 5, 3), (7, 6, 3), (3, 7, 5), (9, 7, 5), (1, 3, 2)]


def dual_config(policy, rows=2, cols=2, reduction="bus"):
    """The tiny preset with ``mac.dual = policy``; latency 3 and 16 accumulators meet the
    dual rule (``acc_regs >= 4 * (latency + 1)``, ``acc_regs // 2`` even)."""
    return dataclasses.replace(
        TINY, mac=dataclasses.replace(TINY.mac, dual=policy, latency=3),
        pe=dataclasses.replace(TINY.pe, acc_regs=16),
        core=dataclasses.replace(TINY.core, rows=rows, cols=cols, reduction=reduction))


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def _words(rng, shape, zeros=0.2):
    """fp32 words with full mantissas (a low product rounds) and some zeros of both signs."""
    values = rng.standard_normal(shape) * np.exp2(rng.integers(-4, 5, shape))
    pick = rng.random(shape)
    values[pick < zeros / 2] = 0.0
    values[pick > 1 - zeros / 2] = -0.0
    return _f32(values)


def _layer(config, m, n, batch, seed, dual_seed=0, momentum=False):
    """Run a layer's FORWARD, BACKWARD and WGRAD on a machine whose banks hold garbage.

    Returns the data ``(w, x, dy, lr, mu)``, the results ``{"y", "dx", "w", "v"}`` and, per
    command, the growth of the machine's counters.
    """
    rng = np.random.default_rng(seed)
    R, C = config.core.rows, config.core.cols
    S = bank_count(R, C)
    w, x, dy = _words(rng, (m, n)), _words(rng, (n, batch)), _words(rng, (m, batch))
    lr, mu = _f32([0.125])[0], _f32([0.75])[0]
    mats, base = {}, 0
    for key, (rows, cols) in dict(w=(m, n), x=(n, batch), y=(m, batch), dy=(m, batch),
                                  dx=(n, batch), v=(m, n)).items():
        mats[key] = Matrix(base, rows, cols, S)
        base += mats[key].lines
    mt, nt = tiles(m, R), tiles(n, C)
    wb, vb, xa, da = 1, 1 + mt * nt, 2, 2 + nt * batch

    machine = Machine(config)
    machine.dual_seed = dual_seed
    garbage = np.random.default_rng(seed + 1)
    machine.weight[:] = _words(garbage, machine.weight.shape)
    machine.act[:] = _words(garbage, machine.act.shape)
    for key, values in dict(w=w, x=x, dy=dy, v=cm.zeros((m, n))).items():
        machine.write_matrix(mats[key].base, mats[key].lines_per_column, values)

    def lines(key, prefix="sp"):
        return {f"{prefix}_base": mats[key].base,
                f"{prefix}_lpc": mats[key].lines_per_column}

    growth = {}

    def run(op, **fields):
        before = dict(machine.counters)
        assert machine.execute(dict(op=op, **fields)) == ErrorCode.NONE
        growth[op] = {k: machine.counters[k] - before[k] for k in before}

    def read(key):
        return machine.read_matrix(mats[key].base, mats[key].lines_per_column,
                                   mats[key].n, mats[key].batch)

    run("LOAD_W", m=m, n=n, wbase=wb, **lines("w"))
    run("LOAD_W", m=m, n=n, wbase=vb, **lines("v"))
    run("LOAD_COL", n=n, batch=batch, abase=xa, **lines("x"))
    run("LOAD_ROW", m=m, batch=batch, abase=da, **lines("dy"))
    run("FORWARD", m=m, n=n, batch=batch, wbase=wb, abase=xa, **lines("y"))
    run("BACKWARD", m=m, n=n, batch=batch, wbase=wb, abase=da, **lines("dx"))
    run("WGRAD", m=m, n=n, batch=batch, wbase=wb, abase=xa, abase2=da,
        scalar=int(lr) ^ 1 << 31, flag=int(momentum), wbase2=vb, scalar2=int(mu))
    results = dict(y=read("y"), dx=read("dx"), w=machine.read_weights(wb, m, n),
                   v=machine.read_weights(vb, m, n))
    return (w, x, dy, lr, mu), results, growth


def _golden(config, data, dual_seed=0, momentum=False):
    """``sim.golden.dual_model``'s results of :func:`_layer` and its counters per phase."""
    w, x, dy, lr, mu = data
    num, dual = dm.from_config(config)
    counters = dm.new_counters()
    y = dm.forward(num, dual, w, x, dual_seed, counters)
    dx = dm.backward_dx(num, dual, w, dy, dual_seed, counters)
    grad = dm.weight_gradient(num, dual, dy, x, dual_seed, counters)
    velocity = cm.zeros(w.shape) if momentum else None
    new_w, new_v = cm.update(num, w, grad, int(lr), velocity=velocity,
                             momentum_bits=int(mu) if momentum else None)
    return dict(y=y, dx=dx, w=new_w, v=new_v if momentum else cm.zeros(w.shape)), counters


def _assert_equal(got, expected, what):
    bad = np.argwhere(got != expected)
    assert not len(bad), (f"{what}: {len(bad)} words differ, first at {bad[0]}: machine "
                          f"{int(got[tuple(bad[0])]):#010x}, golden "
                          f"{int(expected[tuple(bad[0])]):#010x}")


PHASES = {"FORWARD": "forward", "BACKWARD": "backward", "WGRAD": "wgrad"}


@pytest.mark.parametrize("policy", DUAL_POLICIES)
@pytest.mark.parametrize("rows,cols,reduction", [(2, 2, "bus"), (2, 3, "bus"), (3, 2, "tree")])
@pytest.mark.parametrize("m,n,batch", SHAPES)
def test_machine_equals_dual_model(policy, rows, cols, reduction, m, n, batch):
    config = dual_config(policy, rows, cols, reduction)
    momentum = (m + n) % 2 == 1
    seed = m * 100 + n * 10 + batch
    data, results, growth = _layer(config, m, n, batch, seed, dual_seed=0x5A3C,
                                   momentum=momentum)
    expected, counters = _golden(config, data, dual_seed=0x5A3C, momentum=momentum)
    for key in results:
        _assert_equal(results[key], expected[key], key)
    mt, nt = tiles(m, rows), tiles(n, cols)
    steps = {"FORWARD": nt, "BACKWARD": mt, "WGRAD": batch}
    for op, phase in PHASES.items():
        got = {key: growth[op][f"{key}_products"] for key in PRODUCTS}
        assert got == {key: counters[phase][key] for key in PRODUCTS}, op
        # Every product of the MAC slots, padding included; no UPDATE is counted.
        outputs = {"FORWARD": mt * batch, "BACKWARD": nt * batch, "WGRAD": mt * nt}[op]
        assert sum(got.values()) == rows * cols * outputs * steps[op]
        # A dual slot carries two outputs, the unpaired last one alone.
        streams = 1 if policy == "single" else 2
        assert growth[op]["mac_slots"] == -(-outputs // streams) * steps[op]
        if policy in ("single", "dual-full"):
            assert got["low"] == 0
        elif m * n * batch >= 100:
            assert got["low"] > 0, op
    for op in ("LOAD_W", "LOAD_COL", "LOAD_ROW"):
        assert all(growth[op][f"{key}_products"] == 0 for key in PRODUCTS)


@pytest.mark.parametrize("rows,cols,reduction", [(2, 2, "bus"), (2, 3, "tree"), (3, 2, "bus")])
@pytest.mark.parametrize("m,n,batch", SHAPES)
def test_dual_full_is_single_but_for_slots_and_cycles(rows, cols, reduction, m, n, batch):
    """Two exact multipliers change no value and no product class, only the schedule."""
    single = _layer(dual_config("single", rows, cols, reduction), m, n, batch, 7,
                    momentum=True)
    full = _layer(dual_config("dual-full", rows, cols, reduction), m, n, batch, 7,
                  momentum=True)
    for key in single[1]:
        _assert_equal(full[1][key], single[1][key], key)
    slots = ("mac_slots", "core_cycles", "stall_cycles")
    for op in PHASES:
        s, f = single[2][op], full[2][op]
        assert {k: v for k, v in s.items() if k not in slots} == \
            {k: v for k, v in f.items() if k not in slots}, op
        # A single output (WGRAD of one tile) has no partner: as many slots, but the
        # groups' MAC passes are half as long.
        assert f["mac_slots"] <= s["mac_slots"]
        assert f["core_cycles"] < s["core_cycles"]


def test_single_counts_every_product_of_the_preset():
    """The product counters count for the single policy too: high or bypass, one product
    per slot and PE (the preset as it is, not only the dual test configs)."""
    m, n, batch = 5, 3, 3
    data, results, growth = _layer(TINY, m, n, batch, 11)
    R, C = TINY.core.rows, TINY.core.cols
    for op in PHASES:
        g = growth[op]
        assert g["low_products"] == 0 and g["bypass_products"] > 0
        assert g["high_products"] + g["bypass_products"] == R * C * g["mac_slots"]


def test_random_policy_follows_the_seed():
    config = dual_config("random", 2, 3)
    m, n, batch = 7, 8, 5
    runs = {seed: _layer(config, m, n, batch, 3, dual_seed=seed) for seed in (0, 0xBEEF)}
    for seed, (data, results, growth) in runs.items():
        expected, _ = _golden(config, data, dual_seed=seed)
        for key in ("y", "dx", "w"):
            _assert_equal(results[key], expected[key], f"{key}, seed {seed:#x}")
    # The same data: another seed gives the high-precision multiplier to other products.
    a, b = runs[0][1], runs[0xBEEF][1]
    assert not all(np.array_equal(a[key], b[key]) for key in ("y", "dx", "w"))
    again = _layer(config, m, n, batch, 3, dual_seed=0xBEEF)
    for key in ("y", "dx", "w"):
        _assert_equal(again[1][key], b[key], key)


def test_layer_on_a_dual_machine_is_fast():
    """A 64 x 32 layer with batch 8 (16 k products per phase) takes some 20 ms."""
    import time
    config = dual_config("value", 2, 2)
    config = dataclasses.replace(config, pe=dataclasses.replace(
        config.pe, weight_words=2048, act_words=512),
        core=dataclasses.replace(config.core, scratchpad_words=8192))
    start = time.perf_counter()
    _layer(config, 64, 32, 8, 1)
    assert time.perf_counter() - start < 2.0
