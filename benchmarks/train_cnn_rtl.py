"""The whole digits-CNN training on the RTL: ``chrysalis train --network digits-cnn
--backend verilator`` with its defaults (20 epochs, batch 8, lr 0.1, seed 0) on the default
preset, every run checked against the golden machine.

The script runs that command with ``--json`` into ``build/benchmarks/train_cnn_rtl/``
(about an hour on two loaded cores: 3,360 steps of about 120,000 cycles, the Verilator build and
the golden machine's check of every step), or with ``--result FILE`` reads the JSON of a
run of exactly that command (the settings are checked). It reports each epoch's test
accuracy beside the float32 reference's and beside the golden CNN step's of the same seed
(``benchmarks/results/train_cnn.json``, which the RTL must equal: the golden machine is
bit-exact with the golden step), the cycles and utilization, and whether every run equalled
the golden machine.

    .venv/bin/python benchmarks/train_cnn_rtl.py
    .venv/bin/python benchmarks/train_cnn_rtl.py --result build/cnn_train/result.json

Writes ``benchmarks/results/train_cnn_rtl.json`` and ``train_cnn_rtl.md``.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BUILD = ROOT / "build" / "benchmarks" / "train_cnn_rtl"
ARGS = ["train", "--network", "digits-cnn", "--backend", "verilator", "--seed", "0",
        "--quiet"]
#: What the JSON of a run of ARGS says about its settings.
SETTINGS = {"backend": "verilator", "network": "digits-cnn", "config": "chrysalis",
            "batch": 8, "lr": 0.1, "seed": 0, "steps": 3360}


def run():
    """Run the command; the path of its JSON."""
    BUILD.mkdir(parents=True, exist_ok=True)
    out = BUILD / "result.json"
    subprocess.run([str(ROOT / ".venv" / "bin" / "chrysalis"), *ARGS, "--json", str(out),
                    "-o", str(BUILD)], check=True, cwd=ROOT)
    return out


def summarize(data):
    """The benchmark's record of a run's JSON, beside the golden step's seed 0."""
    for key, value in SETTINGS.items():
        if data.get(key) != value:
            raise SystemExit(f"the result is not of `chrysalis {' '.join(ARGS)}`: {key} is "
                             f"{data.get(key)!r}, not {value!r}")
    golden = json.loads((RESULTS / "train_cnn.json").read_text())
    seed0 = next(s for s in golden["seeds"] if s["seed"] == 0)["history"]
    epochs = [{"epoch": h["epoch"], "acc": h["acc"], "ref_acc": h["ref_acc"],
               "loss": h["loss"], "golden_acc": g["acc"], "golden_loss": g["loss"]}
              for h, g in zip(data["history"], seed0)]
    return {"settings": SETTINGS, "golden_match": data["golden_match"],
            # The accuracies are of the same weight bits; the losses are float64 means the
            # host computes, equal to a few ulps.
            "same_as_golden_step": all(e["acc"] == e["golden_acc"]
                                       and abs(e["loss"] - e["golden_loss"])
                                       <= 1e-12 * e["golden_loss"] for e in epochs),
            "final_acc": data["history"][-1]["acc"],
            "final_ref_acc": data["history"][-1]["ref_acc"],
            "cycles": data["cycles"], "utilization": data["utilization"],
            "chunk_cycles": data["chunk_cycles"], "wall_s": data["wall_s"],
            "sim_s": data["sim_s"], "epochs": epochs}


def markdown(r):
    lines = [f"`chrysalis {' '.join(ARGS)}` (default preset: 20 epochs of 168 steps, batch "
             f"8, lr 0.1) in the native Verilator harness.",
             "",
             "| epoch | RTL test accuracy | float32 | golden CNN step (seed 0) | RTL loss |",
             "|---|---|---|---|---|"]
    for e in r["epochs"]:
        lines.append(f"| {e['epoch']:g} | {e['acc']:.2%} | {e['ref_acc']:.2%} | "
                     f"{e['golden_acc']:.2%} | {e['loss']:.4f} |")
    lines += [
        "",
        f"- Final test accuracy on the RTL: **{r['final_acc']:.2%}** (float32 reference "
        f"{r['final_ref_acc']:.2%}).",
        f"- Every run's memory image and counters equal the golden machine's: "
        f"{'yes' if r['golden_match'] else 'NO'}; every epoch's test accuracy equals the "
        f"golden CNN step's, and its loss (a float64 mean on the host) to 1e-12: "
        f"{'yes' if r['same_as_golden_step'] else 'NO'}.",
        f"- {r['cycles']:,} cycles in all ({r['chunk_cycles'][0]:,} an epoch, the prologue "
        f"and checkpoint included), utilization {r['utilization']:.1%}.",
        f"- Wall time {r['wall_s'] / 60:.0f} min ({r['sim_s'] / 60:.0f} min simulating; the "
        f"rest the build, the golden machine's check and the reference).",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--result", type=Path, default=None,
                        help="the --json of a finished run of the command, instead of "
                             "running it")
    args = parser.parse_args()
    path = args.result if args.result is not None else run()
    result = summarize(json.loads(Path(path).read_text()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_cnn_rtl.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "train_cnn_rtl.md").write_text(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    sys.exit(main())
