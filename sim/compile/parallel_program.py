"""MLP training on a cluster: data parallel and model parallel, as a memory image and
command streams (``gen/spec/isa.py``).

A :class:`ParallelProgram` is the cluster's :class:`sim.compile.program.TrainingProgram`: one memory
image with the command streams, the weights, the minibatches and the network outputs, run by
:class:`sim.golden.cluster_machine.ClusterMachine` (or the RTL of the cluster) with the same
doorbells: :attr:`~ParallelProgram.prologue`, one :meth:`~sim.compile.program.TrainingProgram.
step_run` per SGD step and :attr:`~ParallelProgram.checkpoint`. It uses only the command set:
core and DMA commands with ``cores`` masks (0: every core) and the ring's collectives
(``sim/golden/ring.py``). Every core holds its data at the same scratchpad, weight-bank and
activation-bank addresses, which is what a collective needs. Every weight stays in the PEs
(the layers are not streamed).

Data parallel (``mode="data"``)
-------------------------------
The minibatch of ``B`` samples is split over the ``c`` cores: core ``k`` takes the ``B/c``
consecutive samples from ``k B/c`` (``B`` must be a multiple of ``c``). The weights are
replicated: the prologue loads the same weights into every core (``DMA_LOAD`` with mask 0).
A step: each core loads its shard (``DMA_LOAD`` with mask ``1 << k``), runs the forward
pass, the loss gradient with ``scalar = 1/B`` (the global batch, so that the sum over the
cores is the gradient of the mean loss) and the backward pass. Each layer's weight
gradient is summed over the cores **before** the update. The core has no "gradient only"
command, so a layer's update is made of these commands, with a gradient region ``G`` in the
weight bank beside ``W`` (written ``q`` for the rounding to the operand format):

a. ``WGRAD`` with ``flag = 1`` (the momentum pass), ``scalar2 = mu = +0``, ``scalar = +0``
   (``lr = 0``) and ``wbase2 = G``: the velocity pass writes ``v = acc + q(v_old) q(+0) =
   acc``, the local gradient, exactly, into ``G`` (the product is a zero, ``acc`` is never
   ``-0``); the update pass adds ``q(v) q(+0) = +-0`` to ``W``, which leaves every weight
   unchanged except that a ``-0`` weight can become ``+0`` (the same value);
b. ``STORE_W`` of ``G`` to the scratchpad (``m`` rows, ``n`` columns of the layer);
c. ``ALL_REDUCE`` of that matrix (``n`` = the layer's rows, ``batch`` = its columns): every
   core receives the sum of the cores' gradients, added in the ring's chain order
   (``sim.golden.ring.chain_order``: rows in chunks of ``ceil(m/c)``, chunk ``j`` added from core
   ``j + 1`` round to core ``j``);
d. ``LOAD_W`` of the sum back into ``G``;
e. ``WGRAD`` with ``flag = 1``, ``batch = 1``, ``abase = abase2`` = a region of zeros in the
   activation bank (so the MAC pass gives ``acc = +0``), ``scalar2 = mu = 1.0`` and
   ``scalar = -lr``: the velocity pass gives ``v = +0 + q(G) * 1 = q(G)`` exactly, and the
   update ``W += q(q(G)) q(-lr) = q(G) q(-lr)``: the one-core rule
   (``sim.golden.core_model.update``) with ``dW`` replaced by the summed gradient.

The weights therefore stay identical in every core. Plain SGD only: momentum would need a
velocity that the unrounded summed gradient is added to, and step e can only add ``q(G)``
(refused).

The result can differ from one core's training on the same minibatches in the last bits:
the weight gradient of the whole batch is summed in another grouping (per core, then over
the ring) than one core's chain over the batch. The update multiplies ``q(dW)``, so with a
narrow operand format (bf16) the rounding usually absorbs the difference; with fp32
operands it shows.

Model parallel (``mode="model"``)
---------------------------------
Every hidden layer's ``M`` outputs are split into ``c`` row panels of ``P = M/c`` rows: core
``k`` holds rows ``k P .. k P + P - 1`` of ``W`` (with their bias column). ``P`` must be a
multiple of ``core.rows`` and of the scratchpad banks, so a panel keeps the PE mapping of
the whole matrix and starts at a scratchpad line. The output layer (whose classes do not
split evenly) is replicated, and every core computes the whole loss gradient. A step:

* forward: each core computes its panel ``Y_k`` (ReLU) into its own rows ``k P ..`` of the
  next layer's input matrix (a ``FORWARD`` per core, mask ``1 << k``), and an in-place
  ``ALL_GATHER`` (``flag``: no copy of the own panel) builds the whole activation there,
  whose last row of ones (the bias input) stays; the output layer runs on every core;
* backward: the output layer's ``BACKWARD`` gives the whole ``dX`` (ReLU-masked) on every
  core, and each core ``LOAD_ROW`` s its own panel of it (a command per core, mask
  ``1 << k``); below a split layer, each core's ``BACKWARD`` gives a partial
  ``W_k^T dY_k`` (masked), and a ``REDUCE_SCATTER`` (``c P`` rows to ``P``) gives each core
  its panel of the sum, chunk ``k`` added from core ``k + 1`` round to core ``k``, after
  the layer's ``WGRAD``, which reads neither (the ``WGRAD`` starts beside the
  ``BACKWARD``'s last drain, and the collective beside the ``WGRAD``: ``hw.controller``);
* ``WGRAD`` on every core's panel (and on the replicated output layer); with momentum each
  weight's velocity sits beside it in the same core (``wbase2``), so the update is one
  core's rule.

A panel's weight gradient needs no sum over the cores: it comes from the core's own rows of
``dY`` (its load of the output layer's ``dX``, or its chunk of the reduce-scatter) and the
whole gathered input ``X``, and the replicated output layer's gradient is the same on every
core (each computes the whole loss gradient). So model parallel can run the fused update
(``update="fused"``, ``sim.compile.compiler``): ``LOSS_GRAD``'s scale is ``-lr/B`` on every
core, every gradient of the backward pass (and the reduce-scatter's partial sums) carries
``-lr``, and each ``WGRAD`` has its ``fused`` bit, one core's fused rule on each panel. Data
parallel sums the weight gradients over the cores before the update, so it keeps the
separate update (a ``"fused"`` request is refused).

The forward pass computes every output as one core does (a row's dot product does not
depend on which rows a core holds), so the logits equal one core's bit for bit; with one
hidden layer the whole step does. A deeper net's input gradients are summed over the
cores in the reduce-scatter's order, which can differ from one core's in the last bits.

The image
---------
Regions (byte addresses from ``mem_base``, each at a multiple of 64): ``weights[l]`` (data
parallel, and the replicated output layer), ``weights[l][k]`` (model parallel: core
``k``'s panel of hidden layer ``l``), ``velocities[l]`` and ``velocities[l][k]`` likewise
(model parallel with momentum), ``init[l]`` (zeros and a row of ones, the hidden
layers' bias input, ``B/c`` columns in data parallel), ``zeros`` (data parallel: the zero
column of step e), then per slot ``inputs[s]``, ``labels[s]`` and ``logits[s]`` of the whole
minibatch, and last the commands: the prologue, the steps of the slots, the checkpoint. A
step's logits are stored by every core for its samples (data) or by core 0 (model);
:meth:`ParallelProgram.read_weights` joins the panels into whole matrices.

:func:`sim.train.parallel.train_parallel` trains the digits MLP with these programs on the
golden cluster model; :func:`parallel_job` makes the same run a :class:`sim.compile.job.Job`
for the RTL; :func:`sim.compile.parallel_reference.golden_parallel_step` is the NumPy
(``sim.golden.core_model``) value of a step; :mod:`sim.compile.parallel_panels` splits a
layer into row panels.
"""

import math

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import is_int
from chrysalis.gen.spec.layout import Allocator, Matrix, bank_count, tiles
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.mlp import ONE

from .compiler import check_sizes, resolve_update, sp_fields
from .parallel_panels import join_rows, rows_of, split_rows
from .program import Run, TrainingProgram, check_run_arguments, fp32_words

__all__ = ["MODES", "ParallelProgram", "parallel_job", "resolve_parallel_update"]

#: The ways to train on a cluster.
MODES = ("data", "model")

_WORD = 4


def resolve_parallel_update(config, mode, momentum, update):
    """The update a ``mode`` run gets: model parallel as one core
    (``sim.compile.compiler.resolve_update``: ``None`` is ``"fused"`` where it applies);
    data parallel always ``"separate"`` (its weight gradients are all-reduced before the
    update), and a ``"fused"`` request is a ``ValueError`` that names the mode."""
    if mode == "data":
        if update == "fused":
            raise ValueError("data parallel all-reduces the weight gradients before the "
                             "update, so mode 'data' keeps the separate update: update must "
                             "be 'separate', not 'fused'")
        return resolve_update(config, momentum, "separate" if update is None else update)
    return resolve_update(config, momentum, update)


class ParallelProgram(TrainingProgram):
    """An MLP training run on a cluster, data or model parallel, as a memory image and
    command streams.

    It is used as a :class:`sim.compile.program.TrainingProgram` is (and shares its memory-image
    methods: :meth:`step_run`, :meth:`write_batch` of the whole minibatch,
    :meth:`read_logits`, :meth:`read_labels`, :meth:`read_inputs`, :meth:`read`,
    :meth:`memory_map`), so :func:`sim.verify.rtl_job.training_job` builds its job as well.

    Parameters
    ----------
    config : gen.spec.config.Config
        A cluster: ``cluster.cores`` from 2 to ``gen.spec.isa.MAX_CORES``.
    sizes : list of int
        Layer sizes, inputs first.
    batch : int
        Samples per minibatch (over the whole cluster).
    lr : float
        Learning rate.
    mode : {"data", "model"}
        Data parallel (the minibatch split over the cores, the weight gradients
        all-reduced) or model parallel (row panels of the hidden layers).
    momentum : float, optional
        SGD with momentum ``mu`` (model parallel only; data parallel refuses it).
    slots : int
        Minibatch slots in memory.
    mem_base : int
        Byte address of the image: a multiple of 64.
    store_every_step : bool
        Every step ends with the checkpoint's commands (the weights into the image).
    update : str or None
        ``"separate"`` (the default) or ``"fused"`` SGD update (model parallel only), or
        ``None`` for the default where it applies (:func:`resolve_parallel_update`).

    Members
    -------
    cores : int
    update : str
        The SGD update the program runs: ``"separate"`` or ``"fused"``.
    local_batch : int
        Samples each core computes: ``batch / cores`` (data) or ``batch`` (model).
    local_rows : list of int
        Rows of each layer's weights on a core: the panel rows of a split layer.
    split : list of bool
        Whether each layer is split into row panels (model parallel's hidden layers).
    weights_sp : list of gen.spec.layout.Matrix
        Where each layer's (local) weights are in the scratchpad for the prologue and the
        checkpoint.
    wbase, gbase, vbase : list of int
        Weight-bank bases of each layer's weights, (data parallel) gradient region G and
        (model parallel with momentum) velocities.
    acts, grads : list of gen.spec.layout.Matrix
        As in ``sim.compile.compiler.MlpProgram``, with ``local_batch`` columns; model parallel:
        ``grads[l]`` of a split layer is the core's panel, except below the output layer,
        where it is the whole ``dX`` of the output layer (each core loads its panel).
    step_core : list of dict
        The core commands and collectives of one step (the step without its DMA).
    regions, commands, prologue, checkpoint, step_commands, image_words, image_bytes :
        As in :class:`sim.compile.program.TrainingProgram`.

    Raises
    ------
    ValueError
        A bad argument; a batch that does not split over the cores; a hidden layer whose
        panels do not align; a network that does not fit a core (the message names the
        config field and its value).
    """

    def __init__(self, config, sizes, batch, lr, mode="data", momentum=None, slots=1,
                 mem_base=0, store_every_step=False, update="separate"):
        from chrysalis.gen.spec.config import Config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        c = config.cluster.cores
        if not 2 <= c <= isa.MAX_CORES:
            raise ValueError(f"parallel training needs a cluster: cluster.cores must be "
                             f"between 2 and {isa.MAX_CORES}, not {c!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")
        sizes = check_sizes(sizes)
        if not is_int(batch) or batch < 1:
            raise ValueError(f"batch must be a positive integer, not {batch!r}")
        check_run_arguments(lr, momentum, slots, mem_base)
        if momentum is not None and mode == "data":
            raise ValueError(f"data parallel is plain SGD: the update of the all-reduced "
                             f"gradient leaves no place for a velocity, so momentum must be "
                             f"None, not {momentum!r}")
        self.update = resolve_parallel_update(config, mode, momentum, update)
        self.config, self.mode, self.cores = config, mode, c
        self.sizes, self.batch, self.lr, self.momentum = sizes, int(batch), lr, momentum
        self.slots, self.mem_base = int(slots), int(mem_base)
        self.store_every_step = bool(store_every_step)
        self.beat_bytes = config.host.axi_data_width // 8
        R, C = config.core.rows, config.core.cols
        banks = bank_count(R, C)
        layers = len(sizes) - 1
        self._layout(config, sizes, c, R, C, banks, layers)
        self._place_memory(layers)
        self._build_streams(layers)

    # --- construction ------------------------------------------------------------------

    def _layout(self, config, sizes, c, R, C, banks, layers):
        """The per-core placement: local shapes, scratchpad matrices, bank addresses."""
        batch = self.batch
        if self.mode == "data":
            if batch % c:
                raise ValueError(f"data parallel splits the minibatch over cluster.cores = {c} "
                                 f"cores, so batch must be a multiple of {c}, not {batch!r}")
            self.local_batch = batch // c
            self.split = [False] * layers
            self.local_rows = sizes[1:]
        else:
            if layers < 2:
                raise ValueError(f"model parallel splits the hidden layers, and sizes "
                                 f"{sizes!r} has none")
            for l in range(layers - 1):
                m = sizes[l + 1]
                if m % c:
                    raise ValueError(f"model parallel splits layer {l}'s {m} outputs into "
                                     f"cluster.cores = {c} panels: {m} is not a multiple "
                                     f"of {c}")
                panel = m // c
                if panel % R or panel % banks:
                    raise ValueError(f"model parallel splits layer {l}'s {m} outputs into "
                                     f"cluster.cores = {c} panels of {panel} rows, which must "
                                     f"be a multiple of core.rows = {R} and of the {banks} "
                                     f"scratchpad banks, not {panel}")
            self.local_batch = batch
            self.split = [l < layers - 1 for l in range(layers)]
            self.local_rows = [sizes[l + 1] // c if self.split[l] else sizes[l + 1]
                               for l in range(layers)]
        bl = self.local_batch
        alloc = Allocator(config.core.scratchpad_words, banks)

        def matrix(n, cols, what):
            try:
                return alloc.matrix(n, cols, what)
            except ValueError as error:
                raise ValueError(f"{error} (core.scratchpad_words = "
                                 f"{config.core.scratchpad_words})") from None

        cols = [s + 1 for s in sizes[:-1]]                  # a layer's columns, with the bias
        self.acts = [matrix(sizes[l] + (1 if l < layers else 0), bl,
                            f"activations of layer {l}") for l in range(layers + 1)]
        if self.mode == "data":
            self.grads = [matrix(sizes[l + 1] + 1, bl, f"gradient of layer {l}")
                          for l in range(layers)]
        else:
            self.grads = [None] * layers
            self.grads[-1] = matrix(sizes[-1], bl, f"gradient of layer {layers - 1}")
            self.grads[-2] = matrix(sizes[-2] + 1, bl, f"gradient of layer {layers - 2}")
            for l in range(layers - 2):
                self.grads[l] = matrix(self.local_rows[l], bl, f"gradient panel of layer {l}")
        self.labels_sp = matrix(1, bl, "labels")
        self.weights_sp = [matrix(self.local_rows[l], cols[l], f"weights of layer {l}")
                           for l in range(layers)]
        if self.mode == "data":
            # One pair of buffers for the all-reduce of every layer's gradient.
            rows, width = max(self.local_rows), max(cols)
            self.gsum_src = matrix(rows, width, "gradients to sum")
            self.gsum_dst = matrix(rows, width, "summed gradients")
        else:
            self.partial_sp = (matrix(max(sizes[1:-1]) + 1, bl, "partial input gradient")
                               if layers > 2 else None)

        # Activation banks: each layer's input and output-gradient tiles (as the compiler).
        act_next = 0
        self.act_x, self.act_dy, shapes = [], [], []
        for l in range(layers):
            m, n = self.local_rows[l], cols[l]
            shapes.append((m, n, tiles(m, R), tiles(n, C)))
            self.act_x.append(act_next)
            act_next += tiles(n, C) * bl
            self.act_dy.append(act_next)
            act_next += tiles(m, R) * bl
        if self.mode == "data":
            # Step e's zero column: LOAD_ROW of a zero matrix writes tiles(zero_rows, R)
            # zeros to every PE, enough for the X and dY tiles of any layer.
            zero_tiles = max(max(mt, nt) for m, n, mt, nt in shapes)
            self.zero_rows = zero_tiles * R
            self.zeros_sp = matrix(self.zero_rows, 1, "zeros")
            self.act_zero = act_next
            act_next += zero_tiles
        if act_next > config.pe.act_words:
            raise ValueError(f"inputs and gradients need {act_next} words per PE, more than "
                             f"pe.act_words = {config.pe.act_words}")
        # Weight banks: every layer's weights (and, data parallel, its gradient region G).
        resident = [mt * nt for m, n, mt, nt in shapes]
        self.wbase = [sum(resident[:l]) for l in range(layers)]
        second = self.mode == "data" or self.momentum is not None
        self.gbase = ([sum(resident) + b for b in self.wbase] if self.mode == "data" else [])
        self.vbase = ([sum(resident) + b for b in self.wbase]
                      if self.momentum is not None else [])
        need = sum(resident) * (2 if second else 1)
        if need > config.pe.weight_words:
            what = ("the weights and their gradient regions" if self.mode == "data" else
                    "the weights and their velocities" if second else "the weights")
            raise ValueError(f"{what} need {need} words per PE, more than pe.weight_words = "
                             f"{config.pe.weight_words}: parallel training keeps every "
                             f"weight in the PEs")
        self._shapes = shapes

    def _place_memory(self, layers):
        """The memory regions; the commands go last, once their count is known."""
        self._align = math.lcm(isa.COMMAND_BYTES, self.beat_bytes)
        self._next = self.mem_base
        self.regions = {}
        sizes, c, bl = self.sizes, self.cores, self.local_batch
        kinds = ("weights",) if self.momentum is None else ("weights", "velocities")
        for kind in kinds:
            for l in range(layers):
                n = sizes[l] + 1
                if self.split[l]:
                    for k in range(c):
                        self._matrix_region(f"{kind}[{l}][{k}]", self.local_rows[l], n)
                else:
                    self._matrix_region(f"{kind}[{l}]", sizes[l + 1], n)
        for l in range(1, layers):
            self._matrix_region(f"init[{l}]", sizes[l] + 1, bl)
        if self.mode == "data":
            self._matrix_region("zeros", self.zero_rows, 1)
        for s in range(self.slots):
            self._matrix_region(f"inputs[{s}]", sizes[0] + 1, self.batch)
            self._matrix_region(f"labels[{s}]", 1, self.batch)
            self._matrix_region(f"logits[{s}]", sizes[-1], self.batch)

    def _dma(self, op, name, matrix, cores=0, col0=0):
        """A DMA of ``matrix`` (``matrix.batch`` columns) from column ``col0`` of region
        ``name``, on the cores of the mask."""
        region = self.regions[name]
        assert region.rows == matrix.n and col0 + matrix.batch <= region.cols, name
        return dict(op=op, n=matrix.n, batch=matrix.batch,
                    mem_addr=region.addr + col0 * region.stride, mem_stride=region.stride,
                    cores=cores, **sp_fields(matrix))

    def _build_streams(self, layers):
        c, bl = self.cores, self.local_batch
        data = self.mode == "data"
        W = self.weights_sp

        def load_w(l, op="LOAD_W", wbase=None, cores=0):
            m, n, mt, nt = self._shapes[l]
            return dict(op=op, m=m, n=n, wbase=self.wbase[l] if wbase is None else wbase,
                        cores=cores, **sp_fields(W[l]))

        def move(op, kind, l):
            """DMA of layer ``l``'s weights (or velocities): each core its panel."""
            if self.split[l]:
                return [self._dma(op, f"{kind}[{l}][{k}]", W[l], 1 << k) for k in range(c)]
            return [self._dma(op, f"{kind}[{l}]", W[l], 1 if op == "DMA_STORE" else 0)]

        # The prologue: weights (each core its panel), bias inputs, the weights into the PEs;
        # the velocities pass through the same scratchpad matrices after the weights.
        prologue = [cmd for l in range(layers) for cmd in move("DMA_LOAD", "weights", l)]
        prologue += [self._dma("DMA_LOAD", f"init[{l}]", self.acts[l])
                     for l in range(1, layers)]
        if data:
            prologue.append(self._dma("DMA_LOAD", "zeros", self.zeros_sp))
            prologue.append(dict(op="LOAD_ROW", m=self.zero_rows, batch=1, abase=self.act_zero,
                                 **sp_fields(self.zeros_sp)))
        prologue += [load_w(l) for l in range(layers)]
        if data:
            # Step a reads G as a velocity times +0: any finite value does; start from W.
            prologue += [load_w(l, wbase=self.gbase[l]) for l in range(layers)]
        if self.momentum is not None:
            prologue += [cmd for l in range(layers) for cmd in move("DMA_LOAD", "velocities", l)]
            prologue += [load_w(l, wbase=self.vbase[l]) for l in range(layers)]

        # The checkpoint: the weights (and velocities) from the PEs into the image (data
        # parallel: core 0's, which every core has).
        mask = 1 if data else 0
        checkpoint = [load_w(l, "STORE_W", cores=mask) for l in range(layers)]
        checkpoint += [cmd for l in range(layers) for cmd in move("DMA_STORE", "weights", l)]
        if self.momentum is not None:
            checkpoint += [load_w(l, "STORE_W", wbase=self.vbase[l]) for l in range(layers)]
            checkpoint += [cmd for l in range(layers)
                           for cmd in move("DMA_STORE", "velocities", l)]

        core = self._core_step(layers)
        self.step_core = core

        def step_of(s):
            if data:
                step = [self._dma("DMA_LOAD", f"inputs[{s}]", self.acts[0], 1 << k, k * bl)
                        for k in range(c)]
                step += [self._dma("DMA_LOAD", f"labels[{s}]", self.labels_sp, 1 << k, k * bl)
                         for k in range(c)]
            else:
                step = [self._dma("DMA_LOAD", f"inputs[{s}]", self.acts[0]),
                        self._dma("DMA_LOAD", f"labels[{s}]", self.labels_sp)]
            step += core
            if self.store_every_step:
                step += checkpoint
            if data:
                step += [self._dma("DMA_STORE", f"logits[{s}]", self.acts[-1], 1 << k, k * bl)
                         for k in range(c)]
            else:
                step.append(self._dma("DMA_STORE", f"logits[{s}]", self.acts[-1], 1))
            return step

        steps = [step_of(s) for s in range(self.slots)]
        self.step_commands = len(steps[0])
        self._prologue_count = len(prologue)
        total = len(prologue) + self.slots * self.step_commands + len(checkpoint)
        self._region("commands", isa.COMMAND_WORDS, total, isa.COMMAND_BYTES)
        self.image_bytes = self._next - self.mem_base
        self.image_words = self.image_bytes // _WORD
        top = 1 << self.config.host.axi_addr_width
        if self._next > top:
            raise ValueError(f"the image needs bytes {self.mem_base:#x} to {self._next - 1:#x}, "
                             f"beyond the {self.config.host.axi_addr_width}-bit address space "
                             f"(host.axi_addr_width); mem_base = {self.mem_base:#x}, "
                             f"slots = {self.slots}")
        self.commands = list(prologue) + [cmd for step in steps for cmd in step]
        base = self.regions["commands"].addr
        self.prologue = Run(base, len(prologue))
        self.checkpoint = Run(base + len(self.commands) * isa.COMMAND_BYTES, len(checkpoint))
        self.commands += checkpoint
        # Encoding now turns a field that does not fit into an error at construction.
        self._words = np.array(isa.encode_stream(self.commands), dtype=np.uint32)

    def _core_step(self, layers):
        """The core commands and collectives of one step (no DMA)."""
        c, bl = self.cores, self.local_batch
        sizes = self.sizes
        data = self.mode == "data"
        acts, grads = self.acts, self.grads
        cmds = []
        for l in range(layers):
            m, n, mt, nt = self._shapes[l]
            hidden = l < layers - 1
            cmds.append(dict(op="LOAD_COL", n=n, batch=bl, abase=self.act_x[l],
                             **sp_fields(acts[l])))
            if self.split[l]:
                # Each core writes its panel straight into its rows k*m.. of the next input
                # (a command per core), and the in-place ALL_GATHER (flag) sends the panels
                # round the ring without copying the own one; the row of ones stays.
                cmds += [dict(op="FORWARD", m=m, n=n, batch=bl, wbase=self.wbase[l],
                              abase=self.act_x[l], flag=1, cores=1 << k,
                              **sp_fields(rows_of(acts[l + 1], k * m, m))) for k in range(c)]
                cmds.append(dict(op="ALL_GATHER", flag=1, n=m, batch=bl,
                                 **sp_fields(rows_of(acts[l + 1], 0, m)),
                                 **sp_fields(acts[l + 1], "sp2")))
            else:
                cmds.append(dict(op="FORWARD", m=m, n=n, batch=bl, wbase=self.wbase[l],
                                 abase=self.act_x[l], flag=int(hidden), **sp_fields(acts[l + 1])))
        fused = self.update == "fused"
        # Fused: the loss gradient carries -lr (one rounding of -lr/B to fp32).
        scale = -self.lr / self.batch if fused else 1.0 / self.batch
        cmds.append(dict(op="LOSS_GRAD", m=sizes[-1], batch=bl,
                         scalar=nx.fp32_bits(scale), **sp_fields(acts[-1]),
                         **sp_fields(grads[-1], "sp2"), **sp_fields(self.labels_sp, "sp3")))
        for l in reversed(range(layers)):
            m, n, mt, nt = self._shapes[l]
            if self.split[l] and l == layers - 2:
                # Each core's panel of the output layer's whole dX.
                cmds += [dict(op="LOAD_ROW", m=m, batch=bl, abase=self.act_dy[l], cores=1 << k,
                              **sp_fields(rows_of(grads[l], k * m, m))) for k in range(c)]
            else:
                cmds.append(dict(op="LOAD_ROW", m=m, batch=bl, abase=self.act_dy[l],
                                 **sp_fields(grads[l])))
            gather = []
            if l > 0:
                below_split = self.split[l - 1] and self.split[l]
                target = self.partial_sp if below_split else grads[l - 1]
                cmds.append(dict(op="BACKWARD", m=m, n=n, batch=bl, wbase=self.wbase[l],
                                 abase=self.act_dy[l], flag=1, **sp_fields(target),
                                 **sp_fields(acts[l], "sp2")))
                if below_split:
                    # The partial sums of every core: core k keeps its panel of the sum.
                    # After the WGRAD, which reads neither: the WGRAD starts beside the
                    # BACKWARD's last drain, and the collective beside the WGRAD.
                    gather.append(dict(op="REDUCE_SCATTER", n=self.local_rows[l - 1],
                                       batch=bl, **sp_fields(target),
                                       **sp_fields(grads[l - 1], "sp2")))
            if data:
                cmds += self._allreduce_update(l)
            else:
                if fused:
                    how = dict(fused=1)
                elif self.momentum is None:
                    how = dict(scalar=nx.fp32_bits(-self.lr))
                else:
                    how = dict(scalar=nx.fp32_bits(-self.lr), flag=1, wbase2=self.vbase[l],
                               scalar2=nx.fp32_bits(self.momentum))
                cmds.append(dict(op="WGRAD", m=m, n=n, batch=bl, wbase=self.wbase[l],
                                 abase=self.act_x[l], abase2=self.act_dy[l], **how))
            cmds += gather
        return cmds

    def _allreduce_update(self, l):
        """Steps a to e of the module's docstring for layer ``l``."""
        m, n, mt, nt = self._shapes[l]
        src = Matrix(self.gsum_src.base, m, n, self.gsum_src.banks)
        dst = Matrix(self.gsum_dst.base, m, n, self.gsum_dst.banks)
        return [
            # a. the local gradient into G; W + q(G) * q(+0) leaves W as it is.
            dict(op="WGRAD", flag=1, m=m, n=n, batch=self.local_batch, wbase=self.wbase[l],
                 wbase2=self.gbase[l], abase=self.act_x[l], abase2=self.act_dy[l],
                 scalar=0, scalar2=0),
            # b-d. G to the scratchpad, summed over the cores, back into G.
            dict(op="STORE_W", m=m, n=n, wbase=self.gbase[l], **sp_fields(src)),
            dict(op="ALL_REDUCE", n=m, batch=n, **sp_fields(src), **sp_fields(dst, "sp2")),
            dict(op="LOAD_W", m=m, n=n, wbase=self.gbase[l], **sp_fields(dst)),
            # e. zero inputs: acc = +0, v = +0 + q(G) * 1, W += q(v) * q(-lr).
            dict(op="WGRAD", flag=1, m=m, n=n, batch=1, wbase=self.wbase[l],
                 wbase2=self.gbase[l], abase=self.act_zero, abase2=self.act_zero,
                 scalar=nx.fp32_bits(-self.lr), scalar2=nx.fp32_bits(1.0)),
        ]

    # --- the image ---------------------------------------------------------------------

    def initial_image(self, weights, velocities=None):
        """The memory image before training.

        Parameters
        ----------
        weights : list of array_like
            The whole network's fp32 bit patterns, layer ``l`` of shape
            ``(sizes[l+1], sizes[l] + 1)`` (bias last); model parallel splits the hidden
            layers into their panels (:func:`split_rows`).
        velocities : list of array_like, optional
            With momentum: the whole network's starting velocities, shaped as ``weights``
            (zeros if omitted).

        Returns
        -------
        numpy.ndarray
            ``image_words`` ``uint32`` words: the commands, the weights, the ``init``
            blocks and every slot's inputs area with its row of ones; the rest zero.
        """
        if velocities is not None and self.momentum is None:
            raise ValueError("velocities need momentum, and this program has momentum = None")
        layers = len(self.sizes) - 1
        image = np.zeros(self.image_words, dtype=np.uint32)
        commands = self.regions["commands"]
        self._view(image, commands)[:] = self._words.reshape(commands.cols, commands.rows).T
        self._put("weights", image, weights)
        if self.momentum is not None:
            if velocities is None:
                velocities = [np.zeros((self.sizes[l + 1], self.sizes[l] + 1), np.uint64)
                              for l in range(layers)]
            self._put("velocities", image, velocities)
        for l in range(1, layers):
            self._view(image, self.regions[f"init[{l}]"])[-1] = ONE
        for s in range(self.slots):
            self._view(image, self.regions[f"inputs[{s}]"])[-1] = ONE
        return image

    def _put(self, kind, image, arrays):
        """Write the whole network's ``arrays`` into the ``kind`` regions (split into panels
        where the layer is)."""
        layers = len(self.sizes) - 1
        if not isinstance(arrays, (list, tuple)) or len(arrays) != layers:
            raise ValueError(f"{kind} must be a list of {layers} arrays, one per layer, "
                             f"not {arrays!r:.60}")
        for l, values in enumerate(arrays):
            full = fp32_words(f"{kind}[{l}]", values, (self.sizes[l + 1], self.sizes[l] + 1))
            if self.split[l]:
                for k, panel in enumerate(split_rows(full, self.cores)):
                    self._view(image, self.regions[f"{kind}[{l}][{k}]"])[:] = panel
            else:
                self._view(image, self.regions[f"{kind}[{l}]"])[:] = full

    def _get_whole(self, kind, image):
        out = []
        for l in range(len(self.sizes) - 1):
            if self.split[l]:
                out.append(join_rows(self._get(image, self.regions[f"{kind}[{l}][{k}]"])
                                     for k in range(self.cores)))
            else:
                out.append(self._get(image, self.regions[f"{kind}[{l}]"]))
        return out

    def read_weights(self, image):
        """The whole network's weights in ``image`` (the panels joined): a list of
        ``uint64`` fp32 bit arrays, one per layer."""
        return self._get_whole("weights", image)

    def read_velocities(self, image):
        """The whole network's velocities in ``image`` (momentum only), as
        :meth:`read_weights`."""
        if self.momentum is None:
            raise ValueError("this program has no velocities: momentum is None")
        return self._get_whole("velocities", image)



# ---------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------

def parallel_job(program, weights, minibatches, slot=0, max_cycles=5_000_000, image=None):
    """The :class:`sim.compile.job.Job` of a training run of ``program``: the prologue, one
    run per minibatch (its ``writes`` carry the whole minibatch's input and label regions),
    and the checkpoint unless the program stores the weights every step.

    ``weights`` are the whole network's (split into panels by the image); run it on the
    golden model with ``sim.compile.job.run_job_golden(config, job,
    machine=ClusterMachine(config))``.
    """
    from chrysalis.sim.compile.job import training_job
    if not isinstance(program, ParallelProgram):
        raise TypeError(f"program must be a ParallelProgram, not {program!r:.60}")
    return training_job(program, weights, minibatches, slot=slot, max_cycles=max_cycles,
                        image=image)
