"""``chrysalis pnr``: Fmax of a config. It synthesizes the config for ECP5, picks the
smallest device that holds the design (or the one given) and places and routes it with
nextpnr-ecp5: Fmax, utilization and the critical path (:mod:`gen.flows.pnr`).
"""

import argparse

from .app import (
    Command, add_config_arguments, add_output_argument, check_output_dir, check_writable,
    config_from_args, register, status, tool_errors_exit_1, write_json)

__all__ = ["PNR", "pnr_summary"]


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
    add_output_argument(parser, help="working folder (default: build/<name>/pnr)")
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
    config = config_from_args(args, buildable=True)
    out = check_output_dir(args.output or f"build/{config.name}/pnr")
    json_path = check_writable(args.json or out / f"{config.name}.pnr.json", "--json")
    status(f"synthesizing and placing {config.name} in {out} (nextpnr takes minutes; "
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
    path = write_json(json_path, result)
    print(f"result written to {path}")
    return 0


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
    run=tool_errors_exit_1(_run_pnr),
))
