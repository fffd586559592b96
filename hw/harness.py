"""A wrapper that registers a unit's inputs (and, if asked, its outputs), so that timing
analysis sees register-to-register paths only."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow

__all__ = ["InputRegisters"]


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
