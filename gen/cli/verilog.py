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
    help="emit the Verilog of a config, with sidecar JSON, C headers, register map, file "
         "lists, Verilator waivers and a FuseSoC core",
    description="Emit the top level of a config as Verilog into DIR: <name>.v; the sidecar "
                "<name>.json (config, hash, clock and reset, ports, bus interfaces, address "
                "map, tool versions, files); the C headers <name>.h and chrysalis_isa.h; the "
                "register map as SystemRDL and through PeakRDL (chrysalis_regs.rdl, .h, .xml "
                "IP-XACT, .md); the file lists <name>.f (absolute: iverilog -f from any "
                "folder) and <name>.rel.f (relative: verilator -F); the Verilator waivers "
                "<name>.vlt; a smoke testbench <name>_tb.sv; and the FuseSoC core <name>.core "
                "(targets lint and sim). Every file but <name>.f is byte-identical for the "
                "same config.",
    epilog="examples:\n"
           "  chrysalis verilog --preset tiny -o build/tiny\n"
           "  iverilog -g2012 -f build/tiny/tiny.f build/tiny/tiny_tb.sv   # from any folder\n"
           "  verilator --lint-only -Wall build/tiny/tiny.vlt -F build/tiny/tiny.rel.f\n"
           "  python -m chrysalis.gen.emit.tool_env fusesoc --cores-root build/tiny run "
           "--target lint chrysalis:generated:tiny\n"
           "  chrysalis verilog --config my.toml -o build/my\n"
           "  chrysalis verilog --preset default --set core.rows=8 --set name=wide -o build/wide",
    configure=_configure_verilog,
    run=_run_verilog,
))
