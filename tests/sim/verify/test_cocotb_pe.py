# amaranth: UnusedElaboratable=no
"""The k-paired dual-precision PE under Icarus and Verilator: the words it sends and the
products each pair makes, bit for bit with its golden model (``sim.golden.pe_model.PEModel``)
on a random hazard-free program, the same check as ``tests/hw/test_pe_kpair.py`` runs in
Amaranth's simulator. (Output-paired and single PEs run in every core test.)"""

import json

import numpy as np
from amaranth.back import verilog

from chrysalis.gen.spec.formats import BF16
from chrysalis.hw.pe import PE
from chrysalis.sim.verify.runner import run_testbench
from chrysalis.sim.verify.verilog_cache import cached_design
from tests.hw.test_pe import Program, encode_uop
from tests.hw.test_pe_kpair import ACCS, WORDS, add_pairs, ref

POLICY, LATENCY, SEED = "value", 6, 7


def make_pe():
    return PE(BF16, weight_words=WORDS, act_words=WORDS, acc_regs=ACCS, mac_latency=LATENCY,
              dual=POLICY, low_man_bits=2, pairing="k")


def test_kpair_pe_rtl_equals_model(simulator, build_root):
    rng = np.random.default_rng(SEED)
    program = Program(rng, weight_words=WORDS, act_words=WORDS, acc_regs=ACCS,
                      latency=LATENCY, length=600)
    paired = add_pairs(program, rng, LATENCY)
    assert paired > 30
    dut = make_pe()
    steps = [[encode_uop(dut, uop).as_value().value, row_in, col_in,
              uop.get("t_op") in ("SEND_ACC", "SEND_W")]
             for uop, row_in, col_in in program.steps]
    program_file = build_root / f"program_{simulator}.json"
    program_file.write_text(json.dumps(
        {"scalar": program.scalar, "scalar2": program.scalar2, "steps": steps}))
    report = build_root / f"report_{simulator}.json"
    source = cached_design(
        "pe_kpair_value", [f"PE bf16 words={WORDS} accs={ACCS} latency={LATENCY} "
                           f"{POLICY} low_man_bits=2 pairing=k"],
        lambda: verilog.convert(make_pe(), name="pe_kpair_value", emit_src=False),
        build_root)
    result = run_testbench(
        sources=[source], toplevel="pe_kpair_value", module="chrysalis.sim.verify.tb.pe",
        simulator=simulator, build_dir=build_root, timeout_s=600,
        extra_env={"CHRYSALIS_PE_PROGRAM": program_file, "CHRYSALIS_REPORT": report})
    assert result["tests"] == 1
    got = json.loads(report.read_text())
    expected = ref(program, BF16, POLICY)
    assert len(expected) > 30
    assert got["sent"] == expected
    macs = [u for u, _, _ in program.steps if u.get("c_op") == "MAC"]
    assert got["made"] == [len(macs), paired]
