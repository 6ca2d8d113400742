"""The simulator's GEMM efficiency curve fitted to a calibration profile's GEMM fit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.device_fits import finite_positive
from simulator.profile import predict_s
from simulator.training.constants import DEFAULT_CONSTANTS, TrainingConstants

ELEMENT_BYTES = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0}
_GRID_SQUARE, _GRID_SKINNY = 10, 8  # fit grid: square GEMMs and skinny ones (the smallest measured m)


Shape = tuple[float, float, float]  # (m, n, k) of one GEMM (m×k)·(k×n)


@dataclass(frozen=True)
class GemmCurveFit:
    """The simulator's GEMM curve eff = eff_max / (1 + d½·(1/m + 1/n + 1/k)), with its memory roofline,
    fitted to one GEMM fit of a profile, and how closely it follows that fit at the measured shapes."""

    key: str                          # the profile fit it follows, "<device>/<dtype>"
    model: str                        # that fit's model (linear_compute, hill_roofline, ...)
    eff_max: float
    dim_half: float
    grid: tuple[Shape, ...]           # the shapes fitted (square, skinny, and the measured ones)
    measured: tuple[Shape, ...]       # the shapes the profile measured for this dtype
    rel_err: tuple[float, ...]        # per measured shape: simulator GEMM time / profile prediction - 1
    compute_bound: tuple[bool, ...]   # per measured shape: the simulator's time is compute-bound there
    grid_rms_err: float               # RMS of the same relative error over the compute-bound shapes of the grid

    def max_err(self, min_flops: float = 0.0) -> float:
        """Largest |relative error| at the measured shapes where the simulator is compute-bound (where d½ and
        eff_max act), of at least `min_flops` FLOPs; NaN where there is none."""
        errs = [abs(e) for (m, n, k), e, cb in zip(self.measured, self.rel_err, self.compute_bound, strict=True)
                if cb and 2.0 * m * n * k >= min_flops]
        return max(errs) if errs else float("nan")


def measured_shapes(profile: dict[str, Any], device: str, dtype: str) -> list[Shape]:
    """The distinct (m, n, k) of the profile's usable GEMM rows of `device` at `dtype`, sorted."""
    shapes = set()
    for row in profile.get("measurements", []):
        p = row.get("params") if isinstance(row, dict) else None
        if (row.get("bench") == "gemm" and row.get("device") == device and row.get("dtype") == dtype
                and row.get("status") == "ok" and isinstance(p, dict)
                and all(finite_positive(p.get(d)) for d in "mnk")):
            shapes.add((float(p["m"]), float(p["n"]), float(p["k"])))
    return sorted(shapes)


def _fit_grid(measured: list[Shape], fit: dict[str, Any]) -> list[Shape]:
    """Square and skinny GEMMs spanning the FLOPs the profile measured, plus the measured shapes themselves."""
    if measured:
        flops = [2.0 * m * n * k for m, n, k in measured]
        lo, hi = min(flops), max(flops)
        small, big = min(min(s) for s in measured), max(max(s) for s in measured)
    else:  # a profile without its rows: the range of the fit's points, skinny at m = 16
        xs = [p["x"] for part in (fit.get("points") or {}).values() for p in part if finite_positive(p.get("x"))]
        lo, hi = (min(xs), max(xs)) if xs else (2.0 * 256**3, 2.0 * 16384**3)
        small, big = 16.0, math.inf
    square = [(s, s, s) for s in np.cbrt(np.geomspace(lo, hi, _GRID_SQUARE) / 2.0)]
    wide_lo = max(math.sqrt(lo / (2.0 * small)), small)
    wide_hi = max(min(math.sqrt(hi / (2.0 * small)), big), wide_lo)
    skinny = [(small, s, s) for s in np.geomspace(wide_lo, wide_hi, _GRID_SKINNY)]
    return [tuple(float(v) for v in s) for s in (*square, *skinny)] + list(measured)


def fit_gemm_curve(profile: dict[str, Any], key: str, peak_tflops: float, hbm_GBps: float,
                   k: TrainingConstants = DEFAULT_CONSTANTS) -> GemmCurveFit:
    """Least-squares (eff_max, d½) of the simulator's GEMM time (training/efficiency.py: the curve above, bounded
    below by the memory roofline at `hbm_GBps` × the model's hbm_eff) against the profile's GEMM fit `key`.

    The profile's per-call overhead is left out: it is the launch and timing cost of one synchronised call, which
    the training model's back-to-back kernels do not pay. Residuals are log time ratios, so every shape of the
    grid counts by its relative error."""
    from scipy.optimize import least_squares  # here: importing this module stays light

    device, _, dtype = key.partition("/")
    fit = profile["fits"]["compute"]["gemm"][key]
    measured = measured_shapes(profile, device, dtype)
    grid = np.array(_fit_grid(measured, fit))
    m, n, kd = grid.T
    surface = m * n + kd * (m + n)
    flops = 2.0 * m * n * kd
    ws_bytes = surface * ELEMENT_BYTES.get(dtype, 2.0)
    kernel_only = {**fit, "params": {**fit["params"], "overhead_s": 0.0}}
    t_profile = np.asarray(predict_s(kernel_only, flops=flops, ws_bytes=ws_bytes), dtype=float)
    t_memory = ws_bytes / (hbm_GBps * 1e9 * k.hbm_eff)
    ok = np.isfinite(t_profile) & (t_profile > 0)
    if not ok.any():  # the loader's ranges keep every compute fit finite; never fit a curve to nothing
        raise ValueError(f"the GEMM fit {key} predicts no finite positive time at the shapes measured")

    def t_sim(x: np.ndarray) -> np.ndarray:
        eff_max, d_half = x
        return np.maximum((m * n * kd + d_half * surface) * 2.0 / (peak_tflops * 1e12 * eff_max), t_memory)

    solution = least_squares(lambda x: np.log(t_sim(x)[ok] / t_profile[ok]),
                             x0=[min(k.gemm_eff_max, 1.0), k.gemm_dim_half], bounds=([1e-3, 0.0], [1.0, 1e5]))
    eff_max, d_half = (float(v) for v in solution.x)
    t_fit = t_sim(solution.x)
    err = t_fit / t_profile - 1.0
    compute = (m * n * kd + d_half * surface) * 2.0 / (peak_tflops * 1e12 * eff_max) >= t_memory
    n_grid = len(grid) - len(measured)
    return GemmCurveFit(
        key=key, model=str(fit.get("model")), eff_max=eff_max, dim_half=d_half,
        grid=tuple(tuple(s) for s in grid.tolist()), measured=tuple(measured),
        rel_err=tuple(float(e) for e in err[n_grid:]), compute_bound=tuple(bool(c) for c in compute[n_grid:]),
        grid_rms_err=float(np.sqrt(np.mean(err[ok & compute] ** 2))) if (ok & compute).any() else float("nan"),
    )


def curve_source(curve: GemmCurveFit, name: str) -> str:
    """The source note of a device whose efficiency curve is `curve`, fitted to a profile of `name`."""
    worst, big = curve.max_err(), curve.max_err(1e9)
    from_1g = f" ({100 * big:.0f}% from 1 GFLOP up)" if big == big else ""  # NaN: no such shape
    at = (f"; within {100 * worst:.0f}% of that fit{from_1g} at the measured shapes where the model is "
          "compute-bound") if worst == worst else ""
    return (f"GEMM efficiency curve fitted to the {curve.key} GEMM fit ({curve.model}) of {name}: "
            f"eff_max {curve.eff_max:.3f}, d½ {curve.dim_half:.2f}{at}")
