"""Golden model of one training step of a convolutional network, composed of the core's
commands exactly as the machine runs them (pure NumPy; ``docs/convolution.md``).

The network is a :class:`chrysalis.gen.spec.model.Model`; its weights are the MLP's kind
of matrices, fp32 bit patterns, the bias in the last column (a convolution's ``c_out x
(c_in * k * k + 1)``, columns in ``(c, kh, kw)`` order). The data of a step:

* a convolution's activations are a ``channels x (sample, y, x)`` matrix; the input image
  is written by the host in that layout (:func:`image_matrix`), features (after a
  Flatten, and an MLP's input) are ``features x sample``;
* forward of a convolution: one ``GATHER`` im2col per sample (``sim.golden.gather``,
  tables of ``sim.golden.conv_tables``) makes ``cols`` (``K x (sample, oy, ox)``), below
  which the bias row of ones stays; then FORWARD ``Y = W cols`` with the ReLU fused
  (:func:`chrysalis.sim.golden.core_model.forward`, ``relu``). ``Y`` is already the next
  layer's layout. A dense layer is FORWARD on its augmented input, as in the MLP;
* flatten: one ``GATHER`` per sample (one tap);
* the loss gradient: LOSS_GRAD with the fused update's scale ``-lr / B``
  (``core_model.softmax_xent_gradient``), so every gradient below carries ``-lr``;
* backward, from the last layer down, each layer's ``dX`` through its weights *before*
  their update: BACKWARD ``dCols = W^T dY`` (no mask) then one ``GATHER`` col2im per sample
  with ``T`` taps, written over the layer below's activations with the ReLU mask
  (``flag``); below a dense layer, BACKWARD with the mask (dense on dense) or one
  ``GATHER`` unflatten per sample with the mask (dense on a flattened image). The first
  layer has no ``dX``;
* the update fused into the weight gradient (``WGRAD`` fused,
  :func:`chrysalis.sim.golden.core_model.fused_weight_gradient`): each weight's chain
  starts from the weight and adds its products in increasing column ``(sample, oy, ox)``;
  tiles of columns run in that order, so the split into tiles changes no bit.

The windows a ``GATHER`` reads are the source matrix's columns as the scratchpad holds them
(each padded to whole lines of ``S`` banks, :func:`sample_windows`); the padding words are
filled with a NaN pattern here, so a table entry that pointed at one would show.
"""

from dataclasses import dataclass, field

import numpy as np

from chrysalis.gen.spec.layout import bank_count
from chrysalis.gen.spec.model import Conv2d, Dense, Flatten, Model
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx

from .fast_mac import fast, fused_weight_gradient
from .conv_tables import (ConvGeometry, col2im_table, column_words, flatten_table,
                          im2col_table, unflatten_table)
from .gather import gather
from .mlp import augment

__all__ = ["PAD_FILL", "image_matrix", "sample_windows", "CnnGolden", "Record"]

#: What the padding words of a window hold in this model: a quiet NaN no result may show.
PAD_FILL = 0x7FC0_0DAD

_U = np.uint64


def image_matrix(x, shape):
    """The ``channels x (sample, y, x)`` matrix of a minibatch of images.

    Parameters
    ----------
    x : array, (c * h * w, batch)
        One sample per column, its values in ``(c, y, x)`` order.
    shape : tuple of int
        ``(c, h, w)``.
    """
    c, h, w = shape
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] != c * h * w:
        raise ValueError(f"x must have {c * h * w} rows (an image of {shape!r} per column), "
                         f"not shape {x.shape!r}")
    batch = x.shape[1]
    return x.reshape(c, h * w, batch).transpose(0, 2, 1).reshape(c, batch * h * w)


def sample_windows(bits, per_sample, banks):
    """The ``GATHER`` window of every sample of a matrix: ``(batch, per_sample * L)``.

    ``bits`` is ``rows x (batch * per_sample)``; each column is laid out as the scratchpad
    holds it, ``L = column_words(rows, banks)`` words, its padding words :data:`PAD_FILL`.
    """
    bits = np.asarray(bits, dtype=_U)
    rows, columns = bits.shape
    if columns % per_sample:
        raise ValueError(f"a matrix of {columns} columns does not split into samples of "
                         f"{per_sample}, not {columns!r}")
    words = column_words(rows, banks)
    padded = np.full((words, columns), _U(PAD_FILL), dtype=_U)
    padded[:rows] = bits
    return padded.T.reshape(columns // per_sample, per_sample * words)


def _per_sample(windows, table, taps, per_sample_out, mask=None):
    """One ``GATHER`` per sample, the destinations side by side in sample order."""
    outs = []
    for b, window in enumerate(windows):
        sample_mask = None
        if mask is not None:
            sample_mask = mask[:, b * per_sample_out:(b + 1) * per_sample_out]
        outs.append(gather(window, table, taps, sample_mask))
    return np.concatenate(outs, axis=1)


@dataclass
class Record:
    """What a trainable layer's forward pass keeps for the backward pass.

    Members
    -------
    inputs : numpy.ndarray
        The augmented input of its FORWARD (``cols`` with the ones row, or the features with
        it).
    output : numpy.ndarray
        Its output, after the ReLU when one follows.
    """

    inputs: np.ndarray
    output: np.ndarray


@dataclass
class CnnGolden:
    """The golden training step of a :class:`Model` on a core's numerics.

    Parameters
    ----------
    model : chrysalis.gen.spec.model.Model
    num : chrysalis.sim.golden.core_model.CoreNumerics
        The banks of its scratchpad are ``bank_count(rows, cols)``.
    fast : bool
        Multiply-accumulate through :class:`chrysalis.sim.golden.fast_mac.FastNumerics`
        (the same bits); ``False``: through ``num`` itself.

    Members
    -------
    banks : int
    tables : dict
        The per-sample tables, by layer index: ``("im2col", table)``, ``("col2im", table,
        taps)``, ``("flatten", table)``, ``("unflatten", table)``.
    """

    model: Model
    num: cm.CoreNumerics = field(default_factory=cm.CoreNumerics)
    fast: bool = True

    def __post_init__(self):
        if not isinstance(self.model, Model):
            raise TypeError(f"model must be a gen.spec.model.Model, not {self.model!r}")
        self.banks = bank_count(self.num.rows, self.num.cols)
        # The same bits, faster where float32 is exact (sim.golden.fast_mac).
        self._num = fast(self.num) if self.fast else self.num
        self.tables = {}
        shapes = self.model.shapes
        for k, t in enumerate(self.model.trainable):
            if t.is_conv:
                conv = t.layer
                g = ConvGeometry(*t.in_shape, conv.k, conv.stride, conv.pad)
                entry = {"geometry": g,
                         "im2col": im2col_table(g, column_words(g.c_in, self.banks))}
                if k > 0:
                    entry["col2im"] = col2im_table(g, column_words(g.rows + 1, self.banks))
                self.tables[t.index] = entry
        for i, layer in enumerate(self.model.layers):
            if isinstance(layer, Flatten) and len(shapes[i]) == 3:
                c, h, w = shapes[i]
                self.tables[i] = {"flatten": flatten_table(c, h, w,
                                                           column_words(c, self.banks)),
                                  "unflatten": unflatten_table(c, h, w)}

    def check_weights(self, weights):
        """Refuse weights that are not the model's matrices."""
        shapes = self.model.weight_shapes
        if len(weights) != len(shapes):
            raise ValueError(f"weights must be {len(shapes)} matrices (one per trainable "
                             f"layer), not {len(weights)!r}")
        for k, (w, shape) in enumerate(zip(weights, shapes)):
            if np.shape(w) != shape:
                raise ValueError(f"weights[{k}] must have shape {shape!r}, not "
                                 f"{np.shape(w)!r}")

    def forward(self, weights, x):
        """The forward pass: ``(logits, records)``.

        Parameters
        ----------
        weights : list of numpy.ndarray
            fp32 bit patterns, :attr:`Model.weight_shapes`.
        x : numpy.ndarray
            ``(input_features, batch)`` fp32 bit patterns, a sample per column (an image in
            ``(c, y, x)`` order).

        Returns
        -------
        logits : numpy.ndarray
            ``(classes, batch)`` fp32 bit patterns.
        records : list of Record
            One per trainable layer.
        """
        self.check_weights(weights)
        model, num = self.model, self._num
        x = np.asarray(x, dtype=_U)
        if x.ndim != 2 or x.shape[0] != model.input_features:
            raise ValueError(f"x must have {model.input_features} rows (one sample per "
                             f"column), not shape {x.shape!r}")
        batch = x.shape[1]
        shapes = model.shapes
        a = image_matrix(x, shapes[0]) if len(shapes[0]) == 3 else x
        records = []
        trainable = {t.index: (k, t) for k, t in enumerate(model.trainable)}
        for i, layer in enumerate(model.layers):
            if isinstance(layer, (Conv2d, Dense)):
                k, t = trainable[i]
                if isinstance(layer, Conv2d):
                    g = self.tables[i]["geometry"]
                    windows = sample_windows(a, g.h * g.w, self.banks)
                    a = _per_sample(windows, self.tables[i]["im2col"], 1, g.oh * g.ow)
                inputs = augment(a)
                y = cm.forward(num, weights[k], inputs)
                if t.relu:
                    y = cm.relu(num, y)
                records.append(Record(inputs, y))
                a = y
            elif isinstance(layer, Flatten) and len(shapes[i]) == 3:
                _, h, w = shapes[i]
                windows = sample_windows(a, h * w, self.banks)
                a = _per_sample(windows, self.tables[i]["flatten"], 1, 1)
        assert a.shape == (model.classes, batch)
        return a, records

    def logits(self, weights, x):
        """The forward pass's logits only."""
        return self.forward(weights, x)[0]

    def step(self, weights, x, labels, lr):
        """One SGD step with the update fused into the weight gradient.

        Returns
        -------
        new_weights : list of numpy.ndarray
        probs : numpy.ndarray
            The softmax of the logits (LOSS_GRAD's ``p``).
        logits : numpy.ndarray
            The forward pass's logits, before the update.
        """
        model, num = self.model, self._num
        logits, records = self.forward(weights, x)
        batch = logits.shape[1]
        labels = np.asarray(labels)
        if labels.shape != (batch,):
            raise ValueError(f"labels must be one per sample ({batch}), not shape "
                             f"{labels.shape!r}")
        grad, probs = cm.softmax_xent_gradient(num, logits, labels,
                                               nx.fp32_bits(-lr / batch))
        trainable = model.trainable
        new_weights = list(weights)
        for k in reversed(range(len(trainable))):
            below = None
            if k > 0:
                below = self._input_gradient(k, weights[k], grad, records[k - 1])
            update = fused_weight_gradient if self.fast else cm.fused_weight_gradient
            new_weights[k] = update(num, weights[k], grad, records[k].inputs)
            grad = below
        return new_weights, probs, logits

    def _input_gradient(self, k, w, grad, below):
        """The gradient at the output of trainable layer ``k - 1`` (``below``'s), masked
        by its ReLU: what the commands write over its activations."""
        model, num = self.model, self._num
        t, prev = model.trainable[k], model.trainable[k - 1]
        mask = below.output if prev.relu else None
        if t.is_conv:
            # BACKWARD without mask, then col2im with the mask.
            d_cols = cm.backward_dx(num, w, grad)
            g = self.tables[t.index]["geometry"]
            table, taps = self.tables[t.index]["col2im"]
            windows = sample_windows(d_cols, g.oh * g.ow, self.banks)
            return _per_sample(windows, table, taps, g.h * g.w, mask)
        if len(prev.out_shape) == 3:
            # Dense on a flattened image: BACKWARD without mask, then unflatten with it.
            d_in = cm.backward_dx(num, w, grad)
            c, h, wd = prev.out_shape
            flatten = next(i for i in range(prev.index + 1, t.index)
                           if isinstance(model.layers[i], Flatten))
            windows = sample_windows(d_in, 1, self.banks)
            return _per_sample(windows, self.tables[flatten]["unflatten"], 1, h * wd, mask)
        # Dense on dense: BACKWARD with the mask, as in the MLP (the ones row is positive).
        d_in = cm.backward_dx(num, w, grad)
        if mask is not None:
            d_in = cm.relu_mask(num, d_in, augment(mask))
        return d_in[:-1]
