"""``chrysalis synth``: area of a config. It emits the config's Verilog and synthesizes it
with Yosys for ECP5 (LUT4, FF, DSP, BRAM), for generic CMOS gates (transistors) or for the
user's Liberty library (area), with a per-module breakdown (:mod:`gen.flows.synth`).
"""

from pathlib import Path

from chrysalis.gen.flows.liberty import PDKS, PdkError, pdk_liberty
from chrysalis.gen.spec.config import ConfigError

from .app import (
    Command, add_config_arguments, add_output_argument, check_output_dir, check_writable,
    config_from_args, register, status, tool_errors_exit_1, write_json)

__all__ = ["SYNTH", "synth_tables"]

_FIGURES = {
    "ecp5": ("lut4", "ff", "dsp", "bram"),
    "cmos": ("transistors", "flip_flops", "cells", "memory_bits"),
    "liberty": ("area", "sequential_area", "cells", "memory_bits"),
}


def _configure_synth(parser):
    add_config_arguments(parser)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target", choices=("ecp5", "cmos"), default=None,
                        help="ecp5: LUT4/FF/DSP/BRAM (default); cmos: generic gates, "
                             "transistor count")
    target.add_argument("--liberty", metavar="FILE",
                        help="map to this Liberty cell library and report its area "
                             "(um^2, the usual Liberty area unit)")
    target.add_argument("--pdk", metavar="NAME",
                        help="map to the Liberty library of a known PDK: "
                             + ", ".join(f"{name} ({path})" for name, (path, _) in PDKS.items())
                             + "; install it with `make asic-lib`")
    add_output_argument(parser, help="working folder: Verilog, netlist, statistics and logs "
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
             + (f" ({result['liberty']})" if result.get("liberty") else ""), ""]
    headers = figures
    if result.get("liberty"):
        unit = result["area_unit"]
        lines += [f"library: {result['liberty_path']}",
                  f"sha256: {result['liberty_sha256']}",
                  f"area unit: {unit}; memories: {result['memories']}", ""]
        headers = tuple(f"{f} ({unit})" if f.endswith("area") else f for f in figures)
    lines.append(markdown_table(("total",) + headers,
                                [("design",) + tuple(result["total"].get(f, "")
                                                     for f in figures)]))
    if result.get("breakdown"):
        for kind in ("groups", "paths"):
            table = result["breakdown"][kind]
            rows = [(name,) + tuple(entry.get(f, 0) for f in figures)
                    for name, entry in table.items() if any(entry.values())]
            lines += ["", markdown_table(("group" if kind == "groups" else "module",)
                                         + headers, rows)]
    return "\n".join(lines) + "\n"


def _run_synth(args):
    from chrysalis.gen.flows.synth import SynthError, synthesize_config
    liberty = args.liberty
    if args.pdk is not None:
        try:
            liberty = str(pdk_liberty(args.pdk))
        except PdkError as error:
            raise ConfigError(str(error)) from None
    config = config_from_args(args, buildable=True)
    target = "liberty" if liberty else (args.target or "ecp5")
    if args.liberty and not Path(args.liberty).is_file():
        raise ConfigError(f"--liberty must be an existing Liberty file, not {args.liberty!r}")
    out = check_output_dir(args.output or f"build/{config.name}/synth-{target}")
    json_path = check_writable(args.json or out / f"{config.name}.synth.json", "--json")
    status(f"synthesizing {config.name} for {target} in {out} ...")
    try:
        result = synthesize_config(config, out, target=target, liberty=liberty,
                                   modules=not args.no_breakdown, lut_mapper=args.lut_mapper)
    except SynthError as error:
        raise RuntimeError(f"{error} (log: {error.log})") from None
    result["config"] = config.to_dict()
    result["config_hash"] = config.config_hash()
    if args.pdk is not None:
        result["pdk"] = args.pdk
    print(synth_tables(result), end="")
    path = write_json(json_path, result)
    print(f"result written to {path}")
    return 0


SYNTH = register(Command(
    name="synth",
    help="synthesize a config: ECP5 resources, CMOS transistors or Liberty area",
    description="Emit the Verilog of a config and synthesize it with Yosys: for ECP5 "
                "(LUT4, flip-flops, DSP, block RAM), for generic CMOS gates (`stat -tech "
                "cmos`: transistors) or, with --liberty, for your own cell library "
                "(`dfflibmap` + `abc -liberty`, area from `stat -liberty`) or, with --pdk, a "
                "known PDK's library (osu018: `make asic-lib` installs it); a Liberty result "
                "states the area unit (um^2), the library's path and SHA-256. For cmos and "
                "Liberty the memories (PE banks, scratchpad) are kept as macros, excluded "
                "from the area, and their bits are reported beside the logic; identical "
                "modules (the PEs) are synthesized once and counted per instance. Prints "
                "the totals and a per-module breakdown (MAC, PE, reuse cache, interconnect, "
                "core, top; then each module path with the PEs folded together) and writes "
                "them as JSON.",
    epilog="examples:\n"
           "  chrysalis synth --preset tiny\n"
           "  chrysalis synth --preset default --set core.rows=8 --set core.cols=8\n"
           "  chrysalis synth --preset tiny --target cmos\n"
           "  chrysalis synth --preset tiny --liberty my_cells.lib --json build/area.json\n"
           "  make asic-lib && chrysalis synth --preset tiny --pdk osu018",
    configure=_configure_synth,
    run=tool_errors_exit_1(_run_synth),
))
