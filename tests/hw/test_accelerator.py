"""The accelerator top level (``hw.accelerator.Accelerator``) in Amaranth's simulator: the
host-visible behaviour the cocotb tests (``sim/verify/tb/accelerator.py``, AxiRam without errors)
cannot reach.

The ``tiny`` preset runs behind two per-cycle Python models:

* the memory is ``tests.hw.test_dma.Subordinate`` (seeded stalls on every channel, SLVERR and
  DECERR on chosen bursts, the manager's side of the AXI4 protocol checked every cycle),
  looking at the flat ``m_axi_*`` ports through :class:`_DmaView`, its memory preloaded with
  a command stream (:class:`_Memory`);
* the host is :class:`Host`, an AXI4-Lite manager with independent read and write queues
  (so a read and a write can be issued in the same cycle), random RREADY/BREADY stalls and
  checks of the subordinate's side (a response only for an outstanding request, held stable
  until taken).

Each test builds plain data twice: from the RTL (:func:`simulate` with a testbench body) and
from a reference written from ``gen.spec.isa``'s semantics (:class:`RefMachine` for command
streams of DMA_LOAD/DMA_STORE, :class:`RefRegisters` for the register file), and compares
them. Every simulation has a cycle bound (:class:`Bench`), so a hang fails.

Errors are placed by burst: :func:`error_at` names the ``k``-th command's fetch burst or the
``q``-th burst of its DMA transfer, as the run's ``n``-th read (write) burst.

The whole file takes ~11 s on 2 workers (``-n 2``), ~15 s on one.
"""

import random
from collections import deque
from types import SimpleNamespace

import pytest
from amaranth.hdl import Signal
from amaranth.sim import Simulator
from amaranth.utils import exact_log2

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import get_preset
from chrysalis.gen.spec.isa import COMMAND_BYTES, ErrorCode, Opcode
from chrysalis.hw.accelerator import Accelerator
from chrysalis.hw.axi import AXI4Signature, Burst, Resp
from chrysalis.sim.verify.shared_sim import shared_simulation
from tests.hw.test_dma import Case, Memory, Subordinate, Transfer, _mem_init, plan

CONFIG = get_preset("tiny")
LIMITS = isa.Limits.from_config(CONFIG)
WIDTH = CONFIG.host.axi_data_width
ADDR_WIDTH = CONFIG.host.axi_addr_width
K, BB = WIDTH // 32, WIDTH // 8
LOG_BB = exact_log2(BB)
TOP = (1 << ADDR_WIDTH) - 1
FETCH_BEATS = COMMAND_BYTES // BB
REG = isa.REGISTER
#: Counters the reference knows exactly (the other two depend on memory timing).
EXACT_COUNTERS = tuple(name for name, _ in isa.COUNTERS if name not in ("CYCLES", "DMA_CYCLES"))
CMD_BASE = 0x1000
STATUS_RUNNING, STATUS_DONE, STATUS_ERROR = 0b001, 0b010, 0b100
IRQ_DONE, IRQ_ERROR = 0b01, 0b10

assert ADDR_WIDTH == 32, "tests.hw.test_dma.plan wraps addresses at 32 bits"


# --- the memory: test_dma's subordinate on the accelerator's flat ports ------------------------

class _Accelerator(Accelerator):
    """The accelerator, keeping its DMA engine for the subordinate's per-cycle checks
    (``read_beat``/``write_beat`` on the handshakes) and its scratchpad-write log."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        self.dma = m.submodules.dma
        return m


class _DmaView:
    """What ``Subordinate`` needs of a ``DmaEngine``: the bus is the flat ``m_axi_*`` ports,
    the beat pulses and scratchpad port are the accelerator's engine's (only read); the
    scratchpad read data is a signal outside the design (the core answers the engine)."""

    def __init__(self, acc):
        dma = acc.dma
        self.bus = SimpleNamespace(**{name: getattr(acc, f"m_axi_{name}") for name in
                                      AXI4Signature(ADDR_WIDTH, WIDTH).members})
        self.words, self.beat_bytes = dma.words, dma.beat_bytes
        for name in ("read_beat", "write_beat", "sp_we", "sp_re", "sp_e0", "sp_line",
                     "sp_lanes", "sp_wdata"):
            setattr(self, name, getattr(dma, name))
        self.sp_rdata = [Signal(32, name=f"unused_sp_rdata_{l}") for l in range(K)]


class _Memory(Memory):
    """test_dma's memory (seeded pattern, ``written``: the bytes written over the bus) under
    an image of preloaded bytes (the command streams)."""

    def __init__(self, seed, image):
        super().__init__(seed)
        self.image = image

    def read(self, addr, size):
        return int.from_bytes(bytes(self.written.get(a, self.image.get(a, _mem_init(self.seed, a)))
                                    for a in range(addr, addr + size)), "little")


def image_of(commands, base=CMD_BASE):
    """Memory bytes of a command stream (dicts for ``gen.spec.isa.encode_stream``) at ``base``."""
    words = isa.encode_stream(commands)
    return {base + 4 * i + b: w >> 8 * b & 0xFF for i, w in enumerate(words) for b in range(4)}


def _transfer(fields):
    op = Opcode(fields["op"])
    assert op in (Opcode.DMA_LOAD, Opcode.DMA_STORE), f"the reference runs DMA only, not {op!r}"
    return Transfer(store=op == Opcode.DMA_STORE, mem_addr=fields["mem_addr"],
                    stride=fields["mem_stride"], n=fields["n"], batch=fields["batch"],
                    sp_base=fields["sp_base"], sp_lpc=fields["sp_lpc"])


def error_at(commands, k, burst=None):
    """The run-relative number of the burst that answers an error: the fetch of command
    ``k`` (``burst`` None), or burst ``burst`` of command ``k``'s DMA transfer. Returns
    ``(kind, n)``: the ``n``-th ``"r"`` (read) or ``"w"`` (write) burst of the run."""
    counts = {"r": 0, "w": 0}
    for index, command in enumerate(commands):
        if index == k and burst is None:
            return "r", counts["r"]
        counts["r"] += 1
        t = _transfer(isa.decode(isa.encode(**command)))
        kind = "w" if t.store else "r"
        for q, _ in enumerate(plan(t, WIDTH)):
            if index == k and q == burst:
                return kind, counts[kind]
            counts[kind] += 1
    raise ValueError(f"command {k} has no burst {burst}")


# --- the host: an AXI4-Lite manager -----------------------------------------------------------

class Host:
    """AXI4-Lite manager on the ``s_axil_*`` ports, stepped once a cycle.

    Reads and writes wait in two independent queues; the head of each is presented (ARVALID;
    AWVALID and WVALID together) until taken, and the next may be presented while earlier
    responses are outstanding. RREADY and BREADY are held low with probability ``stall``.
    Every operation records the cycle its address was taken and the cycle it was answered.
    """

    def __init__(self, acc, rng, stall):
        self.acc, self.rng, self.stall = acc, rng, stall
        self.ar, self.r = deque(), deque()    # reads to present; taken, awaiting R
        self.aw, self.b = deque(), deque()    # writes to present; taken, awaiting B
        self.r_shown = self.b_shown = None    # a response shown and not taken

    def read(self, offset):
        op = SimpleNamespace(offset=offset, data=None, resp=None, taken=None, answered=None)
        self.ar.append(op)
        return op

    def write(self, offset, value, strb=0xF):
        op = SimpleNamespace(offset=offset, value=value, strb=strb, resp=None, taken=None,
                             answered=None)
        self.aw.append(op)
        return op

    def drive(self, ctx):
        s = self.acc
        ctx.set(s.s_axil_arvalid, bool(self.ar))
        if self.ar:
            ctx.set(s.s_axil_araddr, self.ar[0].offset)
        ctx.set(s.s_axil_rready, self.rng.random() >= self.stall)
        ctx.set(s.s_axil_awvalid, bool(self.aw))
        ctx.set(s.s_axil_wvalid, bool(self.aw))
        if self.aw:
            op = self.aw[0]
            ctx.set(s.s_axil_awaddr, op.offset)
            ctx.set(s.s_axil_wdata, op.value)
            ctx.set(s.s_axil_wstrb, op.strb)
        ctx.set(s.s_axil_bready, self.rng.random() >= self.stall)

    def sample(self, ctx, cycle):
        """The handshakes the coming edge completes."""
        s = self.acc
        if ctx.get(s.s_axil_rvalid):
            shown = (ctx.get(s.s_axil_rdata), ctx.get(s.s_axil_rresp))
            assert self.r, "RVALID with no read outstanding"
            assert self.r_shown in (None, shown), f"R changed: {self.r_shown} -> {shown}"
            self.r_shown = shown
            if ctx.get(s.s_axil_rready):
                op = self.r.popleft()
                op.data, op.resp = shown
                op.answered, self.r_shown = cycle, None
        else:
            assert self.r_shown is None, "RVALID dropped before RREADY"
        if self.ar and ctx.get(s.s_axil_arready):
            op = self.ar.popleft()
            op.taken = cycle
            self.r.append(op)
        if ctx.get(s.s_axil_bvalid):
            shown = ctx.get(s.s_axil_bresp)
            assert self.b, "BVALID with no write outstanding"
            assert self.b_shown in (None, shown), f"B changed: {self.b_shown} -> {shown}"
            self.b_shown = shown
            if ctx.get(s.s_axil_bready):
                op = self.b.popleft()
                op.resp, op.answered, self.b_shown = shown, cycle, None
        else:
            assert self.b_shown is None, "BVALID dropped before BREADY"
        awready, wready = ctx.get(s.s_axil_awready), ctx.get(s.s_axil_wready)
        if self.aw and (awready or wready):
            # This host presents AW and W together; a subordinate that took one of them
            # alone would leave the other to be presented again.
            assert awready and wready, "AW and W taken in different cycles"
            op = self.aw.popleft()
            op.taken = cycle
            self.b.append(op)


class Bench:
    """The world around one simulation: :meth:`tick` steps the host and the memory through a
    cycle (bounded by ``limit``), the rest are the host's register accesses."""

    def __init__(self, ctx, acc, sub, host, limit):
        self.ctx, self.acc, self.sub, self.host, self.limit = ctx, acc, sub, host, limit
        self.cycle = 0
        self.irq = []           # irq in every cycle

    async def tick(self):
        ctx = self.ctx
        self.host.drive(ctx)
        self.sub.step(ctx)
        self.host.sample(ctx, self.cycle)
        self.irq.append(ctx.get(self.acc.irq))
        await ctx.tick()
        self.cycle += 1
        assert self.cycle < self.limit, f"the simulation ran past its {self.limit} cycles"

    async def wait(self, *ops):
        while any(op.answered is None for op in ops):
            await self.tick()

    async def read(self, offset):
        """``(data, resp)`` of a read at byte ``offset``."""
        op = self.host.read(offset)
        await self.wait(op)
        return op.data, op.resp

    async def write(self, offset, value, strb=0xF):
        op = self.host.write(offset, value, strb)
        await self.wait(op)
        return op.resp

    async def get(self, name):
        data, resp = await self.read(REG[name].offset)
        assert resp == Resp.OKAY, f"read of {name} answered {resp}"
        return data

    async def set(self, name, value):
        resp = await self.write(REG[name].offset, value)
        assert resp == Resp.OKAY, f"write of {name} answered {resp}"

    async def get64(self, name):
        return await self.get(f"{name}_LO") | await self.get(f"{name}_HI") << 32

    async def set64(self, name, value):
        await self.set(f"{name}_LO", value & 0xFFFF_FFFF)
        await self.set(f"{name}_HI", value >> 32)

    async def ring(self, cmd_base, count):
        await self.set64("CMD_BASE", cmd_base)
        await self.set("CMD_COUNT", count)
        await self.set("DOORBELL", 1)

    async def finish(self, max_cycles=4000):
        """Poll STATUS until the run is over (at most ``max_cycles``)."""
        start = self.cycle
        while await self.get("STATUS") & STATUS_RUNNING:
            assert self.cycle - start < max_cycles, f"the run took over {max_cycles} cycles"

    async def outcome(self):
        """What the host sees of the last run (the counters count from reset)."""
        return dict(status=await self.get("STATUS"), error_code=await self.get("ERROR_CODE"),
                    error_index=await self.get("ERROR_INDEX"),
                    irq_status=await self.get("IRQ_STATUS"),
                    counters={name: await self.get64(name) for name in EXACT_COUNTERS})

    async def run(self, cmd_base, count, errors=(), max_cycles=4000):
        """One run: the errors (``(kind, n, resp, beat)``, ``n`` run-relative as from
        :func:`error_at`) armed, the doorbell rung, STATUS polled until the end; then the
        outcome, and IRQ_STATUS cleared. Returns the outcome and the bursts of the run."""
        sub = self.sub
        for kind, n, resp, beat in errors:
            if kind == "r":
                sub.read_errors[sub.n_read_bursts + n] = (resp, beat)
            else:
                sub.write_errors[sub.n_write_bursts + n] = (resp, beat)
        mark = len(sub.bursts)
        await self.ring(cmd_base, count)
        await self.finish(max_cycles)
        out = await self.outcome()
        await self.set("IRQ_STATUS", 0b11)
        timing = dict(cycles=await self.get64("CYCLES"), dma_cycles=await self.get64("DMA_CYCLES"))
        out["bursts"] = sub.bursts[mark:]
        out["memory"] = dict(sorted(sub.mem.written.items()))
        return out, timing


def simulate(body, *, image=None, seed=1, stall=0.0, host_stall=0.0, limit=30_000):
    """Run ``await body(bench)`` on a fresh accelerator; returns what it returns, with the
    memory bytes written over the bus (``memory``) and the scratchpad words the DMA engine
    wrote (``sp_writes``)."""
    # One compiled simulation of the accelerator per pytest worker, reset for every test
    # (sim.verify.shared_sim); it elaborates: acc.dma exists from here on.
    shared = shared_simulation((_Accelerator, CONFIG.to_toml()), lambda: _Accelerator(CONFIG))
    acc = shared.dut
    sub = Subordinate(_DmaView(acc), Case(WIDTH, LIMITS.banks, seed, stall, ()),
                      random.Random(seed))
    sub.mem = _Memory(seed, image or {})
    host = Host(acc, random.Random(seed + 1000), host_stall)
    result = {}

    async def testbench(ctx):
        bench = Bench(ctx, acc, sub, host, limit)
        for _ in range(2):
            await bench.tick()
        result["body"] = await body(bench)
        # Idle afterwards: no more bursts.
        mark = len(sub.bursts)
        for _ in range(16):
            await bench.tick()
        assert sub.bursts[mark:] == [], "bus activity after the last run"

    shared.run(testbench)
    return result["body"], dict(memory=dict(sorted(sub.mem.written.items())),
                                sp_writes=sub.sp_writes)


# --- the reference: gen.spec.isa semantics of runs of DMA commands ----------------------------------

class RefMachine:
    """A run as ``gen.spec.isa`` defines it, for streams of DMA_LOAD and DMA_STORE: fetch, check
    (:func:`gen.spec.isa.check`), execute, in order; the first error halts the run with its code
    and index. A burst that answers an error is completed (a load writes all its beats to
    the scratchpad, a store all its bytes to memory) and ends the run (BUS_ERROR) before any
    further burst. The scratchpad starts zeroed; word ``line * banks + e``."""

    def __init__(self, seed, image):
        self.mem = _Memory(seed, image)
        self.sp, self.sp_writes = {}, []
        self.counters = dict.fromkeys(EXACT_COUNTERS, 0)
        self.irq_status = 0
        self.status, self.error = 0, (0, 0)

    def run(self, cmd_base, count, errors=()):
        errors = {(kind, n): (resp, beat) for kind, n, resp, beat in errors}
        self.bursts = []
        self.status, self.error = STATUS_DONE, (ErrorCode.NONE, 0)
        code = isa.check_fetch(cmd_base, count, LIMITS)
        if code:
            self._halt(code, 0)
        else:
            self._commands(cmd_base, count, errors)
        self.irq_status |= IRQ_ERROR if self.status == STATUS_ERROR else IRQ_DONE
        out = dict(status=self.status, error_code=int(self.error[0]), error_index=self.error[1],
                   irq_status=self.irq_status, counters=dict(self.counters), bursts=self.bursts,
                   memory=dict(sorted(self.mem.written.items())))
        self.irq_status = 0         # the host clears it after each run
        return out

    def _halt(self, code, index):
        self.status, self.error = STATUS_ERROR, (code, index)

    def _commands(self, cmd_base, count, errors):
        nth = {"r": 0, "w": 0}

        def burst(kind, addr, beats):
            self.bursts.append((kind, addr, beats, LOG_BB, Burst.INCR))
            error = errors.get((kind, nth[kind]))
            nth[kind] += 1
            return error is not None

        for index in range(count):
            addr = cmd_base + index * COMMAND_BYTES
            failed = burst("r", addr, FETCH_BEATS)
            self.counters["FETCH_BEATS"] += FETCH_BEATS
            if failed:
                return self._halt(ErrorCode.BUS_ERROR, index)
            fields = isa.decode([self.mem.read(addr + 4 * w, 4) for w in range(isa.COMMAND_WORDS)])
            code = isa.check(fields, LIMITS)
            if code:
                return self._halt(code, index)
            t = _transfer(fields)
            for column, beat0, a, beats in plan(t, WIDTH):
                failed = burst("w" if t.store else "r", a, beats)
                line = t.sp_base + column * t.sp_lpc
                for i in range(beats):
                    lanes = [l for l in range(K) if (beat0 + i) * K + l < t.n]
                    for l in lanes:
                        word = line * LIMITS.banks + (beat0 + i) * K + l
                        at = a + i * BB + 4 * l
                        if t.store:
                            self.mem.write(at, self.sp.get(word, 0), 0xF, 4)
                        else:
                            self.sp[word] = self.mem.read(at, 4)
                            self.sp_writes.append((word, self.sp[word]))
                name = "DMA_WRITE_BEATS" if t.store else "DMA_READ_BEATS"
                self.counters[name] += beats
                if failed:
                    return self._halt(ErrorCode.BUS_ERROR, index)
            self.counters["COMMANDS"] += 1

    def final(self):
        return dict(memory=dict(sorted(self.mem.written.items())), sp_writes=self.sp_writes)


def _check_timing(timing, out):
    """CYCLES and DMA_CYCLES depend on the memory's timing: bounds only."""
    c = out["counters"]
    beats = c["FETCH_BEATS"] + c["DMA_READ_BEATS"] + c["DMA_WRITE_BEATS"]
    assert timing["cycles"] >= beats, (timing, c)
    assert c["DMA_READ_BEATS"] + c["DMA_WRITE_BEATS"] <= timing["dma_cycles"] < timing["cycles"]


# --- the command stream of tests 1 to 3 -------------------------------------------------------

#: Loads and stores through the scratchpad: each store writes back what a load put there
#: (with the byte strobes of the last beat), columns crossing 4 KiB (two bursts each).
STREAM = [
    dict(op="DMA_LOAD", n=5, batch=2, mem_addr=0x4000, mem_stride=0x40, sp_base=0, sp_lpc=3),
    dict(op="DMA_STORE", n=5, batch=2, mem_addr=0x8000, mem_stride=0x28, sp_base=0, sp_lpc=3),
    dict(op="DMA_LOAD", n=8, batch=2, mem_addr=0x5FF0, mem_stride=0x100, sp_base=20, sp_lpc=4),
    dict(op="DMA_STORE", n=8, batch=2, mem_addr=0x9FF0, mem_stride=0x1000, sp_base=20,
         sp_lpc=4),
]


def _runs(runs, *, seed, stall, host_stall, image):
    """``runs``: ``(cmd_base, count, errors)`` one after the other in one simulation; the
    RTL's and the reference's outcomes, and the memory and scratchpad writes."""

    async def body(bench):
        outs = []
        for cmd_base, count, errors in runs:
            out, timing = await bench.run(cmd_base, count, errors)
            _check_timing(timing, out)
            outs.append(out)
        return outs

    got, got_final = simulate(body, image=image, seed=seed, stall=stall, host_stall=host_stall)
    ref = RefMachine(seed, image)
    want = [ref.run(*run) for run in runs]
    return (got, got_final), (want, ref.final())


def _compare(got, want):
    (runs, final), (want_runs, want_final) = got, want
    for index, (g, w) in enumerate(zip(runs, want_runs)):
        assert g == w, f"run {index}"
    assert final == want_final
    assert got == want


def test_stream_runs_without_errors():
    """The stream with memory stalls: every command runs, the stores write back what the
    loads read (and nothing else), STATUS done, the counters."""
    image = image_of(STREAM)
    got, want = _runs([(CMD_BASE, len(STREAM), ())], seed=5, stall=0.4, host_stall=0.3,
                      image=image)
    _compare(got, want)
    run, = got[0]
    assert (run["status"], run["counters"]["COMMANDS"]) == (STATUS_DONE, len(STREAM))
    memory = got[1]["memory"]
    # The round trip: the stores' bytes are the loads' source bytes.
    source = _Memory(5, image)
    for b in range(2):
        for i in range(20):
            assert memory[0x8000 + 0x28 * b + i] == source.read(0x4000 + 0x40 * b + i, 1)
        for i in range(32):
            assert memory[0x9FF0 + 0x1000 * b + i] == source.read(0x5FF0 + 0x100 * b + i, 1)


# --- 1. an error response on a command fetch --------------------------------------------------

@pytest.mark.parametrize("k,resp,beat,seed,stall", [
    (0, Resp.SLVERR, 0, 1, 0.0),
    (2, Resp.SLVERR, FETCH_BEATS - 1, 2, 0.5),
    (3, Resp.DECERR, 3, 3, 0.3),
])
def test_fetch_bus_error(k, resp, beat, seed, stall):
    """The k-th command's fetch burst answers an error on one beat: the burst completes, the
    run halts with BUS_ERROR at index k (STATUS error, IRQ_STATUS error, COMMANDS k, nothing
    fetched or moved after it); the next doorbell runs the whole stream to done."""
    kind, n = error_at(STREAM, k)
    runs = [(CMD_BASE, len(STREAM), [(kind, n, resp, beat)]), (CMD_BASE, len(STREAM), ())]
    got, want = _runs(runs, seed=seed, stall=stall, host_stall=stall, image=image_of(STREAM))
    _compare(got, want)
    first, second = got[0]
    assert (first["status"], first["error_code"], first["error_index"]) == (
        STATUS_ERROR, ErrorCode.BUS_ERROR, k)
    assert first["irq_status"] & IRQ_ERROR and first["counters"]["COMMANDS"] == k
    assert first["bursts"][-1] == ("r", CMD_BASE + k * COMMAND_BYTES, FETCH_BEATS, LOG_BB,
                                   Burst.INCR)
    assert (second["status"], second["error_code"], second["counters"]["COMMANDS"]) == (
        STATUS_DONE, 0, k + len(STREAM))


# --- 2. an error response on a DMA_LOAD's read burst / a DMA_STORE's write response ------------

@pytest.mark.parametrize("k,burst,resp,beat,seed", [
    (0, 0, Resp.DECERR, 2, 4),       # the first command's first burst
    (2, 1, Resp.SLVERR, 1, 5),       # the second half of column 0 (across 4 KiB)
    (1, 1, Resp.SLVERR, 0, 6),       # a store's second column
    (3, 2, Resp.DECERR, 0, 7),       # column 1's first half: column 0 is in memory
])
def test_dma_bus_error(k, burst, resp, beat, seed):
    """A DMA command's burst answers an error (on a beat of a load's read burst; on BRESP of
    a store's): the run halts at that command with BUS_ERROR; the commands before it ran
    (the earlier stores' bytes are in memory), the erring transfer stopped after that burst;
    a following doorbell runs the stream to done."""
    kind, n = error_at(STREAM, k, burst)
    assert kind == ("w" if STREAM[k]["op"] == "DMA_STORE" else "r")
    runs = [(CMD_BASE, len(STREAM), [(kind, n, resp, beat)]), (CMD_BASE, len(STREAM), ())]
    image = image_of(STREAM)
    got, want = _runs(runs, seed=seed, stall=0.3, host_stall=0.2, image=image)
    _compare(got, want)
    first, second = got[0]
    assert (first["status"], first["error_code"], first["error_index"],
            first["counters"]["COMMANDS"]) == (STATUS_ERROR, ErrorCode.BUS_ERROR, k, k)
    assert second["status"] == STATUS_DONE
    # Memory after the first run: the stores before the error, and of the erring store
    # its bursts up to the one that erred (written whole: the error comes on B). Store 1
    # is the first matrix's round trip; store 3's columns (the second matrix) are two
    # bursts each, so burst 2 is the first half of column 1.
    source = _Memory(seed, image)
    store_1 = {0x8000 + 0x28 * b + i: source.read(0x4000 + 0x40 * b + i, 1)
               for b in range(2) for i in range(20)}
    store_3 = {0x9FF0 + 0x1000 * b + i: source.read(0x5FF0 + 0x100 * b + i, 1)
               for b, size in ((0, 32), (1, 16)) for i in range(size)}
    want_memory = {} if k == 0 else {**store_1, **(store_3 if k == 3 else {})}
    assert first["memory"] == want_memory


# --- 3. the doorbell --------------------------------------------------------------------------

def test_doorbell():
    """A doorbell write with bit 0 clear is answered OKAY and starts nothing; a doorbell
    write while running answers SLVERR (with either value) and the run goes on as if it had
    not been written; other registers stay writable while running."""
    image = image_of(STREAM)
    doorbell = REG["DOORBELL"].offset

    async def body(bench):
        await bench.set64("CMD_BASE", CMD_BASE)
        await bench.set("CMD_COUNT", len(STREAM))
        idle = [await bench.write(doorbell, value) for value in (0, 0xFFFF_FFFE, 2)]
        for _ in range(20):
            await bench.tick()
        after_idle = dict(status=await bench.get("STATUS"), bursts=list(bench.sub.bursts),
                          cycles=await bench.get64("CYCLES"))
        mark = len(bench.sub.bursts)
        ring = await bench.write(doorbell, 1)
        status = [await bench.get("STATUS")]
        busy = [await bench.write(doorbell, value) for value in (1, 0, 0xFFFF_FFFF)]
        busy.append(await bench.write(REG["IRQ_ENABLE"].offset, 0b01))
        status.append(await bench.get("STATUS"))
        await bench.finish()
        out = await bench.outcome()
        out["bursts"] = bench.sub.bursts[mark:]
        out["memory"] = dict(sorted(bench.sub.mem.written.items()))
        return dict(idle=idle, after_idle=after_idle, ring=ring, busy=busy,
                    status_while_running=status, run=out, irq=bench.irq[-1])

    got, got_final = simulate(body, image=image, seed=9, stall=0.5, host_stall=0.3)
    ref = RefMachine(9, image)
    want = dict(idle=[Resp.OKAY] * 3, after_idle=dict(status=0, bursts=[], cycles=0),
                ring=Resp.OKAY, busy=[Resp.SLVERR] * 3 + [Resp.OKAY],
                status_while_running=[STATUS_RUNNING] * 2, run=ref.run(CMD_BASE, len(STREAM)),
                irq=1)
    assert got == want
    assert got_final == ref.final()


# --- 4. the register file ---------------------------------------------------------------------

def reset_values(config):
    """Every register's value after reset: ``gen.spec.isa.REGISTERS``' reset, and the
    config-dependent ones as ``hw/accelerator.py`` documents them."""
    limits = isa.Limits.from_config(config)
    top = (1 << config.host.axi_addr_width) - 1
    from_config = {
        "CONFIG_HASH": int(config.config_hash()[:8], 16),
        "ARRAY": REG["ARRAY"].pack(rows=config.core.rows, cols=config.core.cols,
                                   banks=limits.banks, mac_latency=config.mac.latency),
        "SCRATCHPAD_WORDS": config.core.scratchpad_words,
        "WEIGHT_WORDS": config.pe.weight_words,
        "ACT_WORDS": config.pe.act_words,
        "BUS": REG["BUS"].pack(data_width=config.host.axi_data_width,
                               addr_width=config.host.axi_addr_width),
        "DMA_LAST_LO": top & 0xFFFF_FFFF,
        "DMA_LAST_HI": top >> 32,
        "CLUSTER": REG["CLUSTER"].pack(cores=config.cluster.cores,
                                       link_words=config.cluster.link_width // 32,
                                       hop_latency=config.cluster.hop_latency),
    }
    assert isa.CONFIG_REGISTERS <= set(from_config)
    return {r.name: from_config.get(r.name, r.reset) for r in isa.REGISTERS}


#: Bits a read-write register keeps (the others keep all 32).
RW_BITS = {"IRQ_ENABLE": 2, "REUSE_STRENGTH": isa.REUSE_STRENGTH_BITS,
           "DUAL_SEED": isa.DUAL_SEED_BITS}
assert all(REG[name].width == bits for name, bits in RW_BITS.items())
BY_OFFSET = {r.offset: r for r in isa.REGISTERS}
UNMAPPED = [o for o in (0x058, 0x05C, 0x060, 0x064, 0x0FC, 0x100 + 8 * len(isa.COUNTERS), 0x800,
                        0xFFC)
            if o not in BY_OFFSET]


class RefRegisters:
    """The register file as ``gen.spec.isa`` documents it, while idle: reads of readable
    registers answer their value, of write-only ones 0; an unmapped offset answers SLVERR
    (reads 0); a write to a read-only register answers SLVERR and changes nothing; strobed
    bytes only are written; IRQ_STATUS clears the bits written as 1; the doorbell with bit
    0 clear does nothing."""

    def __init__(self, config):
        self.values = reset_values(config)

    def read(self, offset):
        r = BY_OFFSET.get(offset & ~3)
        if r is None:
            return 0, Resp.SLVERR
        return (self.values[r.name] if r.readable else 0), Resp.OKAY

    def write(self, offset, value, strb=0xF):
        r = BY_OFFSET.get(offset & ~3)
        if r is None or not r.writable:
            return Resp.SLVERR
        mask = sum(0xFF << 8 * b for b in range(4) if strb >> b & 1)
        old = self.values[r.name]
        if r.access == "w1c":
            self.values[r.name] = old & ~(value & mask)
        elif r.name == "DOORBELL":
            assert not value & mask & 1, "the reference does not run commands"
        elif r.name == "COUNTER_CLEAR":
            assert not value & mask & 1, "the reference does not keep counters"
        else:
            keep = (1 << RW_BITS.get(r.name, 32)) - 1
            self.values[r.name] = (old & ~mask | value & mask) & keep
        return Resp.OKAY


def _pattern(offset):
    """A value to write at ``offset``: distinct per register, bit 0 clear (the doorbell)."""
    return (0xC3A5_5A3C ^ offset * 0x0101_0100 ^ offset << 20) & 0xFFFF_FFFE


def _script():
    """The register accesses, in order: ``("r", offset)``, ``("w", offset, value, strb)``,
    and ``("rw", read offset, write offset, value)`` issued in the same cycle."""
    every = [r.offset for r in isa.REGISTERS] + UNMAPPED
    steps = [("r", o) for o in every]
    steps += [("w", o, _pattern(o), 0xF) for o in every]
    steps += [("r", o) for o in every]
    cmd_count, dma_base = REG["CMD_COUNT"].offset, REG["DMA_BASE_LO"].offset
    steps += [("w", cmd_count, 0x0000_AB00, 0b0010), ("r", cmd_count),
              ("w", dma_base, 0x1122_3344, 0b1001), ("r", dma_base),
              ("w", cmd_count + 2, 0x77 << 16, 0b0100), ("r", cmd_count),   # unaligned offset
              ("w", REG["REUSE_STRENGTH"].offset, 0xFFFF_FFFF, 0b0001),
              ("r", REG["REUSE_STRENGTH"].offset)]
    # Read and write issued in the same cycle: the read sees the value before the write.
    steps += [("rw", cmd_count, cmd_count, 0x1357_9BDF), ("r", cmd_count),
              ("rw", REG["IRQ_ENABLE"].offset, REG["IRQ_ENABLE"].offset, 0b11),
              ("rw", REG["ID"].offset, REG["STATUS"].offset, 0xFFFF_FFFF),
              ("rw", UNMAPPED[0], UNMAPPED[1], 1), ("rw", REG["DOORBELL"].offset,
                                                     REG["CMD_BASE_HI"].offset, 0xFEDC_BA98)]
    steps += [("r", o) for o in every]
    return steps


#: Registers a batch of concurrent reads and writes touches: written ones are never read.
BATCH_WRITES = ["CMD_BASE_LO", "CMD_BASE_HI", "DMA_BASE_HI", "REUSE_STRENGTH", "ID",
                "COMMANDS_LO"]
BATCH_READS = ["ID", "VERSION", "ARRAY", "BUS", "CMD_COUNT", "IRQ_ENABLE", "DMA_LAST_LO",
               "STATUS", "MAC_SLOTS_HI", "DOORBELL"]


def _run_script(steps, bench):
    """The script on the RTL: answers, and the cycles each same-cycle pair was taken."""

    async def go():
        answers, taken = [], []
        for step in steps:
            if step[0] == "r":
                answers.append(await bench.read(step[1]))
            elif step[0] == "w":
                answers.append(await bench.write(step[1], step[2], step[3]))
            else:
                r, w = bench.host.read(step[1]), bench.host.write(step[2], step[3])
                await bench.wait(r, w)
                answers.append(((r.data, r.resp), w.resp))
                taken.append(r.taken == w.taken)
        return answers, taken
    return go()


def _ref_script(steps, regs):
    answers = []
    for step in steps:
        if step[0] == "r":
            answers.append(regs.read(step[1]))
        elif step[0] == "w":
            answers.append(regs.write(*step[1:]))
        else:
            read = regs.read(step[1])
            answers.append((read, regs.write(step[2], step[3])))
    return answers


@pytest.mark.parametrize("host_stall", [0.0, 0.6])
def test_registers(host_stall):
    """Reset values of every register, SLVERR for unmapped offsets and read-only registers
    (which keep their value), read-write registers keep their bits, byte strobes; a read
    and a write issued in the same cycle are taken together and both answered; a batch of
    reads and writes in flight at once; IRQ_STATUS write-one-to-clear after real runs; all
    with random RREADY/BREADY stalls."""
    steps = _script()
    batch_w = [(REG[name].offset, _pattern(REG[name].offset) ^ 0xFFFF_0000)
               for name in BATCH_WRITES]
    batch_r = [REG[name].offset for name in BATCH_READS]

    async def body(bench):
        answers, taken = await _run_script(steps, bench)
        # A batch: every read and every write queued at once.
        reads = [bench.host.read(o) for o in batch_r]
        writes = [bench.host.write(o, v) for o, v in batch_w]
        await bench.wait(*reads, *writes)
        batch = ([(op.data, op.resp) for op in reads], [op.resp for op in writes],
                 [await bench.read(o) for o, _ in batch_w])
        # IRQ_STATUS after runs: an empty buffer (done), a misaligned one (FETCH_RANGE).
        await bench.set64("DMA_BASE", 0)
        await bench.set64("DMA_LAST", TOP)
        runs = []
        for cmd_base, count in ((CMD_BASE, 0), (CMD_BASE + 0x20, 1)):
            await bench.ring(cmd_base, count)
            await bench.finish()
            runs.append([await bench.get(name) for name in
                         ("STATUS", "ERROR_CODE", "ERROR_INDEX", "IRQ_STATUS")])
        w1c = []
        for value in (0, 0xFFFF_FFF0, IRQ_DONE, IRQ_DONE, 0xFFFF_FFFF):
            w1c.append((await bench.write(REG["IRQ_STATUS"].offset, value),
                        await bench.get("IRQ_STATUS")))
        return dict(answers=answers, same_cycle=taken, batch=batch, runs=runs, w1c=w1c)

    got, _ = simulate(body, host_stall=host_stall, seed=11 + int(10 * host_stall))
    regs = RefRegisters(CONFIG)
    answers = _ref_script(steps, regs)
    batch = ([regs.read(o) for o in batch_r], [regs.write(o, v) for o, v in batch_w],
             [regs.read(o) for o, _ in batch_w])
    want = dict(answers=answers, same_cycle=[True] * sum(s[0] == "rw" for s in steps),
                batch=batch,
                runs=[[STATUS_DONE, 0, 0, IRQ_DONE],
                      [STATUS_ERROR, ErrorCode.FETCH_RANGE, 0, IRQ_DONE | IRQ_ERROR]],
                w1c=[(Resp.OKAY, 0b11), (Resp.OKAY, 0b11), (Resp.OKAY, IRQ_ERROR),
                     (Resp.OKAY, IRQ_ERROR), (Resp.OKAY, 0)])
    for index, (step, g, w) in enumerate(zip(steps, got["answers"], want["answers"])):
        assert g == w, f"step {index}: {step}"
    assert got == want


# --- 5. irq -----------------------------------------------------------------------------------

def test_irq_follows_status_and_enable():
    """``irq`` is ``IRQ_STATUS & IRQ_ENABLE != 0``: checked for every enable with every
    status a run can leave (done, error, both, none), and in every cycle a poll of
    IRQ_STATUS is taken during runs -- irq and the value read are of the same cycle."""
    image = image_of(STREAM)
    fetch_error = [("r", error_at(STREAM, 1)[1], Resp.SLVERR, 0)]

    async def sample(bench):
        op = bench.host.read(REG["IRQ_STATUS"].offset)
        await bench.wait(op)
        return op.data, bench.irq[op.taken]

    async def body(bench):
        table = []

        async def every_enable():
            for enable in range(4):
                await bench.set("IRQ_ENABLE", enable)
                table.append((enable, *await sample(bench)))

        await every_enable()
        await bench.ring(CMD_BASE, 0)                       # done
        await bench.finish()
        await every_enable()
        await bench.ring(CMD_BASE + 0x20, 1)                # FETCH_RANGE: done and error
        await bench.finish()
        await every_enable()
        await bench.set("IRQ_STATUS", IRQ_DONE)             # error only
        await every_enable()
        await bench.set("IRQ_STATUS", IRQ_ERROR)            # none
        await every_enable()
        # Polls during runs: every sample pairs the value read with irq in its cycle.
        polls = []
        for enable, errors in ((IRQ_DONE, ()), (IRQ_ERROR, fetch_error), (IRQ_DONE, fetch_error),
                               (IRQ_ERROR, ())):
            await bench.set("IRQ_ENABLE", enable)
            for kind, n, resp, beat in errors:
                bench.sub.read_errors[bench.sub.n_read_bursts + n] = (resp, beat)
            await bench.ring(CMD_BASE, len(STREAM))
            seen = set()
            for _ in range(2000):
                value, irq = await sample(bench)
                seen.add((value, irq))
                if value:
                    break
            polls.append((enable, sorted(seen)))
            await bench.set("IRQ_STATUS", 0b11)
        return dict(table=table, polls=polls)

    got, _ = simulate(body, image=image, seed=13, stall=0.3, host_stall=0.3)
    table = [(enable, status, int(status & enable != 0))
             for status in (0, IRQ_DONE, IRQ_DONE | IRQ_ERROR, IRQ_ERROR, 0)
             for enable in range(4)]
    polls = [(IRQ_DONE, [(0, 0), (IRQ_DONE, 1)]), (IRQ_ERROR, [(0, 0), (IRQ_ERROR, 1)]),
             (IRQ_DONE, [(0, 0), (IRQ_ERROR, 0)]), (IRQ_ERROR, [(0, 0), (IRQ_DONE, 0)])]
    assert got == dict(table=table, polls=polls)


# --- 6. the counters: cumulative, and cleared by COUNTER_CLEAR ----------------------------------

#: A stream that moves the counters of a single core without dual precision or reuse:
#: fetch, both DMA directions, core commands of both kinds of slot (MAC and update), and
#: products with and without a zero operand (FORWARD's second sample is never loaded).
COUNTED = [
    dict(op="DMA_LOAD", n=2, batch=2, mem_addr=0x4000, mem_stride=0x40, sp_base=0, sp_lpc=1),
    dict(op="LOAD_W", m=2, n=2, wbase=0, sp_base=0, sp_lpc=1),
    dict(op="LOAD_COL", n=2, batch=1, abase=0, sp_base=0, sp_lpc=1),
    dict(op="FORWARD", m=2, n=2, batch=2, wbase=0, abase=0, sp_base=8, sp_lpc=1),
    dict(op="WGRAD", m=2, n=2, batch=1, wbase=0, abase=0, abase2=0, scalar=0),
    dict(op="DMA_STORE", n=2, batch=1, mem_addr=0x5000, sp_base=8, sp_lpc=1),
]
#: The counters that stay 0: the tiny preset has no dual precision, no reuse and no ring,
#: and commands this small never wait for the reducers.
IDLE_COUNTERS = {"LOW_PRODUCTS", "REUSE_LOOKUPS", "REUSE_HITS", "MULTIPLIES_AVOIDED",
                 "RING_WORDS", "RING_CYCLES", "STALL_CYCLES"}


def test_counter_clear():
    """The counters are cumulative over runs, and a write of 1 to COUNTER_CLEAR.clear sets
    every one to 0 -- those the register file counts (CYCLES, COMMANDS, beats) and the
    core's (CORE_CYCLES, slots, products) alike -- after which they count on from 0. A
    write with bit 0 clear changes nothing; a clear while running answers SLVERR and changes
    nothing. With a memory and a host that never stall, each run counts the same."""
    clear = REG["COUNTER_CLEAR"].offset

    async def body(bench):
        async def counters():
            return {name: await bench.get64(name) for name, _ in isa.COUNTERS}

        await bench.ring(CMD_BASE, len(COUNTED))
        await bench.finish()
        first = await counters()
        await bench.ring(CMD_BASE, len(COUNTED))
        await bench.finish()
        two = await counters()
        kept = (await bench.write(clear, 0xFFFF_FFFE), await counters())
        cleared = (await bench.write(clear, 1), await counters())
        await bench.ring(CMD_BASE, len(COUNTED))
        busy = await bench.write(clear, 1)
        await bench.finish()
        after = await counters()
        status = await bench.get("STATUS")
        return dict(first=first, two=two, kept=kept, cleared=cleared, busy=busy, after=after,
                    status=status)

    got, _ = simulate(body, image=image_of(COUNTED), seed=4)
    first = got["first"]
    assert got["status"] == STATUS_DONE and first["COMMANDS"] == len(COUNTED)
    assert {name for name, value in first.items() if value == 0} == IDLE_COUNTERS
    assert got["two"] == {name: 2 * value for name, value in first.items()}
    assert got["kept"] == (Resp.OKAY, got["two"])
    assert got["cleared"] == (Resp.OKAY, dict.fromkeys(first, 0))
    # The run after the clear counts from 0, the refused clear in its middle did nothing.
    assert (got["busy"], got["after"]) == (Resp.SLVERR, first)


# --- 7. DMA_LOAD: the words of a column's last beat past n ---------------------------------------

def test_dma_load_drops_the_words_past_n():
    """A DMA_LOAD reads whole beats but writes only the column's ``n`` words into the
    scratchpad: the words of its last beat past ``n`` are dropped and the scratchpad keeps
    what it held there (docs/commands.md). A column of 4 words is loaded, then 3 words over
    it (2 beats: the second beat carries word 3 of the new source too), and the 4 words
    stored back: word 3 is still the first load's."""
    assert K == 2
    stream = [
        dict(op="DMA_LOAD", n=4, batch=1, mem_addr=0x4000, sp_base=16, sp_lpc=2),
        dict(op="DMA_LOAD", n=3, batch=1, mem_addr=0x6000, sp_base=16, sp_lpc=2),
        dict(op="DMA_STORE", n=4, batch=1, mem_addr=0x8000, sp_base=16, sp_lpc=2),
    ]
    image = image_of(stream)
    got, want = _runs([(CMD_BASE, len(stream), ())], seed=8, stall=0.3, host_stall=0.2,
                      image=image)
    _compare(got, want)
    run, = got[0]
    # The second load read its whole last beat: 2 beats, bytes 0x6000 to 0x600F.
    assert ("r", 0x6000, 2, LOG_BB, Burst.INCR) in run["bursts"]
    assert run["counters"]["DMA_READ_BEATS"] == 4
    source = _Memory(8, image)
    stored = [run["memory"][0x8000 + i] for i in range(16)]
    assert stored == ([source.read(0x6000 + i, 1) for i in range(12)]
                      + [source.read(0x400C + i, 1) for i in range(4)])
    assert stored[12:] != [source.read(0x600C + i, 1) for i in range(4)]


# --- bugs -------------------------------------------------------------------------------------

def test_w1c_in_the_cycle_a_run_ends():
    """A w1c write of IRQ_STATUS is not lost when it is taken in the cycle the controller
    sets a status bit: with done set from an earlier run, the host clears done at every
    delay after ringing a run that halts (BAD_OPCODE); IRQ_STATUS must end as error only."""
    image = {CMD_BASE + i: 0 for i in range(COMMAND_BYTES)}         # op 0: BAD_OPCODE

    async def body(bench):
        finals = []
        for delay in range(40):
            await bench.ring(CMD_BASE, 0)                   # done
            await bench.finish()
            await bench.set("IRQ_STATUS", IRQ_ERROR)        # IRQ_STATUS = done
            await bench.ring(CMD_BASE, 1)                   # halts with BAD_OPCODE
            for _ in range(delay):
                await bench.tick()
            await bench.set("IRQ_STATUS", IRQ_DONE)
            await bench.finish()
            finals.append(await bench.get("IRQ_STATUS"))
        return finals

    got, _ = simulate(body, image=image, seed=1)
    assert got == [IRQ_ERROR] * 40


def test_w1c_unstrobed_bytes_clear_nothing():
    """IRQ_STATUS with both bits set; writes of all ones with byte 0 not strobed
    (wstrb 0b1110, 0b0000) clear nothing -- AXI: bytes without a strobe are not written."""

    async def body(bench):
        await bench.ring(CMD_BASE, 0)
        await bench.finish()
        await bench.ring(CMD_BASE + 0x20, 1)
        await bench.finish()
        got = [await bench.get("IRQ_STATUS")]
        for strb in (0b1110, 0b0000):
            resp = await bench.write(REG["IRQ_STATUS"].offset, 0xFFFF_FFFF, strb)
            got.append((resp, await bench.get("IRQ_STATUS")))
        return got

    got, _ = simulate(body)
    assert got == [0b11, (Resp.OKAY, 0b11), (Resp.OKAY, 0b11)]


def test_fetch_stays_in_the_window_when_cmd_count_changes():
    """The DMA window bounds every bus access, the command fetch included (DMA_BASE: "first
    byte address the DMA and the command fetch may touch"): with the window ending at the
    end of a 4-command buffer, writes to CMD_COUNT, CMD_BASE and the window (and DUAL_SEED,
    REUSE_STRENGTH) while command 2 runs answer SLVERR and change nothing, and the run fetches nothing past the buffer."""
    stream = [dict(op="DMA_LOAD", n=2, batch=1, mem_addr=0x100 + 0x10 * i, sp_base=i, sp_lpc=1)
              for i in range(4)]
    last = CMD_BASE + len(stream) * COMMAND_BYTES - 1

    async def body(bench):
        await bench.set64("DMA_LAST", last)
        await bench.ring(CMD_BASE, len(stream))
        while await bench.get64("COMMANDS") < 2:
            pass
        refused = [await bench.write(REG[name].offset, 1) for name in
                   ("CMD_COUNT", "CMD_BASE_LO", "DMA_LAST_LO", "DMA_BASE_LO", "DUAL_SEED",
                    "REUSE_STRENGTH")]
        await bench.finish()
        outside = [b for b in bench.sub.bursts if b[1] + b[2] * BB - 1 > last]  # DMA_BASE 0
        return (refused, outside, await bench.get64("COMMANDS"), await bench.get("CMD_COUNT"),
                await bench.get("DUAL_SEED"), await bench.get("REUSE_STRENGTH"))

    got, _ = simulate(body, image=image_of(stream), seed=3)
    assert got == ([Resp.SLVERR] * 6, [], len(stream), len(stream), 0, 0)


def test_collective_on_one_core_is_bad_core():
    """On one core a collective is BAD_CORE (the last check) and never reaches the core:
    the run halts at its index with the core never busy; so does a ``cores`` bit past bit
    0, while bit 0 (or 0: every core) runs."""
    fields = dict(n=2, batch=1, sp_base=0, sp_lpc=1, sp2_base=4, sp2_lpc=1)
    load = dict(op="DMA_LOAD", n=2, batch=1, mem_addr=0x4000, sp_base=0, sp_lpc=1)
    fwd = dict(op="FORWARD", m=2, n=2, batch=1, wbase=0, abase=0, sp_base=8, sp_lpc=1)
    streams = [[load, dict(fields, op=op.name, **({"peer": 1} if op == Opcode.SEND else {}))]
               for op in sorted(isa.COLLECTIVES)]
    streams += [[load, dict(fwd, cores=0b10)], [dict(fwd, cores=0b1), dict(fwd, cores=0)]]
    image, runs = {}, []
    for k, stream in enumerate(streams):
        image.update(image_of(stream, CMD_BASE + 0x400 * k))
        runs.append((CMD_BASE + 0x400 * k, len(stream)))

    async def body(bench):
        outs = []
        for cmd_base, count in runs:
            out, _ = await bench.run(cmd_base, count)
            outs.append((out["status"], out["error_code"], out["error_index"],
                         out["counters"]["CORE_CYCLES"]))
        return outs

    got, _ = simulate(body, image=image, seed=2)
    bad = [(STATUS_ERROR, ErrorCode.BAD_CORE, 1, 0)] * (len(streams) - 1)
    assert got[:-1] == bad
    assert got[-1][:3] == (STATUS_DONE, 0, 0) and got[-1][3] > 0


# --- the command checker against gen.spec.isa.check -------------------------------------------

def _random_command(rng, limits):
    """Command words near the edges of ``limits``: each field zero, small, at an edge or
    random; now and then a reserved bit set."""
    edges = {"wbase": limits.weight_words, "wbase2": limits.weight_words,
             "abase": limits.act_words, "abase2": limits.act_words}
    for p in ("sp", "sp2", "sp3"):
        edges[f"{p}_base"] = limits.sp_lines
    value = 0
    for f in isa.FIELDS:
        if f.name in ("scalar", "scalar2", "mem_addr", "mem_stride"):
            continue
        if f.name in edges:
            v = rng.choice([0, 1, 3, edges[f.name] - 4, edges[f.name] - 1, edges[f.name]])
        else:
            v = rng.choice([0, 1, 2, 3, 5, 17, 1 << limits.cores, rng.randrange(f.mask + 1)])
        value |= (v & f.mask) << f.bit
    op = rng.randrange(len(isa.Opcode) + 2)
    value = value & ~0xFF | op
    if op in isa.DMA_OPS:
        mem = isa.FIELD["mem_addr"]
        addr = rng.choice([0x1000, 0x1004, 0x7FF0, 0xFFFF_FFF0, 1 << 32])
        stride = rng.choice([0, 8, 0x44, 0x100])
        value = (value & ~(mem.mask << mem.bit) | addr << mem.bit
                 | stride << isa.FIELD["mem_stride"].bit)
    words = [(value >> 32 * w) & 0xFFFF_FFFF for w in range(isa.COMMAND_WORDS)]
    if rng.random() < 0.05:
        words[rng.randrange(isa.COMMAND_WORDS)] |= 1 << rng.randrange(32)
    return words


@pytest.mark.parametrize("cores", [1, 3])
def test_command_checker_follows_isa_check(cores):
    """The RTL checker (``hw.command_check``, made from ``isa.OP_REGIONS`` and the other
    tables) gives ``isa.check``'s error code and ``isa.core_mask``'s cores for random
    commands near every limit, two clock edges after the command is set."""
    from chrysalis.gen.spec.config import with_overrides
    from chrysalis.hw.command_check import CommandChecker
    config = CONFIG if cores == 1 else with_overrides(CONFIG, {"name": "tiny_c3",
                                                               "cluster.cores": cores})
    rng = random.Random(cores)
    checker = CommandChecker(config)
    got, want = [], []

    async def testbench(ctx):
        for _ in range(1500):
            window = rng.choice([(0, TOP), (0x1000, 0x7FFF)])
            limits = isa.Limits.from_config(config, *window)
            words = _random_command(rng, limits)
            ctx.set(checker.command.as_value(), sum(w << 32 * i for i, w in enumerate(words)))
            ctx.set(checker.dma_base, window[0])
            ctx.set(checker.dma_last, window[1])
            await ctx.tick().repeat(2)
            fields = isa.decode(words)
            got.append((ctx.get(checker.code), ctx.get(checker.mask)))
            want.append((int(isa.check(fields, limits)),
                         isa.core_mask(fields, cores) & ((1 << cores) - 1)))

    sim = Simulator(checker)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == want
    codes = {code for code, _ in want}
    assert codes >= {0, 1, 2, 3, 4, 5, 6, 7, 8, 12}, sorted(codes)
