"""The schedule of a dual-precision core in ``sim.golden.core_counts``: the closed forms
(:func:`~sim.golden.core_counts.predict`) equal the cycle-by-cycle model of the engines
(:func:`~sim.golden.core_counts.trace`), and both give the dual schedule (two outputs per MAC slot).

Pure Python. The RTL's counts are compared with these in ``tests/hw/test_core_counts.py``.
"""

import itertools

import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.sim.golden import core_counts as cc

OPS = ("FORWARD", "BACKWARD", "WGRAD")


def _config(R, C, L, acc, reduction, policy):
    return with_overrides(PRESETS["tiny"], {"core.rows": R, "core.cols": C, "mac.latency": L,
                                            "pe.acc_regs": acc, "core.reduction": reduction,
                                            "mac.dual": policy, "host.axi_data_width": 32})


def _dual_configs():
    """Dual configs over array shapes, latencies, group sizes (the smallest the dual rule
    allows, ``4 * (L + 1)``, and larger) and both reductions."""
    for R, C, L in itertools.product((1, 2, 3, 4), (1, 2, 3, 5), (2, 3, 5)):
        for acc in sorted({4 * (L + 1), 4 * (L + 1) + 4, 32}):
            for reduction in ("bus", "tree"):
                policy = ("dual-full", "value", "static", "random")[(R + C + acc) % 4]
                yield _config(R, C, L, acc, reduction, policy)


def test_dual_closed_forms_equal_cycle_model():
    cases = 0
    for config in _dual_configs():
        for op, flag in itertools.product(OPS, (0, 1)):
            # Odd and even output counts, one group and several, shapes that are and are
            # not multiples of R and C, batch 1.
            for m, n, batch in ((1, 1, 1), (5, 3, 3), (7, 9, 2), (13, 6, 5), (3, 17, 4)):
                command = dict(op=op, m=m, n=n, batch=batch, flag=flag)
                assert cc.predict(config, command) == cc.trace(config, command), \
                    (config.core.rows, config.core.cols, config.mac.latency,
                     config.pe.acc_regs, config.core.reduction, command)
                cases += 1
    assert cases > 2000


@pytest.mark.parametrize("policy", ["dual-full", "value", "static", "random"])
def test_policies_share_the_schedule(policy):
    """The schedule depends on the number of streams, not on the policy."""
    config = _config(2, 3, 3, 16, "bus", policy)
    reference = _config(2, 3, 3, 16, "bus", "dual-full")
    for op in OPS:
        command = dict(op=op, m=7, n=5, batch=3, flag=1)
        assert cc.predict(config, command) == cc.predict(reference, command)


def test_dual_schedule_by_hand():
    # 2x2, L = 3, G = 8: a MAC pass over a group takes G/2 = 4 slots, and the drain does
    # not wait (L + 1 - 4 = 0).
    config = _config(2, 2, 3, 16, "bus", "value")
    end = 3 + cc.FINISH_EXTRA
    # FORWARD m=4, n=6, batch=3: mt=2, nt=3, 6 outputs in one group. P = 4*3 = 12,
    # D = 0 + 8 * 2 = 16; the drain ends at P + 1 + D = 29, finish() at 30.
    got = cc.predict(config, dict(op="FORWARD", m=4, n=6, batch=3))
    assert got == dict(cycles=30 + end, mac_slots=3 * 3, update_slots=0, busy_cycles=29 + end,
                       stall_cycles=0, bus_words=2 * 4 * 3)
    # BACKWARD m=4, n=5, batch=3: nt=3, 9 outputs (the 9th unpaired) in 2 groups, mt=2
    # steps. P = 8, D = 16: f = 8 + 1 + 16 + 1 * 17 = 42; 5 slots per step.
    got = cc.predict(config, dict(op="BACKWARD", m=4, n=5, batch=3))
    assert (got["cycles"], got["mac_slots"], got["stall_cycles"]) == (43 + end, 5 * 2, 0)
    # WGRAD m=4, n=6, batch=3 with momentum: 6 outputs in one group; 4 slots per MAC step,
    # 8 per velocity and update pass.
    got = cc.predict(config, dict(op="WGRAD", m=4, n=6, batch=3, flag=1))
    assert got == dict(cycles=4 * 3 + 8 * 2 + 1 + end, mac_slots=3 * 3, update_slots=2 * 6,
                       busy_cycles=4 * 3 + 8 * 2 + end, stall_cycles=0, bus_words=0)


def test_dual_halves_the_mac_passes():
    """Against the single schedule of the same array: the MAC slots of an even output count
    halve, the updates and bus words stay, and the drain becomes the bottleneck sooner."""
    for R, C, reduction in ((2, 2, "bus"), (3, 2, "tree"), (4, 4, "bus")):
        single = _config(R, C, 3, 16, reduction, "single")
        dual = _config(R, C, 3, 16, reduction, "random")
        for op, (m, n, batch) in itertools.product(OPS, ((8, 8, 4), (16, 4, 8), (5, 7, 2))):
            command = dict(op=op, m=m, n=n, batch=batch)
            s, d = cc.predict(single, command), cc.predict(dual, command)
            mt, nt = -(-m // R), -(-n // C)
            outputs, steps = dict(FORWARD=(mt * batch, nt), BACKWARD=(nt * batch, mt),
                                  WGRAD=(mt * nt, batch))[op]
            assert s["mac_slots"] == outputs * steps
            assert d["mac_slots"] == -(-outputs // 2) * steps
            assert (d["update_slots"], d["bus_words"]) == (s["update_slots"], s["bus_words"])
            assert d["cycles"] < s["cycles"]
            assert d["stall_cycles"] >= s["stall_cycles"]
