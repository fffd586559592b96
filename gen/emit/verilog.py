"""Verilog emission: the top level of a config as Verilog, with the files other tools need.

For a config called ``name``, :func:`emit` writes into one folder:

- ``name.v``: the Verilog of ``hw.top.build_top(config)``, module ``name``, under
  `` `timescale 1ns / 1ps`` (:mod:`gen.emit.hdl`);
- ``name.h``: the C header of the config (:meth:`gen.spec.config.Config.c_header`);
- ``chrysalis_isa.h``: the C header of the command set and the register map
  (:func:`gen.spec.isa.c_header`; the same for every config);
- ``chrysalis_regs.rdl``, ``.h``, ``.xml``, ``.md``: the register map as SystemRDL and what
  PeakRDL makes of it (C header with bit-field macros, IP-XACT, Markdown;
  :mod:`gen.emit.regmap`; the same for every config);
- ``name.f`` and ``name.rel.f``: file lists, by absolute path and relative to the folder
  (:mod:`gen.emit.filelist`);
- ``name.vlt``: Verilator waivers, so that ``verilator --lint-only -Wall`` prints no
  warning (:mod:`gen.emit.waivers`);
- ``name_tb.sv``: a smoke testbench (:mod:`gen.emit.testbench`);
- ``name.core``: a FuseSoC CAPI2 core with ``lint`` and ``sim`` targets
  (:mod:`gen.emit.fusesoc`);
- ``name.json``: the sidecar (:mod:`gen.emit.sidecar`): config, hash, language, clock and
  reset, ports, bus interfaces, register map, tool versions, and the files with their types
  and SHA-256.

The output is byte-identical for the same config and tools: no timestamps, sorted JSON, and
no absolute path in any file but ``name.f``, whose whole point is one (it has no SHA-256 in
the sidecar). Each file is written to a temporary name and renamed, so a crash leaves no
half-written file; the sidecar is written last.
"""

import os
import re
from pathlib import Path

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config, check_buildable

from .filelist import absolute_filelist, relative_filelist
from .fusesoc import core_text
from .hdl import timescale_directive
from . import regmap
from .ports import verilog_ports
from .sidecar import SIDECAR_FORMAT, sidecar_text, tool_versions
from .testbench import testbench_text
from .waivers import waiver_text

# SIDECAR_FORMAT, tool_versions and verilog_ports are defined in gen.emit.sidecar and
# gen.emit.ports; they stay importable from here, where callers (sim.verify.native_job) use them.
__all__ = ["SIDECAR_FORMAT", "KINDS", "file_names", "emit", "with_timescale",
           "time_zero_initializers", "tool_versions", "verilog_ports"]

#: The kinds of emitted files, in the order they are written; the sidecar comes last, so
#: that its presence means the others are complete.
KINDS = ("verilog", "header", "isa_header", "regs_rdl", "regs_header", "regs_ipxact",
         "regs_markdown", "filelist", "relative_filelist", "waivers", "testbench", "core",
         "sidecar")

#: The register-map kinds of :data:`KINDS` and their keys in :data:`gen.emit.regmap.FILES`.
_REGMAP_KINDS = {"regs_rdl": "rdl", "regs_header": "header", "regs_ipxact": "ipxact",
                 "regs_markdown": "markdown"}


def file_names(name):
    """The file name of each kind of file (:data:`KINDS`) emitted for the config ``name``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"name must be a Verilog identifier, not {name!r}")
    return {"verilog": f"{name}.v", "header": f"{name}.h", "isa_header": "chrysalis_isa.h",
            **{kind: regmap.FILES[key] for kind, key in _REGMAP_KINDS.items()},
            "filelist": f"{name}.f", "relative_filelist": f"{name}.rel.f",
            "waivers": f"{name}.vlt", "testbench": f"{name}_tb.sv",
            "core": f"{name}.core", "sidecar": f"{name}.json"}


def emit(config, out_dir):
    """Write the Verilog of ``config`` and the files beside it into ``out_dir``.

    Parameters
    ----------
    config : Config
        The accelerator to emit; ``config.name`` names the module and the files.
    out_dir : str or Path
        Output folder, created when missing.

    Returns
    -------
    dict of str to Path
        The written files by kind (:data:`KINDS`, in that order), each
        ``out_dir / <file name>``.

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
    converted = verilog.convert(top, name=config.name, emit_src=False)
    text = with_timescale(time_zero_initializers(converted))
    ports = verilog_ports(text, config.name, _signature_order(top))
    out_dir = Path(out_dir)
    names = file_names(config.name)
    tools = tool_versions()
    regs = regmap.files()
    contents = {
        "verilog": text,
        "header": config.c_header(),
        "isa_header": isa.c_header(),
        **{kind: regs[regmap.FILES[key]] for kind, key in _REGMAP_KINDS.items()},
        "filelist": absolute_filelist(out_dir, [names["verilog"]]),
        "relative_filelist": relative_filelist([names["verilog"]]),
        "waivers": waiver_text(names["verilog"], names["waivers"]),
        "testbench": testbench_text(config.name, ports),
        "core": core_text(config.name, tools["chrysalis"], config.config_hash(), names),
    }
    # The absolute file list changes with the folder, so the sidecar holds no hash of it.
    hashed = {kind: (names[kind], None if kind == "filelist" else contents[kind])
              for kind in contents}
    contents["sidecar"] = sidecar_text(config, ports, top.metadata.as_json(),
                                       {**hashed, "sidecar": (names["sidecar"], None)}, tools)
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        _write_atomic(out_dir / names[kind], contents[kind])
    return {kind: out_dir / names[kind] for kind in KINDS}


def with_timescale(text):
    """``text`` (Verilog) with the `` `timescale`` of :mod:`gen.emit.hdl` as its first line,
    so that every module has a time unit in any simulator and beside any testbench."""
    return f"{timescale_directive()}\n{text}"


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


def _signature_order(top):
    """Verilog port names of the component's signature, in the signature's order."""
    return ["__".join(map(str, path)) for path, _member in top.signature.members.flatten()]


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
