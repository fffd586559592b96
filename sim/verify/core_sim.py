"""Drive a training core (``hw.core.Core``) in Amaranth's simulator.

Scratchpad words go in and out through the host port and commands run to completion; the
cycles of each command are recorded. Used by the tests and the utilization benchmark.
"""

import amaranth.sim
import numpy as np
from amaranth.sim import Simulator

from chrysalis.gen.spec.isa import Opcode
from chrysalis.hw.core import Core
from chrysalis.gen.spec.layout import bank_count

from .shared_sim import shared_simulation

__all__ = ["CoreRunner"]


class CoreRunner:
    """Drives a Core in Amaranth's simulator: queue writes, commands and reads, then
    :meth:`run` them in order; it returns the matrices read, and sets ``cycles`` and
    ``errors`` (per command) and ``counters`` (the core's counters at the end).

    A command queued with ``beside=True`` is presented as soon as the core can take it
    beside the command before, which is then still running: a load with ``side_valid``
    (``side_ready``: beside a ``WGRAD``), a ``WGRAD`` with ``drain_valid``
    (``drain_ready``: beside a ``FORWARD`` or ``BACKWARD`` draining its last group). The
    two together take the cycles recorded for the first, and ``None`` is recorded for the
    second."""

    def __init__(self, config):
        self.config = config
        # One compiled simulation per config in this process (sim.verify.shared_sim): the
        # core's elaboration and compilation take seconds, most runs far less. A test that
        # swaps in its own Simulator (a monitor) gets a design and simulator of its own.
        if Simulator is amaranth.sim.Simulator:
            self._shared = shared_simulation(("core", config.to_toml()), lambda: Core(config))
            self.dut = self._shared.dut
        else:
            self._shared = None
            self.dut = Core(config)
        self.banks = bank_count(config.core.rows, config.core.cols)
        self.actions = []
        #: The ``random`` dual-precision policy's seed (``Core.dual_seed``).
        self.dual_seed = 0
        #: The ``REUSE_STRENGTH`` register (``Core.reuse_strength``; 0: off).
        self.reuse_strength = 0

    def write(self, matrix, values):
        self.actions.append(("write", matrix, np.asarray(values, dtype=np.uint64)))

    def command(self, beside=False, **fields):
        self.actions.append(("cmd", fields, bool(beside)))

    def read(self, matrix):
        self.actions.append(("read", matrix))

    def _const(self, fields):
        full = {name: 0 for name in self.dut.layout.members}
        full.update({"op": 0, **fields})
        return self.dut.layout.const(full)

    def run(self):
        dut = self.dut
        outputs = []
        cycles = []
        counters = {}
        errors = []

        async def testbench(ctx):
            ctx.set(dut.dual_seed, self.dual_seed)
            ctx.set(dut.reuse_strength, self.reuse_strength)
            for index, action in enumerate(self.actions):
                if action[0] == "write":
                    _, matrix, values = action
                    for (e, b), addr in np.ndenumerate(matrix.addresses()):
                        ctx.set(dut.host_addr, int(addr))
                        ctx.set(dut.host_wdata, int(values[e, b]))
                        ctx.set(dut.host_we, 1)
                        await ctx.tick()
                    ctx.set(dut.host_we, 0)
                elif action[0] == "read":
                    matrix = action[1]
                    out = np.zeros((matrix.n, matrix.batch), dtype=np.uint64)
                    for (e, b), addr in np.ndenumerate(matrix.addresses()):
                        ctx.set(dut.host_addr, int(addr))
                        ctx.set(dut.host_re, 1)
                        await ctx.tick()
                        out[e, b] = ctx.get(dut.host_rdata)
                    ctx.set(dut.host_re, 0)
                    outputs.append(out)
                elif action[2]:
                    continue                # taken with the command before it
                else:
                    ctx.set(dut.cmd, self._const(action[1]))
                    ctx.set(dut.cmd_valid, 1)
                    await ctx.tick()
                    ctx.set(dut.cmd_valid, 0)
                    count = 1
                    after = self.actions[index + 1] if index + 1 < len(self.actions) else None
                    if after is not None and after[0] == "cmd" and after[2]:
                        ctx.set(dut.cmd, self._const(after[1]))
                        drain = int(after[1]["op"]) == Opcode.WGRAD
                        ready, valid = ((dut.drain_ready, dut.drain_valid) if drain
                                        else (dut.side_ready, dut.side_valid))
                        while not ctx.get(ready):
                            assert ctx.get(dut.cmd_ready) == 0, "nothing to run beside"
                            await ctx.tick()
                            count += 1
                        ctx.set(valid, 1)
                        await ctx.tick()
                        ctx.set(valid, 0)
                        count += 1
                    while not ctx.get(dut.cmd_ready):
                        await ctx.tick()
                        count += 1
                        assert count < 200_000, "command did not finish"
                    cycles.append(count)
                    errors.append(ctx.get(dut.error))
                    if after is not None and after[0] == "cmd" and after[2]:
                        cycles.append(None)
                        errors.append(ctx.get(dut.error))
            for name in Core.COUNTERS:
                counters[name] = ctx.get(getattr(dut, name))

        if self._shared is not None:
            self._shared.run(testbench)
        else:
            sim = Simulator(dut)
            sim.add_clock(1e-8)
            sim.add_testbench(testbench)
            sim.run()
        self.cycles = cycles
        self.counters = counters
        self.errors = errors
        return outputs
