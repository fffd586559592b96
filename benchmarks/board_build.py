"""The board build of a config on the ULX3S-85F: utilization, Fmax against the 100 MHz target
and the critical path, from a real Yosys + nextpnr-ecp5 + ecppack run (``gen.flows.board``).

Writes ``benchmarks/results/board_build.json`` and ``.md`` and prints the Markdown. The
build of the default 4x4 core takes about 1 h 45 min on two cores; the bitstream and every
build file stay in ``--out``.

    .venv/bin/python benchmarks/board_build.py        # 32768 words, barrel SFU, 10 MHz
    .venv/bin/python benchmarks/board_build.py --set core.scratchpad_words=65536
    .venv/bin/python benchmarks/board_build.py --from-build build/board/bench/top.board.json
    .venv/bin/python benchmarks/board_build.py --collect --simulate   # a build already done

The default config's 65536-word scratchpad does not fit the 85F's block RAM next to the PE
banks, and with the pipelined special-function unit the core fills 94% of the LUTs and does
not route (``docs/board.md``), so the default run halves the scratchpad and takes the barrel
unit (the same bits, a slower ``LOSS_GRAD``) with ``--set``.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chrysalis.gen.cli.board import DEFAULT_PLL_MHZ, pll_mhz  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SETS = ("core.scratchpad_words=32768", "core.sfu=barrel")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", help="config preset (default: default)")
    parser.add_argument("--set", action="append", dest="overrides", metavar="PATH=VALUE",
                        help=f"config override (default: {' '.join(DEFAULT_SETS)})")
    parser.add_argument("--board", default="ulx3s_85f")
    parser.add_argument("--pll", type=pll_mhz, default=DEFAULT_PLL_MHZ, metavar="MHZ",
                        help=f"clock from the PLL at MHZ (default: {DEFAULT_PLL_MHZ:g}, as "
                             f"`chrysalis board`); off: the 25 MHz board clock")
    parser.add_argument("--out", default="build/board/bench", help="build directory")
    parser.add_argument("--from-build", metavar="JSON",
                        help="write the results of a finished build's top.board.json "
                             "instead of building")
    parser.add_argument("--collect", action="store_true",
                        help="do not build: collect the finished build in --out (made with "
                             "the same --preset, --set, --board and --pll), for a build whose "
                             "Python process ended before its toolchain did")
    parser.add_argument("--simulate", action="store_true",
                        help="also run the self-test of the same config in Amaranth's "
                             "simulator (a few minutes for the default core) and record "
                             "its outcome and cycles")
    parser.add_argument("--results", default=str(RESULTS), help="where the results go")
    args = parser.parse_args(argv)

    if args.from_build:
        result = json.loads(Path(args.from_build).read_text())
        overrides = result.get("overrides", [])
    else:
        from chrysalis.gen.flows.board import build_board, collect_board
        from chrysalis.gen.spec.config import get_preset, parse_override, with_overrides
        overrides = list(args.overrides) if args.overrides else list(DEFAULT_SETS)
        config = with_overrides(get_preset(args.preset),
                                [parse_override(text) for text in overrides])
        if args.collect:
            result = collect_board(config, args.out, board=args.board, pll_mhz=args.pll)
        else:
            result = build_board(config, args.out, board=args.board, pll_mhz=args.pll,
                                 log=lambda line: print(line, flush=True))
        result["overrides"] = overrides
        result["preset"] = args.preset
        result["commit"] = _commit()
        Path(args.out, "top.board.json").write_text(json.dumps(result, indent=1) + "\n")

    if args.simulate:
        result["simulation"] = simulate(result.get("preset", args.preset), overrides)
        print(f"simulated self-test: {result['simulation']}", flush=True)

    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "board_build.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = to_markdown(result, overrides)
    (results / "board_build.md").write_text(markdown)
    print(markdown)
    return 0


def _commit():
    """The commit the build was made from (with ``+changes`` if the tree differs), or None
    outside a git checkout."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hw", "gen", "sim"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty.strip() else "")


def simulate(preset, overrides):
    """The self-test of the config (``hw.board.SelfTest``, no board) in Amaranth's
    simulator: its outcome, the cycles from the doorbell to the interrupt and in all."""
    import time
    from amaranth.sim import Simulator
    from chrysalis.gen.spec.config import get_preset, parse_override, with_overrides
    from chrysalis.hw.board import SelfTest
    from chrysalis.sim.compile.selftest import selftest_image
    config = with_overrides(get_preset(preset), [parse_override(text) for text in overrides])
    started = time.monotonic()
    stored = selftest_image(config)
    dut = SelfTest(stored)
    sim = Simulator(dut)
    sim.add_clock(4e-8)
    out = {}

    async def bench(ctx):
        cycles = 0
        while not (ctx.get(dut.passed) or ctx.get(dut.failed)):
            await ctx.tick()
            cycles += 1
        out.update(passed=bool(ctx.get(dut.passed)), reason=int(ctx.get(dut.reason)),
                   error_code=int(ctx.get(dut.error_code)),
                   run_cycles=int(ctx.get(dut.cycles)), total_cycles=cycles,
                   checksum=f"{ctx.get(dut.result):#018x}",
                   golden=f"{stored.golden[0]:#018x}")

    sim.add_testbench(bench)
    sim.run()
    out["wall_s"] = round(time.monotonic() - started, 1)
    return out


def to_markdown(r, overrides):
    u = r["utilization"]
    lines = [
        f"# Board build: {r['device']} ({r['board']})",
        "",
        f"Config `{r.get('preset', r['config'])}` with `{' '.join(overrides) or 'no overrides'}`: "
        f"{r['array']} PEs, {r['operand']} operands, {r['scratchpad_words']} scratchpad words. "
        f"Design: the on-board self-test (`hw.board.BoardTop`), clocked at "
        f"{r['clock_mhz']:g} MHz ({r['clock_source']}). nextpnr seed {r['nextpnr_seed']}, "
        f"{r.get('nextpnr_router', 'router1')}."
        + (f" Built from commit `{r['commit'][:12]}`." if r.get("commit") else ""),
        "",
        "| resource | used | available | % |",
        "|---|---|---|---|",
    ]
    for key, label in (("lut4", "LUT4 (TRELLIS_COMB)"), ("ff", "FF (TRELLIS_FF)"),
                       ("dsp", "DSP (MULT18X18D)"), ("bram", "BRAM (DP16KD)")):
        lines.append(f"| {label} | {u[key]['used']} | {u[key]['available']} | "
                     f"{u[key]['percent']} |")
    fmax = r["fmax_min_mhz"]
    lines += [
        "",
        f"**Fmax {fmax} MHz** against the {r['target_mhz']:g} MHz target "
        f"({'met' if r['meets_target'] else 'not met'}); the design's clock, "
        f"{r['clock_source']}, is {'met' if r['meets_clock'] else 'NOT met'}.",
        "",
    ]
    path = r["critical_path"]
    if path:
        lines += [
            f"Critical path: {path['delay_ns']} ns = {path['logic_ns']} ns logic + "
            f"{path['routing_ns']} ns routing, {path['logic_levels']} logic levels.",
            "",
            f"- from `{_short(path['start_cell'])}`",
            f"- to `{_short(path['end_cell'])}`",
            f"- through (Amaranth source lines, in path order): "
            f"{', '.join(f'`{s}`' for s in path['sources']) or 'none recorded'}",
            "- slowest nets: " + ", ".join(f"`{_short(n['net'])}` {n['delay_ns']} ns"
                                           for n in path["slowest_nets"]),
            "",
        ]
    sim = r.get("simulation")
    if sim:
        lines += [
            f"The same self-test in Amaranth's simulator: **{'pass' if sim['passed'] else 'FAIL'}**"
            f" (checksum {sim['checksum']}, golden {sim['golden']}); {sim['run_cycles']} cycles "
            f"from the doorbell to the interrupt, {sim['total_cycles']} with the checksum "
            f"walk ({sim['total_cycles'] / r['clock_mhz']:.0f} µs at {r['clock_mhz']:g} MHz).",
            "",
        ]
    seconds = r["seconds"]
    lines += [
        "Build time (s): " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                       for k, v in seconds.items() if v is not None) + ".",
        "",
        f"Bitstream: `{r['bitstream']}`"
        + (f", {r['bitstream_bytes']} bytes, SHA-256 `{r['bitstream_sha256']}`"
           if "bitstream_sha256" in r else "")
        + f". Stored step: {'-'.join(map(str, r['selftest']['sizes']))}"
        f" MLP, batch {r['selftest']['batch']}, {r['selftest']['commands']} commands, "
        f"{r['selftest']['image_bytes']} bytes of on-chip memory.",
        "",
    ]
    return "\n".join(lines)


def _short(name, limit=90):
    name = str(name)
    return name if len(name) <= limit else name[:limit] + "..."


if __name__ == "__main__":
    sys.exit(main())
