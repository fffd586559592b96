"""The framework of the ``chrysalis`` command line: subcommands, shared options, ``main``.

Every subcommand is a :class:`Command`: a name, help texts, a function that adds its
arguments and a function that runs it. A subcommand lives in its own small module of
``chrysalis.gen.cli``, which calls :func:`register` at import time and is listed in
:data:`COMMAND_MODULES`. Modules should import heavy packages (Amaranth, NumPy) inside
``run`` so ``--help`` stays fast.

Errors a user can fix (a bad config value, an unknown key, unparseable TOML, a missing file,
an unknown preset, an output that cannot be written) print one line, ``chrysalis: error:
<message>``, and exit with status 2, before the command has done or written anything; an
operating-system error during the work (say, a full disk) is one line too, and exits with
status 1. A reader of stdout that goes away early (``chrysalis config show | head``) ends
the command quietly with status 141, as for any tool killed by ``SIGPIPE``.

Outputs follow one rule: ``-o/--output DIR`` names the folder a command writes its files
into (:func:`add_output_argument`, checked by :func:`check_output_dir`), and ``--json FILE``
names one file (:func:`check_writable`). Both are checked before the work and made only
when the command writes into them, so a run refused after the check leaves nothing behind.
The spellings used before the rule (``--out``, ``--build-dir``) still work, hidden from
``--help``.
"""

import argparse
import gc
import importlib
import json
import os
import select
import signal
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from chrysalis.gen.spec.config import (
    Config, ConfigError, PRESETS, check_buildable, get_preset, parse_override, with_overrides)

__all__ = ["Command", "COMMANDS", "COMMAND_MODULES", "PROG", "register",
           "add_config_arguments", "add_output_argument", "config_from_args", "positive_int",
           "non_negative_int", "status", "write_json", "check_writable", "check_output_dir",
           "fail", "tool_errors_exit_1", "wrap", "build_parser", "GC_THRESHOLDS", "main"]

#: The modules of the subcommands, in the order of ``chrysalis --help``; each registers its
#: subcommands when imported.
COMMAND_MODULES = tuple(f"chrysalis.gen.cli.{name}" for name in (
    "verilog", "config", "train", "board", "synth", "pnr", "sweep", "perf", "demo_command"))

#: Registered subcommands by name, in registration order (the order of ``--help``).
COMMANDS = {}

PROG = "chrysalis"

#: The garbage collector's thresholds while a command runs (:func:`main` sets them; the
#: test suite's workers too, ``tests/conftest.py``). Amaranth's elaboration, conversion and
#: simulation allocate millions of small objects that live long, which the collector at
#: Python's default (700, 10, 10) walks again and again: with these, the youngest
#: generation is collected after 50,000 allocations and the older ones far more rarely.
#: ``chrysalis verilog --preset tiny`` takes about a fifth less CPU (5.1 s against 4.0 s),
#: at the same peak memory.
GC_THRESHOLDS = (50_000, 50, 1_000)


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


def add_output_argument(parser, *, help, default=None, dest="output", old=(), **kwargs):
    """Add ``-o/--output DIR`` to ``parser``: the folder the command writes its files into.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    help : str
        The option's line in ``--help``.
    default : optional
        The value without the option.
    dest : str
        The attribute of the parsed arguments (``output`` unless a command's code and its
        callers already use another name).
    old : tuple of str
        The command's spellings from before ``-o/--output`` (``"--out"``), still accepted
        so that scripts keep working, and hidden from ``--help``.
    **kwargs
        More arguments of ``add_argument`` (``type=``, ``required=``), for every spelling.
    """
    parser.add_argument("-o", "--output", metavar="DIR", default=default, dest=dest,
                        help=help, **kwargs)
    for spelling in old:
        # The same destination: whichever spelling comes last on the command line wins.
        parser.add_argument(spelling, dest=dest, help=argparse.SUPPRESS,
                            default=argparse.SUPPRESS, **kwargs)


def config_from_args(args, *, buildable=False):
    """The :class:`~gen.spec.config.Config` that :func:`add_config_arguments` options describe.

    Parameters
    ----------
    args : argparse.Namespace
    buildable : bool
        For a command that builds the RTL: refuse a config the gateware cannot build
        (:func:`~gen.spec.config.check_buildable`) before the command does anything.
    """
    if args.config is not None:
        config = Config.load(args.config)
    else:
        config = get_preset(args.preset if args.preset is not None else "default")
    overrides = [parse_override(text) for text in args.overrides]
    config = with_overrides(config, overrides) if overrides else config
    return check_buildable(config) if buildable else config


# --- argument types and output shared by subcommands -----------------------------------------

def positive_int(text):
    """An ``argparse`` type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def non_negative_int(text):
    """An ``argparse`` type: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}")
    return value


def status(text):
    """A progress line on stderr (stdout holds the results)."""
    print(text, file=sys.stderr, flush=True)


def write_json(path, data):
    """Write ``data`` as sorted, indented JSON to ``path`` (parents created); returns the path."""
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def check_writable(path, flag):
    """Refuse, before any work, an output file that cannot be written. Nothing is left
    behind (:func:`write_json` makes the missing folders when it writes), so a command
    refused by a later check leaves its folders as they were: the file, if it exists, must
    be writable; if not, the nearest existing folder on the way to it must let a folder be
    made in it. Returns the file as a :class:`~pathlib.Path`.

    Raises
    ------
    ConfigError
        Naming ``flag`` and ``path``: the path is a folder, a file stands where one of its
        folders should be, or the file or its nearest existing folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} must name a file, not the folder {str(path)!r}")
    # The nearest existing parent: a folder to write into, or a file in the way.
    existing = next(parent for parent in path.parents if os.path.lexists(parent))
    if not existing.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} cannot be written: {str(existing)!r} is a "
                          f"file, not a folder")
    if os.path.lexists(path):
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{flag} {str(path)!r} cannot be written (no write permission "
                              f"on {str(path)!r})")
        return path
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {str(path)!r} cannot be written (no write permission on "
                          f"{str(existing)!r})")
    # os.access answers yes to root where nothing can be made (/proc): only making a folder
    # tells, and the empty folder is removed at once.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".chrysalis-check-", dir=existing))
    except OSError as error:
        raise ConfigError(f"{flag} {str(path)!r} cannot be written: {error.strerror}, "
                          f"not {str(existing)!r}") from None
    return path


def check_output_dir(path, flag="--output"):
    """Refuse, before any work, an output folder that cannot be made or written. Nothing is
    made here (the command makes the folder when it writes), so a command refused later
    leaves nothing behind. Returns the folder as a :class:`~pathlib.Path`.

    Raises
    ------
    ConfigError
        Naming ``flag`` and ``path``: a file stands where the folder or one of its parents
        should be, or the nearest existing parent cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        existing = path
    elif os.path.lexists(path):
        raise ConfigError(f"{flag} must name a folder, not the file {str(path)!r}")
    else:
        existing = next(parent for parent in path.parents if os.path.lexists(parent))
        if not existing.is_dir():
            raise ConfigError(f"{flag} must be a folder that can be made ({str(existing)!r} "
                              f"is a file), not {str(path)!r}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} must be a folder that can be written (no write permission "
                          f"on {str(existing)!r}), not {str(path)!r}")
    return path


def tool_errors_exit_1(run):
    """``run`` for a :class:`Command` whose tools may fail: a ``RuntimeError`` is not the
    user's input, so it is one error line and exit status 1."""
    def guarded(args):
        try:
            return run(args)
        except RuntimeError as error:
            return fail(error, 1)
    return guarded


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
    # Not required here: argparse would then report a missing command before an unknown
    # option (`chrysalis --frobnicate`); _run reports it after parsing instead.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        sub = commands.add_parser(command.name, help=command.help,
                                  description=wrap(command.description),
                                  epilog=command.epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def wrap(text):
    """A description paragraph wrapped for ``--help``."""
    # Descriptions are paragraphs (wrapped here); epilogs are examples (kept as written),
    # hence RawDescriptionHelpFormatter with descriptions wrapped by hand.
    return textwrap.fill(text, width=88)


def _version():
    try:
        return metadata.version("chrysalis")
    except metadata.PackageNotFoundError:
        return "unknown"


def fail(message, exit_status):
    """Print ``message`` as one error line on stderr; returns ``status``."""
    # One line, whatever the message holds: scripts and people read the first line only.
    print(f"{PROG}: error: {' '.join(str(message).splitlines())}", file=sys.stderr)
    return exit_status


def _os_error_text(error):
    """An operating-system error as ``file: reason`` (the errno number says nothing to a
    user)."""
    if error.strerror and error.filename is not None:
        return f"{os.fsdecode(error.filename)}: {error.strerror}"
    return error.strerror or str(error)


def _stdout_reader_gone():
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on the
    write end of such a pipe)."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _quiet_stdout():
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does not
    report the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _run(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("the following arguments are required: COMMAND")
    try:
        exit_status = args.run(args)
        # Flushed here, not at exit, so that a reader gone early is handled by main.
        sys.stdout.flush()
        return exit_status
    except ConfigError as error:
        return fail(error, 2)
    except BrokenPipeError:
        raise       # main tells a reader of stdout gone from any other broken pipe
    except OSError as error:
        return fail(_os_error_text(error), 1)
    except KeyboardInterrupt:
        return fail("interrupted", 130)


def main(argv=None):
    """Run ``chrysalis`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        try:
            return _run(argv)
        except SystemExit:
            # --help, --version and usage errors exit from inside argparse, their text
            # still in stdout's buffer.
            sys.stdout.flush()
            raise
    except BrokenPipeError as error:
        if not _stdout_reader_gone():
            return fail(_os_error_text(error), 1)
        # The reader of stdout went away (`chrysalis config show | head`): nothing is
        # wrong and nothing more can be said; end as a tool killed by SIGPIPE would.
        _quiet_stdout()
        return 128 + signal.SIGPIPE
