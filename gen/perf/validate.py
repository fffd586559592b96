"""Hold the analytical model to the RTL's counters and to the exact core schedule.

Two references, per phase of an MLP training step (the stream ``sim.compile.program`` builds, the
one ``chrysalis train --backend verilator`` runs):

* :func:`core_reference`: ``sim.golden.core_counts.predict`` (the core's schedule stepped exactly;
  itself held to the RTL by ``tests/hw/test_core_counts.py``). Cheap: no simulator.
* :func:`rtl_reference`: the accelerator's RTL under a simulator. The step's commands run
  one doorbell each, so the counters' growth over each doorbell is the cost of one command
  (the ``START`` cycle of the doorbell taken off); a last doorbell runs the whole step, to
  check how the per-command costs make up the step: the controller overlaps the fetches
  and some DMAs with the core's work (:func:`step_cycles`; :func:`measured_costs` composes
  the RTL's own per-command costs the same way).

:func:`compare` puts the model next to a reference: per phase, the model's and the
reference's cycles and their relative error.
"""

import numpy as np

from .commands import COST_FIELDS, PHASES, RUN_START, TESTBENCH_MEMORY, command_cost, phase_of
from .stream import mlp_program

__all__ = ["step_commands", "core_reference", "rtl_reference", "model_phases", "compare",
           "step_cycles", "measured_costs", "RTL_FIELDS"]

#: Counters compared with the RTL (model field -> RTL counter).
RTL_FIELDS = {"cycles": "cycles", "core_cycles": "core_cycles", "dma_cycles": "dma_cycles",
              "mac_slots": "mac_slots", "update_slots": "update_slots",
              "bus_words": "bus_words", "stall_cycles": "stall_cycles",
              "fetch_beats": "fetch_beats", "dma_read_beats": "dma_read_beats",
              "dma_write_beats": "dma_write_beats"}


def _op(command):
    return str(getattr(command["op"], "name", command["op"])).upper()


def step_commands(program):
    """The commands of slot 0's step of a ``TrainingProgram``, and the step's Run."""
    run = program.step_run(1, 0)
    return program.run_commands(run), run


def model_phases(config, commands, timing=TESTBENCH_MEMORY):
    """Phase -> summed :func:`~gen.perf.commands.command_cost` of ``commands``."""
    phases = {name: dict.fromkeys(COST_FIELDS, 0) for name in PHASES}
    for command in commands:
        cost = command_cost(config, command, timing)
        for key, value in cost.items():
            phases[phase_of(_op(command))][key] += value
    return phases


def step_cycles(config, commands, timing=TESTBENCH_MEMORY, costs=None):
    """``CYCLES`` of ``commands`` run as one doorbell (its ``START`` cycle included), as the
    controller overlaps them (``gen.perf.network.cluster_stream_cost``); with ``costs``
    (:func:`measured_costs`), composed from those per-command costs instead of the
    model's."""
    from .network import cluster_stream_cost
    return cluster_stream_cost(config, commands, timing, costs=costs)["cycles"]


def measured_costs(commands, per_command):
    """The per-command costs :func:`rtl_reference` measured (``per_command``), in the form
    ``cluster_stream_cost`` takes: the overhead is a command's cycles less its own (the
    DMA's ``DMA_CYCLES``; the core's busy cycles plus the cycle it takes the command)."""
    costs = []
    for command, delta in zip(commands, per_command):
        if _op(command).startswith("DMA"):
            own = delta["dma_cycles"]
        else:
            own = delta["core_cycles"] + 1
        costs.append({"overhead_cycles": delta["cycles"] - own, "cycles": delta["cycles"],
                      "dma_cycles": delta["dma_cycles"]})
    return costs


def core_reference(config, commands):
    """Phase -> ``{"cycles": ...}`` of the core commands by ``sim.golden.core_counts.predict``
    (the core's own cycles, no controller), for comparison with the model's
    ``core_cycles + 1`` per command."""
    from chrysalis.sim.golden import core_counts
    phases = {}
    for command in commands:
        op = _op(command)
        if op.startswith("DMA"):
            continue
        exact = core_counts.predict(config, dict(command, op=op))
        entry = phases.setdefault(phase_of(op), dict.fromkeys(core_counts.FIELDS, 0))
        for key, value in exact.items():
            entry[key] += value
    return phases


def rtl_reference(config, sizes, batch, build_dir, simulator="verilator", seed=0,
                  timeout_s=1800, momentum=None):
    """Run an MLP step on the RTL one command per doorbell, then whole.

    Returns
    -------
    dict
        ``commands``: the step's commands; ``per_command``: for each, the growth of every
        RTL counter over its doorbell, ``cycles`` without the doorbell's ``START`` cycle;
        ``phases``: those summed per phase; ``step``: the growth over a doorbell that runs
        the whole step.
    """
    from chrysalis.sim.golden import numerics as nx
    from chrysalis.sim.compile.program import initial_weights
    from chrysalis.sim.compile.job import Job, Run
    from chrysalis.sim.verify.rtl_job import run_job

    program = mlp_program(config, sizes, batch, momentum=momentum)
    commands, step = step_commands(program)
    rng = np.random.default_rng(seed)
    image = program.initial_image(initial_weights(list(sizes), seed))
    x = nx.from_float32(rng.random((sizes[0], batch)).astype(np.float32))
    program.write_batch(image, 0, x, rng.integers(0, sizes[-1], batch))
    runs = [Run(program.prologue.cmd_base, program.prologue.cmd_count, dump=False)]
    runs += [Run(step.cmd_base + 64 * i, 1, dump=False) for i in range(step.cmd_count)]
    runs.append(Run(step.cmd_base, step.cmd_count, dump=False))
    outs = run_job(config, Job(image, runs, mem_base=program.mem_base), simulator, build_dir,
                   timeout_s=timeout_s)
    for i, out in enumerate(outs):
        if out.error != 0:
            raise RuntimeError(f"run {i} on the RTL halted with {out.error.name}")

    def growth(before, after):
        delta = {key: after.counters[key] - before.counters[key] for key in after.counters}
        delta["cycles"] = after.cycles - RUN_START
        return delta

    per_command = [growth(outs[i], outs[i + 1]) for i in range(len(commands))]
    phases = {name: {} for name in PHASES}
    for command, delta in zip(commands, per_command):
        entry = phases[phase_of(_op(command))]
        for key, value in delta.items():
            entry[key] = entry.get(key, 0) + value
    whole = growth(outs[-2], outs[-1])
    return {"commands": commands, "per_command": per_command, "phases": phases, "step": whole}


def _error(model, reference):
    if reference == 0:
        return 0.0 if model == 0 else float("inf")
    return (model - reference) / reference


def compare(config, commands, reference, fields=("cycles",), timing=TESTBENCH_MEMORY):
    """Rows ``{"phase", "field", "model", "reference", "error"}`` for every phase the
    reference has and every field of ``fields`` it holds; ``error`` is relative
    (``(model - reference) / reference``). For a :func:`core_reference`, compare
    ``fields=("cycles",)``: the model's core cycles plus one per command."""
    model = model_phases(config, commands, timing)
    rows = []
    for phase, ref in reference.items():
        if not ref:
            continue
        for field in fields:
            if field not in ref:
                continue
            value = model[phase][field]
            if "busy_cycles" in ref and field == "cycles":
                # core_counts' cycles: the model's core cycles plus one per core command.
                value = model[phase]["core_cycles"] + model[phase]["commands"]
            rows.append({"phase": phase, "field": field, "model": float(value),
                         "reference": float(ref[field]),
                         "error": _error(float(value), float(ref[field]))})
    return rows
