"""Where data lives in a core's scratchpad and local stores (see ``hw/scratchpad.py``).

Pure Python/NumPy, shared by the compiler, the golden machine model and the testbenches, so
that hardware and software agree on one layout.
"""

from dataclasses import dataclass

from .checks import ceil_div

__all__ = ["bank_count", "Matrix", "Allocator", "tiles"]


def bank_count(rows, cols):
    """Scratchpad banks of an R x C core: the smallest power of two at least max(R, C)."""
    banks = 1
    while banks < max(rows, cols):
        banks *= 2
    return banks


def tiles(count, lanes):
    """``ceil(count / lanes)``: tiles of ``lanes`` PEs that ``count`` elements need."""
    return ceil_div(count, lanes)


@dataclass(frozen=True)
class Matrix:
    """A column-major matrix in the scratchpad: ``n`` elements per column, ``batch`` columns,
    each column padded to whole lines of ``banks`` words, starting at line ``base``."""

    base: int
    n: int
    batch: int
    banks: int
    #: Lines per column; by default just enough for ``n`` (a view of part of a larger
    #: matrix keeps the larger one's).
    lpc: int = None

    @property
    def lines_per_column(self):
        return tiles(self.n, self.banks) if self.lpc is None else self.lpc

    @property
    def lines(self):
        return self.lines_per_column * self.batch

    def address(self, e, b):
        """Word address of element ``(e, b)``."""
        return (self.base + b * self.lines_per_column) * self.banks + e

    def addresses(self):
        """Word addresses of every element, as an ``(n, batch)`` array."""
        # NumPy is imported here: the config (gen.spec.config) uses bank_count and must stay
        # importable without NumPy.
        import numpy as np
        e = np.arange(self.n)[:, None]
        b = np.arange(self.batch)[None, :]
        return (self.base + b * self.lines_per_column) * self.banks + e


class Allocator:
    """Hands out scratchpad lines for matrices, in order; a clear error when full."""

    def __init__(self, total_words, banks):
        self.banks = banks
        self.total_lines = total_words // banks
        self.next_line = 0

    def matrix(self, n, batch, what="matrix"):
        m = Matrix(self.next_line, n, batch, self.banks)
        if self.next_line + m.lines > self.total_lines:
            raise ValueError(f"{what} of {n} x {batch} needs {m.lines} scratchpad lines; "
                             f"only {self.total_lines - self.next_line} of "
                             f"{self.total_lines} are left")
        self.next_line += m.lines
        return m
