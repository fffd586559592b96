"""The ASIC area model against the osu018 syntheses (``benchmarks/results/asic_area.json``)."""

import json

import pytest

from chrysalis.gen.perf.area_model import (
    DEFAULT_ASIC_SYNTHESIS, asic_logic_um2, fit_asic)
from chrysalis.gen.spec.config import get_preset, with_overrides


def test_the_fit_reproduces_the_synthesized_series():
    fit = fit_asic()
    c = fit["coefficients"]
    assert c["per_pe_um2"] > 0 and c["per_dual_pe_um2"] > 0 and c["per_core_um2"] > 0
    assert len(fit["points"]) >= 3
    for point in fit["points"]:
        assert abs(point["error"]) <= 0.05, point
    data = json.loads(DEFAULT_ASIC_SYNTHESIS.read_text(encoding="utf-8"))
    name, point = next((n, p) for n, p in data["points"].items() if n.endswith("-single"))
    config = with_overrides(get_preset("default"), point["overrides"])
    assert asic_logic_um2(config, fit) == pytest.approx(point["area_um2"], rel=0.05)


def test_fit_asic_needs_three_series_points(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"points": {
        "tiny": {"overrides": {}, "pes": 4, "area_um2": 1.0},
        "1x2-single": {"overrides": {"mac.dual": "single"}, "pes": 2, "area_um2": 10.0},
        "2x2-single": {"overrides": {"mac.dual": "single"}, "pes": 4, "area_um2": 14.0}}}))
    with pytest.raises(ValueError, match=r"at least three distinct series points, not 2 in "):
        fit_asic(path)
