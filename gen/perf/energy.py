"""Energy estimate of a run: per-event energy times counted events.

The accelerator counts events (``gen.spec.isa.COUNTERS``). :func:`events` turns such a counter
dict into counts of the events the energy table prices, :func:`load` makes the table of a
config from reference figures (by default 45 nm, 0.9 V, from M. Horowitz, ISSCC 2014; see
``gen/perf/energy_45nm.toml``), and :func:`estimate` multiplies the two. ``docs/energy.md`` lists
every figure with its source and derivation, the counter-to-event mapping and what is not
modelled (leakage, clock tree, control).

This module is pure Python (no Amaranth, no NumPy).
"""

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.checks import exact_log2, is_real
from chrysalis.gen.spec.config import Config
from chrysalis.gen.spec.formats import FP16, product_format

__all__ = [
    "EnergyError", "EnergyTable", "Estimate", "EVENTS", "REFERENCES", "COUNTERS_READ",
    "DEFAULT_PATH", "load", "load_references", "sram_access_64b", "events", "estimate",
    "gflops_per_watt",
]

#: The default reference figures (45 nm, 0.9 V), found next to this module.
DEFAULT_PATH = Path(__file__).with_name("energy_45nm.toml")

#: The events the table prices, each with what one event is. All energies are in pJ.
EVENTS = (
    ("operand_multiply", "a multiply in the operand format (the high-precision multiplier)"),
    ("low_multiply", "a multiply in the low-precision format (dual precision)"),
    ("accumulate_add", "an add in the accumulator format (fp32 by default)"),
    ("weight_bank_read", "a 32-bit read of a PE's weight bank (pe.weight_words words)"),
    ("weight_bank_write", "a 32-bit write of a PE's weight bank"),
    ("act_bank_read", "a read of one word of a PE's activation bank (pe.act_words words "
                      "in the operand format, mac.operand)"),
    ("act_bank_write", "a write of one word of a PE's activation bank"),
    ("scratchpad_access", "a 32-bit read or write of the scratchpad (core.scratchpad_words)"),
    ("bus_word", "a 32-bit word over a row or column bus of the core"),
    ("dram_64b", "64 bits read from or written to DRAM over AXI"),
    ("reuse_lookup", "a reuse-cache lookup: read the tags of a set and compare them"),
    ("reuse_hit_read", "the product read from the reuse cache on a hit"),
    ("reuse_insert", "a reuse-cache insert: write a tag, a valid bit and a product"),
)
_EVENT_NAMES = tuple(name for name, _ in EVENTS)

#: Reference figures the events are derived from, with their units.
REFERENCES = {
    "int8_add": "pJ", "int32_add": "pJ", "int8_mul": "pJ", "int32_mul": "pJ",
    "fp16_add": "pJ", "fp32_add": "pJ", "fp16_mul": "pJ", "fp32_mul": "pJ",
    "sram_8kb_64b": "pJ", "sram_32kb_64b": "pJ", "sram_1mb_64b": "pJ", "dram_64b": "pJ",
    "wire_bit_mm": "pJ", "pe_pitch_mm": "mm",
}

#: The counters :func:`events` reads (names of ``gen.spec.isa.COUNTERS``).
COUNTERS_READ = (
    "HIGH_PRODUCTS", "LOW_PRODUCTS", "BYPASS_PRODUCTS", "UPDATE_SLOTS", "BUS_WORDS",
    "DMA_READ_BEATS", "DMA_WRITE_BEATS", "FETCH_BEATS", "REUSE_LOOKUPS", "REUSE_HITS",
)

_ENTRY_KEYS = ("value", "unit", "source", "derivation")
_TOP_KEYS = ("technology", "reference", "events")
_SRAM_POINTS = (("sram_8kb_64b", 8 * 1024), ("sram_32kb_64b", 32 * 1024),
                ("sram_1mb_64b", 1024 * 1024))


class EnergyError(ValueError):
    """A bad energy table: an unknown field, a bad value, unreadable or unparseable TOML.

    The message names the field by its dotted path (``reference.fp16_mul.value``) and ends
    with the offending value.
    """


# --- the table ----------------------------------------------------------------------------

@dataclass(frozen=True)
class EnergyTable:
    """Energy per event (pJ) of one config, with the source of every figure.

    Parameters
    ----------
    operand_multiply, low_multiply, accumulate_add : float
        Arithmetic, per operation.
    weight_bank_read, weight_bank_write, act_bank_read, act_bank_write : float
        An access of one word of a PE bank: 32 bits in the weight bank, the operand
        format's width in the activation bank.
    scratchpad_access : float
        A 32-bit access of the scratchpad.
    bus_word : float
        A 32-bit word over a row or column bus.
    dram_64b : float
        64 bits of DRAM traffic.
    reuse_lookup, reuse_hit_read, reuse_insert : float
        Reuse-cache operations; 0 when the config has no reuse cache.
    technology : str
        The node and supply the figures hold for.
    sources : Mapping[str, str]
        Event name -> its source and, if derived, the derivation in words.
    """

    operand_multiply: float
    low_multiply: float
    accumulate_add: float
    weight_bank_read: float
    weight_bank_write: float
    act_bank_read: float
    act_bank_write: float
    scratchpad_access: float
    bus_word: float
    dram_64b: float
    reuse_lookup: float
    reuse_hit_read: float
    reuse_insert: float
    technology: str = ""
    sources: Mapping = field(default_factory=dict)

    def __post_init__(self):
        for name in _EVENT_NAMES:
            _check_energy(name, getattr(self, name))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    def energies(self):
        """Event name -> pJ per event, in the order of :data:`EVENTS`."""
        return {name: getattr(self, name) for name in _EVENT_NAMES}

    def markdown(self):
        """The table as Markdown: event, pJ, source and derivation."""
        lines = [f"Technology: {self.technology}", "", "| event | pJ | source / derivation |",
                 "|---|---:|---|"]
        for name in _EVENT_NAMES:
            lines.append(f"| `{name}` | {getattr(self, name):.4g} | "
                         f"{self.sources.get(name, '')} |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Estimate:
    """The energy of a run: :func:`estimate`'s answer.

    Parameters
    ----------
    per_event : Mapping[str, float]
        Event name -> energy in pJ (count times energy per event).
    total_pj : float
        The sum of ``per_event``.
    """

    per_event: Mapping
    total_pj: float

    @property
    def total_joules(self):
        """The total in joules."""
        return self.total_pj * 1e-12


def _check_energy(path, value, *, positive=False):
    if not is_real(value) or not math.isfinite(value) or value < 0 or (positive and
                                                                            value == 0):
        what = "a positive number" if positive else "a non-negative number"
        raise EnergyError(f"{path} must be {what}, not {value!r}")
    return float(value)


# --- reading the reference figures --------------------------------------------------------

def _read_toml(path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise EnergyError(f"cannot read energy table {str(path)!r}: "
                          f"{error.strerror or error}") from None
    except UnicodeDecodeError:
        raise EnergyError(f"energy table {str(path)!r} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise EnergyError(f"{path}: invalid TOML: {error}") from None


def _check_keys(mapping, valid, what, prefix=""):
    """EnergyError naming the first key of ``mapping`` that is not in ``valid``."""
    for key, value in mapping.items():
        if key not in valid:
            raise EnergyError(f"{prefix}{key} is not {what} (valid: {', '.join(valid)}), "
                              f"not {value!r}")


def _entry(path, raw, unit):
    """A checked entry ``{"value", "unit", "source", "derivation"}`` from a number or table."""
    if is_real(raw):
        raw = {"value": raw}
    if not isinstance(raw, Mapping):
        raise EnergyError(f"{path} must be a number or a table with a value, not {raw!r}")
    _check_keys(raw, _ENTRY_KEYS, "an entry field", prefix=f"{path}.")
    if "value" not in raw:
        raise EnergyError(f"{path} needs a value, not {dict(raw)!r}")
    value = _check_energy(f"{path}.value", raw["value"], positive=(unit == "mm"))
    got_unit = raw.get("unit", unit)
    if got_unit != unit:
        raise EnergyError(f"{path}.unit must be {unit!r}, not {got_unit!r}")
    for key in ("source", "derivation"):
        if key in raw and not isinstance(raw[key], str):
            raise EnergyError(f"{path}.{key} must be a string, not {raw[key]!r}")
    return {"value": value, "unit": unit, "source": raw.get("source", ""),
            "derivation": raw.get("derivation", "")}


def _parse(data, origin):
    """``(technology, references, events)`` of one TOML document, each checked."""
    _check_keys(data, _TOP_KEYS, "an energy-table field")
    technology = data.get("technology")
    if technology is not None and not isinstance(technology, str):
        raise EnergyError(f"technology must be a string, not {technology!r}")
    refs, evs = {}, {}
    for section, valid, out in (("reference", REFERENCES, refs),
                                ("events", dict.fromkeys(_EVENT_NAMES, "pJ"), evs)):
        table = data.get(section, {})
        if not isinstance(table, Mapping):
            raise EnergyError(f"{section} must be a table, not {table!r}")
        _check_keys(table, valid, "an energy-table field", prefix=f"{section}.")
        for name, raw in table.items():
            entry = _entry(f"{section}.{name}", raw, valid[name])
            if not entry["source"]:
                entry["source"] = f"user override ({origin})"
            out[name] = entry
    return technology, refs, evs


def _load_files(path):
    tech, refs, evs = _parse(_read_toml(DEFAULT_PATH), DEFAULT_PATH.name)
    missing = [name for name in REFERENCES if name not in refs]
    if missing:
        raise EnergyError(f"{DEFAULT_PATH}: reference figures missing: {', '.join(missing)}")
    if path is not None:
        try:
            user_tech, user_refs, user_evs = _parse(_read_toml(path), Path(path).name)
        except EnergyError as error:
            message = str(error)
            if not message.startswith(str(path)):
                message = f"{path}: {message}"
            raise EnergyError(message) from None
        tech = user_tech if user_tech is not None else tech
        refs.update(user_refs)
        evs.update(user_evs)
    return tech, refs, evs


def load_references(path=None):
    """The reference figures: the default file, then a user file's overrides.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A user TOML file (see :func:`load`).

    Returns
    -------
    dict
        Reference name -> ``{"value", "unit", "source", "derivation"}``.
    """
    return _load_files(path)[1]


# --- derivations --------------------------------------------------------------------------

def sram_access_64b(refs, capacity_bytes):
    """Energy (pJ) of a 64-bit access of an SRAM of ``capacity_bytes``.

    Interpolated log-log (a power law ``E = E0 * (C / C0) ** a``) between the two nearest of
    the 8 KB, 32 KB and 1 MB figures, and extrapolated outside them with the exponent of the
    nearest segment (0.5 below 32 KB with the default figures, about 0.46 above). A power law,
    not log-linear: log-linear through 8 KB and 32 KB reaches 0 pJ at 2 KB.

    Parameters
    ----------
    refs : Mapping
        Reference figures (values are numbers or entries with a ``"value"``).
    capacity_bytes : float
        Capacity of the array; 0 gives 0.

    Returns
    -------
    float
    """
    if capacity_bytes <= 0:
        return 0.0
    points = [(size, _value(refs[name])) for name, size in _SRAM_POINTS]
    if capacity_bytes <= points[1][0]:
        (c0, e0), (c1, e1) = points[0], points[1]
    else:
        (c0, e0), (c1, e1) = points[1], points[2]
    if e0 <= 0 or e1 <= 0:
        # A power law needs positive ends; fall back to linear in log2(capacity).
        t = math.log2(capacity_bytes / c0) / math.log2(c1 / c0)
        return max(0.0, e0 + t * (e1 - e0))
    exponent = math.log(e1 / e0) / math.log(c1 / c0)
    return e0 * (capacity_bytes / c0) ** exponent


def _value(entry):
    return entry["value"] if isinstance(entry, Mapping) else float(entry)


def _kib(nbytes):
    return f"{nbytes / 1024:.4g} KB"


def _derive(config, refs):
    """Event -> (pJ, source and derivation) for ``config`` from the reference figures."""
    v = {name: _value(entry) for name, entry in refs.items()}
    src = {name: entry["source"] for name, entry in refs.items()}
    out = {}

    mac = config.mac
    p16 = FP16.precision
    for event, fmt in (("operand_multiply", mac.operand), ("low_multiply", mac.low_operand)):
        scale = (fmt.precision / p16) ** 2
        out[event] = (v["fp16_mul"] * scale,
                      f"{src['fp16_mul']} ({v['fp16_mul']:g} pJ), scaled by the significand "
                      f"width squared: ({fmt.precision}/{p16})^2 = {scale:.4g} for "
                      f"{fmt.name} (exponent {fmt.exp_bits}, mantissa {fmt.man_bits} bits)")

    acc = mac.accumulator
    if acc.width == 32:
        out["accumulate_add"] = (v["fp32_add"], f"{src['fp32_add']}")
    else:
        slope = (v["fp32_add"] - v["fp16_add"]) / 16
        energy = max(0.0, v["fp16_add"] + slope * (acc.width - 16))
        out["accumulate_add"] = (energy, f"linear in width through the 16- and 32-bit FP adds "
                                         f"of Horowitz, ISSCC 2014, at {acc.width} bits")

    sram = (f"Horowitz, ISSCC 2014, 64-bit SRAM access at 8 KB / 32 KB / 1 MB "
            f"({v['sram_8kb_64b']:g} / {v['sram_32kb_64b']:g} / {v['sram_1mb_64b']:g} pJ), "
            f"interpolated log-log by capacity")
    # The activation bank holds operand-format words (hw.pe): a smaller array, narrower
    # accesses.
    for bank, words, bits in (("weight_bank", config.pe.weight_words, 32),
                              ("act_bank", config.pe.act_words, mac.operand.width)):
        nbytes = bits * words / 8
        e = sram_access_64b(v, nbytes) * bits / 64
        text = (f"{sram} at {_kib(nbytes)} ({words} words of {bits} bits), scaled by "
                f"{bits}/64 for a {bits}-bit access; a write is costed as a read")
        out[f"{bank}_read"] = (e, text)
        out[f"{bank}_write"] = (e, text)
    nbytes = config.core.scratchpad_bytes
    out["scratchpad_access"] = (
        sram_access_64b(v, nbytes) / 2,
        f"{sram} at {_kib(nbytes)} ({config.core.scratchpad_words} words), halved for a "
        f"32-bit access; one array (the banking is not modelled); a write is costed as a read")

    length = max(config.core.rows, config.core.cols) * v["pe_pitch_mm"]
    out["bus_word"] = (
        32 * length * v["wire_bit_mm"],
        f"ESTIMATE: 32 bits x {length:g} mm (max(rows, cols) x a PE pitch of "
        f"{v['pe_pitch_mm']:g} mm, itself an estimate) x {v['wire_bit_mm']:g} pJ/bit/mm "
        f"({src['wire_bit_mm']}); low-swing wires, so optimistic; drivers and the "
        f"broadcast fan-out are not included")

    derivation = refs["dram_64b"]["derivation"]
    out["dram_64b"] = (v["dram_64b"], src["dram_64b"] + (f"; {derivation}" if derivation
                                                         else ""))

    entries = config.pe.reuse_entries
    if entries == 0:
        for event in ("reuse_lookup", "reuse_hit_read", "reuse_insert"):
            out[event] = (0.0, "no reuse cache in this config (pe.reuse_entries = 0)")
    else:
        ways = config.pe.reuse_ways
        sets = entries // ways
        key_bits = mac.operand.width
        tag_bits = key_bits - exact_log2(sets)
        prod_bits = product_format(mac.operand).width
        tag_bytes = entries * (1 + tag_bits) / 8
        prod_bytes = entries * prod_bits / 8
        e_tag = sram_access_64b(v, tag_bytes) / 64
        e_prod = sram_access_64b(v, prod_bytes) / 64
        compare = v["int32_add"] * tag_bits / 32
        geometry = (f"{entries} entries, {ways} way(s), {sets} set(s); tag {tag_bits} bits "
                    f"(a {key_bits}-bit key, the whole operand) + 1 valid bit, product "
                    f"{prod_bits} bits; tag array {tag_bytes:g} B, product array "
                    f"{prod_bytes:g} B")
        per_bit = (f"per-bit SRAM energy = the 64-bit SRAM figure at the array's capacity "
                   f"(log-log from Horowitz's 8 KB figure, extrapolated far below it: an "
                   f"ESTIMATE) / 64")
        out["reuse_lookup"] = (
            ways * ((1 + tag_bits) * e_tag + compare),
            f"{geometry}. Per way: read valid + tag ({per_bit}), plus a {tag_bits}-bit compare "
            f"costed as a {tag_bits}-bit integer add (Horowitz's 32-bit add, "
            f"{v['int32_add']:g} pJ, scaled linearly by width)")
        out["reuse_hit_read"] = (
            prod_bits * e_prod, f"{geometry}. Read the {prod_bits}-bit product ({per_bit})")
        out["reuse_insert"] = (
            (1 + tag_bits) * e_tag + prod_bits * e_prod,
            f"{geometry}. Write valid + tag + product, a write costed as a read ({per_bit})")
    return out


def load(path=None, config=None):
    """The energy table of a config.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A user TOML file. It overrides the default figures (``gen/perf/energy_45nm.toml``):
        ``technology = "..."``; ``[reference.NAME]`` (or ``reference.NAME = value``) replaces
        one of :data:`REFERENCES`; ``[events.NAME]`` (or ``events.NAME = value``) fixes one of
        :data:`EVENTS` instead of deriving it. An entry table has ``value`` and optionally
        ``unit`` (must be the field's), ``source`` and ``derivation``.
    config : gen.spec.config.Config, optional
        The accelerator; the default config when omitted. Bank, scratchpad and reuse-cache
        energies depend on its capacities, multiplies on its formats.

    Returns
    -------
    EnergyTable

    Raises
    ------
    EnergyError
        For an unreadable file, invalid TOML, an unknown field or a bad value; the message
        names the file and the field and ends with ``", not {value!r}"``.
    """
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    tech, refs, evs = _load_files(path)
    derived = _derive(config, refs)
    values, sources = {}, {}
    for name in _EVENT_NAMES:
        if name in evs:
            entry = evs[name]
            values[name] = entry["value"]
            sources[name] = entry["source"] + (f"; {entry['derivation']}"
                                               if entry["derivation"] else "")
        else:
            values[name], sources[name] = derived[name]
    return EnergyTable(**values, technology=tech or "", sources=sources)


# --- counters -> events -------------------------------------------------------------------

_KNOWN_COUNTERS = {name for name, _ in isa.COUNTERS} | set(COUNTERS_READ)


def events(config, counters, fused_weights=0, operand_reads=None):
    """Counts of the priced events from a counter dict.

    Parameters
    ----------
    config : gen.spec.config.Config
        The config the counters come from (array size, AXI width).
    counters : Mapping[str, int]
        Counter name -> value, names as in ``gen.spec.isa.COUNTERS`` in either case (the RTL's
        upper case or ``sim.golden.machine.COUNTER_NAMES``' lower case). Absent counters count as
        0; counters not read here (``CYCLES``, ``MAC_SLOTS``, ...) are ignored.
    fused_weights : int
        Weights per PE that ``WGRAD`` commands with the fused update read at their first
        MAC and wrote back at their last (``gen.perf.commands.core_command``'s
        ``fused_weights``): no counter counts them, so a model (or a caller that knows the
        command stream) gives them here; each is a weight-bank read and a write.
    operand_reads : tuple of two int, optional
        ``(weight, act)``: the reads of MAC operands each PE made from its weight bank
        (the stationary operand of ``FORWARD`` and ``BACKWARD``, the weight) and from its
        activation bank (every streaming operand, and ``WGRAD``'s stationary one, the
        gradient): those the compute engine did not hold
        (``sim.golden.core_counts.stationary_reads`` and ``streaming_reads`` per command;
        no counter counts them). Omitted: every product reads one operand from each bank,
        as with nothing held (an upper bound).

    Returns
    -------
    dict
        Event name (:data:`EVENTS`) -> count. With ``P = R * C`` PEs, ``products =
        HIGH_PRODUCTS + LOW_PRODUCTS + BYPASS_PRODUCTS + REUSE_HITS`` (every MAC done) and
        ``updates = UPDATE_SLOTS * P``:

        - ``operand_multiply = HIGH_PRODUCTS + updates`` (an update multiplies with the
          high-precision multiplier);
        - ``low_multiply = LOW_PRODUCTS``; bypassed products and reuse hits multiply nothing;
        - ``accumulate_add = products + updates``;
        - bank reads are the MACs' operand reads (streaming and stationary) and the
          updates' reads of the weight (or the velocity): with ``operand_reads = (wr, ar)``
          ``weight_bank_read = wr * P + updates`` and ``act_bank_read = ar * P``; without
          it ``weight_bank_read = products + updates`` and ``act_bank_read = products``
          (one read of each bank per MAC);
        - ``weight_bank_read`` and ``weight_bank_write`` also get ``fused_weights * P``;
        - ``weight_bank_write = updates``, ``act_bank_write = BUS_WORDS``: one bank write
          per bus word (LOAD_COL/LOAD_ROW broadcasts write more, reduction words none);
        - ``scratchpad_access = BUS_WORDS + (DMA_READ_BEATS + DMA_WRITE_BEATS) * w / 32``,
          ``w = host.axi_data_width``: every bus word is read from or written to the
          scratchpad, every DMA word written or read;
        - ``bus_word = BUS_WORDS``;
        - ``dram_64b = (DMA_READ_BEATS + DMA_WRITE_BEATS + FETCH_BEATS) * w / 64``;
        - ``reuse_lookup = REUSE_LOOKUPS``, ``reuse_hit_read = REUSE_HITS``,
          ``reuse_insert = REUSE_LOOKUPS - REUSE_HITS`` (every miss inserts; an upper bound:
          pair 1 does not insert a key pair 0 inserted in the same slot).
    """
    if not isinstance(counters, Mapping):
        raise TypeError(f"counters must be a mapping, not {counters!r}")
    c = {}
    for name, value in counters.items():
        key = str(name).upper()
        if key not in _KNOWN_COUNTERS:
            raise ValueError(f"{name!r} is not a counter (gen.spec.isa.COUNTERS), not {value!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"counter {name} must be a non-negative integer, not {value!r}")
        c[key] = value

    def get(name):
        return c.get(name, 0)

    pes = config.core.rows * config.core.cols
    width = config.host.axi_data_width
    updates = get("UPDATE_SLOTS") * pes
    if not isinstance(fused_weights, int) or isinstance(fused_weights, bool) \
            or fused_weights < 0:
        raise ValueError(f"fused_weights must be a non-negative integer, not {fused_weights!r}")
    fused = fused_weights * pes
    products = (get("HIGH_PRODUCTS") + get("LOW_PRODUCTS") + get("BYPASS_PRODUCTS")
                + get("REUSE_HITS"))
    weight_reads, act_reads = _operand_reads(operand_reads, products, pes)
    dma_beats = get("DMA_READ_BEATS") + get("DMA_WRITE_BEATS")
    lookups, hits = get("REUSE_LOOKUPS"), get("REUSE_HITS")
    return {
        "operand_multiply": get("HIGH_PRODUCTS") + updates,
        "low_multiply": get("LOW_PRODUCTS"),
        "accumulate_add": products + updates,
        "weight_bank_read": weight_reads + updates + fused,
        "weight_bank_write": updates + fused,
        "act_bank_read": act_reads,
        "act_bank_write": get("BUS_WORDS"),
        "scratchpad_access": get("BUS_WORDS") + dma_beats * width // 32,
        "bus_word": get("BUS_WORDS"),
        "dram_64b": (dma_beats + get("FETCH_BEATS")) * width / 64,
        "reuse_lookup": lookups,
        "reuse_hit_read": hits,
        "reuse_insert": max(0, lookups - hits),
    }


def _operand_reads(operand_reads, products, pes):
    """``(weight bank, activation bank)`` reads of MAC operands over the PEs."""
    if operand_reads is None:
        return products, products
    if not isinstance(operand_reads, (tuple, list)) or len(operand_reads) != 2 or any(
            not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in operand_reads):
        raise ValueError(f"operand_reads must be two non-negative integers (weight bank, "
                         f"activation bank), not {operand_reads!r}")
    return operand_reads[0] * pes, operand_reads[1] * pes


def estimate(table, event_counts):
    """Energy of a run: energy per event times events.

    Parameters
    ----------
    table : EnergyTable
    event_counts : Mapping[str, float]
        Event name -> count, as from :func:`events`; absent events count as 0.

    Returns
    -------
    Estimate
        pJ per event (every event of :data:`EVENTS`) and the total.
    """
    if not isinstance(table, EnergyTable):
        raise TypeError(f"table must be an EnergyTable, not {table!r}")
    for name, count in event_counts.items():
        if name not in _EVENT_NAMES:
            raise ValueError(f"{name!r} is not an event (valid: {', '.join(_EVENT_NAMES)}), "
                             f"not {count!r}")
        if not is_real(count) or count < 0:
            raise ValueError(f"event count {name} must be a non-negative number, "
                             f"not {count!r}")
    per_event = {name: getattr(table, name) * event_counts.get(name, 0)
                 for name in _EVENT_NAMES}
    return Estimate(MappingProxyType(per_event), math.fsum(per_event.values()))


def gflops_per_watt(total_pj, macs, cycles, clock_hz, static_watts=0.0):
    """Energy efficiency in GFLOPS/W, counting 2 FLOPs per MAC.

    ``GFLOPS / W = 2 * macs / (total_pj * 1e-12 + static_watts * cycles / clock_hz) / 1e9``.
    With no static power the cycles and the clock cancel (FLOPs per joule); they matter
    only through ``static_watts``, which this model does not estimate (leakage, clock
    tree): pass a figure of your own.

    Parameters
    ----------
    total_pj : float
        Dynamic energy of the run (:attr:`Estimate.total_pj`).
    macs : int
        MACs done (``HIGH_PRODUCTS + LOW_PRODUCTS + BYPASS_PRODUCTS + REUSE_HITS``).
    cycles : int
        Cycles the run took.
    clock_hz : float
        Clock frequency.
    static_watts : float, optional
        Power drawn whatever the activity.

    Returns
    -------
    float
    """
    for name, value in (("total_pj", total_pj), ("macs", macs), ("cycles", cycles),
                        ("static_watts", static_watts)):
        if not is_real(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, not {value!r}")
    if not is_real(clock_hz) or clock_hz <= 0:
        raise ValueError(f"clock_hz must be a positive number, not {clock_hz!r}")
    joules = total_pj * 1e-12 + static_watts * cycles / clock_hz
    if joules <= 0:
        raise ValueError(f"the run used no energy (total_pj and static power are 0), "
                         f"not {total_pj!r}")
    return 2 * macs / joules / 1e9
