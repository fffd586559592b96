"""Cost of a training step of a whole network: one core, or a cluster in one of its modes.

One core (:func:`network_cost`, modes ``sgd`` and ``mbgd``): every layer by
:func:`gen.perf.layer.layer_cost` under its mapping, back to back (the accelerator runs its
commands in order). Whether the weights stay in the PE banks, and whether the network stays
in the scratchpad, is decided here for the whole network, as the compiler does.

A cluster (``cluster.cores > 1``; the RTL has no cluster yet, so these figures are the
model's only, after CATERPILLAR's analysis): cores on a ring whose links carry
``cluster.link_width`` bits per cycle with ``cluster.hop_latency`` cycles per hop. The
collectives (:func:`ring_collective`) cost, for ``w`` words in all spread over ``c`` cores,
``(c - 1) * (w / c) / k + (c - 1) * hop`` cycles (all-gather or reduce-scatter; ``k`` words
per link per cycle), twice that for an all-reduce: CATERPILLAR's ``(n b - n b / c) / nr``.

``data``
    Data parallel: every core trains ``batch / cores`` samples on a full copy of the
    weights; the weight gradients are all-reduced over the ring before the update.
``model`` (and ``mbgd`` / ``sgd`` with several cores)
    Model parallel (CATERPILLAR's MBGD): every core holds ``1/cores`` of each layer's rows
    of ``W``; the forward pass all-gathers each layer's output, the backward pass
    reduce-scatters each layer's input gradient. ``sgd`` is batch 1.
``cp``
    Continuous propagation: the layers are cut into ``cores`` contiguous pipeline stages
    (the cut that minimises the slowest stage); samples stream one at a time (batch 1), the
    forward pass of sample ``t + 1`` overlapping the backward pass of sample ``t``, so a
    sample costs the slowest stage plus the transfer of its activations to the next core.
"""

import math

from .commands import COST_FIELDS, TESTBENCH_MEMORY
from .layer import PHASE_NAMES, layer_cost

__all__ = ["MODES", "network_cost", "ring_collective", "weights_resident", "on_chip", "per_core"]

MODES = ("sgd", "mbgd", "cp", "data", "model")


def _ceil(a, b):
    return -(-a // b)


def weights_resident(config, layers, mappings=None):
    """Every layer's weights fit the PE weight banks at once, each as one tile."""
    R, C = config.core.rows, config.core.cols
    words = 0
    for layer, mp in zip(layers, mappings or [None] * len(layers)):
        if mp is not None and (mp.tm < layer.m or mp.tn < layer.n):
            return False
        words += _ceil(layer.m, R) * _ceil(layer.n, C)
    return words <= config.pe.weight_words


def on_chip(config, layers, batch, resident=False):
    """The activations and gradients of a step, and the weights unless they stay in the PE
    banks, fit the scratchpad."""
    words = 0 if resident else sum(layer.weights for layer in layers)
    words += sum((layer.input_words + 2 * layer.m * layer.columns) * batch
                 for layer in layers)
    return words <= config.core.scratchpad_words


def per_core(config, network, batch, mode):
    """What one core trains: ``(layers, batch)``. Model parallel (``sgd``, ``mbgd``,
    ``model``) gives each core ``1/cores`` of every layer's rows; data parallel
    ``batch/cores`` samples; ``cp`` one sample of whole layers (its stage's)."""
    cores = config.cluster.cores
    if mode in ("sgd", "cp"):
        batch = 1
    if mode == "data":
        return list(network.layers), max(1, batch // cores)
    if mode == "cp" or cores == 1:
        return list(network.layers), batch
    return [_shard(layer, cores) for layer in network.layers], batch


def ring_collective(config, words, kind="all-gather", cores=None):
    """Cycles of a ring collective over ``words`` words in all (see the module docstring).
    ``kind``: ``all-gather``, ``reduce-scatter``, ``all-reduce`` or ``send`` (``words``
    to the next core)."""
    c = config.cluster.cores if cores is None else cores
    per_cycle = config.cluster.link_width / 32
    hop = config.cluster.hop_latency
    if kind == "send":
        return words / per_cycle + hop
    if c <= 1:
        return 0.0
    one = (c - 1) * (words / c) / per_cycle + (c - 1) * hop
    if kind in ("all-gather", "reduce-scatter"):
        return one
    if kind == "all-reduce":
        return 2 * one
    raise ValueError(f"kind must be all-gather, reduce-scatter, all-reduce or send, "
                     f"not {kind!r}")


def _zero_phases():
    return {name: dict.fromkeys(COST_FIELDS, 0) for name in PHASE_NAMES}


def _shard(layer, parts):
    """The layer with ``1/parts`` of its rows (model parallel)."""
    from gen.networks import Layer
    return Layer(layer.name, _ceil(layer.m, parts), layer.n, layer.columns, layer.kind,
                 layer.input_words)


def _layers_cost(config, layers, batch, mappings, timing, offset, total, classes):
    """Costs of ``layers`` (positions ``offset`` ... of a network of ``total`` layers) on
    one core that holds them all; resident weights and on-chip data decided for them."""
    resident = weights_resident(config, layers, mappings)
    chip = on_chip(config, layers, batch, resident)
    out = []
    for i, (layer, mp) in enumerate(zip(layers, mappings)):
        out.append(layer_cost(config, layer, batch, mp, first=offset + i == 0,
                              last=offset + i == total - 1, classes=classes,
                              weights_resident=resident, on_chip=chip, timing=timing))
    return out, resident, chip


def _stages(costs, cores):
    """Contiguous cut of per-layer costs into ``cores`` stages minimising the largest."""
    n = len(costs)
    cores = min(cores, n)
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    best = [[math.inf] * (n + 1) for _ in range(cores + 1)]
    cut = [[0] * (n + 1) for _ in range(cores + 1)]
    best[0][0] = 0.0
    for k in range(1, cores + 1):
        for j in range(1, n + 1):
            for i in range(k - 1, j):
                value = max(best[k - 1][i], prefix[j] - prefix[i])
                if value < best[k][j]:
                    best[k][j], cut[k][j] = value, i
    bounds, j = [], n
    for k in range(cores, 0, -1):
        bounds.append((cut[k][j], j))
        j = cut[k][j]
    return list(reversed(bounds))


def network_cost(config, network, batch, mode="mbgd", mappings=None, timing=TESTBENCH_MEMORY):
    """Cycles, utilization and counters of one training step of ``network``.

    Parameters
    ----------
    config : gen.config.Config
        ``cluster.cores`` cores (modes ``data``, ``model``, ``cp``, and ``sgd`` / ``mbgd``
        with more than one core, which are model parallel).
    network : gen.networks.Network
    batch : int
        Samples per step (``sgd`` and ``cp`` use 1).
    mode : str
        One of :data:`MODES`.
    mappings : list of gen.perf.layer.Mapping or None, optional
        One per layer (None: :func:`gen.perf.layer.fit_mapping`).
    timing : gen.perf.commands.MemoryTiming

    Returns
    -------
    dict
        ``layers``: per layer ``{"name", "cycles", "phases", "useful_macs", "mapping",
        "extensions"}`` (one core's share); ``phases``: summed over the layers (one
        core's; ``cp``: every stage's); ``collective_cycles`` (the ring's, on the critical
        path: nothing overlaps them); ``cycles`` (per step), ``samples`` (per step),
        ``useful_macs`` (whole step, all cores), ``utilization`` (useful MACs / (peak MACs
        per cycle x cycles)), ``weights_resident``, ``on_chip``, ``ring_words``,
        ``core_copies`` (how many cores do the work the counters in ``phases`` count).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    cores = config.cluster.cores
    if mode in ("sgd", "cp"):
        batch = 1
    if mappings is None:
        mappings = [None] * len(network.layers)
    if len(mappings) != len(network.layers):
        raise ValueError(f"mappings must have one entry per layer ({len(network.layers)}), "
                         f"not {len(mappings)}")
    ring_words = 0.0
    collective = 0.0
    layers, core_batch = per_core(config, network, batch, mode)
    total = len(layers)
    if mode == "data" and batch % cores:
        raise ValueError(f"data parallel needs batch to be a multiple of cluster.cores "
                         f"({cores}), not {batch!r}")
    if mode == "cp":
        # Stages from the layers' costs each alone on a core, then each stage costed as
        # the core that holds just its layers (their weights may then stay in the PEs).
        alone = [_layers_cost(config, [l], 1, [mp], timing, i, total, network.classes)[0][0]
                 for i, (l, mp) in enumerate(zip(layers, mappings))]
        stages = _stages([c["cycles"] for c in alone], cores)
        per_core_costs, stage_cycles, resident, chip = [], [], True, True
        for a, b in stages:
            costs, res, on = _layers_cost(config, layers[a:b], 1, mappings[a:b], timing, a,
                                          total, network.classes)
            per_core_costs += costs
            resident, chip = resident and res, chip and on
            send = 0.0
            if b < total:
                boundary = layers[b - 1]
                # This sample's activations forward and its gradient coming back.
                send = 2 * ring_collective(config, boundary.m * boundary.columns, "send")
                ring_words += 2 * boundary.m * boundary.columns
            stage_cycles.append(sum(c["cycles"] for c in costs) + send)
        cycles = max(stage_cycles)
        slowest = stage_cycles.index(cycles)
        a, b = stages[slowest]
        collective = cycles - sum(c["cycles"] for c in per_core_costs[a:b])
    else:
        per_core_costs, resident, chip = _layers_cost(config, layers, core_batch, mappings,
                                                      timing, 0, total, network.classes)
        if cores > 1 and mode == "data":
            for layer in network.layers:
                collective += ring_collective(config, layer.weights, "all-reduce")
                ring_words += 2 * (cores - 1) * layer.weights
        elif cores > 1:
            for i, layer in enumerate(network.layers):
                out_words = layer.m * layer.columns * core_batch
                collective += ring_collective(config, out_words, "all-gather")
                ring_words += (cores - 1) * out_words
                if i > 0:
                    in_words = layer.n * layer.columns * core_batch
                    collective += ring_collective(config, in_words, "reduce-scatter")
                    ring_words += (cores - 1) * in_words
        cycles = sum(c["cycles"] for c in per_core_costs) + collective
    phases = _zero_phases()
    for c in per_core_costs:
        for name, entry in c["phases"].items():
            for key, value in entry.items():
                phases[name][key] += value
    samples = 1 if mode in ("sgd", "cp") else batch
    useful = network.macs(samples)
    peak = config.peak_macs_per_cycle
    layers = [{"name": l.name, "cycles": c["cycles"], "phases": c["phases"],
               "useful_macs": c["useful_macs"], "mapping": c["mapping"],
               "extensions": c["extensions"]}
              for l, c in zip(network.layers, per_core_costs)]
    return {"network": network.name, "mode": mode, "cores": cores, "batch": samples,
            "layers": layers, "phases": phases, "collective_cycles": collective,
            "cycles": cycles, "samples": samples, "useful_macs": useful,
            "utilization": useful / (peak * cycles) if cycles else 0.0,
            "weights_resident": resident, "on_chip": chip, "ring_words": ring_words,
            # Counters are of one core; the cluster does `cores` times the work (cp: each
            # core its stage, so the per-core counters summed are the whole pipeline's).
            "core_copies": 1 if mode == "cp" else cores}
