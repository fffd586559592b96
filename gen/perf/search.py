"""Architecture search for training, after WHAM (Adnan et al., 2024), and its exhaustive check.

A design is a point of a :data:`SPACES` space (array rows and columns, cores, local-store
words, AXI width, reduction). :func:`evaluate_design` makes its config, models a training
step of the network (``gen.perf.network_cost`` with the per-layer best mapping of
``gen.perf.mapping``), its area at 45 nm (``gen.perf.area_model``) and its power (``gen.perf``'s
energy at :data:`CLOCK_HZ`), and scores it: samples per second (``throughput``) or samples
per second per watt (``perf_per_watt``); a design over the area or power budget scores 0.

:func:`heuristic` is WHAM's critical-path search adapted to this space: from the smallest
design, find what limits each kept design (the resource on the critical path of its step:
multiply-accumulate slots, the reduction drain, the loads into the PEs, the DMA, the ring)
and grow only the parameters that relieve it (growth follows the throughput's critical
path, as WHAM's; the objective, throughput or throughput per watt, picks the best of
everything evaluated); keep the ``top_k`` fastest new designs of each round
(WHAM keeps the top-k per pipeline stage; the cores here are identical, so there is one
stage), and stop after ``patience`` rounds that improve nothing. :func:`exhaustive`
evaluates every point.
"""

import itertools

from amaranth.utils import ceil_log2

from chrysalis.gen.spec.config import ConfigError, get_preset, with_overrides

__all__ = ["SPACES", "CLOCK_HZ", "design_config", "evaluate_design", "critical_resource",
           "heuristic", "exhaustive", "format_design"]

#: The clock the throughput and power figures assume (CATERPILLAR's analysis: 1 GHz).
CLOCK_HZ = 1e9

#: Design spaces: parameter -> values in increasing "resource".
SPACES = {
    "small": {"core.rows": (4, 8, 16), "core.cols": (4, 8, 16), "cluster.cores": (1, 2, 4, 8),
              "pe.words": (1024, 2048, 4096), "host.axi_data_width": (64, 128, 256),
              "core.reduction": ("bus", "tree")},
    "large": {"core.rows": (4, 8, 16, 32), "core.cols": (4, 8, 16, 32),
              "cluster.cores": (1, 2, 4, 8, 16, 32), "pe.words": (512, 1024, 2048, 4096),
              "host.axi_data_width": (64, 128, 256, 512), "core.reduction": ("bus", "tree"),
              "cluster.link_width": (32, 128, 512)},
}

#: Which parameters relieve each critical resource.
_RELIEF = {
    "mac": ("core.rows", "core.cols", "cluster.cores"),
    "drain": ("core.reduction", "core.rows", "core.cols"),
    "load": ("pe.words", "core.rows", "core.cols"),
    "dma": ("host.axi_data_width", "pe.words", "cluster.cores"),
    "ring": ("cluster.link_width", "cluster.cores"),
    "loss": ("cluster.cores",),
    # Energy (objective perf_per_watt): what the largest share of the energy goes to.
    "dram": ("cluster.cores", "pe.words", "core.rows", "core.cols"),
    "sram": ("core.reduction", "host.axi_data_width", "core.rows", "core.cols"),
    "wires": ("core.reduction", "cluster.link_width"),
}

#: Energy events (``gen.perf.energy.EVENTS`` and ``ring_word``) -> the resource they load.
_ENERGY_RESOURCE = {"dram_64b": "dram", "scratchpad_access": "sram",
                    "weight_bank_read": "sram", "weight_bank_write": "sram",
                    "act_bank_read": "sram", "act_bank_write": "sram",
                    "bus_word": "wires", "ring_word": "wires"}


def design_config(design):
    """The config of a design (a dict of :data:`SPACES` parameters). ``pe.words`` sets
    both PE banks; the scratchpad is 64 words per PE (at least 64 Ki words)."""
    overrides = {"name": "searched"}
    for key, value in design.items():
        if key == "pe.words":
            overrides["pe.weight_words"] = value
            overrides["pe.act_words"] = value
        else:
            overrides[key] = value
    pes = design.get("core.rows", 4) * design.get("core.cols", 4)
    overrides["core.scratchpad_words"] = max(65536, 1 << ceil_log2(64 * pes))
    return with_overrides(get_preset("default"), overrides)


def _key(design):
    return tuple(sorted(design.items()))


def evaluate_design(design, network, batch, mode, budget, objective="throughput",
                    mapping=True, update="separate"):
    """Model one design; a dict with ``design``, ``score``, ``samples_per_second``,
    ``watts``, ``area_mm2``, ``cycles``, ``utilization``, ``feasible``, ``critical``.
    An invalid config or a network that does not map scores 0 (``error`` says why).
    ``update``: the SGD update costed (``gen.perf.network_cost``), ``"separate"`` or
    ``"fused"`` (``None``: each design's default, ``gen.perf.network.default_update``)."""
    from .area_model import asic_area_mm2
    from .mapping import optimize
    from . import energy_of, network_cost
    out = {"design": dict(design), "score": 0.0, "feasible": False, "modelled": False}
    try:
        config = design_config(design)
    except ConfigError as error:
        out["error"] = str(error)
        return out
    # The area is a formula: a design over the budget is refused before it is modelled.
    area = asic_area_mm2(config)
    out["area_mm2"] = area
    if area > budget.get("area_mm2", float("inf")):
        out["error"] = f"area {area:.1f} mm² over the budget"
        return out
    try:
        if update is None:
            from .network import default_update
            update = default_update(config, mode)
        mappings = optimize(config, network, batch, mode, update=update)[0] if mapping else None
        result = network_cost(config, network, batch, mode, mappings, update=update)
    except ValueError as error:
        out["error"] = str(error)
        return out
    out["modelled"] = True
    energy = energy_of(config, result, clock_hz=CLOCK_HZ)
    rate = result["samples"] * CLOCK_HZ / result["cycles"]
    out.update(samples_per_second=rate, watts=energy["watts"], area_mm2=area,
               cycles=result["cycles"], utilization=result["utilization"],
               gflops_per_watt=energy["gflops_per_watt"],
               critical=critical_resource(result))
    per_event = {k: v for k, v in energy["per_event"].items() if k in _ENERGY_RESOURCE}
    out["energy_critical"] = _ENERGY_RESOURCE[max(per_event, key=per_event.get)]
    ok = area <= budget.get("area_mm2", float("inf")) and (
        budget.get("power_w") is None or energy["watts"] <= budget["power_w"])
    out["feasible"] = ok
    if ok:
        out["score"] = rate if objective == "throughput" else rate / energy["watts"]
    return out


def critical_resource(result):
    """The resource that takes most of a modelled step's cycles: ``mac`` (compute slots),
    ``drain`` (the rest of the compute commands: reductions, pipeline fill), ``load``,
    ``dma``, ``ring`` or ``loss``, in cycles of one core."""
    p = result["phases"]
    compute = sum(p[k]["cycles"] for k in ("forward", "backward", "wgrad_update"))
    overhead = sum(p[k]["overhead_cycles"] for k in ("forward", "backward", "wgrad_update"))
    slots = sum(p[k]["mac_slots"] + p[k]["update_slots"]
                for k in ("forward", "backward", "wgrad_update"))
    shares = {"mac": slots, "drain": compute - slots - overhead,
              "load": p["load"]["cycles"], "dma": p["dma"]["cycles"],
              "ring": result["collective_cycles"], "loss": p["loss"]["cycles"]}
    return max(shares, key=shares.get)


def _rate(result):
    """Samples per second of a feasible design (0 otherwise)."""
    return result.get("samples_per_second", 0.0) if result["feasible"] else 0.0


def _step(design, space, key, delta):
    values = space[key]
    i = values.index(design[key]) + delta
    return dict(design, **{key: values[i]}) if 0 <= i < len(values) else None


def _neighbours(design, space, params, budget):
    """Designs with one of ``params`` grown a step; a growth over the area budget is
    paid for by shrinking one other parameter a step (WHAM moves resources from the
    operations off the critical path to the one on it)."""
    from .area_model import asic_area_mm2
    limit = budget.get("area_mm2", float("inf"))
    for key in params:
        if key not in space:
            continue
        grown = _step(design, space, key, +1)
        if grown is None:
            continue
        try:
            within = asic_area_mm2(design_config(grown)) <= limit
        except ConfigError:
            continue
        if within:
            yield grown
            continue
        for other in space:
            if other != key and other not in params:
                traded = _step(grown, space, other, -1)
                if traded is not None:
                    yield traded


def heuristic(network, batch, mode, space, budget, objective="throughput", top_k=1,
              patience=1, progress=False):
    """Critical-path search (see the module docstring). Returns ``best`` (an
    :func:`evaluate_design` dict), ``evaluations`` and ``trace`` (the best score after
    each round)."""
    seen = {}

    def evaluate(design):
        key = _key(design)
        if key not in seen:
            seen[key] = evaluate_design(design, network, batch, mode, budget, objective)
        return seen[key]

    start = {key: values[0] for key, values in space.items()}
    kept = [evaluate(start)]
    best = kept[0]
    trace = [best["score"]]
    best_rate = _rate(best)
    stale = 0
    while True:
        candidates = []
        for design in kept:
            if "critical" not in design:
                continue
            # The critical resource first; the next one too, so that a resource that
            # cannot grow any more does not end the search.
            first = design["critical"]
            order = [first] + [r for r in _RELIEF if r != first]
            grown = 0
            for resource in order:
                for nxt in _neighbours(design["design"], space, _RELIEF[resource], budget):
                    result = evaluate(nxt)
                    if result["feasible"]:
                        candidates.append(result)
                        grown += 1
                if grown:
                    break
        # The next round grows the best new designs (not the old ones again); the search
        # goes on through `patience` rounds without improvement, to leave a local optimum.
        fresh = {_key(d["design"]): d for d in candidates}
        # Growth follows the critical path of the step (throughput, as WHAM's does); the
        # objective picks the best design among everything evaluated.
        kept = sorted(fresh.values(), key=lambda d: -_rate(d))[:top_k]
        if not kept:
            break
        top = max(fresh.values(), key=lambda d: d["score"])
        if _rate(kept[0]) > best_rate or top["score"] > best["score"]:
            if top["score"] > best["score"]:
                best = top
            best_rate, stale = max(best_rate, _rate(kept[0])), 0
        else:
            stale += 1
            if stale > patience:
                break
        trace.append(best["score"])
        if progress:
            print(f"  round {len(trace) - 1}: {best['score']:.4g} ({len(seen)} designs)",
                  flush=True)
    modelled = sum(1 for r in seen.values() if r["modelled"])
    return {"best": best, "evaluations": modelled, "visited": len(seen), "trace": trace}


def exhaustive(network, batch, mode, space, budget, objective="throughput", progress=False):
    """Every point of ``space``; ``best``, ``evaluations`` (points modelled: those within
    the area budget, which is checked first, as :func:`heuristic` does), ``points`` and
    ``feasible`` (points within every budget)."""
    keys = list(space)
    points = list(itertools.product(*(space[k] for k in keys)))
    iterator = points
    if progress:
        from tqdm import tqdm
        iterator = tqdm(points, desc="exhaustive", unit="design")
    best, feasible, modelled = None, 0, 0
    for values in iterator:
        result = evaluate_design(dict(zip(keys, values)), network, batch, mode, budget,
                                 objective)
        feasible += result["feasible"]
        modelled += result["modelled"]
        if best is None or result["score"] > best["score"]:
            best = result
    return {"best": best, "evaluations": modelled, "points": len(points),
            "feasible": feasible}


def format_design(result):
    """One line about an evaluated design."""
    d = result["design"]
    if "samples_per_second" not in result:
        return f"{d}: not evaluated ({result.get('error', 'infeasible')})"
    return (f"{d['core.rows']}x{d['core.cols']} x {d['cluster.cores']} core(s), "
            f"{d['pe.words']} words per bank, AXI {d['host.axi_data_width']} bits, "
            f"{d['core.reduction']} reduction"
            + (f", ring {d['cluster.link_width']} bits" if "cluster.link_width" in d else "")
            + f": {result['samples_per_second']:.4g} samples/s, "
              f"{result['utilization']:.1%} utilization, {result['area_mm2']:.1f} mm², "
              f"{result['watts']:.2f} W, {result['gflops_per_watt']:.1f} GFLOPS/W, "
              f"limited by {result['critical']}")
