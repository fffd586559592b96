"""Test accuracy of the digits MLP trained in each cluster mode on the golden cluster.

Data parallel and model parallel (``sim.compile.parallel_program``) and continuous propagation
(``sim.compile.cp_program``), through ``sim.train.cluster.train_cluster`` with each mode's
defaults (data, model: batch 8, lr 0.1, 12 epochs; cp: batch 1, lr 0.02, 8 epochs), next
to the float32 reference each driver trains on the same samples (data and model: one
core's step in float32 on the same minibatches; cp: plain SGD without the pipeline).
These are measured accuracies, not bit-exact comparisons. Writes
``benchmarks/results/cluster_accuracy.json`` and ``.md`` and prints the Markdown; some
minutes per run.

    .venv/bin/python benchmarks/cluster_accuracy.py
    .venv/bin/python benchmarks/cluster_accuracy.py --runs data:2 model:4:64,32,32,10 cp:2
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_RUNS = ("data:2", "data:4", "model:2", "model:2:64,32,32,10", "cp:2", "cp:3:64,32,32,10")


def _parse(text):
    parts = text.split(":")
    mode, cores = parts[0], int(parts[1])
    sizes = tuple(int(s) for s in parts[2].split(",")) if len(parts) > 2 else (64, 32, 10)
    return mode, cores, sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS),
                        metavar="MODE:CORES[:SIZES]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args(argv)

    from chrysalis.gen.spec.config import get_preset, with_overrides
    from chrysalis.sim.train.cluster import train_cluster

    rows = []
    for text in args.runs:
        mode, cores, sizes = _parse(text)
        config = with_overrides(get_preset(args.preset), {"cluster.cores": cores})
        start = time.perf_counter()
        result = train_cluster(config, mode, sizes=sizes, seed=args.seed, progress=False,
                               log=None)
        wall = time.perf_counter() - start
        last = result.history[-1]
        ref = getattr(last, "ref_acc", None)
        rows.append({"mode": mode, "cores": cores, "sizes": list(sizes),
                     "batch": result.batch, "lr": result.lr, "epochs": len(result.history),
                     "seed": args.seed, "accuracy": last.acc, "reference": ref,
                     "per_epoch": [h.acc for h in result.history], "wall_s": round(wall, 1)})
        print(f"{text}: {100 * last.acc:.2f}% in {wall:.0f} s", flush=True)

    lines = ["# Digits accuracy per cluster mode (golden cluster)", "",
             f"Preset `{args.preset}`, seed {args.seed}; each mode's defaults. "
             "Command: `.venv/bin/python benchmarks/cluster_accuracy.py`.", "",
             "| mode | cores | sizes | batch | lr | epochs | test accuracy | float32 reference "
             "| time |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = "" if r["reference"] is None else f"{100 * r['reference']:.2f}%"
        lines.append(f"| {r['mode']} | {r['cores']} | {'-'.join(map(str, r['sizes']))} | "
                     f"{r['batch']} | {r['lr']} | {r['epochs']} | {100 * r['accuracy']:.2f}% | "
                     f"{ref} | {r['wall_s']:.0f} s |")
    text = "\n".join(lines) + "\n"
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster_accuracy.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "cluster_accuracy.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
