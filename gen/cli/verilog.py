"""``chrysalis verilog``: the Verilog of a config, with its sidecar files
(:func:`gen.emit.verilog.emit`)."""

from .app import (
    Command, add_config_arguments, add_output_argument, check_output_dir, config_from_args,
    register)

__all__ = ["VERILOG"]


def _configure_verilog(parser):
    add_config_arguments(parser)
    add_output_argument(parser, required=True,
                        help="output folder (made when missing)")


def _run_verilog(args):
    from chrysalis.gen.emit.verilog import emit  # imports Amaranth: only when emitting
    config = config_from_args(args, buildable=True)
    output = check_output_dir(args.output)
    for path in emit(config, output).values():
        print(path)
    return 0


VERILOG = register(Command(
    name="verilog",
    help="emit the Verilog of a config, with sidecar JSON, C header and file list",
    description="Emit the top level of a config as Verilog into DIR: <name>.v, the sidecar "
                "<name>.json (config, hash, ports, tool versions), the C header <name>.h and "
                "the file list <name>.f. The output is byte-identical for the same config.",
    epilog="examples:\n"
           "  chrysalis verilog --preset tiny -o build/tiny\n"
           "  chrysalis verilog --config my.toml -o build/my\n"
           "  chrysalis verilog --preset default --set core.rows=8 --set name=wide -o build/wide",
    configure=_configure_verilog,
    run=_run_verilog,
))
