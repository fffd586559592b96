"""Cost of training one layer on one core, for any size, under a mapping.

A layer (``gen.spec.networks.Layer``) is the product of ``W`` (``M x N``) with ``Bc = batch *
columns`` activation columns. A :class:`Mapping` cuts it into tiles of ``tm`` rows, ``tn``
columns and ``tb`` activation columns, with one of two loop orders, and every tile becomes
the core commands that the compiler (``sim.compile.compiler``) would issue for it: ``LOAD_W`` /
``LOAD_COL`` / ``LOAD_ROW`` to bring the tile into the PE banks, ``FORWARD``,
``BACKWARD``, ``WGRAD``, and the DMA transfers between memory and the scratchpad when the
layer does not stay on chip. Each command is costed by the closed forms of
:mod:`gen.perf.commands`, so the model needs no command list and works for VGG-16.

What the RTL does not have (reported in ``extensions``, costed as documented here):

``reduction split``
    ``tn < N`` (``tm < M`` for BACKWARD): an output accumulates over several tiles; the
    model assumes the edge reducers add the partial sum already in the scratchpad as they
    write (no extra cycles, one extra scratchpad read per output word).
``batch split``
    ``tb < Bc``: the weight gradient accumulates over several tiles in a buffer beside the
    weights (as the momentum velocity is), then updates: one extra update pass per tile
    group, like ``WGRAD`` with momentum, and twice the weight-bank words.

The SGD update (``update``, ``sim.compile.compiler.UPDATES``): ``"separate"`` costs each
``WGRAD`` with its update pass; ``"fused"`` sets its ``fused`` bit (no update slots,
``sim.golden.core_counts.wgrad_fused``: ignored on a dual-precision core), except under a
batch split, where the gradient accumulates over the batch tiles and the separate update
stays.

This module is pure Python.
"""

from dataclasses import dataclass

from chrysalis.gen.spec.checks import ceil_div
from chrysalis.gen.spec.layout import bank_count

from .commands import COST_FIELDS, TESTBENCH_MEMORY, command_cost

__all__ = ["Mapping", "ORDERS", "PHASE_NAMES", "UPDATES", "layer_cost", "hides_loads", "fits",
           "fit_mapping", "FIELD_LIMIT", "PhaseCosts", "tile_splits", "check_update"]

#: Loop orders: ``weights`` keeps a weight tile in the PEs while activation tiles stream
#: past it; ``inputs`` keeps an activation tile while weight tiles stream.
ORDERS = ("weights", "inputs")
#: Phases of a layer's cost.
PHASE_NAMES = ("forward", "loss", "backward", "wgrad_update", "load", "dma", "gather")
#: The command fields m, n and batch are 16 bits (``gen.spec.isa``).
FIELD_LIMIT = 0xFFFF
#: The ways to apply the SGD update (``sim.compile.compiler.UPDATES``, spelled out so that
#: this module stays pure Python; ``tests/gen/perf`` checks they agree).
UPDATES = ("fused", "separate")


def check_update(update):
    """``update`` if it is one of :data:`UPDATES`; a ``ValueError`` naming it otherwise."""
    if not isinstance(update, str) or update not in UPDATES:
        raise ValueError(f"update must be one of {', '.join(UPDATES)}, not {update!r}")
    return update


@dataclass(frozen=True)
class Mapping:
    """Tiling of a layer on a core.

    Parameters
    ----------
    tm : int
        Rows of ``W`` per tile (output features); clipped to the layer.
    tn : int
        Columns of ``W`` per tile (inputs per output); clipped to the layer.
    tb : int
        Activation columns per tile (samples times output pixels); clipped to the layer.
    order : str
        One of :data:`ORDERS`.
    """

    tm: int
    tn: int
    tb: int
    order: str = "weights"

    def __post_init__(self):
        for name in ("tm", "tn", "tb"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"mapping {name} must be a positive integer, not {value!r}")
        if self.order not in ORDERS:
            raise ValueError(f"mapping order must be one of {', '.join(ORDERS)}, "
                             f"not {self.order!r}")

    def clip(self, layer, batch):
        """This mapping with tiles no larger than the layer."""
        return Mapping(min(self.tm, layer.m), min(self.tn, layer.n),
                       min(self.tb, layer.columns * batch), self.order)


def tile_splits(total, tile):
    """``[(size, count)]``: ``total`` cut into tiles of ``tile`` (the last one shorter)."""
    full, rest = divmod(total, tile)
    out = [(tile, full)] if full else []
    if rest:
        out.append((rest, 1))
    return out


def fits(config, layer, batch, mapping):
    """Why ``mapping`` does not fit ``config``'s core (a string), or ``None`` if it does."""
    mp = mapping.clip(layer, batch)
    R, C = config.core.rows, config.core.cols
    mt, nt = ceil_div(mp.tm, R), ceil_div(mp.tn, C)
    copies = 2 if mp.tb < layer.columns * batch else 1
    if copies * mt * nt > config.pe.weight_words:
        return (f"a {mp.tm} x {mp.tn} weight tile needs {copies * mt * nt} words per PE, "
                f"more than pe.weight_words = {config.pe.weight_words}")
    if (mt + nt) * mp.tb > config.pe.act_words:
        return (f"activation tiles of {mp.tb} columns need {(mt + nt) * mp.tb} words per "
                f"PE, more than pe.act_words = {config.pe.act_words}")
    if max(mp.tm, mp.tn, mp.tb) > FIELD_LIMIT:
        return f"a tile side exceeds the 16-bit command fields ({FIELD_LIMIT})"
    return None


def fit_mapping(config, layer, batch):
    """The compiler's way (``sim.compile.compiler``): whole columns of activations if they fit,
    whole rows of ``W`` per tile, as many rows as the weight bank holds; halving ``tn``
    and then ``tb`` until the tile fits. Weight-stationary order."""
    R, C = config.core.rows, config.core.cols
    tb = min(layer.columns * batch, FIELD_LIMIT)
    tn = min(layer.n, FIELD_LIMIT)
    while True:
        nt = ceil_div(tn, C)
        copies = 2 if tb < layer.columns * batch else 1
        rows = (config.pe.weight_words // (copies * nt)) * R
        tm = min(layer.m, rows, FIELD_LIMIT // R * R)
        if tm >= 1:
            mapping = Mapping(tm, tn, tb, "weights")
            if fits(config, layer, batch, mapping) is None:
                return mapping
        if tn > C and (tm < 1 or (ceil_div(min(tm, R), R) + nt) * tb <= config.pe.act_words):
            tn = max(C, ceil_div(tn, 2 * C) * C)
        elif tb > 1:
            tb = ceil_div(tb, 2)
        elif tn > C:
            tn = max(C, ceil_div(tn, 2 * C) * C)
        else:
            raise ValueError(f"layer {layer.name} cannot be tiled on this core: even a "
                             f"{R} x {C} tile of one column does not fit")


class PhaseCosts:
    """Accumulates command costs per phase (``phases``: phase name -> cost fields)."""

    def __init__(self, config, timing):
        self.config, self.timing = config, timing
        self.phases = {name: dict.fromkeys(COST_FIELDS, 0) for name in PHASE_NAMES}
        self._cache = {}

    def add(self, phase, times, op, **sizes):
        if times <= 0:
            return
        key = (op, tuple(sorted(sizes.items())))
        cost = self._cache.get(key)
        if cost is None:
            cost = self._cache[key] = command_cost(self.config, dict(op=op, **sizes),
                                                   self.timing)
        entry = self.phases[phase]
        for field, value in cost.items():
            entry[field] += value * times

    def add_delta(self, phase, times, op, plus, minus):
        """Add ``times`` x (cost of ``plus`` - cost of ``minus``) of the same op."""
        a = command_cost(self.config, dict(op=op, **plus), self.timing)
        b = command_cost(self.config, dict(op=op, **minus), self.timing)
        entry = self.phases[phase]
        for field in a:
            if field in ("commands", "fetch_beats", "overhead_cycles"):
                continue
            entry[field] += (a[field] - b[field]) * times


def hides_loads(config):
    """Whether the compiler hides the loads into the activation banks in the ``FORWARD`` and
    ``BACKWARD`` before them (``sim.compile.compiler``'s ``fill``), as the model assumes
    for fully connected layers on one core (the cluster programs keep their loads): a
    square PE array whose scratchpad has one bank per column, so that every tile of a row
    of ones starts a scratchpad line."""
    R, C = config.core.rows, config.core.cols
    return config.cluster.cores == 1 and R == C and bank_count(R, C) == C


def layer_cost(config, layer, batch, mapping=None, first=False, last=False, classes=None,
               weights_resident=False, on_chip=False, timing=TESTBENCH_MEMORY,
               update="separate"):
    """Cost of one training step of ``layer`` on one core.

    Parameters
    ----------
    config : gen.spec.config.Config
    layer : gen.spec.networks.Layer
    batch : int
        Samples of the minibatch.
    mapping : Mapping, optional
        The tiling (:func:`fit_mapping` by default).
    first : bool
        The network's first layer: no input gradient.
    last : bool
        The network's last layer: the loss gradient (``classes`` classes) is computed here.
    weights_resident : bool
        Every layer's weights stay in the PE banks between steps (no ``LOAD_W`` /
        ``STORE_W``); needs one tile per layer.
    on_chip : bool
        The whole network (weights and activations) stays in the scratchpad between steps:
        no DMA but the minibatch in and the logits out. Otherwise every operand crosses
        the DMA once per use (the weights not at all when they are resident), times the
        re-reads the loop order makes when the layer does not fit the scratchpad.
    timing : gen.perf.commands.MemoryTiming
    update : {"separate", "fused"}
        The SGD update: ``"fused"`` costs ``WGRAD`` with its ``fused`` bit (no update
        pass) unless a batch split accumulates the gradient over several tiles.

    Returns
    -------
    dict
        ``phases`` (phase -> summed command-cost fields), ``cycles``, ``useful_macs``,
        ``mapping`` (the clipped mapping), ``extensions`` (what the RTL does not have).
    """
    check_update(update)
    mapping = fit_mapping(config, layer, batch) if mapping is None else mapping
    why = fits(config, layer, batch, mapping)
    if why is not None:
        raise ValueError(f"layer {layer.name}: {why}")
    mp = mapping.clip(layer, batch)
    R, C = config.core.rows, config.core.cols
    M, N, Bc = layer.m, layer.n, layer.columns * batch
    sm, sn, sb = tile_splits(M, mp.tm), tile_splits(N, mp.tn), tile_splits(Bc, mp.tb)
    nM, nN, nB = (sum(c for _, c in s) for s in (sm, sn, sb))
    acc = PhaseCosts(config, timing)
    extensions = []
    if nN > 1 or (nM > 1 and not first):
        extensions.append("reduction split")
    if nB > 1:
        extensions.append("batch split")
    if weights_resident and (nM > 1 or nN > 1):
        raise ValueError(f"layer {layer.name}: resident weights need one tile per layer")
    weights_move = not weights_resident
    # Whole activation matrices fit the activation bank: each is loaded once per step and
    # the weight gradient finds them there (as the compiler places them).
    act_resident = nB == 1 and (ceil_div(N, C) + ceil_div(M, R)) * Bc <= config.pe.act_words
    w_outer = mp.order == "weights"
    # The fused update adds each weight's batch onto it in one gradient pass; a batch
    # split accumulates over tiles first, so it keeps the separate update.
    fused = dict(fused=1) if update == "fused" and nB == 1 else {}
    # The loads hidden in the commands before them (sim.compile.compiler's ``fill``): a
    # FORWARD loads its output for the next layer, a BACKWARD the gradient of the layer
    # below; the next layer's LOAD_COL keeps only the tile of its row of ones.
    hide = (act_resident and layer.kind == "fc" and nM == nN == 1 and hides_loads(config))
    fill_fwd = dict(fill=1) if hide and not last else {}

    for mi, cm in sm:
        for nj, cn in sn:
            for bk, cb in sb:
                t = cm * cn * cb
                acc.add("forward", t, "FORWARD", m=mi, n=nj, batch=bk, **fill_fwd)
                if not first and hide:
                    # The bias input's gradient is left out where it would be padding.
                    acc.add("backward", t, "BACKWARD", m=mi, batch=bk, fill=1,
                            n=nj - 1 if (nj - 1) % C else nj)
                elif not first:
                    acc.add("backward", t, "BACKWARD", m=mi, n=nj, batch=bk)
                acc.add("wgrad_update", t, "WGRAD", m=mi, n=nj, batch=bk, **fused)
                if not act_resident:
                    # forward's X tile and backward's dY tile: once per tile visit with the
                    # weights outer, once per activation tile with the activations outer;
                    # the weight gradient loads both for every tile.
                    acc.add("load", t if w_outer else t / nM, "LOAD_COL", n=nj, batch=bk)
                    if not first:
                        acc.add("load", t if w_outer else t / nN, "LOAD_ROW", m=mi,
                                batch=bk)
                    acc.add("load", t, "LOAD_COL", n=nj, batch=bk)
                    acc.add("load", t, "LOAD_ROW", m=mi, batch=bk)
            if nB > 1:
                # The last batch tile also applies the accumulated gradient: one more pass.
                bk = sb[-1][0]
                acc.add_delta("wgrad_update", cm * cn, "WGRAD",
                              dict(m=mi, n=nj, batch=bk, flag=1), dict(m=mi, n=nj, batch=bk))
            if weights_move:
                w_loads = cm * cn * (1 if w_outer else nB)
                passes = 3 if not first else 2          # forward, backward, weight gradient
                acc.add("load", w_loads * passes, "LOAD_W", m=mi, n=nj)
                acc.add("load", cm * cn, "STORE_W", m=mi, n=nj)
    # The core's busy cycles of the layer's LOAD_ROW (which the program issues right after
    # the next layer's WGRAD, so that the core runs it beside that WGRAD) and of its WGRAD,
    # for gen.perf.network's side-slot overlap; 0 where there is no such single command.
    side = {"row_load_busy": 0, "wgrad_busy": 0, "commands": {}}
    if act_resident and nM == nN == nB == 1:
        # The layer's single BACKWARD, WGRAD and gradient LOAD_ROW, for gen.perf.network's
        # drain-slot overlap.
        if not first:
            side["commands"]["BACKWARD"] = (
                dict(op="BACKWARD", m=M, n=N - 1 if (N - 1) % C else N, batch=Bc, fill=1)
                if hide else dict(op="BACKWARD", m=M, n=N, batch=Bc))
        side["commands"]["WGRAD"] = dict(op="WGRAD", m=M, n=N, batch=Bc, **fused)
    if act_resident:
        ones = (N - 1) // C * C if hide and not first else 0
        # The tile of ones stays in the PEs where no FORWARD fills a lane of it (loaded
        # once, before the first step: sim.compile.compiler's ``setup``).
        if not (ones and (N - 1) % C == 0):
            acc.add("load", 1, "LOAD_COL", n=N - ones, batch=Bc)
        if last or not hide:
            acc.add("load", 1, "LOAD_ROW", m=M, batch=Bc)
            if not last:
                side["row_load_busy"] = _busy(config, timing, "LOAD_ROW", m=M, batch=Bc)
                side["commands"]["LOAD_ROW"] = dict(op="LOAD_ROW", m=M, batch=Bc)
        if nM == nN == nB == 1:
            side["wgrad_busy"] = _busy(config, timing, "WGRAD", m=M, n=N, batch=Bc, **fused)
    if last:
        acc.add("loss", 1, "LOSS_GRAD", m=classes or M, batch=batch)

    # --- DMA between memory and the scratchpad -----------------------------------------
    if on_chip:
        if first:
            acc.add("dma", 1, "DMA_LOAD", n=layer.input_words, batch=batch)
        if last:
            acc.add("dma", 1, "DMA_LOAD", n=1, batch=batch)             # labels
            acc.add("dma", 1, "DMA_STORE", n=M, batch=batch)            # logits
    else:
        sp = config.core.scratchpad_words
        fits_sp = M * N + (N + 2 * M) * mp.tb <= sp
        w_reads = 1 if (fits_sp or w_outer) else nB
        a_reads = 1 if (fits_sp or not w_outer) else nM
        phases = 2 if first else 3
        for mi, cm in sm:
            for nj, cn in sn:
                if weights_resident:
                    break               # the weights stay in the PEs between steps
                acc.add("dma", cm * cn * w_reads * phases, "DMA_LOAD", n=mi, batch=nj)
                acc.add("dma", cm * cn, "DMA_STORE", n=mi, batch=nj)
        for nj, cn in sn:
            for bk, cb in sb:
                # X for forward and the weight gradient (and the ReLU mask of dX).
                acc.add("dma", cn * cb * (a_reads + 1 + (0 if first else 1)), "DMA_LOAD",
                        n=nj, batch=bk)
                if not first:
                    acc.add("dma", cn * cb, "DMA_STORE", n=nj, batch=bk)        # dX
        for mi, cm in sm:
            for bk, cb in sb:
                acc.add("dma", cm * cb, "DMA_STORE", n=mi, batch=bk)            # Y
                acc.add("dma", cm * cb * (1 + (0 if first else a_reads)), "DMA_LOAD",
                        n=mi, batch=bk)                                          # dY
        if last:
            acc.add("dma", 1, "DMA_LOAD", n=1, batch=batch)
    for taps, n, columns, mask in layer.gathers:
        # One GATHER per sample, as the compiler emits them (gen.spec.model.Model.network).
        acc.add("gather", batch, "GATHER", m=taps, n=n, batch=columns, flag=int(mask))
    cycles = sum(p["cycles"] for p in acc.phases.values())
    return {"phases": acc.phases, "cycles": cycles,
            "useful_macs": layer.macs(batch, first=first), "mapping": mp,
            "extensions": extensions, "update": "fused" if fused else "separate", **side}


def _busy(config, timing, op, **fields):
    """The core's busy cycles of one command: its cycles less the controller's."""
    cost = command_cost(config, dict(op=op, **fields), timing)
    return cost["cycles"] - cost["overhead_cycles"]
