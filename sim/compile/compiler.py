"""Compile one training step of an MLP into core commands (its golden reference is
:func:`chrysalis.sim.golden.mlp.golden_step`).

The network: fully connected layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, ReLU after
every hidden layer, softmax cross-entropy at the output, SGD with learning rate ``lr``.
Biases are folded into the weights: layer ``l`` has an ``sizes[l+1] x (sizes[l] + 1)``
matrix whose last column is the bias, and its input carries a row of ones (written once).

Layout: when every layer's weights fit in the PEs' weight banks they stay there (loaded once
with ``LOAD_W``). When they do not, the weights live in the scratchpad and are *streamed*:
each layer is tiled into chunks of output rows (for ``FORWARD`` and ``WGRAD``, whose chunk is
stored back after its update) and of input columns (for ``BACKWARD``), each chunk small
enough for the weight bank. A chunk holds whole rows (or columns), so tiling changes no
accumulation order and no value. Each layer's input and output-gradient tiles have their own
place in the activation banks, so the weight gradient finds them after the backward pass;
the scratchpad holds the activations, gradients, labels and (streamed) weights. A network
that does not fit even so raises a ``ValueError`` that says what does not fit and by how
much.

Command order of a step: for each layer, ``LOAD_COL`` its input and ``FORWARD`` (ReLU on
hidden layers); ``LOSS_GRAD``; then from the last layer down: ``LOAD_ROW`` its output
gradient, ``BACKWARD`` (not for the first layer; ReLU mask from the stored activations) and
``WGRAD`` (gradient and update in place).

Loads hidden in the commands before them (``fill``, on a square PE array): a hidden layer's
``FORWARD`` also writes its output into the activation banks where the next layer's
``LOAD_COL`` would put it (the ``fill`` bit, at ``abase2``), so that load shrinks to the
tile that holds the row of ones (which ``FORWARD`` does not make), and where the ``FORWARD``
writes no lane of that tile (the layer's size a multiple of the array's columns) to a load
run once before the first step (``MlpProgram.setup``); a ``BACKWARD`` writes
its ``dX`` where the next ``LOAD_ROW`` would put it, and that load is dropped. ``BACKWARD``
computes ``dX`` for the bias input too, one element past that gradient. Where that element
falls in the padding of the gradient's last tile, the ``BACKWARD`` leaves it out (``n`` one
less, the same tiles), so the padding loads as ``+0`` and the scratchpad keeps what it held
there; where it starts a tile of its own (``sizes[l] % R == 0``) the gradient's place in the
banks gets that tile as well, which no command reads. The banks then hold what the loads
would have put there, and every result is the same. Without ``fill`` (or on an ``R x C`` array with ``R != C``,
or where the row of ones' tile does not start at a scratchpad line, or where the extra
tiles do not fit the activation bank) the loads run as before.

The update (``update``, :data:`UPDATES`): ``"separate"`` runs ``WGRAD``'s update pass,
``W += q(dW) * q(-lr)``, with the loss gradient scaled by ``1/B``; ``"fused"`` folds it into
the gradient pass (``WGRAD``'s ``fused`` bit): the loss gradient's scale is ``-lr/B``
(rounded to fp32 once), so every gradient of the backward pass carries ``-lr``, and each
weight's chain starts from it, ``W + sum_b q(dY'[i][b]) * q(X[j][b])``
(``sim.golden.core_model.fused_weight_gradient``). Fused needs plain SGD (no momentum) and
one MAC stream (``mac.dual = "single"``): :func:`resolve_update` picks the update a run gets.
"""

from dataclasses import dataclass, field

import numpy as np

from chrysalis.gen.spec.checks import is_int
from chrysalis.sim.golden import numerics as nx
from chrysalis.gen.spec.layout import Allocator, Matrix, bank_count, tiles

__all__ = ["MlpProgram", "compile_mlp", "check_sizes", "sp_fields", "UPDATES",
           "resolve_update"]

#: The ways to apply the SGD update (see the module docstring).
UPDATES = ("fused", "separate")


@dataclass
class MlpProgram:
    """The placement of an MLP on a core and the commands of one training step.

    Members
    -------
    sizes : list of int
    batch : int
    weights : list of Matrix
        Scratchpad matrices to load the weights from (and store them back to).
    wbase : list of int
        Weight-bank base of each layer.
    acts : list of Matrix
        ``acts[0]`` is the input minibatch (with its row of ones), ``acts[l]`` the output of
        layer ``l - 1`` (after ReLU, with a row of ones except for the last).
    grads : list of Matrix
        ``grads[l]`` is the gradient at the output of layer ``l`` (pre-activation).
    labels : Matrix
        One integer word per sample.
    velocities : list of Matrix
        With momentum: scratchpad matrices of the velocities (write zeros before the first
        step; ``load_weights`` and ``store_weights`` move them with the weights).
    vbase : list of int
        With momentum: weight-bank base of each layer's velocities.
    streamed : bool
        The weights do not all fit in the PEs: they stay in the scratchpad and each step
        loads and stores them in chunks.
    load_weights, step, store_weights : list of dict
        Core commands (fields of ``hw.core.command_layout``; ``op`` as a name). With
        streamed weights, ``load_weights`` and ``store_weights`` are empty.
    setup : list of dict
        Core commands to run once before the first step, after the hidden layers' rows of
        ones are in the scratchpad (``acts[l]``'s last row): with ``fill``, the
        ``LOAD_COL`` of each tile of ones that no ``FORWARD`` writes into (a hidden layer's
        size a multiple of the array's columns), which then stays in the activation banks.
    update : str
        ``"separate"`` or ``"fused"`` (:data:`UPDATES`).
    fill : bool
        The loads into the activation banks are hidden in the ``FORWARD`` and ``BACKWARD``
        before them (their ``fill`` bit).
    act_x : list of int
        Activation-bank base of each layer's input ``X``.
    act_words : int
        Activation-bank words per PE the step uses (from 0).
    """

    sizes: list
    batch: int
    weights: list = field(default_factory=list)
    wbase: list = field(default_factory=list)
    acts: list = field(default_factory=list)
    grads: list = field(default_factory=list)
    labels: Matrix = None
    load_weights: list = field(default_factory=list)
    setup: list = field(default_factory=list)
    step: list = field(default_factory=list)
    store_weights: list = field(default_factory=list)
    streamed: bool = False
    velocities: list = field(default_factory=list)
    vbase: list = field(default_factory=list)
    update: str = "separate"
    fill: bool = False
    act_x: list = field(default_factory=list)
    act_words: int = 0


def resolve_update(config, momentum, update):
    """The update a run gets: ``update`` (one of :data:`UPDATES`), or with ``None`` the
    default, ``"fused"`` where it applies (plain SGD on a core of one MAC stream) and
    ``"separate"`` elsewhere. A ``ValueError`` names a bad value or a ``"fused"`` that
    cannot run (with momentum, or with a dual-precision ``mac.dual``)."""
    single = config.mac.macs_per_cycle == 1
    if update is None:
        return "fused" if momentum is None and single else "separate"
    if not isinstance(update, str) or update not in UPDATES:
        raise ValueError(f"update must be one of {', '.join(UPDATES)}, not {update!r}")
    if update == "fused" and momentum is not None:
        raise ValueError(f"the fused update is plain SGD: momentum keeps the velocity's "
                         f"separate passes, so update must be 'separate' with momentum "
                         f"{momentum!r}, not 'fused'")
    if update == "fused" and not single:
        raise ValueError(f"the fused update needs one MAC stream (the weight bank has one "
                         f"write port), so update must be 'separate' with mac.dual = "
                         f"{config.mac.dual!r}, not 'fused'")
    return update


def check_sizes(sizes):
    """``sizes`` (a list or tuple of at least two positive integers: an MLP's layer sizes,
    inputs first) as a list of ``int``; a ``ValueError`` naming them otherwise."""
    if (not isinstance(sizes, (list, tuple)) or len(sizes) < 2
            or any(not is_int(s) or s < 1 for s in sizes)):
        raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
    return [int(s) for s in sizes]


def sp_fields(matrix, prefix="sp"):
    """The command fields that name scratchpad matrix ``matrix``: its first line and its
    lines per column (``sp_base``, ``sp_lpc``; ``prefix`` ``"sp2"``, ``"sp3"`` for a
    command's second and third matrices)."""
    return {f"{prefix}_base": matrix.base, f"{prefix}_lpc": matrix.lines_per_column}


def compile_mlp(config, sizes, batch, lr, momentum=None, update="separate", fill=True):
    """Place an MLP on ``config``'s core and list the commands of one SGD step.

    With ``momentum`` (``mu``), every weight has a velocity beside it in the weight bank
    (``v = dW + mu * v``, then ``W -= lr * v``), loaded from ``velocities`` (zeros to start)
    and stored back with the weights. Momentum needs the weights resident in the PEs.
    ``update``: ``"separate"`` or ``"fused"`` (see the module docstring), or ``None`` for
    :func:`resolve_update`'s default. ``fill``: hide the loads into the activation banks in
    the ``FORWARD`` and ``BACKWARD`` before them where the core can (see the module
    docstring; ``MlpProgram.fill`` says whether it did).
    """
    sizes = check_sizes(sizes)
    if not is_int(batch) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    update = resolve_update(config, momentum, update)
    if not isinstance(fill, bool):
        raise ValueError(f"fill must be True or False, not {fill!r}")
    fused = update == "fused"
    R, C = config.core.rows, config.core.cols
    banks = bank_count(R, C)
    alloc = Allocator(config.core.scratchpad_words, banks)
    prog = MlpProgram(list(sizes), batch, update=update)
    layers = len(sizes) - 1
    # Inputs and activations carry a row of ones (the bias input), except the network output.
    for l in range(layers + 1):
        rows = sizes[l] + (1 if l < layers else 0)
        prog.acts.append(alloc.matrix(rows, batch, f"activations of layer {l}"))
    for l in range(layers):
        prog.grads.append(alloc.matrix(sizes[l + 1] + 1, batch, f"gradient of layer {l}"))
    prog.labels = alloc.matrix(1, batch, "labels")
    for l in range(layers):
        prog.weights.append(alloc.matrix(sizes[l + 1], sizes[l] + 1, f"weights of layer {l}"))
    if momentum is not None:
        for l in range(layers):
            prog.velocities.append(alloc.matrix(sizes[l + 1], sizes[l] + 1,
                                                f"velocities of layer {l}"))

    shapes = [(sizes[l + 1], sizes[l] + 1, tiles(sizes[l + 1], R), tiles(sizes[l] + 1, C))
              for l in range(layers)]
    fill = fill and _can_fill(config, sizes, batch)
    prog.fill = fill
    act_x, act_dy, act_next = _act_places(config, sizes, batch, fill)
    prog.act_x, prog.act_words = act_x, act_next
    if act_next > config.pe.act_words:
        raise ValueError(f"inputs and gradients need {act_next} words per PE, more than "
                         f"pe.act_words = {config.pe.act_words}")
    resident = sum(mt * nt for m, n, mt, nt in shapes)
    copies = 1 if momentum is None else 2          # weights, and velocities with momentum
    prog.streamed = copies * resident > config.pe.weight_words
    if prog.streamed and momentum is not None:
        raise ValueError(f"momentum keeps a velocity beside every weight, so the weights must "
                         f"stay in the PEs: they need {copies * resident} words per PE, more "
                         f"than pe.weight_words = {config.pe.weight_words}")
    if prog.streamed:
        chunks = [_chunks(config, l, *shape, banks) for l, shape in enumerate(shapes)]
        prog.wbase = [0] * layers
    else:
        chunks = [([(0, m)], [(0, n)]) for m, n, mt, nt in shapes]
        base = 0
        for m, n, mt, nt in shapes:
            prog.wbase.append(base)
            base += mt * nt
        for m, n, mt, nt in shapes if momentum is not None else ():
            prog.vbase.append(base)
            base += mt * nt

    neg_lr = nx.fp32_bits(-lr)
    # Fused: the loss gradient carries -lr (one rounding of -lr/B to fp32).
    loss_scale = nx.fp32_bits(-lr / batch if fused else 1.0 / batch)

    def load(l, rows, cols, op="LOAD_W"):
        (m0, m1), (n0, n1) = rows, cols
        view = _view(prog.weights[l], m0, n0)
        return dict(op=op, m=m1 - m0, n=n1 - n0, wbase=prog.wbase[l], **sp_fields(view))

    if not prog.streamed:
        for l, (m, n, mt, nt) in enumerate(shapes):
            prog.load_weights.append(load(l, (0, m), (0, n)))
            prog.store_weights.append(load(l, (0, m), (0, n), "STORE_W"))
        for l, (m, n, mt, nt) in enumerate(shapes if momentum is not None else ()):
            velocity = dict(op="LOAD_W", m=m, n=n, wbase=prog.vbase[l],
                            **sp_fields(prog.velocities[l]))
            prog.load_weights.append(velocity)
            prog.store_weights.append({**velocity, "op": "STORE_W"})
    for l, (m, n, mt, nt) in enumerate(shapes):
        if l > 0 and fill:
            # The previous FORWARD loaded its output; only the tile of the ones row is left.
            # Where that FORWARD fills no lane of it, it keeps the ones from step to step:
            # loaded once, before the first step.
            t = (n - 1) // C
            ones = dict(op="LOAD_COL", n=n - t * C, batch=batch, abase=act_x[l] + t * batch,
                        **sp_fields(_view(prog.acts[l], t * C, 0)))
            (prog.setup if (n - 1) % C == 0 else prog.step).append(ones)
        else:
            prog.step.append(dict(op="LOAD_COL", n=n, batch=batch, abase=act_x[l],
                                  **sp_fields(prog.acts[l])))
        hidden = l < layers - 1
        for m0, m1 in chunks[l][0]:
            if prog.streamed:
                prog.step.append(load(l, (m0, m1), (0, n)))
            into = (dict(fill=1, abase2=act_x[l + 1] + (m0 // C) * batch)
                    if fill and hidden else {})
            prog.step.append(dict(op="FORWARD", m=m1 - m0, n=n, batch=batch,
                                  wbase=prog.wbase[l], abase=act_x[l], flag=int(hidden),
                                  **into, **sp_fields(_view(prog.acts[l + 1], m0, 0))))
    prog.step.append(dict(op="LOSS_GRAD", m=sizes[-1], batch=batch, scalar=loss_scale,
                          **sp_fields(prog.acts[-1]), **sp_fields(prog.grads[-1], "sp2"),
                          **sp_fields(prog.labels, "sp3")))
    for l in reversed(range(layers)):
        m, n, mt, nt = shapes[l]
        if l == layers - 1 or not fill:
            prog.step.append(dict(op="LOAD_ROW", m=m, batch=batch, abase=act_dy[l],
                                  **sp_fields(prog.grads[l])))
        if l > 0:
            for n0, n1 in chunks[l][1]:
                if prog.streamed:
                    prog.step.append(load(l, (0, m), (n0, n1)))
                # The previous layer's LOAD_ROW, hidden in the BACKWARD. Where the bias
                # input's element would land in the padding of the gradient's last tile,
                # it is not computed (the same tiles, so the same weight addresses), and the
                # padding loads as +0, as LOAD_ROW loads it.
                into, end = {}, n1
                if fill:
                    into = dict(fill=1, abase2=act_dy[l - 1] + (n0 // R) * batch)
                    end = n1 - 1 if n1 == n and (n - 1) % C else n1
                prog.step.append(dict(op="BACKWARD", m=m, n=end - n0, batch=batch,
                                      wbase=prog.wbase[l], abase=act_dy[l], flag=1, **into,
                                      **sp_fields(_view(prog.grads[l - 1], n0, 0)),
                                      **sp_fields(_view(prog.acts[l], n0, 0), "sp2")))
        for m0, m1 in chunks[l][0]:
            if prog.streamed:
                prog.step.append(load(l, (m0, m1), (0, n)))
            with_momentum = {} if momentum is None else dict(
                flag=1, scalar2=nx.fp32_bits(momentum), wbase2=prog.vbase[l])
            how = dict(fused=1) if fused else dict(scalar=neg_lr)
            prog.step.append(dict(op="WGRAD", m=m1 - m0, n=n, batch=batch, wbase=prog.wbase[l],
                                  abase=act_x[l], abase2=act_dy[l] + (m0 // R) * batch,
                                  **how, **with_momentum))
            if prog.streamed:
                prog.step.append(load(l, (m0, m1), (0, n), "STORE_W"))
    return prog


def _can_fill(config, sizes, batch):
    """Whether the loads can hide in the commands before them (see the module docstring):
    a square array, and every tile of a row of ones starting at a scratchpad line."""
    R, C = config.core.rows, config.core.cols
    banks = bank_count(R, C)
    if R != C:
        return False
    if any((size // C) * C % banks for size in sizes[1:-1]):
        return False
    return _act_places(config, sizes, batch, True)[2] <= config.pe.act_words


def _act_places(config, sizes, batch, fill):
    """Activation-bank bases of each layer's input ``X`` and output gradient ``dY``, and the
    words they take. With ``fill`` a gradient that a ``BACKWARD`` writes (every layer's but
    the last) has room for that command's bias element."""
    R, C = config.core.rows, config.core.cols
    layers = len(sizes) - 1
    act_next = 0
    act_x, act_dy = [], []
    for l in range(layers):
        m, n = sizes[l + 1], sizes[l] + 1
        act_x.append(act_next)
        act_next += tiles(n, C) * batch
        act_dy.append(act_next)
        act_next += tiles(m + (1 if fill and l < layers - 1 else 0), R) * batch
    return act_x, act_dy, act_next


def _view(matrix, row0, col0):
    """The part of ``matrix`` from element ``row0`` (a multiple of the bank count) and
    column ``col0`` on, as a matrix with the same lines per column."""
    assert row0 % matrix.banks == 0
    return Matrix(matrix.base + col0 * matrix.lines_per_column + row0 // matrix.banks,
                  matrix.n - row0, matrix.batch - col0, matrix.banks, matrix.lines_per_column)


def _chunks(config, layer, m, n, mt, nt, banks):
    """Row chunks (for FORWARD and WGRAD) and column chunks (for BACKWARD) of a layer whose
    weights are streamed: the largest that fit the weight bank, each starting at a multiple
    of the rows (or columns) of the array and of the bank count."""
    R, C = config.core.rows, config.core.cols
    words = config.pe.weight_words
    row_unit, col_unit = np.lcm(R, banks), np.lcm(C, banks)
    rows = (words // nt) * R // row_unit * row_unit
    cols = (words // mt) * C // col_unit * col_unit
    if rows < 1 or cols < 1:
        unit, what, need = ((row_unit, "rows", tiles(row_unit, R) * nt) if rows < 1 else
                            (col_unit, "columns", mt * tiles(col_unit, C)))
        raise ValueError(f"layer {layer} ({m} x {n}) cannot fit even tiled: a tile of "
                         f"{unit} {what} needs {need} words per PE, more than "
                         f"pe.weight_words = {words}")
    split = lambda total, size: [(a, min(total, a + size)) for a in range(0, total, size)]
    return split(m, int(rows)), split(n, int(cols))
