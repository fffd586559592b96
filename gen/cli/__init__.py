"""The ``chrysalis`` command line.

Every subcommand is a :class:`Command`: a name, help texts, a function that adds its
arguments and a function that runs it. A subcommand lives in its own small module, which
calls :func:`register` at import time and is listed in :data:`COMMAND_MODULES`; this module
holds the framework and the first two subcommands, ``verilog`` and ``config``. Modules
should import heavy packages (Amaranth, NumPy) inside ``run`` so ``--help`` stays fast.

Errors a user can fix (a bad config value, an unknown key, unparseable TOML, a missing file,
an unknown preset) print one line, ``chrysalis: error: <message>``, and exit with status 2;
an operating-system error (say, an unwritable output directory) exits with status 1.
"""

import argparse
import importlib
import sys
import textwrap
from dataclasses import dataclass
from importlib import metadata
from typing import Callable

from chrysalis.gen.spec.config import (
    Config, ConfigError, PRESETS, get_preset, parse_override, with_overrides)

__all__ = ["Command", "COMMANDS", "COMMAND_MODULES", "register", "add_config_arguments",
           "config_from_args", "build_parser", "main"]

#: Modules that register further subcommands when imported.
COMMAND_MODULES = ("chrysalis.gen.cli.board", "chrysalis.gen.cli.flows",
                   "chrysalis.gen.cli.sweep", "chrysalis.gen.cli.perf")

#: Registered subcommands by name, in registration order (the order of ``--help``).
COMMANDS = {}

PROG = "chrysalis"


@dataclass(frozen=True)
class Command:
    """One subcommand of ``chrysalis``.

    Parameters
    ----------
    name : str
        The subcommand (``chrysalis <name> ...``).
    help : str
        One line for the list of subcommands in ``chrysalis --help``.
    description : str
        The paragraph at the top of ``chrysalis <name> --help``.
    epilog : str
        Examples, shown at the end of ``chrysalis <name> --help`` as written.
    configure : callable
        ``configure(parser)`` adds the subcommand's arguments to its parser.
    run : callable
        ``run(args) -> int`` does the work and returns the exit status. It raises
        :class:`~gen.spec.config.ConfigError` for problems the user can fix.
    """

    name: str
    help: str
    description: str
    epilog: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def register(command):
    """Add ``command`` to the command line; returns it (usable as ``X = register(...)``)."""
    if command.name in COMMANDS:
        raise ValueError(f"subcommand {command.name!r} is registered twice")
    COMMANDS[command.name] = command
    return command


# --- shared arguments -------------------------------------------------------------------

def add_config_arguments(parser, *, required=True):
    """Add ``--config FILE | --preset NAME`` and ``--set PATH=VALUE`` to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    required : bool
        Whether one of ``--config`` and ``--preset`` must be given; when not, the
        ``default`` preset is used.
    """
    group = parser.add_argument_group("config")
    source = group.add_mutually_exclusive_group(required=required)
    source.add_argument("--config", metavar="FILE",
                        help="a TOML config file (layout: docs/config.md)")
    # Not `choices=`: an unknown preset must be one error line naming the valid ones.
    source.add_argument("--preset", metavar="NAME",
                        help=f"a preset config: {', '.join(sorted(PRESETS))}")
    group.add_argument("--set", metavar="PATH=VALUE", action="append", default=[],
                       dest="overrides",
                       help="override a field by dotted path, e.g. core.rows=8 or "
                            "mac.operand=fp16 (repeatable; values are TOML)")


def config_from_args(args):
    """The :class:`~gen.spec.config.Config` that :func:`add_config_arguments` options describe."""
    if args.config is not None:
        config = Config.load(args.config)
    else:
        config = get_preset(args.preset if args.preset is not None else "default")
    overrides = [parse_override(text) for text in args.overrides]
    return with_overrides(config, overrides) if overrides else config


# --- chrysalis verilog --------------------------------------------------------------------

def _configure_verilog(parser):
    add_config_arguments(parser)
    parser.add_argument("-o", "--output", metavar="DIR", required=True,
                        help="output directory (created when missing)")


def _run_verilog(args):
    from chrysalis.gen.emit.verilog import emit  # imports Amaranth: only when emitting
    config = config_from_args(args)
    for path in emit(config, args.output).values():
        print(path)
    return 0


register(Command(
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


# --- chrysalis config ---------------------------------------------------------------------

def _configure_config(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", help="print a config (TOML by default)",
        description=_wrap("Print a config, after --set overrides: as TOML (a valid --config "
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
            f"{config.pe.local_store_bytes} B per PE, {core.scratchpad_bytes} B scratchpad")


register(Command(
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


# --- chrysalis train ----------------------------------------------------------------------

# The defaults of sim.train.single (DEFAULT_LR, DEFAULT_BATCH, DEFAULT_EPOCHS, DIGITS_SIZES), spelled
# out so that `--help` does not import NumPy; tests/sim/train/test_train.py checks they agree.
_TRAIN_LR = 0.1
_TRAIN_BATCH = 8
_TRAIN_EPOCHS = 12
_TRAIN_SIZES = (64, 32, 10)
_TRAIN_BACKENDS = ("golden", "icarus", "verilator")
# sim.train.cluster.MODES and sim.compile.cp_program's defaults, checked as above.
_TRAIN_MODES = ("data", "model", "cp")
_TRAIN_CP_LR = 0.02
_TRAIN_CP_EPOCHS = 8


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}")
    return value


def _number(text, positive):
    import math
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value if positive else 0 <= value) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"must be a {'positive' if positive else 'non-negative'} number, not {text!r}")
    return value


def _layer_sizes(text):
    parts = text.split(",")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"must be at least two positive layer sizes separated by commas (64,32,10), "
            f"not {text!r}")
    return sizes


def _configure_train(parser):
    add_config_arguments(parser, required=False)
    parser.add_argument("--backend", choices=_TRAIN_BACKENDS, default="golden",
                        help="where the accelerator runs: the golden machine model (fast, "
                             "bit-exact with the RTL) or its Verilog under a simulator "
                             "(default: golden)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, metavar="N",
                        help=f"train N epochs, measuring after each (default: "
                             f"{_TRAIN_EPOCHS}; --mode cp: {_TRAIN_CP_EPOCHS})")
    length.add_argument("--steps", type=_positive_int, metavar="N",
                        help="train N SGD steps, measuring at the end")
    parser.add_argument("--batch", type=_positive_int, metavar="B",
                        help=f"samples per minibatch; the remainder of each epoch is dropped "
                             f"(default: {_TRAIN_BATCH}; --mode cp: 1)")
    parser.add_argument("--lr", type=lambda t: _number(t, True), metavar="LR",
                        help=f"learning rate (default: {_TRAIN_LR}; --mode cp: "
                             f"{_TRAIN_CP_LR})")
    parser.add_argument("--momentum", type=lambda t: _number(t, False), metavar="MU",
                        help="SGD with momentum MU (default: plain SGD)")
    parser.add_argument("--sizes", type=_layer_sizes, default=_TRAIN_SIZES, metavar="N,..,N",
                        help=f"layer sizes, 64 inputs to 10 classes (default: "
                             f"{','.join(map(str, _TRAIN_SIZES))})")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="initial weights and minibatch order (default: 0)")
    parser.add_argument("--waves", action="store_true",
                        help="RTL backends: dump waveforms, one file per simulation")
    parser.add_argument("--build-dir", default="build/train", metavar="DIR",
                        help="RTL backends: Verilog, simulator builds and waveforms "
                             "(default: build/train)")
    parser.add_argument("--json", metavar="FILE",
                        help="write the result (history, counters, final weights) as JSON")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (the per-epoch lines are still printed)")
    parser.add_argument("--mode", choices=_TRAIN_MODES,
                        help="train on a cluster (cluster.cores >= 2, docs/cluster.md): "
                             "'data' parallel, 'model' parallel or 'cp' (continuous "
                             "propagation, layers pipelined over the cores, batch 1 and "
                             f"lr {_TRAIN_CP_LR} by default); a cluster needs one")
    parser.add_argument("--reuse", type=_reuse_strength, metavar="K|adaptive",
                        help="the reuse cache's strength (needs pe.reuse_entries > 0): a "
                             "fixed REUSE_STRENGTH K (0: off, 1: exact hits, larger: "
                             "coarser keys), or 'adaptive': start coarse and back off when "
                             "the epoch loss stops falling (docs/reuse.md; default: off)")


def _reuse_strength(text):
    if text == "adaptive":
        return text
    if text.isdigit() and int(text) <= 31:
        return int(text)
    raise argparse.ArgumentTypeError(f"must be 'adaptive' or a strength from 0 to 31, "
                                     f"not {text!r}")


def _write_json(name, result):
    import json
    from pathlib import Path
    path = Path(name)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    print(f"result written to {path}")


def _run_train(args):
    from chrysalis.sim.train.single import train  # NumPy and tqdm: only when training
    if args.waves and args.backend == "golden":
        raise ConfigError("--waves needs an RTL backend (--backend icarus or verilator), "
                          "not golden")
    config = config_from_args(args)
    if args.mode is not None or config.cluster.cores > 1:
        return _run_cluster_train(args, config)
    args.batch = _TRAIN_BATCH if args.batch is None else args.batch
    args.lr = _TRAIN_LR if args.lr is None else args.lr
    epochs = args.epochs if args.steps is None and args.epochs is not None else None
    if args.steps is None and epochs is None:
        epochs = _TRAIN_EPOCHS
    try:
        result = train(config, sizes=args.sizes, batch=args.batch, lr=args.lr,
                       momentum=args.momentum, steps=args.steps, epochs=epochs,
                       seed=args.seed, backend=args.backend, build_dir=args.build_dir,
                       waves=args.waves, progress=not args.quiet,
                       log=lambda line: print(line, flush=True), reuse=args.reuse)
    except ValueError as error:
        # Arguments the user can fix, a network that does not fit the config among them.
        raise ConfigError(str(error)) from None
    except RuntimeError as error:
        return _fail(error, 1)
    if args.json is not None:
        _write_json(args.json, result)
    return 0 if result.golden_match in (None, True) else 1


def _run_cluster_train(args, config):
    """``chrysalis train`` on a cluster: a mode's epochs on the golden cluster, or its first
    steps on the RTL checked against the golden cluster (``sim.train.cluster``)."""
    from chrysalis.sim.train import cluster as cluster_train
    if args.mode is None:
        raise ConfigError(f"config {config.name!r} has cluster.cores = "
                          f"{config.cluster.cores}: say how to train on it with --mode "
                          f"{', '.join(_TRAIN_MODES)}")
    for flag, value in (("--momentum", args.momentum), ("--reuse", args.reuse),
                        ("--waves", args.waves or None)):
        if value is not None:
            raise ConfigError(f"{flag} is not supported with --mode {args.mode}, "
                              f"not {value!r}")
    log = (lambda line: print(line, flush=True))
    try:
        if args.backend == "golden":
            if args.steps is not None:
                raise ConfigError("--steps with --mode runs the RTL against the golden "
                                  "cluster (--backend icarus or verilator); the golden "
                                  "backend trains whole epochs (--epochs)")
            result = cluster_train.train_cluster(
                config, args.mode, sizes=args.sizes, batch=args.batch, lr=args.lr,
                epochs=args.epochs, seed=args.seed, progress=not args.quiet, log=log)
            history = result.history
            last = history[-1]
            print(f"{args.mode} on {config.cluster.cores} cores: test accuracy "
                  f"{100 * last.acc:.2f}% after {len(history)} epochs")
            ok = True
        else:
            if args.epochs is not None:
                raise ConfigError(f"--mode with --backend {args.backend} runs --steps N, "
                                  f"not --epochs {args.epochs}")
            result = cluster_train.run_cluster_rtl(
                config, args.mode, steps=args.steps or 2, simulator=args.backend,
                build_dir=args.build_dir, sizes=args.sizes, batch=args.batch, lr=args.lr,
                seed=args.seed, log=log)
            ok = result.golden_match
    except ValueError as error:
        raise ConfigError(str(error)) from None
    except RuntimeError as error:
        return _fail(error, 1)
    if args.json is not None:
        _write_json(args.json, result)
    return 0 if ok else 1


register(Command(
    name="train",
    help="train an MLP on scikit-learn's digits on the accelerator",
    description="Train an MLP on scikit-learn's digits on the accelerator of a config (by "
                "default the `default` preset): one doorbell per SGD step, the minibatches "
                "written into memory by the host, the weights kept on chip. After each epoch "
                "it prints the training loss and the test accuracy, next to those of a "
                "float32 NumPy reference trained from the same weights on the same "
                "minibatches. The RTL backends also report the simulated cycles and the "
                "utilization, and check every memory image against the golden machine "
                "model. A network that does not fit the config is refused with one line "
                "saying why (exit status 2). The defaults (batch 8, lr 0.1, 12 epochs) reach "
                "at least 95% test accuracy on the default preset.",
    epilog="examples:\n"
           "  chrysalis train                                  # golden, default preset, "
           "12 epochs\n"
           "  chrysalis train --epochs 3 --lr 0.05 --momentum 0.5 --json build/train.json\n"
           "  chrysalis train --backend verilator --steps 20\n"
           "  chrysalis train --backend icarus --steps 2 --waves\n"
           "  chrysalis train --set pe.reuse_entries=16 --set pe.reuse_ways=4 --reuse "
           "adaptive\n"
           "  chrysalis train --set cluster.cores=2 --mode data --epochs 12\n"
           "  chrysalis train --set cluster.cores=2 --mode cp --backend verilator --steps 4",
    configure=_configure_train,
    run=_run_train,
))


# --- the parser and main -------------------------------------------------------------------

def _load_command_modules():
    for name in COMMAND_MODULES:
        importlib.import_module(name)


def build_parser():
    """The ``argparse`` parser of ``chrysalis`` with every registered subcommand."""
    _load_command_modules()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Chrysalis: a generator of DNN-training accelerators.",
        epilog=f"Run `{PROG} COMMAND --help` for the options and examples of a command.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        sub = commands.add_parser(command.name, help=command.help,
                                  description=_wrap(command.description),
                                  epilog=command.epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def _wrap(text):
    # Descriptions are paragraphs (wrapped here); epilogs are examples (kept as written),
    # hence RawDescriptionHelpFormatter with descriptions wrapped by hand.
    return textwrap.fill(text, width=88)


def _version():
    try:
        return metadata.version("chrysalis")
    except metadata.PackageNotFoundError:
        return "unknown"


def _fail(message, status):
    # One line, whatever the message holds: scripts and people read the first line only.
    print(f"{PROG}: error: {' '.join(str(message).splitlines())}", file=sys.stderr)
    return status


def main(argv=None):
    """Run ``chrysalis`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as error:
        return _fail(error, 2)
    except OSError as error:
        return _fail(error, 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
