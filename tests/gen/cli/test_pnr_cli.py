"""``chrysalis pnr``: the device picked from the design's size, and nextpnr-ecp5 on a 2x2 core.

Placing the 2x2 ``tiny`` core (about 23k LUT4 with its loss unit and host interface) takes
minutes after minutes of synthesis, so that run is marked slow.
"""

import json

import pytest

from chrysalis.gen.cli import main
from chrysalis.gen.flows.pnr import ECP5_CAPACITY, ECP5_DEVICES, pick_device


def test_every_device_has_a_capacity():
    assert set(ECP5_CAPACITY) == set(ECP5_DEVICES)
    sizes = [c["lut4"] for c in ECP5_CAPACITY.values()]
    assert sizes == sorted(sizes)


@pytest.mark.parametrize("resources, device", [
    ({"lut4": 1000, "dsp": 4, "bram": 8}, "12k"),
    ({"lut4": 11059, "dsp": 28, "bram": 32}, "12k"),     # 90% of 12288 LUT4s
    ({"lut4": 11060, "dsp": 0, "bram": 0}, "25k"),
    ({"lut4": 1000, "dsp": 0, "bram": 33}, "25k"),        # block RAMs decide
    ({"lut4": 22901, "dsp": 29, "bram": 14}, "45k"),      # the tiny core: one DSP too many
    ({"lut4": 50000, "dsp": 10, "bram": 10}, "85k"),
])
def test_pick_device_takes_the_smallest_that_fits(resources, device):
    assert pick_device(resources) == device


def test_pick_device_names_what_does_not_fit():
    with pytest.raises(ValueError, match=r"does not fit the largest ECP5 \(85k\): dsp 200 > 156"):
        pick_device({"lut4": 10, "dsp": 200, "bram": 0})
    with pytest.raises(ValueError, match="fill must be in"):
        pick_device({"lut4": 10}, fill=0)
    assert pick_device({"lut4": 12000}, fill=1.0) == "12k"


def test_cli_refuses_an_unknown_device(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pnr", "--preset", "tiny", "--device", "99k"])
    assert exit_info.value.code == 2
    assert "invalid choice: '99k'" in capsys.readouterr().err


def test_cli_refuses_a_bad_frequency(capsys):
    with pytest.raises(SystemExit):
        main(["pnr", "--preset", "tiny", "--freq", "-5"])
    assert "must be a positive number of MHz, not '-5'" in capsys.readouterr().err


@pytest.mark.slow
def test_pnr_of_the_tiny_core(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["pnr", "--preset", "tiny", "-o", "out", "--json", "pnr.json"]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "pnr.json").read_text())
    assert result["device_choice"] == "auto"
    assert result["device"] == pick_device(result["resources"])
    assert 10 < result["fmax_mhz"] < 500
    assert result["fmax_mhz"] == min(result["fmax_by_clock"].values())
    assert result["utilization"]["TRELLIS_COMB"] > 1000
    assert result["utilization"]["MULT18X18D"] == result["resources"]["dsp"]
    path = result["critical_path"]
    assert path["logic_ns"] > 0 and path["routing_ns"] > 0 and path["steps"] > 1
    assert "Fmax" in out and "critical path:" in out
