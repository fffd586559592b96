"""Wrappers that register a unit's inputs (and, if asked, its outputs), so that timing
analysis sees register-to-register paths only: :class:`InputRegisters` keeps the unit's
ports, :class:`SerialPorts` (for a unit with interfaces, or with more port bits than a
package has pins) feeds them from one shift register and captures them into another."""

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, In, Out

__all__ = ["InputRegisters", "SerialPorts"]


class InputRegisters(wiring.Component):
    """``unit`` behind one register stage on every input port.

    Parameters
    ----------
    unit : wiring.Component
        A component with a flat signature (``In`` and ``Out`` ports, arrays of them too).
    outputs : bool
        Register every output port too (for a unit whose outputs are not registered by the
        unit itself).

    Members
    -------
    The same ports as ``unit``.
    """

    def __init__(self, unit, *, outputs=False):
        if not isinstance(unit, wiring.Component):
            raise TypeError(f"unit must be a wiring.Component, not {unit!r}")
        for name, member in unit.signature.members.items():
            if not member.is_port:
                raise ValueError(f"unit must have a flat signature, not one with interface "
                                 f"{name!r}")
        self.unit = unit
        self.outputs = bool(outputs)
        super().__init__(dict(unit.signature.members.items()))

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        for name, member in self.signature.members.items():
            for outer, inner in zip(_leaves(getattr(self, name), member.dimensions),
                                    _leaves(getattr(self.unit, name), member.dimensions)):
                self._connect(m, member, outer, inner)
        return m

    def _connect(self, m, member, outer, inner):
        if member.flow == Flow.In:
            m.d.sync += inner.eq(outer)
        elif self.outputs:
            m.d.sync += outer.eq(inner)
        else:
            m.d.comb += outer.eq(inner)


def _leaves(value, dimensions):
    """The signals of a port member: ``value`` itself, or the elements of an array port."""
    if not dimensions:
        return [value]
    return [leaf for item in value for leaf in _leaves(item, dimensions[1:])]


class SerialPorts(wiring.Component):
    """``unit`` with every input bit fed from a shift register and every output registered
    and captured into another one, behind three ports: any signature (interfaces, arrays,
    layouts) and any number of port bits, every path of the unit register to register.

    Each input port's register shifts in ``sin`` (input ports in the order of
    ``unit.signature.flatten``, least significant bit first); each output port is
    registered, and ``load`` copies the registered outputs into the capture chain, which
    otherwise shifts towards ``sout``.

    Parameters
    ----------
    unit : wiring.Component
        The unit.

    Members
    -------
    sin : In(1)
        Serial input.
    load : In(1)
        Capture the registered outputs (else shift the capture chain by one).
    sout : Out(1)
        The capture chain's last bit.
    """

    sin: In(1)
    load: In(1)
    sout: Out(1)

    def __init__(self, unit):
        if not isinstance(unit, wiring.Component):
            raise TypeError(f"unit must be a wiring.Component, not {unit!r}")
        self.unit = unit
        super().__init__()

    def ports_of(self):
        """``(inputs, outputs)``: the unit's port values, in chain order."""
        inputs, outputs = [], []
        for _path, member, value in self.unit.signature.flatten(self.unit):
            (inputs if member.flow == Flow.In else outputs).append(Value.cast(value))
        return inputs, outputs

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        inputs, outputs = self.ports_of()
        chain = self.sin
        for k, port in enumerate(inputs):
            reg = Signal(len(port), name=f"in{k}")
            m.d.sync += reg.eq(Cat(chain, reg[:-1]))
            m.d.comb += port.eq(reg)
            chain = reg[-1]
        for k, port in enumerate(outputs):
            reg = Signal(len(port), name=f"out{k}")
            capture = Signal(len(port), name=f"capture{k}")
            m.d.sync += [reg.eq(port), capture.eq(Mux(self.load, reg, Cat(chain, capture[:-1])))]
            chain = capture[-1]
        m.d.comb += self.sout.eq(chain)
        return m
