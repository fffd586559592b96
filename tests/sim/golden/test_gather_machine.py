"""``GATHER`` on the golden machine (``sim.golden.machine``): its values against a
reference written out element by element (NumPy's float32 adds where no subnormal or
overflow occurs, plain bit copies for one tap), its checks, its counters, and the cycle
model's closed form against its stepped reference (``sim.golden.core_counts``)."""

import numpy as np
import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.spec.isa import ErrorCode, Limits
from chrysalis.gen.spec.layout import bank_count
from chrysalis.sim.golden import core_counts
from chrysalis.sim.golden.gather import NO_ENTRY, gather
from chrysalis.sim.golden.machine import Machine
from chrysalis.gen.perf.commands import core_command

TINY = get_preset("tiny")
NEG_ZERO, NAN, POS_NAN = 0x8000_0000, 0xFFC0_0001, 0x7FC0_0000
_U = np.uint64


def _f32_bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32).astype(_U)


def _positive(word):
    return (word >> 31) == 0 and (word >> 23) & 0xFF != 0


def _reference(window, table, taps, n, batch, old=None):
    """The destination element by element: a bit copy for one tap, float32 adds in tap
    order for more (the values are normal, so NumPy's float32 is the core's adder)."""
    out = np.zeros((n, batch), dtype=_U)
    for b in range(batch):
        for r in range(n):
            words = []
            for t in range(taps):
                e = int(table[r * taps + t, b])
                words.append(int(window[e]) if e < len(window) else 0)
            if taps == 1:
                value = words[0]
            else:
                acc = np.array(words[0], dtype=np.uint32).view(np.float32)
                for w in words[1:]:
                    acc = np.float32(acc + np.array(w, dtype=np.uint32).view(np.float32))
                value = int(np.array(acc, dtype=np.float32).view(np.uint32))
            if old is not None and not _positive(int(old[r, b])):
                value = 0
            out[r, b] = value
    return out


def _setup(config, rng, taps, n, batch, words, specials=False, flag=0):
    """A machine with a random scratchpad and a GATHER command: window at line 0, table
    then destination after it. Returns ``(machine, command)``."""
    machine = Machine(config)
    S = bank_count(config.core.rows, config.core.cols)
    lines = config.core.scratchpad_words // S
    values = rng.uniform(-4, 4, config.core.scratchpad_words).astype(np.float32)
    machine.scratchpad[:] = _f32_bits(values)
    win_lpc = -(-words // S)
    t_lpc = -(-(taps * n) // S)
    d_lpc = -(-n // S)
    t_base = win_lpc + 1
    d_base = t_base + batch * t_lpc
    assert d_base + batch * d_lpc <= lines
    window = machine.scratchpad[:win_lpc * S]
    if specials:
        window[rng.integers(0, window.size, 6)] = [NEG_ZERO, NAN, POS_NAN, 0, NEG_ZERO, NAN]
    # Entries inside the window, past its words (the padding of its last line counts as
    # inside), and past it: NO_ENTRY and the first word past it.
    table = rng.integers(0, win_lpc * S, (taps * n, batch)).astype(_U)
    table[rng.random(table.shape) < 0.2] = NO_ENTRY
    table[rng.random(table.shape) < 0.05] = win_lpc * S
    machine.write_matrix(t_base, t_lpc, table)
    command = dict(op="GATHER", flag=flag, m=taps, n=n, batch=batch, sp_base=0,
                   sp_lpc=win_lpc, sp2_base=d_base, sp2_lpc=d_lpc, sp3_base=t_base,
                   sp3_lpc=t_lpc)
    return machine, command


@pytest.mark.parametrize("taps", [1, 2, 3, 4])
@pytest.mark.parametrize("flag", [0, 1])
def test_gather_matches_the_element_by_element_reference(taps, flag):
    rng = np.random.default_rng(100 * taps + flag)
    n, batch = 7, 3
    machine, command = _setup(TINY, rng, taps, n, batch, words=21, specials=taps == 1,
                              flag=flag)
    S = machine.banks
    window = machine.scratchpad[:command["sp_lpc"] * S].copy()
    table = machine.read_matrix(command["sp3_base"], command["sp3_lpc"], taps * n, batch)
    old = machine.read_matrix(command["sp2_base"], command["sp2_lpc"], n, batch)
    if flag:
        # Some old elements that are not positive: -0, +0, a negative number, NaN.
        old[:4, 0] = [NEG_ZERO, 0, int(_f32_bits([-1.5])[0]), NAN]
        machine.write_matrix(command["sp2_base"], command["sp2_lpc"], old)
    before = machine.scratchpad.copy()
    expected = _reference(window, table, taps, n, batch, old if flag else None)

    assert machine.execute(command) == ErrorCode.NONE
    got = machine.read_matrix(command["sp2_base"], command["sp2_lpc"], n, batch)
    assert np.array_equal(got, expected)
    # Nothing but the destination changed.
    dst = machine._addresses(command["sp2_base"], command["sp2_lpc"], n, batch).ravel()
    keep = np.ones(before.size, dtype=bool)
    keep[dst] = False
    assert np.array_equal(machine.scratchpad[keep], before[keep])
    if flag:
        assert not got[:4, 0].any(), "a non-positive old element must give +0"


def test_one_tap_copies_every_bit():
    """-0 and NaN are copied as they are; an entry past the window reads +0."""
    window = np.array([NEG_ZERO, NAN, POS_NAN, 0x3F80_0000], dtype=_U)
    table = np.array([[0, 1], [2, 3], [4, NO_ENTRY]], dtype=_U)
    assert gather(window, table, 1).tolist() == [[NEG_ZERO, NAN], [POS_NAN, 0x3F80_0000],
                                                 [0, 0]]


def test_the_sum_rounds_in_tap_order():
    """(a + b) + c differs from a + (b + c) here: the order is the taps'."""
    a, b, c = _f32_bits([1.0, 2.0 ** -24, 2.0 ** -24])
    window = np.array([a, b, c], dtype=_U)
    table = np.array([[0], [1], [2]], dtype=_U)
    in_order = np.float32(np.float32(1.0) + np.float32(2.0 ** -24)) + np.float32(2.0 ** -24)
    assert gather(window, table, 3)[0, 0] == _f32_bits([in_order])[0]
    assert in_order != np.float32(1.0) + np.float32(np.float32(2.0 ** -24) * 2)


def test_counters_are_the_cycle_models():
    rng = np.random.default_rng(5)
    machine, command = _setup(TINY, rng, 3, 5, 2, words=9)
    before = dict(machine.counters)
    assert machine.execute(command) == ErrorCode.NONE
    counts = core_counts.predict(TINY, command)
    grown = {k: machine.counters[k] - before[k] for k in machine.counters}
    assert grown["commands"] == 1
    assert grown["core_cycles"] == counts["cycles"] - 1
    assert grown["mac_slots"] == grown["bus_words"] == grown["update_slots"] == 0
    assert counts["cycles"] == core_counts.gather_cycles(2, 2, 3, 5, 2, False)


def _errors():
    limits = Limits.from_config(TINY)
    S, lines = limits.banks, limits.sp_lines
    ok = dict(op="GATHER", m=2, n=3, batch=2, sp_base=0, sp_lpc=4, sp2_base=10, sp2_lpc=2,
              sp3_base=20, sp3_lpc=3)
    return ok, {
        "ZERO_SIZE-m": ({**ok, "m": 0}, ErrorCode.ZERO_SIZE),
        "ZERO_SIZE-n": ({**ok, "n": 0}, ErrorCode.ZERO_SIZE),
        "ZERO_SIZE-batch": ({**ok, "batch": 0}, ErrorCode.ZERO_SIZE),
        "window-empty": ({**ok, "sp_lpc": 0}, ErrorCode.SCRATCHPAD_RANGE),
        "window-past": ({**ok, "sp_base": lines - 3}, ErrorCode.SCRATCHPAD_RANGE),
        "window-last-line": ({**ok, "sp_base": lines - 4}, ErrorCode.NONE),
        "dst-short": ({**ok, "sp2_lpc": 1}, ErrorCode.SCRATCHPAD_RANGE),
        "dst-past": ({**ok, "sp2_base": lines - 3}, ErrorCode.SCRATCHPAD_RANGE),
        "table-short": ({**ok, "sp3_lpc": 2}, ErrorCode.SCRATCHPAD_RANGE),
        "table-past": ({**ok, "sp3_base": lines - 5}, ErrorCode.SCRATCHPAD_RANGE),
        # A table column of more than 2**16 entries is refused as a lane access would be.
        "table-rows": ({**ok, "m": 0x4000, "n": 5, "batch": 1, "sp3_lpc": 0xA000 // S + 1},
                       ErrorCode.SCRATCHPAD_RANGE),
        "cores": ({**ok, "cores": 2}, ErrorCode.BAD_CORE),
    }


@pytest.mark.parametrize("case", sorted(_errors()[1]))
def test_checks_refuse_and_change_nothing(case):
    _ok, cases = _errors()
    command, code = cases[case]
    machine = Machine(TINY)
    machine.scratchpad[:] = np.arange(machine.scratchpad.size, dtype=_U) * 7
    before = machine.scratchpad.copy()
    assert machine.execute(command) == code
    if code != ErrorCode.NONE:
        assert np.array_equal(machine.scratchpad, before)
        assert machine.counters["commands"] == 0


def test_reserved_bits_are_refused():
    ok, _ = _errors()
    words = list(isa.encode(**ok))
    assert isa.check(isa.decode(words), Limits.from_config(TINY)) == ErrorCode.NONE
    words[0] |= 1 << 12
    assert isa.check(isa.decode(words), Limits.from_config(TINY)) == ErrorCode.RESERVED_BITS


@pytest.mark.parametrize("latency", [2, 3, 6, 8])
def test_closed_form_equals_the_stepped_model(latency):
    config = with_overrides(TINY, {"mac.latency": latency, "pe.acc_regs": 2 * (latency + 1)})
    for taps in (1, 2, 3, 5):
        for n in (1, 2, 3, 4, 7, 9):
            for batch in (1, 3):
                for flag in (0, 1):
                    command = dict(op="GATHER", m=taps, n=n, batch=batch, flag=flag)
                    exact = core_counts.predict(config, command)
                    assert exact == core_counts.trace(config, command), command
                    model = core_command(config, "GATHER", m=taps, n=n, batch=batch,
                                         mask=bool(flag))
                    assert model["cycles"] == exact["cycles"], command


def test_cycles_by_hand():
    # A sum at L = 6 (groups of 7) on W = 4 lanes: n = 9 -> groups of 7 and 2; 9 taps in
    # chunks of 4, 4, 1 (two interleaved rounds of 14 cycles); the mask: 2 and 1 reads.
    assert core_counts.gather_group(6) == 7
    group = lambda count, mask: mask * -(-count // 4) + count + 1 + 9 * 7 + 2 * 7
    assert core_counts.gather_cycles(6, 4, 9, 9, 1, False) == \
        group(7, 0) + group(2, 0) + 6 + 5
    assert core_counts.gather_cycles(6, 4, 9, 9, 2, True) == \
        2 * (group(7, 1) + group(2, 1)) + 6 + 5
    # Two taps at L = 2 (groups of 3): one chunk, no interleaved round.
    assert core_counts.gather_cycles(2, 2, 2, 2, 1, False) == 2 + 1 + 2 * 3 + 2 + 5
    # A copy on W = 4 lanes, n = 7 (blocks of 4 and 3), two columns: 14 window reads, the
    # first block's entries and a cycle, then one read (two with the mask) per block.
    assert core_counts.gather_cycles(6, 4, 1, 7, 2, False) == 2 + 14 + 3 + 6 + 5
    assert core_counts.gather_cycles(6, 4, 1, 7, 2, True) == 2 + 14 + 6 + 6 + 5


def test_a_cluster_runs_gather_on_the_cores_of_its_mask():
    """On a cluster, GATHER is a core command: core 1 alone runs it with ``cores = 0b10``,
    every core with ``cores = 0``, each on its own scratchpad."""
    from chrysalis.sim.golden.cluster_machine import ClusterMachine
    config = with_overrides(TINY, {"cluster.cores": 2})
    rng = np.random.default_rng(9)
    single, command = _setup(TINY, rng, 2, 5, 2, words=11, flag=1)
    cluster = ClusterMachine(config)
    for core in cluster.cores:
        core.scratchpad[:] = single.scratchpad
    before = single.scratchpad.copy()
    assert single.execute(command) == ErrorCode.NONE
    assert cluster.execute({**command, "cores": 0b10}) == ErrorCode.NONE
    assert np.array_equal(cluster.cores[0].scratchpad, before)
    assert np.array_equal(cluster.cores[1].scratchpad, single.scratchpad)
    assert cluster.execute(command) == ErrorCode.NONE
    assert not np.array_equal(cluster.cores[0].scratchpad, before)
    assert cluster.counters["commands"] == 2
