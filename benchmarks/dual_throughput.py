"""MACs per PE per cycle of the dual-precision core, from the RTL's counters.

One SGD step of a 64-32-10 MLP on a digits minibatch (the prologue first, then the step, then
a checkpoint; one doorbell each; the weights stay on chip between them, as in ``make demo``) runs on the accelerator's RTL under Verilator for the default 4x4 bf16 core
with each precision policy. The counters of the step's run give:

* ``MACs`` = HIGH_PRODUCTS + LOW_PRODUCTS + BYPASS_PRODUCTS: every product the PEs made, the
  padding of partial tiles included;
* ``MACs / PE / MAC slot``: products per PE per compute slot that issued a MAC (2 per slot
  for a dual policy, less only where an output has no partner);
* ``MACs / PE / core cycle`` (over CORE_CYCLES: every cycle the core was busy, the loads,
  the drains of the reducers and the loss gradient included) and per cycle of the whole
  run (CYCLES: doorbell to done, with the DMA and the command fetch);
* the step's cycles, and the speed-up over ``single`` with the same accumulators.

``single`` is measured with 16 accumulators (its minimum at latency 6, the default) and 28
(the dual policies' minimum, ``4 * (latency + 1)``), so that the dual policies are compared
with the same accumulator groups too. Every run is also compared with the golden machine
model (whole memory image and counters), so the counts are those of a correct run.

    .venv/bin/python benchmarks/dual_throughput.py [--batch 8 24] [--simulator verilator]

Writes ``benchmarks/results/dual_throughput.{json,md}``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import PRESETS, with_overrides  # noqa: E402
from chrysalis.sim.golden import numerics as nx  # noqa: E402
from chrysalis.sim.compile.data import digits  # noqa: E402
from chrysalis.sim.compile.program import TrainingProgram, initial_weights  # noqa: E402
from chrysalis.sim.compile.job import GOLDEN_COUNTERS, run_job_golden, training_job
from chrysalis.sim.verify.rtl_job import run_job  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "build" / "bench" / "dual_throughput"
SIZES = [64, 32, 10]
#: (label, policy, accumulators)
POINTS = (("single", "single", 16), ("single", "single", 28), ("dual-full", "dual-full", 28),
          ("value", "value", 28))


def point_config(policy, acc_regs):
    name = f"thr_{policy.replace('-', '_')}_{acc_regs}"
    return with_overrides(PRESETS["default"], {"name": name, "mac.dual": policy,
                                               "pe.acc_regs": acc_regs})


def measure(config, batch, simulator):
    """Counters of one training step on the RTL, checked against the golden machine."""
    # The weights stay on chip (a checkpoint run stores them at the end), as in `make demo`.
    program = TrainingProgram(config, SIZES, batch, lr=0.25, store_every_step=False)
    x, y, _, _ = digits(0)
    minibatch = (nx.from_float32(x[:batch].T.astype(np.float32)), y[:batch])
    job = training_job(program, initial_weights(SIZES, 0), [minibatch])
    start = time.perf_counter()
    outs = run_job(config, job, simulator, WORK / config.name, timeout_s=7200)
    wall = time.perf_counter() - start
    golden = run_job_golden(config, job)
    for i, (r, g) in enumerate(zip(outs, golden)):
        same = np.array_equal(r.image, g.image) and \
            {k: r.counters[k] for k in GOLDEN_COUNTERS} == g.counters
        if not same:
            raise SystemExit(f"{config.name}: run {i} differs from the golden machine model")
    before, after = outs[0].counters, outs[1].counters   # the prologue, then the step
    step = {k: after[k] - before[k] for k in after}
    pes = config.core.rows * config.core.cols
    macs = step["high_products"] + step["low_products"] + step["bypass_products"]
    return {
        "cycles": outs[1].cycles,
        "core_cycles": step["core_cycles"],
        "mac_slots": step["mac_slots"],
        "macs": macs,
        "high": step["high_products"], "low": step["low_products"],
        "bypass": step["bypass_products"],
        "macs_per_pe_per_slot": macs / pes / step["mac_slots"],
        "macs_per_pe_per_core_cycle": macs / pes / step["core_cycles"],
        "macs_per_pe_per_cycle": macs / pes / outs[1].cycles,
        "wall_s": round(wall, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 24])
    parser.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    args = parser.parse_args(argv)

    rows = []
    for batch in args.batch:
        base = {}
        for label, policy, acc_regs in POINTS:
            config = point_config(policy, acc_regs)
            print(f"batch {batch}: {label}, {acc_regs} accumulators ...", flush=True)
            row = dict(batch=batch, policy=label, acc_regs=acc_regs,
                       **measure(config, batch, args.simulator))
            if policy == "single":
                base[acc_regs] = row
            row["speedup_vs_single_same_acc"] = round(base[28]["cycles"] / row["cycles"], 3) \
                if 28 in base else None
            row["speedup_vs_single_16"] = round(base[16]["cycles"] / row["cycles"], 3)
            rows.append(row)
            print(f"  {row['cycles']} cycles, {row['macs_per_pe_per_slot']:.3f} MACs/PE/slot, "
                  f"{row['macs_per_pe_per_core_cycle']:.3f} MACs/PE/core cycle", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"network": SIZES, "config": "default (4x4 bf16, latency 6)",
            "simulator": args.simulator}
    (RESULTS / "dual_throughput.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Dual precision: MACs per PE per cycle (RTL counters)", "",
        f"One SGD step of {'-'.join(map(str, SIZES))} on a digits minibatch, default 4x4 bf16 "
        f"core (latency 6), {args.simulator}. MACs = high + low + bypass products (padding "
        "included). Per slot: per compute slot that issued a MAC; per core cycle: over every "
        "cycle the core was busy; per cycle: over the whole run (DMA and fetch included).", "",
        "| batch | policy | acc | step cycles | MAC slots | MACs | MACs/PE/slot | "
        "MACs/PE/core cycle | MACs/PE/cycle | speed-up vs single (same acc) | "
        "vs single (16) |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        same = "" if r["speedup_vs_single_same_acc"] is None else \
            f"{r['speedup_vs_single_same_acc']:.2f}x"
        lines.append(
            f"| {r['batch']} | {r['policy']} | {r['acc_regs']} | {r['cycles']} | "
            f"{r['mac_slots']} | {r['macs']} | {r['macs_per_pe_per_slot']:.3f} | "
            f"{r['macs_per_pe_per_core_cycle']:.3f} | {r['macs_per_pe_per_cycle']:.3f} | "
            f"{same} | {r['speedup_vs_single_16']:.2f}x |")
    (RESULTS / "dual_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
