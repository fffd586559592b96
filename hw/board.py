"""The on-board self-test: the accelerator, an on-chip memory holding one training step, and
a small host that runs it and checks the result.

A bitstream of the bare accelerator would mean nothing on a board: its AXI ports have no
host and no memory. :class:`SelfTest` gives it both on chip:

* :class:`AXI4Memory`, an AXI4 subordinate over block RAM, initialised with the memory
  image of one compiled digits training step (:func:`chrysalis.sim.compile.selftest.selftest_image`: the command stream,
  the initial weights and one minibatch, laid out by :class:`sim.compile.program.TrainingProgram`);
* a host state machine on the AXI4-Lite registers: it sets the DMA window to the image,
  programs ``CMD_BASE`` and ``CMD_COUNT`` with the prologue and the step, enables the
  interrupts, rings the doorbell, waits for ``irq`` (or a time-out), reads ``STATUS`` and
  ``ERROR_CODE``, then walks the whole image and compares its :func:`checksum` with the
  golden machine model's (``sim.golden.machine``, computed when the design is elaborated).

Each run starts from what the previous one left in memory (the weights it trained), so the
host keeps the golden checksums of ``runs`` consecutive runs and a run counter that a reset
does not clear (``reset_less``): after a reset the host runs the next step and checks it
against the next checksum. When the table is used up it stops with
:attr:`Reason.EXHAUSTED`; configuring the FPGA again starts over from the stored image.

:class:`BoardTop` puts the self-test on a board from ``amaranth-boards`` (the ULX3S): the
25 MHz board clock (or a PLL, :func:`ecp5_pll_params`), a reset button and the LEDs. The
flow that builds it is :mod:`gen.flows.board`; ``docs/board.md`` documents both.
"""

import enum
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, ClockDomain, Const, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, Flow
from amaranth.utils import ceil_log2, exact_log2

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config

from .axi import AXI4Signature, Burst

__all__ = ["checksum", "SelfTestImage", "Reason", "AXI4Memory", "SelfTest",
           "ecp5_pll_params", "board_clock_mhz", "BoardTop", "LEDS"]

_MASK32 = 0xFFFF_FFFF


def checksum(words):
    """The self-test's checksum of a sequence of 32-bit words: a Fletcher-style pair of sums.

    ``a`` is the sum of the words and ``b`` the sum of the running values of ``a``, both
    modulo 2**32; the checksum is ``b << 32 | a``. Unlike a plain sum it depends on where
    each word is, so two swapped words change it. :class:`SelfTest` computes the same sums
    in hardware, one word per cycle.

    Parameters
    ----------
    words : array_like of int
        Values in ``[0, 2**32)``.

    Returns
    -------
    int
        A 64-bit value.
    """
    array = np.asarray(words, dtype=np.uint64).ravel()
    if array.size and int(array.max()) > _MASK32:
        raise ValueError(f"words must be 32-bit values, not {int(array.max())!r}")
    n = array.size
    # b = sum over i of (a after word i) = sum of w_i * (n - i), modulo 2**32.
    weights = np.arange(n, 0, -1, dtype=np.uint64)
    a = int(array.sum(dtype=np.uint64)) & _MASK32
    b = int(((array * weights) & _MASK32).sum(dtype=np.uint64)) & _MASK32
    return b << 32 | a


@dataclass(frozen=True)
class SelfTestImage:
    """A stored training step: the memory image and what the golden machine makes of it.

    Members
    -------
    config : gen.spec.config.Config
    sizes : tuple of int
        Layer sizes of the MLP (64 inputs, 10 classes).
    batch : int
    seed : int
        Seed of the initial weights and of the digits split (the minibatch is the first
        ``batch`` training samples).
    image : numpy.ndarray
        ``uint32`` words at byte address 0: the memory before the first run.
    cmd_base, cmd_count : int
        The command buffer of one run: the prologue and one SGD step.
    dma_last : int
        Last byte of the image: the DMA window is ``[0, dma_last]``.
    golden : tuple of int
        :func:`checksum` of the whole image after run 1, 2, ... of the golden machine.
    golden_image : numpy.ndarray
        The image after the first run (for diagnostics).
    regions : dict of str to (int, int)
        The memory map: region name to ``(first byte, end byte)``.
    """

    config: Config
    sizes: tuple
    batch: int
    seed: int
    image: np.ndarray
    cmd_base: int
    cmd_count: int
    dma_last: int
    golden: tuple
    golden_image: np.ndarray
    regions: dict

    @property
    def words(self):
        """Words of the image."""
        return len(self.image)

    def corrupted(self, word, xor=1):
        """A copy whose stored image has word ``word`` XORed with ``xor`` (the golden values
        kept): a self-test built from it must fail."""
        if not isinstance(word, int) or not 0 <= word < self.words:
            raise ValueError(f"word must be an index in [0, {self.words}), not {word!r}")
        if not isinstance(xor, int) or not 0 < xor <= _MASK32:
            raise ValueError(f"xor must be a non-zero 32-bit value, not {xor!r}")
        image = self.image.copy()
        image[word] ^= np.uint32(xor)
        return SelfTestImage(self.config, self.sizes, self.batch, self.seed, image,
                             self.cmd_base, self.cmd_count, self.dma_last, self.golden,
                             self.golden_image, self.regions)


class Reason(enum.IntEnum):
    """Why a self-test failed (:attr:`SelfTest.reason`)."""
    NONE = 0
    #: A register write was answered with an error response.
    REGISTER_WRITE = 1
    #: The accelerator halted with an error code (:attr:`SelfTest.error_code`).
    ACCELERATOR_ERROR = 2
    #: No interrupt within the cycle bound.
    TIMEOUT = 3
    #: The run finished, but the image's checksum is not the golden one.
    MISMATCH = 4
    #: Every stored golden checksum is used up: configure the FPGA again.
    EXHAUSTED = 5


class AXI4Memory(wiring.Component):
    """An AXI4 subordinate over one block RAM, one burst at a time.

    A row of the RAM is one beat (``data_width`` bits; byte address ``A`` is in row
    ``A // (data_width / 8)``). INCR and WRAP bursts step through rows (wrapping from the
    last row to the first), FIXED bursts stay on one; reads take two cycles per beat,
    writes one, with byte strobes. Every response is OKAY: the address decoding is not
    checked, because the accelerator's DMA window (``DMA_BASE``, ``DMA_LAST``) keeps every
    access inside the image.

    While :attr:`scan` is high the read port belongs to the scan port instead (the bus must
    be idle then): ``scan_data`` is row ``scan_row`` one cycle later.

    Parameters
    ----------
    addr_width, data_width, id_width : int
        The bus (``hw.axi.AXI4Signature``).
    init : sequence of int
        The rows at configuration: ``data_width``-bit values; their count is the depth.

    Members
    -------
    bus : In(AXI4Signature(addr_width, data_width, id_width))
    scan : In(1)
    scan_row : In(range(depth))
    scan_data : Out(data_width)
    """

    def __init__(self, *, addr_width, data_width, init, id_width=4):
        init = [int(v) for v in init]
        if not init:
            raise ValueError(f"init must hold at least one row, not {init!r}")
        if any(v < 0 or v >> data_width for v in init):
            bad = next(v for v in init if v < 0 or v >> data_width)
            raise ValueError(f"init rows must be {data_width}-bit values, not {bad!r}")
        self.depth = len(init)
        self.init = init
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        super().__init__({
            "bus": In(AXI4Signature(addr_width, data_width, id_width)),
            "scan": In(1), "scan_row": In(range(self.depth)), "scan_data": Out(data_width),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        dw = self.data_width
        log_beat = exact_log2(dw // 8)
        m.submodules.ram = ram = Memory(shape=dw, depth=self.depth, init=self.init)
        rd = ram.read_port()
        wr = ram.write_port(granularity=8)
        row_bits = max(1, ceil_log2(self.depth))

        row = Signal(row_bits, name="row")
        beats = Signal(8, name="beats_left")
        fixed = Signal(name="fixed")
        ident = Signal(self.id_width, name="ident")
        m.d.comb += [self.scan_data.eq(rd.data), rd.en.eq(0)]
        # Past the last row an address wraps to the first (the depth need not be a power of 2).
        next_row = Signal.like(row)
        m.d.comb += next_row.eq(row + 1)
        with m.If(row == self.depth - 1):
            m.d.comb += next_row.eq(0)

        def first_row(addr):
            return (addr >> log_beat)[:row_bits]

        with m.FSM(name="axi_mem"):
            with m.State("IDLE"):
                with m.If(self.scan):
                    m.d.comb += [rd.addr.eq(self.scan_row), rd.en.eq(1)]
                with m.Elif(bus.arvalid):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += [row.eq(first_row(bus.araddr)), beats.eq(bus.arlen),
                                 fixed.eq(bus.arburst == Burst.FIXED), ident.eq(bus.arid)]
                    m.next = "READ"
                with m.Elif(bus.awvalid):
                    m.d.comb += bus.awready.eq(1)
                    m.d.sync += [row.eq(first_row(bus.awaddr)), beats.eq(bus.awlen),
                                 fixed.eq(bus.awburst == Burst.FIXED), ident.eq(bus.awid)]
                    m.next = "WRITE"
            with m.State("READ"):
                m.d.comb += [rd.addr.eq(row), rd.en.eq(1)]
                m.next = "READ_BEAT"
            with m.State("READ_BEAT"):
                m.d.comb += [bus.rvalid.eq(1), bus.rdata.eq(rd.data), bus.rid.eq(ident),
                             bus.rresp.eq(0), bus.rlast.eq(beats == 0)]
                with m.If(bus.rready):
                    with m.If(~fixed):
                        m.d.sync += row.eq(next_row)
                    m.d.sync += beats.eq(beats - 1)
                    m.next = "READ_NEXT"
            with m.State("READ_NEXT"):
                # The beat just taken was the last one when the count wrapped below zero.
                with m.If(beats == 0xFF):
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [rd.addr.eq(row), rd.en.eq(1)]
                    m.next = "READ_BEAT"
            with m.State("WRITE"):
                m.d.comb += bus.wready.eq(1)
                with m.If(bus.wvalid):
                    m.d.comb += [wr.addr.eq(row), wr.data.eq(bus.wdata), wr.en.eq(bus.wstrb)]
                    with m.If(~fixed):
                        m.d.sync += row.eq(next_row)
                    with m.If(bus.wlast):
                        m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                m.d.comb += [bus.bvalid.eq(1), bus.bid.eq(ident), bus.bresp.eq(0)]
                with m.If(bus.bready):
                    m.next = "IDLE"
        return m


def _rows(words, per_row):
    """Words grouped into rows of ``per_row`` (little-endian: word 0 in the low bits)."""
    padded = list(int(w) for w in words)
    padded += [0] * (-len(padded) % per_row)
    return [sum(padded[r + k] << (32 * k) for k in range(per_row))
            for r in range(0, len(padded), per_row)]


class SelfTest(wiring.Component):
    """The accelerator of a config running a stored training step against a golden checksum.

    After reset the host state machine runs at once (see the module's docstring). On the
    default 4x4 core the run of a 64-32-10 step takes about 12700 cycles from the doorbell
    to the interrupt and 16500 with the register writes and the checksum walk (0.66 ms at
    25 MHz).

    Parameters
    ----------
    selftest : SelfTestImage
        The stored image, its command buffer and the golden checksums (its ``config`` is the
        accelerator's).
    timeout_cycles : int
        Cycles from the doorbell to the interrupt before the run counts as hung.

    Members
    -------
    busy : Out(1)
        The test is running.
    passed, failed : Out(1)
        The outcome, held until the next reset.
    reason : Out(4)
        :class:`Reason` of a failure.
    error_code : Out(8)
        The accelerator's ``ERROR_CODE`` after the run.
    run : Out(8)
        Index of the run checked (0 for the first after configuration).
    cycles : Out(32)
        Cycles from the doorbell to the interrupt.
    result : Out(64)
        The checksum of the image after the run.
    """

    def __init__(self, selftest, *, timeout_cycles=1 << 26):
        if not isinstance(selftest, SelfTestImage):
            raise TypeError(f"selftest must be a SelfTestImage, not {selftest!r}")
        if not isinstance(timeout_cycles, int) or timeout_cycles < 1:
            raise ValueError(f"timeout_cycles must be a positive integer, not {timeout_cycles!r}")
        self.selftest = selftest
        self.timeout_cycles = timeout_cycles
        super().__init__({
            "busy": Out(1), "passed": Out(1), "failed": Out(1), "reason": Out(4),
            "error_code": Out(8), "run": Out(8), "cycles": Out(32), "result": Out(64),
        })

    def elaborate(self, platform):
        from .accelerator import Accelerator

        m = Module()
        st = self.selftest
        config = st.config
        aw, dw = config.host.axi_addr_width, config.host.axi_data_width
        per_row = dw // 32
        m.submodules.accelerator = acc = Accelerator(config)
        m.submodules.memory = mem = AXI4Memory(addr_width=aw, data_width=dw,
                                               init=_rows(st.image, per_row))
        for name, member in AXI4Signature(aw, dw).members.items():
            port, inner = getattr(acc, f"m_axi_{name}"), getattr(mem.bus, name)
            m.d.comb += inner.eq(port) if member.flow == Flow.Out else port.eq(inner)

        # --- the host's register writes, in order ----------------------------------------
        last = st.dma_last
        writes = [("DMA_BASE_LO", 0), ("DMA_BASE_HI", 0),
                  ("DMA_LAST_LO", last & _MASK32), ("DMA_LAST_HI", last >> 32),
                  ("CMD_BASE_LO", st.cmd_base & _MASK32), ("CMD_BASE_HI", st.cmd_base >> 32),
                  ("CMD_COUNT", st.cmd_count), ("IRQ_STATUS", 0b11), ("IRQ_ENABLE", 0b11),
                  ("DOORBELL", 1)]

        # Kept through a reset: each run starts from the image the previous one left.
        runs_started = Signal(8, name="runs_started", reset_less=True)
        golden = Array(Const(g, 64) for g in st.golden)
        this_run = Signal(8, name="this_run")
        timer = Signal(range(self.timeout_cycles + 1), name="timer")
        status = Signal(32, name="status")
        a = Signal(32, name="sum_a")
        b = Signal(32, name="sum_b")
        word = Signal(range(st.words + 1), name="word")
        taken = Signal(range(st.words + 1), name="taken")
        pending = Signal(name="pending")
        m.d.comb += [self.run.eq(this_run), self.result.eq(Cat(a, b))]

        def fail(reason):
            m.d.sync += [self.failed.eq(1), self.busy.eq(0), self.reason.eq(reason)]
            m.next = "DONE"

        def read_register(state, name, after, capture):
            with m.State(state):
                m.d.comb += [acc.s_axil_araddr.eq(isa.REGISTER[name].offset),
                             acc.s_axil_arvalid.eq(1)]
                with m.If(acc.s_axil_arready):
                    m.next = f"{state}_DATA"
            with m.State(f"{state}_DATA"):
                m.d.comb += acc.s_axil_rready.eq(1)
                with m.If(acc.s_axil_rvalid):
                    m.d.sync += capture.eq(acc.s_axil_rdata)
                    m.next = after

        with m.FSM(name="host"):
            with m.State("START"):
                m.d.sync += [self.busy.eq(1), this_run.eq(runs_started)]
                with m.If(runs_started >= len(st.golden)):
                    fail(Reason.EXHAUSTED)
                with m.Else():
                    m.next = "WRITE_0"
            for i, (name, value) in enumerate(writes):
                then = f"WRITE_{i + 1}" if i + 1 < len(writes) else "WAIT"
                with m.State(f"WRITE_{i}"):
                    m.d.comb += [acc.s_axil_awaddr.eq(isa.REGISTER[name].offset),
                                 acc.s_axil_awvalid.eq(1), acc.s_axil_wdata.eq(value),
                                 acc.s_axil_wstrb.eq(0b1111), acc.s_axil_wvalid.eq(1)]
                    # The register slave takes the address and the data together.
                    with m.If(acc.s_axil_awready & acc.s_axil_wready):
                        m.next = f"RESP_{i}"
                with m.State(f"RESP_{i}"):
                    m.d.comb += acc.s_axil_bready.eq(1)
                    with m.If(acc.s_axil_bvalid):
                        with m.If(acc.s_axil_bresp != 0):
                            fail(Reason.REGISTER_WRITE)
                        with m.Else():
                            if name == "DOORBELL":
                                # From here on the memory holds this run's results.
                                m.d.sync += [runs_started.eq(runs_started + 1), timer.eq(0)]
                            m.next = then
            with m.State("WAIT"):
                m.d.sync += timer.eq(timer + 1)
                with m.If(acc.irq):
                    m.d.sync += self.cycles.eq(timer)
                    m.next = "STATUS"
                with m.Elif(timer == self.timeout_cycles):
                    m.d.sync += self.cycles.eq(timer)
                    fail(Reason.TIMEOUT)
            read_register("STATUS", "STATUS", "ERROR_CODE", status)
            read_register("ERROR_CODE", "ERROR_CODE", "CHECK_STATUS", self.error_code)
            with m.State("CHECK_STATUS"):
                with m.If(status[2] | ~status[1]):
                    fail(Reason.ACCELERATOR_ERROR)
                with m.Else():
                    m.d.sync += [a.eq(0), b.eq(0), word.eq(0), taken.eq(0), pending.eq(0)]
                    m.next = "SCAN"
            with m.State("SCAN"):
                # One word per cycle: the row of word `word` is read now, and the word read
                # in the previous cycle (`taken`) is added.
                m.d.comb += [mem.scan.eq(1),
                             mem.scan_row.eq(word // per_row if per_row > 1 else word)]
                with m.If(word < st.words):
                    m.d.sync += word.eq(word + 1)
                m.d.sync += [pending.eq(word < st.words), taken.eq(word)]
                lanes = Array(mem.scan_data[32 * k:32 * k + 32] for k in range(per_row))
                value = lanes[taken % per_row] if per_row > 1 else mem.scan_data
                with m.If(pending):
                    m.d.sync += [a.eq(a + value), b.eq(b + a + value)]
                with m.If(~pending & (word == st.words)):
                    m.next = "COMPARE"
            with m.State("COMPARE"):
                with m.If(Cat(a, b) == golden[this_run]):
                    m.d.sync += [self.passed.eq(1), self.busy.eq(0)]
                    m.next = "DONE"
                with m.Else():
                    fail(Reason.MISMATCH)
            with m.State("DONE"):
                pass
        return m


def ecp5_pll_params(input_mhz, output_mhz):
    """Dividers of an ECP5 ``EHXPLLL`` for ``output_mhz`` from ``input_mhz``.

    ``f_out = input * CLKFB_DIV / CLKI_DIV``, with the VCO (``f_out * CLKOP_DIV``) in
    400..800 MHz and the phase detector (``input / CLKI_DIV``) in 3.125..400 MHz, as the
    ECP5 sysCLOCK guide requires. The closest reachable frequency is chosen (ties: the
    highest VCO).

    Returns
    -------
    dict
        ``clki_div``, ``clkfb_div``, ``clkop_div`` and the ``achieved_mhz``.
    """
    for name, value in (("input_mhz", input_mhz), ("output_mhz", output_mhz)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"{name} must be a positive number, not {value!r}")
    if not 3.125 <= output_mhz <= 400:
        raise ValueError(f"output_mhz must be from 3.125 to 400 MHz (the ECP5 PLL's output "
                         f"range), not {output_mhz!r}")
    best = None
    for clki in range(1, 129):
        pfd = input_mhz / clki
        if not 3.125 <= pfd <= 400:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            for clkop in range(1, 129):
                vco = out * clkop
                if not 400 <= vco <= 800:
                    continue
                key = (abs(out - output_mhz), -vco)
                if best is None or key < best[0]:
                    best = (key, dict(clki_div=clki, clkfb_div=clkfb, clkop_div=clkop,
                                      achieved_mhz=out))
    if best is None:
        raise ValueError(f"no PLL setting makes {output_mhz!r} MHz from {input_mhz!r} MHz")
    return best[1]


def board_clock_mhz(pll_mhz=None):
    """The frequency :class:`BoardTop` runs at: the 25 MHz board clock, or the PLL's
    closest reachable frequency to ``pll_mhz``."""
    if pll_mhz is None:
        return 25.0
    return ecp5_pll_params(25, pll_mhz)["achieved_mhz"]


#: What each of the ULX3S's eight LEDs shows (``docs/board.md``).
LEDS = ("heartbeat (the clock runs)", "busy (the self-test runs)", "pass", "fail",
        "failure reason, bit 0", "failure reason, bit 1", "failure reason, bit 2",
        "run index, bit 0 (which stored step was checked)")


class BoardTop(wiring.Component):
    """The self-test on a board of ``amaranth-boards`` (ULX3S: ``clk25``, ``button_fire``,
    eight ``led`` s).

    The ``sync`` domain runs from the 25 MHz board clock, or from an ``EHXPLLL`` at
    ``pll_mhz``; its reset is the ``button_fire`` 0 button (and the PLL's lock), through a
    reset synchronizer and a global buffer (``DCCA``). The LEDs show :data:`LEDS`.

    Parameters
    ----------
    selftest : SelfTestImage
    pll_mhz : float, optional
        Run the design from a PLL at this frequency instead of the board clock.
    timeout_cycles : int
        :class:`SelfTest`'s bound.
    """

    def __init__(self, selftest, *, pll_mhz=None, timeout_cycles=1 << 26):
        if not isinstance(selftest, SelfTestImage):
            raise TypeError(f"selftest must be a SelfTestImage, not {selftest!r}")
        if pll_mhz is not None:
            ecp5_pll_params(25, pll_mhz)        # validates
        self.selftest, self.pll_mhz, self.timeout_cycles = selftest, pll_mhz, timeout_cycles
        super().__init__({})

    @property
    def clock_mhz(self):
        """The frequency the design runs at (:func:`board_clock_mhz`)."""
        return board_clock_mhz(self.pll_mhz)

    def elaborate(self, platform):
        if platform is None:
            raise TypeError("BoardTop needs a platform (an amaranth-boards board), not None")
        m = Module()
        m.submodules.clk25 = clk25_buffer = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        m.submodules.button = button_buffer = io.Buffer(
            "i", platform.request("button_fire", 0, dir="-"))
        clk25, button = clk25_buffer.i, button_buffer.i
        m.domains.sync = sync = ClockDomain("sync")
        # Without a PLL nothing drives it: a constant 1.
        locked = Signal(init=1, name="pll_locked")
        if self.pll_mhz is None:
            m.d.comb += sync.clk.eq(clk25)
        else:
            p = ecp5_pll_params(25, self.pll_mhz)
            clk = Signal(name="pll_clk")
            lock = Signal(name="pll_lock")
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI="25", a_FREQUENCY_PIN_CLKOP=f"{p['achieved_mhz']:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p["clki_div"], p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_DIV=p["clkop_div"], p_CLKOP_CPHASE=p["clkop_div"] - 1,
                p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["clkfb_div"],
                i_RST=0, i_STDBY=0, i_CLKI=clk25, o_CLKOP=clk, i_CLKFB=clk,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=lock)
            m.d.comb += [sync.clk.eq(clk), locked.eq(lock)]
            # nextpnr also derives this constraint from the PLL's dividers (and warns that
            # the net `pll_clk`, merged into the domain's clock, is not in its netlist).
            platform.add_clock_constraint(clk, p["achieved_mhz"] * 1e6)
        # The synchronized reset reaches every flip-flop of the accelerator that has an
        # initial value: 19075 on the 4x4 core, in every corner of the chip. Left on the
        # fabric it kept nextpnr's router from finishing the 4x4 core; a DCCA puts it on one
        # of the ECP5's global networks, which reach the slices' LSR inputs, and the core
        # routes (docs/board.md).
        m.domains.reset_in = reset_in = ClockDomain("reset_in")
        m.d.comb += reset_in.clk.eq(sync.clk)
        m.submodules.reset_sync = ResetSynchronizer(button | ~locked, domain="reset_in")
        m.submodules.reset_buffer = Instance("DCCA", i_CLKI=reset_in.rst, i_CE=Const(1),
                                             o_CLKO=sync.rst)
        m.submodules.selftest = test = SelfTest(self.selftest,
                                                timeout_cycles=self.timeout_cycles)

        # About 1.5 Hz whatever the clock: the bit of a free-running counter.
        beat_bit = max(1, int(self.clock_mhz * 1e6).bit_length() - 5)
        heartbeat = Signal(beat_bit + 1, name="heartbeat")
        m.d.sync += heartbeat.eq(heartbeat + 1)
        shown = [heartbeat[-1], test.busy, test.passed, test.failed,
                 test.reason[0], test.reason[1], test.reason[2], test.run[0]]
        for k, value in enumerate(shown):
            m.submodules[f"led_{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
            m.d.comb += led.o.eq(value)
        return m
