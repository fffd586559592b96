"""``chrysalis config``: show a config (TOML, JSON or C header) and list the presets."""

import argparse

from chrysalis.gen.spec.config import PRESETS

from .app import Command, add_config_arguments, config_from_args, register, wrap

__all__ = ["CONFIG"]


def _configure_config(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", help="print a config (TOML by default)",
        description=wrap("Print a config, after --set overrides: as TOML (a valid --config "
                         "file), as JSON, or as the C header that `verilog` writes."),
        epilog="examples:\n"
               "  chrysalis config show --preset tiny\n"
               "  chrysalis config show --config my.toml --set mac.latency=6\n"
               "  chrysalis config show --preset tiny --format header",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(show, required=False)
    show.add_argument("--format", choices=("toml", "json", "header"), default="toml",
                      help="output format (default: toml)")
    actions.add_parser(
        "presets", help="list the preset configs",
        description="List the preset configs, one per line: name and summary.",
        epilog="example:\n  chrysalis config presets",
        formatter_class=argparse.RawDescriptionHelpFormatter)


def _run_config(args):
    if args.action == "presets":
        width = max(map(len, PRESETS))
        for name, config in PRESETS.items():
            print(f"{name:<{width}}  {_summary(config)}")
        return 0
    config = config_from_args(args)
    if args.format == "json":
        import json
        print(json.dumps(config.to_dict(), indent=2))
    elif args.format == "header":
        print(config.c_header(), end="")
    else:
        print(config.to_toml(), end="")
    return 0


def _summary(config):
    mac, core, cluster = config.mac, config.core, config.cluster
    cores = f"{cluster.cores} cores of " if cluster.cores > 1 else ""
    return (f"{cores}{core.rows}x{core.cols} PEs, {mac.operand} x {mac.operand} + "
            f"{mac.accumulator}, MAC latency {mac.latency}, "
            f"{config.pe_store_bytes} B per PE, {core.scratchpad_bytes} B scratchpad")


CONFIG = register(Command(
    name="config",
    help="show configs and list presets",
    description="Inspect configs: `show` prints one (with overrides applied), `presets` "
                "lists the presets.",
    epilog="examples:\n"
           "  chrysalis config presets\n"
           "  chrysalis config show --preset tiny > my.toml",
    configure=_configure_config,
    run=_run_config,
))
