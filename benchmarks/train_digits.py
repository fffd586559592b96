"""Digits to 95% test accuracy on the golden machine model, over several seeds.

For each seed this script runs ``chrysalis train``'s defaults (``sim.train.single``: a 64-32-10 MLP,
batch 8, lr 0.1, plain SGD, 12 epochs) on the default preset with the golden backend, which
is bit-exact with the RTL, next to the float32 NumPy reference trained from the same
initial weights on the same minibatches. It writes, per seed, the epoch at which the
accelerator first reached 95% test accuracy, the final accuracies and their gap, and the
largest gap over all epochs, to ``benchmarks/results/train_digits.json`` and
``train_digits.md``.

    .venv/bin/python benchmarks/train_digits.py [--seeds 0 1 2 3 4 5] [--epochs 12] [-j 2]

Each seed takes about 40 s on an idle core; the seeds run in parallel (``-j``). The JSON
records the load average at the start: the machine may be shared, and the time per step
depends on it.
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
TARGET = 0.95
PRESET = "default"


def run_seed(seed, epochs, lr, batch):
    """Train one seed; the row of the table (with every epoch's figures)."""
    result = tr.train(get_preset(PRESET), sizes=tr.DIGITS_SIZES, batch=batch, lr=lr,
                      epochs=epochs, seed=seed, backend="golden", progress=False, log=None)
    reached = next((h.epoch for h in result.history if h.acc >= TARGET), None)
    final = result.final
    return {
        "seed": seed, "epochs": epochs, "steps": result.steps, "update": result.update,
        "first_epoch_at_target": reached,
        "acc": final.acc, "ref_acc": final.ref_acc, "gap_points": final.gap,
        "max_abs_gap_points": max(abs(h.gap) for h in result.history),
        "loss": final.loss, "ref_loss": final.ref_loss,
        "step_ms": 1e3 * result.step_s,
        "core_utilization": result.core_utilization,
        "history": [h.to_dict() for h in result.history],
    }


def table(rows):
    lines = ["| seed | epochs | first epoch ≥ 95% | test accuracy | float32 reference | gap "
             "(points) | largest \\|gap\\| over the epochs | final loss (float32) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        first = "never" if r["first_epoch_at_target"] is None else \
            f"{r['first_epoch_at_target']:g}"
        lines.append(f"| {r['seed']} | {r['epochs']} | {first} | {r['acc']:.2%} | "
                     f"{r['ref_acc']:.2%} | {r['gap_points']:+.2f} | "
                     f"{r['max_abs_gap_points']:.2f} | {r['loss']:.4f} ({r['ref_loss']:.4f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5],
                        help="seeds (default 0 to 5)")
    parser.add_argument("--epochs", type=int, default=tr.DEFAULT_EPOCHS,
                        help=f"epochs per seed (default {tr.DEFAULT_EPOCHS})")
    parser.add_argument("--lr", type=float, default=tr.DEFAULT_LR,
                        help=f"learning rate (default {tr.DEFAULT_LR})")
    parser.add_argument("--batch", type=int, default=tr.DEFAULT_BATCH,
                        help=f"minibatch (default {tr.DEFAULT_BATCH})")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel seeds (default 2)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    rows = {}
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_seed, seed, args.epochs, args.lr, args.batch): seed
                   for seed in args.seeds}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                           desc="train digits (golden)", unit="seed"):
            rows[futures[future]] = future.result()
    ordered = [rows[seed] for seed in args.seeds]
    wall = time.perf_counter() - start
    settings = {"preset": PRESET, "sizes": list(tr.DIGITS_SIZES), "batch": args.batch,
                "lr": args.lr, "momentum": None, "epochs": args.epochs, "backend": "golden",
                "target": TARGET, "jobs": args.jobs, "wall_s": round(wall, 1),
                "load_average_at_start": round(load, 2),
                "machine": platform.machine(), "python": platform.python_version()}
    (RESULTS / "train_digits.json").write_text(
        json.dumps({"settings": settings, "seeds": ordered}, indent=1, sort_keys=True) + "\n")
    step_ms = sum(r["step_ms"] for r in ordered) / len(ordered)
    worst = min(r["acc"] for r in ordered)
    text = (f"{'-'.join(map(str, tr.DIGITS_SIZES))} MLP on digits, `{PRESET}` preset, golden "
            f"machine model; batch {args.batch}, lr {args.lr}, plain SGD, {args.epochs} "
            f"epochs.\n\n" + table(ordered) +
            f"\nLowest final accuracy {worst:.2%}; {step_ms:.1f} ms per golden step "
            f"(mean over the seeds, {args.jobs} in parallel, load average {load:.1f} at the "
            f"start); {wall:.0f} s in all.\n")
    (RESULTS / "train_digits.md").write_text(text)
    print(text)
    return 0 if all(r["acc"] >= TARGET for r in ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
