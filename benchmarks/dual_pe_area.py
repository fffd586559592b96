"""Area and Fmax of a dual-precision PE and 4x4 core on ECP5 (Yosys synth_ecp5 + nextpnr-ecp5).

The dual-precision area study one level up from ``benchmarks/dual_area.py`` (the multiply path
alone): for the ``single``, ``dual-full`` and ``value`` policies it synthesizes

* ``pe``: one PE (``hw.pe.PE``) of the default configuration (bf16 operands, MAC latency 6,
  1024-word weight and activation banks, low-precision multiplier of 3 mantissa bits);
* ``core``: the default 4x4 core (``hw.core.Core``), scratchpad reduced to fit the device
  (see ``CORE_OVERRIDES``),

at ``single`` with 16 accumulators (its minimum, the default) and with 28 (a dual policy's
minimum at latency 6), and at ``dual-full`` and ``value`` with 28. The ``pe`` level also has
the **k-paired** PE (``hw.pe.PE`` with ``pairing="k"``, ``docs/dual_precision.md``) of
``dual-full`` and ``value`` with 16 accumulators (one output per slot, as ``single``); the
core does not issue k-pairs yet, so it has no ``core`` point. Each unit sits behind
``hw.harness.InputRegisters(unit, outputs=True)`` (every timed path register to register)
and is placed out of context on an LFE5U-85F (its ports exceed the package's pins). A second,
unflattened synthesis gives the resources per module (where the ratios come from).

    .venv/bin/python benchmarks/dual_pe_area.py [-j 2] [--levels pe core] [--lut-mapper abc]
        [--pairing outputs k]

Writes ``benchmarks/results/dual_pe_area.{json,md}``: LUT4, FF (with and without the
wrapper's), DSP, BRAM, Fmax, the ratios to both ``single`` baselines, the critical path and
the per-module breakdown. Each point runs in its own directory under
``build/bench/dual_pe_area/``; a failed point is recorded with its log and the others go on.
Points of a level not run keep their previous results in the JSON.
"""

import argparse
import concurrent.futures
import json
import sys
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "build" / "bench" / "dual_pe_area"

LEVELS = ("pe", "core")
#: (policy, accumulator registers, pairing): single at its minimum and at a dual policy's
#: (two outputs per slot); the k-paired PEs with single's accumulators.
VARIANTS = (("single", 16, "outputs"), ("single", 28, "outputs"), ("dual-full", 28, "outputs"),
            ("value", 28, "outputs"), ("dual-full", 16, "k"), ("value", 16, "k"))
#: Levels of the k-paired points (the core does not issue k-pairs).
K_LEVELS = ("pe",)
BASELINES = (("single", 16), ("single", 28))
#: The default scratchpad (65536 words: 128 DP16KD) and 16 dual PEs (12 DP16KD each) do not
#: fit the 208 DP16KD of an LFE5U-85F; the scratchpad is the same for every policy.
CORE_OVERRIDES = {"core.scratchpad_words": 4096}
DEVICE = "85k"
FREQ_MHZ = 100

NOTE = """\
What is measured: one PE (`pe`) and the 4x4 core (`core`) of the default configuration (bf16
operands, fp32 accumulators, MAC latency 6, 1024-word weight and activation banks per PE,
low-precision multiplier of 3 mantissa bits), for `single` with 16 accumulators (its minimum
at latency 6, the default) and 28 (the same accumulators as a dual PE), and for `dual-full`
and `value` with 28 (a dual policy's minimum, `4*(latency+1)`). The core's scratchpad is
reduced to {sp} words (the default's 128 DP16KD plus 16 dual PEs' 192 exceed the 208 of the
device; the scratchpad is the same for every policy). Each unit is wrapped in input and
output registers (`hw.harness.InputRegisters(unit, outputs=True)`), synthesized with Yosys
`synth_ecp5` (flattened) and placed and routed by nextpnr-ecp5 on an LFE5U-85F
**out of context** (`--out-of-context`: no IO buffers, since the ports exceed the package's
pins; the clock is routed on the fabric rather than a global network, which costs a few
percent of Fmax), 100 MHz target, seed 1. LUT4 counts a CCU2C as two; FF is without the
wrapper's flip-flops (column `wrapper FF`, those fed by an input port or driving an output
port); DSP counts MULT18X18D and ALU54B; BRAM counts DP16KD. The ratios are to `single` with
16 and with 28 accumulators. The breakdown comes from a second synthesis without flattening
(`synth_ecp5 -noflatten`, resources of each module's own cells): `.` is the PE's own logic
(the accumulator registers with their read muxes, `acc[c_acc]`, `acc[c_acc|1]` and the sent
accumulator, and their write-back decode; the operand muxes and the fp32-to-operand
quantizers; the banks), `accumulate`/`accumulate1` the accumulating fp32 adders, `multiply*`
the multiply path (`hw.dual`). What the dual policies add to a PE: a second accumulating
adder, a second pair of quantizers and operand muxes, the read mux of the odd accumulators
and their write-back from the second adder, a second multiplier (a DSP), and a second read
port on each bank, which Yosys implements by replicating the bank per read port (so BRAM
doubles: weight bank 2 -> 4 DP16KD, activation bank 4 -> 8); `value` adds its controller,
steering and the rounding of pair 1 to the low format. The **k-paired** PEs (`pe` only,
pairing `k`, 16 accumulators as `single`: the two pairs of a slot are two k-steps of one
output) have one accumulating adder and a pair adder in front of it (`multiply.pair_add`),
one read port per operand on banks of 2x2 blocks split over two half banks along the blocks'
diagonals (one word per half-bank address; a pair is one read in each half and a swap), and
no odd accumulators. Between Yosys and nextpnr runs `gen.flows.hard_registers` (registers
into the block RAMs and multipliers; FF counted after it, the breakdown before it), and the
PEs' banks are `no_rw_check` (no bypass after a block RAM): the `pe` rows are measured so,
and so are the `core` rows, which are synthesis only (`--levels core --no-pnr`: nextpnr takes
more than 40 minutes per core, so they have no Fmax). {mapper}"""

MAPPER_NOTE = {
    "abc9": "LUT mapping: `synth_ecp5`'s own (ABC9). YoWASP's ABC9 exits without a message "
            "on some netlists (here the `single` PE with 16 accumulators): such a point is "
            "recorded as failed; `dual_pe_area.md` maps every point with the classic "
            "`abc -lut 4` instead.",
    "abc": "LUT mapping: the classic `abc -lut 4` in place of `synth_ecp5`'s ABC9 (which "
           "exits without a message on the `single` PE with 16 accumulators); its LUT counts "
           "are lower than ABC9's (no PFUMX/L6MUX wide-mux cells), so compare within a table.",
}


def config_for(policy, acc_regs, level):
    from chrysalis.gen.spec.config import PRESETS, with_overrides
    overrides = {"mac.dual": policy, "pe.acc_regs": acc_regs}
    if level == "core":
        overrides.update(CORE_OVERRIDES)
    return with_overrides(PRESETS["default"], overrides)


def build_unit(level, policy, acc_regs, pairing="outputs"):
    """The unit of one point (a PE or a core), not yet wrapped. A k-paired PE takes the
    PE parameters of the dual policy's config with ``acc_regs`` accumulators."""
    from chrysalis.hw.core import Core
    from chrysalis.hw.pe import PE
    config = config_for(policy, acc_regs if pairing == "outputs" else 28, level)
    core = Core(config)
    if level == "core":
        return core
    core._MustUse__silence = True
    args = dict(core.pe_args)
    if pairing == "k":
        args.update(acc_regs=acc_regs, pairing="k")
    return PE(config.mac.operand, **args)


def point_name(point):
    level, policy, acc_regs, pairing = point
    k = "_k" if pairing == "k" else ""
    return f"{level}_{policy.replace('-', '_')}{k}_acc{acc_regs}"


def key(row):
    """A row's point: ``(level, policy, acc_regs, pairing)`` (rows before k-pairing have
    no ``pairing``: two outputs per slot)."""
    return row["level"], row["policy"], row["acc_regs"], row.get("pairing", "outputs")


def run_point(point, lut_mapper="abc", place=True):
    """Synthesize and place one ``(level, policy, acc_regs)`` point; return its figures.
    ``place=False`` stops after synthesis (no Fmax)."""
    from amaranth.back import verilog

    from chrysalis.gen.flows.pnr import pnr_ecp5
    from chrysalis.gen.flows.synth import (
        SynthError, synth_ecp5, synth_ecp5_modules, wrapper_ffs)
    from chrysalis.hw.harness import InputRegisters

    level, policy, acc_regs, pairing = point
    name = point_name(point)
    workdir = WORK / lut_mapper / name
    workdir.mkdir(parents=True, exist_ok=True)
    top = InputRegisters(build_unit(level, policy, acc_regs, pairing), outputs=True)
    (workdir / f"{name}.v").write_text(verilog.convert(top, name=name, emit_src=False))
    row = {"level": level, "policy": policy, "acc_regs": acc_regs, "pairing": pairing,
           "lut_mapper": lut_mapper}
    try:
        synth = synth_ecp5(workdir / f"{name}.v", name, workdir, lut_mapper=lut_mapper)
        wrapper_ff = wrapper_ffs(synth["netlist"], name)
        modules = synth_ecp5_modules(workdir / f"{name}.v", name, workdir,
                                     lut_mapper=lut_mapper)
        pnr = pnr_ecp5(synth["netlist"], workdir, device=DEVICE, freq_mhz=FREQ_MHZ,
                       out_of_context=True) if place else None
    except SynthError as error:
        return {**row, "error": str(error), "log": error.log}
    return {**row, "lut4": synth["lut4"], "ff": synth["ff"] - wrapper_ff,
            "ff_total": synth["ff"], "wrapper_ff": wrapper_ff, "dsp": synth["dsp"],
            "bram": synth["bram"], "cells": synth["cells"],
            "fmax_mhz": min(pnr["fmax_mhz"].values()) if pnr else None,
            "critical_path": pnr["critical_path"] if pnr else None,
            "utilization": pnr["utilization"] if pnr else None,
            "modules": breakdown(modules, name)}


def breakdown(modules, top):
    """Per-module resources, named by the instance path below the unit (``unit`` itself is
    ``.``); for a core, the 16 PEs' modules are summed by their path inside a PE (``pe.*``)."""
    out = {}
    prefix = f"{top}.unit"
    for module, res in modules.items():
        if not module.startswith(prefix):
            key = "(wrapper)"
        else:
            path = module[len(prefix):].lstrip(".") or "."
            parts = path.split(".")
            if parts[0].startswith("pe_"):
                parts[0] = "pe"
            key = ".".join(parts)
        entry = out.setdefault(key, {"lut4": 0, "ff": 0, "dsp": 0, "bram": 0})
        for field in entry:
            entry[field] += res[field]
    return dict(sorted(out.items()))


def add_ratios(rows):
    """LUT4, FF, DSP and BRAM ratios of each row to both single baselines, per level."""
    for r in rows:
        if "error" in r:
            continue
        for policy, acc in BASELINES:
            base = next((b for b in rows if key(b) == (r["level"], policy, acc, "outputs")
                         and "error" not in b), None)
            if base is None:
                continue
            r[f"ratio_single{acc}"] = {
                key: (round(r[key] / base[key], 3) if base[key] and r[key] is not None
                      else None)
                for key in ("lut4", "ff", "dsp", "bram", "fmax_mhz")}
    return rows


def _ratio(ratios, key):
    value = (ratios or {}).get(key)
    return "n/a" if value is None else f"{value:.2f}"


def table(rows):
    lines = ["| level | policy | pairing | acc regs | LUT4 | FF | wrapper FF | DSP (MULT18X18D) | "
             "BRAM (DP16KD) | Fmax (MHz) | LUT4 / s16 | LUT4 / s28 | DSP / s16 | FF / s16 | "
             "FF / s28 | BRAM / s16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pairing = "-" if r["policy"] == "single" else r.get("pairing", "outputs")
        head = f"| {r['level']} | `{r['policy']}` | {pairing} | {r['acc_regs']} "
        if "error" in r:
            lines.append(head + f"| failed: {r['error']} |" + " |" * 12)
            continue
        s16, s28 = r.get("ratio_single16"), r.get("ratio_single28")
        lines.append(head + f"| {r['lut4']} | {r['ff']} | {r['wrapper_ff']} | {r['dsp']} | "
                     f"{r['bram']} | {_fmax(r)} | {_ratio(s16, 'lut4')} | "
                     f"{_ratio(s28, 'lut4')} | {_ratio(s16, 'dsp')} | {_ratio(s16, 'ff')} | "
                     f"{_ratio(s28, 'ff')} | {_ratio(s16, 'bram')} |")
    return "\n".join(lines) + "\n"


def breakdown_table(rows, level):
    """LUT4 / FF of each module for the points of one level, side by side."""
    done = [r for r in rows if r["level"] == level and "error" not in r]
    if not done:
        return ""
    keys = sorted({k for r in done for k in r["modules"]})
    heads = [f"`{r['policy']}`{' k' if r.get('pairing') == 'k' else ''} {r['acc_regs']}"
             for r in done]
    lines = [f"Per module ({level}, unflattened synthesis; LUT4 / FF / DSP / BRAM):", "",
             "| module | " + " | ".join(heads) + " |", "|---|" + "---|" * len(done)]
    for key in keys:
        cells = []
        for r in done:
            e = r["modules"].get(key)
            cells.append("-" if e is None else f"{e['lut4']} / {e['ff']} / {e['dsp']} / {e['bram']}")
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmax(row):
    return "not placed" if row["fmax_mhz"] is None else f"{row['fmax_mhz']:.1f}"


def critical_paths(rows):
    lines = ["Critical paths (nextpnr, worst clock-to-clock path):", ""]
    for r in rows:
        if "error" in r or not r.get("critical_path"):
            continue
        p = r["critical_path"]
        k = " k-paired" if r.get("pairing") == "k" else ""
        lines.append(f"- {r['level']} `{r['policy']}`{k} {r['acc_regs']}: {p['from']} -> {p['to']}, "
                     f"{p['logic_ns']} ns logic + {p['routing_ns']} ns routing, {p['steps']} steps")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel points (default 2)")
    parser.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS),
                        help="levels to run (default: both)")
    parser.add_argument("--lut-mapper", choices=("abc9", "abc"), default="abc",
                        help="Yosys LUT mapper (default abc, the classic one, which maps "
                             "every point; results of 'abc9', synth_ecp5's own, go to "
                             "dual_pe_area_abc9.*)")
    parser.add_argument("--no-pnr", action="store_true",
                        help="synthesis only (no nextpnr, no Fmax): nextpnr-ecp5 takes more "
                             "than 40 minutes per 4x4 core on 2 cores")
    parser.add_argument("--pairing", nargs="+", choices=("outputs", "k"),
                        default=["outputs", "k"],
                        help="pairings of the dual points to run (default both; single's "
                             "points run with 'outputs')")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the tables from the existing JSON, run nothing")
    args = parser.parse_args(argv)
    stem = "dual_pe_area" + ("" if args.lut_mapper == "abc" else f"_{args.lut_mapper}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    points = [] if args.report_only else \
        [(level, p, a, k) for level in LEVELS if level in args.levels for p, a, k in VARIANTS
         if k in args.pairing and (k == "outputs" or level in K_LEVELS)]
    json_path = RESULTS / f"{stem}.json"
    previous = {}
    if json_path.exists():
        for r in json.loads(json_path.read_text()).get("rows", []):
            previous[key(r)] = r
    rows = {}
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_point, p, args.lut_mapper, not args.no_pnr): p
                   for p in points}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                           desc="synth + pnr", unit="point"):
            point = futures[future]
            try:
                rows[point] = future.result()
            except Exception as error:  # noqa: BLE001 - one point's failure is its result
                rows[point] = {"level": point[0], "policy": point[1], "acc_regs": point[2],
                               "pairing": point[3],
                               "error": f"{type(error).__name__}: {error}", "log": None}
    merged = {**previous, **rows}
    ordered = add_ratios([merged[(level, p, a, k)] for level in LEVELS for p, a, k in VARIANTS
                          if (level, p, a, k) in merged])
    note = NOTE.format(sp=CORE_OVERRIDES["core.scratchpad_words"],
                       mapper=MAPPER_NOTE[args.lut_mapper])
    json_path.write_text(json.dumps({"note": note, "rows": ordered}, indent=2,
                                    sort_keys=True) + "\n")
    text = "\n".join([table(ordered)] + [breakdown_table(ordered, level) for level in LEVELS]
                     + [critical_paths(ordered)])
    (RESULTS / f"{stem}.md").write_text(note + "\n\n" + text)
    print(text)
    return 1 if any("error" in r for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
