"""A load beside a WGRAD (``hw.sequencer``'s side slot), in Amaranth's simulator: the same
results and counters as the two commands in order, in fewer cycles; a load is taken beside
nothing but a WGRAD."""

import numpy as np
import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.isa import Opcode
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles
from chrysalis.sim.golden import core_counts
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.verify.core_sim import CoreRunner

CONFIGS = {
    "2x2": PRESETS["tiny"],
    "4x4-tree": with_overrides(PRESETS["tiny"], {"core.rows": 4, "core.cols": 4,
                                                  "core.reduction": "tree"}),
}


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def _lines(matrix):
    return dict(sp_base=matrix.base, sp_lpc=matrix.lines_per_column)


def run_step(config, m, n, batch, beside, load_op="LOAD_COL"):
    """WGRAD (fused), with the next inputs (``LOAD_COL``) or gradients (``LOAD_ROW``)
    loaded into another place of the activation banks beside it or after it, then a
    FORWARD (BACKWARD) that reads what was loaded. Returns the updated weights, the
    FORWARD's (BACKWARD's) result, the per-command cycles and the counters."""
    R, C = config.core.rows, config.core.cols
    rng = np.random.default_rng(m * 100 + n * 10 + batch)
    w = _f32(rng.standard_normal((m, n)))
    x = _f32(np.maximum(rng.standard_normal((n, batch)), 0))
    x2 = _f32(np.maximum(rng.standard_normal((n, batch)), 0))
    dy = _f32(rng.standard_normal((m, batch)) * 0.5)
    dy2 = _f32(rng.standard_normal((m, batch)) * 0.5)
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    mats = {name: alloc.matrix(rows, batch, name)
            for name, rows in (("x", n), ("x2", n), ("dy", m), ("dy2", m), ("y", m),
                               ("dx", n))}
    mats["w"], mats["w_out"] = alloc.matrix(m, n, "W"), alloc.matrix(m, n, "W out")
    nt, mt = tiles(n, C), tiles(m, R)
    act_x, act_dy = 0, nt * batch
    act_next = act_dy + mt * batch          # the second place, after both
    core = CoreRunner(config)
    for name, values in (("w", w), ("x", x), ("x2", x2), ("dy", dy), ("dy2", dy2)):
        core.write(mats[name], values)
    core.command(op=Opcode.LOAD_W, m=m, n=n, **_lines(mats["w"]))
    core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act_x, **_lines(mats["x"]))
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act_dy, **_lines(mats["dy"]))
    core.command(op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=act_x, abase2=act_dy,
                 fused=1)
    if load_op == "LOAD_COL":
        core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act_next, beside=beside,
                     **_lines(mats["x2"]))
        core.command(op=Opcode.FORWARD, m=m, n=n, batch=batch, abase=act_next,
                     **_lines(mats["y"]))
        result = mats["y"]
    else:
        core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act_next, beside=beside,
                     **_lines(mats["dy2"]))
        core.command(op=Opcode.BACKWARD, m=m, n=n, batch=batch, abase=act_next,
                     **_lines(mats["dx"]))
        result = mats["dx"]
    core.command(op=Opcode.STORE_W, m=m, n=n, **_lines(mats["w_out"]))
    core.read(mats["w_out"])
    core.read(result)
    w_new, out = core.run()
    return dict(w=w_new, out=out, cycles=core.cycles, counters=core.counters,
                errors=core.errors, golden=(w, x, x2, dy, dy2))


@pytest.mark.parametrize("name,m,n,batch,load_op", [
    ("2x2", 5, 3, 4, "LOAD_COL"), ("4x4-tree", 7, 9, 3, "LOAD_ROW")])
def test_load_beside_wgrad_is_the_stream_in_order(name, m, n, batch, load_op):
    config = CONFIGS[name]
    num = cm.CoreNumerics.from_config(config)
    alone = run_step(config, m, n, batch, False, load_op)
    side = run_step(config, m, n, batch, True, load_op)
    w, x, x2, dy, dy2 = alone["golden"]
    w1 = cm.fused_weight_gradient(num, w, dy, x)
    want = cm.forward(num, w1, x2) if load_op == "LOAD_COL" else cm.backward_dx(num, w1, dy2)
    for run in (alone, side):
        assert np.array_equal(run["w"], w1)
        assert np.array_equal(run["out"], want)
        assert not any(run["errors"])
    # Every counter, busy cycles included (summed over the commands), as in order.
    assert side["counters"] == alone["counters"]
    # WGRAD, then the load: the pair takes the WGRAD's cycles, or the load's from the
    # WGRAD's second cycle, whichever ends later (it is taken in the cycle after the WGRAD).
    wgrad, load = alone["cycles"][3], alone["cycles"][4]
    assert side["cycles"][3] == max(wgrad, 1 + load)
    assert side["cycles"][4] is None
    assert side["cycles"][5:] == alone["cycles"][5:]
    cmd = dict(op="WGRAD", m=m, n=n, batch=batch, fused=1)
    assert wgrad == core_counts.predict(config, cmd)["cycles"]
    assert side["counters"]["busy_cycles"] == sum(c - 1 for c in alone["cycles"])


def test_a_load_is_not_taken_beside_anything_but_a_wgrad():
    """``side_ready`` is low while a FORWARD runs: a load presented with ``side_valid``
    then waits for the core to be idle (CoreRunner asserts it never gets the side slot)."""
    config = CONFIGS["2x2"]
    alloc = Allocator(config.core.scratchpad_words, bank_count(2, 2))
    x, y = alloc.matrix(3, 2, "X"), alloc.matrix(3, 2, "Y")
    core = CoreRunner(config)
    core.command(op=Opcode.FORWARD, m=3, n=3, batch=2, abase=0, **_lines(y))
    core.command(op=Opcode.LOAD_COL, n=3, batch=2, abase=8, beside=True, **_lines(x))
    with pytest.raises(AssertionError, match="nothing to run beside"):
        core.run()
