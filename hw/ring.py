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
``2 + q * hop + w + RING_ADD_LATENCY``. The phase ends with the cycle of its last possible
write, so it takes ``sim.golden.ring.phase_cycles`` cycles, and the next phase reads only after
the last write has landed. ``busy`` is high for exactly ``sim.golden.ring.cycles`` cycles.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.formats import FP32
from chrysalis.gen.spec.ring import RING_ADD_LATENCY, hop_cycles, link_words

from .fadd import FloatAdder

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
            "rd_e0": Out(16),
            "rd_line": Out(line_bits),
            "rd_lanes": Out(lanes),
            "rd_data": In(32).array(lanes),
            "wr_en": Out(1),
            "wr_e0": Out(16),
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
    access in ``e0``, ``line`` and ``lanes`` (combinational)."""

    def __init__(self, m, name, *, nr, line_bits, go, row, rows, batch, base, lpc):
        active = Signal(name=f"{name}_active")       # past the first beat
        offset = Signal(16, name=f"{name}_offset")   # row of the next beat in the region
        column = Signal(16, name=f"{name}_column")
        line = Signal(line_bits, name=f"{name}_line")
        # The beat of this cycle: the first one in the cycle of go.
        cur_offset = Mux(active, offset, 0)
        cur_column = Mux(active, column, 0)
        cur_line = Mux(active, line, base)
        self.issue = Signal(name=f"{name}_issue")
        m.d.comb += self.issue.eq(active | (go & (rows != 0) & (batch != 0)))
        self.e0 = (row + cur_offset)[:16]
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
    op, root, peer, n, batch : In
        The command (``gen.spec.isa``); ``root`` and ``peer`` below ``cluster.cores`` (the
        controller checks them). An ``op`` that is not a collective does nothing: ``done``
        follows in the next cycle, and no cycle is counted.
    sp_base, sp_lpc, sp2_base, sp2_lpc : In(24)
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
            "op": In(8), "root": In(8), "peer": In(8), "n": In(16), "batch": In(16),
            "sp_base": In(24), "sp_lpc": In(24), "sp2_base": In(24), "sp2_lpc": In(24),
            "busy": Out(1), "done": Out(1),
            "ring_words": Out(counter), "ring_cycles": Out(counter),
            "ports": Out(ScratchpadPort(self.nr, line_bits)).array(self.cores),
        })

    def elaborate(self, platform):
        m = Module()
        c, nr, hop, add = self.cores, self.nr, self.hop, RING_ADD_LATENCY
        hops = self.config.cluster.hop_latency
        Op = isa.Opcode
        n, batch = self.n, self.batch

        # ---- Command state -------------------------------------------------------------
        q = Signal(16)                   # ALL_REDUCE's chunk rows, ceil(n / c)
        kind = Signal(_Kind)
        index = Signal(range(c + 1))     # chain j, or all-gather step s
        t = Signal(36)                   # cycle within the phase
        last = Signal(36)                # the phase's last cycle
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        m.d.sync += self.done.eq(0)

        is_op = {op: self.op == op.value for op in isa.COLLECTIVES}
        is_collective = Signal()
        m.d.comb += is_collective.eq(sum(is_op.values()) != 0)

        # ---- The chain of the current phase (when kind == CHAIN) -------------------------
        chain_start = Signal(range(c))
        chain_hops = Signal(range(c))
        chain_add = Signal()
        chain_all = Signal()             # every core after the first writes (BROADCAST)
        chain_rows = Signal(16)
        chain_read_row = Signal(16)
        chain_write_row = Signal(16)
        root1 = Mux(self.root == c - 1, 0, self.root + 1)
        index1 = Mux(index == c - 1, 0, index + 1)
        chunk_first = Signal(17)
        chunk_end = Signal(17)
        m.d.comb += [chunk_first.eq(index * q), chunk_end.eq(chunk_first + q)]
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

        # ---- The phase's length ---------------------------------------------------------
        rows_max = Signal(16)
        depth = Signal(range(c))
        m.d.comb += [rows_max.eq(chain_rows), depth.eq(chain_hops)]
        with m.If(kind == _Kind.COPY):
            m.d.comb += [rows_max.eq(n), depth.eq(0)]
        with m.Elif(kind == _Kind.GATHER):
            # Steps of empty chunks write nothing: depth 0 (sim.golden.ring.Phase.depth).
            m.d.comb += rows_max.eq(Mux(is_op[Op.ALL_REDUCE], q, n))
            m.d.comb += depth.eq(rows_max != 0)
        log_nr = nr.bit_length() - 1
        column_beats = (rows_max + nr - 1) >> log_nr
        with m.If(busy & (t == 0)):
            m.d.sync += last.eq(batch * column_beats + depth * hop + add + 1)

        # ---- Phase sequencing -------------------------------------------------------------
        gather_init = Signal()           # entering all-gather step 0
        gather_next = Signal()           # entering the next all-gather step
        with m.If(~busy):
            with m.If(self.start & ~is_collective):
                m.d.sync += self.done.eq(1)         # not a collective: nothing to do
            with m.Elif(self.start):
                m.d.sync += [busy.eq(1), t.eq(0), index.eq(0),
                             q.eq((n + (c - 1)) // c),
                             kind.eq(Mux(self.op == Op.ALL_GATHER.value, _Kind.COPY,
                                         _Kind.CHAIN))]
                # ALL_REDUCE of no rows has no chain (sim.golden.ring skips empty chunks).
                with m.If(is_op[Op.ALL_REDUCE] & (n == 0)):
                    m.d.sync += kind.eq(_Kind.GATHER)
                    m.d.comb += gather_init.eq(1)
        with m.Else():
            m.d.sync += t.eq(t + 1)
            with m.If((t != 0) & (t == last)):
                m.d.sync += t.eq(0)
                finish = Signal()
                with m.If(kind == _Kind.CHAIN):
                    with m.If(is_op[Op.REDUCE_SCATTER] & (index != c - 1)):
                        m.d.sync += index.eq(index + 1)
                    with m.Elif(is_op[Op.ALL_REDUCE]):
                        with m.If((index != c - 1) & (chunk_end < n)):
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

        # ---- All-gather chunks: core k sends chunk (k - s) mod c and receives chunk
        # (k - 1 - s) mod c in step s; the next step sends what was received, and receives
        # what the upstream core received.
        gq = Mux(is_op[Op.ALL_REDUCE], q, n)             # chunk rows
        gn = Mux(is_op[Op.ALL_REDUCE], n, n * c)         # rows of the gathered matrix

        def chunk(j):
            lo = Signal(20, name=f"chunk{j}_lo")
            hi = Signal(20, name=f"chunk{j}_hi")
            m.d.comb += [lo.eq(gq * j), hi.eq(lo + gq)]
            lo_c = Mux(lo > gn, gn, lo)
            hi_c = Mux(hi > gn, gn, hi)
            return lo_c, hi_c - lo_c

        chunks = [chunk(j) for j in range(c)]
        send_row = [Signal(16, name=f"send_row{k}") for k in range(c)]
        send_rows = [Signal(16, name=f"send_rows{k}") for k in range(c)]
        recv_row = [Signal(16, name=f"recv_row{k}") for k in range(c)]
        recv_rows = [Signal(16, name=f"recv_rows{k}") for k in range(c)]
        for k in range(c):
            up = (k - 1) % c
            with m.If(gather_init):
                m.d.sync += [send_row[k].eq(chunks[k][0]), send_rows[k].eq(chunks[k][1]),
                             recv_row[k].eq(chunks[up][0]), recv_rows[k].eq(chunks[up][1])]
            with m.Elif(gather_next):
                m.d.sync += [send_row[k].eq(recv_row[k]), send_rows[k].eq(recv_rows[k]),
                             recv_row[k].eq(recv_row[up]), recv_rows[k].eq(recv_rows[up])]

        # ---- The cores ---------------------------------------------------------------------
        links = []          # what each core puts on its link, after the adder stage
        incoming = [[Signal(32, name=f"incoming{k}_{l}") for l in range(nr)]
                    for k in range(c)]
        words = []
        for k in range(c):
            port = self.ports[k]
            # The role (sim.golden.ring.Role) of core k in the current phase.
            position = Signal(range(c), name=f"position{k}")
            write_position = Signal(range(c), name=f"write_position{k}")
            reads = Signal(name=f"reads{k}")
            read_sp2 = Signal(name=f"read_sp2_{k}")
            read_row = Signal(16, name=f"read_row{k}")
            rows = Signal(16, name=f"rows{k}")
            send = Signal(_Data, name=f"send{k}")
            write = Signal(_Data, name=f"write{k}")
            write_row = Signal(16, name=f"write_row{k}")
            write_rows = Signal(16, name=f"write_rows{k}")
            d = Signal(range(c), name=f"chain_position{k}")
            if k == c - 1:      # no chain starts past the last core
                m.d.comb += d.eq(k - chain_start)
            else:
                m.d.comb += d.eq(Mux(chain_start > k, k + c - chain_start, k - chain_start))
            with m.If(kind == _Kind.CHAIN):
                in_chain = d <= chain_hops
                head = d == 0
                tail = d == chain_hops
                m.d.comb += [position.eq(d), write_position.eq(d),
                             read_row.eq(chain_read_row), write_row.eq(chain_write_row),
                             write_rows.eq(chain_rows)]
                with m.If(in_chain):
                    with m.If(chain_add):
                        m.d.comb += [reads.eq(1), rows.eq(chain_rows),
                                     send.eq(Mux(head, _Data.LOCAL,
                                                 Mux(tail, _Data.NONE, _Data.SUM))),
                                     write.eq(Mux(tail, _Data.SUM, _Data.NONE))]
                    with m.Elif(head):
                        m.d.comb += [reads.eq(1), rows.eq(chain_rows), send.eq(_Data.LOCAL)]
                    with m.Else():
                        m.d.comb += [rows.eq(Mux(tail, 0, chain_rows)),
                                     send.eq(Mux(tail, _Data.NONE, _Data.INCOMING)),
                                     write.eq(Mux(tail | chain_all, _Data.INCOMING,
                                                  _Data.NONE))]
            with m.Elif(kind == _Kind.COPY):
                m.d.comb += [reads.eq(1), rows.eq(n), write.eq(_Data.LOCAL),
                             write_row.eq(n * k), write_rows.eq(n)]
            with m.Else():
                m.d.comb += [reads.eq(1), read_sp2.eq(1), read_row.eq(send_row[k]),
                             rows.eq(send_rows[k]), send.eq(_Data.LOCAL),
                             write.eq(Mux(recv_rows[k] != 0, _Data.INCOMING, _Data.NONE)),
                             write_row.eq(recv_row[k]), write_rows.eq(recv_rows[k]),
                             write_position.eq(1)]

            # Reads (and, for a core that passes words on, the beats it sends).
            rd = _Beats(m, f"rd{k}", nr=nr, line_bits=self.line_bits,
                        go=busy & (t == 1 + position * hop), row=read_row, rows=rows,
                        batch=batch, base=Mux(read_sp2, self.sp2_base, self.sp_base),
                        lpc=Mux(read_sp2, self.sp2_lpc, self.sp_lpc))
            m.d.comb += [port.rd_en.eq(rd.issue & reads), port.rd_e0.eq(rd.e0),
                         port.rd_line.eq(rd.line), port.rd_lanes.eq(rd.lanes)]
            sent = Signal(range(nr + 1), name=f"sent{k}")
            with m.If(rd.issue & (send != _Data.NONE)):
                m.d.comb += sent.eq(sum(rd.lanes[l] for l in range(nr)))
            words.append(sent)

            # The adder stage: incoming + local, and both delayed as long.
            local = port.rd_data
            summed, local_d, incoming_d = [], [], []
            for l in range(nr):
                adder = FloatAdder(FP32, latency=add)
                m.submodules[f"adder{k}_{l}"] = adder
                m.d.comb += [adder.a.eq(incoming[k][l]), adder.b.eq(local[l]),
                             adder.i_valid.eq(1)]
                summed.append(adder.result)
                local_d.append(self._delay(m, local[l], add, f"local{k}_{l}"))
                incoming_d.append(self._delay(m, incoming[k][l], add, f"incoming{k}_{l}"))

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

            links.append(select(send, "send"))

            # Writes, into sp2.
            wr = _Beats(m, f"wr{k}", nr=nr, line_bits=self.line_bits,
                        go=busy & (write != _Data.NONE)
                        & (t == 2 + add + write_position * hop),
                        row=write_row, rows=write_rows, batch=batch, base=self.sp2_base,
                        lpc=self.sp2_lpc)
            m.d.comb += [port.wr_en.eq(wr.issue), port.wr_e0.eq(wr.e0),
                         port.wr_line.eq(wr.line), port.wr_lanes.eq(wr.lanes)]
            for l, word in enumerate(select(write, "write")):
                m.d.comb += port.wr_data[l].eq(word)

        # ---- The links: hop_latency register stages from core k to core k + 1. -------------
        for k in range(c):
            for l in range(nr):
                word = links[k][l]
                for stage in range(hops):
                    reg = Signal(32, name=f"link{k}_{l}_{stage}")
                    m.d.sync += reg.eq(word)
                    word = reg
                m.d.comb += incoming[(k + 1) % c][l].eq(word)

        m.d.sync += self.ring_words.eq(self.ring_words + sum(words))
        return m

    @staticmethod
    def _delay(m, value, cycles, name):
        for stage in range(cycles):
            reg = Signal(32, name=f"{name}_d{stage}")
            m.d.sync += reg.eq(value)
            value = reg
        return value
