"""Calibrated devices: a calibration profile becomes an accelerator the simulator can plan on, and the one
place that knows every device: the datasheet catalog, the shipped reference profiles and a caller's own.

A calibrated device claims only what its profile measured: `HardwareSpec.provenance_of` says, per group, whether
the numbers are the datasheet's, fitted, or assumed, and `HardwareSpec.sources` says where each came from.
`HardwareSpec.spreads` gives the relative one-sigma uncertainty of the model columns the device sets.

There is no process-wide registry: `all_devices(extra)` is the catalog plus the shipped profiles (computed once,
never changed) plus `extra`, the devices a caller (an app session's uploads) passes explicitly.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from simulator.catalog import (
    SOURCE_GROUPS,
    HardwareSpec,
    UnknownAccelerator,
    device_spreads,
    find_accelerator,
    load_catalog,
)
from simulator.correlations import Origin, fit_correlations
from simulator.profile import collective_fit, load_profile, predict_s
from simulator.serving.constants import DECODE_MEM_EFF
from simulator.serving.step import fixed_overhead_s
from simulator.training.constants import DEFAULT_CONSTANTS, TrainingConstants

PROFILE_DIR = Path(__file__).parent / "data" / "profiles"
PROFILE_PREFIX = "profile:"
CPU_DTYPES = {"fp32": "fp32", "tf32": "fp32", "bf16": "bf16"}  # precision -> the dtype a CPU fit measured
ASSUMED_CPU = {"hbm_GB": 16.0, "tdp_W": 100.0, "gpu_hour_usd": 0.10}
# the dtype whose GEMM fit sets a device's efficiency curve: the first the profile has, training precisions first
# (a GPU's fp32 runs without tensor cores, so its curve says nothing about the datasheet's tensor peak)
GPU_CURVE_DTYPES = ("bf16", "fp16", "fp8", "tf32")
CPU_CURVE_DTYPES = ("bf16", "fp32")
ELEMENT_BYTES = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0}
# one sigma for numbers neither a datasheet nor the calibration gives (a CPU's memory bandwidth, its network):
# a placeholder, wide on purpose
GUESSED_SPREAD = 0.5
# the widest spread a fit may claim: the evaluator's P10 row scales a column by 1 - 1.2816 x spread, which reaches
# zero (an infinite time: the plan then loses its P10-P90 band) at 0.78; a wider fitted spread (a held-out error of
# 80% or more) says "very uncertain", not "possibly zero"
MAX_SPREAD = 0.75
_GRID_SQUARE, _GRID_SKINNY = 10, 8  # fit grid: square GEMMs and skinny ones (the smallest measured m)


class DeviceClashError(ValueError):
    """A caller's device has the id of a datasheet or shipped device and differs from it."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def device_id(profile: dict[str, Any]) -> str:
    """A stable id per profile: its name plus its creation time, so two runs of a day never collide."""
    created = re.sub(r"[^0-9]", "", str(profile.get("created_utc", "")))[:14]
    return PROFILE_PREFIX + _slug(f"{profile.get('name', 'calibrated device')} {created}")


def _datasheet_match(gpu_name: str) -> HardwareSpec | None:
    """The catalog entry whose display name matches a CUDA device name such as 'NVIDIA H200'."""
    wanted = _slug(gpu_name).replace("nvidia-", "").replace("amd-", "")
    if not wanted:  # "" is in every name: a name of no letters or digits matches nothing
        return None
    for spec in load_catalog().values():
        if _slug(spec.id) == wanted or wanted in _slug(spec.display_name):
            return spec
    return None


def _gemm_fits(profile: dict[str, Any], device: str) -> dict[str, dict[str, Any]]:
    """Usable GEMM fits of `device` by dtype, from fits.compute.gemm["<device>/<dtype>"]."""
    out: dict[str, dict[str, Any]] = {}
    for key, fit in profile.get("fits", {}).get("compute", {}).get("gemm", {}).items():
        dev, _, dtype = key.partition("/")
        if dev == device and isinstance(fit, dict) and fit.get("status") == "ok":
            out[dtype] = fit
    return out


def _largest_allreduce(profile: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    worlds = profile.get("fits", {}).get("collectives", {}).get("all_reduce", {}).get("by_world", {})
    for world in sorted((int(w) for w in worlds), reverse=True):
        fit = collective_fit(profile, "all_reduce", world)
        if world > 1 and fit and "busbw_GBps" in fit["params"]:
            return world, fit
    return None


def _finite_positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def fit_spread(fit: dict[str, Any], param: str, value: float | None = None) -> float | None:
    """Relative one-sigma uncertainty of one fitted parameter: its standard error over its value (or over `value`,
    a field that differs from the param by a constant), or the fit's held-out error where that is larger (a fit can
    be precise about the wrong curve), at most MAX_SPREAD; None: neither is known."""
    value = fit.get("params", {}).get(param) if value is None else value
    se = (fit.get("stderr") or {}).get(param)
    candidates = []
    if _finite_positive(value) and _finite_positive(se):  # a standard error of exactly 0 is not a certainty
        candidates.append(se / value)
    if _finite_positive(fit.get("mape_heldout_pct")):
        candidates.append(fit["mape_heldout_pct"] / 100.0)
    return min(max(candidates), MAX_SPREAD) if candidates else None


# ---------------------------------------------------------------- the efficiency curve


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


def _measured_shapes(profile: dict[str, Any], device: str, dtype: str) -> list[Shape]:
    shapes = set()
    for row in profile.get("measurements", []):
        p = row.get("params") if isinstance(row, dict) else None
        if (row.get("bench") == "gemm" and row.get("device") == device and row.get("dtype") == dtype
                and row.get("status") == "ok" and isinstance(p, dict)
                and all(_finite_positive(p.get(d)) for d in "mnk")):
            shapes.add((float(p["m"]), float(p["n"]), float(p["k"])))
    return sorted(shapes)


def _fit_grid(measured: list[Shape], fit: dict[str, Any]) -> list[Shape]:
    """Square and skinny GEMMs spanning the FLOPs the profile measured, plus the measured shapes themselves."""
    if measured:
        flops = [2.0 * m * n * k for m, n, k in measured]
        lo, hi = min(flops), max(flops)
        small, big = min(min(s) for s in measured), max(max(s) for s in measured)
    else:  # a profile without its rows: the range of the fit's points, skinny at m = 16
        xs = [p["x"] for part in (fit.get("points") or {}).values() for p in part if _finite_positive(p.get("x"))]
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
    measured = _measured_shapes(profile, device, dtype)
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


def _curve_source(curve: GemmCurveFit, name: str) -> str:
    worst, big = curve.max_err(), curve.max_err(1e9)
    from_1g = f" ({100 * big:.0f}% from 1 GFLOP up)" if big == big else ""  # NaN: no such shape
    at = (f"; within {100 * worst:.0f}% of that fit{from_1g} at the measured shapes where the model is "
          "compute-bound") if worst == worst else ""
    return (f"GEMM efficiency curve fitted to the {curve.key} GEMM fit ({curve.model}) of {name}: "
            f"eff_max {curve.eff_max:.3f}, d½ {curve.dim_half:.2f}{at}")


# ---------------------------------------------------------------- serving: decode bandwidth and step overhead


def _usable_fits(profile: dict[str, Any], kind: str, device: str, section: str = "inference"
                    ) -> list[tuple[str, dict[str, Any]]]:
    """Usable fits of fits.<section>.<kind> on `device`, bf16 first (the serving dtype), then the rest."""
    fits = profile.get("fits", {}).get(section, {}).get(kind, {})
    ok = [(key, fit) for key, fit in fits.items() if key.partition("/")[0] == device and isinstance(fit, dict)
          and fit.get("status") == "ok" and isinstance(fit.get("params"), dict)]
    return sorted(ok, key=lambda item: "/bf16/" not in f"{item[0]}/")


def serving_overlay(profile: dict[str, Any], device: str, hbm_GBps: float, name: str
                    ) -> tuple[dict[str, float], dict[str, float], list[str], dict[str, Origin]]:
    """(HardwareSpec fields, spreads, source notes, the fit each spread came from) for serving from a profile's
    inference fits: the decode memory efficiency = the roofline fit's streaming bandwidth (the GEMV path where
    fitted) over `hbm_GBps`, and the step overhead = the decode fit's fixed time per step. A bandwidth above
    `hbm_GBps` measured a cache, not the memory: it is not used."""
    fields: dict[str, float] = {}
    spreads: dict[str, float] = {}
    notes: list[str] = []
    origins: dict[str, Origin] = {}
    for key, fit in _usable_fits(profile, "roofline", device):
        param = "gemv_GBps" if _finite_positive(fit["params"].get("gemv_GBps")) else "mem_GBps"
        bw = fit["params"].get(param)
        if _finite_positive(bw) and bw <= hbm_GBps:
            fields["decode_mem_eff"] = bw / hbm_GBps
            spreads["decode_mem_eff"] = fit_spread(fit, param) or GUESSED_SPREAD
            origins["decode_mem_eff"] = Origin(f"fits.inference.roofline.{key}", fit, param)
            notes.append(f"decode bandwidth fitted: {param} {bw:.3g} GB/s of the {key} roofline fit of {name} "
                         f"({bw / hbm_GBps:.0%} of {hbm_GBps:g} GB/s)")
            break
    stream_GBps = fields.get("decode_mem_eff", DECODE_MEM_EFF) * hbm_GBps
    for key, fit in _usable_fits(profile, "decode", device):
        intercept = fit["params"].get("overhead_s")
        if _finite_positive(intercept):
            weights = _decode_weight_bytes(profile, fit)
            if weights is None:  # no rows to tell the weights' share: the whole intercept
                fields["step_overhead_s"] = float(intercept)
                notes.append(f"serving step overhead fitted: {intercept * 1e3:.3g} ms, the {key} decode fit's "
                             f"intercept of {name} (its rows' weight bytes unknown: weight streaming not taken out)")
            else:
                fields["step_overhead_s"] = fixed_overhead_s(intercept, weights, stream_GBps * 1e9)
                notes.append(f"serving step overhead fitted: {fields['step_overhead_s'] * 1e3:.3g} ms, the {key} "
                             f"decode fit's intercept of {name} ({intercept * 1e3:.3g} ms) less streaming its "
                             f"{weights / 1e6:.3g} MB of weights at {stream_GBps:.3g} GB/s, which every step "
                             "already charges")
            step_spread = fit_spread(fit, "overhead_s", fields["step_overhead_s"]) if fields["step_overhead_s"] else None
            if step_spread is not None:  # the intercept's standard error, over the overhead left of it
                spreads["step_overhead_s"] = step_spread
                origins["step_overhead_s"] = Origin(f"fits.inference.decode.{key}", fit, "overhead_s")
            kv = _decode_kv_GBps(profile, fit)
            if kv is not None and kv <= hbm_GBps:  # above the memory's bandwidth: the cache was measured
                fields["decode_kv_eff"] = kv / hbm_GBps
                spreads["decode_kv_eff"] = fit_spread(fit, "per_kv_token_s") or GUESSED_SPREAD
                origins["decode_kv_eff"] = Origin(f"fits.inference.decode.{key}", fit, "per_kv_token_s", sign=-1)
                notes.append(f"decode attention's KV reads fitted: {kv:.3g} GB/s, the {key} decode fit's time per "
                             "cached token over its KV bytes per token")
            break
    elem = _elementwise_fit(profile, device)
    if elem is not None:
        key, fit = elem
        rate = float(fit["params"]["elem_GBps"])
        fields["elementwise_eff"] = rate / hbm_GBps
        spreads["elementwise_eff"] = fit_spread(fit, "elem_GBps") or GUESSED_SPREAD
        origins["elementwise_eff"] = Origin(f"fits.{key}", fit, "elem_GBps")
        notes.append(f"elementwise passes fitted: {rate:.3g} GB/s, the {key} fit's elementwise rate of {name} "
                     f"({rate / hbm_GBps:.0%} of {hbm_GBps:g} GB/s)")
    return fields, spreads, notes, origins


def _elementwise_fit(profile: dict[str, Any], device: str) -> tuple[str, dict[str, Any]] | None:
    """The fit whose `elem_GBps` (norms, activations, residual adds; calibration/fit/serving.py, compute.py) a
    serving step's elementwise passes run at: the prefill fit's (bf16 first), else the transformer block's."""
    candidates = [(f"inference.prefill.{k}", f) for k, f in _usable_fits(profile, "prefill", device)]
    candidates += [(f"compute.block_fwd_bwd.{k}", f)
                   for k, f in _usable_fits(profile, "block_fwd_bwd", device, section="compute")]
    return next(((k, f) for k, f in candidates if _finite_positive(f["params"].get("elem_GBps"))), None)


def _decode_kv_GBps(profile: dict[str, Any], fit: dict[str, Any]) -> float | None:
    """The rate decode attention reads the KV cache at, from a decode fit t = overhead + b·per_seq + b·ctx·per_kv_token:
    KV bytes per cached token (its rows' KV-cache bytes ÷ batch·context) ÷ per_kv_token_s; None without that term."""
    per_token_s = fit["params"].get("per_kv_token_s")
    if not _finite_positive(per_token_s):
        return None
    rows = profile.get("measurements") or []
    found = []
    for point in (p for part in (fit.get("points") or {}).values() for p in part):
        for i in point.get("rows") or []:
            row = rows[i] if isinstance(i, int) and 0 <= i < len(rows) else None
            params = (row or {}).get("params") if isinstance(row, dict) else None
            kv = ((row or {}).get("extra") or {}).get("kv_cache_bytes") if isinstance(row, dict) else None
            if isinstance(params, dict) and _finite_positive(kv) and _finite_positive(params.get("batch")) \
                    and _finite_positive(params.get("context")):
                found.append(float(kv) / (float(params["batch"]) * float(params["context"])))
    return float(np.median(found)) / per_token_s / 1e9 if found else None


def _decode_weight_bytes(profile: dict[str, Any], fit: dict[str, Any]) -> float | None:
    """Weight bytes of the decoder a decode fit measured: its rows' bytes moved less their KV-cache bytes
    (calibration/bench/inference.py records both); None where the rows do not say."""
    rows = profile.get("measurements") or []
    found = []
    for point in (p for part in (fit.get("points") or {}).values() for p in part):
        for i in point.get("rows") or []:
            row = rows[i] if isinstance(i, int) and 0 <= i < len(rows) else None
            kv = ((row or {}).get("extra") or {}).get("kv_cache_bytes") if isinstance(row, dict) else None
            if isinstance(row, dict) and _finite_positive(row.get("bytes")) and _finite_positive(kv) \
                    and row["bytes"] > kv:
                found.append(float(row["bytes"]) - float(kv))
    return float(np.median(found)) if found else None


# ---------------------------------------------------------------- a profile becomes a device


def device_from_profile(profile: dict[str, Any]) -> HardwareSpec:
    """An accelerator built from a (strictly loaded) profile: the GPU's datasheet with only what the profile
    measured overlaid (the GEMM efficiency curve, the intra-node link where an all-reduce fit exists), or, for a
    CPU-only profile, the machine's own fitted throughput with everything else marked assumed."""
    env = profile.get("environment", {})
    gpus = env.get("gpu_names") or []
    base = _datasheet_match(gpus[0]) if gpus else None
    device = "cuda" if gpus else "cpu"
    gemm_fits = _gemm_fits(profile, device)
    achieved = {dtype: float(fit["params"]["achieved_tflops"]) for dtype, fit in gemm_fits.items()}
    name = profile.get("name", "calibrated device")
    date = profile.get("created_utc", "")[:10] or "unknown"
    label = name if "calibrated" in name else f"{name}, calibrated {date}"
    origins: dict[str, Origin] = {}  # uncertain column -> the fit it came from (their correlations)
    if base is not None:
        fields: dict[str, Any] = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        sources = dict(base.sources)
        provenance_of = dict(base.provenance_of)
        spreads = dict(device_spreads(base))
        # keep the datasheet peak; the fitted efficiency curve replaces the assumed one
        dtype = next((d for d in GPU_CURVE_DTYPES if d in achieved and d in base.peak_tflops), None)
        if dtype is not None:
            curve = fit_gemm_curve(profile, f"{device}/{dtype}", base.peak_tflops[dtype], base.hbm_GBps)
            fields.update(gemm_eff_max=curve.eff_max, gemm_dim_half=curve.dim_half)
            provenance_of["peak_tflops"] = "fitted"
            sources["peak_tflops"] = f"datasheet peak ({base.sources['peak_tflops']}); {_curve_source(curve, name)}"
            spreads["gemm_eff_max"] = fit_spread(gemm_fits[dtype], "achieved_tflops") or spreads["gemm_eff_max"]
            origins["gemm_eff_max"] = Origin(f"fits.compute.gemm.{device}/{dtype}", gemm_fits[dtype], "achieved_tflops")
    else:
        peaks = {p: achieved[d] for p, d in CPU_DTYPES.items() if d in achieved}
        if not peaks:
            raise ValueError(f"profile {name!r}: no fitted GEMM throughput (fits.compute.gemm) to plan with")
        dtype = next(d for d in CPU_CURVE_DTYPES if d in achieved)
        hbm_GBps = 50.0
        curve = fit_gemm_curve(profile, f"{device}/{dtype}", achieved[dtype], hbm_GBps)
        fields = {
            "peak_tflops": peaks, "hbm_GB": ASSUMED_CPU["hbm_GB"], "hbm_GBps": hbm_GBps, "intra_node_GBps": 2.0,
            "intra_node_latency_s": 3e-4, "inter_node_GBps": 1.0, "inter_node_latency_s": 1e-3,
            "gpus_per_node": int(max(1, env.get("physical_cores") or 1)),
            "tdp_W": ASSUMED_CPU["tdp_W"], "gpu_hour_usd": ASSUMED_CPU["gpu_hour_usd"], "vendor": env.get("cpu_model") or "CPU",
            "gemm_eff_max": curve.eff_max, "gemm_dim_half": curve.dim_half, "price_date": date,
        }
        sources = {
            "peak_tflops": f"fitted: achieved large-GEMM TFLOP/s from the GEMM sweep of {name}, used as the peak; "
                           f"{_curve_source(curve, name)}",
            "hbm": "assumed: memory size and bandwidth are not measured by calibration",
            "intra_node": "assumed until an all-reduce fit exists",
            "inter_node": "assumed: a single-node calibration does not measure the network between nodes",
            "tdp": "assumed: 100 W per worker", "price": "assumed: $0.10 per worker-hour",
        }
        provenance_of = {"peak_tflops": "fitted", **dict.fromkeys(SOURCE_GROUPS[1:], "assumed")}
        spreads = {"gemm_eff_max": fit_spread(gemm_fits[dtype], "achieved_tflops") or GUESSED_SPREAD,
                   "hbm_eff": GUESSED_SPREAD, "intra_GBps": GUESSED_SPREAD, "inter_GBps": GUESSED_SPREAD}
        origins["gemm_eff_max"] = Origin(f"fits.compute.gemm.{device}/{dtype}", gemm_fits[dtype], "achieved_tflops")
    serving, serving_spreads, serving_notes, serving_origins = serving_overlay(profile, device, fields["hbm_GBps"], name)
    fields.update(serving)
    spreads.update(serving_spreads)
    origins.update(serving_origins)
    if serving_notes:
        sources["serving"] = "; ".join(serving_notes)
    ar = _largest_allreduce(profile)
    if ar is not None:
        world, fit = ar
        # the model multiplies link bandwidth by its efficiency; a measured busbw already includes it
        fields["intra_node_GBps"] = fit["params"]["busbw_GBps"] / DEFAULT_CONSTANTS.intra_link_eff
        fields["intra_node_latency_s"] = fit["params"]["alpha_s"]
        sources["intra_node"] = f"fitted: all-reduce busbw {fit['params']['busbw_GBps']:.3g} GB/s and latency at world size {world}, {name}"
        provenance_of["intra_node"] = "fitted"
        spreads["intra_GBps"] = fit_spread(fit, "busbw_GBps") or spreads["intra_GBps"]
        origins["intra_GBps"] = Origin(f"fits.collectives.all_reduce.by_world.{world}", fit, "busbw_GBps")
    correlations, correlation_notes = fit_correlations(origins)
    if correlation_notes:
        sources["correlations"] = "; ".join(correlation_notes)
    fields.update(
        id=device_id(profile), display_name=label, sources=sources, provenance_of=provenance_of, spreads=spreads,
        correlations=correlations,
        provenance="fitted" if "fitted" in provenance_of.values() else "datasheet",
    )
    fields.setdefault("price_date", date)
    heldout_pct = (profile.get("summary") or {}).get("mape_heldout_pct_median")
    fields["heldout_error"] = float(heldout_pct) / 100.0 if _finite_positive(heldout_pct) else None
    allowed = {f.name for f in dataclasses.fields(HardwareSpec)}
    return HardwareSpec(**{k: v for k, v in fields.items() if k in allowed})


# ---------------------------------------------------------------- every device, without a registry


@lru_cache(maxsize=1)
def shipped_profiles() -> dict[str, dict[str, Any]]:
    """Reference profiles shipped with the package, by file stem."""
    return {path.stem: load_profile(path) for path in sorted(PROFILE_DIR.glob("*.json"))}


@lru_cache(maxsize=1)
def _shipped() -> tuple[tuple[str, HardwareSpec], ...]:
    specs = (device_from_profile(profile) for profile in shipped_profiles().values())
    return tuple((spec.id, spec) for spec in specs)


def shipped_devices() -> dict[str, HardwareSpec]:
    """The devices of the shipped reference profiles, by id (built once)."""
    return dict(_shipped())


@lru_cache(maxsize=1)
def _known() -> tuple[tuple[str, HardwareSpec], ...]:
    return (*load_catalog().items(), *_shipped())


def all_devices(extra: Mapping[str, HardwareSpec] | None = None) -> dict[str, HardwareSpec]:
    """The datasheet catalog, the shipped profiles' devices, then `extra` (an app session's uploaded devices,
    passed explicitly). A device of `extra` never replaces a known one: one that has a known id and differs
    from it raises DeviceClashError, naming both."""
    out = dict(_known())
    shipped = dict(_shipped())
    for dev_id, spec in (extra or {}).items():
        if dev_id != spec.id:
            raise ValueError(f'devices: key "{dev_id}" holds the device "{spec.id}"; key each device by its id')
        known = out.get(dev_id)
        if known is not None and known != spec:
            kind = "a shipped reference profile's device" if dev_id in shipped else "a datasheet accelerator"
            raise DeviceClashError(f'device "{dev_id}" ({spec.display_name}) has the id of {kind} ({known.display_name}), '
                              "which is never replaced; give the profile another name so that its id differs")
        out.setdefault(dev_id, spec)
    return out


def check_new_device(spec: HardwareSpec) -> str | None:
    """Why `spec` cannot join the known devices (a clash with a datasheet or shipped id), or None."""
    try:
        all_devices({spec.id: spec})
    except DeviceClashError as exc:
        return str(exc)
    return None


def get_accelerator(name: str, field: str = "cluster.accelerator",
                    extra: Mapping[str, HardwareSpec] | None = None) -> HardwareSpec:
    """Spec by id, display name or alias among all_devices(extra); UnknownAccelerator lists the known ids."""
    return find_accelerator(name, all_devices(extra), field)


__all__ = ["DeviceClashError", "GemmCurveFit", "UnknownAccelerator", "all_devices", "check_new_device", "device_from_profile",
           "device_id", "device_spreads", "fit_gemm_curve", "fit_spread", "get_accelerator", "shipped_devices",
           "shipped_profiles"]
