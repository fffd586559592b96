"""Golden semantics of ``GATHER``: a table-driven copy (and sum) of scratchpad words, the
one data movement that convolutions need beside the dense commands (pure NumPy).

A convolution runs on the core as dense products of gathered matrices
(``docs/convolution.md``): im2col (the patches of an image, with zero padding and a
stride), col2im (the sum of the overlapping patches' gradients), flatten and its inverse are
all one ``GATHER`` each, with a table the compiler builds once per network:

* the source is a flat window of scratchpad words (``sp_lpc`` lines from line ``sp_base``;
  word ``e`` of the window is bank ``e mod S`` of line ``sp_base + e div S``);
* the destination is scratchpad matrix ``sp2`` (``n`` x ``batch``);
* the table is scratchpad matrix ``sp3`` (``n * taps`` x ``batch``) of unsigned integer
  words: element ``(r * taps + t, b)`` is the window word that tap ``t`` of destination
  element ``(r, b)`` takes; an entry at or past the window's words (``sp_lpc * S``; the
  compiler writes ``0xFFFFFFFF``) takes ``+0``, which is how padding reads zeros;
* destination element ``(r, b)`` is ``v0`` with one tap (a copy: every bit kept, ``-0`` and
  NaN included), and ``(((v0 + v1) + v2) + ...)`` with more, each addition the core's fp32
  adder (``sim.golden.numerics.fadd``, round to nearest even) in increasing ``t``;
* with ``flag`` the result is masked as BACKWARD masks: it is kept where the element the
  destination held *before* the command is positive (sign 0, a non-zero exponent field) and
  is ``+0`` elsewhere. So a col2im can write the input gradient over the layer's
  activations and apply the ReLU derivative in the same pass.

This module must not import Amaranth.
"""

import numpy as np

from chrysalis.gen.spec.formats import FP32

from .core_model import relu_mask
from .numerics import fadd

__all__ = ["NO_ENTRY", "gather"]

#: The table entry a compiler writes for a tap that reads ``+0`` (any entry past the
#: window does).
NO_ENTRY = 0xFFFF_FFFF

_U = np.uint64


def gather(window, table, taps, mask=None):
    """The destination matrix of a ``GATHER``.

    Parameters
    ----------
    window : array of uint, (words,)
        The source window's words (fp32 bit patterns), word ``e`` at index ``e``.
    table : array of uint, (n * taps, batch)
        The table matrix.
    taps : int
        Entries summed per destination element (``m`` of the command), at least 1.
    mask : array of uint, (n, batch), optional
        With ``flag``: what the destination held before the command.

    Returns
    -------
    ndarray of uint64, (n, batch)
    """
    if not isinstance(taps, int) or isinstance(taps, bool) or taps < 1:
        raise ValueError(f"taps must be a positive integer, not {taps!r}")
    window = np.asarray(window, dtype=_U).reshape(-1)
    table = np.asarray(table, dtype=_U)
    if table.ndim != 2 or table.shape[0] % taps:
        raise ValueError(f"table must be a matrix of n * taps rows ({taps} taps), "
                         f"not of shape {table.shape!r}")
    n, batch = table.shape[0] // taps, table.shape[1]
    entries = table.reshape(n, taps, batch)
    inside = entries < _U(window.size)
    # An index past the window reads +0; np.take needs an index in range, so those read
    # word 0 and are then replaced.
    values = np.where(inside, window[np.where(inside, entries, 0).astype(np.int64)], _U(0))
    result = values[:, 0, :]
    for t in range(1, taps):
        result = fadd(result, FP32, values[:, t, :], FP32, FP32).astype(_U)
    if mask is not None:
        mask = np.asarray(mask, dtype=_U)
        if mask.shape != (n, batch):
            raise ValueError(f"mask must have the destination's shape {(n, batch)!r}, "
                             f"not {mask.shape!r}")
        result = relu_mask(None, result, mask)
    return np.asarray(result, dtype=_U)
