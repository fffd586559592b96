"""Simulation speed of the accelerator's RTL: simulated cycles per wall-clock second.

The job is the main job of ``make demo`` on the default config: the prologue (weights into
the PEs) and SGD steps of a 64-32-10 MLP on digits minibatches, batch 8, each step one
doorbell. It runs three ways, in one invocation:

* ``native`` / Verilator: the fast path (``chrysalis.sim.verify.native_job``), a C++ host and
  AXI4 memory around the Verilated top, built at -O3 without ``--public-flat-rw``, one model
  evaluation a clock cycle; ``native-pgo`` / Verilator: the same with the profile-guided
  build (``build: "-O3 + PGO"``, trained on the job's prologue and first step), which
  ``chrysalis train`` uses only when asked (``CHRYSALIS_PGO=1``). Their job takes about
  0.1 s, so each runs nine times, the two in turn, and the median run is reported;
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
import resource
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
#: Runs of each native Verilator build, in turn with the other; the median is reported.
NATIVE_REPEATS = 9


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


def _build_native(config, job, simulator, pgo=False):
    """The native simulator, built into an empty cache: its folder and build."""
    folder = BUILD / f"native-{simulator}{'-pgo' if pgo else ''}"
    shutil.rmtree(folder, ignore_errors=True)
    # Emitted once: the job below reuses it (elaborating the default config takes seconds).
    verilog = native_job.verilog_of(config, folder / "rtl")
    extra = {"mem_bytes": job.mem_bytes} if simulator == "icarus" else {}
    built = native_job.build(config, verilog, cache=folder / "cache", simulator=simulator,
                             profile=job if pgo else None, log=print, **extra)
    if pgo and not built.pgo:
        raise SystemExit("native/verilator: the profile-guided build failed (note above)")
    return folder, built


def _children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_native(config, job, golden, simulator, folder, pgo=False):
    """One run of the job in a built native simulator: its wall time, the whole job's, the
    simulator process's CPU seconds, and its outputs (checked against the golden
    machine)."""
    start, cpu = time.perf_counter(), _children_cpu_s()
    outs = native_job.run_job(config, job, folder, cache=folder / "cache", simulator=simulator,
                              pgo=pgo)
    job_s, cpu_s = time.perf_counter() - start, _children_cpu_s() - cpu
    if golden_mismatches(outs, golden):
        raise SystemExit(f"native/{simulator} differs from the golden machine: "
                         f"{golden_mismatches(outs, golden)}")
    return sum(o.wall_s for o in outs), job_s, cpu_s, outs


def measure_native_verilator(config, job, golden):
    """The default build's row and the profile-guided build's. Their job runs in about
    0.1 s, too short for one timing to be steady on a shared machine: each runs
    NATIVE_REPEATS times, the two in turn (so both see the same load), and the run with the
    median wall time is reported."""
    builds = {pgo: _build_native(config, job, "verilator", pgo) for pgo in (False, True)}
    timed = {False: [], True: []}
    for _ in range(NATIVE_REPEATS):
        for pgo, (folder, _built) in builds.items():
            timed[pgo].append(_run_native(config, job, golden, "verilator", folder, pgo))
    rows = []
    for pgo, (_folder, built) in builds.items():
        runs = sorted(timed[pgo], key=lambda t: t[0])
        _wall, job_s, _cpu, outs = runs[len(runs) // 2]
        row = _row("native-pgo" if pgo else "native", "verilator", outs, golden,
                   built.seconds, job_s)
        # The simulator's CPU time, which other work on the machine barely changes (the
        # wall time it stretches): the whole process, start, image and register accesses
        # included, so its rate is a lower bound of the run's.
        cpu_s = sorted(t[2] for t in runs)[len(runs) // 2]
        row.update(build="-O3 + PGO" if built.pgo else "-O3",
                   evals_per_cycle=1 if built.one_eval else 2,
                   job_cpu_seconds=round(cpu_s, 3),
                   cycles_per_cpu_second=round(row["cycles"] / cpu_s))
        rows.append(row)
    return rows


def measure_native_icarus(config, job, golden):
    folder, built = _build_native(config, job, "icarus")
    _wall, job_s, _cpu, outs = _run_native(config, job, golden, "icarus", folder)
    return _row("native", "icarus", outs, golden, built.seconds, job_s)


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
    load_start = os.getloadavg()[0]
    rows = []
    plan = [("native", "verilator"), ("cocotb", "verilator")]
    if not args.no_icarus:
        plan += [("native", "icarus"), ("cocotb", "icarus")]
    for harness, simulator in plan:
        print(f"{harness} / {simulator}: prologue and {args.steps} steps on {args.preset}...",
              flush=True)
        if harness == "cocotb":
            done = [measure_cocotb(config, job, golden, simulator)]
        elif simulator == "verilator":
            done = measure_native_verilator(config, job, golden)
        else:
            done = [measure_native_icarus(config, job, golden)]
        for row in done:
            print(f"  {row}", flush=True)
        rows += done
    native, pgo, cocotb = (row["cycles_per_second"] for row in rows[:3])
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = dict(preset=args.preset, rows=config.core.rows, cols=config.core.cols,
                sizes=SIZES, batch=BATCH, steps=args.steps, machine=platform.machine(),
                python=platform.python_version(),
                native_over_cocotb_verilator=round(native / cocotb, 1),
                native_pgo_over_cocotb_verilator=round(pgo / cocotb, 1),
                cores=os.cpu_count(), load_average_start=round(load_start, 2),
                load_average_end=round(os.getloadavg()[0], 2))
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
    cpu = {r["harness"]: r["cycles_per_cpu_second"] for r in rows[:2]}
    lines += [f"Machine load (1-minute average) {meta['load_average_start']} at the start and "
              f"{meta['load_average_end']} at the end, on {meta['cores']} cores: wall-clock "
              "rates fall with other work, CPU time much less. Cycles per CPU second of the "
              f"native simulator's whole process (start, image and register accesses "
              f"included): {cpu['native']} (-O3), {cpu['native-pgo']} (-O3 + PGO)."]
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
