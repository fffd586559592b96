"""Simulation speed of the accelerator's RTL: simulated cycles per wall-clock second.

The job is the main job of ``make demo`` on the default config: the prologue (weights into
the PEs) and SGD steps of a 64-32-10 MLP on digits minibatches, batch 8, each step one
doorbell. It runs three ways, in one invocation:

* ``native`` / Verilator: the fast path (``chrysalis.sim.verify.native_job``), a C++ host and
  AXI4 memory around the Verilated top, built at -O3 without ``--public-flat-rw``, one model
  evaluation a clock cycle; its job takes about 0.1 s, so it runs five times and the median
  run is reported; then the same with the profile-guided build (``build: "-O3 + PGO"``,
  trained on the job's prologue and first step), which ``chrysalis train`` uses only when
  asked (``CHRYSALIS_PGO=1``);
* ``cocotb`` / Verilator: the cocotb testbench with cocotbext-axi's AxiLiteMaster and AxiRam
  (Python on every clock edge), with an optimised model build whose only public signals
  are the top's ports (``sim.verify.runner``);
* ``native`` / Icarus: the host and AXI4 memory in Verilog beside the design
  (``sim/verify/native/harness.v``), no Python during a run;
* ``cocotb`` / Icarus: the same testbench under Icarus Verilog.

Cycles are the accelerator's ``CYCLES`` counter (doorbell to done), summed over the runs;
``run_seconds`` is the wall time from each doorbell to its interrupt, summed (the same span
in every harness); ``build_seconds`` is the build alone (into an empty cache and without
the compiler cache, so it is measured, not taken from an earlier run); ``job_seconds`` is the
whole job after the build (process start, memory image in and out, register accesses).
Every run is compared with the golden machine model, so the cycles counted are those of a
correct run.

    .venv/bin/python benchmarks/sim_speed.py [--preset default] [--steps 3] [--no-icarus]

Writes ``benchmarks/results/sim_speed.{json,md}``.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from chrysalis.gen.spec.config import get_preset  # noqa: E402
from chrysalis.sim.compile.data import digits  # noqa: E402
from chrysalis.sim.compile.job import golden_mismatches, run_job_golden, training_job  # noqa: E402
from chrysalis.sim.compile.program import TrainingProgram, initial_weights  # noqa: E402
from chrysalis.sim.golden import numerics as nx  # noqa: E402
from chrysalis.sim.verify import native_job  # noqa: E402
from chrysalis.sim.verify.rtl_job import run_job  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUILD = ROOT / "build" / "bench" / "sim_speed"
SIZES = [64, 32, 10]
BATCH = 8
#: Runs of the native Verilator job; the median is reported.
NATIVE_REPEATS = 5


def demo_job(config, steps):
    program = TrainingProgram(config, SIZES, BATCH, lr=0.25)
    x, y, _, _ = digits(0)
    batches = [(nx.from_float32(x[s * BATCH:(s + 1) * BATCH].T.astype(np.float32)),
                y[s * BATCH:(s + 1) * BATCH]) for s in range(steps)]
    return training_job(program, initial_weights(SIZES, 0), batches)


def _row(harness, simulator, outs, golden, build_s, job_s):
    problems = golden_mismatches(outs, golden)
    if problems:
        raise SystemExit(f"{harness}/{simulator} differs from the golden machine: {problems}")
    cycles = sum(o.cycles for o in outs)
    wall = sum(o.wall_s for o in outs)
    return dict(harness=harness, simulator=simulator, runs=len(outs), cycles=cycles,
                run_seconds=round(wall, 4), cycles_per_second=round(cycles / wall),
                build_seconds=round(build_s, 1), job_seconds=round(job_s, 2))


def measure_native(config, job, golden, simulator="verilator", pgo=False):
    folder = BUILD / f"native-{simulator}{'-pgo' if pgo else ''}"
    shutil.rmtree(folder, ignore_errors=True)
    # Emitted once: the job below reuses it (elaborating the default config takes seconds).
    verilog = native_job.verilog_of(config, folder / "rtl")
    extra = {"mem_bytes": job.mem_bytes} if simulator == "icarus" else {}
    built = native_job.build(config, verilog, cache=folder / "cache", simulator=simulator,
                             profile=job if pgo else None, log=print, **extra)
    if pgo and not built.pgo:
        raise SystemExit("native/verilator: the profile-guided build failed (note above)")
    # The Verilator job runs in about 0.1 s, too short for one timing to be steady on a
    # shared machine: it runs NATIVE_REPEATS times and the run with the median wall time is
    # reported (every one is checked against the golden machine).
    repeats = NATIVE_REPEATS if simulator == "verilator" else 1
    timed = []
    for _ in range(repeats):
        start = time.perf_counter()
        outs = native_job.run_job(config, job, folder, cache=folder / "cache",
                                  simulator=simulator, pgo=pgo)
        job_s = time.perf_counter() - start
        if golden_mismatches(outs, golden):
            raise SystemExit(f"native/{simulator} differs from the golden machine: "
                             f"{golden_mismatches(outs, golden)}")
        timed.append((sum(o.wall_s for o in outs), job_s, outs))
    timed.sort(key=lambda t: t[0])
    _wall, job_s, outs = timed[len(timed) // 2]
    row = _row("native", simulator, outs, golden, built.seconds, job_s)
    if simulator == "verilator":
        row.update(build="-O3 + PGO" if built.pgo else "-O3",
                   evals_per_cycle=1 if built.one_eval else 2)
    return row


def measure_cocotb(config, job, golden, simulator):
    folder = BUILD / f"cocotb-{simulator}"
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    outs = run_job(config, job, simulator, folder, timeout_s=7200,
                   fast_build=simulator != "verilator")
    total = time.perf_counter() - start
    # The cocotb runner builds and runs in one call: the build is what the runs did not take.
    run_s = sum(o.wall_s for o in outs)
    return _row("cocotb", simulator, outs, golden, total - run_s, run_s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-icarus", action="store_true", help="skip the Icarus run")
    args = parser.parse_args(argv)
    # Builds are timed from scratch: no compiler cache (sim.verify.runner.compiler_cache_env
    # leaves an OBJCACHE that is set alone), so build_seconds is what a first build costs.
    os.environ["OBJCACHE"] = ""
    config = get_preset(args.preset)
    job = demo_job(config, args.steps)
    golden = run_job_golden(config, job)
    rows = []
    plan = [("native", "verilator"), ("native-pgo", "verilator"), ("cocotb", "verilator")]
    if not args.no_icarus:
        plan += [("native", "icarus"), ("cocotb", "icarus")]
    for harness, simulator in plan:
        print(f"{harness} / {simulator}: prologue and {args.steps} steps on {args.preset}...",
              flush=True)
        rows.append(measure_native(config, job, golden, simulator, pgo=harness == "native-pgo")
                    if harness.startswith("native")
                    else measure_cocotb(config, job, golden, simulator))
        print(f"  {rows[-1]}", flush=True)
    native, pgo, cocotb = (row["cycles_per_second"] for row in rows[:3])
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = dict(preset=args.preset, rows=config.core.rows, cols=config.core.cols,
                sizes=SIZES, batch=BATCH, steps=args.steps, machine=platform.machine(),
                python=platform.python_version(),
                native_over_cocotb_verilator=round(native / cocotb, 1),
                native_pgo_over_cocotb_verilator=round(pgo / cocotb, 1))
    lines = [f"Simulation speed, preset `{args.preset}` ({config.core.rows}x{config.core.cols} "
             f"core), 64-32-10 MLP on digits, batch {BATCH}, prologue + {args.steps} steps, "
             "each run checked against the golden machine; `benchmarks/sim_speed.py`. "
             "`run (s)` is doorbell to interrupt summed over the runs; `job (s)` the whole job "
             "after the build. `native` is the default build (-O3, one model evaluation a "
             "cycle); `native-pgo` the profile-guided one (`CHRYSALIS_PGO=1`). Target: the "
             "native path >= 300,000 cycles/s and >= 20x the cocotb path.", "",
             "| harness | simulator | simulated cycles | run (s) | cycles per second | "
             "build (s) | job (s) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['harness']} | {r['simulator']} | {r['cycles']} | {r['run_seconds']} | "
              f"{r['cycles_per_second']} | {r['build_seconds']} | {r['job_seconds']} |"
              for r in rows]
    lines += ["", f"Native over cocotb under Verilator: {native / cocotb:.1f}x "
              f"(profile-guided: {pgo / cocotb:.1f}x)."]
    icarus = {r["harness"]: r["cycles_per_second"] for r in rows if r["simulator"] == "icarus"}
    if len(icarus) == 2:
        meta["native_over_cocotb_icarus"] = round(icarus["native"] / icarus["cocotb"], 2)
        lines += [f"Native over cocotb under Icarus: {icarus['native'] / icarus['cocotb']:.2f}x "
                  "(Icarus's own evaluation of the design dominates both)."]
    (RESULTS / "sim_speed.json").write_text(json.dumps(dict(meta=meta, results=rows), indent=1)
                                            + "\n")
    (RESULTS / "sim_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
