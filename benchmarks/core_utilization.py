"""Utilization of a training core in RTL cycles, per phase and per training step.

utilization = useful MACs / (PEs x cycles), with cycles from the core's own counters (the
RTL in Amaranth's simulator) and useful MACs counted as CATERPILLAR counts them (forward,
dX and dW; the weight update is not a MAC):

* forward  ``Y = W X``:        M * N * B MACs, cycles of the FORWARD command;
* dX       ``dX = W^T dY``:    M * N * B MACs, cycles of the BACKWARD command up to the
  cycle the WGRAD starts beside its last drain (``core_counts.handover``);
* dW       ``dW = dY X^T``:    M * N * B MACs, cycles of WGRAD (with the update it carries)
  from its start to the end of the pair;
* step: 3 * M * N * B MACs over ``cycles.total``.

One layer's step is the commands ``LOAD_COL`` (X into the PEs), ``FORWARD`` (ReLU),
``LOAD_ROW`` (dY into the PEs), ``BACKWARD`` (ReLU mask) and ``WGRAD``, issued as the
training programs issue them (``sim.compile.compiler``): ``WGRAD`` with the update fused
into the gradient pass where ``resolve_update`` makes that the default (plain SGD on a core
of one MAC stream; dY then carries ``-lr``), with its separate update pass otherwise or with
``--update separate``. The weights stay in the PEs (loaded before, stored after: neither is
counted).

``cycles.total`` is the step's cycles as the controller runs these five commands: it hands
the WGRAD on beside the BACKWARD's last drain (the core's drain slot; ``CoreRunner`` runs
the pair as the controller does, ``cycles.drain_hidden`` is what that saves) and every
other core command in the cycle the core is ready again, having fetched and checked it
(16 cycles) while the command before ran, so the total is the five commands' cycles back to
back (measured on the RTL, ``CoreRunner``) plus ``cycles.fetch_exposed``, the cycles by
which a fetch and check outlast the command they run beside (``gen.perf``'s controller
model; 0 unless a command is shorter than 17 cycles). The first command's fetch is not
counted: in a training step it runs beside the command before. ``cycles.model`` holds
``sim.golden.core_counts.predict``'s cycles of each command, and the run fails unless they
equal the RTL's, command by command.

A layer "k x the array" is M = k * R outputs and N = k * C inputs. Batch 1 is SGD (GEMV);
batch R is a minibatch (GEMM). Y, dX and the updated weights (``STORE_W`` after the step)
are checked bit for bit against the golden model, so the cycles counted are those of a
correct run. Under the table, each row with a target that it misses gets the split of its
cycles (``where_cycles_go``, from ``sim.golden.core_counts``' closed forms, checked to add
up to the measured total).

    .venv/bin/python benchmarks/core_utilization.py [--preset default] [--scales 1 4 16]
        [--update fused|separate]

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

from chrysalis.gen.perf.commands import RUN_START, command_overhead  # noqa: E402
from chrysalis.gen.perf.network import cluster_stream_cost  # noqa: E402
from chrysalis.gen.perf.stream import drain_beside  # noqa: E402
from chrysalis.gen.spec.checks import ceil_div, ceil_log2  # noqa: E402
from chrysalis.gen.spec.config import get_preset, with_overrides  # noqa: E402
from chrysalis.gen.spec.isa import Opcode  # noqa: E402
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles  # noqa: E402
from chrysalis.sim.compile.compiler import UPDATES, resolve_update  # noqa: E402
from chrysalis.sim.golden import core_counts  # noqa: E402
from chrysalis.sim.golden import core_model as cm  # noqa: E402
from chrysalis.sim.golden import numerics as nx  # noqa: E402
from chrysalis.sim.verify.core_sim import CoreRunner  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

#: The step's commands, in order (the keys of ``cycles``).
PHASES = ("load_x", "forward", "load_dy", "backward", "wgrad")
#: Issue 19's targets for the whole step, by (scale, batch).
TARGETS = {(4, 4): 0.90, (16, 4): 0.97, (16, 1): 0.90}
#: The learning rate of the step.
LR = 0.05


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
    # W and the weights stored back; X and dX; Y and dY.
    lines = 2 * tiles(m, banks) * n + tiles(n, banks) * batch * 2 + tiles(m, banks) * batch * 2
    return with_overrides(config, {"pe.weight_words": pow2(mt * nt),
                                   "pe.act_words": pow2((nt + mt) * batch),
                                   "core.scratchpad_words": pow2(lines * banks)})


def step_commands(config, m, n, batch, mats, fused):
    """The step's commands (dicts of command fields, ``op`` an ``Opcode``), one per
    :data:`PHASES`, as the training programs issue them for a layer."""
    act_x, act_dy = 0, tiles(n, config.core.cols) * batch

    def lines(mat, prefix="sp"):
        return {f"{prefix}_base": mat.base, f"{prefix}_lpc": mat.lines_per_column}

    how = dict(fused=1) if fused else dict(scalar=int(_f32([-LR])[0]))
    return [
        dict(op=Opcode.LOAD_COL, n=n, batch=batch, abase=act_x, **lines(mats["X"])),
        dict(op=Opcode.FORWARD, m=m, n=n, batch=batch, abase=act_x, flag=1, **lines(mats["Y"])),
        dict(op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act_dy, **lines(mats["dY"])),
        dict(op=Opcode.BACKWARD, m=m, n=n, batch=batch, abase=act_dy, flag=1,
             **lines(mats["dX"]), **lines(mats["X"], "sp2")),
        dict(op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=act_x, abase2=act_dy, **how),
    ]


def fetch_exposed(config, commands, core):
    """Cycles the controller adds between ``commands`` run as a stream, whose core cycles
    are ``core``: where fetching and checking a command outlasts the one before
    (``gen.perf.network.cluster_stream_cost``, without the run's start and its first
    fetch)."""
    names = [{**c, "op": c["op"].name} for c in commands]
    overhead, _ = command_overhead(config)
    gap = cluster_stream_cost(config, names)["cycles"] - core - RUN_START - overhead
    assert gap >= 0 and gap == int(gap), gap
    return int(gap)


def run_layer(config, m, n, batch, update, seed=1):
    """One layer's training step on the RTL: cycles per command (checked against the
    closed forms) and whether every result is bit-exact."""
    config = sized(config, m, n, batch)
    R, C = config.core.rows, config.core.cols
    fused = update == "fused"
    num = cm.CoreNumerics.from_config(config)
    rng = np.random.default_rng(seed)
    w = _f32(rng.standard_normal((m, n)) / np.sqrt(n))
    x = _f32(np.maximum(rng.standard_normal((n, batch)), 0))
    # Fused, the gradients carry -lr (the loss gradient's scale is -lr/B).
    dy = _f32(rng.standard_normal((m, batch)) * 0.1 * (-LR if fused else 1.0))
    alloc = Allocator(config.core.scratchpad_words, bank_count(R, C))
    mats = {name: alloc.matrix(rows, cols, name) for name, rows, cols in
            (("W", m, n), ("X", n, batch), ("Y", m, batch), ("dY", m, batch),
             ("dX", n, batch), ("W'", m, n))}
    w_lines = dict(sp_base=mats["W"].base, sp_lpc=mats["W"].lines_per_column)
    commands = step_commands(config, m, n, batch, mats, fused)

    # The controller takes the WGRAD beside the BACKWARD's last drain (the drain slot)
    # where the BACKWARD fills none of what it reads: here it fills nothing.
    names = [{**c, "op": c["op"].name} for c in commands]
    beside = drain_beside(config, names[4], names[3])
    core = CoreRunner(config)
    for name, values in (("W", w), ("X", x), ("dY", dy)):
        core.write(mats[name], values)
    core.command(op=Opcode.LOAD_W, m=m, n=n, **w_lines)
    for phase, command in zip(PHASES, commands):
        core.command(**command, beside=phase == "wgrad" and beside)
        if phase == "forward":
            core.read(mats["Y"])
    core.command(op=Opcode.STORE_W, m=m, n=n, sp_base=mats["W'"].base,
                 sp_lpc=mats["W'"].lines_per_column)
    core.read(mats["dX"])
    core.read(mats["W'"])
    y, dx, w_new = core.run()

    if fused:
        w_expected = cm.fused_weight_gradient(num, w, dy, x)
    else:
        w_expected, _ = cm.update(num, w, cm.weight_gradient(num, dy, x), int(_f32([LR])[0]))
    exact = {"Y": bool(np.array_equal(y, cm.relu(num, cm.forward(num, w, x)))),
             "dX": bool(np.array_equal(dx, cm.relu_mask(num, cm.backward_dx(num, w, dy), x))),
             "W": bool(np.array_equal(w_new, w_expected))}
    measured = dict(zip(PHASES, core.cycles[1:1 + len(PHASES)]))
    model = {phase: core_counts.predict(config, command)["cycles"]
             for phase, command in zip(PHASES, commands)}
    hidden = 0
    if beside:
        # The BACKWARD's share ends where the WGRAD is taken (its hand-over); the WGRAD's is
        # the rest of the pair.
        handover = core_counts.handover(config, names[3])
        pair = max(model["backward"], handover + model["wgrad"])
        hidden = model["backward"] + model["wgrad"] - pair
        model = {**model, "backward": handover, "wgrad": pair - handover}
        measured = {**measured, "backward": handover,
                    "wgrad": measured["backward"] - handover}
    if measured != model:
        raise AssertionError(f"RTL cycles {measured} differ from core_counts {model} "
                             f"({m} x {n}, batch {batch}, update {update!r})")
    gap = fetch_exposed(config, commands, sum(measured.values()))
    cycles = {**measured, "fetch_exposed": gap, "total": sum(measured.values()) + gap,
              "drain_hidden": hidden, "model": {**model, "total": sum(model.values()) + gap}}
    return {"cycles": cycles, "bit_exact": exact, "commands": commands,
            "stall_cycles": core.counters["stall_cycles"]}


def _compute_split(config, command):
    """Cycles of one compute command split as its closed form adds them up."""
    R, C, L, G = config.core.rows, config.core.cols, config.mac.latency, config.pe.acc_regs // 2
    streams = config.mac.macs_per_cycle
    slots = G // streams
    end = L + core_counts.FINISH_EXTRA + 1          # finish() the cycle after, then L + 5
    m, n, batch = command.get("m", 0), command.get("n", 0), command["batch"]
    mt, nt = ceil_div(m, R), ceil_div(n, C)
    mac = core_counts.predict(config, command)["mac_slots"]
    if command["op"] == Opcode.WGRAD:
        groups = ceil_div(mt * nt, G)
        passes = core_counts.wgrad_update_passes(config, command)
        return {"mac": mac, "rounding": groups * slots * batch - mac,
                "update": groups * G * passes, "ends": end}
    fwd = command["op"] == Opcode.FORWARD
    lanes = C if fwd else R
    groups = ceil_div((mt if fwd else nt) * batch, G)
    P = slots * (nt if fwd else mt)
    passes = ceil_log2(lanes) + 1 if config.core.reduction == "tree" else lanes
    D = max(0, L + 1 - slots) + G * passes
    return {"mac": mac, "rounding": groups * P - mac,
            "drain": 1 + D + (groups - 1) * max(0, D + 1 - P), "ends": end,
            "P": P, "D": D, "groups": groups}


def where_cycles_go(config, m, n, batch, commands, gap, hidden=0):
    """The step's PE-cycles by category, from ``sim.golden.core_counts``' closed forms:
    useful MACs, padding, accumulator-group rounding, update passes, exposed drain and
    stall, command ends (``L + 5`` countdown, ``L + 6`` after compute), loads into the PEs
    and fetch not hidden, less the ``hidden`` cycles of the BACKWARD's last drain and end
    that its WGRAD runs beside; plus the drain's ``P`` and ``D`` per compute command."""
    R, C, L = config.core.rows, config.core.cols, config.mac.latency
    pes, streams = R * C, config.mac.macs_per_cycle
    parts = dict.fromkeys(("useful", "padding", "rounding", "update", "drain", "ends",
                           "loads", "fetch"), 0)
    shapes = {}
    for command in commands:
        if command["op"] in (Opcode.LOAD_COL, Opcode.LOAD_ROW):
            cycles = core_counts.predict(config, command)["cycles"]
            parts["loads"] += (cycles - L - core_counts.FINISH_EXTRA) * pes
            parts["ends"] += (L + core_counts.FINISH_EXTRA) * pes
            continue
        split = _compute_split(config, command)
        parts["padding"] += split["mac"] * streams * pes - m * n * batch
        parts["useful"] += m * n * batch
        for key in ("rounding", "update", "drain", "ends"):
            parts[key] += split.get(key, 0) * pes
        if "P" in split:
            shapes[command["op"].name] = {key: split[key] for key in ("P", "D", "groups")}
    parts["fetch"] = gap * pes
    for key in ("drain", "ends"):
        taken = min(hidden * pes, parts[key])
        parts[key] -= taken
        hidden -= taken // pes
    assert hidden == 0, hidden
    return parts, shapes


def measure(config, scales, batches, update):
    R, C = config.core.rows, config.core.cols
    pes = R * C
    rows = []
    for scale in scales:
        for batch in batches:
            m, n = scale * R, scale * C
            start = time.perf_counter()
            run = run_layer(config, m, n, batch, update)
            c = run["cycles"]
            macs = m * n * batch
            parts, shapes = where_cycles_go(sized(config, m, n, batch), m, n, batch,
                                            run["commands"], c["fetch_exposed"],
                                            c["drain_hidden"])
            if sum(parts.values()) != pes * c["total"]:
                raise AssertionError(f"the split {parts} does not add up to {pes} x "
                                     f"{c['total']} PE-cycles")
            row = {
                "rows": R, "cols": C, "scale": scale, "m": m, "n": n, "batch": batch,
                "update": update, "useful_macs": 3 * macs,
                "forward": macs / (pes * c["forward"]),
                "dx": macs / (pes * c["backward"]),
                "dw": macs / (pes * c["wgrad"]),
                "step": 3 * macs / (pes * c["total"]),
                "target": TARGETS.get((scale, batch)),
                "cycles": c, "stall_cycles": run["stall_cycles"],
                "bit_exact": all(run["bit_exact"].values()), "checked": run["bit_exact"],
                "split": {key: value / (pes * c["total"]) for key, value in parts.items()},
                "drain_shape": shapes,
                "seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(f"  {m}x{n} batch {batch}: forward {row['forward']:.1%}, dX {row['dx']:.1%}, "
                  f"dW {row['dw']:.1%}, step {row['step']:.1%} of {c['total']} cycles "
                  f"(bit-exact: {run['bit_exact']}, {row['seconds']} s)", flush=True)
    return rows


_LABELS = {"padding": "padding", "rounding": "accumulator-group rounding",
           "update": "update passes", "drain": "exposed drain and stall",
           "ends": "command ends", "loads": "loads into the PEs",
           "fetch": "fetch not hidden"}


def _limits(config, row):
    """A sentence on what keeps a row under its target, from its closed-form split."""
    L = config.mac.latency
    split = row["split"]
    lost = ", ".join(f"{_LABELS[key]} {split[key]:.1%}"
                     for key in sorted(_LABELS, key=lambda k: -split[k]) if split[key] > 0)
    fb = row["drain_shape"]["FORWARD"]
    drain = (f"FORWARD and BACKWARD each run {fb['groups']} accumulator group(s) of P = "
             f"G*steps = {fb['P']} compute cycles against a drain of D + 1 = {fb['D'] + 1} "
             f"(D = w + G*passes = {fb['D']}): the groups follow each other every "
             f"max(P, D + 1) = {max(fb['P'], fb['D'] + 1)} cycles and the FORWARD's last "
             f"group's drain, 1 + D = {fb['D'] + 1} cycles, is exposed (the BACKWARD's runs "
             f"beside the WGRAD)")
    c = row["cycles"]
    no_loads = row["step"] * c["total"] / (c["total"] - c["load_x"] - c["load_dy"])
    return (f"{row['m']} x {row['n']}, batch {row['batch']}: {row['step']:.1%} against "
            f"{row['target']:.0%}; the other {1 - row['step']:.1%} of the "
            f"{row['cycles']['total']} cycles: {lost}. {drain}; each compute command ends "
            f"L + 6 = {L + 6} cycles after its last slot, each load L + 5 = "
            f"{L + core_counts.FINISH_EXTRA}; without the two loads (hidden by the `fill` "
            f"of the commands before in a middle layer of an MLP) the step would be "
            f"{no_loads:.1%}.")


def table(config, rows):
    update = rows[0]["update"] if rows else "fused"
    lines = [f"| layer (M x N) | × array | batch | forward | dX | dW ({update} update) "
             f"| whole step | target |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        target = f"≥ {r['target']:.0%}" if r["target"] else ""
        lines.append(f"| {r['m']} x {r['n']} | {r['scale']}× | {r['batch']} | {r['forward']:.1%} "
                     f"| {r['dx']:.1%} | {r['dw']:.1%} | {r['step']:.1%} | {target} |")
    text = "\n".join(lines) + "\n"
    missed = [r for r in rows if r["target"] and r["step"] < r["target"]]
    met = [r for r in rows if r["target"] and r["step"] >= r["target"]]
    if met:
        text += "\nMet: " + "; ".join(f"{r['m']} x {r['n']}, batch {r['batch']}: "
                                      f"{r['step']:.1%} (target {r['target']:.0%})"
                                      for r in met) + ".\n"
    for r in missed:
        text += "\nMissed: " + _limits(config, r) + "\n"
    return text


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
    parser.add_argument("--update", choices=UPDATES, default=None,
                        help="WGRAD's update (default: the training programs' default for "
                        "the config, sim.compile.compiler.resolve_update)")
    args = parser.parse_args(argv)
    config = get_preset(args.preset)
    if args.overrides:
        from chrysalis.gen.spec.config import parse_override
        config = with_overrides(config, [parse_override(text) for text in args.overrides])
    update = resolve_update(config, None, args.update)
    batches = args.batches or [1, config.core.rows]
    print(f"core {config.core.rows}x{config.core.cols}, MAC latency {config.mac.latency}, "
          f"{config.pe.acc_regs} accumulators per PE, reduction {config.core.reduction!r}, "
          f"update {update!r}")
    rows = measure(config, args.scales, batches, update)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(rows, indent=2, sort_keys=True)
                                               + "\n")
    text = table(config, rows)
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
