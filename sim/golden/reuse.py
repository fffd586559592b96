"""Golden model of the computation-reuse cache of a PE (after ACRTC, ``docs/reuse.md``).

A PE with a reuse cache remembers the products it made with the current *stationary*
operand, keyed by the *streaming* operand, and on a hit takes the remembered product
instead of multiplying. :class:`ReuseCache` is the cache of many PEs at once (a leading
axis of independent *lanes*), and :meth:`ReuseCache.slot` performs one compute slot exactly
as ``docs/reuse.md`` ("A slot, exactly") says. :func:`reuse_classes` is the multiplier
assignment of a dual-precision slot with hits: a hit pair is :data:`HIT` and hands the
high-precision multiplier to its partner.

The cache stores whatever the caller inserts as a pair's *value*: the product the multiply
path made (``product_format(operand)`` bits), or any other ``uint64`` payload the caller
resolves afterwards (``sim.golden.machine`` inserts the index of the product, which lets it make
the products of a whole command at once).
"""

from typing import NamedTuple

import numpy as np

from chrysalis.gen.spec.formats import FloatFormat
from chrysalis.sim.golden.dual import HIGH, LOW

__all__ = ["HIT", "ReuseCache", "SlotResult", "reuse_key", "reuse_classes"]

#: Class of a pair that took its product from the reuse cache (after ``sim.golden.dual``'s
#: ``HIGH``, ``LOW``, ``BYPASS``): it used no multiplier.
HIT = 3

_U = np.uint64


def reuse_key(bits, operand, strength):
    """The cache key of operand-format words ``bits`` at reuse strength ``strength``.

    Parameters
    ----------
    bits : array_like of uint64
        Operand-format words (sign, exponent, mantissa).
    operand : FloatFormat
    strength : int
        The ``REUSE_STRENGTH`` value, at least 1 (0 is off and has no key); values above
        ``operand.man_bits + 1`` act as ``operand.man_bits + 1``.

    Returns
    -------
    ndarray of uint64
        ``bits >> (strength - 1)``: the sign, the exponent and the top
        ``man_bits + 1 - strength`` mantissa bits.
    """
    if not isinstance(strength, (int, np.integer)) or strength < 1:
        raise ValueError(f"strength must be an int of at least 1, not {strength!r}")
    shift = min(int(strength), operand.man_bits + 1) - 1
    return np.asarray(bits, dtype=_U) >> _U(shift)


def reuse_classes(c0, c1, hit0, hit1, pair1=True):
    """The classes of a dual-precision slot with reuse hits.

    Parameters
    ----------
    c0, c1 : array_like of int
        The classes the multiply path gives the pairs without a cache
        (``sim.golden.dual.DualPath.classes``).
    hit0, hit1 : array_like of bool
        Which pairs hit in the reuse cache.
    pair1 : array_like of bool
        Where pair 1 exists.

    Returns
    -------
    (ndarray, ndarray)
        A pair that hits is :data:`HIT`; its partner, where it needs a multiplier and did not
        hit, gets the high-precision one (a ``LOW`` partner becomes ``HIGH``; ``HIGH`` and
        ``BYPASS`` stay). For ``value`` this is the class the controller gives when the hit
        pair is treated as a zero pair; for ``static`` and ``random`` it is the same rule
        (``docs/reuse.md``).
    """
    c0, c1 = np.asarray(c0), np.asarray(c1)
    hit0 = np.asarray(hit0, dtype=bool)
    hit1 = np.asarray(hit1, dtype=bool) & np.asarray(pair1, dtype=bool)
    c0 = np.where(hit1 & (c0 == LOW), HIGH, c0)
    c1 = np.where(hit0 & (c1 == LOW), HIGH, c1)
    return np.where(hit0, HIT, c0), np.where(hit1, HIT, c1)


class SlotResult(NamedTuple):
    """What :meth:`ReuseCache.slot` did in each lane.

    Members
    -------
    look0, look1 : ndarray of bool, (lanes,)
        Which pairs looked up their key (pair 0: every active lane; pair 1: where it exists
        and its stationary address is the current one).
    hit0, hit1 : ndarray of bool, (lanes,)
        Which pairs hit.
    value0, value1 : ndarray of uint64, (lanes,)
        The hit entries' values (products); 0 where the pair did not hit.
    """

    look0: np.ndarray
    hit0: np.ndarray
    value0: np.ndarray
    look1: np.ndarray
    hit1: np.ndarray
    value1: np.ndarray


class ReuseCache:
    """The reuse caches of ``lanes`` independent PEs.

    Parameters
    ----------
    lanes : int
        Independent caches (a leading axis of every array argument).
    entries : int
        ``pe.reuse_entries``: a power of two (at least 1).
    ways : int
        ``pe.reuse_ways``: a power of two, at most ``entries``.
    operand : FloatFormat
        The format of the operands (the multiplicands) that make the keys.
    strength : int
        The ``REUSE_STRENGTH`` register (0: off; values above ``operand.man_bits + 1`` act
        as ``operand.man_bits + 1``).

    Members
    -------
    sets : int
        ``entries // ways``; a key's set is its low ``log2(sets)`` bits, its tag the rest.
    valid : ndarray of bool, (lanes, sets, ways)
    tag, value : ndarray of uint64, (lanes, sets, ways)
    pointer : ndarray of int64, (lanes, sets)
        The round-robin pointer of each set: the way the next insert goes to.
    current : ndarray of int64, (lanes,)
        The current stationary address ``S`` (-1: none, as at the start of a command).
    """

    #: Class of a pair that hit (see :data:`HIT`).
    HIT = HIT

    def __init__(self, lanes, entries, ways, operand, strength):
        for name, value, low in (("lanes", lanes, 0), ("entries", entries, 1),
                                 ("ways", ways, 1), ("strength", strength, 0)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int of at least {low}, not {value!r}")
        if entries & (entries - 1) or ways & (ways - 1) or ways > entries:
            raise ValueError(f"entries and ways must be powers of two with ways <= entries, "
                             f"not {entries} and {ways}")
        if not isinstance(operand, FloatFormat):
            raise TypeError(f"operand must be a FloatFormat, not {operand!r}")
        self.lanes, self.entries, self.ways = int(lanes), int(entries), int(ways)
        self.operand, self.strength = operand, int(strength)
        self.sets = self.entries // self.ways
        self.set_bits = self.sets.bit_length() - 1
        self.reset()

    @classmethod
    def from_config(cls, config, lanes, strength):
        """The caches of ``lanes`` PEs of ``config`` (``pe.reuse_entries > 0``)."""
        return cls(lanes, config.pe.reuse_entries, config.pe.reuse_ways,
                   config.mac.operand, strength)

    @property
    def enabled(self):
        """Whether the cache does anything (strength not 0)."""
        return self.strength > 0

    def reset(self):
        """The state at the start of a command: every entry invalid, every pointer at way
        0, no current stationary address."""
        shape = (self.lanes, self.sets, self.ways)
        self.valid = np.zeros(shape, dtype=bool)
        self.tag = np.zeros(shape, dtype=_U)
        self.value = np.zeros(shape, dtype=_U)
        self.pointer = np.zeros((self.lanes, self.sets), dtype=np.int64)
        self.current = np.full(self.lanes, -1, dtype=np.int64)

    def invalidate(self, lanes=None):
        """Make every entry of ``lanes`` (bool mask, default all) invalid and reset their
        pointers to way 0 (the current stationary address is kept)."""
        lanes = slice(None) if lanes is None else np.asarray(lanes, dtype=bool)
        self.valid[lanes] = False
        self.pointer[lanes] = 0

    def key(self, bits):
        """The key of operand words ``bits`` (:func:`reuse_key`)."""
        return reuse_key(bits, self.operand, self.strength)

    def _split(self, key):
        return ((key & _U(self.sets - 1)).astype(np.int64), key >> _U(self.set_bits))

    def lookup(self, key):
        """Look up ``key`` (``(lanes,)`` keys) without changing anything.

        Returns
        -------
        (ndarray of bool, ndarray of uint64)
            Hit flags and the hit entries' values (0 on a miss).
        """
        index, tag = self._split(np.asarray(key, dtype=_U))
        rows = np.arange(self.lanes)
        match = self.valid[rows, index] & (self.tag[rows, index] == tag[:, None])
        hit = match.any(axis=1)
        way = match.argmax(axis=1)
        value = np.where(hit, self.value[rows, index, way], _U(0))
        return hit, value

    def insert(self, mask, key, value):
        """Insert ``key`` with ``value`` in the lanes of ``mask``: into the way its set's
        pointer points at, which then advances (FIFO replacement)."""
        mask = np.asarray(mask, dtype=bool)
        rows = np.flatnonzero(mask)
        if not len(rows):
            return
        index, tag = self._split(np.asarray(key, dtype=_U)[rows])
        way = self.pointer[rows, index]
        self.valid[rows, index, way] = True
        self.tag[rows, index, way] = tag
        self.value[rows, index, way] = np.broadcast_to(np.asarray(value, dtype=_U),
                                                       mask.shape)[rows]
        self.pointer[rows, index] = (way + 1) % self.ways

    def slot(self, stationary0, operand0, stationary1=None, operand1=None, *, pair1=None,
             active=None, products=None):
        """One compute slot that issues a ``MAC`` (``docs/reuse.md``, "A slot, exactly").

        Parameters
        ----------
        stationary0 : array_like of int, (lanes,)
            Pair 0's stationary (bank) address.
        operand0 : array_like of uint64, (lanes,)
            Pair 0's streaming operand (operand-format bits).
        stationary1, operand1 : array_like, (lanes,), optional
            Pair 1's (dual precision); without them the slot has pair 0 alone.
        pair1 : array_like of bool, optional
            Where pair 1 exists (default: everywhere, if it is given).
        active : array_like of bool, optional
            The lanes whose slot issues a MAC (default all); the others are left alone.
        products : tuple or callable, optional
            The values the misses insert, ``(product0, product1)`` (``(lanes,)`` arrays, or
            scalars; ``product1`` may be None without pair 1), or a callable that takes the
            :class:`SlotResult` of the lookups and returns them (the multiply path's products
            can depend on the hits). Default 0.

        Returns
        -------
        SlotResult
            Both lookups see the cache as it was before the slot (after the invalidation of
            step 1). Pair 0 inserts on a miss, then pair 1 on a miss, unless its key equals
            pair 0's. With strength 0 nothing is looked up and nothing changes.
        """
        L = self.lanes
        active = (np.ones(L, dtype=bool) if active is None
                  else np.broadcast_to(np.asarray(active, dtype=bool), (L,)))
        has1 = operand1 is not None
        exists1 = np.zeros(L, dtype=bool)
        if has1:
            exists1 = (np.ones(L, dtype=bool) if pair1 is None
                       else np.broadcast_to(np.asarray(pair1, dtype=bool), (L,)))
        none = np.zeros(L, dtype=bool)
        zero = np.zeros(L, dtype=_U)
        if not self.enabled:
            result = SlotResult(none, none, zero, none, none, zero)
            if callable(products):
                products(result)
            return result

        # 1. A new stationary operand: a new cache.
        s0 = np.broadcast_to(np.asarray(stationary0, dtype=np.int64), (L,))
        new = active & (s0 != self.current)
        if new.any():
            self.invalidate(new)
            self.current = np.where(new, s0, self.current)
        # 2.-3. The lookups, both on the state before the slot.
        key0 = self.key(np.broadcast_to(np.asarray(operand0, dtype=_U), (L,)))
        hit0, value0 = self.lookup(key0)
        look0 = active
        hit0 = hit0 & look0
        value0 = np.where(hit0, value0, _U(0))
        if has1:
            s1 = np.broadcast_to(np.asarray(stationary1, dtype=np.int64), (L,))
            key1 = self.key(np.broadcast_to(np.asarray(operand1, dtype=_U), (L,)))
            look1 = active & exists1 & (s1 == self.current)
            hit1, value1 = self.lookup(key1)
            hit1 = hit1 & look1
            value1 = np.where(hit1, value1, _U(0))
        else:
            key1, look1, hit1, value1 = zero, none, none, zero
        result = SlotResult(look0, hit0, value0, look1, hit1, value1)
        # 4. The misses insert: pair 0, then pair 1 unless on pair 0's key.
        made = products(result) if callable(products) else products
        product0, product1 = (0, 0) if made is None else made
        self.insert(look0 & ~hit0, key0, product0)
        if has1:
            self.insert(look1 & ~hit1 & (key1 != key0), key1,
                        0 if product1 is None else product1)
        return result
