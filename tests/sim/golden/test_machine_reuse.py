"""The golden machine (``sim.golden.machine``) with a reuse cache (``docs/reuse.md``).

* at strength 1 (whole-operand keys) every hit is exact: the results equal a machine without
  a cache for ``single`` and ``dual-full``;
* at any strength the machine equals :func:`ref`, a plain per-PE, per-slot loop over the
  spec (its own cache, its own slot order), results and counters;
* dual ``value``: a hit is ``HIT`` and its partner gets the high-precision multiplier.
"""

import dataclasses
import time

import numpy as np
import pytest

from chrysalis.gen.spec.config import PRESETS, get_preset, with_overrides
from chrysalis.gen.spec.formats import FP32, product_format
from chrysalis.gen.spec.isa import ErrorCode
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.dual import BYPASS, HIGH, LOW, DualPath, random_bits
from chrysalis.gen.spec.layout import Matrix, bank_count, tiles
from chrysalis.sim.golden.machine import Machine

TINY = PRESETS["tiny"]
SHAPES = [(2, 2, 1), (5, 5, 3), (7, 6, 3), (3, 7, 5), (1, 3, 2), (9, 4, 6)]
REUSE = ("reuse_lookups", "reuse_hits", "multiplies_avoided")
CLASSES = ("high_products", "low_products", "bypass_products")


def config_of(policy="single", rows=2, cols=2, entries=8, ways=2):
    """The tiny preset with a reuse cache; a dual policy gets latency 3 and 16
    accumulators (4 pairs a step)."""
    mac = dataclasses.replace(TINY.mac, dual=policy, latency=2 if policy == "single" else 3)
    pe = dataclasses.replace(TINY.pe, acc_regs=8 if policy == "single" else 16,
                             reuse_entries=entries, reuse_ways=ways if entries else 1)
    return dataclasses.replace(TINY, mac=mac, pe=pe, core=dataclasses.replace(
        TINY.core, rows=rows, cols=cols))


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def _words(rng, shape, levels=None, jitter=True):
    """fp32 words: random with some signed zeros, or (``levels``) a few values, each
    perturbed (``jitter``) in its low mantissa bits (a coarse key merges them, a full one
    does not)."""
    if levels is None:
        values = rng.standard_normal(shape) * np.exp2(rng.integers(-3, 4, shape))
    else:
        values = rng.choice(levels, shape) * (1 + jitter * rng.integers(0, 8, shape) / 128)
    pick = rng.random(shape)
    values[pick < 0.08] = 0.0
    values[pick > 0.92] = -0.0
    return _f32(values)


@dataclasses.dataclass
class Case:
    config: object
    m: int
    n: int
    batch: int
    seed: int
    strength: int
    levels: tuple = None
    jitter: bool = True
    dual_seed: int = 0x1234


def _setup(case):
    """A machine with garbage banks, the layer's data loaded (W, X, dY), and the commands
    of FORWARD, BACKWARD and WGRAD."""
    config, m, n, batch = case.config, case.m, case.n, case.batch
    rng = np.random.default_rng(case.seed)
    R, C = config.core.rows, config.core.cols
    S = bank_count(R, C)
    w = _words(rng, (m, n), case.levels, case.jitter)
    x = _words(rng, (n, batch), case.levels, case.jitter)
    dy = _words(rng, (m, batch), case.levels, case.jitter)
    mats, base = {}, 0
    for key, (rows, cols) in dict(w=(m, n), x=(n, batch), y=(m, batch), dy=(m, batch),
                                  dx=(n, batch)).items():
        mats[key] = Matrix(base, rows, cols, S)
        base += mats[key].lines
    mt, nt = tiles(m, R), tiles(n, C)
    wb, xa, da = 1, 2, 3 + nt * batch
    machine = Machine(config)
    machine.dual_seed = case.dual_seed
    machine.reuse_strength = case.strength
    garbage = np.random.default_rng(case.seed + 1)
    machine.weight[:] = _words(garbage, machine.weight.shape)
    machine.act[:] = _words(garbage, machine.act.shape)
    for key, values in dict(w=w, x=x, dy=dy).items():
        machine.write_matrix(mats[key].base, mats[key].lines_per_column, values)

    def lines(key):
        return {"sp_base": mats[key].base, "sp_lpc": mats[key].lines_per_column}

    for command in (dict(op="LOAD_W", m=m, n=n, wbase=wb, **lines("w")),
                    dict(op="LOAD_COL", n=n, batch=batch, abase=xa, **lines("x")),
                    dict(op="LOAD_ROW", m=m, batch=batch, abase=da, **lines("dy"))):
        assert machine.execute(command) == ErrorCode.NONE
    lr = int(_f32([0.125])[0]) ^ 1 << 31
    commands = [dict(op="FORWARD", m=m, n=n, batch=batch, wbase=wb, abase=xa, **lines("y")),
                dict(op="BACKWARD", m=m, n=n, batch=batch, wbase=wb, abase=da, **lines("dx")),
                dict(op="WGRAD", m=m, n=n, batch=batch, wbase=wb, abase=xa, abase2=da,
                     scalar=lr)]
    read = {"FORWARD": lambda: machine.read_matrix(*lines("y").values(), m, batch),
            "BACKWARD": lambda: machine.read_matrix(*lines("dx").values(), n, batch),
            "WGRAD": lambda: machine.weight.copy()}
    return machine, commands, read


def machine_run(case):
    """The machine's results and counter growth per command."""
    machine, commands, read = _setup(case)
    out = {}
    for command in commands:
        before = dict(machine.counters)
        assert machine.execute(command) == ErrorCode.NONE
        grown = {k: machine.counters[k] - before[k] for k in REUSE + CLASSES
                 if k in machine.counters}
        out[command["op"]] = (read[command["op"]](), grown)
    return out


# --- the reference: one PE, one slot at a time ------------------------------------------------

class RefCache:
    """One PE's cache, straight from docs/reuse.md."""

    def __init__(self, entries, ways, man_bits, strength):
        self.sets, self.ways = entries // ways, ways
        self.shift = min(strength, man_bits + 1) - 1
        self.current = None
        self.clear()

    def clear(self):
        self.entries = [[None] * self.ways for _ in range(self.sets)]   # (tag, product)
        self.pointer = [0] * self.sets

    def where(self, operand):
        key = operand >> self.shift
        return key, key % self.sets, key // self.sets

    def lookup(self, operand):
        _, index, tag = self.where(operand)
        for entry in self.entries[index]:
            if entry is not None and entry[0] == tag:
                return entry[1]
        return None

    def insert(self, operand, product):
        _, index, tag = self.where(operand)
        self.entries[index][self.pointer[index]] = (tag, product)
        self.pointer[index] = (self.pointer[index] + 1) % self.ways


def ref(case):
    """The results and counters of FORWARD, BACKWARD and WGRAD, PE by PE and slot by slot."""
    machine, commands, _ = _setup(case)        # the banks as the commands find them
    config = case.config
    R, C = config.core.rows, config.core.cols
    op_fmt = config.mac.operand
    pf = product_format(op_fmt)
    num = cm.CoreNumerics.from_config(config)
    path = DualPath.from_config(config)
    dual = config.mac.dual != "single"
    G = config.pe.acc_regs // 2
    weight, act = machine.weight.copy(), machine.act.copy()

    def q(word):
        return int(nx.fconvert(np.array([word], dtype=np.uint64), FP32, op_fmt)[0])

    def zero(x):
        return (x >> op_fmt.man_bits) & ((1 << op_fmt.exp_bits) - 1) == 0

    out = {}
    for command in commands:
        op, m, n, B = command["op"], case.m, case.n, case.batch
        mt, nt = tiles(m, R), tiles(n, C)
        P1, P2, steps = dict(FORWARD=(mt, B, nt), BACKWARD=(nt, B, mt),
                             WGRAD=(mt, nt, B))[op]
        outputs = P1 * P2

        def operands(r, c, o, s):
            """(stationary address, stationary operand, streaming operand) of output o."""
            p1, p2 = divmod(o, P2)
            if op == "FORWARD":
                addr = command["wbase"] + p1 * nt + s
                return addr, q(weight[r, c, addr]), q(act[r, c, command["abase"] + s * B + p2])
            if op == "BACKWARD":
                addr = command["wbase"] + s * nt + p1
                return addr, q(weight[r, c, addr]), q(act[r, c, command["abase"] + s * B + p2])
            addr = command["abase2"] + p1 * B + s
            return addr, q(act[r, c, addr]), q(act[r, c, command["abase"] + p2 * B + s])

        counts = dict.fromkeys(REUSE + CLASSES, 0)
        acc = np.zeros((R, C, outputs), dtype=np.uint64)
        for r in range(R):
            for c in range(C):
                cache = RefCache(config.pe.reuse_entries, config.pe.reuse_ways,
                                 op_fmt.man_bits, case.strength)
                for g in range(-(-outputs // G)):
                    for s in range(steps):
                        for k in range(0, G, 2 if dual else 1):
                            o = g * G + k
                            if o >= outputs:
                                continue
                            pairs = [o] + ([o + 1] if dual and o + 1 < outputs else [])
                            ops = [operands(r, c, x, s) for x in pairs]
                            if ops[0][0] != cache.current:
                                cache.clear()
                                cache.current = ops[0][0]
                            looks = [True] + [ops[-1][0] == cache.current] * (len(pairs) - 1)
                            found = [cache.lookup(b) if look else None
                                     for (_, _, b), look in zip(ops, looks)]
                            hit = [f is not None for f in found]
                            # The multiply path, then the hit rule.
                            a0, b0 = ops[0][1:]
                            a1, b1 = ops[1][1:] if len(pairs) == 2 else (0, 0)
                            cls = [int(v[0]) for v in path.classes(
                                np.array([a0], dtype=np.uint64), np.array([b0], np.uint64),
                                np.array([a1], np.uint64), np.array([b1], np.uint64),
                                np.array([len(pairs) == 2]),
                                random_bits(np.array([o]), np.array([s]), case.dual_seed))]
                            if len(pairs) == 2:        # a hit hands over the multiplier
                                for i in (0, 1):
                                    if hit[1 - i] and cls[i] == LOW:
                                        cls[i] = HIGH
                            products = []
                            for i, (addr, a, b) in enumerate(ops):
                                counts["reuse_lookups"] += looks[i]
                                if hit[i]:
                                    products.append(found[i])
                                    counts["reuse_hits"] += 1
                                    counts["multiplies_avoided"] += not (zero(a) or zero(b))
                                    continue
                                x = np.array([a], np.uint64), np.array([b], np.uint64)
                                p = int((path.low_product if cls[i] == LOW
                                         else path.high_product)(*x)[0])
                                products.append(p)
                                counts[CLASSES[[HIGH, LOW, BYPASS].index(cls[i])]] += 1
                            keys = [b >> cache.shift for _, _, b in ops]
                            for i, (_, _, b) in enumerate(ops):
                                if looks[i] and not hit[i] and not (i == 1 and keys[1] == keys[0]):
                                    cache.insert(b, products[i])
                            for x, p in zip(pairs, products):
                                acc[r, c, x] = nx.fadd(acc[r, c, x:x + 1], FP32,
                                                       np.array([p], np.uint64), pf, FP32)[0]
        acc = acc.reshape(R, C, P1, P2)
        if op == "FORWARD":
            total = cm.zeros((R, P1, B))
            for c in range(C):                              # the bus: PE 0 first, from +0
                total = num.add(total, acc[:, c])
            result = total.transpose(1, 0, 2).reshape(P1 * R, B)[:m]
        elif op == "BACKWARD":
            total = cm.zeros((C, P1, B))
            for r in range(R):
                total = num.add(total, acc[r])
            result = total.transpose(1, 0, 2).reshape(P1 * C, B)[:n]
        else:
            wslice = slice(command["wbase"], command["wbase"] + mt * nt)
            neg_lr = np.full(1, command["scalar"], dtype=np.uint64)
            weight[:, :, wslice] = nx.fmac(weight[:, :, wslice],
                                           num.q(acc.reshape(R, C, mt * nt)), num.q(neg_lr),
                                           op_fmt, FP32)
            result = weight.copy()
        out[op] = (result, counts)
    return out


def _assert_same(got, expected, counters=True):
    for op in ("FORWARD", "BACKWARD", "WGRAD"):
        g, e = got[op][0], expected[op][0]
        bad = np.argwhere(g != e)
        assert not len(bad), f"{op}: {len(bad)} words differ, first at {bad[0]}"
        if counters:
            assert got[op][1] == expected[op][1], op


# --- strength 1: exact --------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["single", "dual-full"])
@pytest.mark.parametrize("rows,cols", [(2, 2), (2, 3)])
@pytest.mark.parametrize("m,n,batch", SHAPES)
@pytest.mark.parametrize("entries,ways", [(8, 2), (4, 1), (16, 4)])
def test_strength_1_is_exact(policy, rows, cols, m, n, batch, entries, ways):
    seed = m * 100 + n * 10 + batch
    levels = (0.5, 1.0, -1.5) if (m + n) % 2 else None
    case = Case(config_of(policy, rows, cols, entries, ways), m, n, batch, seed, 1, levels,
                jitter=False)
    with_cache = machine_run(case)
    without = machine_run(dataclasses.replace(case, config=config_of(policy, rows, cols, 0)))
    _assert_same(with_cache, without, counters=False)
    if levels is not None and m * n * batch > 4:
        assert sum(counts["reuse_hits"] for _, counts in with_cache.values()) > 0
    for op, (_, counts) in with_cache.items():
        products = sum(counts[k] for k in CLASSES) + counts["reuse_hits"]
        assert products == sum(without[op][1][k] for k in CLASSES)
        assert counts["multiplies_avoided"] <= counts["reuse_hits"] <= counts["reuse_lookups"]
        assert all(v == 0 for k, v in without[op][1].items() if k in REUSE)


def test_strength_0_and_no_cache_change_nothing():
    case = Case(config_of("dual-full", 2, 3), 7, 6, 3, 5, 0, (0.5, 1.0))
    off = machine_run(case)
    none = machine_run(dataclasses.replace(case, config=config_of("dual-full", 2, 3, 0),
                                           strength=9))
    _assert_same(off, none)
    assert all(off[op][1][k] == 0 for op in off for k in REUSE)


# --- any strength: the reference ------------------------------------------------------------

LEVELS = (0.5, 1.0, -1.5, 3.0)


POLICIES = ["single", "dual-full", "value", "static", "random"]
GEOMETRIES = [(2, 2, 5, 5, 3, 8, 2), (2, 3, 7, 6, 3, 4, 1), (2, 2, 3, 7, 5, 16, 4),
              (2, 3, 9, 4, 6, 2, 2), (2, 2, 1, 3, 2, 8, 8),
              # nt = 1: FORWARD's stationary operand stays for whole groups (long episodes
              # that evict); WGRAD's pairs straddle two stationary addresses.
              (2, 2, 3, 2, 16, 4, 2), (2, 2, 4, 1, 13, 2, 1)]
STRENGTHS = [1, 4, 8, 20, 3, 6, 2]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("rows,cols,m,n,batch,entries,ways", GEOMETRIES)
def test_machine_equals_reference(policy, rows, cols, m, n, batch, entries, ways):
    # Every policy meets every strength over the geometries.
    strength = STRENGTHS[(POLICIES.index(policy) + GEOMETRIES.index(
        (rows, cols, m, n, batch, entries, ways))) % len(STRENGTHS)]
    case = Case(config_of(policy, rows, cols, entries, ways), m, n, batch,
                m * 100 + n * 10 + batch + strength, strength, LEVELS)
    _assert_same(machine_run(case), ref(case))


def test_coarse_keys_reuse_and_change_the_results():
    case = Case(config_of("single", 2, 3, 8, 2), 7, 6, 5, 11, 8, LEVELS)
    got = machine_run(case)
    exact = machine_run(dataclasses.replace(case, config=config_of("single", 2, 3, 0)))
    assert all(got[op][1]["reuse_hits"] > 0 for op in got)
    assert all(got[op][1]["multiplies_avoided"] > 0 for op in got)
    assert any(not np.array_equal(got[op][0], exact[op][0]) for op in got)
    _assert_same(got, ref(case))


# --- dual value: HIT and the partner's multiplier -------------------------------------------

def test_value_hit_hands_the_high_multiplier_to_the_partner():
    """FORWARD on one PE, W = [[1.0]] (stationary), X = [3.0, 1 + 7/128, 3.0, 1 + 5/128]
    (streaming): two slots of outputs (0, 1) and (2, 3). Slot 0 misses twice; pair 1 has the
    smaller exponent sum and gets the low multiplier. In slot 1 pair 0 hits (3.0 again), so
    pair 1, a miss, gets the high multiplier. (PE row 1 holds the padding row of W: its
    pairs bypass, and its hit in slot 1 avoids no multiply.)"""
    config = config_of("value", 2, 1, 8, 2)
    m = Machine(config)
    m.reuse_strength = 1
    xs = [3.0, 1.0 + 7 / 128, 3.0, 1.0 + 5 / 128]
    x = _f32(np.array(xs, dtype=np.float32)[None, :])             # (n=1, batch=4)
    m.write_matrix(0, 1, _f32([[1.0]]))
    m.write_matrix(1, 4, x)
    assert m.execute(dict(op="LOAD_W", m=1, n=1, wbase=0, sp_base=0, sp_lpc=1)) == 0
    assert m.execute(dict(op="LOAD_COL", n=1, batch=4, abase=0, sp_base=1, sp_lpc=4)) == 0
    before = dict(m.counters)
    assert m.execute(dict(op="FORWARD", m=1, n=1, batch=4, wbase=0, abase=0,
                          sp_base=20, sp_lpc=4)) == 0
    grown = {k: m.counters[k] - before[k] for k in REUSE + CLASSES}
    y = nx.to_float(m.read_matrix(20, 4, 1, 4), FP32)[0]
    # 1.0 + 7/128 rounded to 3 mantissa bits is 1.0 (slot 0, LOW); 1.0 + 5/128 is exact in
    # slot 1 (HIGH, as its partner hit).
    assert list(y) == [3.0, 1.0, 3.0, 1.0 + 5 / 128]
    assert grown == dict(reuse_lookups=8, reuse_hits=2, multiplies_avoided=1,
                         high_products=2, low_products=1, bypass_products=3)
    # Without the cache slot 1's pair 1 would be LOW.
    plain = Machine(config_of("value", 2, 1, 0))
    plain.weight[:], plain.act[:] = m.weight, m.act
    plain.execute(dict(op="FORWARD", m=1, n=1, batch=4, wbase=0, abase=0, sp_base=20,
                       sp_lpc=4))
    assert list(nx.to_float(plain.read_matrix(20, 4, 1, 4), FP32)[0]) == [3.0, 1.0, 3.0, 1.0]


def test_value_classes_include_hit():
    case = Case(config_of("value", 2, 2, 8, 2), 5, 6, 4, 3, 8, LEVELS)
    got = machine_run(case)
    assert all(got[op][1]["reuse_hits"] > 0 for op in got)
    _assert_same(got, ref(case))


# --- speed ----------------------------------------------------------------------------------

def test_a_reuse_step_of_a_64_32_10_mlp_is_fast():
    """A 64-32-10 training step (batch 8) on a 4x4 default core with a 16-entry cache."""
    from tests.sim.golden.test_machine import _mlp_machine, _mlp_step
    config = with_overrides(get_preset("default"), {"pe.reuse_entries": 16,
                                                    "pe.reuse_ways": 2})
    prog, case, machine = _mlp_machine(config, [64, 32, 10], 8)
    machine.reuse_strength = 4
    start = time.perf_counter()
    _mlp_step(prog, machine, case.inputs[0], case.labels[0])
    assert time.perf_counter() - start < 2.0
    assert machine.counters["reuse_hits"] > 0
