# amaranth: UnusedElaboratable=no
"""PEs under Icarus and Verilator: the words each sends and the products each pair makes,
bit for bit with its golden model (``sim.golden.pe_model.PEModel``) on a random hazard-free
program, the same check as ``tests/hw/test_pe.py`` and ``tests/hw/test_pe_kpair.py`` run in
Amaranth's simulator. The cases: the k-paired dual-precision PE, and a single bf16 PE at
the deepest MAC latency, 12, where the operand conversion, the multiplier and the adder's
rounding and normalization each have a register of their own. (Output-paired and single
PEs at the default latency run in every core test.)"""

import json

import numpy as np
import pytest
from amaranth.back import verilog

from chrysalis.gen.spec.formats import BF16
from chrysalis.hw.pe import PE
from chrysalis.sim.verify.runner import run_testbench
from chrysalis.sim.verify.verilog_cache import cached_design
from tests.hw import test_pe, test_pe_kpair
from tests.hw.test_pe import Program, encode_uop, send_delay
from tests.hw.test_pe_kpair import ACCS, WORDS, add_pairs

POLICY, SEED = "value", 7


def kpair_case():
    """The k-paired ``value`` PE at latency 6: ``(description, make, program, sent, made)``."""
    latency = 6
    rng = np.random.default_rng(SEED)
    program = Program(rng, weight_words=WORDS, act_words=WORDS, acc_regs=ACCS,
                      latency=latency, length=600)
    paired = add_pairs(program, rng, latency)
    assert paired > 30
    macs = sum(u.get("c_op") == "MAC" for u, _, _ in program.steps)
    return (f"PE bf16 words={WORDS} accs={ACCS} latency={latency} {POLICY} low_man_bits=2 "
            f"pairing=k",
            lambda: PE(BF16, weight_words=WORDS, act_words=WORDS, acc_regs=ACCS,
                       mac_latency=latency, dual=POLICY, low_man_bits=2, pairing="k"),
            program, test_pe_kpair.ref(program, BF16, POLICY), [macs, paired])


def deep_case():
    """A single bf16 PE at latency 12: ``(description, make, program, sent, made)``."""
    pe_args = {"operand": BF16, "weight_words": WORDS, "act_words": WORDS, "acc_regs": ACCS,
               "latency": 12}
    def make():
        return PE(BF16, weight_words=WORDS, act_words=WORDS, acc_regs=ACCS, mac_latency=12)

    program = Program(np.random.default_rng(SEED), weight_words=WORDS, act_words=WORDS,
                      acc_regs=ACCS, latency=12, length=600,
                      act_write_latency=make().act_write_latency)
    macs = sum(u.get("c_op") == "MAC" for u, _, _ in program.steps)
    return (f"PE bf16 words={WORDS} accs={ACCS} latency=12 single", make,
            program, test_pe.ref(program, pe_args), [macs, 0])


@pytest.mark.parametrize("name,case", [("pe_kpair_value", kpair_case),
                                       ("pe_single_deep", deep_case)])
def test_pe_rtl_equals_model(simulator, build_root, name, case):
    description, make_pe, program, expected, made = case()
    assert len(expected) > 30
    dut = make_pe()
    steps = [[encode_uop(dut, uop).as_value().value, row_in, col_in, send_delay(uop) or 0]
             for uop, row_in, col_in in program.steps]
    program_file = build_root / f"program_{name}_{simulator}.json"
    program_file.write_text(json.dumps(
        {"scalar": program.scalar, "scalar2": program.scalar2, "steps": steps}))
    report = build_root / f"report_{name}_{simulator}.json"
    source = cached_design(name, [description],
                           lambda: verilog.convert(make_pe(), name=name, emit_src=False),
                           build_root)
    result = run_testbench(
        sources=[source], toplevel=name, module="chrysalis.sim.verify.tb.pe",
        simulator=simulator, build_dir=build_root, timeout_s=600,
        extra_env={"CHRYSALIS_PE_PROGRAM": program_file, "CHRYSALIS_REPORT": report})
    assert result["tests"] == 1
    got = json.loads(report.read_text())
    assert got["sent"] == expected
    assert got["made"] == made
