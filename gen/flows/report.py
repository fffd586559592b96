"""Tables and plots of a sweep's results: CSV, Markdown and matplotlib PNGs.

:func:`rows` flattens the records of :mod:`gen.flows.sweep` into one row per config (the figures
of every flow run on it side by side); :func:`write_report` writes

* ``results.csv`` and ``results.md``: every row;
* ``area_vs_pes.png``: area against the number of PEs, one line per operand format (and
  per any other swept field), log-log, with the fitted exponent of each line;
* ``fmax_vs_pes.png``: Fmax against the number of PEs (points with ``pnr``);
* ``area_breakdown.png``: the area of each point split by group (MAC, PE, reuse cache,
  interconnect, core, top);
* ``pareto.png``: area against cycles per training step (``cycles``), or against peak MACs
  per cycle without it, with the Pareto front;
* ``report.json``: the fitted exponents, the Pareto front and the files written.

The area figure is the first of LUT4 (``ecp5``), transistors (``cmos``) or area
(``liberty``) found in the results. Plots use matplotlib's Agg backend (no display).
"""

import csv
import io
import json
import math
from pathlib import Path

__all__ = ["AREA_FIGURES", "markdown_table", "rows", "fit_exponent", "pareto_front",
           "write_report"]

#: The figure that stands for area, per synthesis target, in order of preference.
AREA_FIGURES = (("lut4", "LUT4 (ECP5)"), ("transistors", "transistors (CMOS)"),
                ("area", "area (Liberty units)"))


def markdown_table(headers, table):
    """A Markdown table: ``headers`` and rows of cells (numbers formatted compactly)."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
        return "" if value is None else str(value)
    lines = ["| " + " | ".join(map(str, headers)) + " |",
             "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table]
    return "\n".join(lines) + "\n"


def _get(config, path):
    value = config
    for part in path.split("."):
        value = value[part]
    return value


def rows(records):
    """One row per config: the swept fields, then each flow's figures.

    Returns ``(columns, rows)``: ``rows`` are dicts; ``columns`` lists their keys in a
    stable order (swept fields, ``pes``, then figures). A failed point leaves its figures
    empty and names the flow in ``failed``.
    """
    swept = []
    for record in records:
        for path in record.get("overrides", {}):
            if path not in swept:
                swept.append(path)
    by_config = {}
    for record in records:
        config = record["config"]
        row = by_config.setdefault(record["config_hash"], {
            **{path: _get(config, path) for path in swept},
            "pes": config["core"]["rows"] * config["core"]["cols"] * config["cluster"]["cores"],
            "_config": config})
        if record.get("status") != "ok":
            row["failed"] = ",".join(filter(None, [row.get("failed"), record["flow"]]))
            continue
        result = record["result"]
        flow = record["flow"]
        if flow == "synth":
            row["target"] = result.get("target")
            row.update(result.get("total", {}))
            groups = (result.get("breakdown") or {}).get("groups")
            if groups:
                row["_groups"] = groups
        elif flow == "pnr":
            for key in ("device", "fmax_mhz"):
                row[key] = result.get(key)
            path = result.get("critical_path") or {}
            if path:
                row["critical_path"] = f"{path.get('from')} -> {path.get('to')}"
        elif flow == "cycles":
            for key in ("cycles", "utilization", "mac_slots", "stall_cycles"):
                row[key] = result.get(key)
        elif flow == "verilog":
            row.update(result)
        else:
            for key, value in result.items():
                if isinstance(value, (int, float, str, bool)) or value is None:
                    row[f"{flow}_{key}" if flow == "perf" else key] = value
    table = list(by_config.values())
    columns = list(swept) + ["pes"]
    for row in table:
        for key in row:
            if key not in columns and not key.startswith("_"):
                columns.append(key)
    return columns, table


def fit_exponent(xs, ys):
    """The exponent ``b`` of ``y = a * x**b`` fitted by least squares in log-log space;
    None with fewer than two distinct ``x``."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len({p[0] for p in pairs}) < 2:
        return None
    n = len(pairs)
    mx = sum(p[0] for p in pairs) / n
    my = sum(p[1] for p in pairs) / n
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pairs)
    return sxy / sxx


def pareto_front(points):
    """The points ``(cost, value, payload)`` not dominated by another: no other point has a
    cost as low and a value as good (both "lower is better"). Sorted by cost."""
    front = []
    for point in sorted(points, key=lambda p: (p[0], p[1])):
        if not front or point[1] < front[-1][1]:
            front.append(point)
    return front


def _area_figure(table):
    for key, label in AREA_FIGURES:
        if any(row.get(key) is not None for row in table):
            return key, label
    return None, None


def _series(table, columns, fixed=("core.rows", "core.cols", "core.rows,core.cols")):
    """Rows grouped by the swept fields other than the array size: ``{label: rows}``."""
    # Fields with one value in every row (the sweep's fixed overrides) name no series.
    keys = [c for c in columns if _is_field(c) and c not in fixed
            and len({json.dumps(row.get(c)) for row in table}) > 1]
    groups = {}
    for row in table:
        label = ", ".join(f"{k.split('.')[-1]}={row.get(k)}" for k in keys) or "all"
        groups.setdefault(label, []).append(row)
    return groups


def _plot(path, draw):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    draw(axes)
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def write_report(records, out_dir, *, title="Sweep results"):
    """Write the tables and plots of ``records`` (see the module's documentation) into
    ``out_dir``; returns ``{kind: path}`` of the files written plus ``"fits"``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns, table = rows(records)
    written = {}

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in table:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    (out_dir / "results.csv").write_text(buffer.getvalue())
    written["csv"] = out_dir / "results.csv"

    area_key, area_label = _area_figure(table)
    series = _series(table, columns)
    fits = {}
    if area_key:
        for label, group in series.items():
            done = [r for r in group if r.get(area_key) is not None]
            fits[label] = fit_exponent([r["pes"] for r in done], [r[area_key] for r in done])

    md = [f"# {title}", "", markdown_table(columns, [[row.get(c) for c in columns]
                                                      for row in table])]
    if area_key and any(v is not None for v in fits.values()):
        md += ["", f"Fitted exponent b of {area_label} = a * PEs^b:", "",
               markdown_table(("series", "b"), [(k, None if v is None else round(v, 3))
                                                for k, v in fits.items()])]

    if area_key:
        def draw_area(ax):
            for label, group in series.items():
                done = sorted((r for r in group if r.get(area_key) is not None),
                              key=lambda r: r["pes"])
                if not done:
                    continue
                b = fits.get(label)
                suffix = "" if b is None else f" (b={b:.2f})"
                ax.plot([r["pes"] for r in done], [r[area_key] for r in done], "o-",
                        label=label + suffix)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("PEs")
            ax.set_ylabel(area_label)
            ax.set_title(f"{area_label} vs array size")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        _plot(out_dir / "area_vs_pes.png", draw_area)
        written["area_plot"] = out_dir / "area_vs_pes.png"

    if any(row.get("fmax_mhz") is not None for row in table):
        def draw_fmax(ax):
            for label, group in series.items():
                done = sorted((r for r in group if r.get("fmax_mhz") is not None),
                              key=lambda r: r["pes"])
                if done:
                    ax.plot([r["pes"] for r in done], [r["fmax_mhz"] for r in done], "o-",
                            label=label)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("PEs")
            ax.set_ylabel("Fmax (MHz)")
            ax.set_title("Fmax vs array size (nextpnr-ecp5)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        _plot(out_dir / "fmax_vs_pes.png", draw_fmax)
        written["fmax_plot"] = out_dir / "fmax_vs_pes.png"

    with_groups = [r for r in table if area_key and r.get("_groups")
                   and any(area_key in g for g in r["_groups"].values())]
    if with_groups:
        from .synth import GROUPS

        def draw_breakdown(ax):
            labels = [_point_label(r, columns) for r in with_groups]
            bottom = [0.0] * len(with_groups)
            for group in GROUPS:
                values = [float(r["_groups"].get(group, {}).get(area_key, 0)) for r in with_groups]
                if not any(values):
                    continue
                ax.bar(range(len(values)), values, bottom=bottom, label=group)
                bottom = [b + v for b, v in zip(bottom, values)]
            ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=6)
            ax.set_ylabel(area_label)
            ax.set_title(f"{area_label} by group (unflattened synthesis)")
            ax.legend(fontsize=7)
        _plot(out_dir / "area_breakdown.png", draw_breakdown)
        written["breakdown_plot"] = out_dir / "area_breakdown.png"
        md += ["", f"{area_label} by group:", "",
               markdown_table(("point",) + GROUPS,
                              [(_point_label(r, columns),) + tuple(
                                  r["_groups"].get(g, {}).get(area_key, 0) for g in GROUPS)
                               for r in with_groups])]

    front = []
    if area_key:
        by_cycles = [r for r in table if r.get(area_key) is not None
                     and r.get("cycles") is not None]
        if by_cycles:
            value_key, value_label, sign = "cycles", "cycles per training step", 1
            candidates = by_cycles
        else:
            value_key, value_label, sign = "peak_macs", "peak MACs per cycle", -1
            candidates = [r for r in table if r.get(area_key) is not None]
            for r in candidates:
                macs = 1 if r["_config"]["mac"]["dual"] == "single" else 2
                r["peak_macs"] = r["pes"] * macs
        if len(candidates) >= 2:
            points = [(r[area_key], sign * r[value_key], r) for r in candidates]
            front = pareto_front(points)

            def draw_pareto(ax):
                ax.scatter([p[0] for p in points], [sign * p[1] for p in points],
                           color="0.6", label="points")
                ax.plot([p[0] for p in front], [sign * p[1] for p in front], "o-",
                        color="C3", label="Pareto front")
                for p in front:
                    ax.annotate(_point_label(p[2], columns), (p[0], sign * p[1]),
                                fontsize=6, xytext=(3, 3), textcoords="offset points")
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel(area_label)
                ax.set_ylabel(value_label)
                ax.set_title(f"Pareto front: {area_label} vs {value_label}")
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=7)
            _plot(out_dir / "pareto.png", draw_pareto)
            written["pareto_plot"] = out_dir / "pareto.png"
            md += ["", f"Pareto front ({area_label} vs {value_label}):", "",
                   markdown_table(("point", area_label, value_label),
                                  [(_point_label(p[2], columns), p[0], sign * p[1])
                                   for p in front])]

    (out_dir / "results.md").write_text("\n".join(md))
    written["markdown"] = out_dir / "results.md"
    summary = {"area_figure": area_key, "fits": fits,
               "pareto": [_point_label(p[2], columns) for p in front],
               "files": {k: str(v) for k, v in written.items()}}
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    written["json"] = out_dir / "report.json"
    written["fits"] = fits
    return written


def _point_label(row, columns):
    parts = []
    for key in columns:
        if _is_field(key) and key in row:
            parts.append(f"{key.split('.')[-1]}={row[key]}")
    return " ".join(parts) or f"{row['pes']} PEs"


def _is_field(column):
    """Whether a column is a swept config field (a dotted path like ``core.rows``)."""
    return "." in column and column.split(".")[0] in ("mac", "pe", "core", "cluster", "host")
