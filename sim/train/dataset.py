"""The training data of every driver: the digits split, the minibatch order, the test set.

The digits are split once (``data_seed``: 1347 training and 450 test images,
:func:`chrysalis.sim.compile.data.digits`: pixels scaled to [0, 1] and rounded to fp32). Each
epoch visits the training set in a new seeded permutation, in minibatches of ``batch``; the
last ``1347 mod batch`` images of a permutation, too few for a minibatch, are left out of
that epoch (a different few each epoch), so every step has the same batch size
(:class:`MinibatchOrder`).
"""

from dataclasses import dataclass

import numpy as np

from chrysalis.sim.golden import numerics as nx

from .reference import accuracy

__all__ = ["DATA_SEED", "MinibatchOrder", "Minibatch", "DigitsTask"]

#: The train/test split of the digits (fixed, so that seeds are compared on one test set).
DATA_SEED = 0


class MinibatchOrder:
    """The minibatch of every step: consecutive ``batch``-sized slices of a fresh seeded
    permutation of the training set per epoch (the remainder of each is dropped).

    Parameters
    ----------
    samples : int
        Training samples.
    batch : int
        Samples per minibatch.
    seed : int
        The permutations come from ``numpy.random.default_rng([seed, 1])``: a stream of
        their own (:func:`chrysalis.sim.compile.program.initial_weights` draws from
        ``default_rng(seed)``).

    Members
    -------
    per_epoch : int
        Minibatches per epoch, ``samples // batch``.
    """

    def __init__(self, samples, batch, seed):
        self.samples, self.batch = samples, batch
        self.per_epoch = samples // batch
        self._rng = np.random.default_rng([seed, 1])
        self._perms = []

    def indices(self, step):
        """The training samples of step ``step``'s minibatch."""
        epoch, k = divmod(step, self.per_epoch)
        while len(self._perms) <= epoch:
            self._perms.append(self._rng.permutation(self.samples))
        return self._perms[epoch][k * self.batch:(k + 1) * self.batch]


@dataclass(frozen=True)
class Minibatch:
    """The samples of one step.

    Members
    -------
    step : int
    x32 : numpy.ndarray
        ``(features, batch)`` float32.
    labels : numpy.ndarray of int
    """

    step: int
    x32: np.ndarray
    labels: np.ndarray

    @property
    def x_bits(self):
        """The inputs as fp32 bit patterns, as the host writes them into the image."""
        return nx.from_float32(self.x32)


class DigitsTask:
    """scikit-learn's digits as a training run sees them: the split of ``data_seed``, the
    minibatch order of ``seed`` and the test accuracy of a set of weights.

    Parameters
    ----------
    batch : int
    seed : int
    data_seed : int
    """

    def __init__(self, batch, seed, data_seed=DATA_SEED):
        from chrysalis.sim.compile.data import digits
        self.x_train, self.y_train, x_test, self.y_test = digits(data_seed)
        self.x_test_t = x_test.T.copy()
        self.order = MinibatchOrder(len(self.x_train), batch, seed)

    @property
    def per_epoch(self):
        """Minibatches per epoch."""
        return self.order.per_epoch

    def check_batch(self):
        """Refuse a ``batch`` larger than the training set (an epoch of no steps)."""
        if self.order.per_epoch == 0:
            raise ValueError(f"batch must be at most the {len(self.x_train)} training "
                             f"samples, not {self.order.batch!r}")

    def minibatch(self, step):
        """Step ``step``'s :class:`Minibatch`."""
        idx = self.order.indices(step)
        return Minibatch(step, self.x_train[idx].T, self.y_train[idx])

    def test_accuracy(self, weights):
        """Test accuracy in [0, 1] of float32 ``weights``."""
        return accuracy(weights, self.x_test_t, self.y_test)
