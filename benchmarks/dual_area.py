"""Area and Fmax of the dual-precision multiply path on ECP5 (Yosys synth_ecp5 + nextpnr-ecp5).

For bf16 operands, a low-precision multiplier of 3 mantissa bits and latency 2, this script
emits ``hw.dual.DualMultiplyPath`` for every policy (``single``, ``dual-full``, ``value``,
``static``, ``random``) behind input registers and in front of output registers (so every
timed path, the output steering muxes included, is register to register), synthesizes it
for ECP5, places and routes it on an LFE5U-85F, and writes the LUT4/FF/DSP counts, the Fmax
and the ratios to ``single`` to ``benchmarks/results/dual_area.json`` and ``dual_area.md``.

    .venv/bin/python benchmarks/dual_area.py [-j 2]

Latency 2 registers both boundaries of ``hw.fmul.FloatMultiplier`` (after the multiplier
and at the output): the same split as the multiply stage of the MAC that
``benchmarks/arith.py`` measures at its default latency (its ``product`` boundary registered,
the product's normalization in the next stage).

Each point runs in its own directory under ``build/bench/dual_area/``. A point that fails is
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

from chrysalis.gen.spec.config import DUAL_POLICIES  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "build" / "bench" / "dual_area"

OPERAND = "bf16"
LOW_MAN_BITS = 3
LATENCY = 2
POLICIES = ("single", "dual-full", "value", "static", "random")
assert set(POLICIES) == set(DUAL_POLICIES), DUAL_POLICIES
#: The measured points: every policy at LATENCY, and the mixed policies one stage longer,
#: where the steering stage comes on top of multipliers as deep as single's.
POINTS = tuple((p, LATENCY) for p in POLICIES) + \
    tuple((p, LATENCY + 1) for p in ("value", "static", "random"))

NOTE = (
    "The multiply path of one dual-precision slot alone (`hw.dual.DualMultiplyPath`): "
    f"{OPERAND} operands, low-precision multiplier of {LOW_MAN_BITS} mantissa bits, latency "
    f"{LATENCY} (both boundaries of the multiplier registered, as the multiply stage of the "
    "MAC in `arith.md`), with its multipliers, the operand rounding to the low format, the "
    "controller, the steering muxes and the class and bypass logic. It does not cover the "
    "PE's second accumulator adder, the accumulator registers or the core's changes (operand "
    "pairing, wider feeds), which come with the PE integration; so the ratios to `single` "
    "are of the multiply path only, not of a PE or the core. Yosys maps the low multiplier's "
    f"{LOW_MAN_BITS + 1}x{LOW_MAN_BITS + 1}-bit significand product to a DSP block too, hence "
    "two DSPs for every two-multiplier policy. In `value`, `static` and `random` at 2 or more "
    "stages the controller, the steering muxes and the rounding converters have a stage of "
    "their own and the multipliers the rest: at latency 2 the multipliers have one stage, "
    f"at latency {LATENCY + 1} two, as in `single` at {LATENCY}. "
    "The unit is synthesized behind "
    "input and output registers (so the output steering muxes are timed register to "
    "register); the wrapper's flip-flops (those fed straight by an input port or driving an "
    "output port; the ones Yosys removes as unused or constant are not there to count) are "
    "subtracted from FF. Yosys `synth_ecp5` + nextpnr-ecp5 on an LFE5U-85F, 100 MHz target, "
    "seed 1; a CCU2C counts as two LUT4s; DSP counts MULT18X18D and ALU54B blocks."
)


def run_point(point):
    """Synthesize and place one ``(policy, latency)`` multiply path; return its figures."""
    policy, latency = point
    from amaranth.back import verilog

    from chrysalis.gen.spec.formats import FORMATS
    from chrysalis.gen.flows.pnr import pnr_ecp5
    from chrysalis.gen.flows.synth import SynthError, synth_ecp5, wrapper_ffs
    from chrysalis.hw.dual import DualMultiplyPath
    from chrysalis.hw.harness import InputRegisters

    name = f"dual_{OPERAND}_m{LOW_MAN_BITS}_{policy.replace('-', '_')}_l{latency}"
    workdir = WORK / name
    workdir.mkdir(parents=True, exist_ok=True)
    # Registers on the outputs too: the steering muxes after the unit's last register are
    # then timed register to register.
    unit = DualMultiplyPath(FORMATS[OPERAND], LOW_MAN_BITS, policy, latency=latency)
    top = InputRegisters(unit, outputs=True)
    (workdir / f"{name}.v").write_text(verilog.convert(top, name=name, emit_src=False))
    row = {"policy": policy, "operand": OPERAND, "low_man_bits": LOW_MAN_BITS,
           "latency": latency}
    try:
        synth = synth_ecp5(workdir / f"{name}.v", name, workdir)
        pnr = pnr_ecp5(synth["netlist"], workdir, device="85k", freq_mhz=100)
    except SynthError as error:
        return {**row, "error": str(error), "log": error.log}
    wrapper_ff = wrapper_ffs(synth["netlist"], name)
    return {**row, "lut4": synth["lut4"], "ff": synth["ff"] - wrapper_ff,
            "wrapper_ff": wrapper_ff, "dsp": synth["dsp"], "cells": synth["cells"],
            "fmax_mhz": min(pnr["fmax_mhz"].values()), "critical_path": pnr["critical_path"]}


def add_ratios(rows):
    """LUT4 and DSP ratios to the ``single`` row (None where undefined)."""
    base = next((r for r in rows if r["policy"] == "single" and "error" not in r), None)
    for r in rows:
        if "error" in r or base is None:
            continue
        r["lut_ratio"] = round(r["lut4"] / base["lut4"], 3) if base["lut4"] else None
        r["dsp_ratio"] = round(r["dsp"] / base["dsp"], 3) if base["dsp"] else None
    return rows


def _ratio(value):
    return "n/a" if value is None else f"{value:.2f}"


def table(rows):
    lines = ["| policy | latency | LUT4 | FF | DSP (MULT18X18D) | Fmax on ECP5-85 (MHz) | "
             "LUT4 / single | DSP / single |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['policy']}` | {r['latency']} | failed: {r['error']} | | | | | |")
        else:
            lines.append(f"| `{r['policy']}` | {r['latency']} | {r['lut4']} | {r['ff']} | {r['dsp']} | "
                         f"{r['fmax_mhz']:.1f} | {_ratio(r.get('lut_ratio'))} | "
                         f"{_ratio(r.get('dsp_ratio'))} |")
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
    ordered = add_ratios([rows[p] for p in POINTS])
    (RESULTS / "dual_area.json").write_text(
        json.dumps({"note": NOTE, "rows": ordered}, indent=2, sort_keys=True) + "\n")
    text = table(ordered)
    (RESULTS / "dual_area.md").write_text(NOTE + "\n\n" + text)
    print(text)
    return 1 if any("error" in r for r in ordered) else 0


if __name__ == "__main__":
    sys.exit(main())
