"""Energy table: the default figures, user overrides and their errors, counters -> events,
estimates, and that every counter the mapping reads exists in gen/spec/isa.py."""

import math

import pytest

from chrysalis.gen.perf import energy
from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import Config, with_overrides
from chrysalis.gen.perf.energy import (
    EnergyError, EnergyTable, estimate, events, gflops_per_watt, load)

EVENT_NAMES = [name for name, _ in energy.EVENTS]


def test_default_table():
    t = load()
    assert isinstance(t, EnergyTable)
    assert t.technology == "45 nm, 0.9 V"
    assert set(t.sources) == set(EVENT_NAMES)
    assert all(t.sources[name] for name in EVENT_NAMES)
    # bf16 multiply: the fp16 one scaled by (8/11)^2; low (3 mantissa bits): (4/11)^2.
    assert t.operand_multiply == pytest.approx(1.1 * 64 / 121)
    assert t.low_multiply == pytest.approx(1.1 * 16 / 121)
    assert t.accumulate_add == pytest.approx(0.9)
    # The 4 KB weight bank: 10 pJ * sqrt(4/8) per 64 bits, halved for 32 bits.
    assert t.weight_bank_read == t.weight_bank_write == pytest.approx(5 * math.sqrt(0.5))
    # The activation bank holds bf16 words: 2 KB, a quarter of 64 bits per access.
    assert t.act_bank_write == t.act_bank_read == pytest.approx(2.5 * math.sqrt(0.25))
    assert t.dram_64b == pytest.approx(1950)
    assert t.bus_word == pytest.approx(32 * 2 * 0.0404)
    assert "ESTIMATE" in t.sources["bus_word"]
    assert t.reuse_lookup == t.reuse_hit_read == t.reuse_insert == 0.0
    assert "| `operand_multiply` |" in t.markdown()


def test_references_cite_their_sources():
    refs = energy.load_references()
    assert set(refs) == set(energy.REFERENCES)
    for name, entry in refs.items():
        assert entry["source"], name
    assert {name: refs[name]["value"] for name in ("int8_add", "int32_add", "int8_mul",
            "int32_mul", "fp16_add", "fp32_add", "fp16_mul", "fp32_mul", "sram_8kb_64b",
            "sram_32kb_64b", "sram_1mb_64b")} == {
        "int8_add": 0.03, "int32_add": 0.1, "int8_mul": 0.2, "int32_mul": 3.1,
        "fp16_add": 0.4, "fp32_add": 0.9, "fp16_mul": 1.1, "fp32_mul": 3.7,
        "sram_8kb_64b": 10.0, "sram_32kb_64b": 20.0, "sram_1mb_64b": 100.0}


def test_sram_interpolation_hits_the_points():
    refs = energy.load_references()
    for size, value in ((8 << 10, 10), (32 << 10, 20), (1 << 20, 100)):
        assert energy.sram_access_64b(refs, size) == pytest.approx(value)
    assert energy.sram_access_64b(refs, 16 << 10) == pytest.approx(10 * math.sqrt(2))
    assert 20 < energy.sram_access_64b(refs, 256 << 10) < 100
    assert energy.sram_access_64b(refs, 0) == 0
    sizes = [64, 1 << 10, 4 << 10, 8 << 10, 100 << 10, 1 << 20, 4 << 20]
    values = [energy.sram_access_64b(refs, s) for s in sizes]
    assert values == sorted(values) and values[0] > 0


def test_table_follows_the_config():
    c = with_overrides(Config(), {"pe.weight_words": 2048, "pe.act_words": 8192,
                                  "core.scratchpad_words": 8192, "mac.operand": "fp16",
                                  "mac.low_man_bits": 10})
    t = load(config=c)
    assert t.operand_multiply == pytest.approx(1.1)
    assert t.low_multiply == pytest.approx(1.1)
    assert t.weight_bank_read == pytest.approx(5.0)            # 8 KB
    assert t.act_bank_read == pytest.approx(10 * math.sqrt(2) / 4)   # fp16: 16 KB, 16 bits
    assert t.scratchpad_access == pytest.approx(10.0)          # 32 KB
    # fp32 operands: the activation bank holds 32-bit words, 32 KB.
    t32 = load(config=with_overrides(c, {"mac.operand": "fp32"}))
    assert t32.act_bank_read == t32.act_bank_write == pytest.approx(10.0)
    assert "8192 words of 32 bits" in t32.sources["act_bank_read"]
    assert "8192 words of 16 bits" in t.sources["act_bank_read"]


def test_reuse_cache_energies():
    c = with_overrides(Config(), {"pe.reuse_entries": 16, "pe.reuse_ways": 2})
    t = load(config=c)
    refs = energy.load_references()
    tag_bits = 16 - 3                                          # 8 sets
    e_tag = energy.sram_access_64b(refs, 16 * (1 + tag_bits) / 8) / 64
    e_prod = energy.sram_access_64b(refs, 16 * 26 / 8) / 64    # bf16 products: e10m15
    assert t.reuse_lookup == pytest.approx(2 * ((1 + tag_bits) * e_tag + 0.1 * tag_bits / 32))
    assert t.reuse_hit_read == pytest.approx(26 * e_prod)
    assert t.reuse_insert == pytest.approx((1 + tag_bits) * e_tag + 26 * e_prod)
    assert 0 < t.reuse_hit_read < t.reuse_insert
    assert "ESTIMATE" in t.sources["reuse_lookup"]


def test_user_override(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('technology = "made up"\n'
                    'reference.fp16_mul = 2.2\n'
                    '[events.bus_word]\nvalue = 7.5\nunit = "pJ"\nsource = "my floorplan"\n'
                    '[events.dram_64b]\nvalue = 640\nderivation = "twice 320"\n')
    t = load(path)
    assert t.technology == "made up"
    assert t.operand_multiply == pytest.approx(2.2 * 64 / 121)
    assert t.bus_word == 7.5 and t.sources["bus_word"] == "my floorplan"
    assert t.dram_64b == 640 and "mine.toml" in t.sources["dram_64b"]
    assert "twice 320" in t.sources["dram_64b"]
    assert t.accumulate_add == pytest.approx(0.9)              # untouched
    assert load_default_unchanged()


def load_default_unchanged():
    return load().operand_multiply == pytest.approx(1.1 * 64 / 121)


@pytest.mark.parametrize("text, message", [
    ("bogus = 1\n", "bogus is not an energy-table field (valid: technology, reference, "
                    "events), not 1"),
    ("reference.fp17_mul = 1.0\n", "reference.fp17_mul is not an energy-table field"),
    ("events.teleport = 1.0\n", "events.teleport is not an energy-table field"),
    ("reference.fp16_mul = 'cheap'\n", "reference.fp16_mul must be a number or a table with "
                                       "a value, not 'cheap'"),
    ("[reference.fp16_mul]\nvalue = -1.0\n", "reference.fp16_mul.value must be a "
                                             "non-negative number, not -1.0"),
    ("[reference.fp16_mul]\nvalue = true\n", "reference.fp16_mul.value must be a "
                                             "non-negative number, not True"),
    ("[events.bus_word]\nvalue = 'x'\n", "events.bus_word.value must be a non-negative "
                                         "number, not 'x'"),
    ("[events.bus_word]\nvalue = 1.0\nunit = 'nJ'\n", "events.bus_word.unit must be 'pJ', "
                                                      "not 'nJ'"),
    ("[reference.pe_pitch_mm]\nvalue = 0\n", "reference.pe_pitch_mm.value must be a "
                                            "positive number, not 0"),
    ("[events.bus_word]\nvalue = 1.0\ncolour = 'red'\n", "events.bus_word.colour is not an "
                                                         "entry field"),
    ("[events.bus_word]\nsource = 'me'\n", "events.bus_word needs a value"),
    ("technology = 45\n", "technology must be a string, not 45"),
    ("reference = 3\n", "reference must be a table, not 3"),
    ("not toml [\n", "invalid TOML"),
])
def test_bad_override(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(EnergyError) as info:
        load(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))


def test_bad_override_ends_with_the_value(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[reference.sram_8kb_64b]\nvalue = 'ten'\n")
    with pytest.raises(EnergyError, match=r", not 'ten'$"):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(EnergyError, match="cannot read energy table"):
        load(tmp_path / "absent.toml")


def test_table_checks_its_values():
    values = dict.fromkeys(EVENT_NAMES, 1.0)
    values["bus_word"] = -2
    with pytest.raises(EnergyError, match=r"bus_word must be a non-negative number, not -2$"):
        EnergyTable(**values)


# --- events ---------------------------------------------------------------------------------

COUNTS = {"HIGH_PRODUCTS": 1000, "LOW_PRODUCTS": 300, "BYPASS_PRODUCTS": 50,
          "UPDATE_SLOTS": 10, "BUS_WORDS": 200, "DMA_READ_BEATS": 40, "DMA_WRITE_BEATS": 8,
          "FETCH_BEATS": 16, "REUSE_LOOKUPS": 500, "REUSE_HITS": 120,
          "MULTIPLIES_AVOIDED": 100, "MAC_SLOTS": 99, "CYCLES": 12345}


def test_events_mapping():
    c = Config()                                               # 4x4, 64-bit AXI
    e = events(c, COUNTS)
    assert set(e) == set(EVENT_NAMES)
    updates = 10 * 16
    products = 1000 + 300 + 50 + 120
    assert e["operand_multiply"] == 1000 + updates
    assert e["low_multiply"] == 300
    assert e["accumulate_add"] == products + updates
    assert e["weight_bank_read"] == products + updates
    assert e["act_bank_read"] == products
    assert e["weight_bank_write"] == updates
    assert e["act_bank_write"] == 200
    assert e["scratchpad_access"] == 200 + (40 + 8) * 2
    assert e["bus_word"] == 200
    assert e["dram_64b"] == 40 + 8 + 16
    assert e["reuse_lookup"] == 500
    assert e["reuse_hit_read"] == 120
    assert e["reuse_insert"] == 380


def test_events_with_operand_reads():
    """Known operand reads replace the one read of each bank per product: weight-bank reads
    are the weight reads (FORWARD, BACKWARD), the updates' and the fused update's,
    activation-bank reads the streaming reads and WGRAD's gradient reads."""
    c = Config()                                               # 4x4
    e = events(c, COUNTS, fused_weights=3, operand_reads=(40, 7))
    assert e["weight_bank_read"] == 40 * 16 + 10 * 16 + 3 * 16
    assert e["act_bank_read"] == 7 * 16
    assert e["weight_bank_write"] == (10 + 3) * 16
    unchanged = events(c, COUNTS, fused_weights=3)
    assert {k: v for k, v in e.items() if not k.endswith("bank_read")} == \
        {k: v for k, v in unchanged.items() if not k.endswith("bank_read")}
    for bad in ((1,), (1, -2), (1.5, 2), [True, 0], 3):
        with pytest.raises(ValueError, match=r"operand_reads must be two non-negative "
                                             r"integers \(weight bank, activation bank\), "
                                             r"not "):
            events(c, COUNTS, operand_reads=bad)


def test_model_energy_uses_the_operand_reads_of_each_phase():
    """gen.perf.energy_model: the forward and backward phases' stationary reads are
    weight-bank reads, the weight gradient's and every streaming read activation-bank
    reads; the model's bank reads drop by the held ones."""
    from chrysalis.gen.perf import network_cost
    from chrysalis.gen.perf.energy_model import energy_of, operand_reads
    from chrysalis.gen.spec.networks import get_network
    phases = {"forward": {"stationary_reads": 5, "streaming_reads": 1},
              "backward": {"stationary_reads": 2, "streaming_reads": 3},
              "wgrad_update": {"stationary_reads": 4, "streaming_reads": 6}, "load": {}}
    assert operand_reads(phases, copies=3) == (21, 42)
    assert operand_reads({"forward": {"products": 1}}) is None
    config = Config()
    pes = config.core.rows * config.core.cols
    table = load(config=config)
    for batch in (1, 8):             # the streaming operand held, the stationary one held
        result = network_cost(config, get_network("digits-mlp"), batch, "mbgd")
        weight, act = operand_reads(result["phases"])
        products = sum(entry["products"] for entry in result["phases"].values())
        # Without holds: one read of each bank per product.
        assert 0 < weight * pes < products and 0 < (weight + act) * pes < 2 * products
        per_event = energy_of(config, result, table)["per_event"]
        assert per_event["act_bank_read"] == pytest.approx(table.act_bank_read * act * pes)


@pytest.mark.parametrize("batch", [1, 8])
def test_layer_model_and_stream_carry_the_same_operand_reads(batch):
    """The layer model (no command list) and the compiler's command stream give each phase
    the same stationary and streaming reads (``sim.golden.core_counts``, per command)."""
    from chrysalis.gen.perf import mlp_step, network_cost
    from chrysalis.gen.spec.config import PRESETS
    from chrysalis.gen.spec.networks import get_network
    config = PRESETS["default"]
    stream = mlp_step(config, [64, 32, 10], batch, store_every_step=False)["phases"]
    layers = network_cost(config, get_network("digits-mlp"), batch)["phases"]
    for phase in ("forward", "backward", "wgrad_update"):
        for key in ("stationary_reads", "streaming_reads"):
            assert layers[phase][key] == stream[phase][key] > 0, (phase, key)
        # Fewer reads than MACs: something is held in every phase.
        pes = config.core.rows * config.core.cols
        assert min(stream[phase]["stationary_reads"], stream[phase]["streaming_reads"]) \
            * pes < stream[phase]["products"], phase


def test_events_axi_width_and_array():
    c = with_overrides(Config(), {"core.rows": 2, "core.cols": 8, "host.axi_data_width": 128})
    e = events(c, {"dma_read_beats": 3, "fetch_beats": 1, "update_slots": 2})
    assert e["dram_64b"] == 8
    assert e["scratchpad_access"] == 12
    assert e["operand_multiply"] == e["weight_bank_write"] == 32


def test_events_absent_counters_are_zero():
    assert set(events(Config(), {}).values()) == {0}


def test_events_rejects_bad_counters():
    with pytest.raises(ValueError, match=r"'FOO' is not a counter"):
        events(Config(), {"FOO": 1})
    with pytest.raises(ValueError, match=r"BUS_WORDS must be a non-negative integer, not -1$"):
        events(Config(), {"BUS_WORDS": -1})


def test_counters_read_exist_in_the_isa():
    # Catches a rename in gen/spec/isa.py. The three reuse counters may be added to gen/spec/isa.py
    # after this module; they are referenced here by name and tolerated until then.
    reuse = {"REUSE_LOOKUPS", "REUSE_HITS", "MULTIPLIES_AVOIDED"}
    isa_names = {name for name, _ in isa.COUNTERS}
    missing = set(energy.COUNTERS_READ) - isa_names - reuse
    assert not missing, f"gen.perf.energy reads counters gen/spec/isa.py does not have: {missing}"
    # Every counter the mapping uses changes its answer (no dead names in COUNTERS_READ).
    base = events(Config(), {})
    for name in energy.COUNTERS_READ:
        assert events(Config(), {name: 1}) != base, name


# --- estimates ------------------------------------------------------------------------------

def test_estimate_totals():
    t = load()
    e = events(Config(), COUNTS)
    est = estimate(t, e)
    assert set(est.per_event) == set(EVENT_NAMES)
    for name in EVENT_NAMES:
        assert est.per_event[name] == pytest.approx(getattr(t, name) * e[name])
    assert est.total_pj == pytest.approx(sum(est.per_event.values()))
    assert est.total_joules == pytest.approx(est.total_pj * 1e-12)
    # By hand: 64 DRAM words dominate.
    assert est.per_event["dram_64b"] == pytest.approx(64 * 1950)


def test_estimate_partial_and_bad():
    t = load()
    assert estimate(t, {"accumulate_add": 10}).total_pj == pytest.approx(9.0)
    with pytest.raises(ValueError, match="'nap' is not an event"):
        estimate(t, {"nap": 1})
    with pytest.raises(ValueError, match=r"must be a non-negative number, not -3$"):
        estimate(t, {"bus_word": -3})


def test_gflops_per_watt():
    # 1e9 MACs in 1 mJ: 2e9 FLOPs / 1e-3 J = 2e12 FLOPs/J = 2000 GFLOPS/W.
    assert gflops_per_watt(1e9, 10 ** 9, 10 ** 6, 1e8) == pytest.approx(2000)
    # 0.1 W static for 1e6 cycles at 100 MHz = 1 mJ more: half the efficiency.
    assert gflops_per_watt(1e9, 10 ** 9, 10 ** 6, 1e8, static_watts=0.1) == pytest.approx(1000)
    with pytest.raises(ValueError, match=r"clock_hz must be a positive number, not 0$"):
        gflops_per_watt(1.0, 1, 1, 0)
