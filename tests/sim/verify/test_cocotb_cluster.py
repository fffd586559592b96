"""A cluster's RTL (``hw.accelerator`` with ``cluster.cores`` cores on a ring) under Icarus and
Verilator, with cocotbext-axi as the host and the memory: every collective on random fp32
data, against the golden cluster model (``sim.golden.cluster_machine``).

Each collective runs in its own doorbell: random words are DMA-loaded into every core's
source and destination matrices (``cores = 1 << k``), the collective runs, and every core's
destination matrix is stored to memory (so the rows a collective must leave alone are
checked too). After each run the whole memory image and every counter the golden model
predicts equal :func:`sim.verify.rtl_job.run_job_golden`'s.
"""

from pathlib import Path

import numpy as np
import pytest

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.config import PRESETS, with_overrides
from chrysalis.gen.spec.isa import Opcode
from chrysalis.sim.compile.job import Job, Run, golden_mismatches, run_job_golden
from tests.sim.verify.test_cocotb_accelerator import rtl

#: Builds shared by the tests of a config (the runner keys them by the Verilog's hash).
SHARED = Path(__file__).resolve().parents[3] / "build" / "tests" / "cluster"

#: The in-place ALL_GATHER (its ``flag``): the own rows already in the destination.
IN_PLACE = "ALL_GATHER in place"
COLLECTIVES = (Opcode.BROADCAST, Opcode.REDUCE, Opcode.ALL_GATHER, Opcode.REDUCE_SCATTER,
               Opcode.ALL_REDUCE, Opcode.SEND, IN_PLACE)
#: Bytes of memory per collective: its commands, then the source, initial destination and
#: output matrices of every core.
REGION = 0x4000


def cluster_config(cores):
    """The ``tiny`` preset with ``cores`` cores."""
    return with_overrides(PRESETS["tiny"], {"name": f"tiny_cluster{cores}",
                                            "cluster.cores": cores})


def random_words(rng, size):
    """fp32 bit patterns: normal values of both signs over a range of exponents (so that
    sums round), with zeros of both signs among them."""
    values = (rng.standard_normal(size) * 2.0 ** rng.integers(-8, 9, size)).astype(np.float32)
    bits = values.view(np.uint32).copy()
    kind = rng.integers(0, 10, size)
    bits[kind == 0] = 0
    bits[kind == 1] = 0x8000_0000
    return bits


def collective_stream(config, op, base, *, n, batch, root=0, peer=1):
    """The commands of one collective's run in the memory region at ``base``: per core, the
    loads of its source and destination matrices; the collective; per core, the store of
    its destination matrix. Returns the commands and the matrices to fill with data:
    ``(byte address, rows, column stride)``, ``batch`` columns each. ``op`` may be
    :data:`IN_PLACE`."""
    in_place = op == IN_PLACE
    op = Opcode.ALL_GATHER if in_place else op
    cores, banks = config.cluster.cores, config.core.banks
    beat = config.host.axi_data_width // 8
    src_rows = n * cores if op == Opcode.REDUCE_SCATTER else n
    dst_rows = n * cores if op == Opcode.ALL_GATHER else n
    src_lpc, dst_lpc = -(-src_rows // banks), -(-dst_rows // banks)
    # Destination after the source with a gap line (an overrun would show).
    sp2_base = batch * src_lpc + 1
    stride = -(-4 * max(src_rows, dst_rows) // beat) * beat
    per_core = stride * batch
    area = (REGION - 0x400) // 3
    assert cores * per_core <= area, "the region is too small for the matrices"
    src = [base + 0x400 + k * per_core for k in range(cores)]
    init = [base + 0x400 + area + k * per_core for k in range(cores)]
    out = [base + 0x400 + 2 * area + k * per_core for k in range(cores)]
    commands, loads = [], []
    for k in range(cores):
        commands.append(dict(op="DMA_LOAD", n=src_rows, batch=batch, mem_addr=src[k],
                             mem_stride=stride, sp_base=0, sp_lpc=src_lpc, cores=1 << k))
        commands.append(dict(op="DMA_LOAD", n=dst_rows, batch=batch, mem_addr=init[k],
                             mem_stride=stride, sp_base=sp2_base, sp_lpc=dst_lpc, cores=1 << k))
        loads += [(src[k], src_rows, stride), (init[k], dst_rows, stride)]
    fields = dict(op=op.name, n=n, batch=batch, sp_base=0, sp_lpc=src_lpc, sp2_base=sp2_base,
                  sp2_lpc=dst_lpc)
    if op in (Opcode.BROADCAST, Opcode.REDUCE, Opcode.SEND):
        fields["root"] = root
    if op == Opcode.SEND:
        fields["peer"] = peer
    if in_place:
        fields["flag"] = 1
    commands.append(fields)
    for k in range(cores):
        commands.append(dict(op="DMA_STORE", n=dst_rows, batch=batch, mem_addr=out[k],
                             mem_stride=stride, sp_base=sp2_base, sp_lpc=dst_lpc,
                             cores=1 << k))
    return commands, loads


def collective_job(config, ops=COLLECTIVES, *, seed=0, n=5, batch=3):
    """One run per collective in ``ops``, each in its own memory region with fresh random
    data. ``n`` and ``batch`` are the collective's; the root and the peer are random."""
    rng = np.random.default_rng(seed)
    cores = config.cluster.cores
    image = rng.integers(0, 1 << 32, REGION * len(ops) // 4, dtype=np.uint64).astype(np.uint32)
    runs = []
    for index, op in enumerate(ops):
        base = index * REGION
        root = int(rng.integers(0, cores))
        peer = (root + int(rng.integers(1, cores))) % cores
        commands, loads = collective_stream(config, op, base, n=n, batch=batch, root=root,
                                            peer=peer)
        for addr, rows, stride in loads:
            for b in range(batch):
                at = (addr + b * stride) // 4
                image[at:at + rows] = random_words(rng, rows)
        words = isa.encode_stream(commands)
        image[base // 4:base // 4 + len(words)] = words
        runs.append(Run(base, len(commands), max_cycles=200_000))
    return Job(image, runs)


def assert_equal_golden(outs, golden):
    """Every run ended well, and left the golden model's memory image and counters."""
    assert golden_mismatches(outs, golden) == []


def run_collectives(cores, simulator, build_root, seed):
    """``simulator``: a name (the cocotb harness) or a ``(simulator, harness)`` pair."""
    config = cluster_config(cores)
    job = collective_job(config, seed=seed)
    outs = rtl(config, job, simulator, build_root, shared=SHARED)
    golden = run_job_golden(config, job)
    assert_equal_golden(outs, golden)
    # The ring moved words in every run, and the collectives changed memory.
    ring = [g.counters["ring_words"] for g in golden]
    assert all(b > a for a, b in zip([0] + ring, ring)), ring
    return outs


# Under Verilator it is `slow`: a cocotb build of the cluster of its own (about 35 s of CPU
# on a fresh machine, against 4 s under Icarus, whose build is quick). The default suite
# runs a core's register map under both simulators (test_cocotb_accelerator.py::
# test_registers), this cluster's under Icarus, and the cluster under Verilator through the
# native harness (test_collectives_on_two_cores, test_native_overlap.py).
@pytest.mark.parametrize("simulator", [
    pytest.param("icarus", marks=pytest.mark.cocotb),
    pytest.param("verilator", marks=(pytest.mark.cocotb, pytest.mark.slow))], indirect=True)
def test_registers_on_two_cores(simulator):
    """The register map of a cluster (its CLUSTER register among them), the error
    responses, the interrupt logic, and a run of DMA loads fanned out to both cores."""
    from chrysalis.sim.verify.verilog_cache import cached_verilog
    from chrysalis.sim.verify.runner import run_testbench
    config = cluster_config(2)
    verilog = cached_verilog(config, SHARED / config.name / "rtl")
    result = run_testbench(sources=[verilog], toplevel=config.name,
                           module="chrysalis.sim.verify.tb.accelerator", simulator=simulator,
                           build_dir=SHARED / config.name, testcase="registers",
                           timeout_s=600, extra_env={"CHRYSALIS_CONFIG": config.to_toml()})
    assert result["tests"] == 1


def test_collectives_on_two_cores(rtl_harness, build_root):
    run_collectives(2, rtl_harness, build_root, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("cores", [3, 4])
def test_collectives_on_more_cores(simulator, build_root, cores):
    run_collectives(cores, simulator, build_root, seed=cores)
