"""One compiled Amaranth simulation of a design, run again and again.

Building a :class:`amaranth.sim.Simulator` elaborates the design and compiles it to Python:
about 2 s of CPU for the ``tiny`` preset's core or accelerator, more than many of the runs
made on it take. Amaranth's :meth:`~amaranth.sim.Simulator.reset`
puts a simulation back in its initial state (every signal, every memory, every clock and
process restarted), so a design that many runs simulate is compiled once:
:func:`shared_simulation` keeps a :class:`SharedSimulation` per key (a config, a design's
parameters), and each :meth:`SharedSimulation.run` resets it and runs new testbenches.

Testbenches and processes stay registered across a reset, so a :class:`SharedSimulation`
registers fixed *slots* once, in a fixed order, and each run tells them what to do: a slot
that has nothing to run in this run returns at once. What the slots are (how many
testbenches, background testbenches and processes, in which order) is part of the key.

``CHRYSALIS_SHARED_SIM=0`` in the environment turns the sharing off: every call of
:func:`shared_simulation` compiles afresh, as a separate simulator per run would (to rule
the sharing out when a run misbehaves).
"""

import collections
import os

from amaranth.sim import Simulator

__all__ = ["SharedSimulation", "shared_simulation", "clear"]

#: Kinds of slot, as :meth:`SharedSimulation.run` takes them.
KINDS = ("testbench", "background", "process")

#: Designs kept per process; the oldest is dropped beyond this many (each holds its
#: compiled design in memory).
CAPACITY = 16

_cache = collections.OrderedDict()


class SharedSimulation:
    """A simulator of ``dut`` with ``clocks`` and a fixed list of slots, run with new
    testbenches every time.

    Parameters
    ----------
    dut : amaranth.hdl.Elaboratable
        The design (elaborated here, once).
    slots : sequence of str
        The kind of each slot, in the order they are added: ``"testbench"`` (critical),
        ``"background"`` (a background testbench) or ``"process"``.
    clocks : sequence of (float, str)
        ``(period, domain)`` of each clock, added before the slots.

    Members
    -------
    dut : amaranth.hdl.Elaboratable
        The simulated design: the signals a testbench drives and samples.
    slots : tuple of str
        The kind of each slot.
    runs : int
        How many runs this simulation has made.
    broken : bool
        A run raised: :func:`shared_simulation` makes a new simulation instead.
    """

    def __init__(self, dut, slots, clocks=((1e-8, "sync"),)):
        slots = _checked(slots)
        self.dut = dut
        self.slots = slots
        self.runs = 0
        self.broken = False
        self._current = [None] * len(slots)
        self._sim = Simulator(dut)
        for period, domain in clocks:
            self._sim.add_clock(period, domain=domain)
        for index, kind in enumerate(slots):
            slot = self._slot(index)
            if kind == "process":
                self._sim.add_process(slot)
            else:
                self._sim.add_testbench(slot, background=kind == "background")

    def _slot(self, index):
        async def slot(ctx):
            function = self._current[index]
            if function is not None:
                await function(ctx)
        return slot

    def run(self, *functions):
        """Reset the simulation and run it with ``functions`` (async functions of a
        simulator context, one per slot, in the slots' order; ``None`` leaves a slot idle)
        until every critical testbench has returned."""
        if len(functions) != len(self.slots):
            raise ValueError(f"one function per slot ({len(self.slots)}), not "
                             f"{len(functions)}")
        if self.runs:
            self._sim.reset()
        self.runs += 1
        self._current[:] = functions
        try:
            self._sim.run()
        except BaseException:
            # A run cut short leaves coroutines and triggers mid-flight: never reuse it.
            self.broken = True
            raise
        finally:
            self._current[:] = [None] * len(self.slots)


def shared_simulation(key, make_dut, slots=("testbench",), clocks=((1e-8, "sync"),)):
    """The :class:`SharedSimulation` of ``key`` in this process, made with ``make_dut()``
    the first time (or after it was dropped).

    Parameters
    ----------
    key : hashable
        What makes two designs the same (a frozen config, a tuple of parameters). The
        slots and clocks are added to it.
    make_dut : callable
        Returns a new design; called only when no simulation of the key is kept.
    slots, clocks
        As :class:`SharedSimulation`'s.
    """
    full = (key, _checked(slots), tuple(clocks))
    if os.environ.get("CHRYSALIS_SHARED_SIM") == "0":
        return SharedSimulation(make_dut(), slots, clocks)
    found = _cache.pop(full, None)
    if found is None or found.broken:
        found = SharedSimulation(make_dut(), slots, clocks)
    _cache[full] = found
    while len(_cache) > CAPACITY:
        _cache.popitem(last=False)
    return found


def _checked(slots):
    slots = tuple(slots)
    for kind in slots:
        if kind not in KINDS:
            raise ValueError(f"a slot is one of {KINDS}, not {kind!r}")
    return slots


def clear():
    """Drop every kept simulation."""
    _cache.clear()
