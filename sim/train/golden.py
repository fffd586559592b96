"""A doorbell per minibatch on a golden machine model: the strategy of single-core,
data-parallel and model-parallel training on the golden backend.

The program is a :class:`chrysalis.sim.compile.program.TrainingProgram` (a
:class:`~chrysalis.sim.compile.parallel_program.ParallelProgram` on a cluster). The host
runs the prologue once. Without prefetch it then, for every step, writes the minibatch
into slot 0 of the image and rings the doorbell of that slot's step. With prefetch
(``program.prefetch``, the program's host contract) step ``k`` runs slot ``k mod slots``
and loads the next step's minibatch: a chunk starts by writing its first minibatch into its
slot and ringing that slot's :meth:`~chrysalis.sim.compile.program.TrainingProgram.load_run`
(the previous chunk's last step could not know it), and before each step's doorbell the
host writes the next minibatch of the chunk into the next slot. At the end of a chunk it
runs the checkpoint, which brings the weights from the chip into the image, where the host
reads them.
"""

import time

from chrysalis.gen.spec.isa import ErrorCode
from chrysalis.sim.golden import numerics as nx

from .loop import ChunkOutcome
from .reference import softmax_xent

__all__ = ["GoldenSteps", "check_run"]


def check_run(outcome, what, machine):
    """Raise ``RuntimeError`` if the run ``what`` of ``machine`` (its name in the message)
    halted with an error code."""
    if outcome.error != ErrorCode.NONE:
        raise RuntimeError(f"{what}: {machine} halted with {outcome.error.name} at command "
                           f"{outcome.index}")


class GoldenSteps:
    """Training steps of a program on a golden machine model (a :class:`Strategy
    <chrysalis.sim.train.loop.Strategy>`).

    Parameters
    ----------
    program : chrysalis.sim.compile.program.TrainingProgram
    image : numpy.ndarray
        The program's initial image; the strategy owns it from now on.
    machine : chrysalis.sim.golden.machine.Machine or ClusterMachine
    name : str
        The machine in error messages (``"the golden cluster"``).
    description : str
        The progress bar's label.

    Members
    -------
    accel_s : float
        Wall time spent in the machine.
    commands : int
        Commands executed.
    """

    unit = "step"

    def __init__(self, program, image, machine, name, description):
        self.program, self.image, self.machine = program, image, machine
        self.name, self.description = name, description
        self.accel_s, self.commands = 0.0, 0
        # Steps rung since the prologue: with prefetch, the next step's slot.
        self._steps = 0
        self._doorbell(program.prologue, "the prologue")

    @property
    def counters(self):
        """The machine's counters over the whole run."""
        return dict(self.machine.counters)

    def work(self, chunk):
        return chunk.steps

    def run(self, chunk, minibatches, strength, progress):
        program = self.program
        self.machine.reuse_strength = strength
        if program.prefetch and minibatches:
            first = minibatches[0]
            slot = program.slot_of_step(self._steps)
            program.write_batch(self.image, slot, first.x_bits, first.labels)
            self._doorbell(program.load_run(slot), f"the load of step {first.step}")
        losses = []
        for k, batch in enumerate(minibatches):
            slot = program.slot_of_step(self._steps) if program.prefetch else 0
            if not program.prefetch:
                program.write_batch(self.image, slot, batch.x_bits, batch.labels)
            elif k + 1 < len(minibatches):
                following = minibatches[k + 1]
                program.write_batch(self.image, program.slot_of_step(self._steps + 1),
                                    following.x_bits, following.labels)
            self._doorbell(program.step_run(1, slot), f"step {batch.step}")
            self._steps += 1
            logits = nx.to_float32(program.read_logits(self.image, slot))
            losses.append(softmax_xent(logits, batch.labels))
            progress.advance(1, losses)
        self._doorbell(program.checkpoint, "the checkpoint")
        return ChunkOutcome.of_steps(losses)

    def read_weights(self):
        return self.program.read_weights(self.image)

    def _doorbell(self, run, what):
        start = time.perf_counter()
        outcome = self.machine.run(self.image, run.cmd_base, run.cmd_count,
                                   mem_base=self.program.mem_base)
        self.accel_s += time.perf_counter() - start
        check_run(outcome, what, self.name)
        self.commands += run.cmd_count
