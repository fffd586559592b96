"""The accelerator's register file: the AXI4-Lite registers of ``isa.REGISTERS`` and the
counters of ``isa.COUNTERS``.

The host's registers (the command buffer, the DMA window, the interrupt enable and status,
the reuse strength and the dual-precision seed) live here; the state of a run (``STATUS``,
``ERROR_CODE``, ``ERROR_INDEX``) is the controller's (``hw.controller``), which reads the
host's registers and reports its state through :class:`HostSignature`. Packed registers
are built from their bit-fields (``isa.Register.fields``).

A write of 1 to ``COUNTER_CLEAR.clear`` sets every counter to 0. The counters of
:data:`EVENTS` are counted here and simply cleared. The others come in as running totals
from the cores and the ring, which keep counting from reset; for each of them the register
file keeps the total at the last clear and reads the difference (modulo ``2**64``), so that
a clear needs no wire into the cores.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config

from .axi import AXI4LiteRegisters, AXI4LiteSignature

__all__ = ["REG_ADDR_WIDTH", "COUNTER_BITS", "EVENTS", "HostSignature", "EventSignature",
           "RegisterFile", "pack"]

#: Address width of the register slave: a 4 KiB window.
REG_ADDR_WIDTH = 12
#: Width of every counter (two registers, ``_LO`` and ``_HI``).
COUNTER_BITS = 64
#: The counters the register file counts itself, one event each (:class:`EventSignature`);
#: the others (the cores', the ring's) come in as totals.
EVENTS = ("cycles", "commands", "fetch_beats", "dma_read_beats", "dma_write_beats",
          "dma_cycles")


class HostSignature(wiring.Signature):
    """What the host asks of the controller and what the controller reports, from the
    register file's side.

    Members
    -------
    doorbell : Out(1)
        One cycle: the host wrote ``DOORBELL.run``.
    cmd_base, cmd_count, dma_base, dma_last : Out(64), Out(32), Out(64), Out(64)
        The registers of the same names.
    running, done, failed : In(1)
        ``STATUS``.
    error_code, error_index : In(8), In(32)
        ``ERROR_CODE``, ``ERROR_INDEX``.
    irq_set : In(2)
        ``IRQ_STATUS`` bits to set this cycle.
    """

    def __init__(self):
        super().__init__({
            "doorbell": Out(1),
            "cmd_base": Out(64), "cmd_count": Out(isa.REGISTER["CMD_COUNT"].width),
            "dma_base": Out(64), "dma_last": Out(64),
            "running": In(1), "done": In(1), "failed": In(1),
            "error_code": In(isa.REGISTER["ERROR_CODE"].width),
            "error_index": In(isa.REGISTER["ERROR_INDEX"].width),
            "irq_set": In(isa.REGISTER["IRQ_STATUS"].width),
        })


class EventSignature(wiring.Signature):
    """The events the register file counts, from the counting side: one ``Out(1)`` per
    name of :data:`EVENTS`, high in each cycle that adds one."""

    def __init__(self):
        super().__init__({name: Out(1) for name in EVENTS})


class RegisterFile(wiring.Component):
    """The register map over an AXI4-Lite subordinate.

    Parameters
    ----------
    config : chrysalis.gen.spec.config.Config
        For the registers that read back the config.
    totals : sequence of str
        The counters counted outside (lowercase ``isa.COUNTERS`` names, not in
        :data:`EVENTS`); a counter neither counted here nor given reads 0.

    Members
    -------
    bus : In(AXI4LiteSignature(REG_ADDR_WIDTH))
    host : Out(HostSignature())
    events : In(EventSignature())
    totals : In(StructLayout)
        The running total since reset of each counter of ``totals``, ``COUNTER_BITS``
        wide; its registers read it less its value at the last clear.
    reuse_strength, dual_seed : Out(isa.REUSE_STRENGTH_BITS), Out(isa.DUAL_SEED_BITS)
    irq : Out(1)
        High while ``IRQ_STATUS & IRQ_ENABLE`` is not zero.
    """

    def __init__(self, config, totals=()):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        names = {name.lower() for name, _ in isa.COUNTERS}
        totals = tuple(totals)
        if not set(totals) <= names - set(EVENTS):
            raise ValueError(f"totals must name counters of isa.COUNTERS that are not "
                             f"events, not {totals!r}")
        self.config = config
        self.addr_width = config.host.axi_addr_width
        self._totals = totals
        super().__init__({
            "bus": In(AXI4LiteSignature(REG_ADDR_WIDTH)),
            "host": Out(HostSignature()),
            "events": In(EventSignature()),
            "totals": In(data.StructLayout({name: COUNTER_BITS for name in totals})),
            "reuse_strength": Out(isa.REUSE_STRENGTH_BITS),
            "dual_seed": Out(isa.DUAL_SEED_BITS),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.slave = slave = AXI4LiteRegisters(isa.REGISTERS, REG_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.bus), slave.bus)
        host = self.host
        top = (1 << self.addr_width) - 1
        # The host's registers, as wide as their fields (``isa.Register.width``).
        stored = {
            "cmd_base": Signal(64, name="cmd_base"),
            "cmd_count": Signal(len(host.cmd_count), name="cmd_count"),
            "dma_base": Signal(64, name="dma_base"),
            "dma_last": Signal(64, name="dma_last", init=top),
            "irq_enable": Signal(isa.REGISTER["IRQ_ENABLE"].width, name="irq_enable"),
            "reuse_strength": Signal(isa.REGISTER["REUSE_STRENGTH"].width,
                                     name="reuse_strength"),
            "dual_seed": Signal(isa.REGISTER["DUAL_SEED"].width, name="dual_seed"),
        }
        irq_status = Signal(isa.REGISTER["IRQ_STATUS"].width, name="irq_status")
        m.d.comb += [host.cmd_base.eq(stored["cmd_base"]),
                     host.cmd_count.eq(stored["cmd_count"]),
                     host.dma_base.eq(stored["dma_base"]), host.dma_last.eq(stored["dma_last"]),
                     self.reuse_strength.eq(stored["reuse_strength"]),
                     self.dual_seed.eq(stored["dual_seed"]),
                     self.irq.eq((irq_status & stored["irq_enable"]) != 0)]

        # One cycle: the host wrote COUNTER_CLEAR.clear (refused while running).
        clear = Signal(name="counter_clear")
        read = self._read_values(m, stored, irq_status, clear)
        for reg in isa.REGISTERS:
            if reg.readable:
                m.d.comb += getattr(slave, f"r_{reg.name.lower()}").eq(read[reg.name])
        self._writes(m, slave, stored, irq_status, clear)
        return m

    def _counters(self, m, clear):
        """Every counter's value by lowercase name since reset or the last ``clear``: the
        events counted here, the totals given less their value at the clear, 0 for the
        rest."""
        values = {}
        for name, _ in isa.COUNTERS:
            key = name.lower()
            if key in EVENTS:
                count = Signal(COUNTER_BITS, name=f"count_{key}")
                with m.If(clear):
                    m.d.sync += count.eq(0)
                with m.Elif(getattr(self.events, key)):
                    m.d.sync += count.eq(count + 1)
                values[key] = count
            elif key in self._totals:
                total = self.totals[key]
                at_clear = Signal(COUNTER_BITS, name=f"cleared_{key}")
                with m.If(clear):
                    m.d.sync += at_clear.eq(total)
                values[key] = (total - at_clear)[:COUNTER_BITS]
            else:
                values[key] = Const(0, COUNTER_BITS)
        return values

    def _read_values(self, m, stored, irq_status, clear):
        """The read value of every readable register, by name."""
        cfg, host = self.config, self.host
        limits = isa.Limits.from_config(cfg)
        R = isa.REGISTER
        read = {
            "ID": isa.ID_MAGIC,
            "VERSION": R["VERSION"].reset,
            "CONFIG_HASH": int(cfg.config_hash()[:8], 16),
            "ARRAY": R["ARRAY"].pack(rows=cfg.core.rows, cols=cfg.core.cols, banks=limits.banks,
                                     mac_latency=cfg.mac.latency),
            "SCRATCHPAD_WORDS": cfg.core.scratchpad_words,
            "WEIGHT_WORDS": cfg.pe.weight_words,
            "ACT_WORDS": cfg.pe.act_words,
            "BUS": R["BUS"].pack(data_width=cfg.host.axi_data_width,
                                 addr_width=cfg.host.axi_addr_width),
            "CMD_COUNT": stored["cmd_count"],
            "STATUS": pack(R["STATUS"], running=host.running, done=host.done,
                           error=host.failed),
            "ERROR_CODE": pack(R["ERROR_CODE"], code=host.error_code),
            "ERROR_INDEX": host.error_index,
            "IRQ_ENABLE": stored["irq_enable"], "IRQ_STATUS": irq_status,
            "REUSE_STRENGTH": stored["reuse_strength"],
            "DUAL_SEED": stored["dual_seed"],
            "CLUSTER": R["CLUSTER"].pack(cores=cfg.cluster.cores,
                                         link_words=cfg.cluster.link_width // 32,
                                         hop_latency=cfg.cluster.hop_latency),
        }
        for name in ("CMD_BASE", "DMA_BASE", "DMA_LAST"):
            value = stored[name.lower()]
            read[f"{name}_LO"], read[f"{name}_HI"] = value[:32], value[32:]
        for name, value in self._counters(m, clear).items():
            read_value = Signal(COUNTER_BITS, name=f"read_{name}")
            m.d.comb += read_value.eq(value)
            read[f"{name.upper()}_LO"], read[f"{name.upper()}_HI"] = (read_value[:32],
                                                                      read_value[32:])
        return read

    def _writes(self, m, slave, stored, irq_status, clear):
        """The host's writes, the refusals while running, ``IRQ_STATUS`` and the counters'
        ``clear``."""
        host, wd = self.host, slave.w_data
        for name, value, sl in (("CMD_BASE_LO", stored["cmd_base"], slice(0, 32)),
                                ("CMD_BASE_HI", stored["cmd_base"], slice(32, 64)),
                                ("CMD_COUNT", stored["cmd_count"], slice(None)),
                                ("DMA_BASE_LO", stored["dma_base"], slice(0, 32)),
                                ("DMA_BASE_HI", stored["dma_base"], slice(32, 64)),
                                ("DMA_LAST_LO", stored["dma_last"], slice(0, 32)),
                                ("DMA_LAST_HI", stored["dma_last"], slice(32, 64)),
                                ("IRQ_ENABLE", stored["irq_enable"], slice(None)),
                                ("REUSE_STRENGTH", stored["reuse_strength"], slice(None)),
                                ("DUAL_SEED", stored["dual_seed"], slice(None))):
            with m.If(getattr(slave, f"w_{name.lower()}")):
                m.d.sync += value[sl].eq(wd)
        for name in isa.LOCKED_WHILE_RUNNING:
            m.d.comb += getattr(slave, f"w_err_{name.lower()}").eq(host.running)
        run = isa.REGISTER["DOORBELL"].field("run")
        m.d.comb += host.doorbell.eq(slave.w_doorbell & wd[run.lsb])
        bit = isa.REGISTER["COUNTER_CLEAR"].field("clear")
        m.d.comb += clear.eq(slave.w_counter_clear & wd[bit.lsb])
        # IRQ_STATUS: the host's write-one-to-clear and the controller's sets in one next
        # value, so that neither is lost when they meet (a set wins for its bit).
        irq_clear = Mux(slave.w_irq_status, wd[:len(irq_status)], 0)
        m.d.sync += irq_status.eq((irq_status & ~irq_clear) | host.irq_set)


def pack(register, **values):
    """A register's 32-bit read value from Amaranth values of its bit-fields (missing
    fields and bits outside every field read 0); a value wider than its field is cut."""
    if not register.fields:
        raise ValueError(f"register {register.name} has no bit-fields")
    parts = []
    at = 0
    for f in sorted(register.fields, key=lambda f: f.lsb):
        if f.lsb > at:
            parts.append(Const(0, f.lsb - at))
        parts.append(values[f.name][:f.width] if f.name in values else Const(0, f.width))
        at = f.lsb + f.width
    return Cat(*parts)
