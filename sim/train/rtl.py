"""Training steps on the accelerator's RTL under Icarus or Verilator: the strategy of the
single-core driver's RTL backends.

One simulation runs a chunk of steps (an epoch, or all of a ``steps`` run) as one job
(:func:`chrysalis.sim.compile.job.training_job`), in one of two harnesses: ``native``
(:mod:`chrysalis.sim.verify.native_job`: the host and the memory in C++ around the Verilated
model, or in Verilog beside the design under Icarus; no Python during the run) or ``cocotb`` (:func:`chrysalis.sim.verify.rtl_job.run_job`,
cocotbext-axi as the host and the memory; Icarus or Verilator, and waveforms). run 0 is the prologue, which loads the
weights the previous chunk left in the image (a simulation starts from reset) and the
chunk's first minibatch, run ``1 + k`` the chunk's step ``k``, whose memory patches are the
minibatch it prefetches (step ``k + 1``'s, in slot ``(k + 1) mod 2``; a program without
prefetch: its own minibatch, in slot 0), and the last run
the checkpoint, whose image the next chunk starts from. The same job also runs on the golden
machine model, and the strategy records whether every run left the same memory image and
the same counters (:func:`chrysalis.sim.compile.job.golden_mismatches`).
"""

import time
from pathlib import Path

import numpy as np

from chrysalis.gen.spec.isa import ErrorCode
from chrysalis.sim.golden import numerics as nx

from .loop import ChunkOutcome
from .reference import softmax_xent

__all__ = ["RtlSteps", "HARNESSES", "OPTIMISED_BUILD_STEPS"]

#: The harnesses a chunk can run in (module docstring).
HARNESSES = ("native", "cocotb")

#: Simulations of more steps than this build Verilator's model optimised.
OPTIMISED_BUILD_STEPS = 50


class RtlSteps:
    """Training steps of a :class:`chrysalis.sim.compile.program.TrainingProgram` on the RTL
    (a :class:`Strategy <chrysalis.sim.train.loop.Strategy>`).

    Parameters
    ----------
    config : chrysalis.gen.spec.config.Config
    program : chrysalis.sim.compile.program.TrainingProgram
    image : numpy.ndarray
        The program's initial image.
    simulator : {"icarus", "verilator"}
    harness : {"native", "cocotb"}
        ``native`` needs Verilator and takes no waveforms.
    quiet : bool
        cocotb harness: the simulator's log lines go to a file, not stdout.
    build_dir : path-like
        The Verilog, the simulator builds and the waveforms go here.
    waves : bool
        Dump waveforms: one file per chunk, under ``build_dir/waves``.
    say : callable
        Takes the lines about waveform files and golden-model mismatches.

    Members
    -------
    accel_s : float
        Wall time of the simulations, builds included.
    sim_s : float
        Wall time inside the simulations, from doorbell to interrupt.
    golden_match : bool
        Every memory image so far equals the golden machine model's.
    waves : list of str
        The waveform file of each chunk.
    counters : dict
        The RTL's counters summed over the simulations.
    chunk_cycles : list of int
        ``CYCLES`` of each chunk's simulation (prologue and checkpoint included).
    """

    unit = "step"

    def __init__(self, config, program, image, simulator, build_dir, waves, say,
                 harness="cocotb", quiet=False):
        if harness not in HARNESSES:
            raise ValueError(f"harness must be one of {', '.join(HARNESSES)}, not {harness!r}")
        if harness == "native" and waves:
            raise ValueError("waves need the cocotb harness, not harness 'native'")
        self.config, self.program, self.image = config, program, image
        self.simulator, self.build_dir = simulator, Path(build_dir)
        self.harness, self.quiet = harness, quiet
        self.dump_waves, self.say = waves, say
        self.description = f"train ({simulator}, {harness})"
        self.chunk_cycles = []
        self.chunk_steps = []
        self.accel_s = self.sim_s = 0.0
        self.golden_match = True
        self.waves = []
        self.counters = {}

    def work(self, chunk):
        return chunk.steps

    def run(self, chunk, minibatches, strength, progress):
        from chrysalis.sim.compile import job as jobs
        progress.note(f"simulating steps {chunk.start}-{chunk.stop - 1}")
        # The image as the previous chunk left it, rebuilt from its weights (and velocities).
        job = jobs.training_job(self.program, None,
                                [(b.x_bits, b.labels) for b in minibatches],
                                image=self.image, reuse_strength=strength)
        outputs = self._simulate(job, chunk)
        # Step k of the job wrote its logits into its slot (training_job's host contract).
        slot = self.program.slot_of_step if self.program.prefetch else (lambda k: 0)
        losses = [softmax_xent(nx.to_float32(self.program.read_logits(
                      out.image.astype(np.uint32), slot(k))), batch.labels)
                  for k, (out, batch) in enumerate(zip(outputs[1:], minibatches))]
        if self.dump_waves:
            self._keep_waves(chunk)
        self._compare_with_golden(job, outputs, chunk)
        self.image = outputs[-1].image.astype(np.uint32)
        for key, value in outputs[-1].counters.items():
            self.counters[key] = self.counters.get(key, 0) + value
        self.chunk_cycles.append(outputs[-1].counters["cycles"])
        self.chunk_steps.append(chunk.steps)
        progress.advance(chunk.steps, losses)
        return ChunkOutcome.of_steps(losses)

    def read_weights(self):
        return self.program.read_weights(self.image)

    def _simulate(self, job, chunk):
        """The job's runs on the RTL; ``RuntimeError`` if one halted with an error code."""
        start = time.perf_counter()
        # Verilator's optimised model build takes about 90 s longer than the -O0 one and
        # then simulates about 4x faster (benchmarks/sim_speed.py): worth it past about
        # 50 steps, in either harness.
        fast_build = chunk.steps <= OPTIMISED_BUILD_STEPS
        if self.harness == "native":
            from chrysalis.sim.verify import native_job
            outputs = native_job.run_job(self.config, job, self.build_dir, log=self.say,
                                         simulator=self.simulator, fast_build=fast_build)
        else:
            from chrysalis.sim.verify import rtl_job
            outputs = rtl_job.run_job(self.config, job, self.simulator, self.build_dir,
                                      waves=self.dump_waves, quiet=self.quiet,
                                      fast_build=fast_build)
        self.accel_s += time.perf_counter() - start
        for k, out in enumerate(outputs):
            if out.error != ErrorCode.NONE:
                raise RuntimeError(f"{_run_name(k, chunk)}: the {self.simulator} accelerator "
                                   f"halted with {out.error.name} at command {out.index}")
            self.sim_s += out.wall_s
        return outputs

    def _compare_with_golden(self, job, outputs, chunk):
        """The same job on the golden machine model: every run must leave the same memory
        image and the same counters (those the golden machine predicts)."""
        from chrysalis.sim.compile.job import golden_mismatches, run_job_golden
        problems = golden_mismatches(outputs, run_job_golden(self.config, job))
        if problems:
            self.golden_match = False
            self.say(f"warning: steps {chunk.start}-{chunk.stop - 1} on {self.simulator} "
                     f"differ from the golden machine model: {problems[0]}"
                     + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))

    def _keep_waves(self, chunk):
        """Move the waveform file of the simulation that just ended out of the build
        directory (the next simulation would overwrite it)."""
        config, simulator = self.config, self.simulator
        names = (f"{config.name}.fst",) if simulator == "icarus" else ("dump.fst", "dump.vcd")
        found = [p for d in self.build_dir.glob(f"{simulator}-{config.name}-*")
                 for name in names if (p := d / name).is_file()]
        if not found:
            return
        newest = max(found, key=lambda p: p.stat().st_mtime)
        target = (self.build_dir / "waves"
                  / f"{simulator}-steps{chunk.start}-{chunk.stop - 1}{newest.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        newest.replace(target)
        path = target.resolve()
        self.waves.append(str(path))
        self.say(f"waveforms of steps {chunk.start}-{chunk.stop - 1}: {path}")


def _run_name(k, chunk):
    """What run ``k`` of a chunk's job is: the prologue, a step, or the checkpoint."""
    if k == 0:
        return "the prologue"
    return f"step {chunk.start + k - 1}" if k <= chunk.steps else "the checkpoint"
