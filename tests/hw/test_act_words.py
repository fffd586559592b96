# amaranth: UnusedElaboratable=no
"""The activation banks hold operand-format words: the core and the golden machine.

Every word written into a PE's activation bank is converted to the operand format on the
way in (``hw.pe.PE``; tests/hw/test_pe.py checks the bank itself). Here, on whole cores in
Amaranth's simulator and on ``sim.golden.machine.Machine``: activations and gradients whose
conversion rounds, flushes to zero or saturates go through ``LOAD_COL`` / ``LOAD_ROW`` and
come out of ``FORWARD`` / ``BACKWARD`` by an identity matrix as their operand-format values;
the machine's banks hold those values; and BACKWARD's ReLU mask is the fp32 activation
from the scratchpad, not the operand-format word in the banks (a positive activation that
the operand format flushes to zero still passes its gradient).
"""

import numpy as np
import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.formats import FP32
from chrysalis.gen.spec.isa import ErrorCode, Opcode
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.machine import Machine
from chrysalis.sim.verify.core_sim import CoreRunner

CONFIGS = {operand: with_overrides(PRESETS["tiny"], {"mac.operand": operand})
           for operand in ("fp16", "bf16", "fp32")}

#: fp32 words the operand formats round (ties to even), flush (below fp16's and bf16's
#: smallest normals, fp32 subnormals), saturate (above fp16's largest; the all-ones
#: exponent, a normal number here) or keep (-0, exact values).
_F32 = [1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8, -(1.0 + 3 * 2.0 ** -8),
        2.0 ** -20, -(2.0 ** -20), 70000.0, -1e30, -0.0, 3.0, -0.1, 6.1e-5]
EDGE = np.concatenate([nx.from_float32(np.asarray(_F32, dtype=np.float32)),
                       np.array([0x00000001, 0x80000003, 0x7FC00000], dtype=np.uint64),
                       nx.from_float32(np.float32([2.0 ** -126]))])
#: The positive activation that fp16 and bf16 flush to zero (its mask element).
TINY_POSITIVE = nx.fp32_bits(2.0 ** -20)

M = N = 4
BATCH = 4


def _matrices():
    w = nx.from_float32(np.eye(M, N, dtype=np.float32))
    x = EDGE.reshape(N, BATCH)
    dy = np.roll(EDGE, -5).reshape(M, BATCH)
    return w, x, dy


def _commands(mats, act):
    def lines(key, prefix="sp"):
        return {f"{prefix}_base": mats[key].base, f"{prefix}_lpc": mats[key].lines_per_column}
    return [
        dict(op=Opcode.LOAD_W, m=M, n=N, **lines("w")),
        dict(op=Opcode.LOAD_COL, n=N, batch=BATCH, abase=act["x"], **lines("x")),
        dict(op=Opcode.FORWARD, m=M, n=N, batch=BATCH, abase=act["x"], **lines("y")),
        dict(op=Opcode.LOAD_ROW, m=M, batch=BATCH, abase=act["dy"], **lines("dy")),
        dict(op=Opcode.BACKWARD, m=M, n=N, batch=BATCH, abase=act["dy"], flag=1,
             **lines("dx"), **lines("x", "sp2")),
    ]


def _layout(config):
    R, C = config.core.rows, config.core.cols
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    mats = {key: alloc.matrix(rows, BATCH if key != "w" else N, key)
            for key, rows in (("w", M), ("x", N), ("y", M), ("dy", M), ("dx", N))}
    return mats, {"x": 0, "dy": tiles(N, C) * BATCH}


def rtl(config):
    w, x, dy = _matrices()
    mats, act = _layout(config)
    core = CoreRunner(config)
    for key, values in (("w", w), ("x", x), ("dy", dy)):
        core.write(mats[key], values)
    for command in _commands(mats, act):
        core.command(**command)
        if command["op"] == Opcode.FORWARD:
            core.read(mats["y"])
        elif command["op"] == Opcode.BACKWARD:
            core.read(mats["dx"])
    return core.run()


def golden(config):
    """``(y, dx, machine)`` of the golden machine."""
    w, x, dy = _matrices()
    mats, act = _layout(config)
    machine = Machine(config)
    for key, values in (("w", w), ("x", x), ("dy", dy)):
        machine.write_matrix(mats[key].base, mats[key].lines_per_column, values)
    out = []
    for command in _commands(mats, act):
        assert machine.execute(command) == ErrorCode.NONE
        if command["op"] in (Opcode.FORWARD, Opcode.BACKWARD):
            key = "y" if command["op"] == Opcode.FORWARD else "dx"
            out.append(machine.read_matrix(mats[key].base, mats[key].lines_per_column,
                                           mats[key].n, BATCH))
    return (*out, machine, act)


def _widened(config, words):
    """The operand-format values of fp32 ``words``, as fp32 words."""
    op = config.mac.operand
    return nx.fconvert(nx.fconvert(words, FP32, op), op, FP32)


def test_edge_words_are_changed_by_the_narrow_formats():
    """The edge words mean something: fp16 and bf16 change them differently, fp32 only
    flushes its subnormals."""
    fp16, bf16, fp32 = (_widened(CONFIGS[name], EDGE) for name in ("fp16", "bf16", "fp32"))
    assert (fp16 != EDGE).sum() >= 8 and (bf16 != EDGE).sum() >= 6
    assert not np.array_equal(fp16, bf16)
    assert (fp32 != EDGE).sum() == 2             # the subnormals 0x00000001, 0x80000003


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_machine_banks_hold_operand_values(name):
    config = CONFIGS[name]
    _, x, dy = _matrices()
    _, _, machine, act = golden(config)
    R, C = config.core.rows, config.core.cols
    # X[t*C + c][b] is at abase + t*B + b of every PE of column c (LOAD_COL).
    held = machine.act[0, :, act["x"]:act["x"] + tiles(N, C) * BATCH]
    loaded = x.reshape(tiles(N, C), C, BATCH).transpose(1, 0, 2).reshape(C, -1)
    assert np.array_equal(held, _widened(config, loaded))
    held = machine.act[:, 0, act["dy"]:act["dy"] + tiles(M, R) * BATCH]
    loaded = dy.reshape(tiles(M, R), R, BATCH).transpose(1, 0, 2).reshape(R, -1)
    assert np.array_equal(held, _widened(config, loaded))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_core_multiplies_operand_values_and_masks_with_fp32(name):
    config = CONFIGS[name]
    num = cm.CoreNumerics.from_config(config)
    w, x, dy = _matrices()
    y_rtl, dx_rtl = rtl(config)
    y_ref, dx_ref, _, _ = golden(config)
    assert np.array_equal(y_rtl, y_ref) and np.array_equal(dx_rtl, dx_ref)
    assert np.array_equal(y_ref, cm.forward(num, w, x))
    assert np.array_equal(dx_ref, cm.relu_mask(num, cm.backward_dx(num, w, dy), x))
    # By the identity, each non-zero output is its input's operand-format value (a zero
    # may lose its sign in the sum).
    q = _widened(config, x)
    nonzero = nx.to_float(q, FP32) != 0
    assert nonzero.sum() >= 8
    assert np.array_equal(y_rtl[nonzero], q[nonzero])
    # The activation the narrow formats flush to zero still passes its gradient: the mask
    # is the scratchpad's fp32 word.
    (row,), (col,) = np.nonzero(x == TINY_POSITIVE)
    assert nx.to_float(dx_rtl[row, col], FP32) != 0
    assert dx_rtl[row, col] == _widened(config, dy)[row, col]
