"""The SGD update fused into the weight-gradient pass against the separate update pass.

For each seed this script trains ``chrysalis train``'s defaults (a 64-32-10 MLP on the
digits, batch 8, lr 0.1, plain SGD, 12 epochs, the default preset) on the golden machine
model, which is bit-exact with the RTL, twice: with ``update="fused"`` (``WGRAD``'s
``fused`` bit, ``-lr`` carried in the gradients) and with ``update="separate"`` (the
``UPDATE`` pass), from the same initial weights on the same minibatches. It writes the
final test accuracy of each, their difference, and the core's cycles and slots per step
(from the golden machine's counters, which equal the RTL's, ``tests/hw/test_core_counts.py``)
to ``benchmarks/results/fused_update.json`` and ``fused_update.md``.

    .venv/bin/python benchmarks/fused_update.py [--seeds 0 1 2] [--epochs 12] [-j 2]

Each run takes about 2 minutes on an idle core; the runs go in parallel (``-j``).
"""

import argparse
import concurrent.futures
import json
import os
import platform
import sys
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import get_preset  # noqa: E402
from chrysalis.sim.train import single as tr  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PRESET = "default"
UPDATES = ("fused", "separate")


def run(seed, update, epochs):
    """Train one seed with one update; its row."""
    result = tr.train(get_preset(PRESET), seed=seed, epochs=epochs, update=update,
                      backend="golden", progress=False, log=None)
    counters, steps = result.counters, result.steps
    return {
        "seed": seed, "update": result.update, "steps": steps,
        "acc": result.final.acc, "ref_acc": result.final.ref_acc,
        "loss": result.final.loss, "ref_loss": result.final.ref_loss,
        "history": [h.to_dict() for h in result.history],
        "core_cycles_per_step": counters["core_cycles"] / steps,
        "mac_slots_per_step": counters["mac_slots"] / steps,
        "update_slots_per_step": counters["update_slots"] / steps,
        "core_utilization": result.core_utilization,
    }


def step_counts(update):
    """The core's cycles and slots of one training step's commands, in closed form
    (``sim.golden.core_counts``, exact against the RTL), and its WGRAD commands alone."""
    from chrysalis.sim.compile.program import TrainingProgram
    from chrysalis.sim.golden import core_counts
    config = get_preset(PRESET)
    program = TrainingProgram(config, list(tr.DIGITS_SIZES), tr.DEFAULT_BATCH, tr.DEFAULT_LR,
                              store_every_step=False, update=update)
    step = program.compiled.step
    total = core_counts.predict_many(config, step)
    wgrad = core_counts.predict_many(config, [c for c in step if c["op"] == "WGRAD"])
    return {"update": update, "step_cycles": total["cycles"], "mac_slots": total["mac_slots"],
            "update_slots": total["update_slots"], "wgrad_cycles": wgrad["cycles"]}


def table(rows, seeds):
    by = {(r["seed"], r["update"]): r for r in rows}
    lines = ["| seed | fused: test accuracy | separate: test accuracy | fused − separate "
             "(points) | float32 reference | fused: final loss | separate: final loss |",
             "|---|---|---|---|---|---|---|"]
    for seed in seeds:
        f, s = by[seed, "fused"], by[seed, "separate"]
        lines.append(f"| {seed} | {f['acc']:.2%} | {s['acc']:.2%} | "
                     f"{100 * (f['acc'] - s['acc']):+.2f} | {f['ref_acc']:.2%} | "
                     f"{f['loss']:.4f} | {s['loss']:.4f} |")
    return "\n".join(lines) + "\n"


def cycles_table(rows, steps):
    lines = ["| update | core cycles of a step's commands | of which WGRAD | MAC slots | update "
             "slots | core utilization over the training |", "|---|---|---|---|---|---|"]
    for exact in steps:
        r = next(r for r in rows if r["update"] == exact["update"])
        lines.append(f"| {exact['update']} | {exact['step_cycles']} | {exact['wgrad_cycles']} | "
                     f"{exact['mac_slots']} | {exact['update_slots']} | "
                     f"{r['core_utilization']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds (default 0 1 2)")
    parser.add_argument("--epochs", type=int, default=tr.DEFAULT_EPOCHS,
                        help=f"epochs per run (default {tr.DEFAULT_EPOCHS})")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel runs (default 2)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, seed, update, args.epochs)
                   for seed in args.seeds for update in UPDATES]
        for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                      desc="fused vs separate (golden)", unit="run"):
            pass
        rows = [f.result() for f in futures]
    wall = time.perf_counter() - start
    steps = [step_counts(update) for update in UPDATES]
    deltas = [100 * (f["acc"] - s["acc"]) for f, s in zip(rows[0::2], rows[1::2])]
    mean = {u: sum(r["acc"] for r in rows if r["update"] == u) / len(args.seeds)
            for u in UPDATES}
    settings = {"preset": PRESET, "sizes": list(tr.DIGITS_SIZES), "batch": tr.DEFAULT_BATCH,
                "lr": tr.DEFAULT_LR, "momentum": None, "epochs": args.epochs,
                "backend": "golden", "jobs": args.jobs, "wall_s": round(wall, 1),
                "load_average_at_start": round(load, 2), "machine": platform.machine(),
                "python": platform.python_version()}
    (RESULTS / "fused_update.json").write_text(json.dumps(
        {"settings": settings, "runs": rows, "delta_points": deltas, "mean_acc": mean,
         "step": steps}, indent=1, sort_keys=True) + "\n")
    text = (f"{'-'.join(map(str, tr.DIGITS_SIZES))} MLP on digits, `{PRESET}` preset, golden "
            f"machine model (bit-exact with the RTL); batch {tr.DEFAULT_BATCH}, lr "
            f"{tr.DEFAULT_LR}, plain SGD, {args.epochs} epochs; the same initial weights and "
            f"minibatches for both updates.\n\n" + table(rows, args.seeds) +
            f"\nMean test accuracy: fused {mean['fused']:.2%}, separate "
            f"{mean['separate']:.2%} (fused − separate: "
            f"{sum(deltas) / len(deltas):+.2f} points on average, from {min(deltas):+.2f} to "
            f"{max(deltas):+.2f}).\n\nThe core's work in one step (its core commands, "
            f"weights kept in the PEs; `sim.golden.core_counts`, equal to the RTL's counters; "
            f"the DMA and the command fetch are not in it), and the core utilization over the "
            f"whole training (useful MACs / (PEs × busy core cycles), as `chrysalis train` "
            f"reports it):\n\n" + cycles_table(rows, steps) +
            f"\n{wall:.0f} s in all ({args.jobs} runs in parallel, load average {load:.1f} at "
            f"the start).\n")
    (RESULTS / "fused_update.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
