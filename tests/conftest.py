"""Shared pytest fixtures: run cocotb tests under every simulator, in per-test build dirs.

``simulator``
    Parametrized over :data:`sim.verify.runner.SIMULATORS` and marked ``cocotb``, so a test that
    takes it runs once under Icarus and once under Verilator. A simulator missing from
    this machine skips its half, unless ``CHRYSALIS_REQUIRE_SIMULATORS=1`` (set by
    ``.ci/run``) turns that into a failure, so CI cannot pass by skipping.
``build_root``
    ``<repo>/build/tests/<test node id>``: deterministic, inside the repository (YoWASP tools
    cannot see ``/tmp``, so not ``tmp_path``) and kept between sessions, so Verilator builds
    are reused (``sim.verify.runner`` names each build after a hash of its sources, so a stale
    one is never picked up). ``make clean`` removes them.
"""

import gc
import os
import re
from pathlib import Path

import pytest

from chrysalis.gen.cli.app import GC_THRESHOLDS
from chrysalis.sim.verify.runner import SIMULATORS, available_simulators

# The command line's garbage-collector thresholds (chrysalis.gen.cli.app.GC_THRESHOLDS) in
# the workers too: the tests elaborate and simulate designs as the commands do, and keep
# simulations for reuse. tests/hw/test_core.py -k 4x4 takes about 11% less CPU with them,
# at the same peak memory.
gc.set_threshold(*GC_THRESHOLDS)

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_TESTS = REPO_ROOT / "build" / "tests"


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.cocotb) for name in SIMULATORS])
def simulator(request):
    """Name of the simulator (``"icarus"`` or ``"verilator"``) this test instance uses."""
    name = request.param
    _require(name)
    return name


def _require(name):
    """Skip (or, with ``CHRYSALIS_REQUIRE_SIMULATORS=1``, fail) without simulator ``name``."""
    if name not in available_simulators():
        message = f"simulator {name!r} is not available on this machine (run `make setup`)"
        if os.environ.get("CHRYSALIS_REQUIRE_SIMULATORS") == "1":
            pytest.fail(message)
        pytest.skip(message)


#: How a test that is about a job's results, not the host interface, runs its job: the native
#: harnesses (host and memory in Verilog under Icarus, in C++ under Verilator: the same images
#: and counters, cycle for cycle, as the cocotb harness, tests/sim/verify/test_native_job.py).
#: The cocotb harness runs them too under both simulators, behind the ``slow`` marker.
RTL_HARNESSES = (
    pytest.param(("icarus", "native"), id="icarus-native"),
    pytest.param(("verilator", "native"), id="verilator-native"),
    pytest.param(("icarus", "cocotb"), marks=(pytest.mark.cocotb, pytest.mark.slow),
                 id="icarus"),
    pytest.param(("verilator", "cocotb"), marks=(pytest.mark.cocotb, pytest.mark.slow),
                 id="verilator"),
)


@pytest.fixture(params=RTL_HARNESSES)
def rtl_harness(request):
    """``(simulator, harness)`` this test instance runs its job with (:data:`RTL_HARNESSES`;
    a test may parametrize it indirectly with another list)."""
    simulator, harness = request.param
    _require(simulator)
    return simulator, harness


def _node_dir(nodeid):
    """Map ``tests/sim/test_x.py::test_y[icarus]`` to ``sim/test_x/test_y-icarus``."""
    path, _, name = nodeid.partition("::")
    path = re.sub(r"^tests/", "", path.removesuffix(".py"))
    name = name.replace("::", "/").replace("[", "-").rstrip("]")
    return "/".join(
        re.sub(r"[^A-Za-z0-9_.=+-]", "_", part)[:100]
        for part in [*path.split("/"), *name.split("/")]
        if part
    )


@pytest.fixture
def build_root(request):
    """A per-test directory under ``<repo>/build/tests/`` (created, not emptied)."""
    path = BUILD_TESTS / _node_dir(request.node.nodeid)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _runs_rtl(item):
    """Whether ``item`` builds and runs RTL under an external simulator (the long tests)."""
    if item.get_closest_marker("cocotb") is not None:
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("rtl_harness", ("", ""))[1] == "native"


def pytest_collection_modifyitems(config, items):
    """Run the simulator tests first, the rest after, each group in collection order.

    With two workers stealing work from each other (``make test`` runs ``--dist
    worksteal``), the long builds start at once and the many short tests fill the gaps at
    the end, instead of one 50 s simulation starting last and running alone.
    """
    items.sort(key=lambda item: not _runs_rtl(item))


def pytest_sessionfinish(session):
    """Free the Amaranth simulations kept for reuse (``sim.verify.shared_sim``) while the
    session still runs: left to the interpreter's exit, their many objects are collected
    while pytest-xdist shuts the worker down, which can interrupt them."""
    from chrysalis.sim.verify import shared_sim
    shared_sim.clear()
    gc.collect()
