"""A whole digits training on the RTL: ``chrysalis train --backend verilator --epochs 12``.

The default preset (4x4 core, bf16 operands, fp32 accumulation), the 64-32-10 MLP, batch 8,
lr 0.1, 12 epochs (2,016 SGD steps), seed 0, on Verilator in the native harness
(``chrysalis.sim.verify.native_job``): one simulation per epoch, every step's memory image
and counters checked against the golden machine model. The native build starts from an
empty cache, so the wall time includes it.

    .venv/bin/python benchmarks/train_rtl.py [--epochs 12]

Writes ``benchmarks/results/train_rtl.{json,md}``.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BUILD = ROOT / "build" / "bench" / "train_rtl"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    shutil.rmtree(BUILD, ignore_errors=True)
    # An empty cache of native builds: the build is part of the measured time.
    os.environ["CHRYSALIS_CACHE"] = str(BUILD / "cache")
    from chrysalis.gen.spec.config import get_preset
    from chrysalis.sim.train.single import train

    config = get_preset("default")
    start = time.perf_counter()
    result = train(config, epochs=args.epochs, backend="verilator", build_dir=BUILD,
                   progress=False, log=lambda line: print(line, flush=True))
    wall = time.perf_counter() - start
    pes = config.core.rows * config.core.cols
    per_epoch = result.useful_macs // result.steps * (result.steps // args.epochs)
    epochs = [dict(epoch=int(h.epoch), test_accuracy=round(h.acc, 4),
                   float32_accuracy=round(h.ref_acc, 4), cycles=c,
                   utilization=round(per_epoch / (pes * c), 4))
              for h, c in zip(result.history, result.chunk_cycles)]
    out = dict(preset=config.name, sizes=list(result.sizes), batch=result.batch, lr=result.lr,
               epochs=args.epochs, steps=result.steps, harness=result.harness,
               golden_match=result.golden_match, cycles=result.cycles,
               sim_s=round(result.sim_s, 2), wall_s=round(wall, 1),
               cycles_per_second=round(result.cycles / result.sim_s),
               test_accuracy=round(result.final.acc, 4),
               float32_accuracy=round(result.final.ref_acc, 4),
               utilization=round(result.utilization, 4), per_epoch=epochs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_rtl.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [f"`chrysalis train --backend verilator --epochs {args.epochs}`: the default preset "
             f"(4x4 core), 64-32-10 MLP on digits, batch {result.batch}, lr {result.lr}, "
             f"{result.steps} steps, seed 0, in the native harness; every step's memory image "
             f"and counters checked against the golden machine model "
             f"(golden match: {'yes' if result.golden_match else 'NO'}). Wall time "
             f"{wall:.0f} s including the native build ({result.sim_s:.1f} s simulating "
             f"{result.cycles} cycles, {out['cycles_per_second']} cycles/s); final test "
             f"accuracy {result.final.acc:.2%} (float32 reference {result.final.ref_acc:.2%}); "
             f"`benchmarks/train_rtl.py`.", "",
             "| epoch | test accuracy | float32 | cycles | utilization |",
             "|---|---|---|---|---|"]
    lines += [f"| {e['epoch']} | {e['test_accuracy']:.2%} | {e['float32_accuracy']:.2%} | "
              f"{e['cycles']} | {e['utilization']:.1%} |" for e in epochs]
    (RESULTS / "train_rtl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if result.golden_match else 1


if __name__ == "__main__":
    sys.exit(main())
