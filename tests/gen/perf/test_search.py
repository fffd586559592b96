"""Architecture search (gen.perf.search) and the area model (gen.perf.area_model)."""

import pytest

from chrysalis.gen.perf.area_model import asic_area_mm2, asic_breakdown, fit_fpga, fpga_luts
from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.networks import get_network
from chrysalis.gen.perf.search import design_config, evaluate_design, exhaustive, heuristic

SPACE = {"core.rows": (2, 4), "core.cols": (2, 4), "cluster.cores": (1, 2),
         "pe.words": (1024,), "host.axi_data_width": (64,), "core.reduction": ("bus", "tree")}
NET = get_network("digits-mlp")


def test_heuristic_finds_a_feasible_design_no_better_than_exhaustive():
    budget = {"area_mm2": 10.0}
    full = exhaustive(NET, 8, "mbgd", SPACE, budget)
    found = heuristic(NET, 8, "mbgd", SPACE, budget, top_k=1)
    assert full["evaluations"] == 16
    assert found["evaluations"] < full["evaluations"]
    assert found["best"]["feasible"]
    assert found["best"]["score"] <= full["best"]["score"]
    assert full["best"]["area_mm2"] <= 10.0
    # The trace of best scores only grows.
    assert found["trace"] == sorted(found["trace"])


def test_budgets_exclude_designs():
    design = {k: v[-1] for k, v in SPACE.items()}
    small = evaluate_design(design, NET, 8, "mbgd", {"area_mm2": 0.1})
    assert not small["feasible"] and small["score"] == 0
    watt = evaluate_design(design, NET, 8, "mbgd", {"area_mm2": 100, "power_w": 1e-6})
    assert not watt["feasible"]
    ok = evaluate_design(design, NET, 8, "mbgd", {"area_mm2": 100}, "perf_per_watt")
    assert ok["feasible"] and ok["score"] == pytest.approx(
        ok["samples_per_second"] / ok["watts"])
    assert ok["critical"] in ("mac", "drain", "load", "dma", "ring", "loss")


def test_design_config_and_invalid_designs():
    config = design_config({"core.rows": 8, "core.cols": 8, "pe.words": 2048})
    assert (config.pe.weight_words, config.pe.act_words) == (2048, 2048)
    bad = evaluate_design({"core.rows": 2, "core.cols": 2, "host.axi_data_width": 512},
                          NET, 8, "mbgd", {"area_mm2": 100})
    assert not bad["feasible"] and "axi_data_width" in bad["error"]


def test_area_model():
    base = PRESETS["default"]
    bigger = with_overrides(base, {"core.rows": 8})
    dual = with_overrides(base, {"mac.dual": "value", "pe.acc_regs": 28})
    assert asic_area_mm2(bigger) > asic_area_mm2(base) > 0
    assert asic_area_mm2(dual) > asic_area_mm2(base)
    assert set(asic_breakdown(base)) >= {"pe_mac", "pe_banks", "scratchpad", "control"}
    fit = fit_fpga()
    # The fit reproduces the synthesized points within 10% (the PE points) and 3% (cores).
    for point in fit["points"]:
        assert abs(point["error"]) <= (0.03 if point["level"] == "core" else 0.10), point
    assert fpga_luts(base, fit) == pytest.approx(
        next(p["lut4"] for p in fit["points"]
             if p["level"] == "core" and p["policy"] == "single" and p["acc_regs"] == 16),
        rel=0.03)
