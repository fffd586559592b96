"""The memory image and command streams of a training run (``sim/compile/program.py``).

Without a machine model the streams are checked by a reference interpreter of the DMA
commands (here) with the golden model standing in for the core: the core commands of a step
must be exactly ``compile_mlp``'s, and the golden step is applied to what the DMA put in the
scratchpad. Every command passes ``gen.spec.isa.check``, the regions are aligned and disjoint, and
the host-side accessors round-trip. When ``sim.golden.machine`` exists, the same runs go through the
machine model and the weights after every step equal ``golden_step``'s, bit for bit.
"""

import numpy as np
import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import get_preset, with_overrides
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.mlp import ONE, augment, golden_step
from chrysalis.sim.compile.compiler import compile_mlp
from chrysalis.gen.spec.layout import bank_count
from chrysalis.sim.compile.program import Region, Run, TrainingProgram, initial_weights

TINY = get_preset("tiny")
# The tiny preset's scratchpad (1024 words) and activation banks (64 words) cannot hold a
# 64-32-10 MLP at batch 8 (compile_mlp says so); these are the smallest stores that can.
DIGITS_STREAMED = with_overrides(TINY, {"name": "tiny_digits", "core.scratchpad_words": 4096,
                                        "pe.act_words": 1024})
DIGITS_RESIDENT = with_overrides(DIGITS_STREAMED, {"pe.weight_words": 1024})
# Momentum keeps the velocities beside the weights, in the scratchpad and in the PEs.
DIGITS_MOMENTUM = with_overrides(DIGITS_STREAMED, {"pe.weight_words": 2048,
                                                   "core.scratchpad_words": 8192})
CORE_2X3_W32 = with_overrides(TINY, {"core.cols": 3, "host.axi_data_width": 32})
CORE_2X3_W128 = with_overrides(TINY, {"core.cols": 3, "host.axi_data_width": 128})
CORE_8X4_W256 = with_overrides(get_preset("default"), {"core.rows": 8,
                                                       "host.axi_data_width": 256})
CORE_4X4_STREAMED = with_overrides(get_preset("default"), {"pe.weight_words": 8,
                                                           "host.axi_data_width": 128})

DIGITS = [64, 32, 10]
LR = 0.25
MU = 0.875

#: name: (config, sizes, batch, momentum, mem_base)
CASES = {
    "digits-streamed": (DIGITS_STREAMED, DIGITS, 8, None, 0),
    "digits-resident": (DIGITS_RESIDENT, DIGITS, 8, None, 0),
    "digits-momentum": (DIGITS_MOMENTUM, DIGITS, 8, MU, 0),
    "2x3-axi32": (CORE_2X3_W32, [7, 5, 3], 3, None, 0x40),
    "2x3-axi128-momentum": (CORE_2X3_W128, [7, 5, 3], 3, MU, 0x1000),
    "8x4-axi256-deep": (CORE_8X4_W256, [12, 8, 6, 4], 4, None, 0x8000_0000),
    "4x4-streamed-deep": (CORE_4X4_STREAMED, [12, 8, 6, 4], 4, None, 0x40),
}
SLOTS = 4
#: The cases whose scratchpad has no room for a second minibatch buffer: they run
#: without prefetch.
NO_ROOM = {"digits-streamed", "digits-resident"}
#: The cases with prefetch whose activation banks have no room for the inputs twice: none
#: (test_inputs_stay_in_one_place_without_room has one).
NO_PLACE = set()
DMA = (isa.Opcode.DMA_LOAD, isa.Opcode.DMA_STORE)


def _program(name, slots=SLOTS, prefetch=None):
    config, sizes, batch, momentum, mem_base = CASES[name]
    return TrainingProgram(config, sizes, batch, LR, momentum=momentum, slots=slots,
                           mem_base=mem_base, prefetch=prefetch)


def _buffer_step(prog, buffer):
    """``compile_mlp``'s step with its minibatch reads on scratchpad buffer ``buffer``."""
    (x0, y0), (x, y) = prog.buffers[0], prog.buffers[buffer]
    step = []
    for c in prog.compiled.step:
        if c["op"] == "LOAD_COL" and c["sp_base"] == x0.base:
            c = {**c, "sp_base": x.base}
        elif c["op"] == "LOSS_GRAD":
            assert c["sp3_base"] == y0.base
            c = {**c, "sp3_base": y.base}
        step.append(c)
    return step


def _input_load(prog, slot):
    """The ``LOAD_COL`` of slot ``slot``'s inputs into its place in the PEs."""
    return {**prog.compiled.step[0], "sp_base": prog.buffers[slot % 2][0].base,
            "abase": prog.input_places[slot % 2]}


def _core_step(prog, slot):
    """The core commands of slot ``slot``'s step: ``compile_mlp``'s on its buffer; with two
    input places, without the first ``LOAD_COL``, the first layer on place ``slot % 2``, and
    the next slot's ``LOAD_COL`` just after the last ``WGRAD``."""
    step = _buffer_step(prog, slot % len(prog.buffers))
    if len(prog.input_places) == 1:
        return step
    place = prog.input_places[slot % 2]
    step = [{**c, "abase": place} if c["op"] in ("FORWARD", "WGRAD") and c["abase"] == 0
            else c for c in step[1:]]
    last = max(i for i, c in enumerate(step) if c["op"] == "WGRAD") + 1
    return step[:last] + [_input_load(prog, (slot + 1) % prog.slots)] + step[last:]


def _data(prog, seed=1):
    """Initial weights and ``slots`` minibatches: real digits for 64-input networks."""
    sizes, batch = prog.sizes, prog.batch
    weights = initial_weights(sizes, seed)
    if sizes[0] == 64 and sizes[-1] == 10:
        from chrysalis.sim.compile.data import digits_case
        case = digits_case(sizes, batch, prog.slots, seed)
        return weights, case.inputs, case.labels
    rng = np.random.default_rng(seed)
    inputs = [nx.from_float32(rng.random((sizes[0], batch)).astype(np.float32))
              for _ in range(prog.slots)]
    labels = [rng.integers(0, sizes[-1], batch) for _ in range(prog.slots)]
    return weights, inputs, labels


def _golden_logits(num, weights, x):
    """The network output of the forward pass, as ``golden_step`` computes it."""
    act = augment(x)
    for l, w in enumerate(weights):
        y = cm.forward(num, w, act)
        act = augment(cm.relu(num, y)) if l < len(weights) - 1 else y
    return y


def _golden_run(prog, weights, inputs, labels):
    """Weights (and velocities) after every step, and the logits of every step."""
    num = cm.CoreNumerics.from_config(prog.config)
    velocities = [cm.zeros(w.shape) for w in weights] if prog.momentum is not None else None
    history, logits = [(list(weights), velocities and list(velocities))], []
    for x, y in zip(inputs, labels):
        logits.append(_golden_logits(num, weights, x))
        weights, _ = golden_step(num, weights, x, y, prog.lr, momentum=prog.momentum,
                                 velocities=velocities)
        history.append((list(weights), velocities and list(velocities)))
    return history, logits


def _commands_in_image(prog, image, run):
    first = (run.cmd_base - prog.mem_base) // 4
    return isa.decode_stream(image[first:first + run.cmd_count * isa.COMMAND_WORDS])


class Reference:
    """The DMA commands executed on a scratchpad (a reference interpreter), the core
    commands by the golden model.

    The core is modelled at the granularity the program relies on: a ``LOAD_W`` or
    ``STORE_W`` of a whole weight (or velocity) matrix copies it to or from a weight-bank
    store, and a step's core commands, which must be exactly ``compile_mlp``'s, apply
    ``golden_step`` to the weights and the minibatch the DMA left in the scratchpad and write
    the output to ``acts[-1]``.
    """

    def __init__(self, prog):
        self.prog = prog
        self.compiled = prog.compiled
        config = prog.config
        self.num = cm.CoreNumerics.from_config(config)
        self.banks = bank_count(config.core.rows, config.core.cols)
        self.limits = isa.Limits.from_config(config)
        self.sp = np.zeros(config.core.scratchpad_words, dtype=np.uint64)
        self.weight_store = {}
        # The step's core commands on each minibatch buffer.
        self.steps = [isa.decode_stream(isa.encode_stream(_core_step(prog, b)))
                      for b in range(len(prog.buffers))]
        # With the inputs loaded ahead, the LOAD_COL of a slot's load run (the reference
        # takes a step's inputs from its buffer when the step starts).
        self.ahead = (isa.decode_stream(isa.encode_stream([_input_load(prog, 0),
                                                           _input_load(prog, 1)]))
                      if len(prog.input_places) == 2 else [])
        # The prologue's loads of the tiles of ones kept in the PEs (the reference's
        # golden step has its bias inputs anyway).
        self.ahead += (isa.decode_stream(isa.encode_stream(prog.compiled.setup))
                       if prog.compiled.setup else [])
        self.steps_run = 0

    def read(self, matrix):
        return self.sp[matrix.addresses()]

    def write(self, matrix, values):
        self.sp[matrix.addresses()] = values

    def run(self, image, run):
        assert isa.check_fetch(run.cmd_base, run.cmd_count, self.limits) == isa.ErrorCode.NONE
        commands = _commands_in_image(self.prog, image, run)
        i = 0
        while i < len(commands):
            c = commands[i]
            assert isa.check(c, self.limits) == isa.ErrorCode.NONE, (i, c)
            op = isa.Opcode(c["op"])
            starts = [b for b, step in enumerate(self.steps)
                      if [k for k in commands[i:] if isa.Opcode(k["op"]) not in DMA][:len(step)]
                      == step]
            if op in DMA:
                self.dma(image, c)
            elif starts:
                # The step computes on its buffer; the DMAs inside it (the next step's
                # minibatch, into the other buffer) run in their place in the stream.
                [buffer] = starts
                self.golden(buffer)
                i = self.rest_of_step(image, commands, i, self.steps[buffer])
                continue
            elif op in (isa.Opcode.LOAD_W, isa.Opcode.STORE_W):
                self.whole_matrix(op, c)
            elif c in self.ahead:
                pass
            else:
                raise AssertionError(f"command {i} ({op.name}) outside a step")
            i += 1

    def rest_of_step(self, image, commands, i, step):
        """Check that the core commands from ``i`` on are ``step``, running the DMAs among
        them; the index after the step's last core command."""
        core = 0
        while core < len(step):
            c = commands[i]
            if isa.Opcode(c["op"]) in DMA:
                assert core, "a step starts with a core command"
                self.dma(image, c)
            else:
                assert c == step[core], f"not compile_mlp's step at its command {core}"
                core += 1
            i += 1
        return i

    def dma(self, image, c):
        n = c["n"]
        for b in range(c["batch"]):
            mem = (c["mem_addr"] + b * c["mem_stride"] - self.prog.mem_base) // 4
            sp = (c["sp_base"] + b * c["sp_lpc"]) * self.banks
            if c["op"] == isa.Opcode.DMA_LOAD:
                self.sp[sp:sp + n] = image[mem:mem + n]
            else:
                image[mem:mem + n] = self.sp[sp:sp + n]

    def whole_matrix(self, op, c):
        matrices = self.compiled.weights + self.compiled.velocities
        [matrix] = [m for m in matrices if m.base == c["sp_base"]]
        assert (c["m"], c["n"], c["sp_lpc"]) == (matrix.n, matrix.batch,
                                                 matrix.lines_per_column)
        if op == isa.Opcode.LOAD_W:
            self.weight_store[c["wbase"]] = self.read(matrix)
        else:
            self.write(matrix, self.weight_store[c["wbase"]])

    def golden(self, buffer):
        prog, p = self.prog, self.compiled
        inputs_matrix, labels_matrix = prog.buffers[buffer]
        inputs = self.read(inputs_matrix)
        assert (inputs[-1] == ONE).all(), "the inputs lack their row of ones"
        for act in p.acts[1:-1]:
            assert (self.read(act)[-1] == ONE).all(), "a hidden layer lacks its row of ones"
        labels = self.read(labels_matrix)[0].astype(np.int64)
        if p.streamed:
            weights = [self.read(m) for m in p.weights]
        else:
            weights = [self.weight_store[base] for base in p.wbase]
        velocities = [self.weight_store[base] for base in p.vbase] or None
        self.write(p.acts[-1], _golden_logits(self.num, weights, inputs[:-1]))
        weights, _ = golden_step(self.num, weights, inputs[:-1], labels, prog.lr,
                                 momentum=prog.momentum, velocities=velocities)
        for l, w in enumerate(weights):
            if p.streamed:
                self.write(p.weights[l], w)
            else:
                self.weight_store[p.wbase[l]] = w
        for base, v in zip(p.vbase, velocities or ()):
            self.weight_store[base] = v
        self.steps_run += 1


def _assert_bits(what, actual, expected):
    actual, expected = np.asarray(actual, np.uint64), np.asarray(expected, np.uint64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    differ = [tuple(int(i) for i in at) for at in np.argwhere(actual != expected)]
    assert not differ, (f"{what}: {len(differ)} words differ, first at {differ[0]}: "
                        f"{actual[differ[0]]:#x} != {expected[differ[0]]:#x}")


def _check_after(prog, image, history, logits, step, slot):
    weights, velocities = history[step + 1]
    for l, (got, want) in enumerate(zip(prog.read_weights(image), weights)):
        _assert_bits(f"weights of layer {l} after step {step}", got, want)
    if velocities is not None:
        for l, (got, want) in enumerate(zip(prog.read_velocities(image), velocities)):
            _assert_bits(f"velocities of layer {l} after step {step}", got, want)
    _assert_bits(f"logits of step {step}", prog.read_logits(image, slot), logits[step])


def _prepared(prog):
    weights, inputs, labels = _data(prog)
    image = prog.initial_image(weights)
    for slot, (x, y) in enumerate(zip(inputs, labels)):
        prog.write_batch(image, slot, x, y)
    history, logits = _golden_run(prog, weights, inputs, labels)
    return image, history, logits


# --- the streams ------------------------------------------------------------------------

@pytest.mark.parametrize("name", CASES)
def test_every_command_passes_its_check_and_round_trips(name):
    prog = _program(name)
    limits = isa.Limits.from_config(prog.config)
    image = prog.initial_image(initial_weights(prog.sizes, 0))
    run = prog.step_run(SLOTS, with_prologue=True)
    # The checkpoint's commands follow the last step's.
    assert run == Run(prog.regions["commands"].addr,
                      len(prog.commands) - prog.checkpoint.cmd_count)
    assert prog.checkpoint.cmd_base == run.cmd_base + run.cmd_count * isa.COMMAND_BYTES
    run = Run(run.cmd_base, len(prog.commands))
    decoded = _commands_in_image(prog, image, run)
    assert len(decoded) == len(prog.commands)
    for index, (fields, command) in enumerate(zip(decoded, prog.commands)):
        assert isa.check(fields, limits) == isa.ErrorCode.NONE, (index, command)
        op = isa.Opcode[command["op"]]
        assert fields["op"] == op and fields["reserved"] == 0
        for f in isa.FIELDS[1:]:
            if f.name in isa.OP_FIELDS[op]:
                assert fields[f.name] == command.get(f.name, 0), (index, f.name)
        assert isa.encode(op, **{k: fields[k] for k in isa.OP_FIELDS[op]}) == \
            tuple(int(w) for w in image[(run.cmd_base - prog.mem_base) // 4 + 16 * index:][:16])
    for r in [prog.prologue, prog.step_run(), prog.step_run(SLOTS)] + \
            [prog.step_run(1, s) for s in range(SLOTS)]:
        assert isa.check_fetch(r.cmd_base, r.cmd_count, limits) == isa.ErrorCode.NONE


@pytest.mark.parametrize("prefetch", [None, False])
@pytest.mark.parametrize("name", CASES)
def test_core_commands_are_compile_mlps(name, prefetch):
    """The prologue's core commands are ``load_weights``; every step's are ``step`` (on its
    minibatch buffer) then ``store_weights``; the DMA commands around them move the
    matrices compile_mlp placed. With prefetch the step of slot ``s`` loads slot ``s + 1``
    into the other buffer just after its last ``WGRAD``, and the prologue loads slot 0."""
    prog = _program(name, prefetch=prefetch)
    # By default a program prefetches where the scratchpad has room for it.
    assert prog.prefetch == (prefetch is None and name not in NO_ROOM)
    prefetch = prog.prefetch
    p = prog.compiled
    config, sizes, batch, momentum, _ = CASES[name]
    again = compile_mlp(config, sizes, batch, LR, momentum=momentum)
    assert (again.step, again.load_weights, again.store_weights) == \
        (p.step, p.load_weights, p.store_weights)
    core = lambda commands: [c for c in commands if c["op"] not in ("DMA_LOAD", "DMA_STORE")]
    dmas = lambda commands: [(c["op"], c["sp_base"], c["sp_lpc"], c["n"], c["batch"],
                              c["mem_addr"], c["mem_stride"])
                             for c in commands if c["op"] in ("DMA_LOAD", "DMA_STORE")]

    def move(op, region, matrix):
        r = prog.regions[region]
        return (op, matrix.base, matrix.lines_per_column, matrix.n, matrix.batch, r.addr,
                r.stride)

    def loads(slot):
        inputs, labels = prog.buffers[slot % len(prog.buffers)]
        return [move("DMA_LOAD", f"inputs[{slot}]", inputs),
                move("DMA_LOAD", f"labels[{slot}]", labels)]

    prologue = prog.commands[:prog.prologue.cmd_count]
    ahead = len(prog.input_places) == 2
    assert ahead == (prefetch and name not in NO_PLACE)
    assert core(prologue) == p.load_weights + p.setup + ([_input_load(prog, 0)] if ahead
                                                          else [])
    layers = len(sizes) - 1
    state = [(f"weights[{l}]", m) for l, m in enumerate(p.weights)]
    state += [(f"velocities[{l}]", m) for l, m in enumerate(p.velocities)]
    assert len(p.velocities) == (0 if momentum is None else layers)
    assert dmas(prologue) == [move("DMA_LOAD", r, m) for r, m in state] + \
        [move("DMA_LOAD", f"init[{l}]", p.acts[l]) for l in range(1, layers)] + \
        (loads(0) if prefetch else [])
    assert len(prog.buffers) == (2 if prefetch else 1)
    assert prog.buffers[0] == (p.acts[0], p.labels)
    for slot in range(SLOTS):
        run = prog.step_run(1, slot)
        first = (run.cmd_base - prog.prologue.cmd_base) // isa.COMMAND_BYTES
        step = prog.commands[first:first + run.cmd_count]
        assert core(step) == _core_step(prog, slot) + p.store_weights
        stores = [*[move("DMA_STORE", r, m) for r, m in state],
                  move("DMA_STORE", f"logits[{slot}]", p.acts[-1])]
        ops = [c["op"] for c in step]
        if prefetch:
            assert dmas(step) == loads((slot + 1) % SLOTS) + stores
            # The next minibatch comes in just after the last WGRAD, into the other buffer
            # and the other input place.
            last = max(i for i, op in enumerate(ops) if op == "WGRAD") + 1
            count = prog.load_count
            assert ops[last:last + count] == ["DMA_LOAD"] * 2 + ["LOAD_COL"] * ahead
            assert "DMA_LOAD" not in ops[:last] + ops[last + count:]
            assert prog.load_run((slot + 1) % SLOTS) == Run(
                run.cmd_base + last * isa.COMMAND_BYTES, count) or slot == SLOTS - 1
        else:
            assert dmas(step) == loads(slot) + stores
            # The minibatch is in before the first core command.
            assert ops[:2] == ["DMA_LOAD"] * 2 and ops[2] != "DMA_LOAD"
        # The weights and the output go out after the last core command.
        assert ops[-len(state) - 1:] == ["DMA_STORE"] * (len(state) + 1)
    if prefetch:
        count = prog.load_count
        assert prog.load_run(0) == Run(prog.prologue.cmd_base + (prog.prologue.cmd_count
                                                                 - count)
                                       * isa.COMMAND_BYTES, count)
    assert p.acts[0].n == sizes[0] + 1 and p.labels.n == 1


@pytest.mark.parametrize("name", CASES)
def test_regions_are_aligned_disjoint_and_hold_their_dmas(name):
    prog = _program(name)
    beat = prog.config.host.axi_data_width // 8
    regions = list(prog.regions.values())
    layers = len(prog.sizes) - 1
    names = ["commands"] + [f"weights[{l}]" for l in range(layers)]
    names += [f"velocities[{l}]" for l in range(layers) if prog.momentum is not None]
    names += [f"init[{l}]" for l in range(1, layers)]
    names += [f"{kind}[{s}]" for s in range(SLOTS) for kind in ("inputs", "labels", "logits")]
    assert [r.name for r in regions] == names
    assert regions[0].addr == prog.mem_base
    for r, after in zip(regions, regions[1:] + [None]):
        assert r.addr % isa.COMMAND_BYTES == 0 and r.stride % beat == 0, r
        assert r.stride >= 4 * r.rows and r.stride - 4 * r.rows < beat, r
        assert r.end <= (after.addr if after else prog.mem_base + 4 * prog.image_words), r
    assert prog.image_words * 4 == prog.image_bytes
    assert prog.mem_base + prog.image_bytes <= 1 << prog.config.host.axi_addr_width
    by_addr = {r.addr: r for r in regions}
    for c in prog.commands:
        if c["op"] in ("DMA_LOAD", "DMA_STORE"):
            r = by_addr[c["mem_addr"]]
            assert (c["n"], c["batch"], c["mem_stride"]) == (r.rows, r.cols, r.stride)
            first, last = isa.dma_region(c, beat)
            assert r.addr <= first and last < r.end
    commands = prog.regions["commands"]
    assert commands.cols == len(prog.commands) and commands.stride == isa.COMMAND_BYTES


def test_memory_map_is_deterministic():
    a, b = _program("digits-momentum"), _program("digits-momentum")
    assert a.regions == b.regions and a.commands == b.commands
    weights = initial_weights(DIGITS, 5)
    assert np.array_equal(a.initial_image(weights), b.initial_image(weights))
    table = a.memory_map()
    assert table.count("\n") == len(a.regions) + 1
    assert "| velocities[1] |" in table and "| logits[2] |" in table


def test_runs_are_contiguous_slices_of_one_stream():
    prog = _program("digits-streamed", slots=4)
    T, P = prog.step_commands, prog.prologue.cmd_count
    base = prog.regions["commands"].addr
    assert prog.prologue == Run(base, P)
    for slot in range(4):
        assert prog.step_run(1, slot) == Run(base + (P + slot * T) * 64, T)
    assert prog.step_run(4) == Run(base + P * 64, 4 * T)
    assert prog.step_run(2, 1) == Run(base + (P + T) * 64, 2 * T)
    assert prog.step_run(4, with_prologue=True) == Run(base, P + 4 * T)
    assert prog.checkpoint == Run(base + (P + 4 * T) * 64, prog.checkpoint.cmd_count)
    assert len(prog.commands) == P + 4 * T + prog.checkpoint.cmd_count


def test_checkpoint_instead_of_storing_every_step():
    """Without ``store_every_step`` a step leaves the weights on chip; the checkpoint run
    stores them, and then the image holds what storing every step would have."""
    from chrysalis.sim.compile.data import digits
    from chrysalis.sim.golden.machine import Machine
    config = DIGITS_MOMENTUM
    x, y, _, _ = digits(0)
    images = []
    for every in (True, False):
        prog = TrainingProgram(config, [64, 32, 10], 8, 0.25, store_every_step=every)
        assert prog.prefetch
        image = prog.initial_image(initial_weights(prog.sizes, 0))
        machine = Machine(config)

        def write(step):
            batch = slice(8 * step, 8 * step + 8)
            prog.write_batch(image, prog.slot_of_step(step), nx.from_float32(x[batch].T),
                             y[batch])

        # The host contract: minibatch 0 before the prologue, k + 1 before step k.
        write(0)
        assert machine.run(image, prog.prologue.cmd_base, prog.prologue.cmd_count).ok
        for step in range(2):
            write(step + 1)
            run = prog.step_run(1, prog.slot_of_step(step))
            assert machine.run(image, run.cmd_base, run.cmd_count).ok
        if not every:
            assert np.array_equal(prog.read_weights(image)[0],
                                  initial_weights(prog.sizes, 0)[0])
            assert prog.step_commands < \
                TrainingProgram(config, [64, 32, 10], 8, 0.25).step_commands
            assert machine.run(image, prog.checkpoint.cmd_base, prog.checkpoint.cmd_count).ok
        images.append(prog.read_weights(image))
    for a, b in zip(*images):
        assert np.array_equal(a, b)


# --- the host side ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits-momentum", "2x3-axi32", "8x4-axi256-deep"])
def test_host_accessors_round_trip(name):
    prog = _program(name)
    weights, inputs, labels = _data(prog)
    velocities = None
    if prog.momentum is not None:
        velocities = initial_weights(prog.sizes, 9)
    image = prog.initial_image(weights, velocities)
    assert image.dtype == np.uint32 and image.shape == (prog.image_words,)
    for l, (got, want) in enumerate(zip(prog.read_weights(image), weights)):
        _assert_bits(f"weights[{l}]", got, want)
    if velocities is not None:
        for got, want in zip(prog.read_velocities(image), velocities):
            _assert_bits("velocities", got, want)
    for slot in range(SLOTS):
        _assert_bits("ones", prog.read_inputs(image, slot)[-1], np.full(prog.batch, ONE))
    for slot in reversed(range(SLOTS)):
        prog.write_batch(image, slot, inputs[slot], labels[slot])
    for slot in range(SLOTS):
        _assert_bits("inputs", prog.read_inputs(image, slot), augment(inputs[slot]))
        assert prog.read_labels(image, slot).tolist() == list(labels[slot])
        _assert_bits("logits", prog.read_logits(image, slot),
                     np.zeros((prog.sizes[-1], prog.batch)))
    # The rest of the image is unchanged by write_batch: the weights, the commands.
    fresh = prog.initial_image(weights, velocities)
    for name_, region in prog.regions.items():
        if not name_.startswith(("inputs", "labels")):
            first, last = (region.addr - prog.mem_base) // 4, (region.end - prog.mem_base) // 4
            assert np.array_equal(image[first:last], fresh[first:last]), name_
    # The init blocks: zeros with a row of ones at the bottom.
    for l in range(1, len(prog.sizes) - 1):
        block = prog.read(image, f"init[{l}]")
        expected = np.zeros((prog.sizes[l] + 1, prog.batch), np.uint64)
        expected[-1] = ONE
        _assert_bits(f"init[{l}]", block, expected)
    # The padding of every column stays zero.
    for region in prog.regions.values():
        if region.name == "commands":
            continue
        first = (region.addr - prog.mem_base) // 4
        columns = image[first:first + region.size // 4].reshape(region.cols, -1)
        assert not columns[:, region.rows:].any(), region.name


def test_write_batch_keeps_the_row_of_ones_in_any_image():
    prog = _program("2x3-axi32")
    _, inputs, labels = _data(prog)
    image = np.zeros(prog.image_words, dtype=np.uint32)
    prog.write_batch(image, 2, inputs[0], labels[0])
    _assert_bits("inputs", prog.read_inputs(image, 2), augment(inputs[0]))


# --- training through the streams ---------------------------------------------------------

@pytest.mark.parametrize("name", CASES)
def test_reference_one_run_per_slot_equals_golden(name):
    """Prologue, then one run per slot: after every run the image holds the weights (and
    velocities) of golden_step applied once more, and the slot's output."""
    prog = _program(name)
    image, history, logits = _prepared(prog)
    ref = Reference(prog)
    ref.run(image, prog.prologue)
    for l, matrix in enumerate(prog.compiled.weights):
        _assert_bits(f"weights[{l}] in the scratchpad", ref.read(matrix), history[0][0][l])
    for step in range(SLOTS):
        ref.run(image, prog.step_run(1, step))
        _check_after(prog, image, history, logits, step, step)
    assert ref.steps_run == SLOTS


@pytest.mark.parametrize("name", CASES)
def test_reference_all_slots_in_one_run_equals_golden(name):
    prog = _program(name)
    image, history, logits = _prepared(prog)
    ref = Reference(prog)
    ref.run(image, prog.step_run(SLOTS, with_prologue=True))
    assert ref.steps_run == SLOTS
    _check_after(prog, image, history, logits, SLOTS - 1, SLOTS - 1)
    for slot in range(SLOTS):
        _assert_bits(f"logits of slot {slot}", prog.read_logits(image, slot), logits[slot])


@pytest.mark.parametrize("prefetch", [True, False])
def test_reference_sees_a_changed_slot_between_runs(prefetch):
    """A host refills the slots between runs as the contract says, with two slots and
    prefetch (the next minibatch into the next slot before each step's doorbell) and with
    one slot without (slot 0 before each step's own doorbell): every run trains on the new
    minibatch."""
    prog = _program("digits-momentum", slots=None, prefetch=prefetch)
    assert prog.slots == (2 if prefetch else 1) and prog.prefetch == prefetch
    weights, inputs, labels = _data(_program("digits-momentum"))
    image = prog.initial_image(weights)
    ref = Reference(prog)
    if prefetch:
        prog.write_batch(image, 0, inputs[0], labels[0])
    ref.run(image, prog.prologue)
    for k, (x, y) in enumerate(zip(inputs, labels)):
        if not prefetch:
            prog.write_batch(image, 0, x, y)
        elif k + 1 < len(inputs):
            prog.write_batch(image, prog.slot_of_step(k + 1), inputs[k + 1], labels[k + 1])
        ref.run(image, prog.step_run(1, prog.slot_of_step(k)))
        history, logits = _golden_run(prog, weights, inputs[:k + 1], labels[:k + 1])
        _check_after(prog, image, history, logits, k, prog.slot_of_step(k))
    assert ref.steps_run == len(inputs)


def test_a_host_resumes_at_any_slot_with_its_load_run():
    """After the last step of a run loaded a stale slot, the host writes the minibatch of
    the step it resumes with and rings that slot's load run first."""
    prog = _program("2x3-axi32")
    weights, inputs, labels = _data(prog)
    image = prog.initial_image(weights)
    ref = Reference(prog)
    prog.write_batch(image, 0, inputs[0], labels[0])
    ref.run(image, prog.step_run(1, with_prologue=True))
    # Step 0 loaded slot 1, which holds no minibatch yet: the host writes it, then loads it.
    prog.write_batch(image, 1, inputs[1], labels[1])
    ref.run(image, prog.load_run(1))
    ref.run(image, prog.step_run(1, 1))
    history, logits = _golden_run(prog, weights, inputs[:2], labels[:2])
    _check_after(prog, image, history, logits, 1, 1)


# --- the machine model --------------------------------------------------------------------

def _machine():
    try:
        from chrysalis.sim.golden.machine import Machine
    except ImportError as exc:
        pytest.skip(f"no machine model yet (sim.golden.machine: {exc})")
    return Machine


def _machine_run(machine, prog, image, run):
    result = machine.run(image, run.cmd_base, run.cmd_count, mem_base=prog.mem_base)
    assert result.ok and result.executed == run.cmd_count, result


@pytest.mark.parametrize("prefetch", [None, False])
@pytest.mark.parametrize("name", CASES)
def test_machine_four_steps_equal_golden(name, prefetch):
    """Prologue and four steps on the machine model (among them 64-32-10 on digits, batch
    8, on a 2x2 core), with and without prefetch: the image after every step holds
    golden_step's weights (and velocities) and the step's output, bit for bit; then the
    same four steps again in one run, and in one run with the prologue."""
    Machine = _machine()
    prog = _program(name, prefetch=prefetch)
    image, history, logits = _prepared(prog)
    start = image.copy()
    machine = Machine(prog.config)
    _machine_run(machine, prog, image, prog.prologue)
    for step in range(SLOTS):
        _machine_run(machine, prog, image, prog.step_run(1, step))
        _check_after(prog, image, history, logits, step, step)
    for runs in ([prog.prologue, prog.step_run(SLOTS)], [prog.step_run(SLOTS, 0, True)]):
        image = start.copy()
        machine = Machine(prog.config)
        for run in runs:
            _machine_run(machine, prog, image, run)
        _check_after(prog, image, history, logits, SLOTS - 1, SLOTS - 1)
        for slot in range(SLOTS):
            _assert_bits(f"logits of slot {slot}", prog.read_logits(image, slot), logits[slot])


# --- initial weights --------------------------------------------------------------------

def test_initial_weights_are_seeded_fp32_with_zero_bias():
    a, b, c = (initial_weights([64, 32, 10], s) for s in (7, 7, 8))
    assert [w.shape for w in a] == [(32, 65), (10, 33)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    for w, limit in zip(a, [np.sqrt(6 / 64), np.sqrt(6 / 42)]):
        assert w.dtype == np.uint64 and w.max() <= 0xFFFF_FFFF
        values = w.astype(np.uint32).view(np.float32)
        assert (values[:, -1] == 0).all()
        assert np.abs(values[:, :-1]).max() <= limit and values[:, :-1].std() > limit / 4


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"slots": 0}, r"slots must be a positive integer, not 0"),
    ({"slots": 1.5}, r"slots must be a positive integer, not 1\.5"),
    ({"mem_base": 32}, r"mem_base must be a non-negative multiple of 64, not 32"),
    ({"mem_base": -64}, r"mem_base must be .*, not -64"),
    ({"mem_base": (1 << 32) - 64}, r"beyond the 32-bit address space"),
    ({"sizes": [64]}, r"sizes must be at least two positive layer sizes, not \[64\]"),
    ({"batch": 0}, r"batch must be a positive integer, not 0"),
    ({"lr": 0}, r"lr must be a positive number, not 0"),
    ({"lr": "0.1"}, r"lr must be a positive number, not '0.1'"),
    ({"momentum": -0.5}, r"momentum must be None or a non-negative number, not -0.5"),
    ({"update": "lazy"}, r"update must be one of fused, separate, not 'lazy'"),
    ({"update": "fused", "momentum": 0.5},
     r"update must be 'separate' with momentum 0\.5, not 'fused'"),
    ({"slots": 3, "prefetch": True},
     r"slots must be even with prefetch \(consecutive steps alternate two scratchpad "
     r"buffers\), not 3"),
    ({"prefetch": 1}, r"prefetch must be True, False or None, not 1"),
])
def test_bad_program_arguments(kwargs, match):
    args = dict(config=DIGITS_RESIDENT, sizes=DIGITS, batch=8, lr=LR) | kwargs
    with pytest.raises(ValueError, match=match):
        TrainingProgram(**args)


def test_momentum_with_streamed_weights_says_why():
    with pytest.raises(ValueError, match=r"momentum keeps a velocity beside every weight"):
        TrainingProgram(with_overrides(DIGITS_MOMENTUM, {"pe.weight_words": 1024}), DIGITS, 8,
                        LR, momentum=MU)


def test_a_network_too_big_for_the_core_says_so():
    with pytest.raises(ValueError, match=r"scratchpad lines"):
        TrainingProgram(TINY, DIGITS, 8, LR)


def test_a_scratchpad_without_room_for_the_second_buffer_says_so():
    """A core whose scratchpad holds the network but not a second minibatch buffer runs it
    without prefetch only."""
    prog = _program("digits-momentum")
    inputs, labels = prog.buffers[1]
    banks = inputs.banks
    assert labels.base == inputs.base + inputs.lines
    # The second buffer lies after every matrix compile_mlp placed, inside the scratchpad.
    p = prog.compiled
    matrices = [*p.acts, *p.grads, p.labels, *p.weights, *p.velocities]
    assert inputs.base == max(m.base + m.lines for m in matrices)
    assert (labels.base + labels.lines) * banks <= prog.config.core.scratchpad_words
    # DIGITS_RESIDENT's scratchpad holds the network with 211 lines to spare, fewer than
    # the second buffer's 264.
    with pytest.raises(ValueError, match=r"prefetch needs a second minibatch buffer in the "
                                         r"scratchpad: the second inputs buffer of 65 x 8 "
                                         r"needs 264 scratchpad lines; only 211 of 2048 are "
                                         r"left \(prefetch=False needs none\)"):
        TrainingProgram(DIGITS_RESIDENT, DIGITS, 8, LR, prefetch=True)
    for prefetch in (None, False):
        fallback = TrainingProgram(DIGITS_RESIDENT, DIGITS, 8, LR, prefetch=prefetch)
        assert not fallback.prefetch and fallback.slots == 1 and len(fallback.buffers) == 1


def test_bad_host_arguments():
    prog = _program("digits-resident")
    weights, inputs, labels = _data(prog)
    image = prog.initial_image(weights)
    x, y = inputs[0], labels[0]
    cases = [
        (lambda: prog.write_batch(image, 4, x, y), r"slot must be in \[0, 4\), not 4"),
        (lambda: prog.write_batch(image, -1, x, y), r"slot must be in \[0, 4\), not -1"),
        (lambda: prog.write_batch(image, 0, x[:, :4], y),
         r"x_bits must have shape \(64, 8\), not \(64, 4\)"),
        (lambda: prog.write_batch(image, 0, x.astype(np.float32), y),
         r"x_bits must be integer fp32 bit patterns, not float32"),
        (lambda: prog.write_batch(image, 0, x + (1 << 32), y),
         r"x_bits must hold 32-bit patterns"),
        (lambda: prog.write_batch(image, 0, x, y[:4]), r"labels must have shape \(8,\)"),
        (lambda: prog.write_batch(image, 0, x, np.where(np.arange(8) == 5, 10, y)),
         r"labels must be in \[0, 10\), not 10 \(sample 5\)"),
        (lambda: prog.write_batch(image, 0, x, -np.ones(8, int)),
         r"labels must be in \[0, 10\), not -1 \(sample 0\)"),
        (lambda: prog.write_batch(image, 0, x, y.astype(float)), r"labels must be integers"),
        (lambda: prog.write_batch(image[:-1], 0, x, y),
         rf"image must be a uint32 array of shape \({prog.image_words},\)"),
        (lambda: prog.write_batch(image.astype(np.uint64), 0, x, y), r"not a uint64 array"),
        (lambda: prog.read_logits(image, 5), r"slot must be in \[0, 4\), not 5"),
        (lambda: prog.load_run(4), r"slot must be in \[0, 4\), not 4"),
        (lambda: _program("digits-resident", slots=1, prefetch=False).load_run(0),
         r"load_run is for a program with prefetch"),
        (lambda: prog.slot_of_step(-1), r"step must be a non-negative integer, not -1"),
        (lambda: prog.read_velocities(image), r"no velocities: momentum is None"),
        (lambda: prog.initial_image(weights[:1]),
         r"weights must be a list of 2 arrays, one per layer, not a list of 1"),
        (lambda: prog.initial_image([weights[0], weights[1].T]),
         r"weights\[1\] must have shape \(10, 33\), not \(33, 10\)"),
        (lambda: prog.initial_image(weights, weights),
         r"velocities need momentum, and this program has momentum = None"),
        (lambda: prog.step_run(0), r"steps must be in \[1, 4\] .*, not 0"),
        (lambda: prog.step_run(2, 3), r"steps must be in \[1, 1\] .*, not 2"),
        (lambda: prog.step_run(1, 4), r"first_slot must be in \[0, 4\), not 4"),
        (lambda: prog.step_run(1, 1, with_prologue=True),
         r"with_prologue needs first_slot = 0, not 1"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    with pytest.raises(ValueError, match=r"name must be one of commands, .*, not 'init\[9\]'"):
        prog.read(image, "init[9]")
    with pytest.raises(TypeError, match=r"config must be a Config, not 'tiny'"):
        TrainingProgram("tiny", DIGITS, 8, LR)
    with pytest.raises(ValueError, match=r"seed must be an integer, not 'a'"):
        initial_weights(DIGITS, "a")
    with pytest.raises(ValueError, match=r"sizes must be at least two"):
        initial_weights([3, 0], 1)


def test_region_and_run_are_plain_values():
    r = Region("x", 64, 3, 2, 16)
    assert (r.size, r.end) == (32, 96)
    with pytest.raises(AttributeError):
        r.addr = 0
    with pytest.raises(AttributeError):
        Run(0, 1).cmd_count = 2


# --- the fused update -----------------------------------------------------------------------

def test_fused_program_scales_the_loss_by_minus_lr_and_sets_the_wgrad_bit():
    """Fused: LOSS_GRAD's scalar is fp32(-lr/B), every WGRAD has ``fused`` and no scalar,
    the image's steps encode them; the default picks fused where it applies."""
    from chrysalis.sim.compile.compiler import resolve_update
    fused = TrainingProgram(DIGITS_RESIDENT, DIGITS, 8, LR, update="fused")
    separate = TrainingProgram(DIGITS_RESIDENT, DIGITS, 8, LR)
    assert (fused.update, separate.update) == ("fused", "separate")
    loss = [c for c in fused.compiled.step if c["op"] == "LOSS_GRAD"]
    assert [c["scalar"] for c in loss] == [nx.fp32_bits(-LR / 8)]
    wgrads = [c for c in fused.compiled.step if c["op"] == "WGRAD"]
    assert wgrads and all(c["fused"] == 1 and not c.get("scalar") for c in wgrads)
    assert all(not c.get("fused") for c in separate.compiled.step)
    # The same commands otherwise: same count, same ops.
    assert [c["op"] for c in fused.compiled.step] == [c["op"] for c in separate.compiled.step]
    decoded = [c for c in isa.decode_stream(isa.encode_stream(fused.commands))
               if c["op"] == isa.Opcode.WGRAD]
    assert decoded and all(c["fused"] == 1 and c["flag"] == 0 for c in decoded)
    assert resolve_update(DIGITS_RESIDENT, None, None) == "fused"
    assert resolve_update(DIGITS_RESIDENT, 0.5, None) == "separate"
    dual = with_overrides(DIGITS_RESIDENT, {"mac.dual": "dual-full", "pe.acc_regs": 16})
    assert resolve_update(dual, None, None) == "separate"
    with pytest.raises(ValueError, match=r"needs one MAC stream .* mac\.dual = 'dual-full', "
                                         r"not 'fused'"):
        resolve_update(dual, None, "fused")


@pytest.mark.parametrize("update", ["fused", "separate"])
def test_fused_and_separate_steps_equal_their_golden_step(update):
    """Three steps of a 64-16-10 MLP on the machine: golden_step with the same update."""
    from chrysalis.sim.golden.machine import Machine
    config = DIGITS_RESIDENT
    compiled = compile_mlp(config, [64, 16, 10], 4, LR, update=update)
    num = cm.CoreNumerics.from_config(config)
    rng = np.random.default_rng(4)
    weights = initial_weights([64, 16, 10], 2)
    machine = Machine(config)
    for mat, w in zip(compiled.weights, weights):
        machine.write_matrix(mat.base, mat.lines_per_column, w)
    for command in compiled.load_weights:
        machine.execute(command)
    for hidden in compiled.acts[1:-1]:
        machine.scratchpad[hidden.addresses()[-1]] = ONE
    for command in compiled.setup:               # the tiles of ones kept in the PEs
        assert machine.execute(command) == isa.ErrorCode.NONE
    for _ in range(3):
        x = nx.from_float32(rng.random((64, 4)).astype(np.float32))
        labels = rng.integers(0, 10, 4)
        acts, lab = compiled.acts[0], compiled.labels
        machine.write_matrix(acts.base, acts.lines_per_column, augment(x))
        machine.write_matrix(lab.base, lab.lines_per_column, labels[None, :])
        for command in compiled.step:
            assert machine.execute(command) == isa.ErrorCode.NONE
        weights, _ = golden_step(num, weights, x, labels, LR, update=update)
    for command in compiled.store_weights:
        machine.execute(command)
    for mat, w in zip(compiled.weights, weights):
        assert np.array_equal(machine.read_matrix(mat.base, mat.lines_per_column, *w.shape), w)


def test_inputs_stay_in_one_place_without_room():
    """With prefetch but no room in the activation banks for the first layer's inputs
    twice, each step loads its own inputs into the PEs first, and only the DMA is ahead."""
    config, sizes, batch, momentum, mem_base = CASES["2x3-axi32"]
    tight = with_overrides(config, {"pe.act_words": 32})
    prog = TrainingProgram(tight, sizes, batch, LR, slots=2, mem_base=mem_base)
    assert prog.prefetch and prog.input_places == [0] and prog.load_count == 2
    roomy = TrainingProgram(config, sizes, batch, LR, slots=2, mem_base=mem_base)
    assert roomy.input_places == [0, roomy.compiled.act_words] and roomy.load_count == 3
    for p in (prog, roomy):
        for slot in range(2):
            run = p.step_run(1, slot)
            first = (run.cmd_base - p.prologue.cmd_base) // isa.COMMAND_BYTES
            ops = [c["op"] for c in p.commands[first:first + run.cmd_count]]
            assert (ops[0] == "LOAD_COL") == (p is prog)
