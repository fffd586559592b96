"""The ring engine of a cluster: the collective operations over the cores' scratchpads.

The engine runs one collective (``gen.spec.isa`` opcodes ``BROADCAST`` to ``SEND``) as
``sim.golden.ring.schedule`` defines it: the phases one after the other, and in each phase every
core's role (what it reads, sends and writes). Core ``k``'s link goes to core
``(k + 1) mod c``; it carries ``nr = cluster.link_width / 32`` fp32 words per cycle (a
*beat*: up to ``nr`` consecutive elements of one column) through ``cluster.hop_latency``
register stages.

Datapath of a core
------------------
In the cycle after a read, the core has its own words (``local``, from its scratchpad)
and the words of the upstream core (``incoming``, from the link), aligned beat for beat.
Both go through ``RING_ADD_LATENCY`` cycles: an fp32 adder per lane makes ``incoming +
local``, and a delay line as long as the adder carries ``local`` and ``incoming``
unchanged, so that every role takes the same time. What leaves that stage is put on the
link (``send``) and written to the scratchpad (``write``); a role may send one thing and
write another (an all-gather step sends its own words and writes what arrives).

Timing
------
Phase cycle 0 is the phase's start; the core at position ``p`` reads beat ``w`` at phase
cycle ``1 + p * hop + w`` (``hop = hop_latency + RING_ADD_LATENCY``) and a role writing
from position ``q`` (``sim.golden.ring.Role.write_position``) writes beat ``w`` at phase cycle
``2 + q * hop + w + RING_ADD_LATENCY``. The next phase starts
``sim.golden.ring.phase_advance`` cycles after a phase's start, while the phase's last beats
are still on their way: each core's read and write walkers take their region and what
their beats carry when they start and hold them to the last beat, and what a beat puts on
the link travels with it through the adder stage. The last phase ends with the cycle of
its last possible write (``sim.golden.ring.phase_cycles``), so ``busy`` is high for exactly
``sim.golden.ring.cycles`` cycles.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.formats import FP32
from chrysalis.gen.spec.ring import PHASE_OVERHEAD, RING_ADD_LATENCY, hop_cycles, link_words

from .fadd import FloatAdder
from .issue import SIZE_BITS

__all__ = ["ScratchpadPort", "RingEngine"]


class ScratchpadPort(wiring.Signature):
    """The lane-access ports of a core's scratchpad, as the ring engine drives them.

    The members mirror ``hw.scratchpad.Scratchpad``'s ``rd_*`` and ``wr_*`` ports (read
    data one cycle after the request, ``+0`` on a disabled lane); seen from the engine,
    ``Out`` members are driven by it.

    Parameters
    ----------
    lanes : int
        Words per lane access (``nr``).
    line_bits : int
        Width of a scratchpad line address.

    Members
    -------
    rd_en, rd_e0, rd_line, rd_lanes : Out
        Read request.
    rd_data : In(32) x lanes
        Read data, one cycle after the request.
    wr_en, wr_e0, wr_line, wr_lanes, wr_data : Out
        Write request (written at the clock edge).
    """

    def __init__(self, lanes, line_bits):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        if not isinstance(line_bits, int) or line_bits < 1:
            raise ValueError(f"line_bits must be a positive integer, not {line_bits!r}")
        self.lanes, self.line_bits = lanes, line_bits
        super().__init__({
            "rd_en": Out(1),
            "rd_e0": Out(SIZE_BITS),
            "rd_line": Out(line_bits),
            "rd_lanes": Out(lanes),
            "rd_data": In(32).array(lanes),
            "wr_en": Out(1),
            "wr_e0": Out(SIZE_BITS),
            "wr_line": Out(line_bits),
            "wr_lanes": Out(lanes),
            "wr_data": Out(32).array(lanes),
        })


class _Kind(enum.Enum, shape=2):
    """The kinds of phase: a chain (``sim.golden.ring._chain``), the all-gather's copy of the own
    chunk, and a ring all-gather step."""
    CHAIN = 0
    COPY = 1
    GATHER = 2


class _Data(enum.Enum, shape=2):
    """What a role sends or writes (``sim.golden.ring.Role.send`` / ``write``)."""
    NONE = 0
    LOCAL = 1
    INCOMING = 2
    SUM = 3


class _Beats:
    """Walks the beats of a matrix region column by column, top to bottom: ``rows`` rows
    from row ``row`` of ``batch`` columns at line ``base + b * lpc``, one beat a cycle
    from a cycle where ``go``. ``issue`` is high in the cycles of the beats, with the lane
    access in ``e0``, ``line`` and ``lanes`` (combinational).

    The region and the ``tags`` (a dict of values that go with the walk, such as what a
    role sends) are taken in the cycle of ``go`` and held to the last beat: phases
    overlap, so the role that started a walk may have changed before it ends. ``held``
    maps each tag's name to its value for the current beat."""

    def __init__(self, m, name, *, nr, line_bits, go, row, rows, batch, base, lpc, tags=None):
        active = Signal(name=f"{name}_active")       # past the first beat
        offset = Signal(SIZE_BITS, name=f"{name}_offset")   # row of the next beat in the region
        column = Signal(SIZE_BITS, name=f"{name}_column")
        line = Signal(line_bits, name=f"{name}_line")

        def hold(value, tag):
            value = Value.cast(value)
            reg = Signal(value.shape(), name=f"{name}_{tag}")
            with m.If(~active):
                m.d.sync += reg.eq(value)
            return Mux(active, reg, value)

        row, rows, base, lpc = (hold(row, "row"), hold(rows, "rows"), hold(base, "base"),
                                hold(lpc, "lpc"))
        self.held = {tag: hold(value, tag) for tag, value in (tags or {}).items()}
        # The beat of this cycle: the first one in the cycle of go.
        cur_offset = Mux(active, offset, 0)
        cur_column = Mux(active, column, 0)
        cur_line = Mux(active, line, base)
        self.issue = Signal(name=f"{name}_issue")
        m.d.comb += self.issue.eq(active | (go & (rows != 0) & (batch != 0)))
        self.e0 = (row + cur_offset)[:SIZE_BITS]
        self.line = cur_line[:line_bits]
        self.lanes = Cat(*[(cur_offset + lane) < rows for lane in range(nr)])
        with m.If(self.issue):
            with m.If((cur_offset + nr) >= rows):        # the column's last beat
                m.d.sync += [offset.eq(0), column.eq(cur_column + 1),
                             line.eq(cur_line + lpc), active.eq(cur_column + 1 != batch)]
            with m.Else():
                m.d.sync += [offset.eq(cur_offset + nr), column.eq(cur_column),
                             line.eq(cur_line), active.eq(1)]


class RingEngine(wiring.Component):
    """Runs one collective over the scratchpads of a cluster's cores.

    Parameters
    ----------
    config : gen.spec.config.Config
        Uses ``cluster.cores``, ``cluster.link_width``, ``cluster.hop_latency`` and
        ``cluster.ring``.
    line_bits : int
        Width of a scratchpad line address (``hw.scratchpad.Scratchpad.line_bits``).

    Members
    -------
    start : In(1)
        Starts a command (a one-cycle pulse while idle); the fields below are valid in that
        cycle and held until ``done``.
    op, flag, root, peer, n, batch : In
        The command (``gen.spec.isa``); ``root`` and ``peer`` below ``cluster.cores`` (the
        controller checks them); ``flag``: the in-place ``ALL_GATHER`` (no copy phase). An ``op`` that is not a collective does nothing: ``done``
        follows in the next cycle, and no cycle is counted.
    sp_base, sp_lpc, sp2_base, sp2_lpc : In (their ``gen.spec.isa.FIELD`` widths)
        Source (``sp``) and destination (``sp2``) matrices: element ``(e, b)`` at line
        ``base + b * lpc``, element ``e``.
    busy : Out(1)
        High from the cycle after ``start`` to the last cycle of the command.
    done : Out(1)
        One-cycle pulse in the cycle after the last busy cycle.
    ring_words : Out(48)
        32-bit words sent over the links since reset (``sim.golden.ring.link_words_moved``).
    ring_cycles : Out(48)
        Busy cycles since reset (``sim.golden.ring.cycles``).
    ports : Out(ScratchpadPort(nr, line_bits)) x cores
        Core ``k``'s scratchpad lane ports: requests are combinational outputs, read data
        is expected one cycle after the request; both are idle (``rd_en = wr_en = 0``)
        while not ``busy``.
    """

    COUNTER_BITS = 48

    def __init__(self, config, line_bits):
        cluster = config.cluster
        if not 2 <= cluster.cores <= isa.MAX_CORES:
            raise ValueError(f"cluster.cores must be between 2 and {isa.MAX_CORES} for a ring "
                             f"engine, not {cluster.cores!r}")
        if cluster.ring != "one-way":
            raise ValueError(f"cluster.ring must be 'one-way' (the only ring built), "
                             f"not {cluster.ring!r}")
        words = cluster.link_width // 32
        if cluster.link_width < 32 or words & (words - 1):
            raise ValueError(f"cluster.link_width must be 32 times a power of two, "
                             f"not {cluster.link_width!r}")
        if not isinstance(line_bits, int) or isinstance(line_bits, bool) or line_bits < 1:
            raise ValueError(f"line_bits must be a positive integer, not {line_bits!r}")
        self.config = config
        self.cores = cluster.cores
        self.nr = link_words(config)
        self.hop = hop_cycles(config)
        self.line_bits = line_bits
        counter = self.COUNTER_BITS
        super().__init__({
            "start": In(1),
            **{name: In(isa.FIELD[name].width)
               for name in ("op", "flag", "root", "peer", "n", "batch",
                            "sp_base", "sp_lpc", "sp2_base", "sp2_lpc")},
            "busy": Out(1), "done": Out(1),
            "ring_words": Out(counter), "ring_cycles": Out(counter),
            "ports": Out(ScratchpadPort(self.nr, line_bits)).array(self.cores),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.cores
        phase = self._command(m)
        self._chain(m, phase)
        self._phase_length(m, phase)
        self._sequencing(m, phase)
        chunks = self._gather_chunks(m, phase)

        links = []          # what each core puts on its link, after the adder stage
        incoming = [[Signal(32, name=f"incoming{k}_{l}") for l in range(self.nr)]
                    for k in range(c)]
        words = []
        for k in range(c):
            role = self._role(m, phase, chunks, k)
            send, sent = self._core(m, phase, role, incoming[k], k)
            links.append(send)
            words.append(sent)

        # The links: hop_latency register stages from core k to core k + 1.
        for k in range(c):
            for l in range(self.nr):
                word = self._delay(m, links[k][l], self.config.cluster.hop_latency,
                                   f"link{k}_{l}")
                m.d.comb += incoming[(k + 1) % c][l].eq(word)
        m.d.sync += self.ring_words.eq(self.ring_words + sum(words))
        return m

    def _command(self, m):
        """The command's state: the phase (its kind, index and cycle) and the operation."""
        c = self.cores
        phase = SimpleNamespace(
            q=Signal(SIZE_BITS, name="q"),              # ALL_REDUCE's chunk rows, ceil(n / c)
            kind=Signal(_Kind, name="kind"),
            index=Signal(range(c + 1), name="index"),   # chain j, or all-gather step s
            t=Signal(36, name="t"),                     # cycle within the phase
            last=Signal(36, name="last"),               # the phase's last cycle
            busy=Signal(name="running"),
            is_op={op: self.op == op.value for op in isa.COLLECTIVES},
        )
        m.d.comb += self.busy.eq(phase.busy)
        m.d.sync += self.done.eq(0)
        return phase

    def _chain(self, m, phase):
        """The chain of the current phase (when its kind is CHAIN): the core it starts at,
        its hops, whether it adds (else it copies) and the rows it reads and writes."""
        c, n, Op, is_op = self.cores, self.n, isa.Opcode, phase.is_op
        index = phase.index
        phase.chain_start = chain_start = Signal(range(c))
        phase.chain_hops = chain_hops = Signal(range(c))
        phase.chain_add = chain_add = Signal()
        phase.chain_all = chain_all = Signal()      # every core after the first writes
        phase.chain_rows = chain_rows = Signal(SIZE_BITS)
        phase.chain_read_row = chain_read_row = Signal(SIZE_BITS)
        phase.chain_write_row = chain_write_row = Signal(SIZE_BITS)
        root1 = Mux(self.root == c - 1, 0, self.root + 1)
        index1 = Mux(index == c - 1, 0, index + 1)
        phase.chunk_first = chunk_first = Signal(SIZE_BITS + 1)
        phase.chunk_end = chunk_end = Signal(SIZE_BITS + 1)
        m.d.comb += [chunk_first.eq(index * phase.q), chunk_end.eq(chunk_first + phase.q)]
        first = Mux(chunk_first > n, n, chunk_first)
        end = Mux(chunk_end > n, n, chunk_end)
        m.d.comb += [chain_start.eq(index1), chain_hops.eq(c - 1), chain_add.eq(1),
                     chain_all.eq(0), chain_rows.eq(n), chain_read_row.eq(0),
                     chain_write_row.eq(0)]
        with m.If(is_op[Op.BROADCAST]):
            m.d.comb += [chain_start.eq(self.root), chain_add.eq(0), chain_all.eq(1)]
        with m.Elif(is_op[Op.SEND]):
            m.d.comb += [chain_start.eq(self.root), chain_add.eq(0),
                         chain_hops.eq(Mux(self.peer >= self.root, self.peer - self.root,
                                           self.peer + c - self.root))]
        with m.Elif(is_op[Op.REDUCE]):
            m.d.comb += chain_start.eq(root1)
        with m.Elif(is_op[Op.REDUCE_SCATTER]):
            m.d.comb += chain_read_row.eq(index * n)
        with m.Elif(is_op[Op.ALL_REDUCE]):
            m.d.comb += [chain_rows.eq(end - first), chain_read_row.eq(first),
                         chain_write_row.eq(first)]

    def _phase_length(self, m, phase):
        """The phase's last cycle, set in its first cycle (``sim.golden.ring.phase_cycles``)."""
        c, n, kind, index, is_op = self.cores, self.n, phase.kind, phase.index, phase.is_op
        Op = isa.Opcode
        # The phase after this one: another chain (REDUCE_SCATTER's, ALL_REDUCE's next
        # non-empty chunk), an all-gather step, or none.
        phase.next_chain = Signal(name="next_chain")
        phase.final = Signal(name="final")
        more_chains = Mux(is_op[Op.REDUCE_SCATTER], index != c - 1,
                          is_op[Op.ALL_REDUCE] & (index != c - 1) & (phase.chunk_end < n))
        with m.If(kind == _Kind.CHAIN):
            m.d.comb += [phase.next_chain.eq(more_chains),
                         phase.final.eq(~more_chains & ~is_op[Op.ALL_REDUCE])]
        with m.Elif(kind == _Kind.GATHER):
            m.d.comb += phase.final.eq(index == c - 2)
        rows_max = Signal(SIZE_BITS, name="rows_max")
        depth = Signal(range(c), name="depth")
        m.d.comb += [rows_max.eq(phase.chain_rows), depth.eq(phase.chain_hops)]
        with m.If(kind == _Kind.COPY):
            m.d.comb += [rows_max.eq(n), depth.eq(0)]
        with m.Elif(kind == _Kind.GATHER):
            # Steps of empty chunks write nothing: depth 0 (sim.golden.ring.Phase.depth).
            m.d.comb += rows_max.eq(Mux(phase.is_op[isa.Opcode.ALL_REDUCE], phase.q, n))
            m.d.comb += depth.eq(rows_max != 0)
        column_beats = (rows_max + self.nr - 1) >> exact_log2(self.nr)
        # The phase alone ends with its last write; a phase with a phase after it ends
        # where that one starts (sim.golden.ring.phase_advance).
        beats = Signal(36, name="beats")
        length = Signal(36, name="length")
        reads = Signal(36, name="reads_over")       # every core has read its beats
        floor = Signal(36, name="floor")            # the last walker has started
        advance = Signal(36, name="advance")
        shift = Signal(range(c), name="shift")
        m.d.comb += [beats.eq(self.batch * column_beats),
                     length.eq(beats + depth * self.hop + RING_ADD_LATENCY + PHASE_OVERHEAD),
                     floor.eq(depth * self.hop + RING_ADD_LATENCY + 3),
                     shift.eq(Mux(kind == _Kind.CHAIN, Mux(phase.next_chain, 1, depth), 0)),
                     reads.eq(beats + shift * self.hop),
                     advance.eq(Mux(beats == 0, length, Mux(reads < floor, floor, reads)))]
        with m.If(phase.busy & (phase.t == 0)):
            m.d.sync += phase.last.eq(Mux(phase.final, length, advance) - 1)

    def _sequencing(self, m, phase):
        """The phases one after the other: a chain per chunk (REDUCE_SCATTER, ALL_REDUCE),
        the all-gather's copy then its steps, and the end of the command."""
        c, n, Op, is_op = self.cores, self.n, isa.Opcode, phase.is_op
        busy, t, kind, index = phase.busy, phase.t, phase.kind, phase.index
        phase.gather_init = gather_init = Signal(name="gather_init")   # entering step 0
        phase.gather_next = gather_next = Signal(name="gather_next")   # the next step
        is_collective = Signal(name="is_collective")
        m.d.comb += is_collective.eq(sum(is_op.values()) != 0)
        with m.If(~busy):
            with m.If(self.start & ~is_collective):
                m.d.sync += self.done.eq(1)         # not a collective: nothing to do
            with m.Elif(self.start):
                m.d.sync += [busy.eq(1), t.eq(0), index.eq(0),
                             phase.q.eq((n + (c - 1)) // c),
                             kind.eq(Mux(self.op == Op.ALL_GATHER.value, _Kind.COPY,
                                         _Kind.CHAIN))]
                # ALL_REDUCE of no rows has no chain (sim.golden.ring skips empty chunks);
                # the in-place ALL_GATHER has no copy.
                with m.If((is_op[Op.ALL_REDUCE] & (n == 0))
                          | (is_op[Op.ALL_GATHER] & self.flag[0])):
                    m.d.sync += kind.eq(_Kind.GATHER)
                    m.d.comb += gather_init.eq(1)
        with m.Else():
            m.d.sync += t.eq(t + 1)
            with m.If((t != 0) & (t == phase.last)):
                m.d.sync += t.eq(0)
                finish = Signal(name="finish")
                with m.If(kind == _Kind.CHAIN):
                    with m.If(is_op[Op.REDUCE_SCATTER] & (index != c - 1)):
                        m.d.sync += index.eq(index + 1)
                    with m.Elif(is_op[Op.ALL_REDUCE]):
                        with m.If((index != c - 1) & (phase.chunk_end < n)):
                            m.d.sync += index.eq(index + 1)
                        with m.Else():
                            m.d.sync += [kind.eq(_Kind.GATHER), index.eq(0)]
                            m.d.comb += gather_init.eq(1)
                    with m.Else():
                        m.d.comb += finish.eq(1)
                with m.Elif(kind == _Kind.COPY):
                    m.d.sync += [kind.eq(_Kind.GATHER), index.eq(0)]
                    m.d.comb += gather_init.eq(1)
                with m.Else():
                    with m.If(index != c - 2):
                        m.d.sync += index.eq(index + 1)
                        m.d.comb += gather_next.eq(1)
                    with m.Else():
                        m.d.comb += finish.eq(1)
                with m.If(finish):
                    m.d.sync += [busy.eq(0), self.done.eq(1)]
        m.d.sync += self.ring_cycles.eq(self.ring_cycles + busy)

    def _gather_chunks(self, m, phase):
        """All-gather chunks: core k sends chunk (k - s) mod c and receives chunk
        (k - 1 - s) mod c in step s; the next step sends what was received, and receives
        what the upstream core received. Returns per core its send and receive rows."""
        c, n = self.cores, self.n
        reduce_all = phase.is_op[isa.Opcode.ALL_REDUCE]
        gq = Mux(reduce_all, phase.q, n)             # chunk rows
        gn = Mux(reduce_all, n, n * c)               # rows of the gathered matrix

        def chunk(j):
            lo = Signal(20, name=f"chunk{j}_lo")
            hi = Signal(20, name=f"chunk{j}_hi")
            m.d.comb += [lo.eq(gq * j), hi.eq(lo + gq)]
            lo_c = Mux(lo > gn, gn, lo)
            hi_c = Mux(hi > gn, gn, hi)
            return lo_c, hi_c - lo_c

        chunks = [chunk(j) for j in range(c)]
        rows = SimpleNamespace(
            send_row=[Signal(SIZE_BITS, name=f"send_row{k}") for k in range(c)],
            send_rows=[Signal(SIZE_BITS, name=f"send_rows{k}") for k in range(c)],
            recv_row=[Signal(SIZE_BITS, name=f"recv_row{k}") for k in range(c)],
            recv_rows=[Signal(SIZE_BITS, name=f"recv_rows{k}") for k in range(c)])
        for k in range(c):
            up = (k - 1) % c
            with m.If(phase.gather_init):
                m.d.sync += [rows.send_row[k].eq(chunks[k][0]),
                             rows.send_rows[k].eq(chunks[k][1]),
                             rows.recv_row[k].eq(chunks[up][0]),
                             rows.recv_rows[k].eq(chunks[up][1])]
            with m.Elif(phase.gather_next):
                m.d.sync += [rows.send_row[k].eq(rows.recv_row[k]),
                             rows.send_rows[k].eq(rows.recv_rows[k]),
                             rows.recv_row[k].eq(rows.recv_row[up]),
                             rows.recv_rows[k].eq(rows.recv_rows[up])]
        return rows

    def _role(self, m, phase, chunks, k):
        """The role (``sim.golden.ring.Role``) of core ``k`` in the current phase."""
        c, n = self.cores, self.n
        role = SimpleNamespace(
            position=Signal(range(c), name=f"position{k}"),
            write_position=Signal(range(c), name=f"write_position{k}"),
            reads=Signal(name=f"reads{k}"),
            read_sp2=Signal(name=f"read_sp2_{k}"),
            read_row=Signal(SIZE_BITS, name=f"read_row{k}"),
            rows=Signal(SIZE_BITS, name=f"rows{k}"),
            send=Signal(_Data, name=f"send{k}"),
            write=Signal(_Data, name=f"write{k}"),
            write_row=Signal(SIZE_BITS, name=f"write_row{k}"),
            write_rows=Signal(SIZE_BITS, name=f"write_rows{k}"))
        chain_start, chain_hops, chain_rows = phase.chain_start, phase.chain_hops, phase.chain_rows
        d = Signal(range(c), name=f"chain_position{k}")
        if k == c - 1:      # no chain starts past the last core
            m.d.comb += d.eq(k - chain_start)
        else:
            m.d.comb += d.eq(Mux(chain_start > k, k + c - chain_start, k - chain_start))
        with m.If(phase.kind == _Kind.CHAIN):
            in_chain = d <= chain_hops
            head = d == 0
            tail = d == chain_hops
            m.d.comb += [role.position.eq(d), role.write_position.eq(d),
                         role.read_row.eq(phase.chain_read_row),
                         role.write_row.eq(phase.chain_write_row),
                         role.write_rows.eq(chain_rows)]
            with m.If(in_chain):
                with m.If(phase.chain_add):
                    m.d.comb += [role.reads.eq(1), role.rows.eq(chain_rows),
                                 role.send.eq(Mux(head, _Data.LOCAL,
                                                  Mux(tail, _Data.NONE, _Data.SUM))),
                                 role.write.eq(Mux(tail, _Data.SUM, _Data.NONE))]
                with m.Elif(head):
                    m.d.comb += [role.reads.eq(1), role.rows.eq(chain_rows),
                                 role.send.eq(_Data.LOCAL)]
                with m.Else():
                    m.d.comb += [role.rows.eq(Mux(tail, 0, chain_rows)),
                                 role.send.eq(Mux(tail, _Data.NONE, _Data.INCOMING)),
                                 role.write.eq(Mux(tail | phase.chain_all, _Data.INCOMING,
                                                   _Data.NONE))]
        with m.Elif(phase.kind == _Kind.COPY):
            m.d.comb += [role.reads.eq(1), role.rows.eq(n), role.write.eq(_Data.LOCAL),
                         role.write_row.eq(n * k), role.write_rows.eq(n)]
        with m.Else():
            m.d.comb += [role.reads.eq(1), role.read_sp2.eq(1),
                         role.read_row.eq(chunks.send_row[k]),
                         role.rows.eq(chunks.send_rows[k]), role.send.eq(_Data.LOCAL),
                         role.write.eq(Mux(chunks.recv_rows[k] != 0, _Data.INCOMING,
                                           _Data.NONE)),
                         role.write_row.eq(chunks.recv_row[k]),
                         role.write_rows.eq(chunks.recv_rows[k]),
                         role.write_position.eq(1)]
        return role

    def _core(self, m, phase, role, incoming, k):
        """Core ``k``'s reads, adder stage and writes in its ``role``. Returns the words it
        puts on its link and the number of words it sends in this cycle."""
        nr, hop, add = self.nr, self.hop, RING_ADD_LATENCY
        port, busy, t = self.ports[k], phase.busy, phase.t
        # Reads (and, for a core that passes words on, the beats it sends).
        rd = _Beats(m, f"rd{k}", nr=nr, line_bits=self.line_bits,
                    go=busy & (t == 1 + role.position * hop), row=role.read_row,
                    rows=role.rows, batch=self.batch,
                    base=Mux(role.read_sp2, self.sp2_base, self.sp_base),
                    lpc=Mux(role.read_sp2, self.sp2_lpc, self.sp_lpc),
                    tags={"reads": role.reads, "send": role.send})
        reads, sends = rd.held["reads"], rd.held["send"]
        m.d.comb += [port.rd_en.eq(rd.issue & reads), port.rd_e0.eq(rd.e0),
                     port.rd_line.eq(rd.line), port.rd_lanes.eq(rd.lanes)]
        sent = Signal(range(nr + 1), name=f"sent{k}")
        with m.If(rd.issue & (sends != _Data.NONE.value)):
            m.d.comb += sent.eq(sum(rd.lanes[l] for l in range(nr)))
        # What goes on the link with each beat, as it leaves the adder stage.
        send_tag = Signal(2, name=f"send_tag{k}")
        m.d.comb += send_tag.eq(Mux(rd.issue, sends, _Data.NONE.value))
        send_tag = self._delay(m, send_tag, 1 + add, f"send_tag{k}")

        # The adder stage: incoming + local, and both delayed as long.
        local = port.rd_data
        summed, local_d, incoming_d = [], [], []
        for l in range(nr):
            adder = FloatAdder(FP32, latency=add)
            m.submodules[f"adder{k}_{l}"] = adder
            m.d.comb += [adder.a.eq(incoming[l]), adder.b.eq(local[l]), adder.i_valid.eq(1)]
            summed.append(adder.result)
            local_d.append(self._delay(m, local[l], add, f"local{k}_{l}"))
            incoming_d.append(self._delay(m, incoming[l], add, f"incoming{k}_{l}"))

        def select(what, name):
            out = []
            for l in range(nr):
                word = Signal(32, name=f"{name}{k}_{l}")
                with m.Switch(what):
                    with m.Case(_Data.LOCAL):
                        m.d.comb += word.eq(local_d[l])
                    with m.Case(_Data.INCOMING):
                        m.d.comb += word.eq(incoming_d[l])
                    with m.Case(_Data.SUM):
                        m.d.comb += word.eq(summed[l])
                out.append(word)
            return out

        send = select(send_tag, "send")
        # Writes, into sp2.
        wr = _Beats(m, f"wr{k}", nr=nr, line_bits=self.line_bits,
                    go=busy & (role.write != _Data.NONE)
                    & (t == 2 + add + role.write_position * hop),
                    row=role.write_row, rows=role.write_rows, batch=self.batch,
                    base=self.sp2_base, lpc=self.sp2_lpc, tags={"write": role.write})
        m.d.comb += [port.wr_en.eq(wr.issue), port.wr_e0.eq(wr.e0),
                     port.wr_line.eq(wr.line), port.wr_lanes.eq(wr.lanes)]
        for l, word in enumerate(select(wr.held["write"], "write")):
            m.d.comb += port.wr_data[l].eq(word)
        return send, sent

    @staticmethod
    def _delay(m, value, cycles, name):
        for stage in range(cycles):
            reg = Signal(len(value), name=f"{name}_d{stage}")
            m.d.sync += reg.eq(value)
            value = reg
        return value
