"""Cost of a convolutional network's training step as the accelerator runs it: the
compiled program (``sim.compile.cnn_program``) priced command by command, ``GATHER``
included, per layer and per phase (``docs/convolution.md``).

:func:`cnn_step` prices the stream of one SGD step with :func:`gen.perf.stream.
stream_cost`, whose total is the RTL's ``CYCLES`` for the run (the fetches and DMAs the
controller overlaps included), and splits the commands by the trainable layer they work
for (``CnnPlacement.step_layers``): a layer's im2col, products, col2im and, for a dense
layer on an image, its flatten and unflatten. A layer's ``cycles`` are its commands'
cycles each run alone; the step's are the stream's, which hides some of them
(``hidden_cycles``). Utilization counts useful MACs as CATERPILLAR does: forward, dX (none
for the first layer) and dW, the bias one more product per output; the update is not a
MAC.
"""

from chrysalis.gen.spec.model import Model

from .commands import COST_FIELDS, PHASES, TESTBENCH_MEMORY, command_cost, phase_of
from .stream import stream_cost

__all__ = ["cnn_program", "cnn_step", "layer_macs"]


def cnn_program(config, model, batch, lr=0.1, store_every_step=False):
    """The ``sim.compile.cnn_program.CnnTrainingProgram`` of ``model`` (weights kept in
    the PEs between steps, as ``chrysalis train`` runs it)."""
    from chrysalis.sim.compile.cnn_program import CnnTrainingProgram
    return CnnTrainingProgram(config, model, batch, lr, store_every_step=store_every_step)


def layer_macs(model, batch):
    """Useful MACs of each trainable layer in one step (``Model.macs`` split by layer)."""
    out = []
    for k, t in enumerate(model.trainable):
        columns = t.out_shape[1] * t.out_shape[2] if t.is_conv else 1
        rows, inputs = t.weight_shape
        out.append(rows * inputs * columns * batch * (2 if k == 0 else 3))
    return out


def _zero():
    return dict.fromkeys(COST_FIELDS, 0)


def _name(command):
    return str(getattr(command["op"], "name", command["op"])).upper()


def cnn_step(config, model, batch, timing=TESTBENCH_MEMORY, store_every_step=False):
    """Model cost of one SGD step of ``model`` (a ``gen.spec.model.Model``) on one core.

    Returns
    -------
    dict
        ``cycles`` (the step's run, equal to the RTL's ``CYCLES``), ``hidden_cycles``,
        ``phases`` (phase -> summed :func:`~gen.perf.commands.command_cost` fields, each
        command alone; ``gather`` among them), ``layers`` (per trainable layer ``{"name",
        "kind", "cycles", "phases", "useful_macs", "mac_cycles", "utilization"}``, where
        ``mac_cycles`` are the cycles of its ``FORWARD``, ``BACKWARD`` and ``WGRAD`` and
        ``utilization`` its useful MACs over PEs x its cycles), ``io`` (the step's DMA of
        the minibatch and the logits), ``useful_macs``, ``utilization`` (over the step's
        cycles) and ``commands`` (the step's stream).
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a gen.spec.model.Model, not {model!r}")
    program = cnn_program(config, model, batch, store_every_step=store_every_step)
    commands = program.run_commands(program.step_run(1, 0))
    total = stream_cost(config, commands, timing)
    place = program.compiled
    pes = config.core.rows * config.core.cols * config.mac.macs_per_cycle
    macs = layer_macs(model, batch)
    layers = []
    for k, t in enumerate(model.trainable):
        kind = "conv" if t.is_conv else "fc"
        layers.append({"name": f"{kind}{k + 1}", "kind": kind, "cycles": 0,
                       "phases": {name: _zero() for name in PHASES},
                       "useful_macs": macs[k], "mac_cycles": 0})
    io = _zero()
    by_layer = dict(zip(map(id, place.step), place.step_layers))
    for command in commands:
        cost = command_cost(config, command, timing)
        k = by_layer.get(id(command))
        target = io if k is None else layers[k]["phases"][phase_of(_name(command))]
        for key, value in cost.items():
            target[key] += value
        if k is not None:
            layers[k]["cycles"] += cost["cycles"]
            if _name(command) in ("FORWARD", "BACKWARD", "WGRAD"):
                layers[k]["mac_cycles"] += cost["cycles"]
    for layer in layers:
        layer["utilization"] = layer["useful_macs"] / (pes * layer["cycles"])
    useful = sum(macs)
    cycles = total["total"]["cycles"]
    return {"network": model.name, "batch": batch, "cycles": cycles,
            "hidden_cycles": total["hidden_cycles"], "phases": total["phases"],
            "layers": layers, "io": io, "useful_macs": useful,
            "utilization": useful / (pes * cycles), "commands": commands}
