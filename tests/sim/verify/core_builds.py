"""One Verilog file, and so one simulator build, per core configuration for every test that
runs the core under cocotb (``test_cocotb_core.py``, ``test_cocotb_training.py``).

The core's RTL does not depend on the config's name, so the module is named after the hash
of the config with its name blanked (and of the gateware's sources, so that a changed RTL
is built afresh): two tests on the same core, under whatever names,
write the same file into the same folder, and the runner (which names a build after the
hash of its sources) builds it once per simulator and pytest run.
"""

import dataclasses
import os
from pathlib import Path

from chrysalis.sim.verify.runner import file_lock

__all__ = ["CORE_BUILDS", "core_verilog"]

#: Where the shared core builds go (``make clean`` removes ``build/``).
CORE_BUILDS = Path(__file__).resolve().parents[3] / "build" / "tests" / "cores"


def _rtl_hash():
    """A hash of the gateware's and the spec's sources: a build made before they changed is
    not reused (the Verilog is kept across pytest runs)."""
    import hashlib
    root = Path(__file__).resolve().parents[3]
    digest = hashlib.sha256()
    for path in sorted([*(root / "hw").glob("*.py"), *(root / "gen" / "spec").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def core_verilog(config):
    """Write the Verilog of ``hw.core.Core(config)`` once; return ``(source, toplevel,
    build_dir)`` for :func:`chrysalis.sim.verify.runner.run_testbench`."""
    from amaranth.back import verilog

    from chrysalis.hw.core import Core

    key = dataclasses.replace(config, name="core").config_hash()[:8] + _rtl_hash()[:4]
    toplevel = f"core_{config.core.rows}x{config.core.cols}_{key}"
    folder = CORE_BUILDS / toplevel
    source = folder / f"{toplevel}.v"
    # Two pytest-xdist workers may ask for the same core at once: one writes, the other waits.
    with file_lock(folder / "verilog.lock"):
        if not source.is_file():
            text = verilog.convert(Core(config), name=toplevel, emit_src=False)
            temp = source.with_name(f".{source.name}.{os.getpid()}.tmp")
            temp.write_text(text)
            os.replace(temp, source)
    return source, toplevel, folder
