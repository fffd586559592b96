"""The computation-reuse cache of a PE (after ACRTC; semantics in ``docs/reuse.md``).

A PE with a reuse cache remembers the products it made with the current *stationary*
operand, keyed by the *streaming* operand, and on a hit takes the remembered product instead
of multiplying. The cache is split in two parts with one job each:

:class:`ReuseTags`
    the lookups and the replacement: valid bits, tags, the round-robin pointer of each set
    and the current stationary address. It decides, in the cycle a slot enters the multiply
    path, which pairs hit (and where) and which insert (and where). The hits steer the
    multiply path (a hit pair hands the high-precision multiplier to its partner).
:class:`ReuseValues`
    the products. A miss's product exists only when it leaves the multiply path, ``latency``
    cycles after its lookup; the values are therefore written then, and a hit reads its
    entry then too. This is exact: an entry that a slot hits was inserted by an earlier slot
    (lookups see the state before the slot), so its product was written at least one cycle
    before the hit reads it; and an entry evicted after the hit is rewritten only by a later
    slot, at least one cycle after the hit read it.

Golden model: ``sim.golden.reuse.ReuseCache`` (``slot``), run by ``sim.golden.machine`` in the compute
engine's order.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from ._unit import check_format

__all__ = ["ReuseTags", "ReuseValues", "STRENGTH_BITS", "LOOKUP_FIELDS", "RESULT_FIELDS",
           "lookup_signature", "result_signature"]

#: Width of the reuse-strength input (the ``REUSE_STRENGTH`` register, ``gen.spec.isa``).
STRENGTH_BITS = 5


#: The inputs of :class:`ReuseTags` that describe a slot (all but ``strength``).
LOOKUP_FIELDS = ("valid", "fresh", "pair1", "stationary0", "stationary1", "b0", "b1")
#: The outputs of :class:`ReuseTags`.
RESULT_FIELDS = ("look0", "look1", "hit0", "hit1", "hit_index0", "hit_index1",
                 "insert0", "insert1", "insert_index0", "insert_index1")


def lookup_signature(operand, addr_bits):
    """What a PE whose tags are shared (``pe.reuse_scope = "row"``) sends to the tag unit of
    its line: a slot's :data:`LOOKUP_FIELDS`, and ``rows`` (the line is a row of PEs, as in
    BACKWARD, rather than a column)."""
    return wiring.Signature({
        "valid": Out(1), "fresh": Out(1), "pair1": Out(1), "rows": Out(1),
        "stationary0": Out(addr_bits), "stationary1": Out(addr_bits),
        "b0": Out(operand.width), "b1": Out(operand.width),
    })


def result_signature(entries):
    """What the tag unit of a line answers (:data:`RESULT_FIELDS`)."""
    index = range(max(2, entries))
    return wiring.Signature({
        name: Out(index if "index" in name else 1) for name in RESULT_FIELDS})


def _check_geometry(entries, ways):
    for name, value in (("entries", entries), ("ways", ways)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < 1 or value & (value - 1):
            raise ValueError(f"{name} must be a power of two, not {value!r}")
    if ways > entries:
        raise ValueError(f"ways must be at most entries ({entries}), not {ways!r}")


class ReuseTags(wiring.Component):
    """Lookups and replacement of a reuse cache: one slot (up to two pairs) per cycle.

    Everything an input slot does is decided in its own cycle (combinationally) and takes
    effect on the state at the end of it, as ``sim.golden.reuse.ReuseCache.slot`` describes:

    1. a slot whose pair 0 has another stationary address than the current one (or that
       starts a command, ``fresh``) empties the cache and makes that address current;
    2. pair 0 looks up its key; pair 1, where it exists, only if its stationary address is
       the current one; both see the cache as it was before the slot (after step 1);
    3. a miss inserts its key into the way its set's pointer points at, which then advances:
       pair 0 first, then pair 1, unless its key equals pair 0's.

    Parameters
    ----------
    operand : FloatFormat
        Format of the streaming operands (the keys are made from their bits).
    entries, ways : int
        Entries and associativity (powers of two, ``ways <= entries``).
    addr_bits : int
        Width of a stationary (bank) address.

    Members
    -------
    strength : In(5)
        The ``REUSE_STRENGTH`` register: 0 off (no lookups, no change), ``s`` keys on the
        operand without its ``s - 1`` lowest bits (clamped to ``man_bits + 1``).
    valid : In(1)
        A ``MAC`` slot enters the multiply path in this cycle.
    fresh : In(1)
        It is the first ``MAC`` slot of a command (the cache starts empty with a command).
    pair1 : In(1)
        Pair 1 exists.
    stationary0, stationary1 : In(addr_bits)
        The stationary operands' bank addresses.
    b0, b1 : In(operand.width)
        The streaming operands (operand-format bits).
    look0, look1, hit0, hit1 : Out(1)
        Which pairs looked up, which hit.
    hit_index0, hit_index1 : Out(range(entries))
        The entry (``set * ways + way``) that hit.
    insert0, insert1 : Out(1)
        Which pairs insert their product.
    insert_index0, insert_index1 : Out(range(entries))
        The entry each insert goes to.
    """

    def __init__(self, operand, entries, ways, addr_bits):
        self.operand = check_format("Operand format", operand)
        _check_geometry(entries, ways)
        if not isinstance(addr_bits, int) or isinstance(addr_bits, bool) or addr_bits < 1:
            raise ValueError(f"addr_bits must be a positive integer, not {addr_bits!r}")
        self.entries, self.ways, self.addr_bits = entries, ways, addr_bits
        self.sets = entries // ways
        self.set_bits = exact_log2(self.sets)
        self.tag_bits = max(1, operand.width - self.set_bits)
        index = range(max(2, entries))
        super().__init__({
            "strength": In(STRENGTH_BITS),
            "valid": In(1), "fresh": In(1), "pair1": In(1),
            "stationary0": In(addr_bits), "stationary1": In(addr_bits),
            "b0": In(operand.width), "b1": In(operand.width),
            "look0": Out(1), "look1": Out(1), "hit0": Out(1), "hit1": Out(1),
            "hit_index0": Out(index), "hit_index1": Out(index),
            "insert0": Out(1), "insert1": Out(1),
            "insert_index0": Out(index), "insert_index1": Out(index),
        })

    def _key(self, m, bits, name):
        """``bits >> (s - 1)`` with ``s`` clamped to ``1 .. man_bits + 1``."""
        top = self.operand.man_bits + 1
        key = Signal(self.operand.width, name=name)
        with m.Switch(self.strength):
            for s in range(2, top):
                with m.Case(s):
                    m.d.comb += key.eq(bits >> (s - 1))
            with m.Case(*range(top, 1 << STRENGTH_BITS)):
                m.d.comb += key.eq(bits >> (top - 1))
            with m.Default():
                m.d.comb += key.eq(bits)
        return key

    def elaborate(self, platform):
        m = Module()
        S, W, SB = self.sets, self.ways, self.set_bits
        wb = max(1, ceil_log2(W))

        valid = [[Signal(name=f"valid_{s}_{w}") for w in range(W)] for s in range(S)]
        tags = [[Signal(self.tag_bits, name=f"tag_{s}_{w}") for w in range(W)] for s in range(S)]
        pointer = [Signal(wb, name=f"pointer_{s}") for s in range(S)]
        current = Signal(self.addr_bits, name="current")
        has_current = Signal(name="has_current")

        on = Signal(name="on")
        m.d.comb += on.eq(self.valid & (self.strength != 0))
        # 1. A new stationary operand (or a new command): a new cache.
        new = Signal(name="new_stationary")
        m.d.comb += new.eq(on & (self.fresh | ~has_current | (self.stationary0 != current)))
        with m.If(new):
            m.d.sync += [current.eq(self.stationary0), has_current.eq(1)]
        now = Signal(self.addr_bits, name="current_now")
        m.d.comb += now.eq(Mux(new, self.stationary0, current))

        # 2. The lookups, on the state before the slot (emptied if new).
        key0 = self._key(m, self.b0, "key0")
        key1 = self._key(m, self.b1, "key1")

        def split(key):
            return (key[:SB] if SB else Const(0, 1)), key[SB:SB + self.tag_bits]

        set0, tag0 = split(key0)
        set1, tag1 = split(key1)
        m.d.comb += [self.look0.eq(on),
                     self.look1.eq(on & self.pair1 & (self.stationary1 == now))]

        def lookup(set_, tag, look, hit, hit_index, name):
            match = Signal(W, name=f"{name}_match")
            for w in range(W):
                entry_valid = Cat(*[valid[s][w] for s in range(S)]).bit_select(set_, 1)
                entry_tag = Signal(self.tag_bits, name=f"{name}_tag{w}")
                with m.Switch(set_):
                    for s in range(S):
                        with m.Case(s):
                            m.d.comb += entry_tag.eq(tags[s][w])
                m.d.comb += match[w].eq(entry_valid & ~new & (entry_tag == tag))
            m.d.comb += hit.eq(look & match.any())
            # No two ways of a set hold one tag (a key is inserted only on a miss, and pair
            # 1 does not insert pair 0's key), so the first match is the match.
            way = Signal(wb, name=f"{name}_way")
            for w in reversed(range(W)):
                with m.If(match[w]):
                    m.d.comb += way.eq(w)
            m.d.comb += hit_index.eq(Cat(way, set_) if W > 1 else set_)

        lookup(set0, tag0, self.look0, self.hit0, self.hit_index0, "lookup0")
        lookup(set1, tag1, self.look1, self.hit1, self.hit_index1, "lookup1")

        # 3. The misses insert: pair 0, then pair 1 (one way further if in the same set).
        pointers = Cat(*pointer) if W > 1 else Const(0, 1)

        def pointer_now(set_):
            return Mux(new, 0, pointers.word_select(set_, wb)) if W > 1 else Const(0, 1)

        same_set = Signal(name="same_set")
        m.d.comb += same_set.eq(set0 == set1)
        way0 = Signal(wb, name="insert_way0")
        way1 = Signal(wb, name="insert_way1")
        m.d.comb += [
            self.insert0.eq(self.look0 & ~self.hit0),
            self.insert1.eq(self.look1 & ~self.hit1 & (key1 != key0)),
        ]
        if W > 1:
            # Pair 1 inserts after pair 0: one way further on in a shared set (mod ways).
            m.d.comb += [way0.eq(pointer_now(set0)),
                         way1.eq(pointer_now(set1) + (self.insert0 & same_set))]
        m.d.comb += [
            self.insert_index0.eq(Cat(way0, set0) if W > 1 else set0),
            self.insert_index1.eq(Cat(way1, set1) if W > 1 else set1),
        ]
        for s in range(S):
            in0 = self.insert0 & (set0 == s) if S > 1 else self.insert0
            in1 = self.insert1 & (set1 == s) if S > 1 else self.insert1
            if W > 1:
                base = Mux(new, 0, pointer[s])
                m.d.sync += pointer[s].eq(base + in0 + in1)
            for w in range(W):
                with m.If(new):
                    m.d.sync += valid[s][w].eq(0)
                with m.If(in0 & (way0 == w)):
                    m.d.sync += [valid[s][w].eq(1), tags[s][w].eq(tag0)]
                with m.If(in1 & (way1 == w)):
                    m.d.sync += [valid[s][w].eq(1), tags[s][w].eq(tag1)]
        return m


class ReuseValues(wiring.Component):
    """The products of a reuse cache: written and read as the slots leave the multiply path.

    The inputs named after :class:`ReuseTags`'s outputs are taken in the slot's lookup cycle
    and delayed by ``latency`` cycles, to the cycle in which the multiply path's products
    ``p0``, ``p1`` of that slot arrive. Then a hit pair's product is its entry's (``q``), a
    missed pair's is the multiply path's, which its insert writes (pair 1 after pair 0).

    Parameters
    ----------
    width : int
        Width of a product.
    entries : int
        Entries (a power of two).
    latency : int
        Cycles from a lookup to its products (the multiply path's latency).

    Members
    -------
    hit0, hit1, insert0, insert1 : In(1)
    hit_index0, hit_index1, insert_index0, insert_index1 : In(range(entries))
        From :class:`ReuseTags`, in the lookup cycle.
    p0, p1 : In(width)
        The multiply path's products, ``latency`` cycles later.
    q0, q1 : Out(width)
        The products of the slot: the entry's where the pair hit, else ``p0``, ``p1``.
    """

    def __init__(self, width, entries, latency):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        _check_geometry(entries, 1)
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 0:
            raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
        self.width, self.entries, self.latency = width, entries, latency
        index = range(max(2, entries))
        super().__init__({
            "hit0": In(1), "hit1": In(1), "insert0": In(1), "insert1": In(1),
            "hit_index0": In(index), "hit_index1": In(index),
            "insert_index0": In(index), "insert_index1": In(index),
            "p0": In(width), "p1": In(width),
            "q0": Out(width), "q1": Out(width),
        })

    def elaborate(self, platform):
        m = Module()

        def delayed(value, name):
            for stage in range(self.latency):
                nxt = Signal.like(value, name=f"{name}_d{stage}")
                m.d.sync += nxt.eq(value)
                value = nxt
            return value

        names = ("hit0", "hit1", "insert0", "insert1",
                 "hit_index0", "hit_index1", "insert_index0", "insert_index1")
        d = {name: delayed(getattr(self, name), name) for name in names}
        values = [Signal(self.width, name=f"value_{e}") for e in range(self.entries)]
        table = Cat(*values)
        # A hit reads the entry as it is before this cycle's writes (the slot's own inserts
        # may evict the entry it hit: the lookups saw the state before the slot).
        m.d.comb += [
            self.q0.eq(Mux(d["hit0"], table.word_select(d["hit_index0"], self.width), self.p0)),
            self.q1.eq(Mux(d["hit1"], table.word_select(d["hit_index1"], self.width), self.p1)),
        ]
        for e, value in enumerate(values):
            with m.If(d["insert0"] & (d["insert_index0"] == e)):
                m.d.sync += value.eq(self.p0)
            with m.If(d["insert1"] & (d["insert_index1"] == e)):
                m.d.sync += value.eq(self.p1)
        return m
