"""The reuse cache on digits training: hits, multiplies avoided, accuracy, area and energy.

Every training run is ``sim.train.single.train`` on the golden machine model (bit-exact with the
RTL, hits included: ``tests/hw/test_core_reuse.py``, ``tests/sim/verify/test_cocotb_accelerator.py``)
of the default preset with a reuse cache per PE, training the 64-32-10 MLP on the digits
next to the float32 NumPy reference from the same initial weights on the same minibatches.

Parts (``--parts``, default all):

``counters``
    one epoch per (table size, fixed strength k in 1, 4, 6, 7, 8): the hit rate (hits / lookups)
    and the multiplies avoided, as a fraction of the multiplies the same run needs without
    a cache (products with no zero operand) and of all MACs.
``accuracy``
    full training (``--epochs``, ``--seeds``) with a fixed k (``--strengths``, 0 = off) and
    with the adaptive schedule (``sim.golden.reuse_schedule.AdaptiveStrength``): the final test
    accuracy against the float32 reference and against the cache off, and the multiplies
    avoided over the whole training. The fixed-k runs make a frontier (accuracy against
    multiplies avoided); the adaptive run is on or above it when no fixed-k interpolation
    between neighbours does better at its fraction avoided.
``area``
    ECP5 synthesis (Yosys, classic ``abc -lut 4`` as in ``benchmarks/dual_pe_area.py``) of a
    PE without and with caches of several sizes: LUT4 and FF, and the cache's own modules
    (``reuse_tags``, ``reuse_values``).
``energy``
    the per-event energy table (``gen.perf.energy``, 45 nm) times the counters of the accuracy
    runs: energy per training step with the cache against without it.

A reuse hit changes no cycle count (the MAC keeps its timing), so no speed-up is claimed.

    .venv/bin/python benchmarks/reuse.py [--parts counters accuracy area core-area energy]
        [-j 2] [--epochs 12] [--seeds 0 1] [--add-seeds] [--entries 16] [--ways 4]
        [--batch 16] [--acc-regs 32] [--out NAME] [--render [--merge NAME ...]]

Results: ``benchmarks/results/reuse.json`` and ``.md``.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import sys
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "build" / "benchmarks" / "reuse"
PRESET = "default"
TABLE_SIZES = (4, 16, 64)
COUNTER_STRENGTHS = (1, 4, 6, 7, 8)
ADAPTIVE = "adaptive"
AREA_POINTS = (0, 4, 16, 64)


def config_for(entries, ways, acc_regs=None):
    from chrysalis.gen.spec.config import get_preset, with_overrides
    overrides = {"pe.reuse_entries": entries, "pe.reuse_ways": min(ways, entries) if entries else 1}
    if acc_regs:
        overrides["pe.acc_regs"] = acc_regs
    return with_overrides(get_preset(PRESET), overrides)


def _fractions(counters):
    """Hit rate and multiplies avoided from a run's counters."""
    c = counters
    made = c["high_products"] + c["low_products"]            # multiplies done
    needed = made + c["multiplies_avoided"]                   # without a cache
    macs = made + c["bypass_products"] + c["reuse_hits"]
    return {"lookups": c["reuse_lookups"], "hits": c["reuse_hits"],
            "multiplies_avoided": c["multiplies_avoided"], "multiplies_needed": needed,
            "macs": macs,
            "hit_rate": c["reuse_hits"] / c["reuse_lookups"] if c["reuse_lookups"] else 0.0,
            "avoided_of_needed": c["multiplies_avoided"] / needed if needed else 0.0,
            "avoided_of_macs": c["multiplies_avoided"] / macs if macs else 0.0}


def train_run(entries, ways, reuse, seed, epochs, batch, acc_regs):
    """One training run; its accuracy, the schedule's strengths and the counters."""
    from chrysalis.sim.golden.reuse_schedule import AdaptiveStrength
    from chrysalis.sim.train.single import train
    config = config_for(entries, ways, acc_regs)
    schedule = AdaptiveStrength() if reuse == ADAPTIVE else reuse
    t0 = time.perf_counter()
    result = train(config, epochs=epochs, batch=batch, seed=seed, reuse=schedule,
                   progress=False, log=None)
    counters = {k: int(v) for k, v in result.counters.items()}
    return {"entries": entries, "ways": min(ways, entries), "reuse": reuse, "seed": seed,
            "epochs": epochs, "batch": batch, "acc_regs": config.pe.acc_regs,
            "schedule": result.reuse,
            "strengths": [h.reuse_strength for h in result.history],
            "acc": result.final.acc, "ref_acc": result.final.ref_acc,
            "loss": result.final.loss, "steps": result.steps,
            "counters": counters, **_fractions(counters),
            "wall_s": round(time.perf_counter() - t0, 1)}


def area_point(entries, ways, policy="single"):
    """ECP5 synthesis of one PE (inputs and outputs registered, ``hw.harness``)."""
    from amaranth.back import verilog

    from chrysalis.gen.spec.config import with_overrides
    from chrysalis.gen.flows.synth import (
        SynthError, synth_ecp5, synth_ecp5_modules, wrapper_ffs)
    from chrysalis.hw.core import Core
    from chrysalis.hw.harness import InputRegisters
    from chrysalis.hw.pe import PE

    overrides = {}
    if policy != "single":
        overrides = {"mac.dual": policy, "pe.acc_regs": 28}
    config = with_overrides(config_for(entries, ways), overrides)
    core = Core(config)
    core._MustUse__silence = True
    name = f"pe_{policy.replace('-', '_')}_reuse{entries}"
    workdir = WORK / "area" / name
    workdir.mkdir(parents=True, exist_ok=True)
    top = InputRegisters(PE(config.mac.operand, **core.pe_args), outputs=True)
    (workdir / f"{name}.v").write_text(verilog.convert(top, name=name, emit_src=False))
    row = {"policy": policy, "entries": entries, "ways": min(ways, entries) if entries else 0}
    try:
        synth = synth_ecp5(workdir / f"{name}.v", name, workdir, lut_mapper="abc")
        wrapper_ff = wrapper_ffs(synth["netlist"], name)
        modules = synth_ecp5_modules(workdir / f"{name}.v", name, workdir, lut_mapper="abc")
    except SynthError as error:
        return {**row, "error": str(error)}
    cache = {"lut4": 0, "ff": 0}
    for module, res in modules.items():
        if ".reuse_" in module:
            cache["lut4"] += res["lut4"]
            cache["ff"] += res["ff"]
    return {**row, "lut4": synth["lut4"], "ff": synth["ff"] - wrapper_ff, "dsp": synth["dsp"],
            "bram": synth["bram"], "cache_lut4": cache["lut4"], "cache_ff": cache["ff"]}


#: A 4x4 core small enough to synthesize quickly (the PEs' logic is what differs).
CORE_OVERRIDES = {"pe.weight_words": 256, "pe.act_words": 256, "core.scratchpad_words": 2048}


def core_area_point(entries, ways, scope):
    """ECP5 synthesis of a 4x4 core (``CORE_OVERRIDES``) with caches of one scope: the cost
    of the tags per PE against tags per line."""
    from amaranth.back import verilog

    from chrysalis.gen.spec.config import with_overrides
    from chrysalis.gen.flows.synth import SynthError, synth_ecp5_modules
    from chrysalis.hw.core import Core

    config = with_overrides(config_for(entries, ways), {**CORE_OVERRIDES,
                                                         "pe.reuse_scope": scope})
    name = f"core_reuse{entries}_{scope}"
    workdir = WORK / "area" / name
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.v").write_text(verilog.convert(Core(config), name=name,
                                                       emit_src=False))
    row = {"scope": scope if entries else "-", "entries": entries,
           "ways": min(ways, entries) if entries else 0}
    try:
        # One synthesis without flattening: the totals and the cache's share from the same
        # netlist (a core takes long enough under Yosys to do it once).
        modules = synth_ecp5_modules(workdir / f"{name}.v", name, workdir, lut_mapper="abc")
    except SynthError as error:
        return {**row, "error": str(error)}
    total = {"lut4": 0, "ff": 0, "dsp": 0, "bram": 0}
    cache = {"lut4": 0, "ff": 0}
    for module, res in modules.items():
        for key in total:
            total[key] += res[key]
        if ".reuse_" in module:
            cache["lut4"] += res["lut4"]
            cache["ff"] += res["ff"]
    return {**row, **total, "cache_lut4": cache["lut4"], "cache_ff": cache["ff"]}


def energy_rows(runs):
    """pJ per training step from the accuracy runs' counters, per schedule (mean over
    seeds), against the cache off."""
    from chrysalis.gen.perf import energy
    rows = {}
    for run in runs:
        config = config_for(run["entries"], run["ways"], run["acc_regs"])
        table = energy.load(config=config)
        total = energy.estimate(table, energy.events(config, run["counters"])).total_pj
        rows.setdefault(str(run["reuse"]), []).append(total / run["steps"])
    out = {key: sum(v) / len(v) for key, v in rows.items()}
    base = out.get("0")
    return [{"reuse": key, "pj_per_step": value,
             "saved": None if not base else 1 - value / base} for key, value in out.items()]


def frontier_check(rows):
    """Whether the adaptive schedule is on or above the fixed-k frontier: its accuracy is
    at least the accuracy interpolated between the fixed-k points that bracket its
    fraction of multiplies avoided (the upper envelope)."""
    fixed = sorted((r["avoided_of_needed"], r["acc"]) for r in rows if r["reuse"] != ADAPTIVE)
    adaptive = [r for r in rows if r["reuse"] == ADAPTIVE]
    if not adaptive or len(fixed) < 2:
        return None
    a = adaptive[0]
    x = a["avoided_of_needed"]
    best = None
    for (x0, y0), (x1, y1) in zip(fixed, fixed[1:]):
        if x0 <= x <= x1 and x1 > x0:
            y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            best = y if best is None else max(best, y)
    # Any fixed point that avoids at least as much and is at least as accurate dominates.
    dominated = any(fx >= x and fy > a["acc"] for fx, fy in fixed)
    if best is None:                     # outside the fixed range: compare with the ends
        best = max((fy for fx, fy in fixed if fx >= x), default=None)
    return {"adaptive_avoided": x, "adaptive_acc": a["acc"], "frontier_acc": best,
            "on_or_above": (not dominated) and (best is None or a["acc"] >= best - 1e-12)}


def summarize_accuracy(runs):
    """Mean over seeds per schedule."""
    by = {}
    for r in runs:
        by.setdefault(str(r["reuse"]), []).append(r)
    rows = []
    off = by.get("0")
    off_acc = sum(r["acc"] for r in off) / len(off) if off else None
    for key, group in by.items():
        n = len(group)
        needed = sum(r["multiplies_needed"] for r in group)
        row = {"reuse": group[0]["reuse"], "seeds": [r["seed"] for r in group],
               "schedule": group[0]["schedule"],
               "strengths": group[0]["strengths"],
               "acc": sum(r["acc"] for r in group) / n,
               "ref_acc": sum(r["ref_acc"] for r in group) / n,
               "accs": [r["acc"] for r in group],
               "hit_rate": sum(r["hits"] for r in group) / max(1, sum(r["lookups"] for r in group)),
               "avoided_of_needed": sum(r["multiplies_avoided"] for r in group) / needed,
               "avoided_of_macs": (sum(r["multiplies_avoided"] for r in group)
                                   / sum(r["macs"] for r in group))}
        row["vs_ref_points"] = 100 * (row["acc"] - row["ref_acc"])
        row["vs_off_points"] = None if off_acc is None else 100 * (row["acc"] - off_acc)
        rows.append(row)
    order = {str(k): i for i, k in enumerate(range(32))}
    rows.sort(key=lambda r: order.get(str(r["reuse"]), 99))
    return rows


def markdown(result):
    lines = ["# The reuse cache on digits training", "",
             f"Machine: {result['machine']}; {result['date']}.", "",
             "Golden machine model (bit-exact with the RTL, hits included) of the "
             f"`{PRESET}` preset (4x4 bf16 core) with a reuse cache per PE; 64-32-10 MLP, "
             f"lr 0.1, plain SGD. \"Avoided\" is the multiplies the "
             "cache avoided (hits of products with no zero operand) over the multiplies the "
             "same run needs without a cache (products with no zero operand); \"of MACs\" is "
             "over every MAC (zero products, which need no multiplier with or without a "
             "cache, included). Accuracy deltas are measured differences, not bit-exact "
             "comparisons; the test set has 450 images (one image is 0.22 points).", ""]
    def command(part, rows):
        r = rows[0]
        extra = f" --batch {r['batch']} --acc-regs {r['acc_regs']}" if "batch" in r else ""
        if "accuracy" in part:
            extra += (f" --entries {result['entries']} --ways {result['ways']} --epochs "
                      f"{result['epochs']} --seeds {' '.join(map(str, result['seeds']))}")
        return f"Command: `.venv/bin/python benchmarks/reuse.py --parts {part}{extra}`."

    if "counters" in result:
        rows = result["counters"]
        lines += [f"## Hits and multiplies avoided vs k and table size "
                  f"(one epoch, seed 0, {rows[0]['ways']} ways or fewer, batch "
                  f"{rows[0].get('batch')}, {rows[0].get('acc_regs')} accumulators)", "",
                  command("counters", rows), "",
                  "| entries | k | hit rate | avoided | of MACs | test acc after 1 epoch |",
                  "|---|---|---|---|---|---|"]
        for r in result["counters"]:
            lines.append(f"| {r['entries']} | {r['reuse']} | {r['hit_rate']:.1%} | "
                         f"{r['avoided_of_needed']:.1%} | {r['avoided_of_macs']:.1%} | "
                         f"{r['acc']:.2%} |")
        lines.append("")
    if "accuracy" in result:
        acc = result["accuracy"]
        runs = result["accuracy_runs"]
        lines += [f"## Accuracy vs k, and the adaptive schedule ({result['entries']} entries, "
                  f"{result['ways']} ways; {result['epochs']} epochs; batch "
                  f"{runs[0]['batch']}, {runs[0]['acc_regs']} accumulators; seeds "
                  f"{', '.join(map(str, result['seeds']))})", "",
                  command("accuracy energy", runs), "",
                  "| reuse | strength per epoch (seed 0) | test acc (mean) | vs float32 | "
                  "vs off | hit rate | avoided | of MACs |", "|---|---|---|---|---|---|---|---|"]
        for r in acc:
            off = "" if r["vs_off_points"] is None else f"{r['vs_off_points']:+.2f}"
            lines.append(f"| {r['reuse']} | {' '.join(map(str, r['strengths']))} | "
                         f"{r['acc']:.2%} | {r['vs_ref_points']:+.2f} | {off} | "
                         f"{r['hit_rate']:.1%} | {r['avoided_of_needed']:.1%} | "
                         f"{r['avoided_of_macs']:.1%} |")
        f = result.get("frontier")
        if f:
            lines += ["", f"Adaptive: {f['adaptive_avoided']:.1%} avoided at "
                      f"{f['adaptive_acc']:.2%}; the fixed-k frontier there: "
                      + ("n/a" if f["frontier_acc"] is None else f"{f['frontier_acc']:.2%}")
                      + f"; on or above it: {'yes' if f['on_or_above'] else 'no'}."]
        lines.append("")
    if "area" in result:
        lines += ["## Area of a PE (ECP5, synthesis, classic abc)", "",
                  "Command: `.venv/bin/python benchmarks/reuse.py --parts area`.", "",
                  "| policy | entries | ways | LUT4 | FF | cache LUT4 | cache FF | "
                  "LUT4 vs no cache | FF vs no cache |", "|---|---|---|---|---|---|---|---|---|"]
        base = {r["policy"]: r for r in result["area"] if r["entries"] == 0 and "error" not in r}
        for r in result["area"]:
            if "error" in r:
                lines.append(f"| {r['policy']} | {r['entries']} | {r['ways']} | failed: "
                             f"{r['error'][:60]} | | | | | |")
                continue
            b = base.get(r["policy"])
            lr = f"{r['lut4'] / b['lut4']:.2f}x" if b else ""
            fr = f"{r['ff'] / b['ff']:.2f}x" if b else ""
            lines.append(f"| {r['policy']} | {r['entries']} | {r['ways']} | {r['lut4']} | "
                         f"{r['ff']} | {r['cache_lut4']} | {r['cache_ff']} | {lr} | {fr} |")
        lines.append("")
    if "core_area" in result:
        lines += ["## Area of a 4x4 core: tags per PE or per line (ECP5, synthesis, classic "
                  "abc)", "",
                  "Command: `.venv/bin/python benchmarks/reuse.py --parts core-area`. The "
                  "core has small banks (" + ", ".join(f"`{k} = {v}`"
                                                       for k, v in CORE_OVERRIDES.items())
                  + ") so that it synthesizes in minutes; the caches do not depend on them. One synthesis "
                  "without flattening (`synth_ecp5 -noflatten`) gives the totals and the "
                  "reuse modules' share. "
                  "\"cache\" counts the reuse modules (tags and values) wherever they are.", "",
                  "| scope | entries | ways | LUT4 | FF | cache LUT4 | cache FF |",
                  "|---|---|---|---|---|---|---|"]
        for r in result["core_area"]:
            if "error" in r:
                lines.append(f"| {r['scope']} | {r['entries']} | {r['ways']} | failed | | | |")
                continue
            lines.append(f"| {r['scope']} | {r['entries']} | {r['ways']} | {r['lut4']} | "
                         f"{r['ff']} | {r['cache_lut4']} | {r['cache_ff']} |")
        lines.append("")
    if "energy" in result:
        lines += ["## Estimated energy per training step (gen.perf.energy, 45 nm)", "",
                  "| reuse | pJ per step | saved vs off |", "|---|---|---|"]
        for r in result["energy"]:
            saved = "" if r["saved"] is None else f"{r['saved']:+.1%}"
            lines.append(f"| {r['reuse']} | {r['pj_per_step']:.0f} | {saved} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _pool(jobs, tasks, desc):
    out = []
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(*task) for task in tasks]
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                           desc=desc):
            out.append(future.result())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+",
                        default=["counters", "accuracy", "area", "core-area", "energy"],
                        choices=["counters", "accuracy", "area", "core-area", "energy"])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--entries", type=int, default=16)
    parser.add_argument("--ways", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--acc-regs", type=int, default=None)
    parser.add_argument("--strengths", type=int, nargs="+", default=[0, 5, 6, 7, 8])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--out", default="reuse")
    parser.add_argument("--add-seeds", action="store_true",
                        help="accuracy: keep the earlier results' runs of other seeds")
    parser.add_argument("--render", action="store_true",
                        help="only write the Markdown again from the JSON results")
    parser.add_argument("--merge", nargs="*", default=[], metavar="NAME",
                        help="with --render: take the parts in results/NAME.json too")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads((RESULTS / f"{args.out}.json").read_text())
        for other in args.merge:
            # Parts measured by separate runs (``--out NAME``), merged in.
            for key, value in json.loads((RESULTS / f"{other}.json").read_text()).items():
                if key in ("counters", "area", "core_area"):
                    result[key] = value
        (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
        text = markdown(result)
        (RESULTS / f"{args.out}.md").write_text(text)
        print(text)
        return
    raw = list(sys.argv[1:] if argv is None else argv)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "date": time.strftime("%Y-%m-%d"), "argv": raw, "batch": args.batch,
              "entries": args.entries, "ways": args.ways, "epochs": args.epochs,
              "seeds": args.seeds}
    path = RESULTS / f"{args.out}.json"
    if "counters" in args.parts:
        tasks = [(train_run, e, args.ways, k, 0, 1, args.batch, args.acc_regs)
                 for e in TABLE_SIZES for k in COUNTER_STRENGTHS]
        rows = _pool(args.jobs, tasks, "counters")
        rows.sort(key=lambda r: (r["entries"], r["reuse"]))
        result["counters"] = [{k: r[k] for k in ("entries", "ways", "reuse", "hit_rate",
                                                 "batch", "acc_regs",
                                                 "avoided_of_needed", "avoided_of_macs",
                                                 "acc", "lookups", "hits",
                                                 "multiplies_avoided")} for r in rows]
    if "accuracy" in args.parts:
        schedules = list(args.strengths) + [ADAPTIVE]
        tasks = [(train_run, args.entries, args.ways, k, seed, args.epochs, args.batch,
                  args.acc_regs) for k in schedules for seed in args.seeds]
        runs = _pool(args.jobs, tasks, "accuracy")
        if args.add_seeds and path.exists():
            # Keep the earlier runs of other seeds (same geometry): more seeds, one table.
            done = {(str(r["reuse"]), r["seed"]) for r in runs}
            earlier = json.loads(path.read_text()).get("accuracy_runs", [])
            runs += [r for r in earlier if (str(r["reuse"]), r["seed"]) not in done
                     and (r["batch"], r["entries"]) == (args.batch, args.entries)]
            runs.sort(key=lambda r: (str(r["reuse"]), r["seed"]))
            result["seeds"] = sorted({r["seed"] for r in runs})
        result["accuracy_runs"] = runs
        result["accuracy"] = summarize_accuracy(runs)
        result["frontier"] = frontier_check(result["accuracy"])
    if "area" in args.parts:
        tasks = [(area_point, e, args.ways, "single") for e in AREA_POINTS]
        tasks += [(area_point, e, args.ways, "value") for e in (0, args.entries)]
        rows = _pool(args.jobs, tasks, "area")
        rows.sort(key=lambda r: (r["policy"], r["entries"]))
        result["area"] = rows
    if path.exists():
        # Parts not run now keep their earlier figures (read now: another part may have
        # finished meanwhile).
        old = json.loads(path.read_text())
        for key in ("counters", "accuracy", "frontier", "accuracy_runs", "area", "core_area",
                    "energy"):
            if key in old and key not in result:
                result[key] = old[key]
                if key == "accuracy":
                    for field in ("entries", "ways", "epochs", "seeds", "batch"):
                        result[field] = old.get(field, result[field])
    if "core-area" in args.parts:
        tasks = [(core_area_point, 0, args.ways, "pe"),
                 (core_area_point, args.entries, args.ways, "pe"),
                 (core_area_point, args.entries, args.ways, "row")]
        result["core_area"] = sorted(_pool(args.jobs, tasks, "core area"),
                                     key=lambda r: (r["entries"], r["scope"]))
    if "energy" in args.parts and "accuracy_runs" in result:
        result["energy"] = energy_rows(result["accuracy_runs"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
