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
    dual : sim.golden.dual.DualPath, optional
        The multiply path of a k-paired dual-precision PE (``hw.pe.PE`` with
        ``pairing="k"``): a ``MAC`` with ``pair1`` also multiplies the partner words
        (``waddr ^ 2`` with ``w_rows``, else ``waddr ^ 1``; the same for ``aaddr`` and
        ``aaddr2`` with ``a_rows``) and accumulates the pair's sum
        (``sim.golden.dual``, *k-pairing*).
    """

    def __init__(self, operand, weight_words, act_words, acc_regs, dual=None):
        self.operand = operand
        self.dual = dual
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

    def _k_pair(self, uop, c, a0):
        """``c`` plus the sum of a k-pair's products (pair 0's stationary word ``a0``)."""
        w_flip = 2 if uop.get("w_rows") else 1
        a_flip = 2 if uop.get("a_rows") else 1
        if uop.get("a_act"):
            a1 = self.act[uop["aaddr2"] ^ a_flip]
        else:
            a1 = self.weight[uop.get("waddr", 0) ^ w_flip]
        b0, b1 = self.act[uop["aaddr"]], self.act[uop["aaddr"] ^ a_flip]
        q = lambda v: nx.fconvert(np.array([int(v)], dtype=np.uint64), FP32, self.operand)
        p0, p1, _, _ = self.dual.products(q(a0), q(b0), q(a1), q(b1), True,
                                          int(uop.get("rand", 0)))
        s = self.dual.pair_sum(p0, p1)
        return int(nx.fadd(np.array([c], dtype=np.uint64), FP32, s, self.dual.sum, FP32)[0])

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
            if uop.get("pair1") and self.dual is not None:
                result = self._k_pair(uop, int(c), int(a))
            else:
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
