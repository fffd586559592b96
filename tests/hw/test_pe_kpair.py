# amaranth: UnusedElaboratable=no
"""The k-paired dual-precision PE (``hw.pe.PE`` with ``pairing="k"``) against its
transaction-level golden model (``sim.golden.pe_model.PEModel`` with a ``DualPath``) on random
hazard-free programs: the words sent (partial sums and weights), bit for bit.

The programs are ``tests.hw.test_pe``'s, with pair 1 added to most of their plain MACs: a
random direction in the 2x2 blocks for the weight and the activation operands, a random
``random``-policy bit. Pair 1 is left out where its word could be stale: a held operand (the
hold rule covers pair 0's word only) or a weight whose write-back is still in flight.
"""

import numpy as np
import pytest

from chrysalis.gen.spec.formats import BF16, FP8_E4M3, FP16
from chrysalis.hw.pe import PE
from chrysalis.sim.golden.dual import DualPath
from chrysalis.sim.golden.pe_model import PEModel
from tests.hw.test_pe import Program, run_pe

WORDS, ACCS = 16, 8


def add_pairs(program, rng, latency):
    """Give most plain MACs of ``program`` a pair 1; returns how many got one."""
    in_flight = []                     # (first cycle the word may be read, weight address)
    landing = {}                       # activation address -> first cycle it may be read
    paired = 0
    for t, (uop, _, _) in enumerate(program.steps):
        c_op = uop.get("c_op")
        if c_op == "MAC" and not (uop.get("c_init_w") or uop.get("c_to_w") or uop.get("c_hold")
                                  or uop.get("c_hold_b")) and rng.random() < 0.8:
            w_rows, a_rows = bool(rng.integers(2)), bool(rng.integers(2))
            partner = uop["waddr"] ^ (2 if w_rows else 1)
            a_partners = [addr ^ (2 if a_rows else 1) for addr in
                          [uop.get("aaddr", 0)] + ([uop.get("aaddr2", 0)] if uop.get("a_act")
                                                   else [])]
            weight_landed = uop.get("a_act") or all(not (a == partner and t < ready)
                                                    for ready, a in in_flight)
            if weight_landed and all(landing.get(a, 0) <= t for a in a_partners):
                uop.update(pair1=1, rand=int(rng.integers(2)), w_rows=w_rows, a_rows=a_rows)
                paired += 1
        if c_op in ("UPDATE", "UPDATE_V") or (c_op == "MAC" and uop.get("c_to_w")):
            in_flight.append((t + latency + 2, uop["waddr"]))
        if uop.get("t_op") in ("ACT_FROM_ROW", "ACT_FROM_COL"):
            # An activation word lands a cycle after its transfer slot (hw.pe.PE).
            landing[uop["t_addr"]] = t + 2
    return paired


def ref(program, operand, policy):
    model = PEModel(operand, WORDS, WORDS, ACCS, dual=DualPath(operand, 2, policy))
    for uop, row_in, col_in in program.steps:
        model.step(uop, row_in=row_in, col_in=col_in, scalar=program.scalar,
                   scalar2=program.scalar2)
    return model.sent


def rtl(program, operand, policy, latency):
    dut = PE(operand, weight_words=WORDS, act_words=WORDS, acc_regs=ACCS,
             mac_latency=latency, dual=policy, low_man_bits=2, pairing="k")
    return run_pe(dut, program)


@pytest.mark.parametrize("operand,policy,latency,seed", [
    (BF16, "value", 6, 1), (BF16, "dual-full", 3, 2), (FP16, "random", 2, 3),
    (FP8_E4M3, "static", 4, 4),
    # Every policy, format and latency class above; a second value case is slow.
    pytest.param(FP16, "value", 3, 5, marks=pytest.mark.slow)])
def test_kpair_pe_rtl_equals_model(operand, policy, latency, seed):
    rng = np.random.default_rng(seed)
    program = Program(rng, weight_words=WORDS, act_words=WORDS, acc_regs=ACCS,
                      latency=latency, length=2000)
    paired = add_pairs(program, rng, latency)
    assert paired > 100
    expected = ref(program, operand, policy)
    assert len(expected) > 100
    # Pair 1 matters: without it the model sends other words.
    unpaired = ref(Program(np.random.default_rng(seed), weight_words=WORDS, act_words=WORDS,
                           acc_regs=ACCS, latency=latency, length=2000), operand, policy)
    assert unpaired != expected
    sent, made = rtl(program, operand, policy, latency)
    assert sent == expected
    # Every MAC made its pair 0's product, and the k-paired ones pair 1's too: two MACs in
    # the slot of a k-pair.
    macs = [u for u, _, _ in program.steps if u.get("c_op") == "MAC"]
    assert made == [len(macs), paired]


@pytest.mark.parametrize("kwargs,message", [
    ({"pairing": "steps"}, "pairing must be 'outputs' or 'k', not 'steps'"),
    ({"pairing": "k", "dual": "single"}, "pairing 'k' needs a dual policy, not 'single'"),
    ({"pairing": "k", "weight_words": 18}, "weight_words must be a multiple of 4 with "
                                           "pairing 'k' .* not 18"),
    ({"pairing": "k", "reuse_entries": 4}, "reuse_entries must be 0, not 4"),
])
def test_bad_kpair_pe_parameters(kwargs, message):
    args = {"dual": "value", **kwargs}
    with pytest.raises(ValueError, match=message):
        PE(BF16, **args)
