"""The memory image of the on-board self-test (:class:`chrysalis.hw.board.SelfTest`): one
compiled digits training step and the golden machine's checksums of what it leaves."""

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config
from chrysalis.hw.board import SelfTestImage, checksum
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.compile.data import digits
from chrysalis.sim.compile.job import Job, Run, run_job_golden
from chrysalis.sim.compile.program import TrainingProgram, initial_weights

__all__ = ["selftest_image"]


def selftest_image(config, sizes=(64, 32, 10), batch=8, seed=0, runs=4, lr=0.25):
    """Compile one digits training step for ``config`` and run it on the golden machine.

    Parameters
    ----------
    config : gen.spec.config.Config
    sizes : sequence of int
        MLP layer sizes: 64 inputs (the 8x8 digits) to 10 classes.
    batch : int
        Samples in the minibatch.
    seed : int
        Seed of the initial weights (``sim.compile.program.initial_weights``) and of the split.
    runs : int
        Consecutive runs (resets) the board can check: golden checksums kept.
    lr : float
        Learning rate of the step.

    Returns
    -------
    SelfTestImage

    Raises
    ------
    ValueError
        A bad argument, or a network that does not fit the config (the compiler's message).
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    if not isinstance(runs, int) or isinstance(runs, bool) or not 1 <= runs <= 255:
        raise ValueError(f"runs must be an integer from 1 to 255, not {runs!r}")
    sizes = tuple(sizes)
    if len(sizes) < 2 or sizes[0] != 64 or sizes[-1] != 10:
        raise ValueError(f"sizes must run from 64 inputs to 10 classes for digits, "
                         f"not {sizes!r}")
    # One step per run: nothing to prefetch, and the image keeps its one slot.
    program = TrainingProgram(config, list(sizes), batch, lr, prefetch=False)
    x_train, y_train, _, _ = digits(seed)
    image = program.initial_image(initial_weights(list(sizes), seed))
    program.write_batch(image, 0, nx.from_float32(x_train[:batch].T.astype(np.float32)),
                        y_train[:batch])
    run = program.step_run(1, 0, with_prologue=True)
    dma_last = program.mem_base + program.image_bytes - 1
    job = Job(image, [Run(run.cmd_base, run.cmd_count, dma_base=0, dma_last=dma_last)
                      for _ in range(runs)], mem_base=program.mem_base)
    outputs = run_job_golden(config, job)
    for i, out in enumerate(outputs):
        if out.error != isa.ErrorCode.NONE:
            raise ValueError(f"the golden machine stopped run {i} with {out.error.name} at "
                             f"command {out.index}")
    regions = {name: (r.addr, r.end) for name, r in program.regions.items()}
    return SelfTestImage(config, sizes, batch, seed, image.copy(), run.cmd_base,
                         run.cmd_count, dma_last, tuple(checksum(o.image) for o in outputs),
                         outputs[0].image.copy(), regions)
