"""``chrysalis demo``: the main job on a config (by default the ``default`` preset).

It runs :func:`chrysalis.gen.cli.demo.main` with the same options: emit the Verilog, compile a
64-32-10 MLP for digits, run one SGD step on the Verilog under a simulator with cocotb and
on the golden machine model, and compare them bit for bit.
"""

from pathlib import Path

from .app import (
    Command, add_config_arguments, add_output_argument, check_output_dir, config_from_args,
    non_negative_int, positive_int, register)

__all__ = ["DEMO", "SIMULATORS", "demo_argv"]

#: ``sim.verify.runner.SIMULATORS``, spelled out so that ``--help`` imports nothing more;
#: tests/gen/cli/test_demo_cli.py checks they agree.
SIMULATORS = ("icarus", "verilator")


def _configure(parser):
    add_config_arguments(parser, required=False)
    parser.add_argument("--batch", type=positive_int, default=8, metavar="B",
                        help="minibatch size (default 8)")
    parser.add_argument("--steps", type=positive_int, default=1, metavar="N",
                        help="training steps (default 1)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="data split and weights (default 0)")
    add_output_argument(parser, type=Path, old=("--out",),
                        help="output folder (default build/demo in the repository)")
    parser.add_argument("--simulator", action="append", choices=SIMULATORS,
                        help="simulator to run (repeatable; default verilator)")


def demo_argv(args):
    """The arguments of :func:`chrysalis.gen.cli.demo.main` for parsed ``chrysalis demo``
    options: only the options given, so that the demo's own defaults apply."""
    argv = []
    if args.config is not None:
        argv += ["--config", args.config]
    if args.preset is not None:
        argv += ["--preset", args.preset]
    for text in args.overrides:
        argv += ["--set", text]
    argv += ["--batch", str(args.batch), "--steps", str(args.steps), "--seed", str(args.seed)]
    if args.output is not None:
        argv += ["--output", str(args.output)]
    for simulator in args.simulator or ():
        argv += ["--simulator", simulator]
    return argv


def _run(args):
    # A config the demo cannot build is this command's one-line error, before anything runs.
    config_from_args(args, buildable=True)
    if args.output is not None:
        check_output_dir(args.output)
    from chrysalis.gen.cli import demo  # NumPy, the compiler and the runners: only now
    return demo.main(demo_argv(args))


DEMO = register(Command(
    name="demo",
    help="the main job: emit, compile, simulate one SGD step and compare with the golden model",
    description="Emit the Verilog of a config (by default the `default` preset), compile a "
                "64-32-10 MLP for scikit-learn's digits into a memory image and command "
                "streams, run the prologue, SGD steps on real minibatches and a checkpoint on "
                "the Verilog under a simulator with cocotb (cocotbext-axi as host and memory), "
                "run the same job on the golden machine model, and compare the whole memory "
                "image and the counters after every run, bit for bit. Prints the cycles, the "
                "utilization and the loss; the exit status is 1 when the RTL and the golden "
                "model disagree.",
    epilog="examples:\n"
           "  chrysalis demo\n"
           "  chrysalis demo --simulator icarus\n"
           "  chrysalis demo --preset tiny --batch 4 --steps 2 -o build/demo-tiny",
    configure=_configure,
    run=_run,
))
