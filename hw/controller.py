"""The accelerator's controller: the state machine that runs a command buffer.

At the doorbell it checks the buffer against the DMA window (``isa.check_fetch``), then for
each command in order it fetches it through the DMA engine, waits the three steps of the
command checker (``hw.command_check``), and either halts with the checker's error code or
hands the command on: a core operation to the cores of its mask, ``DMA_LOAD`` /
``DMA_STORE`` to the DMA engine, a collective to the ring engine.

The controller keeps a scoreboard of the cores, with one core as with several. A core
command is handed to its cores as soon as each of them is idle; the cycle after, once the
cores' error flags of that command are known, the controller goes on to fetch and check the
next command while they run, so the next one is handed on in the cycle its cores are ready
again. A collective waits for the cores (see below) and for its own end. The run ends -- done or
halted -- once every core is idle: a command whose fetch answers a bus error, or which the
checker refuses, halts the run with its index only after the commands before it have ended.

A DMA command may start while a core of its mask still runs a core command, when the two
cannot disturb each other. The core's scratchpad has one read port and one write port, and
the DMA engine's accesses take them over: a ``DMA_LOAD`` writes through the write port, a
``DMA_STORE`` reads through the read port. So a DMA command overlaps a running command only
if that command never uses the same port (``gen.spec.isa.SP_READERS``, ``SP_WRITERS``), and if
the running command uses the other port, only if the lines of their scratchpad matrices
(``sp_base`` up to ``sp_base + columns * sp_lpc``) are disjoint:

* ``DMA_LOAD`` overlaps ``WGRAD`` (no scratchpad access), and ``LOAD_COL`` / ``LOAD_ROW`` /
  ``LOAD_W`` whose matrix it does not write;
* ``DMA_STORE`` overlaps ``WGRAD``, and ``FORWARD`` / ``BACKWARD`` without its ReLU
  derivative / ``STORE_W`` whose result matrix it does not read.

Everything else waits for the core to be idle. The DMA engine also fetches the commands, so
the command after a DMA command is fetched once the transfer has ended, and a core command
never starts while a DMA runs.

A ``LOAD_COL`` or ``LOAD_ROW`` may also start on a core that still runs a ``WGRAD``, in
the core's side slot (``hw.sequencer``): the load uses the mover, the scratchpad's read
port and the activation banks' write port, which ``WGRAD`` does not. The scoreboard keeps
the activation-bank regions of the command each core was handed last (from the checker:
``abase`` up to ``act_end``, ``abase2`` up to ``act2_end``), and the load goes beside the
``WGRAD`` only if the words it writes are none of those the ``WGRAD`` reads; otherwise it
waits for the core to be idle. A DMA then goes beside the core if it may go beside the
command of each slot that is busy (the scoreboard keeps the scratchpad ports and lines of
each slot's command).

A collective waits for every core to be idle or to run a ``WGRAD`` alone (``side_ready``:
its side and drain slots free): the ring engine uses the scratchpads' ports, which a
``WGRAD`` does not. While it runs, the controller dispatches nothing (it waits for the
collective's end), so no load or DMA comes beside the ``WGRAD`` meanwhile.

A ``WGRAD`` may also start on a core whose ``FORWARD`` or ``BACKWARD`` drains its last group
(the core's drain slot, ``drain_ready``): it uses neither the drain engine, nor the buses,
nor the scratchpad. It is handed over only if the running command fills no activation word
the ``WGRAD`` reads (``fill``: its ``abase2`` region against both of the ``WGRAD``'s). The
running command's scratchpad record then moves to the drain slot's, which a DMA must also
go beside while that slot is busy.

Every result -- memory, scratchpads, PE banks, counters but ``CYCLES`` and ``DMA_CYCLES`` --
is that of the stream run in order (``CORE_CYCLES`` counts each command's busy cycles, so a
command beside another adds its own).
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from chrysalis.gen.spec import isa

from .command_check import COMMAND_LAYOUT
from .registers import EventSignature, HostSignature

__all__ = ["DmaRequestSignature", "Controller"]


class DmaRequestSignature(wiring.Signature):
    """A transfer asked of the DMA engine (``hw.dma.DmaEngine``, whose members of the same
    names take it), from the asking side.

    Parameters
    ----------
    addr_width : int
    line_bits : int
        Width of a scratchpad line address.
    """

    def __init__(self, addr_width, line_bits):
        super().__init__({
            "start": Out(1), "store": Out(1), "fetch": Out(1),
            "mem_addr": Out(addr_width), "mem_stride": Out(32), "n": Out(16), "batch": Out(16),
            "sp_base": Out(line_bits), "sp_lpc": Out(line_bits),
            "busy": In(1), "done": In(1), "bus_error": In(1),
            "read_beat": In(1), "write_beat": In(1),
        })


class Controller(wiring.Component):
    """Fetch, check, dispatch: the run of a command buffer.

    Parameters
    ----------
    cores : int
        Cores of the cluster (1: no ring).
    addr_width : int
        Width of the AXI4 addresses.
    line_bits : int
        Width of a scratchpad line address.

    Members
    -------
    host : In(HostSignature())
        The host's registers in, the run's state out (``STATUS``, ``ERROR_*``).
    events : Out(EventSignature())
        The counters' events.
    command : In(COMMAND_LAYOUT)
        The command fetched last (the DMA engine's).
    code, mask : In(8), In(cores)
        The command checker's error code and the command's cores.
    sp_end : In(line_bits + 1)
        The checker's end line of the command's scratchpad matrix ``sp`` (``sp_base +
        columns * sp_lpc``; valid with ``code``).
    act_end, act2_end : In(33)
        The checker's ends of the command's activation-bank regions at ``abase`` and
        ``abase2`` (valid with ``code``).
    dma : Out(DmaRequestSignature(addr_width, line_bits))
        The DMA engine: command fetch and the DMA commands.
    cmd_valid : Out(cores)
        Hand the command to each core (its ``cmd_valid``).
    side_valid : Out(cores)
        Hand the command (a load) to each core's side slot, beside its ``WGRAD`` (its
        ``side_valid``).
    drain_valid : Out(cores)
        Hand the command (a ``WGRAD``) to each core while its ``FORWARD`` or ``BACKWARD``
        drains its last group (its ``drain_valid``).
    cores_idle, cores_error, cores_side_ready, cores_side_busy : In(cores)
        Each core's ``cmd_ready``, ``error``, ``side_ready`` and ``side_busy``.
    cores_drain_ready, cores_drain_busy : In(cores)
        Each core's ``drain_ready`` and ``drain_busy``.
    ring_start : Out(1), ring_done : In(1)
        The ring engine (a cluster only).
    """

    def __init__(self, *, cores, addr_width, line_bits):
        if not isinstance(cores, int) or isinstance(cores, bool) \
                or not 1 <= cores <= isa.MAX_CORES:
            raise ValueError(f"cores must be an integer from 1 to {isa.MAX_CORES}, "
                             f"not {cores!r}")
        for name, value in (("addr_width", addr_width), ("line_bits", line_bits)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.cores = cores
        members = {
            "host": In(HostSignature()),
            "events": Out(EventSignature()),
            "command": In(COMMAND_LAYOUT),
            "code": In(8), "mask": In(cores), "sp_end": In(line_bits + 1),
            "act_end": In(33), "act2_end": In(33),
            "dma": Out(DmaRequestSignature(addr_width, line_bits)),
            "cmd_valid": Out(cores), "cores_idle": In(cores), "cores_error": In(cores),
            "side_valid": Out(cores), "cores_side_ready": In(cores),
            "cores_side_busy": In(cores),
            "drain_valid": Out(cores), "cores_drain_ready": In(cores),
            "cores_drain_busy": In(cores),
        }
        if cores > 1:
            members.update({"ring_start": Out(1), "ring_done": In(1)})
        super().__init__(members)

    def _op_in(self, ops):
        return Cat(*[self.command.op == int(o) for o in sorted(ops)]).any()

    def elaborate(self, platform):
        m = Module()
        host, dma, f = self.host, self.dma, self.command
        s = SimpleNamespace(
            index=Signal(32, name="cmd_index"), fetch_addr=Signal(64, name="fetch_addr"),
            fetching=Signal(name="fetching"), sent=Signal(self.cores, name="cores_sent"),
            halted=Signal(name="halted"), is_dma=Signal(name="is_dma"),
            is_collective=Signal(name="is_collective"))
        m.d.comb += [s.is_dma.eq(self._op_in(isa.DMA_OPS)),
                     s.is_collective.eq(self._op_in(isa.COLLECTIVES))]

        # The DMA engine's transfer: a fetch or the command's.
        line_bits = len(dma.sp_base)
        m.d.comb += [
            dma.fetch.eq(s.fetching), dma.store.eq(f.op == isa.Opcode.DMA_STORE),
            dma.mem_addr.eq(Mux(s.fetching, s.fetch_addr, f.mem_addr)[:len(dma.mem_addr)]),
            dma.mem_stride.eq(f.mem_stride),
            dma.n.eq(Mux(s.fetching, isa.COMMAND_WORDS, f.n)),
            dma.batch.eq(Mux(s.fetching, 1, f.batch)),
            dma.sp_base.eq(f.sp_base[:line_bits]),
            dma.sp_lpc.eq(f.sp_lpc[:line_bits]),
        ]
        ev = self.events
        m.d.comb += [ev.cycles.eq(host.running),
                     ev.fetch_beats.eq(dma.read_beat & s.fetching),
                     ev.dma_read_beats.eq(dma.read_beat & ~s.fetching),
                     ev.dma_write_beats.eq(dma.write_beat),
                     ev.dma_cycles.eq(dma.busy & ~s.fetching)]
        s.dma_may_start = self._scoreboard(m, s)
        s.side, s.drain = self._act_scoreboard(m)
        self._fsm(m, s)
        return m

    # --- the scoreboard: what each core runs, and whether a DMA may start beside it -------

    def _scoreboard(self, m, s):
        """Per core and slot, the scratchpad ports and lines of the command it runs
        (recorded when it is handed on). Returns a signal: the checked DMA command may
        start now, beside what each core of its mask runs in its main slot and, while
        that is busy, in its side slot."""
        f, O = self.command, isa.Opcode
        width = len(self.sp_end)
        reads = Signal(name="cmd_reads_sp")
        writes = Signal(name="cmd_writes_sp")
        m.d.comb += [
            reads.eq(self._op_in(isa.SP_READERS - {O.BACKWARD})
                     | ((f.op == O.BACKWARD) & f.flag)),
            writes.eq(self._op_in(isa.SP_WRITERS)),
        ]
        lo = f.sp_base[:width]
        store = f.op == O.DMA_STORE
        ok = []
        for k in range(self.cores):
            records = {}
            for slot in ("main", "side", "drain"):
                records[slot] = (Signal(name=f"run{k}_{slot}_reads_sp"),
                                 Signal(name=f"run{k}_{slot}_writes_sp"),
                                 Signal(width, name=f"run{k}_{slot}_sp_lo"),
                                 Signal(width, name=f"run{k}_{slot}_sp_hi"))
            new = (reads, writes, lo, self.sp_end)
            with m.If(self.cmd_valid[k] | self.drain_valid[k]):
                m.d.sync += [a.eq(b) for a, b in zip(records["main"], new)]
            with m.If(self.side_valid[k]):
                m.d.sync += [a.eq(b) for a, b in zip(records["side"], new)]
            with m.If(self.drain_valid[k]):
                # The running command moves into the drain slot, the WGRAD into the main.
                m.d.sync += [a.eq(b) for a, b in zip(records["drain"], records["main"])]
            ok_slot = {}
            for slot, (run_rd, run_wr, run_lo, run_hi) in records.items():
                apart = (self.sp_end <= run_lo) | (run_hi <= lo)
                # A load takes the write port and changes its lines; a store takes the
                # read port and reads its lines.
                ok_slot[slot] = Mux(store, ~run_rd & (~run_wr | apart),
                                    ~run_wr & (~run_rd | apart))
            ok.append(~self.mask[k] | self.cores_idle[k]
                      | (ok_slot["main"] & (~self.cores_side_busy[k] | ok_slot["side"])
                         & (~self.cores_drain_busy[k] | ok_slot["drain"])))
        may = Signal(name="dma_may_start")
        m.d.comb += may.eq(Cat(*ok).all())
        return may

    def _act_scoreboard(self, m):
        """Per core, the activation-bank regions of the command in its main slot (recorded
        when it is handed on). Returns two signals per core: the checked command is a load
        that the core may take beside its ``WGRAD`` now (``cores_side_ready``), its words
        apart from the regions the ``WGRAD`` reads; the checked command is a ``WGRAD`` that
        the core may take beside its draining ``FORWARD`` or ``BACKWARD`` now
        (``cores_drain_ready``), reading no word that the drain fills."""
        f = self.command
        is_load = self._op_in(isa.SIDE_OPS)
        is_wgrad = f.op == isa.Opcode.WGRAD
        ends = {"abase": self.act_end, "abase2": self.act2_end}
        side, drain = [], []
        for k in range(self.cores):
            run = {}
            fills = Signal(name=f"run{k}_fills")
            with m.If(self.cmd_valid[k] | self.drain_valid[k]):
                m.d.sync += fills.eq(f.fill & self._op_in({isa.Opcode.FORWARD,
                                                           isa.Opcode.BACKWARD}))
            for base, end in ends.items():
                run[base] = (Signal(33, name=f"run{k}_{base}_lo"),
                             Signal(33, name=f"run{k}_{base}_hi"))
                with m.If(self.cmd_valid[k] | self.drain_valid[k]):
                    m.d.sync += [run[base][0].eq(f[base]), run[base][1].eq(end)]

            def apart(lo, hi, region):
                return (hi <= region[0]) | (region[1] <= lo)

            side_ok = Signal(name=f"side_ok{k}")
            m.d.comb += side_ok.eq(is_load & self.cores_side_ready[k]
                                   & apart(f.abase, self.act_end, run["abase"])
                                   & apart(f.abase, self.act_end, run["abase2"]))
            side.append(side_ok)
            # The drain fills the running command's region at abase2 (with `fill`).
            drain_ok = Signal(name=f"drain_ok{k}")
            m.d.comb += drain_ok.eq(is_wgrad & self.cores_drain_ready[k] & (
                ~fills | (apart(f.abase, self.act_end, run["abase2"])
                          & apart(f.abase2, self.act2_end, run["abase2"]))))
            drain.append(drain_ok)
        return side, drain

    # --- the end of a command and of a run ------------------------------------------------

    def _end_run(self, m, halted):
        """End the run now if every core is idle, else once they are (``DRAIN``)."""
        host = self.host
        halted = Const(halted, 1) if isinstance(halted, int) else halted
        with m.If(self.cores_idle == (1 << self.cores) - 1):
            m.d.sync += [host.running.eq(0), host.done.eq(~halted), host.failed.eq(halted)]
            m.d.comb += host.irq_set.eq(Mux(halted, 0b10, 0b01))
            m.next = "IDLE"
        with m.Else():
            m.next = "DRAIN"

    def _halt(self, m, s, error):
        host = self.host
        m.d.sync += [host.error_code.eq(error), host.error_index.eq(s.index),
                     s.halted.eq(1)]
        # The commands before this one may still be running: the run ends when they have.
        self._end_run(m, 1)

    def _next_command(self, m, s):
        with m.If(s.index + 1 == self.host.cmd_count):
            m.d.sync += s.halted.eq(0)
            self._end_run(m, 0)
        with m.Else():
            m.d.sync += s.fetch_addr.eq(s.fetch_addr + isa.COMMAND_BYTES)
            m.next = "FETCH"
        m.d.sync += s.index.eq(s.index + 1)
        m.d.comb += self.events.commands.eq(1)

    def _dispatch(self, m, s):
        """Start a checked command once the cores it needs allow it."""
        everyone = (1 << self.cores) - 1
        with m.If(s.is_dma):
            with m.If(s.dma_may_start):
                m.d.comb += self.dma.start.eq(1)
                m.next = "DMA_WAIT"
            with m.Else():
                m.next = "DISPATCH"
        if self.cores > 1:
            with m.Elif(s.is_collective):
                # Every core idle, or running a WGRAD alone (its side and drain slots free):
                # a WGRAD uses no scratchpad port, and the ring engine only those.
                with m.If((self.cores_idle | self.cores_side_ready) == everyone):
                    m.d.comb += self.ring_start.eq(1)
                    m.next = "RING_WAIT"
                with m.Else():
                    m.next = "DISPATCH"
        with m.Else():
            # Each core of the mask idle, or able to take the load beside its WGRAD, or
            # the WGRAD beside its drain.
            side, drain = Cat(*s.side), Cat(*s.drain)
            with m.If((self.mask & ~(self.cores_idle | side | drain)) == 0):
                m.d.comb += [self.cmd_valid.eq(self.mask & self.cores_idle),
                             self.side_valid.eq(self.mask & ~self.cores_idle & side),
                             self.drain_valid.eq(self.mask & ~self.cores_idle & drain)]
                m.d.sync += s.sent.eq(self.mask)
                m.next = "CORE_SENT"
            with m.Else():
                m.next = "DISPATCH"

    # --- the state machine ------------------------------------------------------------------

    def _fsm(self, m, s):
        host, dma = self.host, self.dma
        E = isa.ErrorCode
        fetch_last = Signal(72, name="fetch_last")
        m.d.comb += fetch_last.eq(host.cmd_base
                                  + (host.cmd_count << exact_log2(isa.COMMAND_BYTES)) - 1)
        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(host.doorbell):
                    m.d.sync += [host.running.eq(1), host.done.eq(0), host.failed.eq(0),
                                 host.error_code.eq(0), host.error_index.eq(0), s.index.eq(0),
                                 s.fetch_addr.eq(host.cmd_base)]
                    m.next = "START"
            with m.State("START"):
                aligned = host.cmd_base[:exact_log2(isa.COMMAND_BYTES)] == 0
                with m.If(host.cmd_count == 0):
                    m.d.sync += s.halted.eq(0)
                    self._end_run(m, 0)
                with m.Elif(~aligned | (host.cmd_base < host.dma_base)
                            | (fetch_last > host.dma_last)):
                    self._halt(m, s, E.FETCH_RANGE)
                with m.Else():
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [s.fetching.eq(1), dma.start.eq(1)]
                m.next = "FETCH_WAIT"
            with m.State("FETCH_WAIT"):
                m.d.comb += s.fetching.eq(1)
                with m.If(dma.done):
                    with m.If(dma.bus_error):
                        self._halt(m, s, E.BUS_ERROR)
                    with m.Else():
                        m.next = "CHECK1"
            # The checker's three steps.
            with m.State("CHECK1"):
                m.next = "CHECK2"
            with m.State("CHECK2"):
                m.next = "CHECK3"
            with m.State("CHECK3"):
                with m.If(self.code != E.NONE):
                    self._halt(m, s, self.code)
                with m.Else():
                    self._dispatch(m, s)
            with m.State("DISPATCH"):
                self._dispatch(m, s)
            with m.State("DMA_WAIT"):
                with m.If(dma.done):
                    with m.If(dma.bus_error):
                        self._halt(m, s, E.BUS_ERROR)
                    with m.Else():
                        self._next_command(m, s)
            with m.State("CORE_SENT"):
                # A core's error flag is valid the cycle after it took the command: the
                # next command is fetched only once it is known.
                with m.If((self.cores_error & s.sent) != 0):
                    self._halt(m, s, E.CORE_ERROR)
                with m.Else():
                    self._next_command(m, s)
            if self.cores > 1:
                with m.State("RING_WAIT"):
                    with m.If(self.ring_done):
                        self._next_command(m, s)
            with m.State("DRAIN"):
                self._end_run(m, s.halted)
