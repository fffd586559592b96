"""ASIC area in µm² from a real standard-cell library (osu018, 0.18 µm), per module and
against the number of PEs.

Synthesizes with ``chrysalis synth --pdk osu018`` (:func:`gen.flows.synth.synthesize_config`,
target ``liberty``): Yosys ``synth`` with the hierarchy kept, ``dfflibmap`` and ``abc
-liberty`` to the library's cells, area from ``stat -liberty``. The memories (PE banks,
scratchpad, FIFOs) are kept as macros and are **excluded** from the area (their bits are
reported). Identical modules (the PEs of an array) are synthesized once and counted once
per instance, and a module already mapped for an earlier point (the loss unit's adders,
the same PE in another array size) takes that point's figures (a cache keyed by the
module's Verilog, everything below it, the library and the script): with the hierarchy kept
Yosys optimizes nothing across a module boundary, so this gives the figures of synthesizing
every copy (on ``tiny``, 4,774,000 µm² folded against 4,772,029 µm² with every copy
mapped, folding off: the PEs' figures are equal, the other modules differ by ABC's
sensitivity to the order of the netlist, 0.04% in all, on the gateware before the loss
unit's addresses were stepped).

Points: the ``tiny`` and ``default`` presets as they are, then the series of
``benchmarks/area_sweep.py`` (the ``default`` preset, scratchpad reduced to 4096 words,
bf16 operands) for arrays 1x2, 2x2, 2x4 and 4x4, dual precision ``single`` (16
accumulators) and ``value`` (28 accumulators, low-precision multiplier of 3 mantissa
bits). Per series: the exponent b of area = a * PEs^b and the straight line area = fixed +
per PE * PEs. The flow drops the all-zero initializers of written memories (macros) before
Yosys reads the Verilog: the ``default`` preset's 65536-word scratchpad initializer had
held Yosys' front end for 5.5 minutes of CPU time without finishing. The ``tiny`` and
series points were mapped before that change; in the ``default`` point the PE's own logic
(``core.pe``, whose banks lost their initializers) was mapped again and has the same area
as in ``4x4-single``. ``chrysalis synth --preset default --pdk osu018`` alone (no cache)
gives 11,609,200 µm², 0.07% more (ABC's sensitivity to the order of the netlist, as
above).

    make asic-lib
    .venv/bin/python benchmarks/asic_area.py [-j 2] [--only NAME ...] [--report-only]

Resumable: each point's result is kept in ``build/asic_area/<name>/result.json`` and is not
run again. Writes ``benchmarks/results/asic_area.{json,md}``.
"""

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from area_sweep import fit_line  # noqa: E402
from chrysalis.gen.flows.liberty import PdkError, file_sha256, pdk_liberty  # noqa: E402
from chrysalis.gen.flows.report import fit_exponent, markdown_table  # noqa: E402
from chrysalis.gen.flows.synth import GROUPS, MEMORIES_NOTE  # noqa: E402
from chrysalis.gen.spec.config import get_preset, with_overrides  # noqa: E402

PDK = "osu018"
WORK = ROOT / "build" / "asic_area"
RESULTS = ROOT / "benchmarks" / "results"

#: The arrays of the series, smallest first.
ARRAYS = ((1, 2), (2, 2), (2, 4), (4, 4))
#: The dual-precision settings of the series (as in ``sweeps/area.toml``).
DUALS = {"single": {"mac.dual": "single"},
         "value": {"mac.dual": "value", "pe.acc_regs": 28}}
#: What every point of the series shares (as in ``sweeps/area.toml``).
SERIES_BASE = {"core.scratchpad_words": 4096, "mac.operand": "bf16", "mac.low_man_bits": 3}


def points():
    """``{name: (preset, overrides)}`` in the order they run."""
    out = {"tiny": ("tiny", {}), "default": ("default", {})}
    # The ends of the series first, 2x4 last: the fit needs the range more than the middle.
    for rows, cols in sorted(ARRAYS, key=lambda a: a == (2, 4)):
        for dual, knobs in DUALS.items():
            out[f"{rows}x{cols}-{dual}"] = ("default", {**SERIES_BASE, **knobs,
                                                        "core.rows": rows, "core.cols": cols})
    return out


def config_of(preset, overrides):
    return with_overrides(get_preset(preset), overrides)


def run_point(name, preset, overrides, liberty):
    """Synthesize one point (in a worker process); its result is also kept on disk."""
    from chrysalis.gen.flows.synth import synthesize_config
    config = config_of(preset, overrides)
    work = WORK / name
    start = time.monotonic()
    result = synthesize_config(config, work / "synth", target="liberty", liberty=liberty,
                               cache=WORK / "modules")
    result.update(name=name, preset=preset, overrides=overrides,
                  seconds=round(time.monotonic() - start, 1), pes=config.core.pes,
                  config_hash=config.config_hash())
    (work / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def load(name):
    path = WORK / name / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


#: The groups of the PE array: what grows with the PEs (the rest is per core).
ARRAY_GROUPS = ("mac", "pe", "reuse_cache", "interconnect")


def series_fits(done):
    """Per dual policy and per measure (the whole design, ``total``, and the PE array
    alone, ``array``: :data:`ARRAY_GROUPS`): the points, the exponent b and the straight
    line of the area against PEs."""
    fits = {}
    for dual in DUALS:
        group = sorted((r for r in done.values() if r["name"].endswith("-" + dual)),
                       key=lambda r: r["pes"])
        xs = [r["pes"] for r in group]
        for measure in ("total", "array"):
            if measure == "total":
                ys = [r["total"]["area"] for r in group]
            else:
                ys = [sum(r["breakdown"]["groups"][g]["area"] for g in ARRAY_GROUPS)
                      for r in group]
            b = fit_exponent(xs, ys)
            line = fit_line(xs, ys)
            fits[f"{dual} {measure}"] = {
                "sizes": [r["name"].split("-")[0] for r in group],
                "area_um2": ys, "b": None if b is None else round(b, 3),
                "fixed_um2": None if line is None else line[0],
                "per_pe_um2": None if line is None else line[1]}
    return fits


def summary(done, liberty):
    points_table = {}
    for name, r in done.items():
        groups = r["breakdown"]["groups"]
        points_table[name] = {
            "preset": r["preset"], "overrides": r["overrides"], "pes": r["pes"],
            "area_um2": r["total"]["area"], "sequential_area_um2": r["total"]["sequential_area"],
            "cells": r["total"]["cells"], "memory_bits": r["total"]["memory_bits"],
            "groups_um2": {g: groups[g]["area"] for g in GROUPS},
            "modules_um2": {path: e["area"] for path, e in r["breakdown"]["paths"].items()},
            "pe_um2": _pe_area(r), "seconds": r["seconds"], "folded": r.get("folded"),
            "cached": r.get("cached", 0),
            "config_hash": r["config_hash"]}
    return {"pdk": PDK, "liberty_path": str(liberty), "liberty_sha256": file_sha256(liberty),
            "area_unit": "µm²", "memories": MEMORIES_NOTE, "points": points_table,
            "fits_area_vs_pes": series_fits(done), "refit_45nm": refit_section(),
            "pending": [n for n in points() if n not in done]}


def refit_section():
    """The 45 nm figures of ``gen.perf.area_model`` against their refit from this study
    (:func:`gen.perf.area_model.refit_45nm`), and the areas of the designs of
    ``search.json`` (the architecture search's results) under both; None with fewer than
    three series points."""
    from chrysalis.gen.perf.area_model import ASIC_45NM_ESTIMATES, asic_area_mm2, refit_45nm
    from chrysalis.gen.perf.search import design_config
    try:
        refit = refit_45nm()
    except ValueError:
        return None
    figures = {k: v for k, v in refit.items() if k in ASIC_45NM_ESTIMATES}
    designs = {"default preset": None}
    search = json.loads((RESULTS / "search.json").read_text())
    for row in search["comparison"]:
        designs.setdefault(f"search: {row['objective']} optimum",
                           row["exhaustive"]["best"]["design"])
    for budget in search["budgets"]:
        designs[f"search: searched at {budget['area_mm2']} mm²"] = \
            budget["searched"]["best"]["design"]
        designs[f"search: CATERPILLAR-like at {budget['area_mm2']} mm²"] = \
            budget["caterpillar_like"][0]["design"]
    areas = {}
    for name, design in designs.items():
        config = get_preset("default") if design is None else design_config(design)
        before = asic_area_mm2(config, ASIC_45NM_ESTIMATES)
        areas[name] = {"design": design, "before_mm2": round(before, 2),
                       "after_mm2": round(asic_area_mm2(config, figures), 2)}
    return {"before": {k: ASIC_45NM_ESTIMATES[k] for k in figures},
            "after": {k: round(v, 5) for k, v in figures.items()},
            "dual_check": round(refit["dual_check"], 3), "designs": areas}


def _pe_area(result):
    """The area of one PE with its submodules (each module path under ``core.pe``), µm²."""
    paths = result["breakdown"]["paths"]
    pes = result["pes"]
    return round(sum(e["area"] for p, e in paths.items()
                     if p == "core.pe" or p.startswith("core.pe.")) / pes, 1)


def _num(value):
    return f"{value:,.0f}" if value is not None else ""


def markdown(data):
    p = data["points"]
    # The docstring's first three paragraphs: what is measured, how, and which points.
    lines = [" ".join(paragraph.split()).replace("``", "`").replace(":func:", "")
             for paragraph in __doc__.split("\n\n")[:3]]
    lines = [line for paragraph in lines for line in (paragraph, "")] + [
             f"Library: `{data['liberty_path']}` (SHA-256 `{data['liberty_sha256']}`), area "
             f"in {data['area_unit']}. Memories: {data['memories']}.", ""]
    lines += ["Per point (µm²; groups as in `chrysalis synth`; seconds: wall time on a shared "
              "2-core machine, a point after the first mapping only the modules not kept from "
              "an earlier one):", "", markdown_table(
        ("point", "PEs", "area", "sequential", "cells", "memory bits", "one PE")
        + GROUPS + ("seconds",),
        [(n, r["pes"], _num(r["area_um2"]), _num(r["sequential_area_um2"]), r["cells"],
          r["memory_bits"], _num(r["pe_um2"]))
         + tuple(_num(r["groups_um2"][g]) for g in GROUPS) + (r["seconds"],)
         for n, r in p.items()])]
    for point, title in (("tiny", "`tiny`"), ("default", "`default`")):
        if point in p:
            rows = sorted(p[point]["modules_um2"].items(), key=lambda kv: -kv[1])
            lines += ["", f"{title} per module path (µm², the PEs folded together, each row "
                          "the module's own cells without its submodules'):", "",
                      markdown_table(("module", "µm²", "share"),
                                     [(m, _num(a), f"{100 * a / p[point]['area_um2']:.1f}%")
                                      for m, a in rows if a])]
    fits = data["fits_area_vs_pes"]
    lines += ["", "Fitted per series (area against PEs, least squares): the exponent b of "
                  "area = a * PEs^b and the line area = fixed + per PE * PEs; `total` is the "
                  "whole accelerator, `array` the PE array alone (groups "
                  + ", ".join(ARRAY_GROUPS) + "):", "",
              markdown_table(("series", "sizes", "µm²", "b", "fixed (µm²)", "per PE (µm²)"),
                             [(s, ", ".join(f["sizes"]),
                               ", ".join(_num(a) for a in f["area_um2"]), f["b"],
                               _num(f["fixed_um2"]), _num(f["per_pe_um2"]))
                              for s, f in fits.items()])]
    refit = data["refit_45nm"]
    if refit:
        lines += ["", "The 45 nm logic figures of `gen.perf.area_model` (what the architecture "
                      "search budgets with) refitted from the series by `refit_45nm`: the "
                      "osu018 D flip-flop (96 µm²) and the fit's per-PE and per-core areas, "
                      "scaled by (45/180)², which the model now uses (`ASIC_45NM`), against "
                      "the estimates before the syntheses (`ASIC_45NM_ESTIMATES`):", "",
                  markdown_table(("figure", "before", "refit"),
                                 [(k, refit["before"][k], refit["after"][k])
                                  for k in refit["before"]]),
                  "", f"With the refit figures the model's extra area of a `value` PE over a "
                      f"`single` one is {refit['dual_check']:.2f}x the synthesized one. Areas "
                      "at 45 nm (mm²) of the default preset and of the designs of the "
                      "architecture search's results, with the estimates and with the refit:", "",
                  markdown_table(("design", "before", "refit", "ratio"),
                                 [(n, d["before_mm2"], d["after_mm2"],
                                   f"{d['after_mm2'] / d['before_mm2']:.2f}")
                                  for n, d in refit["designs"].items()])]
    if data["pending"]:
        lines += ["", "Not run yet: " + ", ".join(data["pending"]) + "."]
    return "\n".join(lines) + "\n"


def write(liberty):
    done = {n: r for n in points() if (r := load(n)) is not None}
    data = summary(done, liberty)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "asic_area.json").write_text(json.dumps(data, indent=2, sort_keys=True,
                                                       ensure_ascii=False) + "\n")
    text = markdown(data)
    (RESULTS / "asic_area.md").write_text(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="points synthesized at once (default 1)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(points()),
                        help="run only these points (default: all, in order)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables from the points done so far, run nothing")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive integer, not {args.jobs!r}")
    try:
        liberty = pdk_liberty(PDK)
    except PdkError as error:
        parser.error(str(error))
    if not args.report_only:
        todo = {n: spec for n, spec in points().items()
                if (args.only is None or n in args.only) and load(n) is None}
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_point, n, *spec, str(liberty)): n
                       for n, spec in todo.items()}
            for future in as_completed(futures):
                result = future.result()
                print(f"{result['name']}: {result['total']['area']:,.0f} µm² in "
                      f"{result['seconds']} s", flush=True)
                write(liberty)
    print(write(liberty))
    return 0


if __name__ == "__main__":
    sys.exit(main())
