"""Accelerator configs: one frozen dataclass per level of the hierarchy.

A :class:`Config` holds one config per level (MAC, PE, core, cluster, host). Every knob has
a default, every level checks its own fields when it is made, derived values are properties,
presets are made with :func:`dataclasses.replace`, and a config writes its own metadata (TOML,
a plain dict, a hash, a C header) so the hardware and the software share one source of
truth. The fields, their defaults and their ranges are documented in ``docs/config.md``.

This module is pure Python (no Amaranth, no NumPy): the golden model and the tools import it.
"""

import dataclasses
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import tomli_w

from .checks import ceil_log2, is_int
from .formats import BF16, FP32, FloatFormat, parse_format
from .isa import MAX_CORES
from .layout import bank_count

__all__ = [
    "ConfigError", "ConfigTypeError",
    "MacConfig", "PEConfig", "CoreConfig", "ClusterConfig", "HostConfig", "Config",
    "LEVELS", "DUAL_POLICIES", "REUSE_SCOPES", "REDUCTIONS", "SFU_KINDS", "RING_KINDS",
    "AXI_DATA_WIDTHS", "MAX_MAC_LATENCY",
    "PRESETS", "PRESET_DIR", "get_preset", "with_overrides", "parse_override",
    "check_buildable",
]

#: Precision policies of the MAC (``mac.dual``). "single" is one multiplier, "dual-full" two
#: full-precision multipliers (the upper baseline); the others share one high- and one
#: low-precision multiplier between two streams and differ in who gets the high one.
DUAL_POLICIES = ("single", "dual-full", "value", "static", "random")

#: The deepest MAC pipeline (``mac.latency``); the special-function unit's FMAs take the same.
MAX_MAC_LATENCY = 12

#: Sharing of a reuse cache (``pe.reuse_scope``): one per PE or one per row of PEs.
REUSE_SCOPES = ("pe", "row")
#: How partial sums are reduced across a core (``core.reduction``).
REDUCTIONS = ("bus", "tree")
#: Special-function units of the loss-gradient unit (``core.sfu``).
SFU_KINDS = ("pipelined", "barrel")
#: Ring topologies of a cluster (``cluster.ring``).
RING_KINDS = ("one-way", "bidirectional")
#: AXI data widths the host interface supports (``host.axi_data_width``).
AXI_DATA_WIDTHS = (32, 64, 128, 256)

#: Widest format the golden model's integer paths hold: they carry fp32-sized values.
_MAX_EXP_BITS = 8
_MAX_MAN_BITS = 23

#: Bytes of one local-store or scratchpad word: both hold 32-bit words.
_WORD_BYTES = 4



class ConfigError(ValueError):
    """A config is invalid: a bad value, an unknown field, unreadable or unparseable TOML.

    The message names the field by its dotted path (``core.rows``) and ends with the
    offending value. ``except ConfigError`` catches every config problem, type errors included.
    """


class ConfigTypeError(ConfigError, TypeError):
    """A config field has the wrong type (a string where an integer belongs, a bool, ...)."""


# --- field checks ------------------------------------------------------------------------
# Each returns the checked value, or raises with a message "<path> must ..., not <value>".

def _is_toml_int(value):
    # A config holds TOML values: a Python int, never a bool (`rows = true` is a mistake,
    # which is_int says) nor a NumPy integer (which TOML and JSON cannot write).
    return is_int(value) and isinstance(value, int)


def _check_int(path, value, lo, hi=None, *, power_of_two=False, hi_is=None):
    # hi_is names where an upper bound that depends on another field comes from.
    if not _is_toml_int(value):
        raise ConfigTypeError(f"{path} must be an integer, not {value!r}")
    if value < lo:
        phrase = {0: "a non-negative integer", 1: "a positive integer"}.get(lo, f"at least {lo}")
        raise ConfigError(f"{path} must be {phrase}, not {value!r}")
    if hi is not None and value > hi:
        bound = f"{hi} ({hi_is})" if hi_is else f"{hi}"
        raise ConfigError(f"{path} must be at most {bound}, not {value!r}")
    if power_of_two and value & (value - 1):
        raise ConfigError(f"{path} must be a power of two, not {value!r}")
    return value


def _check_choice(path, value, choices):
    listed = ", ".join(repr(choice) for choice in choices)
    if value not in choices or isinstance(value, bool):
        error = ConfigError if type(value) is type(choices[0]) else ConfigTypeError
        raise error(f"{path} must be one of {listed}, not {value!r}")
    return value


def _check_format(path, value):
    try:
        fmt = parse_format(value, path)
    except TypeError as error:
        raise ConfigTypeError(str(error)) from None
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if fmt.exp_bits > _MAX_EXP_BITS or fmt.man_bits > _MAX_MAN_BITS:
        raise ConfigError(f"{path} must have at most {_MAX_EXP_BITS} exponent bits and "
                          f"{_MAX_MAN_BITS} mantissa bits, not {fmt.name!r}")
    return fmt


def _unknown_field(path, valid):
    return ConfigError(f"{path} is not a config field (valid: {', '.join(valid)})")


def _export(value):
    """A field value as plain TOML/JSON data: formats by name."""
    return value.name if isinstance(value, FloatFormat) else value


class _Level:
    """What every level config shares: its name in a :class:`Config`, dict and TOML I/O.

    Subclasses set ``LEVEL`` (the table name, also the prefix of every error message) and
    ``DERIVED`` (the properties that :meth:`Config.c_header` exports).
    """

    LEVEL: ClassVar[str] = ""
    DERIVED: ClassVar[tuple] = ()

    def _path(self, name):
        return f"{self.LEVEL}.{name}"

    @classmethod
    def field_names(cls):
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self):
        """The fields as a plain dict in declaration order, formats by name."""
        return {name: _export(getattr(self, name)) for name in self.field_names()}

    @classmethod
    def from_dict(cls, data):
        """A level config from a mapping of field names; missing fields take defaults."""
        if not isinstance(data, Mapping):
            raise ConfigTypeError(f"{cls.LEVEL} must be a table, not {data!r}")
        names = cls.field_names()
        for key in data:
            if key not in names:
                raise _unknown_field(f"{cls.LEVEL}.{key}", names)
        return cls(**data)


@dataclass(frozen=True)
class MacConfig(_Level):
    """The floating-point multiply-accumulate unit of a PE.

    Parameters
    ----------
    operand : FloatFormat
        Format of the multiplicands (weights, activations, gradients in flight). A preset
        name or ``"eEmM"`` string is accepted and parsed. At most 8 exponent and 23 mantissa
        bits.
    accumulator : FloatFormat
        Format of the addend and the result (accumulators and master weights). Same limits;
        the RTL builds fp32 only (:func:`check_buildable`).
    latency : int
        Pipeline register stages from inputs to result, 2 to 12. The default, 6, is what a
        bf16 MAC needs for 100 MHz on ECP5 (``benchmarks/arith.py``); from 9 on, a PE's
        further stages split its accumulating adder, its operand conversion and its
        multiplier (``hw.pe.PE``; ``benchmarks/unit_fmax.py`` places them).
    dual : str
        Precision policy, one of :data:`DUAL_POLICIES`.
    low_man_bits : int
        Mantissa bits of the low-precision multiplier, 1 to ``operand.man_bits``.

    Members
    -------
    low_operand : FloatFormat
        The operand format rounded to ``low_man_bits``.
    macs_per_cycle : int
        Multiply-accumulates per cycle: 1 for ``"single"``, 2 for every dual policy.
    """

    LEVEL: ClassVar[str] = "mac"
    DERIVED: ClassVar[tuple] = ("macs_per_cycle",)

    operand: FloatFormat = BF16
    accumulator: FloatFormat = FP32
    latency: int = 6
    dual: str = "single"
    low_man_bits: int = 3

    def __post_init__(self):
        # Formats may come as names (TOML, overrides): store the parsed format so that
        # equal configs compare equal however they were written.
        object.__setattr__(self, "operand", _check_format(self._path("operand"), self.operand))
        object.__setattr__(self, "accumulator",
                           _check_format(self._path("accumulator"), self.accumulator))
        _check_int(self._path("latency"), self.latency, 2, MAX_MAC_LATENCY)
        _check_choice(self._path("dual"), self.dual, DUAL_POLICIES)
        _check_int(self._path("low_man_bits"), self.low_man_bits, 1, self.operand.man_bits,
                   hi_is=f"the mantissa bits of {self._path('operand')}")

    @property
    def low_operand(self):
        return FloatFormat(self.operand.exp_bits, self.low_man_bits)

    @property
    def macs_per_cycle(self):
        return 1 if self.dual == "single" else 2


@dataclass(frozen=True)
class PEConfig(_Level):
    """A processing element: MAC, two local-store banks, accumulators, reuse cache.

    Parameters
    ----------
    weight_words : int
        32-bit words in the weight / master-weight bank; a power of two, 2 to 2**20.
    act_words : int
        32-bit words in the activation / gradient bank; a power of two, 2 to 2**20.
    acc_regs : int
        Accumulator registers, 1 to 256. The core uses them as two groups (one computing
        while the other is reduced), each at least ``mac.latency + 1`` long so that an
        accumulator is never read before its last MAC has finished: so at least
        ``2 * (mac.latency + 1)``. A dual policy works on two outputs of a group per slot:
        at least ``4 * (mac.latency + 1)``, and ``acc_regs // 2`` even.
    reuse_entries : int
        Entries of the reuse cache: 0 (no cache) or a power of two up to 4096.
    reuse_ways : int
        Associativity of the reuse cache: a power of two, at most ``reuse_entries``
        (1 when there is no cache).
    reuse_scope : str
        Who shares a reuse cache, one of :data:`REUSE_SCOPES`.

    Members
    -------
    local_store_bytes : int
        Bytes in both banks together with 32-bit activation words, as for an fp32 operand
        (the activation bank holds ``mac.operand`` words: :attr:`Config.pe_store_bytes`
        counts them).
    weight_addr_bits, act_addr_bits : int
        Address widths of the two banks.
    """

    LEVEL: ClassVar[str] = "pe"
    DERIVED: ClassVar[tuple] = ("local_store_bytes", "weight_addr_bits", "act_addr_bits")

    weight_words: int = 1024
    act_words: int = 1024
    acc_regs: int = 16
    reuse_entries: int = 0
    reuse_ways: int = 1
    reuse_scope: str = "pe"

    def __post_init__(self):
        # Bank depths are powers of two so every address decodes to a word (no holes to
        # check in hardware) and banks split evenly by address bits.
        _check_int(self._path("weight_words"), self.weight_words, 2, 1 << 20, power_of_two=True)
        _check_int(self._path("act_words"), self.act_words, 2, 1 << 20, power_of_two=True)
        _check_int(self._path("acc_regs"), self.acc_regs, 1, 256)
        # The reuse cache is indexed by the low key bits: sets and ways are powers of two.
        _check_int(self._path("reuse_entries"), self.reuse_entries, 0, 4096, power_of_two=True)
        _check_int(self._path("reuse_ways"), self.reuse_ways, 1, max(self.reuse_entries, 1),
                   power_of_two=True, hi_is=f"{self._path('reuse_entries')}, or 1 without a cache")
        _check_choice(self._path("reuse_scope"), self.reuse_scope, REUSE_SCOPES)

    @property
    def local_store_bytes(self):
        return (self.weight_words + self.act_words) * _WORD_BYTES

    @property
    def weight_addr_bits(self):
        return ceil_log2(self.weight_words)

    @property
    def act_addr_bits(self):
        return ceil_log2(self.act_words)


@dataclass(frozen=True)
class CoreConfig(_Level):
    """A core: an R x C array of PEs with row and column buses, a sequencer, a scratchpad.

    Parameters
    ----------
    rows, cols : int
        PEs per column and per row, 1 to 64 each; the array need not be square.
    scratchpad_words : int
        32-bit words in the scratchpad; a power of two, 16 to 2**24.
    reduction : str
        How partial sums are reduced, one of :data:`REDUCTIONS`: ``"bus"`` over the column
        bus (R-1 cycles), ``"tree"`` over neighbour links (log depth).
    sfu : str
        The loss-gradient unit's special-function unit, one of :data:`SFU_KINDS`:
        ``"pipelined"`` (exp and reciprocal unrolled over nine fp32 FMAs, one element per
        cycle) or ``"barrel"`` (one fp32 FMA, one element per 9 cycles: less area, a
        slower ``LOSS_GRAD``).

    Members
    -------
    pes : int
        PEs in the core, ``rows * cols``.
    banks : int
        Scratchpad banks: the smallest power of two at least ``max(rows, cols)``.
    scratchpad_bytes : int
        Bytes in the scratchpad.
    scratchpad_addr_bits : int
        Address width of the scratchpad.
    """

    LEVEL: ClassVar[str] = "core"
    DERIVED: ClassVar[tuple] = ("pes", "banks", "scratchpad_bytes", "scratchpad_addr_bits")

    rows: int = 4
    cols: int = 4
    scratchpad_words: int = 65536
    reduction: str = "bus"
    sfu: str = "pipelined"

    def __post_init__(self):
        _check_int(self._path("rows"), self.rows, 1, 64)
        _check_int(self._path("cols"), self.cols, 1, 64)
        _check_int(self._path("scratchpad_words"), self.scratchpad_words, 16, 1 << 24,
                   power_of_two=True)
        _check_choice(self._path("reduction"), self.reduction, REDUCTIONS)
        _check_choice(self._path("sfu"), self.sfu, SFU_KINDS)

    @property
    def pes(self):
        return self.rows * self.cols

    @property
    def banks(self):
        return bank_count(self.rows, self.cols)

    @property
    def scratchpad_bytes(self):
        return self.scratchpad_words * _WORD_BYTES

    @property
    def scratchpad_addr_bits(self):
        return ceil_log2(self.scratchpad_words)


@dataclass(frozen=True)
class ClusterConfig(_Level):
    """A cluster: cores on a ring.

    Parameters
    ----------
    cores : int
        Cores on the ring, 1 to 64; the RTL builds at most :data:`gen.spec.isa.MAX_CORES`
        (:func:`check_buildable`).
    link_width : int
        Bits per ring link per cycle; a power of two, 8 to 1024 (on a cluster the RTL needs
        32 to 32 times the scratchpad banks).
    hop_latency : int
        Cycles per ring hop, 1 to 16.
    ring : str
        Ring topology, one of :data:`RING_KINDS` (on a cluster the RTL builds
        ``"one-way"`` only).
    """

    LEVEL: ClassVar[str] = "cluster"

    cores: int = 1
    link_width: int = 32
    hop_latency: int = 1
    ring: str = "one-way"

    def __post_init__(self):
        _check_int(self._path("cores"), self.cores, 1, 64)
        # A power-of-two link carries whole 8/16/32-bit words per flit without padding.
        _check_int(self._path("link_width"), self.link_width, 8, 1024, power_of_two=True)
        _check_int(self._path("hop_latency"), self.hop_latency, 1, 16)
        _check_choice(self._path("ring"), self.ring, RING_KINDS)


@dataclass(frozen=True)
class HostConfig(_Level):
    """The host interface: an AXI4-Lite register slave and an AXI4 DMA master.

    Parameters
    ----------
    axi_data_width : int
        Data width of the AXI4 master, one of :data:`AXI_DATA_WIDTHS`.
    axi_addr_width : int
        Address width of the AXI4 master, 12 to 64.

    Members
    -------
    axi_strb_width : int
        Byte strobes per beat, ``axi_data_width // 8``.
    """

    LEVEL: ClassVar[str] = "host"
    DERIVED: ClassVar[tuple] = ("axi_strb_width",)

    axi_data_width: int = 64
    axi_addr_width: int = 32

    def __post_init__(self):
        if not _is_toml_int(self.axi_data_width):
            raise ConfigTypeError(f"{self._path('axi_data_width')} must be an integer, "
                                  f"not {self.axi_data_width!r}")
        _check_choice(self._path("axi_data_width"), self.axi_data_width, AXI_DATA_WIDTHS)
        _check_int(self._path("axi_addr_width"), self.axi_addr_width, 12, 64)

    @property
    def axi_strb_width(self):
        return self.axi_data_width // 8


#: The level configs by their table name, in the order of a :class:`Config`.
LEVELS = {cls.LEVEL: cls for cls in (MacConfig, PEConfig, CoreConfig, ClusterConfig, HostConfig)}


def _check_name(value):
    if not isinstance(value, str):
        raise ConfigTypeError(f"name must be a string, not {value!r}")
    # The name is the Verilog module name and the stem of every emitted file: a simple
    # identifier without `$` (legal in Verilog, awkward in file names and shells), and not a
    # keyword, which would have to be written escaped (`\default `) wherever it is used.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", value):
        raise ConfigError("name must be a Verilog identifier (letters, digits and _, not "
                          f"starting with a digit, at most 64 characters), not {value!r}")
    if value in VERILOG_KEYWORDS:
        raise ConfigError(f"name must not be a Verilog keyword, not {value!r}")
    return value


#: Reserved words of Verilog-2005 and SystemVerilog-2017 that a module name must avoid.
VERILOG_KEYWORDS = frozenset("""
    accept_on alias always always_comb always_ff always_latch and assert assign assume
    automatic before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez
    cell chandle checker class clocking cmos config const constraint context continue cover
    covergroup coverpoint cross deassign default defparam design disable dist do edge else
    end endcase endchecker endclass endclocking endconfig endfunction endgenerate endgroup
    endinterface endmodule endpackage endprimitive endprogram endproperty endspecify
    endsequence endtable endtask enum event eventually expect export extends extern final
    first_match for force foreach forever fork forkjoin function generate genvar global
    highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import incdir
    include initial inout input inside instance int integer interconnect interface intersect
    join join_any join_none large let liblist library local localparam logic longint
    macromodule matches medium modport module nand negedge nettype new nexttime nmos nor
    noshowcancelled not notif0 notif1 null or output package packed parameter pmos posedge
    primitive priority program property protected pull0 pull1 pulldown pullup
    pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence rcmos real
    realtime ref reg reject_on release repeat restrict return rnmos rpmos rtran rtranif0
    rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared sequence shortint
    shortreal showcancelled signed small soft solve specify specparam static string strong
    strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on table tagged
    task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1 triand
    trior trireg type typedef union unique unique0 unsigned until until_with untyped use uwire
    var vectored virtual void wait wait_order wand weak weak0 weak1 while wildcard wire with
    within wor xnor xor
""".split())


@dataclass(frozen=True)
class Config:
    """A whole accelerator: a name and one config per level.

    Parameters
    ----------
    name : str
        Verilog identifier that names the emitted module and its files.
    mac : MacConfig
    pe : PEConfig
    core : CoreConfig
    cluster : ClusterConfig
    host : HostConfig

    Members
    -------
    total_pes : int
        PEs in the cluster, ``cluster.cores * core.pes``.
    pe_store_bytes : int
        Bytes of one PE's banks: fp32 master weights and activation words of the operand
        format (``mac.operand``, rounded to it on the way in).
    total_local_store_bytes : int
        Bytes of PE local store in the cluster (``total_pes * pe_store_bytes``).
    total_scratchpad_bytes : int
        Bytes of scratchpad in the cluster.
    peak_macs_per_cycle : int
        Multiply-accumulates per cycle of the whole cluster.
    """

    DERIVED: ClassVar[tuple] = ("total_pes", "pe_store_bytes", "total_local_store_bytes",
                                "total_scratchpad_bytes", "peak_macs_per_cycle")

    name: str = "chrysalis"
    mac: MacConfig = field(default_factory=MacConfig)
    pe: PEConfig = field(default_factory=PEConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    host: HostConfig = field(default_factory=HostConfig)

    def __post_init__(self):
        _check_name(self.name)
        for level, cls in LEVELS.items():
            value = getattr(self, level)
            if not isinstance(value, cls):
                raise ConfigTypeError(f"{level} must be a {cls.__name__}, not {value!r}")
        # Fields of different levels that must agree.
        need = 2 * (self.mac.latency + 1)
        if self.pe.acc_regs < need:
            raise ConfigError(f"pe.acc_regs must be at least 2 * (mac.latency + 1) = {need} "
                              f"(two groups of accumulators that hide the MAC latency), "
                              f"not {self.pe.acc_regs!r}")
        # The two streams of a dual-precision PE are two outputs of one accumulator group
        # (docs/dual_precision.md): a group must hold whole pairs.
        if self.mac.dual != "single" and (self.pe.acc_regs // 2) % 2:
            raise ConfigError(f"pe.acc_regs must give accumulator groups of an even size "
                              f"(acc_regs // 2) when mac.dual is {self.mac.dual!r}, not "
                              f"{self.pe.acc_regs!r}")
        # Two outputs per slot: a group's pairs take (acc_regs // 2) / 2 slots per step, and
        # that must still cover the MAC latency.
        need = 4 * (self.mac.latency + 1)
        if self.mac.dual != "single" and self.pe.acc_regs < need:
            raise ConfigError(f"pe.acc_regs must be at least 4 * (mac.latency + 1) = {need} "
                              f"when mac.dual is {self.mac.dual!r} (two groups of pairs that "
                              f"hide the MAC latency), not {self.pe.acc_regs!r}")
        # A DMA beat is one lane access of the scratchpad: its words must sit in different
        # banks (hw/dma.py).
        banks = self.core.banks
        words = self.host.axi_data_width // 32
        if words > banks:
            raise ConfigError(f"host.axi_data_width carries {words} words per beat, more than "
                              f"the {banks} scratchpad banks of a {self.core.rows}x"
                              f"{self.core.cols} core; it must be at most {32 * banks}, "
                              f"not {self.host.axi_data_width!r}")

    # --- derived values ------------------------------------------------------------------

    @property
    def total_pes(self):
        return self.cluster.cores * self.core.pes

    @property
    def pe_store_bytes(self):
        return (self.pe.weight_words * _WORD_BYTES
                + self.pe.act_words * self.mac.operand.width // 8)

    @property
    def total_local_store_bytes(self):
        return self.total_pes * self.pe_store_bytes

    @property
    def total_scratchpad_bytes(self):
        return self.cluster.cores * self.core.scratchpad_bytes

    @property
    def peak_macs_per_cycle(self):
        return self.total_pes * self.mac.macs_per_cycle

    # --- plain data ------------------------------------------------------------------------

    @classmethod
    def field_names(cls):
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self):
        """The config as plain JSON/TOML data: ``name`` then one table per level."""
        return {"name": self.name, **{level: getattr(self, level).to_dict() for level in LEVELS}}

    @classmethod
    def from_dict(cls, data):
        """A config from :meth:`to_dict`-shaped data; missing keys take their defaults.

        Raises
        ------
        ConfigError
            An unknown table or key, or a bad value; the message names its dotted path.
        """
        if not isinstance(data, Mapping):
            raise ConfigTypeError(f"config must be a table, not {data!r}")
        kwargs = {}
        for key, value in data.items():
            if key in LEVELS:
                kwargs[key] = LEVELS[key].from_dict(value)
            elif key == "name":
                kwargs[key] = value
            else:
                raise _unknown_field(key, cls.field_names())
        return cls(**kwargs)

    def config_hash(self):
        """SHA-256 (hex) of the canonical JSON of :meth:`to_dict`: stable across runs."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    # --- TOML ------------------------------------------------------------------------------

    def to_toml(self):
        """The config as TOML text: ``name``, then ``[mac] [pe] [core] [cluster] [host]``."""
        header = "# Chrysalis accelerator config (docs/config.md)\n"
        return header + tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text):
        """A config from TOML text.

        Raises
        ------
        ConfigError
            Unparseable TOML, an unknown table or key, or a bad value.
        """
        if not isinstance(text, str):
            raise ConfigTypeError(f"TOML text must be a string, not {text!r}")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"invalid TOML: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path):
        """A config from a TOML file; errors start with the file's path."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read config file {str(path)!r}: "
                              f"{error.strerror or error}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {str(path)!r} is not UTF-8 text") from None
        try:
            return cls.from_toml(text)
        except ConfigError as error:
            raise type(error)(f"{path}: {error}") from None

    def save(self, path):
        """Write :meth:`to_toml` to ``path``."""
        Path(path).write_text(self.to_toml(), encoding="utf-8")

    # --- C header --------------------------------------------------------------------------

    def c_header(self):
        """The text of a C header with every numeric field, format width and the hash.

        Fields become ``CHRYSALIS_<LEVEL>_<FIELD>``; a format field ``F`` becomes
        ``..._F_EXP_BITS``, ``..._F_MAN_BITS`` and ``..._F_WIDTH``; a choice field becomes
        one constant per choice, the field itself defined as one of them (usable in
        ``#if``) and ``..._NAME`` as a string. Derived values follow each level.
        """
        guard = f"CHRYSALIS_CONFIG_{self.name.upper()}_H"
        lines = [
            f"/* Chrysalis accelerator config {self.name!r}: generated from the config, "
            "do not edit. */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f'#define CHRYSALIS_CONFIG_NAME "{self.name}"',
            f'#define CHRYSALIS_CONFIG_HASH "{self.config_hash()}"',
        ]
        for level in LEVELS:
            lines += ["", f"/* [{level}] */"]
            lines += _level_defines(level, getattr(self, level))
        lines += ["", "/* whole cluster */"]
        lines += [_define(f"TOTAL_{name.upper().removeprefix('TOTAL_')}", getattr(self, name))
                  for name in self.DERIVED]
        lines += ["", f"#endif /* {guard} */", ""]
        return "\n".join(lines)


_CHOICES = {("mac", "dual"): DUAL_POLICIES, ("pe", "reuse_scope"): REUSE_SCOPES,
            ("core", "reduction"): REDUCTIONS, ("cluster", "ring"): RING_KINDS}


def _define(name, value):
    return f"#define CHRYSALIS_{name} {value}"


def _c_name(text):
    return re.sub(r"[^A-Za-z0-9]", "_", text).upper()


def _level_defines(level, config):
    """``#define`` lines for one level: fields in declaration order, then derived values."""
    lines = []
    for name in config.field_names():
        key = _c_name(f"{level}_{name}")
        value = getattr(config, name)
        if isinstance(value, FloatFormat):
            lines += [_define(f"{key}_EXP_BITS", value.exp_bits),
                      _define(f"{key}_MAN_BITS", value.man_bits),
                      _define(f"{key}_WIDTH", value.width)]
        elif (level, name) in _CHOICES:
            choices = _CHOICES[level, name]
            lines += [_define(f"{key}_{_c_name(choice)}", index)
                      for index, choice in enumerate(choices)]
            lines += [_define(key, f"CHRYSALIS_{key}_{_c_name(value)}"),
                      _define(f"{key}_NAME", f'"{value}"')]
        else:
            lines.append(_define(key, value))
    lines += [_define(_c_name(f"{level}_{name}"), getattr(config, name))
              for name in config.DERIVED]
    return lines


# --- what the RTL builds ------------------------------------------------------------------

def check_buildable(config):
    """Refuse a config that the RTL generator (``hw.top.build_top``) cannot build.

    A :class:`Config` holds every design that the models (golden, performance, area) can
    study; the gateware builds a subset: up to :data:`gen.spec.isa.MAX_CORES` cores, fp32
    accumulators, a one-way ring of whole-word links. Every tool that builds hardware calls
    this first, so a config it cannot build is one :class:`ConfigError` naming the field and
    the value, never an exception from inside the gateware (whose own checks stay as a second
    guard).

    Parameters
    ----------
    config : Config

    Returns
    -------
    Config
        ``config`` itself.

    Raises
    ------
    ConfigError
        A field the RTL cannot build; the message names its dotted path and value.
    """
    if not isinstance(config, Config):
        raise ConfigTypeError(f"config must be a Config, not {config!r}")
    mac, pe, core, cluster = config.mac, config.pe, config.core, config.cluster
    # A command names the cores that run it by a bit mask of MAX_CORES bits (gen.spec.isa).
    if cluster.cores > MAX_CORES:
        raise ConfigError(f"cluster.cores must be at most {MAX_CORES} (the cores mask of a "
                          f"command) to build the RTL, not {cluster.cores!r}")
    # The PE's adders, accumulators and master weights are fp32 (hw.pe).
    if mac.accumulator != FP32:
        raise ConfigError(f"mac.accumulator must be 'fp32' (the PE's accumulators and master "
                          f"weights) to build the RTL, not {mac.accumulator.name!r}")
    # A dual-precision PE splits its accumulators into pairs of outputs (hw.pe).
    if mac.dual != "single" and pe.acc_regs % 2:
        raise ConfigError(f"pe.acc_regs must be even when mac.dual is {mac.dual!r} to build "
                          f"the RTL, not {pe.acc_regs!r}")
    # Every scratchpad bank holds at least one word of a line (hw.scratchpad).
    if core.scratchpad_words < core.banks:
        raise ConfigError(f"core.scratchpad_words must be at least the {core.banks} scratchpad "
                          f"banks of a {core.rows}x{core.cols} core to build the RTL, not "
                          f"{core.scratchpad_words!r}")
    if cluster.cores > 1:
        _check_buildable_ring(config)
    return config


def _check_buildable_ring(config):
    """The ring engine's rules (hw.ring, hw.core): one way, whole fp32 words per link beat,
    and a beat is one lane access of the scratchpad."""
    cluster, core = config.cluster, config.core
    if cluster.ring != "one-way":
        raise ConfigError(f"cluster.ring must be 'one-way' (the only ring the RTL builds) on "
                          f"a cluster, not {cluster.ring!r}")
    if cluster.link_width < 32:
        raise ConfigError(f"cluster.link_width must be at least 32 (a link beat carries whole "
                          f"fp32 words) on a cluster, not {cluster.link_width!r}")
    words = cluster.link_width // 32
    if words > core.banks:
        raise ConfigError(f"cluster.link_width carries {words} words per cycle, more than the "
                          f"{core.banks} scratchpad banks of a {core.rows}x{core.cols} core; "
                          f"it must be at most {32 * core.banks} on a cluster, not "
                          f"{cluster.link_width!r}")


# --- overrides -------------------------------------------------------------------------------

def with_overrides(config, overrides):
    """A copy of ``config`` with fields replaced by dotted path.

    Parameters
    ----------
    config : Config
    overrides : Mapping[str, object] or iterable of (str, object)
        ``{"core.rows": 8, "mac.operand": "fp16", "name": "big"}``. Values are as in TOML
        (formats by name or as :class:`FloatFormat`); a level name maps to a table of fields.

    Raises
    ------
    ConfigError
        An unknown path or a bad value; the message names the path.
    """
    if not isinstance(config, Config):
        raise ConfigTypeError(f"config must be a Config, not {config!r}")
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    data = config.to_dict()
    for path, value in items:
        _set_path(data, path, value)
    return Config.from_dict(data)


def _set_path(data, path, value):
    if not isinstance(path, str):
        raise ConfigTypeError(f"an override path must be a string, not {path!r}")
    keys = path.split(".")
    if len(keys) == 1 and keys[0] in LEVELS:
        # A level is a table of its fields (`core={rows=8}`); `core=3` is not "an unknown
        # field": core is one, given a value of the wrong kind.
        if not isinstance(value, Mapping):
            raise ConfigTypeError(f"{path} must be a table, not {value!r}")
        for name, item in value.items():
            _set_path(data, f"{path}.{name}", item)
    elif len(keys) == 1 and keys[0] == "name":
        data["name"] = value
    elif len(keys) == 2 and keys[0] in LEVELS and keys[1] in LEVELS[keys[0]].field_names():
        data[keys[0]][keys[1]] = value
    elif len(keys) >= 2 and keys[0] in LEVELS:
        raise _unknown_field(path, LEVELS[keys[0]].field_names())
    else:
        raise _unknown_field(path, Config.field_names())


def parse_override(text):
    """``"core.rows=8"`` -> ``("core.rows", 8)``: the value is read as a TOML value.

    A value that is not valid TOML is taken as a bare string, so ``mac.operand=fp16`` and
    ``mac.operand="fp16"`` mean the same.
    """
    if not isinstance(text, str):
        raise ConfigTypeError(f"an override must be a string PATH=VALUE, not {text!r}")
    path, sep, raw = text.partition("=")
    path, raw = path.strip(), raw.strip()
    if not sep or not path:
        raise ConfigError(f"an override must look like PATH=VALUE, not {text!r}")
    value = raw
    if "\n" not in raw:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    return path, value


# --- presets ----------------------------------------------------------------------------------

#: Directory of the preset TOML files (each written by ``PRESETS[name].to_toml()``).
PRESET_DIR = Path(__file__).parent / "presets"

_DEFAULT = Config()

#: Named configs. ``default`` is the defaults (4x4, bf16 operands, fp32 accumulation);
#: ``tiny`` is a 2x2 core with small stores and the one-FMA special-function unit, quick to
#: simulate and synthesize.
PRESETS = {
    "tiny": dataclasses.replace(
        _DEFAULT, name="tiny",
        mac=dataclasses.replace(_DEFAULT.mac, latency=2),
        pe=dataclasses.replace(_DEFAULT.pe, weight_words=64, act_words=64, acc_regs=8),
        core=dataclasses.replace(_DEFAULT.core, rows=2, cols=2, scratchpad_words=1024,
                                 sfu="barrel")),
    "default": _DEFAULT,
}


def get_preset(name):
    """The preset config called ``name``; ConfigError listing the valid names otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(PRESETS))
        raise ConfigError(f"preset must be one of {valid}, not {name!r}") from None
