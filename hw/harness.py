"""A wrapper that registers a unit's inputs, so timing analysis sees register-to-register
paths only (a unit's outputs are registered by the unit itself)."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow

__all__ = ["InputRegisters"]


class InputRegisters(wiring.Component):
    """``unit`` behind one register stage on every input port.

    Parameters
    ----------
    unit : wiring.Component
        A component with a flat signature (plain ``In`` and ``Out`` ports).

    Members
    -------
    The same ports as ``unit``.
    """

    def __init__(self, unit):
        if not isinstance(unit, wiring.Component):
            raise TypeError(f"unit must be a wiring.Component, not {unit!r}")
        for name, member in unit.signature.members.items():
            if not member.is_port:
                raise ValueError(f"unit must have a flat signature, not one with interface "
                                 f"{name!r}")
        self.unit = unit
        super().__init__(dict(unit.signature.members.items()))

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(self.unit, name)
            if member.flow == Flow.In:
                m.d.sync += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        return m
