"""Transaction-level golden model of a PE: executes micro-ops one at a time (pure NumPy).

The RTL PE (``hw/pe.py``) is pipelined; on a hazard-free program (one that keeps the timing
rules of ``hw.pe.PE``) it ends in the same state and sends the same words as this model,
which applies each micro-op at once. The micro-op is a dict with the fields of
``hw.pe.micro_op_layout`` (enum fields as their names).
"""

import numpy as np

from chrysalis.gen.spec.formats import FP32
from chrysalis.sim.golden import numerics as nx

__all__ = ["PEModel"]


class PEModel:
    """State and semantics of one PE.

    Parameters
    ----------
    operand : FloatFormat
        Operand format of the multiply path.
    weight_words, act_words, acc_regs : int
        Bank depths and accumulator count.
    """

    def __init__(self, operand, weight_words, act_words, acc_regs):
        self.operand = operand
        self.weight = np.zeros(weight_words, dtype=np.uint64)
        self.act = np.zeros(act_words, dtype=np.uint64)
        self.acc = np.zeros(acc_regs, dtype=np.uint64)
        self.sent = []

    def _stored(self, word):
        """The activation bank's word after a write of fp32 ``word``: its operand-format
        value (``hw.pe.PE`` stores that), kept as the fp32 word that holds it exactly."""
        q = nx.fconvert(np.array([word], dtype=np.uint64), FP32, self.operand)
        return int(nx.fconvert(q, self.operand, FP32)[0])

    def _mac(self, c, a, b):
        q = lambda v: nx.fconvert(np.array([v], dtype=np.uint64), FP32, self.operand)
        return int(nx.fmac(np.array([c], dtype=np.uint64), q(a), q(b), self.operand, FP32)[0])

    def step(self, uop, select=True, row_in=0, col_in=0, scalar=0, scalar2=0):
        """Execute one micro-op; ``select`` gates the transfer slot as in the RTL."""
        # Transfer-slot reads see the state before this micro-op's compute result.
        t_op = uop.get("t_op", "NONE")
        if select and t_op == "SEND_ACC":
            self.sent.append(int(self.acc[uop["t_acc"]]))
        elif select and t_op == "SEND_W":
            self.sent.append(int(self.weight[uop["t_addr"]]))
        c_op = uop.get("c_op", "NONE")
        if c_op == "MAC":
            k, w = uop["c_acc"], uop.get("waddr", 0)
            a = self.act[uop["aaddr2"]] if uop.get("a_act") else self.weight[w]
            # The fused update: from the weight (c_init_w), into the weight (c_to_w).
            if uop.get("c_init_w"):
                c = self.weight[w]
            else:
                c = 0 if uop.get("c_clear") else self.acc[k]
            result = self._mac(int(c), int(a), int(self.act[uop["aaddr"]]))
            if uop.get("c_to_w"):
                self.weight[w] = result
            else:
                self.acc[k] = result
        elif c_op == "UPDATE":
            w = uop["waddr"]
            self.weight[w] = self._mac(int(self.weight[w]), int(self.acc[uop["c_acc"]]), scalar)
        elif c_op == "UPDATE_V":
            w, k = uop["waddr"], uop["c_acc"]
            self.weight[w] = self.acc[k] = self._mac(int(self.acc[k]), int(self.weight[w]),
                                                     scalar2)
        if select and t_op == "ACT_FROM_ROW":
            self.act[uop["t_addr"]] = self._stored(row_in)
        elif select and t_op == "ACT_FROM_COL":
            self.act[uop["t_addr"]] = self._stored(col_in)
        elif select and t_op == "W_FROM_ROW":
            self.weight[uop["t_addr"]] = row_in
