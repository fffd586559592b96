"""Energy efficiency (GFLOPS/W) of training CATERPILLAR's MNIST-shaped MLPs, by the model.

CATERPILLAR (Li & Pedram, ASAP 2017) reports 177 GFLOPS/W at over 80% utilization for SGD
on small networks and 211 GFLOPS/W at over 90% for continuous propagation on large ones
(45 nm, analytical). Here the same kind of machine -- 16x16 PEs per core, 2048 + 2048 words
of local store per PE (an 8 KB weight bank of fp32 master weights and a 4 KB activation bank
of fp16 words; CATERPILLAR has 16 KB), a 512 KB scratchpad (128 Ki words), fp16 operands -- is
modelled (``gen.perf``: cycles from the closed forms validated against the RTL, energy from
``gen.perf.energy``'s 45 nm table; clusters are modelled, not in RTL) training the MLPs in SGD
(batch 1, model parallel over the cores), minibatch (MBGD, model parallel) and continuous
propagation (CP), with as many cores as the weights need to stay in the PE banks, each
with the SGD update its program runs by default (``gen.perf.network.default_update``: fused
into the weight gradient; a layer whose batch is split over tiles keeps the separate
update).

Useful MACs are counted as CATERPILLAR counts them: forward, dX (none for the first layer)
and dW; the weight update is not a MAC. GFLOPS/W is 2 FLOPs per useful MAC over the
modelled dynamic energy, and pJ per useful MAC the step's energy over them (every event of
the step included: any update pass, loads, DMA, the loss gradient). The PEs' operand reads
are those the compute engine does not hold (``docs/energy.md``, *Held operands*).

The activation banks hold fp16 words (``hw.pe``), priced as such (``docs/energy.md``). One
what-if, priced with the same table (a 16-bit access at half a 32-bit one), not built: the
forward and backward weight reads from a 16-bit copy of the weights (``w16``; the update
still reads and writes the fp32 master).

    .venv/bin/python benchmarks/energy_caterpillar.py

Writes ``benchmarks/results/energy_caterpillar.{json,md}``.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec.config import get_preset, with_overrides  # noqa: E402
from chrysalis.gen.spec.networks import get_network  # noqa: E402
from chrysalis.gen.perf import energy, energy_of, network_cost  # noqa: E402
from chrysalis.gen.perf.energy_model import DEFAULT_CLOCK_HZ, operand_reads  # noqa: E402
from chrysalis.gen.perf.mapping import optimize  # noqa: E402
from chrysalis.gen.perf.network import default_update  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

LAC = {"name": "caterpillar_like", "core.rows": 16, "core.cols": 16,
       "pe.weight_words": 2048, "pe.act_words": 2048, "core.scratchpad_words": 131072,
       "mac.operand": "fp16", "host.axi_data_width": 256, "cluster.link_width": 128}

#: The PE local store in words (weight bank + activation bank): CATERPILLAR's 2048 + 2048,
#: and half of it (smaller banks cost less per access; more cores then hold the weights).
STORES = {"2048 + 2048 words": {},
          "1024 + 1024 words": {"pe.weight_words": 1024, "pe.act_words": 1024}}

NETWORKS = ("mnist-500x3", "mnist-1000x3", "mnist-2000x3", "mnist-2500x4")
#: (mode, batch)
RUNS = (("sgd", 1), ("mbgd", 16), ("mbgd", 64), ("cp", 1))


def cores_needed(config, network, mode):
    """Fewest cores (a power of two, at most 64) whose PE weight banks hold each core's row
    panels of the network; for CP one core per layer (None when a layer does not fit a
    core)."""
    R, C = config.core.rows, config.core.cols
    words = sum(-(-l.m // R) * -(-l.n // C) for l in network.layers)
    cores = 1
    while cores < 64 and words > cores * config.pe.weight_words:
        cores *= 2
    if mode == "cp":
        # One stage per layer: every layer must fit a core alone.
        if any(-(-l.m // R) * -(-l.n // C) > config.pe.weight_words for l in network.layers):
            return None
        cores = len(network.layers)
    return cores


def measure():
    rows = []
    for store, overrides in STORES.items():
        rows += _measure(store, with_overrides(get_preset("default"), {**LAC, **overrides}))
    return rows


def _measure(store, base):
    rows = []
    for name in NETWORKS:
        network = get_network(name)
        for mode, batch in RUNS:
            cores = cores_needed(base, network, mode)
            if cores is None:
                print(f"  {name} {mode}: a layer does not fit a core's weight banks "
                      f"(one stage per layer); skipped", flush=True)
                continue
            config = with_overrides(base, {"cluster.cores": cores})
            update = default_update(config, mode)
            try:
                mappings, _ = optimize(config, network, batch, mode, update=update)
            except ValueError:
                mappings = None
            result = network_cost(config, network, batch, mode, mappings, update=update)
            table = energy.load(config=config)
            cost = energy_of(config, result, table)
            shares = {k: v / cost["total_pj"] for k, v in cost["per_event"].items() if v}
            what_if = _what_ifs(config, result, table, cost)
            row = {"store": store, "network": name, "mode": mode, "batch": result["batch"],
                   "cores": cores, "update": update,
                   "cycles": result["cycles"], "utilization": result["utilization"],
                   "weights_resident": result["weights_resident"],
                   "on_chip": result["on_chip"], "pj_per_mac": cost["pj_per_mac"],
                   "gflops_per_watt": cost["gflops_per_watt"], "watts": cost["watts"],
                   "energy_shares": shares,
                   "pj_per_mac_by_event": {k: v / result["useful_macs"]
                                           for k, v in cost["per_event"].items() if v},
                   **what_if}
            rows.append(row)
            print(f"  {store} {name} {mode} batch {row['batch']} on {cores} cores: utilization "
                  f"{row['utilization']:.1%}, {row['gflops_per_watt']:.1f} GFLOPS/W "
                  f"({row['pj_per_mac']:.2f} pJ per useful MAC)", flush=True)
    return rows


def _what_ifs(config, result, table, cost):
    """GFLOPS/W with the forward and backward weight reads 16-bit (``w16``): each such
    read at half its 32-bit energy."""
    pes = config.core.rows * config.core.cols
    reads = operand_reads(result["phases"], result.get("core_copies", 1))
    weight_reads = reads[0] * pes * table.weight_bank_read
    w16 = cost["total_pj"] - weight_reads / 2
    macs, cycles = result["useful_macs"], result["cycles"]
    return {"gflops_per_watt_w16": energy.gflops_per_watt(w16, macs, cycles,
                                                          DEFAULT_CLOCK_HZ)}


def table(rows):
    lines = ["| local store | network | mode | batch | cores | utilization | weights in PEs | "
             "GFLOPS/W | pJ per useful MAC | largest energy shares | what-if: 16-bit "
             "weight reads |",
             "|---|---|---|---:|---:|---:|---|---:|---:|---|---:|"]
    for r in rows:
        top = sorted(r["energy_shares"].items(), key=lambda kv: -kv[1])[:3]
        shares = ", ".join(f"{k} {v:.0%}" for k, v in top)
        lines.append(f"| {r['store']} | {r['network']} | {r['mode']} | {r['batch']} | "
                     f"{r['cores']} | "
                     f"{r['utilization']:.1%} | {'yes' if r['weights_resident'] else 'no'} | "
                     f"{r['gflops_per_watt']:.1f} | {r['pj_per_mac']:.2f} | {shares} | "
                     f"{r['gflops_per_watt_w16']:.1f} |")
    return "\n".join(lines) + "\n"


def main():
    print("CATERPILLAR-like machine: 16x16 PEs per core, 2048 + 2048 words per PE, "
          "512 KB scratchpad, fp16 operands")
    rows = measure()
    text = table(rows)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "energy_caterpillar.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "energy_caterpillar.md").write_text(
        "Modelled energy efficiency of training MNIST-shaped MLPs on a CATERPILLAR-like "
        "machine (16x16 PEs per core, 2048 + 2048 words per PE -- and 1024 + 1024 --: a "
        "weight bank of fp32 words and an activation bank of fp16 words, so 12 KB -- and "
        "6 KB -- where CATERPILLAR has 16 KB; 512 KB scratchpad, fp16 "
        "operands, fp32 accumulation; 45 nm table of `gen/perf/energy_45nm.toml`, dynamic "
        "energy only); `benchmarks/energy_caterpillar.py`. Useful MACs are counted as "
        "CATERPILLAR counts them: forward, dX (none for the first layer) and dW; the weight "
        "update is not a MAC. GFLOPS/W is 2 FLOPs per useful MAC over the step's dynamic "
        "energy, and pJ per useful MAC that energy (every event of the step included) over "
        "the useful MACs. Every step runs the update its program runs by default: fused "
        "into the weight gradient (plain SGD), so no update pass is left unless a layer's "
        "batch is split over tiles. The PEs' operand reads are those the compute engine "
        "does not hold (a MAC whose stationary or streaming operand is the previous MAC's "
        "does not read it again; `docs/energy.md`, *Held operands*). The activation "
        "banks hold fp16 words (the operand format), each access priced at 16 bits of a "
        "bank of that size. The what-if column is not built: the forward and backward "
        "weight reads from a 16-bit copy of the weights (at half the 32-bit energy; the "
        "update still reads and writes the fp32 master). CATERPILLAR reports 177 "
        "GFLOPS/W (SGD, small nets) and 211 GFLOPS/W (CP, large nets). The machine is "
        "modelled; the cluster model is held to Verilator runs of 2 to 4 small cores "
        "(`benchmarks/cluster.py`).\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
