"""Accuracy of training with dual precision: the policies of ``mac.dual`` on the digits.

For each policy (``single``, ``dual-full``, ``value``, ``static``, ``random``) and seed this
script trains ``sim.train.single``'s digits network (a 64-32-10 MLP, batch 8, lr 0.1, plain SGD) on
the matrix-level golden model of a dual-precision core (``sim.golden.dual_model.golden_step``: the
default preset with ``mac.dual`` set, ``low_man_bits`` 3), next to the float32 NumPy
reference (``sim.train.single.reference_step``), from the same initial weights
(``sim.compile.program.initial_weights``) on the same minibatches (``sim.train.single``'s order). It
reports the final test accuracy per policy (mean, spread over the seeds), the gap to
``dual-full`` and to float32, and the fraction of products that were LOW and BYPASS
(overall and per phase), to ``benchmarks/results/dual_precision.json`` and ``.md``.

    .venv/bin/python benchmarks/dual_precision.py [--seeds 0 1 2 3 4] [--epochs 12] [-j 2]
        [--low-man-bits 3] [--pairing outputs|k]

``--pairing`` picks what the two streams of a slot are (``sim.golden.dual_model.PAIRINGS``):
two outputs at one step (``outputs``, the default, ``dual_precision.*``) or two k-steps of one
output, summed and accumulated once (``k``, ``dual_precision_k.*``).

The ``random`` policy's bit uses the slot seed 0 (``--slot-seed``). A run (one policy, one
seed, 12 epochs) takes about 40 s; the whole study about 9 minutes with ``-j 2``. The test set
has 450 images: one image is 0.22 points.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import get_preset, with_overrides  # noqa: E402
from chrysalis.sim.golden import dual_model as dm  # noqa: E402
from chrysalis.sim.golden import numerics as nx  # noqa: E402
from chrysalis.sim.train import single as tr  # noqa: E402
from chrysalis.sim.train.dataset import MinibatchOrder  # noqa: E402
from chrysalis.sim.train.reference import accuracy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PRESET = "default"
POLICIES = ("single", "dual-full", "value", "static", "random")
REFERENCE = "float32"


def run(policy, seed, epochs, lr, batch, slot_seed, low_man_bits, pairing="outputs"):
    """Train one (policy, seed); test accuracy after every epoch, and the counters."""
    from chrysalis.sim.compile.data import digits
    from chrysalis.sim.compile.program import initial_weights
    x_train, y_train, x_test, y_test = digits(tr.DATA_SEED)
    order = MinibatchOrder(len(x_train), batch, seed)
    x_test_t = x_test.T.copy()
    weights = initial_weights(list(tr.DIGITS_SIZES), seed)
    counters = dm.new_counters()
    if policy == REFERENCE:
        ref = [nx.to_float32(w).copy() for w in weights]
    else:
        # 28 accumulators: what a dual policy needs at the default latency (the numerics
        # do not depend on it).
        config = with_overrides(get_preset(PRESET), {"mac.dual": policy, "pe.acc_regs": 28,
                                                     "mac.low_man_bits": low_man_bits})
        num, dual = dm.from_config(config)
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        for step in range(epoch * order.per_epoch, (epoch + 1) * order.per_epoch):
            idx = order.indices(step)
            labels = y_train[idx]
            if policy == REFERENCE:
                tr.reference_step(ref, x_train[idx].T.copy(), labels, lr)
            else:
                weights, _ = dm.golden_step(num, dual, weights, nx.from_float32(x_train[idx].T),
                                            labels, lr, seed=slot_seed, counters=counters,
                                            pairing=pairing)
        current = ref if policy == REFERENCE else [nx.to_float32(w) for w in weights]
        history.append(accuracy(current, x_test_t, y_test))
    steps = epochs * order.per_epoch
    return {"policy": policy, "seed": seed, "epochs": epochs, "steps": steps,
            "acc": history[-1], "history": history,
            "step_ms": 1e3 * (time.perf_counter() - start) / steps,
            "counters": None if policy == REFERENCE else counters}


def _fractions(counters):
    """LOW and BYPASS fractions of all products, overall and per phase (padding included,
    and, as ``*_real``, of the products that are not padding)."""
    out = {}
    rows = dict(counters)
    rows["all"] = {key: sum(counters[p][key] for p in dm.PHASES)
                   for key in ("high", "low", "bypass", "padding")}
    for phase, row in rows.items():
        n = row["high"] + row["low"] + row["bypass"]
        real = n - row["padding"]
        out[phase] = {"products": n, "low": row["low"] / n, "bypass": row["bypass"] / n,
                      "high": row["high"] / n, "padding": row["padding"] / n,
                      "low_real": row["low"] / real,
                      "bypass_real": (row["bypass"] - row["padding"]) / real}
    return out


def summarize(rows, seeds, policies=POLICIES):
    by = {}
    for policy in policies + (REFERENCE,):
        accs = np.array([rows[(policy, s)]["acc"] for s in seeds])
        entry = {"mean": float(accs.mean()), "std": float(accs.std(ddof=1)) if len(accs) > 1
                 else 0.0, "min": float(accs.min()), "max": float(accs.max()),
                 "accs": [float(a) for a in accs]}
        if policy != REFERENCE:
            total = dm.new_counters()
            for s in seeds:
                dm.add_counters(total, rows[(policy, s)]["counters"])
            entry["counters"] = total
            entry["fractions"] = _fractions(total)
            entry["step_ms"] = float(np.mean([rows[(policy, s)]["step_ms"] for s in seeds]))
        by[policy] = entry
    for policy in policies:
        # Per seed differences (same weights, same minibatches), in points.
        for other, key in (("dual-full", "gap_dual_full"), (REFERENCE, "gap_float32")):
            d = 100 * (np.array(by[policy]["accs"]) - np.array(by[other]["accs"]))
            by[policy][key] = {"mean": float(d.mean()),
                               "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0}
    return by


def table(by, seeds, policies=POLICIES):
    lines = ["| policy | test accuracy, mean ± std (min–max) | gap to dual-full (points) | gap "
             "to float32 (points) | LOW products | BYPASS products | LOW forward / backward "
             "/ wgrad |",
             "|---|---|---|---|---|---|---|"]
    for policy in policies + (REFERENCE,):
        e = by[policy]
        acc = (f"{e['mean']:.2%} ± {100 * e['std']:.2f} ({e['min']:.2%}–{e['max']:.2%})")
        if policy == REFERENCE:
            lines.append(f"| {policy} (NumPy) | {acc} | | | | | |")
            continue
        f = e["fractions"]
        gd, gf = e["gap_dual_full"], e["gap_float32"]
        lines.append(
            f"| `{policy}` | {acc} | {gd['mean']:+.2f} ± {gd['std']:.2f} | "
            f"{gf['mean']:+.2f} ± {gf['std']:.2f} | {f['all']['low']:.1%} | "
            f"{f['all']['bypass']:.1%} | " + " / ".join(
                f"{f[p]['low']:.1%}" for p in dm.PHASES) + " |")
    return "\n".join(lines) + "\n"


def phase_table(by, policies=POLICIES):
    lines = ["| policy | phase | products | HIGH | LOW | BYPASS (of which padding) | LOW of "
             "non-padding | BYPASS of non-padding |", "|---|---|---|---|---|---|---|---|"]
    for policy in policies:
        f = by[policy]["fractions"]
        for phase in dm.PHASES + ("all",):
            r = f[phase]
            lines.append(f"| `{policy}` | {phase} | {r['products']} | {r['high']:.1%} | "
                         f"{r['low']:.1%} | {r['bypass']:.1%} ({r['padding']:.1%}) | "
                         f"{r['low_real']:.1%} | {r['bypass_real']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="seeds (default 0 to 4)")
    parser.add_argument("--epochs", type=int, default=tr.DEFAULT_EPOCHS,
                        help=f"epochs per run (default {tr.DEFAULT_EPOCHS})")
    parser.add_argument("--lr", type=float, default=tr.DEFAULT_LR)
    parser.add_argument("--batch", type=int, default=tr.DEFAULT_BATCH)
    parser.add_argument("--slot-seed", type=int, default=0,
                        help="seed of the random policy's bits (default 0)")
    parser.add_argument("--low-man-bits", type=int, default=get_preset(PRESET).mac.low_man_bits,
                        help="mantissa bits of the low-precision multiplier (default "
                             f"{get_preset(PRESET).mac.low_man_bits}; other values write "
                             "dual_precision_m<bits>.*)")
    parser.add_argument("--pairing", choices=dm.PAIRINGS, default="outputs",
                        help="the two streams of a slot: two outputs (default) or two "
                             "k-steps of one output (writes dual_precision_k.*)")
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES),
                        help="policies to train (default all; dual-full is always run, the "
                             "gaps are to it)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel runs (default 2)")
    args = parser.parse_args(argv)
    policies = tuple(p for p in POLICIES if p in args.policies or p == "dual-full")
    bits = args.low_man_bits
    stem = "dual_precision" + ("" if bits == get_preset(PRESET).mac.low_man_bits
                               else f"_m{bits}") + ("_k" if args.pairing == "k" else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    jobs = [(policy, seed) for seed in args.seeds for policy in policies + (REFERENCE,)]
    rows = {}
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run, policy, seed, args.epochs, args.lr, args.batch,
                               args.slot_seed, bits, args.pairing): (policy, seed)
                   for policy, seed in jobs}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                           desc="dual precision (digits)", unit="run"):
            rows[futures[future]] = future.result()
    wall = time.perf_counter() - start
    by = summarize(rows, args.seeds, policies)
    settings = {"preset": PRESET, "sizes": list(tr.DIGITS_SIZES), "batch": args.batch,
                "lr": args.lr, "momentum": None, "epochs": args.epochs, "seeds": args.seeds,
                "low_man_bits": bits, "pairing": args.pairing, "policies": list(policies),
                "operand": str(get_preset(PRESET).mac.operand), "slot_seed": args.slot_seed,
                "model": "chrysalis.sim.golden.dual_model.golden_step", "jobs": args.jobs,
                "wall_s": round(wall, 1), "load_average_at_start": round(load, 2),
                "machine": platform.machine(), "python": platform.python_version()}
    runs = [rows[(policy, s)] for s in args.seeds for policy in policies + (REFERENCE,)]
    (RESULTS / f"{stem}.json").write_text(
        json.dumps({"settings": settings, "policies": by, "runs": runs}, indent=1,
                   sort_keys=True) + "\n")
    same = "single" in policies and all(
        rows[("single", s)]["history"] == rows[("dual-full", s)]["history"] for s in args.seeds)
    step_ms = np.mean([by[p]["step_ms"] for p in policies])
    shortened = ("" if args.epochs == tr.DEFAULT_EPOCHS else
                 f" (rather than `sim.train.single`'s {tr.DEFAULT_EPOCHS}, for time)")
    pairing = ("two outputs per slot" if args.pairing == "outputs" else
               "k-paired: two k-steps of one output per slot, summed and accumulated once")
    alike = ("" if args.pairing == "k" else
             f"\n`single` and `dual-full` trained bit for bit alike on every seed: {same}.\n")
    text = (f"{'-'.join(map(str, tr.DIGITS_SIZES))} MLP on digits, `{PRESET}` preset (4x4, "
            f"bf16 operands, fp32 accumulation) with `mac.dual` per policy ({pairing}), low "
            f"multiplier {bits} mantissa bits; matrix-level golden model "
            f"`sim.golden.dual_model`; batch {args.batch}, lr {args.lr}, plain SGD, {args.epochs} "
            f"epochs{shortened}, "
            f"seeds {', '.join(map(str, args.seeds))} (initial weights and minibatch order as "
            f"`sim.train.single`). Gaps are per seed (same weights and minibatches), mean ± std over "
            f"the seeds. Fractions are of every product the array computes in the forward, "
            f"backward and weight-gradient phases (padding included; it bypasses), summed "
            f"over the seeds; the update's MACs are single-stream and not counted.\n\n"
            + table(by, args.seeds, policies) + alike +
            "\nPer phase:\n\n" + phase_table(by, policies) +
            f"\n{step_ms:.1f} ms per step of the model (mean, {args.jobs} runs in parallel, "
            f"load average {load:.1f} at the start); {wall:.0f} s in all.\n")
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
