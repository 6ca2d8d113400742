"""Compute fits per (device, dtype), from GEMM sweeps and, separately, transformer-block fwd+bwd sweeps:

    t = overhead_s + max(flops / (achieved_tflops * 1e12 * eff(flops)), ws_bytes / bandwidth(ws_bytes))

eff is a Hill curve in flops, eff = x^g / (x^g + x_half^g): a logistic in log flops that saturates at 1,
so `achieved_tflops` is the large-size throughput (peak * eff_max). (With g = 1 the curve would add only
a constant to t, indistinguishable from the overhead, hence g is fitted.) The memory bound covers skinny,
weight-streaming shapes; on CPU its bandwidth has two tiers, in and out of the last-level cache
(machine-notes: L3 effects are large). Candidates from 2 to 6 parameters are fitted and cross-validation
on the training points picks one (common.SELECTION_RULE). The formulas live in simulator/profile.py (`predict_s`), shared with the
simulator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import Model, Points, fit_record, insufficient, num, split_largest, usable
from simulator.profile import predict_s

ELEMENT_BYTES = {"fp32": 4, "float32": 4, "tf32": 4, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2,
                 "fp8": 1, "int8": 1}
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024  # machine-notes: L3 32 MiB on the reference machine
FORMULAS = {
    "linear_compute": "t_s = overhead_s + flops / (achieved_tflops * 1e12)",
    "overhead_hill": "t_s = overhead_s + flops / (achieved_tflops * 1e12 * eff); "
                     "eff = 1 / (1 + (x_half_flops / flops) ** hill_exponent)",
    "hill_roofline": "t_s = overhead_s + max(flops / (achieved_tflops * 1e12 * eff), ws_bytes / (mem_GBps * 1e9))",
    "hill_roofline_two_tier": "hill_roofline with ws_bytes * ((1 - out) / (cache_GBps * 1e9) + out / "
                              "(dram_GBps * 1e9)); out = 1 / (1 + exp(-4 * (log2(ws_bytes) - log2(cache_bytes))))",
}


def time_predictor(name: str):
    return lambda p, f: predict_s({"model": name, "params": p}, **f)


def compute_models(flops: np.ndarray, t_s: np.ndarray, ws_bytes: np.ndarray | None,
                   cache_bytes: float | None) -> list[Model]:
    """Candidate models with starting points taken from the data's scale. The memory-bound candidates
    need working-set bytes; the two-tier one also needs training points on both sides of the cache."""
    r0 = float(np.max(flops / t_s)) / 1e12
    o0 = float(np.min(t_s)) / 2
    x0 = float(np.median(flops))
    hill = ("overhead_s", "achieved_tflops", "x_half_flops", "hill_exponent")
    lo, hi, logs = (1e-9, 1e-5, 1.0, 0.25), (10.0, 1e4, 1e18, 4.0), (True, True, True, False)
    starts = tuple((o0, r0 * f, x0 * s, g) for f in (1.0, 2.0) for s in (0.1, 1.0) for g in (0.7, 1.5))
    models = [
        Model("linear_compute", FORMULAS["linear_compute"], hill[:2], time_predictor("linear_compute"),
              lower=lo[:2], upper=hi[:2], starts=((o0, r0), (o0 / 10, r0 / 2)), log_params=logs[:2]),
        Model("overhead_hill", FORMULAS["overhead_hill"], hill, time_predictor("overhead_hill"),
              lower=lo, upper=hi, starts=starts, log_params=logs),
    ]
    if ws_bytes is None:
        return models
    b0 = float(np.max(ws_bytes / t_s)) / 1e9
    models.append(Model(
        "hill_roofline", FORMULAS["hill_roofline"], (*hill, "mem_GBps"), time_predictor("hill_roofline"),
        lower=(*lo, 1e-3), upper=(*hi, 1e6), log_params=(*logs, True),
        starts=tuple((*s, b0 * f) for s in starts[::2] for f in (0.3, 3.0))))
    if cache_bytes:
        models.append(Model(
            "hill_roofline_two_tier", FORMULAS["hill_roofline_two_tier"], (*hill, "cache_GBps", "dram_GBps"),
            time_predictor("hill_roofline_two_tier"), lower=(*lo, 1e-3, 1e-3), upper=(*hi, 1e6, 1e6),
            log_params=(*logs, True, True), fixed={"cache_bytes": float(cache_bytes)},
            starts=tuple((*s, b0 * f, b0 * f / 4) for s in starts[::2] for f in (0.5, 3.0))))
    return models


def _gemm_features(row: dict[str, Any]) -> tuple[float | None, float | None]:
    m, n, k = num(row, "m"), num(row, "n"), num(row, "k")
    flops = row.get("flops") or (2 * m * n * k if m and n and k else None)
    elem = ELEMENT_BYTES.get(str(row.get("dtype")), 4)
    ws = row.get("bytes") or ((m * k + k * n + m * n) * elem if m and n and k else None)
    return flops, ws


def _block_features(row: dict[str, Any]) -> tuple[float | None, float | None]:
    return row.get("flops"), row.get("bytes")


def cache_bytes_from_env(env: dict[str, Any]) -> tuple[float, str]:
    """The last-level cache size: from the environment when recorded, else the machine-notes value."""
    cpu = env.get("cpu") if isinstance(env.get("cpu"), dict) else {}
    for where, src in (("environment", env), ("environment.cpu", cpu)):
        for key in ("l3_cache_bytes", "l3_bytes", "llc_bytes", "cache_bytes"):
            v = src.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
                return float(v), f"{where}.{key}"
    return float(DEFAULT_CACHE_BYTES), "assumed 32 MiB (reference/machine-notes.md)"


def fit_compute(rows: list[dict[str, Any]], env: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"gemm": {"<device>/<dtype>": fit}, "block_fwd_bwd": {...}}."""
    cache_bytes, cache_source = cache_bytes_from_env(env or {})
    out: dict[str, Any] = {}
    for bench, features in (("gemm", _gemm_features), ("block_fwd_bwd", _block_features)):
        groups: dict[str, list[tuple[int, float, float | None, float]]] = {}
        for i, r in usable(rows, [bench]):
            flops, ws = features(r)
            if flops and flops > 0:
                groups.setdefault(f"{r.get('device')}/{r.get('dtype')}", []).append(
                    (i, float(flops), ws, float(r["median_s"])))
        out[bench] = {key: _fit_group(key, g, cache_bytes, cache_source, bench) for key, g in sorted(groups.items())}
    return out


def _fit_group(key: str, group: list[tuple[int, float, float | None, float]], cache_bytes: float,
               cache_source: str, bench: str) -> dict[str, Any]:
    flops = np.array([g[1] for g in group])
    t_s = np.array([g[3] for g in group])
    feats = {"flops": flops}
    extra = [{"ws_bytes": g[2], "achieved_tflops": g[1] / g[3] / 1e12} for g in group]
    pts = Points(feats=feats, y=t_s, x=flops, rows=[[g[0]] for g in group], extra=extra)
    device, dtype = key.split("/", 1)
    meta = {"bench": bench, "device": device, "dtype": dtype}
    if len(group) == 0:
        return insufficient("no usable rows", **meta)
    train, held, rule = split_largest(flops, min_train=3, x_name="flops")
    ws, two_tier = None, None
    if all(g[2] for g in group):
        ws = feats["ws_bytes"] = np.array([float(g[2]) for g in group])
        n_out = int((ws[train] > cache_bytes).sum())
        if device == "cpu" and n_out >= 2 and len(train) - n_out >= 2:
            two_tier = cache_bytes
    rec = fit_record(compute_models(flops, t_s, ws, two_tier), pts, train, held, rule, x_name="flops",
                     meta=meta)
    if rec["status"] == "ok":
        rec["derived"] = {"max_measured_tflops": float(np.max(flops / t_s) / 1e12),
                          "cache_bytes": cache_bytes, "cache_bytes_source": cache_source}
    return rec
