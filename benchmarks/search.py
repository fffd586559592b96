"""Architecture search (WHAM-style critical path) against exhaustive search, and the designs
found for CATERPILLAR's area budgets.

1. On ``gen.perf.search.SPACES["small"]`` (648 designs: array rows and columns 4/8/16, 1-8
   cores, 1-4 Ki words per PE bank, AXI 64-256 bits, bus or tree reduction), for an
   MNIST-shaped MLP trained with minibatches, under CATERPILLAR's smaller budget
   (103.2 mm² at 45 nm, ``gen.perf.area_model``): the heuristic's best design and evaluations
   against the optimum of an exhaustive search, for throughput and for throughput per watt.
2. For the budgets of CATERPILLAR's two chips (103.2 and 178.9 mm²), the design the
   heuristic finds on the large space, next to CATERPILLAR-like machines (16x16 PEs with
   16 KB each and a 512 KB scratchpad per core, and 4x4 cores, as many as fit the budget;
   CATERPILLAR's exact configurations are not reproduced here).

Every figure is modelled (``gen.perf``; clusters are not in RTL).

    .venv/bin/python benchmarks/search.py [--skip-exhaustive]

Writes ``benchmarks/results/search.{json,md}``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.networks import get_network  # noqa: E402
from chrysalis.gen.perf.search import (
    SPACES, evaluate_design, exhaustive, format_design, heuristic)

RESULTS = ROOT / "benchmarks" / "results"
NETWORK, BATCH, MODE = "mnist-500x3", 16, "mbgd"
BUDGETS = (103.2, 178.9)


def caterpillar_like(budget, network, objective):
    """The largest cluster of CATERPILLAR-like cores that fits ``budget`` mm²."""
    out = []
    for rows, words in ((16, 2048), (4, 2048)):
        best = None
        for cores in (1, 2, 4, 8, 16, 32):
            design = {"core.rows": rows, "core.cols": rows, "cluster.cores": cores,
                      "pe.words": words, "host.axi_data_width": 256 if rows == 16 else 128,
                      "core.reduction": "bus", "cluster.link_width": 128}
            result = evaluate_design(design, network, BATCH, MODE, {"area_mm2": budget},
                                     objective)
            if result["feasible"]:
                best = result
        if best is not None:
            out.append(best)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-exhaustive", action="store_true")
    args = parser.parse_args(argv)
    network = get_network(NETWORK)
    out = {"network": NETWORK, "batch": BATCH, "mode": MODE, "comparison": [],
           "budgets": []}
    lines = ["| objective | heuristic evaluations | exhaustive evaluations | fewer | "
             "heuristic best | optimum | gap |", "|---|---:|---:|---:|---|---|---:|"]
    for objective in ("throughput", "perf_per_watt"):
        budget = {"area_mm2": BUDGETS[0]}
        full = None
        if not args.skip_exhaustive:
            start = time.perf_counter()
            full = exhaustive(network, BATCH, MODE, SPACES["small"], budget, objective,
                              progress=True)
            full["seconds"] = time.perf_counter() - start
            print(f"{objective}: exhaustive {full['evaluations']} evaluations: "
                  + format_design(full["best"]), flush=True)
        for top_k in (1, 2):
            start = time.perf_counter()
            found = heuristic(network, BATCH, MODE, SPACES["small"], budget, objective,
                              top_k=top_k)
            found["seconds"] = time.perf_counter() - start
            row = {"objective": objective, "top_k": top_k, "heuristic": found,
                   "exhaustive": full}
            print(f"  top-{top_k}: {found['evaluations']} evaluations: "
                  + format_design(found["best"]), flush=True)
            if full is not None:
                gap = 1 - found["best"]["score"] / full["best"]["score"]
                ratio = full["evaluations"] / found["evaluations"]
                row.update(gap=gap, fewer=ratio)
                print(f"    gap {gap:.2%}, {ratio:.1f}x fewer evaluations", flush=True)
                lines.append(f"| {objective} (top-{top_k}) | {found['evaluations']} | "
                             f"{full['evaluations']} | {ratio:.1f}x | "
                             f"{format_design(found['best'])} | "
                             f"{format_design(full['best'])} | {gap:.2%} |")
            out["comparison"].append(row)
    blines = ["| budget (mm²) | design | samples/s | utilization | area (mm²) | W | "
              "GFLOPS/W |", "|---:|---|---:|---:|---:|---:|---:|"]
    for budget in BUDGETS:
        # Three designs kept per round: with two, the search at 103.2 mm² follows the
        # critical path into 32 cores of 4 x 16 PEs that the DMA limits (8.3e4 samples/s,
        # worse than the CATERPILLAR-like cluster) and stops there.
        found = heuristic(network, BATCH, MODE, SPACES["large"], {"area_mm2": budget},
                          "throughput", top_k=3)
        rivals = caterpillar_like(budget, network, "throughput")
        out["budgets"].append({"area_mm2": budget, "searched": found, "caterpillar_like": rivals})
        for label, r in [("searched (%d evaluations)" % found["evaluations"], found["best"])] + \
                [("CATERPILLAR-like", r) for r in rivals]:
            d = r["design"]
            text = (f"{label}: {d['core.rows']}x{d['core.cols']} x {d['cluster.cores']}, "
                    f"{d['pe.words']} words/bank, AXI {d['host.axi_data_width']}, "
                    f"{d['core.reduction']}")
            blines.append(f"| {budget} | {text} | {r['samples_per_second']:.4g} | "
                          f"{r['utilization']:.1%} | {r['area_mm2']:.1f} | {r['watts']:.2f} | "
                          f"{r['gflops_per_watt']:.1f} |")
            print(f"  {budget} mm²: " + format_design(r), flush=True)
    text = "\n".join(lines) + "\n"
    btext = "\n".join(blines) + "\n"
    print(text)
    print(btext)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    (RESULTS / "search.md").write_text(
        f"Architecture search, {NETWORK} trained with batch {BATCH} ({MODE}), modelled "
        "(`gen.perf`, `gen.perf.area_model` at 45 nm, 1 GHz); `benchmarks/search.py`. "
        "Utilization and GFLOPS/W count useful MACs as CATERPILLAR counts them: forward, dX "
        "(none for the first layer) and dW; the weight update is not a MAC. GFLOPS/W is 2 "
        "FLOPs per useful MAC over the modelled dynamic energy (45 nm table).\n\n"
        f"Heuristic (critical path, top-1 and top-2) vs exhaustive on the small space "
        f"({BUDGETS[0]} mm²):\n\n" + text
        + "\nCATERPILLAR's budgets (large space for the search):\n\n" + btext)
    return 0


if __name__ == "__main__":
    sys.exit(main())
