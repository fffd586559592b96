"""The accelerator: ``cluster.cores`` training cores behind an AXI4-Lite register slave and an
AXI4 DMA master, on a ring when there are two or more.

The host writes a command stream (``gen.spec.isa``) into memory, programs ``CMD_BASE`` and
``CMD_COUNT`` and writes the doorbell. The controller then, for each command in order:

1. fetches it (one burst of ``gen.spec.isa.COMMAND_BYTES``) through the DMA engine;
2. checks it in three registered steps -- tile counts, region sizes, comparisons -- with the
   rules of :func:`gen.spec.isa.check`; a command that fails halts the run with its error code
   and index before anything of it happens;
3. runs it: a core operation on the cores of its ``cores`` mask (``hw.core``),
   ``DMA_LOAD`` / ``DMA_STORE`` on the DMA engine (``hw.dma``), a collective on the ring
   engine (``hw.ring``).

The controller fetches and checks the next command while the cores run the one before
(``hw.controller``): a core command is handed to its cores as soon as each of them is idle,
so no cycle is lost between two core commands longer than a fetch and its checks. A
``DMA_LOAD`` / ``DMA_STORE`` starts beside a core command still running when they cannot
disturb each other (the scratchpad port each takes, and the lines each touches: the rule is
``hw.controller``'s); otherwise it waits for its cores to be idle. ``DMA_LOAD`` reads
memory once and writes the same beats into the scratchpad of every core of its mask,
``DMA_STORE`` reads its one core; a collective waits for every core (idle, or running a
``WGRAD`` alone) and for its own end. A
command touches only the state of its own cores, so every result is that of the stream run
in order (``sim.golden.machine``, ``sim.golden.cluster_machine``). The run ends -- done or
halted -- once every core is idle.

At the end it sets ``STATUS.done`` and ``IRQ_STATUS.done`` (or, on an error,
``STATUS.error`` and ``IRQ_STATUS.error``). ``irq`` is high while an enabled interrupt
status bit is set. The register map is :data:`gen.spec.isa.REGISTERS`; ``docs/commands.md`` is
its reference.

The parts: the register file (``hw.registers``), the command checker
(``hw.command_check``), the controller (``hw.controller``), the DMA engine, the cores and,
on a cluster, the ring engine. This module only builds them and wires them together.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, Out

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config

from .axi import AXI4LiteSignature, AXI4Signature, connect_flat, flat_members
from .command_check import CommandChecker
from .controller import Controller
from .core import Core
from .dma import DmaEngine
from .registers import COUNTER_BITS, REG_ADDR_WIDTH, RegisterFile

__all__ = ["Accelerator", "REG_ADDR_WIDTH"]


class Accelerator(wiring.Component):
    """Training cores with their AXI host interface.

    Parameters
    ----------
    config : gen.spec.config.Config
        ``cluster.cores`` from 1 to ``gen.spec.isa.MAX_CORES``.

    Members
    -------
    s_axil_* : the AXI4-Lite subordinate (registers), 12-bit addresses, 32-bit data.
    m_axi_* : the AXI4 manager (command fetch and DMA), ``host.axi_addr_width`` and
        ``host.axi_data_width`` bits.
    irq : Out(1)
        High while ``IRQ_STATUS & IRQ_ENABLE`` is not zero.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if not 1 <= config.cluster.cores <= isa.MAX_CORES:
            raise ValueError(f"cluster.cores must be between 1 and {isa.MAX_CORES} (the "
                             f"command's cores mask), not {config.cluster.cores!r}")
        self.config = config
        self.cores = config.cluster.cores
        self.addr_width = config.host.axi_addr_width
        self.data_width = config.host.axi_data_width
        members = {}
        members.update(flat_members("s_axil", AXI4LiteSignature(REG_ADDR_WIDTH).flip()))
        members.update(flat_members("m_axi", AXI4Signature(self.addr_width, self.data_width)))
        members["irq"] = Out(1)
        super().__init__(members)

    def _ring_engine(self, line_bits):
        """The ring engine of a cluster (``hw.ring``)."""
        from .ring import RingEngine
        return RingEngine(self.config, line_bits)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        cluster = self.cores > 1
        if cluster:
            cores = [Core(cfg) for _ in range(self.cores)]
            for k, c in enumerate(cores):
                m.submodules[f"core_{k}"] = c
        else:
            m.submodules.core = core = Core(cfg)
            cores = [core]
        core = cores[0]
        m.submodules.dma = dma = DmaEngine(addr_width=self.addr_width,
                                           data_width=self.data_width,
                                           line_bits=core.line_bits)
        totals = self._core_totals(m, cores)
        if cluster:
            m.submodules.ring = ring = self._ring_engine(core.line_bits)
            totals.update(ring_words=ring.ring_words, ring_cycles=ring.ring_cycles)
        m.submodules.registers = registers = RegisterFile(cfg, totals=tuple(totals))
        m.submodules.check = check = CommandChecker(cfg)
        m.submodules.controller = controller = Controller(
            cores=self.cores, addr_width=self.addr_width, line_bits=core.line_bits)

        connect_flat(m, self, "s_axil", registers.bus)
        connect_flat(m, self, "m_axi", dma.bus)
        m.d.comb += self.irq.eq(registers.irq)
        for name, value in totals.items():
            m.d.comb += registers.totals[name].eq(value)
        for c in cores:
            m.d.comb += [c.dual_seed.eq(registers.dual_seed),
                         c.reuse_strength.eq(registers.reuse_strength)]

        wiring.connect(m, registers.host, controller.host)
        wiring.connect(m, controller.events, registers.events)
        m.d.comb += [check.command.eq(dma.command), controller.command.eq(dma.command),
                     check.dma_base.eq(registers.host.dma_base),
                     check.dma_last.eq(registers.host.dma_last),
                     controller.code.eq(check.code), controller.mask.eq(check.mask),
                     # Past the scratchpad only for a command the checker refuses.
                     controller.sp_end.eq(check.sp_end),
                     controller.act_end.eq(check.act_end),
                     controller.act2_end.eq(check.act2_end)]
        self._connect_dma_request(m, controller, dma)
        m.d.comb += [controller.cores_idle.eq(Cat(*[c.cmd_ready for c in cores])),
                     controller.cores_error.eq(Cat(*[c.error for c in cores])),
                     controller.cores_side_ready.eq(Cat(*[c.side_ready for c in cores])),
                     controller.cores_side_busy.eq(Cat(*[c.side_busy for c in cores])),
                     controller.cores_drain_ready.eq(Cat(*[c.drain_ready for c in cores])),
                     controller.cores_drain_busy.eq(Cat(*[c.drain_busy for c in cores]))]
        m.d.comb += [c.cmd_valid.eq(controller.cmd_valid[k]) for k, c in enumerate(cores)]
        m.d.comb += [c.side_valid.eq(controller.side_valid[k]) for k, c in enumerate(cores)]
        m.d.comb += [c.drain_valid.eq(controller.drain_valid[k])
                     for k, c in enumerate(cores)]
        self._connect_core_commands(m, cores, check.command)
        self._connect_dma_ports(m, cores, dma, check.mask, controller.dma.fetch)
        if cluster:
            m.d.comb += [ring.start.eq(controller.ring_start),
                         controller.ring_done.eq(ring.done)]
            self._connect_ring(m, cores, ring, check.command)
        return m

    @staticmethod
    def _core_totals(m, cores):
        """The cores' counters by register name. On a cluster they are summed over the
        cores (registered; they are read while the run is over and the cores are idle)."""
        names = {"core_cycles": "busy_cycles",
                 **{name: name for name in cores[0].COUNTERS if name != "busy_cycles"}}
        if len(cores) == 1:
            return {key: getattr(cores[0], name) for key, name in names.items()}
        totals = {}
        for key, name in names.items():
            total = Signal(COUNTER_BITS, name=f"sum_{key}")
            m.d.sync += total.eq(sum(getattr(c, name) for c in cores))
            totals[key] = total
        return totals

    @staticmethod
    def _connect_dma_request(m, controller, dma):
        """The controller's transfers to the DMA engine's members of the same names."""
        for name, member in controller.dma.signature.members.items():
            ours, engine = getattr(controller.dma, name), getattr(dma, name)
            m.d.comb += engine.eq(ours) if member.flow == Flow.Out else ours.eq(engine)

    @staticmethod
    def _connect_core_commands(m, cores, command):
        """The checked command's fields, narrowed to each core's command layout."""
        layout = cores[0].layout
        for c in cores:
            cmd_value = c.cmd.as_value()
            for name in layout.members:
                fl = layout[name]
                m.d.comb += cmd_value[fl.offset:fl.offset + fl.width].eq(
                    command[name][:fl.width])

    @staticmethod
    def _connect_dma_ports(m, cores, dma, mask, fetching):
        """The DMA engine's scratchpad port to the cores' DMA ports: on a cluster a load
        writes every core of the mask and a store reads its one core."""
        if len(cores) == 1:
            core = cores[0]
            m.d.comb += [core.dma_we.eq(dma.sp_we), core.dma_re.eq(dma.sp_re),
                         core.dma_e0.eq(dma.sp_e0), core.dma_line.eq(dma.sp_line),
                         core.dma_lanes.eq(dma.sp_lanes)]
            m.d.comb += [core.dma_wdata[l].eq(dma.sp_wdata[l]) for l in range(dma.words)]
            m.d.comb += [dma.sp_rdata[l].eq(core.dma_rdata[l]) for l in range(dma.words)]
            return
        for k, c in enumerate(cores):
            on = mask[k] & ~fetching
            m.d.comb += [c.dma_we.eq(dma.sp_we & on), c.dma_re.eq(dma.sp_re & on),
                         c.dma_e0.eq(dma.sp_e0), c.dma_line.eq(dma.sp_line),
                         c.dma_lanes.eq(dma.sp_lanes)]
            m.d.comb += [c.dma_wdata[l].eq(dma.sp_wdata[l]) for l in range(dma.words)]
        for l in range(dma.words):
            m.d.comb += dma.sp_rdata[l].eq(
                _or_all([Mux(mask[k], c.dma_rdata[l], 0) for k, c in enumerate(cores)]))

    @staticmethod
    def _connect_ring(m, cores, ring, command):
        """The ring engine: the command's fields (held until its end), and the cores' ring
        ports."""
        f = command
        m.d.comb += [ring.op.eq(f.op), ring.flag.eq(f.flag), ring.root.eq(f.root),
                     ring.peer.eq(f.peer),
                     ring.n.eq(f.n), ring.batch.eq(f.batch),
                     ring.sp_base.eq(f.sp_base), ring.sp_lpc.eq(f.sp_lpc),
                     ring.sp2_base.eq(f.sp2_base), ring.sp2_lpc.eq(f.sp2_lpc)]
        words = cores[0].ring_words
        for k, c in enumerate(cores):
            port = ring.ports[k]
            m.d.comb += [c.ring_rd_en.eq(port.rd_en), c.ring_rd_e0.eq(port.rd_e0),
                         c.ring_rd_line.eq(port.rd_line), c.ring_rd_lanes.eq(port.rd_lanes),
                         c.ring_wr_en.eq(port.wr_en), c.ring_wr_e0.eq(port.wr_e0),
                         c.ring_wr_line.eq(port.wr_line), c.ring_wr_lanes.eq(port.wr_lanes)]
            m.d.comb += [c.ring_wr_data[l].eq(port.wr_data[l]) for l in range(words)]
            m.d.comb += [port.rd_data[l].eq(c.ring_rd_data[l]) for l in range(words)]


def _or_all(values):
    """The bitwise OR of ``values``."""
    result = values[0]
    for value in values[1:]:
        result = result | value
    return result
