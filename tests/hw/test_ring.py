# amaranth: UnusedElaboratable=no
"""The ring engine: every collective, RTL == ``sim.golden.ring`` bit for bit and cycle for cycle.

``rtl(...)`` wires ``c`` scratchpads to a ``hw.ring.RingEngine``, fills them with random
fp32 words through the host ports, runs the commands back to back and reads every word of
every scratchpad after each; ``ref(...)`` applies ``sim.golden.ring.execute`` to the same images.
The counters' growth per command is checked against ``sim.golden.ring.cycles`` and
``sim.golden.ring.link_words_moved``.
"""

import itertools

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module

from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.spec.isa import Opcode
from chrysalis.hw.ring import RingEngine, ScratchpadPort
from chrysalis.hw.scratchpad import Scratchpad
from chrysalis.sim.golden import numerics as nx
from chrysalis.gen.spec.ring import link_words
from chrysalis.sim.golden import ring
from chrysalis.sim.verify.shared_sim import shared_simulation

OPS = (Opcode.BROADCAST, Opcode.REDUCE, Opcode.ALL_GATHER, Opcode.REDUCE_SCATTER,
       Opcode.ALL_REDUCE, Opcode.SEND)
MAX_N, MAX_BATCH = 9, 3


def _config(cores, link_width, hop_latency):
    return with_overrides(get_preset("tiny"), {"cluster.cores": cores,
                                               "cluster.link_width": link_width,
                                               "cluster.hop_latency": hop_latency})


def _words(rng, size):
    """Random fp32 bit patterns: zeros of both signs, and normal values of both signs over a
    range of exponents (their sums round)."""
    values = (rng.standard_normal(size) * 2.0 ** rng.integers(-12, 13, size)).astype(np.float32)
    bits = nx.from_float32(values)
    kind = rng.integers(0, 12, size)
    bits = np.where(kind == 0, 0, bits)
    bits = np.where(kind == 1, 0x80000000, bits)
    return bits.astype(np.uint64)


def _rows(op, cores, n):
    """Rows of the source and the destination matrix."""
    return (cores * n if op == Opcode.REDUCE_SCATTER else n,
            cores * n if op == Opcode.ALL_GATHER else n)


def _depth(cores, banks):
    """Scratchpad lines enough for any command of the tests (with padding and gaps)."""
    lines = -(-cores * MAX_N // banks) + 1
    return MAX_BATCH * lines + MAX_BATCH * (-(-MAX_N // banks) + 1) + 3


def _command(rng, op, cores, banks, depth, n=None, batch=None):
    """A random command: n, batch (unless given), root, peer, and disjoint matrices at
    random lines."""
    n = int(rng.integers(1, MAX_N + 1)) if n is None else n
    batch = int(rng.integers(1, MAX_BATCH + 1)) if batch is None else batch
    root = int(rng.integers(0, cores))
    peer = (root + int(rng.integers(1, cores))) % cores
    src_rows, dst_rows = _rows(op, cores, n)
    sp_lpc = -(-src_rows // banks) + int(rng.integers(0, 2))
    sp2_lpc = -(-dst_rows // banks) + int(rng.integers(0, 2))
    spans = [sp_lpc * batch, sp2_lpc * batch]
    free = depth - sum(spans)
    cut = sorted(int(x) for x in rng.integers(0, free + 1, 2))
    first, second = (0, 1) if rng.integers(0, 2) else (1, 0)
    bases = [0, 0]
    bases[first] = cut[0]
    bases[second] = cut[0] + spans[first] + cut[1] - cut[0]
    # flag: the in-place ALL_GATHER; every other collective must ignore it.
    flag = int(rng.integers(0, 2))
    return dict(op=op, flag=flag, n=n, batch=batch, root=root, peer=peer, sp_base=bases[0],
                sp_lpc=sp_lpc, sp2_base=bases[1], sp2_lpc=sp2_lpc)


def _addresses(base, lpc, rows, batch, banks):
    return np.array([[(base + b * lpc) * banks + e for b in range(batch)]
                     for e in range(rows)], dtype=np.int64).reshape(rows, batch)


def ref(images, commands, cores, banks):
    """The images after each command, by ``sim.golden.ring.execute``."""
    images = [image.copy() for image in images]
    out = []
    for cmd in commands:
        src_rows, dst_rows = _rows(cmd["op"], cores, cmd["n"])
        src = _addresses(cmd["sp_base"], cmd["sp_lpc"], src_rows, cmd["batch"], banks)
        dst = _addresses(cmd["sp2_base"], cmd["sp2_lpc"], dst_rows, cmd["batch"], banks)
        if cmd["n"] == 0:       # nothing to move (and the ISA rejects it)
            out.append([image.copy() for image in images])
            continue
        sources = [image[src] for image in images]
        destinations = [image[dst] for image in images]
        ring.execute(cmd["op"], sources, destinations, cmd["n"], root=cmd["root"],
                     peer=cmd["peer"], in_place=ring.in_place(cmd["op"], cmd))
        for image, matrix in zip(images, destinations):
            image[dst] = matrix
        out.append([image.copy() for image in images])
    return out


class _Cluster(Elaboratable):
    """A ring engine and the cores' scratchpads on its ports."""

    def __init__(self, config, words, banks):
        nr = link_words(config)
        self.scratchpads = [Scratchpad(words=words, banks=banks, lanes=nr)
                            for _ in range(config.cluster.cores)]
        self.engine = RingEngine(config, self.scratchpads[0].line_bits)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = self.engine
        for k, pad in enumerate(self.scratchpads):
            m.submodules[f"scratchpad{k}"] = pad
            port = self.engine.ports[k]
            for name in ("rd_en", "rd_e0", "rd_line", "rd_lanes",
                         "wr_en", "wr_e0", "wr_line", "wr_lanes"):
                m.d.comb += getattr(pad, name).eq(getattr(port, name))
            for lane in range(len(port.rd_data)):
                m.d.comb += [port.rd_data[lane].eq(pad.rd_data[lane]),
                             pad.wr_data[lane].eq(port.wr_data[lane])]
        return m


def rtl(config, images, commands, banks, back_to_back):
    """The images after each command (None for a command followed back to back by the
    next one: not read), and each command's growth of ``ring_cycles`` and ``ring_words``
    and its cycles from ``start`` to ``done``, from the RTL."""
    words = len(images[0])
    # One compiled simulation per ring in this worker (sim.verify.shared_sim).
    shared = shared_simulation((_Cluster, config.to_toml(), words, banks),
                               lambda: _Cluster(config, words, banks), clocks=((1e-6, "sync"),))
    dut = shared.dut
    engine, pads = dut.engine, dut.scratchpads
    out, counts = [], []

    async def testbench(ctx):
        for addr in range(words):
            for pad, image in zip(pads, images):
                ctx.set(pad.host_addr, addr)
                ctx.set(pad.host_wdata, int(image[addr]))
                ctx.set(pad.host_we, 1)
            await ctx.tick()
        for pad in pads:
            ctx.set(pad.host_we, 0)
        assert ctx.get(engine.ring_cycles) == 0 and ctx.get(engine.ring_words) == 0
        for i, cmd in enumerate(commands):
            before = ctx.get(engine.ring_cycles), ctx.get(engine.ring_words)
            for name, value in cmd.items():
                ctx.set(getattr(engine, name), int(value))
            ctx.set(engine.start, 1)
            await ctx.tick()
            ctx.set(engine.start, 0)
            elapsed = 1
            while not ctx.get(engine.done):
                assert ctx.get(engine.busy)
                await ctx.tick()
                elapsed += 1
            assert not ctx.get(engine.busy)
            counts.append((ctx.get(engine.ring_cycles) - before[0],
                           ctx.get(engine.ring_words) - before[1], elapsed))
            # A back-to-back command starts in the cycle of the previous one's done.
            if i + 1 < len(commands) and back_to_back[i + 1]:
                out.append(None)
                continue
            await ctx.tick()
            assert not ctx.get(engine.done)
            image_now = [np.zeros(words, dtype=np.uint64) for _ in pads]
            for pad in pads:
                ctx.set(pad.host_re, 1)
            for addr in range(words):
                for pad in pads:
                    ctx.set(pad.host_addr, addr)
                await ctx.tick()
                for pad, image in zip(pads, image_now):
                    image[addr] = ctx.get(pad.host_rdata)
            for pad in pads:
                ctx.set(pad.host_re, 0)
            out.append(image_now)

    shared.run(testbench)
    return out, counts


def _run(config, banks, commands, back_to_back, seed):
    cores = config.cluster.cores
    rng = np.random.default_rng(seed)
    words = _depth(cores, banks) * banks
    images = [_words(rng, words) for _ in range(cores)]
    expected = ref(images, commands, cores, banks)
    got, counts = rtl(config, images, commands, banks, back_to_back)
    for cmd, want, have, (cycles, moved, elapsed) in zip(commands, expected, got, counts):
        args = dict(root=cmd["root"], peer=cmd["peer"], in_place=ring.in_place(cmd["op"], cmd))
        assert (cycles, moved) == (
            ring.cycles(cmd["op"], config, cmd["n"], cmd["batch"], **args),
            ring.link_words_moved(cmd["op"], config, cmd["n"], cmd["batch"], **args)), cmd
        assert elapsed == cycles + 1, cmd
        if have is not None:
            for k in range(cores):
                bad = np.flatnonzero(want[k] != have[k])
                assert bad.size == 0, (cmd, k, bad[:8], want[k][bad[:8]], have[k][bad[:8]])


def _commands(rng, cores, banks, per_op):
    """``per_op`` random commands of every collective, shuffled; about a third of them
    start back to back with the previous one."""
    depth = _depth(cores, banks)
    commands = [_command(rng, op, cores, banks, depth) for op in OPS for _ in range(per_op)]
    order = rng.permutation(len(commands))
    commands = [commands[i] for i in order]
    back_to_back = [False, True] + [bool(rng.integers(0, 3) == 0) for _ in commands[2:]]
    return commands, back_to_back


CONFIGS = list(itertools.product((2, 3, 4), (32, 64), (1, 2)))


@pytest.mark.parametrize("cores,link_width,hop_latency", CONFIGS)
def test_collectives_equal_golden(cores, link_width, hop_latency):
    config = _config(cores, link_width, hop_latency)
    seed = cores * 100 + link_width + hop_latency
    rng = np.random.default_rng(seed)
    banks = 2 if (cores + hop_latency) % 2 else 4
    commands, back_to_back = _commands(rng, cores, banks, per_op=2)
    _run(config, banks, commands, back_to_back, seed)


@pytest.mark.parametrize("cores", [3, 4])
def test_edge_sizes(cores):
    """Chunks of ALL_REDUCE that are short or empty (n < cores, n = cores + 1), beats
    that fill every lane or one, a lone column; and sizes of zero, which move nothing but
    still take ``sim.golden.ring.cycles``."""
    config = _config(cores, 64, 1)
    banks = 4
    rng = np.random.default_rng(cores)
    depth = _depth(cores, banks)
    commands = []
    for op, n, batch in [(Opcode.ALL_REDUCE, 1, 2), (Opcode.ALL_REDUCE, cores - 1, 1),
                         (Opcode.ALL_REDUCE, cores + 1, 3), (Opcode.ALL_REDUCE, 2 * cores, 1),
                         (Opcode.REDUCE_SCATTER, 1, 1), (Opcode.ALL_GATHER, 2, 2),
                         (Opcode.SEND, 1, 1), (Opcode.ALL_REDUCE, 0, 2),
                         (Opcode.BROADCAST, 3, 0), (Opcode.ALL_GATHER, 0, 1)]:
        commands.append(_command(rng, op, cores, banks, depth, n, batch))
    _run(config, banks, commands, [False] * len(commands), cores)


def test_not_a_collective_does_nothing():
    config = _config(2, 32, 1)
    rng = np.random.default_rng(5)
    banks = 2
    images = [_words(rng, _depth(2, banks) * banks) for _ in range(2)]
    command = dict(_command(rng, Opcode.BROADCAST, 2, banks, _depth(2, banks)),
                   op=Opcode.FORWARD)
    (image,), ((cycles, moved, elapsed),) = rtl(config, images, [command], banks, [False])
    assert (cycles, moved, elapsed) == (0, 0, 1)
    assert all(np.array_equal(a, b) for a, b in zip(image, images))


@pytest.mark.slow
@pytest.mark.parametrize("cores,link_width,hop_latency",
                         list(itertools.product((2, 3, 5, 8), (32, 64, 128), (1, 3))))
def test_collectives_equal_golden_sweep(cores, link_width, hop_latency):
    config = _config(cores, link_width, hop_latency)
    seed = 7 + cores * 1000 + link_width * 10 + hop_latency
    rng = np.random.default_rng(seed)
    banks = max(4, link_width // 32)
    commands, back_to_back = _commands(rng, cores, banks, per_op=5)
    _run(config, banks, commands, back_to_back, seed)


@pytest.mark.parametrize("overrides,field,value", [
    ({"cluster.cores": 1}, "cluster.cores", 1),
    ({"cluster.cores": 17}, "cluster.cores", 17),
    ({"cluster.cores": 4, "cluster.ring": "bidirectional"}, "cluster.ring", "'bidirectional'"),
    ({"cluster.cores": 4, "cluster.link_width": 16}, "cluster.link_width", 16),
])
def test_bad_config(overrides, field, value):
    config = with_overrides(get_preset("tiny"), overrides)
    with pytest.raises(ValueError, match=rf"^{field} .*, not {value}$"):
        RingEngine(config, 6)


@pytest.mark.parametrize("line_bits", [0, -1, 2.5, True])
def test_bad_line_bits(line_bits):
    with pytest.raises(ValueError, match=rf"^line_bits .*, not {line_bits!r}$"):
        RingEngine(_config(2, 32, 1), line_bits)


def test_port_signature():
    port = ScratchpadPort(2, 7)
    assert port.members["rd_line"].shape == 7
    assert len(port.members["wr_data"].dimensions) == 1
    engine = RingEngine(_config(3, 64, 2), 7)
    assert len(engine.ports) == 3
    assert len(engine.ports[0].rd_data) == 2
