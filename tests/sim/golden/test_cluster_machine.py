"""The golden model of a cluster (``sim.golden.cluster_machine``): core masks, DMA fan-out, the
BAD_CORE checks, collectives on scratchpads, and counters; every result against a
reference built from the one-core :class:`sim.golden.machine.Machine` and :mod:`sim.golden.ring`."""

import numpy as np
import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.gen.spec.isa import ErrorCode, Opcode
from chrysalis.sim.golden import ring
from chrysalis.sim.golden.cluster_machine import ClusterMachine, machine_for
from chrysalis.sim.golden.machine import Machine

TINY = get_preset("tiny")


def _cluster(cores, **overrides):
    return with_overrides(TINY, {"cluster.cores": cores, **overrides})


def _random_scratchpads(machine, seed):
    rng = np.random.default_rng(seed)
    for core in machine.cores:
        values = rng.standard_normal(core.scratchpad.shape).astype(np.float32)
        core.scratchpad[:] = values.view(np.uint32)


def test_machine_for_picks_the_model_and_machine_refuses_a_cluster():
    assert isinstance(machine_for(TINY), Machine)
    assert isinstance(machine_for(_cluster(3)), ClusterMachine)
    with pytest.raises(ValueError, match="cluster.cores is 3"):
        Machine(_cluster(3))
    with pytest.raises(ValueError, match="between 2 and 16 .*, not 1"):
        ClusterMachine(TINY)


def _state(machine):
    return [(c.scratchpad.copy(), c.weight.copy(), c.act.copy()) for c in machine.cores]


def _same(a, b):
    return all((x == y).all() for sa, sb in zip(a, b) for x, y in zip(sa, sb))


GOOD_FORWARD = dict(op="FORWARD", m=2, n=2, batch=1, sp_lpc=1)
BAD_CORE_CASES = {
    "mask past the last core": dict(GOOD_FORWARD, cores=0b1000),
    "root past the last core": dict(op="BROADCAST", root=3, n=2, batch=1, sp_lpc=1,
                                    sp2_base=8, sp2_lpc=1),
    "peer past the last core": dict(op="SEND", root=0, peer=3, n=2, batch=1, sp_lpc=1,
                                    sp2_base=8, sp2_lpc=1),
    "send to itself": dict(op="SEND", root=1, peer=1, n=2, batch=1, sp_lpc=1, sp2_base=8,
                           sp2_lpc=1),
    "store from two cores": dict(op="DMA_STORE", cores=0b011, n=2, batch=1, sp_lpc=1,
                                 mem_addr=0),
}


@pytest.mark.parametrize("case", sorted(BAD_CORE_CASES))
def test_bad_core_halts_and_changes_nothing(case):
    machine = ClusterMachine(_cluster(3))
    _random_scratchpads(machine, 1)
    before = _state(machine)
    memory = np.zeros(64, dtype=np.uint32)
    assert machine.execute(BAD_CORE_CASES[case], memory) == ErrorCode.BAD_CORE
    assert _same(before, _state(machine))
    assert not memory.any()
    assert machine.counters["commands"] == 0


def test_one_core_refuses_collectives_and_other_cores():
    machine = Machine(TINY)
    assert machine.execute(dict(op="ALL_REDUCE", n=2, batch=1, sp_lpc=1, sp2_base=8,
                                sp2_lpc=1)) == ErrorCode.BAD_CORE
    assert machine.execute(dict(GOOD_FORWARD, cores=0b10)) == ErrorCode.BAD_CORE
    assert machine.execute(dict(GOOD_FORWARD, cores=0b1)) == ErrorCode.NONE
    # The other checks come first: a collective out of range is SCRATCHPAD_RANGE.
    assert machine.execute(dict(op="ALL_REDUCE", n=9, batch=1, sp_lpc=1, sp2_base=8,
                                sp2_lpc=1)) == ErrorCode.SCRATCHPAD_RANGE


def test_core_commands_run_on_their_mask_only():
    """A FORWARD on mask 0b101 changes cores 0 and 2 as a one-core machine would, core 1
    not at all; the core counters are the sum over the cores that ran it."""
    cluster = ClusterMachine(_cluster(3))
    _random_scratchpads(cluster, 2)
    rng = np.random.default_rng(3)
    single = []
    for core in cluster.cores:
        core.weight[:] = rng.standard_normal(core.weight.shape).astype(np.float32).view(np.uint32)
        core.act[:] = rng.standard_normal(core.act.shape).astype(np.float32).view(np.uint32)
        copy = Machine(TINY)
        copy.scratchpad[:], copy.weight[:], copy.act[:] = core.scratchpad, core.weight, core.act
        single.append(copy)
    before = _state(cluster)
    command = dict(op="FORWARD", m=3, n=4, batch=2, sp_base=4, sp_lpc=2, flag=1,
                   cores=0b101)
    assert cluster.execute(command) == ErrorCode.NONE
    for k in (0, 2):
        assert single[k].execute(dict(command, cores=0)) == ErrorCode.NONE
        assert (cluster.cores[k].scratchpad == single[k].scratchpad).all()
    assert _same(before[1:2], _state(cluster)[1:2])
    assert cluster.counters["mac_slots"] == 2 * single[0].counters["mac_slots"] > 0
    assert cluster.counters["commands"] == 1


def test_dma_load_fans_out_and_counts_its_beats_once():
    cluster = ClusterMachine(_cluster(4))
    memory = np.arange(1, 65, dtype=np.uint32)
    command = dict(op="DMA_LOAD", n=3, batch=2, sp_base=2, sp_lpc=2, mem_addr=16,
                   mem_stride=16, cores=0b0110)
    assert cluster.execute(command, memory) == ErrorCode.NONE
    reference = Machine(TINY)
    assert reference.execute(dict(command, cores=0), memory) == ErrorCode.NONE
    for k, core in enumerate(cluster.cores):
        expected = reference.scratchpad if k in (1, 2) else np.zeros_like(core.scratchpad)
        assert (core.scratchpad == expected).all()
    assert cluster.counters["dma_read_beats"] == reference.counters["dma_read_beats"] > 0
    store = dict(op="DMA_STORE", n=3, batch=2, sp_base=2, sp_lpc=2, mem_addr=128,
                 mem_stride=16, cores=0b0100)
    assert cluster.execute(store, memory) == ErrorCode.NONE
    assert (memory[32:35] == memory[4:7]).all() and (memory[36:39] == memory[8:11]).all()


@pytest.mark.parametrize("cores", [2, 3, 4])
@pytest.mark.parametrize("op", sorted(isa.COLLECTIVES, key=int))
def test_collectives_through_a_command_stream(cores, op):
    """Each core's data DMA-loaded by its own mask, the collective, every core's result
    stored: the memory equals sim.golden.ring.execute on the same matrices, the ring counters
    its formulas."""
    config = _cluster(cores, **{"cluster.link_width": 64})
    n, batch = 3, 2
    src_rows = n * cores if op == Opcode.REDUCE_SCATTER else n
    dst_rows = n * cores if op == Opcode.ALL_GATHER else n
    rng = np.random.default_rng(int(op) * 10 + cores)
    sources = [rng.standard_normal((src_rows, batch)).astype(np.float32).view(np.uint32)
               for _ in range(cores)]
    root, peer = cores - 1, 1 % cores if cores - 1 != 1 else 0
    col = -(-src_rows // 2) * 2                  # words per column in memory (whole beats)
    dcol = -(-dst_rows // 2) * 2
    memory = np.zeros(4096, dtype=np.uint32)
    commands = []
    sp_lpc, sp2_base, sp2_lpc = -(-src_rows // 2), 64, -(-dst_rows // 2)
    for k, source in enumerate(sources):
        base = 1024 + k * batch * col
        for b in range(batch):
            memory[base + b * col:base + b * col + src_rows] = source[:, b]
        commands.append(dict(op="DMA_LOAD", n=src_rows, batch=batch, sp_lpc=sp_lpc,
                             mem_addr=4 * base, mem_stride=4 * col, cores=1 << k))
    commands.append(dict(op=op.name, n=n, batch=batch, sp_lpc=sp_lpc, sp2_base=sp2_base,
                         sp2_lpc=sp2_lpc, root=root if op in (Opcode.BROADCAST, Opcode.REDUCE,
                                                              Opcode.SEND) else 0,
                         peer=peer if op == Opcode.SEND else 0))
    for k in range(cores):
        commands.append(dict(op="DMA_STORE", n=dst_rows, batch=batch, sp_base=sp2_base,
                             sp_lpc=sp2_lpc, mem_addr=4 * (2048 + k * batch * dcol),
                             mem_stride=4 * dcol, cores=1 << k))
    words = isa.encode_stream(commands)
    memory[:len(words)] = words
    machine = ClusterMachine(config)
    result = machine.run(memory, 0, len(commands))
    assert result.ok, result
    kw = dict(root=commands[cores]["root"], peer=commands[cores]["peer"])
    expected = [np.zeros((dst_rows, batch), dtype=np.uint64) for _ in range(cores)]
    ring.execute(op, [s.astype(np.uint64) for s in sources], expected, n, **kw)
    for k in range(cores):
        base = 2048 + k * batch * dcol
        got = np.stack([memory[base + b * dcol:base + b * dcol + dst_rows]
                        for b in range(batch)], axis=1)
        assert (got == expected[k]).all()
    assert machine.counters["ring_cycles"] == ring.cycles(op, config, n, batch, **kw)
    assert machine.counters["ring_words"] == ring.link_words_moved(op, config, n, batch, **kw)
    assert machine.counters["commands"] == len(commands)
