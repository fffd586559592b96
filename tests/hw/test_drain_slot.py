"""A WGRAD beside the last drain of a FORWARD or BACKWARD (``hw.sequencer``'s drain slot), in
Amaranth's simulator: the same results and counters as the two commands in order, in fewer
cycles, taken from the cycle ``sim.golden.core_counts.handover`` gives."""

import numpy as np
import pytest

from chrysalis.gen.spec.isa import Opcode
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles
from chrysalis.sim.golden import core_counts
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.verify.core_sim import CoreRunner
from tests.hw.test_side_load import CONFIGS, _f32, _lines


def run_pair(config, first, m, n, batch, beside, relu=False):
    """A FORWARD or BACKWARD (``first``; BACKWARD with the ReLU mask if ``relu``), then a
    fused WGRAD of the same layer beside its last drain or after it. Returns the updated
    weights, the first command's result, the per-command cycles, the counters and the
    golden inputs."""
    R, C = config.core.rows, config.core.cols
    rng = np.random.default_rng(m * 100 + n * 10 + batch)
    w = _f32(rng.standard_normal((m, n)))
    x = _f32(np.maximum(rng.standard_normal((n, batch)), 0))
    dy = _f32(rng.standard_normal((m, batch)) * 0.5)
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    mats = {name: alloc.matrix(rows, batch, name)
            for name, rows in (("x", n), ("dy", m), ("out", m if first == "FORWARD" else n))}
    mats["w"], mats["w_out"] = alloc.matrix(m, n, "W"), alloc.matrix(m, n, "W out")
    act_x, act_dy = 0, tiles(n, C) * batch
    core = CoreRunner(config)
    for name, values in (("w", w), ("x", x), ("dy", dy)):
        core.write(mats[name], values)
    core.command(op=Opcode.LOAD_W, m=m, n=n, **_lines(mats["w"]))
    core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act_x, **_lines(mats["x"]))
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act_dy, **_lines(mats["dy"]))
    if first == "FORWARD":
        core.command(op=Opcode.FORWARD, m=m, n=n, batch=batch, abase=act_x, flag=1,
                     **_lines(mats["out"]))
    else:
        # The ReLU mask is X itself: the activations of the layer below.
        core.command(op=Opcode.BACKWARD, m=m, n=n, batch=batch, abase=act_dy, flag=int(relu),
                     sp2_base=mats["x"].base, sp2_lpc=mats["x"].lines_per_column,
                     **_lines(mats["out"]))
    core.command(op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=act_x, abase2=act_dy,
                 fused=1, beside=beside)
    core.command(op=Opcode.STORE_W, m=m, n=n, **_lines(mats["w_out"]))
    core.read(mats["w_out"])
    core.read(mats["out"])
    w_new, out = core.run()
    return dict(w=w_new, out=out, cycles=core.cycles, counters=core.counters,
                errors=core.errors, golden=(w, x, dy))


def _want(config, first, relu, w, x, dy):
    num = cm.CoreNumerics.from_config(config)
    if first == "FORWARD":
        out = cm.relu(num, cm.forward(num, w, x))
    else:
        out = cm.backward_dx(num, w, dy)
        if relu:
            out = cm.relu_mask(num, out, x)
    return cm.fused_weight_gradient(num, w, dy, x), out


@pytest.mark.parametrize("name,first,m,n,batch,relu", [
    ("2x2", "BACKWARD", 5, 3, 4, True), ("2x2", "FORWARD", 9, 7, 2, False),
    ("4x4-tree", "BACKWARD", 7, 9, 3, False), ("4x4-tree", "FORWARD", 6, 5, 1, False)])
def test_wgrad_beside_a_drain_is_the_stream_in_order(name, first, m, n, batch, relu):
    config = CONFIGS[name]
    alone = run_pair(config, first, m, n, batch, False, relu)
    pair = run_pair(config, first, m, n, batch, True, relu)
    w1, out = _want(config, first, relu, *alone["golden"])
    for run in (alone, pair):
        assert np.array_equal(run["w"], w1)
        assert np.array_equal(run["out"], out)
        assert not any(run["errors"])
    # Every counter, busy cycles included (summed over the commands), as in order.
    assert pair["counters"] == alone["counters"]
    # The WGRAD is taken in the hand-over cycle, and the drain ends under it or after it.
    cmd = dict(op=first, m=m, n=n, batch=batch)
    wgrad = dict(op="WGRAD", m=m, n=n, batch=batch, fused=1)
    first_cycles, wgrad_cycles = alone["cycles"][3], alone["cycles"][4]
    assert first_cycles == core_counts.predict(config, cmd)["cycles"]
    assert wgrad_cycles == core_counts.predict(config, wgrad)["cycles"]
    handover = core_counts.handover(config, cmd)
    assert pair["cycles"][3] == max(first_cycles, handover + wgrad_cycles)
    assert pair["cycles"][3] < first_cycles + wgrad_cycles
    assert pair["cycles"][4] is None
    assert pair["cycles"][5:] == alone["cycles"][5:]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("op", ["FORWARD", "BACKWARD"])
def test_handover_closed_form_is_the_trace(name, op):
    config = CONFIGS[name]
    for m, n, batch in [(1, 1, 1), (5, 3, 4), (9, 7, 2), (16, 16, 1), (3, 17, 5), (33, 2, 8)]:
        cmd = dict(op=op, m=m, n=n, batch=batch)
        assert core_counts.handover(config, cmd) == core_counts.trace_handover(config, cmd)
    assert core_counts.handover(config, dict(op="WGRAD", m=2, n=2, batch=2)) is None
    assert core_counts.handover(config, dict(op=op, m=0, n=2, batch=2)) is None


def test_a_wgrad_is_not_taken_beside_a_load():
    """``drain_ready`` is low while a load runs: a WGRAD presented with ``drain_valid``
    waits for the core to be idle (CoreRunner asserts it never gets the slot)."""
    config = CONFIGS["2x2"]
    alloc = Allocator(config.core.scratchpad_words, bank_count(2, 2))
    x = alloc.matrix(3, 2, "X")
    core = CoreRunner(config)
    core.command(op=Opcode.LOAD_COL, n=3, batch=2, abase=0, **_lines(x))
    core.command(op=Opcode.WGRAD, m=3, n=3, batch=2, abase=0, abase2=8, fused=1, beside=True)
    with pytest.raises(AssertionError, match="nothing to run beside"):
        core.run()
