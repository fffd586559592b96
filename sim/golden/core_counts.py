"""Cycles and counters of the training core's commands, predicted exactly.

The core's schedule does not depend on the data, so for every command the number of cycles
and the growth of each counter of ``hw.core.Core`` follow from the command's sizes and the
config alone. This module gives them in closed form (:func:`predict`), and as a
cycle-by-cycle model of the core's engines (:func:`trace`) that the closed forms were
derived from. Pure Python: no Amaranth here.

What is counted, per command, as ``sim.verify.core_sim.CoreRunner`` and the core count it:

``cycles``
    From the clock edge that takes the command to the first edge after which ``cmd_ready``
    is high (so the cycle in which the command was presented counts as one).
``busy_cycles``
    Edges at which the core was busy: always ``cycles - 1`` (the core is idle in the cycle
    the command is presented in, and busy from the next edge until it is ready again).
``mac_slots``, ``update_slots`` (``UPDATE`` and, with momentum, ``UPDATE_V``)
    Cycles whose micro-op issued a ``MAC`` (an ``UPDATE``) to every PE. With one stream
    (``mac.dual = "single"``) the PEs perform ``mac_slots * R * C`` MACs (``update_slots *
    R * C`` updates), padding included. With a dual policy a MAC slot carries two outputs
    (pair 1 only where output ``o + 1`` exists), so ``mac_slots = ceil(outputs / 2) *
    steps`` and the MACs done are still ``R * C * outputs * steps``; the product counters
    that split them by multiplier (``HIGH_PRODUCTS`` ...) depend on the data and are not
    predicted here (``sim.golden.machine`` counts them).
``stall_cycles``
    Cycles in which the compute engine waited for an accumulator buffer still being drained.
``bus_words``
    Words moved over the row and column buses: enabled lanes only, so elements past ``m``
    (``n``) and the padding outputs of a last group are not counted, but every output's
    ``C`` (``R``) partial sums are, even from PEs that hold only padding inputs. A
    ``FORWARD`` (``BACKWARD``) with ``fill`` (:func:`fills`) also moves each of its
    results into the activation banks over the free buses: ``m * batch`` (``n * batch``)
    words more, as many as the load it replaces, and no cycle more.

The schedule (``hw/core.py``), with ``L = mac.latency``, ``G = pe.acc_regs // 2``,
``mt = ceil(m/R)``, ``nt = ceil(n/C)``, and ``streams`` the outputs per MAC slot (1 for
``mac.dual = "single"``, 2 for a dual policy: outputs ``o`` and ``o + 1`` of a group at the
same step, ``docs/dual_precision.md``); every command ends with ``finish()``, a countdown of
``L + 4`` cycles, so ``cycles = X + L + 5`` where ``X`` is the cycle (1 = the first cycle
after the taking edge) in which the command calls ``finish()``:

* Movers: one iteration per cycle, ``finish()`` in the last one. ``LOAD_COL``: ``nt * batch``
  iterations, ``LOAD_ROW``: ``mt * batch``, ``LOAD_W`` / ``STORE_W``: ``mt * nt * C`` (one PE
  column per cycle, padded columns included). Bus words: ``n*batch``, ``m*batch``, ``m*n``.
* ``WGRAD``: ``groups = ceil(mt*nt / G)`` groups of ``G`` outputs, each ``G/streams * batch
  + G * passes`` compute slots (``batch`` MAC passes of ``G/streams`` slots; ``passes = 1``
  UPDATE pass, or 2 with momentum, whose velocity pass comes before the update: these are
  one output per slot whatever the policy; ``passes = 0`` when the update is fused into
  the MAC passes, :func:`wgrad_fused`), never stalling; ``finish()`` one cycle after the
  last slot.
* ``FORWARD`` / ``BACKWARD``: ``outputs = mt*batch`` (``nt*batch``) outputs in ``groups =
  ceil(outputs / G)`` groups; the compute engine spends ``P = G/streams * steps`` cycles on a
  group (``steps = nt``, resp. ``mt``). The drain engine (one output per send whatever the
  policy) starts a finished group one cycle after it is done (or after the previous drain
  ends), spends one cycle starting, ``w = max(0, L + 1 - G/streams)`` waiting (the last MAC
  of the group's first accumulator was issued ``G/streams - 1`` cycles before the group
  ended) and ``G * passes`` sending (``passes = lanes``; with the neighbour-link tree
  ``ceil(log2 lanes) + 1``) (``lanes = C``, resp. ``R``: one partial sum per PE along the
  bus, for each of the G accumulators): ``D + 1`` cycles with ``D = w + G * passes``. Two
  accumulator buffers: the compute engine may start group ``g + 2`` only in the cycle after
  group ``g``'s drain ended. The two-stage pipeline gives, exactly::

      last drain ends  f = P + 1 + D + (groups - 1) * max(P, D + 1)
      finish() at      X = f + 1
      stall_cycles     = max(0, groups - 2) * max(0, D + 1 - P)

  The last drain starts in cycle ``f - D``: the first in which the compute engine has
  issued every slot and the other buffer is free. From then until ``X`` a ``WGRAD`` may be
  taken beside it (the sequencer's drain slot, :func:`handover`); the command's own
  cycles and counters do not change.

* ``LOSS_GRAD`` (``hw/loss.py``): per chunk of ``cols <= 16`` samples, with ``slots =
  max(cols, L + 1)`` and ``lr = 1`` when ``cols >= L + 1`` (the last slot of a pass reads)
  else ``0``, a cycle to start the chunk, then four passes, each ``(N - 1) * I + 2 + lr +
  drain`` cycles for ``N`` elements issued every ``I`` cycles: ``MAX`` (``N =
  ceil(m / W) * slots``, ``W`` = :func:`loss_lanes` classes per read, ``I = 1``, no drain),
  ``EXP`` (``m * slots``, drain ``2L + Se``; pipelined ``max(L, 2L + Se - (slots -
  1) + 1 - lr)``, as the reciprocals start while the last slots' sums are still coming),
  ``RECIP`` (``slots``, drain ``max(0, Sr - 1 - slots)``) and ``OUT`` (``ceil(m / V) *
  cols``, ``V = min(W, 2)`` classes per read, ``I = 1``, ``lr = 1``: no empty slots,
  drain ``3L - 1``); one cycle to start and one to end. ``I``, ``Se`` and ``Sr`` are those of the special-function
  unit (``core.sfu``, :func:`loss_timing`): pipelined ``1``, ``9L + 2``, ``4L + 2``. Stepped
  cycle by cycle in :func:`_trace_loss` (exact); the schedule does not depend on the data.

* ``GATHER`` (``hw/gather.py``), with ``T = m`` taps. A copy (``T = 1``) goes in blocks
  of ``c <= W`` elements of a column (``W = max(R, C)``, the lanes it reads at once, from a
  column's start): one read of a block's table entries (with ``flag`` one of its old
  values), then one window read per element; the next block's entries are read in the
  cycle before the block's last window read. From cycle 1: the first block's entries, a
  cycle for them to arrive (its mask read with ``flag``), then each block's window reads
  and the next block's one or two reads: ``X = 2 + n * batch + (blocks - 1) * (1 +
  flag)`` with ``blocks = batch * ceil(n / W)``, ``finish()`` in the last window read.
  With more taps (a sum) the destination's columns are cut into groups of ``P = L + 1``
  (:func:`gather_group`) elements, each with a running sum, and the taps into chunks of
  ``W``: a group takes (with ``flag``) ``ceil(c / W)`` lane reads of its ``c`` elements'
  old values, ``c`` lane reads of the first chunk's entries (one per element), a cycle
  for the last to arrive, then per chunk of ``K`` taps ``K`` rounds of ``P`` cycles, round
  ``j`` reading tap ``j`` of every element (cycles past ``c`` read nothing), so that an
  element's taps are ``P`` cycles apart and its running sum is back from the fp32 adder
  (operand registers and ``L - 1`` stages) in time; the last round of a chunk that has a
  next one takes ``2P``, each element's window read followed by the read of its next
  chunk's entries. So a group takes ``flag * ceil(c / W) + c + 1 + T * P + (ceil(T / W)
  - 1) * P`` cycles and ``finish()`` is in the last round's last cycle. Either way ``cycles = X + L + 5``
  (:func:`gather_cycles`), and nothing else is counted (no bus word, no MAC slot); the
  last write lands at most ``L + 1`` cycles after ``X``, inside the ``finish()`` countdown.

A malformed command (unknown operation, or a size of zero that it needs) is refused at
once: one cycle, nothing counted.
"""

from math import gcd

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import ceil_div, ceil_log2

__all__ = ["COUNTERS", "FIELDS", "predict", "predict_many", "trace", "handover",
           "trace_handover", "is_malformed", "gather_group", "gather_lanes", "gather_cycles",
           "wgrad_fused", "wgrad_update_passes", "fills", "stationary_reads", "streaming_reads"]

#: The core's counters (``hw.core.Core``), in the order ``CoreRunner`` reports them.
COUNTERS = ("mac_slots", "update_slots", "busy_cycles", "stall_cycles", "bus_words")
#: Everything :func:`predict` returns: the command's cycles and the counters' growth.
FIELDS = ("cycles",) + COUNTERS

#: The sizes each core operation needs (a zero makes the command malformed): gen.spec.isa's rule,
#: the DMA operations aside (they never reach the core).
_NEEDS = {op.name: sizes for op, sizes in isa.NEEDS.items()
          if op not in (isa.Opcode.DMA_LOAD, isa.Opcode.DMA_STORE)}

#: Cycles of ``hw.core``'s ``finish()`` countdown after the cycle that calls it, plus the
#: edge that clears ``busy``: ``cycles = X + L + FINISH_EXTRA``.
FINISH_EXTRA = 5

#: FMAs of the special-function unit's microprograms (``hw.sfu``): exp, reciprocal.
EXP_FMAS, RECIP_FMAS = 9, 4


def _drain_passes(config, lanes):
    """Passes of the drain over a group: one per PE along the bus (``reduction = "bus"``),
    or one per level of the neighbour-link tree plus one bus pass (``"tree"``)."""
    if config.core.reduction == "tree":
        return ceil_log2(lanes) + 1
    return lanes


def wgrad_fused(config, command):
    """Whether a ``WGRAD`` command runs with its update fused into the gradient pass: its
    ``fused`` bit, without momentum (``flag``), on a core of one MAC stream
    (``mac.dual = "single"``); otherwise the bit is ignored (``gen.spec.isa``)."""
    return (bool(command.get("fused")) and not command.get("flag")
            and config.mac.macs_per_cycle == 1)


def fills(config, command):
    """Whether a ``FORWARD`` or ``BACKWARD`` command also loads its results into the
    activation banks: its ``fill`` bit, on a square PE array (``core.rows == core.cols``);
    otherwise the bit is ignored (``gen.spec.isa``)."""
    op = command.get("op")
    op = isa.Opcode(op).name if isinstance(op, int) else str(getattr(op, "name", op)).upper()
    return (bool(command.get("fill")) and op in ("FORWARD", "BACKWARD")
            and config.core.rows == config.core.cols)


def wgrad_update_passes(config, command):
    """Update passes per accumulator group of a ``WGRAD`` command: 0 fused, 1 (``UPDATE``),
    or 2 with momentum (``UPDATE_V`` first)."""
    if wgrad_fused(config, command):
        return 0
    return 2 if command.get("flag") else 1


def gather_group(latency):
    """Elements of a ``GATHER`` sum's group (``P``, the gather unit's running sums): ``L +
    1``, so that an element's taps, a round of ``P`` cycles apart, find its running sum
    back from the fp32 adder (operand registers, ``L - 1`` stages, then a register)."""
    return latency + 1


def gather_lanes(config):
    """Elements a ``GATHER`` copy reads the table entries (and old values) of at once:
    ``W = max(R, C)``, the lanes of the core's read requests."""
    return max(config.core.rows, config.core.cols)


def _sum_group_cycles(latency, lanes, taps, count, mask):
    """Cycles of one group of ``count`` elements of a ``GATHER`` sum (module docstring)."""
    P = gather_group(latency)
    return ((ceil_div(count, lanes) if mask else 0) + count + 1 + taps * P
            + (ceil_div(taps, lanes) - 1) * P)


def gather_cycles(latency, lanes, taps, n, batch, mask):
    """Cycles of a ``GATHER`` (``taps`` per element of an ``n x batch`` destination,
    ``mask``: its ``flag``) on a core of MAC latency ``latency`` whose gather unit reads
    ``lanes`` = :func:`gather_lanes` words at once."""
    if taps == 1:
        blocks = batch * ceil_div(n, lanes)
        finish = 2 + n * batch + (blocks - 1) * (1 + int(bool(mask)))
    else:
        P = gather_group(latency)
        full, rest = divmod(n, P)
        column = full * _sum_group_cycles(latency, lanes, taps, P, mask)
        if rest:
            column += _sum_group_cycles(latency, lanes, taps, rest, mask)
        finish = batch * column
    return finish + latency + FINISH_EXTRA


def _params(config):
    """``(R, C, L, G, streams)``: ``streams`` is the outputs a MAC slot carries."""
    R, C = config.core.rows, config.core.cols
    L = config.mac.latency
    G = config.pe.acc_regs // 2
    if G < 1:
        raise ValueError(f"pe.acc_regs must be at least 2, not {config.pe.acc_regs!r}")
    streams = config.mac.macs_per_cycle
    if G % streams:
        # gen.spec.config refuses such configs; a group must hold whole pairs.
        raise ValueError(f"pe.acc_regs // 2 must be even for mac.dual = "
                         f"{config.mac.dual!r}, not {G}")
    return R, C, L, G, streams


def _command(command):
    """Operation name (str) and integer sizes of a command dict."""
    op = command.get("op", "NONE")
    op = getattr(op, "name", op)        # an isa.Opcode member is accepted too
    if not isinstance(op, str):
        raise TypeError(f"op must be an operation name such as 'FORWARD', not {op!r}")
    sizes = {key: int(command.get(key, 0)) for key in ("m", "n", "batch")}
    return op.upper(), sizes


def _malformed(op, sizes):
    return op not in _NEEDS or any(sizes[key] == 0 for key in _NEEDS[op])


def is_malformed(command):
    """Whether the core refuses ``command`` (unknown operation, or a needed size of zero):
    it then takes one cycle, counts nothing and raises ``error``."""
    return _malformed(*_command(command))


def _result(cycles, mac=0, update=0, stall=0, bus=0):
    return {"cycles": cycles, "mac_slots": mac, "update_slots": update,
            "busy_cycles": cycles - 1, "stall_cycles": stall, "bus_words": bus}


def _labels_in_range(labels, m, batch):
    """Columns whose label is a class index (``0 <= label < m``), as the loss unit sees it."""
    if labels is None:
        return batch
    labels = [int(v) for v in labels]
    if len(labels) != batch:
        raise ValueError(f"labels must have one entry per column ({batch}), not {len(labels)}")
    # The unit compares the 32-bit label word with its 16-bit element counter.
    return sum(1 for v in labels if 0 <= (v & 0xFFFF_FFFF) < m)


def _pipeline(config, op, m, n, batch):
    """``(P, D, groups, f)`` of a FORWARD or BACKWARD: compute cycles per group, drain
    cycles per group less its start, groups, and the cycle in which the last drain ends."""
    R, C, L, G, streams = _params(config)
    fwd = op == "FORWARD"
    mt, nt = ceil_div(m, R), ceil_div(n, C)
    groups = ceil_div((mt if fwd else nt) * batch, G)
    P = G // streams * (nt if fwd else mt)
    D = max(0, L + 1 - G // streams) + G * _drain_passes(config, C if fwd else R)
    return P, D, groups, P + 1 + D + (groups - 1) * max(P, D + 1)


def handover(config, command):
    """The cycle from which a ``WGRAD`` may be taken beside ``command``'s last drain (the
    sequencer's drain slot), counted as ``cycles`` is (1: the first cycle after the edge
    that takes the command), or ``None`` if ``command`` is not a well-formed ``FORWARD``
    or ``BACKWARD``.

    That is the first cycle in which the compute engine has issued every slot and the
    buffer of the group before the last is free again (``hw.compute.ComputeEngine``'s
    ``handover``): the cycle the last drain starts, ``f - D`` (see the module docstring).
    """
    op, sizes = _command(command)
    if op not in ("FORWARD", "BACKWARD") or _malformed(op, sizes):
        return None
    _P, D, _groups, drained = _pipeline(config, op, sizes["m"], sizes["n"], sizes["batch"])
    return drained - D


def predict(config, command, labels=None):
    """Cycles and counter growth of one command, in closed form (exact).

    Parameters
    ----------
    config : gen.spec.config.Config
    command : dict
        Command fields (``hw.core.command_layout``), ``op`` as a name such as ``"FORWARD"``
        (as ``sim.compile.compiler`` produces them; an ``isa.Opcode`` member also works). Missing sizes
        are 0. Only ``op``, ``m``, ``n``, ``batch``, (``WGRAD``: momentum) ``flag``,
        ``fused`` and (``FORWARD``, ``BACKWARD``) ``fill`` matter.
    labels : sequence of int, optional
        ``LOSS_GRAD`` only: the label word of each column (checked for its number; the
        schedule does not depend on the labels).

    Returns
    -------
    dict
        ``cycles`` (as ``CoreRunner`` counts them) and the growth of every counter
        (:data:`FIELDS`).
    """
    R, C, L, G, streams = _params(config)
    op, sizes = _command(command)
    if _malformed(op, sizes):
        return _result(1)
    m, n, batch = sizes["m"], sizes["n"], sizes["batch"]
    mt, nt = ceil_div(m, R), ceil_div(n, C)
    end = L + FINISH_EXTRA
    # Slots of a MAC pass over a group: each carries `streams` outputs of the group.
    slots = G // streams

    if op == "LOAD_COL":
        return _result(nt * batch + end, bus=n * batch)
    if op == "LOAD_ROW":
        return _result(mt * batch + end, bus=m * batch)
    if op in ("LOAD_W", "STORE_W"):
        return _result(mt * nt * C + end, bus=m * n)
    if op == "WGRAD":
        # One pass of updates per group, two with momentum (the velocity, then the weight),
        # none when the update is fused into the MAC passes.
        passes = wgrad_update_passes(config, command)
        groups = ceil_div(mt * nt, G)
        return _result(groups * (slots * batch + G * passes) + 1 + end,
                       mac=ceil_div(mt * nt, streams) * batch, update=passes * mt * nt)
    if op in ("FORWARD", "BACKWARD"):
        fwd = op == "FORWARD"
        outputs = (mt if fwd else nt) * batch
        steps = nt if fwd else mt
        P, D, groups, drained = _pipeline(config, op, m, n, batch)
        stall = max(0, groups - 2) * max(0, D + 1 - P)
        # Every pass crosses the bus with a chain; with the tree only the last one does.
        on_bus = 1 if config.core.reduction == "tree" else (C if fwd else R)
        # A fill moves every result once more, over the buses the partial sums leave free.
        bus = (on_bus + fills(config, command)) * (m if fwd else n) * batch
        return _result(drained + 1 + end, mac=ceil_div(outputs, streams) * steps, stall=stall,
                       bus=bus)
    if op == "GATHER":
        return _result(gather_cycles(L, gather_lanes(config), m, n, batch,
                                     bool(command.get("flag"))))
    if op == "LOSS_GRAD":
        # The special-function unit's reorder and turn-taking make a closed form long; the
        # loss unit's passes are short loops, so they are stepped (still exact).
        return _result(_trace_loss(L, m, batch, labels, sfu=config.core.sfu,
                                   lanes=loss_lanes(config)) + end)
    raise AssertionError(op)     # _malformed covers every other name


def stationary_reads(config, command):
    """Reads of the stationary operand that each PE makes in one command, in closed form.

    A ``MAC`` reads its stationary operand (FORWARD and BACKWARD: the weight, from the
    weight bank; WGRAD: the gradient ``dY``, from the activation bank) unless the compute
    engine holds it: with one MAC stream, a MAC slot whose stationary address is that of
    the command's previous MAC slot is issued with ``c_hold`` (``hw.compute``), and the PE's
    read port keeps the word (``hw.pe.PE``'s ``stationary_read`` is off). The streaming
    operand (the activation bank's word at ``aaddr``) is read by every MAC.

    Outputs ``o`` sit at ``p1 = o // wrap`` (``wrap = batch``; WGRAD ``nt``), and the
    stationary address is one-to-one in ``(p1, step)``, so within a group's step the slots
    re-read once per value of ``p1`` among the group's outputs, and (with more than one
    step) never across steps or groups. With ``runs = ceil(outputs / wrap)`` values of
    ``p1`` in all, ``runs - 1`` of them start inside the command, at ``o = j * wrap``; one
    starts a new read inside a group unless ``o`` is a multiple of ``G``, which happens
    for ``j`` a multiple of ``G / gcd(wrap, G)``. So the reads are::

        steps * (groups + (runs - 1) - (runs - 1) // (G / gcd(wrap, G)))    steps > 1
        runs                                                                steps = 1

    (with one step the slots follow each other in output order, so the groups do not
    matter). With two MAC streams nothing is held: ``outputs * steps`` reads (pair 0's and
    pair 1's). Other commands, and malformed ones, read no stationary operand: 0.

    Parameters
    ----------
    config : gen.spec.config.Config
    command : dict
        As for :func:`predict` (``op``, ``m``, ``n``, ``batch``).

    Returns
    -------
    int
        Reads per PE (every PE makes the same ones; padding included).
    """
    shape = _operand_shape(config, command)
    if shape is None:
        return 0
    outputs, steps, wrap, G, streams = shape
    if streams != 1:
        return outputs * steps
    runs = ceil_div(outputs, wrap)
    if steps == 1:
        return runs
    aligned = (runs - 1) // (G // gcd(wrap, G))
    return steps * (ceil_div(outputs, G) + (runs - 1) - aligned)


def streaming_reads(config, command):
    """Reads of the streaming operand (the activation bank's word at ``aaddr``) that each
    PE makes in one command, in closed form: those the compute engine does not hold
    (``c_hold_b``, ``hw.compute``; ``hw.pe.PE``'s ``streaming_read``).

    The streaming address is one-to-one in ``(p2, step)`` with ``p2 = o % wrap``
    (:func:`stationary_reads`), and consecutive outputs share ``p2`` only when ``wrap = 1``
    (FORWARD and BACKWARD with batch 1, WGRAD with ``nt = 1``). Then each group's step
    reads once, ``groups * steps`` reads (1 when ``steps = 1``: the slots follow each other
    in output order); otherwise every MAC slot reads. With two MAC streams nothing is held:
    ``outputs * steps``. Other commands, and malformed ones: 0.

    Parameters
    ----------
    config : gen.spec.config.Config
    command : dict
        As for :func:`predict`.

    Returns
    -------
    int
        Reads per PE (every PE makes the same ones; padding included).
    """
    shape = _operand_shape(config, command)
    if shape is None:
        return 0
    outputs, steps, wrap, G, streams = shape
    if streams != 1 or wrap != 1:
        return outputs * steps
    return 1 if steps == 1 else ceil_div(outputs, G) * steps


def _operand_shape(config, command):
    """``(outputs, steps, wrap, G, streams)`` of a FORWARD, BACKWARD or WGRAD command (the
    compute engine's loops, ``hw.compute``), or None for another or a malformed one."""
    R, C, _, G, streams = _params(config)
    op, sizes = _command(command)
    if op not in ("FORWARD", "BACKWARD", "WGRAD") or _malformed(op, sizes):
        return None
    m, n, batch = sizes["m"], sizes["n"], sizes["batch"]
    mt, nt = ceil_div(m, R), ceil_div(n, C)
    outputs, steps, wrap = {"FORWARD": (mt * batch, nt, batch),
                            "BACKWARD": (nt * batch, mt, batch),
                            "WGRAD": (mt * nt, batch, nt)}[op]
    return outputs, steps, wrap, G, streams


def predict_many(config, commands, labels=None):
    """The sums of :func:`predict` over ``commands`` run back to back.

    The counters accumulate in the core, so these are the counters' growth over the whole
    sequence; ``cycles`` is the sum of the commands' cycles, and ``busy_cycles`` is
    ``cycles - len(commands)`` (the cycle each command is presented in is not busy).
    ``labels``, if given, is a list with an entry (or None) per command.
    """
    commands = list(commands)
    if labels is None:
        labels = [None] * len(commands)
    if len(labels) != len(commands):
        raise ValueError("labels must have one entry per command")
    total = dict.fromkeys(FIELDS, 0)
    for command, lab in zip(commands, labels):
        for key, value in predict(config, command, labels=lab).items():
            total[key] += value
    return total


def trace_handover(config, command):
    """:func:`handover` from the cycle-by-cycle model (its reference)."""
    op, sizes = _command(command)
    if op not in ("FORWARD", "BACKWARD") or _malformed(op, sizes):
        return None
    R, C, L, G, streams = _params(config)
    m, n, batch = sizes["m"], sizes["n"], sizes["batch"]
    marks = {}
    _trace_compute(op, R, C, L, G, m, n, batch, ceil_div(m, R), ceil_div(n, C),
                   dict.fromkeys(COUNTERS, 0), tree=config.core.reduction == "tree",
                   streams=streams, marks=marks)
    return marks["handover"]


def trace(config, command, labels=None):
    """The same numbers as :func:`predict`, from a cycle-by-cycle model of the sequencer.

    The state machines of ``hw.core`` (mover loops; compute engine, drain engine and the
    accumulator buffers' ``free`` bits; the ``finish()`` countdown) and of ``hw.loss`` are
    stepped one clock cycle at a time with the same registers, conditions and counters.
    Slower than :func:`predict`; it is the reference the closed forms are checked against.
    """
    R, C, L, G, streams = _params(config)
    op, sizes = _command(command)
    if _malformed(op, sizes):
        return _result(1)
    m, n, batch = sizes["m"], sizes["n"], sizes["batch"]
    mt, nt = ceil_div(m, R), ceil_div(n, C)
    counts = dict.fromkeys(COUNTERS, 0)

    if op in ("LOAD_COL", "LOAD_ROW", "LOAD_W", "STORE_W"):
        x = _trace_mover(op, R, C, m, n, batch, mt, nt, counts)
    elif op in ("FORWARD", "BACKWARD", "WGRAD"):
        x = _trace_compute(op, R, C, L, G, m, n, batch, mt, nt, counts,
                           tree=config.core.reduction == "tree",
                           momentum=bool(command.get("flag")) and op == "WGRAD",
                           streams=streams,
                           fused=op == "WGRAD" and wgrad_fused(config, command))
        if fills(config, command):
            counts["bus_words"] += (m if op == "FORWARD" else n) * batch
    elif op == "GATHER":
        x = _trace_gather(L, gather_lanes(config), m, n, batch, bool(command.get("flag")))
    else:
        x = _trace_loss(L, m, batch, labels, sfu=config.core.sfu, lanes=loss_lanes(config))
    cycles = x + L + FINISH_EXTRA
    counts["busy_cycles"] = cycles - 1
    return {"cycles": cycles, **counts}


def _trace_gather(L, W, taps, n, batch, mask):
    """Cycle of ``finish()`` of GATHER: ``hw.gather.Gather``'s engines stepped a cycle at
    a time."""
    if taps == 1:
        return _trace_gather_copy(W, n, batch, mask)
    P = gather_group(L)
    cycle = 0
    for _b in range(batch):
        r0 = 0
        while r0 < n:
            count = min(P, n - r0)
            cycle += ceil_div(count, W) if mask else 0      # MASKS
            cycle += count + 1                              # ENTRIES, BUBBLE
            t0 = 0
            while t0 < taps:
                chunk = min(W, taps - t0)
                more = taps - t0 > W
                for j in range(chunk):
                    interleaved = j + 1 == chunk and more
                    for _p in range(P):
                        cycle += 2 if interleaved else 1
                t0 += W
            r0 += count
    return cycle


def _trace_gather_copy(W, n, batch, mask):
    """The copy engine's states (``hw.gather.Gather._copy``) stepped a cycle at a time."""
    blocks = [min(W, n - r0) for _b in range(batch) for r0 in range(0, n, W)]
    nb = 0                                      # the next block to read
    cycle, state = 1, "start"
    count = count_next = j = 0
    next_read = False
    while True:
        if state == "start":
            count_next = blocks[nb]
            nb += 0 if mask else 1
            state = "pre"
        elif state == "pre":
            nb += 1 if mask else 0
            count, j, next_read, state = count_next, 0, False, "window"
        elif state == "window":
            if j + 1 < count:
                j += 1
            elif nb < len(blocks) and not next_read:
                count_next = blocks[nb]
                nb += 0 if mask else 1
                next_read = True
            elif next_read:
                count, j, next_read = count_next, 0, False
                state = "mask" if mask else "window"
            else:
                return cycle
        else:                                   # mask
            nb += 1
            state = "window"
        cycle += 1


def _lane_count(e0, limit, count):
    """popcount of ``hw.core``'s ``lane_mask(e0, limit, count)``."""
    return max(0, min(count, limit - e0))


def _trace_mover(op, R, C, m, n, batch, mt, nt, counts):
    """Cycle of ``finish()``; adds the bus words to ``counts``."""
    t = b = c_sel = 0
    cycle = 0
    while True:
        cycle += 1
        if op in ("LOAD_COL", "LOAD_ROW"):
            cols = op == "LOAD_COL"
            counts["bus_words"] += (_lane_count(t * C, n, C) if cols
                                    else _lane_count(t * R, m, R))
            if b + 1 == batch:
                b = 0
                if t + 1 == (nt if cols else mt):
                    return cycle
                t += 1
            else:
                b += 1
        else:
            j = c_sel + b * C
            counts["bus_words"] += _lane_count(t * R, m, R) if j < n else 0
            if c_sel + 1 == C:
                c_sel = 0
                if b + 1 == nt:
                    b = 0
                    if t + 1 == mt:
                        return cycle
                    t += 1
                else:
                    b += 1
            else:
                c_sel += 1


def _trace_compute(op, R, C, L, G, m, n, batch, mt, nt, counts, tree=False, momentum=False,
                   streams=1, fused=False, marks=None):
    """Cycle of ``finish()`` of FORWARD, BACKWARD or WGRAD; adds to ``counts``, and puts
    into ``marks`` (a dict) the first cycle of the compute engine's ``handover``.

    With ``streams = 2`` (a dual policy) a MAC slot issues outputs ``o`` (pair 0) and
    ``o + 1`` (pair 1, where it exists) at the same step: ``k`` and ``o`` advance by 2 in
    a MAC pass, by 1 in WGRAD's velocity and update passes (one output per slot).
    """
    fwd, bwd, wgr = op == "FORWARD", op == "BACKWARD", op == "WGRAD"
    outputs = mt * batch if fwd else nt * batch if bwd else mt * nt
    steps = nt if fwd else mt if bwd else batch
    wrap = nt if wgr else batch
    groups = ceil_div(outputs, G)
    lanes_count = C if fwd else R
    # Drain passes per group, and (tree) how many of them are neighbour-link levels.
    levels = ceil_log2(lanes_count) if tree else 0
    passes = levels + 1 if tree else lanes_count

    def advance(hi, lo, times):
        """The position ``times`` outputs after ``(hi, lo)`` (``lo`` counts to ``wrap``)."""
        for _ in range(times):
            hi, lo = (hi + 1, 0) if lo + 1 == wrap else (hi, lo + 1)
        return hi, lo

    # Compute engine.
    g = s = k = o = p1 = p2 = g_p1 = g_p2 = 0
    upd = vel = ce_done = False
    buf = 0
    free = 0b11
    # Drain engine.
    pending = dr_group = dr_lane = dr_k = dr_wait = 0
    dr_running = False
    dr_p1 = dr_p2 = dr_g_p1 = dr_g_p2 = 0
    dr_buf = 0
    cycle = 0
    while True:
        cycle += 1
        nxt = {}
        claim = release = 0
        group_done = drain_done = False
        if (marks is not None and "handover" not in marks and ce_done and not wgr
                and (free >> buf) & 1):
            marks["handover"] = cycle
        # --- compute engine ---
        if not ce_done:
            can_start = (free >> buf) & 1 or s != 0 or k != 0 or upd or vel or wgr
            if not can_start:
                counts["stall_cycles"] += 1
            else:
                if (fwd or bwd) and s == 0 and k == 0:
                    claim = 1 << buf
                if o < outputs:
                    counts["update_slots" if upd or vel else "mac_slots"] += 1
                # Outputs this slot issues: pair 0 at (p1, p2), pair 1 at the next position.
                stride = 1 if upd or vel else streams
                if k + stride == G:
                    nxt.update(k=0, o=o - (G - stride), p1=g_p1, p2=g_p2)
                    last_step = upd if wgr and not fused else s + 1 == steps
                    if wgr and not fused and not upd and not vel and s + 1 == steps:
                        nxt.update(vel=momentum, upd=not momentum, s=0)
                    elif vel:
                        nxt.update(vel=False, upd=True)
                    elif last_step:
                        np1, np2 = advance(p1, p2, stride)
                        nxt.update(s=0, upd=False, g=g + 1, o=o + stride, p1=np1, p2=np2,
                                   g_p1=np1, g_p2=np2)
                        group_done = not wgr
                        if not wgr:
                            nxt["buf"] = buf ^ 1
                        if g + 1 == groups:
                            nxt["ce_done"] = True
                    else:
                        nxt["s"] = s + 1
                else:
                    np1, np2 = advance(p1, p2, stride)
                    nxt.update(k=k + stride, o=o + stride, p1=np1, p2=np2)
        # --- drain engine ---
        if fwd or bwd:
            if not dr_running and pending != 0:
                nxt.update(dr_running=True, dr_wait=max(0, L + 1 - G // streams), dr_lane=0,
                           dr_k=0)
            if dr_running and dr_wait != 0:
                nxt["dr_wait"] = dr_wait - 1
            if dr_running and dr_wait == 0:
                if dr_group * G + dr_k < outputs and dr_lane >= levels:
                    counts["bus_words"] += (_lane_count(dr_p1 * R, m, R) if fwd
                                            else _lane_count(dr_p1 * C, n, C))
                wrapped = dr_p2 + 1 == batch
                np1, np2 = (dr_p1 + 1, 0) if wrapped else (dr_p1, dr_p2 + 1)
                if dr_k + 1 == G:
                    nxt.update(dr_k=0, dr_p1=dr_g_p1, dr_p2=dr_g_p2)
                    if dr_lane + 1 == passes:
                        drain_done = True
                        release = 1 << dr_buf
                        nxt.update(dr_lane=0, dr_running=False, dr_buf=dr_buf ^ 1,
                                   dr_group=dr_group + 1, dr_p1=np1, dr_p2=np2,
                                   dr_g_p1=np1, dr_g_p2=np2)
                    else:
                        nxt["dr_lane"] = dr_lane + 1
                else:
                    nxt.update(dr_k=dr_k + 1, dr_p1=np1, dr_p2=np2)
        nxt["pending"] = pending + (group_done and not drain_done) - (drain_done and not group_done)
        nxt["free"] = (free & ~claim) | release
        if ce_done and (wgr or dr_group == groups):
            return cycle
        # --- clock edge ---
        g = nxt.get("g", g); s = nxt.get("s", s); k = nxt.get("k", k)           # noqa: E702
        o = nxt.get("o", o); upd = nxt.get("upd", upd)                           # noqa: E702
        vel = nxt.get("vel", vel)
        p1 = nxt.get("p1", p1); p2 = nxt.get("p2", p2)                           # noqa: E702
        g_p1 = nxt.get("g_p1", g_p1); g_p2 = nxt.get("g_p2", g_p2)               # noqa: E702
        ce_done = nxt.get("ce_done", ce_done); buf = nxt.get("buf", buf)         # noqa: E702
        free = nxt["free"]; pending = nxt["pending"]                             # noqa: E702
        dr_group = nxt.get("dr_group", dr_group); dr_lane = nxt.get("dr_lane", dr_lane)  # noqa
        dr_k = nxt.get("dr_k", dr_k); dr_wait = nxt.get("dr_wait", dr_wait)     # noqa: E702
        dr_running = nxt.get("dr_running", dr_running)
        dr_p1 = nxt.get("dr_p1", dr_p1); dr_p2 = nxt.get("dr_p2", dr_p2)         # noqa: E702
        dr_g_p1 = nxt.get("dr_g_p1", dr_g_p1); dr_g_p2 = nxt.get("dr_g_p2", dr_g_p2)  # noqa
        dr_buf = nxt.get("dr_buf", dr_buf)


def loss_timing(L, sfu="pipelined"):
    """``(interval, exp_latency, recip_latency)`` of the loss unit's special-function unit
    (``core.sfu``): ``"pipelined"`` (``hw.sfu.PipelinedSFU``) takes an element every cycle,
    an exp out ``9L + 2`` cycles later, a reciprocal ``4L + 2`` (its early output);
    ``"barrel"`` (``hw.sfu.SpecialFunctionUnit`` with
    ``E = L + 1`` threads, ``L + 2`` when ``L + 1`` is a multiple of 3) is offered one
    element every 9 cycles, each taken at once and out ``9E + 1`` (exp) or ``4E + 1``
    (reciprocal) cycles later."""
    if sfu == "pipelined":
        return 1, EXP_FMAS * L + 2, RECIP_FMAS * L + 2
    if sfu == "barrel":
        threads = L + 1 if (L + 1) % 3 else L + 2
        return EXP_FMAS, EXP_FMAS * threads + 1, RECIP_FMAS * threads + 1
    raise ValueError(f"sfu must be 'pipelined' or 'barrel', not {sfu!r}")


def loss_lanes(config):
    """Classes of a column the loss unit's maximum pass reads at once: the largest power of
    two at most ``min(4, max(R, C))`` (``hw.core`` builds ``hw.loss`` with it)."""
    widest = min(4, max(config.core.rows, config.core.cols))
    return 4 if widest >= 4 else 2 if widest >= 2 else 1


#: The most classes ``hw.loss``'s output pass takes at once (``hw.loss.OUT_LANES``): it
#: reads ``min(lanes, LOSS_OUT_LANES)``.
LOSS_OUT_LANES = 2


def _trace_loss(L, m, batch, labels, columns=16, sfu="pipelined", lanes=1):
    """Cycle of ``finish()`` of LOSS_GRAD: ``hw.loss.LossGradient``'s state machine stepped
    one cycle at a time (its passes MAX, EXP, RECIP, OUT per chunk, each a loop over the
    classes (MAX: groups of ``lanes`` classes, OUT: of ``min(lanes, LOSS_OUT_LANES)``)
    and the chunk's slots, then the pass's
    drain; EXP and RECIP issue every ``interval`` cycles, :func:`loss_timing`). The
    schedule does not depend on the labels (they are only checked for their number)."""
    _labels_in_range(labels, m, batch)            # checks their number
    interval, exp_lat, recip_lat = loss_timing(L, sfu)
    # With the pipelined unit RECIP starts as slot 0's last sum is written, slots - 1 cycles
    # before the last slot's (but not before the last exp is in the unit); a pass whose
    # last slot holds no column ends a cycle sooner, hence a cycle more of drain.
    early = sfu == "pipelined"
    drains = {"MAX": lambda slots: 0,
              "EXP": lambda slots: (max(L, 2 * L + exp_lat - (slots - 1) + (cols < slots))
                                    if early else 2 * L + exp_lat),
              "RECIP": lambda slots: max(0, recip_lat - 1 - slots),
              "OUT": lambda slots: 3 * L - 1}
    after = {"MAX": "EXP", "EXP": "RECIP", "RECIP": "OUT", "OUT": "NEXT"}
    stage, b0, cols, slots, i, slot, wait, issuing, r_valid = "IDLE", 0, 0, 0, 0, 0, 0, False, False
    tick = 0
    cycle = 0
    while True:
        cycle += 1
        read = False
        if stage == "IDLE":
            stage, b0, wait = "NEXT", 0, 0
            continue
        if stage == "NEXT":
            if b0 >= batch:
                return cycle
            cols = min(batch - b0, columns)
            slots = max(cols, L + 1)
            stage, i, slot, issuing, wait = "MAX", 0, 0, True, 0
            continue
        last_i = {"RECIP": 1, "EXP": m, "MAX": -(-m // lanes),
                  "OUT": -(-m // min(lanes, LOSS_OUT_LANES))}[stage]
        if issuing and tick == 0:
            read = slot < cols
            if stage in ("EXP", "RECIP"):
                tick = interval - 1
            if slot + 1 == (cols if stage == "OUT" else slots):    # OUT: no empty slots
                slot = 0
                if i + 1 == last_i:
                    issuing = False
                else:
                    i += 1
            else:
                slot += 1
        elif issuing:
            tick -= 1
        elif not r_valid:
            if tick:
                tick -= 1
            if wait == 0:
                if stage == "OUT":
                    stage, b0 = "NEXT", b0 + cols
                else:
                    stage = after[stage]
                    i, slot, issuing, wait = 0, 0, True, drains[stage](slots)
            else:
                wait -= 1
        elif tick:
            tick -= 1
        r_valid = read
