"""Per-layer mapping (after DEEPMATRIX) against one uniform mapping, on VGG-16 and ResNet-18.

For each network and config, one training step (batch 16, one core) is modelled
(``gen.perf``) with three tilings:

* **per layer**: each layer's best tiling and loop order (``gen.perf.mapping.optimize``);
* **best uniform**: the single tiling, clipped to each layer, that is best for the whole
  network (``gen.perf.mapping.uniform_mapping``): the strongest uniform baseline;
* **compiler**: the tiling rule of ``sim.compile.compiler`` extended to any size
  (``gen.perf.layer.fit_mapping``: whole rows of W as far as the weight bank holds,
  whole activation columns if they fit).

DEEPMATRIX reports 1.4-2.8x over a uniform mapping.

    .venv/bin/python benchmarks/mapping.py

Writes ``benchmarks/results/mapping.{json,md}``.
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import get_preset, with_overrides  # noqa: E402
from chrysalis.gen.perf.mapping import mapping_gain, partition  # noqa: E402
from chrysalis.gen.spec.networks import get_network  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = {
    "default 4x4": get_preset("default"),
    "16x16, 16 KB/PE, AXI 256": with_overrides(get_preset("default"), {
        "name": "lac16", "core.rows": 16, "core.cols": 16, "pe.weight_words": 2048,
        "pe.act_words": 2048, "core.scratchpad_words": 131072,
        "host.axi_data_width": 256}),
}
NETWORKS = ("vgg16", "resnet18", "vgg16-cifar10", "resnet18-cifar10")
BATCH = 16


def main():
    rows = []
    for cname, config in CONFIGS.items():
        for name in NETWORKS:
            start = time.perf_counter()
            g = mapping_gain(config, get_network(name), BATCH)
            row = {"config": cname, "network": name, "batch": BATCH,
                   "per_layer_cycles": g["per_layer_cycles"],
                   "per_layer_utilization": g["per_layer_utilization"],
                   "uniform_cycles": g["uniform_cycles"],
                   "uniform_utilization": g["uniform_utilization"],
                   "uniform": vars(g["uniform"]), "compiler_cycles": g["default_cycles"],
                   "gain_over_uniform": g["gain"], "gain_over_compiler": g["gain_over_default"],
                   "mappings_evaluated": g["evaluated"],
                   "per_layer": [vars(m) for m in g["per_layer"]],
                   "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(f"  {cname} {name}: per layer {row['per_layer_utilization']:.1%} "
                  f"utilization; x{row['gain_over_uniform']:.2f} over the best uniform, "
                  f"x{row['gain_over_compiler']:.2f} over the compiler's tiling "
                  f"({row['seconds']} s)", flush=True)
    lines = ["| config | network | per-layer cycles | utilization | best uniform tile "
             "(tm x tn x tb, order) | uniform cycles | gain over uniform | compiler cycles | "
             "gain over compiler |", "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        u = r["uniform"]
        lines.append(f"| {r['config']} | {r['network']} | {r['per_layer_cycles']:.4g} | "
                     f"{r['per_layer_utilization']:.1%} | {u['tm']} x {u['tn']} x {u['tb']}, "
                     f"{u['order']} | {r['uniform_cycles']:.4g} | "
                     f"{r['gain_over_uniform']:.2f}x | {r['compiler_cycles']:.4g} | "
                     f"{r['gain_over_compiler']:.2f}x |")
    text = "\n".join(lines) + "\n"
    # The split of each layer across cores (model or data parallel) on a 4-core cluster.
    cluster = with_overrides(CONFIGS["default 4x4"], {"name": "ring4", "cluster.cores": 4,
                                                      "cluster.link_width": 128})
    plines = ["| network | per-layer split (m: rows, d: samples) | cycles | all model "
              "parallel | all data parallel | gain |", "|---|---|---:|---:|---:|---:|"]
    splits = []
    for name in NETWORKS:
        p = partition(cluster, get_network(name), BATCH)
        splits.append({"network": name, **p})
        plines.append(f"| {name} | {''.join(s[0] for s in p['splits'])} | {p['cycles']:.4g} | "
                      f"{p['model_cycles']:.4g} | {p['data_cycles']:.4g} | {p['gain']:.2f}x |")
        print(f"  partition {name}: x{p['gain']:.2f}", flush=True)
    ptext = "\n".join(plines) + "\n"
    print(text)
    print(ptext)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mapping.json").write_text(json.dumps({"mappings": rows, "partitions": splits},
                                                     indent=1) + "\n")
    (RESULTS / "mapping.md").write_text(
        f"Per-layer mapping vs one uniform mapping, one training step, batch {BATCH}, one "
        "core, modelled (`gen.perf`, `gen.perf.mapping`); `benchmarks/mapping.py`. Layers larger "
        "than the local stores use the modelled reduction and batch splits "
        "(docs/perf_model.md). Utilization is useful MACs over PEs x cycles, the useful MACs "
        "counted as CATERPILLAR counts them: forward, dX (none for the first layer) and dW; "
        "the weight update is not a MAC.\n\n" + text + "\nSplit of each layer across 4 cores of the "
        "default config on a 128-bit ring (`gen.perf.mapping.partition`, modelled; the cluster "
        "model is held to Verilator runs in `benchmarks/cluster.py`), against every layer split the same way:\n\n" + ptext)
    return 0


if __name__ == "__main__":
    sys.exit(main())
