# amaranth: UnusedElaboratable=no
"""Every core operation, RTL == golden model bit for bit, in Amaranth's simulator.

``rtl(case)`` writes the operands into the scratchpad through the host port, runs the
commands, reads the result back; ``ref(case)`` computes it with ``sim.golden.core_model``.
Shapes are random and include sizes that are not multiples of R or C.
"""

import dataclasses

import numpy as np
import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.isa import Opcode
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.verify.core_sim import CoreRunner
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles
from chrysalis.gen.spec.formats import FP32
from tests.params import covering

CONFIGS = {
    "2x2": PRESETS["tiny"],
    "2x3": with_overrides(PRESETS["tiny"], {"core.cols": 3, "mac.latency": 3}),
    "3x2": with_overrides(PRESETS["tiny"], {"core.rows": 3, "mac.latency": 3}),
    # The log-depth reduction over neighbour links, with odd counts of PEs along a bus.
    "2x3-tree": with_overrides(PRESETS["tiny"], {"core.cols": 3, "mac.latency": 3,
                                                 "core.reduction": "tree"}),
    "3x2-tree": with_overrides(PRESETS["tiny"], {"core.rows": 3, "mac.latency": 3,
                                                 "core.reduction": "tree"}),
    "4x4-tree": with_overrides(PRESETS["tiny"], {"core.rows": 4, "core.cols": 4,
                                                 "core.reduction": "tree"}),
    # The deepest MAC: the PE's conversion, multiplier and adder split into every stage
    # they have (hw.pe.PE.quantize_stage, multiply_latency; hw.fadd.FloatAdder).
    "2x2-deep": with_overrides(PRESETS["tiny"], {"mac.latency": 12, "pe.acc_regs": 26}),
}


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def _case(rng, config, m, n, batch):
    w = _f32(rng.standard_normal((m, n)))
    x = _f32(np.maximum(rng.standard_normal((n, batch)), 0))   # like ReLU outputs
    dy = _f32(rng.standard_normal((m, batch)) * 0.5)
    return w, x, dy


def _layout(config, m, n, batch):
    R, C = config.core.rows, config.core.cols
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    mats = dict(w=alloc.matrix(m, n, "W"), w_out=alloc.matrix(m, n, "W out"),
                x=alloc.matrix(n, batch, "X"), y=alloc.matrix(m, batch, "Y"),
                dy=alloc.matrix(m, batch, "dY"), dx=alloc.matrix(n, batch, "dX"))
    nt, mt = tiles(n, C), tiles(m, R)
    act = dict(x=0, dy=nt * batch)
    assert act["dy"] + mt * batch <= config.pe.act_words
    assert mt * nt <= config.pe.weight_words
    return mats, act


SHAPES = [(2, 2, 1), (3, 5, 2), (5, 3, 4), (7, 6, 3), (4, 4, 5), (1, 7, 2)]


# Every config and every shape in the default suite (each config with one shape; the
# whole product is `slow`): the same operations run on three of these cores under Icarus and
# Verilator in tests/sim/verify/test_cocotb_core.py.
@pytest.mark.parametrize("name,m,n,batch", covering(sorted(CONFIGS), SHAPES))
def test_core_operations_equal_golden(name, m, n, batch):
    config = CONFIGS[name]
    num = cm.CoreNumerics.from_config(config)
    rng = np.random.default_rng(m * 100 + n * 10 + batch)
    w, x, dy = _case(rng, config, m, n, batch)
    mats, act = _layout(config, m, n, batch)
    lr = _f32([0.125])[0]
    neg_lr = int(lr) ^ (1 << 31)

    core = CoreRunner(config)
    lines = lambda mat: dict(sp_base=mat.base, sp_lpc=mat.lines_per_column)
    core.write(mats["w"], w)
    core.write(mats["x"], x)
    core.write(mats["dy"], dy)
    core.command(op=Opcode.LOAD_W, m=m, n=n, **lines(mats["w"]))
    core.command(op=Opcode.STORE_W, m=m, n=n, **lines(mats["w_out"]))
    core.read(mats["w_out"])
    core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act["x"], **lines(mats["x"]))
    core.command(op=Opcode.FORWARD, m=m, n=n, batch=batch, abase=act["x"], flag=1,
                 **lines(mats["y"]))
    core.read(mats["y"])
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act["dy"], **lines(mats["dy"]))
    core.command(op=Opcode.BACKWARD, m=m, n=n, batch=batch, abase=act["dy"], flag=1,
                 sp2_base=mats["x"].base, sp2_lpc=mats["x"].lines_per_column,
                 **lines(mats["dx"]))
    core.read(mats["dx"])
    core.command(op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=act["x"], abase2=act["dy"],
                 scalar=neg_lr)
    core.command(op=Opcode.STORE_W, m=m, n=n, **lines(mats["w_out"]))
    core.read(mats["w_out"])
    w_back, y, dx, w_new = core.run()

    assert np.array_equal(w_back, w), "LOAD_W / STORE_W round trip"
    assert np.array_equal(y, cm.relu(num, cm.forward(num, w, x))), "FORWARD"
    assert np.array_equal(dx, cm.relu_mask(num, cm.backward_dx(num, w, dy), x)), "BACKWARD"
    expected_w, _ = cm.update(num, w, cm.weight_gradient(num, dy, x), int(lr))
    assert np.array_equal(w_new, expected_w), "WGRAD"


def run_loss(config, y, labels):
    """LOSS_GRAD on the RTL: returns ``dY`` and the golden ``(dY, p)``."""
    classes, batch = y.shape
    inv = int(_f32([1.0 / batch])[0])
    alloc = Allocator(config.core.scratchpad_words, bank_count(config.core.rows, config.core.cols))
    my, mdy, mlab = alloc.matrix(classes, batch), alloc.matrix(classes, batch), alloc.matrix(1, batch)
    core = CoreRunner(config)
    core.write(my, y)
    core.write(mlab, np.asarray(labels)[None, :].astype(np.uint64))
    core.command(op=Opcode.LOSS_GRAD, m=classes, batch=batch, scalar=inv, sp_base=my.base,
                 sp_lpc=my.lines_per_column, sp2_base=mdy.base, sp2_lpc=mdy.lines_per_column,
                 sp3_base=mlab.base, sp3_lpc=mlab.lines_per_column)
    core.read(mdy)
    (dy,) = core.run()
    num = cm.CoreNumerics.from_config(config)
    return dy, cm.softmax_xent_gradient(num, y, labels, inv)


@pytest.mark.parametrize("classes,batch", [(3, 2), (10, 4), (3, 19)])
def test_loss_gradient_equals_golden(classes, batch):
    """19 samples: a chunk of 16 and one of 3."""
    rng = np.random.default_rng(classes + batch)
    y = _f32(rng.standard_normal((classes, batch)) * 3)
    dy, (expected, _) = run_loss(CONFIGS["2x2"], y, rng.integers(0, classes, batch))
    assert np.array_equal(dy, expected)


@pytest.mark.parametrize("name,overrides", [
    ("2x2", {"core.sfu": "barrel"}), ("4x4-tree", {}),
    ("2x2", {"core.rows": 1, "core.cols": 1, "host.axi_data_width": 32})],
    ids=["barrel-sfu", "four-lanes", "one-lane"])
def test_loss_gradient_other_loss_units(name, overrides):
    """The barrel special-function unit, and 4 or 1 classes per read of the maximum."""
    rng = np.random.default_rng(17)
    y = _f32(rng.standard_normal((7, 5)) * 3)
    labels = rng.integers(0, 7, 5)
    labels[2] = 9                                   # no class
    dy, (expected, _) = run_loss(with_overrides(CONFIGS[name], overrides), y, labels)
    assert np.array_equal(dy, expected)


def test_loss_gradient_with_a_label_that_is_no_class():
    rng = np.random.default_rng(3)
    y = _f32(rng.standard_normal((4, 3)))
    dy, (expected, probs) = run_loss(CONFIGS["2x3"], y, np.array([2, 7, 0]))  # 7: no class
    assert np.array_equal(dy, expected)
    # The column without a class is the softmax itself, scaled by 1/B.
    inv = int(_f32([1 / 3])[0])
    assert np.array_equal(expected[:, 1], nx.fmac(cm.zeros(4), probs[:, 1], np.full(4, inv),
                                                  FP32, FP32))


@pytest.mark.parametrize("fields", [
    {"op": 0},
    {"op": Opcode.FORWARD, "m": 0, "n": 3, "batch": 2},
    {"op": Opcode.LOAD_COL, "n": 3, "batch": 0},
    {"op": Opcode.WGRAD, "m": 2, "n": 0, "batch": 1},
])
def test_malformed_command_is_refused_without_hanging(fields):
    config = CONFIGS["2x2"]
    core = CoreRunner(config)
    core.command(**fields)
    core.command(op=Opcode.LOAD_COL, n=2, batch=1)     # and the core still works after it
    core.run()
    assert core.cycles[0] <= 2
    assert core.errors == [1, 0]


def test_tree_reduction_follows_the_tree_order_not_the_chain():
    """A case where pairwise and chained sums of the partial sums differ in the last bit,
    so the RTL can only match by adding in the tree's order."""
    import dataclasses
    config = CONFIGS["4x4-tree"]
    tree = cm.CoreNumerics.from_config(config)
    chain = dataclasses.replace(tree, reduction="bus")
    m, n, batch = 13, 22, 2
    rng = np.random.default_rng(m * 100 + n * 10 + batch)
    w, x, dy = _case(rng, config, m, n, batch)
    assert not np.array_equal(cm.forward(tree, w, x), cm.forward(chain, w, x))
    assert not np.array_equal(cm.backward_dx(tree, w, dy), cm.backward_dx(chain, w, dy))
    mats, act = _layout(config, m, n, batch)
    lines = lambda mat: dict(sp_base=mat.base, sp_lpc=mat.lines_per_column)
    core = CoreRunner(config)
    core.write(mats["w"], w)
    core.write(mats["x"], x)
    core.write(mats["dy"], dy)
    core.command(op=Opcode.LOAD_W, m=m, n=n, **lines(mats["w"]))
    core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act["x"], **lines(mats["x"]))
    core.command(op=Opcode.FORWARD, m=m, n=n, batch=batch, abase=act["x"], **lines(mats["y"]))
    core.read(mats["y"])
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act["dy"], **lines(mats["dy"]))
    core.command(op=Opcode.BACKWARD, m=m, n=n, batch=batch, abase=act["dy"], **lines(mats["dx"]))
    core.read(mats["dx"])
    y, dx = core.run()
    assert np.array_equal(y, cm.forward(tree, w, x))
    assert np.array_equal(dx, cm.backward_dx(tree, w, dy))


@pytest.mark.parametrize("name", ["2x3", "4x4-tree"])
def test_weight_gradient_with_momentum(name):
    """Two WGRAD steps with momentum: the velocity lives beside the weights in the PEs."""
    config = CONFIGS[name]
    num = cm.CoreNumerics.from_config(config)
    m, n, batch = 7, 5, 3
    rng = np.random.default_rng(11)
    w, x, dy = _case(rng, config, m, n, batch)
    dy2 = _f32(rng.standard_normal((m, batch)))
    mats, act = _layout(config, m, n, batch)
    lr, mu = _f32([0.125])[0], _f32([0.75])[0]
    R, C = config.core.rows, config.core.cols
    vbase = tiles(m, R) * tiles(n, C)
    lines = lambda mat: dict(sp_base=mat.base, sp_lpc=mat.lines_per_column)
    core = CoreRunner(config)
    core.write(mats["w"], w)
    core.write(mats["x"], x)
    core.write(mats["dy"], dy)
    core.write(mats["dx"], np.zeros((n, batch), dtype=np.uint64))
    core.command(op=Opcode.LOAD_W, m=m, n=n, **lines(mats["w"]))
    # The velocities start at +0: load a zero matrix (dX's place, all zeros) at wbase2.
    zeros = dataclasses.replace(mats["w"], base=mats["w_out"].base)
    core.write(zeros, np.zeros((m, n), dtype=np.uint64))
    core.command(op=Opcode.LOAD_W, m=m, n=n, wbase=vbase, **lines(zeros))
    core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act["x"], **lines(mats["x"]))
    step = dict(op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=act["x"], abase2=act["dy"],
                scalar=int(lr) ^ (1 << 31), scalar2=int(mu), wbase2=vbase, flag=1)
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act["dy"], **lines(mats["dy"]))
    core.command(**step)
    core.write(mats["dy"], dy2)
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act["dy"], **lines(mats["dy"]))
    core.command(**step)
    core.command(op=Opcode.STORE_W, m=m, n=n, **lines(mats["w_out"]))
    core.read(mats["w_out"])
    core.command(op=Opcode.STORE_W, m=m, n=n, wbase=vbase, **lines(mats["w_out"]))
    core.read(mats["w_out"])
    w_new, v_new = core.run()
    velocity = cm.zeros((m, n))
    expected = w
    for grad in (dy, dy2):
        expected, velocity = cm.update(num, expected, cm.weight_gradient(num, grad, x), int(lr),
                                       velocity=velocity, momentum_bits=int(mu))
    assert np.array_equal(v_new, velocity)
    assert np.array_equal(w_new, expected)



@pytest.mark.parametrize("name", ["2x2", "3x2", "4x4-tree"])
@pytest.mark.parametrize("m,n,batch", [(2, 2, 1), (7, 5, 3), (5, 9, 2)])
def test_fused_weight_update_equals_golden(name, m, n, batch):
    """WGRAD with ``fused``: each chain starts from the weight and ends in it, bit for bit
    ``sim.golden.core_model.fused_weight_gradient`` (two steps, so the second starts from
    weights the first wrote back); the scalar is not used."""
    config = CONFIGS[name]
    num = cm.CoreNumerics.from_config(config)
    rng = np.random.default_rng(m * 31 + n * 7 + batch)
    w, x, dy = _case(rng, config, m, n, batch)
    dy2 = _f32(rng.standard_normal((m, batch)) * -0.01)
    mats, act = _layout(config, m, n, batch)
    lines = lambda mat: dict(sp_base=mat.base, sp_lpc=mat.lines_per_column)
    core = CoreRunner(config)
    core.write(mats["w"], w)
    core.write(mats["x"], x)
    core.write(mats["dy"], dy)
    core.command(op=Opcode.LOAD_W, m=m, n=n, **lines(mats["w"]))
    core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act["x"], **lines(mats["x"]))
    step = dict(op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=act["x"], abase2=act["dy"],
                fused=1, scalar=0x7F80_0000)
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act["dy"], **lines(mats["dy"]))
    core.command(**step)
    core.command(op=Opcode.STORE_W, m=m, n=n, **lines(mats["w_out"]))
    core.read(mats["w_out"])
    core.write(mats["dy"], dy2)
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act["dy"], **lines(mats["dy"]))
    core.command(**step)
    core.command(op=Opcode.STORE_W, m=m, n=n, **lines(mats["w_out"]))
    core.read(mats["w_out"])
    w1, w2 = core.run()
    expected1 = cm.fused_weight_gradient(num, w, dy, x)
    expected2 = cm.fused_weight_gradient(num, expected1, dy2, x)
    assert np.array_equal(w1, expected1)
    assert np.array_equal(w2, expected2)
    # The rule differs from the separate update of the same gradient, W + q(dW) * q(1)
    # (lr = -1: dY already carries the step), else the test would prove nothing.
    separate, _ = cm.update(num, w, cm.weight_gradient(num, dy, x), int(_f32([-1.0])[0]))
    assert not np.array_equal(expected1, separate)


FILL_CONFIGS = {
    # fp32 operands: a MAC by 1.0 passes a bank word through unrounded, so the identity
    # layers below show every bit that a fill wrote.
    "2x2-fp32": with_overrides(PRESETS["tiny"], {"mac.operand": "fp32"}),
    "4x4-tree-fp32": with_overrides(PRESETS["tiny"], {"core.rows": 4, "core.cols": 4,
                                                      "mac.operand": "fp32",
                                                      "core.reduction": "tree"}),
    "2x2-dual-value": with_overrides(PRESETS["tiny"], {"mac.dual": "value",
                                                       "mac.latency": 3, "pe.acc_regs": 16}),
    "2x2-reuse-row": with_overrides(PRESETS["tiny"], {"pe.reuse_entries": 4,
                                                      "pe.reuse_scope": "row"}),
}


def _identity(size):
    return np.diag(np.full(size, 0x3F80_0000, dtype=np.uint64))


@pytest.mark.parametrize("name,m,n,batch",
                         covering(sorted(FILL_CONFIGS), [(3, 5, 2), (4, 3, 3)]))
def test_fill_loads_results_as_the_load_would(name, m, n, batch):
    """FORWARD and BACKWARD with ``fill`` leave in the activation banks what LOAD_COL
    (LOAD_ROW) of their results would, padding lanes included (+0 over a region that held
    other words): an identity layer over the whole filled tiles reads them back. RTL ==
    golden machine bit for bit, and (fp32 operands) == the results padded with +0."""
    from chrysalis.sim.golden.machine import Machine
    config = FILL_CONFIGS[name]
    R, C = config.core.rows, config.core.cols
    mt, nt = tiles(m, R), tiles(n, C)
    rng = np.random.default_rng(m * 10 + n + batch)
    w, x, dy = _case(rng, config, m, n, batch)
    junk = _f32(rng.standard_normal((max(mt * C, nt * R), batch)) + 3)
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    mat = dict(w=alloc.matrix(m, n), x=alloc.matrix(n, batch), dy=alloc.matrix(m, batch),
               y=alloc.matrix(m, batch), dx=alloc.matrix(n, batch),
               junk=alloc.matrix(len(junk), batch),
               fw=alloc.matrix(mt * C, mt * C), fy=alloc.matrix(mt * C, batch),
               bw=alloc.matrix(nt * R, nt * R), bx=alloc.matrix(nt * R, batch))
    act = dict(x=0, dy=nt * batch, fill_y=(nt + mt) * batch, fill_dx=(nt + 2 * mt) * batch)
    lines = lambda key, p="sp": {f"{p}_base": mat[key].base,
                                 f"{p}_lpc": mat[key].lines_per_column}
    writes = dict(w=w, x=x, dy=dy, junk=junk, fw=_identity(mt * C), bw=_identity(nt * R))
    commands = [
        # Other words where the fills go, so that a lane a fill missed would show.
        dict(op="LOAD_COL", n=mt * C, batch=batch, abase=act["fill_y"], **lines("junk")),
        dict(op="LOAD_ROW", m=nt * R, batch=batch, abase=act["fill_dx"], **lines("junk")),
        dict(op="LOAD_W", m=m, n=n, **lines("w")),
        dict(op="LOAD_COL", n=n, batch=batch, abase=act["x"], **lines("x")),
        dict(op="FORWARD", m=m, n=n, batch=batch, abase=act["x"], flag=1, fill=1,
             abase2=act["fill_y"], **lines("y")),
        dict(op="LOAD_ROW", m=m, batch=batch, abase=act["dy"], **lines("dy")),
        dict(op="BACKWARD", m=m, n=n, batch=batch, abase=act["dy"], flag=1, fill=1,
             abase2=act["fill_dx"], **lines("dx"), **lines("x", "sp2")),
        # Read the filled tiles back through identity layers of their full size.
        dict(op="LOAD_W", m=mt * C, n=mt * C, **lines("fw")),
        dict(op="FORWARD", m=mt * C, n=mt * C, batch=batch, abase=act["fill_y"],
             **lines("fy")),
        dict(op="LOAD_W", m=nt * R, n=nt * R, **lines("bw")),
        dict(op="BACKWARD", m=nt * R, n=nt * R, batch=batch, abase=act["fill_dx"],
             **lines("bx")),
    ]
    reads = ("y", "dx", "fy", "bx")

    core = CoreRunner(config)
    golden = Machine(config)
    for key, values in writes.items():
        core.write(mat[key], values)
        golden.write_matrix(mat[key].base, mat[key].lines_per_column, values)
    for command in commands:
        core.command(**{**command, "op": Opcode[command["op"]]})
        assert golden.execute(command) == 0, command
    for key in reads:
        core.read(mat[key])
    got = dict(zip(reads, core.run()))
    expected = {key: golden.read_matrix(mat[key].base, mat[key].lines_per_column,
                                        mat[key].n, batch) for key in reads}
    for key in reads:
        assert np.array_equal(got[key], expected[key]), key
    assert core.counters["bus_words"] == golden.counters["bus_words"]
    if config.mac.operand == FP32:
        padded_y = np.zeros((mt * C, batch), dtype=np.uint64)
        padded_y[:m] = expected["y"]
        padded_dx = np.zeros((nt * R, batch), dtype=np.uint64)
        padded_dx[:n] = expected["dx"]
        assert np.array_equal(expected["fy"], padded_y), "FORWARD's fill"
        assert np.array_equal(expected["bx"], padded_dx), "BACKWARD's fill"
