"""Run a job (:mod:`chrysalis.sim.compile.job`) on the accelerator's RTL under Icarus or
Verilator.

:func:`run_job` takes the Verilog of the config (converted once per machine,
:mod:`chrysalis.sim.verify.verilog_cache`), runs the cocotb testbench
``sim.verify.tb.accelerator`` (AxiLiteMaster as the host, AxiRam as the memory) and returns
what the host saw after each run: status, error code and index, counters, cycles and the
whole memory image, as :func:`chrysalis.sim.compile.job.run_job_golden` does for the golden
machine.
"""

import json
from pathlib import Path

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.sim.compile.job import RunOutput, dma_window

__all__ = ["run_job"]


def run_job(config, job, simulator, build_dir, waves=False, timeout_s=None, job_dir=None,
            fast_build=True, build_args=(), quiet=False):
    """Run ``job`` on the RTL of ``config`` under ``simulator``; a list of :class:`RunOutput`.

    The Verilog and the simulator build go under ``build_dir``; a build of the same Verilog
    is reused (also by concurrent callers). The job's files go to ``job_dir`` (default
    ``build_dir/job``): give each concurrent caller its own. ``fast_build=False`` compiles
    Verilator's model optimised (a slower build, a faster simulation); ``build_args`` go to
    the simulator's build (``sim.verify.runner.run_testbench``); with ``quiet`` the
    simulator's log lines go to a file in the build instead of stdout.
    """
    from chrysalis.sim.verify.runner import run_testbench
    from chrysalis.sim.verify.verilog_cache import cached_verilog

    build_dir = Path(build_dir).resolve()
    verilog = cached_verilog(config, build_dir / "rtl")
    arrays = {"image": np.asarray(job.image, dtype=np.uint32)}
    runs = []
    for i, run in enumerate(job.runs):
        base, last = dma_window(config, run)
        entry = {"cmd_base": int(run.cmd_base), "cmd_count": int(run.cmd_count),
                 "dma_base": int(base), "dma_last": int(last),
                 "max_cycles": int(run.max_cycles), "dump": bool(run.dump),
                 "dual_seed": int(run.dual_seed),
                 "reuse_strength": int(run.reuse_strength), "writes": []}
        for j, (addr, words) in enumerate(run.writes):
            entry["writes"].append(int(addr))
            arrays[f"write_{i}_{j}"] = np.asarray(words, dtype=np.uint32)
        runs.append(entry)
    meta = {"mem_base": job.mem_base, "mem_bytes": job.mem_bytes, "runs": runs}
    arrays["meta"] = np.array(json.dumps(meta))
    job_dir = build_dir / "job" if job_dir is None else Path(job_dir).resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    spec, out = job_dir / "job.npz", job_dir / "result.npz"
    np.savez(spec, **arrays)
    out.unlink(missing_ok=True)
    run_testbench(sources=[verilog], toplevel=config.name,
                  module="chrysalis.sim.verify.tb.accelerator", simulator=simulator, build_dir=build_dir,
                  testcase="job", waves=waves, timeout_s=timeout_s, fast_build=fast_build,
                  build_args=build_args, quiet=quiet,
                  extra_env={"CHRYSALIS_JOB": spec, "CHRYSALIS_JOB_OUT": out,
                             "CHRYSALIS_CONFIG": config.to_toml()})
    result = np.load(out)
    outputs = []
    for i in range(len(job.runs)):
        status, code, index, cycles = (int(v) for v in result[f"result_{i}"])
        counters = dict(zip((name.lower() for name, _ in isa.COUNTERS),
                            (int(v) for v in result[f"counters_{i}"])))
        image = result[f"image_{i}"] if f"image_{i}" in result else None
        outputs.append(RunOutput(status, isa.ErrorCode(code), index, cycles,
                                 float(result[f"wall_{i}"]), counters, image))
    return outputs
