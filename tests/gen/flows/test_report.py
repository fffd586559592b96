"""``chrysalis report``: tables, fits, Pareto fronts and PNG plots of a sweep's results."""

import csv
import json

import pytest

from chrysalis.gen.cli import main
from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.flows.report import fit_exponent, pareto_front, rows
from chrysalis.gen.flows.sweep import point_key

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _record(flow, overrides, result, status="ok"):
    config = with_overrides(get_preset("tiny"), overrides)
    record = {"key": point_key(config, flow, {}), "flow": flow, "options": {},
              "overrides": overrides, "config": config.to_dict(),
              "config_hash": config.config_hash(), "status": status}
    if status == "ok":
        record["result"] = result
    else:
        record.update(error="RuntimeError: boom", log="Traceback ...")
    return record


def _records():
    """Synthesis and cycle records of 2x2, 4x4 and 8x8 for two formats: LUT4 grows as
    PEs**1.5 (bf16) and PEs**1.0 (fp8), cycles fall with the array."""
    out = []
    for n in (2, 4, 8):
        for operand, scale, power in (("bf16", 100, 1.5), ("fp8_e4m3", 300, 1.0)):
            pes = n * n
            overrides = {"core.rows": n, "core.cols": n, "mac.operand": operand}
            lut4 = round(scale * pes ** power)
            groups = {"mac": {"lut4": lut4 // 2}, "pe": {"lut4": lut4 // 4},
                      "reuse_cache": {"lut4": 0}, "interconnect": {"lut4": lut4 // 8},
                      "core": {"lut4": lut4 // 16}, "top": {"lut4": 10}}
            out.append(_record("synth", overrides, {
                "target": "ecp5", "top": "tiny",
                "total": {"lut4": lut4, "ff": pes * 10, "dsp": pes, "bram": 2 * pes},
                "breakdown": {"groups": groups, "paths": {}}}))
            out.append(_record("cycles", overrides, {"cycles": 10000 // pes,
                                                     "utilization": 0.5, "mac_slots": 1,
                                                     "stall_cycles": 0}))
    out.append(_record("pnr", {"core.rows": 2, "core.cols": 2, "mac.operand": "bf16"},
                       {"device": "25k", "fmax_mhz": 90.5, "critical_path": None}))
    out.append(_record("pnr", {"core.rows": 4, "core.cols": 4, "mac.operand": "bf16"},
                       None, status="failed"))
    return out


def test_fit_exponent_recovers_a_power_law():
    assert fit_exponent([4, 16, 64], [3 * 4 ** 1.25, 3 * 16 ** 1.25, 3 * 64 ** 1.25]) == \
        pytest.approx(1.25)
    assert fit_exponent([4, 4], [1, 2]) is None


def test_pareto_front_keeps_the_undominated():
    points = [(1, 9, "a"), (2, 5, "b"), (3, 6, "c"), (4, 1, "d"), (5, 1, "e")]
    assert [p[2] for p in pareto_front(points)] == ["a", "b", "d"]


def test_rows_join_the_flows_of_a_config():
    columns, table = rows(_records())
    assert len(table) == 6
    first = next(r for r in table if r["pes"] == 4 and r["mac.operand"] == "bf16")
    assert first["lut4"] == 800 and first["cycles"] == 2500 and first["fmax_mhz"] == 90.5
    failed = next(r for r in table if r["pes"] == 16 and r["mac.operand"] == "bf16")
    assert failed["failed"] == "pnr" and failed.get("fmax_mhz") is None
    assert columns[:4] == ["core.rows", "core.cols", "mac.operand", "pes"]


def test_report_writes_tables_and_plots(tmp_path, capsys):
    results = tmp_path / "sweep" / "results.jsonl"
    results.parent.mkdir()
    results.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    assert main(["report", str(results), "-o", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "report"
    for name in ("area_vs_pes.png", "fmax_vs_pes.png", "area_breakdown.png", "pareto.png"):
        data = (report / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    with open(report / "results.csv") as stream:
        table = list(csv.DictReader(stream))
    assert len(table) == 6 and {r["mac.operand"] for r in table} == {"bf16", "fp8_e4m3"}
    summary = json.loads((report / "report.json").read_text())
    assert summary["area_figure"] == "lut4"
    assert summary["fits"]["operand=bf16"] == pytest.approx(1.5, abs=0.01)
    assert summary["fits"]["operand=fp8_e4m3"] == pytest.approx(1.0, abs=0.01)
    # Area against cycles: the 2x2 bf16 core is the cheapest; at 16 and 64 PEs fp8 is
    # cheaper than bf16 for the same cycles.
    assert summary["pareto"] == ["rows=2 cols=2 operand=bf16", "rows=4 cols=4 operand=fp8_e4m3",
                                 "rows=8 cols=8 operand=fp8_e4m3"]
    assert "fitted exponent of area vs PEs (operand=bf16): 1.500" in out
    markdown = (report / "results.md").read_text()
    assert "| 64 |" in markdown and "Pareto front" in markdown
    assert "Fitted exponent" in markdown


def test_report_of_a_missing_file_is_one_error_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chrysalis: error: no sweep results at") and err.count("\n") == 1
