"""The dual-precision multiply path (after DAA): two operand pairs per slot.

The RTL of one slot of ``sim.golden.dual.DualPath`` (golden model; the policies and the classes of
a pair are described there and in ``docs/dual_precision.md``). Pair 0 ``(a0, b0)`` and pair 1
``(a1, b1)`` enter together and leave, ``latency`` cycles later, as two exact products in
``product_format(operand)`` (``p0``, ``p1``) with their classes (``c0``, ``c1``).

The hardware of each policy:

``single``
    one high-precision multiplier on pair 0 (``p1`` is zero).
``dual-full``
    two high-precision multipliers, one per pair.
``value``, ``static``, ``random``
    one high-precision multiplier (the operand format) and one low-precision multiplier (the
    operand's exponent range, ``low_man_bits`` mantissa bits). A controller picks the pair
    that gets the high-precision multiplier (``value``: the larger exponent sum, a zero
    operand bypassing; ``static``: pair 0; ``random``: the ``random_bit`` input); muxes
    steer that pair to the high multiplier and the other pair, its operands rounded to
    nearest even to the low format (saturating, :class:`hw.fconv.FloatConverter`), to the
    low multiplier. The low product is widened exactly to ``product_format(operand)`` and
    the products are steered back to their own streams.

A **bypassed** pair (an operand is zero) uses no multiplier: its product is the signed zero
``sign(a) ^ sign(b)``, exactly what a multiplier would give (``sim.golden.numerics.fmul``).

:class:`KPairMultiplyAdd` is the slot of the k-paired order (``docs/dual_precision.md``): the
two pairs are steps ``k`` and ``k + 1`` of one output, and their products leave as one sum,
rounded once to ``gen.spec.formats.pair_sum_format`` (golden model:
``sim.golden.dual.DualPath.pair_sum``), ready for one accumulating adder.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.config import DUAL_POLICIES
from chrysalis.gen.spec.formats import FloatFormat, pair_sum_format, product_format

from ._unit import check_format
from .fconv import FloatConverter
from .fmul import FloatMultiplier

__all__ = ["HIGH", "LOW", "BYPASS", "HIT", "DualMultiplyPath", "KPairMultiplyAdd"]

#: Classes of a pair, as in ``sim.golden.dual`` and ``sim.golden.reuse`` (``HIT``: the product comes from
#: the reuse cache, ``hw.reuse``; the multiplier's output for that pair is not used).
HIGH, LOW, BYPASS, HIT = 0, 1, 2, 3


class DualMultiplyPath(wiring.Component):
    """The multiply path of a dual-precision PE: two operand pairs in, two exact products
    and their classes out, after a fixed latency.

    Golden model: ``sim.golden.dual.DualPath(operand, low_man_bits, policy).products``. The
    ``single`` policy has no pair 1: ``p1`` is zero (``c1`` still follows the golden model).

    Parameters
    ----------
    operand : FloatFormat
        Format of the multiplicands.
    low_man_bits : int
        Mantissa bits of the low-precision multiplier, 1 to ``operand.man_bits``.
    policy : str
        One of ``gen.spec.config.DUAL_POLICIES``.
    latency : int
        Register stages from the inputs to the outputs, at least 1. With ``value``,
        ``static`` and ``random`` at 2 or more, the first stage registers the steered and
        rounded operands and the multipliers have the rest; the classes are delayed alike.

    Members
    -------
    a0, b0, a1, b1 : In(operand.width)
        The two operand pairs.
    pair1 : In(1)
        Pair 1 exists (else pair 0 keeps the high-precision multiplier).
    random_bit : In(1)
        The ``random`` policy's bit (``sim.golden.dual.random_bits``): 1 gives pair 1 the
        high-precision multiplier. Unused by the other policies.
    hit0, hit1 : In(1)
        The pair's product comes from the reuse cache (``hw.reuse``): it is classed ``HIT``
        and its partner, if it needs a multiplier, gets the high-precision one
        (``sim.golden.reuse.reuse_classes``). The pair's own output is then not used.
    i_valid : In(1)
    p0, p1 : Out(product_format(operand).width)
        The products of pair 0 and pair 1.
    c0, c1 : Out(2)
        Their classes: ``HIGH``, ``LOW``, ``BYPASS`` or ``HIT``.
    o_valid : Out(1)
    """

    def __init__(self, operand, low_man_bits, policy, *, latency=1):
        self.operand = check_format("Operand format", operand)
        if not isinstance(low_man_bits, int) or isinstance(low_man_bits, bool):
            raise TypeError(f"low_man_bits must be an integer, not {low_man_bits!r}")
        if not 1 <= low_man_bits <= operand.man_bits:
            raise ValueError(f"low_man_bits must be from 1 to {operand.man_bits}, "
                             f"not {low_man_bits!r}")
        if not isinstance(policy, str) or policy not in DUAL_POLICIES:
            raise ValueError(f"Policy must be one of {', '.join(DUAL_POLICIES)}, "
                             f"not {policy!r}")
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise ValueError(f"Latency must be a positive integer, not {latency!r}")
        self.low_man_bits = low_man_bits
        self.policy = policy
        self.latency = latency
        self.low = FloatFormat(operand.exp_bits, low_man_bits)
        self.product = product_format(operand)
        width = operand.width
        super().__init__({
            "a0": In(width), "b0": In(width), "a1": In(width), "b1": In(width),
            "pair1": In(1),
            "random_bit": In(1),
            "hit0": In(1), "hit1": In(1),
            "i_valid": In(1),
            "p0": Out(self.product.width), "p1": Out(self.product.width),
            "c0": Out(2), "c1": Out(2),
            "o_valid": Out(1),
        })

    def _delay(self, m, value, name):
        """``value`` through ``latency`` registers."""
        for index in range(self.latency):
            delayed = Signal(len(value), name=f"{name}_d{index}")
            m.d.sync += delayed.eq(value)
            value = delayed
        return value

    def _exponent(self, bits):
        fmt = self.operand
        return bits[fmt.man_bits:fmt.man_bits + fmt.exp_bits]

    def _sign(self, bits):
        return bits[self.operand.width - 1]

    def elaborate(self, platform):
        m = Module()
        fmt, pw = self.operand, self.product.width

        zero0 = Signal(name="zero0")
        zero1 = Signal(name="zero1")
        m.d.comb += [
            zero0.eq((self._exponent(self.a0) == 0) | (self._exponent(self.b0) == 0)),
            zero1.eq((self._exponent(self.a1) == 0) | (self._exponent(self.b1) == 0)),
        ]

        def signed_zero(sign):
            return Cat(Const(0, pw - 1), sign)

        if self.policy in ("single", "dual-full"):
            m.submodules.high0 = high0 = FloatMultiplier(fmt, latency=self.latency)
            m.d.comb += [high0.a.eq(self.a0), high0.b.eq(self.b0),
                         high0.i_valid.eq(self.i_valid)]
            # A multiplier gives a zero operand's signed zero itself: no bypass mux.
            m.d.comb += self.p0.eq(high0.product)
            if self.policy == "dual-full":
                m.submodules.high1 = high1 = FloatMultiplier(fmt, latency=self.latency)
                m.d.comb += [high1.a.eq(self.a1), high1.b.eq(self.b1),
                             high1.i_valid.eq(self.i_valid),
                             self.p1.eq(high1.product)]
            else:
                m.d.comb += self.p1.eq(0)
            c0 = Mux(self.hit0, HIT, Mux(zero0, BYPASS, HIGH))
            c1 = Mux(self.hit1, HIT, Mux(zero1, BYPASS, HIGH))
            m.d.comb += [self.c0.eq(self._delay(m, c0, "c0")),
                         self.c1.eq(self._delay(m, c1, "c1")),
                         self.o_valid.eq(high0.o_valid)]
            return m

        # The controller: does pair 1 get the high-precision multiplier?
        one_high = Signal(name="one_high")
        if self.policy == "value":
            sum0 = Signal(fmt.exp_bits + 1, name="exp_sum0")
            sum1 = Signal(fmt.exp_bits + 1, name="exp_sum1")
            m.d.comb += [sum0.eq(self._exponent(self.a0) + self._exponent(self.b0)),
                         sum1.eq(self._exponent(self.a1) + self._exponent(self.b1))]
            # A zero pair bypasses and hands the multiplier to the other; a tie: pair 0.
            wants = zero0 | (~zero1 & (sum1 > sum0))
        elif self.policy == "static":
            wants = Const(0, 1)
        else:
            wants = self.random_bit
        # A pair that hits in the reuse cache needs no multiplier: its partner gets the high
        # one (docs/reuse.md). An unpaired pair 0 keeps it.
        m.d.comb += one_high.eq((self.hit0 | (~self.hit1 & wants)) & self.pair1)

        # Steering: the high pair to the high multiplier, the other one, rounded, to the
        # low multiplier. With two or more stages the steering and the rounding get a stage
        # of their own: in the multipliers' stage they would set the clock
        # (benchmarks/dual_area.py).
        steer = 1 if self.latency >= 2 else 0
        m.submodules.high = high = FloatMultiplier(fmt, latency=self.latency - steer)
        m.submodules.low = low = FloatMultiplier(self.low, latency=self.latency - steer)
        m.submodules.round_a = round_a = FloatConverter(fmt, self.low, latency=0)
        m.submodules.round_b = round_b = FloatConverter(fmt, self.low, latency=0)
        m.d.comb += [
            round_a.a.eq(Mux(one_high, self.a0, self.a1)),
            round_b.a.eq(Mux(one_high, self.b0, self.b1)),
            round_a.i_valid.eq(self.i_valid),
            round_b.i_valid.eq(self.i_valid),
        ]
        steered = [("high_a", high.a, Mux(one_high, self.a1, self.a0)),
                   ("high_b", high.b, Mux(one_high, self.b1, self.b0)),
                   ("high_valid", high.i_valid, self.i_valid),
                   ("low_a", low.a, round_a.result), ("low_b", low.b, round_b.result),
                   ("low_valid", low.i_valid, self.i_valid)]
        for name, target, value in steered:
            if steer:
                stage = Signal(len(target), name=f"steered_{name}")
                m.d.sync += stage.eq(value)
                m.d.comb += target.eq(stage)
            else:
                m.d.comb += target.eq(value)
        # The low product widened exactly: same exponent field and bias, more mantissa.
        pad = self.product.man_bits - product_format(self.low).man_bits
        low_product = Cat(Const(0, pad), low.product) if pad else low.product

        # Classes and bypasses, delayed alongside the multipliers.
        c0 = Mux(self.hit0, HIT, Mux(zero0, BYPASS, Mux(one_high, LOW, HIGH)))
        c1 = Mux(self.hit1, HIT, Mux(zero1, BYPASS, Mux(one_high, HIGH, LOW)))
        c0_out = self._delay(m, c0, "c0")
        c1_out = self._delay(m, c1, "c1")
        one_high_out = self._delay(m, one_high, "one_high")
        zero0_out = self._delay(m, zero0, "zero0")
        zero1_out = self._delay(m, zero1, "zero1")
        sign0_out = self._delay(m, self._sign(self.a0) ^ self._sign(self.b0), "sign0")
        sign1_out = self._delay(m, self._sign(self.a1) ^ self._sign(self.b1), "sign1")
        m.d.comb += [
            self.p0.eq(Mux(zero0_out, signed_zero(sign0_out),
                           Mux(one_high_out, low_product, high.product))),
            self.p1.eq(Mux(zero1_out, signed_zero(sign1_out),
                           Mux(one_high_out, high.product, low_product))),
            self.c0.eq(c0_out),
            self.c1.eq(c1_out),
            self.o_valid.eq(high.o_valid),
        ]
        return m


class KPairMultiplyAdd(wiring.Component):
    """The multiply path of a k-paired slot and the sum of its two products.

    Golden model: ``sim.golden.dual.DualPath(operand, low_man_bits, policy)``: ``products``
    of the two pairs, then ``pair_sum``. Pair 0 is step ``k`` and pair 1 step ``k + 1`` of one
    output; where pair 1 does not exist (``pair1`` low: an odd last step) it contributes
    ``-0``, so the sum is pair 0's product exactly. The sum goes to one accumulating adder
    (``hw.fadd.FloatAdder(FP32, pair_sum_format(operand), FP32)``).

    Parameters
    ----------
    operand : FloatFormat
        Format of the multiplicands.
    low_man_bits : int
        Mantissa bits of the low-precision multiplier.
    policy : str
        A policy with two pairs: ``dual-full``, ``value``, ``static`` or ``random``.
    latency : int
        Register stages of the multiply path (:class:`DualMultiplyPath`).
    sum_latency : int
        Register stages of the pair adder (``hw.fadd.FloatAdder``), at least 1.

    Members
    -------
    a0, b0, a1, b1 : In(operand.width)
        Steps ``k`` and ``k + 1``.
    pair1 : In(1)
        Step ``k + 1`` exists.
    random_bit : In(1)
        The ``random`` policy's bit.
    i_valid : In(1)
    sum : Out(pair_sum_format(operand).width)
        ``p0 + p1`` rounded once, ``latency + sum_latency`` cycles after the inputs.
    c0, c1 : Out(2)
        The classes of the two products (``HIGH``, ``LOW``, ``BYPASS``), as the sum leaves.
    o_valid : Out(1)
    """

    def __init__(self, operand, low_man_bits, policy, *, latency=1, sum_latency=1):
        if policy == "single":
            raise ValueError(f"A k-pair needs a policy with two pairs, not {policy!r}")
        if not isinstance(sum_latency, int) or isinstance(sum_latency, bool) or sum_latency < 1:
            raise ValueError(f"sum_latency must be a positive integer, not {sum_latency!r}")
        self.path = DualMultiplyPath(operand, low_man_bits, policy, latency=latency)
        self.operand, self.policy = operand, policy
        self.latency, self.sum_latency = latency, sum_latency
        self.product = product_format(operand)
        self.sum_format = pair_sum_format(operand)
        width = operand.width
        super().__init__({
            "a0": In(width), "b0": In(width), "a1": In(width), "b1": In(width),
            "pair1": In(1), "random_bit": In(1), "i_valid": In(1),
            "sum": Out(self.sum_format.width),
            "c0": Out(2), "c1": Out(2),
            "o_valid": Out(1),
        })

    def elaborate(self, platform):
        from .fadd import FloatAdder
        m = Module()
        m.submodules.multiply = mul = self.path
        for name in ("a0", "b0", "a1", "b1", "pair1", "random_bit", "i_valid"):
            m.d.comb += getattr(mul, name).eq(getattr(self, name))
        pair1 = self.pair1
        for index in range(self.latency):
            delayed = Signal(name=f"pair1_d{index}")
            m.d.sync += delayed.eq(pair1)
            pair1 = delayed
        # An absent step k + 1 adds -0, the identity of a round-to-nearest sum.
        neg_zero = Cat(Const(0, self.product.width - 1), Const(1, 1))
        # One path: the pair adder sets no clock of the PE (its multiply path and
        # accumulating adder do), and two paths would cost it 258 LUT4 more.
        m.submodules.pair_add = add = FloatAdder(self.product, self.product, self.sum_format,
                                                 latency=self.sum_latency, paths=1)
        m.d.comb += [add.a.eq(mul.p0), add.b.eq(Mux(pair1, mul.p1, neg_zero)),
                     add.i_valid.eq(mul.o_valid),
                     self.sum.eq(add.result), self.o_valid.eq(add.o_valid)]
        c0, c1 = mul.c0, mul.c1
        for index in range(self.sum_latency):
            d0 = Signal(2, name=f"c0_sum_d{index}")
            d1 = Signal(2, name=f"c1_sum_d{index}")
            m.d.sync += [d0.eq(c0), d1.eq(c1)]
            c0, c1 = d0, d1
        m.d.comb += [self.c0.eq(c0), self.c1.eq(c1)]
        return m
