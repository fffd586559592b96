"""The ``chrysalis synth`` and ``chrysalis pnr`` subcommands: area and Fmax of a config.

``synth`` emits a config's Verilog and synthesizes it with Yosys for ECP5 (LUT4, FF, DSP,
BRAM), for generic CMOS gates (transistors) or for the user's Liberty library (area), with
a per-module breakdown. ``pnr`` synthesizes for ECP5, picks the smallest device that holds
the design (or the one given) and places and routes it with nextpnr-ecp5: Fmax,
utilization and the critical path.
"""

import argparse
import json
import sys
from pathlib import Path

from . import Command, add_config_arguments, config_from_args, register
from chrysalis.gen.spec.config import ConfigError

__all__ = ["SYNTH", "PNR", "synth_tables", "pnr_summary"]

_FIGURES = {
    "ecp5": ("lut4", "ff", "dsp", "bram"),
    "cmos": ("transistors", "flip_flops", "cells", "memory_bits"),
    "liberty": ("area", "sequential_area", "cells", "memory_bits"),
}


def _write_json(path, data):
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def _status(text):
    print(text, file=sys.stderr, flush=True)


# --- chrysalis synth ----------------------------------------------------------------------

def _configure_synth(parser):
    add_config_arguments(parser)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target", choices=("ecp5", "cmos"), default=None,
                        help="ecp5: LUT4/FF/DSP/BRAM (default); cmos: generic gates, "
                             "transistor count")
    target.add_argument("--liberty", metavar="FILE",
                        help="map to this Liberty cell library and report its area "
                             "(the library's area unit, usually um^2)")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="working directory: Verilog, netlist, statistics and logs "
                             "(default: build/<name>/synth-<target>)")
    parser.add_argument("--json", metavar="FILE",
                        help="write the result as JSON (default: <output>/<name>.synth.json)")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="ecp5: skip the second, unflattened synthesis of the "
                             "per-module breakdown")
    parser.add_argument("--lut-mapper", choices=("abc", "abc9"), default="abc",
                        help="ecp5 LUT mapper (default abc: YoWASP's ABC9 exits without a "
                             "message on some netlists)")


def synth_tables(result):
    """Markdown tables of a :func:`gen.flows.synth.synthesize_config` result: totals, then the
    breakdown by group and by module path."""
    from chrysalis.gen.flows.report import markdown_table
    figures = _FIGURES[result["target"]]
    lines = [f"{result['top']}: {result['target']}"
             + (f" ({result['liberty']})" if result.get("liberty") else ""), "",
             markdown_table(("total",) + figures,
                            [("design",) + tuple(result["total"].get(f, "") for f in figures)])]
    if result.get("breakdown"):
        for kind in ("groups", "paths"):
            table = result["breakdown"][kind]
            rows = [(name,) + tuple(entry.get(f, 0) for f in figures)
                    for name, entry in table.items() if any(entry.values())]
            lines += ["", markdown_table(("group" if kind == "groups" else "module",)
                                         + figures, rows)]
    return "\n".join(lines) + "\n"


def _run_synth(args):
    from chrysalis.gen.flows.synth import SynthError, synthesize_config
    config = config_from_args(args)
    target = "liberty" if args.liberty else (args.target or "ecp5")
    if args.liberty and not Path(args.liberty).is_file():
        raise ConfigError(f"--liberty must be an existing Liberty file, not {args.liberty!r}")
    out = Path(args.output or f"build/{config.name}/synth-{target}")
    _status(f"synthesizing {config.name} for {target} in {out} ...")
    try:
        result = synthesize_config(config, out, target=target, liberty=args.liberty,
                                   modules=not args.no_breakdown, lut_mapper=args.lut_mapper)
    except SynthError as error:
        raise RuntimeError(f"{error} (log: {error.log})") from None
    result["config"] = config.to_dict()
    result["config_hash"] = config.config_hash()
    print(synth_tables(result), end="")
    path = _write_json(args.json or out / f"{config.name}.synth.json", result)
    print(f"result written to {path}")
    return 0


SYNTH = register(Command(
    name="synth",
    help="synthesize a config: ECP5 resources, CMOS transistors or Liberty area",
    description="Emit the Verilog of a config and synthesize it with Yosys: for ECP5 "
                "(LUT4, flip-flops, DSP, block RAM), for generic CMOS gates (`stat -tech "
                "cmos`: transistors) or, with --liberty, for your own cell library "
                "(`dfflibmap` + `abc -liberty`, area from `stat -liberty`). For cmos and "
                "Liberty the memories (PE banks, scratchpad) are kept as macros and their "
                "bits are reported beside the logic. Prints the totals and a per-module "
                "breakdown (MAC, PE, reuse cache, interconnect, core, top; then each module "
                "path with the PEs folded together) and writes them as JSON.",
    epilog="examples:\n"
           "  chrysalis synth --preset tiny\n"
           "  chrysalis synth --preset default --set core.rows=8 --set core.cols=8\n"
           "  chrysalis synth --preset tiny --target cmos\n"
           "  chrysalis synth --preset tiny --liberty my_cells.lib --json build/area.json",
    configure=_configure_synth,
    run=lambda args: _guard(_run_synth, args),
))


# --- chrysalis pnr ------------------------------------------------------------------------

def _frequency(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of MHz, not {text!r}")
    return value


def _configure_pnr(parser):
    from chrysalis.gen.flows.pnr import ECP5_DEVICES
    add_config_arguments(parser)
    parser.add_argument("--device", choices=("auto",) + tuple(ECP5_DEVICES), default="auto",
                        help="ECP5 device (default auto: the smallest that holds the "
                             "design's LUT4s, DSPs and block RAMs)")
    parser.add_argument("--freq", type=_frequency, default=100.0, metavar="MHZ",
                        help="target clock frequency (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="placer seed (default 1)")
    parser.add_argument("--in-context", action="store_true",
                        help="place with IO buffers on package pins (default: out of "
                             "context, since the AXI ports exceed the package's pins)")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="working directory (default: build/<name>/pnr)")
    parser.add_argument("--json", metavar="FILE",
                        help="write the result as JSON (default: <output>/<name>.pnr.json)")
    parser.add_argument("--lut-mapper", choices=("abc", "abc9"), default="abc",
                        help="ecp5 LUT mapper (default abc)")


def pnr_summary(result):
    """Lines of text for a place-and-route result."""
    res = result["resources"]
    lines = [f"device: LFE5U-{result['device'].upper()} ({result['device_choice']}), "
             f"target {result['freq_mhz']} MHz, "
             f"{'out of context' if result['out_of_context'] else 'in context'}",
             f"resources: {res['lut4']} LUT4, {res['ff']} FF, {res['dsp']} DSP, "
             f"{res['bram']} BRAM"]
    lines += [f"Fmax {clock}: {fmax} MHz" for clock, fmax in result["fmax_by_clock"].items()]
    lines.append("utilization: " + ", ".join(f"{name} {used}" for name, used
                                             in sorted(result["utilization"].items())))
    path = result.get("critical_path")
    if path:
        lines.append(f"critical path: {path['from']} -> {path['to']}: {path['logic_ns']} ns "
                     f"logic + {path['routing_ns']} ns routing, {path['steps']} steps")
    return "\n".join(lines) + "\n"


def _run_pnr(args):
    from chrysalis.gen.flows.pnr import place_config
    from chrysalis.gen.flows.synth import SynthError
    config = config_from_args(args)
    out = Path(args.output or f"build/{config.name}/pnr")
    _status(f"synthesizing and placing {config.name} in {out} (nextpnr takes minutes; "
            f"a 4x4 core over 40 minutes on 2 cores) ...")
    try:
        result = place_config(config, out, device=args.device, freq_mhz=args.freq,
                              seed=args.seed, out_of_context=not args.in_context,
                              lut_mapper=args.lut_mapper)
    except SynthError as error:
        raise RuntimeError(f"{error} (log: {error.log})") from None
    result["config"] = config.to_dict()
    result["config_hash"] = config.config_hash()
    print(pnr_summary(result), end="")
    path = _write_json(args.json or out / f"{config.name}.pnr.json", result)
    print(f"result written to {path}")
    return 0


def _guard(run, args):
    # A tool that fails is not the user's input: one line and exit status 1.
    try:
        return run(args)
    except RuntimeError as error:
        print(f"chrysalis: error: {' '.join(str(error).splitlines())}", file=sys.stderr)
        return 1


PNR = register(Command(
    name="pnr",
    help="place and route a config on ECP5: Fmax, utilization, critical path",
    description="Synthesize a config for ECP5, pick the smallest ECP5 that holds its LUT4s "
                "(at most 90% full), multipliers and block RAMs (or the --device given), and "
                "place and route it with nextpnr-ecp5 (fixed seed, --timing-allow-fail): "
                "the achieved Fmax per clock, the utilization and the critical path (its "
                "ends and how its delay splits into logic and routing). By default the "
                "design is placed out of context (no IO buffers; its AXI ports exceed the "
                "package's pins, and paths to and from the ports are not timed).",
    epilog="examples:\n"
           "  chrysalis pnr --preset tiny\n"
           "  chrysalis pnr --preset tiny --device 85k --freq 120\n"
           "  chrysalis pnr --preset default --json build/fmax.json   # over 40 minutes",
    configure=_configure_pnr,
    run=lambda args: _guard(_run_pnr, args),
))
