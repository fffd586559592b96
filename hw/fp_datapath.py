"""Building blocks of the floating-point datapaths: unpack, multiply, align, add, round.

Each function adds combinational logic to a module and returns the Values of its results.
The units in ``hw.fmul``, ``hw.fadd``, ``hw.mac`` and ``hw.fconv`` chain these blocks and
place pipeline registers between them with :class:`Pipeline`.

The steps mirror ``sim.golden.numerics`` one for one (alignment window, three guard bits, the sticky
jammed into the least significant bit, normalization, one round to nearest even, flush to
zero, saturation), so the two can be read side by side. ``docs/numerics.md`` gives the
semantics they both implement. The adder alone is split differently, for speed: into a
near and a far path (:func:`add`), each of which computes the golden model's exact sum for
the operands it takes.
"""

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed

__all__ = ["GUARD_BITS", "Unpacked", "Pipeline", "exponent_width", "adder_window",
           "unpack", "multiply", "partial_products", "sum_partials", "normalize_product", "order",
           "order_unpicked", "align", "shift_right_jam", "near_difference", "add_magnitudes",
           "add_signed_magnitudes", "normalize", "normalize_by_count",
           "add", "round_pack", "narrow", "convert", "pack_exact", "leading_zeros", "below"]

#: Bits kept below the aligned significands in the adder (the golden model uses the same).
GUARD_BITS = 3


class Unpacked(NamedTuple):
    """A decoded operand: the value is ``(-1)**sign * sig * 2**(exp - precision + 1)``.

    ``sig`` has its leading one at bit ``precision - 1`` unless ``zero``. ``exp_rel``, when
    known, is ``exp - 1`` in a form that costs no logic (see :func:`unpack`): differences
    of two exponents are taken from it, one carry chain instead of three.
    """
    sign: Value
    exp: Value
    sig: Value
    zero: Value
    precision: int
    exp_rel: Value = None


def exponent_width(*formats):
    """Width of the signed internal exponent: room for every exponent plus the adder's
    normalization shift, which is never more than the widest significand window."""
    return max(fmt.exp_bits for fmt in formats) + 3


def adder_window(a_fmt, b_fmt, out_fmt):
    """Width to which the adder left-aligns both significands (see ``sim.golden.numerics``)."""
    return max(a_fmt.precision, b_fmt.precision, out_fmt.precision)


class Pipeline:
    """Places the registers of a fixed-latency datapath.

    A datapath is a chain of blocks separated by named boundaries. :meth:`stage` carries the
    values that cross a boundary: through registers when the boundary is registered, else
    through wires (named either way, so waveforms read alike at every latency).

    Parameters
    ----------
    m : Module
        The module to add the logic to.
    boundaries : sequence of str
        Boundary names in the order of preference for registers; the last is ``"output"``.
    latency : int
        Number of register stages. The first ``latency`` boundaries of the preference order
        are registered; beyond their number, further registers delay the output.
    """

    def __init__(self, m, boundaries, latency):
        self.m = m
        self.registered = set(boundaries[:latency])
        self.extra = max(0, latency - len(boundaries))

    def stage(self, boundary, **values):
        out = {}
        for key, value in values.items():
            value = Value.cast(value)
            # A datapath register has no reset (``o_valid`` says when it holds a result):
            # so a register before or after a multiplier or a block RAM can be the block's
            # own (gen.flows.hard_registers), and it needs no reset net.
            sig = Signal(value.shape(), name=f"{boundary}_{key}", reset_less=True)
            if boundary in self.registered:
                self.m.d.sync += sig.eq(value)
            else:
                self.m.d.comb += sig.eq(value)
            out[key] = sig
        return out

    def output(self, value):
        """``value`` through the output boundary and any extra delay registers."""
        value = self.stage("output", result=value)["result"]
        for index in range(self.extra):
            delayed = Signal(value.shape(), name=f"delay{index}_result", reset_less=True)
            self.m.d.sync += delayed.eq(value)
            value = delayed
        return value

    def drive(self, unit, result, port="result"):
        """Drive ``unit``'s result port through the output boundary, and its ``o_valid``
        from its ``i_valid`` delayed by the unit's whole latency."""
        self.m.d.comb += [
            getattr(unit, port).eq(self.output(result)),
            unit.o_valid.eq(self.valid(unit.i_valid, unit.latency)),
        ]

    def valid(self, i_valid, latency):
        """``i_valid`` delayed by the whole latency."""
        for index in range(latency):
            delayed = Signal(name=f"valid_{index}")
            self.m.d.sync += delayed.eq(i_valid)
            i_valid = delayed
        return i_valid


def unpack(m, fmt, bits, ew, name, *, mask_zero=True):
    """Decode a ``fmt`` bit pattern: exponent code 0 reads as a signed zero.

    With ``mask_zero=False`` the significand of a zero is left as the mantissa bits with
    the implicit one; the ``zero`` flag must then be applied later (the multiplier does so
    after its pipeline register, which keeps the zero test off the multiplier's path).
    """
    field = bits[fmt.man_bits:fmt.man_bits + fmt.exp_bits]
    zero = Signal(name=f"{name}_zero")
    sig = Signal(fmt.precision, name=f"{name}_sig")
    exp = Signal(signed(ew), name=f"{name}_exp")
    full = Cat(bits[:fmt.man_bits], Const(1, 1))
    m.d.comb += [
        zero.eq(field == 0),
        sig.eq(Mux(zero, 0, full) if mask_zero else full),
        exp.eq(field - fmt.bias),
    ]
    # With the usual bias 2**(e - 1) - 1, field - bias - 1 is the field with its top bit
    # flipped, read as signed: wires and an inverter, no adder.
    rel = None
    if fmt.bias == 2 ** (fmt.exp_bits - 1) - 1:
        rel = Signal(signed(fmt.exp_bits), name=f"{name}_exp_rel")
        m.d.comb += rel.eq(Cat(field[:-1], ~field[-1]))
    return Unpacked(bits[fmt.width - 1], exp, sig, zero, fmt.precision, rel)


def multiply(m, a, b, ew, name="prod"):
    """Raw product of two unpacked operands: ``2 * precision`` bits, not yet normalized.

    The exponent is the sum of the operands' exponents; :func:`normalize_product` adds the
    one bit of normalization. Keeping that after the multiplier's pipeline register takes
    the multiplier's output off the exponent's path.
    """
    p = a.precision + b.precision
    prod = Signal(p, name=f"{name}_raw")
    exp = Signal(signed(ew), name=f"{name}_exp_sum")
    m.d.comb += [prod.eq(a.sig * b.sig), exp.eq(a.exp + b.exp)]
    return Unpacked(a.sign ^ b.sign, exp, prod, a.zero | b.zero, p)


def partial_products(m, a, b, name="prod", piece=18):
    """The significand product ``a.sig * b.sig`` as partial products of at most ``piece`` x
    ``piece`` bits (one ECP5 multiplier block each), with their shifts.

    :func:`sum_partials` joins them. A unit that registers the partial products before the
    sum keeps the multiplier blocks and the adders that join them in different cycles: a
    24 x 24 product is four blocks and two carry chains, too long for one cycle with the
    operand selection before it. Operands of at most ``piece`` bits give one part.
    """
    def pieces(sig, width):
        return [(sig[lo:min(lo + piece, width)], lo) for lo in range(0, width, piece)]

    parts = []
    for x, x_shift in pieces(a.sig, a.precision):
        for y, y_shift in pieces(b.sig, b.precision):
            part = Signal(len(x) + len(y), name=f"{name}_part{len(parts)}")
            m.d.comb += part.eq(x * y)
            parts.append((part, x_shift + y_shift))
    return parts


def sum_partials(m, parts, width, name="prod"):
    """``sum(part << shift)`` of :func:`partial_products`, ``width`` bits."""
    total = Signal(width, name=f"{name}_joined")
    m.d.comb += total.eq(sum(part << shift for part, shift in parts))
    return total


def staged_product(m, pipe, a, b, ew, exp_offset=0, **passing):
    """The exact product of ``a`` and ``b`` with its partial products registered at
    ``pipe``'s ``product`` boundary (with ``passing`` beside them) and joined after it: an
    fp32 product is four multiplier blocks joined by carry chains, too long for one cycle.
    Returns the staged values (``p_sign``, ``p_exp`` = ``a.exp + b.exp + exp_offset``,
    ``p_zero``, the parts and ``passing``) and the joined significand, not normalized
    (:func:`normalize_product`)."""
    parts = partial_products(m, a, b)
    p_exp = Signal(signed(ew), name="prod_exp_sum")
    m.d.comb += p_exp.eq(a.exp + b.exp + exp_offset if exp_offset else a.exp + b.exp)
    s = pipe.stage("product", p_sign=a.sign ^ b.sign, p_exp=p_exp, p_zero=a.zero | b.zero,
                   **passing, **{f"p_part{i}": part for i, (part, _) in enumerate(parts)})
    joined = sum_partials(m, [(s[f"p_part{i}"], shift) for i, (_, shift) in enumerate(parts)],
                          a.precision + b.precision)
    return s, joined


def normalize_product(m, raw, ew, name="prod"):
    """The exact product: significands in [1, 2) multiply into [1, 4), one bit to shift.

    A zero factor's significand reaches the multiplier unmasked; the product's significand
    is forced to zero here.
    """
    top = raw.sig[raw.precision - 1]
    sig = Signal(raw.precision, name=f"{name}_sig")
    exp = Signal(signed(ew), name=f"{name}_exp")
    m.d.comb += [sig.eq(Mux(raw.zero, 0, Mux(top, raw.sig, raw.sig << 1))),
                 exp.eq(raw.exp + top)]
    return Unpacked(raw.sign, exp, sig, raw.zero, raw.precision)


def leading_zeros(m, value, name):
    """Number of leading zeros of ``value`` (its width when zero), as a log-depth tree."""
    width = len(value)
    size = 1
    while size < width:
        size *= 2
    # Pad on the right with ones so that the padding never adds leading zeros of its own
    # except when the whole value is zero, where the count is clamped to ``width`` below.
    padded = Cat(Const((1 << (size - width)) - 1, size - width), value) if size > width else value

    def tree(bits):
        n = len(bits)
        if n == 1:
            return ~bits[0], Const(0, 0)
        hi_zero, hi_count = tree(bits[n // 2:])
        lo_zero, lo_count = tree(bits[:n // 2])
        count = Mux(hi_zero, Cat(lo_count, Const(1, 1)), Cat(hi_count, Const(0, 1)))
        return hi_zero & lo_zero, count

    all_zero, count = tree(padded)
    lz = Signal(range(width + 1), name=f"{name}_lz")
    m.d.comb += lz.eq(Mux(value == 0, width, count))
    return lz


def below(value, bound):
    """``value < bound`` for a signed ``value`` and a constant ``bound``, as logic on the
    bits (halves compared, the high half deciding unless equal) instead of a subtraction.

    Yosys maps a compare to a carry chain: for a range test on an exponent, the routing into
    and out of the chain set the clock of the accumulating adder's rounding stage
    (``benchmarks/results/unit_fmax.md``), where a few LUT levels suffice.
    """
    if not Value.cast(value).shape().signed:
        raise TypeError(f"below compares a signed value, not {value!r}")
    n = len(value)
    # Offset binary: the signed order is the unsigned order with the sign bit flipped.
    key = Cat(value[:n - 1], ~value[n - 1])
    limit = bound + (1 << (n - 1))
    if limit <= 0:
        return Const(0, 1)
    if limit >= 1 << n:
        return Const(1, 1)

    def less(bits, c):
        if len(bits) == 1:
            return ~bits[0] if c else Const(0, 1)
        half = len(bits) // 2
        lo, hi = bits[:half], bits[half:]
        c_lo, c_hi = c & ((1 << half) - 1), c >> half
        return less(hi, c_hi) | ((hi == c_hi) & less(lo, c_lo))

    return less(key, limit)


def _exponent_differences(m, x, y, ew):
    """``x.exp - y.exp`` and ``y.exp - x.exp``, side by side."""
    d_xy = Signal(signed(ew + 1), name="order_d_xy")
    d_yx = Signal(signed(ew + 1), name="order_d_yx")
    if x.exp_rel is not None and y.exp_rel is not None:
        ex, ey = x.exp_rel, y.exp_rel
    else:
        ex, ey = x.exp, y.exp
    m.d.comb += [d_xy.eq(ex - ey), d_yx.eq(ey - ex)]
    # An operand that is zero is the smaller one: its significand is zero, so no shift
    # changes it.
    x_big = y.zero | (~x.zero & (d_xy >= 0))
    return d_xy, d_yx, x_big


def _left_aligned(window, *operands):
    """Each operand's significand left-aligned in ``window + GUARD_BITS`` bits."""
    width = window + GUARD_BITS
    return [Cat(Const(0, width - op.precision), op.sig) for op in operands]


def order(m, x, y, window, ew):
    """Pick the operand with the larger exponent and how far to shift the other one.

    Both significands come back left-aligned in ``window + GUARD_BITS`` bits. The two
    exponent differences are computed side by side, then selected, so the carry chains run
    in parallel. The shift saturates (every shift of at least the significands' width
    leaves only the sticky bit, so any such amount gives the same result): a test of the
    difference's high bits instead of a compare, which would be one more carry chain after
    the subtraction.
    """
    ax, ay = _left_aligned(window, x, y)
    # Beyond `window + g` places every bit of the smaller operand is sticky.
    limit = window + GUARD_BITS + 1
    d_xy, d_yx, x_big = _exponent_differences(m, x, y, ew)
    shift = Signal(range(limit + 1), name="order_shift")
    bits = len(shift)
    m.d.comb += shift.eq(Mux(x_big, _saturate(d_xy, bits), _saturate(d_yx, bits)))
    return dict(
        s_big=Mux(x_big, x.sign, y.sign),
        s_small=Mux(x_big, y.sign, x.sign),
        e_big=Mux(x_big, x.exp, y.exp),
        m_big=Mux(x_big, ax, ay),
        m_small=Mux(x_big, ay, ax),
        shift=shift,
        zero_sign=x.zero & y.zero & x.sign & y.sign,
    )


def order_unpicked(m, x, y, window, ew):
    """Which operand has the larger exponent, and how far each lies below the other,
    with the significands left in their own order: the two-path adder's ordering.

    Both significands come back left-aligned in ``window + GUARD_BITS`` bits (``m_x``,
    ``m_y``), each with its distance below the other (``shift_xy``: how far ``y`` sits
    below ``x``). :func:`align` shifts both and the smaller is picked after the alignment
    register, so the shifters wait only for the low bits of the two exponent differences,
    the first out of their carry chains, not for the comparison at their top.

    A shift takes the difference's low bits, whose range reaches past every significand
    bit. Beyond that range the smaller operand is all sticky (``past``): a test of the
    high bits, not a compare (one more carry chain after the subtraction).
    """
    m_x, m_y = _left_aligned(window, x, y)
    bits = (len(m_x) - 1).bit_length()
    d_xy, d_yx, x_big = _exponent_differences(m, x, y, ew)
    # A zero smaller operand leaves no sticky bit; a zero bigger one has a zero smaller one.
    past = Mux(x_big, d_xy[bits:].any() & ~y.zero, d_yx[bits:].any() & ~x.zero)
    return dict(
        x_big=x_big,
        s_big=Mux(x_big, x.sign, y.sign),
        s_small=Mux(x_big, y.sign, x.sign),
        e_big=Mux(x_big, x.exp, y.exp),
        m_x=m_x, m_y=m_y,
        shift_xy=d_xy[:bits], shift_yx=d_yx[:bits], past=past,
        zero_sign=x.zero & y.zero & x.sign & y.sign,
    )


def _saturate(d, bits):
    """A non-negative ``d`` as an unsigned ``bits``-bit shift amount, all ones above it."""
    return Mux(d[bits:].any(), (1 << bits) - 1, d[:bits])


def shift_right_jam(m, value, shift, name="align"):
    """``value >> shift`` with every bit shifted out ORed into the result's LSB.

    The sticky bit comes from ``value`` masked below the shift amount, beside the shifter
    rather than after it.
    """
    width = len(value)
    shifted = Signal(width, name=f"{name}_shifted")
    m.d.comb += shifted.eq(value >> shift)
    # The bits below the shift amount: a decoder of the amount (each bit a function of
    # its few bits), not a compare (a carry chain) per bit.
    below = Signal(width, name=f"{name}_below")
    m.d.comb += below.eq(~(Const(2 ** width - 1, width) << shift)[:width])
    small = Signal(width, name=f"{name}_small")
    m.d.comb += small.eq(shifted | (value & below).any())
    return small


def add_signed_magnitudes(m, s_big, s_small, m_big, m_small):
    """The one-path adder's sum or difference of the aligned magnitudes, and its sign.

    Both differences are computed side by side and the non-negative one kept, instead of
    negating a negative result afterwards (one carry chain deep instead of two). A negative
    difference takes the smaller operand's sign: with normalized operands only an
    equal-exponent subtraction comes out negative, with an operand that has a leading zero
    (``hw.mac``'s product) one a place apart can too.
    """
    width = len(m_big) + 1
    sub = s_big ^ s_small
    d_bs = Signal(signed(width + 1), name="add_d_bs")
    d_sb = Signal(signed(width + 1), name="add_d_sb")
    total = Signal(width, name="add_total")
    m.d.comb += [d_bs.eq(m_big - m_small), d_sb.eq(m_small - m_big), total.eq(m_big + m_small)]
    negative = sub & (d_bs < 0)
    mag = Signal(width, name="add_mag")
    m.d.comb += mag.eq(Mux(sub, Mux(negative, d_sb, d_bs), total))
    return dict(sign=Mux(negative, s_small, s_big), mag=mag)


def normalize_by_count(m, e_big, mag, ew, pipe=None, **passing):
    """The one-path adder's normalization: shift the leading one of ``mag`` to its top
    bit; the exponent of that bit. With ``pipe``, the leading-zero count crosses its
    ``counted`` boundary before the shift, with the values ``passing`` (returned)."""
    r = dict(lz=leading_zeros(m, mag, "norm"), mag=mag, e_big=e_big, zero=mag == 0,
             **passing)
    if pipe is not None:
        r = pipe.stage("counted", **r)
    norm = Signal(len(mag), name="norm_sig")
    exp = Signal(signed(ew), name="norm_exp")
    m.d.comb += [norm.eq(r["mag"] << r["lz"]), exp.eq(r["e_big"] + 1 - r["lz"])]
    return dict(exp=exp, norm=norm, zero=r["zero"], **{k: r[k] for k in passing})


def align(m, x_big, m_x, m_y, shift_xy, shift_yx, past):
    """The bigger significand, and both significands shifted right by their distance
    below the other, with the bits shifted out jammed into the LSB (see
    :func:`order_unpicked`).

    Which of the two shifted values is the smaller operand is left to the far path's
    adder (:func:`add_magnitudes`), after the alignment register: the exponent comparison,
    at the top of its carry chain, then meets the significands in the adder's first gate
    instead of ahead of the shifter.
    """
    return dict(m_big=Mux(x_big, m_x, m_y), x_big=x_big, past=past,
                small_x=shift_right_jam(m, m_x, shift_yx, "align_x"),
                small_y=shift_right_jam(m, m_y, shift_xy, "align_y"))


def near_difference(m, x_big, m_x, m_y, shift):
    """The near path: an effective subtraction of operands whose exponents differ by at
    most one, computed beside the far path's alignment.

    Only here can a subtraction cancel more than one leading bit, and only here is the
    full leading-zero count needed. Its alignment is at most one place, which loses no bit
    (the significands' guard bits are zero), so the difference is exact without a sticky
    bit and needs no shifter: taking it before the alignment register leaves the next
    stage only the leading-zero count and the shift. Every candidate (``x - y`` and
    ``y - x`` for equal exponents, either operand minus the other halved) is taken from
    the operands as they come, side by side, and the right one picked after, so the carry
    chains start without waiting for the exponent comparison.

    Returns ``near_mag``, the magnitude (``len(m_x)`` bits: it never reaches the carry
    bit of the far path's sum), and ``near_negative``, whether it is the smaller operand
    minus the bigger (only an equal-exponent difference can be). Meaningful only when the
    shift is 0 or 1.
    """
    width = len(m_x)
    d_xy = Signal(signed(width + 1), name="near_d_xy")
    d_yx = Signal(signed(width + 1), name="near_d_yx")
    h_xy = Signal(signed(width + 1), name="near_h_xy")
    h_yx = Signal(signed(width + 1), name="near_h_yx")
    m.d.comb += [d_xy.eq(m_x - m_y), d_yx.eq(m_y - m_x),
                 h_xy.eq(m_x - m_y[1:]), h_yx.eq(m_y - m_x[1:])]
    negative = ~shift[0] & Mux(x_big, d_xy < 0, d_yx < 0)
    mag = Signal(width, name="near_mag")
    m.d.comb += mag.eq(Mux(shift[0], Mux(x_big, h_xy, h_yx), Mux(d_xy < 0, d_yx, d_xy)))
    return dict(near_mag=mag, near_negative=negative)


def add_magnitudes(m, sub, m_big, x_big, small_x, small_y, past):
    """The far path: sum or difference of the bigger significand and the aligned smaller
    one, one bit wider.

    The smaller is ``small_y`` when ``x_big``, else ``small_x``, or only its sticky bit
    when it lies ``past`` the shifters' range (see :func:`align`). The sum is used only
    when it cannot be negative: an addition, or a subtraction whose smaller operand was
    shifted at least two places (or is zero), which leaves more than half the bigger
    operand.
    """
    width = len(m_big) + 1
    m_small = Signal(len(m_big), name="add_small")
    m.d.comb += m_small.eq(Mux(past, 1, Mux(x_big, small_y, small_x)))
    total = Signal(width, name="add_total")
    diff = Signal(width, name="add_diff")
    m.d.comb += [total.eq(m_big + m_small), diff.eq(m_big - m_small)]
    mag = Signal(width, name="add_mag")
    m.d.comb += mag.eq(Mux(sub, diff, total))
    return dict(mag=mag)


def normalize(m, e_big, near, near_mag, mag, big_zero, ew, pipe=None, **passing):
    """Shift the leading one of the sum to the top bit; the exponent of that bit.

    The far path's ``mag`` (one bit wider than the operands, whose leading one is at
    ``len(mag) - 2``) has its leading one at most one place above or below that bit: a
    three-way select, no count. The near path's ``near_mag`` may have cancelled any number
    of leading bits: a leading-zero count and a shift, beside the far path's select.
    ``big_zero`` is the bigger operand's zero flag: only then is the far path's sum zero.
    With ``pipe``, the near path's count and the far path's select cross its ``counted``
    boundary, before the near path's shift and the choice of path, with the values
    ``passing`` (returned).
    """
    width = len(mag)
    top, next_ = mag[-1], mag[-2]
    far_norm = Signal(width, name="norm_far_sig")
    far_exp = Signal(signed(ew), name="norm_far_exp")
    m.d.comb += [far_norm.eq(Mux(top, mag, Mux(next_, mag << 1, mag << 2))),
                 far_exp.eq(Mux(top, e_big + 1, Mux(next_, e_big, e_big - 1)))]
    r = dict(lz=leading_zeros(m, near_mag, "norm"), near_mag=near_mag, e_big=e_big,
             near=near, far_norm=far_norm, far_exp=far_exp,
             zero=Mux(near, near_mag == 0, big_zero), **passing)
    if pipe is not None:
        r = pipe.stage("counted", **r)
    near_norm = Signal(width, name="norm_near_sig")
    near_exp = Signal(signed(ew), name="norm_near_exp")
    # ``near_mag`` sits one bit below ``mag``: its count of leading zeros is one less.
    m.d.comb += [near_norm.eq(Cat(Const(0, 1), (r["near_mag"] << r["lz"])[:width - 1])),
                 near_exp.eq(r["e_big"] - r["lz"])]
    norm = Signal(width, name="norm_sig")
    exp = Signal(signed(ew), name="norm_exp")
    m.d.comb += [norm.eq(Mux(r["near"], near_norm, r["far_norm"])),
                 exp.eq(Mux(r["near"], near_exp, r["far_exp"]))]
    return dict(exp=exp, norm=norm, zero=r["zero"], **{k: r[k] for k in passing})


def add(m, pipe, x, y, window, ew, paths=2):
    """``x + y`` up to (not including) rounding, through the adder's pipeline boundaries:
    ``ordered``, ``aligned``, ``summed``, ``counted`` and ``normalized``.

    ``paths=2``, the classic split: the far path aligns, adds and normalizes by at most one
    place either way; the near path (an effective subtraction with exponents at most one
    apart) subtracts before the ``aligned`` boundary and counts leading zeros after it.
    Either gives the exact sum the single path would, so the result is the same bit for bit.
    ``paths=1``: one path (signed add, then a leading-zero count and shift), smaller: with
    the fp32 FMAs' 51-bit window the two paths cost the loss unit 4,422 LUT4.

    Returns ``sign``, ``exp`` (of the leading bit), ``norm`` (leading one at its top bit),
    ``zero`` (an exact zero) and ``zero_sign`` (the sign of an exact zero).
    """
    if paths == 1:
        s = pipe.stage("ordered", **order(m, x, y, window, ew))
        s = pipe.stage("aligned", m_small=shift_right_jam(m, s.pop("m_small"), s.pop("shift")),
                       **s)
        s = pipe.stage("summed", e_big=s["e_big"], zero_sign=s["zero_sign"],
                       **add_signed_magnitudes(m, s["s_big"], s["s_small"], s["m_big"],
                                               s["m_small"]))
        return pipe.stage("normalized", **normalize_by_count(
            m, s["e_big"], s["mag"], ew, pipe, sign=s["sign"], zero_sign=s["zero_sign"]))
    s = pipe.stage("ordered", **order_unpicked(m, x, y, window, ew))
    sub = s["s_big"] ^ s["s_small"]
    x_big = s["x_big"]
    # The near path takes the subtractions whose exponents are 0 or 1 apart.
    shift = Mux(x_big, s["shift_xy"], s["shift_yx"])
    near = sub & ~s["past"] & ~shift[1:].any()
    nd = near_difference(m, x_big, s["m_x"], s["m_y"], shift)
    s = pipe.stage("aligned", **align(m, x_big, s["m_x"], s["m_y"], s["shift_xy"],
                                      s["shift_yx"], s["past"]),
                   e_big=s["e_big"], zero_sign=s["zero_sign"], sub=sub,
                   near=near, near_mag=nd["near_mag"],
                   sign=Mux(near & nd["near_negative"], s["s_small"], s["s_big"]))
    s = pipe.stage("summed", e_big=s["e_big"], zero_sign=s["zero_sign"], sign=s["sign"],
                   near=s["near"], near_mag=s["near_mag"], big_zero=~s["m_big"][-1],
                   **add_magnitudes(m, s["sub"], s["m_big"], s["x_big"], s["small_x"],
                                    s["small_y"], s["past"]))
    return pipe.stage("normalized", **normalize(m, s["e_big"], s["near"], s["near_mag"],
                                                s["mag"], s["big_zero"], ew, pipe,
                                                sign=s["sign"], zero_sign=s["zero_sign"]))


def round_pack(m, sign, exp, norm, zero, zero_sign, fmt, ew, pipe=None):
    """Round a normalized significand to ``fmt`` (RNE), flush to zero, saturate and pack.

    ``norm`` has its leading one at its top bit; sticky information, if any, is already in
    its least significant bit, at least two places below the rounding position. With
    ``pipe``, the values computed for both outcomes of the rounding carry cross its
    ``rounded`` boundary, and the carry picks among them after it.
    """
    p = fmt.precision
    width = len(norm)
    if width < p + 2:
        norm = Cat(Const(0, p + 2 - width), norm)
        width = p + 2
    drop = width - p
    keep = norm[drop:]
    round_bit = norm[drop - 1]
    sticky = norm[:drop - 1].any()
    inc = Signal(p + 1, name="round_inc")
    m.d.comb += inc.eq(keep + (round_bit & (sticky | keep[0])))
    # The rounding carry bumps the exponent. Every exponent-dependent value is computed
    # for both cases side by side and selected by the carry, so the exponent's carry
    # chains run in parallel with the significand's instead of after it.
    field_0 = Signal(fmt.exp_bits, name="round_field_0")
    field_1 = Signal(fmt.exp_bits, name="round_field_1")
    m.d.comb += [field_0.eq(exp + fmt.bias), field_1.eq(exp + fmt.bias + 1)]
    r = dict(carry=inc[p], man=inc[:fmt.man_bits], field_0=field_0, field_1=field_1,
             under_0=zero | below(exp, fmt.emin), under_1=zero | below(exp, fmt.emin - 1),
             over_0=~below(exp, fmt.emax + 1), over_1=~below(exp, fmt.emax),
             sign=sign, zero_sign=Mux(zero, zero_sign, sign))
    if pipe is not None:
        r = pipe.stage("rounded", **r)
    carry = r["carry"]
    under = Mux(carry, r["under_1"], r["under_0"])
    over = ~under & Mux(carry, r["over_1"], r["over_0"])
    # On a carry the significand is exactly 2**p: mantissa zero.
    man = Mux(carry, 0, r["man"])
    field = Mux(carry, r["field_1"], r["field_0"])
    result = Signal(fmt.width, name="round_result")
    m.d.comb += result.eq(Mux(under, Cat(Const(0, fmt.width - 1), r["zero_sign"]),
                              Mux(over, Cat(Const(fmt.max_bits, fmt.width - 1), r["sign"]),
                                  Cat(man, field, r["sign"]))))
    return result


def narrow(m, bits, src, dst, name="narrow", pipe=None):
    """``src`` bits rounded to ``dst`` (RNE, flush to zero, saturate) when both formats have
    the same exponent field (fp32 to bf16): :func:`round_pack` of :func:`unpack`, bit for
    bit, with one carry chain.

    The exponent field passes through: the kept mantissa and the field, read as one
    integer, take the rounding increment, whose carry out of the mantissa steps the field.
    Only the all-ones pattern (the largest value) would carry out of the field: it stays,
    which is the saturation. Exponent code 0 is a zero and keeps its sign. With ``pipe``,
    the rounding decision and the word it may increment cross its ``rounded`` boundary:
    the decision's wide OR before it, the increment's carry chain after it.
    """
    if src.exp_bits != dst.exp_bits or dst.man_bits >= src.man_bits:
        raise ValueError(f"narrow needs the same exponent field and fewer mantissa bits: "
                         f"{src} to {dst}")
    drop = src.man_bits - dst.man_bits
    field = bits[src.man_bits:src.man_bits + src.exp_bits]
    body = bits[drop:src.width - 1]              # kept mantissa, then the field
    up = bits[drop - 1] & (bits[:drop - 1].any() | bits[drop])
    r = dict(up=up, body=body, zero=field == 0, sign=bits[src.width - 1])
    if pipe is not None:
        r = pipe.stage("rounded", **r)
    inc = Signal(len(body) + 1, name=f"{name}_inc")
    m.d.comb += inc.eq(r["body"] + r["up"])
    result = Signal(dst.width, name=f"{name}_result")
    m.d.comb += result.eq(Cat(Mux(r["zero"], 0, Mux(inc[-1], r["body"], inc[:-1])),
                              r["sign"]))
    return result


def convert(m, bits, src, dst, name="convert", pipe=None):
    """``src`` bits converted to ``dst`` (the golden ``fconvert``): :func:`narrow` when the
    formats share the exponent field and ``dst`` is narrower, else :func:`unpack` then
    :func:`round_pack` (exact when ``dst`` is at least as wide). With ``pipe``, the
    rounding's ``rounded`` boundary is one of its boundaries."""
    if src.exp_bits == dst.exp_bits and dst.man_bits < src.man_bits:
        return narrow(m, bits, src, dst, name, pipe)
    ew = exponent_width(src, dst)
    u = unpack(m, src, bits, ew, name)
    return round_pack(m, u.sign, u.exp, u.sig, u.zero, u.sign, dst, ew, pipe)


def pack_exact(m, value, fmt):
    """Pack an unpacked value that ``fmt`` holds exactly (no rounding, never out of range)."""
    result = Signal(fmt.width, name="pack_result")
    field = (value.exp + fmt.bias)[:fmt.exp_bits]
    m.d.comb += result.eq(Mux(value.zero, Cat(Const(0, fmt.width - 1), value.sign),
                              Cat(value.sig[:fmt.man_bits], field, value.sign)))
    return result
