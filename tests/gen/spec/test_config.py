"""Configs: defaults, validation messages, TOML, presets, hash, overrides, C header."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chrysalis.gen.spec.config import (
    LEVELS, PRESET_DIR, PRESETS, ClusterConfig, Config, ConfigError, ConfigTypeError,
    CoreConfig, HostConfig, MacConfig, PEConfig, get_preset, parse_override, with_overrides)
from chrysalis.gen.spec.formats import BF16, FP16, FP32, FP8_E5M2, FloatFormat

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "build" / "tests" / "gen"


def test_defaults():
    c = Config()
    assert c.name == "chrysalis"
    assert c.mac == MacConfig(operand=BF16, accumulator=FP32, latency=6, dual="single",
                              low_man_bits=3)
    assert c.pe == PEConfig(weight_words=1024, act_words=1024, acc_regs=16, reuse_entries=0,
                            reuse_ways=1, reuse_scope="pe")
    assert c.core == CoreConfig(rows=4, cols=4, scratchpad_words=65536, reduction="bus")
    assert c.cluster == ClusterConfig(cores=1, link_width=32, hop_latency=1, ring="one-way")
    assert c.host == HostConfig(axi_data_width=64, axi_addr_width=32)


def test_derived_values():
    c = with_overrides(Config(), {"core.rows": 2, "core.cols": 8, "cluster.cores": 3,
                                  "mac.dual": "value", "pe.weight_words": 256,
                                  "pe.acc_regs": 32})
    assert c.core.pes == 16
    assert c.total_pes == 48
    assert c.pe.local_store_bytes == (256 + 1024) * 4
    assert c.pe.weight_addr_bits == 8 and c.pe.act_addr_bits == 10
    assert c.core.scratchpad_bytes == 65536 * 4 and c.core.scratchpad_addr_bits == 16
    assert c.mac.macs_per_cycle == 2 and c.peak_macs_per_cycle == 96
    assert c.mac.low_operand == FloatFormat(8, 3)
    assert c.pe_store_bytes == 256 * 4 + 1024 * c.mac.operand.width // 8
    assert c.total_local_store_bytes == 48 * c.pe_store_bytes
    assert c.total_scratchpad_bytes == 3 * c.core.scratchpad_bytes
    assert c.host.axi_strb_width == 8


def test_configs_are_frozen_and_hashable():
    c = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.name = "x"
    assert {c: 1}[Config()] == 1


def test_format_names_are_parsed():
    assert MacConfig(operand="fp16").operand == FP16
    assert MacConfig(operand="e5m7").operand == FloatFormat(5, 7)
    assert MacConfig(operand={"exp_bits": 8, "man_bits": 7}) == MacConfig()


# (dotted path, bad value, is a type error). Every message must name the path and end with
# ", not {value!r}".
BAD_FIELDS = [
    ("mac.operand", "fp64", False),
    ("mac.operand", "e9m7", False),
    ("mac.operand", "e8m24", False),
    ("mac.operand", 16, True),
    ("mac.accumulator", "e11m52", False),
    ("mac.latency", -1, False),
    ("mac.latency", 13, False),
    ("mac.latency", 2.0, True),
    ("mac.latency", True, True),
    ("mac.dual", "double", False),
    ("mac.dual", 2, True),
    ("mac.low_man_bits", 0, False),
    ("mac.low_man_bits", 8, False),
    ("pe.weight_words", 1000, False),
    ("pe.weight_words", 1, False),
    ("pe.weight_words", 1 << 21, False),
    ("pe.act_words", 0, False),
    ("pe.act_words", "64", True),
    ("pe.acc_regs", 0, False),
    ("pe.acc_regs", 257, False),
    ("pe.reuse_entries", -4, False),
    ("pe.reuse_entries", 12, False),
    ("pe.reuse_ways", 2, False),
    ("pe.reuse_ways", 0, False),
    ("pe.reuse_scope", "core", False),
    ("core.rows", 0, False),
    ("core.rows", 65, False),
    ("core.rows", False, True),
    ("core.cols", -2, False),
    ("core.cols", None, True),
    ("core.scratchpad_words", 1000, False),
    ("core.scratchpad_words", 8, False),
    ("core.reduction", "ring", False),
    ("cluster.cores", 0, False),
    ("cluster.link_width", 48, False),
    ("cluster.link_width", 4, False),
    ("cluster.hop_latency", 0, False),
    ("cluster.ring", "two-way", False),
    ("host.axi_data_width", 48, False),
    ("host.axi_data_width", 512, False),
    ("host.axi_data_width", "64", True),
    ("host.axi_addr_width", 8, False),
    ("host.axi_addr_width", 65, False),
    ("name", "4x4", False),
    ("name", "my-accel", False),
    ("name", "a$b", False),
    ("name", "", False),
    ("name", 7, True),
    # A format table gives both widths: a missing one is never filled in.
    ("mac.operand", {}, False),
    ("mac.operand", {"exp_bits": 5}, False),
    ("mac.operand", {"man_bits": 7}, False),
]


@pytest.mark.parametrize("path, value, is_type", BAD_FIELDS,
                         ids=[f"{p}={v!r}" for p, v, _ in BAD_FIELDS])
def test_bad_field_is_named_with_its_value(path, value, is_type):
    with pytest.raises(ConfigError) as info:
        with_overrides(Config(), {path: value})
    message = str(info.value)
    assert message.startswith(f"{path} "), message
    # A bad format is reported by its name, which in these cases is the string given.
    assert message.endswith(f", not {value!r}"), message
    assert isinstance(info.value, TypeError) == is_type, message
    assert "\n" not in message


@pytest.mark.parametrize("path, value, is_type",
                         [case for case in BAD_FIELDS if case[0] != "name"],
                         ids=[f"{p}={v!r}" for p, v, _ in BAD_FIELDS if p != "name"])
def test_level_constructor_names_the_dotted_path(path, value, is_type):
    level, field = path.split(".")
    with pytest.raises(ConfigError, match=rf"^{level}\.{field} "):
        LEVELS[level](**{field: value})


def test_example_message():
    with pytest.raises(ConfigError) as info:
        CoreConfig(rows=0)
    assert str(info.value) == "core.rows must be a positive integer, not 0"


def test_dependent_bounds_name_their_source():
    with pytest.raises(ConfigError, match=r"mac\.low_man_bits .*mac\.operand.*, not 3$"):
        MacConfig(operand=FP8_E5M2)
    assert MacConfig(operand=FP8_E5M2, low_man_bits=2).low_operand == FloatFormat(5, 2)
    assert PEConfig(reuse_entries=16, reuse_ways=4).reuse_ways == 4
    with pytest.raises(ConfigError, match=r"pe\.reuse_ways .*pe\.reuse_entries.*, not 32$"):
        PEConfig(reuse_entries=16, reuse_ways=32)


def test_level_types_are_checked():
    with pytest.raises(ConfigTypeError, match=r"^core must be a CoreConfig, not "):
        Config(core={"rows": 2})
    with pytest.raises(ConfigTypeError, match=r"^core must be a table, not 3$"):
        Config.from_dict({"core": 3})


def test_verilog_keywords_are_refused_as_names():
    for keyword in ("default", "module", "wire", "logic"):
        with pytest.raises(ConfigError, match=f"^name must not be a Verilog keyword, not '{keyword}'$"):
            Config(name=keyword)
    assert Config(name="_x9").name == "_x9"


# --- TOML --------------------------------------------------------------------------------

ROUND_TRIP = [
    Config(),
    *PRESETS.values(),
    with_overrides(Config(), {
        "name": "odd", "mac.operand": "e5m7", "mac.accumulator": "fp16", "mac.latency": 2,
        "mac.dual": "value", "mac.low_man_bits": 2, "pe.reuse_entries": 64,
        "pe.reuse_ways": 4, "pe.reuse_scope": "row", "core.rows": 3, "core.cols": 5,
        "core.reduction": "tree", "cluster.cores": 4, "cluster.ring": "bidirectional",
        "cluster.link_width": 128, "cluster.hop_latency": 3, "host.axi_data_width": 256,
        "host.axi_addr_width": 40}),
]


@pytest.mark.parametrize("config", ROUND_TRIP, ids=lambda c: c.name)
def test_toml_round_trip(config):
    text = config.to_toml()
    assert Config.from_toml(text) == config
    assert Config.from_toml(text).to_toml() == text
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_toml_layout():
    text = with_overrides(Config(), {"mac.operand": "e5m7"}).to_toml()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == 'name = "chrysalis"'
    tables = [line for line in lines if line.startswith("[")]
    assert tables == ["[mac]", "[pe]", "[core]", "[cluster]", "[host]"]
    assert 'operand = "e5m7"' in lines and 'accumulator = "fp32"' in lines


def test_toml_missing_keys_take_defaults():
    assert Config.from_toml("") == Config()
    c = Config.from_toml('name = "x"\n[core]\nrows = 2\n')
    assert c == Config(name="x", core=CoreConfig(rows=2))


def test_toml_format_as_table():
    c = Config.from_toml("[mac]\noperand = { exp_bits = 5, man_bits = 10 }\n")
    assert c.mac.operand == FP16


@pytest.mark.parametrize("text, message", [
    ("[core]\nrowz = 2\n", r"^core\.rowz is not a config field"),
    ("[cores]\nrows = 2\n", r"^cores is not a config field"),
    ("size = 3\n", r"^size is not a config field"),
    ("core = 3\n", r"^core must be a table, not 3$"),
    ("[core]\nrows = 0\n", r"^core\.rows must be a positive integer, not 0$"),
    ('[mac]\noperand = "fp64"\n', r"^mac\.operand must be one of .*, not 'fp64'$"),
    ("[mac]\noperand = { exp_bits = 5, mant = 10 }\n", r"^mac\.operand has unknown keys"),
    ("[core\nrows = 2\n", r"^invalid TOML: "),
    ("[core]\nrows = \n", r"^invalid TOML: "),
])
def test_toml_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_toml(text)


def test_load_and_save():
    directory = BUILD / "load_and_save"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    path = directory / "c.toml"
    PRESETS["tiny"].save(path)
    assert Config.load(path) == PRESETS["tiny"]
    path.write_text("[core]\nrows = -1\n")
    with pytest.raises(ConfigError, match=r"c\.toml: core\.rows must be a positive integer"):
        Config.load(path)
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.toml"):
        Config.load(directory / "missing.toml")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_files_match_presets(name):
    path = PRESET_DIR / f"{name}.toml"
    assert Config.load(path) == PRESETS[name]
    # Byte for byte, so regenerating them (`PRESETS[name].save(path)`) changes nothing.
    assert path.read_text() == PRESETS[name].to_toml()


def test_presets():
    tiny = get_preset("tiny")
    assert tiny.name == "tiny" and (tiny.core.rows, tiny.core.cols) == (2, 2)
    assert (tiny.pe.weight_words, tiny.pe.act_words, tiny.core.scratchpad_words) == (64, 64, 1024)
    assert tiny.mac.latency == 2
    assert tiny.mac.operand == BF16 and tiny.mac.accumulator == FP32
    assert get_preset("default") == Config()
    with pytest.raises(ConfigError, match=r"^preset must be one of default, tiny, not 'huge'$"):
        get_preset("huge")


# --- hash ----------------------------------------------------------------------------------

def test_hash_is_stable_across_processes():
    code = ("from chrysalis.gen.spec.config import PRESETS; "
            "print(' '.join(c.config_hash() for c in PRESETS.values()))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env={"PYTHONHASHSEED": seed}, cwd=REPO).stdout
        assert out.split() == [c.config_hash() for c in PRESETS.values()]


def test_hash_changes_with_every_field():
    base = with_overrides(Config(), {"pe.acc_regs": 28})
    assert base.config_hash() == with_overrides(Config(), {"pe.acc_regs": 28}).config_hash()
    assert len(base.config_hash()) == 64
    changed = {"name": "other", "mac.operand": "fp16", "mac.accumulator": "bf16",
               "mac.latency": 4, "mac.dual": "static", "mac.low_man_bits": 2,
               "pe.weight_words": 512, "pe.act_words": 512, "pe.acc_regs": 32,
               "pe.reuse_entries": 16, "pe.reuse_scope": "row", "core.rows": 8,
               "core.cols": 2, "core.scratchpad_words": 1024, "core.reduction": "tree",
               "cluster.cores": 2, "cluster.link_width": 64, "cluster.hop_latency": 2,
               "cluster.ring": "bidirectional", "host.axi_data_width": 128,
               "host.axi_addr_width": 48}
    hashes = {base.config_hash()}
    for path, value in changed.items():
        hashes.add(with_overrides(base, {path: value}).config_hash())
    assert len(hashes) == len(changed) + 1


# --- overrides -------------------------------------------------------------------------------

def test_overrides():
    base = PRESETS["tiny"]
    c = with_overrides(base, {"core.rows": 8, "mac.operand": "fp16", "name": "wide"})
    assert (c.core.rows, c.core.cols, c.mac.operand, c.name) == (8, 2, FP16, "wide")
    assert base.core.rows == 2  # the original is untouched
    assert with_overrides(base, [("mac.accumulator", BF16)]).mac.accumulator == BF16
    assert with_overrides(base, {"pe": {"acc_regs": 32, "reuse_entries": 4}}).pe.acc_regs == 32
    assert with_overrides(base, {}) == base
    # Overrides apply together, so dependent fields can change in one step.
    c = with_overrides(Config(), {"mac.operand": "fp8_e5m2", "mac.low_man_bits": 1})
    assert c.mac.low_man_bits == 1


@pytest.mark.parametrize("path, message", [
    ("core.rowz", r"^core\.rowz is not a config field \(valid: rows, cols, "),
    ("rows", r"^rows is not a config field \(valid: name, mac, "),
    ("core.rows.x", r"^core\.rows\.x is not a config field"),
    ("mac.operand.man_bits", r"^mac\.operand\.man_bits is not a config field"),
])
def test_override_unknown_path(path, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(Config(), {path: 1})


@pytest.mark.parametrize("value", [1, "fp16", [8]])
def test_override_of_a_level_needs_a_table(value):
    # A level is a config field whose value is a table: not "an unknown field".
    message = rf"^core must be a table, not {re.escape(repr(value))}$"
    with pytest.raises(ConfigTypeError, match=message):
        with_overrides(Config(), {"core": value})


@pytest.mark.parametrize("text, expected", [
    ("core.rows=8", ("core.rows", 8)),
    (" core.rows = 8 ", ("core.rows", 8)),
    ("mac.operand=fp16", ("mac.operand", "fp16")),
    ('mac.operand="fp16"', ("mac.operand", "fp16")),
    ("name=big", ("name", "big")),
    ("mac.dual=dual-full", ("mac.dual", "dual-full")),
    ("core.rows=true", ("core.rows", True)),
    ("core.rows=", ("core.rows", "")),
])
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["core.rows", "=8", ""])
def test_parse_override_needs_path_and_value(text):
    with pytest.raises(ConfigError, match=r"PATH=VALUE, not "):
        parse_override(text)


# --- C header --------------------------------------------------------------------------------

def test_c_header_contents():
    c = PRESETS["tiny"]
    text = c.c_header()
    assert text.startswith("/*") and text.endswith("#endif /* CHRYSALIS_CONFIG_TINY_H */\n")
    for line in ["#ifndef CHRYSALIS_CONFIG_TINY_H", '#define CHRYSALIS_CONFIG_NAME "tiny"',
                 f'#define CHRYSALIS_CONFIG_HASH "{c.config_hash()}"',
                 "#define CHRYSALIS_MAC_OPERAND_WIDTH 16",
                 "#define CHRYSALIS_MAC_ACCUMULATOR_MAN_BITS 23",
                 "#define CHRYSALIS_MAC_LATENCY 2",
                 "#define CHRYSALIS_MAC_DUAL CHRYSALIS_MAC_DUAL_SINGLE",
                 "#define CHRYSALIS_PE_WEIGHT_WORDS 64", "#define CHRYSALIS_CORE_ROWS 2",
                 "#define CHRYSALIS_CORE_PES 4", "#define CHRYSALIS_CLUSTER_RING_ONE_WAY 0",
                 "#define CHRYSALIS_HOST_AXI_DATA_WIDTH 64", "#define CHRYSALIS_TOTAL_PES 4"]:
        assert line in text.splitlines(), line


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_header_compiles():
    c = with_overrides(PRESETS["tiny"], {"core.reduction": "tree", "mac.dual": "dual-full",
                                              "pe.acc_regs": 12})
    out = BUILD / "c_header"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "tiny.h").write_text(c.c_header())
    (out / "main.c").write_text(
        '#include "tiny.h"\n#include "tiny.h"\n'  # the include guard makes this harmless
        "#if CHRYSALIS_CORE_REDUCTION != CHRYSALIS_CORE_REDUCTION_TREE\n#error reduction\n"
        "#endif\n#if CHRYSALIS_MAC_DUAL != CHRYSALIS_MAC_DUAL_DUAL_FULL\n#error dual\n#endif\n"
        "int main(void) { return CHRYSALIS_TOTAL_PES == 4 && sizeof CHRYSALIS_CONFIG_HASH == 65"
        " ? 0 : 1; }\n")
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-o", "main", "main.c"], cwd=out,
                   check=True)
    assert subprocess.run(["./main"], cwd=out).returncode == 0


def test_config_module_is_pure_python():
    code = ("import sys, chrysalis.gen.spec.config; "
            "bad = [m for m in ('amaranth', 'numpy', 'cocotb') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_accumulators_must_hide_the_mac_latency():
    with pytest.raises(ConfigError, match=r"^pe.acc_regs must be at least 2 \* \(mac.latency \+ 1\) "
                                          r"= 14 .*, not 8$"):
        with_overrides(Config(), {"pe.acc_regs": 8})
    assert with_overrides(Config(), {"pe.acc_regs": 8, "mac.latency": 3}).pe.acc_regs == 8
