"""Closed-form cost of one accelerator command: cycles, counters, memory traffic.

Every formula here is a closed form in the command's sizes and the config (no stepping):
the analytical model that :mod:`gen.perf` builds whole training steps, layers and clusters
from. ``sim.golden.core_counts`` is the exact, stepped reference of the core's schedule and the
RTL's counters are the ground truth; ``benchmarks/perf_model_validation.py`` holds this
model to both (``docs/perf_model.md``).

What a command costs on the accelerator (``hw/accelerator.py``), in cycles of the
``CYCLES`` counter, when it runs inside a command stream:

``overhead``
    The controller fetches the command (one DMA read burst of 64 bytes), checks it in three
    registered steps and dispatches it: ``1 + fetch + 3`` cycles, with ``fetch`` the
    cycles of that burst (:func:`dma_burst_cycles`).
core command
    The core's own cycles (``sim.golden.core_counts``' ``cycles``: busy cycles plus the cycle it
    was presented in), in closed form (:func:`core_command`): ``sim.golden.core_counts.predict``'s
    closed forms of the movers and the compute commands, and for ``LOSS_GRAD``, which
    ``sim.golden.core_counts`` steps, a closed form of its own (:func:`loss_grad_cycles`).
DMA command
    The DMA engine's cycles: every column is cut into bursts (at most 256 beats, never
    across 4 KiB), each costing its beats plus the memory's latency
    (:class:`MemoryTiming`).

A run (one doorbell) adds one cycle (``START``) to the sum over its commands.

This module needs no Amaranth.
"""

import math
from dataclasses import dataclass

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import ceil_div
from chrysalis.sim.golden import core_counts

__all__ = ["MemoryTiming", "TESTBENCH_MEMORY", "CORE_OPS", "DMA_OPS", "PHASES", "phase_of",
           "core_command", "gather_cycles", "loss_grad_cycles", "dma_burst_cycles", "dma_command",
           "dma_command_at", "command_overhead", "command_cost", "RUN_START", "COST_FIELDS"]

#: Core operations and DMA operations (``gen.spec.isa.Opcode`` names).
CORE_OPS = ("LOAD_COL", "LOAD_ROW", "LOAD_W", "STORE_W", "FORWARD", "BACKWARD", "WGRAD",
            "LOSS_GRAD", "GATHER")
DMA_OPS = tuple(op.name for op in sorted(isa.DMA_OPS))

#: Phases of a training step, and the operations each is made of. ``load`` is the movers
#: (scratchpad <-> PE banks), ``dma`` the transfers between memory and the scratchpad.
PHASES = {
    "forward": ("FORWARD",),
    "loss": ("LOSS_GRAD",),
    "backward": ("BACKWARD",),
    "wgrad_update": ("WGRAD",),
    "load": ("LOAD_COL", "LOAD_ROW", "LOAD_W", "STORE_W"),
    "dma": DMA_OPS,
    "gather": ("GATHER",),
}
_PHASE_OF = {op: phase for phase, ops in PHASES.items() for op in ops}

#: Cycles a run (doorbell) spends in the controller's ``START`` state before its first fetch.
RUN_START = 1
#: FMAs of the special-function unit's exp (``hw.sfu``): its pipeline's stages.
_EXP_FMAS = 9
#: Samples the loss unit takes at a time (``hw.loss``).
_LOSS_COLUMNS = 16


@dataclass(frozen=True)
class MemoryTiming:
    """How the memory behind the AXI4 master answers a burst.

    Parameters
    ----------
    read_latency : float
        Cycles a read burst costs beyond its beats (address, first data, the engine's
        bookkeeping).
    write_latency : float
        The same for a write burst (the write response included); a write burst also
        loses a cycle every three beats after its first, in the DMA engine itself.

    The defaults (:data:`TESTBENCH_MEMORY`) are those of the memory the RTL is simulated
    with (cocotbext-axi's ``AxiRam``), measured from the ``DMA_CYCLES`` counter
    (``docs/perf_model.md``); a real DRAM has longer latencies: pass its own figures.
    """

    read_latency: float = 4
    write_latency: float = 8

    def __post_init__(self):
        for name in ("read_latency", "write_latency"):
            value = getattr(self, name)
            if (not isinstance(value, (int, float)) or isinstance(value, bool)
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f"{name} must be a non-negative number, not {value!r}")


#: The timing of the simulated memory (cocotbext-axi ``AxiRam``) the RTL counters come from.
TESTBENCH_MEMORY = MemoryTiming()


def phase_of(op):
    """The phase (a key of :data:`PHASES`) of operation ``op`` (a name)."""
    try:
        return _PHASE_OF[op]
    except KeyError:
        raise ValueError(f"op must be one of {', '.join(_PHASE_OF)}, not {op!r}") from None


def _result(cycles, mac_slots=0, update_slots=0, stall_cycles=0, bus_words=0, products=0,
            update_cycles=0, fused_weights=0, stationary_reads=0, streaming_reads=0):
    return {"cycles": cycles, "mac_slots": mac_slots, "update_slots": update_slots,
            "stall_cycles": stall_cycles, "bus_words": bus_words, "products": products,
            "update_cycles": update_cycles, "fused_weights": fused_weights,
            "stationary_reads": stationary_reads, "streaming_reads": streaming_reads}


def loss_grad_cycles(latency, m, batch, sfu="pipelined", lanes=1):
    """Cycles of ``LOSS_GRAD`` (``m`` classes, ``batch`` samples) on a core whose MAC
    latency is ``latency`` and whose loss unit has the special-function unit ``sfu``
    (``core.sfu``) and reads ``lanes`` classes at once in its maximum pass
    (``sim.golden.core_counts.loss_lanes``) and ``V = min(lanes, 2)`` in its output pass
    (``sim.golden.core_counts.LOSS_OUT_LANES``), in closed form: the cycle in which the
    loss unit finishes (``sim.golden.core_counts``' ``X``; the command's cycles add
    ``latency + 5``).

    Per chunk of ``cols <= 16`` samples the loss unit (``hw.loss``) makes four passes over
    ``slots = max(cols, latency + 1)`` slots per class. The maximum and the output pass
    issue one read per cycle, the exponential and reciprocal passes one element per ``I``
    cycles (``I = 1`` pipelined, 9 barrel). A pass of ``N`` elements takes ``(N - 1) I +
    2 + lr + drain`` cycles (``lr = 1`` when every slot holds a sample, so the pass's last
    slot reads): the maximum (``N = ceil(m / lanes) * slots``, no drain), the exponentials
    (``m * slots``, drain ``2 latency + Se``, pipelined ``max(latency, 2 latency + Se -
    (slots - 1) + 1 - lr)``), the reciprocals with the labels (``slots``, drain ``max(0,
    Sr - 1 - slots)``) and the output (``ceil(m / V) * cols``: no empty slots, so ``lr =
    1``; drain ``3 latency - 1``, and with ``I > 1`` up to ``I - 1`` cycles more while the
    reciprocal pass's pacing runs out), plus one cycle to start the chunk; ``Se`` and
    ``Sr`` are the special-function unit's latencies
    (``sim.golden.core_counts.loss_timing``: ``9 latency + 2`` and ``4 latency + 2``,
    pipelined). Equal to the stepped schedule (``sim.golden.core_counts``) for every size
    and latency (``tests/gen/perf``).
    """
    interval, exp_lat, recip_lat = core_counts.loss_timing(latency, sfu)
    total = 2
    for b0 in range(0, batch, _LOSS_COLUMNS):
        cols = min(_LOSS_COLUMNS, batch - b0)
        slots = max(cols, latency + 1)
        lr = 1 if cols >= latency + 1 else 0
        n = m * slots
        recip_drain = max(0, recip_lat - 1 - slots)
        # The reciprocal pass's last issue leaves `interval - 1` cycles of pacing, which
        # delay the output pass's first issue beyond its lr + drain cycles.
        late = max(0, interval - 1 - (1 + lr + recip_drain))
        groups = -(-m // lanes)                 # the maximum's reads per column
        out_groups = -(-m // min(lanes, core_counts.LOSS_OUT_LANES))     # the output's
        passes = ((groups * slots + 1 + lr) + ((n - 1) * interval + 2 + lr)
                  + ((slots - 1) * interval + 2 + lr) + (out_groups * cols + 2 + late))
        exp_drain = 2 * latency + exp_lat
        if sfu == "pipelined":          # RECIP starts as the first column's sum is done
            exp_drain = max(latency, exp_drain - (slots - 1) + 1 - lr)
        drains = exp_drain + recip_drain + (3 * latency - 1)
        total += 1 + passes + drains
    return total


def gather_cycles(config, taps, n, batch, mask=False):
    """Cycles of ``GATHER`` (``taps`` table entries per element of an ``n`` x ``batch``
    destination, ``mask``: its ``flag``): a copy (one tap) in blocks of ``max(R, C)``
    elements, a cycle per element and one or two per block; more taps two cycles each
    (``sim.golden.core_counts.gather_cycles``)."""
    return core_counts.gather_cycles(config.mac.latency, core_counts.gather_lanes(config),
                                     taps, n, batch, mask)


def core_command(config, op, m=0, n=0, batch=0, momentum=False, fused=False, fill=False,
                 mask=False):
    """Cycles and counter growth of one core command, in closed form.

    Parameters
    ----------
    config : gen.spec.config.Config
    op : str
        A core operation (:data:`CORE_OPS`).
    m, n, batch : int
        The command's sizes (those the operation uses must be positive).
    momentum : bool
        ``WGRAD`` only: the momentum flag (a second update pass).
    fused : bool
        ``WGRAD`` only: the update fused into the gradient pass (no update pass; ignored
        with momentum or a dual-precision core, ``sim.golden.core_counts.wgrad_fused``).
    fill : bool
        ``FORWARD``, ``BACKWARD`` only: the results also loaded into the activation banks
        (no cycle more; their words on the buses, ``sim.golden.core_counts.fills``).
    mask : bool
        ``GATHER`` only: its ``flag`` (a read of each destination element first).

    Returns
    -------
    dict
        ``cycles`` (as ``sim.golden.core_counts`` counts them: busy cycles plus one), ``mac_slots``,
        ``update_slots``, ``stall_cycles``, ``bus_words``, ``products`` (multiplies the
        PEs do in MAC slots, padding included: ``mac_slots * R * C`` with one stream,
        ``R * C * outputs * steps`` with two) and ``update_cycles`` (``WGRAD``: the cycles
        of its update passes, the rest being the weight gradient's), ``fused_weights``
        (a ``WGRAD`` whose update is fused: the weights each PE reads at their first MAC and
        writes back at their last, ``mt * nt``; no RTL counter counts them, and the energy
        model prices them as a weight-bank read and write each), ``stationary_reads`` and
        ``streaming_reads`` (``FORWARD``, ``BACKWARD``, ``WGRAD``: the reads of the
        stationary and the streaming operand each PE makes, those the compute engine does
        not hold, ``sim.golden.core_counts.stationary_reads`` and ``streaming_reads``; no
        counter counts them either).
    """
    if op not in CORE_OPS:
        raise ValueError(f"op must be one of {', '.join(CORE_OPS)}, not {op!r}")
    R, C = config.core.rows, config.core.cols
    L = config.mac.latency
    if op == "LOSS_GRAD":
        return _result(loss_grad_cycles(L, m, batch, config.core.sfu,
                                        core_counts.loss_lanes(config))
                       + L + core_counts.FINISH_EXTRA)
    if op == "GATHER":
        return _result(gather_cycles(config, m, n, batch, mask))
    # The movers and the compute commands: the core's schedule in closed form, exact.
    command = {"op": op, "m": m, "n": n, "batch": batch, "flag": int(momentum),
               "fused": int(fused), "fill": int(fill)}
    exact = core_counts.predict(config, command)
    counts = {key: exact[key] for key in ("mac_slots", "update_slots", "stall_cycles",
                                          "bus_words")}
    counts["stationary_reads"] = core_counts.stationary_reads(config, command)
    counts["streaming_reads"] = core_counts.streaming_reads(config, command)
    mt, nt = ceil_div(m, R), ceil_div(n, C)
    if op == "WGRAD":
        G = config.pe.acc_regs // 2
        passes = core_counts.wgrad_update_passes(config, command)
        counts.update(products=R * C * mt * nt * batch,
                      update_cycles=ceil_div(mt * nt, G) * G * passes,
                      fused_weights=mt * nt if core_counts.wgrad_fused(config, command) else 0)
    elif op in ("FORWARD", "BACKWARD"):
        outputs, steps = (mt * batch, nt) if op == "FORWARD" else (nt * batch, mt)
        counts["products"] = R * C * outputs * steps
    return _result(exact["cycles"], **counts)


def dma_burst_cycles(config, column_bytes, write, timing=TESTBENCH_MEMORY, aligned=False):
    """Cycles the DMA engine spends on one column of ``column_bytes`` bytes (whole beats):
    its beats plus the memory's latency per burst. A column is cut into bursts of at most
    256 beats that do not cross 4 KiB; where a column starts inside a 4 KiB page is not
    known to the model, so a boundary is crossed with its probability,
    ``(column_bytes - beat) / 4096`` per page the column spans (exact for a single beat).
    ``aligned``: the column starts at a multiple of its size (a command fetch), so it never
    crosses a page it does not fill."""
    beat = config.host.axi_data_width // 8
    beats = ceil_div(column_bytes, beat)
    nbytes = beats * beat
    bursts = max(ceil_div(beats, 256), ceil_div(nbytes, 4096))
    crossing = 0.0
    if not aligned and nbytes > beat:
        crossing = max(0.0, (nbytes - beat) / 4096 - (bursts - 1))
    if write:
        # The engine reads the scratchpad ahead of the W channel through a short FIFO: it
        # sends three beats of every four cycles after the first (measured on the RTL).
        return (beats + bursts * ((ceil_div(beats, bursts) - 1) // 3 + timing.write_latency)
                + crossing * timing.write_latency)
    return beats + (bursts + crossing) * timing.read_latency


def dma_command(config, op, n, batch, timing=TESTBENCH_MEMORY):
    """Cycles and beats of ``DMA_LOAD`` / ``DMA_STORE`` of ``batch`` columns of ``n`` words.

    Returns ``{"cycles", "dma_read_beats", "dma_write_beats"}`` (``cycles`` as the
    ``DMA_CYCLES`` counter counts them)."""
    if op not in DMA_OPS:
        raise ValueError(f"op must be one of {', '.join(DMA_OPS)}, not {op!r}")
    beat = config.host.axi_data_width // 8
    column = ceil_div(4 * n, beat) * beat
    write = op == "DMA_STORE"
    beats = ceil_div(column, beat) * batch
    return {"cycles": batch * dma_burst_cycles(config, column, write, timing),
            "dma_read_beats": 0 if write else beats, "dma_write_beats": beats if write else 0}


def dma_command_at(config, op, n, batch, mem_addr, mem_stride, timing=TESTBENCH_MEMORY):
    """:func:`dma_command` of a command whose addresses are known: each column cut into
    bursts exactly as the engine cuts it (the rest of the column, at most 256 beats, up to
    the next 4 KiB boundary)."""
    beat = config.host.axi_data_width // 8
    beats = ceil_div(4 * n, beat)
    write = op == "DMA_STORE"
    cycles = 0
    for b in range(batch):
        addr, left = mem_addr + b * mem_stride, beats
        while left:
            length = min(left, 256, (4096 - addr % 4096) // beat)
            cycles += length + ((length - 1) // 3 + timing.write_latency if write
                                else timing.read_latency)
            addr += length * beat
            left -= length
    total = beats * batch
    return {"cycles": cycles, "dma_read_beats": 0 if write else total,
            "dma_write_beats": total if write else 0}


def command_overhead(config, timing=TESTBENCH_MEMORY):
    """Cycles the controller spends on a command besides executing it: ``FETCH``, the fetch
    burst of 64 bytes, and the three check steps. Returns ``(cycles, fetch_beats)``."""
    beat = config.host.axi_data_width // 8
    return 1 + dma_burst_cycles(config, 64, False, timing, aligned=True) + 3, ceil_div(64, beat)


_EMPTY = {"cycles": 0, "core_cycles": 0, "dma_cycles": 0, "overhead_cycles": 0,
          "commands": 0, "fetch_beats": 0, "dma_read_beats": 0, "dma_write_beats": 0,
          "mac_slots": 0, "update_slots": 0, "stall_cycles": 0, "bus_words": 0, "products": 0,
          "update_cycles": 0, "fused_weights": 0, "stationary_reads": 0,
          "streaming_reads": 0}
#: The fields of :func:`command_cost`.
COST_FIELDS = tuple(_EMPTY)


def command_cost(config, command, timing=TESTBENCH_MEMORY):
    """Everything one command of a stream costs: cycles (overhead included) and counters.

    Parameters
    ----------
    config : gen.spec.config.Config
    command : dict
        ``op`` (a name) and the sizes it uses (``m``, ``n``, ``batch``; ``flag`` for
        ``WGRAD``'s momentum, ``fused`` for its fused update and ``fill`` for a
        ``FORWARD``'s or ``BACKWARD``'s load of its results), as ``sim.compile.compiler`` and ``sim.compile.program``
        produce them. A DMA command with ``mem_addr`` and ``mem_stride`` is cut into bursts
        exactly
        (:func:`dma_command_at`); without them, the expected page crossings are used.
    timing : MemoryTiming

    Returns
    -------
    dict
        ``cycles`` (the ``CYCLES`` counter's growth, in a stream), ``core_cycles`` (busy
        cycles, the ``CORE_CYCLES`` counter), ``dma_cycles``, ``overhead_cycles``,
        ``commands`` (1) and the counters ``fetch_beats``, ``dma_read_beats``,
        ``dma_write_beats``, ``mac_slots``, ``update_slots``, ``stall_cycles``,
        ``bus_words`` and ``products``.
    """
    op = command.get("op")
    op = getattr(op, "name", op)
    if not isinstance(op, str):
        raise TypeError(f"op must be an operation name such as 'FORWARD', not {op!r}")
    op = op.upper()
    size = {key: int(command.get(key, 0)) for key in ("m", "n", "batch")}
    overhead, fetch = command_overhead(config, timing)
    out = dict(_EMPTY, commands=1, fetch_beats=fetch, overhead_cycles=overhead)
    if op in DMA_OPS:
        if "mem_addr" in command and "mem_stride" in command:
            dma = dma_command_at(config, op, size["n"], size["batch"],
                                 int(command["mem_addr"]), int(command["mem_stride"]), timing)
        else:
            dma = dma_command(config, op, size["n"], size["batch"], timing)
        out.update(dma, dma_cycles=dma["cycles"], cycles=overhead + dma["cycles"])
        return out
    wgrad = op == "WGRAD"
    core = core_command(config, op, momentum=bool(command.get("flag")) and wgrad,
                        fused=bool(command.get("fused")) and wgrad,
                        fill=bool(command.get("fill")) and op in ("FORWARD", "BACKWARD"),
                        mask=bool(command.get("flag")) and op == "GATHER", **size)
    out.update(core, core_cycles=core["cycles"] - 1, cycles=overhead + core["cycles"])
    return out
