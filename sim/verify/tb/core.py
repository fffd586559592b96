"""cocotb testbench: every operation of the training core's RTL against the golden model,
bit for bit.

Runs inside the simulator (Icarus or Verilator) on the Verilog of ``hw.core.Core``. The
config, the layer shapes and the seed come from the environment (``sim/verify/tb/core_data.py``),
set by ``tests/sim/verify/test_cocotb_core.py``. For each shape (one cocotb test each) the data is
written through the host port; LOAD_W, STORE_W (round trip), LOAD_COL, FORWARD (ReLU),
LOAD_ROW, BACKWARD (ReLU mask), WGRAD and STORE_W run as in ``tests/hw/test_core.py``;
every result is compared with ``sim.golden.core_model``, then the counters with the operation's
work, then the whole scratchpad with the words it must hold (no stray writes).

The Verilog port ``cmd`` is the command struct flattened into one vector; :meth:`TB.command`
packs the fields with the core's Amaranth layout (``hw.core.command_layout``).
"""

import json
import os
import struct

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from chrysalis.gen.spec.isa import Opcode
from chrysalis.hw.core import Core
from chrysalis.sim.verify.tb.core_data import Case, config_from_env, shapes_from_env

__all__ = ["TB", "CommandTimeout"]

#: Scratchpads up to this size are checked whole after the operations (one word a cycle).
CHECK_ALL_WORDS = 8192

COUNTERS = ("mac_slots", "update_slots", "busy_cycles", "stall_cycles", "bus_words")


class CommandTimeout(AssertionError):
    """A command did not finish (``cmd_ready`` stayed low) within its cycle bound."""


def _float(bits):
    return struct.unpack("<f", struct.pack("<I", int(bits) & 0xFFFF_FFFF))[0]


class TB:
    """Owns the clock and reset of a ``Core`` and drives its host port and command port.

    Inputs change on the falling edge; outputs are sampled once the rising edge has settled
    (``ReadOnly``), so the testbench never races the design. Every method leaves the inputs
    idle (no write, no read, no command) at a falling edge.

    Parameters
    ----------
    dut : cocotb handle of the core's Verilog top
    config : gen.spec.config.Config
        The config the Verilog was generated from (for the command layout and the banks).
    period_ns : int
        Clock period.
    """

    def __init__(self, dut, config, period_ns=10):
        self.dut = dut
        self.config = config
        core = Core(config)
        core._MustUse__silence = True      # only its layout and parameters are needed here
        self.layout = core.layout
        self.banks = core.banks
        self.sp_words = config.core.scratchpad_words
        width = len(dut.cmd)
        if width != self.layout.size:
            raise AssertionError(f"the Verilog's cmd port has {width} bits; the command layout "
                                 f"of this config has {self.layout.size}: wrong config?")
        cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())

    def _idle_inputs(self):
        dut = self.dut
        dut.cmd_valid.value = 0
        dut.cmd.value = 0
        dut.host_we.value = 0
        dut.host_re.value = 0
        dut.host_addr.value = 0
        dut.host_wdata.value = 0
        # The DMA's lane port (driven by hw.accelerator's DMA engine; idle here).
        for name in dir(dut):
            if name.startswith(("dma_we", "dma_re", "dma_e0", "dma_line", "dma_lanes",
                                "dma_wdata")):
                getattr(dut, name).value = 0

    async def reset(self, cycles=2):
        """Hold ``rst`` for ``cycles`` clock edges (registers, not the memories, reset)."""
        self.dut.rst.value = 1
        self._idle_inputs()
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)

    # --- host port ---------------------------------------------------------------------

    async def write_words(self, addresses, values):
        """Write ``values[k]`` at word ``addresses[k]``, one word per cycle."""
        dut = self.dut
        for addr, value in zip(np.ravel(addresses), np.ravel(values)):
            await FallingEdge(dut.clk)
            dut.host_addr.value = int(addr)
            dut.host_wdata.value = int(value)
            dut.host_we.value = 1
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.host_we.value = 0

    async def read_words(self, addresses):
        """Words at ``addresses`` (any shape), one per cycle: the address is driven before a
        rising edge and ``host_rdata`` sampled after it."""
        dut = self.dut
        addresses = np.asarray(addresses)
        out = np.zeros(addresses.shape, dtype=np.uint64)
        for index, addr in np.ndenumerate(addresses):
            await FallingEdge(dut.clk)
            dut.host_addr.value = int(addr)
            dut.host_re.value = 1
            await RisingEdge(dut.clk)
            await ReadOnly()
            value = dut.host_rdata.value
            if not value.is_resolvable:
                raise AssertionError(f"host_rdata is {value} (X/Z) at word {int(addr)}")
            out[index] = int(value)
        await FallingEdge(dut.clk)
        dut.host_re.value = 0
        return out

    async def write_matrix(self, matrix, values):
        """Write ``values`` (``matrix.n`` x ``matrix.batch`` fp32 bit patterns)."""
        values = np.asarray(values, dtype=np.uint64)
        if values.shape != (matrix.n, matrix.batch):
            raise ValueError(f"values of shape {values.shape} for a matrix of "
                             f"{(matrix.n, matrix.batch)}")
        await self.write_words(matrix.addresses(), values)

    async def read_matrix(self, matrix):
        """The ``matrix.n`` x ``matrix.batch`` words of ``matrix``, as a ``uint64`` array."""
        return await self.read_words(matrix.addresses())

    # --- commands and counters ---------------------------------------------------------

    def pack(self, **fields):
        """The ``cmd`` vector of a command: unnamed fields are 0 (``op`` 0: no operation)."""
        full = {name: 0 for name in self.layout.members}
        unknown = set(fields) - set(full)
        if unknown:
            raise ValueError(f"unknown command fields {sorted(unknown)}; the fields are "
                             f"{list(full)}")
        full.update(fields)
        return self.layout.const(full).as_value().value

    async def counters(self):
        """The counters, sampled after a rising edge (returns at the next falling edge)."""
        await RisingEdge(self.dut.clk)
        await ReadOnly()
        values = {name: int(getattr(self.dut, name).value) for name in COUNTERS}
        await FallingEdge(self.dut.clk)
        return values

    async def command(self, max_cycles=100_000, **fields):
        """Issue a command and wait until the core is ready again.

        Returns the cycles from the clock edge that takes the command to the first edge
        after which ``cmd_ready`` is high again (as ``tests/hw/test_core.py`` counts them).

        Raises
        ------
        CommandTimeout
            ``cmd_ready`` is still low after ``max_cycles`` cycles.
        AssertionError
            The core is not ready to take the command.
        """
        dut = self.dut
        op = fields.get("op", 0)
        name = getattr(op, "name", op)
        packed = self.pack(**fields)
        await FallingEdge(dut.clk)
        if not int(dut.cmd_ready.value):
            raise AssertionError(f"{name}: the core is not ready (cmd_ready low)")
        dut.cmd.value = packed
        dut.cmd_valid.value = 1
        cycles = 0
        while True:
            await RisingEdge(dut.clk)
            cycles += 1
            await ReadOnly()
            ready = int(dut.cmd_ready.value)
            await FallingEdge(dut.clk)
            dut.cmd_valid.value = 0
            if ready:
                return cycles
            if cycles >= max_cycles:
                raise CommandTimeout(f"{name} {fields}: cmd_ready still low after "
                                     f"{cycles} cycles (the bound)")


def _mismatch(what, got, expected, names=("row", "column")):
    """``None`` if ``got`` equals ``expected`` bit for bit, else a message naming the first
    differing element (row-major order)."""
    got = np.asarray(got, dtype=np.uint64)
    expected = np.asarray(expected, dtype=np.uint64)
    if got.shape != expected.shape:
        return f"{what}: shape {got.shape}, expected {expected.shape}"
    bad = np.argwhere(got != expected)
    if not len(bad):
        return None
    index = tuple(int(i) for i in bad[0])
    where = ", ".join(f"{name} {i}" for name, i in zip(names, index))
    return (f"{what}: {len(bad)} of {got.size} elements differ; first at [{where}]: "
            f"rtl {int(got[index]):#010x} ({_float(got[index]):.9g}), "
            f"golden {int(expected[index]):#010x} ({_float(expected[index]):.9g})")


def _bound(case):
    """A cycle bound per command far above what any operation of ``case`` needs."""
    work = case.mt * case.nt * (case.batch + 2) + (case.mt + case.nt) * case.batch
    return 2_000 + 64 * work * max(case.rows, case.cols) * (case.config.mac.latency + 1)


def _write_report(path, key, entry):
    report = {}
    if os.path.exists(path):
        with open(path) as f:
            report = json.load(f)
    report[key] = entry
    with open(path, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)


@cocotb.test()
@cocotb.parametrize(shape=[cocotb.Param(value=shape, name="x".join(map(str, shape)))
                           for shape in shapes_from_env()])
async def core_operations_equal_golden(dut, shape):
    """Every core operation on one layer shape equals the golden model bit for bit."""
    config = config_from_env()
    m, n, batch = shape
    shape = f"{m}x{n}x{batch}"
    case = Case(config, m, n, batch, seed=int(os.environ.get("CHRYSALIS_SEED", "1")),
                lr=float(os.environ.get("CHRYSALIS_LR", "0.125")))
    w, x, dy = case.data()
    mats, act = case.layout()
    golden = case.expected(w, x, dy)
    mac_counts = case.mac_counts()
    bound = _bound(case)
    log = dut._log
    log.info("core %dx%d (mac latency %d), layer %s, seed %d", case.rows, case.cols,
             config.mac.latency, shape, case.seed)

    tb = TB(dut, config)
    await tb.reset()
    # The scratchpad is not reset and earlier tests of this run leave data in it: clear
    # the words that the final image check reads (all of a small scratchpad, else the
    # matrices and 16 lines more); stale PE stores are left on purpose.
    checked = tb.sp_words
    if checked > CHECK_ALL_WORDS:
        checked = min(checked, (sum(mat.lines for mat in mats.values()) + 16) * tb.banks)
    await tb.write_words(np.arange(checked), np.zeros(checked, dtype=np.uint64))
    await tb.write_matrix(mats["w"], w)
    await tb.write_matrix(mats["x"], x)
    await tb.write_matrix(mats["dy"], dy)

    failures = []
    stats = {}
    lines = lambda mat: dict(sp_base=mat.base, sp_lpc=mat.lines_per_column)

    async def run(label, **fields):
        before = await tb.counters()
        cycles = await tb.command(max_cycles=bound, **fields)
        after = await tb.counters()
        delta = {name: after[name] - before[name] for name in COUNTERS}
        stats[label] = dict(cycles=cycles, **delta)
        log.info("%-9s %5d cycles  %s", label, cycles,
                 " ".join(f"{name}={value}" for name, value in delta.items()))
        op = fields["op"].name
        mac, upd = mac_counts.get(op, (0, 0))
        expect = dict(mac_slots=mac, update_slots=upd, busy_cycles=cycles - 1)
        if op in ("LOAD_W", "STORE_W"):
            expect["bus_words"] = m * n
        elif op == "LOAD_COL":
            expect["bus_words"] = n * batch
        elif op == "LOAD_ROW":
            expect["bus_words"] = m * batch
        for name, value in expect.items():
            if delta[name] != value:
                failures.append(f"{label}: counter {name} went up by {delta[name]}, "
                                f"expected {value}")

    def check(what, got, expected, names=("row", "column")):
        message = _mismatch(what, got, expected, names)
        if message:
            log.error("%s", message)
            failures.append(message)
        else:
            log.info("%s: %d elements bit-exact", what, np.size(expected))

    await run("LOAD_W", op=Opcode.LOAD_W, m=m, n=n, **lines(mats["w"]))
    await run("STORE_W", op=Opcode.STORE_W, m=m, n=n, **lines(mats["w_out"]))
    # Matrices are stored column-major: W (m x n) as n columns of m, so element (e, b) of
    # a matrix is W[e][b], X[e][b] (input e of sample b), Y[e][b], dX[e][b], dY[e][b].
    check("LOAD_W/STORE_W round trip (W)", await tb.read_matrix(mats["w_out"]), w,
          ("i", "j"))
    await run("LOAD_COL", op=Opcode.LOAD_COL, n=n, batch=batch, abase=act["x"],
              **lines(mats["x"]))
    await run("FORWARD", op=Opcode.FORWARD, m=m, n=n, batch=batch, abase=act["x"], flag=1,
              **lines(mats["y"]))
    check("FORWARD Y = relu(W X)", await tb.read_matrix(mats["y"]), golden["y"],
          ("i", "b"))
    await run("LOAD_ROW", op=Opcode.LOAD_ROW, m=m, batch=batch, abase=act["dy"],
              **lines(mats["dy"]))
    await run("BACKWARD", op=Opcode.BACKWARD, m=m, n=n, batch=batch, abase=act["dy"], flag=1,
              sp2_base=mats["x"].base, sp2_lpc=mats["x"].lines_per_column,
              **lines(mats["dx"]))
    check("BACKWARD dX = mask(W^T dY)", await tb.read_matrix(mats["dx"]), golden["dx"],
          ("j", "b"))
    await run("WGRAD", op=Opcode.WGRAD, m=m, n=n, batch=batch, abase=act["x"],
              abase2=act["dy"], scalar=case.lr_bits ^ (1 << 31))
    await run("STORE_W'", op=Opcode.STORE_W, m=m, n=n, **lines(mats["w_out"]))
    check("WGRAD W - lr dY X^T", await tb.read_matrix(mats["w_out"]), golden["w_new"],
          ("i", "j"))

    # Nothing else in the scratchpad changed: the inputs are intact, padding stays +0.
    image = np.zeros(checked, dtype=np.uint64)
    for name, values in (("w", w), ("w_out", golden["w_new"]), ("x", x), ("y", golden["y"]),
                         ("dy", dy), ("dx", golden["dx"])):
        image[mats[name].addresses()] = values
    got = await tb.read_words(np.arange(checked))
    check(f"scratchpad words 0..{checked - 1} after all operations", got, image, ("word",))

    report = os.environ.get("CHRYSALIS_REPORT")
    if report:
        _write_report(report, shape, dict(rows=case.rows, cols=case.cols,
                                          latency=config.mac.latency, seed=case.seed,
                                          commands=stats, failures=failures))
    if failures:
        raise AssertionError(f"core {case.rows}x{case.cols}, layer {shape} (seed {case.seed}): "
                             f"{len(failures)} check(s) failed:\n  " + "\n  ".join(failures))
