"""cocotb testbench: consecutive SGD steps of an MLP on the core, bit-exact with the golden
model after every step.

The case comes from the environment (set by ``tests/sim/verify/test_cocotb_training.py``):
``CHRYSALIS_CONFIG`` (TOML text), ``CHRYSALIS_SIZES`` (``12,8,5``), ``CHRYSALIS_BATCH``,
``CHRYSALIS_STEPS`` and ``CHRYSALIS_SEED``; ``CHRYSALIS_MOMENTUM`` turns on SGD with
momentum; ``CHRYSALIS_UPDATE`` (``fused`` or ``separate``, the default) picks the SGD
update (``sim.compile.compiler``); ``CHRYSALIS_DATA=digits`` trains on
scikit-learn's digits instead of random inputs, and ``CHRYSALIS_REPORT`` names a JSON file for
the cycles of every command, the counters and the loss. The compiler (``sim.compile.compiler``)
places the network and lists the commands, and after every step the loss gradient at the
output and, at the end, every weight are compared with ``sim.compile.compiler.golden_step``.
"""

import json
import os

import cocotb
import numpy as np

from chrysalis.gen.spec.formats import FP32
from chrysalis.gen.spec.isa import Opcode
from chrysalis.gen.spec.networks import mlp
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.mlp import augment, golden_step, mlp_case
from chrysalis.sim.compile.compiler import compile_mlp
from chrysalis.sim.verify.tb.core import TB, _mismatch
from chrysalis.sim.verify.tb.core_data import config_from_env


@cocotb.test()
async def training_steps_equal_golden(dut):
    config = config_from_env()
    sizes = [int(s) for s in os.environ["CHRYSALIS_SIZES"].split(",")]
    batch = int(os.environ["CHRYSALIS_BATCH"])
    steps = int(os.environ["CHRYSALIS_STEPS"])
    seed = int(os.environ["CHRYSALIS_SEED"])
    if os.environ.get("CHRYSALIS_DATA") == "digits":
        from chrysalis.sim.compile.data import digits_case
        case = digits_case(sizes, batch, steps, seed)
    else:
        case = mlp_case(sizes, batch, steps, seed)
    num = cm.CoreNumerics.from_config(config)
    momentum = float(os.environ["CHRYSALIS_MOMENTUM"]) if os.environ.get("CHRYSALIS_MOMENTUM") \
        else None
    update = os.environ.get("CHRYSALIS_UPDATE") or "separate"
    prog = compile_mlp(config, sizes, batch, case.lr, momentum=momentum, update=update)
    velocities = [cm.zeros(w.shape) for w in case.weights]

    tb = TB(dut, config)
    await tb.reset()

    report = {"commands": [], "losses": []}

    async def run(command):
        cycles = await tb.command(**{**command, "op": Opcode[command["op"]]})
        report["commands"].append({"op": command["op"], "cycles": cycles})

    for matrix, w in zip(prog.weights, case.weights):
        await tb.write_matrix(matrix, w)
    for matrix in prog.velocities:              # momentum starts from zero velocities
        await tb.write_matrix(matrix, np.zeros((matrix.n, matrix.batch), dtype=np.uint64))
    for command in prog.load_weights:
        await run(command)
    for act in prog.acts[1:-1]:                 # the rows of ones of the hidden layers
        ones = np.zeros((act.n, batch), dtype=np.uint64)
        ones[-1] = 0x3F80_0000
        await tb.write_matrix(act, ones)
    for command in prog.setup:                  # the tiles of ones kept in the PEs
        await run(command)

    weights = case.weights
    failures = []
    for step, (x, labels) in enumerate(zip(case.inputs, case.labels)):
        await tb.write_matrix(prog.acts[0], augment(x))
        await tb.write_matrix(prog.labels, labels[None, :].astype(np.uint64))
        before = await tb.counters()
        first = len(report["commands"])
        for command in prog.step:
            await run(command)
        after = await tb.counters()
        report.setdefault("steps", []).append({
            "cycles": sum(c["cycles"] for c in report["commands"][first:]),
            "counters": {name: after[name] - before[name] for name in after}})
        grad = (await tb.read_matrix(prog.grads[-1]))[:-1]
        weights, probs, expected_grad = golden_step(num, weights, x, labels, case.lr,
                                                    with_gradient=True, momentum=momentum,
                                                    velocities=velocities, update=update)
        p = nx.to_float(probs, FP32)[labels, np.arange(batch)]
        report["losses"].append(float(-np.mean(np.log(np.maximum(p, 1e-30)))))
        problem = _mismatch(f"step {step}: loss gradient", grad, expected_grad)
        if problem:
            failures.append(problem)
        dut._log.info("step %d: loss gradient %s", step, "bit-exact" if not problem else "DIFFERS")
    for command in prog.store_weights:
        await run(command)
    for layer, (matrix, expected) in enumerate(zip(prog.weights, weights)):
        problem = _mismatch(f"weights of layer {layer} after {steps} steps",
                            await tb.read_matrix(matrix), expected)
        if problem:
            failures.append(problem)
    for layer, matrix in enumerate(prog.velocities):
        problem = _mismatch(f"velocities of layer {layer} after {steps} steps",
                            await tb.read_matrix(matrix), velocities[layer])
        if problem:
            failures.append(problem)
    report["failures"] = failures
    # Useful MACs of a step (gen.spec.networks): forward and dW of every layer, dX of every
    # layer but the first; the update is not a MAC.
    report["macs_per_step"] = mlp(list(sizes)).macs(batch)
    if os.environ.get("CHRYSALIS_REPORT"):
        with open(os.environ["CHRYSALIS_REPORT"], "w") as f:
            json.dump(report, f, indent=1)
    assert not failures, "\n".join(failures)
