"""The host's arithmetic for a network of ``gen.spec.model``: a plain NumPy forward pass,
its gradients and the SGD step, in float32 (the reference a training run is measured
against) or float64 (the finite differences of the tests).

It computes a convolution directly, as a sum over the kernel's taps of shifted slices of
the zero-padded input, sharing no index logic with the ``GATHER`` tables the golden model
(``sim.golden.cnn``) and the accelerator use. Images are ``(batch, c, h, w)``; a sample's
features are ``(c, y, x)`` ordered, as in ONNX.
"""

import numpy as np

from chrysalis.gen.spec.model import Conv2d, Dense, Flatten
from chrysalis.sim.golden import numerics as nx

from .reference import softmax_xent

__all__ = ["conv2d", "conv2d_backward", "forward", "gradients", "sgd_step", "accuracy",
           "CnnFloat32Reference"]


def _split(layer, w):
    """A weight matrix (bias last) as ``(kernel, bias)``: a convolution's kernel is
    ``(c_out, c_in, k, k)``."""
    if isinstance(layer, Conv2d):
        return w[:, :-1].reshape(layer.c_out, layer.c_in, layer.k, layer.k), w[:, -1]
    return w[:, :-1], w[:, -1]


def _taps(layer, h, w):
    oh = (h + 2 * layer.pad - layer.k) // layer.stride + 1
    ow = (w + 2 * layer.pad - layer.k) // layer.stride + 1
    s = layer.stride
    for kh in range(layer.k):
        for kw in range(layer.k):
            yield kh, kw, (slice(None), slice(None), slice(kh, kh + s * (oh - 1) + 1, s),
                           slice(kw, kw + s * (ow - 1) + 1, s))


def conv2d(layer, x, kernel, bias):
    """``(batch, c_out, oh, ow)`` of a :class:`Conv2d` on ``x`` ``(batch, c_in, h, w)``."""
    p = layer.pad
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = None
    for kh, kw, window in _taps(layer, x.shape[2], x.shape[3]):
        term = np.einsum("bchw,oc->bohw", xp[window], kernel[:, :, kh, kw])
        out = term if out is None else out + term
    return out + bias[None, :, None, None]


def conv2d_backward(layer, x, kernel, dy):
    """``(dx, dkernel, dbias)`` of :func:`conv2d` given ``dy``."""
    p = layer.pad
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dk = np.zeros_like(kernel)
    for kh, kw, window in _taps(layer, x.shape[2], x.shape[3]):
        dk[:, :, kh, kw] = np.einsum("bohw,bchw->oc", dy, xp[window])
        dxp[window] += np.einsum("bohw,oc->bchw", dy, kernel[:, :, kh, kw])
    dx = dxp[:, :, p:p + x.shape[2], p:p + x.shape[3]]
    return dx, dk, dy.sum(axis=(0, 2, 3))


def _input(model, x, dtype):
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2 or x.shape[0] != model.input_features:
        raise ValueError(f"x must have {model.input_features} rows (one sample per column), "
                         f"not shape {x.shape!r}")
    if len(model.input_shape) == 3:
        return x.T.reshape((x.shape[1],) + model.input_shape)
    return x.T


def _forward(model, weights, x, dtype):
    """Logits ``(batch, classes)`` and the tape of every layer's input."""
    a = _input(model, x, dtype)
    weights = [np.asarray(w, dtype=dtype) for w in weights]
    tape = []
    k = 0
    for layer in model.layers:
        tape.append(a)
        if isinstance(layer, Conv2d):
            a = conv2d(layer, a, *_split(layer, weights[k]))
            k += 1
        elif isinstance(layer, Dense):
            kernel, bias = _split(layer, weights[k])
            a = a @ kernel.T + bias
            k += 1
        elif isinstance(layer, Flatten):
            a = a.reshape(a.shape[0], -1)
        else:
            a = np.maximum(a, dtype(0))
    return a, tape


def forward(model, weights, x, dtype=np.float32):
    """Logits ``(classes, batch)`` of ``weights`` (float values, not bit patterns) on ``x``
    ``(input_features, batch)``."""
    return _forward(model, weights, x, dtype)[0].T


def gradients(model, weights, x, labels, dtype=np.float32):
    """``(loss, grads, logits)``: the mean softmax cross-entropy (float64), the gradient of
    every weight matrix (bias last, in ``dtype``) and the logits ``(classes, batch)``."""
    logits, tape = _forward(model, weights, x, dtype)
    weights = [np.asarray(w, dtype=dtype) for w in weights]
    batch = logits.shape[0]
    labels = np.asarray(labels)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    d = e / e.sum(axis=1, keepdims=True)
    d[np.arange(batch), labels] -= dtype(1)
    d /= dtype(batch)
    grads = [None] * len(weights)
    k = len(weights)
    for i in reversed(range(len(model.layers))):
        layer, a = model.layers[i], tape[i]
        if isinstance(layer, Conv2d):
            k -= 1
            kernel, _ = _split(layer, weights[k])
            d, dk, db = conv2d_backward(layer, a, kernel, d)
            grads[k] = np.concatenate([dk.reshape(layer.c_out, -1), db[:, None]], axis=1)
        elif isinstance(layer, Dense):
            k -= 1
            kernel, _ = _split(layer, weights[k])
            grads[k] = np.concatenate([d.T @ a, d.sum(axis=0)[:, None]], axis=1)
            d = d @ kernel
        elif isinstance(layer, Flatten):
            d = d.reshape(a.shape)
        else:
            d = d * (a > 0)
    return softmax_xent(logits.T, labels), grads, logits.T


def sgd_step(model, weights, x, labels, lr):
    """One float32 SGD step, ``W -= lr * dW`` in place; returns the loss before it."""
    loss, grads, _ = gradients(model, weights, x, labels, np.float32)
    for w, g in zip(weights, grads):
        w -= np.float32(lr) * g
    return loss


def accuracy(model, weights, x, labels):
    """The fraction of the samples (columns of ``x``) whose largest float32 logit is their
    label."""
    return float(np.mean(forward(model, weights, x).argmax(axis=0) == labels))


class CnnFloat32Reference:
    """The float32 reference training of a run (``sim.train.reference.Float32Reference``'s
    interface): its weights, stepped by :func:`sgd_step`.

    Parameters
    ----------
    model : chrysalis.gen.spec.model.Model
    weights : list of numpy.ndarray
        The initial weights as fp32 bit patterns (the accelerator's).
    lr : float

    Members
    -------
    weights : list of numpy.ndarray
        float32, after every step so far.
    """

    def __init__(self, model, weights, lr):
        self.model, self.lr = model, lr
        self.weights = [nx.to_float32(w).copy() for w in weights]

    def step(self, x, labels):
        """One SGD step on the float32 minibatch ``x``; the loss before it."""
        return sgd_step(self.model, self.weights, x, labels, self.lr)
