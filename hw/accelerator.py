"""The accelerator: a training core behind an AXI4-Lite register slave and an AXI4 DMA master.

The host writes a command stream (``gen.isa``) into memory, programs ``CMD_BASE`` and
``CMD_COUNT`` and writes the doorbell. The controller then, for each command in order:

1. fetches it (one burst of ``gen.isa.COMMAND_BYTES``) through the DMA engine;
2. checks it in three registered steps -- tile counts, region sizes, comparisons -- with the
   rules of :func:`gen.isa.check`; a command that fails halts the run with its error code
   and index before anything of it happens;
3. runs it: a core operation on the core (``hw.core``), ``DMA_LOAD`` / ``DMA_STORE`` on the
   DMA engine (``hw.dma``);

and at the end sets ``STATUS.done`` and ``IRQ_STATUS.done`` (or, on an error,
``STATUS.error`` and ``IRQ_STATUS.error``). ``irq`` is high while an enabled interrupt
status bit is set. The register map is :data:`gen.isa.REGISTERS`; ``docs/commands.md`` is
its reference.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from gen import isa
from gen.config import Config

from .axi import AXI4LiteRegisters, AXI4LiteSignature, AXI4Signature, connect_flat, flat_members
from .core import Core
from .dma import DmaEngine

__all__ = ["Accelerator"]

#: Address width of the register slave: a 4 KiB window.
REG_ADDR_WIDTH = 12
COUNTER_BITS = 64


class Accelerator(wiring.Component):
    """A training core with its AXI host interface.

    Parameters
    ----------
    config : gen.config.Config

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
        self.config = config
        self.addr_width = config.host.axi_addr_width
        self.data_width = config.host.axi_data_width
        members = {}
        members.update(flat_members("s_axil", AXI4LiteSignature(REG_ADDR_WIDTH).flip()))
        members.update(flat_members("m_axi", AXI4Signature(self.addr_width, self.data_width)))
        members["irq"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        aw = self.addr_width
        m.submodules.core = core = Core(cfg)
        m.submodules.dma = dma = DmaEngine(addr_width=aw, data_width=self.data_width,
                                           line_bits=core.line_bits)
        m.submodules.regs = regs = AXI4LiteRegisters(isa.REGISTERS, REG_ADDR_WIDTH)
        connect_flat(m, self, "s_axil", regs.bus)
        connect_flat(m, self, "m_axi", dma.bus)

        # The DMA engine's scratchpad port is the core's DMA port.
        m.d.comb += [core.dma_we.eq(dma.sp_we), core.dma_re.eq(dma.sp_re),
                     core.dma_e0.eq(dma.sp_e0), core.dma_line.eq(dma.sp_line),
                     core.dma_lanes.eq(dma.sp_lanes)]
        m.d.comb += [core.dma_wdata[l].eq(dma.sp_wdata[l]) for l in range(dma.words)]
        m.d.comb += [dma.sp_rdata[l].eq(core.dma_rdata[l]) for l in range(dma.words)]

        # --- registers -------------------------------------------------------------------
        top = (1 << aw) - 1
        cmd_base = Signal(64, name="cmd_base")
        cmd_count = Signal(32, name="cmd_count")
        dma_base = Signal(64, name="dma_base")
        dma_last = Signal(64, name="dma_last", init=top)
        irq_enable = Signal(2, name="irq_enable")
        irq_status = Signal(2, name="irq_status")
        reuse = Signal(isa.REUSE_STRENGTH_BITS, name="reuse_strength")
        dual_seed = Signal(isa.DUAL_SEED_BITS, name="dual_seed")
        running = Signal(name="running")
        done = Signal(name="done")
        failed = Signal(name="failed")
        error_code = Signal(8, name="error_code")
        error_index = Signal(32, name="error_index")
        counters = {name.lower(): Signal(COUNTER_BITS, name=f"count_{name.lower()}")
                    for name, _ in isa.COUNTERS}
        core_counters = {"core_cycles": core.busy_cycles,
                         **{name: getattr(core, name) for name in core.COUNTERS
                            if name != "busy_cycles"}}
        m.d.comb += [core.dual_seed.eq(dual_seed), core.reuse_strength.eq(reuse)]
        m.d.comb += self.irq.eq((irq_status & irq_enable) != 0)

        banks = core.banks
        read = {
            "id": isa.ID_MAGIC,
            "version": isa.REGISTER["VERSION"].reset,
            "config_hash": int(cfg.config_hash()[:8], 16),
            "array": cfg.core.rows | cfg.core.cols << 8 | banks << 16 | cfg.mac.latency << 24,
            "scratchpad_words": cfg.core.scratchpad_words,
            "weight_words": cfg.pe.weight_words,
            "act_words": cfg.pe.act_words,
            "bus": self.data_width | aw << 16,
            "cmd_base_lo": cmd_base[:32], "cmd_base_hi": cmd_base[32:],
            "cmd_count": cmd_count,
            "status": Cat(running, done, failed),
            "error_code": error_code, "error_index": error_index,
            "irq_enable": irq_enable, "irq_status": irq_status,
            "reuse_strength": reuse,
            "dual_seed": dual_seed,
            "dma_base_lo": dma_base[:32], "dma_base_hi": dma_base[32:],
            "dma_last_lo": dma_last[:32], "dma_last_hi": dma_last[32:],
            "cluster": (cfg.cluster.cores | (cfg.cluster.link_width // 32) << 8
                        | cfg.cluster.hop_latency << 16),
        }
        for name, _ in isa.COUNTERS:
            key = name.lower()
            value = core_counters.get(key, counters[key])
            read[f"{key}_lo"] = value[:32]
            read[f"{key}_hi"] = value[32:]
        for reg in isa.REGISTERS:
            key = reg.name.lower()
            if reg.readable:
                m.d.comb += getattr(regs, f"r_{key}").eq(read[key])
        wd = regs.w_data
        for key, sig, sl in (("cmd_base_lo", cmd_base, slice(0, 32)),
                             ("cmd_base_hi", cmd_base, slice(32, 64)),
                             ("cmd_count", cmd_count, slice(0, 32)),
                             ("dma_base_lo", dma_base, slice(0, 32)),
                             ("dma_base_hi", dma_base, slice(32, 64)),
                             ("dma_last_lo", dma_last, slice(0, 32)),
                             ("dma_last_hi", dma_last, slice(32, 64)),
                             ("irq_enable", irq_enable, slice(0, 2)),
                             ("reuse_strength", reuse, slice(0, isa.REUSE_STRENGTH_BITS)),
                             ("dual_seed", dual_seed, slice(0, isa.DUAL_SEED_BITS))):
            with m.If(getattr(regs, f"w_{key}")):
                m.d.sync += sig[sl].eq(wd)
        # Ringing the doorbell while running is refused (SLVERR), and so are writes to the
        # registers a run depends on: the command buffer was checked against the window at
        # the doorbell, and every later fetch relies on that; a seed or a reuse strength
        # changed mid-run would make the results depend on when the write landed.
        for key in ("doorbell", "cmd_base_lo", "cmd_base_hi", "cmd_count", "dma_base_lo",
                    "dma_base_hi", "dma_last_lo", "dma_last_hi", "dual_seed",
                    "reuse_strength"):
            m.d.comb += getattr(regs, f"w_err_{key}").eq(running)
        ring = regs.w_doorbell & wd[0]

        # --- the command being run ----------------------------------------------------------
        index = Signal(32, name="cmd_index")
        fetch_addr = Signal(64, name="fetch_addr")
        fetching = Signal(name="fetching")
        command = dma.command
        f = {fld.name: command[fld.bit:fld.bit + fld.width] for fld in isa.FIELDS}
        reserved = Signal(name="reserved_set")
        m.d.comb += reserved.eq(
            Cat(*[command[32 * w:32 * w + 32] & mask for w, mask in enumerate(isa.RESERVED)])
            .any())
        op = f["op"]
        is_op = {o: Signal(name=f"is_{o.name.lower()}") for o in isa.Opcode}
        for o, sig in is_op.items():
            m.d.comb += sig.eq(op == int(o))

        def any_op(*ops):
            return Cat(*[is_op[o] for o in ops]).any()

        O = isa.Opcode
        is_dma = any_op(O.DMA_LOAD, O.DMA_STORE)

        # The core command: the checked fields, narrowed to the core's layout.
        core_fields = {name: f[name] for name in core.layout.members}
        cmd_value = core.cmd.as_value()
        for name, value in core_fields.items():
            fl = core.layout[name]
            width = fl.width
            m.d.comb += cmd_value[fl.offset:fl.offset + width].eq(value[:width])

        # The DMA engine's transfer: a fetch or the command's.
        m.d.comb += [
            dma.fetch.eq(fetching), dma.store.eq(is_op[O.DMA_STORE]),
            dma.mem_addr.eq(Mux(fetching, fetch_addr, f["mem_addr"])[:aw]),
            dma.mem_stride.eq(f["mem_stride"]),
            dma.n.eq(Mux(fetching, isa.COMMAND_WORDS, f["n"])),
            dma.batch.eq(Mux(fetching, 1, f["batch"])),
            dma.sp_base.eq(f["sp_base"][:core.line_bits]),
            dma.sp_lpc.eq(f["sp_lpc"][:core.line_bits]),
        ]

        # --- checks (gen.isa.check), three registered steps ----------------------------------
        R, C = cfg.core.rows, cfg.core.cols
        K = dma.words
        log_banks = banks.bit_length() - 1
        log_bb = (self.data_width // 8).bit_length() - 1
        mt = Signal(16, name="chk_mt")
        nt = Signal(16, name="chk_nt")
        batch = f["batch"]
        # Step 1: tile counts and the scratchpad matrices each operation touches.
        matrices = []
        for prefix, rows_cols in (
                ("sp", [(any_op(O.LOAD_COL, O.DMA_LOAD, O.DMA_STORE), f["n"], batch),
                        (any_op(O.LOAD_ROW, O.FORWARD, O.LOSS_GRAD), f["m"], batch),
                        (any_op(O.LOAD_W, O.STORE_W), f["m"], f["n"]),
                        (is_op[O.BACKWARD], f["n"], batch)]),
                ("sp2", [(is_op[O.BACKWARD] & f["flag"], f["n"], batch),
                         (is_op[O.LOSS_GRAD], f["m"], batch)]),
                ("sp3", [(is_op[O.LOSS_GRAD], Const(1, 16), batch)])):
            used = Signal(name=f"chk_{prefix}_used")
            rows = Signal(16, name=f"chk_{prefix}_rows")
            cols = Signal(16, name=f"chk_{prefix}_cols")
            for cond, r_, c_ in rows_cols:      # the conditions exclude each other
                with m.If(cond):
                    m.d.sync += [rows.eq(r_), cols.eq(c_)]
            m.d.sync += used.eq(Cat(*[cond for cond, _, _ in rows_cols]).any())
            matrices.append((prefix, used, rows, cols))
        m.d.sync += [mt.eq((f["m"] + (R - 1)) // R if R > 1 else f["m"]),
                     nt.eq((f["n"] + (C - 1)) // C if C > 1 else f["n"])]
        # Step 2: region ends.
        w_tiles = Signal(32, name="chk_weight_tiles")
        a_nt = Signal(32, name="chk_act_nt")
        a_mt = Signal(32, name="chk_act_mt")
        m.d.sync += [w_tiles.eq(mt * nt), a_nt.eq(nt * batch), a_mt.eq(mt * batch)]
        sp_bad = []
        for prefix, used, rows, cols in matrices:
            base, lpc = f[f"{prefix}_base"], f[f"{prefix}_lpc"]
            short = Signal(name=f"chk_{prefix}_short")
            end = Signal(48, name=f"chk_{prefix}_end")
            m.d.sync += [short.eq((lpc << log_banks) < rows), end.eq(base + cols * lpc)]
            sp_bad.append(used & (short | (end > core.sp_words // banks)))
        dma_span = Signal(66, name="chk_dma_span")
        col_bytes = ((f["n"] + (K - 1)) >> (K.bit_length() - 1)) << log_bb
        m.d.sync += dma_span.eq((batch - 1) * f["mem_stride"] + col_bytes)
        # Step 3: comparisons, in the order of the error codes.
        WW, AW = cfg.pe.weight_words, cfg.pe.act_words
        uses_w = any_op(O.LOAD_W, O.STORE_W, O.FORWARD, O.BACKWARD, O.WGRAD)
        weight_bad = ((uses_w & (f["wbase"] + w_tiles > WW)) |
                      (is_op[O.WGRAD] & f["flag"] & (f["wbase2"] + w_tiles > WW)))
        act_bad = ((any_op(O.LOAD_COL, O.FORWARD, O.WGRAD) & (f["abase"] + a_nt > AW)) |
                   (any_op(O.LOAD_ROW, O.BACKWARD) & (f["abase"] + a_mt > AW)) |
                   (is_op[O.WGRAD] & (f["abase2"] + a_mt > AW)))
        align_bad = is_dma & ((f["mem_addr"][:log_bb] != 0) | (f["mem_stride"][:log_bb] != 0))
        range_bad = is_dma & ((f["mem_addr"] < dma_base) |
                              (f["mem_addr"] + dma_span - 1 > dma_last))
        needs = {o: [f[s] == 0 for s in isa.NEEDS[o]] for o in isa.Opcode}
        zero_bad = Cat(*[is_op[o] & Cat(*needs[o]).any() for o in isa.Opcode]).any()
        known = Cat(*is_op.values()).any()
        E = isa.ErrorCode
        code = Signal(8, name="chk_code")
        m.d.comb += code.eq(
            Mux(~known, E.BAD_OPCODE, Mux(reserved, E.RESERVED_BITS, Mux(
                zero_bad, E.ZERO_SIZE, Mux(weight_bad, E.WEIGHT_RANGE, Mux(
                    act_bad, E.ACT_RANGE, Mux(Cat(*sp_bad).any(), E.SCRATCHPAD_RANGE, Mux(
                        align_bad, E.DMA_ALIGN, Mux(range_bad, E.DMA_RANGE,
                                                    E.NONE)))))))))

        # --- counters ---------------------------------------------------------------------
        with m.If(running):
            m.d.sync += counters["cycles"].eq(counters["cycles"] + 1)
        with m.If(dma.read_beat & fetching):
            m.d.sync += counters["fetch_beats"].eq(counters["fetch_beats"] + 1)
        with m.If(dma.read_beat & ~fetching):
            m.d.sync += counters["dma_read_beats"].eq(counters["dma_read_beats"] + 1)
        with m.If(dma.write_beat):
            m.d.sync += counters["dma_write_beats"].eq(counters["dma_write_beats"] + 1)
        with m.If(dma.busy & ~fetching):
            m.d.sync += counters["dma_cycles"].eq(counters["dma_cycles"] + 1)

        # --- the controller -------------------------------------------------------------------
        # IRQ_STATUS: the host's write-one-to-clear and the controller's sets in one next
        # value, so that neither is lost when they meet (a set wins for its bit).
        irq_set = Signal(2, name="irq_set")
        irq_clear = Mux(regs.w_irq_status, wd[:2], 0)
        m.d.sync += irq_status.eq((irq_status & ~irq_clear) | irq_set)

        def halt(error):
            m.d.sync += [running.eq(0), failed.eq(1), error_code.eq(error),
                         error_index.eq(index)]
            m.d.comb += irq_set.eq(0b10)
            m.next = "IDLE"

        def next_command():
            with m.If(index + 1 == cmd_count):
                m.d.sync += [running.eq(0), done.eq(1)]
                m.d.comb += irq_set.eq(0b01)
                m.next = "IDLE"
            with m.Else():
                m.d.sync += fetch_addr.eq(fetch_addr + isa.COMMAND_BYTES)
                m.next = "FETCH"
            m.d.sync += [index.eq(index + 1), counters["commands"].eq(counters["commands"] + 1)]

        fetch_last = Signal(72, name="fetch_last")
        m.d.comb += fetch_last.eq(cmd_base + (cmd_count << 6) - 1)
        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(ring):
                    m.d.sync += [running.eq(1), done.eq(0), failed.eq(0), error_code.eq(0),
                                 error_index.eq(0), index.eq(0), fetch_addr.eq(cmd_base)]
                    m.next = "START"
            with m.State("START"):
                with m.If(cmd_count == 0):
                    m.d.sync += [running.eq(0), done.eq(1)]
                    m.d.comb += irq_set.eq(0b01)
                    m.next = "IDLE"
                with m.Elif((cmd_base[:6] != 0) | (cmd_base < dma_base) | (fetch_last > dma_last)):
                    halt(E.FETCH_RANGE)
                with m.Else():
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [fetching.eq(1), dma.start.eq(1)]
                m.next = "FETCH_WAIT"
            with m.State("FETCH_WAIT"):
                m.d.comb += fetching.eq(1)
                with m.If(dma.done):
                    with m.If(dma.bus_error):
                        halt(E.BUS_ERROR)
                    with m.Else():
                        m.next = "CHECK1"
            with m.State("CHECK1"):
                m.next = "CHECK2"
            with m.State("CHECK2"):
                m.next = "CHECK3"
            with m.State("CHECK3"):
                with m.If(code != E.NONE):
                    halt(code)
                with m.Elif(is_dma):
                    m.d.comb += dma.start.eq(1)
                    m.next = "DMA_WAIT"
                with m.Else():
                    m.d.comb += core.cmd_valid.eq(1)
                    m.next = "CORE_WAIT"
            with m.State("DMA_WAIT"):
                with m.If(dma.done):
                    with m.If(dma.bus_error):
                        halt(E.BUS_ERROR)
                    with m.Else():
                        next_command()
            with m.State("CORE_WAIT"):
                with m.If(core.error):
                    halt(E.CORE_ERROR)
                with m.Elif(core.cmd_ready):
                    next_command()
        return m
