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
        The step of the words on the buses in the next cycle (registered here, so that the
        mask words can be read a cycle earlier than the step reaches the buses).
    row_bus : In(32) x rows
    col_bus : In(32) x cols
    done : Out(hw.issue.reducer_layout(...))
        The step whose sums are on ``result``, ``latency`` cycles after its words were on
        the buses.
    mask_step : Out(hw.issue.reducer_layout(...))
        The same step two cycles before ``done``: the cycle to read the mask words.
    mask : In(32) x max(rows, cols)
        The activations of BACKWARD's mask, in the cycle before ``done`` (the scratchpad's
        words of the read in ``mask_step``'s cycle). Whether each is above zero is
        registered, so that the scratchpad's block RAM output does not run on through the
        results into the activation banks (``fill``) in one cycle.
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

    def elaborate(self, platform):
        m = Module()
        R, C, G = self.rows, self.cols, self.group
        # The step, one cycle later each: on the buses at 1, done at latency + 1, and its
        # mask words read at latency - 1.
        steps = [self.step]
        for index in range(self.latency + 1):
            steps.append(Signal(self.step_layout, name=f"step_d{index}"))
            m.d.sync += steps[-1].eq(steps[-2])
        step = steps[1]
        m.d.comb += [self.done.eq(steps[self.latency + 1]),
                     self.mask_step.eq(steps[self.latency - 1])]
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
            keep = Signal(name=f"mask_keeps{l}")
            m.d.sync += keep.eq(_positive(self.mask[l]))
            value = adder.result
            m.d.comb += self.result[l].eq(
                Mux(done.relu & ~_positive(value), 0, Mux(done.mask & ~keep, 0, value)))
        return m
