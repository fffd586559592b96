"""The reuse strength over the phases of training (after ACRTC; ``docs/reuse.md``).

The reuse cache's key is set by the ``REUSE_STRENGTH`` register ``k``: a larger ``k`` drops
more low mantissa bits of the streaming operand, so more products are taken from the cache
and more of them are products of a nearby value. The training driver (``sim.train.single``) asks a
schedule for ``k`` before each *window* of steps (an epoch, or the whole run with
``steps``) and tells it the window's mean training loss afterwards. The register changes
only between runs, so the golden model and the RTL see the same ``k`` in every step.

:class:`FixedStrength`
    one ``k`` throughout (the comparison baseline; 0 is off).
:class:`AdaptiveStrength`
    aggressive early, backing off when the loss stops falling. Training tolerates noisy
    products while the loss falls steeply (the gradients are large and point the same way);
    near a plateau the small updates that remain are the ones a coarse product spoils. The
    rule, exactly:

    * start at ``start``;
    * after each window, with its mean loss ``L`` and the previous window's ``L'``: if
      ``L > (1 - plateau) * L'`` (the loss fell by less than the fraction ``plateau``, or
      rose), ``k`` drops by ``step``, but not below ``floor``. It never rises again: a
      plateau reached stays reached.

    The first window has no ``L'`` and keeps ``start``.
"""

import math

__all__ = ["ReuseSchedule", "FixedStrength", "AdaptiveStrength", "schedule_of",
           "STRENGTH_MAX"]

#: The largest value of the 5-bit ``REUSE_STRENGTH`` register.
STRENGTH_MAX = 31


def _check_strength(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= STRENGTH_MAX:
        raise ValueError(f"{name} must be an integer from 0 to {STRENGTH_MAX}, not {value!r}")
    return value


class ReuseSchedule:
    """A reuse strength per window of training steps.

    Members
    -------
    strength : int
        The ``REUSE_STRENGTH`` of the next window.
    history : list of int
        The strength of every window so far.
    """

    name = "schedule"

    def __init__(self, strength):
        self.strength = _check_strength("strength", strength)
        self.history = []

    def observe(self, loss):
        """The mean training loss of the window that just ran at :attr:`strength`."""
        if not isinstance(loss, (int, float)) or isinstance(loss, bool) or math.isnan(loss):
            raise ValueError(f"loss must be a number, not {loss!r}")
        self.history.append(self.strength)
        self.strength = self._next(float(loss))

    def _next(self, loss):
        return self.strength

    def describe(self):
        """A short description for reports."""
        return f"{self.name} k={self.strength}"


class FixedStrength(ReuseSchedule):
    """The same strength ``k`` in every window (0: the cache is off).

    Parameters
    ----------
    k : int
        0 to 31.
    """

    name = "fixed"

    def __init__(self, k):
        super().__init__(_check_strength("k", k))

    def describe(self):
        return f"fixed k={self.strength}"


class AdaptiveStrength(ReuseSchedule):
    """Start coarse and back off at each plateau of the loss (the module docstring).

    Parameters
    ----------
    start : int
        The strength of the first window.
    floor : int
        The smallest strength it backs off to (1: exact hits only; 0: off).
    plateau : float
        The relative fall of the loss, window to window, below which it backs off
        (0 < plateau < 1).
    step : int
        How far it backs off at a plateau.
    """

    name = "adaptive"

    def __init__(self, start=8, floor=6, plateau=0.15, step=1):
        super().__init__(_check_strength("start", start))
        self.start = start
        self.floor = _check_strength("floor", floor)
        if floor > start:
            raise ValueError(f"floor must be at most start ({start}), not {floor!r}")
        if isinstance(plateau, bool) or not isinstance(plateau, (int, float)) \
                or not 0 < plateau < 1:
            raise ValueError(f"plateau must be a number between 0 and 1, not {plateau!r}")
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"step must be a positive integer, not {step!r}")
        self.plateau, self.step = float(plateau), step
        self._last = None

    def _next(self, loss):
        last, self._last = self._last, loss
        if last is not None and loss > (1 - self.plateau) * last:
            return max(self.floor, self.strength - self.step)
        return self.strength

    def describe(self):
        return (f"adaptive start={self.start} floor={self.floor} plateau={self.plateau:g} "
                f"step={self.step}")


def schedule_of(reuse):
    """A schedule from what a user gives: None (off), an int (fixed ``k``),
    ``"adaptive"`` (the default :class:`AdaptiveStrength`) or a :class:`ReuseSchedule`."""
    if reuse is None:
        return FixedStrength(0)
    if isinstance(reuse, ReuseSchedule):
        return reuse
    if isinstance(reuse, str):
        if reuse == "adaptive":
            return AdaptiveStrength()
        if reuse.isdigit():
            return FixedStrength(int(reuse))
        raise ValueError(f"reuse must be 'adaptive' or a strength from 0 to {STRENGTH_MAX}, "
                         f"not {reuse!r}")
    if isinstance(reuse, int) and not isinstance(reuse, bool):
        return FixedStrength(reuse)
    raise ValueError(f"reuse must be None, a strength, 'adaptive' or a ReuseSchedule, "
                     f"not {reuse!r}")
