"""``chrysalis board``: the on-board self-test of a config, built into a bitstream.

The work is :func:`gen.flows.board.build_board`; this module parses the arguments and prints the
result. Heavy imports (Amaranth, NumPy) happen in ``run`` only.
"""

import argparse

from chrysalis.gen.spec.config import ConfigError

from .app import (
    Command, add_config_arguments, add_output_argument, check_output_dir, config_from_args,
    fail, positive_int, register)

__all__ = ["BOARD_COMMAND", "BOARD_NAMES", "DEFAULT_OUT", "DEFAULT_PLL_MHZ", "pll_mhz"]

#: The boards of :data:`gen.flows.board.BOARDS`, spelled out so that ``--help`` imports nothing
#: heavy; tests/gen/cli/test_board_cli.py checks they agree.
BOARD_NAMES = ("ulx3s_12f", "ulx3s_25f", "ulx3s_45f", "ulx3s_85f")

#: Where a build goes without ``-o/--output``: ``build/board/<board>-<config name>``.
DEFAULT_OUT = "build/board"


def _sizes(text):
    parts = text.split(",")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if len(sizes) < 2 or any(s < 1 for s in sizes) or sizes[0] != 64 or sizes[-1] != 10:
        raise argparse.ArgumentTypeError(
            f"must be layer sizes from 64 inputs to 10 classes separated by commas "
            f"(64,32,10), not {text!r}")
    return sizes


#: The PLL frequency without ``--pll``: the default 4x4 core routes at 25.8 MHz on the
#: ULX3S-85F and the 2x2 ``tiny`` one at 19.0 MHz (docs/board.md), too close to or under
#: the 25 MHz board clock; 10 MHz leaves both a margin, and the self-test's step takes
#: 1.6 ms at it.
DEFAULT_PLL_MHZ = 10.0


def pll_mhz(text):
    """``--pll``'s value: a PLL frequency in MHz, or None for ``off`` (the board clock)."""
    import math
    if text == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 3.125 <= value <= 400:
        raise argparse.ArgumentTypeError(
            f"must be a frequency from 3.125 to 400 MHz (the ECP5 PLL's range) or off, "
            f"not {text!r}")
    return value


def _runs(text):
    value = positive_int(text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"must be from 1 to 255, not {text!r}")
    return value


def _configure(parser):
    # Not `choices=`: an unknown board must be one error line naming the valid ones.
    parser.add_argument("--board", metavar="NAME", required=True,
                        help=f"the board: {', '.join(BOARD_NAMES)}")
    add_config_arguments(parser, required=False)
    add_output_argument(parser, old=("--out",),
                        help=f"build folder (default: {DEFAULT_OUT}/<board>-<config name>)")
    parser.add_argument("--pll", type=pll_mhz, default=DEFAULT_PLL_MHZ, metavar="MHZ",
                        help=f"clock the design from the ECP5 PLL at MHZ (default: "
                             f"{DEFAULT_PLL_MHZ:g}, which the default 4x4 core meets; off: "
                             f"the 25 MHz board clock, no PLL)")
    parser.add_argument("--sizes", type=_sizes, default=(64, 32, 10), metavar="N,..,N",
                        help="layer sizes of the stored digits step (default: 64,32,10)")
    parser.add_argument("--batch", type=positive_int, default=8, metavar="B",
                        help="samples in the stored minibatch (default: 8)")
    parser.add_argument("--seed", type=int, default=0,
                        help="initial weights and digits split (default: 0)")
    parser.add_argument("--runs", type=_runs, default=4, metavar="N",
                        help="consecutive runs (resets) checked against golden checksums "
                             "(default: 4)")
    parser.add_argument("--nextpnr-seed", type=int, default=1, metavar="N",
                        help="nextpnr's placement seed (default: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run(args):
    from chrysalis.gen.flows.board import BOARDS, BoardError, build_board
    if args.board not in BOARDS:
        raise ConfigError(f"--board must be one of {', '.join(BOARDS)}, not {args.board!r}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, not {args.seed!r}")
    config = config_from_args(args, buildable=True)
    out = args.output
    if out is None:
        out = f"{DEFAULT_OUT}/{args.board}-{config.name}"
    check_output_dir(out)
    try:
        result = build_board(config, out, board=args.board, sizes=args.sizes,
                             batch=args.batch, seed=args.seed, runs=args.runs,
                             pll_mhz=args.pll, nextpnr_seed=args.nextpnr_seed,
                             progress=not args.quiet, log=lambda line: print(line, flush=True))
    except BoardError as error:
        return fail(error, 1)
    _print(result, out)
    return 0


def _print(result, out):
    util = result["utilization"]
    print(f"bitstream: {result['bitstream']}")
    print(f"result:    {out}/top.board.json")
    print(f"device:    {result['device']} ({result['board']}), config {result['config']} "
          f"({result['array']} {result['operand']}, {result['scratchpad_words']} scratchpad "
          f"words)")
    for key, label in (("lut4", "LUT4"), ("ff", "FF"), ("dsp", "DSP"), ("bram", "BRAM")):
        u = util[key]
        print(f"  {label:<5} {u['used']:>7} / {u['available']:<7} ({u['percent']:.1f}%)")
    fmax = result["fmax_min_mhz"]
    print(f"clock:     {result['clock_mhz']:g} MHz ({result['clock_source']}); Fmax "
          f"{fmax} MHz: {'meets' if result['meets_clock'] else 'FAILS'} the clock, "
          f"{'meets' if result['meets_target'] else 'below'} the {result['target_mhz']:g} MHz "
          f"target")
    if not result["meets_clock"] and fmax:
        print(f"warning:   the design does not meet its {result['clock_mhz']:g} MHz clock: "
              f"rebuild with --pll below {fmax} MHz before trusting the board's result")
    path = result["critical_path"]
    if path:
        print(f"critical path: {path['delay_ns']} ns ({path['logic_ns']} logic, "
              f"{path['routing_ns']} routing, {path['logic_levels']} logic levels)")
        if path["sources"]:
            print(f"  through: {', '.join(path['sources'][:8])}")
    seconds = result["seconds"]
    print("time:      " + ", ".join(f"{step} {value} s" for step, value in seconds.items()
                                    if value is not None))


BOARD_COMMAND = register(Command(
    name="board",
    help="build the on-board self-test of a config into a bitstream",
    description="Build a bitstream for a board of amaranth-boards with the open toolchain "
                "(Yosys, nextpnr-ecp5, ecppack from YoWASP). The design is the accelerator "
                "of the config (by default the `default` preset) with an on-chip memory "
                "holding one compiled digits training step and a small host that runs it "
                "after reset and compares a checksum of the memory with the golden "
                "machine's: the LEDs show pass or fail (docs/board.md). The utilization, "
                "Fmax and critical path go to <output>/top.board.json beside <output>/top.bit, "
                "and are printed. The default 4x4 core fits the LFE5U-85F with half its "
                "scratchpad and the barrel special-function unit (first example); its place "
                "and route takes most of two hours.",
    epilog="examples:\n"
           "  chrysalis board --board ulx3s_85f --set core.scratchpad_words=32768 "
           "--set core.sfu=barrel\n"
           "  chrysalis board --board ulx3s_85f --preset tiny --sizes 64,8,10 --batch 2 "
           "--set core.scratchpad_words=2048 -o build/board/tiny\n"
           "  chrysalis board --board ulx3s_85f --config my.toml --pll off",
    configure=_configure,
    run=_run,
))
