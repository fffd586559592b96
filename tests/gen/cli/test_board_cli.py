"""``chrysalis board``: argument parsing, error messages, the nextpnr report parser, and (slow)
a real bitstream build of a tiny config."""

import hashlib
import json
from pathlib import Path

import pytest

from chrysalis.gen.flows import board as board_flow
from chrysalis.gen.cli import board as cli_board
from chrysalis.gen.flows.board import BOARDS, critical_path_summary, parse_nextpnr_report
from chrysalis.gen.flows.hard_registers import Absorbed, summary
from chrysalis.gen.cli import main

#: Overrides of the tiny preset that hold a 64-8-10 MLP at batch 2 (tests/hw/test_board.py).
TINY_BOARD = ["--preset", "tiny", "--set", "core.scratchpad_words=2048",
              "--set", "pe.act_words=256", "--set", "pe.weight_words=512",
              "--sizes", "64,8,10", "--batch", "2"]


def test_board_names_agree_with_the_flow():
    assert cli_board.BOARD_NAMES == tuple(BOARDS)


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    return err[-1]


def test_unknown_board_is_one_line_naming_the_valid_ones(capsys):
    assert main(["board", "--board", "icebreaker", "--preset", "tiny"]) == 2
    line = error_line(capsys)
    assert line.startswith("chrysalis: error: --board must be one of ulx3s_12f")
    assert "ulx3s_85f" in line and line.endswith("not 'icebreaker'")


def test_board_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["board", "--preset", "tiny"])
    assert exc.value.code == 2
    assert "--board" in error_line(capsys)


@pytest.mark.parametrize("args, message", [
    (["--sizes", "16,8,4"], "must be layer sizes from 64 inputs to 10 classes"),
    (["--sizes", "64,x,10"], "not '64,x,10'"),
    (["--pll", "500"], "must be a frequency from 3.125 to 400 MHz"),
    (["--pll", "fast"], "not 'fast'"),
    (["--batch", "0"], "must be a positive integer, not '0'"),
    (["--runs", "256"], "must be from 1 to 255, not '256'"),
])
def test_bad_arguments_are_refused_by_the_parser(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["board", "--board", "ulx3s_85f", "--preset", "tiny", *args])
    assert exc.value.code == 2
    assert message in error_line(capsys)


def test_bad_config_value_names_the_field(capsys):
    assert main(["board", "--board", "ulx3s_85f", "--preset", "tiny",
                 "--set", "core.rows=0"]) == 2
    line = error_line(capsys)
    assert "core.rows" in line and "0" in line


def test_unknown_preset(capsys):
    assert main(["board", "--board", "ulx3s_85f", "--preset", "huge"]) == 2
    assert "huge" in error_line(capsys)


def test_step_that_does_not_fit_is_refused_before_any_build(capsys, tmp_path):
    # The tiny preset's 1024-word scratchpad cannot hold 64-32-10 at batch 8.
    out = tmp_path / "never"
    assert main(["board", "--board", "ulx3s_85f", "--preset", "tiny",
                 "--out", str(out), "--quiet"]) == 2
    line = error_line(capsys)
    assert line.startswith("chrysalis: error: the stored training step does not fit:")
    assert "scratchpad" in line
    assert not (out / "top.bit").exists()


def test_negative_seed(capsys):
    assert main(["board", "--board", "ulx3s_85f", "--preset", "tiny", "--seed", "-1"]) == 2
    assert "--seed must be a non-negative integer, not -1" in error_line(capsys)


def test_toolchain_failure_is_exit_status_1(capsys, monkeypatch, tmp_path):
    def failing_build(*args, **kwargs):
        raise board_flow.BoardError("place and route (nextpnr-ecp5) failed (exit 1)",
                                    log="top.build.log")
    monkeypatch.setattr(board_flow, "build_board", failing_build)
    assert main(["board", "--board", "ulx3s_85f", *TINY_BOARD, "--out",
                 str(tmp_path / "b")]) == 1
    assert "nextpnr-ecp5) failed" in error_line(capsys)


def test_arguments_reach_the_flow_and_the_result_is_printed(capsys, monkeypatch, tmp_path):
    seen = {}

    def fake_build(config, out, **kwargs):
        seen.update(config=config, out=out, **kwargs)
        report = parse_nextpnr_report(write_report(tmp_path))
        return {"bitstream": f"{out}/top.bit", "device": "LFE5U-85F", "board": "ulx3s_85f",
                "config": config.name, "array": "2x2", "operand": "bf16",
                "scratchpad_words": config.core.scratchpad_words, "clock_mhz": 25.0,
                "clock_source": "board clock (25 MHz)", "target_mhz": 100.0,
                "fmax_min_mhz": 51.5, "meets_clock": True, "meets_target": False,
                "utilization": report["utilization"],
                "critical_path": report["critical_path"],
                "seconds": {"elaborate": 2.0, "synthesis": 3.0, "toolchain": 5.0}}
    monkeypatch.setattr(board_flow, "build_board", fake_build)
    out = tmp_path / "b"
    assert main(["board", "--board", "ulx3s_85f", *TINY_BOARD, "--out", str(out),
                 "--pll", "40", "--runs", "3", "--seed", "2", "--quiet"]) == 0
    assert seen["config"].core.scratchpad_words == 2048
    assert (seen["out"], seen["sizes"], seen["batch"], seen["pll_mhz"], seen["runs"],
            seen["seed"], seen["progress"]) == (str(out), (64, 8, 10), 2, 40.0, 3, 2, False)
    printed = capsys.readouterr().out
    assert f"bitstream: {out}/top.bit" in printed
    assert "LUT4     1234 / 83640" in printed
    assert "BRAM       12 / 208" in printed
    assert "Fmax 51.5 MHz: meets the clock, below the 100 MHz target" in printed
    assert "hw/pe.py:250" in printed
    assert "time:      elaborate 2.0 s, synthesis 3.0 s, toolchain 5.0 s" in printed


@pytest.mark.parametrize("args, pll_mhz", [
    ([], cli_board.DEFAULT_PLL_MHZ),
    (["--pll", "off"], None),
    (["--pll", "12.5"], 12.5),
])
def test_the_clock_is_a_pll_at_10_mhz_unless_told(monkeypatch, tmp_path, args, pll_mhz):
    """Without --pll the design runs from the PLL at a frequency the default core meets;
    `--pll off` is the board clock."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_build(config, out, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(board_flow, "build_board", fake_build)
    with pytest.raises(Stop):
        main(["board", "--board", "ulx3s_85f", *TINY_BOARD, "--out", str(tmp_path), *args])
    assert seen["pll_mhz"] == pll_mhz


def write_report(directory):
    """A nextpnr report in the layout of nextpnr-ecp5 0.11's ``--report``."""
    step = lambda kind, cell_from, cell_to, delay, net=None, sources=(): {
        "type": kind, "delay": delay, "from": {"cell": cell_from, "port": "Q", "loc": [1, 1]},
        "to": {"cell": cell_to, "port": "A", "loc": [2, 2]},
        **({"net": net, "sources": list(sources)} if net else {})}
    report = {
        "fmax": {"$glbnet$clk": {"achieved": 51.4999, "constraint": 25.0}},
        "utilization": {"TRELLIS_COMB": {"used": 1234, "available": 83640},
                        "TRELLIS_FF": {"used": 567, "available": 83640},
                        "DP16KD": {"used": 12, "available": 208},
                        "MULT18X18D": {"used": 0, "available": 156},
                        "EHXPLLL": {"used": 0, "available": 4}},
        "critical_paths": [
            {"from": "posedge clk", "to": "posedge clk", "path": [
                step("clk-to-q", "bank", "bank", 4.0),
                step("routing", "bank", "conv", 7.5, "rdata[3]",
                     ["/home/user/chrysalis/hw/pe.py:250", "/share/cells.v:10"]),
                step("logic", "conv", "conv", 0.5),
                step("routing", "conv", "mul", 2.0, "op[1]", ["hw/fconv.py:30",
                                                             "/home/user/chrysalis/hw/pe.py:250"]),
                step("setup", "mul", "mul", 0.1)]},
            {"from": "posedge clk", "to": "posedge clk", "path": [
                step("routing", "a", "b", 1.0, "short", ["hw/core.py:5"])]},
        ],
    }
    path = Path(directory) / "top.pnr.json"
    path.write_text(json.dumps(report))
    return path


def test_nextpnr_report_is_summarised(tmp_path):
    report = parse_nextpnr_report(write_report(tmp_path))
    assert report["fmax_mhz"] == {"$glbnet$clk": 51.5}
    util = report["utilization"]
    assert util["lut4"] == {"used": 1234, "available": 83640, "percent": 1.5}
    assert util["bram"]["used"] == 12 and util["dsp"] == {"used": 0, "available": 156,
                                                          "percent": 0.0}
    assert "EHXPLLL" not in util["cells"] and "DP16KD" in util["cells"]
    path = report["critical_path"]
    # The longest of the listed paths, split into logic and routing.
    assert (path["delay_ns"], path["logic_ns"], path["routing_ns"]) == (14.1, 4.6, 9.5)
    assert (path["start_cell"], path["end_cell"], path["logic_levels"]) == ("bank", "mul", 1)
    assert path["sources"] == ["hw/pe.py:250", "hw/fconv.py:30"]
    assert path["slowest_nets"][0] == {"net": "rdata[3]", "delay_ns": 7.5}


def test_empty_path_summary():
    summary = critical_path_summary({"path": []})
    assert summary["steps"] == 0 and summary["start_cell"] is None


@pytest.mark.slow
def test_tiny_bitstream_build(tmp_path):
    """A real build of the self-test of a 2x2 core: a bitstream and its report."""
    from chrysalis.gen.spec.config import PRESETS, with_overrides
    config = with_overrides(PRESETS["tiny"], {"core.scratchpad_words": 2048,
                                              "pe.act_words": 256, "pe.weight_words": 512})
    out = Path("build/tests/board_tiny")
    result = board_flow.build_board(config, out, sizes=(64, 8, 10), batch=2, progress=False,
                                    log=lambda line: None)
    assert Path(result["bitstream"]).stat().st_size > 100_000
    # The classic LUT mapper between synth_ecp5's halves.
    assert "synth_ecp5 -run :map_luts -top top" in (out / "top.ys").read_text()
    assert "abc -lut 4" in (out / "top.ys").read_text()
    # The memories' read registers taken out after reading, for no_rw_check to hold.
    assert f"read_rtlil top.il\n{board_flow.SCRIPT_AFTER_READ}\n" in \
        (out / "top.ys").read_text()
    assert f"--router {board_flow.NEXTPNR_ROUTER}" in (out / "build_top.sh").read_text()
    assert result["nextpnr_router"] == board_flow.NEXTPNR_ROUTER
    # The hard-register pass ran between Yosys and nextpnr (the tiny preset's PEs read
    # their banks into logic, so it may find no block RAM port to change).
    assert "-m chrysalis.gen.flows.hard_registers top.json" in \
        (out / "build_top.sh").read_text()
    assert set(result["hard_registers"]) == {"bram_ports", "mul_inputs", "mul_outputs",
                                             "flip_flops"}
    saved = json.loads((out / "top.board.json").read_text())
    assert saved == json.loads(json.dumps(result))
    util = result["utilization"]
    assert util["lut4"]["used"] > 1000 and util["bram"]["used"] >= 1
    assert result["fmax_min_mhz"] > 0 and result["critical_path"]["steps"] > 0


def test_collect_a_finished_build(tmp_path):
    """The result of a build directory: the report parsed, the step times from the files'
    times, JSON written beside the bitstream."""
    import os
    from chrysalis.gen.spec.config import PRESETS, with_overrides
    config = with_overrides(PRESETS["tiny"], {"core.scratchpad_words": 2048,
                                              "pe.act_words": 256, "pe.weight_words": 512})
    write_report(tmp_path)
    with pytest.raises(board_flow.BoardError, match="top.json is missing"):
        board_flow.collect_board(config, tmp_path, sizes=(64, 8, 10), batch=2)
    for offset, name in enumerate(("top.il", "top.json", "top.config", "top.bit")):
        (tmp_path / name).write_text(name)
        os.utime(tmp_path / name, (1000 + 10 * offset ** 2, 1000 + 10 * offset ** 2))
    result = board_flow.collect_board(config, tmp_path, sizes=(64, 8, 10), batch=2, runs=2)
    assert result["seconds"] == {"elaborate": None, "synthesis": 10.0,
                                 "place_and_route": 30.0, "bitstream": 50.0,
                                 "toolchain": 90.0}
    assert (result["fmax_min_mhz"], result["meets_clock"], result["meets_target"]) == \
        (51.5, True, False)
    assert (result["operand"], result["array"], result["scratchpad_words"]) == ("bf16", "2x2",
                                                                                2048)
    assert len(result["selftest"]["golden"]) == 2
    assert (result["bitstream_bytes"], result["bitstream_sha256"]) == (
        len("top.bit"), hashlib.sha256(b"top.bit").hexdigest())
    assert json.loads((tmp_path / "top.board.json").read_text()) == result
    # The router is the build script's: nextpnr's default when it names none.
    assert result["nextpnr_router"] == "router1"
    (tmp_path / "build_top.sh").write_text(
        'set -e\n"$NEXTPNR_ECP5" --seed 1 --router router2 --log top.tim --85k\n')
    assert board_flow.collect_board(config, tmp_path, sizes=(64, 8, 10), batch=2,
                                    runs=2)["nextpnr_router"] == "router2"
    # What the hard-register pass changed is read from the build log: None without its line.
    assert result["hard_registers"] is None
    absorbed = Absorbed(bram_ports=3, mul_inputs=4, mul_outputs=2, flip_flops=48)
    (tmp_path / "top.build.log").write_text(f"{summary(absorbed)}, in top.json\n")
    assert board_flow.collect_board(config, tmp_path, sizes=(64, 8, 10), batch=2,
                                    runs=2)["hard_registers"] == absorbed._asdict()
    with pytest.raises(board_flow.ConfigError, match="board must be one of"):
        board_flow.collect_board(config, tmp_path, board="de10")


def test_the_hard_register_pass_goes_between_yosys_and_nextpnr(tmp_path):
    script = tmp_path / "build_top.sh"
    script.write_text('set -e\n"$YOSYS" -q -l top.rpt top.ys\n"$NEXTPNR_ECP5" --json top.json\n')
    board_flow._add_hard_register_step(script, "top")
    assert script.read_text().splitlines() == [
        "set -e", '"$YOSYS" -q -l top.rpt top.ys',
        '"$PYTHON" -m chrysalis.gen.flows.hard_registers top.json',
        '"$NEXTPNR_ECP5" --json top.json']
    script.write_text('set -e\n"$NEXTPNR_ECP5" --json top.json\n')
    with pytest.raises(board_flow.BoardError, match="no Yosys step"):
        board_flow._add_hard_register_step(script, "top")
