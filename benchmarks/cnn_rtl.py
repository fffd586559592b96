"""The digits CNN on the RTL: cycles per SGD step, utilization per layer, cycles in
``GATHER`` and the performance models' error.

The compiled program (``sim.compile.cnn_program``: batch 8, the weights kept in the PEs)
runs its prologue, ``STEPS`` SGD steps on real digits minibatches and the checkpoint on the
default preset's RTL under Verilator (the native harness); every run's memory image and
counters are checked against the golden machine. Reported:

* the RTL's ``CYCLES`` of each step (one doorbell: the minibatch's DMA, the core commands
  and the logits' DMA) and its ``CORE_CYCLES``;
* the utilization of the step and of each layer, useful MACs counted as CATERPILLAR counts
  them (forward, dX but none for the first layer, dW; the update is not a MAC) over PEs x
  cycles. A layer's cycles are those of the commands that work for it (its im2col, its
  products and loads, its col2im; the dense layer's flatten, unflatten and the loss
  gradient), each as the stream model prices it alone (``gen.perf.cnn``);
* the cycles in ``GATHER`` (the cycle model's per command, which the tests hold equal to
  the RTL's ``CORE_CYCLES`` of each ``GATHER``) and in the products;
* the error of the stream model (``gen.perf.stream.stream_cost``) against the RTL's
  ``CYCLES`` of every run, and of the layer model (``gen.perf.network_cost`` of
  ``Model.network()``, best mapping, the fused update, each layer's ``GATHER`` s as the
  compiler emits them) against the step and each layer's commands.

    .venv/bin/python benchmarks/cnn_rtl.py        # about 2 minutes (a Verilator build)

Writes ``benchmarks/results/cnn_rtl.json`` and ``cnn_rtl.md``.
"""

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chrysalis.gen.perf import network_cost  # noqa: E402
from chrysalis.gen.perf.cnn import cnn_step  # noqa: E402
from chrysalis.gen.perf.mapping import optimize  # noqa: E402
from chrysalis.gen.perf.stream import stream_cost  # noqa: E402
from chrysalis.gen.spec.config import get_preset  # noqa: E402
from chrysalis.gen.spec.model import digits_cnn  # noqa: E402
from chrysalis.sim.compile.cnn_program import CnnTrainingProgram  # noqa: E402
from chrysalis.sim.compile.job import golden_mismatches, run_job_golden, training_job  # noqa: E402
from chrysalis.sim.train.cnn import initial_weights  # noqa: E402
from chrysalis.sim.verify import native_job  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUILD = ROOT / "build" / "benchmarks" / "cnn_rtl"
BATCH, STEPS, LR, SEED = 8, 3, 0.1, 0


def run_rtl(config, program, weights, batches):
    """The job on the RTL and on the golden machine: the RTL's outputs and wall time."""
    job = training_job(program, weights, batches)
    start = time.perf_counter()
    outs = native_job.run_job(config, job, BUILD, fast_build=True, simulator="verilator")
    wall = time.perf_counter() - start
    problems = golden_mismatches(outs, run_job_golden(config, job))
    if problems:
        raise SystemExit(f"the RTL differs from the golden machine: {problems[0]}")
    return job, outs, wall


def main():
    from chrysalis.sim.train.dataset import DigitsTask
    config, model = get_preset("default"), digits_cnn()
    pes = config.core.rows * config.core.cols
    program = CnnTrainingProgram(config, model, BATCH, LR, store_every_step=False)
    task = DigitsTask(BATCH, SEED)
    batches = [(b.x_bits, b.labels) for b in map(task.minibatch, range(STEPS))]
    job, outs, wall = run_rtl(config, program, initial_weights(model, SEED), batches)

    runs = [program.run_commands(run) for run in job.runs]
    stream = [stream_cost(config, commands)["total"]["cycles"] for commands in runs]
    rtl = [out.cycles for out in outs]
    steps = rtl[1:1 + STEPS]
    core = [outs[k + 1].counters["core_cycles"] - outs[k].counters["core_cycles"]
            for k in range(STEPS)]
    step = cnn_step(config, model, BATCH)
    assert all(c == step["cycles"] for c in steps), (steps, step["cycles"])
    macs = step["useful_macs"]
    layers = [{"name": l["name"], "kind": l["kind"], "cycles": l["cycles"],
               "gather_cycles": l["phases"]["gather"]["cycles"],
               "product_cycles": l["mac_cycles"], "useful_macs": l["useful_macs"],
               "utilization": l["utilization"],
               "utilization_of_products": l["useful_macs"] / (pes * l["mac_cycles"])}
              for l in step["layers"]]
    gather = step["phases"]["gather"]["cycles"]

    network = model.network()
    mappings, _ = optimize(config, network, BATCH, "mbgd", update="fused")
    layer_model = network_cost(config, network, BATCH, "mbgd", mappings, update="fused")
    result = {
        "config": config.name, "network": model.name, "batch": BATCH, "steps": STEPS,
        "golden_match": True, "rtl_cycles_per_run": rtl, "stream_model_per_run": stream,
        "stream_model_error": max(abs(s - r) / r for s, r in zip(stream, rtl)),
        "step_cycles": steps[0], "step_core_cycles": core, "useful_macs": macs,
        "utilization": macs / (pes * steps[0]), "gather_cycles": gather,
        "gather_share": gather / steps[0], "layers": layers,
        "layer_model_cycles": layer_model["cycles"],
        "layer_model_error": (layer_model["cycles"] - steps[0]) / steps[0],
        "layer_model_layers": [
            {"name": ours["name"], "cycles": ours["cycles"],
             "error": (ours["cycles"] - compiled["cycles"]) / compiled["cycles"]}
            for ours, compiled in zip(layer_model["layers"], step["layers"])],
        "wall_s": round(wall, 1), "python": platform.python_version(),
        "load": os.getloadavg()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cnn_rtl.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "cnn_rtl.md").write_text(markdown(result) + "\n")
    print(markdown(result))


def markdown(r):
    lines = [f"The digits CNN (batch {r['batch']}) on the `{r['config']}` preset's RTL, "
             f"Verilator, native harness: {r['steps']} SGD steps on digits minibatches, every "
             f"run's memory image and counters equal to the golden machine's.",
             "",
             "| layer | cycles | in GATHER | in products | useful MACs | utilization | "
             "of its products |",
             "|---|---|---|---|---|---|---|"]
    for l in r["layers"]:
        lines.append(f"| {l['name']} | {l['cycles']:,.0f} | {l['gather_cycles']:,.0f} | "
                     f"{l['product_cycles']:,.0f} | {l['useful_macs']:,} | "
                     f"{l['utilization']:.1%} | {l['utilization_of_products']:.1%} |")
    lines.append(f"| **step** | {r['step_cycles']:,} | {r['gather_cycles']:,.0f} | | "
                 f"{r['useful_macs']:,} | {r['utilization']:.1%} | |")
    lines += [
        "",
        f"- RTL `CYCLES` per step: {r['step_cycles']:,} (every step the same; "
        f"`CORE_CYCLES` {r['step_core_cycles'][0]:,}); {r['gather_share']:.1%} of them in "
        f"`GATHER`.",
        "- A layer's cycles are its commands' (its im2col, loads, products and col2im; "
        "fc3 also the flatten, the unflatten and the loss gradient), each as run alone; the "
        "step adds the minibatch and logits DMA and takes off what the controller overlaps. "
        "\"Of its products\": the useful MACs over the cycles of its FORWARD, BACKWARD and "
        "WGRAD only.",
        f"- Stream model (`gen.perf.stream`, GATHER included) against the RTL's `CYCLES` of "
        f"every run (prologue, steps, checkpoint): largest error "
        f"{r['stream_model_error']:.2%}.",
        f"- Layer model (`chrysalis perf --network digits-cnn`'s first table, "
        f"`gen.perf.network_cost`, best mapping, each layer's `GATHER` s as compiled): "
        f"{r['layer_model_cycles']:,.0f} cycles, {r['layer_model_error']:+.1%} against the "
        f"step; per layer against its commands: "
        + ", ".join(f"{l['name']} {l['error']:+.1%}" for l in r["layer_model_layers"])
        + ". The layer model counts the minibatch's DMA in the first layer and the labels' "
        "and logits' in the last, where the split of the compiled step has them apart; "
        "and it hides the dense layer's load of its input in the command below (the MLP "
        "compiler's `fill`), which the CNN program does not do.",
        f"- Wall time {r['wall_s']} s (the Verilator build included), load "
        f"{r['load']:.1f}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
