"""Continuous propagation: the layers of an MLP pipelined over the cores of a cluster.

After CATERPILLAR's continuous propagation (CP; Li & Pedram, ASAP 2017): each core of a
cluster (``cluster.cores = c >= 2``) holds a *stage*, a run of consecutive layers, and
samples flow through the stages one **tick** at a time. In a tick every core works on a
different sample: the forward pass of a later sample on an earlier stage overlaps the
backward pass of an earlier sample on a later stage, and every layer is updated once per
sample (batch 1, or a micro-batch of ``batch`` samples, which then plays the part of a
sample below). :class:`CpProgram` makes the memory image and the command streams
(``gen/spec/isa.py``) of such a run; :func:`sim.compile.cp_reference.cp_reference` is the same training rule written
directly on ``sim.golden.core_model``, without commands; :func:`sim.train.cp.train_cp` trains the digits MLP on
the golden cluster machine (``sim.golden.cluster_machine``).

Stages
------
Layer ``l`` maps ``sizes[l]`` inputs to ``sizes[l+1]`` outputs. With ``c`` equal to the
number of layers ``L``, layer ``l`` is stage ``l`` on core ``l``. With ``c < L`` the layers
are cut into ``c`` runs of consecutive layers (:func:`sim.compile.cp_stages.assign_stages`) so that the largest
stage has as few multiply-accumulates per sample as possible (ties: the earlier cut), since
the slowest stage sets the tick. ``c > L`` leaves cores with nothing to do and is refused.

Ticks
-----
Micro-batch ``s`` (``s = 0 .. G-1``, ``G = samples / batch``) enters stage 0 in tick ``s``.
Stage ``k`` runs its forward pass of ``s`` in tick ``s + k`` and its backward pass of ``s``
in tick ``s + k + d_k``, where ``d_k = 2 (c - 1 - k)``: the last stage (``d = 0``) does the
forward pass, the loss gradient and the backward pass of a sample in one tick, and each
stage below gets the gradient two ticks after the one above it (one tick to go up, one to
come back down). A session of ``G`` micro-batches takes ``T = G + 2c - 2`` ticks: ticks
``0 .. 2c - 3`` fill the pipeline (stage ``k`` has no backward work before tick ``2c - 2 -
k``), ticks ``G .. T-1`` drain it (stage ``k`` has no forward work after tick ``G - 1 +
k``); in between every stage is busy.

Order inside a tick, on stage ``k``:

* ``k < c - 1``: first the backward pass of ``s_b = t - k - d_k`` (for each layer of the
  stage from the top: ``LOAD_ROW`` its output gradient, ``BACKWARD`` its input gradient
  through the weights before the update, masked by the ReLU of the stored input, unless it
  is layer 0; ``LOAD_COL`` its stored input; ``WGRAD``, which updates the weights), then the
  forward pass of ``s_f = t - k`` (``LOAD_COL``, ``FORWARD`` with ReLU, per layer upwards).
  The update comes first so that the forward pass sees one more update.
* ``k = c - 1``: the forward pass of ``s = t - k``, ``LOSS_GRAD``, ``DMA_STORE`` of the
  logits, then the backward pass of the same ``s`` (its inputs are still in the PEs).

A tick's stream is: each core's commands -- core 0's starting with the ``DMA_LOAD`` of
micro-batch ``t``'s input, core ``c - 1``'s with that of the labels of micro-batch
``t - c + 1`` -- interleaved round robin (:func:`interleave`; each with its ``cores``
mask, so the controller, which dispatches in order and holds a command until its cores
are idle, starts every core's next command while the others run); then the ``SEND`` s that end
the tick: stage ``k``'s output activations (without the row of ones) to stage ``k + 1``,
and stage ``k``'s masked input gradient to stage ``k - 1``. A ``SEND`` waits for every core,
so the sends are the barrier between ticks. On the one-way ring a forward send is one hop;
a backward send from core ``k`` to ``k - 1`` goes the long way round, ``c - 1`` hops
(``sim.golden.ring.cycles``: ``P(d) = beats + d * hop + ...``; with ``c = 2`` both are one hop).

Staleness (the semantics)
-------------------------
``W_l^v`` is layer ``l``'s weights after ``v`` updates (``W_l^0``: the initial weights).
Every layer is updated once per micro-batch, in micro-batch order, so the update by ``s``
turns ``W_l^s`` into ``W_l^{s+1}``. For micro-batch ``s`` at layer ``l`` of stage ``k``:

* its **forward** pass uses ``W_l^{v}`` with ``v = max(0, s - sigma_k)``, where the
  staleness is ``sigma_k = 2 (c - 1 - k) - 1`` for ``k < c - 1`` and ``sigma_{c-1} = 0``
  (:func:`sim.compile.cp_stages.forward_version`); with ``c = 2``: stage 0 forwards with the weights one update
  old, stage 1 with the current ones;
* its **backward** pass (``dX = W^T dY``, into the layer below) uses ``W_l^s``: every
  earlier micro-batch's update, not its own;
* its **weight gradient** ``dW = dY X^T`` takes ``dY`` from that backward pass and ``X``, the
  layer input that its own forward pass stored (computed through the stale weights below),
  and turns ``W_l^s`` into ``W_l^{s+1} = W_l^s + q(dW) q(-lr)``;
* the ReLU mask of a backward pass is that of the stored activations of the same forward
  pass.

No weights are stashed: a sample's backward pass uses newer weights than its forward pass
did (by ``sigma_k``). With one micro-batch in flight (``samples = batch``, a session per
micro-batch) every version is the current one and CP is plain SGD (``sim.compile.compiler.
golden_step``). The golden machine reproduces these semantics because it runs the stream;
:func:`sim.compile.cp_reference.cp_reference` computes them from the rule above, and the tests hold the two equal
bit for bit.

Storage
-------
Each core keeps the weights of its layers resident in its PEs (``LOAD_W`` once, in the
prologue) and, in its scratchpad, a ring buffer of ``D_k = d_k + 1`` slots per layer for
the layer inputs of the micro-batches in flight (slot ``s mod D_k``; the input of the next
micro-batch arrives by ``SEND`` or DMA before the backward pass that frees a slot, hence
the ``+ 1``), each with its row of ones (the bias input), written once by the prologue.
Besides: a buffer for the stage's output (sent up), one for the gradient that comes down,
one for the input gradient sent down, and on the last stage the logits, their gradient and
the labels. A network whose weights, activation tiles or buffers do not fit a core is
refused with an error that names the config field and its value.

The placement of each stage on its core is :mod:`sim.compile.cp_placement`'s.

Memory map
----------
Byte offsets from ``mem_base``; every region starts at a multiple of 64, matrices are
column-major 32-bit words with each column padded to whole beats (as in
``sim.compile.program``). ``N = samples``:

=========== =========================================================== ==================
region      contents                                                    columns x words
=========== =========================================================== ==================
commands    the prologue, tick 0, tick 1, ..., tick T-1, the checkpoint 64-byte commands
weights[l]  ``W_l``, ``sizes[l+1] x (sizes[l] + 1)``, the bias last     ``(n_l + 1) x n_{l+1}``
init[l]     zeros with a row of ones: the ring of layer ``l``'s inputs  ``D_k B x (n_l + 1)``
inputs      sample ``i`` in column ``i``                                ``N x n_0``
labels      sample ``i``'s class in column ``i``                        ``N x 1``
logits      the network output of sample ``i``'s forward pass           ``N x n_L``
=========== =========================================================== ==================

(``n_l = sizes[l]``, ``B = batch``, ``D_k`` the ring depth of layer ``l``'s core.)

The ticks are one contiguous stream, so any run of consecutive ticks is one doorbell
(:meth:`CpProgram.tick_run`). The stream does not depend on the data: a host runs the
prologue once, then, for each session (an epoch), writes the session's samples
(:meth:`CpProgram.write_samples`) and runs the ticks; the pipeline fills and drains once per
session, and the weights stay on chip between sessions (the :attr:`CpProgram.checkpoint`
copies them into the image).
"""

import math

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import is_int, is_real
from chrysalis.gen.spec.layout import Matrix
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.mlp import ONE

from .compiler import check_sizes, resolve_update, sp_fields
from .cp_placement import place_stages
from .cp_stages import assign_stages
from .program import MemoryImage, Run, fp32_words

__all__ = ["CpProgram", "cp_job", "interleave", "DEFAULT_CP_LR", "DEFAULT_CP_EPOCHS"]

_WORD = 4
#: Batch-1 CP of the digits MLP (64-32-10 on 2 cores, the default preset) at these settings:
#: 97.1% test accuracy after the 8 epochs with seed 0 (95.6% after epoch 3), ``train_cp``.
DEFAULT_CP_LR = 0.02
DEFAULT_CP_EPOCHS = 8


def interleave(streams):
    """One stream from per-core command lists, round robin: each core's commands keep
    their order, and the controller, which dispatches in stream order and holds a command
    until its cores are idle, can start every core's next command while the others run.
    Commands of different cores touch different state (and disjoint memory), so the order
    between them changes no result."""
    out = []
    for i in range(max((len(s) for s in streams), default=0)):
        out += [s[i] for s in streams if i < len(s)]
    return out


def _columns(matrix, first, count):
    """Columns ``first .. first + count - 1`` of a scratchpad matrix, as a matrix."""
    return Matrix(matrix.base + first * matrix.lines_per_column, matrix.n, count,
                  matrix.banks, matrix.lines_per_column)


class CpProgram(MemoryImage):
    """A continuous-propagation training session of an MLP on a cluster, as a memory image
    and command streams (the module's docstring has the semantics and the memory map).

    Parameters
    ----------
    config : gen.spec.config.Config
        A cluster: ``cluster.cores`` from 2 to the number of layers.
    sizes : sequence of int
        Layer sizes, inputs first (``[64, 32, 10]``).
    lr : float
        Learning rate of every update.
    samples : int
        Samples of a session: a multiple of ``batch``; the stream has a tick per micro-batch
        plus ``2c - 2`` to fill and drain the pipeline.
    batch : int
        Samples per micro-batch (per update): 1 is CATERPILLAR's CP.
    mem_base : int
        Byte address of the image: a multiple of 64.
    update : str
        ``"separate"`` (the default: ``WGRAD``'s update pass) or ``"fused"``: the loss
        gradient scaled by ``-lr/batch`` and ``WGRAD`` with its ``fused`` bit, the update
        folded into the weight gradient (``sim.compile.compiler``; one MAC stream only).

    Members
    -------
    stages : list of tuple of int
        The layers of each core (:func:`sim.compile.cp_stages.assign_stages`).
    micro_batches : int
        ``G = samples / batch``.
    ticks : int
        ``T = G + 2c - 2``.
    depths : list of int
        Slots of the input ring buffers of each core, ``2 (c - 1 - k) + 1``.
    regions : dict of str to sim.compile.program.Region
        The memory map, in address order.
    commands : list of dict
        Every command in memory order (``op`` as a name).
    prologue : sim.compile.program.Run
        The weights and the rings' rows of ones into the scratchpads, the weights into the
        PEs.
    checkpoint : sim.compile.program.Run
        The weights from the PEs back into the image.
    tick_counts : list of int
        Commands of each tick.
    image_words, image_bytes : int

    Raises
    ------
    gen.spec.config.ConfigError
        ``cluster.cores`` below 2 or above the number of layers.
    ValueError
        A bad argument, a stage that does not fit its core (the message names the config
        field and its value), or an image beyond the address space.
    """

    def __init__(self, config, sizes, lr, samples, batch=1, mem_base=0, update="separate"):
        from chrysalis.gen.spec.config import Config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        sizes = check_sizes(sizes)
        if not is_real(lr) or not 0 < lr < math.inf:
            raise ValueError(f"lr must be a positive number, not {lr!r}")
        if not is_int(batch) or batch < 1:
            raise ValueError(f"batch must be a positive integer, not {batch!r}")
        if not is_int(samples) or samples < 1 or samples % batch:
            raise ValueError(f"samples must be a positive multiple of batch = {batch}, not "
                             f"{samples!r}")
        if not is_int(mem_base) or mem_base < 0 or mem_base % isa.COMMAND_BYTES:
            raise ValueError(f"mem_base must be a non-negative multiple of "
                             f"{isa.COMMAND_BYTES}, not {mem_base!r}")
        c = config.cluster.cores
        if c > isa.MAX_CORES:
            from chrysalis.gen.spec.config import ConfigError
            raise ConfigError(f"cluster.cores must be at most {isa.MAX_CORES} (the cores "
                              f"mask of a command), not {c!r}")
        self.config, self.sizes, self.lr = config, sizes, float(lr)
        self.batch, self.samples = int(batch), int(samples)
        self.mem_base = int(mem_base)
        self.cores = c
        self.layers = len(sizes) - 1
        self.stages = assign_stages(sizes, c)
        self.micro_batches = self.samples // self.batch
        self.ticks = self.micro_batches + 2 * c - 2
        self.depths = [2 * (c - 1 - k) + 1 for k in range(c)]
        self.beat_bytes = config.host.axi_data_width // 8
        self.stage_of = {l: k for k, ls in enumerate(self.stages) for l in ls}
        self.stage = place_stages(config, sizes, self.stages, self.batch)
        self.update = resolve_update(config, None, update)
        self._neg_lr = nx.fp32_bits(-lr)
        # Fused: the loss gradient carries -lr (one rounding of -lr/b to fp32).
        self._inv_batch = nx.fp32_bits(-lr / self.batch if self.update == "fused"
                                       else 1.0 / self.batch)

        # The streams' lengths do not depend on addresses: build them once with the
        # addresses unknown (zeros), lay out the memory, then build them for real.
        self.regions = {}
        self._layout(dry=True)
        prologue, ticks, checkpoint = self._streams()
        self._layout(dry=False, commands=len(prologue) + sum(map(len, ticks))
                     + len(checkpoint))
        prologue, ticks, checkpoint = self._streams()
        self.tick_counts = [len(t) for t in ticks]
        self.commands = prologue + [c for t in ticks for c in t] + checkpoint
        self._words = np.array(isa.encode_stream(self.commands), dtype=np.uint32)
        base = self.regions["commands"].addr
        self.prologue = Run(base, len(prologue))
        self._tick_first = np.concatenate([[0], np.cumsum(self.tick_counts)]) + len(prologue)
        self.checkpoint = Run(base + int(self._tick_first[-1]) * isa.COMMAND_BYTES,
                              len(checkpoint))

    # --- the memory map ----------------------------------------------------------------

    def _layout(self, dry, commands=0):
        self.regions = {}
        self._align = math.lcm(isa.COMMAND_BYTES, self.beat_bytes)
        self._next = self.mem_base
        if dry:
            return
        sizes, N = self.sizes, self.samples
        self._region("commands", isa.COMMAND_WORDS, commands, isa.COMMAND_BYTES)
        for l in range(self.layers):
            self._matrix_region(f"weights[{l}]", sizes[l + 1], sizes[l] + 1)
        for l in range(self.layers):
            st = self.stage[self.stage_of[l]]
            self._matrix_region(f"init[{l}]", sizes[l] + 1, st.depth * self.batch)
        self._matrix_region("inputs", sizes[0], N)
        self._matrix_region("labels", 1, N)
        self._matrix_region("logits", sizes[-1], N)
        self.image_bytes = self._next - self.mem_base
        self.image_words = self.image_bytes // _WORD
        if self._next > 1 << self.config.host.axi_addr_width:
            raise ValueError(f"the image needs bytes {self.mem_base:#x} to "
                             f"{self._next - 1:#x}, beyond the "
                             f"{self.config.host.axi_addr_width}-bit address space "
                             f"(host.axi_addr_width); samples = {N}")

    def _dma(self, op, name, matrix, core, first=0, count=None):
        """A DMA of columns ``first ..`` of region ``name`` to or from ``matrix``."""
        count = matrix.batch if count is None else count
        region = self.regions.get(name)
        addr = stride = 0
        if region is not None:
            addr, stride = region.addr + first * region.stride, region.stride
        return dict(op=op, n=matrix.n, batch=count, mem_addr=addr, mem_stride=stride,
                    cores=1 << core, **sp_fields(matrix))

    # --- the streams -------------------------------------------------------------------

    def _streams(self):
        prologue, checkpoint = [], []
        for st in self.stage:
            for l in st.layers:
                w = st.weights[l]
                prologue.append(self._dma("DMA_LOAD", f"weights[{l}]", w, st.core))
                prologue.append(self._dma("DMA_LOAD", f"init[{l}]", st.ring[l], st.core))
                prologue.append(dict(op="LOAD_W", m=w.n, n=w.batch, wbase=st.wbase[l],
                                     cores=st.mask, **sp_fields(w)))
                checkpoint.append({**prologue[-1], "op": "STORE_W"})
                checkpoint.append(self._dma("DMA_STORE", f"weights[{l}]", w, st.core))
        ticks = [self._tick(t) for t in range(self.ticks)]
        return prologue, ticks, checkpoint

    def _valid(self, s):
        return 0 <= s < self.micro_batches

    def _slot(self, st, l, s):
        return _columns(st.ring[l], (s % st.depth) * self.batch, self.batch)

    def tick_work(self, t):
        """What each stage does in tick ``t``: a list of ``(backward, forward)`` micro-batch
        numbers per core (``None``: no such work in this tick)."""
        if not is_int(t) or not 0 <= t < self.ticks:
            raise ValueError(f"t must be in [0, {self.ticks}), not {t!r}")
        work = []
        for st in self.stage:
            sf = t - st.core
            sb = sf - st.delay
            work.append((sb if self._valid(sb) else None, sf if self._valid(sf) else None))
        return work

    def versions_after(self, t):
        """The version of each layer's weights after tick ``t`` (``-1``: after the
        prologue): the updates made so far, ``min(G, max(0, t - k - d_k + 1))`` on stage
        ``k``."""
        if not is_int(t) or not -1 <= t < self.ticks:
            raise ValueError(f"t must be in [-1, {self.ticks}), not {t!r}")
        return [min(self.micro_batches,
                    max(0, t - self.stage_of[l] - self.stage[self.stage_of[l]].delay + 1))
                for l in range(self.layers)]

    def _tick(self, t):
        sizes, b, c = self.sizes, self.batch, self.cores
        work = self.tick_work(t)
        # Each core's commands in its own list; the stream interleaves them (below).
        per_core = [[] for _ in range(c)]
        first, last = self.stage[0], self.stage[-1]
        if self._valid(t):
            per_core[0].append(self._dma("DMA_LOAD", "inputs", self._slot(first, 0, t), 0,
                                         first=t * b))
            per_core[0][-1]["n"] = sizes[0]            # the row of ones stays
        if work[-1][1] is not None:
            per_core[c - 1].append(self._dma("DMA_LOAD", "labels", last.labels, c - 1,
                                             first=work[-1][1] * b))
        for st, (sb, sf) in zip(self.stage, work):
            cmds = per_core[st.core]
            if st.core < c - 1:
                if sb is not None:
                    cmds += self._backward(st, sb, reload=True)
                if sf is not None:
                    cmds += self._forward(st, sf)
            elif sf is not None:
                cmds += self._forward(st, sf)
                cmds.append(dict(op="LOSS_GRAD", m=sizes[-1], batch=b, scalar=self._inv_batch,
                                 cores=st.mask, **sp_fields(st.logits),
                                 **sp_fields(st.dlogits, "sp2"), **sp_fields(st.labels, "sp3")))
                cmds.append(self._dma("DMA_STORE", "logits", st.logits, st.core,
                                      first=sf * b))
                cmds += self._backward(st, sf, reload=False)
        cmds = interleave(per_core)
        for st, (sb, sf) in zip(self.stage[:-1], work[:-1]):
            if sf is not None:
                up = self.stage[st.core + 1]
                dest = self._slot(up, up.layers[0], sf)
                cmds.append(dict(op="SEND", root=st.core, peer=up.core, n=st.out.n, batch=b,
                                 **sp_fields(st.out), **sp_fields(dest, "sp2")))
        for st, (sb, sf) in zip(self.stage[1:], work[1:]):
            s = sf if st.core == c - 1 else sb
            if s is not None:
                down = self.stage[st.core - 1]
                cmds.append(dict(op="SEND", root=st.core, peer=down.core,
                                 n=sizes[st.layers[0]], batch=b, **sp_fields(st.dx_out),
                                 **sp_fields(down.dy_in, "sp2")))
        return cmds

    def _forward(self, st, s):
        sizes, b = self.sizes, self.batch
        cmds = []
        for l in st.layers:
            x = self._slot(st, l, s)
            if l == self.layers - 1:
                y = st.logits
            elif l == st.layers[-1]:
                y = st.out
            else:
                y = self._slot(st, l + 1, s)
            cmds.append(dict(op="LOAD_COL", n=sizes[l] + 1, batch=b, abase=st.act_x[l],
                             cores=st.mask, **sp_fields(x)))
            cmds.append(dict(op="FORWARD", m=sizes[l + 1], n=sizes[l] + 1, batch=b,
                             wbase=st.wbase[l], abase=st.act_x[l],
                             flag=int(l < self.layers - 1), cores=st.mask, **sp_fields(y)))
        return cmds

    def _backward(self, st, s, reload):
        sizes, b = self.sizes, self.batch
        cmds = []
        dy = st.dlogits if st.core == self.cores - 1 else st.dy_in
        for l in reversed(st.layers):
            m, n = sizes[l + 1], sizes[l] + 1
            x = self._slot(st, l, s)
            cmds.append(dict(op="LOAD_ROW", m=m, batch=b, abase=st.act_dy[l], cores=st.mask,
                             **sp_fields(dy)))
            dx = None
            if l > 0:
                dx = st.dx_out if l == st.layers[0] else st.grads[l]
                cmds.append(dict(op="BACKWARD", m=m, n=n, batch=b, wbase=st.wbase[l],
                                 abase=st.act_dy[l], flag=1, cores=st.mask, **sp_fields(dx),
                                 **sp_fields(x, "sp2")))
            if reload:
                cmds.append(dict(op="LOAD_COL", n=n, batch=b, abase=st.act_x[l],
                                 cores=st.mask, **sp_fields(x)))
            how = (dict(fused=1) if self.update == "fused" else dict(scalar=self._neg_lr))
            cmds.append(dict(op="WGRAD", m=m, n=n, batch=b, wbase=st.wbase[l],
                             abase=st.act_x[l], abase2=st.act_dy[l], cores=st.mask, **how))
            dy = dx
        return cmds

    # --- runs --------------------------------------------------------------------------

    def tick_run(self, first=0, count=1, with_prologue=False):
        """The run of ticks ``first .. first + count - 1`` (with the prologue before them:
        ``first`` must be 0).

        Returns
        -------
        sim.compile.program.Run
        """
        if not is_int(first) or not 0 <= first < self.ticks:
            raise ValueError(f"first must be in [0, {self.ticks}), not {first!r}")
        if not is_int(count) or not 1 <= count <= self.ticks - first:
            raise ValueError(f"count must be in [1, {self.ticks - first}] (ticks = "
                             f"{self.ticks}, first = {first}), not {count!r}")
        if with_prologue and first:
            raise ValueError(f"with_prologue needs first = 0, not {first!r}")
        start = 0 if with_prologue else int(self._tick_first[first])
        stop = int(self._tick_first[first + count])
        return Run(self.regions["commands"].addr + start * isa.COMMAND_BYTES, stop - start)

    def session_run(self):
        """Every tick of a session (fill, steady state, drain) in one run."""
        return self.tick_run(0, self.ticks)

    # --- the image ---------------------------------------------------------------------

    def initial_image(self, weights):
        """The memory image before training: the commands, ``weights`` (fp32 bit patterns,
        layer ``l`` of shape ``(sizes[l+1], sizes[l] + 1)``), the ``init`` blocks; inputs,
        labels and logits zero (write a session with :meth:`write_samples`)."""
        image = np.zeros(self.image_words, dtype=np.uint32)
        commands = self.regions["commands"]
        self._view(image, commands)[:] = self._words.reshape(commands.cols, commands.rows).T
        if not isinstance(weights, (list, tuple)) or len(weights) != self.layers:
            raise ValueError(f"weights must be a list of {self.layers} arrays, one per layer, "
                             f"not {type(weights).__name__}")
        for l, w in enumerate(weights):
            shape = (self.sizes[l + 1], self.sizes[l] + 1)
            self._view(image, self.regions[f"weights[{l}]"])[:] = fp32_words(f"weights[{l}]", w,
                                                                         shape)
            self._view(image, self.regions[f"init[{l}]"])[-1] = ONE
        return image

    def write_samples(self, image, x_bits, labels):
        """Write a session's samples into ``image`` (in place): ``x_bits`` ``(sizes[0],
        samples)`` fp32 bit patterns, sample ``i`` in column ``i``; ``labels`` ``samples``
        classes."""
        self._check_image(image)
        x = fp32_words("x_bits", x_bits, (self.sizes[0], self.samples))
        labels = np.asarray(labels)
        if labels.shape != (self.samples,) or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be {self.samples} integers, not an array of "
                             f"{labels.dtype} of shape {labels.shape}")
        bad = np.flatnonzero((labels < 0) | (labels >= self.sizes[-1]))
        if bad.size:
            raise ValueError(f"labels must be in [0, {self.sizes[-1]}), not "
                             f"{int(labels[bad[0]])!r} (sample {bad[0]})")
        self._view(image, self.regions["inputs"])[:] = x
        self._view(image, self.regions["labels"])[0] = labels.astype(np.uint32)

    def read_weights(self, image):
        """The weights in ``image`` (after :attr:`checkpoint`): ``uint64`` fp32 bits."""
        return [self._get(image, self.regions[f"weights[{l}]"]) for l in range(self.layers)]

    def read_logits(self, image):
        """Every sample's network output, ``(sizes[-1], samples)`` fp32 bits (``uint64``):
        column ``i`` from sample ``i``'s forward pass."""
        return self._get(image, self.regions["logits"])

    # --- figures -----------------------------------------------------------------------

    def steady_tick(self):
        """A tick in which every stage does all its work (``2c - 2``), or ``None`` when the
        session is too short to have one (``G < 2c - 1``)."""
        t = 2 * self.cores - 2
        return t if t < self.micro_batches else None

    def tick_profile(self, t):
        """Figures of tick ``t`` from its commands, per core: ``useful_macs`` (the
        network's multiply-accumulates, as ``gen.spec.networks.Network.macs`` counts them:
        forward, dX and dW), ``pe_macs`` (MAC
        and update slots times PEs, padding included) and ``core_cycles`` (the core
        commands' cycles, ``sim.golden.core_counts.predict``); and for the tick ``ring_cycles``
        (its ``SEND`` s, ``sim.golden.ring.cycles``) and ``estimate_cycles``: the slowest core plus
        the sends (DMA not counted).

        Returns
        -------
        dict
        """
        from chrysalis.sim.golden import core_counts, ring
        if not is_int(t) or not 0 <= t < self.ticks:
            raise ValueError(f"t must be in [0, {self.ticks}), not {t!r}")
        first = int(self._tick_first[t])
        cmds = self.commands[first:first + self.tick_counts[t]]
        pes = self.config.core.rows * self.config.core.cols
        cores = [dict(useful_macs=0, pe_macs=0, core_cycles=0) for _ in range(self.cores)]
        ring_cycles = 0
        for cmd in cmds:
            op = cmd["op"]
            if op == "SEND":
                ring_cycles += ring.cycles(isa.Opcode.SEND, self.config, cmd["n"],
                                           cmd["batch"], root=cmd["root"], peer=cmd["peer"])
                continue
            if op.startswith("DMA"):
                continue
            k = int(cmd["cores"]).bit_length() - 1
            p = core_counts.predict(self.config, cmd)
            cores[k]["core_cycles"] += p["cycles"]
            cores[k]["pe_macs"] += (p["mac_slots"] + p["update_slots"]) * pes
            m, n, b = cmd.get("m", 0), cmd.get("n", 0), cmd.get("batch", 0)
            # Forward, dX and dW (the update pass of WGRAD is not a MAC).
            if op in ("FORWARD", "BACKWARD", "WGRAD"):
                cores[k]["useful_macs"] += m * n * b
        slowest = max(c["core_cycles"] for c in cores)
        return dict(tick=t, cores=cores, ring_cycles=ring_cycles,
                    estimate_cycles=slowest + ring_cycles)


# ---------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------

def cp_job(program, weights, x_bits, labels, ticks_per_run=None, max_cycles=5_000_000,
           image=None):
    """The job of one session (``sim.compile.job.Job``): the prologue, the ticks in runs of
    ``ticks_per_run`` (default: all in one), and the checkpoint. The samples are written
    into the image. Run it on the RTL (``sim.verify.rtl_job.run_job``) or on the golden cluster
    (``sim.compile.job.run_job_golden(config, job, sim.golden.cluster_machine.ClusterMachine(config))``).
    """
    from chrysalis.sim.compile.job import Job, Run as JobRun
    if image is None:
        image = program.initial_image(weights)
    image = np.array(image, dtype=np.uint32)
    program.write_samples(image, x_bits, labels)
    per = program.ticks if ticks_per_run is None else int(ticks_per_run)
    if per < 1:
        raise ValueError(f"ticks_per_run must be a positive integer, not {ticks_per_run!r}")
    job = Job(image, mem_base=program.mem_base)
    runs = [program.prologue]
    runs += [program.tick_run(t, min(per, program.ticks - t))
             for t in range(0, program.ticks, per)]
    runs.append(program.checkpoint)
    job.runs = [JobRun(r.cmd_base, r.cmd_count, max_cycles=max_cycles) for r in runs]
    return job
