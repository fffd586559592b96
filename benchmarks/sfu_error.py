"""Error of the special functions (``sim.golden.sfu.exp``, ``sim.golden.sfu.reciprocal``) vs float64.

The golden model is bit-exact with the RTL (``hw/sfu.py``), so its error is the hardware's.
The reference is NumPy's float64 ``np.exp`` and ``1 / x``; for every argument the script
measures

* the distance in fp32 steps (ulps) from the reference rounded to fp32 (NumPy's RNE
  rounding, with this project's flush below 2**-126 and saturation above the largest
  value): 0 means correctly rounded;
* the share of correctly rounded results among the normal ones (below);
* the error ``|y - exact|`` in ulps of the exact value (a fraction; below 1 means the result
  is one of the two fp32 neighbours of the exact value, i.e. faithfully rounded), over the
  arguments whose exact result is a normal fp32 below the largest value.

Sweeps:

* ``exp_uniform``: 10**7 equally spaced arguments in [-104, 89.5] (softmax arguments are
  at most 0; exp flushes below about -87.34 and saturates above about 89.42);
* ``reciprocal_all_mantissas``: every one of the 2**23 significands in [1, 2); the
  reciprocal's error depends on the significand only (the exponent is exact);
* ``exp_every_float`` (``--exhaustive``, a few minutes): every fp32 argument with
  2**-26 <= |x| and -104 <= x <= 89.5 (about 5.6·10**8). Below 2**-26 the result is exactly
  1.0, which is also the correctly rounded result.

    .venv/bin/python benchmarks/sfu_error.py [--exhaustive] [-j 2]

Writes ``benchmarks/results/sfu_error.json`` and ``sfu_error.md``.
"""

import argparse
import concurrent.futures
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.formats import FP32  # noqa: E402
from chrysalis.sim.golden import sfu  # noqa: E402
from chrysalis.sim.golden.numerics import to_float  # noqa: E402
from chrysalis.sim.golden.reference import round_fp32  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CHUNK = 1 << 21
_U = np.uint64


def _stats(xs, got, exact):
    """Partial statistics of one chunk (merged by :func:`_merge`)."""
    ref = round_fp32(exact)
    mag = lambda bits: (bits & _U(0x7FFFFFFF)).astype(np.int64)  # noqa: E731
    same_sign = ((got ^ ref) >> _U(31) == 0) | ((mag(got) == 0) & (mag(ref) == 0))
    steps = np.where(same_sign, np.abs(mag(got) - mag(ref)), 1 << 40)
    normal = (np.abs(exact) >= FP32.min_normal) & (np.abs(exact) < FP32.max_value)
    value = to_float(got[normal], FP32)
    e = exact[normal]
    ulp = np.ldexp(1.0, (np.floor(np.log2(np.abs(e))) - 23).astype(np.int32))
    frac = np.abs(value - e) / ulp
    worst = int(np.argmax(steps))
    worst_frac = int(np.argmax(frac)) if frac.size else 0
    return {
        "points": int(xs.size),
        "normal": int(normal.sum()),
        "correctly_rounded": int((steps[normal] == 0).sum()),
        "max_steps": int(steps[worst]),
        "worst_steps_x": int(xs[worst]),
        "sum_steps_normal": int(steps[normal].sum()),
        "max_ulp": float(frac[worst_frac]) if frac.size else 0.0,
        "worst_ulp_x": int(xs[normal][worst_frac]) if frac.size else 0,
        "sum_ulp": float(frac.sum()),
        "flush_or_saturate_disagreements": int((~normal & (steps > 1)).sum()),
    }


def _merge(parts):
    total = {key: 0 for key in ("points", "normal", "correctly_rounded", "sum_steps_normal",
                                "flush_or_saturate_disagreements")}
    total["sum_ulp"] = 0.0
    total.update(max_steps=-1, max_ulp=-1.0)
    for part in parts:
        for key in ("points", "normal", "correctly_rounded", "sum_steps_normal", "sum_ulp",
                    "flush_or_saturate_disagreements"):
            total[key] += part[key]
        if part["max_steps"] > total["max_steps"]:
            total["max_steps"], total["worst_steps_x"] = part["max_steps"], part["worst_steps_x"]
        if part["max_ulp"] > total["max_ulp"]:
            total["max_ulp"], total["worst_ulp_x"] = part["max_ulp"], part["worst_ulp_x"]
    return total


def _chunk(task):
    """Statistics of one chunk: ``(function, kind, lo, hi)``."""
    function, kind, lo, hi = task
    if kind == "linspace":          # (start value, stop value, count, first index, last)
        start, stop, count = lo
        index = np.arange(hi[0], hi[1])
        x = (start + (stop - start) * index / (count - 1)).astype(np.float32)
        xs = x.view(np.uint32).astype(_U)
    else:                            # a range of bit patterns
        xs = np.arange(lo, hi, dtype=_U)
    x64 = to_float(xs, FP32)
    if function == "exp":
        got, exact = sfu.exp(xs), np.exp(x64)
    else:
        got, exact = sfu.reciprocal(xs), 1 / x64
    return _stats(xs, got, exact)


def _bit_ranges(lo, hi):
    return [(lo + start, min(lo + start + CHUNK, hi)) for start in range(0, hi - lo, CHUNK)]


def sweeps(exhaustive):
    """``name -> (function, description, tasks)``."""
    out = {}
    count = 10 ** 7
    out["exp_uniform"] = ("exp", f"{count} equally spaced x in [-104, 89.5]", [
        ("exp", "linspace", (-104.0, 89.5, count), (start, min(start + CHUNK, count)))
        for start in range(0, count, CHUNK)])
    out["reciprocal_all_mantissas"] = ("reciprocal", "all 2^23 significands in [1, 2)", [
        ("reciprocal", "bits", lo, hi) for lo, hi in _bit_ranges(0x3F800000, 0x40000000)])
    if exhaustive:
        tiny = int(np.float32(2.0 ** -26).view(np.uint32))
        top = int(np.float32(89.5).view(np.uint32))
        bottom = int(np.float32(104.0).view(np.uint32))
        ranges = _bit_ranges(tiny, top + 1) + _bit_ranges(0x80000000 + tiny,
                                                          0x80000000 + bottom + 1)
        out["exp_every_float"] = ("exp", "every fp32 x in [-104, -2^-26] and [2^-26, 89.5]",
                                  [("exp", "bits", lo, hi) for lo, hi in ranges])
    return out


def row(name, function, description, total, seconds):
    return {
        "sweep": name,
        "function": function,
        "arguments": description,
        "points": total["points"],
        "normal_results": total["normal"],
        "max_ulps_from_correctly_rounded": total["max_steps"],
        "worst_x": f"{total['worst_steps_x']:#010x}",
        "correctly_rounded_fraction": round(total["correctly_rounded"] / max(total["normal"], 1),
                                            6),
        "max_error_ulp": round(total["max_ulp"], 4),
        "worst_error_x": f"{total['worst_ulp_x']:#010x}",
        "mean_error_ulp": round(total["sum_ulp"] / max(total["normal"], 1), 4),
        "flush_or_saturate_disagreements": total["flush_or_saturate_disagreements"],
        "seconds": round(seconds, 1),
    }


def table(rows):
    lines = ["| function | arguments | points | max ulps from correctly rounded | "
             "correctly rounded (normal results) | max error (ulp of exact) | mean error (ulp) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['function']} | {r['arguments']} | {r['points']} | "
                     f"{r['max_ulps_from_correctly_rounded']} | "
                     f"{100 * r['correctly_rounded_fraction']:.2f}% | {r['max_error_ulp']:.3f} | "
                     f"{r['mean_error_ulp']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exhaustive", action="store_true",
                        help="also every fp32 exp argument in the range (a few minutes)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="processes (default 2)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for name, (function, description, tasks) in sweeps(args.exhaustive).items():
            start = time.perf_counter()
            parts = list(tqdm(pool.map(_chunk, tasks), total=len(tasks), desc=name,
                              file=sys.stderr))
            rows.append(row(name, function, description, _merge(parts),
                            time.perf_counter() - start))
    text = table(rows)
    print(text, end="")
    (RESULTS / "sfu_error.json").write_text(json.dumps({
        "command": "benchmarks/sfu_error.py" + (" --exhaustive" if args.exhaustive else ""),
        "numpy": np.__version__, "python": platform.python_version(),
        "rows": rows}, indent=2, sort_keys=True) + "\n")
    (RESULTS / "sfu_error.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
