# amaranth: UnusedElaboratable=no
"""The DMA engine (``hw.dma.DmaEngine``) against a reference, in Amaranth's simulator.

``rtl(case)`` runs a case's transfers back to back on the engine, with a Python AXI4
subordinate memory and a scratchpad model around it (:class:`Subordinate`), and returns
plain data: per transfer the bursts seen on AR/AW, the scratchpad words written, the W beats
(address, strobes), the ``read_beat``/``write_beat`` pulses, ``bus_error`` and ``command``;
and the memory bytes written. ``ref(case)`` computes the same from the engine's contract
(``hw/dma.py``'s docstring): columns cut into INCR bursts of at most 256 beats that do not
cross 4 KiB, lanes past ``n`` masked, a transfer with an error response ending after the
burst that got it.

The subordinate inserts seeded random stalls on every channel (ARREADY, RVALID, AWREADY,
WREADY, BVALID), answers SLVERR/DECERR on the bursts a case names, and checks the manager's
side of the protocol (VALID held with a stable payload until READY, WLAST on the last beat,
``read_beat``/``write_beat`` exactly on the R/W handshakes, ``busy`` from start to ``done``,
nothing open or moving after ``done``). Every transfer has a cycle limit (from its beats,
bursts and stall rate) that fails the test instead of hanging.

``tests/hw/test_dma.py -m "not slow"`` takes ~15 s on 2 workers; the ``slow`` sweeps (more
seeds, columns up to 4000 words) ~15 s more.
"""

import dataclasses
import random
from collections import deque

import pytest
from amaranth.hdl import Cat
from amaranth.utils import exact_log2

from chrysalis.gen.spec.isa import COMMAND_BYTES
from chrysalis.hw.axi import Burst, Resp
from chrysalis.hw.dma import DmaEngine
from chrysalis.sim.verify.shared_sim import shared_simulation

ADDR_WIDTH = 32
LINE_BITS = 16
WIDTHS = (32, 64, 128)
PAGE = 4096


# --- cases ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Transfer:
    """One start of the engine. ``error``: ``(k, resp, beat)`` -- the ``k``-th burst of the
    transfer answers ``resp`` (on beat ``beat`` of a read burst; as BRESP of a write)."""
    store: bool = False
    fetch: bool = False
    mem_addr: int = 0
    stride: int = 0
    n: int = 1
    batch: int = 1
    sp_base: int = 0
    sp_lpc: int = 1
    error: tuple | None = None


@dataclasses.dataclass(frozen=True)
class Case:
    width: int
    banks: int          # scratchpad banks (>= K): word address of lane l = line*banks + e0 + l
    seed: int           # memory and scratchpad contents, and the stalls
    stall: float        # probability that a READY/VALID the subordinate drives is held low
    transfers: tuple


def _mem_init(seed, addr):
    x = (addr * 0x9E3779B1 + seed * 0x632BE5AB + 0x5BD1E995) & 0xFFFFFFFF
    return (x ^ (x >> 13) ^ (x >> 24)) & 0xFF


def _sp_init(seed, word):
    x = (word * 0x2545F491 + seed * 0x9E3779B9 + 0x1234567) & 0xFFFFFFFF
    return x ^ (x >> 15)


class Memory:
    """Byte-addressed memory: a seeded pattern, and a dict of the bytes written."""

    def __init__(self, seed):
        self.seed, self.written = seed, {}

    def read(self, addr, size):
        return int.from_bytes(bytes(self.written.get(a, _mem_init(self.seed, a))
                                    for a in range(addr, addr + size)), "little")

    def write(self, addr, value, strb, size):
        for i in range(size):
            if strb >> i & 1:
                self.written[addr + i] = value >> 8 * i & 0xFF


class Scratch:
    """Word-addressed scratchpad: a seeded pattern, and a dict of the words written."""

    def __init__(self, seed):
        self.seed, self.words = seed, {}

    def read(self, word):
        return self.words.get(word, _sp_init(self.seed, word))

    def write(self, word, value):
        self.words[word] = value


def plan(t, width):
    """The bursts of transfer ``t``: ``(column, first beat, addr, beats)``."""
    K, bb = width // 32, width // 8
    col_beats = -(-t.n // K)
    for b in range(1 if t.fetch else t.batch):
        addr, beat = (t.mem_addr + b * t.stride) % (1 << ADDR_WIDTH), 0
        while beat < col_beats:
            beats = min(col_beats - beat, 256, (PAGE - addr % PAGE) // bb)
            yield b, beat, addr, beats
            addr, beat = addr + beats * bb, beat + beats


def _bursts(t, width):
    bursts = list(plan(t, width))
    if t.error is not None:
        bursts = bursts[:t.error[0] + 1]
    return bursts


# --- the reference ----------------------------------------------------------------------------

def ref(case):
    K, bb = case.width // 32, case.width // 8
    size = exact_log2(bb)
    mem, sp = Memory(case.seed), Scratch(case.seed)
    command = 0
    out = []
    for t in case.transfers:
        kind = "w" if t.store and not t.fetch else "r"
        res = dict(bursts=[], sp_writes=[], w_beats=[], read_beats=0, write_beats=0,
                   bus_error=int(t.error is not None))
        for b, beat0, addr, beats in _bursts(t, case.width):
            res["bursts"].append((kind, addr, beats, size, Burst.INCR))
            line = t.sp_base + b * t.sp_lpc
            for i in range(beats):
                e0, a = (beat0 + i) * K, addr + i * bb
                lanes = [l for l in range(K) if e0 + l < t.n]
                if t.fetch:
                    if (beat0 + i) * bb < COMMAND_BYTES:
                        mask = (1 << 8 * bb) - 1 << 8 * bb * (beat0 + i)
                        command = command & ~mask | mem.read(a, bb) << 8 * bb * (beat0 + i)
                elif not t.store:
                    for l in lanes:
                        word = line * case.banks + e0 + l
                        res["sp_writes"].append((word, mem.read(a + 4 * l, 4)))
                        sp.write(word, mem.read(a + 4 * l, 4))
                else:
                    strb = sum(0xF << 4 * l for l in lanes)
                    data = sum(sp.read(line * case.banks + e0 + l) << 32 * l for l in lanes)
                    res["w_beats"].append((a, strb))
                    mem.write(a, data, strb, bb)
            res["write_beats" if kind == "w" else "read_beats"] += beats
        res["command"] = command
        out.append(res)
    return dict(transfers=out, memory=dict(sorted(mem.written.items())), idle=[])


# --- the RTL run ------------------------------------------------------------------------------

class _ReadBurst:
    def __init__(self, addr, beats, error):
        self.addr, self.beats, self.sent = addr, beats, 0
        self.resp, self.err_beat = error if error else (Resp.OKAY, -1)


class Subordinate:
    """AXI4 subordinate memory and scratchpad around a ``DmaEngine``, stepped once a cycle.

    :meth:`step` runs one clock cycle up to (not including) its edge: it drives the
    subordinate's outputs for the cycle (random stalls), samples the engine and applies the
    handshakes and scratchpad accesses that the edge will complete.
    """

    def __init__(self, dut, case, rng):
        self.dut, self.rng, self.stall = dut, rng, case.stall
        self.K, self.bb, self.banks = dut.words, dut.beat_bytes, case.banks
        self.mem, self.sp = Memory(case.seed), Scratch(case.seed)
        self.sp_rdata = Cat(*dut.sp_rdata)
        self.sp_wdata = Cat(*dut.sp_wdata)
        self.ar, self.r_beat = deque(), None          # read bursts accepted; the R beat shown
        self.aw, self.w, self.b = deque(), deque(), deque()
        self.b_resp = None                            # the B response shown
        self.ar_pending = self.aw_pending = self.w_pending = None
        self.sp_read = None                           # lane data for the next cycle
        self.read_errors, self.write_errors = {}, {}  # burst number -> (resp, beat)
        self.n_read_bursts = self.n_write_bursts = 0
        self.bursts, self.w_beats, self.sp_writes = [], [], []
        self.read_beat = self.write_beat = 0          # pulses of the engine's counters
        self.r_count = self.w_count = 0               # handshakes

    def _go(self):
        return self.rng.random() >= self.stall

    def step(self, ctx):
        dut, bus, bb = self.dut, self.dut.bus, self.bb
        # --- drive ---
        ctx.set(bus.arready, self._go())
        if self.r_beat is None and self.ar and self._go():
            burst = self.ar[0]
            resp = burst.resp if burst.sent == burst.err_beat else Resp.OKAY
            self.r_beat = burst
            ctx.set(bus.rdata, self.mem.read(burst.addr + burst.sent * bb, bb))
            ctx.set(bus.rresp, resp)
            ctx.set(bus.rlast, burst.sent + 1 == burst.beats)
        ctx.set(bus.rvalid, self.r_beat is not None)
        ctx.set(bus.awready, self._go())
        ctx.set(bus.wready, self._go())
        if self.b_resp is None and self.b and self._go():
            self.b_resp = self.b.popleft()
            ctx.set(bus.bresp, self.b_resp)
        ctx.set(bus.bvalid, self.b_resp is not None)
        if self.sp_read is not None:
            ctx.set(self.sp_rdata, self.sp_read)
            self.sp_read = None
        else:     # nothing was read: garbage the engine must not take
            ctx.set(self.sp_rdata, self.rng.getrandbits(32 * self.K))

        # --- AR ---
        if ctx.get(bus.arvalid):
            ar = (ctx.get(bus.araddr), ctx.get(bus.arlen), ctx.get(bus.arsize),
                  ctx.get(bus.arburst))
            assert self.ar_pending in (None, ar), f"AR changed: {self.ar_pending} -> {ar}"
            self.ar_pending = ar
            if ctx.get(bus.arready):
                addr, alen, size, burst = ar
                self.bursts.append(("r", addr, alen + 1, size, burst))
                error = self.read_errors.get(self.n_read_bursts)
                self.n_read_bursts += 1
                self.ar.append(_ReadBurst(addr, alen + 1, error))
                self.ar_pending = None
        else:
            assert self.ar_pending is None, "ARVALID dropped before ARREADY"
        # --- R ---
        r_hs = False
        if self.r_beat is not None and ctx.get(bus.rready):
            r_hs, burst = True, self.r_beat
            burst.sent += 1
            self.r_count += 1
            if burst.sent == burst.beats:
                self.ar.popleft()
            self.r_beat = None
        read_beat = ctx.get(dut.read_beat)
        assert read_beat == r_hs, f"read_beat {read_beat} on a cycle with R handshake {r_hs}"
        self.read_beat += read_beat
        # --- AW ---
        if ctx.get(bus.awvalid):
            aw = (ctx.get(bus.awaddr), ctx.get(bus.awlen), ctx.get(bus.awsize),
                  ctx.get(bus.awburst))
            assert self.aw_pending in (None, aw), f"AW changed: {self.aw_pending} -> {aw}"
            self.aw_pending = aw
            if ctx.get(bus.awready):
                addr, alen, size, burst = aw
                self.bursts.append(("w", addr, alen + 1, size, burst))
                error = self.write_errors.get(self.n_write_bursts)
                self.n_write_bursts += 1
                self.aw.append([addr, alen + 1, 0, error[0] if error else Resp.OKAY])
                self.aw_pending = None
        else:
            assert self.aw_pending is None, "AWVALID dropped before AWREADY"
        # --- W ---
        w_hs = False
        if ctx.get(bus.wvalid):
            w = (ctx.get(bus.wdata), ctx.get(bus.wstrb), ctx.get(bus.wlast))
            assert self.w_pending in (None, w), f"W changed: {self.w_pending} -> {w}"
            self.w_pending = w
            if ctx.get(bus.wready):
                w_hs = True
                self.w.append(w)
                self.w_count += 1
                self.w_pending = None
        else:
            assert self.w_pending is None, "WVALID dropped before WREADY"
        write_beat = ctx.get(dut.write_beat)
        assert write_beat == w_hs, f"write_beat {write_beat} on a cycle with W handshake {w_hs}"
        self.write_beat += write_beat
        while self.aw and self.w:
            burst = self.aw[0]
            data, strb, last = self.w.popleft()
            addr = burst[0] + burst[2] * bb
            self.w_beats.append((addr, strb))
            self.mem.write(addr, data, strb, bb)
            burst[2] += 1
            assert last == (burst[2] == burst[1]), f"WLAST {last} on beat {burst[2]} of {burst[1]}"
            if burst[2] == burst[1]:
                self.aw.popleft()
                self.b.append(burst[3])
        # --- B ---
        if self.b_resp is not None and ctx.get(bus.bready):
            self.b_resp = None
        # --- scratchpad ---
        if ctx.get(dut.sp_we):
            e0, line, lanes = ctx.get(dut.sp_e0), ctx.get(dut.sp_line), ctx.get(dut.sp_lanes)
            data = ctx.get(self.sp_wdata)
            for l in range(self.K):
                if lanes >> l & 1:
                    word = line * self.banks + e0 + l
                    value = data >> 32 * l & 0xFFFFFFFF
                    self.sp.write(word, value)
                    self.sp_writes.append((word, value))
        if ctx.get(dut.sp_re):
            e0, line, lanes = ctx.get(dut.sp_e0), ctx.get(dut.sp_line), ctx.get(dut.sp_lanes)
            self.sp_read = sum(self.sp.read(line * self.banks + e0 + l) << 32 * l
                               for l in range(self.K) if lanes >> l & 1)


def _cycle_limit(t, width, stall):
    bursts = _bursts(t, width)
    beats = sum(beats for *_, beats in bursts)
    return int((50 + 4 * beats + 20 * len(bursts)) / (1 - stall))


def rtl(case, *, at_done=None):
    """Run ``case``; ``at_done`` (a list) gets ``bus_error`` as seen in each ``done`` cycle."""
    # One compiled simulation per bus width in this worker (sim.verify.shared_sim).
    shared = shared_simulation(
        (DmaEngine, case.width),
        lambda: DmaEngine(addr_width=ADDR_WIDTH, data_width=case.width, line_bits=LINE_BITS))
    dut = shared.dut
    sub = Subordinate(dut, case, random.Random(case.seed))
    out = []
    idle = []

    async def testbench(ctx):
        for t in case.transfers:
            assert not ctx.get(dut.busy) and not ctx.get(dut.done)
            if t.error is not None:
                k, resp, beat = t.error
                errors, count = ((sub.write_errors, sub.n_write_bursts) if t.store and not t.fetch
                                 else (sub.read_errors, sub.n_read_bursts))
                errors[count + k] = (resp, beat)
            marks = (len(sub.bursts), len(sub.sp_writes), len(sub.w_beats), sub.read_beat,
                     sub.write_beat)
            for name, value in (("store", t.store), ("fetch", t.fetch), ("mem_addr", t.mem_addr),
                                ("mem_stride", t.stride), ("n", t.n), ("batch", t.batch),
                                ("sp_base", t.sp_base), ("sp_lpc", t.sp_lpc)):
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.start, 1)
            limit = _cycle_limit(t, case.width, case.stall)
            for cycle in range(limit):
                sub.step(ctx)
                if cycle > 0:
                    assert ctx.get(dut.busy), f"busy low in cycle {cycle} before done"
                done = ctx.get(dut.done)
                if done and at_done is not None:
                    at_done.append(ctx.get(dut.bus_error))
                await ctx.tick()
                ctx.set(dut.start, 0)
                if done:
                    break
            else:
                raise AssertionError(f"no done within {limit} cycles: {t}")
            # The cycle after done: idle, done was one cycle, bus_error holds.
            assert not ctx.get(dut.busy) and not ctx.get(dut.done)
            bursts, sp_writes, w_beats, read_beat, write_beat = marks
            out.append(dict(bursts=sub.bursts[bursts:], sp_writes=sub.sp_writes[sp_writes:],
                            w_beats=sub.w_beats[w_beats:], read_beats=sub.read_beat - read_beat,
                            write_beats=sub.write_beat - write_beat,
                            bus_error=ctx.get(dut.bus_error), command=ctx.get(dut.command)))
            assert not (sub.ar or sub.aw or sub.w or sub.b or sub.b_resp is not None), \
                "done with a burst still open"
        # Idle afterwards: nothing more on the bus or the scratchpad.
        marks = (len(sub.bursts), len(sub.sp_writes), len(sub.w_beats))
        for _ in range(8):
            sub.step(ctx)
            idle.append(tuple(ctx.get(s) for s in (
                dut.busy, dut.done, dut.sp_re, dut.sp_we, dut.bus.arvalid, dut.bus.awvalid,
                dut.bus.wvalid, dut.read_beat, dut.write_beat)))
            await ctx.tick()
        idle[:] = [x for x in idle if any(x)] + sub.bursts[marks[0]:] + \
            sub.sp_writes[marks[1]:] + sub.w_beats[marks[2]:]

    shared.run(testbench)
    assert sub.read_beat == sub.r_count and sub.write_beat == sub.w_count
    return dict(transfers=out, memory=dict(sorted(sub.mem.written.items())), idle=idle)


# --- case generation --------------------------------------------------------------------------

def _banks(rng, width):
    return rng.choice([b for b in (1, 2, 4, 8, 16) if b >= width // 32])


def _transfer(rng, width, banks, *, store=False, n=None, batch=None, max_n=600):
    K, bb = width // 32, width // 8
    n = n or rng.choice([rng.randint(1, 3 * K), rng.randint(1, max_n), rng.randint(1, max_n)])
    batch = batch or rng.randint(1, 4)
    col_bytes = -(-n // K) * bb
    stride = rng.choice([
        0,                                               # the same column again
        col_bytes,                                       # packed
        col_bytes + bb * rng.randint(1, 8),
        rng.randrange(0, 1 << 16, bb),                   # anywhere (may overlap)
        PAGE - bb * rng.randint(0, 3),                   # each column nearer a boundary
        PAGE + bb * rng.randint(1, 3),
        PAGE * rng.randint(1, 3) - bb * rng.randint(1, 4),
    ])
    offset = rng.choice([0, rng.randrange(0, PAGE, bb), PAGE - bb * rng.randint(1, 8),
                         PAGE - col_bytes % PAGE])
    mem_addr = (rng.randrange(1, 1 << 16) * PAGE + offset) % (1 << 30)
    lpc = -(-n // banks) + rng.choice([0, 0, 1, 5])
    sp_base = rng.randrange(0, (1 << LINE_BITS) - batch * lpc)
    return Transfer(store=store, mem_addr=mem_addr, stride=stride, n=n, batch=batch,
                    sp_base=sp_base, sp_lpc=lpc)


def _with_error(rng, t, width, resp):
    bursts = list(plan(t, width))
    k = rng.randrange(len(bursts))
    return dataclasses.replace(t, error=(k, resp, rng.randrange(bursts[k][3])))


def make_case(width, seed, kind, *, count=3, stall=None, max_n=600):
    rng = random.Random(f"{width}-{seed}-{kind}")
    banks = _banks(rng, width)
    stall = rng.choice([0.0, 0.3, 0.6]) if stall is None else stall
    if kind == "load":
        transfers = [_transfer(rng, width, banks, max_n=max_n) for _ in range(count)]
    elif kind == "store":
        transfers = [_transfer(rng, width, banks, store=True, max_n=max_n)
                     for _ in range(count)]
    elif kind == "mixed":          # loads and stores: data goes round trips
        transfers = [_transfer(rng, width, banks, store=rng.random() < 0.5, max_n=max_n)
                     for _ in range(count)]
    elif kind == "fetch":
        transfers = [Transfer(fetch=True, store=bool(rng.getrandbits(1)), n=16, batch=1,
                              mem_addr=rng.randrange(1, 1 << 16) * PAGE + rng.choice(
                                  [0, rng.randrange(0, PAGE, 64),
                                   PAGE - bb * rng.randint(1, COMMAND_BYTES // bb)]),
                              stride=rng.randrange(0, 1 << 12, width // 8))
                     for bb in [width // 8] for _ in range(count)]
    else:
        raise ValueError(kind)
    return Case(width, banks, seed, stall, tuple(transfers))


# --- tests ------------------------------------------------------------------------------------

def _check(case):
    got, want = rtl(case), ref(case)
    for index, (g, w) in enumerate(zip(got["transfers"], want["transfers"])):
        assert g == w, f"transfer {index}: {case.transfers[index]}"
    assert got == want


def _matrix_words(t, banks):
    """The scratchpad words of transfer ``t``'s matrix, column by column."""
    return [(t.sp_base + b * t.sp_lpc) * banks + e for b in range(t.batch) for e in range(t.n)]


def _column_bytes(t):
    """The memory bytes of transfer ``t``'s columns."""
    return {t.mem_addr + b * t.stride + i for b in range(t.batch) for i in range(4 * t.n)}


LOAD_STORE_CASES = [(1, 0.0), (2, 0.4), (3, 0.7)]       # (seed, stall)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed,stall", LOAD_STORE_CASES)
def test_load(width, seed, stall):
    """DMA_LOAD: the scratchpad words written, in order, are the memory's; lanes past n
    are masked, so each word of the matrix is written once and nothing outside it; memory
    is not written."""
    case = make_case(width, seed, "load", count=3, stall=stall)
    got = rtl(case)
    for t, res in zip(case.transfers, got["transfers"]):
        assert [word for word, _ in res["sp_writes"]] == _matrix_words(t, case.banks)
    assert got["memory"] == {}
    assert got == ref(case)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed,stall", LOAD_STORE_CASES)
def test_store(width, seed, stall):
    """DMA_STORE: the memory bytes written are exactly the matrix's columns (with the
    scratchpad's words); the last beat's strobes leave the bytes past n alone; the
    scratchpad is not written."""
    case = make_case(width, seed, "store", count=3, stall=stall)
    got = rtl(case)
    bb = width // 8
    written = set()
    for t, res in zip(case.transfers, got["transfers"]):
        assert res["sp_writes"] == []
        strobed = {addr + i for addr, strb in res["w_beats"] for i in range(bb) if strb >> i & 1}
        assert strobed == _column_bytes(t)
        written |= strobed
    assert set(got["memory"]) == written
    assert got == ref(case)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed,stall", [(3, 0.3), (4, 0.0)])
def test_load_store_round_trips(width, seed, stall):
    """Loads and stores mixed: stores write back what loads put in the scratchpad."""
    _check(make_case(width, seed, "mixed", count=5, stall=stall))


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed", range(10, 22))
def test_random_transfers_sweep(width, seed):
    """More random cases: loads and stores mixed, random stall rates."""
    _check(make_case(width, seed, "mixed", count=6))


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed", range(40, 44))
def test_long_columns(width, seed):
    """Columns of up to 4000 words: several bursts per column at every width."""
    case = make_case(width, seed, "mixed", count=4, max_n=4000)
    got = rtl(case)
    for t, res in zip(case.transfers, got["transfers"]):
        _check_burst_rules(t, res["bursts"], width)
    assert got == ref(case)


def _edge_transfers(width):
    """Strides and sizes at the edges: stride 0, columns ending/starting at 4 KiB
    boundaries, n a multiple of K +- 1, columns overlapping in memory or in the scratchpad."""
    K, bb = width // 32, width // 8
    base = 0x0012_3000
    return [
        Transfer(mem_addr=base + PAGE - bb, stride=0, n=2 * K + 1, batch=3, sp_base=7, sp_lpc=3),
        Transfer(mem_addr=base, stride=PAGE - bb, n=5 * K - 1, batch=4, sp_base=0, sp_lpc=2),
        Transfer(store=True, mem_addr=base + 2 * PAGE - 3 * bb, stride=PAGE + bb, n=7 * K,
                 batch=4, sp_base=1, sp_lpc=9),
        Transfer(store=True, mem_addr=base + 8 * PAGE, stride=bb, n=3 * K + 1, batch=3,
                 sp_base=40, sp_lpc=4),     # columns overlap in memory: the later ones win
        Transfer(store=True, mem_addr=base + 12 * PAGE + bb, stride=0, n=1, batch=2,
                 sp_base=3, sp_lpc=1),
        Transfer(mem_addr=base + 16 * PAGE, stride=2 * bb, n=4 * K, batch=3, sp_base=100,
                 sp_lpc=1),                 # columns overlap in the scratchpad
    ]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_edge_transfers(width, stall):
    """Hand-picked transfers at the edges (:func:`_edge_transfers`)."""
    _check(Case(width, max(4, width // 32), 5, stall, tuple(_edge_transfers(width))))


def _check_burst_rules(transfer, bursts, width):
    """The properties of the bursts alone (independently of ``plan``)."""
    K, bb = width // 32, width // 8
    col_beats = -(-transfer.n // K)
    expect_kind = "w" if transfer.store and not transfer.fetch else "r"
    column, at = 0, transfer.mem_addr
    for kind, addr, beats, size, burst in bursts:
        assert (kind, size, burst) == (expect_kind, exact_log2(bb), Burst.INCR)
        assert 1 <= beats <= 256
        assert addr // PAGE == (addr + beats * bb - 1) // PAGE, "burst crosses 4 KiB"
        assert addr == at, f"burst at {addr:#x}, expected {at:#x}"
        at += beats * bb
        if at == transfer.mem_addr + column * transfer.stride + col_beats * bb:
            column += 1
            at = transfer.mem_addr + column * transfer.stride
    assert column == (1 if transfer.fetch else transfer.batch), "columns not covered"


@pytest.mark.parametrize("width", WIDTHS)
def test_bursts(width):
    """Every burst is INCR of full beats, at most 256 beats, inside a 4 KiB page, and the
    bursts of a column cover it once, in order; columns of more than 256 beats are split."""
    K, bb = width // 32, width // 8
    base = 0x0040_0000
    transfers = [
        # 300 beats from a page start: 256 + 44 (for 128 bits, 256 beats are the page)
        Transfer(mem_addr=base, stride=0x10000, n=300 * K, batch=2, sp_lpc=300 * K // 8 + 1),
        # 600 words from 3 beats before a boundary
        Transfer(store=True, mem_addr=base + 5 * PAGE - 3 * bb, stride=PAGE - bb, n=600,
                 batch=2, sp_lpc=600 // 8 + 1),
        # 10 beats from 3 before a boundary: 3 + 7
        Transfer(mem_addr=base + 9 * PAGE - 3 * bb, n=10 * K, batch=1, sp_lpc=10),
    ]
    case = Case(width, 8, 7, 0.2, tuple(transfers))
    got = rtl(case)
    for t, res in zip(transfers, got["transfers"]):
        _check_burst_rules(t, res["bursts"], width)
    beats = [[b[2] for b in res["bursts"]] for res in got["transfers"]]
    assert beats[0] == [256, 44, 256, 44]
    assert beats[1] == {32: [3, 256, 256, 85, 4, 256, 256, 84], 64: [3, 256, 41, 4, 256, 40],
                        128: [3, 147, 4, 146]}[width]
    assert beats[2] == [3, 7]
    assert got == ref(case)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed", [1, 2])
def test_burst_rules_on_random_transfers(width, seed):
    """The burst rules of :func:`test_bursts` on random loads and stores, without stalls."""
    case = make_case(width, seed + 30, "mixed", count=3, stall=0.0)
    got = rtl(case)
    for t, res in zip(case.transfers, got["transfers"]):
        _check_burst_rules(t, res["bursts"], width)


@pytest.mark.parametrize("width", WIDTHS)
def test_fetch(width):
    """Fetch (n = 16, batch = 1): ``command`` is the 64 bytes at ``mem_addr`` (``store`` and
    ``mem_stride`` ignored); nothing is written to the scratchpad or memory."""
    case = make_case(width, 4, "fetch", count=4, stall=0.4)
    got = rtl(case)
    mem = Memory(case.seed)
    for t, res in zip(case.transfers, got["transfers"]):
        assert res["command"] == mem.read(t.mem_addr, COMMAND_BYTES)
        assert res["sp_writes"] == [] and res["w_beats"] == []
    assert got["memory"] == {}
    assert got == ref(case)


def _error_case(width, seed, resp, store):
    rng = random.Random(f"err-{width}-{seed}-{resp}-{store}")
    banks = _banks(rng, width)
    bad = _transfer(rng, width, banks, store=store, batch=rng.randint(2, 4))
    bad = _with_error(rng, bad, width, resp)
    good = _transfer(rng, width, banks, store=store)
    fetch = Transfer(fetch=True, n=16, mem_addr=0x8000 - width // 8)
    return Case(width, banks, seed, 0.3, (bad, good, _with_error(rng, fetch, width, resp),
                                          fetch))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("resp,store", [(Resp.SLVERR, False), (Resp.DECERR, True),
                                        (Resp.DECERR, False), (Resp.SLVERR, True)])
@pytest.mark.parametrize("seed", [1, 2])
def test_error_response(width, resp, store, seed):
    """An error response on one burst (at a random beat of a read burst; on BRESP of a
    write) completes that burst, ends the transfer with ``done`` and ``bus_error`` = 1,
    and leaves the engine idle; the next transfer works and clears ``bus_error``."""
    case = _error_case(width, seed, resp, store)
    got = rtl(case)
    assert [t["bus_error"] for t in got["transfers"]] == [1, 0, 1, 0]
    assert got == ref(case)


@pytest.mark.parametrize("store", [False, True])
def test_bus_error_is_valid_with_done(store):
    """``bus_error`` is valid in the cycle ``done`` pulses (the DmaEngine docstring; the
    accelerator's controller samples it then)."""
    resp = Resp.DECERR if store else Resp.SLVERR
    case = Case(32, 1, 1, 0.0, (Transfer(store=store, n=1, sp_lpc=1, error=(0, resp, 0)),
                                Transfer(store=store, n=1, sp_lpc=1)))
    at_done = []
    rtl(case, at_done=at_done)
    assert at_done == [1, 0]


@pytest.mark.parametrize("width", WIDTHS)
def test_beat_counts(width):
    """``read_beat``/``write_beat`` pulse exactly on the R/W handshakes (checked every cycle
    by the subordinate), so their counts are the beats transferred."""
    case = make_case(width, 6, "mixed", count=3, stall=0.5)
    got, want = rtl(case), ref(case)
    counts = [(t["read_beats"], t["write_beats"]) for t in got["transfers"]]
    assert counts == [(t["read_beats"], t["write_beats"]) for t in want["transfers"]]
    for t, (reads, writes) in zip(case.transfers, counts):
        beats = sum(b[3] for b in plan(t, width))
        assert (reads, writes) == ((0, beats) if t.store else (beats, 0))
