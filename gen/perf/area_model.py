"""Area of a config: an FPGA resource model and an ASIC logic model fitted to synthesis,
and the 45 nm area the architecture search budgets against.

:func:`fit_fpga` fits ECP5 LUT4s of a core, ``LUT4 = PEs * (a + b * acc_regs + d * dual) +
f``, by least squares to synthesis results (``benchmarks/results/dual_pe_area.json``: one
PE and the 4x4 core, single and dual policies, Yosys ``synth_ecp5``); :func:`fpga_luts`
evaluates it. The fit has few points (the synthesis flow measures few configs so far), so
it interpolates around the default core and says nothing of other array sizes' control
logic beyond the fitted per-core constant.

:func:`fit_asic` fits the logic area (memories excluded) of the osu018 0.18 µm
standard-cell syntheses of ``benchmarks/results/asic_area.json`` (1x2 to 4x4, ``single``
and ``value``), ``µm² = per_core + PEs * (per_pe + per_dual_pe * dual)``;
:func:`asic_logic_um2` evaluates it.

:func:`asic_area_mm2` is the area at 45 nm that the architecture search budgets against
(CATERPILLAR's 103.2 and 178.9 mm²). Its figures, per component (:data:`ASIC_45NM`):

* a MAC: an FPU figure of 0.01176 mm², scaled for the config's formats: half for the
  multiplier, scaled by the significand width squared, half for the adder, scaled by the
  accumulator width; a dual-precision PE adds a low-precision multiplier and a second adder;
* SRAM: 0.55 µm² per bit (a 45 nm 6T cell of about 0.35 µm² over an array efficiency of
  about 64%: an estimate), for the PE banks (a second read port doubles a bank, as on the
  FPGA) and the scratchpad;
* registers (accumulators): 6 µm² per bit;
* per core, control (sequencer, loss unit, special functions, DMA, registers): 0.4248 mm²,
  and per ring link bit a router/link cost of 0.0005 mm² (an estimate).

The FPU, flip-flop and control figures are :func:`refit_45nm`'s: fitted to the osu018
syntheses (the FPU figure carries the PE's operand muxes and its share of the reducers,
the control figure everything a core has outside its PEs), scaled from 0.18 µm to 45 nm by
the ideal (45/180)² (an assumption: a real 45 nm library's cells are not exactly a
sixteenth). ``test_area_model`` keeps them equal to the refit of
``benchmarks/results/asic_area.json``. SRAM and the ring stay estimates: the memories are
macros in the synthesis. :data:`ASIC_45NM_ESTIMATES` keeps the figures the model used
before the syntheses (CATERPILLAR's half-precision FPU, 0.0056 mm², from Li & Pedram,
ASAP 2017; 5 µm² per flip-flop bit; 0.1 mm² of control), for comparison; the refit makes
the search's designs 11-30% larger (``benchmarks/results/asic_area.md``).
"""

import json
import math
from pathlib import Path

__all__ = ["ASIC_45NM", "ASIC_45NM_ESTIMATES", "asic_area_mm2", "asic_breakdown", "fit_fpga",
           "fpga_luts",
           "DEFAULT_SYNTHESIS", "DEFAULT_ASIC_SYNTHESIS", "OSU018_TO_45NM", "fit_asic",
           "asic_logic_um2", "refit_45nm", "OSU018_DFF_UM2"]

#: The 45 nm figures before the osu018 syntheses: literature and estimates (see the module
#: docstring), kept for comparison.
ASIC_45NM_ESTIMATES = {
    "fp16_fpu_mm2": 0.0056,
    "sram_um2_per_bit": 0.55,
    "flop_um2_per_bit": 5.0,
    "core_control_mm2": 0.1,
    "ring_mm2_per_bit": 0.0005,
}

#: The 45 nm figures of :func:`asic_area_mm2`: the estimates with the logic figures
#: refitted from the osu018 syntheses (:func:`refit_45nm`, four significant digits).
ASIC_45NM = dict(ASIC_45NM_ESTIMATES, fp16_fpu_mm2=0.01176, flop_um2_per_bit=6.0,
                 core_control_mm2=0.4248)

#: Synthesis results the FPGA model is fitted to.
DEFAULT_SYNTHESIS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / \
    "dual_pe_area.json"

#: Synthesis results (osu018 standard cells, µm²) the ASIC logic figures are fitted to.
DEFAULT_ASIC_SYNTHESIS = DEFAULT_SYNTHESIS.with_name("asic_area.json")

#: The area of osu018's D flip-flop (``DFFPOSX1``), µm².
OSU018_DFF_UM2 = 96.0

#: Area from the 0.18 µm osu018 library to 45 nm: the ideal scaling (45 / 180)², an
#: assumption (a real 45 nm library's cells are not exactly a sixteenth).
OSU018_TO_45NM = (45 / 180) ** 2


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
        if row.get("pairing", "outputs") not in (None, "outputs"):
            # A PE that pairs k-steps (``hw.pe.PE(pairing="k")``) is not what ``mac.dual``
            # builds into a core yet: the model prices the output-paired PE.
            continue
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


def _series_rows(data):
    """The points of the array series of ``asic_area.json`` (the presets aside) as
    ``(PEs, dual, µm², name)``."""
    out = []
    for name, point in data["points"].items():
        if "mac.dual" not in point["overrides"]:
            continue
        dual = 0 if point["overrides"]["mac.dual"] == "single" else 1
        out.append((point["pes"], dual, point["area_um2"], name))
    return out


def fit_asic(path=DEFAULT_ASIC_SYNTHESIS):
    """Fit the logic area of the osu018 syntheses (memories excluded) by least squares:
    ``µm² = per_core + PEs * (per_pe + per_dual_pe * dual)``, ``dual`` 1 for the ``value``
    policy (28 accumulators and the dual datapath) and 0 for ``single`` (16).

    Returns
    -------
    dict
        ``coefficients`` (``per_pe_um2``, ``per_dual_pe_um2``, ``per_core_um2``), ``points``
        (each series point with the fitted value and the relative error) and ``source``.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    series = _series_rows(data)
    if len({(pes, dual) for pes, dual, _, _ in series}) < 3:
        raise ValueError(f"fit_asic needs at least three distinct series points, not "
                         f"{len(series)} in {str(path)!r}")
    rows = [[pes, pes * dual, 1] for pes, dual, _, _ in series]
    coef = _solve(rows, [area for _, _, area, _ in series])
    points = []
    for (pes, dual, area, name), row in zip(series, rows):
        fitted = sum(c * x for c, x in zip(coef, row))
        points.append({"name": name, "pes": pes, "dual": dual, "area_um2": area,
                       "fitted": fitted, "error": (fitted - area) / area})
    names = ("per_pe_um2", "per_dual_pe_um2", "per_core_um2")
    return {"coefficients": dict(zip(names, coef)), "points": points, "source": str(path)}


def asic_logic_um2(config, fit=None):
    """osu018 logic area of ``config`` in µm² (memories excluded) by :func:`fit_asic`."""
    c = (fit or fit_asic())["coefficients"]
    dual = 0 if config.mac.dual == "single" else 1
    per_core = config.core.pes * (c["per_pe_um2"] + c["per_dual_pe_um2"] * dual) \
        + c["per_core_um2"]
    return per_core * config.cluster.cores


def refit_45nm(fit=None, config=None):
    """The logic figures of :data:`ASIC_45NM` refitted from the osu018 fit, scaled by
    :data:`OSU018_TO_45NM`.

    * ``flop_um2_per_bit``: the library's D flip-flop (:data:`OSU018_DFF_UM2`), scaled;
    * ``fp16_fpu_mm2``: such that :func:`asic_breakdown`'s MAC and accumulators of the
      series' single-precision PE (``config``: the ``default`` preset) add up to the
      fitted logic area per PE, scaled (the PE's operand muxes, decoder and its share of
      the reducers are in that slope, so the "FPU" figure carries them);
    * ``core_control_mm2``: the fitted fixed part per core, scaled.

    SRAM and the ring stay estimates (the memories are macros in the synthesis). Returns
    the three figures and ``dual_check``: the model's extra area of a ``value`` PE over a
    ``single`` one with the refitted figures, over the fitted ``per_dual_pe_um2`` scaled
    (1.0 when the model's dual structure matches the synthesis).
    """
    from chrysalis.gen.spec.config import get_preset, with_overrides
    c = (fit or fit_asic())["coefficients"]
    base = config or get_preset("default")
    value = with_overrides(base, {"mac.dual": "value", "pe.acc_regs": 28})
    k = OSU018_TO_45NM * 1e-6
    flop = OSU018_DFF_UM2 * OSU018_TO_45NM

    def per_pe(cfg, figures):
        parts = asic_breakdown(cfg, dict(ASIC_45NM_ESTIMATES, **figures))
        return (parts["pe_mac"] + parts["pe_accumulators"]) / (cfg.core.pes * cfg.cluster.cores)

    # Per PE, mm² = fpu * a + the accumulators' flip-flops: solve for fpu.
    a = per_pe(base, {"fp16_fpu_mm2": 1.0, "flop_um2_per_bit": 0.0})
    acc = per_pe(base, {"fp16_fpu_mm2": 0.0, "flop_um2_per_bit": flop})
    fpu = (c["per_pe_um2"] * k - acc) / a
    figures = {"fp16_fpu_mm2": fpu, "flop_um2_per_bit": flop,
               "core_control_mm2": c["per_core_um2"] * k}
    extra = per_pe(value, figures) - per_pe(base, figures)
    return dict(figures, dual_check=extra / (c["per_dual_pe_um2"] * k))
