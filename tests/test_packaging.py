"""The package as users install it: ``pip wheel .`` gives a wheel whose only top-level
package is ``chrysalis`` (the folders hw/, gen/ and sim/ inside it), with the data files the
generator reads, and the layer contract holds (``make lint-imports`` runs it too)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(REPO)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = out.glob("chrysalis-*.whl")
    return path


def test_the_wheel_installs_only_chrysalis_at_the_top(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(
        (".dist-info", ".data"))}
    assert tops == {"chrysalis"}
    for folder in ("hw", "gen", "sim"):
        assert f"chrysalis/{folder}/__init__.py" in names
    # The data the generator and the simulators read beside their modules.
    for data in ("chrysalis/gen/spec/presets/default.toml", "chrysalis/gen/spec/presets/tiny.toml",
                 "chrysalis/gen/perf/energy_45nm.toml", "chrysalis/sim/verify/native/harness.cpp"):
        assert data in names, data
    assert any(name.endswith("licenses/LICENSE") or name.endswith("/LICENSE") for name in names)


def test_every_subpackage_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in sorted(p for d in ("hw", "gen", "sim") for p in (REPO / d).rglob("__init__.py")):
        assert "chrysalis/" + init.relative_to(REPO).as_posix() in names, init
