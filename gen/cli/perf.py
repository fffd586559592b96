"""``chrysalis perf`` and ``chrysalis search``: the performance model on the command line.

``perf`` prints, for one training step of a network on a config, every layer's cycles per
phase, utilization and energy (``gen.perf``), with the tiling of the compiler or the
per-layer best (``gen.perf.mapping``). ``search`` looks for the architecture with the best
throughput (or throughput per watt) under area and power budgets (``gen.perf.search``).
"""

import json
from pathlib import Path

from chrysalis.gen.spec.config import ConfigError

from .app import Command, add_config_arguments, check_writable, config_from_args, register
from .train import CNN_BATCH

__all__ = ["PERF", "SEARCH"]

_PHASES = ("forward", "loss", "backward", "wgrad", "update", "load", "dma", "gather")


def _phase_cycles(phases):
    """Cycles per printed phase: the model's ``wgrad_update`` split into the weight
    gradient and the update passes (``update_cycles``)."""
    out = {p: phases[p]["cycles"] for p in ("forward", "loss", "backward", "load", "dma",
                                             "gather")}
    update = phases["wgrad_update"]["update_cycles"]
    out["wgrad"] = phases["wgrad_update"]["cycles"] - update
    out["update"] = update
    return {p: out[p] for p in _PHASES}


def _configure_perf(parser):
    add_config_arguments(parser, required=False)
    parser.add_argument("--network", required=True, metavar="NAME",
                        help="a built-in network (digits-mlp, digits-cnn, mnist-500x3, vgg16, "
                             "vgg16-cifar10, resnet18, resnet18-cifar10, ...) or MLP sizes "
                             "such as 784-500-10")
    parser.add_argument("--batch", type=int, default=None, metavar="N",
                        help="samples per step (default 16, 8 for a convolutional network; "
                             "sgd and cp use 1)")
    parser.add_argument("--mode", default="mbgd",
                        choices=("sgd", "mbgd", "cp", "data", "model"),
                        help="training mode (default mbgd); several cores: model parallel "
                             "for sgd/mbgd/model, data parallel, or continuous propagation")
    parser.add_argument("--cores", type=int, default=None, metavar="N",
                        help="cores on the ring (overrides cluster.cores)")
    parser.add_argument("--mapping", default="best", choices=("best", "default"),
                        help="per-layer best tiling (gen.perf.mapping, default) or the "
                             "compiler's tiling")
    parser.add_argument("--update", choices=("fused", "separate"), default=None,
                        help="the SGD update: 'fused' into the weight-gradient pass or a "
                             "'separate' pass (default, as chrysalis train: fused with "
                             "mac.dual = single except --mode data on several cores, whose "
                             "gradients are all-reduced before the update; a batch split "
                             "keeps the separate update; docs/perf_model.md)")
    parser.add_argument("--energy", metavar="FILE", default=None,
                        help="a TOML file overriding the energy table (docs/energy.md)")
    parser.add_argument("--reuse-hit-rate", type=float, default=0.0, metavar="H",
                        help="reuse-cache hits per lookup (a config with a reuse cache; "
                             "default 0)")
    parser.add_argument("--low-fraction", type=float, default=0.5, metavar="F",
                        help="share of the products a dual-precision PE makes in its "
                             "low-precision multiplier (default 0.5)")
    parser.add_argument("--clock-mhz", type=float, default=1000.0,
                        help="clock for time and power figures (default 1000)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write every figure to this JSON file (its folder is made "
                             "when missing)")


def _config(args):
    from chrysalis.gen.spec.config import with_overrides
    config = config_from_args(args)
    if args.cores is not None:
        config = with_overrides(config, {"cluster.cores": args.cores})
    return config


def _check_batch(batch):
    if batch < 1:
        raise ConfigError(f"--batch must be a positive integer, not {batch!r}")


def _check_rates(clock_hz, reuse_hit_rate, low_fraction):
    for name, value in (("--reuse-hit-rate", reuse_hit_rate),
                        ("--low-fraction", low_fraction)):
        if not 0 <= value <= 1:
            raise ConfigError(f"{name} must be in [0, 1], not {value!r}")
    if not clock_hz > 0:
        raise ConfigError(f"--clock-mhz must be positive, not {clock_hz / 1e6!r}")


def _write_json(path, data, **options):
    """Write ``data`` as the JSON of ``perf``/``search`` into ``path``, checked beforehand by
    :func:`check_writable`; its missing folders are made now, once the run has succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, **options)
        handle.write("\n")


def _layer_energy(config, table, layer, copies, rates):
    from chrysalis.gen.perf.energy_model import energy_of
    return energy_of(config, {"phases": layer["phases"], "cycles": layer["cycles"],
                              "useful_macs": max(1, layer["useful_macs"]),
                              "core_copies": copies}, table, **rates)["total_pj"]


def perf_report(config, network, batch, mode, mapping="best", energy_path=None,
                clock_hz=1e9, reuse_hit_rate=0.0, low_fraction=0.5, update=None):
    """Everything ``chrysalis perf`` prints, as a dict (the JSON it writes); ``update``
    ``None`` is the programs' default (``gen.perf.network.default_update``)."""
    _check_rates(clock_hz, reuse_hit_rate, low_fraction)
    rates = {"reuse_hit_rate": reuse_hit_rate, "low_fraction": low_fraction}
    from chrysalis.gen.perf import energy
    from chrysalis.gen.perf.mapping import optimize
    from chrysalis.gen.perf import energy_of, network_cost
    from chrysalis.gen.perf.network import check_mode_update, default_update
    update = default_update(config, mode) if update is None else update
    check_mode_update(config, mode, update)
    mappings = None
    if mapping == "best":
        mappings, _ = optimize(config, network, batch, mode, update=update)
    result = network_cost(config, network, batch, mode, mappings, update=update)
    table = energy.load(energy_path, config)
    total = energy_of(config, result, table, clock_hz=clock_hz, **rates)
    peak = config.core.pes * config.mac.macs_per_cycle
    layers = []
    for layer in result["layers"]:
        mp = layer["mapping"]
        layers.append({
            "name": layer["name"], "cycles": layer["cycles"],
            "phase_cycles": _phase_cycles(layer["phases"]),
            "utilization": layer["useful_macs"] / (peak * layer["cycles"]),
            "energy_pj": _layer_energy(config, table, layer, result["core_copies"], rates),
            "mapping": {"tm": mp.tm, "tn": mp.tn, "tb": mp.tb, "order": mp.order},
            "extensions": layer["extensions"]})
    return {"network": network.name, "config": config.name, "mode": mode,
            "cores": config.cluster.cores, "batch": result["batch"], "mapping": mapping,
            "update": update, "cycles_per_step": result["cycles"],
            "seconds_per_step": result["cycles"] / clock_hz,
            "samples_per_second": result["samples"] * clock_hz / result["cycles"],
            "utilization": result["utilization"], "useful_macs": result["useful_macs"],
            "collective_cycles": result["collective_cycles"],
            # The fetches the controller does while a core runs the command before, the
            # loads a core runs beside a WGRAD, the WGRADs beside a drain and the
            # collectives beside a WGRAD: the step is the layers' cycles less these.
            "fetch_hidden_cycles": result.get("fetch_hidden_cycles", 0),
            "side_hidden_cycles": result.get("side_hidden_cycles", 0),
            "drain_hidden_cycles": result.get("drain_hidden_cycles", 0),
            "ring_hidden_cycles": result.get("ring_hidden_cycles", 0),
            "prefetch_hidden_cycles": result.get("prefetch_hidden_cycles", 0),
            "phase_cycles": _phase_cycles(result["phases"]),
            "energy_pj": total["total_pj"], "gflops_per_watt": total["gflops_per_watt"],
            "watts": total["watts"], "energy_per_event_pj": total["per_event"],
            "weights_resident": result["weights_resident"], "on_chip": result["on_chip"],
            "layers": layers}


def _fmt(value):
    return f"{value:.3g}" if value >= 1e5 else f"{value:.0f}"


def format_perf(report):
    """The report as the text ``chrysalis perf`` prints."""
    head = ["layer", "tile tm x tn x tb", *_PHASES, "total", "util", "energy (uJ)"]
    lines = [f"{report['network']} on {report['config']}: mode {report['mode']}, "
             f"{report['cores']} core(s), batch {report['batch']}, {report['mapping']} "
             f"mapping, {report['update']} update",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layer in report["layers"]:
        mp = layer["mapping"]
        tile = f"{mp['tm']} x {mp['tn']} x {mp['tb']} ({mp['order']})"
        cells = [layer["name"], tile] + [_fmt(layer["phase_cycles"][p]) for p in _PHASES]
        cells += [_fmt(layer["cycles"]), f"{layer['utilization']:.1%}",
                  f"{layer['energy_pj'] / 1e6:.4g}"]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["**step**", ""] + [_fmt(report["phase_cycles"][p]) for p in _PHASES]
    cells += [_fmt(report["cycles_per_step"]), f"{report['utilization']:.1%}",
              f"{report['energy_pj'] / 1e6:.4g}"]
    lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"cycles/step {_fmt(report['cycles_per_step'])} "
                 f"(ring collectives {_fmt(report['collective_cycles'])}), "
                 f"{report['samples_per_second']:.4g} samples/s, utilization "
                 f"{report['utilization']:.1%}, {report['energy_pj'] / 1e6:.4g} uJ/step, "
                 f"{report['gflops_per_watt']:.1f} GFLOPS/W, {report['watts']:.3g} W")
    extensions = sorted({e for layer in report["layers"] for e in layer["extensions"]})
    if extensions:
        lines.append(f"modelled beyond the RTL: {', '.join(extensions)} "
                     f"(docs/perf_model.md)")
    return "\n".join(lines)


def _conv_model(name):
    """The built-in ``gen.spec.model.Model`` of ``name`` if it has convolutions, else
    ``None``."""
    from chrysalis.gen.spec.model import MODELS
    model = MODELS[name]() if name in MODELS else None
    return model if model is not None and any(t.is_conv for t in model.trainable) else None


def cnn_report(config, model, batch):
    """The compiled program's cost of one step (``gen.perf.cnn.cnn_step``) as a dict:
    per layer its cycles by phase (``gather`` among them), its useful MACs and
    utilization; ``cycles_per_step`` is the RTL's ``CYCLES`` of the step."""
    from chrysalis.gen.perf.cnn import cnn_step
    step = cnn_step(config, model, batch)
    phases = lambda p: {name: entry["cycles"] for name, entry in p.items()}
    return {"batch": batch, "cycles_per_step": step["cycles"],
            "hidden_cycles": step["hidden_cycles"], "io_cycles": step["io"]["cycles"],
            "utilization": step["utilization"], "useful_macs": step["useful_macs"],
            "phase_cycles": phases(step["phases"]),
            "layers": [{"name": layer["name"], "cycles": layer["cycles"],
                        "phase_cycles": phases(layer["phases"]),
                        "useful_macs": layer["useful_macs"],
                        "utilization": layer["utilization"]} for layer in step["layers"]]}


_CNN_PHASES = ("gather", "forward", "loss", "backward", "wgrad_update", "load", "dma")


def format_cnn(report, name, config_name):
    """The compiled program's table (``cnn_report``) as ``chrysalis perf`` prints it."""
    head = ["layer", *_CNN_PHASES, "total", "util"]
    lines = [f"{name} as compiled for the RTL (sim.compile.cnn_program) on {config_name}: "
             f"batch {report['batch']}, GATHER included",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layer in report["layers"]:
        cells = [layer["name"]] + [_fmt(layer["phase_cycles"][p]) for p in _CNN_PHASES]
        cells += [_fmt(layer["cycles"]), f"{layer['utilization']:.1%}"]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["**step**"] + [_fmt(report["phase_cycles"][p]) for p in _CNN_PHASES]
    cells += [_fmt(report["cycles_per_step"]), f"{report['utilization']:.1%}"]
    lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"cycles/step {_fmt(report['cycles_per_step'])} (the RTL's CYCLES: the "
                 f"minibatch and logits DMA {_fmt(report['io_cycles'])}, "
                 f"{_fmt(report['hidden_cycles'])} hidden by the controller's overlap), "
                 f"utilization {report['utilization']:.1%}")
    return "\n".join(lines)


def _run_perf(args):
    from chrysalis.gen.spec.networks import get_network
    model = _conv_model(args.network)
    if args.batch is None:
        args.batch = CNN_BATCH if model is not None else 16
    _check_batch(args.batch)
    config = _config(args)
    try:
        network = get_network(args.network)
    except ValueError as error:
        raise ConfigError(f"--network: {error}") from None
    _check_rates(args.clock_mhz * 1e6, args.reuse_hit_rate, args.low_fraction)
    if args.json:
        # Refused now, not after the model has printed everything.
        check_writable(args.json, "--json")
    try:
        report = perf_report(config, network, args.batch, args.mode, args.mapping,
                             args.energy, args.clock_mhz * 1e6, args.reuse_hit_rate,
                             args.low_fraction, args.update)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    print(format_perf(report))
    if model is not None and args.mode == "mbgd" and config.cluster.cores == 1:
        # The layer model above costs the dense commands of its own best tiling and the
        # GATHERs; the compiled program is what the RTL runs, command by command.
        print()
        try:
            report["compiled"] = cnn_report(config, model, args.batch)
            print(format_cnn(report["compiled"], model.name, config.name))
        except ValueError as error:
            # The layer model stands; the RTL cannot run this step.
            report["compiled"] = {"error": str(error)}
            print(f"not compiled for the RTL: {error}")
    if args.json:
        _write_json(args.json, report)
    return 0


PERF = register(Command(
    name="perf",
    help="model cycles, utilization and energy of training a network",
    description="Model one training step of a network on a config: per layer and per phase "
                "(forward, loss, backward, weight gradient and update, loads into the PEs, "
                "DMA) the cycles, the utilization and the energy (gen.perf, gen.perf.energy). "
                "The single-core model is validated against the RTL counters "
                "(benchmarks/perf_model_validation.py), and clusters against Verilator runs of "
                "2 to 4 cores (benchmarks/cluster.py).",
    epilog="examples:\n"
           "  chrysalis perf --network vgg16 --preset default\n"
           "  chrysalis perf --network resnet18-cifar10 --config my.toml --batch 32\n"
           "  chrysalis perf --network mnist-500x3 --mode cp --cores 4 --json cp.json",
    configure=_configure_perf,
    run=_run_perf,
))


def _configure_search(parser):
    parser.add_argument("--network", default="mnist-500x3", metavar="NAME",
                        help="the workload (default mnist-500x3)")
    parser.add_argument("--batch", type=int, default=16, metavar="N")
    parser.add_argument("--mode", default="mbgd", choices=("sgd", "mbgd", "cp", "data",
                                                           "model"))
    parser.add_argument("--area-mm2", type=float, default=103.2,
                        help="area budget at 45 nm (default 103.2, CATERPILLAR's smaller "
                             "chip)")
    parser.add_argument("--power-w", type=float, default=None,
                        help="power budget in watts (default none)")
    parser.add_argument("--objective", default="throughput",
                        choices=("throughput", "perf_per_watt"))
    parser.add_argument("--space", default="small", choices=("small", "large"),
                        help="the design space (gen.perf.search.SPACES)")
    parser.add_argument("--top-k", type=int, default=1,
                        help="designs kept per round (default 1)")
    parser.add_argument("--exhaustive", action="store_true",
                        help="also search the whole space, for comparison")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the designs found to this JSON file (its folder is "
                             "made when missing)")


def _check_found(best, args):
    """Refuse a search that found no design within the budgets, before anything is printed
    or written (``--exhaustive`` included: a comparison with nothing says nothing). The
    search starts from the smallest design of the space and keeps it as its best only when
    nothing it grew fits: over the area budget, no design of the space fits it; over the
    power budget, none that the search grew did; not modelled, the network does not map
    on it."""
    if best["feasible"]:
        return
    area = best.get("area_mm2")
    if area is not None and area > args.area_mm2:
        raise ConfigError(f"--area-mm2 fits no design of the {args.space} space (the smallest "
                          f"needs {area:.3g} mm²), not {args.area_mm2!r}")
    watts = best.get("watts")
    if watts is not None and args.power_w is not None and watts > args.power_w:
        raise ConfigError(f"--power-w fits no design the search found (the smallest draws "
                          f"{watts:.3g} W), not {args.power_w!r}")
    # Neither budget: the smallest design could not be modelled (the network does not map
    # on it), so the search had nothing to grow from.
    raise ConfigError(f"the search found no design that runs --network {args.network} with "
                      f"--batch {args.batch}: {best.get('error', 'none was evaluated')}")


def _run_search(args):
    from chrysalis.gen.spec.networks import get_network
    from chrysalis.gen.perf.search import SPACES, exhaustive, format_design, heuristic
    _check_batch(args.batch)
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be a positive integer, not {args.top_k!r}")
    if not args.area_mm2 > 0 or (args.power_w is not None and not args.power_w > 0):
        bad = args.area_mm2 if not args.area_mm2 > 0 else args.power_w
        raise ConfigError(f"budgets must be positive, not {bad!r}")
    try:
        network = get_network(args.network)
    except ValueError as error:
        raise ConfigError(f"--network: {error}") from None
    if args.json:
        check_writable(args.json, "--json")
    budget = {"area_mm2": args.area_mm2, "power_w": args.power_w}
    space = SPACES[args.space]
    found = heuristic(network, args.batch, args.mode, space, budget, args.objective,
                      top_k=args.top_k)
    _check_found(found["best"], args)
    out = {"heuristic": found}
    print(f"critical-path search: {found['evaluations']} evaluations")
    print(format_design(found["best"]))
    if args.exhaustive:
        full = exhaustive(network, args.batch, args.mode, space, budget, args.objective)
        out["exhaustive"] = full
        gap = 1 - found["best"]["score"] / full["best"]["score"]
        print(f"exhaustive: {full['evaluations']} evaluations; the search is "
              f"{gap:.2%} from the optimum with {full['evaluations'] / found['evaluations']:.1f}x "
              f"fewer evaluations")
        print(format_design(full["best"]))
    if args.json:
        _write_json(args.json, out, default=str)
    return 0


SEARCH = register(Command(
    name="search",
    help="search the architecture for a network under area and power budgets",
    description="WHAM-style architecture search: evaluate a design with the performance "
                "model, find the resource on its critical path (compute, reduction drain, "
                "loads, DMA, ring) and grow it, keeping the top-k designs per step, under "
                "an area budget (gen.perf.area_model, 45 nm) and a power budget; optionally an "
                "exhaustive search of the same space for comparison.",
    epilog="examples:\n"
           "  chrysalis search --network mnist-500x3 --area-mm2 103.2\n"
           "  chrysalis search --network vgg16-cifar10 --objective perf_per_watt "
           "--exhaustive",
    configure=_configure_search,
    run=_run_search,
))
