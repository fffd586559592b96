"""Area of the training core against array size, operand format, dual precision and the
reuse cache (ECP5).

Runs the sweep of ``sweeps/area.toml`` through :mod:`gen.flows.sweep` (resumable: results in
``build/sweeps/area/results.jsonl``, each point recorded as it finishes, so running this
again only runs what is missing), then writes the tables and the plot: LUT4, FF, DSP and
BRAM of every point (Yosys ``synth_ecp5``, flattened, classic ``abc -lut 4`` mapping),
LUT4 per PE, the ratios dual / single, fp8 / bf16 and reuse / no reuse, and the exponent
``b`` of ``LUT4 = a * PEs^b`` fitted per series.

    .venv/bin/python benchmarks/area_sweep.py [-j 2] [--max-pes 16] [--report-only]
    .venv/bin/python benchmarks/area_sweep.py --plot-only

``--max-pes`` runs only the points with at most that many PEs (an 8x8 point synthesizes in
12 to 24 minutes here); the others stay pending and are reported as such. ``--plot-only``
draws ``area_sweep.png`` again from the committed ``area_sweep.json``, without the sweep's
results.

Writes ``benchmarks/results/area_sweep.{json,md,png}`` (and the full report of
``chrysalis report`` under ``build/sweeps/area/report``).
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.flows.report import (  # noqa: E402
    area_figure, fit_exponent, markdown_table, rows, write_report)
from chrysalis.gen.flows.sweep import load_results, load_sweep, run_sweep  # noqa: E402

SWEEP = ROOT / "sweeps" / "area.toml"
WORK = ROOT / "build" / "sweeps" / "area"
RESULTS = ROOT / "benchmarks" / "results"

NOTE = """\
What is measured: the whole accelerator of the `default` preset (one training core behind
the AXI4-Lite registers and the AXI4 DMA; MAC latency 6, fp32 accumulators, 1024-word
weight and activation banks per PE), scratchpad reduced to 4096 words for every point, with
R x R PEs, operands bf16 or fp8 (e4m3), dual precision off (`single`, 16 accumulators,
the default) or on (`value`, 28 accumulators, its minimum at latency 6; low-precision
multiplier of 3 mantissa bits for bf16 and 1 for fp8), and the reuse cache off (0 entries,
the default) or on (16 entries, 4 ways per PE; bf16 `single` only). Yosys `synth_ecp5`
(YoWASP, flattened, classic `abc -lut 4` LUT mapping); LUT4 counts a CCU2C as two, DSP counts MULT18X18D and
ALU54B, BRAM counts DP16KD. Synthesis only: nextpnr-ecp5 takes over 40 minutes per 4x4
core on this machine. The exponent b is fitted by least squares to log LUT4 = log a +
b log PEs over the sizes of each series; the core's fixed part (sequencer, loss unit,
reducers, host interface) makes b < 1 at small sizes. Reproduce:
`.venv/bin/python benchmarks/area_sweep.py` (or `chrysalis sweep sweeps/area.toml -j 2`
then `chrysalis report build/sweeps/area`)."""


def knobs(row):
    """What a sweep row varies besides the array: its operand, dual policy and reuse cache."""
    return {"operand": row["mac.operand"], "dual": row["mac.dual"],
            "reuse": row["_config"]["pe"]["reuse_entries"]}


def label(operand, dual, reuse):
    """The name of a series: a point's knobs other than its size."""
    return f"{operand} {dual}" + (f" reuse {reuse}" if reuse else "")


def series_label(row):
    return label(**knobs(row))


def summarize(table):
    """Rows of the result table and the fits per series, sorted by series then size."""
    done = [r for r in table if r.get("lut4") is not None]
    series = {}
    for r in done:
        series.setdefault(series_label(r), []).append(r)
    fits, lines = {}, {}
    for name, group in series.items():
        group.sort(key=lambda r: r["pes"])
        b = fit_exponent([r["pes"] for r in group], [r["lut4"] for r in group])
        fits[name] = None if b is None else round(b, 3)
        lines[name] = fit_line([r["pes"] for r in group], [r["lut4"] for r in group])
    out = []
    # Each ratio is against the point that differs in that one knob only.
    def twin(r, **change):
        want = {**knobs(r), **change, "pes": r["pes"]}
        return next((s for s in done if {**knobs(s), "pes": s["pes"]} == want), None)

    for r in sorted(done, key=lambda r: (*knobs(r).values(), r["pes"])):
        single = twin(r, dual="single")
        bf16 = twin(r, operand="bf16")
        plain = twin(r, reuse=0)
        out.append({
            "rows": r["core.rows"], "cols": r["core.cols"], "pes": r["pes"],
            "operand": r["mac.operand"], "dual": r["mac.dual"],
            "acc_regs": r["_config"]["pe"]["acc_regs"], "reuse_entries": knobs(r)["reuse"],
            "lut4": r["lut4"], "ff": r["ff"], "dsp": r["dsp"], "bram": r["bram"],
            "lut4_per_pe": round(r["lut4"] / r["pes"], 1),
            "lut4_dual_over_single": round(r["lut4"] / single["lut4"], 3) if single else None,
            "lut4_over_bf16": round(r["lut4"] / bf16["lut4"], 3) if bf16 else None,
            "lut4_reuse_over_none": round(r["lut4"] / plain["lut4"], 3) if plain else None,
        })
    return out, fits, lines


def fit_line(xs, ys):
    """``(fixed, per_pe)`` of ``y = fixed + per_pe * x`` by least squares; None with fewer
    than two distinct ``x``."""
    if len(set(xs)) < 2:
        return None
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys))
             / sum((x - mx) ** 2 for x in xs))
    return round(my - slope * mx), round(slope)


def plot(summary, path):
    """Draw LUT4 against PEs, one line per series with its fitted exponent, from the rows
    of :func:`summarize` (or of ``area_sweep.json``) into ``path``."""
    series = {}
    for r in summary:
        series.setdefault(label(r["operand"], r["dual"], r["reuse_entries"]), []).append(
            (r["pes"], r["lut4"]))
    fits = {name: (fit_exponent(*zip(*points)), len({p[0] for p in points}))
            for name, points in series.items()}
    # No "Software" stamp: the same rows give the same bytes.
    area_figure(series, fits, "LUT4 (ECP5)").savefig(path, metadata={"Software": None})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel points (default 2)")
    parser.add_argument("--max-pes", type=int, metavar="N",
                        help="run only the points with at most N PEs (the rest stay pending)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables from the results so far, run nothing")
    parser.add_argument("--plot-only", action="store_true",
                        help="draw area_sweep.png again from area_sweep.json, run nothing")
    args = parser.parse_args(argv)
    if args.plot_only:
        plot(json.loads((RESULTS / "area_sweep.json").read_text())["rows"],
             RESULTS / "area_sweep.png")
        print(RESULTS / "area_sweep.png")
        return 0
    if args.max_pes is not None and args.max_pes < 1:
        parser.error(f"--max-pes must be a positive integer, not {args.max_pes!r}")
    sweep = load_sweep(SWEEP)
    if not args.report_only:
        chosen = sweep
        if args.max_pes is not None:
            chosen = dataclasses.replace(sweep, points=tuple(
                p for p in sweep.points
                if p.config.core.rows * p.config.core.cols <= args.max_pes))
        counts = run_sweep(chosen, WORK, jobs=args.jobs)
        print(counts)
    records = load_results(WORK)
    keys = {p.key for p in sweep.points}
    records = [r for r in records if r["key"] in keys]
    failed = [r for r in records if r["status"] != "ok"]
    write_report(records, WORK / "report", title="Area sweep")
    _, table = rows(records)
    summary, fits, lines = summarize(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if summary:
        plot(summary, RESULTS / "area_sweep.png")
    pending = len(sweep.points) - len(records)
    (RESULTS / "area_sweep.json").write_text(json.dumps({
        "note": NOTE, "rows": summary, "fits_lut4_vs_pes": fits,
        "linear_fits_lut4_fixed_per_pe": lines,
        "failed": [{"overrides": r["overrides"], "error": r["error"]} for r in failed],
        "points": len(sweep.points), "pending": pending,
        "seconds": {r["key"][:12]: r.get("seconds") for r in records},
    }, indent=2, sort_keys=True) + "\n")
    text = [NOTE, "", markdown_table(
        ("array", "PEs", "operand", "dual", "acc regs", "reuse", "LUT4", "FF", "DSP", "BRAM",
         "LUT4 / PE", "LUT4 dual / single", "LUT4 / bf16", "LUT4 reuse / none"),
        [(f"{r['rows']}x{r['cols']}", r["pes"], r["operand"], r["dual"], r["acc_regs"],
          r["reuse_entries"] or "off", r["lut4"], r["ff"], r["dsp"], r["bram"],
          r["lut4_per_pe"], r["lut4_dual_over_single"], r["lut4_over_bf16"],
          r["lut4_reuse_over_none"]) for r in summary]),
        "Fitted per series: the exponent b of LUT4 = a * PEs^b, and the straight line "
        "LUT4 = fixed + per PE * PEs (least squares):", "",
        markdown_table(("series", "b", "fixed LUT4", "LUT4 per PE", "sizes"),
                       [(series, b, (lines[series] or (None, None))[0],
                         (lines[series] or (None, None))[1],
                         ", ".join(f"{r['rows']}x{r['cols']}" for r in summary
                                   if label(r["operand"], r["dual"], r["reuse_entries"])
                                   == series))
                        for series, b in fits.items()])]
    if failed:
        text += ["Failed points:", ""] + [f"- {r['overrides']}: {r['error']}" for r in failed]
    if pending:
        text += ["", f"{pending} of {len(sweep.points)} points not run yet."]
    text += ["", "Plot: `benchmarks/results/area_sweep.png`."]
    (RESULTS / "area_sweep.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
