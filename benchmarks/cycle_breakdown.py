"""Where the cycles of a training step go, by the model: useful MACs and every loss.

Every cycle of a modelled step is put in exactly one category, so each column sums to 100%
of the PE-cycles (PEs x cores x cycles). The first category is the utilization itself:
useful MACs counted as CATERPILLAR counts them -- forward, dX (none for the first layer) and
dW; the weight update is not a MAC -- over PEs x cores x cycles.

The steps (``gen.perf``, whose core commands are ``sim.golden.core_counts``' closed forms,
exact against the RTL):

``demo``
    The 64-32-10 digits MLP, batch 8, on the ``default`` preset (one 4x4 core): the command
    stream ``chrysalis train`` and ``chrysalis demo`` run for one SGD step, weights kept in
    the PEs between steps (``gen.perf.mlp_step`` with ``store_every_step=False``), with the
    update those commands default to on this core (fused into ``WGRAD``,
    ``sim.compile.compiler.resolve_update``).
``sgd``, ``mbgd``, ``cp``
    mnist-500x3 (784-500-500-500-10) on CATERPILLAR's machine shape (16x16 PEs per core,
    2048-word banks, fp16 operands, 128-bit ring; ``benchmarks/energy_caterpillar.py``'s
    ``LAC``), as ``benchmarks/cluster.py`` models it: SGD (batch 1) and MBGD (batch 16)
    model parallel on as many cores as hold the weights, CP one core per layer
    (``gen.perf.network_cost`` with ``gen.perf.mapping.optimize``'s mappings), with the
    update the cluster programs run by default (``gen.perf.network.default_update``: fused
    into ``WGRAD`` in model parallel and CP; a layer under a batch split keeps the separate
    update).

How a core command's cycles split (``sim.golden.core_counts``; ``L`` the MAC latency, ``G``
the outputs of an accumulator group, ``P`` a group's compute cycles, ``D`` its drain):

* ``FORWARD`` / ``BACKWARD`` / ``WGRAD``: the useful MACs' share of their MAC slots; the
  slots of PEs that hold padding (sizes not multiples of the array); the empty outputs of
  the last accumulator group; ``WGRAD``'s separate update pass (none when fused; one slot per weight per PE,
  group-rounded); ``FORWARD`` / ``BACKWARD``'s exposed drain (the last group's ``D + 1``
  and, where ``D + 1 > P``, the wait for each drain); and the command's end, ``L + 6``
  (one cycle after the last slot, then the ``L + 5`` finish countdown).
* Movers (``LOAD_COL``, ``LOAD_ROW``, ``LOAD_W``, ``STORE_W``): their iterations, and their
  end, ``L + 5``.
* ``LOSS_GRAD``: all of it. DMA commands: their DMA cycles, less those run beside a core
  command. Every command: the controller's fetch and checks (``1 + fetch + 3`` cycles; a
  run adds its ``START``), less what the fetch ahead hides behind the core command before
  (``gen.perf.network.cluster_stream_cost``, with and without the DMA overlap).

On a cluster: the collectives' cycles (every core waits for them); in model parallel the
work every core repeats (the output layer, replicated for the softmax) and the fetches the
controller hides behind the cores' work are taken out; in CP, each core's idle time
against the slowest stage (stage imbalance), and the rest of the tick beyond the slowest
stage and the sends: the controller's in-order dispatch, with the DMA and the fetches.

    .venv/bin/python benchmarks/cycle_breakdown.py

Writes ``benchmarks/results/cycle_breakdown.{json,md}``. The script checks that every
column adds up to the model's cycles and that its useful share equals the model's
utilization, and stops with an error if not.
"""

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from chrysalis.gen.spec.checks import ceil_div, ceil_log2  # noqa: E402
from chrysalis.sim.compile.compiler import resolve_update  # noqa: E402
from chrysalis.gen.spec.config import get_preset, with_overrides  # noqa: E402
from chrysalis.gen.spec.networks import get_network  # noqa: E402
from chrysalis.gen.perf import mlp_step, network_cost  # noqa: E402
from chrysalis.gen.perf.commands import (  # noqa: E402
    DMA_OPS, RUN_START, TESTBENCH_MEMORY, command_cost)
from chrysalis.gen.perf.layer import tile_splits  # noqa: E402
from chrysalis.gen.perf.mapping import optimize  # noqa: E402
from chrysalis.gen.perf.network import (  # noqa: E402
    cluster_stream_cost, cp_stage_commands, default_update, per_core)
from chrysalis.sim.golden import core_counts  # noqa: E402
from chrysalis.sim.compile.cp_program import interleave  # noqa: E402

from energy_caterpillar import LAC, cores_needed  # noqa: E402

__all__ = ["CATEGORIES", "compute_split", "command_split", "demo_column",
           "model_parallel_column", "cp_column", "measure", "table", "main"]

RESULTS = ROOT / "benchmarks" / "results"

#: The categories, in the order of the table, with the label each row gets.
CATEGORIES = {
    "useful": "useful MACs: forward, dX, dW (the utilization)",
    "update": "the separate update pass",
    "padding": "padding to the array",
    "rounding": "accumulator-group rounding",
    "repeated": "work repeated on every core (model parallel: the output layer)",
    "drain": "exposed drain and stall",
    "end": "command ends (L + 5 countdown, L + 6 after compute)",
    "loads": "loads into the PE banks",
    "loss": "loss gradient (LOSS_GRAD, pipelined exp)",
    "dma": "DMA, not overlapped",
    "fetch": "command fetch and check, not hidden",
    "collectives": "collectives on the ring",
    "imbalance": "CP: stage imbalance",
    "dispatch": "CP: in-order dispatch (DMA and fetch included)",
}

#: The demo step: the digits MLP on the default preset.
DEMO_SIZES, DEMO_BATCH = (64, 32, 10), 8
#: CATERPILLAR's network, and its modes with their batch.
NETWORK = "mnist-500x3"
RUNS = (("sgd", 1), ("mbgd", 16), ("cp", 1))


def _zero():
    return dict.fromkeys(CATEGORIES, 0.0)


def _add(total, part, times=1):
    for key, value in part.items():
        total[key] += value * times


def compute_split(config, op, m, n, batch, momentum=False, fused=False):
    """The cycles of one ``FORWARD``, ``BACKWARD`` or ``WGRAD`` (as
    ``sim.golden.core_counts.predict`` counts them; ``fused``: ``WGRAD``'s fused-update bit),
    split into categories."""
    command = {"op": op, "m": m, "n": n, "batch": batch, "flag": int(momentum),
               "fused": int(fused)}
    R, C = config.core.rows, config.core.cols
    L, G = config.mac.latency, config.pe.acc_regs // 2
    streams = config.mac.macs_per_cycle
    slots = G // streams
    mt, nt = ceil_div(m, R), ceil_div(n, C)
    out = _zero()
    # The useful MACs in MAC slots of the whole array (each slot: R x C x streams MACs).
    out["useful"] = m * n * batch / (R * C * streams)
    if op == "WGRAD":
        passes = core_counts.wgrad_update_passes(config, command)
        groups = ceil_div(mt * nt, G)
        mac_slots = ceil_div(mt * nt, streams) * batch
        compute = groups * slots * batch
        out["update"] = groups * G * passes
    else:
        fwd = op == "FORWARD"
        outputs, steps = (mt * batch, nt) if fwd else (nt * batch, mt)
        lanes = C if fwd else R
        groups = ceil_div(outputs, G)
        P = slots * steps
        passes = ceil_log2(lanes) + 1 if config.core.reduction == "tree" else lanes
        D = max(0, L + 1 - slots) + G * passes
        mac_slots = ceil_div(outputs, streams) * steps
        compute = groups * P
        # The last group's drain, and the wait for each drain when it outlasts a group.
        out["drain"] = (D + 1) + (groups - 1) * max(0, D + 1 - P)
    out["padding"] = mac_slots - out["useful"]
    out["rounding"] = compute - mac_slots
    out["end"] = 1 + L + core_counts.FINISH_EXTRA
    exact = core_counts.predict(config, command)["cycles"]
    if not math.isclose(sum(out.values()), exact, rel_tol=1e-12):
        raise AssertionError(f"{op} {m}x{n} batch {batch}: the split adds up to "
                             f"{sum(out.values())}, not core_counts' {exact}")
    return out


def _take_beside(parts, beside):
    """A load the core runs beside a ``WGRAD`` (its side slot) hides its transfers and its
    end, and a DMA that would have waited for it then runs beside the ``WGRAD`` too:
    ``beside`` cycles less of the loads, then of the command ends, then of the DMA."""
    for key in ("loads", "end", "dma"):
        taken = min(beside, parts[key])
        parts[key] -= taken
        beside -= taken
    if beside:
        raise AssertionError(f"the side slot hides {beside} cycles more than the loads take")


def _take_drain(parts, beside):
    """A ``WGRAD`` the core starts beside a ``BACKWARD``'s last drain (its drain slot) hides
    that drain and the command's end: ``beside`` cycles less of the exposed drains, then of
    the command ends."""
    for key in ("drain", "end"):
        taken = min(beside, parts[key])
        parts[key] -= taken
        beside -= taken
    if beside:
        raise AssertionError(f"the drain slot hides {beside} cycles more than the drains "
                             f"and ends take")


def command_split(config, command, timing=TESTBENCH_MEMORY):
    """The cycles one command costs in a one-core stream (``gen.perf.commands.command_cost``),
    split into categories."""
    op = str(getattr(command["op"], "name", command["op"])).upper()
    cost = command_cost(config, command, timing)
    out = _zero()
    out["fetch"] = cost["overhead_cycles"]
    core = cost["cycles"] - cost["overhead_cycles"]
    L = config.mac.latency
    if op in DMA_OPS:
        out["dma"] = cost["dma_cycles"]
    elif op in ("FORWARD", "BACKWARD", "WGRAD"):
        _add(out, compute_split(config, op, int(command["m"]), int(command["n"]),
                                int(command["batch"]),
                                momentum=op == "WGRAD" and bool(command.get("flag")),
                                fused=op == "WGRAD" and bool(command.get("fused"))))
    elif op == "LOSS_GRAD":
        out["loss"] = core
    else:
        out["end"] = L + core_counts.FINISH_EXTRA
        out["loads"] = core - out["end"]
    return out


def _finish(name, what, short, config, cycles, cores, parts, useful_macs, utilization):
    """The column: shares of ``cores x cycles``, checked against the model's figures."""
    budget = cores * cycles
    if not math.isclose(sum(parts.values()), budget, rel_tol=1e-9):
        raise AssertionError(f"{name}: the categories add up to {sum(parts.values())} "
                             f"core-cycles, not the model's {budget}")
    share = {key: value / budget for key, value in parts.items()}
    if not math.isclose(share["useful"], utilization, rel_tol=1e-9):
        raise AssertionError(f"{name}: useful share {share['useful']!r} is not the model's "
                             f"utilization {utilization!r}")
    return {"name": name, "what": what, "short": short, "config": config.name, "cores": cores,
            "rows": config.core.rows, "cols": config.core.cols, "cycles": cycles,
            "useful_macs": useful_macs, "utilization": utilization,
            "core_cycles": parts, "shares": share}


def demo_column(timing=TESTBENCH_MEMORY):
    """The demo's SGD step on the default core, command by command."""
    config = get_preset("default")
    # The update `chrysalis train` runs by default on this core (fused, plain SGD).
    update = resolve_update(config, None, None)
    step = mlp_step(config, list(DEMO_SIZES), DEMO_BATCH, timing, store_every_step=False,
                    update=update)
    parts = _zero()
    for command in step["commands"]:
        _add(parts, command_split(config, command, timing))
    parts["fetch"] += RUN_START
    # The controller fetches each command while the core runs the one before, and runs a
    # DMA beside a core command where they cannot disturb each other: what each hides.
    in_order = sum(parts.values())
    stream = lambda **how: cluster_stream_cost(config, step["commands"], timing,
                                               **how)["cycles"]
    fetched_ahead = stream(dma_overlap=False, side_slot=False, drain_slot=False)
    parts["fetch"] -= in_order - fetched_ahead
    # A DMA that runs beside a core command hides its own fetch and checks with it: what
    # the overlap saves beyond the DMA cycles is fetch time.
    no_side = stream(side_slot=False, drain_slot=False)
    hidden = fetched_ahead - no_side
    parts["fetch"] -= max(0, hidden - parts["dma"])
    parts["dma"] -= min(hidden, parts["dma"])
    no_drain = stream(drain_slot=False)
    _take_beside(parts, no_side - no_drain)
    _take_drain(parts, no_drain - step["total"]["cycles"])
    cycles = step["total"]["cycles"]
    util = step["useful_macs"] / (config.peak_macs_per_cycle * cycles)
    return _finish("demo", f"{'-'.join(map(str, DEMO_SIZES))}, batch {DEMO_BATCH}, one "
                   f"{config.core.rows}x{config.core.cols} core",
                   f"demo {config.core.rows}x{config.core.cols} b{DEMO_BATCH}", config, cycles, 1,
                   parts,
                   step["useful_macs"], util)


def _caterpillar(mode, batch):
    """``benchmarks/cluster.py``'s model of CATERPILLAR's machine for ``mode``: the config,
    the network, the mappings and ``gen.perf.network_cost``'s result."""
    network = get_network(NETWORK)
    base = with_overrides(get_preset("default"), LAC)
    config = with_overrides(base, {"cluster.cores": cores_needed(base, network, mode)})
    update = default_update(config, mode)
    try:
        mappings, _ = optimize(config, network, batch, mode, update=update)
    except ValueError:
        mappings = None
    return config, network, network_cost(config, network, batch, mode, mappings,
                                         update=update)


def _layer_compute(config, layer, batch, mapping, first, update="separate"):
    """A layer's ``FORWARD``, ``BACKWARD`` and ``WGRAD`` under its tiling, split, as
    ``gen.perf.layer.layer_cost`` issues them (``WGRAD`` fused with ``update = "fused"``
    unless a batch split accumulates the gradient); per phase."""
    phases = {"forward": _zero(), "backward": _zero(), "wgrad_update": _zero()}
    sm, sn = tile_splits(layer.m, mapping.tm), tile_splits(layer.n, mapping.tn)
    sb = tile_splits(layer.columns * batch, mapping.tb)
    fused = update == "fused" and sum(c for _, c in sb) == 1
    G = config.pe.acc_regs // 2
    R, C = config.core.rows, config.core.cols
    for mi, cm in sm:
        for nj, cn in sn:
            for bk, cb in sb:
                t = cm * cn * cb
                _add(phases["forward"], compute_split(config, "FORWARD", mi, nj, bk), t)
                if not first:
                    _add(phases["backward"], compute_split(config, "BACKWARD", mi, nj, bk), t)
                _add(phases["wgrad_update"], compute_split(config, "WGRAD", mi, nj, bk,
                                                           fused=fused), t)
            if len(sb) > 1:
                # A batch split applies the accumulated gradient in one more update pass.
                phases["wgrad_update"]["update"] += cm * cn * ceil_div(
                    ceil_div(mi, R) * ceil_div(nj, C), G) * G
    return phases


def _check_phase(name, phase, split, entry):
    core = entry["cycles"] - entry["overhead_cycles"]
    if not math.isclose(sum(split.values()), core, rel_tol=1e-9):
        raise AssertionError(f"{name} {phase}: the split adds up to {sum(split.values())}, "
                             f"not the model's {core}")


def model_parallel_column(mode, batch, timing=TESTBENCH_MEMORY):
    """SGD or MBGD on CATERPILLAR's machine: one core's timeline (every core runs the same
    commands), the layers rebuilt from their mappings and checked against the model."""
    config, network, r = _caterpillar(mode, batch)
    cores = r["cores"]
    layers, core_batch = per_core(config, network, batch, mode)
    L = config.mac.latency
    parts = _zero()
    for i, (layer, cost) in enumerate(zip(layers, r["layers"])):
        phases = _layer_compute(config, layer, core_batch, cost["mapping"], first=i == 0,
                                update=r["update"])
        for phase, split in phases.items():
            _check_phase(f"{mode} {layer.name}", phase, split, cost["phases"][phase])
            _add(parts, split)
    phases = r["phases"]
    overhead = sum(entry["overhead_cycles"] for entry in phases.values())
    loads = phases["load"]
    parts["end"] += loads["commands"] * (L + core_counts.FINISH_EXTRA)
    parts["loads"] += (loads["cycles"] - loads["overhead_cycles"]
                       - loads["commands"] * (L + core_counts.FINISH_EXTRA))
    parts["loss"] += phases["loss"]["cycles"] - phases["loss"]["overhead_cycles"]
    parts["dma"] += phases["dma"]["dma_cycles"]
    parts["collectives"] += r["collective_cycles"]
    # The fetches the cluster's controller hides behind the cores' work: what the step's
    # cycles lack against the layers' costs and the collectives.
    hidden = sum(entry["cycles"] for entry in phases.values()) + r["collective_cycles"] \
        - r["cycles"]
    parts["fetch"] += overhead - (hidden - r["side_hidden_cycles"] - r["drain_hidden_cycles"]
                                  - r["ring_hidden_cycles"])
    _take_beside(parts, r["side_hidden_cycles"])
    _take_drain(parts, r["drain_hidden_cycles"])
    # The collectives that ran beside a WGRAD.
    parts["collectives"] -= r["ring_hidden_cycles"]
    # Every core has the same timeline; the network's useful MACs are shared among them,
    # the rest of what each core computes is repeated.
    useful = r["useful_macs"] / (config.core.pes * config.mac.macs_per_cycle)
    parts = {key: value * cores for key, value in parts.items()}
    repeated = parts["useful"] - useful
    parts["repeated"] = 0.0 if math.isclose(repeated, 0, abs_tol=1e-6) else repeated
    parts["useful"] = useful
    return _finish(mode, f"{NETWORK}, batch {r['batch']}, model parallel on {cores} "
                   f"{config.core.rows}x{config.core.cols} cores",
                   f"{mode.upper()} {cores}x{config.core.rows}x{config.core.cols} b{r['batch']}",
                   config, r["cycles"], cores, parts, r["useful_macs"], r["utilization"])


def cp_column(timing=TESTBENCH_MEMORY):
    """CP on CATERPILLAR's machine, a stage per core: every core's commands split, its idle
    time against the slowest stage, the sends, and the dispatch beyond them; the tick
    rebuilt and checked against the model's."""
    config, network, r = _caterpillar("cp", 1)
    cores = r["cores"]
    layers = list(network.layers)
    if config.cluster.ring == "bidirectional":
        raise ValueError(f"cluster.ring must be one-way for this breakdown, not "
                         f"{config.cluster.ring!r}")
    for layer in layers:
        words = (ceil_div(layer.n, config.core.cols) + ceil_div(layer.m, config.core.rows)) \
            * layer.columns
        if words > config.pe.act_words:
            raise ValueError(f"layer {layer.name} does not keep its activations in the PE "
                             f"banks, so CP does not run it command by command, not "
                             f"{words} words")
    stages = r["stages"]
    per_stage = [[dict(op="DMA_LOAD", n=layers[0].input_words or layers[0].n, batch=1,
                       cores=1)]] + [[] for _ in stages[1:]]
    per_stage[-1].append(dict(op="DMA_LOAD", n=1, batch=1, cores=1 << (len(stages) - 1)))
    sends = []
    for k, (a, b) in enumerate(stages):
        last = k == len(stages) - 1
        # Every layer keeps its tiles in the PE banks (checked above), so the model's
        # stage is spelled command by command and needs no layer costs.
        per_stage[k] += cp_stage_commands(config, layers, a, b, k, last, None, True,
                                          network.classes, timing, r["update"])
        if not last:
            sends.append(dict(op="SEND", root=k, peer=k + 1, n=layers[b - 1].m,
                              batch=layers[b - 1].columns))
        if k > 0:
            sends.append(dict(op="SEND", root=k, peer=k - 1, n=layers[a - 1].m,
                              batch=layers[a - 1].columns))
    sends.sort(key=lambda cmd: cmd["peer"] < cmd["root"])      # forward sends first
    run = cluster_stream_cost(config, interleave(per_stage) + sends, timing)
    cycles, ring = r["cycles"], run["ring_cycles"]
    if run["cycles"] != cycles or max(run["busy"]) + ring != r["pipelined_cycles"]:
        raise AssertionError(f"cp: the rebuilt tick takes {run['cycles']} cycles (slowest "
                             f"stage {max(run['busy'])}), not the model's {cycles} "
                             f"({r['pipelined_cycles']} overlapped)")
    parts = _zero()
    for k, commands in enumerate(per_stage):
        busy = _zero()
        for command in commands:
            if command["op"] not in DMA_OPS:
                split = command_split(config, command, timing)
                split["fetch"] = 0          # the controller's time is in the dispatch
                _add(busy, split)
        if not math.isclose(sum(busy.values()), run["busy"][k], rel_tol=1e-9):
            raise AssertionError(f"cp: core {k}'s split adds up to {sum(busy.values())}, "
                                 f"not its {run['busy'][k]} busy cycles")
        _add(parts, busy)
        parts["imbalance"] += max(run["busy"]) - run["busy"][k]
        parts["collectives"] += ring
        parts["dispatch"] += cycles - max(run["busy"]) - ring
    return _finish("cp", f"{NETWORK}, a sample per tick, a stage per core on {cores} "
                   f"{config.core.rows}x{config.core.cols} cores", f"CP {cores} cores",
                   config, cycles, cores, parts, r["useful_macs"], r["utilization"])


def measure():
    columns = [demo_column()]
    for mode, batch in RUNS:
        column = cp_column() if mode == "cp" else model_parallel_column(mode, batch)
        columns.append(column)
    return columns


def table(columns):
    head = ["share of PE-cycles"] + [c["short"] for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(columns) + "|"]
    for key, label in CATEGORIES.items():
        if not any(c["shares"][key] for c in columns):
            continue
        cells = [f"{c['shares'][key]:.1%}" if c["shares"][key] else "–" for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| cycles per step (CP: per sample) | "
                 + " | ".join(f"{c['cycles']:.0f}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def main():
    columns = measure()
    text = table(columns)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cycle_breakdown.json").write_text(json.dumps(columns, indent=1) + "\n")
    (RESULTS / "cycle_breakdown.md").write_text(
        "Where the cycles of a training step go, modelled (`gen.perf`, core commands by "
        "`sim.golden.core_counts`' closed forms); `benchmarks/cycle_breakdown.py`. Each "
        "column is every PE's cycles over the step (PEs x cores x cycles) and sums to 100%. "
        "Useful MACs are counted as CATERPILLAR counts them: forward, dX (none for the first "
        "layer) and dW; the weight update is not a MAC, so a separate update pass is a "
        "loss of its own. Every column runs the update its program runs by default: fused "
        "into the weight gradient (one core, model parallel and CP with plain SGD), so no "
        "update pass is left unless a layer's batch is split over tiles. The demo is the "
        "64-32-10 digits step of `chrysalis train` (weights "
        "kept in the PEs); SGD, MBGD and CP are mnist-500x3 on CATERPILLAR's machine shape "
        "(16x16 PEs per core, 2048-word banks, fp16 operands, 128-bit ring), as "
        "`benchmarks/cluster.py` models them. In CP the controller's fetches and the DMA "
        "are inside the in-order dispatch row.\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
