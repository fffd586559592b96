"""The defaults of a training run on the digits and the checks of its arguments."""

import math

from chrysalis.gen.spec.checks import is_int, is_real

__all__ = ["BACKENDS", "DIGITS_SIZES", "DEFAULT_LR", "DEFAULT_BATCH", "DEFAULT_EPOCHS",
           "check_arguments"]

#: Where the accelerator runs: the golden machine model or the RTL under a simulator.
BACKENDS = ("golden", "icarus", "verilator")
#: The digits network: 64 pixels in, 10 classes out.
DIGITS_SIZES = (64, 32, 10)
#: Plain SGD at these settings reaches >= 95% test accuracy on the default preset within
#: :data:`DEFAULT_EPOCHS` epochs (``benchmarks/train_digits.py`` measures it over seeds).
DEFAULT_LR = 0.1
DEFAULT_BATCH = 8
DEFAULT_EPOCHS = 12


def check_arguments(sizes, batch, lr, momentum, steps, epochs, seed, backend):
    """Refuse a bad argument of a training run with a ``ValueError`` that names it and its
    value (``steps`` and ``epochs``: at most one of them, ``None`` for the other)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if (not isinstance(sizes, (list, tuple)) or len(sizes) < 2
            or any(not is_int(s) or s < 1 for s in sizes)):
        raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
    if sizes[0] != DIGITS_SIZES[0] or sizes[-1] != DIGITS_SIZES[-1]:
        raise ValueError(f"a digits network takes {DIGITS_SIZES[0]} inputs and gives "
                         f"{DIGITS_SIZES[-1]} classes, so sizes must start with "
                         f"{DIGITS_SIZES[0]} and end with {DIGITS_SIZES[-1]}, not "
                         f"{tuple(int(s) for s in sizes)!r}")
    if not is_int(batch) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    if not is_real(lr) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive number, not {lr!r}")
    if momentum is not None and (not is_real(momentum) or not 0 <= momentum < math.inf):
        raise ValueError(f"momentum must be None or a non-negative number, not {momentum!r}")
    if steps is not None and epochs is not None:
        raise ValueError(f"give steps or epochs, not both (steps={steps!r}, "
                         f"epochs={epochs!r})")
    if steps is not None and (not is_int(steps) or steps < 1):
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    if epochs is not None and (not is_int(epochs) or epochs < 1):
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
