"""The ``GATHER`` tables of a convolutional network: im2col, col2im, flatten and unflatten
(pure NumPy; the semantics of a table: ``sim.golden.gather``).

Activations of a convolution layer are a matrix of ``channels x (sample, y, x)`` columns,
column-major in the scratchpad (``gen.spec.layout.Matrix``): element ``(c, j)`` is word
``j * L + c`` from the matrix's first line, ``L`` (``column_words``) being the column's
``lpc * S`` words (its rows rounded up to whole lines of the ``S`` banks). A sample's
columns are consecutive, so every table here is built **per sample**: one ``GATHER`` per
sample, its window (source) and destination advanced by the sample's columns, its table the
same for every sample. For the digits CNN on a 4 x 4 core (4 banks) the five tables take
4,480 words of scratchpad (:func:`table_words`), against 35,840 for tables of a whole
minibatch of 8: per-sample tables fit the board's 32,768-word scratchpad beside the
activations, per-batch ones do not.

* :func:`im2col_table` (one tap): destination ``K x (oh * ow)``, ``K = c_in * k * k``
  rows in ``(c, kh, kw)`` order, columns ``(oy, ox)``; the window is the sample's
  ``h * w`` input columns; a tap in the padding is :data:`NO_ENTRY` (reads ``+0``). The
  bias row of ones below the ``K`` rows is written once and never gathered.
* :func:`col2im_table` (``T`` taps): destination ``c_in x (h * w)``, the input gradient;
  the window is the sample's ``oh * ow`` columns of ``dCols = W^T dY``. Tap ``t`` of input
  pixel ``(c, y, x)`` is the ``t``-th patch that covers it in increasing ``(oy, ox)``
  (increasing column of ``dCols``); the pixels covered by fewer than ``T`` patches end
  with :data:`NO_ENTRY` taps (each adds ``+0``). ``T`` is the most patches covering a
  pixel: 9 for 3x3 stride 1, 4 for 3x3 stride 2.
* :func:`flatten_table` (one tap): destination ``c * h * w`` rows by one column, rows in
  ``(c, y, x)`` order; the window is the sample's ``h * w`` columns.
* :func:`unflatten_table` (one tap): its inverse for the gradient, destination
  ``c x (h * w)``; the window is the sample's one column of features.
"""

from dataclasses import dataclass

import numpy as np

from chrysalis.gen.spec.checks import ceil_div, is_int

from .gather import NO_ENTRY

__all__ = ["NO_ENTRY", "column_words", "im2col_table", "col2im_table",
           "col2im_taps", "flatten_table", "unflatten_table", "ConvGeometry",
           "table_words"]


def _positive(name, value, lo=1):
    if not is_int(value) or value < lo:
        kind = "a positive" if lo == 1 else "a non-negative"
        raise ValueError(f"{name} must be {kind} integer, not {value!r}")


def column_words(rows, banks):
    """Words of a scratchpad column of ``rows`` elements: whole lines of ``banks`` words."""
    _positive("rows", rows)
    _positive("banks", banks)
    return ceil_div(rows, banks) * banks


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's shape on one sample.

    Parameters
    ----------
    c_in, h, w : int
        Input channels and size.
    k, stride, pad : int
    """

    c_in: int
    h: int
    w: int
    k: int
    stride: int = 1
    pad: int = 0

    def __post_init__(self):
        for name in ("c_in", "h", "w", "k", "stride"):
            _positive(name, getattr(self, name))
        _positive("pad", self.pad, 0)
        if self.oh < 1 or self.ow < 1:
            raise ValueError(f"a {self.k}x{self.k} kernel with pad {self.pad} does not fit "
                             f"a {self.h}x{self.w} input, not an output of "
                             f"{self.oh}x{self.ow}")

    @property
    def oh(self):
        return (self.h + 2 * self.pad - self.k) // self.stride + 1

    @property
    def ow(self):
        return (self.w + 2 * self.pad - self.k) // self.stride + 1

    @property
    def rows(self):
        """``K = c_in * k * k``: rows of the gathered patches (the bias row excluded)."""
        return self.c_in * self.k * self.k

    def taps(self):
        """Input coordinates of every ``(row, column)`` of the patches: ``(c, iy, ix,
        inside)`` arrays of shape ``(K, oh * ow)``."""
        c, kh, kw = np.meshgrid(np.arange(self.c_in), np.arange(self.k), np.arange(self.k),
                                indexing="ij")
        c, kh, kw = (a.reshape(-1, 1) for a in (c, kh, kw))
        oy, ox = np.meshgrid(np.arange(self.oh), np.arange(self.ow), indexing="ij")
        oy, ox = oy.reshape(1, -1), ox.reshape(1, -1)
        iy = oy * self.stride + kh - self.pad
        ix = ox * self.stride + kw - self.pad
        inside = (iy >= 0) & (iy < self.h) & (ix >= 0) & (ix < self.w)
        shape = (self.rows, self.oh * self.ow)
        return (np.broadcast_to(c, shape), iy, ix, inside)


def im2col_table(geometry, in_column_words):
    """The im2col table of one sample: ``uint32 (K, oh * ow)``.

    Entry ``(r, j)`` is the window word of input ``(c, iy, ix)`` that row ``r = (c, kh,
    kw)`` of patch ``j = (oy, ox)`` takes: ``(iy * w + ix) * in_column_words + c``, or
    :data:`NO_ENTRY` in the padding.
    """
    _positive("in_column_words", in_column_words)
    if in_column_words < geometry.c_in:
        raise ValueError(f"in_column_words must hold the {geometry.c_in} channels, not "
                         f"{in_column_words!r}")
    c, iy, ix, inside = geometry.taps()
    words = (iy * geometry.w + ix) * in_column_words + c
    return np.where(inside, words, NO_ENTRY).astype(np.uint32)


def col2im_taps(geometry):
    """``T``: the most patches that cover one input pixel (at least 1)."""
    c, iy, ix, inside = geometry.taps()
    counts = np.zeros((geometry.c_in, geometry.h, geometry.w), dtype=np.int64)
    np.add.at(counts, (c[inside], iy[inside], ix[inside]), 1)
    return max(1, int(counts.max()))


def col2im_table(geometry, cols_column_words):
    """The col2im table of one sample and its taps: ``(uint32 (c_in * T, h * w), T)``.

    Entry ``(c * T + t, y * w + x)`` is the window word of ``dCols`` (row ``r = (c, kh,
    kw)``, column ``j = (oy, ox)``: ``j * cols_column_words + r``) of the ``t``-th patch
    covering pixel ``(c, y, x)`` in increasing ``j``; :data:`NO_ENTRY` past its last one.
    """
    _positive("cols_column_words", cols_column_words)
    if cols_column_words < geometry.rows:
        raise ValueError(f"cols_column_words must hold the {geometry.rows} patch rows, not "
                         f"{cols_column_words!r}")
    c, iy, ix, inside = geometry.taps()
    r = np.broadcast_to(np.arange(geometry.rows)[:, None], inside.shape)
    j = np.broadcast_to(np.arange(geometry.oh * geometry.ow)[None, :], inside.shape)
    taps = col2im_taps(geometry)
    table = np.full((geometry.c_in, taps, geometry.h * geometry.w), NO_ENTRY,
                    dtype=np.uint64)
    filled = np.zeros((geometry.c_in, geometry.h * geometry.w), dtype=np.int64)
    # Visit the patches in increasing column j (then row r: one row per channel covers a
    # pixel in a given patch), so the taps of a pixel come in increasing j.
    order = np.lexsort((r[inside], j[inside]))
    cs, pix = c[inside][order], (iy * geometry.w + ix)[inside][order]
    words = (j * cols_column_words + r)[inside][order]
    for cc, p, word in zip(cs, pix, words):
        table[cc, filled[cc, p], p] = word
        filled[cc, p] += 1
    return table.reshape(geometry.c_in * taps, geometry.h * geometry.w).astype(np.uint32), taps


def flatten_table(c, h, w, in_column_words):
    """The flatten table of one sample: ``uint32 (c * h * w, 1)``, row ``(c, y, x)`` taking
    window word ``(y * w + x) * in_column_words + c``."""
    for name, value in (("c", c), ("h", h), ("w", w), ("in_column_words", in_column_words)):
        _positive(name, value)
    if in_column_words < c:
        raise ValueError(f"in_column_words must hold the {c} channels, not "
                         f"{in_column_words!r}")
    cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    words = (yy * w + xx) * in_column_words + cc
    return words.reshape(-1, 1).astype(np.uint32)


def unflatten_table(c, h, w):
    """The unflatten table of one sample: ``uint32 (c, h * w)``, element ``(c, y * w + x)``
    taking feature ``c * h * w + y * w + x`` of the sample's column."""
    for name, value in (("c", c), ("h", h), ("w", w)):
        _positive(name, value)
    return np.arange(c * h * w, dtype=np.uint32).reshape(c, h * w)


def table_words(model, banks):
    """Scratchpad words of a model's per-sample tables, each a matrix whose columns are
    whole lines of ``banks`` words (``gen.spec.model.Model``)."""
    total = 0
    for _, _, table_rows, columns in _conv_tables(model):
        total += column_words(table_rows, banks) * columns
    for c, h, w in _flattens(model):
        total += column_words(c * h * w, banks) + column_words(c, banks) * h * w
    return total


def _conv_tables(model):
    """``(geometry, first, rows, columns)`` of every table of the model's convolutions."""
    out = []
    for k, t in enumerate(model.trainable):
        if not t.is_conv:
            continue
        conv = t.layer
        g = ConvGeometry(t.in_shape[0], t.in_shape[1], t.in_shape[2], conv.k, conv.stride,
                         conv.pad)
        out.append((g, k == 0, g.rows, g.oh * g.ow))
        if k > 0:
            out.append((g, False, g.c_in * col2im_taps(g), g.h * g.w))
    return out


def _flattens(model):
    """``(c, h, w)`` of every Flatten of an image."""
    shapes = model.shapes
    return [shapes[i] for i, layer in enumerate(model.layers)
            if type(layer).__name__ == "Flatten" and len(shapes[i]) == 3]
