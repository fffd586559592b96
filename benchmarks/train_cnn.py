"""The digits CNN on the golden model, over three seeds, beside the float32 reference.

For each seed this script runs ``chrysalis train --network digits-cnn``'s defaults
(``sim.train.cnn``: conv3x3 1->8, ReLU, conv3x3 stride 2 8->16, ReLU, flatten, dense
256->10; batch 8, lr 0.1, plain SGD with the update fused into the weight gradient, 20
epochs) on the default preset's core (4 x 4, bf16 operands, fp32 accumulation) with the
golden CNN step (``sim.golden.cnn``, the commands' arithmetic bit for bit), next to the
float32 NumPy reference trained from the same initial weights on the same minibatches. It
writes, per seed, the final test accuracies and their gap, the largest gap over the
epochs and the time per golden step, and the mean over the seeds, to
``benchmarks/results/train_cnn.json`` and ``train_cnn.md``. The target: a mean final test
accuracy of at least 97.5% on the golden model.

    .venv/bin/python benchmarks/train_cnn.py [--seeds 0 1 2] [--epochs 20] [-j 2]

The seeds run in parallel (``-j``); the JSON records the load average at the start (the
machine may be shared, and the time per step depends on it).
"""

import argparse
import concurrent.futures
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import get_preset  # noqa: E402
from chrysalis.gen.spec.model import get_model  # noqa: E402
from chrysalis.sim.train import cnn  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGET = 0.975
PRESET = "default"
NETWORK = "digits-cnn"


def run_seed(seed, epochs, lr, batch):
    """Train one seed; the row of the table (with every epoch's figures)."""
    result = cnn.train_model(get_preset(PRESET), get_model(NETWORK), batch=batch, lr=lr,
                             epochs=epochs, seed=seed, progress=False, log=None)
    final = result.final
    return {
        "seed": seed, "epochs": epochs, "steps": result.steps,
        "acc": final.acc, "ref_acc": final.ref_acc, "gap_points": final.gap,
        "max_abs_gap_points": max(abs(h.gap) for h in result.history),
        "loss": final.loss, "ref_loss": final.ref_loss,
        "step_ms": 1e3 * result.step_s, "wall_s": round(result.wall_s, 1),
        "history": [h.to_dict() for h in result.history],
    }


def table(rows):
    lines = ["| seed | epochs | golden test accuracy | float32 reference | gap (points) | "
             "largest \\|gap\\| over the epochs | final loss (float32) | ms per golden step |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['epochs']} | {r['acc']:.2%} | {r['ref_acc']:.2%} | "
                     f"{r['gap_points']:+.2f} | {r['max_abs_gap_points']:.2f} | "
                     f"{r['loss']:.4f} ({r['ref_loss']:.4f}) | {r['step_ms']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds (default 0 1 2)")
    parser.add_argument("--epochs", type=int, default=cnn.CNN_EPOCHS,
                        help=f"epochs per seed (default {cnn.CNN_EPOCHS})")
    parser.add_argument("--lr", type=float, default=cnn.CNN_LR,
                        help=f"learning rate (default {cnn.CNN_LR})")
    parser.add_argument("--batch", type=int, default=cnn.CNN_BATCH,
                        help=f"minibatch (default {cnn.CNN_BATCH})")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel seeds (default 2)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    rows = {}
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_seed, seed, args.epochs, args.lr, args.batch): seed
                   for seed in args.seeds}
        for future in concurrent.futures.as_completed(futures):
            rows[futures[future]] = future.result()
            print(f"seed {futures[future]} done", flush=True)
    ordered = [rows[seed] for seed in args.seeds]
    wall = time.perf_counter() - start
    mean = sum(r["acc"] for r in ordered) / len(ordered)
    ref_mean = sum(r["ref_acc"] for r in ordered) / len(ordered)
    settings = {"preset": PRESET, "network": NETWORK, "batch": args.batch, "lr": args.lr,
                "momentum": None, "update": "fused", "epochs": args.epochs,
                "backend": "golden", "target": TARGET, "jobs": args.jobs,
                "wall_s": round(wall, 1), "load_average_at_start": round(load, 2),
                "machine": platform.machine(), "python": platform.python_version()}
    summary = {"mean_acc": mean, "mean_ref_acc": ref_mean,
               "mean_gap_points": 100 * (mean - ref_mean), "target_met": mean >= TARGET}
    (RESULTS / "train_cnn.json").write_text(json.dumps(
        {"settings": settings, "summary": summary, "seeds": ordered}, indent=1,
        sort_keys=True) + "\n")
    step_ms = sum(r["step_ms"] for r in ordered) / len(ordered)
    text = (f"The digits CNN (conv3x3 1->8, ReLU, conv3x3 stride 2 8->16, ReLU, flatten, "
            f"dense 256->10) on the golden model of the `{PRESET}` preset's core (bf16 "
            f"operands, fp32 accumulation); batch {args.batch}, lr {args.lr}, plain SGD "
            f"fused into the weight gradient, {args.epochs} epochs.\n\n" + table(ordered) +
            f"\nMean final test accuracy **{mean:.2%}** on the golden model (target "
            f"{TARGET:.1%}: {'met' if mean >= TARGET else 'missed'}), {ref_mean:.2%} for "
            f"the float32 reference: a mean gap of {100 * (mean - ref_mean):+.2f} points. "
            f"{step_ms:.0f} ms per golden step (mean over the seeds, {args.jobs} in "
            f"parallel, load average {load:.1f} at the start); {wall:.0f} s in all.\n")
    (RESULTS / "train_cnn.md").write_text(text)
    print(text)
    return 0 if mean >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
