"""The epoch loop of every training driver, over a :class:`Strategy`.

A training run is cut into *chunks* (:class:`Chunk`): the steps of an epoch, or all the
steps of a ``steps`` run. :func:`run_epochs` gives each chunk's minibatches to the
strategy, which runs them on its accelerator (one core or a cluster, the golden machine
model or the RTL), takes the same steps on the float32 reference, and measures both after
the chunk: the training loss and the test accuracy (:class:`EpochStats`). What differs
between single-core, data-parallel, model-parallel and continuous-propagation training is
the strategy: how it builds its program and image, how it runs a chunk, where it reads the
weights.
"""

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from tqdm import tqdm

from chrysalis.sim.golden import numerics as nx

__all__ = ["Chunk", "ChunkOutcome", "EpochStats", "History", "Progress", "Strategy",
           "epoch_chunks", "reporter", "run_epochs"]


@dataclass(frozen=True)
class Chunk:
    """Steps ``start .. stop - 1``, measured together at the end.

    Members
    -------
    start, stop : int
    epoch : int or float
        Epochs completed at its end, as the record shows them.
    """

    start: int
    stop: int
    epoch: float

    @property
    def steps(self):
        return self.stop - self.start


def epoch_chunks(per_epoch, epochs=None, steps=None, fractional=True):
    """The chunks of a run of ``epochs`` epochs (one chunk each) or of ``steps`` steps (one
    chunk in all). ``fractional``: record the epochs as ``stop / per_epoch`` (a float,
    a fraction for a ``steps`` run), else as the whole epochs counted."""
    if steps is not None:
        return [Chunk(0, steps, steps / per_epoch)]
    return [Chunk(e * per_epoch, (e + 1) * per_epoch,
                  (e + 1) * per_epoch / per_epoch if fractional else e + 1)
            for e in range(epochs)]


@dataclass
class ChunkOutcome:
    """What the accelerator's run of a chunk gave: its training ``loss`` and the loss of
    each step (``step_losses``; empty when the strategy measures the chunk as a whole)."""

    loss: float
    step_losses: list = field(default_factory=list)

    @classmethod
    def of_steps(cls, losses):
        """The outcome of steps with these losses: their mean is the chunk's."""
        return cls(float(np.mean(losses)), list(losses))


@dataclass
class EpochStats:
    """The measurements after one epoch (or after the ``steps`` of a steps-run).

    Members
    -------
    epoch : float
        Epochs completed (a fraction with ``steps`` that end inside an epoch).
    steps : int
        Steps completed.
    loss, ref_loss : float
        Mean softmax cross-entropy of the steps since the previous record, on the
        accelerator and on the float32 reference.
    acc, ref_acc : float
        Test accuracy in [0, 1] of the accelerator's weights and of the reference's.
    reuse_strength : int
        The ``REUSE_STRENGTH`` these steps ran with (0: the reuse cache off, or none).
    """

    epoch: float
    steps: int
    loss: float
    ref_loss: float
    acc: float
    ref_acc: float
    reuse_strength: int = 0

    @property
    def gap(self):
        """Accelerator minus reference test accuracy, in points."""
        return 100.0 * (self.acc - self.ref_acc)

    def to_dict(self):
        return {"epoch": self.epoch, "steps": self.steps, "loss": self.loss,
                "ref_loss": self.ref_loss, "acc": self.acc, "ref_acc": self.ref_acc,
                "gap_points": self.gap, "reuse_strength": self.reuse_strength}


@dataclass
class History:
    """What :func:`run_epochs` recorded: an :class:`EpochStats` per chunk, and the loss of
    every step on the accelerator and on the reference."""

    epochs: list = field(default_factory=list)
    step_losses: list = field(default_factory=list)
    ref_step_losses: list = field(default_factory=list)


class Progress:
    """The progress bar of a run (tqdm, on stderr): strategies advance it as they go."""

    def __init__(self, total, unit, description, enabled):
        self._bar = tqdm(total=total, unit=unit, desc=description, disable=not enabled,
                         dynamic_ncols=True)

    def advance(self, count, losses=None):
        """``count`` more units done; ``losses``: the chunk's step losses so far."""
        self._bar.update(count)
        if losses:
            self._bar.set_postfix(loss=f"{np.mean(losses):.4f}", refresh=False)

    def note(self, text):
        """Show what is running now."""
        self._bar.set_postfix_str(text)

    def close(self):
        self._bar.close()


def reporter(log):
    """A function that passes a line to ``log`` (``None``: quiet) above the progress bar."""
    def say(line):
        if log is None:
            return
        # Lines written while the bar is on screen would tear it: write above it.
        with tqdm.external_write_mode():
            log(line)
    return say


class Strategy(Protocol):
    """One way to train on an accelerator: it owns the program, the memory image and the
    machine (golden model or RTL), and has run the prologue once it exists.

    Members
    -------
    description : str
        The progress bar's label.
    unit : str
        What the progress bar counts (``"step"``, ``"tick"``).
    """

    description: str
    unit: str

    def work(self, chunk):
        """Units of the progress bar that ``chunk`` takes."""

    def run(self, chunk, minibatches, strength, progress):
        """Run ``chunk``'s :class:`~chrysalis.sim.train.dataset.Minibatch` es with the
        reuse strength ``strength``, leaving the weights readable; a :class:`ChunkOutcome`."""

    def read_weights(self):
        """The weights after the last chunk: fp32 bit patterns, one array per layer."""


def run_epochs(strategy, chunks, task, reference, *, schedule=None, progress=True,
               say=None, describe=None):
    """Train ``chunks`` with ``strategy`` and ``reference`` on ``task``'s minibatches.

    Parameters
    ----------
    strategy : Strategy
    chunks : list of Chunk
    task : chrysalis.sim.train.dataset.DigitsTask
    reference : chrysalis.sim.train.reference.Float32Reference
    schedule : chrysalis.sim.golden.reuse_schedule.ReuseSchedule, optional
        The reuse strength of each chunk; it observes each chunk's loss (None: 0 always).
    progress : bool
        Show a progress bar.
    say : callable, optional
        Takes the line that ``describe`` makes of each chunk's :class:`EpochStats`.
    describe : callable, optional

    Returns
    -------
    History
    """
    history = History()
    bar = Progress(sum(strategy.work(c) for c in chunks), strategy.unit,
                   strategy.description, progress)
    try:
        for chunk in chunks:
            strength = 0 if schedule is None else schedule.strength
            minibatches = [task.minibatch(step) for step in range(chunk.start, chunk.stop)]
            outcome = strategy.run(chunk, minibatches, strength, bar)
            ref_losses = [reference.step(b.x32, b.labels) for b in minibatches]
            weights = [nx.to_float32(w) for w in strategy.read_weights()]
            stats = EpochStats(epoch=chunk.epoch, steps=chunk.stop, loss=outcome.loss,
                               ref_loss=float(np.mean(ref_losses)),
                               acc=task.test_accuracy(weights),
                               ref_acc=task.test_accuracy(reference.weights),
                               reuse_strength=strength)
            if schedule is not None:
                schedule.observe(stats.loss)
            history.epochs.append(stats)
            history.step_losses += outcome.step_losses
            history.ref_step_losses += ref_losses
            if say is not None and describe is not None:
                say(describe(stats))
    finally:
        bar.close()
    return history
