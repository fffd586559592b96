# amaranth: UnusedElaboratable=no
"""The golden machine model (``sim.golden.machine``): its checks and DMA, its core operations
against the matrix-level golden model, and -- the point of it -- bit-for-bit equality with
the RTL core (``hw.core.Core`` in Amaranth's simulator) on random command sequences.

Every test compares a reference function with the function under test: ``gen.spec.isa.check``
and plain NumPy for the checks and the DMA, ``sim.golden.core_model`` for the operations, and
``sim.verify.core_sim.CoreRunner`` (the RTL) for the machine's whole state after a sequence.
"""

import time

import numpy as np
import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.spec.isa import ErrorCode, Limits
from chrysalis.sim.compile import compiler as cp
from chrysalis.sim.golden import core_counts, mlp
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.gen.spec.layout import Matrix, bank_count, tiles
from chrysalis.sim.golden.machine import COUNTER_NAMES, Machine, RunResult

TINY = get_preset("tiny")
CONFIGS = {
    "2x2": TINY,
    "2x3": with_overrides(TINY, {"core.cols": 3, "mac.latency": 3}),
    "2x3-tree": with_overrides(TINY, {"core.cols": 3, "mac.latency": 3,
                                      "core.reduction": "tree"}),
    "3x2-tree": with_overrides(TINY, {"core.rows": 3, "mac.latency": 3,
                                      "core.reduction": "tree"}),
    # Four PEs along the columns: the tree's order differs from the chain's (with two or
    # three it is the same).
    "4x2-tree": with_overrides(TINY, {"core.rows": 4, "core.reduction": "tree"}),
    "4x4-tree": with_overrides(TINY, {"core.rows": 4, "core.cols": 4,
                                      "core.reduction": "tree"}),
}
#: Dual-precision configs (``docs/dual_precision.md``): the dual rule needs
#: ``acc_regs >= 4 * (latency + 1)`` and ``acc_regs // 2`` even.
DUAL_CONFIGS = {
    f"{shape}-{policy}": with_overrides(TINY, {"core.rows": int(shape[0]),
                                               "core.cols": int(shape[2]), "mac.latency": 3,
                                               "pe.acc_regs": 16, "mac.dual": policy})
    for shape, policy in (("2x2", "value"), ("2x3", "random"), ("3x2", "static"),
                          ("2x2", "dual-full"))
}
CORE_COUNTERS = {"mac_slots": "mac_slots", "update_slots": "update_slots",
                 "busy_cycles": "core_cycles", "stall_cycles": "stall_cycles",
                 "bus_words": "bus_words"}
#: The product counters: the machine counts them from the operands, the core with its PEs.
PRODUCT_COUNTERS = ("high_products", "low_products", "bypass_products")
#: The reuse counters (``docs/reuse.md``), counted by the PEs with a reuse cache.
REUSE_COUNTERS = ("reuse_lookups", "reuse_hits", "multiplies_avoided")


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def _random_words(rng, shape):
    """Finite fp32 words of moderate exponents, with some +0 and -0 among them."""
    # Exponents spread over some 16 binades: sums of products then round often, so that
    # a wrong order of additions shows.
    values = rng.standard_normal(shape) * 2.0 ** rng.integers(-8, 9, shape)
    words = _f32(values)
    pick = rng.random(shape)
    words = np.where(pick < 0.03, np.uint64(0), words)
    return np.where(pick > 0.97, np.uint64(1 << 31), words)


def _state(machine):
    return (machine.scratchpad.copy(), machine.weight.copy(), machine.act.copy())


def _assert_state(machine, state):
    for name, now, then in zip(("scratchpad", "weight banks", "activation banks"),
                               _state(machine), state):
        assert np.array_equal(now, then), f"{name} changed"


def _randomized(config, seed=0):
    """A machine whose scratchpad and banks all hold random words."""
    rng = np.random.default_rng(seed)
    machine = Machine(config)
    machine.scratchpad[:] = _random_words(rng, machine.scratchpad.shape)
    machine.weight[:] = _random_words(rng, machine.weight.shape)
    machine.act[:] = _random_words(rng, machine.act.shape)
    return machine


# --- command streams in memory ---------------------------------------------------------

MEM_BASE = 0x1_0000          # byte address of the image's word 0
MEM_WORDS = 4096
DATA = MEM_BASE + 0x2000     # where the tests put DMA data


def _image(commands, rng=None):
    """A memory image with random words and the command stream at ``MEM_BASE``; commands
    are dicts for ``gen.spec.isa.encode`` or tuples of raw words."""
    rng = rng or np.random.default_rng(1)
    memory = rng.integers(0, 1 << 32, MEM_WORDS, dtype=np.uint64).astype(np.uint32)
    words = []
    for command in commands:
        if isinstance(command, dict):
            command = dict(command)
            words.extend(isa.encode(command.pop("op"), **command))
        else:
            words.extend(command)
    memory[:len(words)] = words
    return memory


def _dma(op, n, batch, sp_base, lpc, mem_addr, stride):
    return dict(op=op, n=n, batch=batch, sp_base=sp_base, sp_lpc=lpc, mem_addr=mem_addr,
                mem_stride=stride)


def _with(words, index, mask):
    words = list(words)
    words[index] |= mask
    return tuple(words)


def _bad_commands(config):
    """For every error code a command can raise: ``(words, setup)``, where ``setup``
    changes the machine before the run (the DMA window)."""
    limits = Limits.from_config(config)
    S, lines = limits.banks, limits.sp_lines
    ww, aw = limits.weight_words, limits.act_words
    enc = isa.encode
    narrow = lambda machine: setattr(machine, "dma_last", DATA + 0x40 - 1)
    return {
        "BAD_OPCODE": (_with((0,) * 16, 0, max(isa.Opcode) + 1), None),
        "BAD_OPCODE-zero": ((0,) * 16, None),
        "RESERVED_BITS": (_with(enc("LOAD_COL", n=2, batch=1, sp_lpc=1), 0, 1 << 11), None),
        "RESERVED_BITS-high": (_with(enc("WGRAD", m=1, n=1, batch=1), 4, 1 << 31), None),
        "ZERO_SIZE": (enc("FORWARD", m=3, n=0, batch=2, sp_lpc=2), None),
        "WEIGHT_RANGE": (enc("LOAD_W", m=3, n=3, wbase=ww - 3, sp_lpc=2), None),
        "WEIGHT_RANGE-velocity": (enc("WGRAD", flag=1, m=1, n=1, batch=1, wbase2=ww), None),
        "ACT_RANGE": (enc("LOAD_ROW", m=3, batch=4, abase=aw - 7, sp_lpc=2), None),
        "ACT_RANGE-abase2": (enc("WGRAD", m=1, n=1, batch=3, abase2=aw - 2), None),
        "SCRATCHPAD_RANGE": (enc("LOAD_COL", n=S + 1, batch=1, sp_lpc=1), None),
        "SCRATCHPAD_RANGE-end": (enc("STORE_W", m=1, n=3, sp_base=lines - 5, sp_lpc=2), None),
        "SCRATCHPAD_RANGE-sp3": (enc("LOSS_GRAD", m=2, batch=2, sp_lpc=1, sp2_base=4,
                                     sp2_lpc=1, sp3_base=lines - 1, sp3_lpc=1), None),
        "DMA_ALIGN": (enc(**_dma("DMA_LOAD", 2, 1, 0, 1, DATA + 4, 0)), None),
        "DMA_ALIGN-stride": (enc(**_dma("DMA_STORE", 2, 2, 0, 1, DATA, 12)), None),
        "DMA_RANGE": (enc(**_dma("DMA_STORE", 3, 5, 0, 2, DATA, 16)), narrow),
        "DMA_RANGE-below": (enc(**_dma("DMA_LOAD", 3, 1, 0, 2, MEM_BASE - 8, 0)),
                            lambda machine: setattr(machine, "dma_base", MEM_BASE)),
        # Inside the window, but the second column is past the end of the memory image.
        "BUS_ERROR": (enc(**_dma("DMA_LOAD", 3, 2, 0, 2, MEM_BASE + 4 * MEM_WORDS - 16, 16)),
                      None),
    }


def _first_command():
    """A command that changes state (so that a halt after it shows what it left)."""
    return _dma("DMA_LOAD", 5, 2, 3, 4, DATA, 24)


@pytest.mark.parametrize("case", sorted(_bad_commands(TINY)))
def test_bad_command_halts_with_its_code_and_changes_nothing(case):
    config = TINY
    words, setup = _bad_commands(config)[case]
    code = ErrorCode[case.split("-")[0]]
    first, after = _first_command(), dict(op="LOAD_COL", n=1, batch=1, sp_lpc=1)
    image = _image([first, words, after])

    # Reference: what gen.spec.isa.check says of the command, and the state after command 0.
    reference = _randomized(config)
    if setup:
        setup(reference)
    if code != ErrorCode.BUS_ERROR:
        assert isa.check(isa.decode(words), reference.limits()) == code
    expected_memory = image.copy()
    assert reference.run(expected_memory, MEM_BASE, 1, mem_base=MEM_BASE).ok

    machine = _randomized(config)
    if setup:
        setup(machine)
    result = machine.run(image, MEM_BASE, 3, mem_base=MEM_BASE)
    assert result == RunResult(code, 1, 1)
    assert not result.ok
    _assert_state(machine, _state(reference))
    assert np.array_equal(image, expected_memory), "memory changed"
    beats = isa.COMMAND_BYTES // (config.host.axi_data_width // 8)
    assert machine.counters == {**reference.counters, "fetch_beats": 2 * beats}
    assert machine.counters["commands"] == 1


@pytest.mark.parametrize("cmd_base,count,window", [
    (MEM_BASE + 32, 1, None),                      # not aligned to a command
    (MEM_BASE, 3, (MEM_BASE, MEM_BASE + 2 * 64 - 1)),   # runs past DMA_LAST
    (MEM_BASE - 64, 2, (MEM_BASE, None)),          # starts below DMA_BASE
])
def test_fetch_range_halts_at_index_0_before_any_fetch(cmd_base, count, window):
    machine = _randomized(TINY)
    if window:
        machine.dma_base = window[0]
        if window[1] is not None:
            machine.dma_last = window[1]
    image = _image([_first_command()] * 3)
    state, memory = _state(machine), image.copy()
    expected = isa.check_fetch(cmd_base, count, machine.limits())
    assert expected == ErrorCode.FETCH_RANGE
    assert machine.run(image, cmd_base, count, mem_base=MEM_BASE) == RunResult(expected, 0, 0)
    _assert_state(machine, state)
    assert np.array_equal(image, memory)
    assert machine.counters == dict.fromkeys(COUNTER_NAMES, 0)


def test_fetch_outside_the_image_is_a_bus_error():
    machine = _randomized(TINY)
    image = _image([_first_command()])
    count = MEM_WORDS // isa.COMMAND_WORDS + 1          # the last one is past the image
    words = np.tile(np.array(isa.encode("LOAD_COL", n=1, batch=1, sp_lpc=1), np.uint32),
                    MEM_WORDS // isa.COMMAND_WORDS - 1)
    image[isa.COMMAND_WORDS:] = words
    result = machine.run(image, MEM_BASE, count, mem_base=MEM_BASE)
    assert result == RunResult(ErrorCode.BUS_ERROR, count - 1, count - 1)


def test_empty_run_and_counters_of_a_good_run():
    machine = Machine(TINY)
    image = _image([])
    assert machine.run(image, MEM_BASE, 0, mem_base=MEM_BASE) == RunResult(ErrorCode.NONE, 0, 0)
    image = _image([_first_command(), dict(op="LOAD_COL", n=3, batch=2, sp_lpc=2)])
    assert machine.run(image, MEM_BASE, 2, mem_base=MEM_BASE) == RunResult(ErrorCode.NONE, 2, 2)
    counters = machine.counters
    assert counters["commands"] == 2 and counters["fetch_beats"] == 2 * 8
    assert counters["dma_read_beats"] == 2 * 3 and counters["dma_write_beats"] == 0
    assert counters["bus_words"] == 3 * 2 and counters["core_cycles"] > 0


def test_execute_refuses_what_is_not_a_command():
    machine = Machine(TINY)
    with pytest.raises(ValueError, match="not a command field"):
        machine.execute(dict(op="LOAD_COL", rows=3))
    with pytest.raises(ValueError, match="op must be one of"):
        machine.execute(dict(op="JUMP"))
    with pytest.raises(ValueError, match="field n must be in"):
        machine.execute(dict(op="LOAD_COL", n=1 << 16))
    assert machine.execute(dict(op=0)) == ErrorCode.BAD_OPCODE
    assert machine.execute(dict(op="DMA_LOAD", n=1, batch=1, sp_lpc=1, mem_addr=7)) == \
        ErrorCode.DMA_ALIGN
    with pytest.raises(ValueError, match="memory image"):
        machine.execute(dict(op="DMA_LOAD", n=1, batch=1, sp_lpc=1))


@pytest.mark.parametrize("name", ["2x2", "2x3"])
@pytest.mark.parametrize("n,batch,stride_beats,lpc_extra", [
    (1, 1, 1, 0), (3, 4, 2, 0), (5, 3, 3, 1), (8, 2, 4, 0), (7, 5, 1, 2),  # (7, 5, 1): overlap
])
def test_dma_round_trip(name, n, batch, stride_beats, lpc_extra):
    """DMA_LOAD from memory, DMA_STORE to another place with another stride: the scratchpad
    and the memory end as plain NumPy says; only ``n`` words per column are written."""
    config = CONFIGS[name]
    beat = config.host.axi_data_width // 8
    S = bank_count(config.core.rows, config.core.cols)
    lpc = tiles(n, S) + lpc_extra
    stride, out_stride = stride_beats * beat, (stride_beats + 1) * beat
    src, dst, sp_base = DATA, DATA + 0x1000, 5
    rng = np.random.default_rng(n * 10 + batch)
    image = _image([_dma("DMA_LOAD", n, batch, sp_base, lpc, src, stride),
                    _dma("DMA_STORE", n, batch, sp_base, lpc, dst, out_stride)], rng)
    machine = _randomized(config, seed=n)

    # Reference: column b of memory, in column order (a later column overwrites).
    word = lambda addr: (addr - MEM_BASE) // 4
    sp = machine.scratchpad.copy()
    expected = image.copy()
    for b in range(batch):
        line = (sp_base + b * lpc) * S
        sp[line:line + n] = image[word(src + b * stride):][:n]
    for b in range(batch):
        line = (sp_base + b * lpc) * S
        expected[word(dst + b * out_stride):][:n] = sp[line:line + n]

    assert machine.run(image, MEM_BASE, 2, mem_base=MEM_BASE).ok
    assert np.array_equal(machine.scratchpad, sp)
    assert np.array_equal(image, expected)
    beats = batch * tiles(4 * n, beat)
    assert machine.counters["dma_read_beats"] == beats
    assert machine.counters["dma_write_beats"] == beats


# --- operations against the matrix-level golden model -----------------------------------

def _lines(matrix, prefix="sp"):
    return {f"{prefix}_base": matrix.base, f"{prefix}_lpc": matrix.lines_per_column}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("m,n,batch", [(2, 2, 1), (3, 5, 2), (5, 3, 4), (7, 6, 3), (1, 7, 2)])
def test_operations_equal_core_model(name, m, n, batch):
    """A layer's forward, backward and update on a machine whose banks hold garbage: the
    padding is loaded as +0, so the results are the matrix-level golden model's."""
    config = CONFIGS[name]
    num = cm.CoreNumerics.from_config(config)
    R, C = config.core.rows, config.core.cols
    S = bank_count(R, C)
    rng = np.random.default_rng(m * 100 + n * 10 + batch)
    w, dy = _random_words(rng, (m, n)), _random_words(rng, (m, batch))
    x = _f32(np.maximum(rng.standard_normal((n, batch)), 0))
    lr, mu = _f32([0.125])[0], _f32([0.75])[0]
    mats = {}
    base = 0
    for key, (rows, cols) in dict(w=(m, n), w_out=(m, n), x=(n, batch), y=(m, batch),
                                  dy=(m, batch), dx=(n, batch), v=(m, n)).items():
        mats[key] = Matrix(base, rows, cols, S)
        base += mats[key].lines
    mt, nt = tiles(m, R), tiles(n, C)
    wb, vb, xa, da = 1, 1 + mt * nt, 2, 2 + nt * batch

    machine = _randomized(config, seed=m + n)
    for key, values in dict(w=w, x=x, dy=dy, v=cm.zeros((m, n))).items():
        machine.write_matrix(mats[key].base, mats[key].lines_per_column, values)

    def run(op, **fields):
        assert machine.execute(dict(op=op, **fields)) == ErrorCode.NONE

    def read(key):
        mat = mats[key]
        return machine.read_matrix(mat.base, mat.lines_per_column, mat.n, mat.batch)

    run("LOAD_W", m=m, n=n, wbase=wb, **_lines(mats["w"]))
    run("STORE_W", m=m, n=n, wbase=wb, **_lines(mats["w_out"]))
    assert np.array_equal(read("w_out"), w)
    assert np.array_equal(machine.read_weights(wb, m, n), w)
    run("LOAD_COL", n=n, batch=batch, abase=xa, **_lines(mats["x"]))
    run("FORWARD", m=m, n=n, batch=batch, wbase=wb, abase=xa, flag=1, **_lines(mats["y"]))
    assert np.array_equal(read("y"), cm.relu(num, cm.forward(num, w, x)))
    run("FORWARD", m=m, n=n, batch=batch, wbase=wb, abase=xa, **_lines(mats["y"]))
    assert np.array_equal(read("y"), cm.forward(num, w, x))
    run("LOAD_ROW", m=m, batch=batch, abase=da, **_lines(mats["dy"]))
    run("BACKWARD", m=m, n=n, batch=batch, wbase=wb, abase=da, flag=1,
        **_lines(mats["dx"]), **_lines(mats["x"], "sp2"))
    assert np.array_equal(read("dx"), cm.relu_mask(num, cm.backward_dx(num, w, dy), x))
    run("LOAD_W", m=m, n=n, wbase=vb, **_lines(mats["v"]))
    step = dict(m=m, n=n, batch=batch, wbase=wb, abase=xa, abase2=da, scalar=int(lr) ^ 1 << 31)
    run("WGRAD", **step)
    expected, _ = cm.update(num, w, cm.weight_gradient(num, dy, x), int(lr))
    assert np.array_equal(machine.read_weights(wb, m, n), expected)
    run("WGRAD", flag=1, scalar2=int(mu), wbase2=vb, **step)
    expected, velocity = cm.update(num, expected, cm.weight_gradient(num, dy, x), int(lr),
                                   velocity=cm.zeros((m, n)), momentum_bits=int(mu))
    assert np.array_equal(machine.read_weights(wb, m, n), expected)
    assert np.array_equal(machine.read_weights(vb, m, n), velocity)


@pytest.mark.parametrize("classes,batch", [(3, 2), (10, 4), (4, 19)])
def test_loss_gradient_equals_core_model(classes, batch):
    rng = np.random.default_rng(classes + batch)
    machine = _randomized(TINY)
    S = machine.banks
    y = _f32(rng.standard_normal((classes, batch)) * 3)
    labels = rng.integers(0, classes + 2, batch)            # some are no class
    labels[0] = 0xFFFF_FFFF
    my, mdy = Matrix(3, classes, batch, S), Matrix(200, classes, batch, S, lpc=5)
    mlab = Matrix(100, 1, batch, S, lpc=2)
    machine.write_matrix(my.base, my.lines_per_column, y)
    machine.write_matrix(mlab.base, mlab.lines_per_column, labels[None, :].astype(np.uint64))
    inv = int(_f32([1.0 / batch])[0])
    assert machine.execute(dict(op="LOSS_GRAD", m=classes, batch=batch, scalar=inv,
                                **_lines(my), **_lines(mdy, "sp2"),
                                **_lines(mlab, "sp3"))) == ErrorCode.NONE
    expected, _ = cm.softmax_xent_gradient(cm.CoreNumerics.from_config(TINY), y, labels, inv)
    assert np.array_equal(machine.read_matrix(mdy.base, 5, classes, batch), expected)


def test_padding_garbage_takes_part_as_in_the_simd_array():
    """The banks are not cleared between commands: a FORWARD of 3 inputs after loads of 4
    multiplies the 4th input's weights and activations too (padding is +0 only when the
    load of that shape wrote it). The RTL does the same (see the random sequences below)."""
    config = TINY
    num = cm.CoreNumerics.from_config(config)
    rng = np.random.default_rng(5)
    w, x = _random_words(rng, (4, 4)), _random_words(rng, (4, 2))
    machine = Machine(config)
    machine.write_matrix(0, 2, w)
    machine.write_matrix(10, 2, x)
    machine.execute(dict(op="LOAD_W", m=4, n=4, sp_base=0, sp_lpc=2))
    machine.execute(dict(op="LOAD_COL", n=4, batch=2, sp_base=10, sp_lpc=2))
    machine.execute(dict(op="FORWARD", m=3, n=3, batch=2, sp_base=20, sp_lpc=2))
    y = machine.read_matrix(20, 2, 3, 2)
    assert np.array_equal(y, cm.forward(num, w, x)[:3])
    assert not np.array_equal(y, cm.forward(num, w[:3, :3], x[:3]))


def _mlp_machine(config, sizes, batch, momentum=None, seed=1, update="separate", fill=True):
    """A machine with compile_mlp's placement of a seeded MLP, its weights loaded."""
    prog = cp.compile_mlp(config, sizes, batch, 0.25, momentum=momentum, update=update,
                          fill=fill)
    case = mlp.mlp_case(sizes, batch, 2, seed)
    machine = Machine(config)
    for mat, w in zip(prog.weights, case.weights):
        machine.write_matrix(mat.base, mat.lines_per_column, w)
    for mat, w in zip(prog.velocities, case.weights):
        machine.write_matrix(mat.base, mat.lines_per_column, cm.zeros(w.shape))
    for command in prog.load_weights:
        assert machine.execute(command) == ErrorCode.NONE
    for hidden in prog.acts[1:-1]:            # the rows of ones, then their tiles in the PEs
        machine.scratchpad[hidden.addresses()[-1]] = mlp.ONE
    for command in prog.setup:
        assert machine.execute(command) == ErrorCode.NONE
    return prog, case, machine


def _mlp_step(prog, machine, x, labels):
    acts, lab = prog.acts[0], prog.labels
    machine.write_matrix(acts.base, acts.lines_per_column, mlp.augment(x))
    for hidden in prog.acts[1:-1]:            # the rows of ones (written once in a real run)
        machine.scratchpad[hidden.addresses()[-1]] = mlp.ONE
    machine.write_matrix(lab.base, lab.lines_per_column, np.asarray(labels)[None, :])
    for command in prog.step:
        assert machine.execute(command) == ErrorCode.NONE, command


@pytest.mark.parametrize("name,sizes,batch,momentum,update", [
    ("2x2", [5, 7, 3], 4, None, "separate"),
    ("2x3-tree", [6, 5, 4], 3, 0.5, "separate"),
    ("2x2", [9, 6, 4], 2, None, "separate"),  # streamed: the weights do not fit the banks
    ("2x2", [5, 7, 3], 4, None, "fused"),
    ("2x3-tree", [6, 5, 4], 1, None, "fused"),
    ("2x2", [9, 6, 4], 2, None, "fused"),
])
def test_mlp_steps_equal_golden_step(name, sizes, batch, momentum, update):
    config = CONFIGS[name]
    if name == "2x2" and sizes[0] == 9:
        config = with_overrides(config, {"pe.weight_words": 16})
    num = cm.CoreNumerics.from_config(config)
    prog, case, machine = _mlp_machine(config, sizes, batch, momentum, update=update)
    assert prog.streamed == (sizes[0] == 9)
    assert prog.update == update
    wgrads = [c for c in prog.step if c["op"] == "WGRAD"]
    assert all(c.get("fused", 0) == (update == "fused") for c in wgrads)
    weights = case.weights
    velocities = [cm.zeros(w.shape) for w in weights]
    for x, labels in zip(case.inputs, case.labels):
        _mlp_step(prog, machine, x, labels)
        weights, _ = mlp.golden_step(num, weights, x, labels, 0.25, momentum=momentum,
                                    velocities=velocities, update=update)
    for command in prog.store_weights:
        assert machine.execute(command) == ErrorCode.NONE
    for mat, w in zip(prog.weights, weights):
        assert np.array_equal(machine.read_matrix(mat.base, mat.lines_per_column, *w.shape), w)
    for mat, v in zip(prog.velocities, velocities):
        assert np.array_equal(machine.read_matrix(mat.base, mat.lines_per_column, *v.shape), v)


def test_step_of_a_64_32_10_mlp_is_fast():
    """The model runs training: a 64-32-10 step with batch 8 on a 2x2 core takes some 20 ms
    (the bound leaves room for a loaded machine)."""
    config = with_overrides(get_preset("default"), {"core.rows": 2, "core.cols": 2})
    prog, case, machine = _mlp_machine(config, [64, 32, 10], 8)
    _mlp_step(prog, machine, case.inputs[0], case.labels[0])
    start = time.perf_counter()
    _mlp_step(prog, machine, case.inputs[1], case.labels[1])
    assert time.perf_counter() - start < 0.5


# --- the RTL: random command sequences on hw.core.Core -----------------------------------

LABEL_LINES = 8      # the last lines of the scratchpad hold small integer labels


def _hw_widths(config):
    limits = Limits.from_config(config)
    line_bits = max(1, (limits.sp_lines - 1).bit_length())
    return limits, (1 << line_bits) - 1


def _place(rng, limits, rows, cols, avoid=(), first=0, last=None):
    """A scratchpad matrix ``(base, lpc)`` within lines ``[first, last)``, its words
    disjoint from the word sets in ``avoid``; returns it and its word set."""
    S = limits.banks
    last = limits.sp_lines - LABEL_LINES if last is None else last
    for _ in range(1000):
        lpc = tiles(rows, S) + int(rng.integers(0, 2))
        top = last - cols * lpc
        if top < first:
            continue
        base = int(rng.integers(first, top + 1))
        words = set((base + b * lpc) * S + e for b in range(cols) for e in range(rows))
        if not any(words & other for other in avoid):
            return (base, lpc), words
    raise AssertionError("no room for a matrix")


def _bank_base(rng, words, depth, avoid=None):
    """A bank region of ``words``, near the start of the bank so that the commands of a
    sequence overlap in the banks (garbage in padded positions then matters), and disjoint
    from the region ``avoid = (base, words)`` if given."""
    bases = [base for base in range(depth - words + 1) if avoid is None or
             base + words <= avoid[0] or avoid[0] + avoid[1] <= base]
    return int(rng.choice(bases[:3]))


def _random_command(rng, config, op):
    """A random command of ``op`` that passes ``gen.spec.isa.check`` and fits the core's command
    fields, with no scratchpad (or weight bank) destination overlapping a source."""
    limits, _ = _hw_widths(config)
    R, C = limits.rows, limits.cols
    m, n = (int(v) for v in rng.integers(1, 3 * max(R, C) + 2, 2))
    batch = int(rng.integers(1, 6))
    mt, nt = tiles(m, R), tiles(n, C)
    ww, aw = limits.weight_words, limits.act_words
    c = dict(op=op)
    sp = lambda prefix, place: dict(zip((f"{prefix}_base", f"{prefix}_lpc"), place))
    if op == "LOAD_COL":
        c.update(n=n, batch=batch, abase=_bank_base(rng, nt * batch, aw),
                 **sp("sp", _place(rng, limits, n, batch)[0]))
    elif op == "LOAD_ROW":
        c.update(m=m, batch=batch, abase=_bank_base(rng, mt * batch, aw),
                 **sp("sp", _place(rng, limits, m, batch)[0]))
    elif op in ("LOAD_W", "STORE_W"):
        c.update(m=m, n=n, wbase=_bank_base(rng, mt * nt, ww),
                 **sp("sp", _place(rng, limits, m, n)[0]))
    elif op == "FORWARD":
        c.update(m=m, n=n, batch=batch, flag=int(rng.integers(0, 2)),
                 wbase=_bank_base(rng, mt * nt, ww), abase=_bank_base(rng, nt * batch, aw),
                 **sp("sp", _place(rng, limits, m, batch)[0]))
    elif op == "BACKWARD":
        out, words = _place(rng, limits, n, batch)
        c.update(m=m, n=n, batch=batch, flag=int(rng.integers(0, 2)),
                 wbase=_bank_base(rng, mt * nt, ww), abase=_bank_base(rng, mt * batch, aw),
                 **sp("sp", out))
        if c["flag"]:
            c.update(sp("sp2", _place(rng, limits, n, batch, [words])[0]))
    elif op == "WGRAD":
        wbase = _bank_base(rng, mt * nt, ww)
        c.update(m=m, n=n, batch=batch, flag=int(rng.integers(0, 2)), wbase=wbase,
                 abase=_bank_base(rng, nt * batch, aw), abase2=_bank_base(rng, mt * batch, aw),
                 scalar=int(_f32([-rng.choice([0.5, 0.125, 0.3, 0.01])])[0]))
        if c["flag"]:
            c.update(wbase2=_bank_base(rng, mt * nt, ww, avoid=(wbase, mt * nt)),
                     scalar2=int(_f32([rng.uniform(0.1, 0.95)])[0]))
    elif op == "LOSS_GRAD":
        y, y_words = _place(rng, limits, m, batch)
        dy, _ = _place(rng, limits, m, batch, [y_words])
        labels, _ = _place(rng, limits, 1, batch, first=limits.sp_lines - LABEL_LINES,
                           last=limits.sp_lines)
        c.update(m=m, batch=batch, scalar=int(_f32([rng.choice([1.0 / batch, 0.3])])[0]),
                 **sp("sp", y), **sp("sp2", dy), **sp("sp3", labels))
    elif op == "GATHER":
        c.update(_random_gather(rng, limits))
    fields = {k: v for k, v in c.items() if k != "table"}
    assert isa.check(isa.decode(isa.encode(**fields)), limits) == ErrorCode.NONE, c
    return c


def _random_gather(rng, limits):
    """A GATHER's fields: 1 to 4 taps, a window of random words (the scratchpad's, so
    -0 and NaN among them where the sequence put them), a table of entries inside it and
    past it (written into the scratchpad by the command's table region, ``table``), and
    a destination apart from both."""
    S = limits.banks
    taps, n, batch = int(rng.integers(1, 5)), int(rng.integers(1, 8)), int(rng.integers(1, 4))
    lines = int(rng.integers(1, 6))
    window, w_words = _place(rng, limits, lines * S, 1)
    table, t_words = _place(rng, limits, taps * n, batch, [w_words])
    dst, _ = _place(rng, limits, n, batch, [w_words, t_words])
    entries = rng.integers(0, lines * S, (taps * n, batch))
    entries[rng.random(entries.shape) < 0.2] = 0xFFFF_FFFF
    entries[rng.random(entries.shape) < 0.1] = lines * S
    return dict(op="GATHER", m=taps, n=n, batch=batch, flag=int(rng.integers(0, 2)),
                sp_base=window[0], sp_lpc=lines, sp2_base=dst[0], sp2_lpc=dst[1],
                sp3_base=table[0], sp3_lpc=table[1], table=entries)


#: Operations of the random sequences and their odds (mostly arithmetic).
OPS = {"LOAD_COL": 2, "LOAD_ROW": 2, "LOAD_W": 2, "STORE_W": 1, "FORWARD": 4, "BACKWARD": 4,
       "WGRAD": 3, "LOSS_GRAD": 1, "GATHER": 2}


def _random_sequence(rng, config, length):
    """Loads first (so that the banks hold data), then ``length`` commands of any kind."""
    odds = np.array(list(OPS.values()), dtype=float)
    ops = ["LOAD_W", "LOAD_COL", "LOAD_ROW"]
    ops += [str(op) for op in rng.choice(list(OPS), length, p=odds / odds.sum())]
    return [_random_command(rng, config, op) for op in ops]


def _initial_scratchpad(rng, config):
    limits, _ = _hw_widths(config)
    words = _random_words(rng, config.core.scratchpad_words)
    labels = rng.integers(0, 2 * max(limits.rows, limits.cols) + 4, LABEL_LINES * limits.banks)
    words[-len(labels):] = labels
    return words


def _dump(config):
    """STORE_W of every word of every weight bank: ``m = R * weight_words``, ``n = C``."""
    R, C = config.core.rows, config.core.cols
    S = bank_count(R, C)
    m = R * config.pe.weight_words
    return Matrix(0, m, C, S), dict(op="STORE_W", m=m, n=C, wbase=0, sp_base=0,
                                    sp_lpc=tiles(m, S))


def rtl(config, scratchpad, commands, reuse_strength=0):
    """The RTL core: the scratchpad after the commands, then the weight banks (dumped with
    STORE_W), the counters, and whether it refused a command."""
    from chrysalis.gen.spec.isa import Opcode
    from chrysalis.sim.verify.core_sim import CoreRunner
    runner = CoreRunner(config)
    runner.reuse_strength = reuse_strength
    S = runner.banks
    lines = len(scratchpad) // S
    whole = Matrix(0, S, lines, S, lpc=1)            # every word: (e, b) is word b*S + e
    runner.write(whole, scratchpad.reshape(lines, S).T)
    members = runner.dut.layout.members
    for command in commands + [_dump(config)[1]]:
        if "table" in command:          # a GATHER's table, written just before it
            table = command["table"]
            runner.write(Matrix(command["sp3_base"], table.shape[0], table.shape[1], S,
                                lpc=command["sp3_lpc"]), table)
        fields = {k: v for k, v in command.items() if k in members and k != "op"}
        runner.command(op=0 if command["op"] == "NONE" else Opcode[command["op"]], **fields)
        if command is commands[-1]:
            runner.read(whole)
    runner.read(_dump(config)[0])
    sp, weights = runner.run()
    counters = {CORE_COUNTERS.get(k, k): v for k, v in runner.counters.items()}
    return sp.T.reshape(-1), weights, counters, runner.errors


def ref(config, scratchpad, commands, reuse_strength=0):
    """The machine model: the same results as :func:`rtl`."""
    machine = Machine(config)
    machine.reuse_strength = reuse_strength
    machine.scratchpad[:] = scratchpad
    for command in commands:
        if "table" in command:          # a GATHER's table, written just before it
            machine.write_matrix(command["sp3_base"], command["sp3_lpc"], command["table"])
        command = {k: v for k, v in command.items() if k != "table"}
        assert machine.execute(command) == ErrorCode.NONE, command
    sp = machine.scratchpad.copy()
    dump, command = _dump(config)
    assert machine.execute(command) == ErrorCode.NONE
    weights = machine.read_matrix(dump.base, dump.lines_per_column, dump.n, dump.batch)
    counters = {k: machine.counters[k]
                for k in (*CORE_COUNTERS.values(), *PRODUCT_COUNTERS, *REUSE_COUNTERS)}
    return sp, weights, counters, [0] * (len(commands) + 1)


def _compare(config, seed, length, products=False):
    rng = np.random.default_rng(seed)
    scratchpad = _initial_scratchpad(rng, config)
    _compare_sequence(config, scratchpad, _random_sequence(rng, config, length), products)


def _compare_sequence(config, scratchpad, commands, products=False, reuse_strength=0):
    """The model's results equal the RTL's; the product and reuse counters too if
    ``products`` (else only where ``CoreRunner`` reports them). Returns the counters."""
    expected = ref(config, scratchpad, commands, reuse_strength)
    got = rtl(config, scratchpad, commands, reuse_strength)
    if products:
        assert set(PRODUCT_COUNTERS + REUSE_COUNTERS) <= set(got[2]), \
            "CoreRunner reports no product or reuse counters"
    # The model counts what the RTL may not report (the product counters of a CoreRunner
    # that reads only the schedule's counters).
    expected = expected[:2] + ({k: v for k, v in expected[2].items() if k in got[2]},) + \
        expected[3:]
    for what, e, g in zip(("scratchpad", "weight banks", "counters", "errors"), expected, got):
        if isinstance(e, np.ndarray):
            bad = np.argwhere(e != g)
            assert not len(bad), (f"{what}: {len(bad)} words differ, first at {bad[0]}: "
                                  f"model {int(e[tuple(bad[0])]):#010x}, "
                                  f"RTL {int(g[tuple(bad[0])]):#010x}; commands {commands}")
        else:
            assert e == g, f"{what}: model {e}, RTL {g}; commands {commands}"
    return got[2]


# Seed 0 of each config in the default suite; seed 1 (another 10 s in Amaranth's simulator
# each) with ``slow``.
@pytest.mark.parametrize("name,seed", [
    pytest.param(name, seed, marks=() if seed == 0 else pytest.mark.slow)
    for name in ("2x2", "2x3", "4x2-tree") for seed in range(2)])
def test_machine_equals_rtl_core_on_random_sequences(name, seed):
    _compare(CONFIGS[name], seed, length=5)


@pytest.mark.parametrize("name", ["2x2", "2x3"])
def test_machine_equals_rtl_core_on_gathers(name):
    """GATHER after GATHER (1 to 4 taps, with and without the mask, entries past the
    window): the whole scratchpad and the core's cycles, as the model's. The 2x3 core's
    latency 3 gives two-step rounds; the 2x2's, one step."""
    config = CONFIGS[name]
    rng = np.random.default_rng(41)
    limits, _ = _hw_widths(config)
    scratchpad = _initial_scratchpad(rng, config)
    commands = [_random_gather(rng, limits) for _ in range(6)]
    assert {c["m"] for c in commands} >= {1, 2} and {c["flag"] for c in commands} == {0, 1}
    counters = _compare_sequence(config, scratchpad, commands)
    assert counters["core_cycles"] == sum(
        core_counts.predict(config, c)["cycles"] - 1 for c in commands) + \
        core_counts.predict(config, _dump(config)[1])["cycles"] - 1


@pytest.mark.slow
@pytest.mark.parametrize("name,seed", [(name, 100 + s) for name in sorted(CONFIGS)
                                       for s in range(2)])
def test_machine_equals_rtl_core_on_longer_random_sequences(name, seed):
    _compare(CONFIGS[name], seed, length=12)


@pytest.mark.parametrize("name,seed", [(name, seed) for name in sorted(DUAL_CONFIGS)
                                       for seed in range(2)])
def test_machine_equals_rtl_dual_core_on_random_sequences(name, seed):
    """The dual-precision core (two outputs per MAC slot, ``DUAL_SEED`` at its reset value
    0) against the model, product counters included."""
    _compare(DUAL_CONFIGS[name], seed, length=5, products=True)


@pytest.mark.parametrize("name", ["2x2", "2x3", "4x2-tree"])
def test_machine_equals_rtl_core_with_garbage_in_the_padding(name):
    """Loads of one shape, then arithmetic of a smaller shape with the same tile counts:
    the padded positions hold the loads' data, and every PE computes with them (FORWARD
    and BACKWARD sum them into their partial sums; WGRAD updates the padded weights, which
    the final STORE_W of the larger shape shows)."""
    config = CONFIGS[name]
    R, C = config.core.rows, config.core.cols
    S = bank_count(R, C)
    rng = np.random.default_rng(7)
    big_m, big_n, batch = 3 * R, 3 * C, 4
    m, n = big_m - 1, big_n - 1
    lines = lambda base, rows: dict(sp_base=base, sp_lpc=tiles(rows, S))
    x, dy, y, dx, w_out, v = 0, 20, 40, 60, 80, 100
    commands = [
        dict(op="LOAD_W", m=big_m, n=big_n, wbase=40, **lines(v, big_m)),
        dict(op="LOAD_W", m=big_m, n=big_n, wbase=2, **lines(w_out, big_m)),
        dict(op="LOAD_COL", n=big_n, batch=batch, abase=0, **lines(x, big_n)),
        dict(op="LOAD_ROW", m=big_m, batch=batch, abase=20, **lines(dy, big_m)),
        dict(op="FORWARD", m=m, n=n, batch=batch, wbase=2, abase=0, **lines(y, m)),
        dict(op="BACKWARD", m=m, n=n, batch=batch, wbase=2, abase=20, flag=1,
             **lines(dx, n), sp2_base=x, sp2_lpc=tiles(big_n, S)),
        dict(op="WGRAD", m=m, n=n, batch=batch, wbase=2, abase=0, abase2=20,
             scalar=int(_f32([-0.5])[0])),
        dict(op="WGRAD", m=m, n=n, batch=batch, wbase=2, abase=0, abase2=20, flag=1,
             wbase2=40, scalar=int(_f32([-0.25])[0]), scalar2=int(_f32([0.5])[0])),
        dict(op="STORE_W", m=big_m, n=big_n, wbase=2, **lines(w_out, big_m)),
        dict(op="STORE_W", m=big_m, n=big_n, wbase=40, **lines(120, big_m)),
    ]
    for command in commands:
        assert isa.check(isa.decode(isa.encode(**command)), Limits.from_config(config)) == \
            ErrorCode.NONE, command
    _compare_sequence(config, _initial_scratchpad(rng, config), commands)


@pytest.mark.parametrize("name", ["2x2", pytest.param("4x2-tree", marks=pytest.mark.slow)])
def test_machine_equals_rtl_core_on_sums_that_underflow_to_minus_zero(name):
    """Products below the smallest normal flush to a signed zero, so accumulators can hold
    -0; the reducers start from +0 (``+0 + -0`` is +0), so the outputs are +0 -- in the
    model as in the RTL."""
    config = CONFIGS[name]
    R, C = config.core.rows, config.core.cols
    S = bank_count(R, C)
    rng = np.random.default_rng(3)
    # No padding: a padded step adds a +0 product, and -0 + +0 is +0 already in the PE.
    m, n, batch = 2 * R, 2 * C, 3
    scratchpad = _initial_scratchpad(rng, config)
    # Every product is about -2**-140: negative, and flushed to -0 in every accumulator.
    tiny = lambda shape, sign: _f32(sign * rng.uniform(1, 2, shape) * 2.0 ** -70)
    w, x, dy = tiny((m, n), 1), tiny((n, batch), -1), tiny((m, batch), -1)
    w_at, x_at, dy_at, y_at, dx_at = 0, 40, 60, 80, 100
    for base, values in ((w_at, w), (x_at, x), (dy_at, dy)):
        scratchpad[Matrix(base, *values.shape, S).addresses()] = values
    lines = lambda base, rows: dict(sp_base=base, sp_lpc=tiles(rows, S))
    commands = [
        dict(op="LOAD_W", m=m, n=n, **lines(w_at, m)),
        dict(op="LOAD_COL", n=n, batch=batch, abase=0, **lines(x_at, n)),
        dict(op="LOAD_ROW", m=m, batch=batch, abase=30, **lines(dy_at, m)),
        dict(op="FORWARD", m=m, n=n, batch=batch, abase=0, **lines(y_at, m)),
        dict(op="BACKWARD", m=m, n=n, batch=batch, abase=30, **lines(dx_at, n)),
    ]
    sp = ref(config, scratchpad, commands)[0]
    assert not sp[Matrix(y_at, m, batch, S).addresses()].any(), "FORWARD: all +0"
    assert not sp[Matrix(dx_at, n, batch, S).addresses()].any(), "BACKWARD: all +0"
    _compare_sequence(config, scratchpad, commands)


def test_fused_wgrad_starts_from_the_weights_and_updates_no_slot():
    """WGRAD with ``fused``: the machine's weights are ``core_model.fused_weight_gradient``,
    the counters show MAC slots and no update slot; with momentum (``flag``) or on a
    dual-precision core the bit is ignored: the separate update runs."""
    config = CONFIGS["2x3-tree"]
    num = cm.CoreNumerics.from_config(config)
    rng = np.random.default_rng(9)
    m, n, batch = 5, 7, 3
    w, x, dy = (_random_words(rng, (m, n)), _random_words(rng, (n, batch)),
                _random_words(rng, (m, batch)))

    def run(config, **fields):
        machine = Machine(config)
        machine.write_matrix(0, 2, w)
        machine.write_matrix(20, 2, x)
        machine.write_matrix(40, 2, dy)
        machine.execute(dict(op="LOAD_W", m=m, n=n, sp_base=0, sp_lpc=2))
        machine.execute(dict(op="LOAD_COL", n=n, batch=batch, abase=0, sp_base=20, sp_lpc=2))
        machine.execute(dict(op="LOAD_ROW", m=m, batch=batch, abase=50, sp_base=40, sp_lpc=2))
        before = dict(machine.counters)
        assert machine.execute(dict(op="WGRAD", m=m, n=n, batch=batch, abase=0, abase2=50,
                                    wbase2=16, **fields)) == ErrorCode.NONE
        grown = {k: machine.counters[k] - before[k] for k in ("mac_slots", "update_slots")}
        machine.execute(dict(op="STORE_W", m=m, n=n, sp_base=60, sp_lpc=2))
        return machine.read_matrix(60, 2, m, n), grown

    got, grown = run(config, fused=1, scalar=0x7F80_0000)    # the scalar is not used
    assert np.array_equal(got, cm.fused_weight_gradient(num, w, dy, x))
    mt, nt = -(-m // 2), -(-n // 3)
    assert grown == {"mac_slots": mt * nt * batch, "update_slots": 0}
    neg_one = 0x3F80_0000                      # scalar = -lr = 1.0: W + q(dW) * 1
    separate, grown = run(config, scalar=neg_one)
    assert grown["update_slots"] == mt * nt
    assert not np.array_equal(separate, got)
    # The bit is ignored with momentum (mu = 0: v = dW) and on a dual-precision core.
    with_momentum, _ = run(config, fused=1, flag=1, scalar=neg_one, scalar2=0)
    assert np.array_equal(with_momentum, separate)
    dual = with_overrides(config, {"mac.dual": "dual-full", "pe.acc_regs": 16})
    ignored, grown = run(dual, fused=1, scalar=neg_one)
    assert grown["update_slots"] == mt * nt
    assert np.array_equal(ignored, run(dual, scalar=neg_one)[0])


def _act_regions(config, sizes, batch, fill):
    """``(start, stop)`` of each layer's X and dY places in the activation banks."""
    R, C = config.core.rows, config.core.cols
    act_x, act_dy, _ = cp._act_places(config, sizes, batch, fill)
    regions = []
    for l in range(len(sizes) - 1):
        regions.append((act_x[l], act_x[l] + tiles(sizes[l] + 1, C) * batch))
        regions.append((act_dy[l], act_dy[l] + tiles(sizes[l + 1], R) * batch))
    return regions


@pytest.mark.parametrize("name,sizes,batch,weight_words,fills", [
    ("2x2", [5, 7, 3], 4, 64, True),        # the ones row inside a tile of results
    ("4x4", [6, 8, 4, 3], 3, 64, True),     # the ones row starts a tile; BACKWARD's extra tile
    ("2x2", [9, 6, 4], 2, 16, True),        # streamed: FORWARD and BACKWARD in chunks
    ("2x2", [9, 7, 4], 2, 16, True),        # streamed, the bias gradient left out
    ("3x3", [5, 13, 3], 2, 64, True),       # not a power of two; the ones tile at line 3
    ("3x3", [5, 7, 3], 2, 64, False),       # the ones tile does not start at a line
    ("2x3", [5, 7, 3], 2, 64, False),       # not square
    ("2x2-value", [5, 7, 3], 4, 64, True),  # dual precision: the products' classes alike
])
def test_hidden_loads_leave_what_the_loads_did(name, sizes, batch, weight_words, fills):
    """A step compiled with ``fill`` (the loads hidden in FORWARD and BACKWARD) leaves the
    scratchpad, the weights and every X and dY place in the activation banks as the step
    with its loads does, with fewer commands where the core can fill."""
    config = {"4x4": with_overrides(TINY, {"core.rows": 4, "core.cols": 4}),
              "3x3": with_overrides(TINY, {"core.rows": 3, "core.cols": 3}),
              "2x2-value": with_overrides(TINY, {"mac.dual": "value", "mac.latency": 3,
                                                 "pe.acc_regs": 16})}.get(
                  name, CONFIGS.get(name))
    config = with_overrides(config, {"pe.weight_words": weight_words})
    runs = []
    for fill in (True, False):
        prog, case, machine = _mlp_machine(config, sizes, batch, seed=3, fill=fill)
        assert prog.fill == (fill and fills)
        for x, labels in zip(case.inputs, case.labels):
            _mlp_step(prog, machine, x, labels)
        runs.append((prog, machine))
    (filled, a), (plain, b) = runs
    # A BACKWARD that fills leaves out the bias input's gradient where it would be padding.
    skipped = [plain.grads[l - 1].addresses()[-1] for l in range(1, len(sizes) - 1)
               if filled.fill and sizes[l] % config.core.cols]
    for words in skipped:
        assert (a.scratchpad[words] != b.scratchpad[words]).any()
        a.scratchpad[words] = b.scratchpad[words]
    assert np.array_equal(a.scratchpad, b.scratchpad)
    assert np.array_equal(a.weight, b.weight)
    for (a0, a1), (b0, b1) in zip(_act_regions(config, sizes, batch, filled.fill),
                                  _act_regions(config, sizes, batch, False)):
        assert np.array_equal(a.act[:, :, a0:a1], b.act[:, :, b0:b1])
    loads = lambda prog: sum(c["op"] in ("LOAD_COL", "LOAD_ROW")
                             for c in prog.setup + prog.step)
    hidden = sum(c.get("fill", 0) for c in filled.step)
    if fills:
        layers = len(sizes) - 1
        assert loads(filled) == loads(plain) - (layers - 1) and hidden >= 2 * (layers - 1)
        # The same work in fewer commands and cycles; every product made alike.
        same = [k for k in COUNTER_NAMES if "products" in k or k.endswith("_slots")]
        assert {k: a.counters[k] for k in same} == {k: b.counters[k] for k in same}
        assert a.counters["commands"] < b.counters["commands"]
        assert a.counters["core_cycles"] < b.counters["core_cycles"]
    else:
        assert filled.step == plain.step and hidden == 0
