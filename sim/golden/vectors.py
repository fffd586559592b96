"""Test vectors for the floating-point units: edge cases and seeded random operands.

Uniformly random bit patterns almost never add numbers of similar size, so the generators
mix three kinds of operands: uniform bit patterns, values whose exponents lie close to each
other (rounding, ties and cancellation happen there) and the edge values of the format.
"""

import numpy as np

__all__ = ["encode", "edge_values", "random_values", "mac_vectors", "convert_vectors",
           "add_vectors"]


def encode(sign, field, man, fmt):
    """Bit patterns from sign, biased exponent field and mantissa field arrays."""
    sign, field, man = (np.asarray(v, dtype=np.uint64) for v in (sign, field, man))
    return ((sign << np.uint64(fmt.width - 1)) | (field << np.uint64(fmt.man_bits))
            | (man & np.uint64((1 << fmt.man_bits) - 1)))


def edge_values(fmt):
    """Both signs of: zero, a subnormal pattern (read as zero), the smallest normal, one,
    one plus one ulp, the largest value, the top binade's smallest value, and the values
    just around one half (ties when added to one)."""
    top = (1 << fmt.exp_bits) - 1
    mmax = (1 << fmt.man_bits) - 1
    rows = [
        (0, 0), (0, 1), (0, mmax),              # zero and subnormal patterns
        (1, 0), (1, 1),                          # smallest normals
        (fmt.bias, 0), (fmt.bias, 1), (fmt.bias, mmax),
        (fmt.bias - 1, 0), (fmt.bias - 1, mmax),
        (top - 1, mmax), (top, 0), (top, mmax),  # the largest binades
    ]
    fields = np.array([r[0] for r in rows] * 2)
    mans = np.array([r[1] for r in rows] * 2)
    signs = np.repeat([0, 1], len(rows))
    return encode(signs, fields, mans, fmt)


def random_values(fmt, count, rng, center=None, spread=None):
    """``count`` random values: uniform bit patterns, or, with ``center`` (an array or a
    scalar biased exponent) and ``spread``, exponents within ``spread`` of ``center``."""
    sign = rng.integers(0, 2, count)
    man = rng.integers(0, 1 << fmt.man_bits, count)
    if center is None:
        field = rng.integers(0, 1 << fmt.exp_bits, count)
    else:
        field = np.asarray(center) + rng.integers(-spread, spread + 1, count)
        field = np.clip(field, 0, (1 << fmt.exp_bits) - 1)
    return encode(sign, field, man, fmt)


def _thirds(count):
    return count // 3, count // 3, count - 2 * (count // 3)


def mac_vectors(op_fmt, acc_fmt, count, seed):
    """Inputs ``a``, ``b``, ``c`` for ``c + a*b``: edge cases crossed with each other, then
    uniform patterns, then products and addends of similar size (cancellation, ties)."""
    rng = np.random.default_rng(seed)
    edges_op, edges_acc = edge_values(op_fmt), edge_values(acc_fmt)
    ga, gb = np.meshgrid(edges_op, edges_op, indexing="ij")
    a = [ga.ravel()]
    b = [gb.ravel()]
    c = [rng.choice(edges_acc, ga.size)]
    n_uniform, n_near, n_cancel = _thirds(max(0, count - ga.size))
    a.append(random_values(op_fmt, n_uniform, rng))
    b.append(random_values(op_fmt, n_uniform, rng))
    c.append(random_values(acc_fmt, n_uniform, rng))
    # Near: operands around one, addend of a similar size to the product.
    for n, spread in ((n_near, 6), (n_cancel, 1)):
        aa = random_values(op_fmt, n, rng, op_fmt.bias, 4)
        bb = random_values(op_fmt, n, rng, op_fmt.bias, 4)
        center = acc_fmt.bias + (((aa >> np.uint64(op_fmt.man_bits)) & np.uint64((1 << op_fmt.exp_bits) - 1)).astype(np.int64)
                                 + ((bb >> np.uint64(op_fmt.man_bits)) & np.uint64((1 << op_fmt.exp_bits) - 1)).astype(np.int64)
                                 - 2 * op_fmt.bias)
        cc = random_values(acc_fmt, n, rng, center, spread)
        if spread == 1:
            # Opposite signs: the sum cancels in its leading bits.
            prod_sign = (aa ^ bb) >> np.uint64(op_fmt.width - 1)
            cc = (cc & np.uint64((1 << (acc_fmt.width - 1)) - 1)) | ((prod_sign ^ np.uint64(1)) << np.uint64(acc_fmt.width - 1))
        a.append(aa)
        b.append(bb)
        c.append(cc)
    a, b, c = (np.concatenate(v)[:max(count, ga.size)] for v in (a, b, c))
    return {"a": a, "b": b, "c": c}


def add_vectors(a_fmt, b_fmt, count, seed):
    """Inputs ``a``, ``b`` for ``a + b``: edges crossed, uniform, near and cancelling."""
    rng = np.random.default_rng(seed)
    ga, gb = np.meshgrid(edge_values(a_fmt), edge_values(b_fmt), indexing="ij")
    n_uniform, n_near, n_cancel = _thirds(max(0, count - ga.size))
    a = [ga.ravel(), random_values(a_fmt, n_uniform, rng)]
    b = [gb.ravel(), random_values(b_fmt, n_uniform, rng)]
    for n, spread in ((n_near, 8), (n_cancel, 1)):
        aa = random_values(a_fmt, n, rng, a_fmt.bias, 20)
        field = ((aa >> np.uint64(a_fmt.man_bits)) & np.uint64((1 << a_fmt.exp_bits) - 1)).astype(np.int64)
        bb = random_values(b_fmt, n, rng, field - a_fmt.bias + b_fmt.bias, spread)
        if spread == 1:
            sign = (aa >> np.uint64(a_fmt.width - 1)) ^ np.uint64(1)
            bb = (bb & np.uint64((1 << (b_fmt.width - 1)) - 1)) | (sign << np.uint64(b_fmt.width - 1))
        a.append(aa)
        b.append(bb)
    a, b = (np.concatenate(v)[:max(count, ga.size)] for v in (a, b))
    return {"a": a, "b": b}


def convert_vectors(src, count, seed, spread=None):
    """Inputs ``a`` for a conversion from ``src``: edges, uniform patterns, and values whose
    low mantissa bits sit exactly on or next to a rounding tie of every narrower format.

    With ``spread``, the random values have exponents within ``spread`` of zero (to stay in
    the range of a narrower target)."""
    rng = np.random.default_rng(seed)
    edges = edge_values(src)
    n_uniform = (count - edges.size) // 2
    n_tie = max(0, count - edges.size - n_uniform)
    center = None if spread is None else src.bias
    uniform = random_values(src, n_uniform, rng, center, spread)
    ties = random_values(src, n_tie, rng, center, spread)
    # Clear a random number of low bits and set the one above them: an exact tie there.
    low = rng.integers(1, src.man_bits + 1, n_tie).astype(np.uint64)
    ties = (ties & ~((np.uint64(1) << low) - np.uint64(1))) | (np.uint64(1) << (low - np.uint64(1)))
    ties = (ties + rng.integers(-1, 2, n_tie).astype(np.int64).astype(np.uint64)) & np.uint64((1 << src.width) - 1)
    return {"a": np.concatenate([edges, uniform, ties])}
