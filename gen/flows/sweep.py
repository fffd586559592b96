"""Parameter sweeps: configs x flows, resumable, in local processes or on a Dask cluster.

A sweep file (TOML) names a base config, the fields that vary and the flows to run on each
config::

    name = "area"
    base = "default"                 # a preset, or config = "my.toml" (relative to the file)
    flows = ["synth", "cycles"]      # verilog, synth, pnr, cycles, perf, or "module:function"
    set = {"core.scratchpad_words" = 4096}        # fixed overrides of every point

    [grid]                           # every combination of these lists
    "core.rows,core.cols" = [[2, 2], [4, 4]]      # fields joined by commas vary together
    "mac.operand" = ["bf16", "fp8_e4m3"]

    [[points]]                       # and/or a list of override tables, each crossed with
    "mac.dual" = "single"            # the grid (grid outer, points inner)
    [[points]]
    "mac.dual" = "value"
    "pe.acc_regs" = 28

    [synth]                          # options of a flow, in a table named after it
    target = "ecp5"

A point is one config (the base with its overrides) and one flow. Its key is the SHA-256 of
the canonical JSON of the config, the flow and the flow's options, so the same point always
has the same key. Each finished point is appended to ``results.jsonl`` in the output
directory as one JSON line, flushed and ``fsync``-ed before the next is taken: a sweep that
is killed loses at most the points still running, and run again it skips every point already
recorded. A point that fails is recorded with its error and log, and the others go on.
Interrupted (Ctrl-C), a sweep in local processes kills its workers and the tools they run at
once rather than wait for their points, and raises ``KeyboardInterrupt``.

Flows (each returns a dict of figures):

``verilog``
    :func:`gen.emit.verilog.emit`: its time (elaboration and conversion) and the Verilog's size.
``synth``
    :func:`gen.flows.synth.synthesize_config` (options: ``target``, ``liberty``, ``modules``,
    ``lut_mapper``): totals and the per-module breakdown.
``pnr``
    :func:`gen.flows.pnr.place_config` (options: ``device``, ``freq_mhz``, ``seed``,
    ``out_of_context``, ``lut_mapper``): Fmax, device, utilization, critical path.
``cycles``
    The cycles and counters of one training step of an MLP (options: ``sizes``, ``batch``,
    ``lr``), from :func:`sim.golden.core_counts.predict_many` over the step that
    :func:`sim.compile.compiler.compile_mlp` compiles; these are the RTL's cycle counts exactly.
``perf``
    ``gen.perf.evaluate(config)``, the performance model, when that module exists (the point
    fails otherwise).
``"package.module:function"``
    A flow of your own: ``function(config, **options)`` returning a dict of figures
    (options from a table named after the whole string).
"""

import hashlib
import importlib
import json
import os
import signal
import threading
import time
import tomllib
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from chrysalis.gen.spec.config import (
    Config, ConfigError, check_buildable, get_preset, with_overrides)

__all__ = ["FLOWS", "Point", "Sweep", "load_sweep", "point_key", "run_point", "ResultStore",
           "run_sweep"]

#: The built-in flows.
FLOWS = ("verilog", "synth", "pnr", "cycles", "perf")

#: Default options of the built-in flows (a sweep file's flow table overrides them).
FLOW_DEFAULTS = {
    "verilog": {},
    "synth": {"target": "ecp5", "liberty": None, "modules": True, "lut_mapper": "abc"},
    "pnr": {"device": "auto", "freq_mhz": 100.0, "seed": 1, "out_of_context": True,
            "lut_mapper": "abc"},
    "cycles": {"sizes": [8, 8, 4], "batch": 2, "lr": 0.1},
    "perf": {},
}

#: The flows that build the RTL: their points must be configs the RTL builds
#: (:func:`gen.spec.config.check_buildable`), refused when the sweep file is read.
RTL_FLOWS = ("verilog", "synth", "pnr")

_SWEEP_KEYS = ("name", "base", "config", "flows", "set", "grid", "points")


@dataclass(frozen=True)
class Point:
    """One config and one flow of a sweep.

    Parameters
    ----------
    overrides : dict
        The fields this point sets (dotted paths), the sweep's fixed ``set`` included.
    config : Config
    flow : str
    options : dict
        The flow's options.
    key : str
        :func:`point_key` of the above.
    """

    overrides: dict
    config: Config
    flow: str
    options: dict = field(default_factory=dict)
    key: str = ""


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: its name, its points in order, and where it came from."""

    name: str
    points: tuple
    source: str = ""


def point_key(config, flow, options):
    """SHA-256 (hex) of the canonical JSON of (config, flow, options): stable across runs
    and machines."""
    canonical = json.dumps({"config": config.to_dict(), "flow": flow, "options": options},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_flow(flow):
    if not isinstance(flow, str):
        raise ConfigError(f"flows must be a list of flow names, not {flow!r}")
    if flow in FLOWS:
        return
    module, _, function = flow.partition(":")
    if not module or not function:
        raise ConfigError(f"flows: a flow must be one of {', '.join(FLOWS)} or "
                          f"'package.module:function', not {flow!r}")


def _expand_grid(grid):
    """The grid's combinations as lists of (path, value), in the file's order."""
    if not isinstance(grid, Mapping):
        raise ConfigError(f"grid must be a table of lists, not {grid!r}")
    axes = []
    for key, values in grid.items():
        paths = [p.strip() for p in key.split(",")]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key} must be a non-empty list, not {values!r}")
        if len(paths) > 1:
            for value in values:
                if not isinstance(value, list) or len(value) != len(paths):
                    raise ConfigError(f"grid.{key} must hold lists of {len(paths)} values "
                                      f"(one per field), not {value!r}")
            axes.append([list(zip(paths, value)) for value in values])
        else:
            axes.append([[(paths[0], value)] for value in values])
    return [[item for part in combo for item in part] for combo in product(*axes)]


def load_sweep(path):
    """Read a sweep file; every point's config is made (and checked) here.

    Raises
    ------
    ConfigError
        Unreadable or invalid TOML, an unknown key or flow, or a point whose config is
        invalid (the message names the point's overrides).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read sweep file {str(path)!r}: "
                          f"{error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    try:
        return parse_sweep(data, base_dir=path.parent, default_name=path.stem,
                           source=str(path))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse_sweep(data, *, base_dir=".", default_name="sweep", source=""):
    """A :class:`Sweep` from the data of a sweep file (see the module's documentation)."""
    flows = data.get("flows", ["synth"])
    if not isinstance(flows, list) or not flows:
        raise ConfigError(f"flows must be a non-empty list, not {flows!r}")
    for flow in flows:
        _check_flow(flow)
    known = set(_SWEEP_KEYS) | set(flows) | set(FLOWS)
    for key in data:
        if key not in known:
            raise ConfigError(f"{key} is not a sweep key (valid: {', '.join(_SWEEP_KEYS)}, "
                              f"or a table of options named after a flow)")
    if "config" in data and "base" in data:
        raise ConfigError("give base (a preset) or config (a file), not both")
    if "config" in data:
        base = Config.load(Path(base_dir) / data["config"])
    else:
        base = get_preset(data.get("base", "default"))
    fixed = data.get("set", {})
    if not isinstance(fixed, Mapping):
        raise ConfigError(f"set must be a table of overrides, not {fixed!r}")
    points = data.get("points", [{}])
    if not isinstance(points, list) or not all(isinstance(p, Mapping) for p in points):
        raise ConfigError(f"points must be a list of tables, not {points!r}")
    combos = _expand_grid(data.get("grid", {}))
    options = {}
    for flow in flows:
        given = data.get(flow, {})
        if not isinstance(given, Mapping):
            raise ConfigError(f"{flow} must be a table of options, not {given!r}")
        defaults = FLOW_DEFAULTS.get(flow)
        if defaults is not None:
            for key in given:
                if key not in defaults:
                    raise ConfigError(f"{flow}.{key} is not an option of the {flow} flow "
                                      f"(valid: {', '.join(defaults) or 'none'})")
        merged = {**(defaults or {}), **given}
        if flow == "synth" and merged.get("liberty"):
            merged["liberty"] = str((Path(base_dir) / merged["liberty"]).resolve())
            merged["target"] = "liberty"
        options[flow] = merged
    out = []
    seen = set()
    # Grid outer, points inner: the variants of one grid point run side by side.
    for combo in combos:
        for extra in points:
            overrides = {**fixed, **dict(combo), **extra}
            try:
                config = with_overrides(base, overrides)
                if any(flow in RTL_FLOWS for flow in flows):
                    check_buildable(config)
            except ConfigError as error:
                raise ConfigError(f"point {_describe(overrides)}: {error}") from None
            for flow in flows:
                key = point_key(config, flow, options[flow])
                if key in seen:
                    continue        # the same config twice (a grid that repeats itself)
                seen.add(key)
                out.append(Point(overrides, config, flow, options[flow], key))
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name must be a non-empty string, not {name!r}")
    return Sweep(name, tuple(out), source)


def _describe(overrides):
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(base)"


# --- flows ---------------------------------------------------------------------------------

def _flow_verilog(config, workdir):
    from chrysalis.gen.emit.verilog import emit
    start = time.perf_counter()
    files = emit(config, workdir)
    seconds = time.perf_counter() - start
    text = files["verilog"].read_text()
    return {"emit_s": round(seconds, 3), "verilog_lines": text.count("\n"),
            "verilog_bytes": len(text.encode())}


def _flow_synth(config, workdir, target, liberty, modules, lut_mapper):
    from .synth import synthesize_config
    result = synthesize_config(config, workdir, target=target, liberty=liberty,
                               modules=modules, lut_mapper=lut_mapper)
    result.pop("netlist", None)
    return result


def _flow_pnr(config, workdir, **options):
    from chrysalis.gen.flows.pnr import place_config
    return place_config(config, workdir, **options)


def _flow_cycles(config, workdir, sizes, batch, lr):
    from chrysalis.gen.spec.networks import mlp
    from chrysalis.sim.compile.compiler import compile_mlp
    from chrysalis.sim.golden.core_counts import predict_many
    program = compile_mlp(config, list(sizes), batch, lr)
    counts = predict_many(config, program.step)
    # Useful MACs of a step, counted by the one definition (gen.spec.networks).
    useful = mlp([int(s) for s in sizes]).macs(batch)
    return {**counts, "commands": len(program.step), "streamed": program.streamed,
            "useful_macs": useful,
            "utilization": round(useful / (config.total_pes * counts["cycles"]), 4)}


def _flow_perf(config, workdir):
    try:
        perf = importlib.import_module("chrysalis.gen.perf")
    except ModuleNotFoundError as error:
        if error.name != "chrysalis.gen.perf":
            raise
        raise RuntimeError("the perf flow needs gen.perf (the performance model), which "
                           "this installation does not have") from None
    return perf.evaluate(config)


def _flow_function(flow):
    module, _, name = flow.partition(":")
    return getattr(importlib.import_module(module), name)


def run_point(point, out_dir):
    """Run one point; returns its record (a dict), whether the flow succeeded or not.

    The record holds ``key``, ``flow``, ``options``, ``overrides``, ``config``,
    ``config_hash``, ``status`` (``"ok"`` or ``"failed"``), ``result`` (the flow's figures)
    or ``error`` and ``log`` (the traceback and the tail of the tool's log), ``seconds``
    and ``workdir``. Never raises for a failure of the flow.
    """
    workdir = Path(out_dir) / "points" / point.key[:16]
    workdir.mkdir(parents=True, exist_ok=True)
    record = {"key": point.key, "flow": point.flow, "options": point.options,
              "overrides": point.overrides, "config": point.config.to_dict(),
              "config_hash": point.config.config_hash(), "workdir": str(workdir)}
    start = time.perf_counter()
    try:
        if point.flow in FLOWS:
            function = globals()[f"_flow_{point.flow}"]
            result = function(point.config, workdir, **point.options)
        else:
            result = _flow_function(point.flow)(point.config, **point.options)
        if not isinstance(result, Mapping):
            raise TypeError(f"flow {point.flow!r} must return a dict, not {result!r}")
        record.update(status="ok", result=dict(result))
    except Exception as error:  # noqa: BLE001 - a failed point is a result, not a crash
        log = traceback.format_exc()
        tool_log = getattr(error, "log", None)
        if tool_log and Path(tool_log).is_file():
            tail = Path(tool_log).read_text(errors="replace").splitlines()[-200:]
            log += f"\n--- {tool_log} (last {len(tail)} lines) ---\n" + "\n".join(tail)
        record.update(status="failed", error=f"{type(error).__name__}: {error}", log=log,
                      tool_log=tool_log)
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


# --- results -------------------------------------------------------------------------------

class ResultStore:
    """The results of a sweep: a JSON-lines file, one record per finished point.

    Appends are flushed and ``fsync``-ed one by one, so a crash loses no finished point; a
    last line cut short by a crash is ignored when read (that point runs again). A point
    recorded twice (a retried failure) counts by its last record.

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file (made when missing, with its directory).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = {}
        self.skipped_lines = 0
        if self.path.exists():
            self._read()

    def _read(self):
        with open(self.path, "rb") as stream:
            data = stream.read()
        if data and not data.endswith(b"\n"):
            # A line cut short by a crash: drop it from the file, so the next append starts
            # on a line of its own.
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as stream:
                stream.truncate(cut)
                stream.flush()
                os.fsync(stream.fileno())
            data = data[:cut]
            self.skipped_lines += 1
        for line in data.decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                self.skipped_lines += 1
                continue
            if isinstance(record, dict) and "key" in record:
                self.records[record["key"]] = record

    def done(self, key, *, retry_failed=False):
        record = self.records.get(key)
        if record is None:
            return False
        return not (retry_failed and record.get("status") != "ok")

    def append(self, record):
        line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())
        self.records[record["key"]] = record


def load_results(path):
    """The records of a results file (or of ``results.jsonl`` in a sweep directory), the
    last one per key, in file order."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.jsonl"
    if not path.is_file():
        raise ConfigError(f"no sweep results at {str(path)!r}")
    store = ResultStore.__new__(ResultStore)
    store.path, store.records, store.skipped_lines = path, {}, 0
    with open(path, "rb") as stream:
        for line in stream.read().decode("utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "key" in record:
                store.records[record["key"]] = record
    return list(store.records.values())


# --- executors -----------------------------------------------------------------------------

def _ignore_interrupts():
    """The initializer of a local worker. Ctrl-C reaches every process of the terminal's
    process group, but the sweep alone answers it (:func:`_stop_workers`): a worker left to
    it would stop its point halfway, and a tool busy in a long call would not stop at all."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_workers(processes):
    """Kill ``processes`` (the workers of a pool) and every process they started, at once.

    Each process is stopped (``SIGSTOP``) before its children are listed, so none can start
    a process that escapes; then all are killed.
    """
    import psutil
    # A second Ctrl-C must not cut this short and leave a worker running.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        stopped, todo = [], [process.pid for process in processes]
        while todo:
            try:
                victim = psutil.Process(todo.pop())
                victim.suspend()
                todo += [child.pid for child in victim.children()]
            except psutil.NoSuchProcess:
                continue
            stopped.append(victim)
        for victim in stopped:
            try:
                victim.kill()
            except psutil.NoSuchProcess:
                pass
        # Dead once a zombie: waiting for the system to reap the orphaned tools takes
        # seconds on some machines, and tells nothing more.
        deadline = time.monotonic() + 10
        while any(_running(victim) for victim in stopped) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


def _running(process):
    """Whether a :class:`psutil.Process` still runs (not gone, not a zombie)."""
    import psutil
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _local_results(points, out_dir, jobs):
    import concurrent.futures
    import multiprocessing
    # Fresh interpreters ("spawn"): no state of the parent leaks into a point's run.
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context,
                                                  initializer=_ignore_interrupts)
    try:
        futures = {pool.submit(run_point, p, out_dir): p for p in points}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future
    except BaseException:
        # Ctrl-C, or the caller gone (GeneratorExit): the points still running are not
        # recorded, so the next run does them; their workers are killed now rather than
        # waited for (a synthesis takes minutes). The pool has no public handle on its
        # processes before Python 3.14's terminate_workers.
        _stop_workers(list((pool._processes or {}).values()))
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask_results(points, out_dir, scheduler):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ConfigError("--executor dask needs the distributed package") from None
    client = Client(scheduler, set_as_default=False)
    futures = {}
    try:
        # pure=False: a point runs once per submission, whatever Dask's own caching.
        futures = {client.submit(run_point, p, str(Path(out_dir).resolve()), pure=False,
                                 key=f"point-{p.key}"): p for p in points}
        for future in as_completed(futures, loop=client.loop):
            yield futures[future], future
    except BaseException:
        # The points not started are dropped; Dask cannot stop one that runs, and its
        # result is not recorded (the next run does it again).
        client.cancel(list(futures))
        raise
    finally:
        client.close()


def run_sweep(sweep, out_dir, *, jobs=1, executor="local", scheduler=None,
              retry_failed=False, progress=True, log=print):
    """Run the points of ``sweep`` not yet in ``out_dir/results.jsonl``.

    Parameters
    ----------
    sweep : Sweep
    out_dir : str or Path
        The results file and each point's working directory go there.
    jobs : int
        Local processes (``executor="local"``).
    executor : str
        ``"local"`` (a process pool) or ``"dask"`` (a Dask cluster at ``scheduler``).
    scheduler : str or None
        The Dask scheduler's address (``tcp://host:port``).
    retry_failed : bool
        Run again the points recorded as failed.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        Counts: ``total``, ``skipped`` (already recorded), ``ok``, ``failed`` (this run).
    """
    if executor not in ("local", "dask"):
        raise ValueError(f"executor must be 'local' or 'dask', not {executor!r}")
    if executor == "dask" and not scheduler:
        raise ConfigError("--executor dask needs --scheduler ADDRESS")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    out_dir = Path(out_dir)
    store = ResultStore(out_dir / "results.jsonl")
    pending = [p for p in sweep.points if not store.done(p.key, retry_failed=retry_failed)]
    counts = {"total": len(sweep.points), "skipped": len(sweep.points) - len(pending),
              "ok": 0, "failed": 0}
    if store.skipped_lines:
        log(f"{store.path}: ignored {store.skipped_lines} incomplete line(s)")
    if counts["skipped"]:
        log(f"{counts['skipped']} of {counts['total']} points already done "
            f"({store.path}): skipped")
    if not pending:
        return counts
    from tqdm import tqdm
    bar = tqdm(total=len(sweep.points), initial=counts["skipped"], unit="point",
               desc=sweep.name, disable=not progress)
    results = (_local_results(pending, out_dir, jobs) if executor == "local"
               else _dask_results(pending, out_dir, scheduler))
    try:
        for point, future in results:
            try:
                record = future.result()
            except Exception as error:  # noqa: BLE001 - a worker that died is a failure
                record = {"key": point.key, "flow": point.flow, "options": point.options,
                          "overrides": point.overrides, "config": point.config.to_dict(),
                          "config_hash": point.config.config_hash(), "status": "failed",
                          "error": f"{type(error).__name__}: {error}",
                          "log": traceback.format_exc(), "seconds": None}
            store.append(record)
            counts[record["status"]] += 1
            bar.update(1)
            if record["status"] != "ok":
                bar.write(f"failed: {point.flow} {_describe(point.overrides)}: "
                          f"{record['error']}")
    finally:
        # On an interrupt, closing the executor stops its workers now (not when the
        # generator is collected).
        results.close()
        bar.close()
    return counts
