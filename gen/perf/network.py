"""Cost of a training step of a whole network: one core, or a cluster in one of its modes.

One core (:func:`network_cost`, modes ``sgd`` and ``mbgd``): every layer by
:func:`gen.perf.layer.layer_cost` under its mapping, back to back (the accelerator runs its
commands in order). Whether the weights stay in the PE banks, and whether the network stays
in the scratchpad, is decided here for the whole network, as the compiler does. The fetches,
loads, drains and DMAs the controller overlaps are taken off in closed form or from short
streams of the program's own commands (``*_hidden_cycles``); on one core that includes the
next minibatch's loads beside the step's last ``WGRAD`` (``sim.compile.program``'s prefetch).

A cluster (``cluster.cores > 1``, ``docs/cluster.md``): cores on a one-way ring whose links
carry ``cluster.link_width`` bits per cycle with ``cluster.hop_latency`` cycles per hop. A
collective (:func:`ring_collective`) costs what the RTL's schedule costs,
``sim.golden.ring.cycles`` of the command a program issues for the matrix (its rows and columns:
:func:`collective_shape`): for example a reduce-scatter is ``c`` chains of one scratchpad
read per cycle, ``c * (L + (c - 1) * hop + 4)`` with ``L`` the beats of a chunk and ``hop =
hop_latency + 2``, not the textbook ``(c - 1) * L``; ``formula="textbook"`` gives
CATERPILLAR's ``(c - 1) * (w / c) / k + (c - 1) * hop_latency``. A stream of commands on a
cluster is priced as its controller dispatches it (:func:`cluster_stream_cost`: in order, a
core command handed to its cores once they are idle, the fetch of the next overlapping it).
The modes follow the programs the RTL runs:

``data`` (``sim.compile.parallel_program``)
    Data parallel: every core trains ``batch / cores`` samples on a copy of the weights.
    Per layer the weight gradient is exchanged as the program does it: ``WGRAD`` with
    ``mu = +0`` and ``lr = +0`` (its velocity pass writes the gradient into a region beside
    the weights) in place of the plain ``WGRAD``, ``STORE_W`` of it, ``ALL_REDUCE`` (the
    layer's rows by its columns), ``LOAD_W`` of the sum and ``WGRAD`` of batch 1 with
    ``mu = 1`` and ``-lr`` (the update). One DMA engine serves every core: the weights
    cross it once (a load fans out), the samples' data once per core.
``model`` (and ``mbgd`` / ``sgd`` with several cores; ``sim.compile.parallel_program``)
    Model parallel (CATERPILLAR's MBGD): every hidden layer in ``cores`` row panels, the
    output layer on every core (the softmax needs every class); the forward pass
    all-gathers each hidden layer's output panels, the backward pass reduce-scatters the
    input gradient below every split layer but the first. ``sgd`` is batch 1.
``cp`` (``sim.compile.cp_program``)
    Continuous propagation: the layers cut into ``cores`` contiguous stages with the
    fewest array operations per sample (useful MACs and the update pass,
    ``Layer.step_ops``) in the largest (``sim.compile.cp_stages.assign_stages``' rule); a
    sample costs a steady tick: the input and label DMAs, every stage's commands core
    after core as the program streams them, then the ``SEND`` s, each a barrier (an
    activation forward one hop, a gradient back ``cores - 1`` hops round the one-way
    ring), dispatched by :func:`cluster_stream_cost`. The controller hands a core's
    command only once the core is idle and does not look past it, so a core's work starts
    when the previous core's last command starts: the cores overlap little.
    ``pipelined_cycles`` is the tick if they overlapped fully (the slowest stage plus the
    sends, ``sim.compile.cp_program.CpProgram.tick_profile``'s estimate).

The SGD update (``update``): ``"separate"`` (the default) or ``"fused"`` into the weight
gradient (``WGRAD``'s ``fused`` bit, as ``sim.compile.compiler``, ``parallel_program`` and
``cp_program`` issue it; :func:`gen.perf.layer.layer_cost` keeps the separate update under a
batch split). ``sgd``, ``mbgd``, ``model`` and ``cp`` can fuse: each core's weight gradient
is its own. ``data`` cannot (its gradients are all-reduced before the update) and refuses
``"fused"``. :func:`default_update` is the programs' default: fused for plain SGD on one MAC
stream (``mac.dual = "single"``) outside ``data``.
"""

import functools
import math

from chrysalis.gen.spec.checks import ceil_div
from chrysalis.sim.compile.cp_program import interleave
from chrysalis.sim.compile.cp_stages import balanced_cut

from .commands import COST_FIELDS, TESTBENCH_MEMORY, command_cost
from .layer import PHASE_NAMES, PhaseCosts, check_update, layer_cost, tile_splits

__all__ = ["MODES", "COLLECTIVE_KINDS", "FORMULAS", "network_cost", "ring_collective",
           "collective_cost", "collective_shape", "cluster_stream_cost", "weights_resident",
           "on_chip", "per_core", "shard_rows", "cp_stage_commands", "default_update",
           "check_mode_update"]

MODES = ("sgd", "mbgd", "cp", "data", "model")


def default_update(config, mode):
    """The SGD update the programs run by default in ``mode`` (plain SGD): ``"fused"`` on
    one MAC stream (``mac.dual = "single"``) unless ``mode`` is ``data`` on a cluster,
    ``"separate"`` otherwise (``sim.compile.parallel_program.resolve_parallel_update``)."""
    data = mode == "data" and config.cluster.cores > 1
    return "fused" if config.mac.macs_per_cycle == 1 and not data else "separate"


def check_mode_update(config, mode, update):
    """``update`` (:data:`gen.perf.layer.UPDATES`) if ``mode`` can run it; a
    ``ValueError`` naming the value or the mode otherwise."""
    check_update(update)
    if update == "fused" and mode == "data" and config.cluster.cores > 1:
        raise ValueError("data parallel all-reduces the weight gradients before the update, "
                         "so mode 'data' keeps the separate update: update must be "
                         "'separate', not 'fused'")
    return update


def weights_resident(config, layers, mappings=None, copies=1):
    """Every layer's weights (``copies`` times: 2 with a gradient region beside them, as
    data parallel keeps) fit the PE weight banks at once, each as one tile."""
    R, C = config.core.rows, config.core.cols
    words = 0
    for layer, mp in zip(layers, mappings or [None] * len(layers)):
        if mp is not None and (mp.tm < layer.m or mp.tn < layer.n):
            return False
        words += ceil_div(layer.m, R) * ceil_div(layer.n, C)
    return words * copies <= config.pe.weight_words


def on_chip(config, layers, batch, resident=False):
    """The activations and gradients of a step, and the weights unless they stay in the PE
    banks, fit the scratchpad."""
    words = 0 if resident else sum(layer.weights for layer in layers)
    words += sum((layer.input_words + 2 * layer.m * layer.columns) * batch
                 for layer in layers)
    return words <= config.core.scratchpad_words


def per_core(config, network, batch, mode):
    """What one core trains: ``(layers, batch)``. Model parallel (``sgd``, ``mbgd``,
    ``model``) gives each core ``1/cores`` of every hidden layer's rows and the whole output
    layer (replicated, as ``sim.compile.parallel_program`` does: the softmax needs every class);
    data parallel ``batch/cores`` samples; ``cp`` one sample of whole layers (its
    stage's)."""
    cores = config.cluster.cores
    if mode in ("sgd", "cp"):
        batch = 1
    if mode == "data":
        return list(network.layers), max(1, batch // cores)
    if mode == "cp" or cores == 1:
        return list(network.layers), batch
    last = len(network.layers) - 1
    return [layer if i == last else shard_rows(layer, cores)
            for i, layer in enumerate(network.layers)], batch


#: Collective kinds of :func:`ring_collective` and the command each is.
COLLECTIVE_KINDS = {"broadcast": "BROADCAST", "reduce": "REDUCE", "all-gather": "ALL_GATHER",
                    "reduce-scatter": "REDUCE_SCATTER", "all-reduce": "ALL_REDUCE",
                    "send": "SEND"}
#: How :func:`ring_collective` prices a collective.
FORMULAS = ("rtl", "textbook")


def collective_shape(words, kind, cores, columns=1):
    """The ``(n, batch)`` fields of the collective command that moves a matrix of ``words``
    words in ``columns`` columns (``ceil(words / columns)`` rows), as the cluster's
    programs (``sim.compile.parallel_program``, ``sim.compile.cp_program``) issue it: ``n``
    is each core's chunk of rows for an all-gather (``words``: the gathered matrix) and a reduce-scatter
    (``words``: each core's source), the whole matrix's rows otherwise."""
    columns = max(1, int(columns))
    rows = ceil_div(int(math.ceil(words)), columns)
    if kind in ("all-gather", "reduce-scatter"):
        rows = ceil_div(rows, cores)
    return rows, columns


@functools.lru_cache(maxsize=8192)
def _rtl_collective(op, config, n, batch, peer, in_place=False):
    from chrysalis.gen.spec.isa import Opcode
    from chrysalis.sim.golden import ring
    op = Opcode[op]
    how = dict(root=0, peer=peer, in_place=in_place)
    return (ring.cycles(op, config, n, batch, **how),
            ring.link_words_moved(op, config, n, batch, **how))


def collective_cost(config, words, kind="all-gather", cores=None, *, columns=1, hops=1,
                    formula="rtl", in_place=False):
    """Cycles and link words of one ring collective (see :func:`ring_collective`).

    Returns
    -------
    dict
        ``cycles``, ``ring_words`` (32-bit words sent over all the links) and the command's
        ``n`` and ``batch`` (:func:`collective_shape`; ``None`` with ``formula="textbook"``).
    """
    if kind not in COLLECTIVE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(COLLECTIVE_KINDS)}, not {kind!r}")
    if formula not in FORMULAS:
        raise ValueError(f"formula must be one of {', '.join(FORMULAS)}, not {formula!r}")
    if not isinstance(columns, int) or isinstance(columns, bool) or columns < 1:
        raise ValueError(f"columns must be a positive integer, not {columns!r}")
    c = config.cluster.cores if cores is None else cores
    if c <= 1 or words <= 0:
        return {"cycles": 0, "ring_words": 0, "n": None, "batch": None}
    if not isinstance(hops, int) or isinstance(hops, bool) or not 1 <= hops < c:
        raise ValueError(f"hops must be an integer from 1 to {c - 1}, not {hops!r}")
    if config.cluster.ring == "bidirectional":
        hops = min(hops, c - hops)          # the shorter way round
    if formula == "textbook":
        per_cycle = config.cluster.link_width / 32
        hop = config.cluster.hop_latency
        if kind == "send":
            return {"cycles": words / per_cycle + hops * hop, "ring_words": hops * words,
                    "n": None, "batch": None}
        if kind in ("broadcast", "reduce"):
            return {"cycles": words / per_cycle + (c - 1) * hop,
                    "ring_words": (c - 1) * words, "n": None, "batch": None}
        one = (c - 1) * (words / c) / per_cycle + (c - 1) * hop
        times = 2 if kind == "all-reduce" else 1
        return {"cycles": times * one, "ring_words": times * (c - 1) * words,
                "n": None, "batch": None}
    n, batch = collective_shape(words, kind, c, columns)
    if n > 0xFFFF or batch > 0xFFFF:
        # Past the 16-bit fields a program issues several commands: the cycles add up per
        # column block (each pays its own phase overheads).
        parts = ceil_div(batch, 0xFFFF) if batch > 0xFFFF else 1
        rows_parts = ceil_div(n, 0xFFFF) if n > 0xFFFF else 1
        one = collective_cost(config, ceil_div(n, rows_parts) * ceil_div(batch, parts)
                              * (c if kind in ("all-gather", "reduce-scatter") else 1),
                              kind, c, columns=ceil_div(batch, parts), hops=hops,
                              in_place=in_place)
        return {"cycles": one["cycles"] * parts * rows_parts,
                "ring_words": one["ring_words"] * parts * rows_parts, "n": n, "batch": batch}
    if c != config.cluster.cores:
        from chrysalis.gen.spec.config import with_overrides
        config = with_overrides(config, {"cluster.cores": c})
    cycles, moved = _rtl_collective(COLLECTIVE_KINDS[kind], config, n, batch,
                                    hops % c if kind == "send" else 0,
                                    bool(in_place) and kind == "all-gather")
    return {"cycles": cycles, "ring_words": moved, "n": n, "batch": batch}


def ring_collective(config, words, kind="all-gather", cores=None, *, columns=1, hops=1,
                    formula="rtl", in_place=False):
    """Cycles of a ring collective over a matrix of ``words`` words in ``columns`` columns.

    Parameters
    ----------
    config : gen.spec.config.Config
        The ring: ``cluster.cores``, ``link_width``, ``hop_latency``, ``ring``.
    words : int or float
        The matrix: the gathered matrix of an ``all-gather``, each core's source of a
        ``reduce-scatter`` (``cores`` chunks), the matrix otherwise.
    kind : str
        ``broadcast``, ``reduce``, ``all-gather``, ``reduce-scatter``, ``all-reduce`` or
        ``send``.
    cores : int, optional
        Cores on the ring (default ``cluster.cores``).
    columns : int
        Columns of the matrix (``batch`` of the command): a chunk is whole rows of every
        column, and a link beat carries up to ``link_width / 32`` words of one column.
    hops : int
        ``send``: links from the sender to the receiver (1: the next core; ``cores - 1``:
        the previous core, the long way round the one-way ring).
    formula : str
        ``"rtl"`` (default): the cycles of the RTL's schedule, ``sim.golden.ring.cycles`` of the
        command (:func:`collective_shape`) -- for example ``c`` chains for a reduce-scatter,
        ``c * (L + (c - 1) * hop + 4)`` with ``hop = hop_latency + 2``. ``"textbook"``:
        CATERPILLAR's pipelined ring, ``(c - 1) * (w / c) / k + (c - 1) * hop_latency`` for an
        all-gather or a reduce-scatter (``k`` words per link per cycle), twice that for an
        all-reduce, ``w / k + (c - 1) * hop_latency`` for a broadcast or a reduce and
        ``w / k + hops * hop_latency`` for a send.

    in_place : bool
        An ``all-gather`` in place (the command's ``flag``): each core's own chunk is
        already in the gathered matrix, so there is no copy phase.

    A ``bidirectional`` ring (which the RTL does not build) sends the shorter way round;
    its other collectives are priced as the one-way ring's.
    """
    return collective_cost(config, words, kind, cores, columns=columns, hops=hops,
                           formula=formula, in_place=in_place)["cycles"]


def _op(command):
    return str(getattr(command.get("op"), "name", command.get("op"))).upper()


def cluster_stream_cost(config, commands, timing=TESTBENCH_MEMORY, runs=1, costs=None,
                        dma_overlap=True, side_slot=True, drain_slot=True, ring_beside=True):
    """Cycles of a command stream as the accelerator's controller dispatches it, one core or
    a cluster (``hw.controller``), cycle for cycle.

    The controller takes the commands in order. It fetches and checks one (the overhead of
    :func:`gen.perf.commands.command_overhead`, through the DMA engine); a core command is
    handed to the cores of its ``cores`` mask (0: every core) in the cycle they are all
    idle, and the fetch of the next command starts two cycles later (the cycle after, the
    cores' error flags are checked), while they run. A DMA command starts as soon as it is
    checked if it may run beside what its cores run (:func:`gen.perf.stream.dma_beside`),
    otherwise once they are idle; it occupies the DMA engine, so the next fetch starts the
    cycle after it ends. A ``LOAD_COL`` or ``LOAD_ROW`` may start on a core that still runs
    a ``WGRAD`` (its side slot, :func:`gen.perf.stream.load_beside`), once the load before
    it in that slot has ended, and no drain slot is busy. A ``WGRAD`` may start on a core
    whose ``FORWARD`` or ``BACKWARD`` drains its last group (:func:`gen.perf.stream.
    drain_beside`; from ``sim.golden.core_counts.handover`` until the cycle that drain
    ends), which moves into the drain slot. The core is idle when every slot is, and a DMA
    goes beside it if it may go beside the command of each busy slot. A collective waits for
    every core to be idle or to run a ``WGRAD`` alone (no load beside it, no drain) and runs
    ``sim.golden.ring.cycles``. A run ends when the last command has ended and every core is
    idle.

    Parameters
    ----------
    config : gen.spec.config.Config
    commands : list of dict
        As ``sim.compile.program``, ``sim.compile.parallel_program`` and
        ``sim.compile.cp_program`` make them (``op`` a name); pseudo-commands ``_BUSY``
        (``busy`` cycles of core work after ``overhead`` cycles of the controller, on the
        cores of ``cores``) stand for blocks the model does not spell out.
    timing : gen.perf.commands.MemoryTiming
    runs : int
        Doorbells the commands are run as (each has a ``START`` cycle).
    costs : list of dict, optional
        Each command's ``overhead_cycles``, ``cycles`` and ``dma_cycles`` if known otherwise
        (measured on the RTL, one doorbell per command), in place of
        :func:`gen.perf.commands.command_cost`'s: the composition alone is then modelled.
    dma_overlap : bool
        ``False``: every DMA waits for its cores (what the fetch ahead alone gains).
    side_slot : bool
        ``False``: every load waits for its cores to be idle (what the side slot gains).
    drain_slot : bool
        ``False``: every ``WGRAD`` waits for its cores to be idle (what the drain slot
        gains).
    ring_beside : bool
        ``False``: every collective waits for every core to be idle (what running it
        beside a ``WGRAD`` gains).

    Returns
    -------
    dict
        ``cycles``, ``ring_cycles``, ``ring_words``, ``busy`` (per core: cycles of core
        commands) and ``dma_cycles``.
    """
    from chrysalis.gen.spec.isa import Opcode, COLLECTIVES
    from chrysalis.sim.golden import core_counts, ring
    from .commands import RUN_START, command_cost, command_overhead
    from .stream import dma_beside, drain_beside, load_beside
    c = config.cluster.cores
    everyone = (1 << c) - 1
    free = [0] * c                      # the first cycle each core is idle
    main_free = [0] * c                 # ... its main slot is (side_free, drain_free)
    side_free = [0] * c
    drain_free = [0] * c
    main = [None] * c                   # the command in each core's main slot
    side = [None] * c                   # ... in its side slot
    drain = [None] * c                  # ... in its drain slot
    # The cycles in which a WGRAD may be taken beside the main slot's last drain: from the
    # compute engine's hand-over to the cycle its drain ends (empty: none).
    window = [(0, 0)] * c
    drain_end = config.mac.latency + core_counts.FINISH_EXTRA
    fetch = RUN_START                   # the cycle of the next command's FETCH
    end = 0                             # the cycle the last command ends in
    out = {"ring_cycles": 0, "ring_words": 0, "busy": [0] * c, "dma_cycles": 0}
    collectives = {op.name for op in COLLECTIVES}
    overhead = command_overhead(config, timing)[0]
    for index, cmd in enumerate(commands):
        op = _op(cmd)
        mask = int(cmd.get("cores", 0)) or everyone
        mine = [k for k in range(c) if mask >> k & 1]
        if op in collectives:
            checked = fetch + overhead - 1

            def rings(k, t):
                """The collective may start at t beside core k: idle, or running a WGRAD
                alone in its main slot."""
                return t >= free[k] or (
                    ring_beside and main[k] is not None and _op(main[k]) == "WGRAD"
                    and max(side_free[k], drain_free[k]) <= t < main_free[k])

            times = sorted({checked} | {t for k in range(c)
                                        for t in (free[k], side_free[k], drain_free[k])
                                        if t > checked})
            start = next(t for t in times if all(rings(k, t) for k in range(c)))
            how = dict(root=int(cmd.get("root", 0)), peer=int(cmd.get("peer", 0)),
                       in_place=ring.in_place(Opcode[op], cmd))
            cyc = ring.cycles(Opcode[op], config, int(cmd["n"]), int(cmd["batch"]), **how)
            out["ring_cycles"] += cyc
            out["ring_words"] += ring.link_words_moved(
                Opcode[op], config, int(cmd["n"]), int(cmd["batch"]), **how)
            # Busy from the cycle after the start for `cyc` cycles; the controller sees the
            # ring's `done` in the cycle after that.
            end = start + cyc + 1
            fetch = end + 1
            continue
        if op == "_BUSY":
            checked = fetch + cmd["overhead"] - 1
            start = max([checked] + [free[k] for k in mine])
            for k in mine:
                free[k] = main_free[k] = start + cmd["busy"]
                main[k] = None
                window[k] = (0, 0)
                out["busy"][k] += cmd["busy"]
            end = start + 2
            fetch = end
            continue
        cost = costs[index] if costs is not None else command_cost(config, cmd, timing)
        checked = fetch + cost["overhead_cycles"] - 1
        if op.startswith("DMA"):
            def goes(k, t):
                """The DMA may start at t beside core k: idle, or beside its main slot's
                command and each other slot's while that is busy."""
                return t >= free[k] or (dma_overlap and dma_beside(cmd, main[k]) and (
                    t >= side_free[k] or dma_beside(cmd, side[k])) and (
                    t >= drain_free[k] or dma_beside(cmd, drain[k])))

            times = sorted({checked} | {t for k in mine
                                        for t in (free[k], side_free[k], drain_free[k])
                                        if t > checked})
            start = next(t for t in times if all(goes(k, t) for k in mine))
            end = start + cost["dma_cycles"]
            fetch = end + 1
            out["dma_cycles"] += cost["dma_cycles"]
            continue
        busy = cost["cycles"] - cost["overhead_cycles"]
        beside = {k: side_slot and load_beside(config, cmd, main[k]) for k in mine}
        behind = {k: drain_slot and drain_beside(config, cmd, main[k]) for k in mine}

        def takes(k, t):
            """Core k takes the command at cycle t: idle, in its side slot, or in its main
            slot while the command there drains its last group."""
            return t >= free[k] or (
                beside[k] and side_free[k] <= t < main_free[k] and t >= drain_free[k]) or (
                behind[k] and window[k][0] <= t < window[k][1] and t >= side_free[k]
                and t >= drain_free[k])

        times = sorted({checked} | {t for k in mine
                                    for t in (free[k], side_free[k], drain_free[k],
                                              window[k][0])
                                    if t > checked})
        start = next(t for t in times if all(takes(k, t) for k in mine))
        for k in mine:
            if start >= free[k] or behind[k]:
                if start < free[k]:
                    # Beside the drain: the running command moves into the drain slot.
                    drain_free[k], drain[k] = main_free[k], main[k]
                main_free[k] = start + busy
                main[k] = cmd
                handover = core_counts.handover(config, cmd)
                window[k] = ((start + handover, start + busy - drain_end)
                             if handover is not None else (0, 0))
            else:
                side_free[k] = start + busy
                side[k] = cmd
            free[k] = max(main_free[k], side_free[k], drain_free[k])
            out["busy"][k] += busy
        # The cycle after the hand-over the error flags are checked; the next fetch follows.
        end = start + 2
        fetch = end
    last = max([end] + free) if commands else 0
    out["cycles"] = last + 1 + RUN_START * (runs - 1) if commands else RUN_START * runs
    return out


def _zero_phases():
    return {name: dict.fromkeys(COST_FIELDS, 0) for name in PHASE_NAMES}


def shard_rows(layer, parts):
    """The layer with ``1/parts`` of its rows (model parallel)."""
    from chrysalis.gen.spec.networks import Layer
    return Layer(layer.name, ceil_div(layer.m, parts), layer.n, layer.columns, layer.kind,
                 layer.input_words)


def _layers_cost(config, layers, batch, mappings, timing, offset, total, classes,
                 update="separate"):
    """Costs of ``layers`` (positions ``offset`` ... of a network of ``total`` layers) on
    one core that holds them all; resident weights and on-chip data decided for them."""
    resident = weights_resident(config, layers, mappings)
    chip = on_chip(config, layers, batch, resident)
    out = []
    for i, (layer, mp) in enumerate(zip(layers, mappings)):
        out.append(layer_cost(config, layer, batch, mp, first=offset + i == 0,
                              last=offset + i == total - 1, classes=classes,
                              weights_resident=resident, on_chip=chip, timing=timing,
                              update=update))
    return out, resident, chip


def _macs_stages(layers, cores):
    """``sim.compile.cp_stages.assign_stages``' cut for any layers (the same
    ``balanced_cut``): contiguous stages minimising the array operations per sample of the
    largest (:meth:`~chrysalis.gen.spec.networks.Layer.step_ops`; ties: the earlier
    boundaries); more cores than layers leave the extra cores idle."""
    costs = [layer.step_ops(1, first=i == 0) for i, layer in enumerate(layers)]
    return balanced_cut(costs, min(cores, len(costs)))


def cp_stage_commands(config, layers, a, b, k, last_stage, costs, resident, classes, timing,
                      update="separate"):
    """The commands of stage ``k`` (layers ``a .. b-1``) in a steady tick, in the order
    ``sim.compile.cp_program`` issues them. A layer that is not one resident tile is one block of
    its layer cost (``_BUSY``, from ``costs``, the stage's layer costs); with ``resident`` and
    every layer's tiles in the activation banks each layer is spelled command by command and
    ``costs`` is not read; ``update = "fused"`` sets the ``WGRAD`` s' ``fused`` bit."""
    mask = 1 << k
    # The RTL's program keeps every weight in the PEs and each layer's input and gradient
    # tiles in the activation banks; otherwise a layer is its layer cost as one block.
    spelled = resident and all(
        (ceil_div(l.n, config.core.cols) + ceil_div(l.m, config.core.rows)) * l.columns
        <= config.pe.act_words for l in layers[a:b])

    def block(i):
        cost = costs[i - a]
        overhead = sum(p["overhead_cycles"] for p in cost["phases"].values())
        return [dict(op="_BUSY", cores=mask, busy=cost["cycles"] - overhead,
                     overhead=overhead)]

    # The activation banks as sim.compile.cp_placement places them: each layer's inputs,
    # then its gradients (a load beside a WGRAD depends on it, gen.perf.stream.load_beside).
    act_x, act_dy, anext = {}, {}, 0
    for i in range(a, b):
        l = layers[i]
        act_x[i] = anext
        anext += ceil_div(l.n, config.core.cols) * l.columns
        act_dy[i] = anext
        anext += ceil_div(l.m, config.core.rows) * l.columns

    def fwd(i):
        if not spelled:
            return []
        l = layers[i]
        return [dict(op="LOAD_COL", n=l.n, batch=l.columns, abase=act_x[i], cores=mask),
                dict(op="FORWARD", m=l.m, n=l.n, batch=l.columns, abase=act_x[i], cores=mask)]

    def bwd(i, reload):
        if not spelled:
            return block(i)
        l = layers[i]
        cmds = [dict(op="LOAD_ROW", m=l.m, batch=l.columns, abase=act_dy[i], cores=mask)]
        if i > 0:
            cmds.append(dict(op="BACKWARD", m=l.m, n=l.n, batch=l.columns, abase=act_dy[i],
                             cores=mask))
        if reload:
            cmds.append(dict(op="LOAD_COL", n=l.n, batch=l.columns, abase=act_x[i],
                             cores=mask))
        cmds.append(dict(op="WGRAD", m=l.m, n=l.n, batch=l.columns, abase=act_x[i],
                         abase2=act_dy[i], cores=mask, fused=int(update == "fused")))
        return cmds

    cmds = []
    if last_stage:
        for i in range(a, b):
            cmds += fwd(i)
        top = layers[b - 1]
        if spelled:
            cmds.append(dict(op="LOSS_GRAD", m=classes or top.m, batch=1, cores=mask))
            cmds.append(dict(op="DMA_STORE", n=top.m, batch=top.columns, cores=mask))
        for i in reversed(range(a, b)):
            cmds += bwd(i, reload=False)
    else:
        for i in reversed(range(a, b)):
            cmds += bwd(i, reload=True)
        for i in range(a, b):
            cmds += fwd(i)
    return cmds


def _cp_cost(config, network, layers, mappings, timing, update="separate"):
    """A steady tick of continuous propagation (a sample per tick), as ``sim.compile.cp_program``
    streams it: the stages' commands (core 0's after its input DMA, the last core's after its
    label DMA) interleaved round robin (``sim.compile.cp_program.interleave``), then the
    ``SEND`` s (each a barrier). Returns ``(tick, per-layer costs, resident, on chip,
    pipelined)``; ``pipelined`` is the tick if the cores' commands overlapped fully: the
    slowest stage plus the sends."""
    cores = config.cluster.cores
    total = len(layers)
    stages = _macs_stages(layers, cores)
    one_way = config.cluster.ring != "bidirectional"
    costs_all, resident_all, chip_all, sends, stage_cycles = [], True, True, [], []
    first = layers[0]
    per_core = [[] for _ in stages]
    per_core[0].append(dict(op="DMA_LOAD", n=first.input_words or first.n, batch=1, cores=1))
    per_core[-1].append(dict(op="DMA_LOAD", n=1, batch=1, cores=1 << (len(stages) - 1)))
    for k, (a, b) in enumerate(stages):
        costs, res, on = _layers_cost(config, layers[a:b], 1, mappings[a:b], timing, a, total,
                                      network.classes, update)
        costs_all += costs
        resident_all, chip_all = resident_all and res, chip_all and on
        last = k == len(stages) - 1
        stage = cp_stage_commands(config, layers, a, b, k, last, costs, res,
                                  network.classes, timing, update)
        per_core[k] += stage
        stage_cycles.append(cluster_stream_cost(config, stage, timing)["busy"][k])
        if not last:
            out = layers[b - 1]
            sends.append(dict(op="SEND", root=k, peer=k + 1, n=out.m, batch=out.columns))
        if k > 0:
            below = layers[a - 1]
            # The gradient goes to the previous core: the long way round a one-way ring.
            sends.append(dict(op="SEND", root=k, peer=k - 1, n=below.m, batch=below.columns))
    sends.sort(key=lambda cmd: cmd["peer"] < cmd["root"])      # forward sends first
    if not one_way:
        # The model's bidirectional ring sends the gradient back one hop.
        sends = [dict(cmd, peer=(cmd["root"] + 1) % cores) if cmd["peer"] < cmd["root"]
                 else cmd for cmd in sends]
    run = cluster_stream_cost(config, interleave(per_core) + sends, timing)
    ring_cycles = run["ring_cycles"]
    pipelined = max(stage_cycles) + ring_cycles
    return run["cycles"], costs_all, resident_all, chip_all, ring_cycles, run["ring_words"], \
        pipelined, stages


def _weight_dma(config, layer, batch, mapping, first, resident, chip, timing):
    """The part of :func:`gen.perf.layer.layer_cost`'s DMA phase that moves the weights (as
    it counts them: per tile, per pass, re-read per batch tile when neither the layer fits
    the scratchpad nor the weights are the outer loop)."""
    acc = PhaseCosts(config, timing)
    if resident or chip:
        return acc.phases["dma"]
    mp = mapping.clip(layer, batch)
    sm, sn = tile_splits(layer.m, mp.tm), tile_splits(layer.n, mp.tn)
    nB = sum(c for _, c in tile_splits(layer.columns * batch, mp.tb))
    fits_sp = layer.m * layer.n + (layer.n + 2 * layer.m) * mp.tb <= config.core.scratchpad_words
    w_reads = 1 if (fits_sp or mp.order == "weights") else nB
    for mi, cm in sm:
        for nj, cn in sn:
            acc.add("dma", cm * cn * w_reads * (2 if first else 3), "DMA_LOAD", n=mi, batch=nj)
            acc.add("dma", cm * cn, "DMA_STORE", n=mi, batch=nj)
    return acc.phases["dma"]


def _data_exchange(config, layer, batch, mapping, timing):
    """The weight-gradient exchange of data parallel for one layer, as
    ``sim.compile.parallel_program`` issues it per weight tile: the local gradient into a region G
    beside the weights (``WGRAD`` with ``mu = +0``, ``lr = +0``: its velocity pass is the
    gradient) in place of the plain ``WGRAD``, ``STORE_W`` of G, ``LOAD_W`` of the sum back,
    and the update (``WGRAD`` of batch 1 with ``mu = 1``, ``-lr``). Returns the phase
    deltas (``wgrad_update``, ``load``)."""
    mp = mapping.clip(layer, batch)
    Bc = layer.columns * batch
    acc = PhaseCosts(config, timing)
    sb = tile_splits(Bc, mp.tb)
    for mi, cm in tile_splits(layer.m, mp.tm):
        for nj, cn in tile_splits(layer.n, mp.tn):
            t = cm * cn
            if len(sb) == 1 and sb[0][1] == 1:
                acc.add_delta("wgrad_update", t, "WGRAD", dict(m=mi, n=nj, batch=sb[0][0],
                                                                flag=1),
                              dict(m=mi, n=nj, batch=sb[0][0]))
            acc.add("wgrad_update", t, "WGRAD", m=mi, n=nj, batch=1, flag=1)
            acc.add("load", t, "STORE_W", m=mi, n=nj)
            acc.add("load", t, "LOAD_W", m=mi, n=nj)
    return acc.phases


def _side_hidden(config, costs, mode, timing, overhead):
    """Cycles the loads run beside a ``WGRAD`` save (``hw.sequencer``'s side slot,
    :func:`cluster_stream_cost` in closed form): each layer's ``LOAD_ROW`` of its gradient
    follows the ``WGRAD`` of the layer above (in data parallel the update ``WGRAD`` of batch
    1); in model parallel it is ``c = cores`` loads, one per core, else one. With ``f = 1 +
    overhead`` (a command's hand-over and the next one's fetch and check), ``w`` and ``l``
    the busy cycles of the ``WGRAD`` and of a load, load ``k`` starts beside the ``WGRAD``
    ``(k + 1) f`` cycles after it, and the next command ``max((c + 1) f, w, c f + l)``
    cycles after it; in order, the loads would start as the ``WGRAD`` ends, and the next
    command ``w + max(c f, (c - 1) f + l)`` after it."""
    return sum(_side_pair(config, below, above, mode, timing, overhead)
               for below, above in zip(costs, costs[1:]))


def _side_pair(config, below, above, mode, timing, overhead):
    """:func:`_side_hidden` of the loads of layer ``below`` beside the ``WGRAD`` of
    ``above``."""
    c = config.cluster.cores if mode == "model" else 1
    f = 1 + overhead
    load = below["row_load_busy"]
    wgrad = above["wgrad_busy"]
    if mode == "data" and wgrad:
        m, n = above["mapping"].tm, above["mapping"].tn
        cost = command_cost(config, dict(op="WGRAD", m=m, n=n, batch=1, flag=1), timing)
        wgrad = cost["cycles"] - cost["overhead_cycles"]
    if not (load and wgrad):
        return 0
    return max(0, wgrad + max(c * f, (c - 1) * f + load)
               - max((c + 1) * f, wgrad, c * f + load))


def _drain_hidden(config, layers, batch, costs, mode, timing, overhead):
    """Cycles saved by the ``WGRAD`` s started beside a ``BACKWARD``'s last drain
    (``hw.sequencer``'s drain slot) and, in model parallel, by the ``REDUCE_SCATTER`` that
    follows the ``WGRAD`` running beside it (``hw.controller``), beyond :func:`_side_hidden`:
    where a layer's ``BACKWARD`` and ``WGRAD`` are single commands, the stream
    ``sim.compile.parallel_program`` issues for them (``BACKWARD``, ``WGRAD``, the
    ``REDUCE_SCATTER`` of the partial input gradients below a split layer, then the loads of
    the layer below; in data parallel the ``WGRAD`` is the gradient's momentum pass) is
    dispatched by :func:`cluster_stream_cost` in order and with every overlap, regions apart
    as the programs place them, and the side slot's closed form is taken off the
    difference. Returns ``(drain, ring)``: what the drain slot saves, and what the
    collectives beside a ``WGRAD`` save on top."""
    cores = config.cluster.cores
    split = cores > 1 and mode not in ("data", "cp")
    drain = ring = 0
    for i, cost in enumerate(costs):
        commands = cost.get("commands", {})
        backward, wgrad = commands.get("BACKWARD"), commands.get("WGRAD")
        if backward is None or wgrad is None:
            continue
        if cores > 1 and mode == "data":
            wgrad = dict(op="WGRAD", m=wgrad["m"], n=wgrad["n"], batch=wgrad["batch"], flag=1)
        # Regions apart: dY at 1 << 20, the fill at 2 << 20, X at 0, a load at 3 << 20.
        stream = [dict(backward, abase=1 << 20, abase2=2 << 20),
                  dict(wgrad, abase=0, abase2=1 << 20)]
        if split and i < len(costs) - 1:
            below = layers[i - 1]           # one core's panel of the layer below
            stream.append(dict(op="REDUCE_SCATTER", n=below.m, batch=below.columns * batch))
        load = costs[i - 1].get("commands", {}).get("LOAD_ROW")
        if load is not None:
            masks = [1 << k for k in range(cores)] if mode == "model" and cores > 1 else [0]
            stream += [dict(load, abase=3 << 20, cores=mask) for mask in masks]
        in_order = cluster_stream_cost(config, stream, timing, side_slot=False,
                                       drain_slot=False, ring_beside=False)["cycles"]
        no_ring = cluster_stream_cost(config, stream, timing, ring_beside=False)["cycles"]
        drain += (in_order - no_ring
                  - _side_pair(config, costs[i - 1], cost, mode, timing, overhead))
        ring += no_ring - cluster_stream_cost(config, stream, timing)["cycles"]
    return drain, ring


def mlp_sizes(network):
    """The layer sizes of ``network`` if it is an MLP as ``gen.spec.networks.mlp`` makes it
    (fully connected layers, each one's inputs the previous one's outputs and a bias),
    else ``None``."""
    layers = network.layers
    if any(layer.kind != "fc" or layer.columns != 1 for layer in layers):
        return None
    if any(below.m + 1 != above.n for below, above in zip(layers, layers[1:])):
        return None
    return (layers[0].n - 1,) + tuple(layer.m for layer in layers)


@functools.lru_cache(maxsize=256)
def _prefetch_tail(config, sizes, batch, update, timing):
    """Cycles the one-core program's next-minibatch loads save by running beside its last
    ``WGRAD`` (``sim.compile.program``'s prefetch): the tail of the program's step from that
    ``WGRAD`` on, dispatched in order with the DMAs and loads waiting for the core, less
    the same dispatched with them beside it. 0 where the program does not prefetch, or does
    not compile."""
    from chrysalis.sim.compile.program import TrainingProgram
    try:
        program = TrainingProgram(config, list(sizes), batch, 0.25, store_every_step=False,
                                  update=update)
    except ValueError:
        return 0
    if not program.prefetch:
        return 0
    step = program.run_commands(program.step_run(1, 0))
    last = max(i for i, c in enumerate(step) if c["op"] == "WGRAD")
    tail = step[last:]
    waiting = cluster_stream_cost(config, tail, timing, dma_overlap=False,
                                  side_slot=False)["cycles"]
    return max(0, waiting - cluster_stream_cost(config, tail, timing)["cycles"])


def _prefetch_hidden(config, network, batch, costs, mode, timing, update):
    """:func:`_prefetch_tail` where ``network_cost`` prices the program one core runs: an
    MLP whose every layer is one resident tile with its activations in the PEs (the
    layers' single ``WGRAD`` s known), on one core, not ``cp``."""
    sizes = mlp_sizes(network)
    if (config.cluster.cores != 1 or mode == "cp" or sizes is None
            or any("WGRAD" not in cost.get("commands", {}) for cost in costs)):
        return 0
    return _prefetch_tail(config, sizes, batch, update, timing)


def network_cost(config, network, batch, mode="mbgd", mappings=None, timing=TESTBENCH_MEMORY,
                 update="separate"):
    """Cycles, utilization and counters of one training step of ``network``.

    Parameters
    ----------
    config : gen.spec.config.Config
        ``cluster.cores`` cores (modes ``data``, ``model``, ``cp``, and ``sgd`` / ``mbgd``
        with more than one core, which are model parallel).
    network : gen.spec.networks.Network
    batch : int
        Samples per step (``sgd`` and ``cp`` use 1).
    mode : str
        One of :data:`MODES`.
    mappings : list of gen.perf.layer.Mapping or None, optional
        One per layer (None: :func:`gen.perf.layer.fit_mapping`).
    timing : gen.perf.commands.MemoryTiming
    update : {"separate", "fused"}
        The SGD update (the module's docstring; ``"fused"`` is refused in ``data`` on a
        cluster). ``"separate"`` by default, as the API always costed it;
        :func:`default_update` is what the programs run by default.

    Returns
    -------
    dict
        ``layers``: per layer ``{"name", "cycles", "phases", "useful_macs", "mapping",
        "extensions"}`` (one core's share); ``phases``: summed over the layers (one
        core's; ``cp``: every stage's); ``collective_cycles`` (the ring's, on the critical
        path: nothing overlaps them); ``cycles`` (per step; ``cp``: per sample, a steady
        tick), ``samples`` (per step), ``useful_macs`` (whole step, all cores),
        ``utilization`` (useful MACs / (peak MACs per cycle x cycles)),
        ``weights_resident``, ``on_chip``, ``ring_words``, ``core_copies`` (how many cores
        do the work the counters in ``phases`` count); ``cp`` adds ``stages`` (the layers'
        ``(first, end)`` per core) and ``pipelined_cycles`` (the tick if the cores'
        commands overlapped fully: the slowest stage plus the sends); ``update``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    check_mode_update(config, mode, update)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    cores = config.cluster.cores
    if mode in ("sgd", "cp"):
        batch = 1
    if mappings is None:
        mappings = [None] * len(network.layers)
    if len(mappings) != len(network.layers):
        raise ValueError(f"mappings must have one entry per layer ({len(network.layers)}), "
                         f"not {len(mappings)}")
    ring_words = 0
    collective = 0
    layers, core_batch = per_core(config, network, batch, mode)
    total = len(layers)
    if mode == "data" and batch % cores:
        raise ValueError(f"data parallel needs batch to be a multiple of cluster.cores "
                         f"({cores}), not {batch!r}")
    extra = {}
    collectives = 0
    stagger = 0             # model parallel: the per-core FORWARDs start a fetch apart
    if mode == "cp" and cores > 1:
        cycles, per_core_costs, resident, chip, collective, ring_words, pipelined, stages = \
            _cp_cost(config, network, layers, mappings, timing, update)
        extra = {"pipelined_cycles": pipelined, "stages": stages}
    else:
        per_core_costs, resident, chip = _layers_cost(config, layers, core_batch, mappings,
                                                      timing, 0, total, network.classes,
                                                      update)
        if cores > 1 and mode == "data":
            resident = resident and weights_resident(config, layers, mappings, copies=2)
            for i, (layer, cost) in enumerate(zip(layers, per_core_costs)):
                delta = _data_exchange(config, layer, core_batch, cost["mapping"], timing)
                for name, entry in delta.items():
                    for key, value in entry.items():
                        cost["phases"][name][key] += value
                # One DMA engine serves the cores: the weights cross it once for all (a
                # DMA_LOAD fans out), what depends on the samples once per core.
                dma = cost["phases"]["dma"]
                weights = _weight_dma(config, layer, core_batch, cost["mapping"], i == 0,
                                      resident, chip, timing)
                whole = {k: weights[k] + cores * (dma[k] - weights[k]) for k in dma}
                cost["phases"]["dma"] = dict(whole)
                cost["cycles"] = sum(p["cycles"] for p in cost["phases"].values())
                # The weight gradient (rows x columns of W) summed over the ring.
                one = collective_cost(config, layer.m * layer.n, "all-reduce",
                                      columns=layer.n)
                collective += one["cycles"]
                ring_words += one["ring_words"]
                collectives += 1
        elif cores > 1:
            hidden = total - 1
            from .commands import command_overhead
            fetch = command_overhead(config, timing)[0]
            for i, layer in enumerate(network.layers[:hidden]):
                # Forward: each core's FORWARD writes its row panel in place (a command per
                # core, so the last starts c - 1 fetches after the first), and the in-place
                # all-gather sends the panels to every core.
                one = collective_cost(config, ceil_div(layer.m, cores) * cores * layer.columns
                                      * core_batch, "all-gather",
                                      columns=layer.columns * core_batch, in_place=True)
                collective += one["cycles"]
                stagger += (cores - 1) * fetch
                ring_words += one["ring_words"]
                collectives += 1
                if i > 0:
                    # Backward: the partial input gradients summed, each core its panel.
                    below = network.layers[i - 1]
                    one = collective_cost(config, ceil_div(below.m, cores) * cores
                                          * below.columns * core_batch, "reduce-scatter",
                                          columns=below.columns * core_batch)
                    collective += one["cycles"]
                    ring_words += one["ring_words"]
                    collectives += 1
        cycles = sum(c["cycles"] for c in per_core_costs) + collective + stagger
        # The controller fetches the next command while the cores run one: the fetch
        # after a core command is hidden (cluster_stream_cost in closed form). On one
        # core that is every core command's successor (a step ends with its DMA); on a
        # cluster the model counts the command after a collective without its own fetch,
        # and the step's first core command follows the DMA. The DMAs the controller runs
        # beside a core command are not taken off here (the regions are not known).
        from .commands import command_overhead
        core_commands = sum(c["phases"][name]["commands"] for c in per_core_costs
                            for name in ("forward", "loss", "backward", "wgrad_update",
                                         "load", "gather"))
        hidden = max(0, core_commands - collectives - (1 if cores > 1 else 0))
        overhead = command_overhead(config, timing)[0]
        fetch_hidden = hidden * overhead
        side_hidden = _side_hidden(config, per_core_costs, mode, timing, overhead)
        drain_hidden, ring_hidden = _drain_hidden(config, layers, core_batch, per_core_costs,
                                                  mode, timing, overhead)
        prefetch_hidden = (_prefetch_hidden(config, network, core_batch, per_core_costs,
                                            mode, timing, update) if chip else 0)
        cycles -= fetch_hidden + side_hidden + drain_hidden + ring_hidden + prefetch_hidden
        extra = {"fetch_hidden_cycles": fetch_hidden, "side_hidden_cycles": side_hidden,
                 "drain_hidden_cycles": drain_hidden, "ring_hidden_cycles": ring_hidden,
                 "prefetch_hidden_cycles": prefetch_hidden}
    phases = _zero_phases()
    for c in per_core_costs:
        for name, entry in c["phases"].items():
            for key, value in entry.items():
                phases[name][key] += value
    samples = 1 if mode in ("sgd", "cp") else batch
    useful = network.macs(samples)
    peak = config.peak_macs_per_cycle
    layers = [{"name": l.name, "cycles": c["cycles"], "phases": c["phases"],
               "useful_macs": c["useful_macs"], "mapping": c["mapping"],
               "extensions": c["extensions"]}
              for l, c in zip(network.layers, per_core_costs)]
    return {"network": network.name, "mode": mode, "cores": cores, "batch": samples,
            "update": update,
            "layers": layers, "phases": phases, "collective_cycles": collective,
            "cycles": cycles, "samples": samples, "useful_macs": useful,
            "utilization": useful / (peak * cycles) if cycles else 0.0,
            "weights_resident": resident, "on_chip": chip, "ring_words": ring_words,
            # Counters are of one core; the cluster does `cores` times the work (cp: each
            # core its stage, so the per-core counters summed are the whole pipeline's).
            "core_copies": 1 if mode == "cp" else cores, **extra}
