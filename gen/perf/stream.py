"""Cost of a command stream, per phase of the training step.

:func:`stream_cost` sums :func:`gen.perf.commands.command_cost` over a stream, split by
phase (:data:`gen.perf.commands.PHASES`); :func:`mlp_step` does it for the stream that
``sim.compile.program.TrainingProgram`` runs for one SGD step of an MLP: the stream the RTL
executes, so its figures can be held to the RTL counters one phase at a time
(``benchmarks/perf_model_validation.py``).
"""

from .commands import COST_FIELDS, PHASES, RUN_START, TESTBENCH_MEMORY, command_cost, phase_of

__all__ = ["stream_cost", "mlp_program", "mlp_step"]


def _zero():
    return dict.fromkeys(COST_FIELDS, 0)


def stream_cost(config, commands, timing=TESTBENCH_MEMORY, runs=1):
    """Per-phase and total cost of ``commands`` run as ``runs`` doorbells.

    Returns
    -------
    dict
        ``phases``: phase -> summed :func:`~gen.perf.commands.command_cost` fields;
        ``total``: the sums over every command, with ``cycles`` including the ``START``
        cycle of each run.
    """
    phases = {name: _zero() for name in PHASES}
    total = _zero()
    for command in commands:
        op = getattr(command.get("op"), "name", command.get("op"))
        cost = command_cost(config, command, timing)
        phase = phases[phase_of(str(op).upper())]
        for key, value in cost.items():
            phase[key] += value
            total[key] += value
    total["cycles"] += RUN_START * runs
    return {"phases": phases, "total": total}


def mlp_program(config, sizes, batch, lr=0.25, store_every_step=True, momentum=None):
    """The ``sim.compile.program.TrainingProgram`` of an MLP step (weights stored back every step,
    as ``chrysalis train`` runs it; SGD with ``momentum`` if given)."""
    from chrysalis.sim.compile.program import TrainingProgram
    return TrainingProgram(config, list(sizes), batch, lr, momentum=momentum,
                           store_every_step=store_every_step)


def mlp_step(config, sizes, batch, timing=TESTBENCH_MEMORY, store_every_step=True):
    """Model cost of one SGD step of an MLP as the accelerator runs it (one doorbell).

    Returns :func:`stream_cost`'s dict plus ``commands`` (the step's command list) and
    ``useful_macs`` (the multiply-accumulates the step needs,
    :meth:`chrysalis.gen.spec.networks.Network.macs`).
    """
    from chrysalis.gen.spec.networks import mlp
    program = mlp_program(config, sizes, batch, store_every_step=store_every_step)
    run = program.step_run(1, 0)
    first = (run.cmd_base - program.regions["commands"].addr) // 64
    commands = program.commands[first:first + run.cmd_count]
    out = stream_cost(config, commands, timing)
    out["commands"] = commands
    out["useful_macs"] = mlp([int(s) for s in sizes]).macs(batch)
    return out
