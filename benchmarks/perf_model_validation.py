"""The performance model against the RTL's counters, per phase of a training step.

For every config the test suite simulates a whole accelerator with (the tiny 2x2 core, the
2x2 core that holds the digits MLP, the default 4x4 core, the neighbour-link tree, the
value-based dual-precision MAC, weights streamed through the scratchpad, momentum on a 2x3
core), one SGD step of an MLP runs on the RTL under Verilator one command per doorbell
(``gen.perf.validate.rtl_reference``), and the model's cycles (``gen.perf``: closed forms
per command, the controller's fetch and checks, the DMA's bursts) are set beside the
``CYCLES`` counter's, phase by phase, and beside ``sim.golden.core_counts`` (the exact stepped
schedule of the core).

    .venv/bin/python benchmarks/perf_model_validation.py [--only NAME ...] [--no-rtl]

Writes ``benchmarks/results/perf_model_validation.{json,md}``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import PRESETS, with_overrides  # noqa: E402
from chrysalis.gen.perf import validate  # noqa: E402
from chrysalis.gen.perf.stream import mlp_program  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUILD = ROOT / "build" / "perf_model_validation"

TINY = PRESETS["tiny"]
SMALL = with_overrides(TINY, {"name": "small_core", "core.scratchpad_words": 4096,
                              "pe.act_words": 1024, "pe.weight_words": 1024})
DIGITS = (64, 32, 10)

#: name -> (config, sizes, batch, what it is)
CASES = {
    "tiny": (TINY, (7, 5, 3), 3, "preset tiny: 2x2, MAC latency 2"),
    "2x2-digits": (SMALL, DIGITS, 8, "2x2 holding the digits MLP (tests' small_core)"),
    "4x4-default": (with_overrides(PRESETS["default"], {"name": "default_4x4"}), DIGITS, 8,
                    "preset default: 4x4, MAC latency 6"),
    "4x2-tree": (with_overrides(SMALL, {"name": "tree_4x2", "core.rows": 4,
                                        "core.reduction": "tree"}), DIGITS, 8,
                 "4x2, neighbour-link tree reduction"),
    "2x2-dual-value": (with_overrides(SMALL, {"name": "small_value", "mac.dual": "value",
                                              "mac.latency": 3, "pe.acc_regs": 16}),
                       DIGITS, 8, "2x2, value-based dual-precision MAC"),
    "2x2-streamed": (with_overrides(TINY, {"name": "tiny_digits",
                                           "core.scratchpad_words": 4096,
                                           "pe.act_words": 1024}), DIGITS, 8,
                     "2x2, weights streamed through the scratchpad (LOAD_W/STORE_W chunks)"),
    "2x3-momentum": (with_overrides(TINY, {"name": "core2x3", "core.cols": 3,
                                           "mac.latency": 3}), (7, 5, 3), 3,
                     "2x3, MAC latency 3, SGD with momentum 0.875 (WGRAD's velocity pass)"),
}

#: Cases trained with momentum.
MOMENTUM = {"2x3-momentum": 0.875}

PHASE_ORDER = ("forward", "loss", "backward", "wgrad_update", "load", "dma")


def run_case(name, rtl=True):
    config, sizes, batch, what = CASES[name]
    program = mlp_program(config, sizes, batch, momentum=MOMENTUM.get(name))
    commands, _ = validate.step_commands(program)
    out = {"name": name, "what": what, "sizes": list(sizes), "batch": batch,
           "config": config.to_dict(), "streamed": program.compiled.streamed,
           "commands": len(commands)}
    core = validate.core_reference(config, commands)
    out["core_counts"] = validate.compare(config, commands, core)
    if rtl:
        start = time.perf_counter()
        ref = validate.rtl_reference(config, sizes, batch, BUILD / name,
                                     momentum=MOMENTUM.get(name))
        out["rtl_seconds"] = round(time.perf_counter() - start, 1)
        out["rtl"] = validate.compare(config, commands, ref["phases"],
                                      fields=tuple(validate.RTL_FIELDS))
        model = validate.model_phases(config, commands)
        in_order = sum(p["cycles"] for p in model.values()) + 1
        step_model = validate.step_cycles(config, commands)
        composed = validate.step_cycles(
            config, commands, costs=validate.measured_costs(commands, ref["per_command"]))
        out["step"] = {"model": step_model, "in_order": in_order, "composed": composed,
                       "rtl": ref["step"]["cycles"] + 1,
                       "error": (step_model - ref["step"]["cycles"] - 1)
                       / (ref["step"]["cycles"] + 1)}
    return out


def table(results):
    lines = ["| config | phase | model cycles | RTL cycles | error | core_counts cycles "
             "(core only) | model (core only) | error |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rtl = {row["phase"]: row for row in r.get("rtl", []) if row["field"] == "cycles"}
        core = {row["phase"]: row for row in r["core_counts"]}
        for phase in PHASE_ORDER:
            if phase not in rtl and phase not in core:
                continue
            a, c = rtl.get(phase), core.get(phase)
            cells = [f"{a['model']:.0f}", f"{a['reference']:.0f}", f"{a['error']:+.2%}"] \
                if a else ["", "", ""]
            cells += [f"{c['reference']:.0f}", f"{c['model']:.0f}", f"{c['error']:+.2%}"] \
                if c else ["", "", ""]
            lines.append(f"| {r['name']} | {phase} | " + " | ".join(cells) + " |")
        if "step" in r:
            s = r["step"]
            lines.append(f"| {r['name']} | **whole step** (one doorbell) | {s['model']:.0f} | "
                         f"{s['rtl']} | {s['error']:+.2%} | | | |")
    return "\n".join(lines) + "\n"


def step_table(results):
    """The whole step as one doorbell: the commands one by one (each as if alone), the
    model of the controller's overlap, that composition of the RTL's own per-command costs,
    and the RTL."""
    lines = ["| config | commands one by one (model) | overlapped (model) | overlapped, "
             "RTL per-command costs | RTL | model error |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        if "step" not in r:
            continue
        s = r["step"]
        lines.append(f"| {r['name']} | {s['in_order']:.0f} | {s['model']:.0f} | "
                     f"{s['composed']:.0f} | {s['rtl']} | {s['error']:+.2%} |")
    return "\n".join(lines) + "\n"


def counters_table(results):
    lines = ["| config | counter | model | RTL | error |", "|---|---|---:|---:|---:|"]
    for r in results:
        sums = {}
        for row in r.get("rtl", []):
            if row["field"] == "cycles":
                continue
            m, ref = sums.get(row["field"], (0.0, 0.0))
            sums[row["field"]] = (m + row["model"], ref + row["reference"])
        for field, (m, ref) in sums.items():
            err = (m - ref) / ref if ref else (0.0 if m == 0 else float("inf"))
            lines.append(f"| {r['name']} | {field} | {m:.0f} | {ref:.0f} | {err:+.2%} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), default=None)
    parser.add_argument("--no-rtl", action="store_true",
                        help="compare with sim.golden.core_counts only (no simulator)")
    args = parser.parse_args(argv)
    names = args.only or list(CASES)
    results = []
    for name in names:
        print(f"{name}: {CASES[name][3]}", flush=True)
        r = run_case(name, rtl=not args.no_rtl)
        results.append(r)
        worst = max(abs(row["error"]) for row in r.get("rtl", r["core_counts"])
                    if row["field"] == "cycles")
        print(f"  worst per-phase cycle error {worst:.2%}"
              + (f", whole step {r['step']['error']:+.2%} ({r['rtl_seconds']} s)"
                 if "step" in r else ""), flush=True)
    text = table(results)
    print(text)
    if not args.no_rtl:
        print(counters_table(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if not args.only and not args.no_rtl else "_partial"
    (RESULTS / f"perf_model_validation{suffix}.json").write_text(
        json.dumps(results, indent=1) + "\n")
    (RESULTS / f"perf_model_validation{suffix}.md").write_text(
        "Performance model vs RTL counters (Verilator) and `sim.golden.core_counts`, per phase of "
        "one SGD step; `benchmarks/perf_model_validation.py`. RTL cycles are the `CYCLES` "
        "counter over one doorbell per command, less the doorbell's `START` cycle; "
        "core_counts compares the core's own cycles (no controller). The whole step runs as "
        "one doorbell, where the controller fetches each command while the core runs the one "
        "before and starts a DMA beside a core command when they cannot disturb each other "
        "(`gen.perf.network.cluster_stream_cost`).\n\n" + text
        + ("\nThe whole step, one doorbell:\n\n" + step_table(results)
           + "\nCounters summed over the step (model vs RTL):\n\n" + counters_table(results)
           if not args.no_rtl else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
