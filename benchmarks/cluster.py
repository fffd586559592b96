"""The cluster: ring collectives, data / model parallel and continuous propagation, on the
RTL (Verilator) and in the performance model, beside CATERPILLAR's utilization figures.

Parts (``--parts``, default all):

``collectives``
    Every collective on 2, 3 and 4 cores of the ``tiny`` preset (1 word per link per cycle,
    1 cycle per hop) for a few shapes (``n`` rows, ``batch`` columns): the RTL's
    ``RING_CYCLES`` and ``RING_WORDS`` of the command (one doorbell each), beside
    ``sim.golden.ring.cycles`` / ``link_words_moved`` (which the RTL must equal) and CATERPILLAR's
    textbook ring cost (``gen.perf.network.ring_collective(..., formula="textbook")``).
``modes``
    Data parallel, model parallel and continuous propagation (CP) of an MLP on 1, 2 and 4
    cores of the ``default`` preset (4 x 4 PEs per core): cycles per step (per sample for
    CP) and utilization = useful MACs (forward, dX and dW, as CATERPILLAR counts them; the
    update is not a MAC) / (PEs per core x cores x cycles), measured on the RTL
    (``sim.compile.parallel_program``, ``sim.compile.cp_program``, ``sim.compile.program`` for one core), then the
    performance model (``gen.perf.network_cost``) for 1 to 16 cores on the same network and
    on larger ones.
``caterpillar``
    SGD (batch 1), MBGD (minibatch) and CP utilization beside CATERPILLAR's 81 / 94 / 98 %:
    the RTL on networks that simulate in minutes, the model on CATERPILLAR-sized ones; each
    row says which.

Every program and model row runs the SGD update its program runs by default (plain SGD):
fused into the weight gradient on one core, in model parallel and in CP; separate in data
parallel, whose gradients are all-reduced before the update
(``gen.perf.network.default_update``, ``sim.compile.parallel_program``).

    .venv/bin/python benchmarks/cluster.py [--parts collectives modes caterpillar] [--no-rtl]
    .venv/bin/python benchmarks/cluster.py --markdown      # the tables again from the JSON
    .venv/bin/python benchmarks/cluster.py --parts modes caterpillar --reuse-rtl
                                       # the models again beside the RTL figures kept

``--no-rtl`` takes the golden cluster model (``sim.verify.rtl_job.run_job_golden``: exact counters
and ring cycles, no total cycles) in place of the RTL. Writes
``benchmarks/results/cluster.{json,md}`` (with ``--no-rtl``: ``cluster_partial.{json,md}``);
with ``--parts``, the parts not run keep their figures from the JSON.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.spec import isa  # noqa: E402
from chrysalis.gen.spec.config import PRESETS, with_overrides  # noqa: E402
from chrysalis.gen.spec.isa import Opcode  # noqa: E402
from chrysalis.gen.perf.network import ring_collective  # noqa: E402
from chrysalis.sim.golden import ring  # noqa: E402
from chrysalis.sim.compile.job import Job, Run, run_job_golden
from chrysalis.sim.verify.rtl_job import run_job  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUILD = ROOT / "build" / "benchmarks" / "cluster"

PARTS = ("collectives", "modes", "caterpillar")
#: The collectives in the order of the tables; ``SEND back`` is a send to the previous core.
#: ``ALL_GATHER in place`` is the all-gather with ``flag`` (the own chunk already in place).
COLLECTIVES = ("BROADCAST", "REDUCE", "ALL_GATHER", "ALL_GATHER in place", "REDUCE_SCATTER",
               "ALL_REDUCE", "SEND", "SEND back")
#: ``(n, batch)`` of the collectives measured.
SHAPES = ((4, 1), (8, 4), (16, 4))
#: CATERPILLAR's utilization (Li & Pedram, ASAP 2017).
CATERPILLAR = {"sgd": 0.81, "mbgd": 0.94, "cp": 0.98}


def tiny_cluster(cores):
    """The ``tiny`` preset with ``cores`` cores (the cluster tests' configs)."""
    return with_overrides(PRESETS["tiny"], {"name": f"tiny_cluster{cores}",
                                            "cluster.cores": cores})


def default_cluster(cores):
    return with_overrides(PRESETS["default"], {"name": f"default_cluster{cores}",
                                               "cluster.cores": cores})


def rtl_run(config, job, name):
    """``job`` on the RTL of ``config`` under Verilator (the build shared per config)."""
    # Verilator's lint warnings are not errors here: the figures are the run's.
    return run_job(config, job, "verilator", BUILD / config.name, timeout_s=3600,
                   job_dir=BUILD / "jobs" / name, build_args=("-Wno-fatal",))


def _kind(op):
    return {"BROADCAST": "broadcast", "REDUCE": "reduce", "ALL_GATHER": "all-gather",
            "REDUCE_SCATTER": "reduce-scatter", "ALL_REDUCE": "all-reduce",
            "SEND": "send", "SEND back": "send", "ALL_GATHER in place": "all-gather"}[op]


def _deltas(outs, key):
    """Per-run values of a cumulative counter."""
    values = [o.counters[key] for o in outs]
    return [b - a for a, b in zip([0] + values, values)]


# ---------------------------------------------------------------------------------------
# collectives
# ---------------------------------------------------------------------------------------

def collective_commands(config, op, base, n, batch, root, peer, flag=0):
    """One collective's run at byte ``base``: per core a DMA_LOAD of its source (random
    words already in the image), the collective (with ``flag``), per core a DMA_STORE of
    the destination. Returns ``(commands, end of the region)``."""
    cores, banks = config.cluster.cores, config.core.banks
    beat = config.host.axi_data_width // 8
    src_rows = n * cores if op == Opcode.REDUCE_SCATTER else n
    dst_rows = n * cores if op == Opcode.ALL_GATHER else n
    src_lpc, dst_lpc = -(-src_rows // banks), -(-dst_rows // banks)
    sp2_base = batch * src_lpc
    stride = -(-4 * max(src_rows, dst_rows) // beat) * beat
    data = base + 64 * 64                                 # room for the commands
    src = [data + k * stride * batch for k in range(cores)]
    out = [data + (cores + k) * stride * batch for k in range(cores)]
    commands = [dict(op="DMA_LOAD", n=src_rows, batch=batch, mem_addr=src[k],
                     mem_stride=stride, sp_base=0, sp_lpc=src_lpc, cores=1 << k)
                for k in range(cores)]
    fields = dict(op=op.name, n=n, batch=batch, sp_base=0, sp_lpc=src_lpc,
                  sp2_base=sp2_base, sp2_lpc=dst_lpc)
    if flag:
        fields["flag"] = flag
    if op in (Opcode.BROADCAST, Opcode.REDUCE, Opcode.SEND):
        fields["root"] = root
    if op == Opcode.SEND:
        fields["peer"] = peer
    commands.append(fields)
    commands += [dict(op="DMA_STORE", n=dst_rows, batch=batch, mem_addr=out[k],
                      mem_stride=stride, sp_base=sp2_base, sp_lpc=dst_lpc, cores=1 << k)
                 for k in range(cores)]
    return commands, data + 2 * cores * stride * batch


def collectives_job(config, cases, seed=0):
    """A job with one run per case ``(name, n, batch)``; random fp32 data."""
    rng = np.random.default_rng(seed)
    c = config.cluster.cores
    runs, chunks, base = [], [], 0
    for name, n, batch in cases:
        op = Opcode[name.split()[0]]
        root = 0
        peer = c - 1 if name == "SEND back" else 1
        commands, end = collective_commands(config, op, base, n, batch, root, peer,
                                            flag=int(name == "ALL_GATHER in place"))
        words = np.array(isa.encode_stream(commands), dtype=np.uint32)
        size = (-(-end // 4096) * 4096 - base) // 4
        chunk = rng.standard_normal(size).astype(np.float32).view(np.uint32).copy()
        chunk[:len(words)] = words
        chunks.append(chunk)
        runs.append(Run(base, len(commands), max_cycles=200_000, dump=False))
        base += 4 * size
    return Job(np.concatenate(chunks), runs)


def run_collectives(rtl, log=print):
    rows = []
    for cores in (2, 3, 4):
        config = tiny_cluster(cores)
        cases = [(name, n, b) for name in COLLECTIVES for n, b in SHAPES]
        job = collectives_job(config, cases)
        start = time.perf_counter()
        golden = run_job_golden(config, job)
        if rtl:
            outs = rtl_run(config, job, f"collectives{cores}")
            log(f"  {cores} cores: {len(cases)} collectives on the RTL in "
                f"{time.perf_counter() - start:.0f} s", flush=True)
        else:
            outs = golden
        measured = _deltas(outs, "ring_cycles")
        words = _deltas(outs, "ring_words")
        for (name, n, b), cyc, w, out in zip(cases, measured, words, outs):
            if out.error != isa.ErrorCode.NONE:
                raise RuntimeError(f"{name} on {cores} cores halted with {out.error.name}")
            op = Opcode[name.split()[0]]
            peer = cores - 1 if name == "SEND back" else 1
            how = dict(root=0, peer=peer, in_place=name == "ALL_GATHER in place")
            model = ring.cycles(op, config, n, b, **how)
            hops = peer if op == Opcode.SEND else 1
            textbook = ring_collective(config, _words(op, cores, n, b), _kind(name),
                                       columns=b, hops=hops, formula="textbook")
            rows.append(dict(cores=cores, op=name, n=n, batch=b, ring_cycles=cyc,
                             sim_ring_cycles=model, equal=cyc == model, textbook=textbook,
                             ring_words=w,
                             sim_ring_words=ring.link_words_moved(op, config, n, b, **how),
                             source="RTL" if rtl else "golden"))
    return rows


def _words(op, cores, n, batch):
    """The words of the matrix a collective is priced on (``ring_collective``'s
    ``words``): the gathered matrix, the reduce-scatter's source, otherwise the matrix."""
    if op in (Opcode.ALL_GATHER, Opcode.REDUCE_SCATTER):
        return cores * n * batch
    return n * batch


def collectives_table(rows):
    lines = ["| cores | collective | n | batch | RING_CYCLES | sim.golden.ring.cycles | equal | "
             "textbook ring | / textbook | RING_WORDS | sim.golden.ring words | source |",
             "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['cores']} | {r['op']} | {r['n']} | {r['batch']} | "
                     f"{r['ring_cycles']} | {r['sim_ring_cycles']} | "
                     f"{'yes' if r['equal'] else '**no**'} | {r['textbook']:.1f} | "
                     f"{r['ring_cycles'] / r['textbook']:.2f} | "
                     f"{r['ring_words']} | {r['sim_ring_words']} | {r['source']} |")
    equal = sum(r["equal"] and r["ring_words"] == r["sim_ring_words"] for r in rows)
    lines += ["", f"{equal} of {len(rows)} collectives moved exactly `sim.golden.ring`'s words in "
              f"exactly its cycles."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# modes: data, model and CP on the RTL and in the model
# ---------------------------------------------------------------------------------------

#: The MLP the RTL trains in every mode (four layers: CP has a stage per core on 4 cores).
SIZES = (64, 32, 32, 32, 10)
#: Minibatch of data and model parallel (a multiple of 4 cores).
BATCH = 8
LR = 0.05


def _digits(samples, seed=0):
    """``samples`` digits (fp32 bits, ``(64, samples)``) and their labels."""
    from chrysalis.sim.golden import numerics as nx
    from chrysalis.sim.compile.data import digits
    x, y, _, _ = digits(0)
    idx = np.random.default_rng(seed).permutation(len(x))[:samples]
    return nx.from_float32(x[idx].T.astype(np.float32)), y[idx]


def mode_program(mode, cores, sizes=SIZES, batch=BATCH):
    """``(config, program, job, runs measured, samples per measured run, streams)`` of one
    mode: ``data`` / ``model`` (two steps; the second measured), ``one`` (one core's
    ``sim.compile.program`` step), ``cp`` (a session with one tick per doorbell; the steady ticks
    measured, a sample each)."""
    from chrysalis.sim.compile.program import initial_weights
    from chrysalis.sim.compile.job import training_job
    config = default_cluster(cores)
    weights = initial_weights(list(sizes), 0)
    if mode in ("data", "model", "one"):
        if mode == "one":
            from chrysalis.sim.compile.program import TrainingProgram
            program = TrainingProgram(config, list(sizes), batch, LR, store_every_step=False,
                                      update=None)
        else:
            from chrysalis.sim.compile.parallel_program import ParallelProgram
            program = ParallelProgram(config, list(sizes), batch, LR, mode, update=None)
        batches = [_digits(batch, seed) for seed in (1, 2)]
        job = training_job(program, weights, batches)
        step = program.step_run(1, 0)
        return config, program, job, [2], batch, [program.run_commands(step)]
    from chrysalis.sim.compile.cp_program import CpProgram, cp_job
    fill = 2 * cores - 2
    samples = fill + 4
    program = CpProgram(config, list(sizes), LR, samples, batch=1, update=None)
    x, y = _digits(samples)
    job = cp_job(program, weights, x, y, ticks_per_run=1)
    steady = list(range(fill, samples))                 # every stage busy
    return (config, program, job, [1 + t for t in steady], 1,
            [program.run_commands(program.tick_run(t, 1)) for t in steady])


#: The RTL's figures of a mode run (kept by ``--reuse-rtl``).
RTL_FIELDS = ("rtl_seconds", "rtl_cycles", "rtl_ring_cycles", "rtl_core_cycles")


def measure_mode(mode, cores, rtl, sizes=SIZES, batch=BATCH, reuse=None):
    """Cycles per step (per sample for CP) of ``mode`` on ``cores`` cores: the RTL's
    ``CYCLES`` of the measured runs and ``gen.perf.network.cluster_stream_cost`` of their
    commands; utilization = useful MACs / (PEs x cores x cycles)."""
    from chrysalis.gen.perf.network import cluster_stream_cost
    from chrysalis.sim.golden.cluster_machine import machine_for
    from chrysalis.gen.spec.networks import mlp
    config, program, job, measured, samples, streams = mode_program(mode, cores, sizes, batch)
    golden = run_job_golden(config, job, machine_for(config))
    for i, g in enumerate(golden):
        if g.error != isa.ErrorCode.NONE:
            raise RuntimeError(f"{mode} on {cores} cores: run {i} halted with "
                               f"{g.error.name} on the golden model")
    model = [cluster_stream_cost(config, s) for s in streams]
    out = dict(mode=mode, cores=cores, sizes=list(sizes), batch=samples, runs=len(measured),
               update=program.update,
               useful_macs=mlp(list(sizes)).macs(samples),
               pes=config.core.pes * config.mac.macs_per_cycle,
               stream_model_cycles=float(np.mean([m["cycles"] for m in model])),
               stream_model_ring_cycles=float(np.mean([m["ring_cycles"] for m in model])),
               busy=[float(np.mean([m["busy"][k] for m in model])) for k in range(cores)])
    ring_c = _deltas(golden, "ring_cycles")
    out["golden_ring_cycles"] = float(np.mean([ring_c[i] for i in measured]))
    if rtl and reuse is not None and "rtl_cycles" in reuse:
        out.update({k: reuse[k] for k in RTL_FIELDS if k in reuse})
    elif rtl:
        start = time.perf_counter()
        outs = rtl_run(config, job, f"{mode}{cores}_b{batch}")
        out["rtl_seconds"] = round(time.perf_counter() - start, 1)
        for i, (r, g) in enumerate(zip(outs, golden)):
            if r.error != isa.ErrorCode.NONE or (g.image is not None and r.image is not None
                                                 and not np.array_equal(r.image, g.image)):
                raise RuntimeError(f"{mode} on {cores} cores: run {i} differs from the golden "
                                   f"model ({r.error.name})")
        out["rtl_cycles"] = float(np.mean([outs[i].cycles for i in measured]))
        rc = _deltas(outs, "ring_cycles")
        out["rtl_ring_cycles"] = float(np.mean([rc[i] for i in measured]))
        cc = _deltas(outs, "core_cycles")
        out["rtl_core_cycles"] = float(np.mean([cc[i] for i in measured]))
    cycles = out.get("rtl_cycles", out["stream_model_cycles"])
    out["utilization"] = out["useful_macs"] / (out["pes"] * cores * cycles)
    out["source"] = "RTL" if rtl else "stream model"
    return out


#: ``(mode, cores)`` run on the RTL: one core's step, data and model parallel, CP.
RTL_MODES = (("one", 1), ("data", 2), ("model", 2), ("cp", 2), ("data", 4), ("model", 4),
             ("cp", 4))
#: Cores of the model's sweep.
SWEEP = (1, 2, 4, 8, 16)


def _network_mode(mode):
    return {"one": "mbgd", "data": "data", "model": "model", "cp": "cp"}[mode]


def layer_model(mode, cores, sizes, batch, config=None, network=None, mappings=None):
    """``gen.perf.network_cost`` of ``mode`` on ``cores`` cores of the default preset (or
    ``config``) for an MLP of ``sizes`` (or ``network``)."""
    from chrysalis.gen.spec.networks import mlp
    from chrysalis.gen.perf import network_cost
    from chrysalis.gen.perf.network import default_update
    base = default_cluster(1) if config is None else config
    config = with_overrides(base, {"cluster.cores": cores})
    network = mlp(list(sizes)) if network is None else network
    kind = _network_mode(mode) if cores > 1 or mode == "one" else "mbgd"
    return network_cost(config, network, batch, kind, mappings,
                        update=default_update(config, kind))


def run_modes(rtl, previous=None, log=print):
    from tqdm import tqdm
    rows = []
    before = {(r["mode"], r["cores"], r["batch"]): r for r in (previous or {}).get("rtl", [])}
    for mode, cores in tqdm(RTL_MODES, desc="modes", disable=not rtl):
        batch = 1 if mode == "cp" else BATCH
        r = measure_mode(mode, cores, rtl, reuse=before.get((mode, cores, batch)))
        lm = layer_model(mode, cores, SIZES, batch)
        r["layer_model_cycles"] = lm["cycles"]
        r["layer_model_utilization"] = lm["utilization"]
        r["pipelined_cycles"] = lm.get("pipelined_cycles")
        rows.append(r)
        log(f"  {mode} on {cores} cores: {r.get('rtl_cycles')} RTL cycles, "
            f"{r['stream_model_cycles']:.0f} stream model, {lm['cycles']:.0f} layer model",
            flush=True)
    sweep = []
    from chrysalis.gen.spec.networks import get_network
    for name, sizes, network in (("64-32-32-32-10", SIZES, None),
                                 ("mnist-500x3", None, get_network("mnist-500x3"))):
        for mode in ("data", "model", "cp"):
            for cores in SWEEP:
                if mode == "cp" and not 2 <= cores <= 4:
                    continue                    # a stage per core: 2 to 4 of the 4 layers
                batch = 1 if mode == "cp" else 16
                r = layer_model(mode, cores, sizes, batch, network=network)
                sweep.append(dict(network=name, mode=mode, cores=cores, batch=r["batch"],
                                  cycles=r["cycles"], ring_cycles=r["collective_cycles"],
                                  utilization=r["utilization"],
                                  pipelined_cycles=r.get("pipelined_cycles"),
                                  pipelined_utilization=(
                                      r["useful_macs"] / (r["pipelined_cycles"] * default_cluster(
                                          cores).peak_macs_per_cycle)
                                      if r.get("pipelined_cycles") else None)))
    return {"rtl": rows, "sweep": sweep, "markdown": modes_markdown(rows, sweep)}


def modes_markdown(rows, sweep):
    out = ["## Modes\n",
           f"The MLP {'-'.join(map(str, SIZES))} on the `default` preset (4 x 4 PEs per core, "
           "32-bit ring links, hop latency 1): data and model parallel with a minibatch of "
           f"{BATCH} (`sim.compile.parallel_program`; one core: `sim.compile.program`), continuous "
           "propagation one sample per tick (`sim.compile.cp_program`, a steady tick). Cycles are "
           "per step (CP: per sample); utilization = useful MACs / (16 PEs x cores x "
           "cycles), the useful MACs counted as CATERPILLAR counts them: forward, dX (none "
           "for the first layer) and dW; the weight update is not a MAC. `stream model` is `gen.perf.network.cluster_stream_cost` of the very "
           "commands the RTL ran (the controller's in-order dispatch); `layer model` is "
           "`gen.perf.network_cost` from the layer shapes alone; `overlapped` is the CP "
           "tick if the cores' commands overlapped fully (slowest stage + sends). Each "
           "program runs its default SGD update (`update`): fused into the weight gradient "
           "except in data parallel.\n",
           "| mode | update | cores | batch | RTL cycles | stream model | layer model | "
           "overlapped | RTL ring cycles | model ring cycles | utilization (RTL) | "
           "utilization (layer model) | source |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        rc = f"{r['rtl_cycles']:.0f}" if "rtl_cycles" in r else "-"
        rr = f"{r['rtl_ring_cycles']:.0f}" if "rtl_ring_cycles" in r else "-"
        pc = f"{r['pipelined_cycles']:.0f}" if r.get("pipelined_cycles") else "-"
        out.append(f"| {r['mode']} | {r.get('update', 'separate')} | {r['cores']} | "
                   f"{r['batch']} | {rc} | "
                   f"{r['stream_model_cycles']:.0f} | {r['layer_model_cycles']:.0f} | {pc} | "
                   f"{rr} | {r['stream_model_ring_cycles']:.0f} | {r['utilization']:.1%} | "
                   f"{r['layer_model_utilization']:.1%} | {r['source']} |")
    out += ["", "The performance model (`gen.perf.network_cost`, the layer shapes alone) for "
            "more cores, on the same MLP and on CATERPILLAR's mnist-500x3 (784-500-500-500-10), "
            "minibatch 16 (CP: 1 sample per tick; a stage per core, so 2 to 4 cores). "
            "mnist-500x3's weights do not fit the default core's PE banks: they stream "
            "through the one DMA engine every step (data parallel: for every core's copy; "
            "CP: every sample).\n",
            "| network | mode | cores | cycles per step (CP: per sample) | ring cycles | "
            "utilization | CP overlapped: utilization |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for r in sweep:
        pu = f"{r['pipelined_utilization']:.1%}" if r["pipelined_utilization"] else "-"
        out.append(f"| {r['network']} | {r['mode']} | {r['cores']} | {r['cycles']:.0f} | "
                   f"{r['ring_cycles']:.0f} | {r['utilization']:.1%} | {pu} |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------
# caterpillar: SGD, MBGD and CP utilization
# ---------------------------------------------------------------------------------------

#: CATERPILLAR's MNIST-shaped MLPs for the model rows.
CATERPILLAR_NETWORKS = ("mnist-500x3", "mnist-1000x3", "mnist-2000x3", "mnist-2500x4")
#: ``(mode, batch)`` of the model rows.
CATERPILLAR_RUNS = (("sgd", 1), ("mbgd", 16), ("mbgd", 64), ("cp", 1))


def run_caterpillar(rtl, modes=None, previous=None, log=print):
    from chrysalis.gen.perf.mapping import optimize
    from chrysalis.gen.spec.networks import get_network
    from chrysalis.gen.perf import network_cost
    from chrysalis.gen.perf.network import default_update
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from energy_caterpillar import LAC, cores_needed

    rows = []
    # The RTL (or, with --no-rtl, the stream model of the same commands).
    measured = {(r["mode"], r["cores"], r["batch"]): r for r in (modes or {}).get("rtl", [])}
    earlier = {(r["mode"], r["cores"], r["batch"]): r
               for r in (previous or {}).get("measured", [])}
    names = {"one core": "one", "model parallel": "model", "data parallel": "data",
             "CP, a stage per core": "cp"}
    for r in (previous or {}).get("rows", []):         # a JSON from before "measured"
        key = (names.get(r["what"]), r["cores"], r["batch"])
        if r["source"] == "RTL" and key not in earlier:
            earlier[key] = {"rtl_cycles": r["cycles"]}
    kept = []
    wanted = [("sgd", "one", 1, 1), ("sgd", "model", 2, 1), ("sgd", "model", 4, 1),
              ("mbgd", "one", 1, BATCH), ("mbgd", "model", 2, BATCH),
              ("mbgd", "model", 4, BATCH), ("mbgd", "data", 2, BATCH),
              ("mbgd", "data", 4, BATCH), ("cp", "cp", 2, 1), ("cp", "cp", 4, 1)]
    for kind, mode, cores, batch in wanted:
        r = measured.get((mode, cores, batch))
        if r is None or (rtl and "rtl_cycles" not in r):
            r = measure_mode(mode, cores, rtl, SIZES, batch, reuse=earlier.get(
                (mode, cores, batch)))
        source = r["source"]
        kept.append(r)
        rows.append(dict(kind=kind, what=f"{mode} parallel" if mode in ("model", "data") else
                         ("one core" if mode == "one" else "CP, a stage per core"),
                         network="-".join(map(str, SIZES)), config="default (4x4 PEs)",
                         cores=cores, batch=batch, cycles=r.get("rtl_cycles",
                                                                r["stream_model_cycles"]),
                         utilization=r["utilization"], source=source,
                         update=r.get("update")))
        log(f"  {kind} {mode} {cores} cores: {r['utilization']:.1%} ({source})", flush=True)
    base = with_overrides(PRESETS["default"], LAC)
    for name in CATERPILLAR_NETWORKS:
        network = get_network(name)
        for kind, batch in CATERPILLAR_RUNS:
            cores = cores_needed(base, network, kind)
            if cores is None:
                continue
            config = with_overrides(base, {"cluster.cores": cores})
            update = default_update(config, kind)
            try:
                mappings, _ = optimize(config, network, batch, kind, update=update)
            except ValueError:
                mappings = None
            r = network_cost(config, network, batch, kind, mappings, update=update)
            over = (r["useful_macs"] / (config.peak_macs_per_cycle * r["pipelined_cycles"])
                    if r.get("pipelined_cycles") else None)
            rows.append(dict(kind=kind, what="model parallel" if kind != "cp" else
                             "CP, a stage per layer", network=name,
                             config="CATERPILLAR-like (16x16 PEs, 16 KB/PE, 128-bit ring)",
                             cores=cores, batch=r["batch"], cycles=r["cycles"],
                             utilization=r["utilization"], overlapped_utilization=over,
                             ring_share=r["collective_cycles"] / r["cycles"],
                             source="model", update=update))
            log(f"  {name} {kind} batch {batch} on {cores} cores: {r['utilization']:.1%} "
                f"(model)", flush=True)
    return {"rows": rows, "measured": kept, "markdown": caterpillar_markdown(rows)}


def caterpillar_markdown(rows):
    out = ["## Against CATERPILLAR\n",
           "CATERPILLAR (Li & Pedram, ASAP 2017) reports 81% utilization for SGD (batch 1), "
           "94% for minibatch (MBGD) and 98% for continuous propagation (CP), counting "
           "forward, dX and dW as its useful MACs; the utilization here counts them the same "
           "way (the weight update is not a MAC). Rows marked "
           "RTL are Verilator runs of the programs (`sim.compile.program`, `sim.compile.parallel_program`, "
           "`sim.compile.cp_program`) on the `default` preset; rows marked model are "
           "`gen.perf.network_cost` (collectives priced by `sim.golden.ring.cycles`, CP by the "
           "controller's dispatch of `sim.compile.cp_program`'s tick) on a CATERPILLAR-like "
           "machine with as many cores as hold the weights in the PEs (CP: a core per "
           "layer). `overlapped` is CP with the cores' commands fully overlapped.\n",
           "| | CATERPILLAR | network | machine | what | cores | batch | cycles per step "
           "(CP: per sample) | utilization | CP overlapped | ring share | source |",
           "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    out_end = ["", "Every row runs the SGD update its program runs by default: fused into "
               "the weight gradient (no update pass) on one core, in model parallel and in "
               "CP; in data parallel the separate update pass of every `WGRAD` (one slot per "
               "weight, which the useful MACs do not count), as its gradients are "
               "all-reduced first. What holds the figures below CATERPILLAR's, in these "
               "runs: the exposed drains of batch-1 products (`benchmarks/cycle_breakdown.py`), "
               "every "
               "command's fetch and checks through the controller (16 cycles), the loss "
               "gradient (`LOSS_GRAD`) on one core, a 10-class output layer padded to the "
               "array; in model parallel the collectives and the output layer computed on "
               "every core; in data parallel the all-reduce of every weight gradient over "
               "32-bit links (the `ring cycles` of the modes table) and the exchange's "
               "extra `WGRAD`, `STORE_W` and `LOAD_W`; in CP the controller's in-order "
               "dispatch (no per-core queues: a command that waits for its core holds up "
               "the other cores' commands behind it, so the interleaved stages overlap only "
               "in part: compare `CP overlapped`) and the `SEND` s, "
               "each a barrier, the gradient going `c - 1` hops round the one-way ring. "
               "CATERPILLAR's figures are analytical, for its own machine; the model rows "
               "here are this project's model of a machine like it. Where the cycles of the "
               "mnist-500x3 rows go: `benchmarks/cycle_breakdown.py`."]
    for r in rows:
        over = r.get("overlapped_utilization")
        share = r.get("ring_share")
        out.append(f"| {r['kind'].upper()} | {CATERPILLAR[r['kind']]:.0%} | {r['network']} | "
                   f"{r['config']} | {r['what']} | {r['cores']} | {r['batch']} | "
                   f"{r['cycles']:.0f} | {r['utilization']:.1%} | "
                   f"{'-' if over is None else f'{over:.1%}'} | "
                   f"{'-' if share is None else f'{share:.1%}'} | {r['source']} |")
    return "\n".join(out + out_end) + "\n"


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------

def markdown(results):
    out = ["# The cluster: collectives, parallel modes, CATERPILLAR\n",
           "`benchmarks/cluster.py`; RTL: Verilator through `sim.verify.rtl_job.run_job`; "
           "model: `gen.perf.network_cost` (whose collectives are `sim.golden.ring.cycles`).\n"]
    if "collectives" in results:
        out += ["## Collectives\n",
                "Each collective is one doorbell on the `tiny` preset with `c` cores (32-bit "
                "links: 1 word per cycle, `hop_latency` 1, so a hop is 3 cycles with the "
                "adder); `RING_CYCLES` / `RING_WORDS` are the counters' growth over the "
                "run. `textbook ring` is CATERPILLAR's pipelined ring, "
                "`(c-1)(w/c)/nr + (c-1) hop` for an all-gather or reduce-scatter (twice for "
                "an all-reduce), `w/nr + hops hop` for a send or a chain (`hop` = "
                "`hop_latency`, no adder). `ALL_GATHER in place` is the all-gather with "
                "`flag`, whose own chunk is already in place. A core reads `nr` words per "
                "cycle, so a reduce-scatter, which reads all `c` chunks of every core, "
                "takes at least `c/(c-1)` times the textbook's link beats, and so do the "
                "`c` chunk writes of an all-gather that is not in place "
                "(`sim/golden/ring.py`).\n",
                collectives_table(results["collectives"])]
    if "modes" in results:
        out.append(modes_markdown(results["modes"]["rtl"], results["modes"]["sweep"]))
    if "caterpillar" in results:
        out.append(caterpillar_markdown(results["caterpillar"]["rows"]))
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--no-rtl", action="store_true",
                        help="the golden cluster model in place of the RTL")
    parser.add_argument("--reuse-rtl", action="store_true",
                        help="keep the RTL figures of the JSON, compute the models again")
    parser.add_argument("--markdown", action="store_true",
                        help="only write the Markdown again from the JSON")
    args = parser.parse_args(argv)
    rtl = not args.no_rtl
    name = "cluster" if rtl else "cluster_partial"
    path = RESULTS / f"{name}.json"
    # Parts not asked for keep their figures from an earlier run.
    results = json.loads(path.read_text()) if path.exists() else {}
    for part in [] if args.markdown else args.parts:
        print(f"{part}:", flush=True)
        start = time.perf_counter()
        if part == "collectives":
            results[part] = run_collectives(rtl)
            print(collectives_table(results[part]), flush=True)
        elif part == "modes":
            results[part] = run_modes(rtl, results.get(part) if args.reuse_rtl else None)
            print(results[part]["markdown"], flush=True)
        else:
            results[part] = run_caterpillar(rtl, results.get("modes"),
                                            results.get(part) if args.reuse_rtl else None)
            print(results[part]["markdown"], flush=True)
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
