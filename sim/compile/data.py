"""Real training data: scikit-learn's handwritten digits (8x8 images, 10 classes).

The digits ship with scikit-learn (no download). Pixels (0..16) are scaled to [0, 1] and
rounded to fp32; the split into training and test sets is seeded and stratified.
"""

import numpy as np

from chrysalis.sim.golden import numerics as nx

__all__ = ["digits", "digits_case"]


def digits(seed=0, test_fraction=0.25):
    """``(x_train, y_train, x_test, y_test)``: float32 features (samples x 64), int labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=test_fraction, random_state=seed, stratify=data.target)
    return x_train, y_train, x_test, y_test


def digits_case(sizes, batch, steps, seed=0, lr=0.25):
    """An :class:`sim.compile.compiler.MlpCase` on digits minibatches: the first ``steps * batch``
    training samples of the seeded split, seeded weights scaled by 1/sqrt(fan-in)."""
    from chrysalis.sim.golden.mlp import MlpCase
    if sizes[0] != 64 or sizes[-1] != 10:
        raise ValueError(f"a digits network takes 64 inputs and gives 10 classes, not {sizes!r}")
    x_train, y_train, _, _ = digits(seed)
    rng = np.random.default_rng(seed)
    f32 = lambda v: nx.from_float32(np.asarray(v, dtype=np.float32))
    weights = [f32(rng.standard_normal((sizes[l + 1], sizes[l] + 1)) / np.sqrt(sizes[l]))
               for l in range(len(sizes) - 1)]
    inputs = [f32(x_train[s * batch:(s + 1) * batch].T) for s in range(steps)]
    labels = [y_train[s * batch:(s + 1) * batch] for s in range(steps)]
    return MlpCase(weights, inputs, labels, lr)
