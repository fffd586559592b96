"""The host's float32 arithmetic: the loss, the test forward pass and the reference SGD step.

Every training driver measures the accelerator against the same plain float32 NumPy
training: :class:`Float32Reference` takes the step the accelerator takes
(:func:`reference_step`) on the same minibatches from the same initial weights, and
:func:`accuracy` and :func:`softmax_xent` measure both in the same way.
"""

import numpy as np

from chrysalis.sim.golden import numerics as nx

__all__ = ["softmax_xent", "forward32", "accuracy", "reference_step", "Float32Reference"]


def softmax_xent(logits, labels):
    """Mean softmax cross-entropy in float64.

    Parameters
    ----------
    logits : array_like
        ``(classes, batch)`` values.
    labels : array_like of int
        ``batch`` classes.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=0, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=0, keepdims=True))
    labels = np.asarray(labels)
    return float(-log_p[labels, np.arange(z.shape[1])].mean())


def _augment32(x):
    """``x`` (features x samples, float32) with a row of ones below: the bias input."""
    return np.vstack([x, np.ones((1, x.shape[1]), dtype=np.float32)])


def forward32(weights, x):
    """Logits of a float32 forward pass: ReLU after every layer but the last.

    Parameters
    ----------
    weights : list of numpy.ndarray
        float32, layer ``l`` of shape ``(sizes[l+1], sizes[l] + 1)``, bias last.
    x : numpy.ndarray
        ``(sizes[0], samples)`` float32.

    Returns
    -------
    numpy.ndarray
        ``(sizes[-1], samples)`` float32.
    """
    a = np.asarray(x, dtype=np.float32)
    for l, w in enumerate(weights):
        a = w @ _augment32(a)
        if l < len(weights) - 1:
            a = np.maximum(a, np.float32(0))
    return a


def accuracy(weights, x, labels):
    """The fraction of the samples (the columns of ``x``) whose largest logit of
    :func:`forward32` is their label."""
    return float(np.mean(forward32(weights, x).argmax(axis=0) == labels))


def reference_step(weights, x, labels, lr, momentum=None, velocities=None):
    """One SGD step in plain float32 NumPy, the same step the accelerator takes.

    Forward with ReLU on the hidden layers, ``dY = (softmax(Y) - onehot) / B``, backward
    through the old weights (the accelerator updates a layer after its backward pass), then
    ``W -= lr * dW``, or with momentum ``v = dW + mu * v; W -= lr * v``.

    Parameters
    ----------
    weights : list of numpy.ndarray
        float32, updated in place.
    x : numpy.ndarray
        ``(sizes[0], batch)`` float32.
    labels : numpy.ndarray of int
    lr : float
    momentum : float, optional
    velocities : list of numpy.ndarray, optional
        With momentum: float32 like ``weights``, updated in place.

    Returns
    -------
    numpy.ndarray
        The logits of the forward pass (before the update), ``(classes, batch)`` float32.
    """
    batch = x.shape[1]
    layers = len(weights)
    acts = [_augment32(np.asarray(x, dtype=np.float32))]
    for l, w in enumerate(weights):
        y = w @ acts[-1]
        if l < layers - 1:
            acts.append(_augment32(np.maximum(y, np.float32(0))))
    logits = y
    z = logits - logits.max(axis=0, keepdims=True)
    e = np.exp(z)
    grad = e / e.sum(axis=0, keepdims=True)
    grad[labels, np.arange(batch)] -= np.float32(1)
    grad /= np.float32(batch)
    lr32 = np.float32(lr)
    for l in reversed(range(layers)):
        dw = grad @ acts[l].T
        if l > 0:
            # Through the weights before this step's update, masked by the ReLU.
            grad = (weights[l][:, :-1].T @ grad) * (acts[l][:-1] > 0)
        if momentum is None:
            weights[l] -= lr32 * dw
        else:
            velocities[l][:] = dw + np.float32(momentum) * velocities[l]
            weights[l] -= lr32 * velocities[l]
    return logits


class Float32Reference:
    """The float32 reference training of a run: its weights (and velocities), stepped by
    :func:`reference_step`.

    Parameters
    ----------
    weights : list of numpy.ndarray
        The initial weights as fp32 bit patterns (the accelerator's).
    lr : float
    momentum : float, optional

    Members
    -------
    weights : list of numpy.ndarray
        float32, after every step so far.
    velocities : list of numpy.ndarray or None
        With momentum: float32, like ``weights``.
    """

    def __init__(self, weights, lr, momentum=None):
        self.lr, self.momentum = lr, momentum
        self.weights = [nx.to_float32(w).copy() for w in weights]
        self.velocities = (None if momentum is None
                           else [np.zeros_like(w) for w in self.weights])

    def step(self, x, labels):
        """One SGD step on the float32 minibatch ``x`` (``(features, batch)``); returns the
        loss of its forward pass (:func:`softmax_xent`, before the update)."""
        logits = reference_step(self.weights, x, labels, self.lr, self.momentum,
                                self.velocities)
        return softmax_xent(logits, labels)
