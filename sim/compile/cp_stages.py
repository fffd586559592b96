"""The stages of continuous propagation and the versions of the weights they use.

The layers of an MLP are cut into ``c`` stages, runs of consecutive layers, one per core of
the cluster (:func:`assign_stages`): with as many cores as layers, layer ``l`` is stage ``l``;
otherwise the cut minimises the multiply-accumulates per sample of the largest stage, since
the slowest stage sets the tick (:func:`balanced_cut`, also the performance model's cut of
any network, ``gen.perf.network``). Stage ``k``'s forward pass of micro-batch ``s`` uses the
weights ``sigma_k`` updates older than the current ones (:func:`staleness`,
:func:`forward_version`). ``sim.compile.cp_program`` has the whole schedule and its semantics.
"""

from itertools import accumulate

from chrysalis.gen.spec.checks import is_int
from chrysalis.gen.spec.networks import mlp

from .compiler import check_sizes

__all__ = ["balanced_cut", "assign_stages", "staleness", "forward_version", "check_cores"]


def balanced_cut(costs, parts):
    """Cut a sequence of costs into ``parts`` contiguous runs so that the largest run's sum
    is as small as possible; among equal cuts, the one with the earliest boundaries.

    Parameters
    ----------
    costs : sequence of int
        The cost of each item, in order.
    parts : int
        From 1 to ``len(costs)``.

    Returns
    -------
    list of (int, int)
        The ``(start, stop)`` of each run, in order.
    """
    n = len(costs)
    prefix = [0, *accumulate(costs)]
    # best[k][j]: the least largest-run cost of the first j items in k runs.
    best = [[float("inf")] * (n + 1) for _ in range(parts + 1)]
    cut = [[0] * (n + 1) for _ in range(parts + 1)]
    best[0][0] = 0
    for k in range(1, parts + 1):
        for j in range(k, n + 1):
            for i in range(k - 1, j):
                value = max(best[k - 1][i], prefix[j] - prefix[i])
                if value < best[k][j]:
                    best[k][j], cut[k][j] = value, i
    bounds, j = [], n
    for k in range(parts, 0, -1):
        i = cut[k][j]
        bounds.append((i, j))
        j = i
    return list(reversed(bounds))


def check_cores(cores, layers):
    """Refuse a ``cluster.cores`` that cannot pipeline ``layers`` layers (a ``ConfigError``
    naming the field)."""
    from chrysalis.gen.spec.config import ConfigError
    if not is_int(cores) or cores < 2:
        raise ConfigError(f"cluster.cores must be at least 2 for a layer pipeline, not "
                          f"{cores!r}")
    if cores > layers:
        raise ConfigError(f"cluster.cores must be at most the {layers} layers of the network "
                          f"(a stage is at least one layer), not {cores!r}")


def assign_stages(sizes, cores):
    """The layers of each stage: ``cores`` runs of consecutive layers.

    With as many cores as layers, layer ``l`` is stage ``l``. Otherwise the cut minimizes
    the array operations per sample (useful MACs and the update pass) of the largest stage
    (the tick is as long as the slowest stage); among equal cuts the one with the earliest
    boundaries is taken.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes, inputs first.
    cores : int
        From 2 to ``len(sizes) - 1``.

    Returns
    -------
    list of tuple of int
        Stage ``k``'s layers, in order.

    Raises
    ------
    gen.spec.config.ConfigError
        ``cores`` below 2 or above the number of layers (names ``cluster.cores``).
    """
    sizes = check_sizes(sizes)
    layers = len(sizes) - 1
    check_cores(cores, layers)
    # Array operations per sample, the update pass included (gen.spec.networks'
    # Layer.step_ops): the slowest stage sets the tick.
    network = mlp(sizes)
    cost = [layer.step_ops(1, first=l == 0) for l, layer in enumerate(network.layers)]
    return [tuple(range(i, j)) for i, j in balanced_cut(cost, cores)]


def staleness(stage, cores):
    """``sigma_k``: how many updates older than the current ones the weights of stage
    ``stage``'s forward pass are (``2 (c - 1 - k) - 1``, and 0 on the last stage)."""
    return 0 if stage == cores - 1 else 2 * (cores - 1 - stage) - 1


def forward_version(sample, stage, cores):
    """The version ``v`` of the weights (``W^v``: after ``v`` updates) that micro-batch
    ``sample``'s forward pass uses on stage ``stage``: ``max(0, sample - sigma_k)``."""
    return max(0, sample - staleness(stage, cores))
