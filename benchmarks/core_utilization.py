"""Utilization of a training core in RTL cycles, per phase and per training step.

utilization = useful MACs / (PEs x cycles), with cycles from the core's own counters (the
RTL in Amaranth's simulator) and useful MACs counted as CATERPILLAR counts them (forward,
dX and dW; the weight update is not a MAC):

* forward  ``Y = W X``:        M * N * B MACs, cycles of the FORWARD command;
* dX       ``dX = W^T dY``:    M * N * B MACs, cycles of the BACKWARD command;
* dW       ``dW = dY X^T``:    M * N * B MACs, cycles of WGRAD (its update pass included);
* step: 3 * M * N * B MACs over every cycle of the step (``cycles.total``), loads of X and
  dY into the PEs included.

A layer "k x the array" is M = k * R outputs and N = k * C inputs. Batch 1 is SGD (GEMV);
batch R is a minibatch (GEMM). Every result is also checked bit for bit against the golden
model, so the cycles counted are those of a correct run.

    .venv/bin/python benchmarks/core_utilization.py [--preset default] [--scales 1 4 16]

Writes ``benchmarks/results/core_utilization.{json,md}``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import get_preset, with_overrides  # noqa: E402
from chrysalis.gen.spec.isa import Opcode  # noqa: E402
from chrysalis.sim.golden import core_model as cm  # noqa: E402
from chrysalis.sim.golden import numerics as nx  # noqa: E402
from chrysalis.sim.verify.core_sim import CoreRunner  # noqa: E402
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def sized(config, m, n, batch):
    """``config`` with local stores and scratchpad just large enough (powers of two) for
    one layer: what the simulator holds is what is simulated."""
    def pow2(x):
        return 1 << max(1, (max(1, x) - 1).bit_length())
    R, C = config.core.rows, config.core.cols
    mt, nt = tiles(m, R), tiles(n, C)
    banks = bank_count(R, C)
    lines = 2 * tiles(m, banks) * n + tiles(n, banks) * batch * 2 + tiles(m, banks) * batch * 2
    return with_overrides(config, {"pe.weight_words": pow2(mt * nt),
                                   "pe.act_words": pow2((nt + mt) * batch),
                                   "core.scratchpad_words": pow2(lines * banks)})


def run_layer(config, m, n, batch, seed=1):
    """One layer's training phases on the RTL; returns cycles per command and a check."""
    config = sized(config, m, n, batch)
    R, C = config.core.rows, config.core.cols
    num = cm.CoreNumerics.from_config(config)
    rng = np.random.default_rng(seed)
    w = _f32(rng.standard_normal((m, n)) / np.sqrt(n))
    x = _f32(np.maximum(rng.standard_normal((n, batch)), 0))
    dy = _f32(rng.standard_normal((m, batch)) * 0.1)
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    mw, mx, my = alloc.matrix(m, n, "W"), alloc.matrix(n, batch, "X"), alloc.matrix(m, batch, "Y")
    mdy, mdx = alloc.matrix(m, batch, "dY"), alloc.matrix(n, batch, "dX")
    act_x, act_dy = 0, tiles(n, C) * batch
    lines = lambda mat: dict(sp_base=mat.base, sp_lpc=mat.lines_per_column)

    core = CoreRunner(config)
    for mat, values in ((mw, w), (mx, x), (mdy, dy)):
        core.write(mat, values)
    core.command(op=Opcode.LOAD_W, m=m, n=n, **lines(mw))
    core.command(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act_x, **lines(mx))
    core.command(op=Opcode.FORWARD, m=m, n=n, batch=batch, abase=act_x, flag=1, **lines(my))
    core.read(my)
    core.command(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act_dy, **lines(mdy))
    core.command(op=Opcode.BACKWARD, m=m, n=n, batch=batch, abase=act_dy, flag=1,
                 sp2_base=mx.base, sp2_lpc=mx.lines_per_column, **lines(mdx))
    core.read(mdx)
    core.command(op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=act_x, abase2=act_dy,
                 scalar=int(_f32([-0.05])[0]))
    y, dx = core.run()
    exact = (np.array_equal(y, cm.relu(num, cm.forward(num, w, x)))
             and np.array_equal(dx, cm.relu_mask(num, cm.backward_dx(num, w, dy), x)))
    _, load_x, fwd, load_dy, bwd, wgrad = core.cycles
    return {"load_x": load_x, "forward": fwd, "load_dy": load_dy, "backward": bwd,
            "wgrad": wgrad, "bit_exact": bool(exact), "stall_cycles": core.counters["stall_cycles"]}


def measure(config, scales, batches):
    R, C = config.core.rows, config.core.cols
    pes = R * C
    rows = []
    for scale in scales:
        for batch in batches:
            m, n = scale * R, scale * C
            start = time.perf_counter()
            c = run_layer(config, m, n, batch)
            macs = m * n * batch
            c["total"] = (c["load_x"] + c["forward"] + c["load_dy"] + c["backward"]
                          + c["wgrad"])
            row = {
                "rows": R, "cols": C, "scale": scale, "m": m, "n": n, "batch": batch,
                "useful_macs": 3 * macs,
                "forward": macs / (pes * c["forward"]),
                "dx": macs / (pes * c["backward"]),
                "dw": macs / (pes * c["wgrad"]),
                "step": 3 * macs / (pes * c["total"]),
                "cycles": c, "seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(f"  {m}x{n} batch {batch}: forward {row['forward']:.1%}, dX {row['dx']:.1%}, "
                  f"dW {row['dw']:.1%}, step {row['step']:.1%} "
                  f"(bit-exact: {c['bit_exact']}, {row['seconds']} s)", flush=True)
    return rows


def table(rows):
    lines = ["| layer (M x N) | × array | batch | forward | dX | dW (update pass in its cycles) "
             "| whole step |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['m']} x {r['n']} | {r['scale']}× | {r['batch']} | {r['forward']:.1%} | "
                     f"{r['dx']:.1%} | {r['dw']:.1%} | {r['step']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="PATH=VALUE", help="override a config field, e.g. "
                        "core.reduction=tree (repeatable)")
    parser.add_argument("--name", default="core_utilization",
                        help="stem of the result files (default core_utilization)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="batch sizes (default: 1 and the array's row count)")
    args = parser.parse_args(argv)
    config = get_preset(args.preset)
    if args.overrides:
        from chrysalis.gen.spec.config import parse_override
        config = with_overrides(config, [parse_override(text) for text in args.overrides])
    batches = args.batches or [1, config.core.rows]
    print(f"core {config.core.rows}x{config.core.cols}, MAC latency {config.mac.latency}, "
          f"{config.pe.acc_regs} accumulators per PE, reduction {config.core.reduction!r}")
    rows = measure(config, args.scales, batches)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    text = table(rows)
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)
    return 0 if all(r["cycles"]["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
