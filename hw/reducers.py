"""The edge reducers of a core: one fp32 adder per row bus (FORWARD) or column bus
(BACKWARD) that sums the partial sums the PEs send along it, then applies ReLU or the ReLU
derivative mask to the finished sums."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from chrysalis.gen.spec.formats import FP32

from .fadd import FloatAdder
from .issue import reducer_layout

__all__ = ["EdgeReducers"]


def _positive(word):
    """An fp32 word is a value above zero (a zero exponent is a zero)."""
    return ~word[31] & (word[23:31] != 0)


class EdgeReducers(wiring.Component):
    """Lane ``l`` reduces row bus ``l`` or column bus ``l`` into running sum ``k`` of its
    group: ``sum = (+0 if first else sum) + bus word``, in the order the words arrive (the
    golden model's chain order). The step control travels beside the adders, so that it
    comes out with the results.

    Parameters
    ----------
    rows, cols : int
        Row buses and column buses.
    group : int
        Running sums per lane (accumulators per group).
    line_bits : int
        Width of a scratchpad line number (in the step control).
    latency : int
        The adders' latency.

    Members
    -------
    step : In(hw.issue.reducer_layout(...))
        The step of the words on the buses in this cycle.
    row_bus : In(32) x rows
    col_bus : In(32) x cols
    done : Out(hw.issue.reducer_layout(...))
        The step whose sums are on ``result``, ``latency`` cycles after ``step``.
    mask_step : Out(hw.issue.reducer_layout(...))
        The same step one cycle earlier: the cycle to read the mask words.
    mask : In(32) x max(rows, cols)
        The activations of BACKWARD's mask, in the cycle of ``done`` (read a cycle before).
    result : Out(32) x max(rows, cols)
        The sums, after ReLU (``done.relu``) or the mask (``done.mask``: ``+0`` where the
        activation is not above zero).
    """

    def __init__(self, *, rows, cols, group, line_bits, latency):
        for name, value in (("rows", rows), ("cols", cols), ("group", group),
                            ("line_bits", line_bits), ("latency", latency)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.rows, self.cols, self.group, self.latency = rows, cols, group, latency
        self.lanes = max(rows, cols)
        self.step_layout = reducer_layout(group, line_bits, self.lanes)
        super().__init__({
            "step": In(self.step_layout),
            "row_bus": In(32).array(rows),
            "col_bus": In(32).array(cols),
            "done": Out(self.step_layout),
            "mask_step": Out(self.step_layout),
            "mask": In(32).array(self.lanes),
            "result": Out(32).array(self.lanes),
        })

    def _delayed(self, m, step, cycles, name):
        for index in range(cycles):
            nxt = Signal(self.step_layout, name=f"{name}{index}")
            m.d.sync += nxt.eq(step)
            step = nxt
        return step

    def elaborate(self, platform):
        m = Module()
        R, C, G = self.rows, self.cols, self.group
        step = self.step
        m.d.comb += [self.done.eq(self._delayed(m, step, self.latency, "step_d")),
                     self.mask_step.eq(self._delayed(m, step, self.latency - 1, "mask_d"))]
        done = self.done
        for l in range(self.lanes):
            adder = FloatAdder(FP32, FP32, FP32, latency=self.latency)
            m.submodules[f"adder{l}"] = adder
            sums = [Signal(32, name=f"sum{l}_{k}") for k in range(G)]
            word = Signal(32, name=f"bus_word{l}")
            if l < R and l < C:
                m.d.comb += word.eq(Mux(step.cols, self.col_bus[l], self.row_bus[l]))
            elif l < R:
                m.d.comb += word.eq(self.row_bus[l])
            else:
                m.d.comb += word.eq(self.col_bus[l])
            running = Signal(32, name=f"running{l}")
            with m.Switch(step.k):
                for k in range(G):
                    with m.Case(k):
                        m.d.comb += running.eq(sums[k])
            m.d.comb += [adder.a.eq(Mux(step.first, 0, running)), adder.b.eq(word),
                         adder.i_valid.eq(step.on & ~step.store_w)]
            with m.If(adder.o_valid & done.on):
                with m.Switch(done.k):
                    for k in range(G):
                        with m.Case(k):
                            m.d.sync += sums[k].eq(adder.result)
            value = adder.result
            m.d.comb += self.result[l].eq(
                Mux(done.relu & ~_positive(value), 0,
                    Mux(done.mask & ~_positive(self.mask[l]), 0, value)))
        return m
