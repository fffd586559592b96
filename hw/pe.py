"""The processing element: a MAC, two local memory banks, accumulators and bus ports.

Every PE of a core executes the same micro-op each cycle (SIMD), broadcast by the core's
sequencer. A micro-op has two independent slots, so that a PE can accumulate and move data in
the same cycle:

* the **compute** slot feeds the MAC pipeline: ``MAC`` (``acc[k] += q(a) * q(b)``) or
  ``UPDATE`` (``W[addr] += q(acc[k]) * q(scalar)``, the SGD step on a fp32 master weight);
* the **transfer** slot moves one word: a partial sum or a weight onto the PE's output (to the
  row or column bus, as the core selects), or a bus word into one of the banks.

``q`` is the round-to-nearest-even conversion of an fp32 value to the operand format. The
weight bank holds fp32 words (master weights, velocities), converted when used; the
activation bank holds operand-format words, converted once on the way in (every bank
write goes through ``q``), so its reads are multiplicands as they are and the bank is
``operand.width`` bits wide (16 for fp16 and bf16). The multiply path
(:class:`hw.dual.DualMultiplyPath`: one multiplier, or the dual-precision pair of them) takes
the operand-format multiplicands and hands exact products (``product_format(operand)``) to the
accumulating adders; it is also where the reuse cache plugs in.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from chrysalis.gen.spec.formats import FP32, product_format

from . import fp_datapath as fp
from ._unit import check_format, check_latency

__all__ = ["ComputeOp", "TransferOp", "micro_op_layout", "PE"]

#: The banks' attributes: a word read in the cycle it is written is undefined (Yosys's
#: ``no_rw_check``; the simulators keep Amaranth's read-before-write). The PE's timing rules
#: never do that, and without it Yosys puts write-data registers and a bypass multiplexer
#: after every block RAM's output.
_NO_RW_CHECK = {"no_rw_check": 1}


class ComputeOp(enum.Enum, shape=2):
    """Operation of the compute slot."""
    NONE = 0
    #: ``acc[k] = (0 if clear else acc[k]) + q(a) * q(b)``; ``a`` is the weight bank word
    #: at ``waddr`` (or the activation bank's second port at ``aaddr2`` with ``a_act``),
    #: ``b`` is the activation bank word at ``aaddr``. The fused weight update (WGRAD):
    #: with ``c_init_w`` the addend is ``weight[waddr]`` (read through the weight bank's
    #: port, which a MAC with ``a_act`` does not use) instead of ``acc[k]`` or 0; with
    #: ``c_to_w`` the result goes to ``weight[waddr]`` instead of ``acc[k]``. With
    #: ``c_hold`` the stationary operand ``a`` is not read again: its bank's read port keeps
    #: the word of the last read (see :class:`PE`, *Held operands*); with ``c_hold_b`` the
    #: same for ``b``.
    MAC = 1
    #: ``weight[waddr] = weight[waddr] + q(acc[k]) * q(scalar)``.
    UPDATE = 2
    #: Momentum: ``v = acc[k] + q(weight[waddr]) * q(scalar2)``, written to both
    #: ``weight[waddr]`` (the velocity, kept beside the weights) and ``acc[k]`` (for the
    #: ``UPDATE`` that follows).
    UPDATE_V = 3


class TransferOp(enum.Enum, shape=3):
    """Operation of the transfer slot. Bank writes and sends happen only where ``select``."""
    NONE = 0
    #: ``out = acc[t_acc]`` (visible the next cycle).
    SEND_ACC = 1
    #: ``out = weight[t_addr]`` (visible two cycles later: the word is registered as it leaves
    #: the weight bank; uses the bank's read port).
    SEND_W = 2
    #: ``act[t_addr] = row_in``.
    ACT_FROM_ROW = 3
    #: ``act[t_addr] = col_in``.
    ACT_FROM_COL = 4
    #: ``weight[t_addr] = row_in``.
    W_FROM_ROW = 5
    #: Neighbour-link reduction (PEs built with ``tree=True``): ``out = acc[t_acc]`` as for
    #: ``SEND_ACC``, and where ``select``, ``acc[t_acc] = acc[t_acc] + nbr_in`` with the
    #: neighbour's word, which arrives the next cycle.
    REDUCE_ACC = 6


def micro_op_layout(weight_addr_bits, act_addr_bits, acc_bits, dual=False, reuse=False,
                    shared=False, kpair=False):
    """The micro-op of a PE with banks and accumulators of the given address widths.

    A dual-precision PE (``dual``) has the fields of a second operand pair: ``pair1`` (it
    exists), its addresses ``waddr1``, ``aaddr1`` and ``aaddr2_1`` (read as ``waddr``,
    ``aaddr`` and ``aaddr2`` are for pair 0) and ``rand``, the ``random`` policy's bit.
    Pair 1 accumulates into ``acc[c_acc + 1]`` (``c_acc`` is even). A k-paired PE
    (``kpair``, ``docs/dual_precision.md``) has ``pair1`` and ``rand`` and, instead of pair 1's
    addresses, the direction of the pair in the 2x2 blocks of its banks: ``w_rows`` (pair 1's
    weight is at ``waddr ^ 2``, else ``waddr ^ 1``) and ``a_rows`` (the same for both
    activation-bank operands, at ``aaddr`` and ``aaddr2``).

    Every PE has ``c_hold`` and ``c_hold_b``: the ``MAC``'s stationary operand ``a`` (its
    streaming operand ``b``) is the word its bank's read port already holds (:class:`PE`,
    *Held operands*).

    A PE with a reuse cache (``reuse``) has ``c_fresh``: the ``MAC`` is the first of a
    command (the cache starts empty with each command, ``docs/reuse.md``); with tags shared
    along a line of PEs (``shared``) also ``c_rows``: the lines are rows (BACKWARD).
    """
    t_addr_bits = max(weight_addr_bits, act_addr_bits)
    fields = {
        "c_op": ComputeOp,
        "c_acc": acc_bits,
        "c_clear": 1,
        "c_init_w": 1,
        "c_to_w": 1,
        "c_hold": 1,
        "c_hold_b": 1,
        "a_act": 1,
        "waddr": weight_addr_bits,
        "aaddr": act_addr_bits,
        "aaddr2": act_addr_bits,
        "t_op": TransferOp,
        "t_acc": acc_bits,
        "t_addr": t_addr_bits,
    }
    if kpair:
        fields.update({"pair1": 1, "rand": 1, "w_rows": 1, "a_rows": 1})
    elif dual:
        fields.update({"pair1": 1, "rand": 1, "waddr1": weight_addr_bits,
                       "aaddr1": act_addr_bits, "aaddr2_1": act_addr_bits})
    if reuse:
        fields["c_fresh"] = 1
    if shared:
        fields["c_rows"] = 1
    return data.StructLayout(fields)


class PE(wiring.Component):
    """A processing element (see the module docstring for the micro-op).

    Timing: a micro-op presented in cycle ``t`` reads the banks (synchronous reads) and the
    accumulators in cycle ``t + 1``, where its multiplicands enter the MAC; the MAC result
    is written in cycle ``t + 1 + mac_latency`` (to ``acc[k]``, or to the weight bank for an
    ``UPDATE``). A transfer slot's weight-bank write happens in cycle ``t``, its
    activation-bank write (and a ``fill``'s) in cycle ``t + 1``, the bus word registered on
    the way in (``t + 2`` where the conversion's rounding is registered too,
    :attr:`quantize_stage` 3); a ``SEND_ACC`` (``REDUCE_ACC``) shows on ``out`` in cycle
    ``t + 1``, a ``SEND_W`` in cycle ``t + 2`` (the block RAM's word registered before the ``out``
    multiplexer, so that its output is not on a path that crosses the array to the
    scratchpad). The sequencer keeps the rules that make this hazard-free:

    * an accumulator written by the micro-op of cycle ``t`` is read by a ``MAC`` or an
      ``UPDATE`` no earlier than cycle ``t + mac_latency + 1``, and by a ``SEND_ACC`` no
      earlier than ``t + mac_latency + 2`` (a send reads in its own cycle, the compute slot
      one cycle later);
    * a weight written back by an ``UPDATE`` (or a ``MAC`` with ``c_to_w``) of cycle ``t``
      is read no earlier than ``t + mac_latency + 2``;
    * an activation word written by the transfer slot (or ``fill``) of cycle ``t`` is read
      no earlier than ``t + 2`` (``t + 3`` with :attr:`quantize_stage` 3; a command settles
      ``mac_latency + 4`` cycles, and no command reads the activation words it writes);
    * a ``SEND_W`` does not share a cycle with a compute slot that reads the weight bank, nor
      is it followed in the next cycle by a ``SEND_ACC`` or ``REDUCE_ACC`` (both words would
      show in the same cycle), and a ``W_FROM_ROW`` does not share a cycle with an
      ``UPDATE`` (or ``c_to_w``) write-back;
    * no bank word is read in the cycle it is written (the rules above see to it). The
      simulators return the old word, a block RAM an undefined one: the banks are declared
      so (Yosys's ``no_rw_check``), which spares the block RAMs' outputs a bypass.

    **Held operands** (``c_hold``, ``c_hold_b``): the read port of a ``MAC``'s stationary
    operand ``a`` (the weight bank's, or with ``a_act`` the activation bank's second port)
    and that of its streaming operand ``b`` (the activation bank's first) read only when a
    micro-op needs their word; in a ``MAC`` with ``c_hold`` (``c_hold_b``), and in a cycle
    whose micro-op uses nothing of that port, the port's enable is off and its data
    register keeps the word of its last read. So a held operand is right when that last
    read was of the same address and the word has not been written since (no read happens
    in the cycle of a write to its word, by the timing rules above). The weight bank's port
    still reads for a ``SEND_W``, an ``UPDATE``, an ``UPDATE_V`` and a ``MAC`` with
    ``c_init_w`` (its addend is the weight at ``waddr``). ``stationary_read`` and
    ``streaming_read`` show the reads
    (``sim.golden.core_counts.stationary_reads`` and ``streaming_reads`` count them per
    command). Pair 1 of a dual-precision ``MAC`` always reads.

    **Reuse cache** (``reuse_entries`` > 0, ``docs/reuse.md``): the multiplicands of a
    ``MAC`` look up their streaming operand (``b``, the activation bank's word at ``aaddr``)
    in the cycle they enter the multiply path (:class:`hw.reuse.ReuseTags`); the stationary
    operand ``a`` is identified by its bank address (``waddr``, or ``aaddr2`` with
    ``a_act``). A hit takes the remembered product when the others leave the multiply path
    (:class:`hw.reuse.ReuseValues`); the timing does not change.

    **Dual precision** (``dual`` other than ``"single"``, ``docs/dual_precision.md``): a
    ``MAC`` takes two operand pairs, pair 1 read from ``waddr1``/``aaddr1``/``aaddr2_1``
    through a second read port of each bank and accumulated into ``acc[c_acc + 1]`` by a
    second accumulating adder, in the same cycle and with the same latency as pair 0. The
    multiply path is :class:`hw.dual.DualMultiplyPath` (for ``"single"`` too, where it is one
    multiplier). ``UPDATE`` and ``UPDATE_V`` use pair 0 alone, which then always gets the
    high-precision multiplier. ``c_init_w`` and ``c_to_w`` apply to pair 0 alone (the
    weight bank has one write port), so the core does not fuse the update on such a PE.

    **k-paired dual precision** (``pairing="k"``, ``docs/dual_precision.md``): pair 0 and
    pair 1 of a ``MAC`` are two k-steps of one output, accumulated into ``acc[c_acc]`` as one
    sum (:class:`hw.dual.KPairMultiplyAdd`, then one accumulating adder). Each bank word holds
    a 2x2 block of four words (logical address ``4 * block + lane``); pair 0 takes the lane
    of its address and pair 1 the lane of ``address ^ 2`` (``w_rows``, ``a_rows``) or
    ``address ^ 1``. The block's two diagonals are two half banks, so the two words of a
    pair are one read in each half: each operand still has one read port, and the banks
    take the BRAM of one-word banks. A write fills one lane. The accumulators are those of
    ``single``: one output per slot. Pair 1 of a ``MAC`` with ``c_hold`` or ``c_hold_b``
    takes the partner word read with the held one.

    Parameters
    ----------
    operand, accumulator : FloatFormat
        Multiplicand format and accumulator format (fp32). The weight bank holds fp32
        words, the activation bank operand-format words (``q`` of what is written).
    weight_words, act_words : int
        Depth of the weight bank (fp32 master weights) and of the activation bank
        (activations and gradients in the operand format; it has two read ports, so that
        the weight gradient can read an activation and a gradient in one cycle; four with
        dual precision).
    acc_regs : int
        Number of fp32 accumulator registers.
    mac_latency : int
        Register stages of the MAC (multiply path plus accumulating adder).
    tree : bool
        Add the neighbour-link reduction adder (``REDUCE_ACC``).
    dual : str
        Precision policy, one of ``gen.spec.config.DUAL_POLICIES``.
    low_man_bits : int
        Mantissa bits of the low-precision multiplier (the policies that round).
    reuse_entries : int
        Entries of the reuse cache (0: none; else a power of two).
    reuse_ways : int
        Its associativity (a power of two, at most ``reuse_entries``).
    reuse_scope : str
        ``"pe"``: the PE has the whole cache. ``"row"``: the PE keeps the products
        (:class:`hw.reuse.ReuseValues`) and the tags live in a unit shared by a line of PEs
        (``hw.core``), reached through ``reuse_lookup`` and ``reuse_result``.
    fill : bool
        Give the activation bank's write port a second way in (``fill``, ``fill_addr``),
        for results that the core loads while the transfer slot sends partial sums.
    pairing : str
        What the two pairs of a dual-precision ``MAC`` are: ``"outputs"`` (outputs ``c_acc``
        and ``c_acc + 1`` at one step) or ``"k"`` (two k-steps of the output ``c_acc``; banks
        of 2x2 blocks, ``weight_words`` and ``act_words`` multiples of 4, no reuse cache).

    Members
    -------
    uop : In(micro_op_layout(...))
        The micro-op of this cycle (the same for every PE of a core).
    select : In(1)
        This PE takes part in the transfer slot (bank writes and sends); the compute slot
        always runs.
    row_in, col_in : In(32)
        The words on this PE's row bus and column bus.
    scalar : In(32)
        The fp32 scalar of ``UPDATE`` (``-lr``).
    scalar2 : In(32)
        The fp32 scalar of ``UPDATE_V`` (the momentum ``mu``).
    nbr_in : In(32)
        The neighbour's word of a ``REDUCE_ACC``.
    out : Out(32)
        The word this PE sends, one cycle after ``SEND_ACC`` (``REDUCE_ACC``), two after
        ``SEND_W``.
    made : Out(2)
        Bit ``i``: pair ``i`` of a ``MAC`` left the multiply path in this cycle (what the
        product counters count).
    stationary_read, streaming_read : Out(1)
        The ``MAC`` of this cycle reads its (pair 0's) stationary operand ``a`` (streaming
        operand ``b``) from its bank: it has no ``c_hold`` (``c_hold_b``).
    class0, class1 : Out(2)
        Their classes (``hw.dual.HIGH``, ``LOW``, ``BYPASS``, ``HIT``).
    reuse_strength : In(5)
        The ``REUSE_STRENGTH`` register (with a reuse cache; 0: off).
    reuse_look, reuse_hit, reuse_avoided : Out(2)
        With a reuse cache, bit ``i``: pair ``i`` looked up its key in this cycle, hit, and
        hit with no zero operand (a multiply avoided).
    reuse_lookup : Out(hw.reuse.lookup_signature(...))
        With ``reuse_scope = "row"``: the slot entering the multiply path, for the line's
        tag unit.
    reuse_result : In(hw.reuse.result_signature(...))
        With ``reuse_scope = "row"``: the tag unit's answer, in the same cycle.
    fill : In(2)
        With ``fill``: bit 0 writes ``row_in``, bit 1 ``col_in``, to ``act[fill_addr]`` in
        this cycle (the core never asks for it in a cycle whose transfer slot writes the
        activation bank).
    fill_addr : In(act address bits)
        With ``fill``: the address of that write.
    """

    def __init__(self, operand, accumulator=FP32, *, weight_words=1024, act_words=1024,
                 acc_regs=16, mac_latency=3, tree=False, dual="single", low_man_bits=3,
                 reuse_entries=0, reuse_ways=1, reuse_scope="pe", fill=False,
                 pairing="outputs"):
        from chrysalis.gen.spec.config import DUAL_POLICIES
        self.operand = check_format("Operand format", operand)
        self.accumulator = check_format("Accumulator format", accumulator)
        if accumulator != FP32:
            raise ValueError(f"Accumulator format must be fp32, not {accumulator!r}")
        for name, value in (("weight_words", weight_words), ("act_words", act_words),
                            ("acc_regs", acc_regs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(dual, str) or dual not in DUAL_POLICIES:
            raise ValueError(f"dual must be one of {', '.join(DUAL_POLICIES)}, not {dual!r}")
        if dual != "single" and acc_regs % 2:
            raise ValueError(f"acc_regs must be even for a dual policy, not {acc_regs!r}")
        self.weight_words = weight_words
        self.act_words = act_words
        self.acc_regs = acc_regs
        self.mac_latency = check_latency(mac_latency)
        self.tree = bool(tree)
        self.dual = dual
        self.low_man_bits = low_man_bits
        if mac_latency < 2:
            raise ValueError(f"mac_latency must be at least 2, not {mac_latency!r}")
        for name, value in (("reuse_entries", reuse_entries), ("reuse_ways", reuse_ways)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0 \
                    or value & (value - 1):
                raise ValueError(f"{name} must be 0 or a power of two, not {value!r}")
        if reuse_entries and not 1 <= reuse_ways <= reuse_entries:
            raise ValueError(f"reuse_ways must be from 1 to reuse_entries ({reuse_entries}), "
                             f"not {reuse_ways!r}")
        if reuse_scope not in ("pe", "row"):
            raise ValueError(f"reuse_scope must be 'pe' or 'row', not {reuse_scope!r}")
        self.reuse_entries, self.reuse_ways = reuse_entries, reuse_ways
        self._check_pairing(pairing, dual, weight_words, act_words, reuse_entries)
        self.kpair = pairing == "k"
        self.has_fill = bool(fill)
        self.reuse_shared = reuse_scope == "row" and reuse_entries > 0
        self.layout = micro_op_layout(max(1, ceil_log2(weight_words)),
                                      max(1, ceil_log2(act_words)),
                                      max(1, ceil_log2(acc_regs)),
                                      dual=self.is_dual, reuse=self.has_reuse,
                                      shared=self.reuse_shared, kpair=self.kpair)
        shared = {}
        if self.has_fill:
            shared = {"fill": In(2), "fill_addr": In(self.layout["aaddr"].width)}
        if self.reuse_shared:
            from .reuse import lookup_signature, result_signature
            shared.update({
                "reuse_lookup": Out(lookup_signature(operand, self.stationary_bits)),
                "reuse_result": In(result_signature(reuse_entries))})
        super().__init__({
            "uop": In(self.layout),
            "select": In(1),
            "row_in": In(32),
            "col_in": In(32),
            "scalar": In(32),
            "scalar2": In(32),
            "nbr_in": In(32),
            "out": Out(32),
            "made": Out(2),
            "stationary_read": Out(1),
            "streaming_read": Out(1),
            "class0": Out(2),
            "class1": Out(2),
            "reuse_strength": In(5),
            "reuse_look": Out(2),
            "reuse_hit": Out(2),
            "reuse_avoided": Out(2),
            **shared,
        })

    @staticmethod
    def _check_pairing(pairing, dual, weight_words, act_words, reuse_entries):
        if pairing not in ("outputs", "k"):
            raise ValueError(f"pairing must be 'outputs' or 'k', not {pairing!r}")
        if pairing != "k":
            return
        if dual == "single":
            raise ValueError(f"pairing 'k' needs a dual policy, not {dual!r}")
        for name, value in (("weight_words", weight_words), ("act_words", act_words)):
            if value % 4:
                raise ValueError(f"{name} must be a multiple of 4 with pairing 'k' (banks of "
                                 f"2x2 blocks), not {value!r}")
        if reuse_entries:
            raise ValueError(f"pairing 'k' has no reuse cache: reuse_entries must be 0, not "
                             f"{reuse_entries!r}")

    @property
    def stationary_bits(self):
        """Width of a stationary operand's bank address (weight or activation bank)."""
        return max(self.layout["waddr"].width, self.layout["aaddr2"].width)

    @property
    def has_reuse(self):
        """The PE has a reuse cache."""
        return self.reuse_entries > 0

    @property
    def is_dual(self):
        """Two operand pairs per ``MAC``."""
        return self.dual != "single"

    @property
    def multiply_latency(self):
        """Register stages of the multiply path; the accumulating adder gets the rest of
        ``mac_latency``. A policy that rounds one pair to the low format gives the steering
        and the rounding a stage of their own when the MAC has the stages to spare
        (``hw.dual``); otherwise one stage. A k-paired PE gives the multiply path one stage."""
        if self.kpair:
            # The stages go to the pair adder and the accumulating adder, each of which
            # sets the clock in one stage (benchmarks/results/dual_pe_area.md).
            return 1
        if self.dual in ("value", "static", "random") and self.mac_latency >= 3:
            return 2
        if self.mac_latency >= 12:
            # The product registered as it leaves the multiplier block, normalized after.
            return 2
        return 1

    @property
    def pair_latency(self):
        """Register stages of a k-pair's adder, between the multiply path and the
        accumulating adder: 2 when ``mac_latency`` is 5 or more (then the quantize stage,
        one multiply stage and two stages of the accumulating adder remain), else 1; 0
        without k-pairing."""
        if not self.kpair:
            return 0
        return 2 if self.mac_latency >= 5 else 1

    @property
    def act_write_latency(self):
        """Cycles from a transfer slot (or ``fill``) to its activation-bank write: 1 (the bus
        word registered), 2 where the conversion's rounding is registered as well
        (:attr:`quantize_stage` 3)."""
        return 2 if self.quantize_stage == 3 else 1

    @property
    def quantize_stage(self):
        """Register stages of the multiplicands (the bank words converted to the operand
        format) before the multiply path: 3 when ``mac_latency`` leaves the accumulating
        adder at least six stages (:class:`hw.fadd.FloatAdder`) after them and the
        multiply path (the conversion's rounding increment registered before its carry's
        choice); 2 when it leaves the adder at least three (the bank words are registered
        before the conversion too: a block-RAM read and the conversion in one cycle set a
        PE's clock, ``benchmarks/results/unit_fmax.md``), 1 when it leaves it at least one,
        else 0. The stages come out of the adder's, so ``mac_latency`` and every cycle
        count stay as they are."""
        spare = self.mac_latency - self.multiply_latency - self.pair_latency
        if spare >= 9 and not self.kpair:
            return 3
        if spare >= 5 and not self.kpair:
            return 2
        return 1 if spare >= 2 else 0

    def elaborate(self, platform):
        from .dual import DualMultiplyPath
        from .fadd import FloatAdder
        m = Module()
        op = self.operand
        pf = product_format(op)
        uop = self.uop
        dual = self.is_dual
        ML = self.multiply_latency

        if self.kpair:
            w_rd, w_wr, a_rd, a_rd2, a_wr = self._block_banks(m)
        else:
            # The PE never reads a bank word in the cycle it is written (the timing rules
            # above), so a collision's word is left undefined (Yosys's `no_rw_check`): a
            # block RAM then needs no bypass logic after its output.
            m.submodules.weight_bank = wbank = Memory(shape=32, depth=self.weight_words,
                                                      init=[], attrs=_NO_RW_CHECK)
            # The activation bank holds the operand-format words the multiplier takes: q()
            # on the way in, none on the way out (ReLU masks come from the scratchpad, and
            # the reuse cache keys on the multiplicand, so nothing needs the fp32 word again).
            m.submodules.act_bank = abank = Memory(shape=op.width, depth=self.act_words,
                                                   init=[], attrs=_NO_RW_CHECK)
            w_rd = wbank.read_port()
            w_wr = wbank.write_port()
            a_rd = abank.read_port()
            a_rd2 = abank.read_port()
            a_wr = abank.write_port()
        if dual and not self.kpair:
            # Pair 1's operands: one more read port per operand.
            w_rd_1 = wbank.read_port()
            a_rd_1 = abank.read_port()
            a_rd2_1 = abank.read_port()
        acc = [Signal(32, name=f"acc{k}") for k in range(self.acc_regs)]
        acc_array = data.ArrayLayout(32, self.acc_regs)
        acc_view = Signal(acc_array)
        m.d.comb += acc_view.as_value().eq(Cat(*acc))

        # --- cycle t: bank reads, transfer slot --------------------------------------------
        send_w = (uop.t_op == TransferOp.SEND_W)
        m.d.comb += [
            w_rd.addr.eq(Mux(send_w, uop.t_addr, uop.waddr)),
            a_rd.addr.eq(uop.aaddr),
            a_rd2.addr.eq(uop.aaddr2),
        ]
        if dual and not self.kpair:
            m.d.comb += [w_rd_1.addr.eq(uop.waddr1), a_rd_1.addr.eq(uop.aaddr1),
                         a_rd2_1.addr.eq(uop.aaddr2_1)]
        self._read_enables(m, uop, send_w, w_rd, a_rd, a_rd2)
        take = self.select
        # The activation bank's write lands a cycle after its transfer slot: the bus word is
        # registered as it arrives and converted after the register, so that a word crossing
        # the array from the scratchpad and the conversion are two paths, not one.
        act_in = Signal(32, name="act_in")       # the fp32 bus word of this cycle's write
        act_addr = Signal.like(a_wr.addr, name="act_addr")
        act_en = Signal(name="act_en")
        with m.Switch(uop.t_op):
            with m.Case(TransferOp.ACT_FROM_ROW):
                m.d.comb += [act_addr.eq(uop.t_addr), act_in.eq(self.row_in), act_en.eq(take)]
            with m.Case(TransferOp.ACT_FROM_COL):
                m.d.comb += [act_addr.eq(uop.t_addr), act_in.eq(self.col_in), act_en.eq(take)]
        if self.has_fill:
            # A result the core loads beside the transfer slot (which then sends).
            with m.If(self.fill.any()):
                m.d.comb += [act_addr.eq(self.fill_addr),
                             act_in.eq(Mux(self.fill[1], self.col_in, self.row_in)),
                             act_en.eq(1)]
        act_word = Signal(32, name="act_word")
        m.d.sync += act_word.eq(act_in)
        # The same conversion the fp32 multiplicands get below: a MAC multiplies q of the
        # bus word, whichever bank its operand comes from. Where the multiplicands'
        # conversion has its rounding registered (QS = 3, below), so does this one, and the
        # write lands a cycle later still (the bus word and the rounding would otherwise
        # set the clock of a deep PE, benchmarks/results/unit_fmax.md).
        act_rounding = self.act_write_latency - 1
        rounding = fp.Pipeline(m, ("rounded",), act_rounding)
        m.d.comb += a_wr.data.eq(fp.convert(m, act_word, FP32, op, "qact", rounding))
        for index in range(1 + act_rounding):
            addr, en = Signal.like(act_addr, name=f"act_addr_d{index}"), Signal(
                name=f"act_en_d{index}")
            m.d.sync += [addr.eq(act_addr), en.eq(act_en)]
            act_addr, act_en = addr, en
        m.d.comb += [a_wr.addr.eq(act_addr), a_wr.en.eq(act_en)]
        # A send's word: an accumulator captured now, or the weight read issued now, which
        # is registered as it leaves the bank (`w_sent`, a cycle later): the bank's output
        # goes into a register next to it, not through `out` across the array.
        sent_acc = Signal(32)
        sending_w = Signal()
        w_sent = Signal(32, name="w_sent", reset_less=True)   # raw_w's twin (see `raw`)
        w_showing = Signal(name="w_showing")
        m.d.sync += [sent_acc.eq(acc_view[uop.t_acc]), sending_w.eq(send_w),
                     w_sent.eq(w_rd.data), w_showing.eq(sending_w)]
        # A reduction adds the neighbour's word (here the cycle after) to the captured one.
        reducing = Signal()
        reduce_acc = Signal.like(uop.t_acc)
        m.d.sync += [reducing.eq((uop.t_op == TransferOp.REDUCE_ACC) & take),
                     reduce_acc.eq(uop.t_acc)]
        m.d.comb += self.out.eq(Mux(w_showing, w_sent, sent_acc))

        # --- cycle t+1: operands into the MAC ----------------------------------------------
        s1 = Signal(self.layout)
        m.d.sync += s1.eq(uop)
        is_mac = s1.c_op == ComputeOp.MAC
        is_update = s1.c_op == ComputeOp.UPDATE
        is_velocity = s1.c_op == ComputeOp.UPDATE_V
        acc_k = acc_view[s1.c_acc]

        def delayed(value, stages, name, reset_less=False):
            for index in range(stages):
                nxt = Signal(len(value), name=f"{name}_d{index}", reset_less=reset_less)
                m.d.sync += nxt.eq(value)
                value = nxt
            return value

        # The multiplicands get a register of their own (QS = 1) when the MAC has the
        # stages: a bank read, the conversion and a multiplier in one cycle would set the
        # clock (benchmarks/results/dual_pe_area.md). With QS = 2 the bank words are
        # registered before the conversion as well (`raw`: the conversion's inputs, one
        # cycle late), so the block RAM's output and the conversion are in cycles of their
        # own.
        QS = self.quantize_stage
        # With QS = 3 the conversion's rounding has a register inside (`converting`). The
        # words that skip the conversion wait beside it (`beside`) as long as the converted
        # ones take to reach the stages after it (QC).
        RAW, INNER = int(QS >= 2), int(QS == 3)
        QC = QS - RAW - INNER                     # stages after the conversion
        converting = fp.Pipeline(m, ("rounded",), INNER)

        # A bank word's first register has no reset and no logic before it: on ECP5 it
        # becomes the block RAM's own output register (gen.flows.hard_registers), and the
        # block RAM's clock-to-output is then no longer on a path of its own.
        def raw(value, name, word=False):
            return delayed(value, RAW, f"raw_{name}", reset_less=word)

        def beside(value, name, word=False):
            return delayed(value, RAW + INNER, f"beside_{name}", reset_less=word)

        # The fp32 multiplicands are converted here; activation-bank words already are.
        # The bank's word is registered with no logic before it (the mux comes after).
        w_word, acc_word = raw(w_rd.data, "w", word=True), raw(acc_k, "acc")
        a32 = Mux(raw(is_update, "is_update"), acc_word, w_word)
        b32 = raw(Mux(is_update, self.scalar, self.scalar2), "b32")
        # The fused update's first MAC starts from the weight, as an UPDATE does. The
        # addend takes the same registered words (`raw`), so that no bank output has a
        # multiplexer before its first register.
        from_w = is_update | (is_mac & s1.c_init_w)
        c32 = Mux(raw(from_w, "from_w"), w_word,
                  Mux(raw(s1.c_clear & ~is_velocity, "clear"), 0, acc_word))
        c32_wait = QS + ML - RAW                  # the addend's stages after c32
        take_act = beside(~is_update & s1.a_act, "take_act")
        convert_b = beside(is_update | is_velocity, "convert_b")
        qa = Mux(take_act, beside(a_rd2.data, "a_act", word=True),
                 fp.convert(m, a32, FP32, op, "qa", converting))
        qb = Mux(convert_b, fp.convert(m, b32, FP32, op, "qb", converting),
                 beside(a_rd.data, "b", word=True))
        AL = self.mac_latency - QS - ML          # the accumulating adder's stages

        # The MAC is the multiply path and the accumulating adder, which rounds the exact
        # product and the addend once: the same result as the fused FloatMAC, bit for bit.
        if self.kpair:
            return self._kpair_mac(m, s1, is_mac, is_update, is_velocity, qa, qb, c32,
                                   delayed, (w_rd, w_wr, a_rd, a_rd2, a_wr), acc, sent_acc,
                                   reducing, reduce_acc, take)
        m.submodules.multiply = mul = DualMultiplyPath(op, self.low_man_bits, self.dual,
                                                       latency=ML)
        # Where the conversion's rounding has a register of its own (QS = 3), the
        # multiplicands' last registers have no reset either, so that they become the
        # multiplier block's input registers (gen.flows.hard_registers): the multiplier's
        # delay then leaves the fabric's paths. With less before them they keep a reset and
        # stay in the fabric: the block's input setup at the end of the conversion set the
        # clock of a PE at latency 6 (83.4 against 90.4 MHz, unit_fmax.md).
        hard = bool(INNER)
        m.d.comb += [mul.a0.eq(delayed(qa, QC, "qa", reset_less=hard)),
                     mul.b0.eq(delayed(qb, QC, "qb", reset_less=hard)),
                     mul.i_valid.eq(delayed(is_mac | is_update | is_velocity, QS, "valid"))]
        pair1 = Signal(name="pair1")
        if dual:
            acc_k1 = acc_view[s1.c_acc | 1]
            qa1 = Mux(beside(s1.a_act, "a_act1"), beside(a_rd2_1.data, "a_act_1", word=True),
                      fp.convert(m, raw(w_rd_1.data, "w1", word=True), FP32, op, "qa1",
                                 converting))
            qb1 = beside(a_rd_1.data, "b1", word=True)
            m.d.comb += [pair1.eq(is_mac & s1.pair1),
                         mul.a1.eq(delayed(qa1, QC, "qa1", reset_less=hard)),
                         mul.b1.eq(delayed(qb1, QC, "qb1", reset_less=hard)),
                         mul.pair1.eq(delayed(pair1, QS, "pair1")),
                         mul.random_bit.eq(delayed(s1.rand, QS, "rand"))]

        # What the product counters count: the MAC pairs, as they leave the multiply path.
        m.d.comb += [self.made.eq(delayed(Cat(is_mac, pair1), QS + ML, "made")),
                     self.class0.eq(mul.c0), self.class1.eq(mul.c1)]

        product0, product1 = mul.p0, mul.p1
        if self.has_reuse:
            product0, product1 = self._reuse(m, s1, is_mac, pair1, delayed, mul)

        m.submodules.accumulate = add = FloatAdder(FP32, pf, FP32, latency=AL)
        m.d.comb += [add.a.eq(delayed(c32, c32_wait, "addend")), add.b.eq(product0),
                     add.i_valid.eq(mul.o_valid)]
        if dual:
            # Pair 1's accumulating adder: the same latency, so both results land together.
            m.submodules.accumulate1 = add1 = FloatAdder(FP32, pf, FP32, latency=AL)
            c1_32 = Mux(s1.c_clear, 0, acc_k1)
            m.d.comb += [add1.a.eq(delayed(c1_32, QS + ML, "addend1")), add1.b.eq(product1),
                         add1.i_valid.eq(mul.o_valid)]

        done = self._result_tags(m, s1, is_mac, is_update, is_velocity, pair1)
        # --- cycle t+1+L: write-back -----------------------------------------------------
        self._write_back(m, done, add, acc, w_wr, take, sent_acc, reducing, reduce_acc,
                         add1 if dual else None)
        return m

    def _result_tags(self, m, s1, is_mac, is_update, is_velocity, pair1=None):
        """The destination of each result, travelling beside the MAC pipeline (``pair1``:
        whether pair 1's adder writes the odd accumulator, where there is one). Returns the
        last stage, that of the result leaving the accumulating adder."""
        fields = {"update": 1, "velocity": 1}
        if pair1 is not None:
            fields["pair1"] = 1
        tag = data.StructLayout({**fields, "acc": len(s1.c_acc), "waddr": len(s1.waddr)})
        stages = [Signal(tag, name=f"tag{i}") for i in range(self.mac_latency)]
        # The fused update's last MAC writes back to the weight, as an UPDATE does.
        to_w = is_update | (is_mac & s1.c_to_w)
        first = [to_w, is_velocity] + ([pair1] if pair1 is not None else [])
        m.d.sync += stages[0].eq(Cat(*first, s1.c_acc, s1.waddr))
        for prev, nxt in zip(stages, stages[1:]):
            m.d.sync += nxt.eq(prev)
        return stages[-1]

    def _write_back(self, m, done, add, acc, w_wr, take, sent_acc, reducing, reduce_acc,
                    add1=None):
        """The results' write-back: ``add``'s into ``acc[done.acc]`` or the weight bank,
        pair 1's adder ``add1`` (if any) into the odd accumulator after it, a row into the
        weight bank, and the tree's reduction."""
        uop = self.uop
        with m.If(add.o_valid & ~done.update):
            for k in range(self.acc_regs):
                with m.If(done.acc == k):
                    m.d.sync += acc[k].eq(add.result)
        if add1 is not None:
            with m.If(add1.o_valid & done.pair1):
                for k in range(1, self.acc_regs, 2):
                    with m.If((done.acc | 1) == k):
                        m.d.sync += acc[k].eq(add1.result)
        with m.If(add.o_valid & (done.update | done.velocity)):
            m.d.comb += [w_wr.addr.eq(done.waddr), w_wr.data.eq(add.result), w_wr.en.eq(1)]
        with m.Elif((uop.t_op == TransferOp.W_FROM_ROW) & take):
            m.d.comb += [w_wr.addr.eq(uop.t_addr), w_wr.data.eq(self.row_in), w_wr.en.eq(1)]
        if self.tree:
            self._tree_reduction(m, acc, sent_acc, reducing, reduce_acc)

    def _block_banks(self, m):
        """The banks of a k-paired PE: 2x2 blocks split over two half banks along the block's
        diagonals (``_DiagonalRead``), one read port per operand as without pairing.
        Returns logical views of the ports with the fields of a port of one-word banks."""
        op, uop = self.operand, self.uop
        halves = {}
        for bank, width, words in (("weight", 32, self.weight_words),
                                   ("act", op.width, self.act_words)):
            # One logical word per half-bank address: the timing rules that keep a word
            # from being read in the cycle it is written hold for the half banks too.
            halves[bank] = [Memory(shape=width, depth=words // 2, init=[], attrs=_NO_RW_CHECK)
                            for _ in range(2)]
            for h, memory in enumerate(halves[bank]):
                m.submodules[f"{bank}_bank{h}"] = memory
        wbits, abits = self.layout["waddr"].width, self.layout["aaddr"].width
        w, a = halves["weight"], halves["act"]
        return (_DiagonalRead(m, w, wbits, uop.w_rows, "w_rd"),
                _DiagonalWrite(m, w, 32, wbits, "w_wr"),
                _DiagonalRead(m, a, abits, uop.a_rows, "a_rd"),
                _DiagonalRead(m, a, abits, uop.a_rows, "a_rd2"),
                _DiagonalWrite(m, a, op.width, abits, "a_wr"))

    def _kpair_mac(self, m, s1, is_mac, is_update, is_velocity, qa, qb, c32, delayed,
                   ports, acc, sent_acc, reducing, reduce_acc, take):
        """The MAC of a k-paired PE, from the multiplicands to the write-back: pair 1 is the
        partner lane of pair 0's operands, the two products are summed
        (:class:`hw.dual.KPairMultiplyAdd`) and the sum accumulated by one adder into
        ``acc[c_acc]``. Returns the module."""
        from .dual import KPairMultiplyAdd
        from .fadd import FloatAdder
        op = self.operand
        w_rd, w_wr, a_rd, a_rd2, _ = ports
        QS, ML, PL = self.quantize_stage, self.multiply_latency, self.pair_latency
        AL = self.mac_latency - QS - ML - PL
        qa1 = Mux(s1.a_act, a_rd2.partner, fp.convert(m, w_rd.partner, FP32, op, "qa1"))
        qb1 = a_rd.partner
        pair1 = Signal(name="pair1")
        m.d.comb += pair1.eq(is_mac & s1.pair1)
        m.submodules.multiply = mul = KPairMultiplyAdd(op, self.low_man_bits, self.dual,
                                                       latency=ML, sum_latency=PL)
        m.d.comb += [mul.a0.eq(delayed(qa, QS, "qa")), mul.b0.eq(delayed(qb, QS, "qb")),
                     mul.a1.eq(delayed(qa1, QS, "qa1")), mul.b1.eq(delayed(qb1, QS, "qb1")),
                     mul.pair1.eq(delayed(pair1, QS, "pair1")),
                     mul.random_bit.eq(delayed(s1.rand, QS, "rand")),
                     mul.i_valid.eq(delayed(is_mac | is_update | is_velocity, QS, "valid"))]
        m.d.comb += [self.made.eq(delayed(Cat(is_mac, pair1), QS + ML + PL, "made")),
                     self.class0.eq(mul.c0), self.class1.eq(mul.c1)]
        m.submodules.accumulate = add = FloatAdder(FP32, mul.sum_format, FP32, latency=AL)
        m.d.comb += [add.a.eq(delayed(c32, QS + ML + PL, "addend")), add.b.eq(mul.sum),
                     add.i_valid.eq(mul.o_valid)]
        done = self._result_tags(m, s1, is_mac, is_update, is_velocity)
        self._write_back(m, done, add, acc, w_wr, take, sent_acc, reducing, reduce_acc)
        return m

    def _read_enables(self, m, uop, send_w, w_rd, a_rd, a_rd2):
        """The read enables of pair 0's operand ports: on only for a micro-op that needs
        the word, so that the cycles between two ``MAC``s (a stall, an update slot, a send)
        do not replace the word a ``MAC`` with ``c_hold`` or ``c_hold_b`` finds in the data
        register."""
        mac = uop.c_op == ComputeOp.MAC
        weight_user = (send_w | (uop.c_op == ComputeOp.UPDATE)
                       | (uop.c_op == ComputeOp.UPDATE_V) | (mac & uop.c_init_w))
        reads_a = mac & ~uop.c_hold
        reads_b = mac & ~uop.c_hold_b
        m.d.comb += [w_rd.en.eq(weight_user | (reads_a & ~uop.a_act)),
                     a_rd2.en.eq(reads_a & uop.a_act),
                     a_rd.en.eq(reads_b),
                     self.stationary_read.eq(reads_a),
                     self.streaming_read.eq(reads_b)]

    def _tree_reduction(self, m, acc, sent_acc, reducing, reduce_acc):
        """Neighbour-link reduction: a second fp32 adder, so that the reduction of one
        accumulator group overlaps the accumulation of the other. ``acc[t_acc]`` (sent in
        the cycle of the micro-op) plus the neighbour's word (a cycle later) goes back into
        ``acc[t_acc]``."""
        from .fadd import FloatAdder
        m.submodules.reduce = red = FloatAdder(FP32, FP32, FP32, latency=self.mac_latency - 1)
        m.d.comb += [red.a.eq(sent_acc), red.b.eq(self.nbr_in), red.i_valid.eq(reducing)]
        red_tags = [Signal.like(reduce_acc, name=f"reduce_tag{i}")
                    for i in range(self.mac_latency - 1)]
        m.d.sync += red_tags[0].eq(reduce_acc)
        for prev, nxt in zip(red_tags, red_tags[1:]):
            m.d.sync += nxt.eq(prev)
        with m.If(red.o_valid):
            for k in range(self.acc_regs):
                with m.If(red_tags[-1] == k):
                    m.d.sync += acc[k].eq(red.result)

    def _reuse(self, m, s1, is_mac, pair1, delayed, mul):
        """The reuse cache, beside the multiply path: the lookups in the cycle the
        multiplicands enter it, the products as they leave it. Returns the products of the
        two pairs."""
        from .reuse import RESULT_FIELDS, ReuseTags, ReuseValues
        op, QS = self.operand, self.quantize_stage
        # The stationary operand is `a`: a weight, or with `a_act` the activation bank word.
        if self.reuse_shared:
            # The tags are the line's (hw.core): send the slot, take the answer.
            tags = self.reuse_lookup
            result = self.reuse_result
            m.d.comb += tags.rows.eq(delayed(s1.c_rows, QS, "reuse_rows"))
        else:
            m.submodules.reuse_tags = tags = ReuseTags(op, self.reuse_entries,
                                                       self.reuse_ways, self.stationary_bits)
            m.d.comb += tags.strength.eq(self.reuse_strength)
            result = tags
        m.submodules.reuse_values = values = ReuseValues(product_format(op).width,
                                                         self.reuse_entries, self.multiply_latency)
        stationary0 = Mux(s1.a_act, s1.aaddr2, s1.waddr)
        m.d.comb += [
            tags.valid.eq(delayed(is_mac, QS, "reuse_valid")),
            tags.fresh.eq(delayed(s1.c_fresh, QS, "reuse_fresh")),
            tags.stationary0.eq(delayed(stationary0, QS, "stationary0")),
            tags.b0.eq(mul.b0),
        ]
        if self.is_dual:
            stationary1 = Mux(s1.a_act, s1.aaddr2_1, s1.waddr1)
            m.d.comb += [tags.pair1.eq(mul.pair1), tags.b1.eq(mul.b1),
                         tags.stationary1.eq(delayed(stationary1, QS, "stationary1"))]
        m.d.comb += [mul.hit0.eq(result.hit0), mul.hit1.eq(result.hit1)]
        for name in RESULT_FIELDS:
            if hasattr(values, name):
                m.d.comb += getattr(values, name).eq(getattr(result, name))
        m.d.comb += [values.p0.eq(mul.p0), values.p1.eq(mul.p1)]

        def zero(bits):
            return bits[op.man_bits:op.man_bits + op.exp_bits] == 0

        zero0 = zero(mul.a0) | zero(mul.b0)
        zero1 = zero(mul.a1) | zero(mul.b1)
        m.d.comb += [self.reuse_look.eq(Cat(result.look0, result.look1)),
                     self.reuse_hit.eq(Cat(result.hit0, result.hit1)),
                     self.reuse_avoided.eq(Cat(result.hit0 & ~zero0, result.hit1 & ~zero1))]
        return values.q0, values.q1


def _diagonal(lane):
    """The half bank of ``lane`` (row bit * 2 + column bit of a 2x2 block) and its index
    there: the halves are the block's diagonals, so a row pair (``lane ^ 1``) and a column
    pair (``lane ^ 2``) each have one word in each half."""
    return lane[0] ^ lane[1], lane[1]


class _DiagonalRead:
    """A read port of a bank of 2x2 blocks seen as a port of one-word logical addresses
    (``4 * block + lane``): ``addr`` and ``en`` as a port's, ``data`` the word of the lane
    read and ``partner`` that of lane ``lane ^ 2`` (``rows`` in the cycle of the read) or
    ``lane ^ 1``.

    The block's two diagonals are two half banks of one word per address (``block * 2 +
    row bit``), each with a read port: the two words of a pair are in different halves, so
    each half reads one word, and the pair leaves them by one swap. This keeps the BRAM of
    a one-word bank and no 4-to-1 lane multiplexer. A cycle without a read keeps both words
    and the swap, so a held operand's partner is the one read with it."""

    def __init__(self, m, halves, addr_bits, rows, name):
        self.addr = Signal(addr_bits, name=f"{name}_addr")
        self.en = Signal(init=1, name=f"{name}_en")
        lane = self.addr[:2]
        other = lane ^ Mux(rows, 2, 1)
        half, index = _diagonal(lane)
        _, other_index = _diagonal(other)
        swap = Signal(name=f"{name}_swap")                # pair 0 is in half 1
        with m.If(self.en):
            m.d.sync += swap.eq(half)
        words = []
        for h, memory in enumerate(halves):
            port = memory.read_port()
            own = half == h
            m.d.comb += [port.addr.eq(Cat(Mux(own, index, other_index), self.addr[2:])),
                         port.en.eq(self.en)]
            words.append(port.data)
        self.data = Mux(swap, words[1], words[0])
        self.partner = Mux(swap, words[0], words[1])


class _DiagonalWrite:
    """A write port of the half banks of :class:`_DiagonalRead` seen as a port of one-word
    logical addresses: ``addr``, ``data`` and ``en``, which writes the lane of ``addr``."""

    def __init__(self, m, halves, width, addr_bits, name):
        self.addr = Signal(addr_bits, name=f"{name}_addr")
        self.data = Signal(width, name=f"{name}_data")
        self.en = Signal(name=f"{name}_en")
        half, index = _diagonal(self.addr[:2])
        for h, memory in enumerate(halves):
            port = memory.write_port()
            m.d.comb += [port.addr.eq(Cat(index, self.addr[2:])), port.data.eq(self.data),
                         port.en.eq(self.en & (half == h))]
