"""The file lists of the emitted Verilog: one usable from any folder, one that moves with it.

A file list (``-f list``) names the design's source files, one per line. Icarus Verilog reads
the paths in it relative to the current folder, not to the list (it has no ``-F``), so a list
that works from any folder must hold absolute paths:

- ``<name>.f`` names the Verilog by its absolute path, for ``iverilog -f``,
  ``verilator -f`` and any other tool that reads a list, from any folder. It is the one emitted
  file that depends on where the output folder is: it is rewritten by every emission, has no
  SHA-256 in the sidecar, and goes stale if the folder is moved.
- ``<name>.rel.f`` names it relative to the list's own folder: byte-identical wherever it is
  written, and still right after the folder is moved or archived. Give it to a tool that reads
  a list relative to its folder (``verilator -F``, ``xrun -F``, ``vcs -F``), or use it from
  inside the folder (``cd DIR && iverilog -f <name>.rel.f``).
"""

from pathlib import Path

__all__ = ["absolute_filelist", "relative_filelist"]


def absolute_filelist(out_dir, sources):
    """The file list of ``sources`` (file names in ``out_dir``) by absolute path.

    Parameters
    ----------
    out_dir : str or Path
        The output folder; made absolute (symbolic links resolved) for the list.
    sources : sequence of str
        File names of the Verilog sources, in compilation order.
    """
    folder = Path(out_dir).resolve()
    return "".join(f"{folder / _checked(source)}\n" for source in sources)


def relative_filelist(sources):
    """The file list of ``sources`` (file names beside the list) relative to its folder."""
    return "".join(f"{_checked(source)}\n" for source in sources)


def _checked(source):
    # A list is one path per line, and its tools split a line at white space.
    if not isinstance(source, str) or not source or "/" in source or any(
            c.isspace() for c in source):
        raise ValueError(f"source must be a file name without folder or white space, "
                         f"not {source!r}")
    return source
