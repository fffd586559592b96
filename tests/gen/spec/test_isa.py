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


def _fwd(**over):
    fields = dict(op=isa.Opcode.FORWARD, m=4, n=4, batch=2, wbase=0, abase=0, sp_base=0,
                  sp_lpc=2)
    fields.update(over)
    return isa.decode(isa.encode(**fields))


@pytest.mark.parametrize("command,code", [
    (_fwd(), isa.ErrorCode.NONE),
    ({**_fwd(), "op": 0}, isa.ErrorCode.BAD_OPCODE),
    ({**_fwd(), "op": 17}, isa.ErrorCode.BAD_OPCODE),
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


def test_c_header_compiles(tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler on this machine (make setup installs one)")
    (tmp_path / "chrysalis_isa.h").write_text(isa.c_header())
    (tmp_path / "use.c").write_text(
        '#include "chrysalis_isa.h"\n'
        "int main(void) {\n"
        "    uint32_t cmd[CHRYSALIS_CMD_WORDS] = {0};\n"
        "    CHRYSALIS_CMD_SET(cmd, OP, CHRYSALIS_OP_DMA_LOAD);\n"
        "    CHRYSALIS_CMD_SET(cmd, N, 13);\n"
        "    CHRYSALIS_CMD_SET(cmd, BATCH, 3);\n"
        "    chrysalis_cmd_set_mem_addr(cmd, 0x123456789abcull);\n"
        "    for (int i = 0; i < CHRYSALIS_CMD_WORDS; i++) printf(\"%u\\n\", cmd[i]);\n"
        "    return 0;\n}\n")
    source = (tmp_path / "use.c").read_text().replace('#include "chrysalis_isa.h"\n',
                                                      '#include <stdio.h>\n#include "chrysalis_isa.h"\n')
    (tmp_path / "use.c").write_text(source)
    subprocess.run([compiler, "-Wall", "-Werror", "-o", str(tmp_path / "use"),
                    str(tmp_path / "use.c")], check=True)
    words = [int(w) for w in subprocess.run([str(tmp_path / "use")], check=True,
                                            capture_output=True, text=True).stdout.split()]
    assert tuple(words) == isa.encode("DMA_LOAD", n=13, batch=3, mem_addr=0x123456789abc)


def test_core_operations_keep_the_command_set_numbers():
    from chrysalis.hw.core import CoreOp
    core = {op.name: op.value for op in CoreOp if op.name != "NONE"}
    assert core == {op.name: int(op) for op in isa.Opcode
                    if op not in (isa.Opcode.DMA_LOAD, isa.Opcode.DMA_STORE)
                    and op not in isa.COLLECTIVES}
    assert CoreOp.NONE.value == 0 and 0 not in set(isa.Opcode)
