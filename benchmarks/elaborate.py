"""Generator scale: time to emit the Verilog of bf16 cores from 4x4 to 32x32.

For each array size, a fresh Python process emits the Verilog of the default config (bf16
operands, fp32 accumulators) with ``core.rows = core.cols = N`` through
:func:`gen.emit.verilog.emit`, which elaborates the Amaranth design and converts it with Yosys
(``amaranth.back.verilog``). Each run reports its wall time, split into elaboration
(``hw.top.build_top`` and Amaranth's ``Fragment.get``, Python) and the rest of ``emit``
(RTLIL generation, Yosys, the sidecar files), the peak memory of the process and the size of
the Verilog. The growth of time with the number of PEs is fitted as ``t = a * PEs^b``.

    .venv/bin/python benchmarks/elaborate.py [--sizes 4 8 16 32] [--scratchpad-words W]

Writes ``benchmarks/results/elaborate.{json,md}``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "build" / "bench" / "elaborate"


def run_one(size, scratchpad_words):
    """Emit one N x N core in this process; print its figures as one JSON line."""
    from amaranth.hdl import Fragment

    from chrysalis.gen.spec.config import get_preset, with_overrides
    from chrysalis.gen.emit.verilog import emit
    from chrysalis.hw import top as hw_top

    overrides = {"core.rows": size, "core.cols": size, "name": f"core{size}x{size}"}
    if scratchpad_words:
        overrides["core.scratchpad_words"] = scratchpad_words
    config = with_overrides(get_preset("default"), overrides)
    start = time.perf_counter()
    # Elaboration alone (a throwaway design: emit elaborates its own).
    Fragment.get(hw_top.build_top(config), None)
    elaborate = time.perf_counter() - start
    start = time.perf_counter()
    files = emit(config, WORK / f"{size}x{size}")
    total = time.perf_counter() - start
    text = files["verilog"].read_text()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"size": size, "pes": size * size, "elaborate_s": round(elaborate, 2),
                      "emit_s": round(total, 2), "peak_rss_mb": round(peak),
                      "verilog_lines": text.count("\n"),
                      "verilog_mb": round(len(text.encode()) / 2**20, 2),
                      "modules": text.count("\nmodule "),
                      "config": config.to_dict()}))


def measure(sizes, scratchpad_words, done=None):
    """Run each size in a fresh process; ``done(rows)`` after each (results so far)."""
    rows = []
    for size in sizes:
        print(f"{size}x{size} ...", flush=True)
        command = [sys.executable, __file__, "--one", str(size)]
        if scratchpad_words:
            command += ["--scratchpad-words", str(scratchpad_words)]
        load = round(os.getloadavg()[0], 1)
        start = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        if finished.returncode != 0:
            tail = finished.stderr.strip().splitlines()[-3:]
            rows.append({"size": size, "pes": size * size, "error": " | ".join(tail)})
            print(f"  failed: {rows[-1]['error']}", flush=True)
        else:
            row = json.loads(finished.stdout.strip().splitlines()[-1])
            row["process_s"] = round(wall, 2)
            row["load_average_at_start"] = load
            rows.append(row)
            print(f"  elaborate {row['elaborate_s']} s, emit {row['emit_s']} s, "
                  f"{row['verilog_lines']} lines, peak {row['peak_rss_mb']} MB", flush=True)
        if done is not None:
            done(rows)
    return rows


def markdown(rows, fits, note):
    from chrysalis.gen.flows.report import markdown_table
    table = markdown_table(
        ("array", "PEs", "elaborate (s)", "emit (s)", "whole process (s)", "load",
         "peak RSS (MB)", "Verilog lines", "Verilog (MB)"),
        [(f"{r['size']}x{r['size']}", r["pes"], r.get("elaborate_s"), r.get("emit_s"),
          r.get("process_s"), r.get("load_average_at_start"), r.get("peak_rss_mb"),
          r.get("verilog_lines"), r.get("verilog_mb")) if "error" not in r else
         (f"{r['size']}x{r['size']}", r["pes"], f"failed: {r['error']}", "", "", "", "", "",
          "")
         for r in rows])
    lines = [note, "", table, "Fitted growth, t = a * PEs^b (least squares in log-log):", ""]
    lines += [f"- {name}: b = {b:.2f}" if b is not None else f"- {name}: not enough points"
              for name, b in fits.items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--scratchpad-words", type=int, default=None,
                        help="override core.scratchpad_words (default: the preset's)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        run_one(args.one, args.scratchpad_words)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / "elaborate.json"
    previous = {}
    if json_path.exists():
        previous = {r["size"]: r for r in json.loads(json_path.read_text()).get("rows", [])}
    note = ("Time to emit the Verilog of the default config (bf16 operands, fp32 "
            "accumulators, MAC latency 6, 1024-word PE banks, 65536-word scratchpad) with "
            "N x N PEs, each in a fresh process on a 2-core machine shared with other work "
            "(`load` is the 1-minute load average when the run started: the times are wall "
            "times and grow with it). `elaborate` is `hw.top.build_top` plus Amaranth's "
            "`Fragment.get` (Python); `emit` is the whole `gen.emit.verilog.emit` (elaboration "
            "again, RTLIL, Yosys' Verilog backend in Amaranth's built-in WebAssembly Yosys, "
            "the sidecar files); `whole process` adds the imports. Reproduce: "
            "`.venv/bin/python benchmarks/elaborate.py` (sizes not run keep their previous "
            "results).")
    if args.scratchpad_words:
        note = note.replace("65536-word", f"{args.scratchpad_words}-word")

    def write(new_rows):
        merged = {**previous, **{r["size"]: r for r in new_rows}}
        rows = [merged[size] for size in sorted(merged)]
        ok = [r for r in rows if "error" not in r]
        fits = {key: fit_exponent([r["pes"] for r in ok], [r[key] for r in ok])
                for key in ("elaborate_s", "emit_s", "verilog_lines")}
        json_path.write_text(json.dumps({"note": note, "rows": rows, "fits": fits},
                                        indent=2, sort_keys=True) + "\n")
        text = markdown(rows, fits, note)
        (RESULTS / "elaborate.md").write_text(text)
        return text

    from chrysalis.gen.flows.report import fit_exponent
    rows = measure(args.sizes, args.scratchpad_words, done=write)
    print(write(rows))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
