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
  per cycle without it, with the Pareto front (its points numbered as in ``results.md``);
* ``report.json``: the fitted exponents and how many sizes each is fitted from, the Pareto
  front and the files written (relative to the report's folder, which can move).

The area figure is the first of LUT4 (``ecp5``), transistors (``cmos``) or area
(``liberty``) found in the results. An exponent fitted from fewer than
:data:`MIN_FIT_SIZES` sizes is reported with that caveat: a power law passes through any two
points. Plots use matplotlib's Agg backend (no display); their legends sit below the axes,
never over the data.
"""

import csv
import io
import json
import math
import os
from pathlib import Path

__all__ = ["AREA_FIGURES", "MIN_FIT_SIZES", "markdown_table", "rows", "fit_exponent",
           "fit_note", "pareto_front", "area_figure", "pareto_figure", "write_report"]

#: The figure that stands for area, per synthesis target, in order of preference.
AREA_FIGURES = (("lut4", "LUT4 (ECP5)"), ("transistors", "transistors (CMOS)"),
                ("area", "area (Liberty units)"))

#: The fewest distinct sizes an exponent is fitted from without a caveat: through two
#: points a power law always passes, so their exponent is a slope, not a fit.
MIN_FIT_SIZES = 3


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
    None with fewer than two distinct ``x`` (see :data:`MIN_FIT_SIZES` for fewer than
    three)."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len({p[0] for p in pairs}) < 2:
        return None
    n = len(pairs)
    mx = sum(p[0] for p in pairs) / n
    my = sum(p[1] for p in pairs) / n
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pairs)
    return sxy / sxx


def fit_note(sizes):
    """The caveat of an exponent fitted from ``sizes`` distinct sizes: ``""`` from
    :data:`MIN_FIT_SIZES` or more, else why it is no fit."""
    if sizes >= MIN_FIT_SIZES:
        return ""
    return f"from {sizes} sizes only: a power law passes through any two points, not a fit"


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


_SIZE_FIELDS = ("core.rows", "core.cols", "core.rows,core.cols")


def _varying(table, columns):
    """The swept fields that take more than one value over ``table`` (a sweep's fixed
    overrides name no series and tell no point from another)."""
    return [c for c in columns if _is_field(c)
            and len({json.dumps(row.get(c)) for row in table}) > 1]


def _series(table, columns):
    """Rows grouped by the varying swept fields other than the array size: ``{label: rows}``."""
    keys = [c for c in _varying(table, columns) if c not in _SIZE_FIELDS]
    groups = {}
    for row in table:
        label = ", ".join(f"{k.split('.')[-1]}={row.get(k)}" for k in keys) or "all"
        groups.setdefault(label, []).append(row)
    return groups


# --- plots ----------------------------------------------------------------------------------

def _new_figure(entries):
    """A figure and its axes, taller by the legend's ``entries`` lines: the legend goes
    below the axes (constrained layout makes room for it), where it covers no data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    # Agg, without pyplot: no display, no global state.
    figure = Figure(figsize=(7, 4.5 + 0.16 * entries), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _legend_below(figure, ax):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", fontsize=7,
                      frameon=False)


def _compact(value, _position=None):
    """A tick label: 20k, 1.5M, 64, 0.5."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _log_ticks(lo, hi, base=10):
    """Ticks of a log axis over ``[lo, hi]``: 1-2-5 (or 1, or 1 in every other decade)
    steps of ``base`` 10, powers of ``base`` 2, whichever first gives at most 8 ticks;
    two round values inside the range when no step falls in it twice."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator
    if base == 2:
        candidates = [[2.0 ** e for e in range(math.floor(math.log2(lo)),
                                                math.ceil(math.log2(hi)) + 1)]]
    else:
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        candidates = [[m * 10.0 ** e for e in decades for m in subs]
                      for subs in ((1, 2, 5), (1,))]
        candidates.append([10.0 ** e for e in decades if e % 2 == 0])
    ticks = []
    for candidate in candidates:
        ticks = [t for t in candidate if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if len(ticks) <= 8:
            break
    if len(ticks) < 2:
        ticks = [float(t) for t in MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10])
                 .tick_values(lo, hi) if lo <= t <= hi and t > 0]
    return list(np.unique(ticks))


def _log_axis(ax, which, base=10):
    """Label the log-scaled ``which`` axis (``"x"`` or ``"y"``) of ``ax``, as its data
    autoscaled it, with a few compact round numbers: matplotlib's own labels of the minor
    ticks run into each other when the data spans less than a decade."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(FixedLocator(_log_ticks(lo, hi, base)))
    axis.set_major_formatter(FuncFormatter(_compact))
    axis.set_minor_formatter(NullFormatter())
    # Fixed ticks must not move the limits the data set.
    (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)


def _fit_label(label, fit):
    b, sizes = fit
    if b is None:
        return label
    return f"{label} (b={b:.2f})" if sizes >= MIN_FIT_SIZES else \
        f"{label} (b={b:.2f}, {sizes} sizes only: not a fit)"


def area_figure(series, fits, area_label):
    """The plot of area against the number of PEs, log-log, one line per series.

    Parameters
    ----------
    series : dict
        ``{label: [(pes, area), ...]}``.
    fits : dict
        ``{label: (b, sizes)}``: the fitted exponent (or None) and the number of distinct
        sizes it is fitted from; the legend names it, with the caveat of :func:`fit_note`.
    area_label : str
        The area's name and unit.

    Returns
    -------
    matplotlib.figure.Figure
    """
    series = {label: sorted(points) for label, points in series.items() if points}
    figure, ax = _new_figure(len(series))
    for label, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-",
                label=_fit_label(label, fits.get(label, (None, 0))))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    if series:
        _log_axis(ax, "x", base=2)
        _log_axis(ax, "y")
    ax.set_xlabel("PEs")
    ax.set_ylabel(area_label)
    ax.set_title(f"{area_label} vs array size")
    ax.grid(True, which="both", alpha=0.3)
    _legend_below(figure, ax)
    return figure


def pareto_figure(points, front, area_label, value_label):
    """The plot of a Pareto front: every point's area against its value, log-log, the
    front drawn as a line and numbered 1, 2, ... in its order (the labels stay in the
    tables: on the plot they would run off it).

    Parameters
    ----------
    points : list of (float, float)
        ``(area, value)`` of every point, the front's included.
    front : list of (float, float)
        ``(area, value)`` of the front's points, in order of area.
    area_label, value_label : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    dominated = [p for p in points if p not in front]
    figure, ax = _new_figure(2 if dominated else 1)
    if dominated:
        # Only the points off the front: a front point drawn twice would leave this
        # legend entry with nothing visible when every point is on the front.
        ax.scatter([p[0] for p in dominated], [p[1] for p in dominated], color="0.6",
                   label="dominated")
    ax.plot([p[0] for p in front], [p[1] for p in front], "o-", color="C3",
            label="Pareto front")
    for number, p in enumerate(front, 1):
        ax.annotate(str(number), p, fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.set_xlabel(area_label)
    ax.set_ylabel(value_label)
    ax.set_title(f"Pareto front: {area_label} vs {value_label}")
    ax.grid(True, which="both", alpha=0.3)
    _legend_below(figure, ax)
    return figure


def _fmax_figure(series):
    series = {label: sorted(points) for label, points in series.items() if points}
    figure, ax = _new_figure(len(series))
    for label, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
    ax.set_xscale("log", base=2)
    _log_axis(ax, "x", base=2)
    ax.set_xlabel("PEs")
    ax.set_ylabel("Fmax (MHz)")
    ax.set_title("Fmax vs array size (nextpnr-ecp5)")
    ax.grid(True, alpha=0.3)
    _legend_below(figure, ax)
    return figure


def _breakdown_figure(labels, stacks, area_label):
    """Stacked bars: ``stacks`` is ``{group: [value per bar]}``."""
    figure, ax = _new_figure(1)
    bottom = [0.0] * len(labels)
    for group, values in stacks.items():
        ax.bar(range(len(values)), values, bottom=bottom, label=group)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel(area_label)
    ax.set_title(f"{area_label} by group (unflattened synthesis)")
    handles, names = ax.get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", fontsize=7, frameon=False,
                  ncols=len(names))
    return figure


def _save(figure, path):
    # No "Software" stamp: the same results give the same bytes.
    figure.savefig(path, metadata={"Software": None})


# --- the report -----------------------------------------------------------------------------

def write_report(records, out_dir, *, title="Sweep results"):
    """Write the tables and plots of ``records`` (see the module's documentation) into
    ``out_dir``; returns ``{kind: path}`` of the files written, plus ``"fits"`` (the
    exponent of each series, or None) and ``"fit_sizes"`` (the distinct sizes of each)."""
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
    varying = _varying(table, columns)
    fits, fit_sizes = {}, {}
    if area_key:
        for label, group in series.items():
            done = [r for r in group if r.get(area_key) is not None]
            fits[label] = fit_exponent([r["pes"] for r in done], [r[area_key] for r in done])
            fit_sizes[label] = len({r["pes"] for r in done})

    md = [f"# {title}", "", markdown_table(columns, [[row.get(c) for c in columns]
                                                      for row in table])]
    if area_key and any(v is not None for v in fits.values()):
        md += ["", f"Fitted exponent b of {area_label} = a * PEs^b, and the sizes it is "
                   f"fitted from (from fewer than {MIN_FIT_SIZES} it is no fit: a power law "
                   f"passes through any two points):", "",
               markdown_table(("series", "b", "sizes"),
                              [(k, None if v is None else round(v, 3), fit_sizes[k])
                               for k, v in fits.items()])]

    if area_key:
        plotted = {label: [(r["pes"], r[area_key]) for r in group
                           if r.get(area_key) is not None]
                   for label, group in series.items()}
        if any(plotted.values()):
            _save(area_figure(plotted, {k: (fits[k], fit_sizes[k]) for k in fits},
                              area_label), out_dir / "area_vs_pes.png")
            written["area_plot"] = out_dir / "area_vs_pes.png"

    if any(row.get("fmax_mhz") is not None for row in table):
        _save(_fmax_figure({label: [(r["pes"], r["fmax_mhz"]) for r in group
                                    if r.get("fmax_mhz") is not None]
                            for label, group in series.items()}),
              out_dir / "fmax_vs_pes.png")
        written["fmax_plot"] = out_dir / "fmax_vs_pes.png"

    with_groups = [r for r in table if area_key and r.get("_groups")
                   and any(area_key in g for g in r["_groups"].values())]
    if with_groups:
        from .synth import GROUPS
        labels = [_point_label(r, varying) for r in with_groups]
        stacks = {group: [float(r["_groups"].get(group, {}).get(area_key, 0))
                          for r in with_groups] for group in GROUPS}
        _save(_breakdown_figure(labels, {g: v for g, v in stacks.items() if any(v)},
                                area_label), out_dir / "area_breakdown.png")
        written["breakdown_plot"] = out_dir / "area_breakdown.png"
        md += ["", f"{area_label} by group:", "",
               markdown_table(("point",) + GROUPS,
                              [(_point_label(r, varying),) + tuple(
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
            _save(pareto_figure([(p[0], sign * p[1]) for p in points],
                                [(p[0], sign * p[1]) for p in front], area_label,
                                value_label), out_dir / "pareto.png")
            written["pareto_plot"] = out_dir / "pareto.png"
            md += ["", f"Pareto front ({area_label} vs {value_label}), numbered as in "
                       f"pareto.png:", "",
                   markdown_table(("#", "point", area_label, value_label),
                                  [(n, _point_label(p[2], varying), p[0], sign * p[1])
                                   for n, p in enumerate(front, 1)])]

    (out_dir / "results.md").write_text("\n".join(md))
    written["markdown"] = out_dir / "results.md"
    summary = {"area_figure": area_key, "fits": fits, "fit_sizes": fit_sizes,
               "pareto": [_point_label(p[2], varying) for p in front],
               # Relative to the report's folder: the report can be moved or archived.
               "files": {k: os.path.relpath(v, out_dir) for k, v in written.items()}}
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    written["json"] = out_dir / "report.json"
    written["fits"] = fits
    written["fit_sizes"] = fit_sizes
    return written


def _point_label(row, fields):
    """A point by the values of the swept ``fields`` that vary (its PEs without any)."""
    parts = [f"{key.split('.')[-1]}={row[key]}" for key in fields if key in row]
    return " ".join(parts) or f"{row['pes']} PEs"


def _is_field(column):
    """Whether a column is a swept config field (a dotted path like ``core.rows``)."""
    return "." in column and column.split(".")[0] in ("mac", "pe", "core", "cluster", "host")
