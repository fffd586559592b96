"""cocotb testbench: consecutive SGD steps of an MLP on the core, bit-exact with the golden
model after every step.

The case comes from the environment (set by ``tests/sim/test_cocotb_training.py``):
``CHRYSALIS_CONFIG`` (TOML text), ``CHRYSALIS_SIZES`` (``12,8,5``), ``CHRYSALIS_BATCH``,
``CHRYSALIS_STEPS`` and ``CHRYSALIS_SEED``. The weights and inputs are random (seeded), the
compiler (``sim.compiler``) places the network and lists the commands, and after every step
the loss gradient at the output and, at the end, every weight are compared with
``sim.compiler.golden_step``.
"""

import os

import cocotb
import numpy as np

from hw.core import CoreOp
from sim import core_model as cm
from sim.compiler import augment, compile_mlp, golden_step, mlp_case
from sim.tb.core import TB, _mismatch
from sim.tb.core_data import config_from_env


@cocotb.test()
async def training_steps_equal_golden(dut):
    config = config_from_env()
    sizes = [int(s) for s in os.environ["CHRYSALIS_SIZES"].split(",")]
    batch = int(os.environ["CHRYSALIS_BATCH"])
    steps = int(os.environ["CHRYSALIS_STEPS"])
    case = mlp_case(sizes, batch, steps, seed=int(os.environ["CHRYSALIS_SEED"]))
    num = cm.CoreNumerics.from_config(config)
    prog = compile_mlp(config, sizes, batch, case.lr)

    tb = TB(dut, config)
    await tb.reset()

    async def run(command):
        await tb.command(**{**command, "op": CoreOp[command["op"]]})

    for matrix, w in zip(prog.weights, case.weights):
        await tb.write_matrix(matrix, w)
    for command in prog.load_weights:
        await run(command)
    for act in prog.acts[1:-1]:                 # the rows of ones of the hidden layers
        ones = np.zeros((act.n, batch), dtype=np.uint64)
        ones[-1] = 0x3F80_0000
        await tb.write_matrix(act, ones)

    weights = case.weights
    failures = []
    for step, (x, labels) in enumerate(zip(case.inputs, case.labels)):
        await tb.write_matrix(prog.acts[0], augment(x))
        await tb.write_matrix(prog.labels, labels[None, :].astype(np.uint64))
        for command in prog.step:
            await run(command)
        grad = (await tb.read_matrix(prog.grads[-1]))[:-1]
        weights, _, expected_grad = golden_step(num, weights, x, labels, case.lr,
                                                with_gradient=True)
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
    assert not failures, "\n".join(failures)
