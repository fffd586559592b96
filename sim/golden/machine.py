"""Golden model of the whole accelerator: executes a command stream bit-exactly (pure NumPy).

The machine is the training core (``hw/core.py``) plus the DMA and the command fetch of the
command set (``gen/spec/isa.py``). :class:`Machine` keeps the state the commands change -- the
scratchpad, every PE's weight and activation bank, the DMA window registers and the counters
-- and :meth:`Machine.run` fetches, checks and executes commands from a memory image as the
RTL does: one command at a time, a command that fails its check halts the run and changes
nothing.

The core is SIMD: every PE executes every micro-op, also where its element index is past
``m`` or ``n``. So the model keeps each PE's banks in full (``(R, C, words)`` arrays) and
computes every PE's partial sums from whatever its banks hold, padding included; a bank
holds garbage in padded positions after commands of other shapes, and the results must
still come out as the RTL's. The order of every addition and rounding is the RTL's:

* MAC chains start from ``+0`` (``c_clear``) and add ``q(a) * q(b)`` in increasing step
  order, rounded once to fp32 (``sim.golden.numerics.fmac``; ``q`` is the RNE conversion to the
  MAC operand format); a ``WGRAD`` with the update fused (``core_counts.wgrad_fused``)
  starts each chain from its weight and writes the chain's end back to it, with no update
  pass (``sim.golden.core_model.fused_weight_gradient``);
* with a dual-precision policy (``mac.dual`` other than ``"single"``,
  ``docs/dual_precision.md``) a MAC slot multiplies outputs ``o`` and ``o + 1`` (``o``
  even, numbered from 0 per command as the compute engine numbers them) at the same step:
  the pair's products come from ``sim.golden.dual.DualPath`` (the ``random`` policy's bit is
  ``random_bits(o, s, dual_seed)``), and each output still accumulates its own products as
  above. WGRAD's velocity and update passes are one output per slot and always exact;
* the edge reducers add the partial sums of the PEs along a bus, PE 0 first, starting from
  ``+0``: ``((+0 + p0) + p1) + ...`` (``core.reduction = "bus"``); with the neighbour-link
  tree the PEs add pairwise (``sim.golden.core_model.reduce_partials``) and the final sum passes
  the reducer as ``+0 + S``;
* with a reuse cache (``pe.reuse_entries > 0``) and ``REUSE_STRENGTH`` not 0
  (``docs/reuse.md``), FORWARD, BACKWARD and WGRAD run their MAC slots in the compute
  engine's order through ``sim.golden.reuse.ReuseCache`` (one per PE, reset at the start of each
  command): a hit takes the cached product instead of the multiplier's, and each output
  still accumulates one product per step as above;
* ReLU (FORWARD) and the ReLU mask (BACKWARD) keep a value only where it (the mask
  element) is positive: sign 0 and a non-zero exponent field.
* a FORWARD (BACKWARD) with ``fill`` on a square array (``core_counts.fills``) is the
  command, then ``LOAD_COL`` with ``n = m`` (``LOAD_ROW`` with ``m = n``) of its result
  matrix into the activation banks at ``abase2``.

The accumulators are not state: every output's chain clears its accumulator first, so no
value survives a command. Timing is not modeled; the core's counters come from the exact
closed forms of ``sim.golden.core_counts``, but for the product counters (``high_products``,
``low_products``, ``bypass_products``), which depend on the operands: every product of a
MAC slot in every PE, padding included, by the multiplier that made it (a product with a
zero operand -- exponent field 0 after ``q`` -- is ``bypass``); they add up to the MACs
done, ``R * C * outputs * steps``, less the reuse hits (``reuse_hits``: products taken from
the reuse cache are in none of the three). The reuse counters (``reuse_lookups``,
``reuse_hits``, ``multiplies_avoided``: hits with no zero operand) also depend on the
operands. This module must not import Amaranth.
"""

from dataclasses import dataclass

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.formats import FP32, product_format
from chrysalis.gen.spec.isa import COMMAND_BYTES, COMMAND_WORDS, ErrorCode, Limits, Opcode
from chrysalis.sim.golden import core_counts
from chrysalis.sim.golden.core_counts import fills, wgrad_fused
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.dual import BYPASS, HIGH, LOW, DualPath, random_bits
from chrysalis.sim.golden.gather import gather
from chrysalis.gen.spec.layout import bank_count, tiles
from chrysalis.sim.golden.reuse import ReuseCache, reuse_classes

__all__ = ["Machine", "RunResult", "COUNTER_NAMES", "run_stream"]

_U = np.uint64

#: The counters the model keeps (``gen.spec.isa.COUNTERS`` lowercased, without the two that
#: depend on memory timing: ``cycles`` and ``dma_cycles``).
COUNTER_NAMES = tuple(name.lower() for name, _ in isa.COUNTERS
                      if name not in ("CYCLES", "DMA_CYCLES"))

#: Core counters of ``sim.golden.core_counts`` -> machine counters.
_CORE_COUNTERS = {"busy_cycles": "core_cycles", "mac_slots": "mac_slots",
                  "update_slots": "update_slots", "stall_cycles": "stall_cycles",
                  "bus_words": "bus_words"}

_FIELD_NAMES = tuple(f.name for f in isa.FIELDS)

#: Products made at once by the MAC chains (bounds their temporaries to some 100 MB).
_CHUNK_ELEMENTS = 1 << 20

#: Product classes of ``sim.golden.dual`` -> the counters of the products of MAC slots.
_PRODUCT_COUNTERS = {HIGH: "high_products", LOW: "low_products", BYPASS: "bypass_products"}

#: Cache state (lanes x entries) simulated at once by the reuse path.
_REUSE_CHUNK = 1 << 21


@dataclass(frozen=True)
class RunResult:
    """The outcome of :meth:`Machine.run`.

    Members
    -------
    error : gen.spec.isa.ErrorCode
        ``ErrorCode.NONE`` when every command ran.
    index : int
        Index of the command that failed, or ``cmd_count`` when none did.
    executed : int
        Commands executed (those before ``index``).
    """

    error: ErrorCode
    index: int
    executed: int

    @property
    def ok(self):
        return self.error == ErrorCode.NONE


def _positive(bits):
    """fp32 values greater than zero: sign 0 and a non-zero exponent field, as the RTL's
    ReLU and mask test (a flushed or negative value is not)."""
    field = (bits >> _U(FP32.man_bits)) & _U((1 << FP32.exp_bits) - 1)
    return ((bits >> _U(31)) == 0) & (field != 0)


def _op_number(op):
    """The opcode of ``op``: a name, an :class:`Opcode` (or any enum with a name) or an int
    (which may hold no operation)."""
    if isinstance(op, str):
        try:
            return int(Opcode[op.upper()])
        except KeyError:
            raise ValueError(f"op must be one of {', '.join(o.name for o in Opcode)}, "
                             f"not {op!r}") from None
    name = getattr(op, "name", None)
    if isinstance(name, str) and name in Opcode.__members__:
        return int(Opcode[name])
    value = getattr(op, "value", op)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"op must be an operation name, an Opcode or an int, "
                         f"not {op!r}") from None


def _normalize(command):
    """Every field of ``command`` (a dict: ``op`` and any fields, missing ones 0), as
    :func:`gen.spec.isa.decode` gives them (``reserved`` included)."""
    fields = dict.fromkeys(_FIELD_NAMES, 0)
    fields["reserved"] = 0
    for name, value in command.items():
        if name == "op":
            fields["op"] = _op_number(value)
            continue
        if name not in fields:
            raise ValueError(f"{name!r} is not a command field; the fields are "
                             f"{', '.join(_FIELD_NAMES[1:])}")
        value = int(value)
        if name != "reserved":
            width = isa.FIELD[name].width
            if not 0 <= value < 1 << width:
                raise ValueError(f"field {name} must be in [0, {(1 << width) - 1}], "
                                 f"not {value}")
        fields[name] = value
    return fields


def run_stream(machine, counters, memory, cmd_base, cmd_count, mem_base):
    """The fetch, check and execute loop of :meth:`Machine.run` for ``machine`` (anything
    with ``limits()``, ``beat_bytes`` and ``_execute(fields, memory, mem_base)``), counting
    the fetch beats in ``counters``."""
    memory = Machine._check_memory(memory)
    error = isa.check_fetch(cmd_base, cmd_count, machine.limits())
    if error != ErrorCode.NONE:
        return RunResult(error, 0, 0)
    for index in range(cmd_count):
        address = cmd_base + index * COMMAND_BYTES
        # A command is fetched in whole beats whether or not it then fails.
        counters["fetch_beats"] += COMMAND_BYTES // machine.beat_bytes
        if not Machine._in_image(memory, mem_base, address, COMMAND_BYTES):
            return RunResult(ErrorCode.BUS_ERROR, index, index)
        word = (address - mem_base) // 4
        fields = isa.decode(memory[word:word + COMMAND_WORDS])
        error = machine._execute(fields, memory, mem_base)
        if error != ErrorCode.NONE:
            return RunResult(error, index, index)
    return RunResult(ErrorCode.NONE, cmd_count, cmd_count)


class Machine:
    """The accelerator's state and the semantics of its commands.

    Parameters
    ----------
    config : gen.spec.config.Config

    Members
    -------
    scratchpad : ndarray of uint64, (core.scratchpad_words,)
        fp32 words (bit patterns); word ``A`` is bank ``A mod S``, line ``A div S``.
    weight : ndarray of uint64, (R, C, pe.weight_words)
        Weight bank of PE ``(r, c)``.
    act : ndarray of uint64, (R, C, pe.act_words)
        Activation bank of PE ``(r, c)``. The PE stores ``q`` of every word written to
        it (the operand-format word, ``hw.pe.PE``); this model keeps that value as the
        fp32 word that holds it exactly, so ``q`` of a stored word is the PE's word.
    dma_base, dma_last : int
        The DMA window registers (reset: the whole address space).
    dual_seed : int
        The ``DUAL_SEED`` register (16 bits, reset 0): the seed of the ``random``
        dual-precision policy (``sim.golden.dual.random_bits``); read when a command runs.
    reuse_strength : int
        The ``REUSE_STRENGTH`` register (5 bits, reset 0): the key of the reuse cache
        (``docs/reuse.md``; 0: off); read when a command runs. Without a cache
        (``pe.reuse_entries = 0``) it changes nothing.
    counters : dict
        :data:`COUNTER_NAMES` to int, counting from construction (or
        :meth:`reset_counters`).
    """

    def __init__(self, config):
        from chrysalis.gen.spec.config import Config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if config.cluster.cores > 1:
            raise ValueError(f"a Machine is one core, and cluster.cores is "
                             f"{config.cluster.cores}: a cluster's golden model is "
                             f"sim.golden.cluster_machine.ClusterMachine, not {config!r}")
        self.config = config
        self.rows, self.cols = config.core.rows, config.core.cols
        self.banks = bank_count(self.rows, self.cols)
        self.num = cm.CoreNumerics.from_config(config)
        self.operand = config.mac.operand
        self.beat_bytes = config.host.axi_data_width // 8
        self.scratchpad = np.zeros(config.core.scratchpad_words, dtype=_U)
        self.weight = np.zeros((self.rows, self.cols, config.pe.weight_words), dtype=_U)
        self.act = np.zeros((self.rows, self.cols, config.pe.act_words), dtype=_U)
        self.dma_base = 0
        self.dma_last = (1 << config.host.axi_addr_width) - 1
        self.dual_seed = 0
        self.reuse_strength = 0
        # The multiply path of a dual policy; None: one exact product per slot.
        self._dual = None if config.mac.dual == "single" else DualPath.from_config(config)
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._counts_cache = {}
        self._execute_op = {
            Opcode.LOAD_COL: self._load_col, Opcode.LOAD_ROW: self._load_row,
            Opcode.LOAD_W: self._load_w, Opcode.STORE_W: self._store_w,
            Opcode.FORWARD: self._forward, Opcode.BACKWARD: self._backward,
            Opcode.WGRAD: self._wgrad, Opcode.LOSS_GRAD: self._loss_grad,
            Opcode.GATHER: self._gather,
        }

    # --- registers and state -------------------------------------------------------------

    def limits(self):
        """The :class:`gen.spec.isa.Limits` commands are checked against (the current window)."""
        return Limits.from_config(self.config, self.dma_base, self.dma_last)

    def reset_counters(self):
        """Set every counter to 0."""
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)

    def _addresses(self, base, lpc, rows, cols):
        e = np.arange(rows)[:, None]
        b = np.arange(cols)[None, :]
        return (base + b * lpc) * self.banks + e

    def read_matrix(self, base_line, lpc, rows, cols):
        """Scratchpad matrix ``(rows, cols)``: element ``(e, b)`` is the word at
        ``(base_line + b * lpc) * S + e``."""
        return self.scratchpad[self._addresses(base_line, lpc, rows, cols)]

    def write_matrix(self, base_line, lpc, values):
        """Write ``values`` (``(rows, cols)`` fp32 bit patterns) as a scratchpad matrix."""
        values = np.asarray(values, dtype=_U)
        if values.ndim != 2:
            raise ValueError(f"values must be a 2-D array, not of shape {values.shape}")
        self.scratchpad[self._addresses(base_line, lpc, *values.shape)] = values

    def read_weights(self, wbase, m, n):
        """The ``m x n`` matrix ``W`` held in the weight banks from ``wbase`` (what
        ``STORE_W`` would write): ``W[i][j]`` is in PE ``(i mod R, j mod C)`` at
        ``wbase + (i div R) * ceil(n/C) + (j div C)``."""
        R, C = self.rows, self.cols
        mt, nt = tiles(m, R), tiles(n, C)
        region = self.weight[:, :, wbase:wbase + mt * nt].reshape(R, C, mt, nt)
        # (R, C, mt, nt) -> (mt, R, nt, C) -> rows t*R + r, columns u*C + c.
        return region.transpose(2, 0, 3, 1).reshape(mt * R, nt * C)[:m, :n].copy()

    # --- running command streams -------------------------------------------------------

    def run(self, memory, cmd_base, cmd_count, mem_base=0):
        """Fetch, check and execute ``cmd_count`` commands from byte address ``cmd_base``.

        Parameters
        ----------
        memory : ndarray of uint32
            The memory image (changed in place by ``DMA_STORE``): word ``i`` is at byte
            address ``mem_base + 4 * i``.
        cmd_base : int
            Byte address of command 0; command ``k`` is at ``cmd_base + 64 * k``.
        cmd_count : int
        mem_base : int
            Byte address of ``memory[0]``.

        Returns
        -------
        RunResult
            The first failing command halts the run and changes nothing (but
            ``fetch_beats``, which counts its fetch). ``FETCH_RANGE`` (from
            :func:`gen.spec.isa.check_fetch`) fails at index 0 before any fetch. A fetch or a DMA
            that touches a byte outside the memory image but inside the window fails with
            ``BUS_ERROR`` (the memory answers DECERR); the model checks that before the
            command runs, so such a command also changes nothing here (the RTL may have done
            part of it) and its DMA beats are not counted.
        """
        return run_stream(self, self.counters, memory, cmd_base, cmd_count, mem_base)

    def execute(self, command, memory=None, mem_base=0):
        """Check and execute one command given as fields.

        Parameters
        ----------
        command : dict
            ``op`` (a name such as ``"FORWARD"``, an :class:`gen.spec.isa.Opcode` or an int)
            and any fields of :data:`gen.spec.isa.FIELDS` (missing
            fields are 0; ``reserved`` as :func:`gen.spec.isa.decode` gives it). The core
            commands of ``sim.compile.compiler`` work as they are.
        memory, mem_base :
            The memory image, for ``DMA_LOAD`` and ``DMA_STORE`` (see :meth:`run`).

        Returns
        -------
        gen.spec.isa.ErrorCode
            ``NONE``, or why the command was refused (it then changed nothing).
        """
        fields = _normalize(command)
        if memory is not None:
            memory = self._check_memory(memory)
        return self._execute(fields, memory, mem_base)

    @staticmethod
    def _check_memory(memory):
        if not isinstance(memory, np.ndarray) or memory.dtype != np.uint32 or memory.ndim != 1:
            raise TypeError("memory must be a 1-D numpy array of uint32")
        return memory

    @staticmethod
    def _in_image(memory, mem_base, first, size):
        return first >= mem_base and first + size <= mem_base + 4 * len(memory)

    def _execute(self, c, memory, mem_base):
        error = isa.check(c, self.limits())
        if error != ErrorCode.NONE:
            return error
        op = Opcode(c["op"])
        if op in (Opcode.DMA_LOAD, Opcode.DMA_STORE):
            error = self._dma(op, c, memory, mem_base)
            if error != ErrorCode.NONE:
                return error
        else:
            self.core_op(op, c)
        self.counters["commands"] += 1
        return ErrorCode.NONE

    def core_op(self, op, c):
        """Execute core operation ``op`` with the checked fields ``c`` (no check, no
        command count): the core's part of a command, which a cluster hands to each of
        the cores of its mask (``sim.golden.cluster_machine``)."""
        labels = self._execute_op[op](c)
        counts = self._core_counts(op, c, labels)
        for source, target in _CORE_COUNTERS.items():
            self.counters[target] += counts[source]

    def _core_counts(self, op, c, labels):
        """``sim.golden.core_counts.predict`` of a core command, remembered: a training run repeats
        a few shapes, and the LOSS_GRAD prediction steps the loss unit cycle by cycle."""
        # Of the labels, the schedule sees only whether each is a class index.
        in_range = None if labels is None else tuple(0 <= v < c["m"] for v in labels)
        key = (op, c["m"], c["n"], c["batch"], c["flag"], c["fused"], c["fill"], in_range)
        counts = self._counts_cache.get(key)
        if counts is None:
            labels = None if in_range is None else [0 if ok else 0xFFFF_FFFF for ok in in_range]
            counts = core_counts.predict(
                self.config, {"op": op.name, "m": c["m"], "n": c["n"], "batch": c["batch"],
                              "flag": c["flag"], "fused": c["fused"], "fill": c["fill"]},
                labels=labels)
            self._counts_cache[key] = counts
        return counts

    # --- DMA -----------------------------------------------------------------------------

    def _dma(self, op, c, memory, mem_base):
        if memory is None:
            raise ValueError(f"{op.name} needs the memory image")
        n, batch, stride = c["n"], c["batch"], c["mem_stride"]
        beats = tiles(4 * n, self.beat_bytes)
        # Every beat the DMA moves must be in the image (the beats of a column are whole).
        for b in range(batch):
            if not self._in_image(memory, mem_base, c["mem_addr"] + b * stride,
                                  beats * self.beat_bytes):
                return ErrorCode.BUS_ERROR
        S, base, lpc = self.banks, c["sp_base"], c["sp_lpc"]
        # Column by column, in order: columns in memory may overlap (a small stride), and
        # then the later one wins, as the bursts come in that order.
        for b in range(batch):
            word = (c["mem_addr"] + b * stride - mem_base) // 4
            line = (base + b * lpc) * S
            if op == Opcode.DMA_LOAD:
                self.scratchpad[line:line + n] = memory[word:word + n]
            else:
                memory[word:word + n] = self.scratchpad[line:line + n].astype(np.uint32)
        key = "dma_read_beats" if op == Opcode.DMA_LOAD else "dma_write_beats"
        self.counters[key] += beats * batch
        return ErrorCode.NONE

    # --- core operations -------------------------------------------------------------------

    def _q(self, bits):
        """Operand-format copies of fp32 words, as the PEs make them for the multiplier."""
        return nx.fconvert(bits, FP32, self.operand)

    def _stored(self, bits):
        """What an activation bank holds after a write of fp32 words ``bits``: ``q`` of
        them (widened back to fp32 exactly, so that ``_q`` of it is ``q`` again)."""
        return nx.fconvert(self._q(bits), self.operand, FP32)

    def _mac_chain(self, qa, qb, stationary=None, init=None):
        """MAC chains from ``+0`` (or from ``init``, fp32 words of the chains' shape: the fused
        WGRAD starts from the weights): ``acc = acc + qa[s] * qb[s]`` for ``s`` in increasing
        order.

        ``qa`` and ``qb`` are quantized operands with the step ``s`` as their first axis,
        broadcastable to each other; the chains are vectorized over the other axes. The last
        two axes of the chains are the position ``(p1, p2)`` of the output, so that output
        ``o = p1 * p2_count + p2`` is numbered as the compute engine numbers it: with a dual
        policy outputs ``o`` and ``o + 1`` (``o`` even) share the slots (:meth:`_dual_products`).
        Adds the products to the product counters.

        ``qa`` is the stationary operand and ``stationary`` (``(steps, p1_count)`` ints) its
        bank address at step ``s`` for outputs of row ``p1``: with the reuse cache on, the
        chains run through it (:meth:`_reuse_chain`).
        """
        if stationary is not None and self._reuse_strength():
            return self._reuse_chain(qa, qb, stationary, init)
        pf = product_format(self.operand)
        steps = max(qa.shape[0], qb.shape[0])
        shape = np.broadcast_shapes(qa.shape[1:], qb.shape[1:])
        acc = np.zeros(shape, dtype=_U) if init is None else init.reshape(shape).copy()
        classes = np.zeros(3, dtype=np.int64)         # products per class, HIGH LOW BYPASS
        # The products do not depend on the chain: make them for many steps at once (fewer,
        # larger NumPy calls), in chunks that keep the temporaries small.
        chunk = max(1, _CHUNK_ELEMENTS // max(1, acc.size))
        for s0 in range(0, steps, chunk):
            s1 = min(steps, s0 + chunk)
            a = qa[s0:s1] if qa.shape[0] > 1 else qa
            b = qb[s0:s1] if qb.shape[0] > 1 else qb
            full = (s1 - s0,) + shape
            if self._dual is None:
                products = nx.fmul(a, b, self.operand)
                # One exact product per slot: HIGH, or BYPASS with a zero operand.
                bypass = np.count_nonzero(np.broadcast_to(self._zero(a) | self._zero(b), full))
                classes += (int(np.prod(full)) - bypass, 0, bypass)
            else:
                products = self._dual_products(a, b, s0, full, classes)
            for product in np.broadcast_to(products, full):
                acc = nx.fadd(acc, FP32, product, pf, FP32)
        for cls, name in _PRODUCT_COUNTERS.items():
            self.counters[name] += int(classes[cls])
        return acc

    def _zero(self, q):
        """Operand-format words that are zero for the multiplier: exponent field 0."""
        exp = (q >> _U(self.operand.man_bits)) & _U((1 << self.operand.exp_bits) - 1)
        return exp == 0

    def _dual_products(self, a, b, s0, full, classes):
        """The products of a dual-precision MAC chunk: steps ``s0, s0 + 1, ...`` of the
        chains of shape ``full[1:]`` (:meth:`_mac_chain`), operands ``a`` and ``b``
        broadcastable to ``full``.

        Output ``o`` (even) is pair 0 of its slot and ``o + 1`` pair 1, if it is an output:
        the pairs run along the flattened last two axes. Returns the products (``full``,
        ``product_format(operand)``) and adds the class counts of the products made (pair 1
        only where it exists) into ``classes``.
        """
        steps, outputs = full[0], full[-2] * full[-1]
        flat = full[:-2] + (outputs,)
        a = np.broadcast_to(a, full).reshape(flat)
        b = np.broadcast_to(b, full).reshape(flat)
        if outputs % 2:
            # The last output has no partner: pad pair 1 (pair1 is false there).
            pad = [(0, 0)] * (len(flat) - 1) + [(0, 1)]
            a, b = np.pad(a, pad), np.pad(b, pad)
        even = np.arange(0, outputs, 2)
        pair1 = even + 1 < outputs
        bit = 0
        if self._dual.policy == "random":
            step = np.arange(s0, s0 + steps).reshape((steps,) + (1,) * (len(flat) - 1))
            bit = random_bits(even, step, self.dual_seed)
        p0, p1, c0, c1 = self._dual.products(a[..., 0::2], b[..., 0::2], a[..., 1::2],
                                            b[..., 1::2], pair1, bit)
        classes += np.bincount(c0.ravel(), minlength=3)
        classes += np.bincount(c1[..., pair1].ravel(), minlength=3)
        products = np.empty(a.shape, dtype=_U)
        products[..., 0::2], products[..., 1::2] = p0, p1
        return products[..., :outputs].reshape(full)

    def _reuse_strength(self):
        """The reuse strength a command runs with: 0 without a cache."""
        if self.config.pe.reuse_entries == 0:
            return 0
        return int(self.reuse_strength) & ((1 << isa.REUSE_STRENGTH_BITS) - 1)

    def _reuse_chain(self, qa, qb, stationary, init=None):
        """:meth:`_mac_chain` through the reuse cache (``docs/reuse.md``).

        ``qa`` (the stationary operand) and ``qb`` (the streaming one) are broadcastable to
        ``(steps, R, C, P1, P2)``; ``stationary[s, p1]`` is the bank address of ``qa``'s
        word. The MAC slots are those of the compute engine (``hw.core``): for each group
        ``g`` of ``G = acc_regs / 2`` outputs, for each step ``s``, outputs
        ``o = g*G + k`` for ``k = 0, streams, ...`` (pair 0; pair 1 is ``o + 1``), ``o`` at
        position ``(o div P2, o mod P2)``.

        The cache starts empty with the command and is emptied whenever pair 0's stationary
        address changes, so every maximal run of slots with one stationary address is an
        independent *episode*: the slots are simulated position by position, vectorized over
        the episodes and the PEs. The cache holds the index of each miss's product; the
        products (which a hit can change through the multiplier assignment of its partner)
        are made afterwards for all slots at once.
        """
        R, C = self.rows, self.cols
        steps = max(qa.shape[0], qb.shape[0])
        P1, P2 = np.broadcast_shapes(qa.shape[1:], qb.shape[1:])[-2:]
        full = (steps, R, C, P1, P2)
        outputs, lanes = P1 * P2, R * C
        a = np.broadcast_to(qa, full).reshape(steps, lanes, outputs)
        b = np.broadcast_to(qb, full).reshape(steps, lanes, outputs)
        # One more output of zeros: pair 1 of an unpaired last slot indexes it.
        a = np.concatenate([a, np.zeros((steps, lanes, 1), dtype=_U)], axis=2)
        b = np.concatenate([b, np.zeros((steps, lanes, 1), dtype=_U)], axis=2)

        # The MAC slots in the compute engine's order.
        streams = self.config.mac.macs_per_cycle
        G = self.config.pe.acc_regs // 2
        groups = -(-outputs // G)
        g, s, k = np.meshgrid(np.arange(groups), np.arange(steps), np.arange(0, G, streams),
                              indexing="ij")
        o = (g * G + k).ravel()
        s = s.ravel()
        keep = o < outputs
        o, s = o[keep], s[keep]
        slots = len(o)
        o1 = o + 1
        pair1 = (streams == 2) & (o1 < outputs)
        stationary = np.asarray(stationary, dtype=np.int64)
        s0 = stationary[s, o // P2]
        s1 = stationary[s, np.minimum(o1, outputs - 1) // P2]
        a0, b0 = a[s, :, o], b[s, :, o]             # (slots, lanes)
        a1, b1 = a[s, :, o1], b[s, :, o1]

        # The episodes: runs of slots with one stationary address for pair 0.
        start = np.flatnonzero(np.r_[True, s0[1:] != s0[:-1]])
        length = np.diff(np.r_[start, slots])
        hit0 = np.zeros((slots, lanes), dtype=bool)
        hit1 = np.zeros((slots, lanes), dtype=bool)
        look1 = np.zeros((slots, lanes), dtype=bool)
        src0 = np.zeros((slots, lanes), dtype=_U)
        src1 = np.zeros((slots, lanes), dtype=_U)
        # The value a miss inserts: the index of its product in (slots, 2, lanes).
        ids = np.arange(slots * 2 * lanes, dtype=_U).reshape(slots, 2, lanes)
        strength = self._reuse_strength()
        per_chunk = max(1, _REUSE_CHUNK // (lanes * self.config.pe.reuse_entries))
        for e0 in range(0, len(start), per_chunk):
            first, count = start[e0:e0 + per_chunk], length[e0:e0 + per_chunk]
            cache = ReuseCache.from_config(self.config, len(first) * lanes, strength)
            for j in range(int(count.max())):
                active = j < count
                i = first + np.minimum(j, count - 1)     # (episodes,): the slot of each
                act = np.repeat(active, lanes)
                r = cache.slot(np.repeat(s0[i], lanes), b0[i].ravel(),
                               np.repeat(s1[i], lanes), b1[i].ravel(),
                               pair1=np.repeat(pair1[i], lanes), active=act,
                               products=(ids[i, 0].ravel(), ids[i, 1].ravel()))
                ia = i[active]
                shape = (len(first), lanes)
                hit0[ia] = r.hit0.reshape(shape)[active]
                hit1[ia] = r.hit1.reshape(shape)[active]
                look1[ia] = r.look1.reshape(shape)[active]
                src0[ia] = r.value0.reshape(shape)[active]
                src1[ia] = r.value1.reshape(shape)[active]

        # The products: the multiply path's for the misses, the cached one for the hits.
        path = self._dual if self._dual is not None else DualPath.from_config(self.config)
        p1 = pair1[:, None]
        bit = 0
        if path.policy == "random":
            bit = random_bits(o, s, self.dual_seed)[:, None]
        c0, c1 = path.classes(a0, b0, a1, b1, p1, bit)
        c0, c1 = reuse_classes(c0, c1, hit0, hit1, p1)
        made = np.empty((slots, 2, lanes), dtype=_U)
        for pair, (x, y, cls) in enumerate(((a0, b0, c0), (a1, b1, c1))):
            made[:, pair] = path.high_product(x, y)
            low = cls == LOW
            if low.any():
                made[:, pair][low] = path.low_product(x[low], y[low])
        # A hit's source is a miss, whose product is final.
        flat = made.reshape(-1)
        product0 = np.where(hit0, flat[src0.astype(np.int64)], made[:, 0])
        product1 = np.where(hit1, flat[src1.astype(np.int64)], made[:, 1])

        products = np.empty((steps, lanes, outputs + 1), dtype=_U)
        products[s, :, o] = product0
        products[s[pair1], :, o1[pair1]] = product1[pair1]
        pf = product_format(self.operand)
        acc = (np.zeros((lanes, outputs), dtype=_U) if init is None
               else init.reshape(lanes, outputs).copy())
        for step in range(steps):
            acc = nx.fadd(acc, FP32, products[step, :, :outputs], pf, FP32)

        # The counters.
        exists = np.broadcast_to(p1, c1.shape)
        for cls, name in _PRODUCT_COUNTERS.items():
            self.counters[name] += int(np.count_nonzero(c0 == cls)
                                       + np.count_nonzero((c1 == cls) & exists))
        zero0, zero1 = self._zero(a0) | self._zero(b0), self._zero(a1) | self._zero(b1)
        reuse = {"reuse_lookups": slots * lanes + np.count_nonzero(look1),
                 "reuse_hits": np.count_nonzero(hit0) + np.count_nonzero(hit1),
                 "multiplies_avoided": (np.count_nonzero(hit0 & ~zero0)
                                        + np.count_nonzero(hit1 & ~zero1))}
        for name, value in reuse.items():
            if name in self.counters:
                self.counters[name] += int(value)
        return acc.reshape(R, C, P1, P2)

    def _reduce(self, partials, axis):
        """The edge reducers' sum of the partial sums along ``axis`` (see the module
        docstring): the reducer always starts from ``+0``."""
        return cm.edge_reduce(self.num, partials, axis)

    def _padded(self, base, lpc, rows, cols, tile_rows):
        """A scratchpad matrix read as the lane reads see it: ``rows`` padded with ``+0`` up
        to a multiple of ``tile_rows`` (disabled lanes read ``+0``)."""
        padded = np.zeros((tiles(rows, tile_rows) * tile_rows, cols), dtype=_U)
        padded[:rows] = self.read_matrix(base, lpc, rows, cols)
        return padded

    def _load_col(self, c):
        # X[t*C + c][b] to every PE of column c at abase + t*B + b.
        R, C = self.rows, self.cols
        n, batch, abase = c["n"], c["batch"], c["abase"]
        nt = tiles(n, C)
        x = self._padded(c["sp_base"], c["sp_lpc"], n, batch, C).reshape(nt, C, batch)
        self.act[:, :, abase:abase + nt * batch] = \
            self._stored(x.transpose(1, 0, 2).reshape(1, C, nt * batch))

    def _load_row(self, c):
        # dY[t*R + r][b] to every PE of row r at abase + t*B + b.
        R, C = self.rows, self.cols
        m, batch, abase = c["m"], c["batch"], c["abase"]
        mt = tiles(m, R)
        y = self._padded(c["sp_base"], c["sp_lpc"], m, batch, R).reshape(mt, R, batch)
        self.act[:, :, abase:abase + mt * batch] = \
            self._stored(y.transpose(1, 0, 2).reshape(R, 1, mt * batch))

    def _load_w(self, c):
        R, C = self.rows, self.cols
        m, n, wbase = c["m"], c["n"], c["wbase"]
        mt, nt = tiles(m, R), tiles(n, C)
        w = np.zeros((mt * R, nt * C), dtype=_U)
        w[:m, :n] = self.read_matrix(c["sp_base"], c["sp_lpc"], m, n)
        self.weight[:, :, wbase:wbase + mt * nt] = \
            w.reshape(mt, R, nt, C).transpose(1, 3, 0, 2).reshape(R, C, mt * nt)

    def _store_w(self, c):
        self.write_matrix(c["sp_base"], c["sp_lpc"], self.read_weights(c["wbase"], c["m"], c["n"]))

    def _forward(self, c):
        # Output (p1, p2), p1 < mt, p2 < B: PE (r, c) sums W(wbase + p1*nt + s) *
        # X(abase + s*B + p2) over s < nt; the row's partial sums are reduced over c.
        R, C = self.rows, self.cols
        m, n, batch = c["m"], c["n"], c["batch"]
        mt, nt = tiles(m, R), tiles(n, C)
        qw = self._q(self.weight[:, :, c["wbase"]:c["wbase"] + mt * nt]).reshape(R, C, mt, nt)
        qx = self._q(self.act[:, :, c["abase"]:c["abase"] + nt * batch]).reshape(R, C, nt, batch)
        # The stationary operand W(wbase + p1*nt + s): its address per (s, p1).
        address = c["wbase"] + np.arange(mt)[None, :] * nt + np.arange(nt)[:, None]
        acc = self._mac_chain(qw.transpose(3, 0, 1, 2)[..., None],     # (nt, R, C, mt, 1)
                              qx.transpose(2, 0, 1, 3)[:, :, :, None],  # (nt, R, C, 1, B)
                              address)
        y = self._reduce(acc, axis=1)                          # (R, mt, B)
        if c["flag"]:
            y = np.where(_positive(y), y, _U(0))
        y = y.transpose(1, 0, 2).reshape(mt * R, batch)[:m]
        self.write_matrix(c["sp_base"], c["sp_lpc"], y)
        if fills(self.config, c):
            # As LOAD_COL of what was just written would load it.
            self._load_col(dict(n=m, batch=batch, abase=c["abase2"], sp_base=c["sp_base"],
                                sp_lpc=c["sp_lpc"]))

    def _backward(self, c):
        # Output (p1, p2), p1 < nt, p2 < B: PE (r, c) sums W(wbase + s*nt + p1) *
        # dY(abase + s*B + p2) over s < mt; the column's partial sums are reduced over r.
        R, C = self.rows, self.cols
        m, n, batch = c["m"], c["n"], c["batch"]
        mt, nt = tiles(m, R), tiles(n, C)
        qw = self._q(self.weight[:, :, c["wbase"]:c["wbase"] + mt * nt]).reshape(R, C, mt, nt)
        qd = self._q(self.act[:, :, c["abase"]:c["abase"] + mt * batch]).reshape(R, C, mt, batch)
        # The stationary operand W(wbase + s*nt + p1): its address per (s, p1).
        address = c["wbase"] + np.arange(mt)[:, None] * nt + np.arange(nt)[None, :]
        acc = self._mac_chain(qw.transpose(2, 0, 1, 3)[..., None],     # (mt, R, C, nt, 1)
                              qd.transpose(2, 0, 1, 3)[:, :, :, None],  # (mt, R, C, 1, B)
                              address)
        dx = self._reduce(acc, axis=0)                         # (C, nt, B)
        dx = dx.transpose(1, 0, 2).reshape(nt * C, batch)[:n]
        if c["flag"]:
            mask = self.read_matrix(c["sp2_base"], c["sp2_lpc"], n, batch)
            dx = np.where(_positive(mask), dx, _U(0))
        self.write_matrix(c["sp_base"], c["sp_lpc"], dx)
        if fills(self.config, c):
            # As LOAD_ROW of what was just written would load it.
            self._load_row(dict(m=n, batch=batch, abase=c["abase2"], sp_base=c["sp_base"],
                                sp_lpc=c["sp_lpc"]))

    def _wgrad(self, c):
        # Output (p1, p2), p1 < mt, p2 < nt: PE (r, c) sums dY(abase2 + p1*B + s) *
        # X(abase + p2*B + s) over s < B, then updates W(wbase + p1*nt + p2) in place.
        R, C = self.rows, self.cols
        m, n, batch = c["m"], c["n"], c["batch"]
        mt, nt = tiles(m, R), tiles(n, C)
        qd = self._q(self.act[:, :, c["abase2"]:c["abase2"] + mt * batch]).reshape(R, C, mt, batch)
        qx = self._q(self.act[:, :, c["abase"]:c["abase"] + nt * batch]).reshape(R, C, nt, batch)
        # The stationary operand dY(abase2 + p1*B + s): its address per (s, p1).
        address = c["abase2"] + np.arange(mt)[None, :] * batch + np.arange(batch)[:, None]
        wslice = slice(c["wbase"], c["wbase"] + mt * nt)
        # Fused: the chains start from the weights and end in them (no update pass).
        fused = wgrad_fused(self.config, c)
        acc = self._mac_chain(qd.transpose(3, 0, 1, 2)[..., None],     # (B, R, C, mt, 1)
                              qx.transpose(3, 0, 1, 2)[:, :, :, None],  # (B, R, C, 1, nt)
                              address,
                              init=self.weight[:, :, wslice] if fused else None)
        acc = acc.reshape(R, C, mt * nt)
        if fused:
            self.weight[:, :, wslice] = acc
            return
        if c["flag"]:
            # UPDATE_V: v = acc + q(v) * q(mu), into the velocity and the accumulator.
            vslice = slice(c["wbase2"], c["wbase2"] + mt * nt)
            mu = np.full(1, c["scalar2"], dtype=_U)
            acc = nx.fmac(acc, self._q(self.weight[:, :, vslice]), self._q(mu),
                          self.operand, FP32)
            self.weight[:, :, vslice] = acc
        # UPDATE: W = W + q(acc) * q(-lr).
        neg_lr = np.full(1, c["scalar"], dtype=_U)
        self.weight[:, :, wslice] = nx.fmac(self.weight[:, :, wslice], self._q(acc),
                                            self._q(neg_lr), self.operand, FP32)

    def _loss_grad(self, c):
        m, batch = c["m"], c["batch"]
        y = self.read_matrix(c["sp_base"], c["sp_lpc"], m, batch)
        # The labels are integer words: element 0 of each column of sp3.
        labels = self.read_matrix(c["sp3_base"], c["sp3_lpc"], 1, batch)[0] & _U(0xFFFF_FFFF)
        dy, _ = cm.softmax_xent_gradient(self.num, y, labels.astype(np.int64), c["scalar"])
        self.write_matrix(c["sp2_base"], c["sp2_lpc"], dy)
        return [int(v) for v in labels]

    def _gather(self, c):
        # Every word the command reads is read before it writes (gather.gather's meaning);
        # the RTL interleaves them, which differs only where the window overlaps the
        # destination, a case the command set leaves undefined.
        taps, n, batch, S = c["m"], c["n"], c["batch"], self.banks
        window = self.scratchpad[c["sp_base"] * S:(c["sp_base"] + c["sp_lpc"]) * S]
        table = self.read_matrix(c["sp3_base"], c["sp3_lpc"], taps * n, batch)
        mask = self.read_matrix(c["sp2_base"], c["sp2_lpc"], n, batch) if c["flag"] else None
        self.write_matrix(c["sp2_base"], c["sp2_lpc"], gather(window, table, taps, mask))
