"""The collectives of ``sim.golden.ring``: their values against NumPy, their order of additions,
and their cycle formulas."""

import numpy as np
import pytest

from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.spec.isa import COLLECTIVES, Opcode
from chrysalis.gen.spec import ring as spec_ring
from chrysalis.sim.golden import ring

O = Opcode


def _bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)


def _floats(bits):
    return np.asarray(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)


def _config(cores, link_width=32, hop=1):
    return with_overrides(get_preset("tiny"), {"cluster.cores": cores,
                                                "cluster.link_width": link_width,
                                                "cluster.hop_latency": hop})


def _chain_sum(parts, order):
    """fp32 sum of ``parts[k]`` in ``order``, one rounding per addition (NumPy float32)."""
    total = _floats(parts[order[0]]).copy()
    for k in order[1:]:
        total = (total + _floats(parts[k])).astype(np.float32)
    return total


def _run(op, sources, dst_rows, n, **kw):
    destinations = [np.full((dst_rows, s.shape[1]), 0xDEAD, dtype=np.uint64) for s in sources]
    ring.execute(op, sources, destinations, n, **kw)
    return destinations


CASES = [(c, n, batch) for c in (2, 3, 4) for n, batch in ((1, 1), (3, 2), (5, 3), (8, 2))]


def _random(rng, shape):
    # Mixed magnitudes and signs, so that the order of the additions shows in the bits.
    values = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    values[rng.random(shape) < 0.1] = 0.0
    return _bits(values)


@pytest.mark.parametrize("c, n, batch", CASES)
def test_reductions_add_along_their_chains(c, n, batch):
    """REDUCE, REDUCE_SCATTER and ALL_REDUCE: NumPy float32 sums in the documented order
    (exact: each addition is one float32 rounding, as sim.golden.numerics.fadd, no subnormals)."""
    rng = np.random.default_rng(c * 100 + n)
    full = [_random(rng, (c * n, batch)) for _ in range(c)]
    own = [x[:n].copy() for x in full]
    for root in range(c):
        out = _run(O.REDUCE, own, n, n, root=root)
        order = [(root + 1 + i) % c for i in range(c)]
        assert (_floats(out[root]) == _chain_sum(own, order)).all()
        assert all((out[k] == 0xDEAD).all() for k in range(c) if k != root)
    out = _run(O.REDUCE_SCATTER, full, n, n)
    for k in range(c):
        order = [(k + 1 + i) % c for i in range(c)]
        assert (_floats(out[k]) == _chain_sum([x[k * n:(k + 1) * n] for x in full],
                                              order)).all()
    out = _run(O.ALL_REDUCE, own, n, n)
    q = -(-n // c)
    for j in range(c):
        rows = slice(j * q, min(n, (j + 1) * q))
        order = [(j + 1 + i) % c for i in range(c)]
        expected = _chain_sum([x[rows] for x in own], order)
        for k in range(c):
            assert (_floats(out[k][rows]) == expected).all()


def test_the_chain_order_shows_in_the_bits():
    """A case where two groupings differ: the chain from core root + 1 is the one used."""
    big, small = np.float32(2.0 ** 24), np.float32(1.0)
    own = [_bits([[big]]), _bits([[small]]), _bits([[small]])]
    out = _run(O.REDUCE, own, 1, 1, root=0)        # (x1 + x2) + x0 = 2 + 2^24
    assert _floats(out[0])[0, 0] == np.float32(2.0 ** 24 + 2)
    out = _run(O.REDUCE, own, 1, 1, root=2)        # (x0 + x1) + x2 = 2^24 (each 1 lost)
    assert _floats(out[2])[0, 0] == np.float32(2.0 ** 24)
    assert ring.chain_order(O.REDUCE, 3, 1, root=2) == [(2, 0, 1, [0, 1, 2])]


@pytest.mark.parametrize("c, n, batch", CASES)
def test_moves_copy_exactly(c, n, batch):
    rng = np.random.default_rng(c + n)
    own = [_random(rng, (n, batch)) for _ in range(c)]
    out = _run(O.ALL_GATHER, own, c * n, n)
    for k in range(c):
        assert (out[k] == np.concatenate(own)).all()
    for root in range(c):
        out = _run(O.BROADCAST, own, n, n, root=root)
        for k in range(c):
            assert (out[k] == (0xDEAD if k == root else own[root])).all()
        for peer in range(c):
            if peer != root:
                out = _run(O.SEND, own, n, n, root=root, peer=peer)
                for k in range(c):
                    assert (out[k] == (own[root] if k == peer else 0xDEAD)).all()


@pytest.mark.parametrize("c, n, batch", CASES)
def test_in_place_all_gather(c, n, batch):
    """The in-place ALL_GATHER (flag): the own chunk already sits in its rows of sp2; the
    result is the gathered matrix, sp is not read, and the copy phase is gone."""
    rng = np.random.default_rng(c * 7 + n)
    own = [_random(rng, (n, batch)) for _ in range(c)]
    destinations = [np.full((c * n, batch), 0xDEAD, dtype=np.uint64) for _ in range(c)]
    for k in range(c):
        destinations[k][k * n:(k + 1) * n] = own[k]
    junk = [np.full((n, batch), 0xBAD, dtype=np.uint64) for _ in range(c)]
    ring.execute(O.ALL_GATHER, junk, destinations, n, in_place=True)
    for k in range(c):
        assert (destinations[k] == np.concatenate(own)).all()
    config = _config(c)
    plain = ring.cycles(O.ALL_GATHER, config, n, batch)
    fast = ring.cycles(O.ALL_GATHER, config, n, batch, in_place=True)
    # The copy's share: the steps start as soon as it has read its beats.
    copy = max(batch * n, spec_ring.RING_ADD_LATENCY + 3)
    assert plain - fast == copy
    assert ring.link_words_moved(O.ALL_GATHER, config, n, batch, in_place=True) == \
        ring.link_words_moved(O.ALL_GATHER, config, n, batch)
    assert ring.in_place(O.ALL_GATHER, {"flag": 1})
    assert not ring.in_place(O.ALL_GATHER, {"flag": 0})
    assert not ring.in_place(O.ALL_REDUCE, {"flag": 1})
    assert ring.cycles(O.ALL_REDUCE, config, n, batch, in_place=True) == \
        ring.cycles(O.ALL_REDUCE, config, n, batch)


def test_phases_never_read_what_they_write():
    """Every phase reads the state before it (the RTL ends a phase after its last write)."""
    for c in (2, 3, 4):
        for op in COLLECTIVES:
            for n in (1, 4, 7):
                for phase in ring.schedule(op, c, n, root=c - 1, peer=0):
                    for role in phase.roles:
                        if role.read == "sp2" and role.write and role.rows:
                            read = set(range(role.read_row, role.read_row + role.rows))
                            written = set(range(role.write_row,
                                                role.write_row + role.write_rows))
                            assert not read & written


def _beat_elements(row, rows, batch, nr):
    """The ``(column, element)`` pairs of each beat of a region, in the order sent."""
    return [[(b, e) for e in range(first, min(row + rows, first + nr))]
            for b in range(batch) for first in range(row, row + rows, nr)]


def _occupancy(op, config, n, batch, **kw):
    """Every read and write of a collective's phases at their cycles (phase_starts): the
    checks of phase_advance's docstring."""
    c, nr = config.cluster.cores, config.cluster.link_width // 32
    hop, add = spec_ring.hop_cycles(config), spec_ring.RING_ADD_LATENCY
    phases = ring.schedule(op, c, n, **kw)
    starts = ring.phase_starts(phases, batch, config)
    reads, writes = {}, {}                  # (core, cycle) -> (phase, elements, matrix)
    for i, (phase, start) in enumerate(zip(phases, starts)):
        for k, r in enumerate(phase.roles):
            if r.rows:
                for w, elems in enumerate(_beat_elements(r.read_row, r.rows, batch, nr)):
                    key = (k, start + 1 + r.position * hop + w)
                    assert key not in reads, ("read port or link twice", op, n, batch, key)
                    reads[key] = (i, elems, r.read if r.read else "link")
            if r.write and r.write_rows:
                for w, elems in enumerate(_beat_elements(r.write_row, r.write_rows, batch, nr)):
                    key = (k, start + 2 + add + r.write_position * hop + w)
                    assert key not in writes, ("write port twice", op, n, batch, key)
                    writes[key] = (i, elems)
    return phases, starts, reads, writes


@pytest.mark.parametrize("c", [2, 3, 4, 5])
@pytest.mark.parametrize("link_width, hop", [(32, 1), (64, 2), (128, 3)])
def test_overlapped_phases_are_safe(c, link_width, hop):
    """The phases overlap (phase_advance): no port or link serves two beats in a cycle,
    every read of sp2 sees the writes of the phases before it and none of its own or
    later ones, and the command's cycles cover every phase."""
    config = _config(c, link_width, hop)
    for op in (O.ALL_GATHER, O.REDUCE_SCATTER, O.ALL_REDUCE):
        for in_place in (False, True):
            for n in (1, 2, c - 1, c, c + 1, 5, 16):
                for batch in (0, 1, 3, 4):
                    phases, starts, reads, writes = _occupancy(op, config, n, batch,
                                                               in_place=in_place)
                    written = {}
                    for (k, cycle), (i, elems) in writes.items():
                        for b, e in elems:
                            written.setdefault((k, b, e), []).append((cycle, i))
                    for (k, cycle), (i, elems, matrix) in reads.items():
                        if matrix != "sp2":
                            continue
                        for b, e in elems:
                            for when, j in written.get((k, b, e), []):
                                assert (when < cycle) == (j < i), (op, n, batch, k, b, e)
                                assert when != cycle
                    end = max(s + ring.phase_cycles(p, batch, config)
                              for s, p in zip(starts, phases))
                    assert ring.cycles(op, config, n, batch, in_place=in_place) == end


@pytest.mark.parametrize("c", [2, 3, 4])
@pytest.mark.parametrize("link_width, hop", [(32, 1), (64, 2), (128, 3)])
def test_cycle_formulas(c, link_width, hop):
    """The closed forms of the module docstring."""
    config = _config(c, link_width, hop)
    nr, h = link_width // 32, hop + spec_ring.RING_ADD_LATENCY
    extra = spec_ring.RING_ADD_LATENCY + spec_ring.PHASE_OVERHEAD
    for n, batch in ((1, 1), (5, 3), (16, 4)):
        L = batch * -(-n // nr)

        def P(d, beats=L):
            return beats + d * h + extra

        assert ring.cycles(O.BROADCAST, config, n, batch) == P(c - 1)
        assert ring.cycles(O.REDUCE, config, n, batch, root=1) == P(c - 1)
        for peer in range(1, c):
            assert ring.cycles(O.SEND, config, n, batch, peer=peer) == P(peer)
        # The phases overlap (ring.phase_advance): each starts once the one before has
        # read its beats (shifted by the hops its cores read later) and started its walkers.
        step = max(L, h + extra + 1)
        assert ring.cycles(O.ALL_GATHER, config, n, batch) == \
            max(L, extra + 1) + (c - 2) * step + P(1)
        assert ring.cycles(O.ALL_GATHER, config, n, batch, in_place=True) == \
            (c - 2) * step + P(1)
        assert ring.cycles(O.REDUCE_SCATTER, config, n, batch) == \
            (c - 1) * max(L + h, (c - 1) * h + extra + 1) + P(c - 1)
        # ALL_REDUCE: a chain per non-empty chunk of ceil(n / c) rows (the last ones
        # shorter), then c - 1 all-gather steps as long as the longest chunk.
        q = -(-n // c)
        beats = [batch * -(-r // nr) for r in
                 (min(n, (j + 1) * q) - min(n, j * q) for j in range(c)) if r]
        Lq = batch * -(-q // nr)
        chains = sum(max(b + h, (c - 1) * h + extra + 1) for b in beats[:-1])
        to_gather = (c - 1) * h + max(beats[-1], extra + 1)
        assert ring.cycles(O.ALL_REDUCE, config, n, batch) == \
            chains + to_gather + (c - 2) * max(Lq, h + extra + 1) + P(1, Lq)


def test_all_gather_moves_caterpillars_words():
    """Ring all-gather: each link carries (c - 1) chunks, (n b c - n b c / c) / nr beats for
    a gathered matrix of n c rows (CATERPILLAR), and the words over all the links."""
    for c in (2, 3, 4):
        config = _config(c, 64)
        n, batch = 6, 3
        assert ring.link_words_moved(O.ALL_GATHER, config, n, batch) == c * (c - 1) * n * batch
        assert ring.link_words_moved(O.BROADCAST, config, n, batch) == (c - 1) * n * batch
        assert ring.link_words_moved(O.REDUCE_SCATTER, config, n, batch) == \
            c * (c - 1) * n * batch


def test_schedule_refuses_bad_input():
    with pytest.raises(ValueError, match="collective"):
        ring.schedule(O.FORWARD, 2, 4)
    with pytest.raises(ValueError, match="at least 2 cores, not 1"):
        ring.schedule(O.ALL_REDUCE, 1, 4)


def test_empty_collectives_change_nothing():
    """n = 0 (which the command check refuses anyway) moves no word."""
    for op in COLLECTIVES:
        destinations = [np.full((0, 2), 7, dtype=np.uint64) for _ in range(3)]
        ring.execute(op, [np.zeros((0, 2), dtype=np.uint64)] * 3, destinations, 0, peer=1)
        assert all(d.shape == (0, 2) for d in destinations)
