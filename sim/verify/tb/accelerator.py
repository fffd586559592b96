"""cocotb testbench of the accelerator (``hw.accelerator``, one core or a cluster: the same
ports): cocotbext-axi's AxiLiteMaster is the host and AxiRam the memory.

Two tests:

``job``
    Runs a job prepared by ``sim.verify.rtl_job`` (``CHRYSALIS_JOB``: an ``.npz``): the host writes
    the memory image, then for each run writes the run's memory patches and window
    registers, programs the command buffer, enables the interrupts, rings the doorbell and
    waits for ``irq`` (with a cycle bound); it reads the status, the error code and index
    and every counter, and (if asked) the whole memory image. The results go to
    ``CHRYSALIS_JOB_OUT`` (an ``.npz``), for the caller to compare with the golden machine
    model.
``registers``
    The register map: ID, version and config readback; SLVERR for unmapped offsets, for
    writes to read-only registers and for the doorbell while running; the interrupt
    enable and write-one-to-clear status; the counters' clear; no X or Z on any output
    after reset.
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config

__all__ = ["TB", "RunTimeout"]


def _field_mask(register, field):
    """The bits of a register's bit-field (``gen.spec.isa.Register.fields``)."""
    return isa.REGISTER[register].field(field).mask


#: STATUS and IRQ bits (the ``irq`` causes are bits of IRQ_ENABLE and IRQ_STATUS alike).
RUNNING = _field_mask("STATUS", "running")
DONE = _field_mask("STATUS", "done")
IRQ_DONE = _field_mask("IRQ_STATUS", "done")
IRQ_BOTH = IRQ_DONE | _field_mask("IRQ_STATUS", "error")


class RunTimeout(AssertionError):
    """A run did not raise ``irq`` within its cycle bound (the accelerator hung)."""


class TB:
    """Clock, reset, the host (AxiLiteMaster) and the memory (AxiRam) of an accelerator.

    Parameters
    ----------
    dut : cocotb handle of the accelerator's Verilog top
    mem_bytes : int
        Size of the memory model; it answers every address (modulo its size).
    period_ns : int
    """

    def __init__(self, dut, mem_bytes, period_ns=10):
        self.dut = dut
        self.period_ns = period_ns
        # Reset is driven before the first edge: an X on it would make every register X.
        dut.rst.value = 1
        cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())
        self.host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=mem_bytes)
        self.mem_bytes = mem_bytes

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def read(self, name):
        """Read register ``name`` (gen.spec.isa.REGISTERS); SLVERR raises."""
        return int.from_bytes((await self.host.read(isa.REGISTER[name].offset, 4)).data,
                              "little")

    async def read_fields(self, name):
        """Read register ``name`` and split it into its bit-fields
        (``gen.spec.isa.Register.fields``); bits outside every field must be 0."""
        reg = isa.REGISTER[name]
        value = await self.read(name)
        fields = reg.unpack(value)
        assert value == reg.pack(**fields), f"{name} = {value:#x} sets bits outside its fields"
        return fields

    async def read_resp(self, offset):
        """``(value, resp)`` of a read at byte ``offset`` (any offset)."""
        resp = await self.host.read(offset, 4)
        return int.from_bytes(resp.data, "little"), int(resp.resp)

    async def write(self, name, value):
        await self.write_offset(isa.REGISTER[name].offset, value, check=True)

    async def write_offset(self, offset, value, check=False):
        """Write 32 bits at byte ``offset``; returns the response (``check``: must be OKAY)."""
        resp = await self.host.write(offset, int(value).to_bytes(4, "little"))
        if check and int(resp.resp) != 0:
            raise AssertionError(f"write of {value:#x} at {offset:#x} answered {resp.resp!r}")
        return int(resp.resp)

    async def read64(self, name):
        return await self.read(f"{name}_LO") | (await self.read(f"{name}_HI")) << 32

    async def write64(self, name, value):
        await self.write(f"{name}_LO", value & 0xFFFF_FFFF)
        await self.write(f"{name}_HI", value >> 32)

    def write_memory(self, addr, words):
        self.ram.write(int(addr), np.asarray(words, dtype="<u4").tobytes())

    def read_memory(self, addr, count):
        return np.frombuffer(self.ram.read(int(addr), 4 * int(count)), dtype="<u4").copy()

    async def counters(self):
        return {name.lower(): await self.read64(name) for name, _ in isa.COUNTERS}

    async def run(self, cmd_base, cmd_count, max_cycles):
        """Run a command buffer and wait for the interrupt; returns ``(status, error code,
        error index, cycles, wall seconds)`` with the cycles of the ``CYCLES`` counter
        (doorbell to done). Raises :class:`RunTimeout` after ``max_cycles``."""
        await self.write64("CMD_BASE", cmd_base)
        await self.write("CMD_COUNT", cmd_count)
        await self.write("IRQ_ENABLE", IRQ_BOTH)
        await self.write("IRQ_STATUS", IRQ_BOTH)
        cycles_before = await self.read64("CYCLES")
        await self.write("DOORBELL", 1)
        start = time.monotonic()
        # One trigger for the whole wait (no Python per clock cycle): the interrupt, or the
        # bound in simulated time.
        if not self.dut.irq.value:
            await First(RisingEdge(self.dut.irq), Timer(max_cycles * self.period_ns, "ns"))
            if not self.dut.irq.value:
                raise RunTimeout(f"no interrupt within {max_cycles} cycles of the doorbell "
                                 f"(STATUS {await self.read('STATUS'):#x})")
        wall = time.monotonic() - start
        status = await self.read("STATUS")
        code = await self.read("ERROR_CODE")
        index = await self.read("ERROR_INDEX")
        await self.write("IRQ_STATUS", IRQ_BOTH)
        cycles = await self.read64("CYCLES") - cycles_before
        return status, code, index, cycles, wall


@cocotb.test()
async def job(dut):
    """Run the job in ``CHRYSALIS_JOB`` and write the results to ``CHRYSALIS_JOB_OUT``."""
    spec = np.load(os.environ["CHRYSALIS_JOB"])
    meta = json.loads(str(spec["meta"]))
    tb = TB(dut, meta["mem_bytes"])
    await tb.reset()
    tb.write_memory(meta["mem_base"], spec["image"])
    out = {}
    for i, run in enumerate(meta["runs"]):
        for j, addr in enumerate(run.get("writes", [])):
            tb.write_memory(addr, spec[f"write_{i}_{j}"])
        await tb.write64("DMA_BASE", run["dma_base"])
        await tb.write64("DMA_LAST", run["dma_last"])
        await tb.write("DUAL_SEED", run.get("dual_seed", 0))
        await tb.write("REUSE_STRENGTH", run.get("reuse_strength", 0))
        status, code, index, cycles, wall = await tb.run(run["cmd_base"], run["cmd_count"],
                                                         run["max_cycles"])
        out[f"result_{i}"] = np.array([status, code, index, cycles], dtype=np.uint64)
        out[f"wall_{i}"] = np.array(wall)
        counters = await tb.counters()
        out[f"counters_{i}"] = np.array([counters[name.lower()] for name, _ in isa.COUNTERS],
                                        dtype=np.uint64)
        if run.get("dump", True):
            out[f"image_{i}"] = tb.read_memory(meta["mem_base"], len(spec["image"]))
        dut._log.info("run %d: status %#x, error %d at %d, %d cycles in %.2f s", i, status,
                      code, index, cycles, wall)
    np.savez(os.environ["CHRYSALIS_JOB_OUT"], **out)


def _output_names(config):
    """The top's output ports (from the bus signatures)."""
    from amaranth.lib.wiring import Flow

    from chrysalis.hw.accelerator import REG_ADDR_WIDTH
    from chrysalis.hw.axi import AXI4LiteSignature, AXI4Signature
    names = ["irq"]
    for prefix, sig in (("s_axil", AXI4LiteSignature(REG_ADDR_WIDTH).flip()),
                        ("m_axi", AXI4Signature(config.host.axi_addr_width,
                                                config.host.axi_data_width))):
        names += [f"{prefix}_{name}" for name, member in sig.members.items()
                  if member.flow == Flow.Out]
    return names


def _check_outputs(dut, config):
    """Every output port of the top holds 0s and 1s only."""
    bad = []
    for name in _output_names(config):
        value = getattr(dut, name).value
        if not value.is_resolvable:
            bad.append(f"{name}={value}")
    return bad


@cocotb.test()
async def registers(dut):
    """The register map, its error responses and the interrupt logic."""
    config = Config.from_toml(os.environ["CHRYSALIS_CONFIG"])
    tb = TB(dut, 1 << 16)
    # Inputs driven from the start (AxiLiteMaster and AxiRam drive theirs when made).
    await tb.reset()
    await ReadOnly()
    bad = _check_outputs(dut, config)
    assert not bad, f"outputs not 0/1 after reset: {bad}"
    await RisingEdge(dut.clk)

    assert await tb.read("ID") == isa.ID_MAGIC
    major, minor = isa.ISA_VERSION
    assert await tb.read_fields("VERSION") == dict(major=major, minor=minor)
    assert await tb.read("CONFIG_HASH") == int(config.config_hash()[:8], 16)
    assert await tb.read_fields("ARRAY") == dict(
        rows=config.core.rows, cols=config.core.cols, banks=config.core.banks,
        mac_latency=config.mac.latency)
    assert await tb.read("SCRATCHPAD_WORDS") == config.core.scratchpad_words
    assert await tb.read("WEIGHT_WORDS") == config.pe.weight_words
    assert await tb.read("ACT_WORDS") == config.pe.act_words
    assert await tb.read_fields("BUS") == dict(data_width=config.host.axi_data_width,
                                               addr_width=config.host.axi_addr_width)
    assert await tb.read_fields("CLUSTER") == dict(
        cores=config.cluster.cores, link_words=config.cluster.link_width // 32,
        hop_latency=config.cluster.hop_latency)
    assert await tb.read64("DMA_LAST") == (1 << config.host.axi_addr_width) - 1
    assert await tb.read("STATUS") == 0

    # Read-write registers keep what is written; partial byte strobes merge.
    await tb.write("CMD_COUNT", 0x1234_5678)
    assert await tb.read("CMD_COUNT") == 0x1234_5678
    resp = await tb.host.write(isa.REGISTER["CMD_COUNT"].offset + 1, b"\xAB")
    assert int(resp.resp) == 0
    assert await tb.read("CMD_COUNT") == 0x1234_AB78
    await tb.write("REUSE_STRENGTH", 0xFFFF_FFFF)
    assert await tb.read("REUSE_STRENGTH") == _field_mask("REUSE_STRENGTH", "strength")

    # Unmapped offsets and read-only registers answer SLVERR and change nothing.
    mapped = {r.offset for r in isa.REGISTERS}
    unmapped = [o for o in (0x058, 0x0FC, 0x800, 0xFFC) if o not in mapped]
    for offset in unmapped:
        value, resp = await tb.read_resp(offset)
        assert resp == 2 and value == 0, (offset, value, resp)
        assert await tb.write_offset(offset, 0xFFFF_FFFF) == 2
    for name in ("ID", "STATUS", "ERROR_CODE", "CYCLES_LO", "MAC_SLOTS_HI"):
        before = await tb.read(name)
        assert await tb.write_offset(isa.REGISTER[name].offset, 0xDEAD_BEEF) == 2, name
        assert await tb.read(name) == before, name
    assert await tb.read("DOORBELL") == 0

    # An empty command buffer finishes at once: done, and the interrupt when enabled.
    await tb.write("CMD_COUNT", 0)
    await tb.write("IRQ_ENABLE", 0)
    await tb.write("DOORBELL", 1)
    await ClockCycles(dut.clk, 4)
    assert await tb.read("STATUS") == DONE
    assert await tb.read("IRQ_STATUS") == IRQ_DONE
    assert not dut.irq.value
    await tb.write("IRQ_ENABLE", IRQ_DONE)
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert dut.irq.value
    await RisingEdge(dut.clk)
    await tb.write("IRQ_STATUS", IRQ_DONE)      # write one to clear
    assert await tb.read("IRQ_STATUS") == 0
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert not dut.irq.value
    await RisingEdge(dut.clk)

    # The doorbell while running answers SLVERR: a long run of DMA loads from zeroed
    # memory would halt at once (opcode 0), so ring with a buffer of real commands.
    words = []
    for _ in range(8):
        words.extend(isa.encode("DMA_LOAD", n=64, batch=4, mem_addr=0x8000,
                                mem_stride=256, sp_base=0, sp_lpc=64 // config.core.banks))
    tb.write_memory(0x1000, words)
    await tb.write64("CMD_BASE", 0x1000)
    await tb.write("CMD_COUNT", 8)
    await tb.write("DOORBELL", 1)
    assert (await tb.read("STATUS")) & RUNNING
    assert await tb.write_offset(isa.REGISTER["DOORBELL"].offset, 1) == 2
    for _ in range(100_000):
        if not (await tb.read("STATUS")) & RUNNING:
            break
    assert await tb.read("STATUS") == DONE
    assert await tb.read64("COMMANDS") == 8

    # COUNTER_CLEAR sets every counter to 0 (they are cumulative until then).
    assert await tb.read64("CYCLES") > 0
    await tb.write("COUNTER_CLEAR", 1)
    assert await tb.counters() == {name.lower(): 0 for name, _ in isa.COUNTERS}

