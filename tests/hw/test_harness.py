# amaranth: UnusedElaboratable=no
"""``hw.harness.InputRegisters``: every input (array ports included) reaches the unit one
cycle later, and with ``outputs=True`` every output leaves one cycle after the unit's.
``hw.harness.SerialPorts``: inputs shifted in bit by bit reach the unit, and its outputs
(interfaces included) come out of the capture chain."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from chrysalis.hw.harness import InputRegisters, SerialPorts


class _Unit(wiring.Component):
    """Combinational: ``y = a + b[0] + b[1]``, ``z[i] = s.f ^ b[i]``."""

    def __init__(self):
        super().__init__({
            "a": In(8),
            "b": In(8).array(2),
            "s": In(data.StructLayout({"f": 8, "g": 1})),
            "y": Out(8),
            "z": Out(8).array(2),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.a + self.b[0] + self.b[1])
        for i in range(2):
            m.d.comb += self.z[i].eq(self.s.f ^ self.b[i])
        return m


@pytest.mark.parametrize("outputs", [False, True])
def test_input_registers_delay(outputs):
    top = InputRegisters(_Unit(), outputs=outputs)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        inputs = [(1, 2, 3, 0x0F), (10, 20, 30, 0xF0), (5, 6, 7, 0xAA), (0, 0, 0, 0)]
        for a, b0, b1, f in inputs:
            ctx.set(top.a, a)
            ctx.set(top.b[0], b0)
            ctx.set(top.b[1], b1)
            ctx.set(top.s, {"f": f, "g": 0})
            await ctx.tick()
            seen.append((ctx.get(top.y), ctx.get(top.z[0]), ctx.get(top.z[1])))


    sim.add_testbench(bench)
    sim.run()
    inputs = [(1, 2, 3, 0x0F), (10, 20, 30, 0xF0), (5, 6, 7, 0xAA), (0, 0, 0, 0)]
    expect = [((a + b0 + b1) & 0xFF, f ^ b0, f ^ b1) for a, b0, b1, f in inputs]
    # Sampled after the edge that registered inputs[k]: the unit sees them now (comb out),
    # or one edge later (registered out).
    lag = 1 if outputs else 0
    assert seen[lag:] == expect[:len(expect) - lag]


def test_rejects_interface_members():
    class Bus(wiring.Component):
        def __init__(self):
            inner = wiring.Signature({"x": In(1)})
            super().__init__({"bus": In(inner)})

        def elaborate(self, platform):
            return Module()

    unit = Bus()
    with pytest.raises(ValueError, match="flat signature"):
        InputRegisters(unit)


class _WithInterface(wiring.Component):
    """``q.y = a ^ q.x`` through an interface member."""

    def __init__(self):
        super().__init__({"a": In(4), "q": Out(wiring.Signature({"x": In(4), "y": Out(4)}))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.q.y.eq(self.a ^ self.q.x)
        return m


def test_serial_ports_shift_in_and_capture():
    top = SerialPorts(_WithInterface())
    inputs, outputs = top.ports_of()
    assert [len(v) for v in inputs] == [4, 4] and [len(v) for v in outputs] == [4]
    sim = Simulator(top)
    sim.add_clock(1e-6)
    out = []

    async def bench(ctx):
        # Shift a = 0b0110, x = 0b0011: the last bit shifted in ends at a[0] (the chain
        # runs sin -> in0[0] -> ... -> in0[3] -> in1[0] -> ...), so send x's bits first.
        bits = [(0b0011 >> i) & 1 for i in reversed(range(4))] + \
               [(0b0110 >> i) & 1 for i in reversed(range(4))]
        for bit in bits:
            ctx.set(top.sin, bit)
            await ctx.tick()
        ctx.set(top.sin, 0)
        await ctx.tick()                 # the output register takes a ^ x
        ctx.set(top.load, 1)
        await ctx.tick()                 # the capture chain takes it
        ctx.set(top.load, 0)
        for _ in range(4):
            out.append(ctx.get(top.sout))
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    # sout is the capture chain's last bit (bit 3); each shift moves the next one up.
    assert out == [(0b0101 >> i) & 1 for i in reversed(range(4))]


def test_serial_ports_reject_a_non_component():
    with pytest.raises(TypeError, match="unit must be a wiring.Component"):
        SerialPorts(Module())
