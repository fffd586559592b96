"""One Verilog file, and so one simulator build, per core configuration for every test that
runs the core under cocotb (``test_cocotb_core.py``, ``test_cocotb_training.py``).

The core's RTL does not depend on the config's name, so the module is named after the hash
of the config with its name blanked: two tests on the same core, under whatever names,
write the same file into the same folder, and the runner (which names a build after the
hash of its sources, so a changed RTL is built afresh) builds it once per simulator and
pytest run. The Verilog itself is converted once per machine
(``sim.verify.verilog_cache.cached_design``, keyed by the config and the gateware's sources),
and a module name that does not change with unrelated sources lets ``ccache`` reuse the
compiled model when only other parts of the gateware changed.
"""

import dataclasses
from pathlib import Path

from chrysalis.sim.verify.verilog_cache import cached_design

__all__ = ["CORE_BUILDS", "core_verilog"]

#: Where the shared core builds go (``make clean`` removes ``build/``).
CORE_BUILDS = Path(__file__).resolve().parents[3] / "build" / "tests" / "cores"


def core_verilog(config):
    """Write the Verilog of ``hw.core.Core(config)`` once; return ``(source, toplevel,
    build_dir)`` for :func:`chrysalis.sim.verify.runner.run_testbench`."""
    from amaranth.back import verilog

    from chrysalis.hw.core import Core

    core = dataclasses.replace(config, name="core")
    toplevel = f"core_{config.core.rows}x{config.core.cols}_{core.config_hash()[:12]}"
    folder = CORE_BUILDS / toplevel
    # Two pytest-xdist workers may ask for the same core at once: one converts, the other
    # waits (the cache's lock).
    source = cached_design(
        toplevel, ["hw.core.Core", core.to_toml()],
        lambda: verilog.convert(Core(config), name=toplevel, emit_src=False), folder)
    return source, toplevel, folder
