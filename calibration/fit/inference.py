"""Inference roofline of a linear stack, per (device, dtype, path) (Williams et al. 2009 roofline):

    t = overhead_s + max(flops / (achieved_tflops * 1e12), weight_bytes / (mem_GBps * 1e9))

achieved_tflops = peak * eta_c and mem_GBps = bw * eta_m; the efficiencies themselves are reported when
the environment records the peaks. On CPU the memory rate may have two tiers (weights in / out of the
last-level cache). Quantization speed-ups (bf16/fp32, int8/fp32) are reported as measured pairs and as
the ratio of the two roofline fits, whose error on the pairs is the speed-up's MAPE.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import (
    Model,
    Points,
    fit_record,
    insufficient,
    mape_pct,
    num,
    split_largest,
    usable,
)
from calibration.fit.compute import cache_bytes_from_env, time_predictor
from simulator.profile import predict_s

FORMULAS = {
    "roofline": "t_s = overhead_s + max(flops / (achieved_tflops * 1e12), ws_bytes / (mem_GBps * 1e9))",
    "roofline_sum": "t_s = overhead_s + flops / (achieved_tflops * 1e12) + ws_bytes / (mem_GBps * 1e9)",
    "roofline_sum_gemv": "roofline_sum with ws_bytes / (gemv_GBps * 1e9) for batch 1 (the library's GEMV path)",
    "roofline_sum_gemv_act": "roofline_sum_gemv + act_bytes / (act_GBps * 1e9); act_bytes = batch * hidden * "
                             "layers * activation element bytes (bias, ReLU, dynamic quantisation per element)",
    "hill_roofline_sum_gemv": "roofline_sum_gemv with flops / (achieved_tflops * 1e12 * eff), eff = 1 / (1 + "
                              "(x_half_flops / flops) ** hill_exponent): efficiency ramps up with size",
    "roofline_two_tier": "roofline with ws_bytes * ((1 - out) / (cache_GBps * 1e9) + out / (dram_GBps * 1e9)); "
                         "out = 1 / (1 + exp(-4 * (log2(ws_bytes) - log2(cache_bytes))))",
}


def roofline_models(flops: np.ndarray, t_s: np.ndarray, ws: np.ndarray, cache_bytes: float | None,
                    batch: np.ndarray | None = None, act: bool = False) -> list[Model]:
    """max() rooflines (one or two memory tiers) and the no-overlap form (Calculon's "no_overlap": weight
    streaming and arithmetic added, as small-batch GEMMs behave on CPUs), with a GEMV rate for batch 1
    when batch-1 points exist (libraries dispatch one-row products to GEMV kernels)."""
    r0, b0, o0 = float(np.max(flops / t_s)) / 1e12, float(np.max(ws / t_s)) / 1e9, float(np.min(t_s)) / 2
    base = ("overhead_s", "achieved_tflops")
    starts = ((o0, r0, b0), (o0 / 10, 2 * r0, 2 * b0), (o0, r0 / 2, b0 / 2))
    models = [Model("roofline", FORMULAS["roofline"], (*base, "mem_GBps"), time_predictor("roofline"),
                    lower=(1e-9, 1e-5, 1e-3), upper=(10.0, 1e4, 1e6), log_params=(True, True, True),
                    starts=starts),
              Model("roofline_sum", FORMULAS["roofline_sum"], (*base, "mem_GBps"), time_predictor("roofline_sum"),
                    lower=(1e-9, 1e-5, 1e-3), upper=(10.0, 1e4, 1e6), log_params=(True, True, True),
                    starts=starts)]
    if batch is not None and np.any(batch < 1.5) and np.any(batch >= 1.5):
        models.append(Model("roofline_sum_gemv", FORMULAS["roofline_sum_gemv"], (*base, "mem_GBps", "gemv_GBps"),
                            time_predictor("roofline_sum_gemv"), lower=(1e-9, 1e-5, 1e-3, 1e-3),
                            upper=(10.0, 1e4, 1e6, 1e6), log_params=(True,) * 4,
                            starts=tuple((*st, st[2] * f) for st in starts for f in (1.0, 3.0))))
        if act:
            models.append(Model("roofline_sum_gemv_act", FORMULAS["roofline_sum_gemv_act"],
                                (*base, "mem_GBps", "gemv_GBps", "act_GBps"), time_predictor("roofline_sum_gemv_act"),
                                lower=(1e-9, 1e-5, 1e-3, 1e-3, 1e-3), upper=(10.0, 1e4, 1e6, 1e6, 1e6),
                                log_params=(True,) * 5,
                                starts=tuple((*st, st[2], a) for st in starts for a in (0.3, 3.0))))
        x0 = float(np.median(flops))
        models.append(Model("hill_roofline_sum_gemv", FORMULAS["hill_roofline_sum_gemv"],
                            ("overhead_s", "achieved_tflops", "x_half_flops", "hill_exponent", "mem_GBps", "gemv_GBps"),
                            time_predictor("hill_roofline_sum_gemv"),
                            lower=(1e-9, 1e-5, 1.0, 0.25, 1e-3, 1e-3), upper=(10.0, 1e4, 1e18, 4.0, 1e6, 1e6),
                            log_params=(True, True, True, False, True, True),
                            starts=tuple((o, r * 2, x0 * xs, g, b, b * 2) for o, r, b in starts[:2]
                                         for xs in (0.1, 1.0) for g in (0.7, 1.5))))
    if cache_bytes:
        models.append(Model(
            "roofline_two_tier", FORMULAS["roofline_two_tier"], (*base, "cache_GBps", "dram_GBps"),
            time_predictor("roofline_two_tier"), lower=(1e-9, 1e-5, 1e-3, 1e-3), upper=(10.0, 1e4, 1e6, 1e6),
            log_params=(True,) * 4, fixed={"cache_bytes": float(cache_bytes)},
            starts=((o0, r0, b0, b0 / 4), (o0 / 10, 2 * r0, 2 * b0, b0 / 2), (o0, r0, 4 * b0, b0)),
            ordered=("cache_GBps", "dram_GBps")))
    return models


def _efficiencies(params: dict[str, float], env: dict[str, Any], dtype: str) -> dict[str, Any]:
    peaks = env.get("peak_tflops") if isinstance(env.get("peak_tflops"), dict) else {}
    peak = peaks.get(dtype)
    bw = env.get("mem_GBps")
    out: dict[str, Any] = {"peak_tflops": peak, "mem_peak_GBps": bw}
    out["eta_compute"] = params["achieved_tflops"] / peak if isinstance(peak, int | float) and peak > 0 else None
    rate = params.get("mem_GBps", params.get("dram_GBps"))
    out["eta_memory"] = rate / bw if isinstance(bw, int | float) and bw > 0 and rate else None
    if out["eta_compute"] is None or out["eta_memory"] is None:
        out["note"] = "efficiencies need environment.peak_tflops[dtype] and environment.mem_GBps"
    return out


def fit_roofline(rows: list[dict[str, Any]], env: dict[str, Any]) -> dict[str, Any]:
    """{"<device>/<dtype>/<path>": fit}; points are infer_linear rows (x = flops, ws_bytes = weights)."""
    cache_bytes, _ = cache_bytes_from_env(env)
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, r in usable(rows, ["infer_linear"]):
        if (r.get("flops") or 0) > 0 and (r.get("bytes") or 0) > 0:
            key = f"{r.get('device')}/{r.get('dtype')}/{(r.get('params') or {}).get('path', 'default')}"
            groups.setdefault(key, []).append((i, r))
    out = {}
    for key, items in sorted(groups.items()):
        flops = np.array([float(r["flops"]) for _, r in items])
        ws = np.array([float(r["bytes"]) for _, r in items])
        t_s = np.array([float(r["median_s"]) for _, r in items])
        batch = np.array([num(r, "batch", 0.0) or 0.0 for _, r in items])
        feats = {"flops": flops, "ws_bytes": ws}
        if np.all(batch > 0):
            feats["batch"] = batch
            act_elt = 2.0 if str(items[0][1].get("dtype")) in ("bf16", "fp16") else 4.0  # int8 dynamic: fp32 in/out
            feats["act_bytes"] = np.array([(num(r, "batch") or 0.0) * (num(r, "hidden") or 0.0)
                                           * (num(r, "layers") or 1.0) * act_elt for _, r in items])
        pts = Points(feats=feats, y=t_s, x=flops, rows=[[i] for i, _ in items],
                     extra=[{"ws_bytes": float(ws[j]), "batch": num(r, "batch"), "hidden": num(r, "hidden"),
                             **({"act_bytes": float(feats["act_bytes"][j])} if "act_bytes" in feats else {})}
                            for j, (_, r) in enumerate(items)])
        train, held, rule = split_largest(flops, min_train=4, x_name="flops")
        n_out = int((ws[train] > cache_bytes).sum())
        tiers = cache_bytes if key.startswith("cpu/") and n_out >= 2 and len(train) - n_out >= 2 else None
        device, dtype, path = key.split("/", 2)
        models = roofline_models(flops[train], t_s[train], ws[train], tiers,
                                 feats["batch"][train] if "batch" in feats else None, act="act_bytes" in feats)
        rec = fit_record(models, pts, train, held, rule, x_name="flops",
                         meta={"device": device, "dtype": dtype, "path": path})
        if rec["status"] == "ok":
            rec["efficiencies"] = _efficiencies(rec["params"], env, dtype)
        out[key] = rec
    return out


def fit_quantization(rows: list[dict[str, Any]], roofline: dict[str, Any]) -> dict[str, Any]:
    """Speed-ups t_fp32 / t_q for each quantized dtype, matched on (device, batch, hidden, layers)."""
    by_key: dict[tuple, dict[str, tuple[int, dict[str, Any]]]] = {}
    for i, r in usable(rows, ["infer_linear"]):
        k = (r.get("device"), num(r, "batch"), num(r, "hidden"), num(r, "layers"))
        by_key.setdefault(k, {})[str(r.get("dtype"))] = (i, r)
    out: dict[str, Any] = {}
    for q in sorted({d for v in by_key.values() for d in v} - {"fp32"}):
        pairs = [(k, v["fp32"], v[q]) for k, v in sorted(by_key.items(), key=str) if "fp32" in v and q in v]
        if pairs:
            out[f"{q}_over_fp32"] = _speedup_record(q, pairs, roofline)
    return out


def _speedup_record(q: str, pairs: list, roofline: dict[str, Any]) -> dict[str, Any]:
    measured, train, held = [], [], []
    for (device, batch, hidden, _), (i32, r32), (iq, rq) in pairs:
        s = float(r32["median_s"]) / float(rq["median_s"])
        measured.append({"device": device, "batch": batch, "hidden": hidden, "speedup": s, "rows": [i32, iq]})
        fits = [roofline.get(f"{r['device']}/{r['dtype']}/{(r.get('params') or {}).get('path', 'default')}")
                for r in (r32, rq)]
        if not all(f and f.get("status") == "ok" for f in fits):
            continue
        t = [float(predict_s(f, flops=r["flops"], ws_bytes=r["bytes"], batch=num(r, "batch"),
                             act_bytes=_act_bytes(f, r))) for f, r in zip(fits, (r32, rq), strict=True)]
        is_held = any(i in _heldout_rows(f) for f, i in zip(fits, (i32, iq), strict=True))
        (held if is_held else train).append({"x": float(hidden or 0), "measured": s, "predicted": t[0] / t[1],
                                             "rows": [i32, iq], "batch": batch})
    rec: dict[str, Any] = {"measured": measured}
    if not train and not held:
        return {**rec, "fit": insufficient(f"no fp32 and {q} roofline fits to take a ratio of")}

    def err(pts: list[dict[str, Any]]) -> float | None:
        return mape_pct(np.array([p["predicted"] for p in pts]), np.array([p["measured"] for p in pts]))

    rec["fit"] = {"status": "ok", "model": "ratio_of_roofline_fits", "params": {}, "stderr": {},
                  "formula": f"speedup = t_fp32 / t_{q}, each from its fits.inference.roofline entry",
                  "n_train": len(train), "n_heldout": len(held), "mape_train_pct": err(train),
                  "mape_heldout_pct": err(held), "x_name": "hidden", "y_name": "speedup",
                  "y_kind": "ratio_of_medians",
                  "heldout_rule": "pairs where either row was held out of its roofline fit",
                  "points": {"train": train, "heldout": held}}
    return rec


def _act_bytes(fit: dict[str, Any], row: dict[str, Any]) -> float | None:
    for p in fit["points"]["train"] + fit["points"]["heldout"]:
        if p.get("batch") == num(row, "batch") and p.get("hidden") == num(row, "hidden"):
            return p.get("act_bytes")
    return None


def _heldout_rows(fit: dict[str, Any]) -> set[int]:
    return {i for p in fit["points"]["heldout"] for i in p["rows"]}
