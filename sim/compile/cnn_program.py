"""A convolutional network's training run as core commands and a memory image
(``docs/convolution.md``; its golden reference is :class:`chrysalis.sim.golden.cnn.CnnGolden`).

:func:`compile_cnn` places a :class:`chrysalis.gen.spec.model.Model` on one core and lists
the core commands of one SGD step with the update fused into the weight gradient;
:class:`CnnTrainingProgram` wraps them for the host as :class:`sim.compile.program.
TrainingProgram` wraps an MLP's: a memory image with the command streams, the weights, the
``GATHER`` tables, the minibatches and the logits, and the DMA commands between it and the
scratchpad.

Placement
---------
The scratchpad holds, column-major in lines of ``S`` banks (``gen.spec.layout``):

* the input minibatch: an image as ``c x (sample, y, x)`` (features: ``n + 1`` rows with a
  row of ones below);
* per trainable layer its FORWARD input: a convolution's patches ``cols`` (``K + 1`` rows,
  the last a row of ones written once by the prologue, ``K = c_in k k``), a dense layer's
  features (``n_in + 1`` rows, ones last);
* per layer its output: ``c_out x (sample, oy, ox)`` (a convolution), ``n_out + 1`` rows
  with ones (a hidden dense layer), the logits (the last). The gradient at a layer's output
  is written **over** that output by the layer above (``col2im`` or unflatten ``GATHER``
  with the ReLU mask); only a dense layer on a dense layer has a gradient matrix of its
  own, which its ``BACKWARD`` masks as the MLP's does;
* the gradient of the logits (``LOSS_GRAD``), the ``BACKWARD`` outputs ``dCols = W^T dY``
  (a convolution above the first) and ``dF`` (a dense layer on a flattened image), the
  labels, the tables (one set per network, per sample) and the weights (loaded into the
  PEs once and kept there, as the MLP's resident weights).

The weights stay in the weight banks (``LOAD_W`` in the prologue, ``STORE_W`` at a
checkpoint); a network whose weights do not all fit is refused. Every product command
tiles its columns to fit the activation banks: ``FORWARD`` in tiles of its input
(``LOAD_COL``), ``BACKWARD`` of its output gradient (``LOAD_ROW``), ``WGRAD`` of both. The
columns of a product are independent, and the fused ``WGRAD`` continues each weight's chain
from tile to tile in column order, so the tiles change no bit.

Command order of a step (``CnnPlacement.step``):

1. per trainable layer, bottom up: a convolution's im2col (one ``GATHER`` per sample),
   then ``LOAD_COL`` and ``FORWARD`` (ReLU fused) per column tile; a ``Flatten`` of an
   image is one ``GATHER`` per sample;
2. ``LOSS_GRAD`` of the logits, scale ``-lr/B`` (rounded to fp32 once);
3. per trainable layer, top down: for every layer but the first, ``LOAD_ROW`` of ``dY``
   and ``BACKWARD`` per column tile (every tile before any update: ``dX`` through the old
   weights), then col2im (a convolution) or unflatten (a dense layer on an image), one
   ``GATHER`` per sample written over the layer below's output with its ReLU mask; then
   ``LOAD_ROW``/``LOAD_COL`` and the fused ``WGRAD`` per column tile.

This is the order of :meth:`chrysalis.sim.golden.cnn.CnnGolden.step`, which gives the same
bits.

Memory map
----------
As the MLP's (``sim.compile.program``): every region at a multiple of 64 bytes, matrices
column-major with columns padded to whole beats: ``commands`` (the prologue, then the step
of each slot, then the checkpoint), ``weights[k]``, ``table[<name>]`` (the ``GATHER``
tables), ``init[<name>]`` (the matrices with a row of ones: zeros, ones in the last row),
then per slot ``inputs[s]``, ``labels[s]`` and ``logits[s]``. The prologue loads the
weights, the tables and the ``init`` blocks into the scratchpad and the weights into the
PEs; a step loads its slot's minibatch, runs the core commands and stores the logits (and,
with ``store_every_step``, the weights); the checkpoint stores the weights into the image.
The host contract is the MLP program's without prefetch: slot ``s`` holds step ``k``'s
minibatch before the doorbell of step ``k``.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import is_int
from chrysalis.gen.spec.layout import Matrix, bank_count, tiles
from chrysalis.gen.spec.model import Flatten, Model
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.cnn import image_matrix
from chrysalis.sim.golden.conv_tables import (ConvGeometry, col2im_table, column_words,
                                              flatten_table, im2col_table,
                                              unflatten_table)
from chrysalis.sim.golden.mlp import ONE

from .compiler import sp_fields
from .program import MemoryImage, Run, check_run_arguments, fp32_words

__all__ = ["CnnLayer", "CnnPlacement", "compile_cnn", "CnnTrainingProgram"]

_WORD = 4


@dataclass
class CnnLayer:
    """Where one trainable layer's matrices lie and how its products are tiled.

    Members
    -------
    index : int
        The layer's place in ``Model.layers``.
    conv : bool
    m, n : int
        Its weight matrix's rows and columns (the bias column included).
    columns : int
        Columns of its products: ``B * oh * ow`` (a convolution) or ``B``.
    x : Matrix
        The input of its ``FORWARD`` (``n`` rows, a row of ones last).
    y : Matrix
        Its output (``m`` rows, or ``m + 1`` with the row of ones of a hidden dense layer).
    dy : Matrix
        The gradient at its output (``m`` rows are loaded).
    dx : Matrix or None
        Its ``BACKWARD`` output (``n`` rows); ``None`` for the first layer.
    weights : Matrix
        The weights in the scratchpad (``m`` x ``n``), for ``LOAD_W`` and ``STORE_W``.
    wbase : int
        Weight-bank base.
    tile_f, tile_b, tile_w : int
        Columns per tile of ``FORWARD``, ``BACKWARD`` and ``WGRAD``.
    dy_lanes : int
        Activation-bank words per column of ``dY`` (``ceil(m / R)``).
    """

    index: int
    conv: bool
    m: int
    n: int
    columns: int
    x: Matrix = None
    y: Matrix = None
    dy: Matrix = None
    dx: Matrix = None
    weights: Matrix = None
    wbase: int = 0
    tile_f: int = 0
    tile_b: int = 0
    tile_w: int = 0
    dy_lanes: int = 0


@dataclass
class CnnPlacement:
    """A model placed on a core, and the core commands of one SGD step.

    Members
    -------
    model : Model
    batch : int
    banks : int
    inputs : Matrix
        The input minibatch (an image matrix, or features with a row of ones).
    labels : Matrix
    logits_grad : Matrix
        ``LOSS_GRAD``'s output.
    layers : list of CnnLayer
        One per trainable layer.
    tables : dict of str to (Matrix, numpy.ndarray)
        Every ``GATHER`` table: its place and its words (``uint32``).
    ones : dict of str to Matrix
        The matrices whose last row the prologue fills with ones, by region name.
    load_weights, step, store_weights : list of dict
        Core commands (``op`` as a name).
    step_layers : list of int
        The trainable layer each command of ``step`` works for: a layer's im2col, its
        products, its col2im, a dense layer's flatten and unflatten; ``LOSS_GRAD`` the
        last layer's.
    words : int
        Scratchpad words the placement uses.
    weight_words, act_words : int
        Weight-bank and activation-bank words per PE the step uses.
    """

    model: Model
    batch: int
    banks: int
    inputs: Matrix = None
    labels: Matrix = None
    logits_grad: Matrix = None
    layers: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)
    ones: dict = field(default_factory=dict)
    load_weights: list = field(default_factory=list)
    step: list = field(default_factory=list)
    step_layers: list = field(default_factory=list)
    store_weights: list = field(default_factory=list)
    words: int = 0
    weight_words: int = 0
    act_words: int = 0

    @property
    def logits(self):
        return self.layers[-1].y


class _Lines:
    """Scratchpad lines handed out in order, without a bound: the total is checked once,
    so that a network that does not fit is refused with the words it needs."""

    def __init__(self, banks):
        self.banks, self.next_line = banks, 0

    def matrix(self, n, columns):
        m = Matrix(self.next_line, n, columns, self.banks)
        self.next_line += m.lines
        return m


def _columns(matrix, first, count, rows=None):
    """Columns ``first .. first + count - 1`` of ``matrix`` (its first ``rows`` rows), a
    matrix with the same lines per column."""
    return Matrix(matrix.base + first * matrix.lines_per_column,
                  matrix.n if rows is None else rows, count, matrix.banks,
                  matrix.lines_per_column)


def _split(total, size):
    return [(a, min(total, a + size)) for a in range(0, total, size)]


def compile_cnn(config, model, batch, lr):
    """Place ``model`` on ``config``'s core and list the commands of one SGD step (the
    module docstring).

    Parameters
    ----------
    config : gen.spec.config.Config
        One core, ``mac.dual = "single"`` (the update is fused).
    model : gen.spec.model.Model
    batch : int
    lr : float

    Returns
    -------
    CnnPlacement

    Raises
    ------
    ValueError
        A bad argument, or a model that does not fit the core: one line naming the
        scratchpad, weight-bank or activation-bank words it needs and the config's.
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a gen.spec.model.Model, not {model!r}")
    if not is_int(batch) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive number, not {lr!r}")
    if config.mac.macs_per_cycle != 1:
        raise ValueError(f"a convolutional network trains with the fused update, which needs "
                         f"one MAC stream: mac.dual must be 'single', not {config.mac.dual!r}")
    R, C = config.core.rows, config.core.cols
    place = CnnPlacement(model, int(batch), bank_count(R, C))
    lines = _Lines(place.banks)
    _place_matrices(place, lines)
    _place_tables(place, lines)
    for k, layer in enumerate(place.layers):
        layer.weights = lines.matrix(layer.m, layer.n)
    place.words = lines.next_line * place.banks
    _check_fits(config, place)
    _tile(config, place)
    _emit(place, lr)
    return place


def _place_matrices(place, lines):
    """The data matrices of every layer (the module docstring's placement)."""
    model, B = place.model, place.batch
    shapes = model.shapes
    image = len(shapes[0]) == 3
    if image:  # the host writes it as channels x (sample, y, x)
        c, h, w = shapes[0]
        place.inputs = lines.matrix(c, B * h * w)
    else:
        place.inputs = lines.matrix(shapes[0][0] + 1, B)
        place.ones["inputs"] = place.inputs
    trainable = model.trainable
    below = place.inputs                      # the output of the layer below
    for k, t in enumerate(trainable):
        m, n = t.weight_shape
        if t.is_conv:
            columns = B * t.out_shape[1] * t.out_shape[2]
            layer = CnnLayer(t.index, True, m, n, columns)
            layer.x = lines.matrix(n, columns)
            place.ones[f"cols[{k}]"] = layer.x
            layer.y = lines.matrix(m, columns)
        else:
            layer = CnnLayer(t.index, False, m, n, B)
            if k > 0 and not place.layers[-1].conv:
                layer.x = below                      # a dense layer's output, ones included
            elif k == 0 and not image:
                layer.x = place.inputs               # features, ones included
            else:
                layer.x = lines.matrix(n, B)         # the flattened image, ones last
                place.ones[f"features[{k}]"] = layer.x
            last = k == len(trainable) - 1
            layer.y = lines.matrix(m + (0 if last else 1), B)
            if not last and _next_is_dense_on_dense(trainable, k):
                place.ones[f"outputs[{k}]"] = layer.y
        place.layers.append(layer)
        below = layer.y
    place.labels = lines.matrix(1, B)
    place.logits_grad = lines.matrix(place.layers[-1].m, B)
    for k, layer in enumerate(place.layers):
        above = place.layers[k + 1] if k + 1 < len(place.layers) else None
        if above is None:
            layer.dy = place.logits_grad
        elif not above.conv and not layer.conv:
            layer.dy = lines.matrix(layer.m + 1, B)  # BACKWARD writes the bias element too
        else:
            layer.dy = layer.y                       # a GATHER writes it over the output
        if k > 0:
            below_layer = place.layers[k - 1]
            layer.dx = below_layer.dy if not (layer.conv or below_layer.conv) else \
                lines.matrix(layer.n, layer.columns)


def _next_is_dense_on_dense(trainable, k):
    return not trainable[k].is_conv and not trainable[k + 1].is_conv


def _place_tables(place, lines):
    """The per-sample tables of every convolution and Flatten of an image."""
    model, S = place.model, place.banks
    shapes = model.shapes
    for k, t in enumerate(model.trainable):
        if not t.is_conv:
            continue
        conv = t.layer
        g = ConvGeometry(*t.in_shape, conv.k, conv.stride, conv.pad)
        _table(place, lines, f"im2col[{k}]", im2col_table(g, column_words(g.c_in, S)), 1)
        if k > 0:
            table, taps = col2im_table(g, column_words(g.rows + 1, S))
            _table(place, lines, f"col2im[{k}]", table, taps)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Flatten) and len(shapes[i]) == 3:
            c, h, w = shapes[i]
            _table(place, lines, f"flatten[{i}]", flatten_table(c, h, w, column_words(c, S)), 1)
            _table(place, lines, f"unflatten[{i}]", unflatten_table(c, h, w), 1)


def _table(place, lines, name, words, taps):
    matrix = lines.matrix(*words.shape)
    place.tables[name] = (matrix, np.asarray(words, dtype=np.uint32), taps)


def _check_fits(config, place):
    """Refuse a placement that needs more scratchpad or weight-bank words than the core
    has (the activation banks are checked when the products are tiled)."""
    R, C = config.core.rows, config.core.cols
    name = place.model.name
    if place.words > config.core.scratchpad_words:
        raise ValueError(f"{name} at batch {place.batch} needs {place.words} scratchpad words "
                         f"(activations, gradients, tables and weights), more than "
                         f"core.scratchpad_words = {config.core.scratchpad_words}")
    base = 0
    for layer in place.layers:
        layer.wbase = base
        base += tiles(layer.m, R) * tiles(layer.n, C)
    place.weight_words = base
    if base > config.pe.weight_words:
        raise ValueError(f"{name} needs {base} weight-bank words per PE to keep its weights "
                         f"in the PEs, more than pe.weight_words = {config.pe.weight_words}")


def _tile(config, place):
    """Columns per tile of each product: the most that fit the activation bank."""
    R, C, A = config.core.rows, config.core.cols, config.pe.act_words
    used = 0
    for k, layer in enumerate(place.layers):
        x_words, dy_words = tiles(layer.n, C), tiles(layer.m, R)
        per_column = x_words + dy_words           # WGRAD holds a tile of X and of dY
        if per_column > A:
            raise ValueError(f"{place.model.name}: layer {layer.index} needs {per_column} "
                             f"activation-bank words per PE for one column of its weight "
                             f"gradient, more than pe.act_words = {A}")
        layer.dy_lanes = dy_words
        layer.tile_f = min(layer.columns, A // x_words)
        layer.tile_b = min(layer.columns, A // dy_words)
        layer.tile_w = min(layer.columns, A // per_column)
        used = max(used, per_column * layer.tile_w, x_words * layer.tile_f,
                   dy_words * layer.tile_b)
    place.act_words = used


def _emit(place, lr):
    """The commands of the prologue, the step and the checkpoint."""
    B = place.batch
    for layer in place.layers:
        fields = dict(m=layer.m, n=layer.n, wbase=layer.wbase, **sp_fields(layer.weights))
        place.load_weights.append(dict(op="LOAD_W", **fields))
        place.store_weights.append(dict(op="STORE_W", **fields))
    model = place.model

    def step(k, commands):
        place.step += commands
        place.step_layers += [k] * len(commands)
    trainable = model.trainable
    flattens = {i: shape for i, (layer, shape) in enumerate(zip(model.layers, model.shapes))
                if isinstance(layer, Flatten) and len(shape) == 3}
    below = place.inputs
    for k, (t, layer) in enumerate(zip(trainable, place.layers)):
        after = trainable[k - 1].index if k else -1
        for i in flattens:
            if after < i < t.index:
                step(k, _flatten(place, i, flattens[i], below, layer.x))
        if t.is_conv:
            step(k, _im2col(place, k, t, below, layer.x))
        step(k, _forward(layer, t.relu))
        below = layer.y
    scale = nx.fp32_bits(-lr / B)
    step(len(trainable) - 1, [dict(op="LOSS_GRAD", m=place.layers[-1].m, batch=B,
                                   scalar=scale, **sp_fields(place.logits),
                                   **sp_fields(place.logits_grad, "sp2"),
                                   **sp_fields(place.labels, "sp3"))])
    for k in reversed(range(len(trainable))):
        t, layer = trainable[k], place.layers[k]
        loaded = False
        if k > 0:
            prev, below_layer = trainable[k - 1], place.layers[k - 1]
            mask = prev.relu
            step(k, _backward(layer, mask=mask and not (t.is_conv or prev.is_conv)))
            loaded = layer.tile_b >= layer.columns
            if t.is_conv:
                step(k, _col2im(place, k, t, layer.dx, below_layer.y, mask))
            elif prev.is_conv:
                i = next(i for i in flattens if prev.index < i < t.index)
                step(k, _unflatten(place, i, flattens[i], layer.dx, below_layer.y, mask))
        step(k, _wgrad(layer, dy_loaded=loaded and layer.tile_w >= layer.columns))


def _im2col(place, k, t, source, cols):
    """One GATHER per sample: the patches of the sample's image into ``cols``."""
    table, _, _ = place.tables[f"im2col[{k}]"]
    c, h, w = t.in_shape
    per = t.out_shape[1] * t.out_shape[2]
    return [_gather(_columns(source, b * h * w, h * w), _columns(cols, b * per, per, table.n),
                    table, 1) for b in range(place.batch)]


def _col2im(place, k, t, d_cols, dest, mask):
    """One GATHER per sample: the sums of the patches' gradients over ``dest`` (the layer
    below's output, its ReLU mask with ``mask``)."""
    table, _, taps = place.tables[f"col2im[{k}]"]
    c, h, w = t.in_shape
    per = t.out_shape[1] * t.out_shape[2]
    return [_gather(_columns(d_cols, b * per, per), _columns(dest, b * h * w, h * w, c),
                    table, taps, mask) for b in range(place.batch)]


def _flatten(place, i, shape, source, features):
    table, _, _ = place.tables[f"flatten[{i}]"]
    c, h, w = shape
    return [_gather(_columns(source, b * h * w, h * w), _columns(features, b, 1, table.n),
                    table, 1) for b in range(place.batch)]


def _unflatten(place, i, shape, d_features, dest, mask):
    table, _, _ = place.tables[f"unflatten[{i}]"]
    c, h, w = shape
    return [_gather(_columns(d_features, b, 1), _columns(dest, b * h * w, h * w, c),
                    table, 1, mask) for b in range(place.batch)]


def _gather(window, dest, table, taps, mask=False):
    """A GATHER of ``window``'s words (all its columns' lines) into ``dest``."""
    return dict(op="GATHER", m=taps, n=dest.n, batch=dest.batch, flag=int(mask),
                sp_base=window.base, sp_lpc=window.lines, **sp_fields(dest, "sp2"),
                **sp_fields(table, "sp3"))


def _forward(layer, relu):
    commands = []
    for a, b in _split(layer.columns, layer.tile_f):
        commands.append(dict(op="LOAD_COL", n=layer.n, batch=b - a, abase=0,
                             **sp_fields(_columns(layer.x, a, b - a, layer.n))))
        commands.append(dict(op="FORWARD", m=layer.m, n=layer.n, batch=b - a,
                             wbase=layer.wbase, abase=0, flag=int(relu),
                             **sp_fields(_columns(layer.y, a, b - a, layer.m))))
    return commands


def _backward(layer, mask):
    """``dX = W^T dY`` per column tile; ``mask``: BACKWARD's ReLU mask by the layer
    below's output (a dense layer on a dense layer, whose input is that output)."""
    commands = []
    for a, b in _split(layer.columns, layer.tile_b):
        masked = dict(flag=1, **sp_fields(_columns(layer.x, a, b - a), "sp2")) if mask else {}
        commands.append(dict(op="LOAD_ROW", m=layer.m, batch=b - a, abase=0,
                             **sp_fields(_columns(layer.dy, a, b - a, layer.m))))
        commands.append(dict(op="BACKWARD", m=layer.m, n=layer.n, batch=b - a,
                             wbase=layer.wbase, abase=0, **masked,
                             **sp_fields(_columns(layer.dx, a, b - a, layer.n))))
    return commands


def _wgrad(layer, dy_loaded):
    """The fused weight gradient per column tile, ``dY`` at activation-bank word 0 and
    ``X`` after it; ``dy_loaded``: the whole ``dY`` is there already (the backward pass
    loaded it as one tile), so it is not loaded again."""
    commands = []
    for a, b in _split(layer.columns, layer.tile_w):
        cols = b - a
        if not dy_loaded:
            commands.append(dict(op="LOAD_ROW", m=layer.m, batch=cols, abase=0,
                                 **sp_fields(_columns(layer.dy, a, cols, layer.m))))
        x_base = layer.dy_lanes * cols
        commands.append(dict(op="LOAD_COL", n=layer.n, batch=cols, abase=x_base,
                             **sp_fields(_columns(layer.x, a, cols, layer.n))))
        commands.append(dict(op="WGRAD", m=layer.m, n=layer.n, batch=cols, wbase=layer.wbase,
                             abase=x_base, abase2=0, fused=1))
    return commands


class CnnTrainingProgram(MemoryImage):
    """A convolutional network's training run as a memory image and command streams
    (the module docstring): the interface of :class:`sim.compile.program.TrainingProgram`
    without prefetch, so the training strategies and jobs run it as they run an MLP's.

    Parameters
    ----------
    config : gen.spec.config.Config
        The accelerator (one core is used).
    model : gen.spec.model.Model
    batch : int
    lr : float
    slots : int
        Minibatch slots in memory: one run can execute up to ``slots`` consecutive steps.
    mem_base : int
        Byte address of the image: a multiple of 64.
    store_every_step : bool
        Every step ends by storing the weights back to the image; without it the weights
        stay in the PEs until the :attr:`checkpoint`.

    Members
    -------
    compiled : CnnPlacement
    update : str
        ``"fused"``.
    prefetch : bool
        ``False``: every step loads its own minibatch first.
    regions : dict of str to Region
    commands : list of dict
    prologue, checkpoint : Run
    step_commands : int
    image_words, image_bytes : int
    """

    prefetch = False
    update = "fused"
    momentum = None

    def __init__(self, config, model, batch, lr, slots=1, mem_base=0,
                 store_every_step=True):
        from chrysalis.gen.spec.config import Config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        check_run_arguments(lr, None, slots, mem_base)
        self.compiled = place = compile_cnn(config, model, batch, lr)
        self.config, self.model = config, model
        self.batch, self.lr = int(batch), lr
        self.slots, self.mem_base = int(slots), int(mem_base)
        self.store_every_step = bool(store_every_step)
        self.beat_bytes = config.host.axi_data_width // 8
        layers = place.layers
        stores = 2 * len(layers)                      # STORE_W and DMA_STORE per layer
        self.step_commands = 2 + len(place.step) + 1 + (stores if store_every_step else 0)
        inits = [name for name in place.ones if name != "inputs"]
        prologue_count = 2 * len(layers) + len(place.tables) + len(inits)
        total = prologue_count + self.slots * self.step_commands + stores

        self._align = math.lcm(isa.COMMAND_BYTES, self.beat_bytes)
        self._next = self.mem_base
        self.regions = {}
        self._region("commands", isa.COMMAND_WORDS, total, isa.COMMAND_BYTES)
        for k, layer in enumerate(layers):
            self._matrix_region(f"weights[{k}]", layer.m, layer.n)
        for name, (matrix, _, _) in place.tables.items():
            self._matrix_region(f"table[{name}]", matrix.n, matrix.batch)
        for name, matrix in place.ones.items():
            if name != "inputs":
                self._matrix_region(f"init[{name}]", matrix.n, matrix.batch)
        for s in range(self.slots):
            self._matrix_region(f"inputs[{s}]", place.inputs.n, place.inputs.batch)
            self._matrix_region(f"labels[{s}]", 1, self.batch)
            self._matrix_region(f"logits[{s}]", place.logits.n, self.batch)
        self._close_layout(config)

        weights = [self._dma("DMA_LOAD", f"weights[{k}]", layer.weights)
                   for k, layer in enumerate(layers)]
        prologue = list(weights)
        prologue += [self._dma("DMA_LOAD", f"table[{name}]", matrix)
                     for name, (matrix, _, _) in place.tables.items()]
        # The inputs of a network of features carry their row of ones in every slot.
        prologue += [self._dma("DMA_LOAD", f"init[{name}]", matrix)
                     for name, matrix in place.ones.items() if name != "inputs"]
        prologue += place.load_weights
        prologue_count = len(prologue)
        store = list(place.store_weights) + [
            self._dma("DMA_STORE", f"weights[{k}]", layer.weights)
            for k, layer in enumerate(layers)]
        self.commands = list(prologue)
        for s in range(self.slots):
            step = [self._dma("DMA_LOAD", f"inputs[{s}]", place.inputs),
                    self._dma("DMA_LOAD", f"labels[{s}]", place.labels)]
            step += place.step + (store if self.store_every_step else [])
            step.append(self._dma("DMA_STORE", f"logits[{s}]", place.logits))
            assert len(step) == self.step_commands
            self.commands += step
        self.checkpoint = Run(self.regions["commands"].addr
                              + len(self.commands) * isa.COMMAND_BYTES, len(store))
        self.commands += store
        self._words = np.array(isa.encode_stream(self.commands), dtype=np.uint32)
        self._prologue_count = prologue_count
        self.prologue = Run(self.regions["commands"].addr, prologue_count)

    def _dma(self, op, name, matrix):
        region = self.regions[name]
        assert (region.rows, region.cols) == (matrix.n, matrix.batch), name
        return dict(op=op, n=matrix.n, batch=matrix.batch, mem_addr=region.addr,
                    mem_stride=region.stride, sp_base=matrix.base,
                    sp_lpc=matrix.lines_per_column)

    # --- runs ---------------------------------------------------------------------------

    def step_run(self, steps=1, first_slot=0):
        """The run of ``steps`` consecutive SGD steps on slots ``first_slot``,
        ``first_slot + 1``, ... (``first_slot + steps`` at most ``slots``)."""
        self._check_slot(first_slot)
        if not is_int(steps) or not 1 <= steps <= self.slots - first_slot:
            raise ValueError(f"steps must be in [1, {self.slots - first_slot}] (slots = "
                             f"{self.slots}, first_slot = {first_slot}), not {steps!r}")
        first = self._prologue_count + first_slot * self.step_commands
        return Run(self.regions["commands"].addr + first * isa.COMMAND_BYTES,
                   steps * self.step_commands)

    def slot_of_step(self, step):
        """The slot of step ``step`` of a run of steps (slot order, cyclically)."""
        if not is_int(step) or step < 0:
            raise ValueError(f"step must be a non-negative integer, not {step!r}")
        return int(step) % self.slots

    # --- the image ----------------------------------------------------------------------

    def initial_image(self, weights, velocities=None):
        """The memory image before training: the command streams, ``weights`` (fp32 bit
        patterns of ``Model.weight_shapes``), the tables, the ``init`` blocks (zeros, a
        row of ones at the bottom) and zeros elsewhere (a network of features: each slot's
        inputs with their row of ones)."""
        if velocities is not None:
            raise ValueError("a convolutional network trains with plain SGD: velocities "
                             "must be None, not given")
        shapes = self.model.weight_shapes
        if not isinstance(weights, (list, tuple)) or len(weights) != len(shapes):
            raise ValueError(f"weights must be a list of {len(shapes)} arrays, one per "
                             f"trainable layer, not {type(weights).__name__}")
        image = np.zeros(self.image_words, dtype=np.uint32)
        commands = self.regions["commands"]
        self._view(image, commands)[:] = self._words.reshape(commands.cols, commands.rows).T
        for k, (values, shape) in enumerate(zip(weights, shapes)):
            self._view(image, self.regions[f"weights[{k}]"])[:] = fp32_words(
                f"weights[{k}]", values, shape)
        for name, (_, words, _) in self.compiled.tables.items():
            self._view(image, self.regions[f"table[{name}]"])[:] = words
        for name in self.compiled.ones:
            if name != "inputs":
                self._view(image, self.regions[f"init[{name}]"])[-1] = ONE
        if "inputs" in self.compiled.ones:
            for s in range(self.slots):
                self._view(image, self.regions[f"inputs[{s}]"])[-1] = ONE
        return image

    def write_batch(self, image, slot, x_bits, labels):
        """Write slot ``slot``'s minibatch into ``image`` (in place): ``x_bits``
        ``(input_features, batch)`` fp32 bit patterns, an image per column in ``(c, y,
        x)`` order; ``labels`` ``batch`` classes."""
        self._check_image(image)
        self._check_slot(slot)
        model = self.model
        x = fp32_words("x_bits", x_bits, (model.input_features, self.batch))
        labels = np.asarray(labels)
        if labels.shape != (self.batch,):
            raise ValueError(f"labels must have shape ({self.batch},), not {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, not {labels.dtype} values")
        bad = np.flatnonzero((labels < 0) | (labels >= model.classes))
        if bad.size:
            raise ValueError(f"labels must be in [0, {model.classes}), not "
                             f"{int(labels[bad[0]])!r} (sample {bad[0]})")
        inputs = self._view(image, self.regions[f"inputs[{slot}]"])
        if len(model.input_shape) == 3:
            inputs[:] = image_matrix(x, model.input_shape)
        else:
            inputs[:-1] = x
            inputs[-1] = ONE
        self._view(image, self.regions[f"labels[{slot}]"])[0] = labels.astype(np.uint32)

    def read_weights(self, image):
        """The weights in ``image``: a list of ``uint64`` fp32 bit arrays, one per layer."""
        return [self._get(image, self.regions[f"weights[{k}]"])
                for k in range(len(self.compiled.layers))]

    def read_logits(self, image, slot):
        """The logits of slot ``slot``'s last step: ``(classes, batch)`` fp32 bits."""
        self._check_slot(slot)
        return self._get(image, self.regions[f"logits[{slot}]"])

    def read_labels(self, image, slot):
        """The labels of slot ``slot`` in ``image`` (``int64``)."""
        self._check_slot(slot)
        return self._get(image, self.regions[f"labels[{slot}]"])[0].astype(np.int64)

    def _check_slot(self, slot):
        if not is_int(slot) or not 0 <= slot < self.slots:
            raise ValueError(f"slot must be in [0, {self.slots}), not {slot!r}")
