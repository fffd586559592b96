"""The Verilog cache: the text ``emit`` writes, converted once, keyed by what shapes it."""

import dataclasses
from pathlib import Path

import pytest

from chrysalis.gen.emit import verilog as emit_module
from chrysalis.gen.spec.config import PRESETS
from chrysalis.sim.verify import verilog_cache
from chrysalis.sim.verify.verilog_cache import cached_verilog, verilog_key

TINY = PRESETS["tiny"]


def test_converted_once_then_copied(tmp_path, monkeypatch):
    calls, texts = [], []

    def counting_emit(config, out_dir):
        # What the cache does with emit's output is tested here; every RTL test runs the
        # real conversion through it, so a stand-in saves a conversion (about 10 s).
        calls.append(config.name)
        path = Path(out_dir) / f"{config.name}.v"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"module {config.name}(); endmodule // {len(calls)}\n")
        texts.append(path.read_text())
        return {"verilog": path}

    monkeypatch.setattr(emit_module, "emit", counting_emit)
    cache = tmp_path / "cache"
    first = cached_verilog(TINY, tmp_path / "a", cache=cache)
    second = cached_verilog(TINY, tmp_path / "b", cache=cache)
    assert calls == ["tiny"]
    assert first.name == second.name == "tiny.v"
    # The same text emit writes, wherever it is asked for.
    assert first.read_text() == second.read_text() == texts[0]
    assert sorted(p.name for p in cache.glob("*.v")) == [f"{verilog_key(TINY)}.v"]


def test_key_follows_the_config_and_the_sources(monkeypatch):
    key = verilog_key(TINY)
    assert verilog_key(dataclasses.replace(TINY, name="tiny2")) != key
    wider = dataclasses.replace(TINY, core=dataclasses.replace(TINY.core, cols=3))
    assert verilog_key(wider) != key
    # A changed source file gives another name: a stale conversion is never picked up.
    monkeypatch.setitem(verilog_cache._memo, "sources", "another gateware")
    assert verilog_key(TINY) != key


def test_refuses_what_is_not_a_config(tmp_path):
    with pytest.raises(TypeError, match=r"config must be a Config, not 'tiny'"):
        cached_verilog("tiny", tmp_path)


def test_a_design_is_converted_once_per_key(tmp_path, monkeypatch):
    calls = []

    def convert(text):
        def run():
            calls.append(text)
            return text
        return run

    cache = tmp_path / "cache"
    first = verilog_cache.cached_design("top", ["image=1"], convert("module top; endmodule\n"),
                                        tmp_path / "a", cache=cache)
    again = verilog_cache.cached_design("top", ["image=1"], convert("never converted\n"),
                                        tmp_path / "b", cache=cache)
    assert calls == ["module top; endmodule\n"]
    assert first.name == again.name == "top.v"
    assert again.read_text() == "module top; endmodule\n"
    # Other parts, another name or changed sources: converted afresh.
    other = verilog_cache.cached_design("top", ["image=2"], convert("other\n"), tmp_path / "c",
                                        cache=cache)
    assert other.read_text() == "other\n"
    key = verilog_cache.design_key("top", ["image=1"])
    assert verilog_cache.design_key("top2", ["image=1"]) != key
    monkeypatch.setitem(verilog_cache._memo, "sources", "another gateware")
    assert verilog_cache.design_key("top", ["image=1"]) != key


@pytest.mark.parametrize("name, parts, error, message", [
    ("1top", [], ValueError, r"name must be a Verilog module name, not '1top'"),
    ("top", [1], TypeError, r"parts must be strings, not \(1,\)"),
])
def test_a_design_key_refuses_bad_input(name, parts, error, message):
    with pytest.raises(error, match=message):
        verilog_cache.design_key(name, parts)
