"""The command set and register map (gen/spec/isa.py): encoding, checks and generated documents."""

import shutil
import subprocess
from pathlib import Path

import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import PRESETS

REPO = Path(__file__).resolve().parents[3]
LIMITS = isa.Limits.from_config(PRESETS["tiny"])


def test_fields_fit_and_overlap_only_across_operations():
    for f in isa.FIELDS:
        assert f.bit + f.width <= 32 * isa.COMMAND_WORDS, f.name
    for op, names in isa.OP_FIELDS.items():
        used = 0
        for name in ("op", *names):
            f = isa.FIELD[name]
            bits = f.mask << f.bit
            assert not used & bits, f"{op.name}: {name} overlaps another field it uses"
            used |= bits


@pytest.mark.parametrize("op", list(isa.Opcode))
def test_encode_decode_round_trip(op):
    values = {name: (i * 7919 + 3) & isa.FIELD[name].mask
              for i, name in enumerate(isa.OP_FIELDS[op])}
    decoded = isa.decode(isa.encode(op, **values))
    assert decoded["op"] == op and decoded["reserved"] == 0
    for name, value in values.items():
        assert decoded[name] == value, name


@pytest.mark.parametrize("args,message", [
    (("JUMP",), "op must be one of"),
    (("FORWARD",), None),
    ((99,), "op must be an Opcode"),
    (("FORWARD", {"m": 1 << 16}), "field m of FORWARD must be in [0, 65535], not 65536"),
    (("FORWARD", {"m": -1}), "not -1"),
    (("FORWARD", {"mem_addr": 64}), "field mem_addr is not used by FORWARD"),
    (("FORWARD", {"bogus": 1}), "'bogus' is not a command field"),
])
def test_encode_errors_name_the_field(args, message):
    op, fields = args[0], (args[1] if len(args) > 1 else {})
    if message is None:
        assert len(isa.encode(op, **fields)) == isa.COMMAND_WORDS
        return
    with pytest.raises(ValueError) as info:
        isa.encode(op, **fields)
    assert message in str(info.value)


def test_encode_stream_names_the_command():
    with pytest.raises(ValueError, match="command 1: field n"):
        isa.encode_stream([dict(op="LOAD_COL", n=1, batch=1), dict(op="LOAD_COL", n=1 << 20)])


def test_encode_takes_integers_of_numpy_and_a_bool_only_for_a_flag():
    # The compilers pass NumPy integers and a bool for ReLU: the same words as Python ints.
    np = pytest.importorskip("numpy")
    words = isa.encode("FORWARD", flag=1, m=3, n=2, batch=1)
    assert isa.encode("FORWARD", flag=True, m=np.uint16(3), n=np.int64(2), batch=1) == words
    assert isa.encode("FORWARD", flag=np.True_, m=3, n=2, batch=1) == words
    for value in (1.0, 3.0, "3", True, np.float32(3), None):
        with pytest.raises(ValueError, match=r"^field m must be an integer, not "):
            isa.encode("FORWARD", m=value)


def test_decode_takes_numpy_words_and_names_a_bad_one():
    np = pytest.importorskip("numpy")
    words = isa.encode("LOAD_COL", n=5, batch=2, sp_lpc=1)
    assert isa.decode(np.array(words, dtype=np.uint32)) == isa.decode(words)
    # A word is taken modulo 2**32, as memory holds it.
    assert isa.decode([words[0] - (1 << 32), *words[1:]]) == isa.decode(words)
    bad = [*words[:3], 2.0, *words[4:]]
    with pytest.raises(ValueError, match=r"^word 3 must be an integer, not 2\.0$"):
        isa.decode(bad)


def _fwd(**over):
    fields = dict(op=isa.Opcode.FORWARD, m=4, n=4, batch=2, wbase=0, abase=0, sp_base=0,
                  sp_lpc=2)
    fields.update(over)
    return isa.decode(isa.encode(**fields))


@pytest.mark.parametrize("command,code", [
    (_fwd(), isa.ErrorCode.NONE),
    ({**_fwd(), "op": 0}, isa.ErrorCode.BAD_OPCODE),
    ({**_fwd(), "op": max(isa.Opcode) + 1}, isa.ErrorCode.BAD_OPCODE),
    ({**_fwd(), "reserved": 1 << 9}, isa.ErrorCode.RESERVED_BITS),
    (_fwd(batch=0), isa.ErrorCode.ZERO_SIZE),
    (_fwd(wbase=LIMITS.weight_words - 3), isa.ErrorCode.WEIGHT_RANGE),
    (_fwd(wbase=LIMITS.weight_words - 4), isa.ErrorCode.NONE),
    (_fwd(abase=LIMITS.act_words - 3), isa.ErrorCode.ACT_RANGE),
    (_fwd(sp_lpc=1), isa.ErrorCode.SCRATCHPAD_RANGE),
    (_fwd(sp_base=LIMITS.sp_lines - 3), isa.ErrorCode.SCRATCHPAD_RANGE),
    (_fwd(sp_base=LIMITS.sp_lines - 4), isa.ErrorCode.NONE),
])
def test_check(command, code):
    assert isa.check(command, LIMITS) == code


def test_check_dma():
    def dma(**over):
        fields = dict(op="DMA_LOAD", n=3, batch=2, mem_addr=0x1000, mem_stride=16, sp_base=0,
                      sp_lpc=2)
        fields.update(over)
        return isa.decode(isa.encode(**fields))
    window = isa.Limits.from_config(PRESETS["tiny"], dma_base=0x1000, dma_last=0x101F)
    assert isa.check(dma(), window) == isa.ErrorCode.NONE       # 2 columns of 16 bytes
    assert isa.check(dma(mem_addr=0x1004), window) == isa.ErrorCode.DMA_ALIGN
    assert isa.check(dma(mem_stride=12), window) == isa.ErrorCode.DMA_ALIGN
    assert isa.check(dma(mem_addr=0x0FF8), window) == isa.ErrorCode.DMA_RANGE
    assert isa.check(dma(mem_stride=24), window) == isa.ErrorCode.DMA_RANGE
    assert isa.check(dma(n=5, sp_lpc=3), window) == isa.ErrorCode.DMA_RANGE  # 3 beats a column
    assert isa.check(dma(n=5), window) == isa.ErrorCode.SCRATCHPAD_RANGE
    assert isa.check_fetch(0x1000, 0, window) == isa.ErrorCode.NONE
    assert isa.check_fetch(0x1000, 1, isa.Limits.from_config(
        PRESETS["tiny"], dma_base=0x1000, dma_last=0x103F)) == isa.ErrorCode.NONE
    assert isa.check_fetch(0x1020, 1, LIMITS) == isa.ErrorCode.FETCH_RANGE
    assert isa.check_fetch(0x1000, 1, window) == isa.ErrorCode.FETCH_RANGE


def test_registers_are_distinct_and_aligned():
    offsets = [r.offset for r in isa.REGISTERS]
    assert len(set(offsets)) == len(offsets)
    assert all(o % 4 == 0 and o < 4096 for o in offsets)


def test_reference_is_up_to_date():
    """docs/commands.md is generated: `python -m gen.spec.isa docs/commands.md`."""
    assert (REPO / "docs" / "commands.md").read_text() == isa.markdown()


#: The strictest C the headers must compile under (``-Werror``: a warning fails).
C_FLAGS = ["-Wall", "-Wextra", "-Werror", "-std=c99", "-pedantic"]


def test_c_header_compiles(tmp_path):
    """chrysalis_isa.h under strict C99: the command macros build a command as ``encode``
    does, and every field of every register splits a value as ``Register.bitfields`` does,
    with the SHIFT/MASK macros and with CHRYSALIS_REG_GET; CHRYSALIS_REG_PUT places a value
    in a field."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler on this machine (make setup installs one)")
    (tmp_path / "chrysalis_isa.h").write_text(isa.c_header())
    (tmp_path / "use.c").write_text(
        "#include <stdio.h>\n"
        '#include "chrysalis_isa.h"\n'
        "int main(void) {\n"
        "    uint32_t cmd[CHRYSALIS_CMD_WORDS] = {0};\n"
        "    int i;\n"
        "    CHRYSALIS_CMD_SET(cmd, OP, CHRYSALIS_OP_DMA_LOAD);\n"
        "    CHRYSALIS_CMD_SET(cmd, N, 13);\n"
        "    CHRYSALIS_CMD_SET(cmd, BATCH, 3);\n"
        "    chrysalis_cmd_set_mem_addr(cmd, 0x123456789abcull);\n"
        "    for (i = 0; i < CHRYSALIS_CMD_WORDS; i++) printf(\"%lu\\n\", (unsigned long)cmd[i]);\n"
        + "".join(f"    printf(\"%lu %lu\\n\", (unsigned long)((0x{FIELD_WORD:08X}u & {name}_MASK)"
                  f" >> {name}_SHIFT), (unsigned long)CHRYSALIS_REG_GET({field}, "
                  f"0x{FIELD_WORD:08X}u));\n" for name, field in _field_macros())
        + "    printf(\"%lu\\n\", (unsigned long)(CHRYSALIS_REG_PUT(IRQ_ENABLE_ERROR, 1) |\n"
          "        CHRYSALIS_REG_PUT(ARRAY_COLS, 0x1FF) |\n"
          "        CHRYSALIS_REG_PUT(COUNTER_CLEAR_CLEAR, 1)));\n"
        + "    return 0;\n}\n")
    subprocess.run([compiler, *C_FLAGS, "-o", str(tmp_path / "use"), str(tmp_path / "use.c")],
                   check=True)
    words = [int(w) for w in subprocess.run([str(tmp_path / "use")], check=True,
                                            capture_output=True, text=True).stdout.split()]
    n = isa.COMMAND_WORDS
    assert tuple(words[:n]) == isa.encode("DMA_LOAD", n=13, batch=3, mem_addr=0x123456789abc)
    # Every field of every register, the 32-bit VALUE of a register without fields too.
    want = [value for r in isa.REGISTERS for f in r.bitfields
            for value in 2 * [(FIELD_WORD >> f.lsb) & ((1 << f.width) - 1)]]
    assert words[n:-1] == want
    assert words[-1] == (0b10 | 0xFF << 8 | 1)      # a value wider than its field is cut


#: A register value to split with the C header's bit-field macros.
FIELD_WORD = 0xA5C3_3C5A


def _field_macros():
    """``(macro prefix, CHRYSALIS_REG_GET argument)`` of every field of every register."""
    return [(f"CHRYSALIS_REG_{r.name}_{f.name.upper()}", f"{r.name}_{f.name.upper()}")
            for r in isa.REGISTERS for f in r.bitfields]


def test_every_register_has_bit_fields():
    """``Register.bitfields``: a register's own fields, or one 32-bit ``value``; every
    register that packs several values (STATUS, IRQ_*, ARRAY, BUS, CLUSTER, ...) has its
    fields, and the fields of each register lie where the RTL's read value puts them."""
    for r in isa.REGISTERS:
        assert r.bitfields, r.name
        if r.fields:
            assert r.bitfields == r.fields
        else:
            assert [(f.name, f.lsb, f.width) for f in r.bitfields] == [("value", 0, 32)]
    packed = {"STATUS": ["running", "done", "error"], "IRQ_ENABLE": ["done", "error"],
              "IRQ_STATUS": ["done", "error"], "ARRAY": ["rows", "cols", "banks", "mac_latency"],
              "BUS": ["data_width", "addr_width"], "CLUSTER": ["cores", "link_words",
                                                               "hop_latency"],
              "DOORBELL": ["run"], "COUNTER_CLEAR": ["clear"], "ERROR_CODE": ["code"]}
    for name, fields in packed.items():
        assert [f.name for f in isa.REGISTER[name].fields] == fields, name
    assert isa.REGISTER["STATUS"].pack(running=1, done=1, error=1) == 0b111
    assert isa.REGISTER["IRQ_STATUS"].pack(done=1, error=1) == 0b11


def test_counter_clear_and_the_register_sets():
    """COUNTER_CLEAR is a write-only pulse refused while running; the sets of registers
    name registers of the map with the access they need."""
    clear = isa.REGISTER["COUNTER_CLEAR"]
    assert (clear.access, clear.pack(clear=1), clear.reset) == ("w", 1, 0)
    assert clear.offset < 0x100 and clear.offset not in {r.offset for r in isa.REGISTERS
                                                         if r is not clear}
    assert set(isa.LOCKED_WHILE_RUNNING) <= {r.name for r in isa.REGISTERS if r.writable}
    assert "COUNTER_CLEAR" in isa.LOCKED_WHILE_RUNNING and "IRQ_STATUS" not in \
        isa.LOCKED_WHILE_RUNNING
    assert isa.CONFIG_REGISTERS <= set(isa.REGISTER)
    assert all(isa.REGISTER[name].access == "r" for name in isa.CONSTANT_REGISTERS)
    assert not isa.CONSTANT_REGISTERS & isa.CONFIG_REGISTERS


def test_shared_fields():
    """The fields that share bits are found from their positions, no operation uses both,
    and the reference and the C header say so."""
    assert isa.shared_fields() == (("scalar", "mem_addr", (13,)), ("scalar2", "mem_addr", (14,)))
    for a, b, _ in isa.shared_fields():
        assert not any(a in names and b in names for names in isa.OP_FIELDS.values())
    assert "`scalar` and `mem_addr` share word 13; `scalar2` and `mem_addr` share word 14" \
        in isa.markdown()
    assert "/* scalar and mem_addr share word 13: no operation uses both */" in isa.c_header()


def test_reference_says_what_the_counters_count():
    """The reference says the counters are cumulative, since reset or the last clear, and
    what a DMA_LOAD does with the words past ``n`` in a column's last beat."""
    text = isa.markdown()
    assert ("They are cumulative: each counts over every run since reset or since the last "
            "write of 1 to `COUNTER_CLEAR.clear`") in text
    assert "| 0x060 | `COUNTER_CLEAR` | w | 0x0 | `clear`: write 1 to set every counter" in text
    assert ("the words of a column's last beat past `n` are dropped, and the scratchpad "
            "keeps what it held there") in text


def test_the_core_runs_the_operations_that_are_neither_dma_nor_collective():
    from chrysalis.hw.core import CORE_OPS
    assert set(CORE_OPS) == {op for op in isa.Opcode
                             if op not in isa.DMA_OPS and op not in isa.COLLECTIVES}
    assert 0 not in set(isa.Opcode)


def test_every_operation_has_its_regions():
    assert set(isa.OP_REGIONS) == set(isa.Opcode)
    assert isa.DMA_OPS == {isa.Opcode.DMA_LOAD, isa.Opcode.DMA_STORE}
    for op, regions in isa.OP_REGIONS.items():
        matrices = [r.base for r in regions if r.memory == "scratchpad"]
        assert len(set(matrices)) == len(matrices), f"{op.name} touches a matrix twice"
        for r in regions:
            base = (f"{r.base}_base", f"{r.base}_lpc") if r.memory == "scratchpad" else (r.base,)
            assert set(base) <= set(isa.OP_FIELDS[op]), (op.name, r)
            assert r.when is None or r.when in isa.OP_FIELDS[op], (op.name, r)


@pytest.mark.parametrize("args,message", [
    (("bank", "wbase", "mt", "nt"), "memory must be one of weight, act, scratchpad, memory, "
                                    "not 'bank'"),
    (("weight", "wbase", "mt*k", "nt"), "not 'mt*k'"),
    (("weight", "wbase", "mt", "nt", "m"), "when must name a one-bit field, not 'm'"),
])
def test_region_refuses_what_the_checks_cannot_read(args, message):
    with pytest.raises(ValueError) as info:
        isa.Region(*args)
    assert message in str(info.value)


def _valid(op):
    """A command of ``op`` that passes the checks on ``LIMITS`` with two cores."""
    fields = dict(m=3, n=3, batch=2, wbase=1, wbase2=30, abase=1, abase2=30, sp_base=0,
                  sp_lpc=4, sp2_base=100, sp2_lpc=4, sp3_base=200, sp3_lpc=4, flag=1,
                  fill=1, mem_addr=0x1000, mem_stride=0x40, root=0, peer=1, cores=1)
    if op == isa.Opcode.GATHER:
        fields["sp3_lpc"] = 5           # its table has m * n = 9 rows
    return isa.decode(isa.encode(op, **{k: v for k, v in fields.items()
                                        if k in isa.OP_FIELDS[op]}))


@pytest.mark.parametrize("op", list(isa.Opcode))
def test_each_region_is_checked(op):
    """Moving one region of the table past its memory gives that memory's error code, and
    a region with ``when`` is checked only with its flag set."""
    limits = isa.Limits(**{**LIMITS.__dict__, "cores": 2})
    command = _valid(op)
    assert isa.check(command, limits) == isa.ErrorCode.NONE
    past = {"weight": ("weight_words", isa.ErrorCode.WEIGHT_RANGE),
            "act": ("act_words", isa.ErrorCode.ACT_RANGE),
            "scratchpad": ("sp_lines", isa.ErrorCode.SCRATCHPAD_RANGE),
            "memory": ("dma_last", isa.ErrorCode.DMA_RANGE)}
    for r in isa.OP_REGIONS[op]:
        depth, code = past[r.memory]
        base = f"{r.base}_base" if r.memory == "scratchpad" else r.base
        moved = {**command, base: getattr(limits, depth) - 1}
        if r.memory == "memory":
            moved[base] &= ~(limits.beat_bytes - 1)
        assert isa.check(moved, limits) == code, (op.name, r)
        if r.when:
            assert isa.check({**moved, r.when: 0}, limits) == isa.ErrorCode.NONE, (op.name, r)


def test_register_fields_pack_and_unpack():
    for r in isa.REGISTERS:
        values = {f.name: (0x5A5A_5A5A >> f.lsb) & ((1 << f.width) - 1) for f in r.fields}
        word = r.pack(**values)
        assert r.unpack(word) == values
        assert word & ~sum(f.mask for f in r.fields) == 0
    array = isa.REGISTER["ARRAY"]
    assert array.pack(rows=4, cols=8, banks=8, mac_latency=3) == 0x0308_0804
    assert isa.REGISTER["VERSION"].unpack(isa.REGISTER["VERSION"].reset) == dict(
        major=isa.ISA_VERSION[0], minor=isa.ISA_VERSION[1])
    with pytest.raises(ValueError, match="ARRAY.rows must fit in 8 bits, not 256"):
        array.pack(rows=256)
    with pytest.raises(KeyError, match="ARRAY has no bit-field 'depth'"):
        array.pack(depth=1)
    with pytest.raises(ValueError, match="bit-field b of X overlaps another field"):
        isa.Register("X", 0, "r", "", fields=(isa.BitField("a", 0, 4, ""),
                                              isa.BitField("b", 3, 2, "")))


def test_c_header_names_are_distinct_and_keep_their_values():
    defines = [line.split()[1:3] for line in isa.c_header().splitlines()
               if line.startswith("#define ") and len(line.split()) == 3]
    names = [name for name, _ in defines]
    assert len(set(names)) == len(names)
    values = dict(defines)
    for r in isa.REGISTERS:
        assert values[f"CHRYSALIS_REG_{r.name}"] == f"0x{r.offset:03X}u"
        for f in r.bitfields:
            name = f"CHRYSALIS_REG_{r.name}_{f.name.upper()}"
            assert (values[f"{name}_SHIFT"], values[f"{name}_MASK"]) == (str(f.lsb),
                                                                        f"0x{f.mask:08X}u")


@pytest.mark.parametrize("op", [isa.Opcode.FORWARD, isa.Opcode.BACKWARD])
def test_a_fill_must_not_overlap_what_its_command_reads(op):
    """FORWARD and BACKWARD with ``fill`` are refused (ACT_RANGE) when the region they fill
    at ``abase2`` overlaps the one they read at ``abase``; side by side they run, and
    without ``fill`` ``abase2`` is not looked at."""
    limits = isa.Limits(**{**LIMITS.__dict__, "cores": 2})
    # m = 3 and n = 5 on the 2x2 array, batch 2: FORWARD reads nt * 2 = 6 words and fills
    # mt * 2 = 4; BACKWARD reads 4 and fills 6.
    read, filled = (6, 4) if op == isa.Opcode.FORWARD else (4, 6)
    base = dict(m=3, n=5, batch=2, abase=10, sp_lpc=4, cores=1)
    if op == isa.Opcode.BACKWARD:
        base.update(flag=1, sp2_base=100, sp2_lpc=4)
    check = lambda **f: isa.check(isa.decode(isa.encode(op, **{**base, **f})), limits)
    E = isa.ErrorCode
    assert check(fill=1, abase2=10 + read) == E.NONE
    assert check(fill=1, abase2=10 - filled) == E.NONE
    assert check(fill=1, abase2=10 + read - 1) == E.ACT_RANGE
    assert check(fill=1, abase2=10 - filled + 1) == E.ACT_RANGE
    assert check(fill=1, abase2=10) == E.ACT_RANGE
    assert check(fill=0, abase2=10) == E.NONE
