"""An MLP training run as a memory image and command streams (``gen/spec/isa.py``).

:func:`sim.compile.compiler.compile_mlp` places an MLP on one core and lists the core commands of one
SGD step. A :class:`TrainingProgram` wraps them for the host: it lays out one memory image
that holds the command streams, the weights, the minibatches and the network outputs, and
adds the DMA commands that move them between that image and the scratchpad. The host writes
the image, then rings the doorbell once for the :attr:`TrainingProgram.prologue` and once per
:meth:`TrainingProgram.step_run`; after every step the image holds the updated weights.

Memory map
----------
Byte offsets from ``mem_base``, in this order. Every region starts at a multiple of
:data:`gen.spec.isa.COMMAND_BYTES` (64, a multiple of every AXI beat), so the command streams are
fetchable and every DMA address is beat-aligned. Matrices are column-major 32-bit words with
each column padded to whole beats: a column of ``r`` words takes ``col(r) = ceil(4 r / beat)
* beat`` bytes (``beat = host.axi_data_width / 8``), which is also the DMA stride. ``L`` is
the number of layers, ``B`` the batch, ``n_l = sizes[l]``; ``S`` the slots.

============= =============================================== ========================
region        contents                                        columns x bytes
============= =============================================== ========================
commands      the prologue, then the step of slot 0, 1, ...   (P + S T) x 64
weights[l]    W_l: n_{l+1} x (n_l + 1), the bias last         (n_l + 1) x col(n_{l+1})
velocities[l] with momentum: the velocities of W_l            (n_l + 1) x col(n_{l+1})
init[l]       l = 1..L-1: zeros, a row of ones at the bottom  B x col(n_l + 1)
inputs[s]     slot s's minibatch, a row of ones at the bottom B x col(n_0 + 1)
labels[s]     slot s's labels, one integer word per sample    B x col(1)
logits[s]     slot s's network output (acts[-1])              B x col(n_L)
============= =============================================== ========================

Each region starts at the first multiple of 64 after the previous one; the slot regions are
grouped per slot (``inputs[0]``, ``labels[0]``, ``logits[0]``, ``inputs[1]``, ...). The
prologue has ``P`` commands and every step ``T``; the steps of consecutive slots follow each
other, so any run of consecutive steps (and the prologue with them) is one contiguous
stream. :meth:`TrainingProgram.memory_map` prints the map of a program with its addresses.

Command streams
---------------
With ``prefetch`` (by default wherever the scratchpad has room for it) the scratchpad
holds two buffers for a minibatch, each an inputs matrix and a labels matrix
(:attr:`TrainingProgram.buffers`): buffer 0 is ``compile_mlp``'s ``acts[0]`` and
``labels``, buffer 1 lies after every other matrix. The
step of slot ``s`` computes on buffer ``s mod 2`` and loads the *next* slot's minibatch,
slot ``(s + 1) mod S``, into the other buffer, so ``S`` is even and consecutive steps
alternate the buffers. Prologue: ``DMA_LOAD`` of the weights (and velocities) and of the
``init`` blocks into the scratchpad, the ``LOAD_W`` commands that make the weights resident
in the PEs (none when they are streamed), then ``DMA_LOAD`` of ``inputs[0]`` and
``labels[0]`` into buffer 0. Step of slot ``s``: ``compile_mlp``'s core commands reading
buffer ``s mod 2``, with the ``DMA_LOAD`` s of ``inputs[s + 1]`` and ``labels[s + 1]`` just
after the last ``WGRAD``, which uses no scratchpad port, so the controller runs them beside
it (``docs/architecture.md``); then the ``STORE_W`` commands that bring the resident weights
back to the scratchpad, ``DMA_STORE`` of the weights (and velocities) to their regions and
``DMA_STORE`` of the output into ``logits[s]``.

Where the activation banks have room for the first layer's inputs twice
(:attr:`TrainingProgram.input_places`), the inputs go into the PEs ahead as well: the
``LOAD_COL`` of ``inputs[s + 1]`` into place ``(s + 1) mod 2`` follows the two
``DMA_LOAD`` s, and the core runs it beside the same ``WGRAD`` (its side slot: the load
writes no word the ``WGRAD`` reads, ``hw.controller``); the step of slot ``s`` starts with
its first ``FORWARD`` on place ``s mod 2``, and the prologue ends with the ``LOAD_COL`` of
slot 0.

Without ``prefetch`` there is one buffer (``compile_mlp``'s) and the step of slot ``s``
starts with the ``DMA_LOAD`` of ``inputs[s]`` and ``labels[s]``, which nothing overlaps;
the prologue loads no minibatch. With streamed weights the step's own commands load and
store them in chunks; the step then only stores them to memory.

Host contract
-------------
Steps run in slot order, cyclically: after the prologue the step of slot 0, then 1, ...,
``S - 1``, 0, ...; step ``k`` of a run of steps (counted from the prologue) is slot
``k mod S``'s and writes ``logits[k mod S]``. With ``prefetch``, slot ``s`` must hold
step ``k``'s minibatch (:meth:`TrainingProgram.write_batch`) before the doorbell that loads
it: the prologue's for step 0, step ``k - 1``'s for the others. So before the doorbell of
step ``k`` the host writes step ``k + 1``'s minibatch into slot ``(k + 1) mod S``; the
slot the step computes on was loaded by the previous doorbell and may be overwritten. The
last step of a run loads whatever slot ``(k + 1) mod S`` holds into the other buffer, which
no later command reads until a next step uses it. A host that resumes later at slot ``s``
with a new minibatch writes it into slot ``s`` and rings :meth:`TrainingProgram.load_run`
(the loads of slot ``s`` into its buffer and its place in the PEs) before that step. Without ``prefetch`` slot
``s`` must hold step ``k``'s minibatch before step ``k``'s own doorbell. A run of several
steps (``step_run(steps)``) needs every slot it reads written before its doorbell.

Between steps the weights on chip (in the PEs, or in the scratchpad when streamed) are the
ones the next step uses: a host that changes the weights in the image must run the prologue
again.
"""

import math
from dataclasses import dataclass

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import ceil_div, is_int, is_real
from chrysalis.gen.spec.layout import Allocator
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.mlp import ONE

from .compiler import check_sizes, compile_mlp

__all__ = ["Run", "Region", "MemoryImage", "TrainingProgram", "initial_weights",
           "check_run_arguments", "fp32_words"]

_WORD = 4


@dataclass(frozen=True)
class Run:
    """One doorbell's worth of commands: ``cmd_count`` commands from byte address
    ``cmd_base`` (the values of ``CMD_BASE`` and ``CMD_COUNT``)."""

    cmd_base: int
    cmd_count: int


@dataclass(frozen=True)
class Region:
    """A column-major matrix of 32-bit words in memory.

    Members
    -------
    name : str
    addr : int
        Byte address of column 0 (``mem_base`` included).
    rows : int
        Words of each column that hold data.
    cols : int
        Columns.
    stride : int
        Bytes from one column to the next (the data padded to whole beats).
    """

    name: str
    addr: int
    rows: int
    cols: int
    stride: int

    @property
    def size(self):
        """Bytes the region spans."""
        return self.cols * self.stride

    @property
    def end(self):
        """First byte address after the region."""
        return self.addr + self.size


def initial_weights(sizes, seed):
    """Seeded initial weights of an MLP, as fp32 bit patterns.

    Uniform in ``[-a, a]``: He (``a = sqrt(6 / fan_in)``) for the layers followed by a ReLU,
    Glorot (``a = sqrt(6 / (fan_in + fan_out))``) for the output layer, which feeds the
    softmax; the biases (last column) are zero.

    Parameters
    ----------
    sizes : list of int
        Layer sizes, inputs first.
    seed : int
        Seed of :func:`numpy.random.default_rng`: the same seed gives the same weights.

    Returns
    -------
    list of numpy.ndarray
        Layer ``l`` of shape ``(sizes[l+1], sizes[l] + 1)``, ``uint64`` fp32 bit patterns.
    """
    sizes = check_sizes(sizes)
    if not is_int(seed):
        raise ValueError(f"seed must be an integer, not {seed!r}")
    rng = np.random.default_rng(int(seed))
    weights = []
    layers = len(sizes) - 1
    for l in range(layers):
        fan_in, fan_out = sizes[l], sizes[l + 1]
        limit = math.sqrt(6.0 / (fan_in if l < layers - 1 else fan_in + fan_out))
        w = np.zeros((fan_out, fan_in + 1))
        w[:, :-1] = rng.uniform(-limit, limit, (fan_out, fan_in))
        weights.append(nx.from_float32(w.astype(np.float32)))
    return weights


class MemoryImage:
    """The regions of a program's memory image: laid out one after the other from
    ``mem_base``, each at a multiple of ``_align`` bytes, matrices column-major with each
    column padded to whole beats. A program sets ``regions`` (a dict, ``"commands"`` among them), ``commands``,
    ``_next`` (the next free byte), ``_align``, ``beat_bytes``, ``mem_base`` and
    ``image_words``."""

    def _region(self, name, rows, cols, stride):
        region = Region(name, self._next, rows, cols, stride)
        self.regions[name] = region
        self._next += ceil_div(region.size, self._align) * self._align

    def _matrix_region(self, name, rows, cols):
        self._region(name, rows, cols, ceil_div(_WORD * rows, self.beat_bytes) * self.beat_bytes)

    def _close_layout(self, config, context=""):
        """Set ``image_bytes`` and ``image_words`` once every region is laid out; an image
        past the host's address space is refused (``context``: more of the message)."""
        self.image_bytes = self._next - self.mem_base
        self.image_words = self.image_bytes // _WORD
        top = 1 << config.host.axi_addr_width
        if self._next > top:
            raise ValueError(f"the image needs bytes {self.mem_base:#x} to {self._next - 1:#x}, "
                             f"beyond the {config.host.axi_addr_width}-bit address space "
                             f"(host.axi_addr_width); mem_base = {self.mem_base:#x}{context}")

    def run_commands(self, run):
        """The commands ``run`` (a ``Run`` of this program: its ``cmd_base`` and
        ``cmd_count``) hands the controller, from ``commands``."""
        first = (run.cmd_base - self.regions["commands"].addr) // isa.COMMAND_BYTES
        return self.commands[first:first + run.cmd_count]

    def memory_map(self):
        """The memory map as a Markdown table (addresses in bytes, ``mem_base`` included)."""
        lines = ["| region | first byte | end | columns | words per column | stride (bytes) |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {r.name} | {r.addr:#x} | {r.end:#x} | {r.cols} | {r.rows} | {r.stride} |"
                  for r in self.regions.values()]
        return "\n".join(lines)

    def _check_image(self, image):
        if (not isinstance(image, np.ndarray) or image.dtype != np.uint32
                or image.shape != (self.image_words,)):
            what = (f"a {image.dtype} array of shape {image.shape}"
                    if isinstance(image, np.ndarray) else repr(type(image).__name__))
            raise ValueError(f"image must be a uint32 array of shape ({self.image_words},), "
                             f"not {what}")

    def _view(self, image, region):
        """A writable ``(rows, cols)`` view of ``region`` in ``image``."""
        first = (region.addr - self.mem_base) // _WORD
        per_column = region.stride // _WORD
        block = image[first:first + region.cols * per_column]
        return block.reshape(region.cols, per_column)[:, :region.rows].T

    def _get(self, image, region):
        self._check_image(image)
        return self._view(image, region).astype(np.uint64)


class TrainingProgram(MemoryImage):
    """An MLP training run as a memory image and command streams.

    Parameters
    ----------
    config : gen.spec.config.Config
        The accelerator (one core is used).
    sizes : list of int
        Layer sizes, inputs first (``[64, 32, 10]``).
    batch : int
        Samples per minibatch.
    lr : float
        Learning rate.
    momentum : float, optional
        SGD with momentum ``mu``; needs the weights resident in the PEs (``compile_mlp``
        raises otherwise).
    slots : int, optional
        Minibatch slots in memory: one run can execute up to ``slots`` consecutive steps.
        With ``prefetch`` an even number, 2 by default; without, 1 by default.
    mem_base : int
        Byte address of the image: a multiple of 64.
    store_every_step : bool
        Every step ends by storing the weights (and velocities) back to the image, so the
        image is always current. Without it the weights stay on chip and the host runs
        :attr:`checkpoint` when it wants them (a step is then that much shorter).
    update : str or None
        ``"separate"`` (the default) or ``"fused"`` SGD update, or ``None`` for the
        default where it applies (``sim.compile.compiler.resolve_update``).
    prefetch : bool or None
        ``True``: each step loads the next step's minibatch into a second scratchpad buffer
        beside its last weight-gradient pass (the module docstring's host contract; a
        ``ValueError`` if the scratchpad has no room for the buffer). ``False``: each step
        loads its own minibatch first, with nothing to overlap it. ``None`` (the default):
        prefetch when it applies, that is when the buffer fits and ``slots`` is even or
        not given; :attr:`prefetch` says which.

    Members
    -------
    compiled : sim.compile.compiler.MlpProgram
        The placement on the core and its core commands.
    update : str
        The SGD update the program runs: ``"separate"`` or ``"fused"``.
    beat_bytes : int
        Bytes per AXI beat.
    regions : dict of str to Region
        The memory map, in address order (see the module's docstring).
    commands : list of dict
        Every command of the image, in memory order (``op`` as a name).
    prologue : Run
        Loads the weights (and velocities) and the hidden activations' rows of ones.
    checkpoint : Run
        Stores the weights (and velocities) from the chip into the image.
    prefetch : bool
        Whether the steps prefetch (the ``prefetch`` argument, resolved).
    buffers : list of (Matrix, Matrix)
        The scratchpad's minibatch buffers, ``(inputs, labels)``: two with ``prefetch``
        (slot ``s``'s step computes on buffer ``s % 2``), one without.
    input_places : list of int
        Activation-bank bases of the first layer's inputs in the PEs: two with
        ``prefetch`` where the activation bank has room (slot ``s``'s step reads place
        ``s % 2``, and the step before loads it there), else one.
    load_count : int
        Commands of :meth:`load_run`.
    step_commands : int
        Commands of one step.
    image_words, image_bytes : int
        Size of the memory image in 32-bit words and in bytes.

    Raises
    ------
    ValueError
        A bad argument, a network that does not fit the core (``compile_mlp``'s message), or
        an image that does not fit the address space.
    """

    #: Programs that do not set it (the cluster's) load each step's minibatch first.
    prefetch = False

    def __init__(self, config, sizes, batch, lr, momentum=None, slots=None, mem_base=0,
                 store_every_step=True, update="separate", prefetch=None):
        from chrysalis.gen.spec.config import Config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        sizes = check_sizes(sizes)
        if prefetch is not None and not isinstance(prefetch, bool):
            raise ValueError(f"prefetch must be True, False or None, not {prefetch!r}")
        check_run_arguments(lr, momentum, 1 if slots is None else slots, mem_base)
        if prefetch and slots is not None and slots % 2:
            raise ValueError(f"slots must be even with prefetch (consecutive steps alternate "
                             f"two scratchpad buffers), not {slots!r}")
        self.compiled = prog = compile_mlp(config, sizes, batch, lr, momentum=momentum,
                                           update=update)
        second = _second_buffer(config, prog, required=bool(prefetch))
        if prefetch is None:
            prefetch = second is not None and (slots is None or slots % 2 == 0)
        if slots is None:
            slots = 2 if prefetch else 1
        self.update = prog.update
        self.config = config
        self.sizes, self.batch, self.lr, self.momentum = sizes, batch, lr, momentum
        self.slots, self.mem_base = int(slots), int(mem_base)
        self.beat_bytes = config.host.axi_data_width // 8
        self.prefetch = prefetch
        self.buffers = [(prog.acts[0], prog.labels)] + ([second] if prefetch else [])
        self.input_places = _input_places(config, prog, prefetch)
        layers = len(sizes) - 1

        # The streams' lengths do not depend on addresses, so they are known before the
        # regions are placed: the command region comes first and everything else after it.
        core_prologue = list(prog.load_weights) + list(prog.setup)
        dma_prologue = layers * (1 if momentum is None else 2) + (layers - 1)
        self.store_every_step = bool(store_every_step)
        store = list(prog.store_weights)
        stores = len(store) + len(prog.weights) + len(prog.velocities)
        step_core = list(prog.step) + (store if self.store_every_step else [])
        self.step_commands = 2 + len(prog.step) + 1 + (stores if self.store_every_step else 0)
        prologue_count = dma_prologue + len(core_prologue) + self.load_count
        total = prologue_count + self.slots * self.step_commands + stores

        # Every region starts at a multiple of both the command size and the beat.
        self._align = math.lcm(isa.COMMAND_BYTES, self.beat_bytes)
        self._next = self.mem_base
        self.regions = {}
        self._region("commands", isa.COMMAND_WORDS, total, isa.COMMAND_BYTES)
        for l, matrix in enumerate(prog.weights):
            self._matrix_region(f"weights[{l}]", matrix.n, matrix.batch)
        for l, matrix in enumerate(prog.velocities):
            self._matrix_region(f"velocities[{l}]", matrix.n, matrix.batch)
        for l in range(1, layers):
            self._matrix_region(f"init[{l}]", prog.acts[l].n, batch)
        for s in range(self.slots):
            self._matrix_region(f"inputs[{s}]", prog.acts[0].n, batch)
            self._matrix_region(f"labels[{s}]", 1, batch)
            self._matrix_region(f"logits[{s}]", prog.acts[-1].n, batch)
        self._close_layout(config, f", slots = {self.slots}")

        weights = [("weights", l, m) for l, m in enumerate(prog.weights)]
        weights += [("velocities", l, m) for l, m in enumerate(prog.velocities)]
        prologue = [self._dma("DMA_LOAD", f"{kind}[{l}]", m) for kind, l, m in weights]
        prologue += [self._dma("DMA_LOAD", f"init[{l}]", prog.acts[l])
                     for l in range(1, layers)]
        prologue += core_prologue
        # With prefetch the prologue's last commands load slot 0 (its load_run); the step
        # of slot s - 1 holds slot s's.
        self._loads = {}
        if prefetch:
            self._loads[0] = len(prologue)
            prologue += self._loads_of(0)
        assert len(prologue) == prologue_count
        self.commands = list(prologue)
        for s in range(self.slots):
            if prefetch:
                step = self._prefetching_step(s, step_core)
            else:
                step = self._loads_of(s) + step_core
            if self.store_every_step:
                step += [self._dma("DMA_STORE", f"{kind}[{l}]", m) for kind, l, m in weights]
            step.append(self._dma("DMA_STORE", f"logits[{s}]", prog.acts[-1]))
            assert len(step) == self.step_commands
            self.commands += step
        checkpoint = store + [self._dma("DMA_STORE", f"{kind}[{l}]", m)
                              for kind, l, m in weights]
        self.checkpoint = Run(self.regions["commands"].addr +
                              len(self.commands) * isa.COMMAND_BYTES, len(checkpoint))
        self.commands += checkpoint
        # Encoding now turns a field that does not fit (a layer or a batch beyond the 16
        # bits of n, m or batch) into an error at construction, not at the first image.
        self._words = np.array(isa.encode_stream(self.commands), dtype=np.uint32)
        self._prologue_count = prologue_count
        self.prologue = Run(self.regions["commands"].addr, prologue_count)

    # --- construction helpers ----------------------------------------------------------

    @property
    def load_count(self):
        """Commands that load a slot's minibatch with prefetch (:meth:`load_run`): its two
        ``DMA_LOAD`` s, and its ``LOAD_COL`` into the PEs where the inputs have two places
        in the activation banks (:attr:`input_places`); 0 without prefetch."""
        if not self.prefetch:
            return 0
        return 2 + (len(self.input_places) > 1)

    def _loads_of(self, slot):
        """The ``DMA_LOAD`` s of slot ``slot``'s inputs and labels into its buffer, and with
        two input places the ``LOAD_COL`` of its inputs into its place in the PEs."""
        inputs, labels = self.buffers[slot % len(self.buffers)]
        loads = [self._dma("DMA_LOAD", f"inputs[{slot}]", inputs),
                 self._dma("DMA_LOAD", f"labels[{slot}]", labels)]
        if len(self.input_places) > 1:
            first = self.compiled.step[0]
            loads.append({**first, "sp_base": inputs.base,
                          "abase": self.input_places[slot % 2]})
        return loads

    def _prefetching_step(self, slot, core):
        """Slot ``slot``'s core commands on its buffer, with the loads of the next slot just
        after the last ``WGRAD``: it uses neither scratchpad port nor the activation banks'
        write port, so the controller runs them beside it -- the ``DMA_LOAD`` s and, with
        two input places, the ``LOAD_COL`` of the next inputs into the other place (the
        core's side slot, ``hw.sequencer``). The step's own inputs are then in the PEs
        already: its first ``LOAD_COL`` is dropped and the first layer reads its place."""
        core = _on_buffer(core, self.buffers[0], self.buffers[slot % 2])
        if len(self.input_places) > 1:
            assert core[0]["op"] == "LOAD_COL" and core[0]["abase"] == self.compiled.act_x[0]
            core = [_on_place(c, self.compiled.act_x[0], self.input_places[slot % 2])
                    for c in core[1:]]
        last = max(i for i, c in enumerate(core) if c["op"] == "WGRAD") + 1
        nxt = (slot + 1) % self.slots
        self._loads.setdefault(nxt, len(self.commands) + last)
        return core[:last] + self._loads_of(nxt) + core[last:]

    def _dma(self, op, name, matrix):
        region = self.regions[name]
        assert (region.rows, region.cols) == (matrix.n, matrix.batch), name
        return dict(op=op, n=matrix.n, batch=matrix.batch, mem_addr=region.addr,
                    mem_stride=region.stride, sp_base=matrix.base,
                    sp_lpc=matrix.lines_per_column)

    # --- runs --------------------------------------------------------------------------

    def step_run(self, steps=1, first_slot=0, with_prologue=False):
        """The run of ``steps`` consecutive SGD steps on slots ``first_slot``,
        ``first_slot + 1``, ...: ``step_run(1, s)`` is slot ``s``'s step alone,
        ``step_run(slots)`` every slot back to back.

        Parameters
        ----------
        steps : int
            At least 1; ``first_slot + steps`` at most ``slots``.
        first_slot : int
        with_prologue : bool
            Start with the prologue (it lies just before slot 0's step, so only with
            ``first_slot = 0``): a whole training run in one doorbell.

        Returns
        -------
        Run
        """
        if not is_int(first_slot) or not 0 <= first_slot < self.slots:
            raise ValueError(f"first_slot must be in [0, {self.slots}), not {first_slot!r}")
        if not is_int(steps) or not 1 <= steps <= self.slots - first_slot:
            raise ValueError(f"steps must be in [1, {self.slots - first_slot}] (slots = "
                             f"{self.slots}, first_slot = {first_slot}), not {steps!r}")
        if with_prologue and first_slot:
            raise ValueError(f"with_prologue needs first_slot = 0, not {first_slot!r}")
        first = self._prologue_count + first_slot * self.step_commands
        count = steps * self.step_commands
        if with_prologue:
            first, count = 0, count + self._prologue_count
        return Run(self.regions["commands"].addr + first * isa.COMMAND_BYTES, count)

    def load_run(self, slot):
        """With ``prefetch``: the run of the :attr:`load_count` commands that put slot
        ``slot``'s minibatch into its buffer (``slot % 2``) and, with two input places,
        into its place in the PEs, the commands the prologue (slot 0) or the step of slot
        ``slot - 1`` runs. A host that starts steps at slot ``slot`` without the doorbell
        before it having loaded the minibatch rings this first."""
        self._check_slot(slot)
        if not self.prefetch:
            raise ValueError("load_run is for a program with prefetch; without it every step "
                             "loads its own minibatch")
        return Run(self.regions["commands"].addr + self._loads[slot] * isa.COMMAND_BYTES,
                   self.load_count)

    def slot_of_step(self, step):
        """The slot of step ``step`` of a run of steps counted from the prologue (steps
        run in slot order, cyclically)."""
        if not is_int(step) or step < 0:
            raise ValueError(f"step must be a non-negative integer, not {step!r}")
        return int(step) % self.slots

    # --- the image ---------------------------------------------------------------------

    def initial_image(self, weights, velocities=None):
        """The memory image before training.

        Parameters
        ----------
        weights : list of array_like
            fp32 bit patterns, layer ``l`` of shape ``(sizes[l+1], sizes[l] + 1)`` (bias in
            the last column).
        velocities : list of array_like, optional
            With momentum: the starting velocities (zeros if omitted).

        Returns
        -------
        numpy.ndarray
            ``image_words`` ``uint32`` words: the command streams, the weights and
            velocities, the ``init`` blocks, and every slot's inputs area holding zeros and
            its row of ones (write the minibatches with :meth:`write_batch`); labels and
            logits zero; the padding zero.
        """
        if velocities is not None and self.momentum is None:
            raise ValueError("velocities need momentum, and this program has momentum = None")
        image = np.zeros(self.image_words, dtype=np.uint32)
        commands = self.regions["commands"]
        self._view(image, commands)[:] = self._words.reshape(commands.cols, commands.rows).T
        self._put_layers(image, "weights", weights)
        if self.momentum is not None:
            if velocities is None:
                velocities = [np.zeros((m.n, m.batch), np.uint64)
                              for m in self.compiled.velocities]
            self._put_layers(image, "velocities", velocities)
        for l in range(1, len(self.sizes) - 1):
            region = self.regions[f"init[{l}]"]
            self._view(image, region)[-1] = ONE
        for s in range(self.slots):
            self._view(image, self.regions[f"inputs[{s}]"])[-1] = ONE
        return image

    def write_batch(self, image, slot, x_bits, labels):
        """Write slot ``slot``'s minibatch into ``image`` (in place).

        Parameters
        ----------
        image : numpy.ndarray
            A ``uint32`` image of this program.
        slot : int
        x_bits : array_like
            ``(sizes[0], batch)`` fp32 bit patterns, without the row of ones (it is written
            too, so any image works).
        labels : array_like of int
            ``batch`` classes in ``[0, sizes[-1])``.
        """
        self._check_image(image)
        self._check_slot(slot)
        x = fp32_words("x_bits", x_bits, (self.sizes[0], self.batch))
        labels = np.asarray(labels)
        if labels.shape != (self.batch,):
            raise ValueError(f"labels must have shape ({self.batch},), not {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, not {labels.dtype} values")
        classes = self.sizes[-1]
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if bad.size:
            raise ValueError(f"labels must be in [0, {classes}), not {int(labels[bad[0]])!r} "
                             f"(sample {bad[0]})")
        inputs = self._view(image, self.regions[f"inputs[{slot}]"])
        inputs[:-1] = x
        inputs[-1] = ONE
        self._view(image, self.regions[f"labels[{slot}]"])[0] = labels.astype(np.uint32)

    def read(self, image, name):
        """The words of region ``name`` (``"init[1]"``) in ``image``: a ``(rows, cols)``
        ``uint64`` array without the padding."""
        if name not in self.regions:
            raise ValueError(f"name must be one of {', '.join(self.regions)}, not {name!r}")
        return self._get(image, self.regions[name])

    def read_weights(self, image):
        """The weights in ``image``: a list of ``uint64`` fp32 bit arrays, one per layer."""
        return self._get_layers(image, "weights")

    def read_velocities(self, image):
        """The velocities in ``image`` (momentum only), as :meth:`read_weights`."""
        if self.momentum is None:
            raise ValueError("this program has no velocities: momentum is None")
        return self._get_layers(image, "velocities")

    def read_logits(self, image, slot):
        """The network output of slot ``slot``'s last step: ``(sizes[-1], batch)`` fp32
        bits (``uint64``)."""
        self._check_slot(slot)
        return self._get(image, self.regions[f"logits[{slot}]"])

    def read_labels(self, image, slot):
        """The labels of slot ``slot`` in ``image`` (``int64``)."""
        self._check_slot(slot)
        return self._get(image, self.regions[f"labels[{slot}]"])[0].astype(np.int64)

    def read_inputs(self, image, slot):
        """Slot ``slot``'s inputs as the step loads them: ``(sizes[0] + 1, batch)`` bits
        with the row of ones."""
        self._check_slot(slot)
        return self._get(image, self.regions[f"inputs[{slot}]"])

    # --- image helpers -----------------------------------------------------------------

    def _check_slot(self, slot):
        if not is_int(slot) or not 0 <= slot < self.slots:
            raise ValueError(f"slot must be in [0, {self.slots}), not {slot!r}")

    def _put_layers(self, image, kind, arrays):
        matrices = self.compiled.weights
        if not isinstance(arrays, (list, tuple)) or len(arrays) != len(matrices):
            raise ValueError(f"{kind} must be a list of {len(matrices)} arrays, one per layer, "
                             f"not {_describe(arrays)}")
        for l, (matrix, values) in enumerate(zip(matrices, arrays)):
            self._view(image, self.regions[f"{kind}[{l}]"])[:] = fp32_words(
                f"{kind}[{l}]", values, (matrix.n, matrix.batch))

    def _get_layers(self, image, kind):
        return [self._get(image, self.regions[f"{kind}[{l}]"])
                for l in range(len(self.sizes) - 1)]


def _second_buffer(config, prog, required):
    """The second minibatch buffer of ``prog`` (``compile_mlp``'s placement): an inputs and
    a labels matrix after the last scratchpad line it uses; ``None`` if the scratchpad has
    no room for it (a ``ValueError`` that says so if ``required``)."""
    matrices = [*prog.acts, *prog.grads, prog.labels, *prog.weights, *prog.velocities]
    alloc = Allocator(config.core.scratchpad_words, prog.acts[0].banks)
    alloc.next_line = max(m.base + m.lines for m in matrices)
    try:
        return (alloc.matrix(prog.acts[0].n, prog.batch, "the second inputs buffer"),
                alloc.matrix(prog.labels.n, prog.batch, "the second labels buffer"))
    except ValueError as error:
        if not required:
            return None
        raise ValueError(f"prefetch needs a second minibatch buffer in the scratchpad: "
                         f"{error} (prefetch=False needs none)") from None


def _input_places(config, prog, prefetch):
    """Activation-bank bases of the first layer's inputs: ``compile_mlp``'s, and with
    ``prefetch`` a second one after every other word the step uses, if the activation bank
    has room for it, so that each step loads the next step's inputs into the PEs beside its
    last ``WGRAD``."""
    first = prog.step[0]
    assert first["op"] == "LOAD_COL" and first["abase"] == prog.act_x[0]
    words = ceil_div(first["n"], config.core.cols) * first["batch"]
    if prefetch and prog.act_words + words <= config.pe.act_words:
        return [prog.act_x[0], prog.act_words]
    return [prog.act_x[0]]


def _on_place(command, old, new):
    """``command`` reading the first layer's inputs at activation-bank base ``new`` instead
    of ``old`` (its ``FORWARD`` s and ``WGRAD`` s)."""
    if command["op"] in ("FORWARD", "WGRAD") and command.get("abase") == old:
        return {**command, "abase": new}
    return command


def _on_buffer(commands, old, new):
    """``commands`` with the reads of minibatch buffer ``old`` (``LOAD_COL`` of the inputs,
    ``LOSS_GRAD``'s labels) moved to buffer ``new``."""
    if new is old:
        return list(commands)
    (old_x, old_y), (new_x, new_y) = old, new
    out, moved = [], 0
    for c in commands:
        if c["op"] == "LOAD_COL" and c["sp_base"] == old_x.base:
            c, moved = {**c, "sp_base": new_x.base}, moved + 1
        elif c["op"] == "LOSS_GRAD":
            assert c["sp3_base"] == old_y.base
            c, moved = {**c, "sp3_base": new_y.base}, moved + 1
        out.append(c)
    assert moved == 2, "a step reads its inputs once and its labels once"
    return out


def _describe(value):
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return repr(value)


def check_run_arguments(lr, momentum, slots, mem_base):
    """The checks of a training program's ``lr``, ``momentum``, ``slots`` and ``mem_base``
    (``ValueError`` naming the bad one)."""
    if not is_real(lr) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive number, not {lr!r}")
    if momentum is not None and (not is_real(momentum) or not 0 <= momentum < math.inf):
        raise ValueError(f"momentum must be None or a non-negative number, not "
                         f"{momentum!r}")
    if not is_int(slots) or slots < 1:
        raise ValueError(f"slots must be a positive integer, not {slots!r}")
    if not is_int(mem_base) or mem_base < 0 or mem_base % isa.COMMAND_BYTES:
        raise ValueError(f"mem_base must be a non-negative multiple of "
                         f"{isa.COMMAND_BYTES}, not {mem_base!r}")


def fp32_words(name, values, shape):
    """``values`` as ``uint32`` words of ``shape``: 32-bit patterns, checked."""
    array = np.asarray(values)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer fp32 bit patterns, not {array.dtype} values "
                         f"(convert floats with sim.golden.numerics.from_float32)")
    if array.size and (int(array.min()) < 0 or int(array.max()) > 0xFFFF_FFFF):
        bad = array[(array < 0) | (array > 0xFFFF_FFFF)].flat[0]
        raise ValueError(f"{name} must hold 32-bit patterns in [0, 0xFFFFFFFF], "
                         f"not {int(bad)!r}")
    return array.astype(np.uint32)
