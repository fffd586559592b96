"""The ``chrysalis`` command line.

The framework (:class:`Command`, :func:`register`, the shared config and output options and
:func:`main`) is :mod:`chrysalis.gen.cli.app`; each subcommand is a module of this package
that registers itself when imported: ``verilog``, ``config``, ``train``, ``board``,
``synth``, ``pnr``, ``sweep`` (with ``report``), ``perf`` (with ``search``) and
``demo_command`` (``chrysalis demo``, which runs :mod:`chrysalis.gen.cli.demo`).

Errors a user can fix (a bad config value, an unknown key, unparseable TOML, a missing file,
an unknown preset, an output that cannot be written) print one line, ``chrysalis: error:
<message>``, and exit with status 2 before anything is written; an operating-system error
during the work (say, a full disk) is one line too, and exits with status 1.

Outputs follow one rule on every command: ``-o/--output DIR`` names a folder (the files a
command writes go into it), ``--json FILE`` names one file. The spellings from before the
rule, ``board --out``, ``demo --out`` and ``train --build-dir``, still work and are hidden
from ``--help``.
"""

from .app import (
    COMMAND_MODULES, COMMANDS, Command, add_config_arguments, add_output_argument,
    build_parser, config_from_args, main, register)

__all__ = ["Command", "COMMANDS", "COMMAND_MODULES", "register", "add_config_arguments",
           "add_output_argument", "config_from_args", "build_parser", "main"]
