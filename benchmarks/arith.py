"""Area and Fmax of the floating-point MAC on ECP5 (Yosys synth_ecp5 + nextpnr-ecp5).

For bf16, fp16, fp8_e4m3 and fp8_e5m2 operands with fp32 accumulation at the default
latency, and for bf16 at every latency from 1 to 6, this script emits the MAC behind input
registers (so every timed path is register to register), synthesizes it for ECP5, places
and routes it on an LFE5U-85F, and writes the LUT4/FF/DSP counts and the Fmax to
``benchmarks/results/arith.json`` and ``arith.md``.

    make bench-arith          # or: .venv/bin/python benchmarks/arith.py [-j 2]

Each point runs in its own directory under ``build/bench/arith/``. A point that fails is
reported with its log and the others go on.
"""

import argparse
import concurrent.futures
import json
import sys
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.formats import FORMATS, FP32  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "build" / "bench" / "arith"

DEFAULT_LATENCY = 6
POINTS = ([(name, DEFAULT_LATENCY) for name in ("bf16", "fp16", "fp8_e4m3", "fp8_e5m2")]
          + [("bf16", latency) for latency in range(1, DEFAULT_LATENCY)])


def run_point(point):
    """Synthesize and place one (operand format, latency) MAC; return its figures."""
    from amaranth.back import verilog

    from chrysalis.gen.flows.pnr import pnr_ecp5
    from chrysalis.gen.flows.synth import SynthError, synth_ecp5
    from chrysalis.hw.harness import InputRegisters
    from chrysalis.hw.mac import FloatMAC

    op_name, latency = point
    name = f"mac_{op_name}_fp32_l{latency}"
    workdir = WORK / name
    workdir.mkdir(parents=True, exist_ok=True)
    top = InputRegisters(FloatMAC(FORMATS[op_name], FP32, latency=latency))
    (workdir / f"{name}.v").write_text(verilog.convert(top, name=name, emit_src=False))
    row = {"operand": op_name, "accumulator": "fp32", "latency": latency}
    try:
        synth = synth_ecp5(workdir / f"{name}.v", name, workdir)
        pnr = pnr_ecp5(synth["netlist"], workdir, device="85k", freq_mhz=100)
    except SynthError as error:
        return {**row, "error": str(error), "log": error.log}
    # The input registers of the wrapper are not part of the MAC: subtract them.
    wrapper_ff = 2 * FORMATS[op_name].width + FP32.width + 1
    return {**row, "lut4": synth["lut4"], "ff": synth["ff"] - wrapper_ff, "dsp": synth["dsp"],
            "fmax_mhz": min(pnr["fmax_mhz"].values()), "critical_path": pnr["critical_path"]}


def table(rows):
    lines = ["| operands | accumulate | latency | LUT4 | FF | DSP (MULT18X18D) | Fmax on ECP5-85 (MHz) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['operand']} | fp32 | {r['latency']} | failed: {r['error']} | | | |")
        else:
            lines.append(f"| {r['operand']} | {r['accumulator']} | {r['latency']} | {r['lut4']} | "
                         f"{r['ff']} | {r['dsp']} | {r['fmax_mhz']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel points (default 2)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = {}
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_point, p): p for p in POINTS}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                           desc="synth + pnr", unit="point"):
            rows[futures[future]] = future.result()
    ordered = [rows[p] for p in POINTS]
    (RESULTS / "arith.json").write_text(json.dumps(ordered, indent=2, sort_keys=True) + "\n")
    text = table(ordered)
    (RESULTS / "arith.md").write_text(text)
    print(text)
    return 1 if any("error" in r for r in ordered) else 0


if __name__ == "__main__":
    sys.exit(main())
