"""The GATHER tables of convolutions against a direct convolution written with loops, in
float64 on small random cases. Inputs are small integers, so every sum is exact and the
index logic is checked exactly (``==``), padding words of the windows included (they hold
NaN: a table entry pointing at one would show)."""

import numpy as np
import pytest

from chrysalis.gen.spec.model import digits_cnn
from chrysalis.sim.golden.conv_tables import (NO_ENTRY, ConvGeometry, col2im_table,
                                              col2im_taps, column_words, flatten_table,
                                              im2col_table, table_words, unflatten_table)

CASES = [  # c_in, h, w, k, stride, pad
    (1, 8, 8, 3, 1, 1), (8, 8, 8, 3, 2, 1), (2, 5, 7, 3, 1, 0), (3, 6, 5, 2, 2, 1),
    (2, 7, 7, 5, 2, 2), (1, 4, 4, 1, 1, 0), (3, 9, 6, 3, 3, 1),
]


def _lookup(window, table, taps):
    """A float64 GATHER: the sum of the taps, NO_ENTRY reading 0 (exact on integers)."""
    entries = table.astype(np.int64).reshape(-1, taps, table.shape[1])
    inside = table.reshape(entries.shape) != NO_ENTRY
    values = np.where(inside, window[np.where(inside, entries, 0)], 0.0)
    return values.sum(axis=1)


def _window(matrix, words):
    """A sample's columns as the scratchpad holds them: ``words`` per column, NaN padding."""
    rows, columns = matrix.shape
    padded = np.full((words, columns), np.nan)
    padded[:rows] = matrix
    return padded.T.reshape(-1)


def _direct_conv(x, kernel, stride, pad):
    """``(c_out, oh, ow)``: loops over every output and tap."""
    c_out, c_in, k, _ = kernel.shape
    _, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    y = np.zeros((c_out, oh, ow))
    for o in range(c_out):
        for oy in range(oh):
            for ox in range(ow):
                for c in range(c_in):
                    for kh in range(k):
                        for kw in range(k):
                            iy, ix = oy * stride + kh - pad, ox * stride + kw - pad
                            if 0 <= iy < h and 0 <= ix < w:
                                y[o, oy, ox] += kernel[o, c, kh, kw] * x[c, iy, ix]
    return y


def _direct_input_gradient(dy, kernel, shape, stride, pad):
    """``dX`` of :func:`_direct_conv`: every output's gradient spread over its taps."""
    c_out, c_in, k, _ = kernel.shape
    dx = np.zeros(shape)
    for o in range(c_out):
        for oy in range(dy.shape[1]):
            for ox in range(dy.shape[2]):
                for c in range(c_in):
                    for kh in range(k):
                        for kw in range(k):
                            iy, ix = oy * stride + kh - pad, ox * stride + kw - pad
                            if 0 <= iy < shape[1] and 0 <= ix < shape[2]:
                                dx[c, iy, ix] += kernel[o, c, kh, kw] * dy[o, oy, ox]
    return dx


@pytest.mark.parametrize("case", CASES)
def test_im2col_then_product_is_the_convolution(case):
    c_in, h, w, k, stride, pad = case
    g = ConvGeometry(c_in, h, w, k, stride, pad)
    rng = np.random.default_rng(sum(case))
    x = rng.integers(-8, 9, (c_in, h, w)).astype(np.float64)
    kernel = rng.integers(-4, 5, (3, c_in, k, k)).astype(np.float64)
    words = column_words(c_in, 4) + 4           # extra padding words per column
    table = im2col_table(g, words)
    assert table.dtype == np.uint32 and table.shape == (c_in * k * k, g.oh * g.ow)
    cols = _lookup(_window(x.reshape(c_in, h * w), words), table, 1)
    y = kernel.reshape(3, -1) @ cols
    assert np.array_equal(y.reshape(3, g.oh, g.ow), _direct_conv(x, kernel, stride, pad))


@pytest.mark.parametrize("case", CASES)
def test_col2im_of_the_patch_gradients_is_the_input_gradient(case):
    c_in, h, w, k, stride, pad = case
    g = ConvGeometry(c_in, h, w, k, stride, pad)
    rng = np.random.default_rng(100 + sum(case))
    kernel = rng.integers(-4, 5, (3, c_in, k, k)).astype(np.float64)
    dy = rng.integers(-8, 9, (3, g.oh, g.ow)).astype(np.float64)
    d_cols = kernel.reshape(3, -1).T @ dy.reshape(3, -1)      # K x (oh * ow)
    d_cols = np.vstack([d_cols, np.full((1, d_cols.shape[1]), 1e9)])  # the bias row: unread
    words = column_words(g.rows + 1, 8)
    table, taps = col2im_table(g, words)
    assert taps == col2im_taps(g)
    assert table.dtype == np.uint32 and table.shape == (c_in * taps, h * w)
    dx = _lookup(_window(d_cols, words), table, taps)
    expected = _direct_input_gradient(dy, kernel, (c_in, h, w), stride, pad)
    assert np.array_equal(dx.reshape(c_in, h, w), expected)


def test_col2im_taps_come_in_increasing_column_and_fill_last():
    g = ConvGeometry(1, 8, 8, 3, 1, 1)
    table, taps = col2im_table(g, column_words(10, 4))
    assert taps == 9 and col2im_taps(ConvGeometry(8, 8, 8, 3, 2, 1)) == 4
    words = table.astype(np.int64)
    real = table != NO_ENTRY
    # a corner pixel is covered by 4 patches, an inner one by 9
    assert real[:, 0].sum() == 4 and real[:, 3 * 8 + 3].sum() == 9
    for p in range(64):
        used = words[real[:, p], p]
        assert np.all(np.diff(used // 12) > 0)            # increasing patch column
        assert np.all(real[:real[:, p].sum(), p])          # NO_ENTRY only at the end


@pytest.mark.parametrize("c, h, w", [(16, 4, 4), (3, 2, 5), (1, 8, 8)])
def test_flatten_and_unflatten_are_the_onnx_order_and_inverses(c, h, w):
    rng = np.random.default_rng(c * h * w)
    image = rng.integers(-100, 100, (c, h, w)).astype(np.float64)
    words = column_words(c, 4)
    flat = _lookup(_window(image.reshape(c, h * w), words), flatten_table(c, h, w, words), 1)
    assert np.array_equal(flat[:, 0], image.reshape(-1))  # (c, y, x): NCHW's flatten
    column = np.concatenate([flat[:, 0], [1e9]])           # and the bias row, unread
    back = _lookup(_window(column[:, None], column_words(c * h * w + 1, 4)),
                   unflatten_table(c, h, w), 1)
    assert np.array_equal(back, image.reshape(c, h * w))


def test_table_words_of_the_digits_cnn():
    # im2col 1 (9 -> 12 rows x 64) + im2col 2 (72 x 16) + col2im 2 (32 x 64) + flatten
    # (256 x 1) + unflatten (16 x 16)
    assert table_words(digits_cnn(), 4) == 12 * 64 + 72 * 16 + 32 * 64 + 256 + 16 * 16


@pytest.mark.parametrize("call, message", [
    (lambda: ConvGeometry(1, 2, 2, 3), "does not fit a 2x2 input"),
    (lambda: ConvGeometry(0, 8, 8, 3), "c_in must be a positive integer, not 0"),
    (lambda: ConvGeometry(1, 8, 8, 3, pad=-1), "pad must be a non-negative integer, not -1"),
    (lambda: im2col_table(ConvGeometry(8, 8, 8, 3), 4), "in_column_words must hold the 8"),
    (lambda: col2im_table(ConvGeometry(8, 8, 8, 3), 64), "must hold the 72 patch rows"),
    (lambda: flatten_table(4, 2, 2, 2), "in_column_words must hold the 4 channels, not 2"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
