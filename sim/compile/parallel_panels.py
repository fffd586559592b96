"""Row panels: how model parallel splits a layer's weights over the cores of a cluster,
in memory (:func:`split_rows`, :func:`join_rows`) and in the scratchpad (:func:`rows_of`)."""

import numpy as np

from chrysalis.gen.spec.layout import Matrix

__all__ = ["split_rows", "join_rows", "rows_of"]


def rows_of(matrix, row0, rows):
    """Rows ``row0`` to ``row0 + rows - 1`` (``row0`` a multiple of the bank count) of
    ``matrix`` as a matrix with the same lines per column."""
    assert row0 % matrix.banks == 0 and row0 + rows <= matrix.n
    return Matrix(matrix.base + row0 // matrix.banks, rows, matrix.batch, matrix.banks,
                  matrix.lines_per_column)


def split_rows(matrix, cores):
    """The ``cores`` row panels of ``matrix`` (``(M, N)``, ``M`` a multiple of ``cores``):
    panel ``k`` is rows ``k M/cores`` to ``(k + 1) M/cores - 1``, with every column (the
    bias included)."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] % cores:
        raise ValueError(f"a matrix split into {cores} row panels needs a multiple of "
                         f"{cores} rows, not shape {matrix.shape}")
    rows = matrix.shape[0] // cores
    return [matrix[k * rows:(k + 1) * rows].copy() for k in range(cores)]


def join_rows(panels):
    """The inverse of :func:`split_rows`: the panels stacked, core 0's on top."""
    return np.vstack(list(panels))
