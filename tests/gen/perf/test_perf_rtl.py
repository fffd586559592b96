"""The performance model against the RTL's own counters (Verilator): every phase of an MLP
training step within 3%, and the per-command costs adding up to the whole step. Slow: a
Verilator build and about 20 doorbells, two minutes on two busy cores."""

import pytest

from chrysalis.gen.spec.config import PRESETS
from chrysalis.gen.perf import validate
from chrysalis.sim.verify.runner import available_simulators

TINY = PRESETS["tiny"]


@pytest.mark.slow
@pytest.mark.cocotb
@pytest.mark.skipif("verilator" not in available_simulators(),
                    reason="Verilator is not installed (run `make setup`)")
def test_phases_within_3_percent_of_the_rtl_counters(build_root):
    sizes, batch = (7, 5, 3), 3
    ref = validate.rtl_reference(TINY, sizes, batch, build_root / "rtl", timeout_s=900)
    rows = validate.compare(TINY, ref["commands"], ref["phases"],
                            fields=tuple(validate.RTL_FIELDS))
    cycles = [r for r in rows if r["field"] == "cycles"]
    assert {r["phase"] for r in cycles} == {"forward", "loss", "backward", "wgrad_update",
                                             "load", "dma"}
    for row in cycles:
        assert abs(row["error"]) <= 0.03, row
    # The counters the model predicts exactly (the loss unit's busy cycles aside).
    exact = ("mac_slots", "update_slots", "bus_words", "stall_cycles", "fetch_beats",
             "dma_read_beats", "dma_write_beats")
    for row in rows:
        if row["field"] in exact:
            assert row["model"] == row["reference"], row
    # One doorbell for the whole step: the controller overlaps fetches and DMAs with the
    # core's work. Composed from the commands' measured costs the step is exact; from the
    # model's, within 3%; and it is shorter than the commands run one by one.
    step = ref["step"]["cycles"] + 1
    costs = validate.measured_costs(ref["commands"], ref["per_command"])
    assert validate.step_cycles(TINY, ref["commands"], costs=costs) == step
    assert abs(validate.step_cycles(TINY, ref["commands"]) - step) <= 0.03 * step
    in_order = sum(validate.model_phases(TINY, ref["commands"])[p]["cycles"]
                   for p in validate.PHASES) + 1
    assert step < in_order
