"""``chrysalis report``: tables, fits, Pareto fronts and PNG plots of a sweep's results."""

import csv
import json
from pathlib import Path

import pytest

from chrysalis.gen.cli import main
from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.flows.report import fit_exponent, pareto_front, rows, write_report
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


# --- the files of a report, and the plots as drawn ---------------------------------------------

def _synth_records(points):
    """Synthesis records of ``(rows, cols, operand, lut4)`` points (no cycles: the Pareto
    front is against peak MACs per cycle)."""
    return [_record("synth", {"core.rows": r, "core.cols": c, "mac.operand": operand},
                    {"target": "ecp5", "top": "tiny",
                     "total": {"lut4": lut4, "ff": 1, "dsp": 1, "bram": 1}})
            for r, c, operand, lut4 in points]


def _drawn_figures(monkeypatch):
    """Every matplotlib figure saved from now on, as drawn (its text laid out)."""
    from matplotlib.figure import Figure
    figures = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _renderer(figure):
    """The renderer of ``figure`` drawn again (on Agg, whatever canvas it was saved from)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = figure.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _by_title(figures, words):
    found = [f for f in figures if any(words in ax.get_title() for ax in f.axes)]
    assert len(found) == 1, [ax.get_title() for f in figures for ax in f.axes]
    return found[0]


def _legends(figure):
    return [*figure.legends, *(ax.get_legend() for ax in figure.axes if ax.get_legend())]


def _overlap(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_report_json_names_its_files_relative_to_its_folder(tmp_path):
    results = tmp_path / "sweep" / "results.jsonl"
    results.parent.mkdir()
    results.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    assert main(["report", str(results), "-o", str(tmp_path / "report")]) == 0
    # Moved elsewhere, the report still finds every file it names.
    moved = tmp_path / "elsewhere"
    (tmp_path / "report").rename(moved)
    files = json.loads((moved / "report.json").read_text())["files"]
    assert set(files) == {"csv", "area_plot", "fmax_plot", "breakdown_plot", "pareto_plot",
                          "markdown"}
    for name in files.values():
        assert not Path(name).is_absolute() and (moved / name).is_file(), name


def test_an_exponent_from_two_sizes_is_reported_as_no_fit(tmp_path, capsys):
    # bf16 at 2 and 4 PEs: two points; fp8 at 2, 4 and 8 PEs: a fit.
    records = _synth_records([(1, 2, "bf16", 1000), (2, 2, "bf16", 2000),
                              (1, 2, "fp8_e4m3", 800), (2, 2, "fp8_e4m3", 1600),
                              (2, 4, "fp8_e4m3", 3200)])
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["report", str(results), "-o", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert ("exponent of area vs PEs (operand=bf16): 1.000, from 2 sizes only: a power law "
            "passes through any two points, not a fit") in out
    assert "fitted exponent of area vs PEs (operand=fp8_e4m3): 1.000 (3 sizes)" in out
    assert not any(line.startswith("fitted exponent") and "bf16" in line for line in out)
    summary = json.loads((tmp_path / "report" / "report.json").read_text())
    assert summary["fit_sizes"] == {"operand=bf16": 2, "operand=fp8_e4m3": 3}
    markdown = (tmp_path / "report" / "results.md").read_text()
    assert "| series | b | sizes |" in markdown and "| operand=bf16 | 1 | 2 |" in markdown


def _many_fields():
    """Synthesis points of 1x2 to 8x8 arrays, two operands and two dual policies: four
    swept fields, LUT4 over more than a decade, some points off the front."""
    records = []
    for operand, bits in (("bf16", 3), ("fp8_e4m3", 1)):
        for dual, regs in (("single", 16), ("value", 28)):
            for r, c, lut4 in ((1, 2, 20000), (2, 2, 25000), (4, 4, 60000), (8, 8, 200000)):
                overrides = {"core.rows": r, "core.cols": c, "mac.operand": operand,
                             "mac.low_man_bits": bits, "mac.dual": dual,
                             "pe.acc_regs": regs}
                scale = (2 if dual == "value" else 1) * (0.9 if bits == 1 else 1)
                records.append(_record("synth", overrides, {
                    "target": "ecp5", "total": {"lut4": round(lut4 * scale), "ff": 1,
                                                "dsp": 1, "bram": 1}}))
    return records


PARETO_CASES = {
    # Less than a decade of LUT4, and every point on the front (each larger array costs
    # more and does more MACs).
    "all on the front": lambda: _synth_records([
        (1, 2, "bf16", 20000), (2, 2, "bf16", 30000), (2, 4, "bf16", 50000),
        (4, 4, "bf16", 90000)]),
    "many fields": _many_fields,
}


def _drawn(text, renderer, ax, which):
    """The extent of a tick label matplotlib draws (one within the axes' span), or None."""
    if not (text.get_visible() and text.get_text()):
        return None
    box, span = text.get_window_extent(renderer), ax.get_window_extent(renderer)
    middle = (box.x0 + box.x1) / 2 if which == "x" else (box.y0 + box.y1) / 2
    inside = span.x0 <= middle <= span.x1 if which == "x" else span.y0 <= middle <= span.y1
    return box if inside else None


@pytest.mark.parametrize("case", sorted(PARETO_CASES))
def test_pareto_plot_is_readable(tmp_path, monkeypatch, case):
    """Tick labels apart, nothing written off the page, and each legend entry with points
    of its own to show."""
    figures = _drawn_figures(monkeypatch)
    write_report(PARETO_CASES[case](), tmp_path)
    figure = _by_title(figures, "Pareto front")
    ax, = figure.axes
    renderer = _renderer(figure)
    for which, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        labels = [box for text in axis.get_ticklabels(which="both")
                  if (box := _drawn(text, renderer, ax, which)) is not None]
        assert len(labels) >= 2, which
        for i, a in enumerate(labels):
            assert not any(_overlap(a, b) for b in labels[i + 1:]), f"{which} tick labels"
    page = figure.bbox
    for text in [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label]:
        box = text.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1, text.get_text()
        assert page.y0 <= box.y0 and box.y1 <= page.y1, text.get_text()
    entries = {}
    for artist in [*ax.lines, *ax.collections]:
        if not artist.get_label().startswith("_"):
            data = artist.get_xydata() if hasattr(artist, "get_xydata") else \
                artist.get_offsets()
            entries[artist.get_label()] = {tuple(map(float, p)) for p in data}
    legend_texts = {t.get_text() for legend in _legends(figure) for t in legend.get_texts()}
    assert entries and legend_texts == set(entries)
    for label, own in entries.items():
        others = set().union(*(v for k, v in entries.items() if k != label))
        assert own - others, f"the legend entry {label!r} shows no point of its own"


def test_area_plot_legend_covers_no_data(tmp_path, monkeypatch):
    # Long series names (several swept fields), as in the committed area sweep.
    figures = _drawn_figures(monkeypatch)
    write_report(_many_fields(), tmp_path)
    figure = _by_title(figures, "vs array size")
    ax, = figure.axes
    renderer = _renderer(figure)
    legends = _legends(figure)
    assert len(legends) == 1 and len(legends[0].get_texts()) == 4
    box = legends[0].get_window_extent(renderer)
    assert not _overlap(box, ax.get_window_extent(renderer))
    assert figure.bbox.y0 <= box.y0 and box.x1 <= figure.bbox.x1
