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

With one core every command waits for the one before it to end (a DMA and the core never
overlap). A cluster keeps a scoreboard instead: a core command is handed to its cores as
soon as each of them is idle, and the controller goes on to fetch the next command while
they run; a DMA command waits for its cores to be idle (``DMA_LOAD`` reads memory once and
writes the same beats into the scratchpad of every core of its mask, ``DMA_STORE`` reads its
one core); a collective waits for every core and for its own end. A command touches only
the state of its own cores, so every result is that of the stream run in order
(``sim.golden.cluster_machine``). The run ends -- done or halted -- once every core is idle.

and at the end sets ``STATUS.done`` and ``IRQ_STATUS.done`` (or, on an error,
``STATUS.error`` and ``IRQ_STATUS.error``). ``irq`` is high while an enabled interrupt
status bit is set. The register map is :data:`gen.spec.isa.REGISTERS`; ``docs/commands.md`` is
its reference.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config

from .axi import AXI4LiteRegisters, AXI4LiteSignature, AXI4Signature, connect_flat, flat_members
from .core import Core
from .dma import DmaEngine

__all__ = ["Accelerator"]

#: Address width of the register slave: a 4 KiB window.
REG_ADDR_WIDTH = 12
COUNTER_BITS = 64


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
        aw = self.addr_width
        count = self.cores
        cluster = count > 1
        if cluster:
            cores = [Core(cfg) for _ in range(count)]
            for k, c in enumerate(cores):
                m.submodules[f"core_{k}"] = c
        else:
            m.submodules.core = core = Core(cfg)
            cores = [core]
        core = cores[0]
        m.submodules.dma = dma = DmaEngine(addr_width=aw, data_width=self.data_width,
                                           line_bits=core.line_bits)
        m.submodules.regs = regs = AXI4LiteRegisters(isa.REGISTERS, REG_ADDR_WIDTH)
        connect_flat(m, self, "s_axil", regs.bus)
        connect_flat(m, self, "m_axi", dma.bus)

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
        names = {"core_cycles": "busy_cycles",
                 **{name: name for name in core.COUNTERS if name != "busy_cycles"}}
        if cluster:
            # The core counters of the cluster: summed over the cores (registered; they are
            # read while the run is over and the cores are idle).
            core_counters = {}
            for key, name in names.items():
                total = Signal(COUNTER_BITS, name=f"sum_{key}")
                m.d.sync += total.eq(sum(getattr(c, name) for c in cores))
                core_counters[key] = total
        else:
            core_counters = {key: getattr(core, name) for key, name in names.items()}
        for c in cores:
            m.d.comb += [c.dual_seed.eq(dual_seed), c.reuse_strength.eq(reuse)]
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
        if cluster:
            m.submodules.ring = ring = self._ring_engine(core.line_bits)
            core_counters["ring_words"] = ring.ring_words
            core_counters["ring_cycles"] = ring.ring_cycles
        for name, _ in isa.COUNTERS:
            key = name.lower()
            value = Signal(COUNTER_BITS, name=f"read_{key}")
            m.d.comb += value.eq(core_counters.get(key, counters[key]))
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
        doorbell = regs.w_doorbell & wd[0]

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
        is_collective = any_op(*sorted(isa.COLLECTIVES))

        # The cores a core or DMA command runs on (gen.spec.isa.core_mask).
        everyone = (1 << count) - 1
        mask = Signal(count, name="core_mask")
        m.d.comb += mask.eq(Mux(f["cores"] == 0, everyone, f["cores"][:count]))

        # The core command: the checked fields, narrowed to the core's layout.
        core_fields = {name: f[name] for name in core.layout.members}
        for c in cores:
            cmd_value = c.cmd.as_value()
            for name, value in core_fields.items():
                fl = core.layout[name]
                width = fl.width
                m.d.comb += cmd_value[fl.offset:fl.offset + width].eq(value[:width])

        # The DMA engine's scratchpad port: the core's DMA port; on a cluster a load writes
        # every core of the mask and a store reads its one core.
        if cluster:
            for k, c in enumerate(cores):
                on = mask[k] & ~fetching
                m.d.comb += [c.dma_we.eq(dma.sp_we & on), c.dma_re.eq(dma.sp_re & on),
                             c.dma_e0.eq(dma.sp_e0), c.dma_line.eq(dma.sp_line),
                             c.dma_lanes.eq(dma.sp_lanes)]
                m.d.comb += [c.dma_wdata[l].eq(dma.sp_wdata[l]) for l in range(dma.words)]
            for l in range(dma.words):
                m.d.comb += dma.sp_rdata[l].eq(
                    _or_all([Mux(mask[k], c.dma_rdata[l], 0) for k, c in enumerate(cores)]))
        else:
            m.d.comb += [core.dma_we.eq(dma.sp_we), core.dma_re.eq(dma.sp_re),
                         core.dma_e0.eq(dma.sp_e0), core.dma_line.eq(dma.sp_line),
                         core.dma_lanes.eq(dma.sp_lanes)]
            m.d.comb += [core.dma_wdata[l].eq(dma.sp_wdata[l]) for l in range(dma.words)]
            m.d.comb += [dma.sp_rdata[l].eq(core.dma_rdata[l]) for l in range(dma.words)]

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

        # The ring engine: the command's fields (held until its end), and the cores' ring
        # ports.
        if cluster:
            m.d.comb += [ring.op.eq(op), ring.root.eq(f["root"]), ring.peer.eq(f["peer"]),
                         ring.n.eq(f["n"]), ring.batch.eq(f["batch"]),
                         ring.sp_base.eq(f["sp_base"]), ring.sp_lpc.eq(f["sp_lpc"]),
                         ring.sp2_base.eq(f["sp2_base"]), ring.sp2_lpc.eq(f["sp2_lpc"])]
            for k, c in enumerate(cores):
                port = ring.ports[k]
                m.d.comb += [c.ring_rd_en.eq(port.rd_en), c.ring_rd_e0.eq(port.rd_e0),
                             c.ring_rd_line.eq(port.rd_line), c.ring_rd_lanes.eq(port.rd_lanes),
                             c.ring_wr_en.eq(port.wr_en), c.ring_wr_e0.eq(port.wr_e0),
                             c.ring_wr_line.eq(port.wr_line), c.ring_wr_lanes.eq(port.wr_lanes)]
                m.d.comb += [c.ring_wr_data[l].eq(port.wr_data[l])
                             for l in range(core.ring_words)]
                m.d.comb += [port.rd_data[l].eq(c.ring_rd_data[l])
                             for l in range(core.ring_words)]

        # --- checks (gen.spec.isa.check), three registered steps ----------------------------------
        R, C = cfg.core.rows, cfg.core.cols
        K = dma.words
        log_banks = banks.bit_length() - 1
        log_bb = (self.data_width // 8).bit_length() - 1
        mt = Signal(16, name="chk_mt")
        nt = Signal(16, name="chk_nt")
        batch = f["batch"]
        # A collective's matrix of every core's chunks has cores * n rows, which may exceed
        # the 2**16 elements a lane access addresses (a SCRATCHPAD_RANGE).
        rows_bits = 16 + (count - 1).bit_length()
        n_all = f["n"] * count
        # Step 1: tile counts and the scratchpad matrices each operation touches.
        matrices = []
        for prefix, rows_cols in (
                ("sp", [(any_op(O.LOAD_COL, O.DMA_LOAD, O.DMA_STORE), f["n"], batch),
                        (any_op(O.LOAD_ROW, O.FORWARD, O.LOSS_GRAD), f["m"], batch),
                        (any_op(O.LOAD_W, O.STORE_W), f["m"], f["n"]),
                        (is_op[O.BACKWARD], f["n"], batch),
                        (any_op(O.BROADCAST, O.REDUCE, O.ALL_GATHER, O.ALL_REDUCE, O.SEND),
                         f["n"], batch),
                        (is_op[O.REDUCE_SCATTER], n_all, batch)]),
                ("sp2", [(is_op[O.BACKWARD] & f["flag"], f["n"], batch),
                         (is_op[O.LOSS_GRAD], f["m"], batch),
                         (any_op(O.BROADCAST, O.REDUCE, O.REDUCE_SCATTER, O.ALL_REDUCE, O.SEND),
                          f["n"], batch),
                         (is_op[O.ALL_GATHER], n_all, batch)]),
                ("sp3", [(is_op[O.LOSS_GRAD], Const(1, 16), batch)])):
            used = Signal(name=f"chk_{prefix}_used")
            rows = Signal(rows_bits, name=f"chk_{prefix}_rows")
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
            too_long = (lpc << log_banks) < rows
            if rows_bits > 16:
                too_long = too_long | (rows > 0xFFFF)
            m.d.sync += [short.eq(too_long), end.eq(base + cols * lpc)]
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
        # gen.spec.isa.core_error: cores the machine lacks.
        core_bad = Signal(name="chk_core_bad")
        if cluster:
            send = is_op[O.SEND]
            collective_bad = ((f["root"] >= count) |
                              (send & ((f["peer"] >= count) | (f["peer"] == f["root"]))))
        else:
            collective_bad = Const(1, 1)        # a collective needs two cores
        absent = (f["cores"][count:] != 0) if count < 16 else Const(0, 1)
        several = (mask & (mask - 1)[:count]) != 0
        m.d.comb += core_bad.eq(Mux(is_collective, collective_bad,
                                    absent | (is_op[O.DMA_STORE] & several)))
        needs = {o: [f[s] == 0 for s in isa.NEEDS[o]] for o in isa.Opcode}
        zero_bad = Cat(*[is_op[o] & Cat(*needs[o]).any() for o in isa.Opcode]).any()
        known = Cat(*is_op.values()).any()
        E = isa.ErrorCode
        code = Signal(8, name="chk_code")
        m.d.comb += code.eq(
            Mux(~known, E.BAD_OPCODE, Mux(reserved, E.RESERVED_BITS, Mux(
                zero_bad, E.ZERO_SIZE, Mux(weight_bad, E.WEIGHT_RANGE, Mux(
                    act_bad, E.ACT_RANGE, Mux(Cat(*sp_bad).any(), E.SCRATCHPAD_RANGE, Mux(
                        align_bad, E.DMA_ALIGN, Mux(range_bad, E.DMA_RANGE, Mux(
                            core_bad, E.BAD_CORE, E.NONE))))))))))

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

        # The cores' state for the scoreboard (a cluster).
        idle = Signal(count, name="cores_idle")
        m.d.comb += idle.eq(Cat(*[c.cmd_ready for c in cores]))
        all_idle = idle == everyone
        mask_idle = (mask & ~idle) == 0
        halted = Signal(name="halted")          # the run ends with an error (a cluster)

        def halt(error):
            m.d.sync += [error_code.eq(error), error_index.eq(index)]
            if cluster:
                # The commands before this one may still be running: the run ends when
                # they have.
                m.d.sync += halted.eq(1)
                m.next = "DRAIN"
            else:
                m.d.sync += [running.eq(0), failed.eq(1)]
                m.d.comb += irq_set.eq(0b10)
                m.next = "IDLE"

        def finish_run():
            m.d.sync += [running.eq(0), done.eq(1)]
            m.d.comb += irq_set.eq(0b01)
            m.next = "IDLE"

        def next_command():
            with m.If(index + 1 == cmd_count):
                if cluster:
                    m.d.sync += halted.eq(0)
                    m.next = "DRAIN"
                else:
                    finish_run()
            with m.Else():
                m.d.sync += fetch_addr.eq(fetch_addr + isa.COMMAND_BYTES)
                m.next = "FETCH"
            m.d.sync += [index.eq(index + 1), counters["commands"].eq(counters["commands"] + 1)]

        sent = Signal(count, name="cores_sent")     # the cores the last core command went to

        def dispatch():
            """Start a checked command once the cores it needs are idle (a cluster)."""
            with m.If(is_dma):
                with m.If(mask_idle):
                    m.d.comb += dma.start.eq(1)
                    m.next = "DMA_WAIT"
                with m.Else():
                    m.next = "DISPATCH"
            with m.Elif(is_collective):
                with m.If(all_idle):
                    m.d.comb += ring.start.eq(1)
                    m.next = "RING_WAIT"
                with m.Else():
                    m.next = "DISPATCH"
            with m.Else():
                with m.If(mask_idle):
                    m.d.comb += [c.cmd_valid.eq(mask[k]) for k, c in enumerate(cores)]
                    m.d.sync += sent.eq(mask)
                    m.next = "CORE_SENT"
                with m.Else():
                    m.next = "DISPATCH"

        fetch_last = Signal(72, name="fetch_last")
        m.d.comb += fetch_last.eq(cmd_base + (cmd_count << 6) - 1)
        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(doorbell):
                    m.d.sync += [running.eq(1), done.eq(0), failed.eq(0), error_code.eq(0),
                                 error_index.eq(0), index.eq(0), fetch_addr.eq(cmd_base)]
                    m.next = "START"
            with m.State("START"):
                with m.If(cmd_count == 0):
                    finish_run()
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
                if cluster:
                    with m.Else():
                        dispatch()
                else:
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
            if cluster:
                with m.State("DISPATCH"):
                    dispatch()
                with m.State("CORE_SENT"):
                    # A core's error flag is valid the cycle after it took the command.
                    with m.If((Cat(*[c.error for c in cores]) & sent) != 0):
                        halt(E.CORE_ERROR)
                    with m.Else():
                        next_command()
                with m.State("RING_WAIT"):
                    with m.If(ring.done):
                        next_command()
                with m.State("DRAIN"):
                    with m.If(all_idle):
                        m.d.sync += [running.eq(0), done.eq(~halted), failed.eq(halted)]
                        m.d.comb += irq_set.eq(Mux(halted, 0b10, 0b01))
                        m.next = "IDLE"
            else:
                with m.State("CORE_WAIT"):
                    with m.If(core.error):
                        halt(E.CORE_ERROR)
                    with m.Elif(core.cmd_ready):
                        next_command()
        return m


def _or_all(values):
    """The bitwise OR of ``values``."""
    result = values[0]
    for value in values[1:]:
        result = result | value
    return result
