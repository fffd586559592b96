"""``make demo``: the main job on the default config, at this stage of the project.

1. Emit the Verilog of the config's top level (today the PE's floating-point MAC) with its
   sidecar, C header and file list, as ``chrysalis verilog`` does.
2. Simulate that Verilog under Icarus and under Verilator with cocotb, streaming seeded
   vectors (edge cases, uniform, near and cancelling operands) through it, and check every
   result against the NumPy golden model, bit for bit.
3. Print what ran: vectors, mismatches, cycles and simulation speed per simulator.

    python -m sim.demo [--preset NAME | --config FILE] [--vectors N] [--out DIR]
"""

import argparse
import json
import sys
import time
from pathlib import Path

from gen.cli import add_config_arguments, config_from_args
from gen.config import ConfigError
from gen.verilog import emit
from sim.runner import SIMULATORS, run_testbench

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent


def run(config, out_dir, vectors, seed, simulators):
    """Emit, simulate and check; returns one row of figures per simulator."""
    print(f"[1/2] emitting Verilog for config {config.name!r} into {out_dir}")
    paths = emit(config, out_dir)
    for path in paths.values():
        print(f"      {path}")
    mac = config.mac
    rows = []
    for index, simulator in enumerate(simulators, 1):
        print(f"[2/2] ({index}/{len(simulators)}) {simulator}: {vectors} MAC vectors "
              f"({mac.operand} x {mac.operand} + {mac.accumulator}, latency {mac.latency})")
        report = out_dir / f"{simulator}.report.json"
        report.unlink(missing_ok=True)
        start = time.perf_counter()
        run_testbench(
            sources=[paths["verilog"]], toplevel=config.name, module="sim.tb.arith",
            simulator=simulator, build_dir=out_dir / "sim", timeout_s=1800,
            extra_env={"CHRYSALIS_UNIT": "mac",
                       "CHRYSALIS_FORMATS": f"{mac.operand.name},{mac.accumulator.name}",
                       "CHRYSALIS_VECTORS": vectors, "CHRYSALIS_SEED": seed,
                       "CHRYSALIS_REPORT": report})
        seconds = time.perf_counter() - start
        figures = json.loads(report.read_text())
        rows.append({"simulator": simulator, **figures, "seconds": round(seconds, 1)})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sim.demo", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    add_config_arguments(parser, required=False)
    parser.add_argument("--vectors", type=int, default=20_000,
                        help="vectors per simulator (default 20000)")
    parser.add_argument("--seed", type=int, default=1, help="vector seed (default 1)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "demo",
                        help="output directory (default build/demo)")
    parser.add_argument("--simulator", action="append", choices=SIMULATORS,
                        help="run only this simulator (repeatable; default both)")
    args = parser.parse_args(argv)
    if args.vectors < 1:
        parser.error(f"--vectors must be positive, not {args.vectors!r}")
    try:
        config = config_from_args(args)
    except ConfigError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 2
    rows = run(config, args.out, args.vectors, args.seed, args.simulator or list(SIMULATORS))
    print()
    print("| simulator | vectors | mismatches vs golden | cycles | wall time (s) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['simulator']} | {row['vectors']} | {row['mismatches']} | "
              f"{row['cycles']} | {row['seconds']} |")
    if any(row["mismatches"] for row in rows):
        print("\nThe RTL and the golden model disagree (see the log above).")
        return 1
    print("\nEvery result of the RTL MAC equals the golden model's, bit for bit, "
          f"under {' and '.join(row['simulator'] for row in rows)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
