"""The ring of a cluster: the schedules, values and cycles of the collective operations.

This module is the one definition of what a collective does. The golden machine
(``sim.golden.cluster_machine``) executes a collective with :func:`execute`; the ring engine in the
RTL (``hw/ring.py``) runs the same :func:`schedule`, and its cycles are :func:`cycles`.

The ring
--------
``c`` cores sit on a one-way ring: core ``k`` sends to core ``(k + 1) mod c``. A link
carries ``nr = cluster.link_width / 32`` fp32 words per cycle; a *beat* is up to ``nr``
consecutive elements of one column of a scratchpad matrix, so a chunk of ``rows`` rows of
a matrix with ``batch`` columns is ``batch * ceil(rows / nr)`` beats, sent column by column,
top to bottom.

Phases and roles
----------------
A collective is a list of **phases** that run one after the other. In a phase every core
has a :class:`Role`: what it reads from its own scratchpad (``read``), whether it sends on
its link and what (``send``), and whether it writes and what (``write``). The data of a
role are:

- ``local``: the core's own words, read from matrix ``read`` at row ``read_row``;
- ``incoming``: the words arriving on the link from core ``k - 1``;
- ``sum``: ``incoming + local``, one fp32 addition (``sim.golden.numerics``: round to nearest
  even, subnormals flushed), computed once and both sent and written if both are asked.

Writes go to matrix ``sp2`` (the destination) at row ``write_row``.

Order of additions
------------------
A reduction runs along a *chain*: the first core sends its words, each next core adds its
own and passes the sum on, and the last one writes. So a chunk whose chain starts at core
``s`` is ``((x_s + x_{s+1}) + x_{s+2}) + ... + x_{s-1}`` (indices mod ``c``). IEEE addition
is commutative, so ``incoming + local`` and ``local + incoming`` are the same bits; the
grouping is the chain's. ``REDUCE`` to root ``r`` starts at ``r + 1``; ``REDUCE_SCATTER``'s
chunk ``j`` and ``ALL_REDUCE``'s chunk ``j`` start at ``j + 1``, so they end in core ``j``.

Why the reductions are chains
-----------------------------
A core reads its scratchpad once per cycle (one lane access of up to ``nr`` words). A
reduce-scatter has every core read all of its ``n * batch`` words, so it cannot take fewer
than ``c * L`` beats, where ``L`` is the beats of a chunk. The textbook ring reduce-scatter,
``(c - 1) * L`` beats, needs a second read per cycle (the partial sum received in the
previous step, and the own words to add to it) or a buffer of a whole chunk per core. The
chains reach ``c * L`` with one read, no buffer, and the same bits in every core.

Timing
------
In a phase, the core at position ``p`` of its chain issues the read of beat ``w`` in cycle
``t0 + p * hop + w``, where ``hop = cluster.hop_latency + RING_ADD_LATENCY``: one cycle of
scratchpad read, then the adder (or a delay line as long as it for a word that is not
added), then ``hop_latency`` cycles of link. A phase alone takes

    ``P = beats + depth * hop + RING_ADD_LATENCY + PHASE_OVERHEAD``

cycles (:func:`phase_cycles`), where ``beats`` is the most beats any core moves and
``depth`` is the longest chain in hops. The phases overlap: the next one starts
:func:`phase_advance` cycles after a phase's start, as soon as every core has read its
beats and the phase's last walker has started, so a command takes the advances of its
phases and the whole of the last one (:func:`cycles`); the RTL meets it exactly
(``tests/hw/test_ring.py``). With ``L`` the beats of one chunk (``L = batch * ceil(q / nr)``,
``q = ceil(n / c)`` for ``ALL_REDUCE``, ``q = n`` otherwise), ``P(d) = L + d * hop + 4``,
``S = max(L, hop + 5)`` (an all-gather step after a step) and ``C = max(L + hop,
(c - 1) * hop + 5)`` (a chain after a chain), for ``L > 0``:

========================  ===========================  ===================================
operation                 phases                       cycles
========================  ===========================  ===================================
``BROADCAST``, ``REDUCE`` one chain over every core    ``P(c - 1)``
``SEND``                  one chain of ``d`` hops      ``P(d)``, ``d = (peer - root) mod c``
``ALL_GATHER``            own chunk, ``c - 1`` steps   ``max(L, 5) + (c - 2) * S + P(1)``
``ALL_GATHER``, in place  ``c - 1`` steps              ``(c - 2) * S + P(1)``
``REDUCE_SCATTER``        ``c`` chains                 ``(c - 1) * C + P(c - 1)``
``ALL_REDUCE``            both                         ``sum_j C_j + (c - 1) * hop +
                                                       max(L_last, 5) + (c - 2) * S + P(1)``
========================  ===========================  ===================================

In ``ALL_REDUCE``, ``C_j`` is ``C`` with the beats of chunk ``j`` for every chain but the
last, whose own beats ``L_last`` count in the advance to the first step (the last chunks
may be shorter; an empty one has no chain). An all-gather first writes each core's own
chunk into place (one write port: the steps write what arrives); the in-place all-gather
(``flag``), whose own chunks are already there, has no such copy.

What bounds these schedules: a core reads its scratchpad once per cycle (``nr`` words), so
a reduce-scatter, which reads all ``c`` chunks of every core, takes at least ``c * L``
beats against the textbook ring's ``(c - 1) * L`` link beats; an all-gather that is not in
place writes ``c`` chunks through one write port, ``c * L`` beats as well.

``ALL_GATHER``'s ``(c - 1) * L`` beats are the ring all-gather's
``(n*b*c - n*b*c/c) / nr`` of CATERPILLAR for a gathered matrix of ``n*c`` rows.
"""

from dataclasses import dataclass

import numpy as np

from chrysalis.gen.spec.isa import COLLECTIVES, Opcode

from chrysalis.gen.spec.formats import FP32

from chrysalis.gen.spec.ring import PHASE_OVERHEAD, RING_ADD_LATENCY, hop_cycles, link_words

from .numerics import fadd

__all__ = ["Role", "Phase", "schedule", "execute", "cycles", "phase_cycles", "phase_beats",
           "phase_advance", "phase_starts", "link_words_moved", "chain_order", "in_place"]


_U = np.uint64


@dataclass(frozen=True)
class Role:
    """What one core does in one phase.

    Members
    -------
    read : str or None
        ``"sp"`` or ``"sp2"``: the matrix the core reads its ``local`` words from.
    read_row : int
        First row read.
    rows : int
        Rows of each column the core reads (with ``read``) or passes on (``send =
        "incoming"``); 0: nothing.
    send : str or None
        ``"local"``, ``"incoming"`` or ``"sum"``: what the core puts on its link.
    write : str or None
        ``"local"``, ``"incoming"`` or ``"sum"``: what the core writes into ``sp2``.
    write_row : int
        First row of ``sp2`` written.
    write_rows : int
        Rows of each column written (those the upstream core sends, for ``incoming``).
    position : int
        When the core reads: ``position * hop`` cycles into the phase. Words arriving
        from core ``k - 1`` are those it sent from its own position, one hop later.
    """
    read: object = None
    read_row: int = 0
    rows: int = 0
    send: object = None
    write: object = None
    write_row: int = 0
    write_rows: int = 0
    position: int = 0

    @property
    def write_position(self):
        """When the core's writes happen, in hops: a write of what arrives is a hop after
        the upstream core's position, which is this core's position in a chain and 1 in
        an all-gather step (every core reads at 0 there)."""
        if self.write is None:
            return 0
        if self.write == "local":
            return self.position
        return max(self.position, 1)


@dataclass(frozen=True)
class Phase:
    """One phase: the roles of cores ``0 .. c-1``, and its ``kind``: ``"chain"``,
    ``"copy"`` (the all-gather's own chunk into place) or ``"gather"`` (an all-gather
    step)."""
    roles: tuple
    kind: str = "chain"

    @property
    def depth(self):
        """Hops to the last write."""
        return max(r.write_position for r in self.roles)


def _chunk(n, c, j):
    """Rows ``(first, count)`` of chunk ``j`` of ``n`` rows cut in ``c`` chunks of
    ``ceil(n / c)`` (the last ones may be shorter or empty)."""
    q = -(-n // c)
    first = min(n, j * q)
    return first, min(n, first + q) - first


def _chain(c, start, hops, rows, *, read_row, write_row, add, write_all=False):
    """Roles of a chain from core ``start`` over ``hops`` links. ``add``: every core adds
    its own words (a reduction); otherwise the first core's words travel and the cores
    after it write them (``write_all``) or only the last one does."""
    roles = [Role() for _ in range(c)]
    for p in range(hops + 1):
        k = (start + p) % c
        first, last = p == 0, p == hops
        if add:
            roles[k] = Role(read="sp", read_row=read_row, rows=rows, position=p,
                            send="local" if first else (None if last else "sum"),
                            write="sum" if last else None, write_row=write_row,
                            write_rows=rows if last else 0)
        elif first:
            roles[k] = Role(read="sp", read_row=read_row, rows=rows, send="local", position=p)
        else:
            writes = last or write_all
            roles[k] = Role(rows=0 if last else rows, send=None if last else "incoming",
                            write="incoming" if writes else None, write_row=write_row,
                            write_rows=rows if writes else 0, position=p)
    return Phase(tuple(roles))


def _gather_steps(c, chunk, *, first_from_sp):
    """The ``c - 1`` steps of a ring all-gather of the chunks ``chunk(j) = (row, rows)``
    held in ``sp2`` (or, in step 0 with ``first_from_sp``, the own chunk in ``sp`` at row
    0): in step ``s`` core ``k`` sends chunk ``(k - s) mod c``, which it holds, and writes
    chunk ``(k - 1 - s) mod c``, which it receives."""
    phases = []
    for s in range(c - 1):
        roles = []
        for k in range(c):
            send_row, send_rows = chunk((k - s) % c)
            recv_row, recv_rows = chunk((k - 1 - s) % c)
            from_sp = first_from_sp and s == 0
            roles.append(Role(read="sp" if from_sp else "sp2",
                              read_row=0 if from_sp else send_row, rows=send_rows,
                              send="local" if send_rows else None,
                              write="incoming" if recv_rows else None,
                              write_row=recv_row, write_rows=recv_rows, position=0))
        phases.append(Phase(tuple(roles), "gather"))
    return phases


def schedule(op, c, n, *, root=0, peer=0, in_place=False):
    """The phases of collective ``op`` on ``c`` cores for matrices of ``n`` rows (``n`` as
    in the command, ``gen.spec.isa.OP_DOC``). ``in_place`` (``ALL_GATHER``'s ``flag``):
    every core's own chunk is already in its rows of ``sp2``, so the all-gather has no copy
    phase and reads no ``sp``; other operations ignore it.

    Returns
    -------
    list of Phase
    """
    op = Opcode(op)
    if op not in COLLECTIVES:
        raise ValueError(f"op must be a collective, not {op!r}")
    if c < 2:
        raise ValueError(f"a collective needs at least 2 cores, not {c!r}")
    if op == Opcode.BROADCAST:
        return [_chain(c, root, c - 1, n, read_row=0, write_row=0, add=False, write_all=True)]
    if op == Opcode.SEND:
        return [_chain(c, root, (peer - root) % c, n, read_row=0, write_row=0, add=False)]
    if op == Opcode.REDUCE:
        return [_chain(c, root + 1, c - 1, n, read_row=0, write_row=0, add=True)]
    if op == Opcode.REDUCE_SCATTER:
        return [_chain(c, j + 1, c - 1, n, read_row=j * n, write_row=0, add=True)
                for j in range(c)]
    if op == Opcode.ALL_GATHER:
        steps = _gather_steps(c, lambda j: (j * n, n), first_from_sp=False)
        if in_place:
            return steps
        # First the own chunk into place (no link: one write port, and the link steps
        # write what arrives), then the link steps.
        copy = Phase(tuple(Role(read="sp", rows=n, write="local", write_row=k * n,
                                write_rows=n) for k in range(c)), "copy")
        return [copy] + steps
    # ALL_REDUCE: a chain per chunk, each ending in the core of that chunk, into sp2; then
    # the all-gather of the chunks within sp2.
    phases = []
    for j in range(c):
        first, rows = _chunk(n, c, j)
        if rows:
            phases.append(_chain(c, j + 1, c - 1, rows, read_row=first, write_row=first,
                                 add=True))
    return phases + _gather_steps(c, lambda j: _chunk(n, c, j), first_from_sp=False)


def in_place(op, fields):
    """Whether a command (``op`` and its ``fields``, a mapping) is the in-place all-gather:
    an ``ALL_GATHER`` with ``flag`` set."""
    return Opcode(op) == Opcode.ALL_GATHER and bool(int(fields.get("flag", 0) or 0))


def _beats(rows, batch, nr):
    return batch * -(-rows // nr) if rows else 0


def phase_beats(phase, batch, config):
    """The most beats any core of ``phase`` reads or writes."""
    nr = link_words(config)
    return max(max(_beats(r.rows, batch, nr), _beats(r.write_rows, batch, nr))
               for r in phase.roles)


def phase_cycles(phase, batch, config):
    """Cycles of one phase alone: ``beats + depth * hop + RING_ADD_LATENCY +
    PHASE_OVERHEAD``."""
    return (phase_beats(phase, batch, config) + phase.depth * hop_cycles(config)
            + RING_ADD_LATENCY + PHASE_OVERHEAD)


def phase_advance(phase, following, batch, config):
    """Cycles from the start of ``phase`` to the start of ``following``, the phase after
    it: ``max(beats + s * hop, depth * hop + RING_ADD_LATENCY + 3)``.

    The next phase starts once each core's reads of ``phase`` are over (``s * hop``: how
    much later a core reads in ``phase`` than in ``following``; 1 from a chain to the
    next, whose cores are one position earlier, ``depth`` from a chain to an all-gather
    step, whose cores read at once, 0 from a step to a step) and once its last walker has
    started (the write at position ``depth``, ``2 + RING_ADD_LATENCY + depth * hop``).
    A step reads what the step before wrote beat for beat, after the write (the floor),
    and a chain reads only ``sp``. A phase that moves nothing is followed after its
    :func:`phase_cycles`. ``tests/sim/golden/test_ring.py`` checks that no port, link or
    row is used by two phases at once and that every read of a row written in the command
    comes after its write.
    """
    beats = phase_beats(phase, batch, config)
    if beats == 0:
        return phase_cycles(phase, batch, config)
    hop = hop_cycles(config)
    shift = 0
    if phase.kind == "chain":
        shift = 1 if following.kind == "chain" else phase.depth
    return max(beats + shift * hop, phase.depth * hop + RING_ADD_LATENCY + 3)


def phase_starts(phases, batch, config):
    """Cycle of each phase's start, from the command's first busy cycle."""
    starts = [0]
    for phase, following in zip(phases, phases[1:]):
        starts.append(starts[-1] + phase_advance(phase, following, batch, config))
    return starts


def cycles(op, config, n, batch, *, root=0, peer=0, in_place=False):
    """Cycles of a collective on ``config``'s ring (``RING_CYCLES`` of one command): the
    last phase's start and its :func:`phase_cycles`."""
    phases = schedule(op, config.cluster.cores, n, root=root, peer=peer, in_place=in_place)
    return phase_starts(phases, batch, config)[-1] + phase_cycles(phases[-1], batch, config)


def link_words_moved(op, config, n, batch, *, root=0, peer=0, in_place=False):
    """32-bit words sent over the links by one collective (``RING_WORDS``)."""
    return sum(r.rows * batch
               for p in schedule(op, config.cluster.cores, n, root=root, peer=peer,
                                 in_place=in_place)
               for r in p.roles if r.send is not None)


def execute(op, sources, destinations, n, *, root=0, peer=0, in_place=False):
    """Run collective ``op`` on the cores' matrices, in place.

    Parameters
    ----------
    op : gen.spec.isa.Opcode
    sources : list of ndarray of uint64
        Matrix ``sp`` of every core (fp32 bit patterns, ``(rows, batch)``), read only.
    destinations : list of ndarray of uint64
        Matrix ``sp2`` of every core, written in place (only the rows the collective
        writes change).
    n, root, peer : int
        As in the command.
    in_place : bool
        ``ALL_GATHER``'s ``flag``: the own chunks are already in place in
        ``destinations`` (``sources`` are not read).
    """
    c = len(sources)
    for phase in schedule(op, c, n, root=root, peer=peer, in_place=in_place):
        _execute_phase(phase, sources, destinations)


def _execute_phase(phase, sources, destinations):
    """One phase. Every read sees the state before the phase (a phase never reads rows
    it writes), so the cores go along each chain from its start."""
    c = len(sources)
    outgoing = [None] * c
    writes = []
    for k in sorted(range(c), key=lambda k: phase.roles[k].position):
        role = phase.roles[k]
        local = None
        if role.read is not None and role.rows:
            matrix = sources[k] if role.read == "sp" else destinations[k]
            local = matrix[role.read_row:role.read_row + role.rows].copy()
        upstream = (k - 1) % c
        incoming = outgoing[upstream] if phase.roles[upstream].send else None
        data = {"local": local, "incoming": incoming}
        if "sum" in (role.send, role.write) and role.rows:
            data["sum"] = fadd(incoming, FP32, local, FP32, FP32).astype(_U)
        if role.send:
            outgoing[k] = data.get(role.send)
        if role.write and role.write_rows:
            writes.append((k, role.write_row, role.write, data))
    # An all-gather step's incoming words are the upstream's own reads of this phase: fill
    # them now that every core has read.
    for k, row, what, data in writes:
        values = data[what]
        if values is None and what == "incoming":
            values = outgoing[(k - 1) % c]
        destinations[k][row:row + values.shape[0]] = values


def chain_order(op, c, n, *, root=0):
    """The reductions of a collective: for each chain, ``(core that writes the sum, first
    row written, rows, [cores in the order their words are added])``."""
    out = []
    for phase in schedule(op, c, n, root=root):
        if not any(r.write == "sum" for r in phase.roles):
            continue
        chain = sorted((r.position, k) for k, r in enumerate(phase.roles) if r.read)
        end = chain[-1][1]
        role = phase.roles[end]
        out.append((end, role.write_row, role.write_rows, [k for _, k in chain]))
    return out
