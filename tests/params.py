"""Cross products of test parameters that keep the default suite short.

``covering(a, b, ...)`` gives every combination of the axes as ``pytest.param``\\ s, and
marks ``slow`` all but a covering subset: combination ``i`` takes value ``i mod len`` of each
axis, for ``i`` up to the longest axis, so every value of every axis runs in ``make test``
and the whole product in ``make test-slow``. Use it where one simulation per combination
would be redundant for the default suite (the same hardware checked on the same golden
model, only in another pairing), never to drop the only run of a case.
"""

import itertools

import pytest

__all__ = ["covering"]


def covering(*axes):
    """Every combination of ``axes`` (each a list of values; a tuple value spreads over
    several arguments), the combinations outside the covering subset marked ``slow``."""
    axes = [list(axis) for axis in axes]
    if not axes or any(not axis for axis in axes):
        raise ValueError(f"every axis needs a value, not {axes!r}")
    longest = max(len(axis) for axis in axes)
    fast = {tuple(i % len(axis) for axis in axes) for i in range(longest)}
    params = []
    for index in itertools.product(*(range(len(axis)) for axis in axes)):
        values = [axis[i] for axis, i in zip(axes, index)]
        flat = [part for value in values
                for part in (value if isinstance(value, tuple) else (value,))]
        marks = () if index in fast else (pytest.mark.slow,)
        params.append(pytest.param(*flat, marks=marks,
                                   id="-".join(_id(part) for part in flat)))
    return params


def _id(value):
    return str(getattr(value, "name", value))
