"""The ``chrysalis`` command line.

The framework (:class:`Command`, :func:`register`, the shared config options and
:func:`main`) is :mod:`chrysalis.gen.cli.app`; each subcommand is a module of this package
that registers itself when imported: ``verilog``, ``config``, ``train``, ``board``,
``synth``, ``pnr``, ``sweep`` (with ``report``), ``perf`` (with ``search``) and
``demo_command`` (``chrysalis demo``, which runs :mod:`chrysalis.gen.cli.demo`).

Errors a user can fix (a bad config value, an unknown key, unparseable TOML, a missing file,
an unknown preset) print one line, ``chrysalis: error: <message>``, and exit with status 2;
an operating-system error (say, an unwritable output directory) exits with status 1.
"""

from .app import (
    COMMAND_MODULES, COMMANDS, Command, add_config_arguments, build_parser, config_from_args,
    main, register)

__all__ = ["Command", "COMMANDS", "COMMAND_MODULES", "register", "add_config_arguments",
           "config_from_args", "build_parser", "main"]
