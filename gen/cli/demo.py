"""``make demo``: the main job on the default config.

1. Emit the Verilog of the accelerator (``chrysalis verilog``: Verilog, sidecar, C headers,
   file list).
2. Compile a 64-32-10 MLP for scikit-learn's digits into a memory image and command streams
   (``sim.compile.program``).
3. Simulate the Verilog under Verilator with cocotb: cocotbext-axi's AxiLiteMaster is the
   host and AxiRam the memory. The host writes the image, rings the doorbell for the
   prologue (weights into the PEs), writes a real minibatch and rings it for one SGD step
   (forward, loss gradient, backward, weight gradient and update on chip), then for the
   checkpoint (the updated weights back into memory), waiting for the interrupt each time.
4. Run the same job on the golden machine model (``sim.golden.machine``) and compare the whole
   memory image and the counters after each run, bit for bit.
5. Print the cycles, the utilization and the minibatch's loss.

    chrysalis demo [--preset NAME | --config FILE] [--batch 8] [--steps 1] [-o DIR]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from chrysalis.gen.cli import add_config_arguments, add_output_argument, config_from_args
from chrysalis.gen.spec.config import ConfigError
from chrysalis.sim.verify.runner import SIMULATORS

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[2]
SIZES = (64, 32, 10)


def run(config, out_dir, batch, steps, seed, simulators):
    """Emit, compile, simulate and compare; returns the rows of the summary."""
    from chrysalis.gen.emit.verilog import emit
    from chrysalis.gen.spec.networks import mlp
    from chrysalis.sim.compile.data import digits
    from chrysalis.sim.compile.job import GOLDEN_COUNTERS, run_job_golden, training_job
    from chrysalis.sim.compile.program import TrainingProgram, initial_weights
    from chrysalis.sim.golden import numerics as nx
    from chrysalis.sim.train.reference import softmax_xent
    from chrysalis.sim.verify.rtl_job import run_job

    print(f"[1/4] emitting the Verilog of config {config.name!r} "
          f"({config.core.rows}x{config.core.cols} core) into {out_dir / 'rtl'}", flush=True)
    for path in emit(config, out_dir / "rtl").values():
        print(f"      {path}")
    # The weights stay on chip between steps; a checkpoint run stores them at the end. The
    # update is the one `chrysalis train` runs by default on this config (fused into the
    # weight gradient where it applies, sim.compile.compiler.resolve_update).
    program = TrainingProgram(config, list(SIZES), batch, lr=0.25, store_every_step=False,
                              update=None)
    x_train, y_train, _, _ = digits(seed)
    minibatches = [(nx.from_float32(x_train[s * batch:(s + 1) * batch].T.astype(np.float32)),
                    y_train[s * batch:(s + 1) * batch]) for s in range(steps)]
    job = training_job(program, initial_weights(list(SIZES), seed), minibatches)
    print(f"[2/4] compiled a {'-'.join(map(str, SIZES))} MLP, batch {batch}: "
          f"{job.runs[1].cmd_count} commands per step, a {4 * len(job.image)}-byte memory "
          f"image, weights {'streamed' if program.compiled.streamed else 'resident in the PEs'}",
          flush=True)
    print("[3/4] the golden machine model", flush=True)
    golden = run_job_golden(config, job)
    rows, failures = [], []
    pes = config.core.rows * config.core.cols
    macs = mlp(list(SIZES)).macs(batch)
    for index, simulator in enumerate(simulators, 1):
        print(f"[4/4] ({index}/{len(simulators)}) {simulator}: the prologue and {steps} SGD "
              f"step(s) on digits", flush=True)
        start = time.perf_counter()
        outs = run_job(config, job, simulator, out_dir / "sim", timeout_s=3600)
        seconds = time.perf_counter() - start
        for i, (r, g) in enumerate(zip(outs, golden)):
            what = "prologue" if i == 0 else f"step {i}" if i <= steps else "checkpoint"
            differ = np.flatnonzero(r.image != g.image)
            counters = {k: r.counters[k] for k in GOLDEN_COUNTERS}
            if r.error != g.error or differ.size or counters != g.counters:
                failures.append(f"{simulator} {what}: error {r.error.name} vs {g.error.name}, "
                                f"{differ.size} words differ, counters "
                                f"{'equal' if counters == g.counters else 'differ'}")
            previous = outs[i - 1].counters if i else dict.fromkeys(r.counters, 0)
            cycles = r.counters["cycles"] - previous["cycles"]
            step = 0 < i <= steps
            # The mean softmax cross-entropy of the step's logits, in float64 on the host;
            # step k writes them into its slot (training_job's host contract).
            loss = None
            if step:
                logits = program.read_logits(r.image, program.slot_of_step(i - 1))
                loss = softmax_xent(nx.to_float32(logits), minibatches[i - 1][1])
            rows.append(dict(simulator=simulator, run=what, cycles=cycles,
                             core=r.counters["core_cycles"] - previous["core_cycles"],
                             dma=r.counters["dma_cycles"] - previous["dma_cycles"],
                             util=macs / (pes * cycles) if step else None, loss=loss,
                             exact=not failures, seconds=seconds))
    return rows, failures


def summary(rows):
    lines = ["| simulator | run | cycles | core busy | DMA | utilization | loss (before the "
             "step) | bit-exact |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        util = "" if r["util"] is None else f"{r['util']:.1%}"
        loss = "" if r["loss"] is None else f"{r['loss']:.4f}"
        lines.append(f"| {r['simulator']} | {r['run']} | {r['cycles']} | {r['core']} | "
                     f"{r['dma']} | {util} | {loss} | {'yes' if r['exact'] else 'NO'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="chrysalis demo", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    add_config_arguments(parser, required=False)
    parser.add_argument("--batch", type=int, default=8, help="minibatch size (default 8)")
    parser.add_argument("--steps", type=int, default=1, help="training steps (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="data split and weights (default 0)")
    add_output_argument(parser, type=Path, default=REPO / "build" / "demo", old=("--out",),
                        help="output folder (default build/demo)")
    parser.add_argument("--simulator", action="append", choices=SIMULATORS,
                        help="simulator to run (repeatable; default verilator)")
    args = parser.parse_args(argv)
    for name in ("batch", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, not {getattr(args, name)!r}")
    try:
        config = config_from_args(args)
        rows, failures = run(config, args.output, args.batch, args.steps, args.seed,
                             args.simulator or ["verilator"])
    except (ConfigError, ValueError) as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 2
    print()
    print(summary(rows))
    print(f"\nWall time: {rows[-1]['seconds']:.1f} s under {rows[-1]['simulator']}. "
          "Utilization: useful MACs of the step (forward, dX but the first layer's, dW; the "
          "update is not a MAC) / (PEs x cycles from doorbell to interrupt).")
    if failures:
        print("\nThe RTL and the golden machine model disagree:\n" + "\n".join(failures))
        return 1
    print("\nAfter every run the whole memory image and the counters equal the golden machine "
          "model's, bit for bit.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
