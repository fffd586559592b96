"""Where a continuous-propagation stage lives on its core: scratchpad matrices and bank
addresses (the storage section of ``sim.compile.cp_program``'s docstring)."""

from dataclasses import dataclass, field

from chrysalis.gen.spec.layout import Allocator, Matrix, bank_count, tiles

__all__ = ["StagePlacement", "place_stages", "span"]


def span(layers):
    """Layers ``layers`` in a message: ``"2"`` or ``"1-3"``."""
    return f"{layers[0]}" if len(layers) == 1 else f"{layers[0]}-{layers[-1]}"


@dataclass
class StagePlacement:
    """The placement of one stage on its core: its scratchpad matrices (``Matrix`` of
    ``gen.spec.layout``) and its weight- and activation-bank addresses, per layer ``l``."""
    core: int
    layers: tuple
    depth: int                    # slots of the input ring buffers
    delay: int                    # d_k: ticks from forward to backward
    weights: dict = field(default_factory=dict)     # l -> Matrix (m x n)
    wbase: dict = field(default_factory=dict)
    ring: dict = field(default_factory=dict)        # l -> Matrix (sizes[l]+1 x depth*batch)
    grads: dict = field(default_factory=dict)       # l -> Matrix: dX of layer l (l > first)
    act_x: dict = field(default_factory=dict)
    act_dy: dict = field(default_factory=dict)
    out: Matrix = None            # stage output, sent up (k < c-1)
    dy_in: Matrix = None          # gradient that comes down (k < c-1)
    dx_out: Matrix = None         # input gradient sent down (k > 0)
    logits: Matrix = None         # last stage
    dlogits: Matrix = None
    labels: Matrix = None

    @property
    def mask(self):
        return 1 << self.core


def place_stages(config, sizes, stages, batch):
    """The :class:`StagePlacement` of every stage (``stages``: the layers of each, as
    :func:`sim.compile.cp_stages.assign_stages` gives them) on its core; a ``ValueError``
    naming the config field and its value when a stage does not fit its core."""
    b = batch
    R, C = config.core.rows, config.core.cols
    banks = bank_count(R, C)
    placed = []
    c = len(stages)
    for k, layers in enumerate(stages):
        # The ring buffers hold the inputs of the d_k + 1 micro-batches in flight.
        st = StagePlacement(k, layers, 2 * (c - 1 - k) + 1, 2 * (c - 1 - k))
        alloc = Allocator(config.core.scratchpad_words, banks)

        def matrix(n, cols, what):
            try:
                return alloc.matrix(n, cols, what)
            except ValueError as error:
                raise ValueError(f"stage {k} (layers {span(layers)}) does not fit core "
                                 f"{k}'s scratchpad, core.scratchpad_words = "
                                 f"{config.core.scratchpad_words}: {error}") from None

        first, top = layers[0], layers[-1]
        for l in layers:
            st.ring[l] = matrix(sizes[l] + 1, st.depth * b, f"the inputs of layer {l}")
        for l in layers[1:]:
            st.grads[l] = matrix(sizes[l] + 1, b, f"the input gradient of layer {l}")
        if k > 0:
            st.dx_out = matrix(sizes[first] + 1, b, f"the input gradient of layer {first}")
        if k < c - 1:
            st.out = matrix(sizes[top + 1], b, f"the output of layer {top}")
            st.dy_in = matrix(sizes[top + 1], b, f"the output gradient of layer {top}")
        else:
            st.logits = matrix(sizes[-1], b, "the logits")
            st.dlogits = matrix(sizes[-1], b, "the gradient of the logits")
            st.labels = matrix(1, b, "the labels")
        for l in layers:
            st.weights[l] = matrix(sizes[l + 1], sizes[l] + 1, f"the weights of layer {l}")
        wnext = anext = 0
        for l in layers:
            m, n = sizes[l + 1], sizes[l] + 1
            st.wbase[l] = wnext
            wnext += tiles(m, R) * tiles(n, C)
            st.act_x[l] = anext
            anext += tiles(n, C) * b
            st.act_dy[l] = anext
            anext += tiles(m, R) * b
        if wnext > config.pe.weight_words:
            raise ValueError(f"stage {k} (layers {span(layers)}) needs {wnext} weight "
                             f"words per PE, more than pe.weight_words = "
                             f"{config.pe.weight_words}")
        if anext > config.pe.act_words:
            raise ValueError(f"stage {k} (layers {span(layers)}) needs {anext} "
                             f"activation words per PE for batch {b}, more than "
                             f"pe.act_words = {config.pe.act_words}")
        placed.append(st)
    return placed
