"""The performance model (gen.perf): closed forms against the exact core schedule
(sim.golden.core_counts), per-phase bounds on the configs the RTL tests simulate, counters against
the golden machine, and the layer and network models."""

import itertools

import numpy as np
import pytest

from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.networks import get_network, mlp
from chrysalis.gen.perf import (
    Mapping, MemoryTiming, command_cost, core_command, evaluate, layer_cost, network_cost)
from chrysalis.gen.perf import commands as pc
from chrysalis.gen.perf import validate
from chrysalis.gen.spec.isa import Opcode
from chrysalis.gen.perf.network import cluster_stream_cost, collective_cost, ring_collective
from chrysalis.gen.perf.stream import mlp_program, mlp_step
from chrysalis.sim.golden import core_counts, ring

TINY = PRESETS["tiny"]
SMALL = with_overrides(TINY, {"name": "small_core", "core.scratchpad_words": 4096,
                              "pe.act_words": 1024, "pe.weight_words": 1024})
#: The configs the accelerator's RTL tests simulate, with the MLP each trains.
CASES = {
    "tiny": (TINY, (7, 5, 3), 3),
    "2x2-digits": (SMALL, (64, 32, 10), 8),
    "4x2-tree": (with_overrides(SMALL, {"core.rows": 4, "core.reduction": "tree"}),
                 (64, 32, 10), 8),
    "2x2-dual-value": (with_overrides(SMALL, {"mac.dual": "value", "mac.latency": 3,
                                              "pe.acc_regs": 16}), (64, 32, 10), 8),
    "2x2-streamed": (with_overrides(TINY, {"core.scratchpad_words": 4096,
                                           "pe.act_words": 1024}), (64, 32, 10), 8),
    "2x3-momentum": (with_overrides(TINY, {"core.cols": 3, "mac.latency": 3}), (7, 5, 3), 3),
}


def _config(R, C, L, acc, reduction="bus", dual="single"):
    return with_overrides(TINY, {"core.rows": R, "core.cols": C, "mac.latency": L,
                                 "pe.acc_regs": acc, "core.reduction": reduction,
                                 "mac.dual": dual})


@pytest.mark.parametrize("R,C,L,acc,reduction,dual", [
    (2, 2, 2, 8, "bus", "single"), (2, 3, 3, 8, "bus", "single"),
    (4, 2, 2, 8, "tree", "single"), (3, 5, 6, 16, "tree", "single"),
    (4, 4, 6, 16, "bus", "single"), (2, 2, 3, 16, "bus", "value"),
    (4, 4, 6, 28, "bus", "dual-full")])
def test_core_commands_equal_the_exact_schedule(R, C, L, acc, reduction, dual):
    """Movers, FORWARD, BACKWARD and WGRAD (with and without momentum): the closed forms
    give exactly sim.golden.core_counts' cycles and counters."""
    config = _config(R, C, L, acc, reduction, dual)
    for op, m, n, batch in itertools.product(
            ("LOAD_COL", "LOAD_ROW", "LOAD_W", "STORE_W", "FORWARD", "BACKWARD", "WGRAD"),
            (1, 3, 10, 33), (1, 5, 17), (1, 4, 9)):
        for flag in ((0, 1) if op == "WGRAD" else (0,)):
            exact = core_counts.predict(config, dict(op=op, m=m, n=n, batch=batch, flag=flag))
            model = core_command(config, op, m, n, batch, momentum=bool(flag))
            for key in ("cycles", "mac_slots", "update_slots", "stall_cycles", "bus_words"):
                assert model[key] == exact[key], (op, m, n, batch, flag, key)
    # GATHER (m taps per element; flag: the mask).
    for m, n, batch, flag in itertools.product((1, 2, 9), (1, 5, 17), (1, 4), (0, 1)):
        exact = core_counts.predict(config, dict(op="GATHER", m=m, n=n, batch=batch, flag=flag))
        model = core_command(config, "GATHER", m, n, batch, mask=bool(flag))
        for key in ("cycles", "mac_slots", "update_slots", "stall_cycles", "bus_words"):
            assert model[key] == exact[key], ("GATHER", m, n, batch, flag, key)


def test_gather_runs_alone_in_a_stream():
    """A GATHER uses both scratchpad ports: no DMA, load or WGRAD goes beside it, so a
    stream with it costs its commands in order, fetches hidden as for any command."""
    from chrysalis.gen.perf.commands import command_cost
    from chrysalis.gen.perf.stream import dma_beside, drain_beside, load_beside, stream_cost
    config = PRESETS["default"]
    gather = dict(op="GATHER", m=9, n=64, batch=1, flag=1, sp_base=0, sp_lpc=200,
                  sp2_base=1000, sp2_lpc=16, sp3_base=2000, sp3_lpc=144)
    far = dict(n=4, batch=2, sp_base=5000, sp_lpc=1, mem_addr=0x1000, mem_stride=64)
    assert not dma_beside(dict(op="DMA_LOAD", **far), gather)
    assert not dma_beside(dict(op="DMA_STORE", **far), gather)
    assert not load_beside(config, dict(op="LOAD_COL", n=4, batch=2, abase=0), gather)
    assert not drain_beside(config, dict(op="WGRAD", m=4, n=4, batch=2), gather)
    cost = stream_cost(config, [gather])
    assert cost["phases"]["gather"]["commands"] == 1
    assert cost["total"]["cycles"] == command_cost(config, gather)["cycles"] + 1
    assert command_cost(config, gather)["core_cycles"] == \
        core_counts.predict(config, gather)["cycles"] - 1


def test_loss_gradient_closed_form_equals_the_stepped_schedule(monkeypatch):
    """Exact for 1 to 1000 classes, 1 to 64 samples (one to four chunks, full and partial),
    latencies 2 to 8 and both special-function units."""
    cases = list(itertools.product((2, 3, 6, 8), (1, 2, 3, 10, 100, 1000),
                                   (1, 3, 7, 8, 9, 16, 17, 33, 64)))
    cases += [(4, 7, 5), (5, 10, 8), (7, 3, 12)]
    cases = [case + (sfu,) for case in cases for sfu in ("pipelined", "barrel")]

    def config(L, sfu):
        return with_overrides(_config(2, 2, L, 2 * (L + 1)), {"core.sfu": sfu})

    exact = {case: core_counts.predict(config(case[0], case[3]),
                                       dict(op="LOSS_GRAD", m=case[1], batch=case[2]))["cycles"]
             for case in cases}

    def stepped(*args, **kwargs):
        raise AssertionError("the closed form must not step the schedule")

    monkeypatch.setattr(core_counts, "_trace_loss", stepped)
    for (L, m, batch, sfu), cycles in exact.items():
        model = core_command(config(L, sfu), "LOSS_GRAD", m=m, batch=batch)
        assert model["cycles"] == cycles, (L, m, batch, sfu)


@pytest.mark.parametrize("name", sorted(CASES))
def test_phases_within_3_percent_of_the_exact_core(name):
    """Per phase of an MLP training step, the model's core cycles are within 3% of
    sim.golden.core_counts' (which the RTL tests hold to the RTL cycle for cycle)."""
    config, sizes, batch = CASES[name]
    momentum = 0.875 if name.endswith("momentum") else None
    from chrysalis.sim.compile.program import TrainingProgram
    program = TrainingProgram(config, list(sizes), batch, 0.25, momentum=momentum)
    commands, _ = validate.step_commands(program)
    rows = validate.compare(config, commands, validate.core_reference(config, commands))
    assert {r["phase"] for r in rows} >= {"forward", "loss", "wgrad_update", "load"}
    for row in rows:
        assert abs(row["error"]) <= 0.03, row


@pytest.mark.parametrize("name", ["tiny", "2x2-digits", "2x2-dual-value", "2x2-streamed"])
def test_counters_equal_the_golden_machine(name):
    """The model's counters of a whole step (MAC and update slots, bus words, fetch and DMA
    beats, commands, core busy cycles) equal those of the golden machine model, which the
    RTL tests hold to the RTL counter for counter."""
    from chrysalis.sim.golden import numerics as nx
    from chrysalis.sim.compile.program import initial_weights
    from chrysalis.sim.compile.job import Job, Run, run_job_golden
    config, sizes, batch = CASES[name]
    program = mlp_program(config, sizes, batch)
    rng = np.random.default_rng(1)
    image = program.initial_image(initial_weights(list(sizes), 1))
    program.write_batch(image, 0, nx.from_float32(rng.random((sizes[0], batch))
                                                  .astype(np.float32)),
                        rng.integers(0, sizes[-1], batch))
    step = program.step_run(1, 0)
    prologue, after = run_job_golden(config, Job(image, [
        Run(program.prologue.cmd_base, program.prologue.cmd_count),
        Run(step.cmd_base, step.cmd_count)]))
    golden = {k: after.counters[k] - prologue.counters[k] for k in after.counters}
    model = mlp_step(config, sizes, batch)["total"]
    for key in ("commands", "fetch_beats", "dma_read_beats", "dma_write_beats",
                "mac_slots", "update_slots", "stall_cycles", "bus_words"):
        assert model[key] == golden[key], key
    # Busy cycles: exact but for LOSS_GRAD's closed form.
    assert abs(model["core_cycles"] - golden["core_cycles"]) <= 0.01 * golden["core_cycles"]
    products = golden["high_products"] + golden["low_products"] + golden["bypass_products"]
    assert model["products"] == products


def test_dma_model_matches_the_measured_bursts():
    """DMA cycles as measured on the RTL with the testbench memory (tiny config, 64-bit
    AXI): reads cost beats + 4 per column, writes beats + (beats - 1) // 3 + 8. The model
    adds the expected cost of crossing a 4 KiB page (it does not know the addresses); the
    measured columns crossed none, hence the 2%."""
    measured = {("DMA_LOAD", 1): 10, ("DMA_STORE", 1): 18, ("DMA_LOAD", 8): 16,
                ("DMA_STORE", 8): 26, ("DMA_LOAD", 64): 72, ("DMA_STORE", 64): 100,
                ("DMA_LOAD", 300): 308, ("DMA_STORE", 300): 414}
    for (op, n), cycles in measured.items():
        model = pc.dma_command(TINY, op, n, 2)["cycles"]
        assert abs(model - cycles) / cycles <= 0.02, (op, n, model, cycles)
        # With the addresses of the measurement the bursts are cut exactly.
        stride = -(-4 * n // 8) * 8
        assert pc.dma_command_at(TINY, op, n, 2, 0x10000, stride)["cycles"] == cycles
    # A column across a 4 KiB boundary is two bursts: two latencies.
    split = pc.dma_command_at(TINY, "DMA_LOAD", 16, 1, 0x1000 - 32, 64)["cycles"]
    assert split == 8 + 2 * 4


def test_command_cost_adds_the_controller_overhead():
    cost = command_cost(TINY, dict(op="FORWARD", m=5, n=8, batch=3))
    exact = core_counts.predict(TINY, dict(op="FORWARD", m=5, n=8, batch=3))
    # FETCH, the 64-byte fetch burst (8 beats + 4), three check steps.
    assert cost["overhead_cycles"] == 1 + 12 + 3
    assert cost["cycles"] == exact["cycles"] + 16
    slow = command_cost(TINY, dict(op="FORWARD", m=5, n=8, batch=3),
                        MemoryTiming(read_latency=40, write_latency=40))
    assert slow["cycles"] == cost["cycles"] + 36
    with pytest.raises(ValueError, match="read_latency must be a non-negative number"):
        MemoryTiming(read_latency=-1)
    with pytest.raises(ValueError, match="op must be one of"):
        core_command(TINY, "CONVOLVE", 1, 1, 1)


def test_layer_model_equals_the_stream_of_a_resident_mlp():
    """For an MLP whose weights stay in the PEs, the layer model (no command list) gives
    the same compute, loss and load cycles as the compiler's stream."""
    config = PRESETS["default"]
    network = get_network("digits-mlp")
    ref = mlp_step(config, [64, 32, 10], 8, store_every_step=False)["phases"]
    result = network_cost(config, network, 8)
    assert result["weights_resident"] and result["on_chip"]
    for phase in ("forward", "loss", "backward", "wgrad_update", "load"):
        assert result["phases"][phase]["cycles"] == ref[phase]["cycles"], phase


def test_tiling_costs_more_than_one_tile_and_reports_extensions():
    config = PRESETS["default"]
    layer = mlp([64, 64, 10]).layers[0]
    whole = layer_cost(config, layer, 4, Mapping(64, 65, 4), first=True)
    split = layer_cost(config, layer, 4, Mapping(16, 16, 2), first=True)
    assert whole["extensions"] == []
    assert set(split["extensions"]) == {"reduction split", "batch split"}
    assert split["cycles"] > whole["cycles"]
    assert split["useful_macs"] == whole["useful_macs"] == 64 * 65 * 2 * 4
    with pytest.raises(ValueError, match="pe.weight_words"):
        layer_cost(TINY, layer, 4, Mapping(64, 65, 4))


def test_ring_collectives_are_priced_by_the_rtl_schedule():
    """``ring_collective`` is ``sim.golden.ring.cycles`` of the command a program would issue for
    the matrix (the RTL's schedule), and ``formula="textbook"`` CATERPILLAR's ring."""
    config = with_overrides(PRESETS["default"], {"cluster.cores": 4,
                                                 "cluster.link_width": 64})
    c = 4
    # An all-gather of a 4000-word matrix in 4 columns: each core's chunk is 250 rows.
    assert ring_collective(config, 4000, "all-gather", columns=4) == \
        ring.cycles(Opcode.ALL_GATHER, config, 250, 4)
    # A reduce-scatter of each core's 4000 words (one column): c chains of 1000 rows.
    assert ring_collective(config, 4000, "reduce-scatter") == \
        ring.cycles(Opcode.REDUCE_SCATTER, config, 1000, 1)
    assert ring_collective(config, 4000, "all-reduce", columns=40) == \
        ring.cycles(Opcode.ALL_REDUCE, config, 100, 40)
    for kind, op in (("broadcast", Opcode.BROADCAST), ("reduce", Opcode.REDUCE)):
        assert ring_collective(config, 300, kind, columns=3) == ring.cycles(op, config, 100, 3)
    # A send back to the previous core goes c - 1 hops round the one-way ring.
    back = ring_collective(config, 64, "send", hops=c - 1)
    assert back == ring.cycles(Opcode.SEND, config, 64, 1, root=0, peer=c - 1)
    assert back > ring_collective(config, 64, "send")
    two_way = with_overrides(config, {"cluster.ring": "bidirectional"})
    assert ring_collective(two_way, 64, "send", hops=c - 1) == ring_collective(config, 64, "send")
    cost = collective_cost(config, 4000, "all-gather", columns=4)
    assert cost["ring_words"] == ring.link_words_moved(Opcode.ALL_GATHER, config, 250, 4)
    assert (cost["n"], cost["batch"]) == (250, 4)
    # The textbook ring: (c - 1) (w / c) / k + (c - 1) hop, twice for an all-reduce. The
    # RTL's reduce-scatter (c chains of one read per cycle) costs more than it.
    assert ring_collective(config, 4000, "all-gather", formula="textbook") == 3 * 1000 / 2 + 3
    assert ring_collective(config, 4000, "all-reduce", formula="textbook") == \
        2 * (3 * 1000 / 2 + 3)
    assert ring_collective(config, 4000, "reduce-scatter") > \
        ring_collective(config, 4000, "reduce-scatter", formula="textbook")
    assert ring_collective(with_overrides(config, {"cluster.cores": 1}), 4000) == 0
    with pytest.raises(ValueError, match="kind must be one of"):
        ring_collective(config, 10, "gather")
    with pytest.raises(ValueError, match="formula must be one of"):
        ring_collective(config, 10, formula="exact")
    with pytest.raises(ValueError, match="hops must be an integer from 1 to 3"):
        ring_collective(config, 10, "send", hops=4)


def test_cluster_stream_cost_dispatches_like_the_controller():
    """One core: the stream model's cycles. A CP tick: its ring cycles are the sends'
    (``sim.compile.cp_program``'s tick profile), and a core's commands wait for the core only."""
    from chrysalis.sim.compile.cp_program import CpProgram
    config = PRESETS["default"]
    step = mlp_step(config, [64, 32, 10], 8)
    assert cluster_stream_cost(config, step["commands"])["cycles"] == step["total"]["cycles"]
    cluster = with_overrides(config, {"cluster.cores": 2})
    program = CpProgram(cluster, [64, 32, 32, 10], 0.05, 6)
    tick = program.steady_tick()
    cost = cluster_stream_cost(cluster, program.run_commands(program.tick_run(tick, 1)))
    profile = program.tick_profile(tick)
    assert cost["ring_cycles"] == profile["ring_cycles"]
    # (The loss gradient's closed form is within a few cycles of sim.golden.core_counts' steps.)
    assert cost["busy"] == pytest.approx([c["core_cycles"] for c in profile["cores"]],
                                         rel=0.01)
    # The controller hands core 1 its commands once core 0's are all handed out: the cores
    # overlap only partly, so the tick lies between the slowest core and both in turn.
    assert profile["estimate_cycles"] < cost["cycles"]
    assert cost["cycles"] < sum(cost["busy"]) + cost["ring_cycles"] + 2000


def test_network_modes_follow_the_cluster_programs():
    """The layer model of each mode against the stream model of the program the RTL runs
    (``sim.compile.cp_program``, ``sim.compile.parallel_program``) for the same MLP."""
    from chrysalis.sim.compile.cp_program import CpProgram
    from chrysalis.sim.compile.parallel_program import ParallelProgram
    sizes = [64, 32, 32, 32, 10]
    network = mlp(sizes)
    for cores in (2, 4):
        config = with_overrides(PRESETS["default"], {"cluster.cores": cores})
        cp = CpProgram(config, sizes, 0.05, 2 * cores)
        tick = cp.steady_tick()
        stream = cluster_stream_cost(config, cp.run_commands(cp.tick_run(tick, 1)))
        model = network_cost(config, network, 1, "cp")
        assert model["stages"] == [(ls[0], ls[-1] + 1) for ls in cp.stages]
        assert model["collective_cycles"] == stream["ring_cycles"]
        assert model["cycles"] == pytest.approx(stream["cycles"], rel=0.01)
        for mode in ("data", "model"):
            program = ParallelProgram(config, sizes, 8, 0.05, mode)
            stream = cluster_stream_cost(config, program.run_commands(program.step_run(1, 0)))
            model = network_cost(config, network, 8, mode)
            assert model["collective_cycles"] == stream["ring_cycles"], (mode, cores)
            assert model["cycles"] == pytest.approx(stream["cycles"], rel=0.02), (mode, cores)


@pytest.mark.parametrize("sizes, batch", [([64, 32, 32, 32, 10], 8), ([64, 32, 10], 8),
                                          ([64, 32, 10], 1)])
def test_one_core_layer_model_prices_the_prefetch(sizes, batch):
    """One core: the layer model against the stream model of the program the RTL runs
    (``sim.compile.program``, weights kept on chip), whose next minibatch loads beside the
    step's last ``WGRAD``; without that overlap priced the model would be far above it."""
    config = PRESETS["default"]
    model = network_cost(config, mlp(sizes), batch, update="fused")
    stream = mlp_step(config, sizes, batch, store_every_step=False, update="fused")
    assert model["prefetch_hidden_cycles"] > 0
    assert model["cycles"] == pytest.approx(stream["total"]["cycles"], rel=0.01)
    waiting = model["cycles"] + model["prefetch_hidden_cycles"]
    assert waiting > stream["total"]["cycles"] * 1.03
    # Several cores run no prefetching program: nothing priced.
    two = with_overrides(config, {"cluster.cores": 2})
    assert network_cost(two, mlp(sizes), batch, "model")["prefetch_hidden_cycles"] == 0


def test_network_modes_and_ring_costs():
    config = with_overrides(PRESETS["default"], {"cluster.cores": 4,
                                                 "cluster.link_width": 64})
    network = get_network("mnist-500x3")
    one = network_cost(with_overrides(config, {"cluster.cores": 1}), network, 16)
    results = {mode: network_cost(config, network, 16, mode)
               for mode in ("mbgd", "data", "model", "sgd", "cp")}
    for mode, r in results.items():
        assert 0 < r["utilization"] <= 1, mode
        assert r["cycles"] > 0
    assert results["data"]["collective_cycles"] > 0
    assert results["model"]["collective_cycles"] > 0
    assert results["mbgd"]["cycles"] < one["cycles"]       # four cores help
    assert results["sgd"]["samples"] == results["cp"]["samples"] == 1
    # Model parallel: the output layer (10 classes) is on every core, the others in panels.
    assert results["model"]["layers"][-1]["useful_macs"] == network.layers[-1].macs(16)
    assert results["cp"]["pipelined_cycles"] <= results["cp"]["cycles"]
    with pytest.raises(ValueError, match="mode must be one of"):
        network_cost(config, network, 16, "pipeline")
    with pytest.raises(ValueError, match="multiple of cluster.cores"):
        network_cost(config, network, 6, "data")


def test_evaluate_summarises_a_digits_step():
    for config in (PRESETS["default"], PRESETS["tiny"]):
        out = evaluate(config)
        if out["source"] == "command stream":
            # The phases cost their commands run alone; the step overlaps some of them.
            step = mlp_step(config, [64, 32, 10], 8)
            assert out["cycles_per_step"] == step["total"]["cycles"] == (
                sum(out["phase_cycles"].values()) + 1 - step["hidden_cycles"])
            assert step["hidden_cycles"] > 0
        assert 0 < out["utilization"] < 1
        assert out["energy_pj"] > 0 and out["gflops_per_watt"] > 0
        assert out["useful_macs"] == 32 * 65 * 16 + 10 * 33 * 24
    assert evaluate(PRESETS["default"])["source"] == "command stream"


def test_wgrad_splits_into_gradient_and_update_passes():
    config = PRESETS["default"]                     # G = 8 accumulators per buffer
    plain = core_command(config, "WGRAD", 40, 40, 4)
    momentum = core_command(config, "WGRAD", 40, 40, 4, momentum=True)
    groups = -(-10 * 10 // 8)
    assert plain["update_cycles"] == groups * 8
    assert momentum["update_cycles"] == 2 * groups * 8
    # The gradient's part is the same with and without momentum.
    assert plain["cycles"] - plain["update_cycles"] == \
        momentum["cycles"] - momentum["update_cycles"]


# --- the fused update ------------------------------------------------------------------------

def _wgrad_slots(result, field):
    return result["phases"]["wgrad_update"][field]


@pytest.mark.parametrize("mode, cores", [("sgd", 1), ("mbgd", 1), ("mbgd", 2), ("model", 4),
                                         ("sgd", 2), ("cp", 4)])
def test_fused_update_saves_exactly_the_update_slots(mode, cores):
    """Fused vs separate on the same mappings: each core's WGRADs lose their update pass
    and nothing else moves, so one core's step is shorter by exactly its update passes'
    cycles (``update_cycles``: the update slots with each accumulator group's pass rounded
    up to the group, as the schedule issues them), and no update slot is left."""
    from chrysalis.gen.perf.mapping import optimize
    config = with_overrides(PRESETS["default"], {"cluster.cores": cores})
    network = get_network("mnist-500x3")
    mappings, _ = optimize(config, network, 16, mode)
    sep = network_cost(config, network, 16, mode, mappings)
    fus = network_cost(config, network, 16, mode, mappings, update="fused")
    assert sep["update"] == "separate" and fus["update"] == "fused"
    assert _wgrad_slots(fus, "mac_slots") == _wgrad_slots(sep, "mac_slots")
    assert fus["useful_macs"] == sep["useful_macs"]
    saved, kept = 0, 0
    for a, b in zip(sep["layers"], fus["layers"]):
        pa, pb = a["phases"]["wgrad_update"], b["phases"]["wgrad_update"]
        if "batch split" in a["extensions"]:
            # The gradient accumulates over batch tiles: the separate update stays.
            assert a["cycles"] == b["cycles"] and pb["update_slots"] == pa["update_slots"]
            kept += 1
        else:
            assert pb["update_slots"] == 0 < pa["update_slots"]
            assert a["cycles"] - b["cycles"] == pa["update_cycles"]
            # Each WGRAD's last group rounds up to the group's size (acc_regs / 2).
            assert (0 <= pa["update_cycles"] - pa["update_slots"]
                    < config.pe.acc_regs // 2 * pa["commands"])
            saved += pa["update_cycles"]
    assert saved > 0
    if mode != "cp":
        # The phases hold one core's commands: the step is shorter by its update passes.
        assert sep["cycles"] - fus["cycles"] == saved
        assert fus["utilization"] > sep["utilization"]
    else:
        # The tick is the pipeline's dispatch: it can only get shorter.
        assert fus["cycles"] <= sep["cycles"]
        assert sep["pipelined_cycles"] > fus["pipelined_cycles"]


def test_fused_layer_cost_equals_the_fused_wgrad_command_and_keeps_a_batch_split_separate():
    config = PRESETS["default"]
    layer = mlp([64, 32, 10]).layers[0]
    sep = layer_cost(config, layer, 8, first=True)
    fus = layer_cost(config, layer, 8, first=True, update="fused")
    separate = command_cost(config, dict(op="WGRAD", m=32, n=65, batch=8))
    want = separate["cycles"] - command_cost(config, dict(op="WGRAD", m=32, n=65, batch=8,
                                                          fused=1))["cycles"]
    assert sep["cycles"] - fus["cycles"] == want == separate["update_cycles"] > 0
    assert fus["update"] == "fused" and sep["update"] == "separate"
    # A batch split accumulates dW over the batch tiles: the separate update stays.
    split = Mapping(32, 65, 4)
    assert "batch split" in layer_cost(config, layer, 8, split, first=True)["extensions"]
    a = layer_cost(config, layer, 8, split, first=True)
    b = layer_cost(config, layer, 8, split, first=True, update="fused")
    assert a["cycles"] == b["cycles"] and b["update"] == "separate"
    # A dual-precision core ignores the fused bit (sim.golden.core_counts.wgrad_fused).
    dual = with_overrides(config, {"mac.dual": "value", "pe.acc_regs": 32})
    assert (layer_cost(dual, layer, 8, first=True)["cycles"]
            == layer_cost(dual, layer, 8, first=True, update="fused")["cycles"])


def test_update_defaults_and_refusals():
    from chrysalis.gen.perf.layer import UPDATES
    from chrysalis.gen.perf.network import default_update
    from chrysalis.sim.compile.compiler import UPDATES as COMPILER_UPDATES
    assert UPDATES == COMPILER_UPDATES
    config = PRESETS["default"]
    two = with_overrides(config, {"cluster.cores": 2})
    dual = with_overrides(config, {"mac.dual": "value", "pe.acc_regs": 32})
    assert [default_update(two, m) for m in ("sgd", "mbgd", "model", "cp", "data")] == \
        ["fused"] * 4 + ["separate"]
    assert default_update(config, "data") == "fused"          # one core: no all-reduce
    assert default_update(dual, "mbgd") == "separate"
    network = mlp([64, 32, 10])
    with pytest.raises(ValueError, match=r"mode 'data' keeps the separate update: update "
                                         r"must be 'separate', not 'fused'$"):
        network_cost(two, network, 8, "data", update="fused")
    with pytest.raises(ValueError, match=r"update must be one of fused, separate, not 'x'$"):
        network_cost(config, network, 8, "mbgd", update="x")
    with pytest.raises(ValueError, match=r"update must be one of fused, separate, not None$"):
        layer_cost(config, network.layers[0], 8, update=None)


def test_fused_update_still_pays_its_weight_reads_and_writes():
    """A fused WGRAD reads each weight at its first MAC and writes it back at its last: no
    counter counts them, so the model's energy prices them from ``fused_weights``, as many
    weight-bank reads and writes as the separate update pass does, without its multiplies."""
    from chrysalis.gen.perf import energy
    from chrysalis.gen.perf.commands import core_command
    config = PRESETS["default"]
    separate = core_command(config, "WGRAD", m=37, n=65, batch=8)
    fused = core_command(config, "WGRAD", m=37, n=65, batch=8, fused=True)
    assert fused["update_slots"] == 0 and separate["fused_weights"] == 0
    assert fused["fused_weights"] == separate["update_slots"] > 0
    ev_sep = energy.events(config, {"UPDATE_SLOTS": separate["update_slots"]})
    ev_fused = energy.events(config, {}, fused_weights=fused["fused_weights"])
    assert ev_fused["weight_bank_write"] == ev_sep["weight_bank_write"]
    assert ev_fused["weight_bank_read"] == ev_sep["weight_bank_read"]
    assert ev_fused["operand_multiply"] == 0 < ev_sep["operand_multiply"]
    with pytest.raises(ValueError, match="fused_weights must be a non-negative integer, not -1"):
        energy.events(config, {}, fused_weights=-1)
