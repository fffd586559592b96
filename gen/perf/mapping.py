"""Per-layer mapping of a network onto a core, after DEEPMATRIX (Venkataramani et al.).

For every layer, :func:`best_mapping` picks the tiling (rows ``tm`` and columns ``tn`` of the
weight tile, activation columns ``tb``) and the loop order (weights or activations outer)
that minimise the layer's cycles in the performance model (``gen.perf.layer``), under the
core's capacities: the weight tile in ``pe.weight_words``, the activation tiles in
``pe.act_words``, the 16-bit command fields. :func:`uniform_mapping` is the baseline: the
single tiling that is best for the network as a whole when every layer must use it (each
layer clipping the tile to its own size). :func:`mapping_gain` compares the two.

The candidates are powers of two times the array side for ``tm`` (rows) and ``tn``
(columns), plus the layer's own sizes; for each ``(tm, tn, order)`` the activation tile is
the largest power of two (or the whole layer) that fits, and half of it.

Every function takes the SGD ``update`` the step runs (``gen.perf.network``: ``"separate"``
by default, ``"fused"`` into the weight gradient) and costs the layers with it.
"""

from chrysalis.gen.perf.layer import FIELD_LIMIT, ORDERS, Mapping, fits, layer_cost
from chrysalis.gen.perf.network import (
    network_cost, on_chip, per_core, ring_collective, shard_rows)
from chrysalis.gen.spec.checks import ceil_div
from chrysalis.gen.spec.networks import Network

__all__ = ["candidates", "best_mapping", "optimize", "uniform_mapping", "mapping_gain",
           "partition"]


def _powers(unit, limit):
    values, v = [], unit
    while v < limit:
        values.append(v)
        v *= 2
    values.append(limit)
    return values


def candidates(config, layer, batch):
    """The mappings :func:`best_mapping` tries for ``layer`` (each fits the core)."""
    R, C = config.core.rows, config.core.cols
    columns = layer.columns * batch
    out = []
    for tm in _powers(R, min(layer.m, FIELD_LIMIT)):
        for tn in _powers(C, min(layer.n, FIELD_LIMIT)):
            mt, nt = ceil_div(tm, R), ceil_div(tn, C)
            room = config.pe.act_words // (mt + nt)
            if room < 1:
                continue
            tb = min(columns, room, FIELD_LIMIT)
            if tb < columns:
                tb = 1 << (tb.bit_length() - 1)      # the largest power of two <= tb
            for b in {tb, max(1, tb // 2)}:
                for order in ORDERS:
                    mapping = Mapping(tm, tn, b, order)
                    if fits(config, layer, batch, mapping) is None:
                        out.append(mapping)
    return out


def _layer_cycles(config, network, i, batch, mapping, resident, chip, timing, update):
    layer = network.layers[i]
    return layer_cost(config, layer, batch, mapping, first=i == 0,
                      last=i == len(network.layers) - 1, classes=network.classes,
                      weights_resident=resident, on_chip=chip, update=update,
                      **timing)["cycles"]


def best_mapping(config, network, index, batch, resident=False, chip=None, timing=None,
                 update="separate"):
    """The fastest mapping of layer ``index`` of ``network`` (the layers one core trains,
    ``batch`` its samples) and the number of mappings evaluated."""
    chip = on_chip(config, network.layers, batch, resident) if chip is None else chip
    timing = {} if timing is None else {"timing": timing}
    layer = network.layers[index]
    best, best_cycles, tried = None, None, 0
    for mapping in candidates(config, layer, batch):
        if resident and (mapping.tm < layer.m or mapping.tn < layer.n):
            continue
        tried += 1
        cycles = _layer_cycles(config, network, index, batch, mapping, resident, chip, timing,
                               update)
        if best_cycles is None or cycles < best_cycles:
            best, best_cycles = mapping, cycles
    if best is None:
        raise ValueError(f"layer {layer.name} has no mapping that fits this core")
    return best, tried


def _fits_whole(config, layers):
    R, C = config.core.rows, config.core.cols
    return sum(ceil_div(l.m, R) * ceil_div(l.n, C) for l in layers) <= config.pe.weight_words


def optimize(config, network, batch, mode="mbgd", timing=None, update="separate"):
    """Per-layer best mappings (a list, one per layer of ``network``) for ``mode`` on
    ``config``'s cores, and the number of mappings evaluated.

    Each layer is mapped as one core sees it (``gen.perf.network.per_core``: its rows
    with model parallelism, its samples with data parallelism). When every layer's whole
    weights fit the PE banks together (for ``cp``: each layer's alone, a stage holding
    it), only whole-layer tiles are tried, so the weights stay in the PEs."""
    layers, core_batch = per_core(config, network, batch, mode)
    view = Network(network.name, tuple(layers), network.classes, network.dataset)
    out, evaluated = [], 0
    together = _fits_whole(config, layers)
    for i, layer in enumerate(layers):
        resident = _fits_whole(config, [layer]) if mode == "cp" else together
        chip = on_chip(config, [layer] if mode == "cp" else layers, core_batch, resident)
        try:
            mapping, tried = best_mapping(config, view, i, core_batch, resident, chip, timing,
                                          update)
        except ValueError:
            if not resident:
                raise
            mapping, tried = best_mapping(config, view, i, core_batch, False, chip, timing,
                                          update)
        out.append(mapping)
        evaluated += tried
    return out, evaluated


def uniform_mapping(config, network, batch, mode="mbgd", timing=None, update="separate"):
    """The one mapping (clipped per layer) that is fastest for the whole network, its
    step cycles, and the mappings evaluated."""
    kwargs = {"update": update} if timing is None else {"timing": timing, "update": update}
    layers, core_batch = per_core(config, network, batch, mode)
    pool = {}
    for layer in layers:
        for mapping in candidates(config, layer, core_batch):
            pool[mapping] = True
    best, best_cycles, evaluated = None, None, 0
    for mapping in pool:
        if any(fits(config, layer, core_batch, mapping) for layer in layers):
            continue
        evaluated += 1
        cycles = network_cost(config, network, batch, mode,
                              [mapping] * len(network.layers), **kwargs)["cycles"]
        if best_cycles is None or cycles < best_cycles:
            best, best_cycles = mapping, cycles
    if best is None:
        raise ValueError(f"no single mapping fits every layer of {network.name}")
    return best, best_cycles, evaluated


def mapping_gain(config, network, batch, mode="mbgd", timing=None, update="separate"):
    """Step cycles with the best uniform mapping, with the per-layer best mappings, and
    the gain (their ratio), plus the compiler's default tiling for reference."""
    kwargs = {"update": update} if timing is None else {"timing": timing, "update": update}
    per_layer, evaluated = optimize(config, network, batch, mode, timing, update)
    tuned = network_cost(config, network, batch, mode, per_layer, **kwargs)
    uniform, uniform_cycles, uniform_evaluated = uniform_mapping(config, network, batch,
                                                                 mode, timing, update)
    default = network_cost(config, network, batch, mode, **kwargs)
    return {"network": network.name, "batch": batch, "mode": mode,
            "per_layer": per_layer, "per_layer_cycles": tuned["cycles"],
            "per_layer_utilization": tuned["utilization"],
            "uniform": uniform, "uniform_cycles": uniform_cycles,
            "uniform_utilization": tuned["utilization"] * tuned["cycles"] / uniform_cycles,
            "default_cycles": default["cycles"],
            "gain": uniform_cycles / tuned["cycles"],
            "gain_over_default": default["cycles"] / tuned["cycles"],
            "evaluated": evaluated + uniform_evaluated}


def _partition_layer_cost(config, network, index, batch, split, timing):
    """Cycles of layer ``index`` on one core of the cluster with ``split`` (``"model"``:
    ``1/cores`` of its rows, all-gather of its output and reduce-scatter of its input
    gradient; ``"data"``: ``batch/cores`` samples, all-reduce of its weight gradient),
    under the layer's best tiling for that share."""
    cores = config.cluster.cores
    layer = network.layers[index]
    first, last = index == 0, index == len(network.layers) - 1
    if split == "model":
        mine, samples = shard_rows(layer, cores), batch
    else:
        mine, samples = layer, batch // cores
    chip = on_chip(config, [mine], samples, False)
    best = None
    for mapping in candidates(config, mine, samples):
        cycles = layer_cost(config, mine, samples, mapping, first=first, last=last,
                            classes=network.classes, on_chip=chip,
                            **({} if timing is None else {"timing": timing}))["cycles"]
        best = cycles if best is None or cycles < best else best
    # The collectives as the cluster's programs issue them (sim.golden.ring's schedules): matrices
    # of the layer's rows by its activation columns, and the weight gradient rows x columns.
    columns = layer.columns * batch
    if split == "model":
        best += ring_collective(config, layer.m * columns, "all-gather", columns=columns)
        if not first:
            best += ring_collective(config, layer.n * columns, "reduce-scatter",
                                    columns=columns)
    else:
        best += ring_collective(config, layer.weights, "all-reduce", columns=layer.n)
    return best


def partition(config, network, batch, timing=None):
    """Per layer, split the work across ``config``'s cores by rows (model parallel) or by
    samples (data parallel), whichever makes the step fastest (after DEEPMATRIX's
    partitioning), against both uniform choices.

    A layer after a data-parallel one that is split by rows first all-gathers its input
    (each core holds only its samples); the reverse needs nothing (a row-split layer ends
    with its output all-gathered). Solved exactly by dynamic programming over the layers.

    Returns
    -------
    dict
        ``splits`` (one of ``"model"``, ``"data"`` per layer), ``cycles``, ``model_cycles``
        and ``data_cycles`` (every layer split the same way), ``gain`` (over the better
        uniform choice).
    """
    cores = config.cluster.cores
    if cores < 2:
        raise ValueError(f"partitioning needs cluster.cores >= 2, not {cores!r}")
    if batch % cores:
        raise ValueError(f"batch must be a multiple of cluster.cores ({cores}), "
                         f"not {batch!r}")
    splits = ("model", "data")
    costs = [{s: _partition_layer_cost(config, network, i, batch, s, timing) for s in splits}
             for i in range(len(network.layers))]

    def switch(i, before, after):
        if before == "data" and after == "model":
            layer = network.layers[i]
            return ring_collective(config, layer.input_words * batch, "all-gather",
                                   columns=batch)
        return 0.0

    best = {s: (costs[0][s], [s]) for s in splits}
    for i in range(1, len(network.layers)):
        best = {s: min(((best[p][0] + switch(i, p, s) + costs[i][s], best[p][1] + [s])
                        for p in splits), key=lambda t: t[0]) for s in splits}
    cycles, chosen = min(best.values(), key=lambda t: t[0])
    uniform = {s: sum(c[s] for c in costs) for s in splits}
    return {"splits": chosen, "cycles": cycles, "model_cycles": uniform["model"],
            "data_cycles": uniform["data"], "gain": min(uniform.values()) / cycles}
