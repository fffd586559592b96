"""Fmax of the default core's units on ECP5, each placed alone (Yosys synth_ecp5 +
nextpnr-ecp5, out of context).

A full board build takes about an hour of place and route; a unit alone takes minutes, so
this is where the core's timing is worked on. For the default configuration it places

* ``loss``: the loss-gradient unit (``hw.loss.LossGradient``, pipelined special-function
  unit, the core's lanes);
* ``loss-barrel``: the same with the barrel special-function unit (``core.sfu = "barrel"``,
  the board build's configuration);
* ``pe``: one PE (``hw.pe.PE``);
* ``compute``, ``mover``, ``sequencer``: the core's compute engine, mover and sequencer
  (``hw.compute``, ``hw.mover``, ``hw.sequencer``);
* ``checker``: the accelerator's command checker (``hw.command_check``);
* ``gather``: the gather unit (``hw.gather.Gather``, the core's lanes and MAC latency).

``loss``, ``pe`` and ``gather`` sit behind ``hw.harness.InputRegisters(unit, outputs=True)``, the
others (their ports are interfaces) behind ``hw.harness.SerialPorts``: every timed path is
register to register. Each is placed on an LFE5U-85F out of context at a 100 MHz target,
seed 1. An engine alone sees its command and sizes from registers; in the core they come
from the sequencer's registers too.

With ``--pe-latencies``, it places the PE alone again at each MAC latency given (the
default configuration with that ``mac.latency`` and the fewest accumulators it allows,
``pe.acc_regs = max(16, 2 * (latency + 1))``): from 9 on, the further stages split the
PE's adder, its operand conversion and its multiplier (``hw.pe.PE``). Target for the PE
alone: 150 MHz.

    .venv/bin/python benchmarks/unit_fmax.py [--units loss loss-barrel pe compute mover sequencer checker gather]
    .venv/bin/python benchmarks/unit_fmax.py --pe-latencies 6 8 10 12

Writes ``benchmarks/results/unit_fmax.{json,md}``: per unit (and per PE latency) LUT4, FF,
DSP, BRAM, Fmax and the critical path (its ends, logic and routing delay, logic levels and
the Amaranth source lines it runs through). Units and latencies not run keep their previous
results.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "build" / "bench" / "unit_fmax"
UNITS = ("loss", "loss-barrel", "pe", "compute", "mover", "sequencer", "checker", "gather")
#: Units placed in a configuration other than the default (not in the "slowest unit" line).
OTHER_CONFIG = {"loss-barrel": {"core.sfu": "barrel"}}
DEVICE = "85k"
FREQ_MHZ = 100
TARGET_MHZ = 100
PE_TARGET_MHZ = 150

NOTE = """\
What is measured: units of the default configuration (4x4 PEs, bf16 operands, MAC latency
6, the pipelined special-function unit), each synthesized with Yosys `synth_ecp5` (classic
`abc -lut 4` mapping, flattened; then `gen.flows.hard_registers`, which moves the plain
registers around the block RAMs and multipliers into those blocks) and placed and routed alone by nextpnr-ecp5 on an
LFE5U-85F **out of context** (no IO buffers; the clock on the fabric), 100 MHz target, seed
1. `loss-barrel` is the loss unit with the barrel special-function unit (`core.sfu =
"barrel"`), as the board build has it. `loss`, `pe` and `gather` are wrapped in input and
output registers
(`hw.harness.InputRegisters(unit, outputs=True)`), the engines, the sequencer and the
command checker (interface ports) in `hw.harness.SerialPorts` (every input bit from a shift
register, every output registered and captured into one): each timed path is register to
register, and the wrappers' own paths are one LUT deep. LUT4 counts a CCU2C as two and
includes the wrapper's logic; FF includes the wrapper's registers. The core's own Fmax is
at most the slowest of its units; the paths between units (the issue merge, the
scratchpad's and the banks' addressing) are not in this table: the board build
(`board_build.md`) places the whole core."""


def pe_config(latency):
    """The default configuration at MAC latency ``latency``, with the fewest accumulators
    the config allows there (and at least the default's)."""
    from chrysalis.gen.spec.config import PRESETS, with_overrides
    base = PRESETS["default"]
    return with_overrides(base, {"mac.latency": latency,
                                 "pe.acc_regs": max(base.pe.acc_regs, 2 * (latency + 1))})


def build_unit(name, config=None):
    """The unit ``name`` of ``config`` (default: the default configuration), wrapped for
    timing."""
    from chrysalis.gen.spec.config import PRESETS
    from chrysalis.hw.command_check import CommandChecker
    from chrysalis.hw.compute import ComputeEngine
    from chrysalis.hw.core import Core
    from chrysalis.hw.harness import InputRegisters, SerialPorts
    from chrysalis.hw.loss import LossGradient
    from chrysalis.hw.mover import Mover
    from chrysalis.hw.pe import PE
    from chrysalis.hw.sequencer import Sequencer

    config = PRESETS["default"] if config is None else config
    if name in OTHER_CONFIG:
        from chrysalis.gen.spec.config import with_overrides
        config = with_overrides(config, OTHER_CONFIG[name])
        name = name.split("-")[0]
    core = Core(config)
    core._MustUse__silence = True
    R, C, G = core.rows, core.cols, core.group
    engine = dict(command=core.layout, issue=core.issue_layout, rows=R, cols=C)
    if name == "loss":
        widest = min(4, max(R, C))
        return InputRegisters(LossGradient(
            line_bits=core.line_bits, mac_latency=core.latency, sfu=config.core.sfu,
            lanes=4 if widest >= 4 else 2 if widest >= 2 else 1), outputs=True)
    if name == "pe":
        return InputRegisters(PE(config.mac.operand, **core.pe_args), outputs=True)
    if name == "gather":
        from chrysalis.hw.gather import Gather
        return InputRegisters(Gather(line_bits=core.line_bits, banks=core.banks,
                                     mac_latency=core.latency, lanes=max(R, C)),
                              outputs=True)
    units = {
        "compute": lambda: ComputeEngine(**engine, group=G, streams=core.streams,
                                         random_policy=config.mac.dual == "random",
                                         reuse=core.reuse, reuse_shared=core.reuse_shared),
        "mover": lambda: Mover(**engine),
        "sequencer": lambda: Sequencer(core.layout, rows=R, cols=C,
                                       settle_cycles=core.latency + 4, group=G),
        "checker": lambda: CommandChecker(config),
    }
    return SerialPorts(units[name]())


def run_unit(name, config=None, label=None):
    """Synthesize and place one unit (of ``config``, in the work directory ``label``:
    default ``name``); return its figures (or its error)."""
    from amaranth.back import verilog

    from chrysalis.gen.flows.board import parse_nextpnr_report
    from chrysalis.gen.flows.pnr import pnr_ecp5
    from chrysalis.gen.flows.synth import SynthError, synth_ecp5

    label = label or name
    workdir = WORK / label
    workdir.mkdir(parents=True, exist_ok=True)
    top = f"unit_{label.replace('-', '_')}"
    # Amaranth's source locations stay in the netlist, so the critical path names lines.
    (workdir / f"{top}.v").write_text(verilog.convert(build_unit(name, config), name=top))
    start = time.monotonic()
    try:
        synth = synth_ecp5(workdir / f"{top}.v", top, workdir, lut_mapper="abc")
        placed = time.monotonic()
        pnr_ecp5(synth["netlist"], workdir, device=DEVICE, freq_mhz=FREQ_MHZ,
                 out_of_context=True)
    except SynthError as error:
        return {"unit": name, "error": str(error), "log": error.log}
    done = time.monotonic()
    report = parse_nextpnr_report(next(workdir.glob("*.pnr.json")))
    return {"unit": name, "lut4": synth["lut4"], "ff": synth["ff"], "dsp": synth["dsp"],
            "bram": synth["bram"], "fmax_mhz": min(report["fmax_mhz"].values()),
            "critical_path": report["critical_path"],
            "synth_s": round(placed - start, 1), "pnr_s": round(done - placed, 1)}


def table(rows, key="unit"):
    lines = [f"| {key.replace('_', ' ')} | LUT4 | FF | DSP | BRAM | Fmax (MHz) | critical path "
             f"| through |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r[key]} | failed: {r['error']} | | | | | | |")
            continue
        p = r["critical_path"] or {}
        path = (f"{p.get('delay_ns')} ns ({p.get('logic_ns')} logic, {p.get('routing_ns')} "
                f"routing, {p.get('logic_levels')} levels): `{p.get('start_cell')}` -> "
                f"`{p.get('end_cell')}`")
        through = ", ".join(f"`{s}`" for s in p.get("sources", [])[:6]) or "-"
        lines.append(f"| {r[key]} | {r['lut4']} | {r['ff']} | {r['dsp']} | {r['bram']} | "
                     f"{r['fmax_mhz']:.1f} | {path} | {through} |")
    return "\n".join(lines) + "\n"


PE_NOTE = """\
The PE alone by MAC latency: the default configuration with `mac.latency` set and
`pe.acc_regs = max(16, 2 * (latency + 1))`, placed as the `pe` row above. The stages past
the default's split the accumulating adder (its rounding increment from the carry's
choice, at 7 stages its leading-zero count from the shift), the operand conversions (from
10: the rounding decision registered before the increment, for the multiplicands and an
activation write's word, which then lands a cycle later; the multiplicands' last registers
then the multiplier block's input registers) and the multiplier (from 12: the product
registered as it leaves the multiplier block); no stage changes a bit of any result.
Target for the PE alone: 150 MHz."""


def write(rows, pe_rows):
    RESULTS.mkdir(parents=True, exist_ok=True)
    order = {name: k for k, name in enumerate(UNITS)}
    rows = sorted(rows, key=lambda r: order[r["unit"]])
    pe_rows = sorted(pe_rows, key=lambda r: r["mac_latency"])
    (RESULTS / "unit_fmax.json").write_text(json.dumps(
        {"note": NOTE, "target_mhz": TARGET_MHZ, "rows": rows,
         "pe_note": PE_NOTE, "pe_target_mhz": PE_TARGET_MHZ, "pe_latency": pe_rows},
        indent=1) + "\n")
    placed = [r for r in rows if "error" not in r and r["unit"] not in OTHER_CONFIG]
    slowest = min(placed, key=lambda r: r["fmax_mhz"]) if placed else None
    summary = (f"Slowest unit: **{slowest['unit']}, {slowest['fmax_mhz']:.1f} MHz** against "
               f"the {TARGET_MHZ} MHz target "
               f"({'met' if slowest['fmax_mhz'] >= TARGET_MHZ else 'not met'}).\n\n"
               if slowest else "")
    fastest = max((r for r in pe_rows if "error" not in r), key=lambda r: r["fmax_mhz"],
                  default=None)
    deep = ""
    if pe_rows:
        deep = "\n## The PE by MAC latency\n\n" + PE_NOTE + "\n\n"
        if fastest:
            met = "met" if fastest["fmax_mhz"] >= PE_TARGET_MHZ else "not met"
            deep += (f"Fastest: **{fastest['fmax_mhz']:.1f} MHz at MAC latency "
                     f"{fastest['mac_latency']}** against the {PE_TARGET_MHZ} MHz target "
                     f"({met}).\n\n")
        deep += table(pe_rows, key="mac_latency")
    (RESULTS / "unit_fmax.md").write_text(
        "# Fmax of the default core's units (ECP5, out of context)\n\n" + NOTE + "\n\n"
        + summary + table(rows) + deep)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", nargs="+", choices=UNITS, default=None,
                        help="units to place (default: all, unless --pe-latencies is given); "
                             "the others keep their results")
    parser.add_argument("--pe-latencies", nargs="+", type=int, default=[], metavar="L",
                        help="also place the PE alone at these MAC latencies (those "
                             "mac.latency takes)")
    args = parser.parse_args(argv)
    units = args.units if args.units is not None else (
        [] if args.pe_latencies else list(UNITS))
    from chrysalis.gen.spec.config import ConfigError
    configs = {}
    for latency in args.pe_latencies:
        try:
            configs[latency] = pe_config(latency)
        except ConfigError as error:
            parser.error(f"--pe-latencies: {error}")
    path = RESULTS / "unit_fmax.json"
    jobs = [(name, None) for name in units] + [("pe", lat) for lat in args.pe_latencies]
    for name, latency in jobs:
        if latency is None:
            row = run_unit(name)
        else:
            row = dict(run_unit("pe", configs[latency], f"pe-L{latency}"),
                       mac_latency=latency, acc_regs=configs[latency].pe.acc_regs)
        print(json.dumps({k: row.get(k) for k in ("unit", "mac_latency", "fmax_mhz", "lut4",
                                                  "dsp", "error")}), flush=True)
        # Read the results again before each write: another run may have added rows.
        old = json.loads(path.read_text()) if path.exists() else {}
        rows = {r["unit"]: r for r in old.get("rows", [])}
        pe_rows = {r["mac_latency"]: r for r in old.get("pe_latency", [])}
        if latency is None:
            rows[name] = row
        else:
            pe_rows[latency] = row
        write(list(rows.values()), list(pe_rows.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
