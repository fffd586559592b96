"""Building blocks of the floating-point datapaths: unpack, multiply, align, add, round.

Each function adds combinational logic to a module and returns the Values of its results.
The units in ``hw.fmul``, ``hw.fadd``, ``hw.mac`` and ``hw.fconv`` chain these blocks and
place pipeline registers between them with :class:`Pipeline`.

The steps mirror ``sim.numerics`` one for one (alignment window, three guard bits, the sticky
jammed into the least significant bit, normalization, one round to nearest even, flush to
zero, saturation), so the two can be read side by side. ``docs/numerics.md`` gives the
semantics they both implement.
"""

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed

__all__ = ["GUARD_BITS", "Unpacked", "Pipeline", "exponent_width", "adder_window",
           "unpack", "multiply", "add", "round_pack", "pack_exact", "leading_zeros"]

#: Bits kept below the aligned significands in the adder (the golden model uses the same).
GUARD_BITS = 3


class Unpacked(NamedTuple):
    """A decoded operand: the value is ``(-1)**sign * sig * 2**(exp - precision + 1)``.

    ``sig`` has its leading one at bit ``precision - 1`` unless ``zero``.
    """
    sign: Value
    exp: Value
    sig: Value
    zero: Value
    precision: int


def exponent_width(*formats):
    """Width of the signed internal exponent: room for every exponent plus the adder's
    normalization shift, which is never more than the widest significand window."""
    return max(fmt.exp_bits for fmt in formats) + 3


def adder_window(a_fmt, b_fmt, out_fmt):
    """Width to which the adder left-aligns both significands (see ``sim.numerics``)."""
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
            sig = Signal(value.shape(), name=f"{boundary}_{key}")
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
            delayed = Signal(value.shape(), name=f"delay{index}_result")
            self.m.d.sync += delayed.eq(value)
            value = delayed
        return value

    def valid(self, i_valid, latency):
        """``i_valid`` delayed by the whole latency."""
        for index in range(latency):
            delayed = Signal(name=f"valid_{index}")
            self.m.d.sync += delayed.eq(i_valid)
            i_valid = delayed
        return i_valid


def unpack(m, fmt, bits, ew, name):
    """Decode a ``fmt`` bit pattern: exponent code 0 reads as a signed zero."""
    field = bits[fmt.man_bits:fmt.man_bits + fmt.exp_bits]
    zero = Signal(name=f"{name}_zero")
    sig = Signal(fmt.precision, name=f"{name}_sig")
    exp = Signal(signed(ew), name=f"{name}_exp")
    m.d.comb += [
        zero.eq(field == 0),
        sig.eq(Mux(zero, 0, Cat(bits[:fmt.man_bits], Const(1, 1)))),
        exp.eq(field - fmt.bias),
    ]
    return Unpacked(bits[fmt.width - 1], exp, sig, zero, fmt.precision)


def multiply(m, a, b, ew, name="prod"):
    """Exact product of two unpacked operands: ``2 * precision`` significand bits."""
    p = a.precision + b.precision
    prod = Signal(p, name=f"{name}_raw")
    top = prod[p - 1]
    sig = Signal(p, name=f"{name}_sig")
    exp = Signal(signed(ew), name=f"{name}_exp")
    m.d.comb += [
        prod.eq(a.sig * b.sig),
        # The product of two significands in [1, 2) lies in [1, 4): one bit of normalization.
        sig.eq(Mux(top, prod, prod << 1)),
        exp.eq(a.exp + b.exp + top),
    ]
    return Unpacked(a.sign ^ b.sign, exp, sig, a.zero | b.zero, p)


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


def align(m, x, y, window, ew):
    """Order two unpacked operands by exponent and align the smaller one to the larger.

    Both significands are left-aligned in ``window + GUARD_BITS`` bits; the bits of the
    smaller one that fall off the end are ORed into its least significant bit (the jam).
    """
    g = GUARD_BITS
    span = window + g
    ax = Cat(Const(0, window - x.precision + g), x.sig)
    ay = Cat(Const(0, window - y.precision + g), y.sig)
    x_big = y.zero | (~x.zero & (x.exp >= y.exp))
    e_big = Mux(x_big, x.exp, y.exp)
    e_small = Mux(x_big, y.exp, x.exp)
    m_small = Mux(x_big, ay, ax)
    # Beyond `span + 1` places every bit of the smaller operand is sticky; clamp there.
    limit = span + 1
    dist = Signal(signed(ew + 1), name="align_dist")
    shift = Signal(range(limit + 1), name="align_shift")
    m.d.comb += [
        dist.eq(e_big - e_small),
        shift.eq(Mux(x.zero | y.zero | (dist > limit), limit, dist)),
    ]
    shifted = Signal(span + limit, name="align_shifted")
    m.d.comb += shifted.eq(Cat(Const(0, limit), m_small) >> shift)
    small = Signal(span, name="align_small")
    m.d.comb += small.eq(shifted[limit:] | shifted[:limit].any())
    return dict(
        s_big=Mux(x_big, x.sign, y.sign),
        s_small=Mux(x_big, y.sign, x.sign),
        e_big=e_big,
        m_big=Mux(x_big, ax, ay),
        m_small=small,
        zero_sign=x.zero & y.zero & x.sign & y.sign,
    )


def add(m, s_big, s_small, e_big, m_big, m_small, ew):
    """Add or subtract aligned significands and normalize the magnitude.

    Returns ``sign``, ``exp`` (of the leading bit), ``norm`` (leading one at its top bit)
    and ``zero`` (exact cancellation).
    """
    width = len(m_big) + 1
    sub = s_big ^ s_small
    diff = Signal(signed(width + 1), name="add_diff")
    mag = Signal(width, name="add_mag")
    m.d.comb += [
        diff.eq(Mux(sub, m_big - m_small, m_big + m_small)),
        mag.eq(Mux(diff < 0, -diff, diff)),
    ]
    # Only an equal-exponent subtraction can come out negative: the sign is the smaller's.
    sign = Mux(diff < 0, s_small, s_big)
    lz = leading_zeros(m, mag, "add")
    norm = Signal(width, name="add_norm")
    exp = Signal(signed(ew), name="add_exp")
    m.d.comb += [
        norm.eq(mag << lz),
        exp.eq(e_big + 1 - lz),
    ]
    return dict(sign=sign, exp=exp, norm=norm, zero=mag == 0)


def round_pack(m, sign, exp, norm, zero, zero_sign, fmt, ew):
    """Round a normalized significand to ``fmt`` (RNE), flush to zero, saturate and pack.

    ``norm`` has its leading one at its top bit; sticky information, if any, is already in
    its least significant bit, at least two places below the rounding position.
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
    exp_r = Signal(signed(ew + 1), name="round_exp")
    m.d.comb += [
        inc.eq(keep + (round_bit & (sticky | keep[0]))),
        exp_r.eq(exp + inc[p]),
    ]
    # On a carry out of rounding the significand is exactly 2**p: mantissa zero.
    man = Mux(inc[p], 0, inc[:fmt.man_bits])
    under = zero | (exp_r < fmt.emin)
    over = ~under & (exp_r > fmt.emax)
    field = (exp_r + fmt.bias)[:fmt.exp_bits]
    result = Signal(fmt.width, name="round_result")
    m.d.comb += result.eq(Mux(under, Cat(Const(0, fmt.width - 1), Mux(zero, zero_sign, sign)),
                              Mux(over, Cat(Const(fmt.max_bits, fmt.width - 1), sign),
                                  Cat(man, field, sign))))
    return result


def pack_exact(m, value, fmt):
    """Pack an unpacked value that ``fmt`` holds exactly (no rounding, never out of range)."""
    result = Signal(fmt.width, name="pack_result")
    field = (value.exp + fmt.bias)[:fmt.exp_bits]
    m.d.comb += result.eq(Mux(value.zero, Cat(Const(0, fmt.width - 1), value.sign),
                              Cat(value.sig[:fmt.man_bits], field, value.sign)))
    return result
