# amaranth: UnusedElaboratable=no
"""The PE's RTL against its transaction-level golden model on random hazard-free programs.

``rtl(program)`` runs the pipelined PE in Amaranth's simulator and ``ref(program)`` runs
``sim.golden.pe_model.PEModel``; both return the words sent (partial sums and weights) and the
final accumulators and weights, which must be equal bit for bit.
"""

import functools
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.sim import Simulator

from chrysalis.gen.spec.formats import BF16, FP16, FP32, FP8_E4M3
from chrysalis.hw.pe import PE, ComputeOp, TransferOp
from chrysalis.sim.golden import numerics as nx
from chrysalis.sim.golden.pe_model import PEModel


def _f32(values):
    return nx.from_float32(np.asarray(values, dtype=np.float32))


class Program:
    """A random micro-op program that keeps the PE's timing rules (see ``hw.pe.PE``).

    About half the MACs that may hold an operand do (``c_hold`` for ``a``, ``c_hold_b`` for
    ``b``): the last read of its port (the weight bank's, or the activation bank's second
    with ``a_act``; the activation bank's first) was of the same address, and no write
    reached that word since (``held`` counts the held operands)."""

    def __init__(self, rng, *, weight_words, act_words, acc_regs, latency, length,
                 act_write_latency=1):
        self.steps = []          # (uop dict, row_in, col_in)
        self.scalar = int(_f32([-0.125])[0])
        self.scalar2 = int(_f32([0.875])[0])
        quiet = latency + 2
        acc_ready = [0] * acc_regs        # first cycle an accumulator may be read again
        w_ready = [0] * weight_words
        a_ready = [0] * act_words         # an activation word lands a cycle after its write
        w_port_busy = set()               # cycles whose weight write port an UPDATE uses
        self.held = 0
        last_read = {"w": None, "a2": None, "b": None}   # port -> (address, cycle)
        writes = []                                      # (cycle, bank, address)

        def holdable(port, t):
            if last_read[port] is None or not rng.integers(2):
                return None
            addr, when = last_read[port]
            bank = "w" if port == "w" else "a"
            if any(b == bank and a == addr and when <= c < t for c, b, a in writes):
                return None
            return addr
        values = _f32(rng.standard_normal(max(weight_words, act_words)) * 2)
        # Fill both banks through the buses first.
        for addr in range(weight_words):
            self.steps.append(({"t_op": "W_FROM_ROW", "t_addr": addr}, int(values[addr]), 0))
        for addr in range(act_words):
            bus = "ACT_FROM_COL" if addr % 2 else "ACT_FROM_ROW"
            word = int(values[(addr * 7) % len(values)] ^ np.uint64(1 << 31))
            self.steps.append(({"t_op": bus, "t_addr": addr}, word, word))
            a_ready[addr] = len(self.steps) + act_write_latency
        for _ in range(length):
            t = len(self.steps)
            uop = {}
            kind = rng.choice(["MAC", "MAC", "MAC", "UPDATE", "UPDATE_V", "FUSED", "NONE"])
            k = int(rng.integers(acc_regs))
            w = int(rng.integers(weight_words))
            if kind == "MAC":
                clear = bool(rng.integers(2)) or acc_ready[k] > t
                a_act = bool(rng.integers(2))
                aaddr2 = int(rng.integers(act_words))
                held = holdable("a2" if a_act else "w", t)
                if held is not None:
                    w, aaddr2 = (w, held) if a_act else (held, aaddr2)
                held_b = holdable("b", t)
                aaddr = int(rng.integers(act_words)) if held_b is None else held_b
                landed = a_ready[aaddr] <= t and (not a_act or a_ready[aaddr2] <= t)
                if (clear or acc_ready[k] <= t) and landed:
                    if a_act or w_ready[w] <= t:
                        uop = {"c_op": "MAC", "c_acc": k, "c_clear": clear, "a_act": a_act,
                               "waddr": w, "aaddr": aaddr, "aaddr2": aaddr2,
                               "c_hold": held is not None, "c_hold_b": held_b is not None}
                        acc_ready[k] = t + latency + 1
                        self.held += (held is not None) + (held_b is not None)
            elif kind == "FUSED" and w_ready[w] <= t and t + 1 + latency not in w_port_busy:
                # A MAC of the fused update: from the weight and/or into it.
                init_w, to_w = [(True, False), (False, True), (True, True)][rng.integers(3)]
                aaddr, aaddr2 = (int(a) for a in rng.integers(act_words, size=2))
                if (init_w or acc_ready[k] <= t) and max(a_ready[aaddr], a_ready[aaddr2]) <= t:
                    uop = {"c_op": "MAC", "c_acc": k, "c_init_w": init_w, "c_to_w": to_w,
                           "a_act": True, "waddr": w, "aaddr": aaddr, "aaddr2": aaddr2}
                    if to_w:
                        w_ready[w] = t + quiet
                        w_port_busy.add(t + 1 + latency)
                    else:
                        acc_ready[k] = t + latency + 1
            elif kind in ("UPDATE", "UPDATE_V") and acc_ready[k] <= t and w_ready[w] <= t \
                    and t + 1 + latency not in w_port_busy:
                uop = {"c_op": kind, "c_acc": k, "waddr": w}
                w_ready[w] = t + quiet
                w_port_busy.add(t + 1 + latency)
                if kind == "UPDATE_V":
                    acc_ready[k] = t + latency + 1
            reads_weight = uop.get("c_op") in ("UPDATE", "UPDATE_V") or (
                uop.get("c_op") == "MAC" and (not uop.get("a_act") or uop.get("c_init_w")))
            transfer = rng.choice(["SEND_ACC", "SEND_W", "ACT", "W", "NONE"])
            row_in = int(values[int(rng.integers(len(values)))])
            k2 = int(rng.integers(acc_regs))
            w2 = int(rng.integers(weight_words))
            # A SEND_ACC's word would show in the cycle of the SEND_W's before it.
            after_send_w = bool(self.steps) and self.steps[-1][0].get("t_op") == "SEND_W"
            if transfer == "SEND_ACC" and acc_ready[k2] + 1 <= t and not after_send_w:
                uop.update(t_op="SEND_ACC", t_acc=k2)
            elif transfer == "SEND_W" and not reads_weight and w_ready[w2] <= t:
                uop.update(t_op="SEND_W", t_addr=w2)
            elif transfer == "ACT":
                uop.update(t_op="ACT_FROM_ROW", t_addr=int(rng.integers(act_words)))
                a_ready[uop["t_addr"]] = t + act_write_latency + 1
            elif transfer == "W" and t not in w_port_busy and w_ready[w2] <= t \
                    and uop.get("waddr") != w2:
                uop.update(t_op="W_FROM_ROW", t_addr=w2)
                w_ready[w2] = t + 1
            self.steps.append((uop, row_in, row_in))
            _track(uop, t, latency, last_read, writes)
        # Drain the pipeline, then read every accumulator and weight out.
        self.steps += [({}, 0, 0)] * quiet
        for k in range(acc_regs):
            self.steps.append(({"t_op": "SEND_ACC", "t_acc": k}, 0, 0))
        for addr in range(weight_words):
            self.steps.append(({"t_op": "SEND_W", "t_addr": addr}, 0, 0))


def _track(uop, t, latency, last_read, writes):
    """Record the stationary ports' reads and the bank writes of the micro-op of cycle
    ``t`` (``hw.pe.PE``: which micro-ops enable which read port)."""
    c_op, t_op = uop.get("c_op"), uop.get("t_op")
    mac = c_op == "MAC"
    if t_op == "SEND_W":
        last_read["w"] = (uop["t_addr"], t)
    elif c_op in ("UPDATE", "UPDATE_V") or (mac and uop.get("c_init_w")) or (
            mac and not uop.get("a_act") and not uop.get("c_hold")):
        last_read["w"] = (uop["waddr"], t)
    if mac and uop.get("a_act") and not uop.get("c_hold"):
        last_read["a2"] = (uop["aaddr2"], t)
    if mac and not uop.get("c_hold_b"):
        last_read["b"] = (uop["aaddr"], t)
    if t_op == "W_FROM_ROW":
        writes.append((t, "w", uop["t_addr"]))
    elif t_op in ("ACT_FROM_ROW", "ACT_FROM_COL"):
        writes.append((t, "a", uop["t_addr"]))
    if c_op in ("UPDATE", "UPDATE_V") or (mac and uop.get("c_to_w")):
        writes.append((t + 1 + latency, "w", uop["waddr"]))


def ref(program, pe_args):
    model = PEModel(pe_args["operand"], pe_args["weight_words"], pe_args["act_words"],
                    pe_args["acc_regs"])
    for uop, row_in, col_in in program.steps:
        model.step(uop, row_in=row_in, col_in=col_in, scalar=program.scalar,
                   scalar2=program.scalar2)
    return model.sent


def rtl(program, pe_args):
    dut = PE(pe_args["operand"], weight_words=pe_args["weight_words"],
             act_words=pe_args["act_words"], acc_regs=pe_args["acc_regs"],
             mac_latency=pe_args["latency"])
    return run_pe(dut, program)[0]


def encode_uop(dut, uop):
    """The micro-op ``uop`` (a dict of field names, ops by name) as a constant of the PE
    ``dut``'s micro-op layout; unnamed fields are 0."""
    value = {name: 0 for name in dut.layout.members}
    for name, field in uop.items():
        if name == "c_op":
            field = ComputeOp[field]
        elif name == "t_op":
            field = TransferOp[field]
        value[name] = field
    value["c_op"] = value["c_op"] or ComputeOp.NONE
    value["t_op"] = value["t_op"] or TransferOp.NONE
    return dut.layout.const(value)


def send_delay(uop):
    """The edges after a micro-op's cycle at which its sent word is on ``out`` (1 for
    ``SEND_ACC``, 2 for ``SEND_W``), or None if it sends nothing."""
    return {"SEND_ACC": 1, "SEND_W": 2}.get(uop.get("t_op"))


def run_pe(dut, program):
    """``program`` on the PE ``dut`` in Amaranth's simulator: the words it sent, and the
    products each pair made (``made``, the counters' input), as ``(sent, [pair 0, pair 1])``."""
    sent = []
    made = [0, 0]
    encode = functools.partial(encode_uop, dut)

    async def testbench(ctx):
        ctx.set(dut.scalar, program.scalar)
        ctx.set(dut.scalar2, program.scalar2)
        ctx.set(dut.select, 1)
        due = set()                               # the steps after whose edge out is read
        for index, (uop, row_in, col_in) in enumerate([*program.steps, ({}, 0, 0)]):
            ctx.set(dut.uop, encode(uop))
            ctx.set(dut.row_in, row_in)
            ctx.set(dut.col_in, col_in)
            bits = ctx.get(dut.made)
            made[0] += bits & 1
            made[1] += bits >> 1
            await ctx.tick()
            # After the edge that ends a SEND_ACC's cycle, `out` holds the word sent; a
            # SEND_W's, an edge later (hw.pe.PE's timing).
            delay = send_delay(uop)
            if delay is not None:
                assert index + delay - 1 not in due, f"two sends show after step {index}"
                due.add(index + delay - 1)
            if index in due:
                due.remove(index)
                sent.append(ctx.get(dut.out))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return sent, made


# Latencies 10 and 12 register the conversion's rounding (fp16 through round_pack, bf16
# through narrow), the adder's rounding increment and leading-zero count, and the product.
@pytest.mark.parametrize("operand,latency,seed", [(BF16, 3, 1), (BF16, 6, 2), (FP8_E4M3, 2, 3),
                                                   (FP16, 4, 4), (FP32, 3, 5), (FP16, 10, 6),
                                                   (BF16, 12, 7)])
def test_pe_rtl_equals_model(operand, latency, seed):
    pe_args = {"operand": operand, "weight_words": 16, "act_words": 16, "acc_regs": 8,
               "latency": latency}
    pe = PE(operand, weight_words=16, act_words=16, acc_regs=8, mac_latency=latency)
    program = Program(np.random.default_rng(seed), weight_words=16, act_words=16, acc_regs=8,
                      latency=latency, length=2500, act_write_latency=pe.act_write_latency)
    expected = ref(program, pe_args)
    assert len(expected) > 100
    assert program.held > 200
    got = rtl(program, pe_args)
    assert got == expected


def test_held_operand_is_the_last_read_word():
    """``c_hold`` and ``c_hold_b`` really skip the read: a held operand whose address
    differs from the port's last read is the word of that last read, not the word at its
    own address."""
    one, two, three = (int(v) for v in _f32([1.0, 2.0, 3.0]))
    steps = [({"t_op": "W_FROM_ROW", "t_addr": 0}, two, 0),
             ({"t_op": "W_FROM_ROW", "t_addr": 1}, three, 0),
             ({"t_op": "ACT_FROM_ROW", "t_addr": 0}, one, 0),
             ({"t_op": "ACT_FROM_ROW", "t_addr": 1}, three, 0),
             ({"c_op": "MAC", "c_acc": 0, "c_clear": 1, "waddr": 0}, 0, 0),
             # Weight 1 (3.0) with c_hold: the port still holds weight 0 (2.0).
             ({"c_op": "MAC", "c_acc": 1, "c_clear": 1, "waddr": 1, "c_hold": 1}, 0, 0),
             ({"c_op": "MAC", "c_acc": 2, "c_clear": 1, "waddr": 1}, 0, 0),
             # Activation 1 (3.0) with c_hold_b: the port still holds activation 0 (1.0).
             ({"c_op": "MAC", "c_acc": 3, "c_clear": 1, "waddr": 1, "aaddr": 1,
               "c_hold_b": 1}, 0, 0)]
    steps += [({}, 0, 0)] * 5
    steps += [({"t_op": "SEND_ACC", "t_acc": k}, 0, 0) for k in range(4)]
    program = SimpleNamespace(steps=steps, scalar=0, scalar2=0)
    pe_args = {"operand": BF16, "weight_words": 4, "act_words": 4, "acc_regs": 4,
               "latency": 3}
    assert rtl(program, pe_args) == [two, two, three, three]


#: fp32 words that the operand formats round, flush or saturate: ties to even (fp16 and
#: bf16 differ), below fp16's smallest normal (flushed to a signed zero), above its largest
#: (saturated), -0, an fp32 subnormal (read as zero), and the all-ones exponent (a normal
#: number in these formats, far out of range).
_EDGE_WORDS = [int(w) for w in _f32([1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8,
                                     1.0 + 3 * 2.0 ** -8, 2.0 ** -20, -(2.0 ** -20),
                                     70000.0, -1e30, -0.0, 3.0, -0.1, 6.1e-5])]
_EDGE_WORDS += [0x00000001, 0x80000003, 0x7FC00000, 0xFF800000]


@pytest.mark.parametrize("operand", [FP16, BF16, FP32])
def test_act_bank_holds_operand_words(operand):
    """Every way into the activation bank (row bus, column bus, the fill port) stores the
    operand-format word ``q`` makes of the fp32 bus word, in a bank ``operand.width`` bits
    wide; a MAC multiplies that word as it is (here by 1.0 into an fp32 accumulator)."""
    words = len(_EDGE_WORDS)
    dut = PE(operand, weight_words=2, act_words=words, acc_regs=words, mac_latency=3,
             fill=True)
    top = dut.elaborate(None)
    bank = top.submodules.act_bank
    assert bank.shape == operand.width
    stored = nx.fconvert(np.array(_EDGE_WORDS, dtype=np.uint64), FP32, operand)
    if operand != FP32:
        # The edge words really are changed by the conversion.
        assert not np.array_equal(nx.fconvert(stored, operand, FP32), _EDGE_WORDS)
    one = _f32([1.0])
    expected = nx.fmac(np.zeros(words, dtype=np.uint64), nx.fconvert(one, FP32, operand),
                       stored, operand, FP32)
    layout = dut.layout
    got_bank, got_acc = [], []

    def uop(**fields):
        value = {name: 0 for name in layout.members}
        value.update(c_op=ComputeOp.NONE, t_op=TransferOp.NONE)
        value.update(fields)
        return layout.const(value)

    async def testbench(ctx):
        ctx.set(dut.select, 1)
        ctx.set(dut.row_in, int(one[0]))
        ctx.set(dut.uop, uop(t_op=TransferOp.W_FROM_ROW, t_addr=0))
        await ctx.tick()
        for addr, word in enumerate(_EDGE_WORDS):
            way = addr % 3
            ctx.set(dut.row_in, word if way != 1 else 0)
            ctx.set(dut.col_in, word if way == 1 else 0)
            if way == 2:
                ctx.set(dut.uop, uop())
                ctx.set(dut.fill, 0b01)
                ctx.set(dut.fill_addr, addr)
            else:
                op = TransferOp.ACT_FROM_ROW if way == 0 else TransferOp.ACT_FROM_COL
                ctx.set(dut.uop, uop(t_op=op, t_addr=addr))
            await ctx.tick()
            ctx.set(dut.fill, 0)
        # The last word lands a cycle after its transfer slot.
        ctx.set(dut.uop, uop())
        await ctx.tick()
        got_bank.extend(ctx.get(bank.data[addr]) for addr in range(words))
        for addr in range(words):
            ctx.set(dut.uop, uop(c_op=ComputeOp.MAC, c_acc=addr, c_clear=1, waddr=0,
                                 aaddr=addr))
            await ctx.tick()
        ctx.set(dut.uop, uop())
        await ctx.tick().repeat(5)
        for addr in range(words):
            ctx.set(dut.uop, uop(t_op=TransferOp.SEND_ACC, t_acc=addr))
            await ctx.tick()
            got_acc.append(ctx.get(dut.out))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got_bank == [int(v) for v in stored]
    assert got_acc == [int(v) for v in expected]


@pytest.mark.parametrize("kwargs,message", [
    ({"weight_words": 0}, "weight_words must be a positive integer, not 0"),
    ({"acc_regs": 2.5}, "acc_regs must be a positive integer, not 2.5"),
    ({"mac_latency": 1}, "mac_latency must be at least 2, not 1"),
])
def test_bad_pe_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PE(BF16, **kwargs)
