"""Cost of a command stream, per phase of the training step.

:func:`stream_cost` sums :func:`gen.perf.commands.command_cost` over a stream, split by
phase (:data:`gen.perf.commands.PHASES`): what each command costs run alone. The stream's
``cycles`` are those of its commands run one after the other by the controller, which
fetches the next command while the core runs one, starts a DMA beside a core command
when the two cannot disturb each other (:func:`dma_beside`), a load into the activation
banks beside a ``WGRAD`` that does not read what it writes (:func:`load_beside`) and a
``WGRAD`` beside the last drain of a ``FORWARD`` or ``BACKWARD`` (:func:`drain_beside`;
:func:`gen.perf.network.cluster_stream_cost` steps it cycle for cycle).
:func:`mlp_step` does it for the stream that ``sim.compile.program.TrainingProgram`` runs
for one SGD step of an MLP: the stream the RTL executes, so its figures can be held to the
RTL counters one phase at a time (``benchmarks/perf_model_validation.py``).
"""

import math

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import ceil_div

from .commands import COST_FIELDS, PHASES, RUN_START, TESTBENCH_MEMORY, command_cost, phase_of

__all__ = ["SP_READERS", "SP_WRITERS", "SIDE_OPS", "dma_beside", "load_beside", "drain_beside",
           "stream_cost",
           "mlp_program", "mlp_step"]

#: ``gen.spec.isa.SP_READERS`` / ``SP_WRITERS`` by name: the operations that read (write)
#: the scratchpad through its read (write) port.
SP_READERS = frozenset(op.name for op in isa.SP_READERS)
SP_WRITERS = frozenset(op.name for op in isa.SP_WRITERS)
#: ``gen.spec.isa.SIDE_OPS`` by name: the loads a core takes beside a ``WGRAD``.
SIDE_OPS = frozenset(op.name for op in isa.SIDE_OPS)
#: The columns of each core operation's scratchpad matrix ``sp`` (``gen.spec.isa.OP_REGIONS``).
_SP_COLUMNS = {"LOAD_W": "n", "STORE_W": "n"}


def _name(command):
    return str(getattr(command.get("op"), "name", command.get("op"))).upper()


def _sp_lines(command, columns):
    base = int(command.get("sp_base", 0))
    return base, base + int(command.get(columns, 0)) * int(command.get("sp_lpc", 0))


def dma_beside(dma, running):
    """Whether ``DMA_LOAD`` / ``DMA_STORE`` ``dma`` may start while the core command
    ``running`` (``None``: unknown) still runs, by the controller's rule (``hw.controller``):
    the DMA takes the scratchpad port ``running`` never uses, and if ``running`` uses the
    other one, the lines of their ``sp`` matrices are disjoint."""
    if running is None:
        return False
    op = _name(running)
    reads = op in SP_READERS and (op != "BACKWARD" or bool(running.get("flag")))
    writes = op in SP_WRITERS
    lo, hi = _sp_lines(running, _SP_COLUMNS.get(op, "batch"))
    dlo, dhi = _sp_lines(dma, "batch")
    apart = dhi <= lo or hi <= dlo
    if _name(dma) == "DMA_STORE":
        return not reads and (not writes or apart)
    return not writes and (not reads or apart)


def _act_region(config, command, base):
    """``(lo, hi)``: the words of ``command``'s activation-bank region at ``base``
    (``"abase"`` or ``"abase2"``, ``gen.spec.isa.OP_REGIONS``), or ``None``."""
    R, C = config.core.rows, config.core.cols
    m, n = int(command.get("m", 0)), int(command.get("n", 0))
    values = dict(m=m, n=n, batch=int(command.get("batch", 0)), mt=ceil_div(m, R),
                  nt=ceil_div(n, C), cores=config.cluster.cores)
    for region in isa.OP_REGIONS[isa.Opcode[_name(command)]]:
        if region.memory == "act" and region.base == base:
            lo = int(command.get(base, 0))
            return lo, lo + math.prod(region.shape(values))
    return None


def _reads_none_of(config, reader, writer, base):
    """``reader``'s activation-bank regions (``abase`` and ``abase2``) are apart from the
    words ``writer`` writes at ``base``."""
    lo, hi = _act_region(config, writer, base)
    for region in ("abase", "abase2"):
        rlo, rhi = _act_region(config, reader, region)
        if not (hi <= rlo or rhi <= lo):
            return False
    return True


def load_beside(config, load, running):
    """Whether core command ``load`` may start in the side slot of a core that runs
    ``running`` (``None``: unknown), by the controller's rule (``hw.controller``):
    ``load`` is a ``LOAD_COL`` or ``LOAD_ROW``, ``running`` a ``WGRAD``, and the words
    the load writes are none of those the ``WGRAD`` reads."""
    if (running is None or _name(running) != isa.SIDE_HOST.name
            or _name(load) not in SIDE_OPS):
        return False
    return _reads_none_of(config, running, load, "abase")


def drain_beside(config, wgrad, running):
    """Whether core command ``wgrad`` may start in the main slot of a core whose
    ``running`` command (``None``: unknown) drains its last group, by the controller's rule
    (``hw.controller``): ``wgrad`` is a ``WGRAD``, ``running`` a ``FORWARD`` or
    ``BACKWARD``, and if ``running`` fills the activation banks (``fill``), the ``WGRAD``
    reads none of the words it fills."""
    if (running is None or _name(wgrad) != "WGRAD"
            or _name(running) not in ("FORWARD", "BACKWARD")):
        return False
    return not int(running.get("fill", 0)) or _reads_none_of(config, wgrad, running, "abase2")


def _zero():
    return dict.fromkeys(COST_FIELDS, 0)


def stream_cost(config, commands, timing=TESTBENCH_MEMORY, runs=1):
    """Per-phase and total cost of ``commands`` run as ``runs`` doorbells.

    Returns
    -------
    dict
        ``phases``: phase -> summed :func:`~gen.perf.commands.command_cost` fields (each
        command as if run alone); ``total``: the sums over every command, except
        ``cycles``: the stream's, with the fetches and DMAs the controller overlaps with
        the core's work (:func:`gen.perf.network.cluster_stream_cost`) and the ``START``
        cycle of each run; ``hidden_cycles``: how many cycles the overlap saves.
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
    in_order = total["cycles"] + RUN_START * runs
    from .network import cluster_stream_cost
    total["cycles"] = cluster_stream_cost(config, commands, timing, runs)["cycles"]
    return {"phases": phases, "total": total, "hidden_cycles": in_order - total["cycles"]}


def mlp_program(config, sizes, batch, lr=0.25, store_every_step=True, momentum=None,
                update="separate"):
    """The ``sim.compile.program.TrainingProgram`` of an MLP step (weights stored back every step,
    as ``chrysalis train`` runs it; SGD with ``momentum`` if given; ``update`` ``"fused"``
    or ``"separate"``)."""
    from chrysalis.sim.compile.program import TrainingProgram
    return TrainingProgram(config, list(sizes), batch, lr, momentum=momentum,
                           store_every_step=store_every_step, update=update)


def mlp_step(config, sizes, batch, timing=TESTBENCH_MEMORY, store_every_step=True,
             update="separate"):
    """Model cost of one SGD step of an MLP as the accelerator runs it (one doorbell), with
    the weight update ``"separate"`` (its own pass) or ``"fused"`` into the gradient pass.

    Returns :func:`stream_cost`'s dict plus ``commands`` (the step's command list) and
    ``useful_macs`` (the multiply-accumulates the step needs,
    :meth:`chrysalis.gen.spec.networks.Network.macs`).
    """
    from chrysalis.gen.spec.networks import mlp
    program = mlp_program(config, sizes, batch, store_every_step=store_every_step,
                          update=update)
    commands = program.run_commands(program.step_run(1, 0))
    out = stream_cost(config, commands, timing)
    out["commands"] = commands
    out["useful_macs"] = mlp([int(s) for s in sizes]).macs(batch)
    return out
