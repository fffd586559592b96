# amaranth: UnusedElaboratable=no
"""The core's cycles and counters equal ``sim.golden.core_counts``'s prediction, exactly.

For each config a random sequence of commands (every operation; shapes that are and are not
multiples of R and C; batch 1 and larger; LOSS_GRAD with a few class counts and labels in
and out of range; malformed commands) runs on the RTL with ``CoreRunner``. A monitor
process samples the counters at every edge that takes a command, so each command's counter
growth is known, and counts the MACs and UPDATEs the PEs actually receive. Every field of
:func:`sim.golden.core_counts.predict` must equal the RTL's, command by command, and the totals
:func:`~sim.golden.core_counts.predict_many`. Data values do not change counts, so the operands
are whatever the scratchpad holds (zeros at first).
"""

import itertools
import random
import subprocess
import sys

import numpy as np
import pytest

from chrysalis.hw import core as hw_core
from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.isa import Opcode
from chrysalis.hw.pe import ComputeOp
from chrysalis.sim.golden import core_counts as cc
from chrysalis.sim.verify import core_sim
from chrysalis.sim.verify.core_sim import CoreRunner
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles

SMALL = {"pe.weight_words": 32, "pe.act_words": 64, "core.scratchpad_words": 512}
CONFIGS = {
    "2x2": with_overrides(PRESETS["tiny"], SMALL),
    "2x3": with_overrides(PRESETS["tiny"], {**SMALL, "core.cols": 3, "mac.latency": 3}),
    "3x2": with_overrides(PRESETS["tiny"], {**SMALL, "core.rows": 3, "mac.latency": 3}),
    "4x4": with_overrides(PRESETS["tiny"], {**SMALL, "core.rows": 4, "core.cols": 4,
                                            "mac.latency": 6, "pe.acc_regs": 16}),
    # The neighbour-link tree: its drain passes are levels, not PEs along the bus.
    "4x3-tree": with_overrides(PRESETS["tiny"], {**SMALL, "core.rows": 4, "core.cols": 3,
                                                 "mac.latency": 3, "core.reduction": "tree"}),
    # Dual precision: two outputs per MAC slot (docs/dual_precision.md).
    "2x3-value": with_overrides(PRESETS["tiny"], {**SMALL, "core.cols": 3, "mac.latency": 3,
                                                  "mac.dual": "value", "pe.acc_regs": 16}),
    "3x2-tree-dual-full": with_overrides(PRESETS["tiny"], {
        **SMALL, "core.rows": 3, "mac.dual": "dual-full", "pe.acc_regs": 12,
        "core.reduction": "tree"}),
    # The deepest MAC: the PEs' conversions have their rounding registered, and a loaded
    # activation word lands two cycles after its transfer slot rather than one.
    "2x2-deep": with_overrides(PRESETS["tiny"], {**SMALL, "mac.latency": 12,
                                                 "pe.acc_regs": 26}),
}
OPS = ("LOAD_COL", "LOAD_ROW", "LOAD_W", "STORE_W", "FORWARD", "BACKWARD", "WGRAD",
       "LOSS_GRAD")


# --- the RTL, with a monitor --------------------------------------------------------------

class _Recorder:
    """Filled by the monitor: counters and PE-level MACs / UPDATEs at each taking edge."""

    def __init__(self):
        self.pes = []            # the PEs of the core being simulated
        self.snapshots = []      # per command: counters and PE work before it is taken
        self.pe_work = [0, 0]    # running totals: MACs, UPDATEs issued to PEs


def _monitored(recorder):
    """A Simulator class that also runs a monitor process (patched into ``sim.verify.core_sim``)."""
    base = core_sim.Simulator

    class MonitoredSimulator(base):
        def __init__(self, dut):
            recorder.pes.clear()
            super().__init__(dut)           # elaborates the core: its PEs are recorded
            pes = list(recorder.pes)
            assert len(pes) == dut.rows * dut.cols
            sampled = [dut.cmd_valid, dut.cmd_ready,
                       *(getattr(dut, name) for name in cc.COUNTERS),
                       *(pe.uop.c_op for pe in pes)]

            async def monitor(ctx):
                async for _clk, _rst, valid, ready, *values in ctx.tick().sample(*sampled):
                    counters, ops = values[:len(cc.COUNTERS)], values[len(cc.COUNTERS):]
                    if valid and ready:
                        recorder.snapshots.append(
                            dict(zip(cc.COUNTERS, counters), pe_macs=recorder.pe_work[0],
                                 pe_updates=recorder.pe_work[1]))
                    recorder.pe_work[0] += sum(op == ComputeOp.MAC for op in ops)
                    recorder.pe_work[1] += sum(op in (ComputeOp.UPDATE, ComputeOp.UPDATE_V)
                                               for op in ops)

            self.add_process(monitor)

    return MonitoredSimulator


def _run(monkeypatch, config, actions):
    """Run ``actions`` (("write", matrix, values) or ("cmd", fields), ``op`` as a name) on
    a CoreRunner. Returns, per command, its cycles, the growth of every counter, the MACs
    and UPDATEs the PEs received (``pe_macs``, ``pe_updates``) and the error flag; and the
    final counters. A command's window runs from the edge that takes it to the edge that
    takes the next one (or the end: the last cycles of a command are its ``finish()``
    countdown, with no compute micro-op)."""
    recorder = _Recorder()
    pe_class = hw_core.PE

    class RecordingPE(pe_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            recorder.pes.append(self)

    monkeypatch.setattr(hw_core, "PE", RecordingPE)
    monkeypatch.setattr(core_sim, "Simulator", _monitored(recorder))
    runner = CoreRunner(config)
    for action in actions:
        if action[0] == "write":
            runner.write(action[1], action[2])
        else:
            name = action[1]["op"]
            runner.command(**{**action[1], "op": 0 if name == "NONE" else Opcode[name]})
    runner.run()
    snaps = recorder.snapshots
    commands = sum(1 for action in actions if action[0] == "cmd")
    assert len(snaps) == commands == len(runner.cycles), "the monitor missed a command"
    final = dict(runner.counters, pe_macs=recorder.pe_work[0], pe_updates=recorder.pe_work[1])
    results = []
    for index, cycles in enumerate(runner.cycles):
        after = snaps[index + 1] if index + 1 < len(snaps) else final
        # The product counters depend on the data: sim.golden.core_counts does not predict them.
        delta = {name: after[name] - snaps[index][name]
                 for name in cc.COUNTERS + ("pe_macs", "pe_updates")}
        results.append(dict(cycles=cycles, **delta, error=runner.errors[index]))
    return results, {name: final[name] for name in cc.COUNTERS}


# --- commands -----------------------------------------------------------------------------

def _shapes(config, rng, count):
    """Layer shapes (m, n, batch): fixed corner cases, then random ones that fit."""
    R, C = config.core.rows, config.core.cols
    # Batch 1; non-multiples of R and C; outputs for at least three groups with one step,
    # so the compute engine stalls for the drain (FORWARD: 4R x 1, BACKWARD: 1 x 4C).
    fixed = [(R, C, 1), (2 * R + 1, C + 1, 1), (1, 3 * C - 1, 3), (4 * R, 1, 5),
             (1, 4 * C - 1, 5)]
    shapes = []
    for shape in fixed + [None] * count:
        if shape is not None:
            m, n, batch = shape
        else:
            m, n, batch = rng.randint(1, 4 * R), rng.randint(1, 4 * C), rng.randint(1, 5)
        mt, nt = tiles(m, R), tiles(n, C)
        if mt * nt > config.pe.weight_words or (mt + nt) * batch > config.pe.act_words:
            continue
        shapes.append((m, n, batch))
    return shapes


def _layer_commands(config, m, n, batch, rng):
    """The commands of one layer, placed as ``tests/hw/test_core.py`` places them."""
    R, C = config.core.rows, config.core.cols
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    w, w_out = alloc.matrix(m, n, "W"), alloc.matrix(m, n, "W out")
    x, y = alloc.matrix(n, batch, "X"), alloc.matrix(m, batch, "Y")
    dy, dx = alloc.matrix(m, batch, "dY"), alloc.matrix(n, batch, "dX")
    act_x, act_dy = 0, tiles(n, C) * batch
    wbase = rng.randint(0, config.pe.weight_words - tiles(m, R) * tiles(n, C))
    lines = lambda mat, p="sp": {f"{p}_base": mat.base, f"{p}_lpc": mat.lines_per_column}
    size = dict(m=m, n=n, batch=batch, wbase=wbase)
    return [
        dict(op="LOAD_W", **size, **lines(w)),
        dict(op="STORE_W", **size, **lines(w_out)),
        dict(op="LOAD_COL", n=n, batch=batch, abase=act_x, **lines(x)),
        dict(op="FORWARD", **size, abase=act_x, flag=rng.randint(0, 1), **lines(y)),
        dict(op="LOAD_ROW", m=m, batch=batch, abase=act_dy, **lines(dy)),
        dict(op="BACKWARD", **size, abase=act_dy, flag=rng.randint(0, 1), **lines(dx),
             **lines(x, "sp2")),
        dict(op="WGRAD", **size, abase=act_x, abase2=act_dy, scalar=0xBE00_0000),
        # With momentum: the velocities somewhere in the weight bank (their values do not
        # matter for the counts).
        dict(op="WGRAD", **size, abase=act_x, abase2=act_dy, scalar=0xBE00_0000,
             scalar2=0x3F00_0000, flag=1,
             wbase2=rng.randint(0, config.pe.weight_words - tiles(m, R) * tiles(n, C))),
        # The update fused into the gradient pass (ignored on a dual-precision core, and
        # with momentum).
        dict(op="WGRAD", **size, abase=act_x, abase2=act_dy, fused=1),
        dict(op="WGRAD", **size, abase=act_x, abase2=act_dy, scalar=0xBE00_0000,
             scalar2=0x3F00_0000, flag=1, fused=1, wbase2=0),
        # The results also loaded into the activation banks (ignored on a core that is not
        # square), each over the region the command does not read.
        dict(op="FORWARD", **size, abase=act_x, flag=1, fill=1, abase2=act_dy, **lines(y)),
        dict(op="BACKWARD", **size, abase=act_dy, flag=1, fill=1, abase2=act_x, **lines(dx),
             **lines(x, "sp2")),
    ]


def _loss_actions(config, classes, batch, labels=None):
    """A LOSS_GRAD command (and the write of its labels, if given)."""
    alloc = Allocator(config.core.scratchpad_words, bank_count(config.core.rows,
                                                               config.core.cols))
    y, dy, lab = (alloc.matrix(classes, batch), alloc.matrix(classes, batch),
                  alloc.matrix(1, batch))
    actions = []
    if labels is not None:
        actions.append(("write", lab, np.asarray(labels, dtype=np.uint64)[None, :]))
    command = dict(op="LOSS_GRAD", m=classes, batch=batch, scalar=0x3F00_0000,
                   sp_base=y.base, sp_lpc=y.lines_per_column,
                   sp2_base=dy.base, sp2_lpc=dy.lines_per_column,
                   sp3_base=lab.base, sp3_lpc=lab.lines_per_column)
    actions.append(("cmd", command))
    return actions


LOSS_CASES = {      # (classes, batch, labels or None = zeros in the scratchpad)
    "2x2": [(3, 2, None), (10, 1, None), (4, 3, [3, 4, 0xFFFF_FFFF]),
            (3, 19, None)],         # 19 samples: a chunk of 16 and one of 3
    "2x3": [(1, 2, None), (5, 2, [0, 5])],
    "3x2": [(3, 1, None), (2, 2, [1, 7])],
    "4x4": [(3, 2, [2, 3]), (10, 1, None)],
    "4x3-tree": [(3, 2, None)],
    "2x3-value": [(3, 2, None)],
    "3x2-tree-dual-full": [(2, 2, None)],
    "2x2-deep": [(3, 2, None)],
}
SHAPE_COUNT = {"2x2": 8, "2x3": 6, "3x2": 6, "4x4": 4, "4x3-tree": 5, "2x3-value": 6,
               "3x2-tree-dual-full": 5, "2x2-deep": 5}


def _sequence(name):
    config = CONFIGS[name]
    rng = random.Random(f"core-counts-{name}")
    actions, labels = [], []
    commands = []

    def add(command, lab=None):
        actions.append(("cmd", command))
        commands.append(command)
        labels.append(lab)

    add(dict(op="NONE"))
    for m, n, batch in _shapes(config, rng, SHAPE_COUNT[name]):
        for command in _layer_commands(config, m, n, batch, rng):
            add(command)
    add(dict(op="FORWARD", m=3, n=0, batch=2))
    add(dict(op="LOAD_ROW", m=2, batch=0))
    for classes, batch, lab in LOSS_CASES[name]:
        more = _loss_actions(config, classes, batch, lab)
        actions.extend(more[:-1])
        add(more[-1][1], lab)
    return config, actions, commands, labels


# 2x3, 3x2 and 4x4 are `slow`: the default suite keeps odd columns (2x3-value, 4x3-tree),
# odd rows (3x2-tree-dual-full) and four rows (4x3-tree) on the other configs; 4x4 is the
# longest of them (about a twentieth of the default suite's time).
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in ("2x3", "3x2", "4x4") else name
    for name in sorted(CONFIGS)])
def test_rtl_counts_equal_prediction(name, monkeypatch):
    config, actions, commands, labels = _sequence(name)
    R, C = config.core.rows, config.core.cols
    got, final = _run(monkeypatch, config, actions)
    assert {c["op"] for c in commands} >= set(OPS)
    for op in ("FORWARD", "BACKWARD"):     # the stall path is exercised
        # At latency 12 a group's pass outlasts the drain: no shape stalls.
        stalls = name != "2x2-deep"
        assert any(c["op"] == op and r["stall_cycles"] for c, r in zip(commands, got)) == stalls
    for index, (command, lab, rtl) in enumerate(zip(commands, labels, got)):
        expected = cc.predict(config, command, labels=lab)
        measured = {key: rtl[key] for key in cc.FIELDS}
        assert measured == expected, f"command {index}: {command}"
        assert rtl["error"] == int(cc.is_malformed(command))
        # The relations between the counters.
        assert rtl["busy_cycles"] == rtl["cycles"] - 1
        assert (rtl["mac_slots"] + rtl["update_slots"] + rtl["stall_cycles"]
                <= rtl["busy_cycles"])
        # PE MACs and UPDATEs: every PE executes every compute slot (SIMD).
        assert rtl["pe_macs"] == rtl["mac_slots"] * R * C, f"command {index}: {command}"
        assert rtl["pe_updates"] == rtl["update_slots"] * R * C, f"command {index}: {command}"
    # The counters accumulate over the sequence: the sums of the predictions.
    total = cc.predict_many(config, commands, labels=labels)
    assert final == {key: total[key] for key in cc.COUNTERS}
    assert total["cycles"] == sum(rtl["cycles"] for rtl in got)
    assert total["busy_cycles"] == total["cycles"] - len(commands)


# --- pure Python: the closed forms, the cycle model and the relations ---------------------

def _random_configs():
    rng = random.Random(7)
    for R, C, L in itertools.product((1, 2, 3, 4, 5), (1, 2, 3, 5), (2, 3, 6, 8)):
        for acc in sorted({2 * (L + 1), 2 * (L + 1) + 1, 20, 32}):
            reduction = rng.choice(("bus", "tree"))
            # A 1x1 core has one scratchpad bank: a DMA beat carries one word.
            yield rng, with_overrides(PRESETS["tiny"], {"core.rows": R, "core.cols": C,
                                                        "mac.latency": L,
                                                        "pe.acc_regs": acc,
                                                        "core.reduction": reduction,
                                                        "host.axi_data_width": 32})


def test_closed_forms_equal_cycle_model():
    cases = 0
    for rng, config in _random_configs():
        for _ in range(12):
            op = rng.choice(OPS)
            command = dict(op=op, m=rng.randint(1, 24), n=rng.randint(1, 24),
                           batch=rng.randint(1, 7), flag=rng.randint(0, 1),
                           fused=rng.randint(0, 1))
            lab = None
            if op == "LOSS_GRAD" and rng.random() < 0.5:
                lab = [rng.randint(0, command["m"] + 2) for _ in range(command["batch"])]
            assert cc.predict(config, command, lab) == cc.trace(config, command, lab), \
                (config.core.rows, config.core.cols, config.mac.latency, command, lab)
            cases += 1
    assert cases > 2000


def test_forward_stalls_when_the_drain_is_the_bottleneck():
    # 4x4, G = 8: a group computes in 8 * nt cycles and drains in 1 + 8 * 4 = 33.
    config = CONFIGS["4x4"]
    two = cc.predict(config, dict(op="FORWARD", m=16, n=4, batch=4))    # 2 groups
    many = cc.predict(config, dict(op="FORWARD", m=16, n=4, batch=8))   # 4 groups, nt = 1
    slow = cc.predict(config, dict(op="FORWARD", m=16, n=32, batch=8))  # nt = 8
    assert two["stall_cycles"] == 0          # two buffers: the first two groups never wait
    assert many["stall_cycles"] == 2 * (33 - 8)
    assert slow["stall_cycles"] == 0
    assert cc.trace(config, dict(op="FORWARD", m=16, n=4, batch=8)) == many


def test_counter_relations():
    for rng, config in _random_configs():
        R, C = config.core.rows, config.core.cols
        m, n, batch = rng.randint(1, 20), rng.randint(1, 20), rng.randint(1, 6)
        mt, nt = tiles(m, R), tiles(n, C)
        get = lambda op: cc.predict(config, dict(op=op, m=m, n=n, batch=batch))
        results = {op: get(op) for op in OPS}
        for result in results.values():
            assert result["busy_cycles"] == result["cycles"] - 1
        assert results["LOAD_COL"]["bus_words"] == n * batch
        assert results["LOAD_ROW"]["bus_words"] == m * batch
        assert results["LOAD_W"]["bus_words"] == results["STORE_W"]["bus_words"] == m * n
        # Every output's partial sums cross the bus once per PE along it (with the tree,
        # only the finished sum crosses it).
        tree = config.core.reduction == "tree"
        assert results["FORWARD"]["bus_words"] == (1 if tree else C) * m * batch
        assert results["BACKWARD"]["bus_words"] == (1 if tree else R) * n * batch
        for op in ("FORWARD", "BACKWARD", "WGRAD"):
            # PE MACs = mac_slots x R x C, the layer's MACs plus padding.
            pe_macs = results[op]["mac_slots"] * R * C
            assert pe_macs == mt * R * nt * C * batch >= m * n * batch
        assert results["WGRAD"]["update_slots"] * R * C == mt * R * nt * C
        assert results["WGRAD"]["stall_cycles"] == 0
        assert results["LOSS_GRAD"]["mac_slots"] == results["LOSS_GRAD"]["bus_words"] == 0


def test_predict_many_and_malformed_commands():
    config = CONFIGS["2x3"]
    commands = [dict(op="LOAD_COL", n=5, batch=2), dict(op="FORWARD", m=4, n=5, batch=2),
                dict(op="NONE"), dict(op="WGRAD", m=4, n=0, batch=1),
                dict(op=Opcode.BACKWARD, m=4, n=5, batch=2)]
    total = cc.predict_many(config, commands)
    singles = [cc.predict(config, c) for c in commands]
    assert total == {key: sum(s[key] for s in singles) for key in cc.FIELDS}
    assert total["busy_cycles"] == total["cycles"] - len(commands)
    assert singles[2] == singles[3] == dict(cycles=1, **dict.fromkeys(cc.COUNTERS, 0))
    assert singles[4] == cc.predict(config, dict(commands[4], op="BACKWARD"))
    with pytest.raises(ValueError):
        cc.predict(config, dict(op="LOSS_GRAD", m=3, batch=2), labels=[0])


def test_rtl_compiled_training_step_equals_prediction(monkeypatch):
    """The commands ``sim.compile.compiler`` emits (op names), as a whole training step."""
    from chrysalis.sim.compile.compiler import compile_mlp
    config = CONFIGS["2x3"]
    prog = compile_mlp(config, [4, 6, 3], 3, 0.1)
    commands = prog.load_weights + prog.step + prog.store_weights
    got, final = _run(monkeypatch, config, [("cmd", c) for c in commands])
    R, C = config.core.rows, config.core.cols
    for command, rtl in zip(commands, got):
        assert {key: rtl[key] for key in cc.FIELDS} == cc.predict(config, command), command
        assert rtl["pe_macs"] == rtl["mac_slots"] * R * C
    total = cc.predict_many(config, commands)
    assert final == {key: total[key] for key in cc.COUNTERS}
    assert total["cycles"] == sum(rtl["cycles"] for rtl in got)


def test_no_amaranth_import():
    code = ("import sys, sim.golden.core_counts; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('amaranth', 'cocotb')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("overrides", [{"core.sfu": "barrel"},
                                       {"core.rows": 1, "core.cols": 1,
                                        "host.axi_data_width": 32}],
                         ids=["barrel-sfu", "one-lane"])
def test_loss_grad_counts_of_other_loss_units(overrides, monkeypatch):
    """LOSS_GRAD with the barrel special-function unit (``core.sfu``), and on a 1x1 core
    (one lane in the maximum pass): the RTL's cycles equal the prediction."""
    config = with_overrides(CONFIGS["3x2"], overrides)
    actions, commands, labels = [], [], []
    for classes, batch, lab in ((3, 2, None), (5, 9, [4, 5, 0, 1, 2, 3, 4, 0xFFFF_FFFF, 1]),
                                (1, 1, None)):
        more = _loss_actions(config, classes, batch, lab)
        actions.extend(more)
        commands.append(more[-1][1])
        labels.append(lab)
    got, _ = _run(monkeypatch, config, actions)
    for index, (command, lab, rtl) in enumerate(zip(commands, labels, got)):
        expected = cc.predict(config, command, labels=lab)
        assert {key: rtl[key] for key in cc.FIELDS} == expected, f"command {index}"
