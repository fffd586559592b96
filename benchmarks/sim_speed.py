"""Simulation speed of the accelerator's RTL: simulated cycles per wall-clock second.

The job is the main job of ``make demo`` on the default config: the prologue (weights into
the PEs) and SGD steps of a 64-32-10 MLP on digits minibatches, batch 8, each step one
doorbell. The testbench is the one every RTL test uses (cocotbext-axi's AxiLiteMaster and
AxiRam, which run Python on every clock edge). Cycles are the accelerator's ``CYCLES``
counter (doorbell to done); the wall time is that of the runs, the build excluded (it is
reported on its own). Verilator runs twice: with the ``-O0`` model build that the tests use
(fast to build) and with an optimised build. Every run is also compared with the golden machine model, so the
cycles counted are those of a correct run.

    .venv/bin/python benchmarks/sim_speed.py [--preset default] [--steps 3]

Writes ``benchmarks/results/sim_speed.{json,md}``.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import get_preset  # noqa: E402
from chrysalis.sim.golden import numerics as nx  # noqa: E402
from chrysalis.sim.compile.data import digits  # noqa: E402
from chrysalis.sim.compile.program import TrainingProgram, initial_weights  # noqa: E402
from chrysalis.sim.compile.job import GOLDEN_COUNTERS, run_job_golden, training_job
from chrysalis.sim.verify.rtl_job import run_job  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SIZES = [64, 32, 10]


def measure(config, steps, simulator, build_dir, batch=8, fast_build=True):
    program = TrainingProgram(config, SIZES, batch, lr=0.25)
    x, y, _, _ = digits(0)
    batches = [(nx.from_float32(x[s * batch:(s + 1) * batch].T.astype(np.float32)),
                y[s * batch:(s + 1) * batch]) for s in range(steps)]
    job = training_job(program, initial_weights(SIZES, 0), batches)
    start = time.perf_counter()
    outs = run_job(config, job, simulator, build_dir, timeout_s=7200, fast_build=fast_build)
    total = time.perf_counter() - start
    golden = run_job_golden(config, job)
    for i, (r, g) in enumerate(zip(outs, golden)):
        if not np.array_equal(r.image, g.image) or \
                {k: r.counters[k] for k in GOLDEN_COUNTERS} != g.counters:
            raise SystemExit(f"{simulator}: run {i} differs from the golden machine model")
    cycles = sum(o.cycles for o in outs)
    wall = sum(o.wall_s for o in outs)
    name = simulator if simulator == "icarus" else \
        f"verilator ({'-O0' if fast_build else 'optimised'} build)"
    return dict(simulator=name, runs=len(outs), cycles=cycles, run_seconds=round(wall, 2),
                cycles_per_second=round(cycles / wall), build_and_run_seconds=round(total, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    config = get_preset(args.preset)
    rows = []
    for simulator, fast in (("verilator", True), ("verilator", False), ("icarus", True)):
        print(f"{simulator}: prologue and {args.steps} steps on {args.preset}...", flush=True)
        rows.append(measure(config, args.steps, simulator,
                            ROOT / "build" / "bench" / "sim_speed" / f"{simulator}-{fast}",
                            fast_build=fast))
        print(f"  {rows[-1]}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = dict(preset=args.preset, rows=config.core.rows, cols=config.core.cols,
                sizes=SIZES, batch=8, steps=args.steps, machine=platform.machine(),
                python=platform.python_version())
    (RESULTS / "sim_speed.json").write_text(json.dumps(dict(meta=meta, results=rows), indent=1)
                                            + "\n")
    lines = [f"Simulation speed, preset `{args.preset}` ({config.core.rows}x{config.core.cols} "
             f"core), 64-32-10 MLP on digits, batch 8, prologue + {args.steps} steps; "
             "`benchmarks/sim_speed.py`.", "",
             "| simulator | simulated cycles | run wall time (s) | cycles per second | "
             "build + run (s) |", "|---|---|---|---|---|"]
    lines += [f"| {r['simulator']} | {r['cycles']} | {r['run_seconds']} | "
              f"{r['cycles_per_second']} | {r['build_and_run_seconds']} |" for r in rows]
    (RESULTS / "sim_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
