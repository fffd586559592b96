"""The register map through SystemRDL and PeakRDL (``gen.emit.regmap``): the RDL compiles,
and PeakRDL's C header, IP-XACT and Markdown hold every register and field of
``gen.spec.isa`` where the definition puts them, and agree with ``chrysalis_isa.h``."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chrysalis.gen.emit import regmap
from chrysalis.gen.spec import isa

#: The strictest C the headers must compile under (``-Werror``: a warning fails).
C_FLAGS = ["-Wall", "-Wextra", "-Werror", "-std=c99", "-pedantic"]
IPXACT = {"ipxact": "http://www.accellera.org/XMLSchema/IPXACT/1685-2014"}


@pytest.fixture(scope="module")
def files():
    return regmap.files()


def test_files_are_the_rdl_and_what_peakrdl_makes_of_it(files):
    """The four files, in order; the RDL text is :func:`regmap.rdl`, and it compiled with
    no message (a warning would have raised)."""
    assert list(files) == ["chrysalis_regs.rdl", "chrysalis_regs.h", "chrysalis_regs.xml",
                           "chrysalis_regs.md"]
    assert files["chrysalis_regs.rdl"] == regmap.rdl()


def test_deterministic(files):
    """The same text on every call: no date, no temporary path."""
    again = regmap.files()
    assert again == files
    for name, text in files.items():
        assert "chrysalis_regmap_" not in text and "/tmp" not in text, name
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), name


def test_a_message_of_the_compiler_is_an_error(monkeypatch):
    """A warning of systemrdl-compiler fails the export instead of scrolling by."""
    # A field without an explicit position: an optional warning this module turns on.
    monkeypatch.setattr(regmap, "rdl", lambda: (
        "addrmap chrysalis { reg { field { sw = r; hw = w; } value; } X @ 0x0; };\n"))
    with pytest.raises(RuntimeError, match="SystemRDL warning"):
        regmap.files()


def _header_macros(text):
    """``{register: {field: {"bm", "bp", "bw"[, "reset"]}}}`` from the PeakRDL header."""
    out = {}
    for name, value in re.findall(r"^#define (CHRYSALIS__\w+) (\S+)$", text, re.M):
        _, register, rest = name.split("__")
        field, kind = rest.rsplit("_", 1)
        out.setdefault(register, {}).setdefault(field, {})[kind] = int(value, 0)
    return out


def _want(register, field):
    """What the PeakRDL header must say of ``field`` of ``register``."""
    want = dict(bm=field.mask, bp=field.lsb, bw=field.width)
    if register.name not in isa.CONFIG_REGISTERS:
        want["reset"] = (register.reset >> field.lsb) & ((1 << field.width) - 1)
    return want


def test_header_has_every_field_of_every_register(files):
    """Parsed back, PeakRDL's macros are every field of every register (and nothing else),
    with the mask, position and width of ``isa.Register.bitfields`` and the reset of the
    definition (none for the registers that read the config)."""
    got = _header_macros(files["chrysalis_regs.h"])
    want = {r.name: {f.name.upper(): _want(r, f) for f in r.bitfields} for r in isa.REGISTERS}
    assert got == want


def _compile_and_run(tmp_path, files, body):
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler on this machine (make setup installs one)")
    (tmp_path / "chrysalis_regs.h").write_text(files["chrysalis_regs.h"])
    (tmp_path / "chrysalis_isa.h").write_text(isa.c_header())
    (tmp_path / "use.c").write_text(
        "#include <stddef.h>\n#include <stdio.h>\n"
        '#include "chrysalis_isa.h"\n#include "chrysalis_regs.h"\n'
        "int main(void) {\n" + body + "    return 0;\n}\n")
    subprocess.run([compiler, *C_FLAGS, "-o", str(tmp_path / "use"), str(tmp_path / "use.c")],
                   check=True)
    out = subprocess.run([str(tmp_path / "use")], check=True, capture_output=True, text=True)
    return [int(word) for word in out.stdout.split()]


def _print(expr):
    return f'    printf("%lu\\n", (unsigned long)({expr}));\n'


def test_headers_compile_together_and_agree(tmp_path, files):
    """Both headers in one C99 program under -Wall -Wextra -Werror -pedantic: the offset of
    every register in PeakRDL's struct is its offset in the definition (and in
    chrysalis_isa.h), and every field's mask and position are the same in both headers."""
    body = _print("sizeof(chrysalis_t)")
    for r in isa.REGISTERS:
        body += _print(f"offsetof(chrysalis_t, {r.name}) - CHRYSALIS_REG_{r.name}")
        body += _print(f"offsetof(chrysalis_t, {r.name})")
        for f in r.bitfields:
            ours, theirs = f"CHRYSALIS_REG_{r.name}_{f.name.upper()}", \
                f"CHRYSALIS__{r.name}__{f.name.upper()}"
            body += _print(f"({ours}_MASK != {theirs}_bm) + ({ours}_SHIFT != {theirs}_bp)")
    words = _compile_and_run(tmp_path, files, body)
    last = max(r.offset for r in isa.REGISTERS)
    want = [last + 4]
    for r in isa.REGISTERS:
        want += [0, r.offset] + [0] * len(r.bitfields)
    assert words == want


def test_a_small_program_uses_the_macros(tmp_path, files):
    """What a driver writes: the interrupt enable from two fields, the fields of a STATUS
    and an ARRAY value read back, a counter clear."""
    array = isa.REGISTER["ARRAY"].pack(rows=4, cols=8, banks=8, mac_latency=6)
    body = (
        _print("CHRYSALIS__IRQ_ENABLE__DONE_bm | CHRYSALIS__IRQ_ENABLE__ERROR_bm")
        + "    {\n        uint32_t status = 0x6u, array = " + f"0x{array:08X}u;\n"
        + "    " + _print("(status & CHRYSALIS__STATUS__DONE_bm) >> CHRYSALIS__STATUS__DONE_bp")
        + "    " + _print("(status & CHRYSALIS__STATUS__RUNNING_bm) >> "
                          "CHRYSALIS__STATUS__RUNNING_bp")
        + "    " + _print("(array & CHRYSALIS__ARRAY__MAC_LATENCY_bm) >> "
                          "CHRYSALIS__ARRAY__MAC_LATENCY_bp")
        + "    " + _print("CHRYSALIS_REG_GET(ARRAY_COLS, array)")
        + "    }\n"
        + _print("offsetof(chrysalis_t, COUNTER_CLEAR)")
        + _print("1u << CHRYSALIS__COUNTER_CLEAR__CLEAR_bp")
        + _print("CHRYSALIS__VERSION__MAJOR_reset << 16 | CHRYSALIS__VERSION__MINOR_reset"))
    major, minor = isa.ISA_VERSION
    assert _compile_and_run(tmp_path, files, body) == [
        0b11, 1, 0, 6, 8, isa.REGISTER["COUNTER_CLEAR"].offset, 1, major << 16 | minor]


_IPXACT_ACCESS = {"r": "read-only", "rw": "read-write", "w": "write-only", "w1c": "read-write"}


def test_ipxact_has_every_register(files):
    """The IP-XACT parses as XML: one component (named after the map, versioned as the
    command set) with one address block that holds every register at its offset with its
    fields, access and resets."""
    root = ET.fromstring(files["chrysalis_regs.xml"])
    assert [root.findtext(f"ipxact:{tag}", namespaces=IPXACT)
            for tag in ("vendor", "library", "name", "version")] == [
        "chrysalis", "chrysalis", "chrysalis", "{}.{}".format(*isa.ISA_VERSION)]
    block, = root.iterfind(".//ipxact:addressBlock", IPXACT)
    got = {}
    for reg in block.iterfind("ipxact:register", IPXACT):
        fields = {}
        for f in reg.iterfind("ipxact:field", IPXACT):
            reset = f.findtext("ipxact:resets/ipxact:reset/ipxact:value", namespaces=IPXACT)
            fields[f.findtext("ipxact:name", namespaces=IPXACT)] = (
                int(f.findtext("ipxact:bitOffset", namespaces=IPXACT)),
                int(f.findtext("ipxact:bitWidth", namespaces=IPXACT)),
                f.findtext("ipxact:access", namespaces=IPXACT),
                f.findtext("ipxact:modifiedWriteValue", namespaces=IPXACT),
                None if reset is None else int(reset.removeprefix("'h"), 16))
        offset = reg.findtext("ipxact:addressOffset", namespaces=IPXACT)
        got[reg.findtext("ipxact:name", namespaces=IPXACT)] = (
            int(offset.removeprefix("'h"), 16), int(reg.findtext("ipxact:size",
                                                                 namespaces=IPXACT)), fields)
    want = {}
    for r in isa.REGISTERS:
        fields = {}
        for f in r.bitfields:
            reset = _want(r, f).get("reset")
            fields[f.name] = (f.lsb, f.width, _IPXACT_ACCESS[r.access],
                              "oneToClear" if r.access == "w1c" else None, reset)
        want[r.name] = (r.offset, 32, fields)
    assert got == want


def test_markdown_lists_every_register(files):
    """PeakRDL's Markdown: the table of the address map has every register at its offset,
    each register has its section, and the notes on the registers are there."""
    text = files["chrysalis_regs.md"]
    rows = re.findall(r"^\| (0x[0-9A-F]+)\|\s*(\w+)\s*\|", text, re.M)
    assert [(int(o, 16), name) for o, name in rows] == [(r.offset, r.name)
                                                       for r in isa.REGISTERS]
    for r in isa.REGISTERS:
        assert f"### {r.name} register\n\n- Absolute Address: 0x{r.offset:X}\n" in text
    assert "<code>COUNTER_CLEAR.clear</code>, whichever came later" in text


def test_rdl_keeps_the_definitions_words():
    """The descriptions go into the RDL as they are in the definition (quotes escaped)."""
    text = regmap.rdl()
    assert 'desc = "`0x43485253`, \\"CHRS\\"";' in text
    for paragraph in isa.register_notes():
        assert paragraph in text
    assert "} COUNTER_CLEAR @ 0x060;" in text


def test_main_writes_the_files(tmp_path, files):
    assert regmap._main([str(tmp_path / "out")]) == 0
    assert {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()} == files
    assert regmap._main([]) == 2


def test_committed_register_docs_are_peakrdl_output():
    """docs/registers.md is PeakRDL-markdown's page of the register map, kept in step:
    regenerate it with ``python -m chrysalis.gen.emit.regmap build/regs`` and copy
    ``chrysalis_regs.md``."""
    docs = Path(__file__).resolve().parents[3] / "docs" / "registers.md"
    assert docs.read_text(encoding="utf-8") == regmap.files()[regmap.FILES["markdown"]]
