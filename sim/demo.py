"""``make demo``: the main job on the default config.

1. Emit the Verilog of the config's training core, with its sidecar, C header and file list,
   as ``chrysalis verilog`` does.
2. Compile a 64-32-10 MLP for scikit-learn's digits onto the core (``sim.compiler``).
3. Simulate the Verilog under Verilator (and Icarus) with cocotb while it runs one SGD step
   on a real minibatch: forward, loss gradient, backward, weight gradient and update, all on
   chip. The testbench checks the output-layer gradient and every updated weight against
   the NumPy golden model, bit for bit.
4. Print the cycles (per kind of command), the utilization and the minibatch's loss.

    python -m sim.demo [--preset NAME | --config FILE] [--batch 8] [--steps 1]
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from gen.cli import add_config_arguments, config_from_args
from gen.config import ConfigError
from gen.verilog import emit
from sim.runner import SIMULATORS, run_testbench

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
SIZES = (64, 32, 10)


def run(config, out_dir, batch, steps, seed, simulators):
    """Emit, compile, simulate and check; returns one report per simulator."""
    from sim.compiler import compile_mlp
    print(f"[1/3] emitting the Verilog of config {config.name!r} "
          f"({config.core.rows}x{config.core.cols} core) into {out_dir}", flush=True)
    paths = emit(config, out_dir)
    for path in paths.values():
        print(f"      {path}")
    prog = compile_mlp(config, list(SIZES), batch, 0.25)   # fails early if it does not fit
    print(f"[2/3] compiled a {'-'.join(map(str, SIZES))} MLP, batch {batch}: "
          f"{len(prog.step)} commands per step, weights "
          f"{'streamed' if prog.streamed else 'resident in the PEs'}", flush=True)
    reports = {}
    for index, simulator in enumerate(simulators, 1):
        print(f"[3/3] ({index}/{len(simulators)}) {simulator}: {steps} training step(s) on "
              f"digits, checked bit for bit against the golden model", flush=True)
        report = (out_dir / f"{simulator}.report.json").resolve()
        report.unlink(missing_ok=True)
        start = time.perf_counter()
        run_testbench(
            sources=[paths["verilog"]], toplevel=config.name, module="sim.tb.training",
            simulator=simulator, build_dir=out_dir / "sim", timeout_s=3600,
            extra_env={"CHRYSALIS_CONFIG": config.to_toml(),
                       "CHRYSALIS_SIZES": ",".join(map(str, SIZES)), "CHRYSALIS_BATCH": batch,
                       "CHRYSALIS_STEPS": steps, "CHRYSALIS_SEED": seed,
                       "CHRYSALIS_DATA": "digits", "CHRYSALIS_REPORT": report})
        reports[simulator] = {**json.loads(report.read_text()),
                              "seconds": round(time.perf_counter() - start, 1)}
    return reports


def summary(config, reports):
    pes = config.core.rows * config.core.cols
    lines = ["| simulator | step cycles | PE MACs issued | useful MACs | utilization | loss "
             "(before the step) | bit-exact | wall time (s) |", "|---|---|---|---|---|---|---|---|"]
    for simulator, r in reports.items():
        for step, entry in enumerate(r["steps"]):
            issued = (entry["counters"]["mac_slots"] + entry["counters"]["update_slots"]) * pes
            lines.append(f"| {simulator} | {entry['cycles']} | {issued} | {r['macs_per_step']} | "
                         f"{r['macs_per_step'] / (pes * entry['cycles']):.1%} | "
                         f"{r['losses'][step]:.4f} | {'yes' if not r['failures'] else 'NO'} | "
                         f"{r['seconds']} |")
    first = next(iter(reports.values()))
    by_op = defaultdict(int)
    for command in first["commands"]:
        by_op[command["op"]] += command["cycles"]
    lines += ["", "| command | cycles (all steps, weight loading included) |", "|---|---|"]
    lines += [f"| {op} | {cycles} |" for op, cycles in sorted(by_op.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sim.demo", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    add_config_arguments(parser, required=False)
    parser.add_argument("--batch", type=int, default=8, help="minibatch size (default 8)")
    parser.add_argument("--steps", type=int, default=1, help="training steps (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="data split and weights (default 0)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "demo",
                        help="output directory (default build/demo)")
    parser.add_argument("--simulator", action="append", choices=SIMULATORS,
                        help="run only this simulator (repeatable; default both)")
    args = parser.parse_args(argv)
    for name in ("batch", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, not {getattr(args, name)!r}")
    try:
        config = config_from_args(args)
        reports = run(config, args.out, args.batch, args.steps, args.seed,
                      args.simulator or ["verilator", "icarus"])
    except (ConfigError, ValueError) as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 2
    print()
    print(summary(config, reports))
    if any(r["failures"] for r in reports.values()):
        print("\nThe RTL and the golden model disagree (see the log above).")
        return 1
    print(f"\nEvery updated weight and the loss gradient equal the golden model's, bit for "
          f"bit, under {' and '.join(reports)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
