"""The accelerator's command set and register map, defined once.

Everything that hardware and software must agree on about commands and registers lives
here: the RTL decoder and register file (``hw/``), the compiler and the golden machine
model (``sim/``), the C header that ``chrysalis verilog`` writes (:func:`c_header`), the
reference in ``docs/commands.md`` (:func:`markdown`, checked up to date by the tests) and
the register map as SystemRDL, with the C header, IP-XACT and Markdown that PeakRDL makes
of it (``gen.emit.regmap``).

A **command** is :data:`COMMAND_WORDS` little-endian 32-bit words (:data:`COMMAND_BYTES`
bytes) in memory. The host writes a stream of them, sets ``CMD_BASE`` and ``CMD_COUNT`` and
writes the doorbell; the accelerator fetches, checks and executes them in order. A command
that fails its check (:func:`check`) is not executed at all: the accelerator halts with its
error code and index and changes nothing else. Fields an operation does not use are ignored
(write zeros); bits outside every field are reserved and must be zero.

This module is pure Python: the golden model and the tools import it without Amaranth.
"""

import enum
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .checks import ceil_div, is_int

__all__ = [
    "ISA_VERSION", "COMMAND_WORDS", "COMMAND_BYTES", "Opcode", "ErrorCode", "Field", "FIELDS",
    "FIELD", "OP_FIELDS", "NEEDS", "Limits", "encode", "encode_stream", "decode", "decode_stream",
    "check", "check_fetch", "core_mask", "core_error", "COLLECTIVES", "MAX_CORES", "Region",
    "SIZE_TERMS", "MEMORIES", "OP_REGIONS", "DMA_OPS", "size_values", "dma_region", "BitField",
    "Register", "REGISTERS", "REGISTER", "COUNTERS", "CONFIG_REGISTERS", "CONSTANT_REGISTERS",
    "LOCKED_WHILE_RUNNING", "ID_MAGIC", "REUSE_STRENGTH_BITS", "DUAL_SEED_BITS",
    "SP_READERS", "SP_WRITERS", "SIDE_OPS", "SIDE_HOST", "DISJOINT",
    "shared_fields", "register_notes", "c_header", "markdown",
]

#: (major, minor): a major change breaks existing command streams.
ISA_VERSION = (1, 6)
COMMAND_WORDS = 16
COMMAND_BYTES = 4 * COMMAND_WORDS
#: Value of the ``ID`` register: "CHRS" in ASCII.
ID_MAGIC = 0x4348_5253


class Opcode(enum.IntEnum):
    """Operations. The cores run those that are neither DMA (:data:`DMA_OPS`) nor
    collectives (:data:`COLLECTIVES`) by these numbers; 0 is not an operation, so that
    running into zeroed memory halts at once."""
    LOAD_COL = 1
    LOAD_ROW = 2
    LOAD_W = 3
    STORE_W = 4
    FORWARD = 5
    BACKWARD = 6
    WGRAD = 7
    LOSS_GRAD = 8
    DMA_LOAD = 9
    DMA_STORE = 10
    BROADCAST = 11
    REDUCE = 12
    ALL_GATHER = 13
    REDUCE_SCATTER = 14
    ALL_REDUCE = 15
    SEND = 16
    GATHER = 17


#: The collective operations: they run on the ring of a cluster (``cluster.cores >= 2``),
#: every core taking part; ``sim/golden/ring.py`` defines their schedules, values and cycles.
COLLECTIVES = frozenset({Opcode.BROADCAST, Opcode.REDUCE, Opcode.ALL_GATHER,
                         Opcode.REDUCE_SCATTER, Opcode.ALL_REDUCE, Opcode.SEND})
#: Largest cluster the ``cores`` mask addresses.
MAX_CORES = 16


#: One line per operation, for the reference.
OP_DOC = {
    Opcode.LOAD_COL: "Scratchpad matrix `sp` (`n` x `batch`) into the activation banks over "
                     "the column buses: `X[j][b]` to every PE of column `j mod C` at "
                     "`abase + (j div C) * batch + b`; padding elements load as +0.",
    Opcode.LOAD_ROW: "Scratchpad matrix `sp` (`m` x `batch`) into the activation banks over "
                     "the row buses: `dY[i][b]` to every PE of row `i mod R` at "
                     "`abase + (i div R) * batch + b`.",
    Opcode.LOAD_W: "Weights `W` (`m` x `n`, scratchpad matrix `sp` with `n` columns of `m`) "
                   "into the weight banks: `W[i][j]` to PE `(i mod R, j mod C)` at "
                   "`wbase + (i div R) * ceil(n/C) + (j div C)`; the padding of the last "
                   "tiles loads as +0.",
    Opcode.STORE_W: "The weight banks back into scratchpad matrix `sp` (the inverse of "
                    "LOAD_W).",
    Opcode.FORWARD: "`Y = W X` into scratchpad matrix `sp` (`m` x `batch`); `flag`: ReLU. "
                    "`fill` (on a square PE array, `R = C`): `Y` also into the activation "
                    "banks at `abase2`, as LOAD_COL of `sp` with `n = m` and "
                    "`abase = abase2` would put it after the command; a fill region that "
                    "overlaps `X` at `abase` is refused (`ACT_RANGE`).",
    Opcode.BACKWARD: "`dX = W^T dY` into scratchpad matrix `sp` (`n` x `batch`); `flag`: "
                     "multiply by the ReLU derivative of the activations in `sp2`. `fill` "
                     "(on a square PE array, `R = C`): `dX` also into the activation banks "
                     "at `abase2`, as LOAD_ROW of `sp` with `m = n` and `abase = abase2` "
                     "would put it after the command; a fill region that overlaps `dY` "
                     "at `abase` is refused (`ACT_RANGE`).",
    Opcode.WGRAD: "`dW = dY X^T` (dY at `abase2`, X at `abase`), then `W += q(dW) * "
                  "q(scalar)` with `scalar = -lr`; `flag`: momentum, `v = dW + q(v) * "
                  "q(scalar2)` with the velocities at `wbase2`, then `W += q(v) * q(scalar)`. "
                  "`fused` (without `flag`, on a core of one MAC stream): the update in the "
                  "gradient pass, `W = W + sum_b q(dY[i][b]) * q(X[j][b])` accumulated from "
                  "the fp32 weight in increasing `b`, with `-lr` carried in dY (`scalar` is "
                  "not used); with `flag` or a dual-precision core `fused` is ignored.",
    Opcode.LOSS_GRAD: "`dY = (softmax(Y) - onehot(labels)) * scalar` for `Y` in `sp` "
                      "(`m` x `batch`), into `sp2`; the labels are integer words, element 0 "
                      "of each column of `sp3`; `scalar = 1/batch` (`-lr/batch` for the fused "
                      "update of WGRAD).",
    Opcode.DMA_LOAD: "Memory into scratchpad matrix `sp` (`n` x `batch`): column `b` is `n` "
                     "consecutive 32-bit words at byte address `mem_addr + b * mem_stride`. "
                     "Whole beats are read; the words of a column's last beat past `n` are "
                     "dropped, and the scratchpad keeps what it held there.",
    Opcode.DMA_STORE: "Scratchpad matrix `sp` (`n` x `batch`) into memory, laid out as for "
                      "DMA_LOAD; only the `n` words of each column are written (byte "
                      "strobes).",
    Opcode.BROADCAST: "Core `root`'s matrix `sp` (`n` x `batch`) into matrix `sp2` of every "
                      "other core, along the ring from `root`.",
    Opcode.REDUCE: "The sum over the cores of matrix `sp` (`n` x `batch`) into core `root`'s "
                   "matrix `sp2`, added along the ring from core `root + 1` to `root`.",
    Opcode.ALL_GATHER: "Every core's matrix `sp` (`n` x `batch`) into rows `k*n` to "
                       "`k*n + n - 1` (core `k`'s) of matrix `sp2` (`cores*n` x `batch`) "
                       "of every core. `flag`: in place, core `k`'s own rows are already "
                       "in rows `k*n` to `k*n + n - 1` of its `sp2` (as a per-core command "
                       "wrote them), so `sp` is not read and those rows are not written; "
                       "it saves the copy of the own chunk, a whole step's cycles.",
    Opcode.REDUCE_SCATTER: "The sum over the cores of rows `k*n` to `k*n + n - 1` of matrix "
                           "`sp` (`cores*n` x `batch`) into matrix `sp2` (`n` x `batch`) of "
                           "core `k`; chunk `k` is added along the ring from core `k + 1` "
                           "to `k`.",
    Opcode.ALL_REDUCE: "The sum over the cores of matrix `sp` (`n` x `batch`) into matrix "
                       "`sp2` of every core: a reduce-scatter of chunks of `ceil(n/cores)` "
                       "rows, then an all-gather of the chunks.",
    Opcode.SEND: "Core `root`'s matrix `sp` (`n` x `batch`) into core `peer`'s matrix `sp2`, "
                 "along the ring.",
    Opcode.GATHER: "A table-driven copy and sum of scratchpad words into matrix `sp2` (`n` x "
                   "`batch`; im2col, col2im, flatten). The source is the window of `sp_lpc` "
                   "lines from line `sp_base` (word `e` is bank `e mod S` of line "
                   "`sp_base + e div S`); the table is matrix `sp3` (`m*n` x `batch`) of "
                   "unsigned words, `m` taps per element: `sp2[r][b]` is `v0` with `m = 1` "
                   "(every bit copied) and `((v0 + v1) + v2) + ...` (fp32 adds, round to "
                   "nearest even) with more, `v_t` the window word `sp3[r*m + t][b]`, or +0 "
                   "where that entry is at or past `sp_lpc * S`. `flag`: the result is kept "
                   "where the element `sp2` held before is positive, else +0 (BACKWARD's "
                   "mask). A window that overlaps `sp2` has an undefined result.",
}


class ErrorCode(enum.IntEnum):
    """The ``ERROR_CODE`` register. A command is checked in this order; the first failing
    check gives the code (:func:`check`)."""
    NONE = 0
    #: The operation field holds no operation.
    BAD_OPCODE = 1
    #: A reserved bit is set.
    RESERVED_BITS = 2
    #: A size the operation needs (``m``, ``n``, ``batch``) is zero.
    ZERO_SIZE = 3
    #: A weight-bank region (``wbase``, ``wbase2``) runs past the weight bank.
    WEIGHT_RANGE = 4
    #: An activation-bank region (``abase``, ``abase2``) runs past the activation bank, or
    #: two regions that must be apart overlap (:data:`DISJOINT`: a fill and what its
    #: command reads).
    ACT_RANGE = 5
    #: A scratchpad matrix runs past the scratchpad, or its columns are shorter than its
    #: rows need (``lpc * banks < rows``).
    SCRATCHPAD_RANGE = 6
    #: ``mem_addr`` or ``mem_stride`` is not a multiple of the bus width in bytes.
    DMA_ALIGN = 7
    #: The memory region of a DMA runs outside the window ``[DMA_BASE, DMA_LAST]``.
    DMA_RANGE = 8
    #: The command buffer is not aligned to :data:`COMMAND_BYTES` or runs outside the
    #: window (checked at the doorbell; index 0).
    FETCH_RANGE = 9
    #: The memory answered a burst with SLVERR or DECERR. The command may have been
    #: partly executed.
    BUS_ERROR = 10
    #: The core refused a command that passed the checks (never expected).
    CORE_ERROR = 11
    #: A core number or mask names a core the machine does not have: a ``cores`` bit or a
    #: ``root`` / ``peer`` past the last core, ``root == peer`` for ``SEND``, a collective
    #: on a machine of one core, or ``DMA_STORE`` from more than one core.
    BAD_CORE = 12


@dataclass(frozen=True)
class Field:
    """A field of a command: ``width`` bits from bit ``lsb`` of word ``word`` (a field
    wider than 32 bits continues in the next words)."""
    name: str
    word: int
    lsb: int
    width: int
    doc: str

    @property
    def bit(self):
        """Position of the field's least significant bit in the whole command."""
        return 32 * self.word + self.lsb

    @property
    def mask(self):
        return (1 << self.width) - 1


#: Every field. ``mem_addr`` shares words 13 and 14 with ``scalar`` and ``scalar2`` (no
#: operation uses both: :func:`shared_fields`).
FIELDS = (
    Field("op", 0, 0, 8, "operation (`Opcode`)"),
    Field("flag", 0, 8, 1, "FORWARD: ReLU; BACKWARD: ReLU mask; WGRAD: momentum; "
          "ALL_GATHER: in place; GATHER: mask by the destination's old values"),
    Field("fused", 0, 9, 1, "WGRAD: the update fused into the gradient pass (dY carries "
                            "`-lr`)"),
    Field("fill", 0, 10, 1, "FORWARD, BACKWARD: the results also into the activation banks "
                            "at `abase2` (the load of the next command)"),
    Field("root", 0, 16, 8, "collectives: the root core (BROADCAST, REDUCE) or the sending "
                            "core (SEND)"),
    Field("peer", 0, 24, 8, "SEND: the receiving core"),
    Field("m", 1, 0, 16, "rows of W (output features); LOAD_ROW: elements per column; "
                         "GATHER: taps (table entries per element)"),
    Field("n", 1, 16, 16, "columns of W (input features); LOAD_COL, DMA: elements per "
                          "column"),
    Field("batch", 2, 0, 16, "columns of the activation matrices (samples); DMA: columns"),
    Field("cores", 2, 16, 16, "core and DMA operations: the cores that run it, a bit mask "
                              "(0: every core); DMA_STORE: exactly one core"),
    Field("wbase", 3, 0, 20, "weight-bank word address of W"),
    Field("wbase2", 4, 0, 20, "WGRAD with momentum: weight-bank word address of the "
                              "velocities"),
    Field("abase", 5, 0, 20, "activation-bank word address: the loaded matrix; X "
                             "(FORWARD, WGRAD); dY (BACKWARD)"),
    Field("abase2", 6, 0, 20, "WGRAD: activation-bank word address of dY; FORWARD, "
                              "BACKWARD with `fill`: where the results are loaded"),
    Field("sp_base", 7, 0, 24, "scratchpad matrix: first line (GATHER: of the source window)"),
    Field("sp_lpc", 8, 0, 24, "scratchpad matrix: lines per column (GATHER: lines of the "
                              "source window)"),
    Field("sp2_base", 9, 0, 24, "second scratchpad matrix (BACKWARD: activations; "
                                "LOSS_GRAD: dY; GATHER: the destination): first line"),
    Field("sp2_lpc", 10, 0, 24, "second scratchpad matrix: lines per column"),
    Field("sp3_base", 11, 0, 24, "third scratchpad matrix (LOSS_GRAD: labels; GATHER: the "
                                 "table): first line"),
    Field("sp3_lpc", 12, 0, 24, "third scratchpad matrix: lines per column"),
    Field("scalar", 13, 0, 32, "fp32: WGRAD `-lr`; LOSS_GRAD `1/batch` (fused update: "
                               "`-lr/batch`)"),
    Field("scalar2", 14, 0, 32, "fp32: WGRAD with momentum `mu`"),
    Field("mem_addr", 13, 0, 64, "DMA: byte address of column 0 in memory (words 13-14)"),
    Field("mem_stride", 15, 0, 32, "DMA: bytes from one column to the next in memory"),
)
FIELD = {f.name: f for f in FIELDS}


def shared_fields():
    """The pairs of command fields that share bits, as ``(first, second, words)``: two
    field names in the order of :data:`FIELDS` and the words where they overlap. No
    operation uses both fields of a pair (:data:`OP_FIELDS`)."""
    pairs = []
    for i, a in enumerate(FIELDS):
        for b in FIELDS[i + 1:]:
            lo, hi = max(a.bit, b.bit), min(a.bit + a.width, b.bit + b.width)
            if lo < hi:
                pairs.append((a.name, b.name, tuple(range(lo // 32, (hi - 1) // 32 + 1))))
    return tuple(pairs)


_SP = ("sp_base", "sp_lpc")
_SP2 = ("sp2_base", "sp2_lpc")
_SP3 = ("sp3_base", "sp3_lpc")
#: The fields each operation uses (``op`` aside).
OP_FIELDS = {
    Opcode.LOAD_COL: ("n", "batch", "abase") + _SP,
    Opcode.LOAD_ROW: ("m", "batch", "abase") + _SP,
    Opcode.LOAD_W: ("m", "n", "wbase") + _SP,
    Opcode.STORE_W: ("m", "n", "wbase") + _SP,
    Opcode.FORWARD: ("flag", "fill", "m", "n", "batch", "wbase", "abase", "abase2") + _SP,
    Opcode.BACKWARD: ("flag", "fill", "m", "n", "batch", "wbase", "abase", "abase2") + _SP
                     + _SP2,
    Opcode.WGRAD: ("flag", "fused", "m", "n", "batch", "wbase", "wbase2", "abase", "abase2",
                   "scalar", "scalar2"),
    Opcode.LOSS_GRAD: ("m", "batch", "scalar") + _SP + _SP2 + _SP3,
    Opcode.DMA_LOAD: ("n", "batch", "mem_addr", "mem_stride") + _SP,
    Opcode.DMA_STORE: ("n", "batch", "mem_addr", "mem_stride") + _SP,
    Opcode.BROADCAST: ("root", "n", "batch") + _SP + _SP2,
    Opcode.REDUCE: ("root", "n", "batch") + _SP + _SP2,
    Opcode.ALL_GATHER: ("flag", "n", "batch") + _SP + _SP2,
    Opcode.REDUCE_SCATTER: ("n", "batch") + _SP + _SP2,
    Opcode.ALL_REDUCE: ("n", "batch") + _SP + _SP2,
    Opcode.SEND: ("root", "peer", "n", "batch") + _SP + _SP2,
    Opcode.GATHER: ("flag", "m", "n", "batch") + _SP + _SP2 + _SP3,
}
# Core and DMA operations name the cores that run them.
for _op in Opcode:
    if _op not in COLLECTIVES:
        OP_FIELDS[_op] = OP_FIELDS[_op] + ("cores",)

#: Sizes each operation needs to be non-zero.
NEEDS = {
    Opcode.LOAD_COL: ("n", "batch"), Opcode.LOAD_ROW: ("m", "batch"),
    Opcode.LOAD_W: ("m", "n"), Opcode.STORE_W: ("m", "n"),
    Opcode.FORWARD: ("m", "n", "batch"), Opcode.BACKWARD: ("m", "n", "batch"),
    Opcode.WGRAD: ("m", "n", "batch"), Opcode.LOSS_GRAD: ("m", "batch"),
    Opcode.DMA_LOAD: ("n", "batch"), Opcode.DMA_STORE: ("n", "batch"),
    Opcode.GATHER: ("m", "n", "batch"),
    **{op: ("n", "batch") for op in COLLECTIVES},
}


def _reserved_mask():
    """Per word, the bits outside every field."""
    used = [0] * COMMAND_WORDS
    for f in FIELDS:
        value = f.mask << f.bit
        for w in range(COMMAND_WORDS):
            used[w] |= (value >> (32 * w)) & 0xFFFF_FFFF
    return tuple(~u & 0xFFFF_FFFF for u in used)


#: Reserved bits of each word (must be zero).
RESERVED = _reserved_mask()


def _is_bool(value):
    """``value`` is a ``bool`` (Python or NumPy, whose type is ``numpy.bool`` from NumPy 2
    and ``numpy.bool_`` before)."""
    return isinstance(value, bool) or type(value).__name__ in ("bool", "bool_")


def _op_name(op):
    try:
        return Opcode(op).name
    except ValueError:
        return str(op)


def encode(op, **fields):
    """The words of one command.

    Parameters
    ----------
    op : Opcode, int or str
        The operation (``"FORWARD"``, ``Opcode.FORWARD`` or its number).
    **fields : int
        Values of the fields ``op`` uses (others are refused); missing fields are zero.
        Negative values and values wider than the field are refused.

    Returns
    -------
    tuple of int
        :data:`COMMAND_WORDS` 32-bit words.
    """
    if isinstance(op, str):
        try:
            op = Opcode[op.upper()]
        except KeyError:
            raise ValueError(f"op must be one of {', '.join(o.name for o in Opcode)}, "
                             f"not {op!r}") from None
    else:
        try:
            op = Opcode(op)
        except ValueError:
            raise ValueError(f"op must be an Opcode, not {op!r}") from None
    value = int(op)
    for name, v in fields.items():
        if name not in FIELD or name == "op":
            raise ValueError(f"{name!r} is not a command field; the fields are "
                             f"{', '.join(f.name for f in FIELDS[1:])}")
        if name not in OP_FIELDS[op]:
            if v:
                raise ValueError(f"field {name} is not used by {op.name}, so it must be 0, "
                                 f"not {v!r}")
            continue
        f = FIELD[name]
        # No coercion: int() would take 1.5 as 1 and "7" as 7. A bool is a bit, so it
        # is a value only of a 1-bit field (flag).
        if not (is_int(v) or f.width == 1 and _is_bool(v)):
            raise ValueError(f"field {name} must be an integer, not {v!r}")
        if not 0 <= v <= f.mask:
            raise ValueError(f"field {name} of {op.name} must be in [0, {f.mask}], not {v!r}")
        value |= int(v) << f.bit
    return tuple((value >> (32 * w)) & 0xFFFF_FFFF for w in range(COMMAND_WORDS))


def encode_stream(commands):
    """Words of a list of commands, each a dict with ``op`` and its fields (a flat list).

    Raises
    ------
    ValueError
        Naming the command by its index: it is not a mapping, has no ``op``, or
        :func:`encode` refuses it.
    """
    words = []
    for index, command in enumerate(commands):
        if not isinstance(command, Mapping):
            raise ValueError(f"command {index} must be a table of op and fields, "
                             f"not {command!r}")
        if "op" not in command:
            raise ValueError(f"command {index}: op must be given (the operation), "
                             f"not {dict(command)!r}")
        fields = dict(command)
        op = fields.pop("op")
        try:
            words.extend(encode(op, **fields))
        except ValueError as exc:
            raise ValueError(f"command {index}: {exc}") from None
    return words


def decode(words):
    """Every field of one command (``op`` as an int, it may hold no :class:`Opcode`), plus
    ``reserved``: the reserved bits that are set (0 for a well-formed command).

    ``words`` are integers (Python or NumPy); each is taken modulo 2**32, as a 32-bit
    word of memory.
    """
    words = list(words)
    for index, word in enumerate(words):
        if not is_int(word):
            raise ValueError(f"word {index} must be an integer, not {word!r}")
    words = [int(w) & 0xFFFF_FFFF for w in words]
    if len(words) != COMMAND_WORDS:
        raise ValueError(f"a command is {COMMAND_WORDS} words, not {len(words)}")
    value = sum(w << (32 * i) for i, w in enumerate(words))
    fields = {f.name: (value >> f.bit) & f.mask for f in FIELDS}
    fields["reserved"] = sum((w & r) << (32 * i) for i, (w, r) in
                             enumerate(zip(words, RESERVED)))
    return fields


def decode_stream(words):
    """:func:`decode` of every command in a flat list of words."""
    words = list(words)
    if len(words) % COMMAND_WORDS:
        raise ValueError(f"a command stream is a multiple of {COMMAND_WORDS} words, "
                         f"not {len(words)}")
    return [decode(words[i:i + COMMAND_WORDS]) for i in range(0, len(words), COMMAND_WORDS)]


@dataclass(frozen=True)
class Limits:
    """What a command is checked against: the machine's sizes and the DMA window.

    Members
    -------
    rows, cols : int
        The PE array.
    banks : int
        Scratchpad banks (words per line).
    weight_words, act_words : int
        Depth of each PE's weight and activation banks.
    sp_lines : int
        Scratchpad lines.
    beat_bytes : int
        Bytes per AXI beat.
    dma_base, dma_last : int
        The DMA window: byte addresses ``dma_base`` to ``dma_last`` inclusive.
    cores : int
        Cores of the cluster.
    """
    rows: int
    cols: int
    banks: int
    weight_words: int
    act_words: int
    sp_lines: int
    beat_bytes: int
    dma_base: int = 0
    dma_last: int = (1 << 32) - 1
    cores: int = 1

    @classmethod
    def from_config(cls, config, dma_base=0, dma_last=None):
        """The limits of ``config``'s machine; by default the window is the whole address
        space (the registers' reset values)."""
        rows, cols, banks = config.core.rows, config.core.cols, config.core.banks
        if dma_last is None:
            dma_last = (1 << config.host.axi_addr_width) - 1
        return cls(rows, cols, banks, config.pe.weight_words, config.pe.act_words,
                   config.core.scratchpad_words // banks, config.host.axi_data_width // 8,
                   dma_base, dma_last, config.cluster.cores)


#: The terms a region's shape is made of (:class:`Region`).
SIZE_TERMS = {
    "m": "the field `m`",
    "n": "the field `n`",
    "batch": "the field `batch`",
    "mt": "`ceil(m/R)`: the row tiles of `W` on the `R x C` PE array",
    "nt": "`ceil(n/C)`: the column tiles of `W`",
    "cores": "the cores of the cluster",
}
#: The memories a region is in: a PE's weight bank and activation bank (words), the
#: scratchpad (a matrix) and memory (the bytes a DMA reads or writes).
MEMORIES = ("weight", "act", "scratchpad", "memory")


@dataclass(frozen=True)
class Region:
    """A region that an operation touches, checked before the command runs (:func:`check`).

    Parameters
    ----------
    memory : str
        One of :data:`MEMORIES`.
    base : str
        Where the region starts: a field (``wbase``, ``abase2``, ``mem_addr``); for a
        scratchpad matrix the prefix of its two fields (``sp``: ``sp_base`` and ``sp_lpc``).
    rows, cols : str
        Its shape, each ``"1"`` or a product of :data:`SIZE_TERMS` joined by ``*``. A bank
        region is ``rows * cols`` words from ``base``; a scratchpad matrix has ``cols``
        columns of ``rows`` elements; a memory region has ``cols`` columns of ``rows``
        32-bit words, ``mem_stride`` bytes apart.
    when : str or None
        A one-bit field that must be set for the operation to touch the region.
    """
    memory: str
    base: str
    rows: str
    cols: str
    when: str | None = None

    def __post_init__(self):
        if self.memory not in MEMORIES:
            raise ValueError(f"memory must be one of {', '.join(MEMORIES)}, "
                             f"not {self.memory!r}")
        for expr in (self.rows, self.cols):
            if expr != "1" and not set(expr.split("*")) <= set(SIZE_TERMS):
                raise ValueError(f"a region's rows and cols must be 1 or products of "
                                 f"{', '.join(SIZE_TERMS)}, not {expr!r}")
        if self.when is not None and FIELD[self.when].width != 1:
            raise ValueError(f"when must name a one-bit field, not {self.when!r}")

    @property
    def row_terms(self):
        """The terms of ``rows`` (empty for 1)."""
        return () if self.rows == "1" else tuple(self.rows.split("*"))

    @property
    def col_terms(self):
        """The terms of ``cols`` (empty for 1)."""
        return () if self.cols == "1" else tuple(self.cols.split("*"))

    def shape(self, values):
        """``(rows, cols)`` for the terms' ``values`` (a mapping)."""
        return (math.prod(values[t] for t in self.row_terms),
                math.prod(values[t] for t in self.col_terms))

    def touched(self, fields):
        """Whether a command with ``fields`` touches the region."""
        return self.when is None or bool(fields[self.when])


def _weights(base="wbase", when=None):
    return Region("weight", base, "mt", "nt", when)


def _matrix(prefix, rows, cols="batch", when=None):
    return Region("scratchpad", prefix, rows, cols, when)


_DMA_REGION = Region("memory", "mem_addr", "n", "batch")
_COLLECTIVE_REGIONS = (_matrix("sp", "n"), _matrix("sp2", "n"))

#: The regions each operation touches: the one definition that :func:`check`, the RTL's
#: checker (``hw.command_check``) and the reference (:func:`markdown`) are made from.
OP_REGIONS = {
    Opcode.LOAD_COL: (Region("act", "abase", "nt", "batch"), _matrix("sp", "n")),
    Opcode.LOAD_ROW: (Region("act", "abase", "mt", "batch"), _matrix("sp", "m")),
    Opcode.LOAD_W: (_weights(), _matrix("sp", "m", "n")),
    Opcode.STORE_W: (_weights(), _matrix("sp", "m", "n")),
    Opcode.FORWARD: (_weights(), Region("act", "abase", "nt", "batch"), _matrix("sp", "m"),
                     Region("act", "abase2", "mt", "batch", when="fill")),
    Opcode.BACKWARD: (_weights(), Region("act", "abase", "mt", "batch"), _matrix("sp", "n"),
                      _matrix("sp2", "n", when="flag"),
                      Region("act", "abase2", "nt", "batch", when="fill")),
    Opcode.WGRAD: (_weights(), _weights("wbase2", when="flag"),
                   Region("act", "abase", "nt", "batch"), Region("act", "abase2", "mt", "batch")),
    Opcode.LOSS_GRAD: (_matrix("sp", "m"), _matrix("sp2", "m"), _matrix("sp3", "1")),
    Opcode.DMA_LOAD: (_matrix("sp", "n"), _DMA_REGION),
    Opcode.DMA_STORE: (_matrix("sp", "n"), _DMA_REGION),
    Opcode.BROADCAST: _COLLECTIVE_REGIONS,
    Opcode.REDUCE: _COLLECTIVE_REGIONS,
    Opcode.ALL_GATHER: (_matrix("sp", "n"), _matrix("sp2", "cores*n")),
    Opcode.REDUCE_SCATTER: (_matrix("sp", "cores*n"), _matrix("sp2", "n")),
    Opcode.ALL_REDUCE: _COLLECTIVE_REGIONS,
    Opcode.SEND: _COLLECTIVE_REGIONS,
    # The window is one column of `sp_lpc` lines: a 1 x 1 matrix is in range exactly when
    # `sp_lpc >= 1` and `sp_base + sp_lpc <= lines`.
    Opcode.GATHER: (_matrix("sp", "1", "1"), _matrix("sp2", "n"), _matrix("sp3", "m*n")),
}
#: Pairs of an operation's regions that must not overlap (``ACT_RANGE`` otherwise): the
#: activation-bank region that FORWARD and BACKWARD read, and the one their ``fill`` writes
#: while they still read (a fill is the load after the command, so it must not change
#: what the command reads).
DISJOINT = {op: (OP_REGIONS[op][1], OP_REGIONS[op][-1])
            for op in (Opcode.FORWARD, Opcode.BACKWARD)}

#: The operations that move data between memory and the scratchpad (they have a memory
#: region).
DMA_OPS = frozenset(op for op, regions in OP_REGIONS.items()
                    if any(r.memory == "memory" for r in regions))

#: Core operations that read their core's scratchpad through its read port (``BACKWARD``
#: only with its ReLU derivative, ``flag``: the mask words), and those that write it
#: through its write port. The DMA engine's transfers take over one of those ports (a load
#: the write port, a store the read port), which decides what a transfer may run beside
#: (``hw.controller``, and ``gen.perf.stream.dma_beside`` in the model).
SP_READERS = frozenset({Opcode.LOAD_COL, Opcode.LOAD_ROW, Opcode.LOAD_W, Opcode.LOSS_GRAD,
                        Opcode.BACKWARD, Opcode.GATHER})
SP_WRITERS = frozenset({Opcode.STORE_W, Opcode.FORWARD, Opcode.BACKWARD, Opcode.LOSS_GRAD,
                        Opcode.GATHER})

#: The loads a core may take in its side slot while it runs a ``SIDE_HOST`` command: they use
#: the mover, the scratchpad's read port and the activation banks' write port, none of which
#: ``WGRAD`` uses (``hw.sequencer``; the controller's rule on their activation-bank regions,
#: ``hw.controller``, and ``gen.perf.stream.load_beside`` in the model).
SIDE_OPS = frozenset({Opcode.LOAD_COL, Opcode.LOAD_ROW})
SIDE_HOST = Opcode.WGRAD


def size_values(fields, limits):
    """The values of :data:`SIZE_TERMS` for a command's ``fields`` on a machine of
    ``limits``."""
    return dict(m=fields["m"], n=fields["n"], batch=fields["batch"],
                mt=ceil_div(fields["m"], limits.rows), nt=ceil_div(fields["n"], limits.cols),
                cores=limits.cores)


def dma_region(c, beat_bytes):
    """First and last byte address a DMA command touches (whole beats)."""
    words, columns = _DMA_REGION.shape(c)
    column = ceil_div(4 * words, beat_bytes) * beat_bytes
    first = c[_DMA_REGION.base]
    return first, first + (columns - 1) * c["mem_stride"] + column - 1


def check(fields, limits):
    """The error code of a decoded command (:func:`decode`) on a machine with ``limits``:
    :attr:`ErrorCode.NONE` if it may run. The checks run in the order of :class:`ErrorCode`.
    """
    c = fields
    try:
        op = Opcode(c["op"])
    except ValueError:
        return ErrorCode.BAD_OPCODE
    if c.get("reserved", 0):
        return ErrorCode.RESERVED_BITS
    if any(c[size] == 0 for size in NEEDS[op]):
        return ErrorCode.ZERO_SIZE
    values = size_values(c, limits)
    regions = [r for r in OP_REGIONS[op] if r.touched(c)]

    def past(memory, words):
        return any(c[r.base] + math.prod(r.shape(values)) > words
                   for r in regions if r.memory == memory)

    if past("weight", limits.weight_words):
        return ErrorCode.WEIGHT_RANGE
    if past("act", limits.act_words) or _overlap(op, c, values):
        return ErrorCode.ACT_RANGE
    for r in regions:
        if r.memory != "scratchpad":
            continue
        base, lpc = c[f"{r.base}_base"], c[f"{r.base}_lpc"]
        rows, columns = r.shape(values)
        # A lane access addresses at most 2**16 elements of a column.
        if (lpc * limits.banks < rows or base + columns * lpc > limits.sp_lines
                or rows > 0xFFFF):
            return ErrorCode.SCRATCHPAD_RANGE
    if any(r.memory == "memory" for r in regions):
        if c["mem_addr"] % limits.beat_bytes or c["mem_stride"] % limits.beat_bytes:
            return ErrorCode.DMA_ALIGN
        first, last = dma_region(c, limits.beat_bytes)
        if first < limits.dma_base or last > limits.dma_last:
            return ErrorCode.DMA_RANGE
    if core_error(op, c, limits.cores):
        return ErrorCode.BAD_CORE
    return ErrorCode.NONE


def _overlap(op, c, values):
    """Two regions of :data:`DISJOINT` that the command touches overlap."""
    if op not in DISJOINT:
        return False
    a, b = DISJOINT[op]
    if not (a.touched(c) and b.touched(c)):
        return False
    a0, b0 = c[a.base], c[b.base]
    return a0 < b0 + math.prod(b.shape(values)) and b0 < a0 + math.prod(a.shape(values))


def core_mask(c, cores):
    """The cores a core or DMA command runs on, as a bit mask (``cores = 0``: all)."""
    return c["cores"] or (1 << cores) - 1


def core_error(op, c, cores):
    """Whether a command names cores the machine lacks (:attr:`ErrorCode.BAD_CORE`)."""
    if op in COLLECTIVES:
        if cores < 2 or c["root"] >= cores:
            return True
        return op == Opcode.SEND and (c["peer"] >= cores or c["peer"] == c["root"])
    if c["cores"] >> cores:
        return True
    mask = core_mask(c, cores)
    return op == Opcode.DMA_STORE and mask & (mask - 1) != 0


def check_fetch(cmd_base, cmd_count, limits):
    """The error code of starting a run of ``cmd_count`` commands at byte ``cmd_base``."""
    if cmd_count == 0:
        return ErrorCode.NONE
    last = cmd_base + cmd_count * COMMAND_BYTES - 1
    if cmd_base % COMMAND_BYTES or cmd_base < limits.dma_base or last > limits.dma_last:
        return ErrorCode.FETCH_RANGE
    return ErrorCode.NONE


# ---------------------------------------------------------------------------------------
# Registers
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BitField:
    """A bit-field of a register: ``width`` bits from bit ``lsb``."""
    name: str
    lsb: int
    width: int
    doc: str

    def __post_init__(self):
        if not (0 <= self.lsb and 1 <= self.width and self.lsb + self.width <= 32):
            raise ValueError(f"bit-field {self.name} must lie in bits 31:0, not "
                             f"{self.lsb + self.width - 1}:{self.lsb}")

    @property
    def mask(self):
        """The field's bits in place in the register."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def bits(self):
        """The field's bits as the reference writes them: ``"bits 7:0"``, ``"bit 2"``."""
        msb = self.lsb + self.width - 1
        return f"bits {msb}:{self.lsb}" if self.width > 1 else f"bit {self.lsb}"


@dataclass(frozen=True)
class Register:
    """A 32-bit register of the AXI4-Lite slave at byte ``offset``.

    ``access``: ``"r"`` (read-only; a write answers SLVERR), ``"rw"``, ``"w1c"`` (write
    ones to clear) or ``"w"`` (write-only; reads as 0). ``fields``: the bit-fields of a
    register that packs several values or holds fewer than 32 bits (:class:`BitField`, the
    one definition of where each value sits); bits outside them read as 0. A register
    without fields is one 32-bit value.
    """
    name: str
    offset: int
    access: str
    doc: str
    reset: int = 0
    fields: tuple = ()

    def __post_init__(self):
        used = 0
        for f in self.fields:
            if used & f.mask:
                raise ValueError(f"bit-field {f.name} of {self.name} overlaps another field")
            used |= f.mask

    @property
    def readable(self):
        return self.access != "w"

    @property
    def writable(self):
        return self.access != "r"

    @property
    def width(self):
        """Bits the register holds: up to its highest field, or 32."""
        if not self.fields:
            return 32
        return max(f.lsb + f.width for f in self.fields)

    def field(self, name):
        """The bit-field ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no bit-field {name!r}; its fields are "
                       f"{', '.join(f.name for f in self.fields) or 'none'}")

    def pack(self, **values):
        """The register's value from the values of its fields (missing fields are 0);
        a value wider than its field is refused."""
        word = 0
        for name, value in values.items():
            f = self.field(name)
            if not 0 <= value < 1 << f.width:
                raise ValueError(f"{self.name}.{name} must fit in {f.width} bits, "
                                 f"not {value!r}")
            word |= value << f.lsb
        return word

    def unpack(self, value):
        """The values of the register's fields in ``value``."""
        return {f.name: (value >> f.lsb) & ((1 << f.width) - 1) for f in self.fields}

    @property
    def bitfields(self):
        """Every bit-field of the register, as the C header and the register description
        (``gen.emit.regmap``) give them: :attr:`fields`, or for a register that is one
        32-bit value a single field ``value`` over bits 31:0."""
        if self.fields:
            return self.fields
        return (BitField("value", 0, 32, self.doc),)

    @property
    def description(self):
        """The reference's text: the fields and their bits, then ``doc``."""
        fields = "; ".join(f"`{f.name}`: {f.doc} ({f.bits})" for f in self.fields)
        return "; ".join(part for part in (fields, self.doc) if part)


#: The counters, each a 64-bit value in two registers (``_LO``, ``_HI``). They are
#: cumulative: each counts over every run since reset or since the last write of 1 to
#: ``COUNTER_CLEAR.clear``, whichever came later (a doorbell does not reset them). Read them
#: while the accelerator is idle (they do not change then).
COUNTERS = (
    ("CYCLES", "cycles a run was going, from the doorbell to its end (done or halted), "
     "summed over the runs"),
    ("COMMANDS", "commands executed (a command that failed its check is not counted)"),
    ("FETCH_BEATS", "AXI read beats of command fetch"),
    ("DMA_READ_BEATS", "AXI read beats of DMA_LOAD"),
    ("DMA_WRITE_BEATS", "AXI write beats of DMA_STORE"),
    ("DMA_CYCLES", "cycles spent in DMA commands"),
    ("CORE_CYCLES", "cycles the cores were busy, summed over their commands (a load run "
     "beside a WGRAD adds its own)"),
    ("MAC_SLOTS", "compute slots that issued a MAC to every PE"),
    ("UPDATE_SLOTS", "compute slots that issued a weight update to every PE"),
    ("STALL_CYCLES", "cycles the core's compute engine waited for its reducers"),
    ("BUS_WORDS", "words moved over the core's row and column buses"),
    ("HIGH_PRODUCTS", "products of MAC slots made by a high-precision multiplier, summed over "
     "the PEs"),
    ("LOW_PRODUCTS", "products of MAC slots made by the low-precision multiplier (dual "
     "precision), summed over the PEs"),
    ("BYPASS_PRODUCTS", "products of MAC slots with a zero operand, which need no multiplier, "
     "summed over the PEs; the three product counters add up to the MACs done"),
    ("REUSE_LOOKUPS", "reuse-cache lookups, summed over the PEs (docs/reuse.md)"),
    ("REUSE_HITS", "reuse-cache hits, summed over the PEs: products taken from the cache, "
     "not counted by the three product counters"),
    ("MULTIPLIES_AVOIDED", "reuse-cache hits of pairs with no zero operand: multiplies no "
     "multiplier made"),
    ("RING_WORDS", "32-bit words moved over the ring's links by collectives, summed over "
     "the links"),
    ("RING_CYCLES", "cycles spent in collectives"),
)

_COUNTER_BASE = 0x100


#: Width of the reuse-strength register.
REUSE_STRENGTH_BITS = 5
#: Width of the dual-precision seed register.
DUAL_SEED_BITS = 16


def _registers():
    major, minor = ISA_VERSION
    version = Register("VERSION", 0x04, "r", "", fields=(
        BitField("minor", 0, 16, "command-set minor version"),
        BitField("major", 16, 16, "major version, a change breaks command streams")))
    version = replace(version, reset=version.pack(major=major, minor=minor))
    regs = [
        Register("ID", 0x00, "r", "`0x43485253`, \"CHRS\"", ID_MAGIC),
        version,
        Register("CONFIG_HASH", 0x08, "r", "the first 8 hex digits of the config hash"),
        Register("ARRAY", 0x0C, "r", "", fields=(
            BitField("rows", 0, 8, "PE rows"), BitField("cols", 8, 8, "PE columns"),
            BitField("banks", 16, 8, "scratchpad banks"),
            BitField("mac_latency", 24, 8, "MAC latency"))),
        Register("SCRATCHPAD_WORDS", 0x10, "r", "scratchpad capacity in words"),
        Register("WEIGHT_WORDS", 0x14, "r", "weight-bank depth of a PE in words"),
        Register("ACT_WORDS", 0x18, "r", "activation-bank depth of a PE in words"),
        Register("BUS", 0x1C, "r", "", fields=(
            BitField("data_width", 0, 16, "AXI4 master data width in bits"),
            BitField("addr_width", 16, 8, "address width"))),
        Register("CMD_BASE_LO", 0x20, "rw", "byte address of the command buffer, bits 31:0 "
                 "(a multiple of 64)"),
        Register("CMD_BASE_HI", 0x24, "rw", "byte address of the command buffer, bits 63:32"),
        Register("CMD_COUNT", 0x28, "rw", "commands in the buffer"),
        Register("DOORBELL", 0x2C, "w", "SLVERR while running", fields=(
            BitField("run", 0, 1, "write 1 to run the command buffer"),)),
        Register("STATUS", 0x30, "r", "", fields=(
            BitField("running", 0, 1, "a run is going"),
            BitField("done", 1, 1, "the last run finished every command"),
            BitField("error", 2, 1, "the last run halted"))),
        Register("ERROR_CODE", 0x34, "r", "", fields=(
            BitField("code", 0, 8, "`ErrorCode` of the last run, 0: none"),)),
        Register("ERROR_INDEX", 0x38, "r", "index of the command that failed"),
        Register("IRQ_ENABLE", 0x3C, "rw", "", fields=(
            BitField("done", 0, 1, "interrupt when a run is done"),
            BitField("error", 1, 1, "interrupt when a run halts"))),
        Register("IRQ_STATUS", 0x40, "w1c", "`irq` is high while `IRQ_STATUS & IRQ_ENABLE` "
                 "is not zero", fields=(BitField("done", 0, 1, "a run was done"),
                                        BitField("error", 1, 1, "a run halted"))),
        Register("REUSE_STRENGTH", 0x44, "rw", "SLVERR while running", fields=(
            BitField("strength", 0, REUSE_STRENGTH_BITS,
                     "reuse strength of the reuse cache, 0: off, s: the key drops the s - 1 "
                     "lowest mantissa bits, docs/reuse.md"),)),
        Register("DMA_BASE_LO", 0x48, "rw", "first byte address the DMA and the command fetch "
                 "may touch, bits 31:0"),
        Register("DMA_BASE_HI", 0x4C, "rw", "bits 63:32 of DMA_BASE"),
        Register("DMA_LAST_LO", 0x50, "rw", "last byte address the DMA may touch, bits 31:0 "
                 "(reset: the top of the address space)", 0xFFFF_FFFF),
        Register("DMA_LAST_HI", 0x54, "rw", "bits 63:32 of DMA_LAST (reset: the top of the "
                 "address space)"),
        Register("DUAL_SEED", 0x58, "rw", "SLVERR while running", fields=(
            BitField("seed", 0, DUAL_SEED_BITS, "seed of the `random` dual-precision policy, "
                     "`sim.golden.dual.random_bits`"),)),
        Register("CLUSTER", 0x5C, "r", "", fields=(
            BitField("cores", 0, 8, "cores on the ring"),
            BitField("link_words", 8, 8, "32-bit words per link and cycle"),
            BitField("hop_latency", 16, 8, "cycles per hop"))),
        Register("COUNTER_CLEAR", 0x60, "w", "SLVERR while running", fields=(
            BitField("clear", 0, 1, f"write 1 to set every counter (offset "
                     f"0x{_COUNTER_BASE:X} on) to 0"),)),
    ]
    for index, (name, doc) in enumerate(COUNTERS):
        offset = _COUNTER_BASE + 8 * index
        regs.append(Register(f"{name}_LO", offset, "r", f"{doc}, bits 31:0"))
        regs.append(Register(f"{name}_HI", offset + 4, "r", f"{doc}, bits 63:32"))
    return tuple(regs)


REGISTERS = _registers()
REGISTER = {r.name: r for r in REGISTERS}
#: The registers whose reset value depends on the config: the read-only ones that read the
#: config back, and ``DMA_LAST_HI`` (the top of the config's address space).
CONFIG_REGISTERS = frozenset({"CONFIG_HASH", "ARRAY", "SCRATCHPAD_WORDS", "WEIGHT_WORDS",
                              "ACT_WORDS", "BUS", "CLUSTER", "DMA_LAST_HI"})
#: The read-only registers whose value is their reset value, the same on every machine.
CONSTANT_REGISTERS = frozenset({"ID", "VERSION"})
#: The registers a write to which answers SLVERR and changes nothing while a run is going:
#: the command buffer was checked against the window at the doorbell, and every later fetch
#: relies on that; a seed or a reuse strength changed mid-run would make the results depend
#: on when the write landed, and so would a clear of the counters.
LOCKED_WHILE_RUNNING = ("DOORBELL", "CMD_BASE_LO", "CMD_BASE_HI", "CMD_COUNT", "DMA_BASE_LO",
                        "DMA_BASE_HI", "DMA_LAST_LO", "DMA_LAST_HI", "REUSE_STRENGTH",
                        "DUAL_SEED", "COUNTER_CLEAR")


# ---------------------------------------------------------------------------------------
# Generated documents
# ---------------------------------------------------------------------------------------

def c_header():
    """The C header of the command set and the register map."""
    major, minor = ISA_VERSION
    lines = [
        "/* Chrysalis command set and register map: generated by gen/spec/isa.py, do not edit. */",
        "#ifndef CHRYSALIS_ISA_H",
        "#define CHRYSALIS_ISA_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define CHRYSALIS_ISA_VERSION_MAJOR {major}",
        f"#define CHRYSALIS_ISA_VERSION_MINOR {minor}",
        f"#define CHRYSALIS_ID 0x{ID_MAGIC:08X}u",
        f"#define CHRYSALIS_CMD_WORDS {COMMAND_WORDS}",
        f"#define CHRYSALIS_CMD_BYTES {COMMAND_BYTES}",
        "",
        "/* operations */",
    ]
    lines += [f"#define CHRYSALIS_OP_{op.name} {int(op)}" for op in Opcode]
    lines += ["", "/* error codes (ERROR_CODE) */"]
    lines += [f"#define CHRYSALIS_ERR_{e.name} {int(e)}" for e in ErrorCode]
    lines += ["", "/* command fields: word, first bit, width (a 64-bit field spans two words) */"]
    lines += [f"/* {a} and {b} share word{'s' if len(words) > 1 else ''} "
              f"{', '.join(map(str, words))}: no operation uses both */"
              for a, b, words in shared_fields()]
    for f in FIELDS:
        name = f.name.upper()
        lines += [f"#define CHRYSALIS_CMD_{name}_WORD {f.word}",
                  f"#define CHRYSALIS_CMD_{name}_SHIFT {f.lsb}",
                  f"#define CHRYSALIS_CMD_{name}_WIDTH {f.width}"]
    lines += ["", "/* register byte offsets; the counters (_LO, _HI) count since reset or the",
              "   last write of 1 to COUNTER_CLEAR */"]
    lines += [f"#define CHRYSALIS_REG_{r.name} 0x{r.offset:03X}u" for r in REGISTERS]
    lines += ["", "/* register bit-fields, every field of every register (a register that is one",
              "   32-bit value has the field VALUE): (value & MASK) >> SHIFT */"]
    for r in REGISTERS:
        for f in r.bitfields:
            name = f"CHRYSALIS_REG_{r.name}_{f.name.upper()}"
            lines += [f"#define {name}_SHIFT {f.lsb}", f"#define {name}_MASK 0x{f.mask:08X}u"]
    lines += [
        "",
        "/* A field of a register value, and a value placed in a field: for example",
        "   CHRYSALIS_REG_GET(STATUS_DONE, status),",
        "   CHRYSALIS_REG_PUT(IRQ_ENABLE_DONE, 1) | CHRYSALIS_REG_PUT(IRQ_ENABLE_ERROR, 1). */",
        "#define CHRYSALIS_REG_GET(FIELD, value) \\",
        "    (((uint32_t)(value) & CHRYSALIS_REG_##FIELD##_MASK) >> CHRYSALIS_REG_##FIELD##_SHIFT)",
        "#define CHRYSALIS_REG_PUT(FIELD, value) \\",
        "    (((uint32_t)(value) << CHRYSALIS_REG_##FIELD##_SHIFT) & CHRYSALIS_REG_##FIELD##_MASK)",
        "",
        "/* Set a field of at most 32 bits in a command (an array of CHRYSALIS_CMD_WORDS). */",
        "#define CHRYSALIS_CMD_SET(cmd, FIELD, value) \\",
        "    ((cmd)[CHRYSALIS_CMD_##FIELD##_WORD] = ((cmd)[CHRYSALIS_CMD_##FIELD##_WORD] & \\",
        "        ~(uint32_t)(((1ull << CHRYSALIS_CMD_##FIELD##_WIDTH) - 1u) << "
        "CHRYSALIS_CMD_##FIELD##_SHIFT)) | \\",
        "        (((uint32_t)(value) & (uint32_t)((1ull << CHRYSALIS_CMD_##FIELD##_WIDTH) - 1u)) "
        "<< CHRYSALIS_CMD_##FIELD##_SHIFT))",
        "",
        "/* Set the 64-bit DMA address of a command. */",
        "static inline void chrysalis_cmd_set_mem_addr(uint32_t *cmd, uint64_t addr)",
        "{",
        "    cmd[CHRYSALIS_CMD_MEM_ADDR_WORD] = (uint32_t)addr;",
        "    cmd[CHRYSALIS_CMD_MEM_ADDR_WORD + 1] = (uint32_t)(addr >> 32);",
        "}",
        "",
        "#endif /* CHRYSALIS_ISA_H */",
        "",
    ]
    return "\n".join(lines)


def markdown():
    """The reference of the command set and the register map (``docs/commands.md``)."""
    major, minor = ISA_VERSION
    out = [
        "# Command set and registers",
        "",
        "<!-- Generated by `python -m chrysalis.gen.spec.isa docs/commands.md` from gen/spec/isa.py; do not edit. -->",
        "",
        f"Version {major}.{minor}. A command is {COMMAND_WORDS} little-endian 32-bit words "
        f"({COMMAND_BYTES} bytes). The host writes a stream of commands to memory, sets "
        "`CMD_BASE` and `CMD_COUNT`, and writes 1 to `DOORBELL`; the accelerator fetches, "
        "checks and executes the commands in order, then sets `STATUS.done` and "
        "`IRQ_STATUS.done`. A command that fails its check is not executed at all: the "
        "accelerator halts with `STATUS.error`, `ERROR_CODE` and `ERROR_INDEX`, and keeps "
        "every other state (the scratchpad, the banks, memory) as it was.",
        "",
        "Fields an operation does not use are ignored (write zeros); bits outside every "
        "field are reserved and must be zero. A command whose source and destination "
        "scratchpad regions overlap has an undefined result (like `memcpy`). The core's "
        "data layout is in `docs/architecture.md`; `R x C` is the PE array, `S` the "
        "scratchpad banks, `mt = ceil(m/R)`, `nt = ceil(n/C)`.",
        "",
        "## Operations",
        "",
        "| code | operation | fields | what it does |",
        "|---|---|---|---|",
    ]
    for op in Opcode:
        fields = ", ".join(f"`{f}`" for f in OP_FIELDS[op])
        out.append(f"| {int(op)} | `{op.name}` | {fields} | {OP_DOC[op]} |")
    out += ["", "## Fields", "", "| field | word | bits | meaning |", "|---|---|---|---|"]
    for f in FIELDS:
        if f.width > 32:
            bits = f"{f.word}-{f.word + (f.lsb + f.width - 1) // 32} (64 bits)"
            out.append(f"| `{f.name}` | {bits} | {f.lsb + f.width - 1 - 32}:{f.lsb} of the "
                       f"next | {f.doc} |")
            continue
        out.append(f"| `{f.name}` | {f.word} | {f.lsb + f.width - 1}:{f.lsb} | {f.doc} |")
    shared = [f"`{a}` and `{b}` share word{'s' if len(words) > 1 else ''} "
              f"{', '.join(map(str, words))}" for a, b, words in shared_fields()]
    out += ["", f"Fields that share bits, which no operation uses together: "
            f"{'; '.join(shared)}."]
    out += ["", "## Checks and error codes", "",
            "Before a command runs it is checked in this order; the first failing check "
            "gives the error code. Scratchpad matrices are `(base, lpc, rows, columns)`; one "
            "is in range when `lpc * S >= rows` and `base + columns * lpc <= lines`. A DMA "
            "moves whole beats: column `b` covers `ceil(4n / beat) * beat` bytes from "
            "`mem_addr + b * mem_stride`.", "",
            "| code | name | meaning |", "|---|---|---|"]
    for e in ErrorCode:
        out.append(f"| {int(e)} | `{e.name}` | {_ERROR_DOC[e]} |")
    out += ["", "Regions checked per operation (`OP_REGIONS`; a bank region of `words` from "
            "`base` is in range when `base + words` is at most the bank's depth):", ""]
    out += _regions_markdown()
    out += ["",
            "The controller hands a core command to the cores of its `cores` mask and, "
            "while they run, fetches and checks the next command; a core command waits "
            "until every core it touches has finished the commands before it (but a "
            "`LOAD_COL` / `LOAD_ROW` may start beside a `WGRAD` whose activations it does "
            "not write, and a `WGRAD` beside the last drain of a `FORWARD` / `BACKWARD` "
            "that fills none of its activations), and a collective waits for every core "
            "to be idle or to run a `WGRAD` alone. A `DMA_LOAD` / `DMA_STORE` may start while a "
            "core of its mask still runs a command that does not use the scratchpad port "
            "the transfer takes (a load the write port, a store the read port) and, if it "
            "uses the other port, whose scratchpad lines are disjoint from the transfer's "
            "(`hw/controller.py`). A `GATHER` uses both scratchpad ports, so it runs alone: "
            "no DMA, load or `WGRAD` goes beside it, and it waits for the commands before "
            "it to end. Commands therefore overlap, and every result (every "
            "counter but `CYCLES` and `DMA_CYCLES`) is that of the stream run in order "
            "(`docs/architecture.md`, `docs/cluster.md`).",
            "",
            "## Registers (AXI4-Lite)", ""]
    for paragraph in register_notes():
        out += [paragraph, ""]
    out += ["| offset | name | access | reset | meaning |", "|---|---|---|---|---|"]
    for r in REGISTERS:
        reset = "config" if r.name in CONFIG_REGISTERS else f"0x{r.reset:X}"
        out.append(f"| 0x{r.offset:03X} | `{r.name}` | {r.access} | {reset} | "
                   f"{r.description} |")
    out.append("")
    return "\n".join(out)


def register_notes():
    """What holds for the registers as a whole, as paragraphs of Markdown: the reference
    (:func:`markdown`) and the register description (``gen.emit.regmap``) both give them."""
    return (
        "32-bit registers at byte offsets. A read or write of an offset that holds no "
        "register, and a write to a read-only register, answer SLVERR. While a run is "
        f"going, writes to {_names(LOCKED_WHILE_RUNNING)} answer SLVERR and change "
        "nothing (the run was checked against them at the doorbell, and a change mid-run "
        "would make its results or its counts depend on when the write landed). `irq` is "
        "the interrupt output. Access `w` is write-only (reads answer 0; a write of 1 to "
        "one of its bits acts once), `w1c` write one to clear. A reset value `config` "
        "depends on the config: the config's value for the registers that read it back, "
        "the top of its address space for `DMA_LAST_HI`.",
        f"The counters, from offset 0x{_COUNTER_BASE:X}, are 64-bit values in two "
        "registers (`_LO`, bits 31:0, and `_HI`, bits 63:32). They are cumulative: each "
        "counts over every run since reset or since the last write of 1 to "
        "`COUNTER_CLEAR.clear`, whichever came later; a doorbell does not reset them. Read "
        "them while the accelerator is idle, when they do not change (the two halves then "
        "belong together); to measure one run, clear them before its doorbell.",
    )


def _names(names):
    """``names`` as the reference lists them: "`A`, `B` and `C`"."""
    quoted = [f"`{n}`" for n in names]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else quoted[0]


def _region_markdown(r):
    """One region as the reference writes it."""
    shape = f"{r.rows} x {r.cols}"
    if r.memory in ("weight", "act"):
        words = "*".join(t for t in r.row_terms + r.col_terms)
        text = f"`{r.base} + {words}`"
    elif r.memory == "memory":
        text = (f"`{r.base}`: {r.cols} columns of {r.rows} words, `mem_stride` bytes apart, "
                f"in the DMA window")
    elif r.memory == "scratchpad" and r.rows == r.cols == "1":
        text = f"`{r.base}` (a window of `{r.base}_lpc` lines: 1 x 1)"
    else:
        text = f"`{r.base}` ({shape})"
    return f"with `{r.when}` {text}" if r.when else text


def _regions_markdown():
    """The table of :data:`OP_REGIONS`, operations with the same regions in one row."""
    rows = {}
    for op, regions in OP_REGIONS.items():
        rows.setdefault(regions, []).append(op)
    out = ["| operation | weight bank | activation bank | scratchpad | memory |",
           "|---|---|---|---|---|"]
    for regions, ops in rows.items():
        cells = [", ".join(f"`{op.name}`" for op in ops)]
        for memory in MEMORIES:
            cells.append(", ".join(_region_markdown(r) for r in regions if r.memory == memory))
        out.append("|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|")
    return out


_ERROR_DOC = {
    ErrorCode.NONE: "no error",
    ErrorCode.BAD_OPCODE: "`op` holds no operation",
    ErrorCode.RESERVED_BITS: "a reserved bit is set",
    ErrorCode.ZERO_SIZE: "a size the operation needs (`m`, `n`, `batch`) is zero",
    ErrorCode.WEIGHT_RANGE: "a weight-bank region runs past the weight bank",
    ErrorCode.ACT_RANGE: "an activation-bank region runs past the activation bank, or a "
                         "FORWARD's or BACKWARD's `fill` region overlaps the region it "
                         "reads at `abase`",
    ErrorCode.SCRATCHPAD_RANGE: "a scratchpad matrix is out of range",
    ErrorCode.DMA_ALIGN: "`mem_addr` or `mem_stride` is not a multiple of the beat bytes",
    ErrorCode.DMA_RANGE: "the DMA's memory region leaves `[DMA_BASE, DMA_LAST]`",
    ErrorCode.FETCH_RANGE: "the command buffer is not 64-byte aligned or leaves the window "
                           "(checked at the doorbell)",
    ErrorCode.BUS_ERROR: "the memory answered SLVERR or DECERR (the command may be partly "
                         "done)",
    ErrorCode.CORE_ERROR: "the core refused a checked command (not expected)",
    ErrorCode.BAD_CORE: "a `cores` bit, `root` or `peer` names a core the machine lacks, "
                        "`root == peer` for `SEND`, a collective runs on one core, or a "
                        "`DMA_STORE` names more than one core",
}


def _main(argv):
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m chrysalis.gen.spec.isa OUTPUT.md|OUTPUT.h", file=sys.stderr)
        return 2
    text = c_header() if argv[0].endswith(".h") else markdown()
    with open(argv[0], "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
