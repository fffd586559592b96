"""Area of a config: an FPGA resource model fitted to synthesis, and a 45 nm estimate.

:func:`fit_fpga` fits ECP5 LUT4s of a core, ``LUT4 = PEs * (a + b * acc_regs + d * dual) +
f``, by least squares to synthesis results (``benchmarks/results/dual_pe_area.json``: one
PE and the 4x4 core, single and dual policies, Yosys ``synth_ecp5``); :func:`fpga_luts`
evaluates it. The fit has few points (the synthesis flow measures few configs so far), so
it interpolates around the default core and says nothing of other array sizes' control
logic beyond the fitted per-core constant.

:func:`asic_area_mm2` is the area at 45 nm that the architecture search budgets against
(CATERPILLAR's 103.2 and 178.9 mm²). Its figures, per component (:data:`ASIC_45NM`):

* a MAC: CATERPILLAR's half-precision FPU, 0.0056 mm² (Li & Pedram, ASAP 2017), scaled
  for the config's formats: half for the multiplier, scaled by the significand width
  squared, half for the adder, scaled by the accumulator width; a dual-precision PE adds a
  low-precision multiplier and a second adder;
* SRAM: 0.55 µm² per bit (a 45 nm 6T cell of about 0.35 µm² over an array efficiency of
  about 64%: an estimate), for the PE banks (a second read port doubles a bank, as on the
  FPGA) and the scratchpad;
* registers (accumulators): 5 µm² per bit (an estimate of a 45 nm flip-flop);
* per core, control (sequencer, loss unit, special functions, DMA, registers): 0.1 mm²,
  and per ring link bit a router/link cost of 0.0005 mm² (both estimates).

These are estimates, not synthesis: there is no 45 nm Liberty file in this project.
"""

import json
import math
from pathlib import Path

__all__ = ["ASIC_45NM", "asic_area_mm2", "asic_breakdown", "fit_fpga", "fpga_luts",
           "DEFAULT_SYNTHESIS"]

#: The 45 nm figures of :func:`asic_area_mm2` (see the module docstring).
ASIC_45NM = {
    "fp16_fpu_mm2": 0.0056,
    "sram_um2_per_bit": 0.55,
    "flop_um2_per_bit": 5.0,
    "core_control_mm2": 0.1,
    "ring_mm2_per_bit": 0.0005,
}

#: Synthesis results the FPGA model is fitted to.
DEFAULT_SYNTHESIS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / \
    "dual_pe_area.json"


def _mac_mm2(config, figures):
    fpu = figures["fp16_fpu_mm2"]
    mult = 0.5 * fpu * (config.mac.operand.precision / 11) ** 2
    add = 0.5 * fpu * config.mac.accumulator.width / 16
    if config.mac.dual == "single":
        return mult + add
    low = 0.5 * fpu * ((config.mac.low_man_bits + 1) / 11) ** 2
    return mult + low + 2 * add


def asic_breakdown(config, figures=None):
    """Component -> mm² of ``config`` at 45 nm (all cores)."""
    f = dict(ASIC_45NM, **(figures or {}))
    sram = f["sram_um2_per_bit"] * 1e-6
    ports = 1 if config.mac.dual == "single" else 2
    pe = {
        "mac": _mac_mm2(config, f),
        # The activation bank has two read ports (WGRAD) and words of the operand format;
        # a dual PE doubles both banks.
        "banks": sram * ports * (32 * config.pe.weight_words
                                 + config.mac.operand.width * config.pe.act_words * 2),
        "accumulators": 32 * config.pe.acc_regs * f["flop_um2_per_bit"] * 1e-6,
        "reuse": config.pe.reuse_entries * 48 * sram,
    }
    pes = config.core.pes
    cores = config.cluster.cores
    out = {f"pe_{k}": v * pes * cores for k, v in pe.items()}
    out["scratchpad"] = 32 * config.core.scratchpad_words * sram * cores
    out["control"] = f["core_control_mm2"] * cores
    out["ring"] = f["ring_mm2_per_bit"] * config.cluster.link_width * cores if cores > 1 \
        else 0.0
    return out


def asic_area_mm2(config, figures=None):
    """Area of ``config`` at 45 nm in mm² (:func:`asic_breakdown` summed)."""
    return math.fsum(asic_breakdown(config, figures).values())


def _solve(rows, targets):
    """Least squares by the normal equations (small, dense)."""
    n = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * t for r, t in zip(rows, targets)) for i in range(n)]
    # Gauss-Jordan with partial pivoting; a tiny ridge keeps an under-determined fit solvable.
    for i in range(n):
        a[i][i] += 1e-9
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        b[col], b[pivot] = b[pivot], b[col]
        for r in range(n):
            if r != col and a[col][col]:
                k = a[r][col] / a[col][col]
                a[r] = [x - k * y for x, y in zip(a[r], a[col])]
                b[r] -= k * b[col]
    return [b[i] / a[i][i] if a[i][i] else 0.0 for i in range(n)]


def fit_fpga(path=DEFAULT_SYNTHESIS):
    """Fit ECP5 LUT4s to synthesis results.

    Returns
    -------
    dict
        ``coefficients`` (``per_pe``, ``per_acc_reg``, ``per_dual_pe``, ``per_core``),
        ``points`` (each measured point with the fitted value and the relative error) and
        ``source``.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    rows, targets, points = [], [], []
    for row in data["rows"]:
        pes = 1 if row["level"] == "pe" else 16
        dual = 0 if row["policy"] == "single" else 1
        rows.append([pes, pes * row["acc_regs"], pes * dual, 0 if row["level"] == "pe" else 1])
        targets.append(row["lut4"])
        points.append({"level": row["level"], "policy": row["policy"],
                       "acc_regs": row["acc_regs"], "lut4": row["lut4"]})
    coef = _solve(rows, targets)
    for point, row in zip(points, rows):
        fitted = sum(c * x for c, x in zip(coef, row))
        point["fitted"] = fitted
        point["error"] = (fitted - point["lut4"]) / point["lut4"]
    names = ("per_pe", "per_acc_reg", "per_dual_pe", "per_core")
    return {"coefficients": dict(zip(names, coef)), "points": points, "source": str(path)}


def fpga_luts(config, fit=None):
    """ECP5 LUT4s of ``config`` by the fitted model (:func:`fit_fpga`)."""
    c = (fit or fit_fpga())["coefficients"]
    pes = config.core.pes
    dual = 0 if config.mac.dual == "single" else 1
    per_core = (pes * (c["per_pe"] + c["per_acc_reg"] * config.pe.acc_regs
                       + c["per_dual_pe"] * dual) + c["per_core"])
    return per_core * config.cluster.cores
