"""Run a fixed-latency unit in Amaranth's simulator over arrays of input vectors."""

import numpy as np
from amaranth.sim import Simulator

__all__ = ["stream"]


def stream(dut, inputs, output="result"):
    """Feed one vector per cycle into ``dut`` and return its outputs as a uint64 array.

    ``inputs`` maps port names to equal-length integer arrays. The unit's ``i_valid`` marks
    the vectors and its ``o_valid`` picks the results out, so the latency is checked too:
    the test fails if the count of results differs from the count of vectors.
    """
    count = len(next(iter(inputs.values())))
    columns = {name: [int(v) for v in values] for name, values in inputs.items()}
    ports = {name: getattr(dut, name) for name in inputs}
    out_port = getattr(dut, output)
    results = []

    async def testbench(ctx):
        for index in range(count + dut.latency + 1):
            if index < count:
                for name, port in ports.items():
                    ctx.set(port, columns[name][index])
            ctx.set(dut.i_valid, index < count)
            if ctx.get(dut.o_valid):
                results.append(ctx.get(out_port))
            if dut.latency:
                await ctx.tick()
            else:
                await ctx.delay(1e-8)   # a purely combinational unit has no clock domain

    sim = Simulator(dut)
    if dut.latency:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(results) == count, f"{len(results)} results for {count} vectors"
    return np.array(results, dtype=np.uint64)
