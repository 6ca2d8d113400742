"""Serving from a calibration profile: the decode bandwidth, step overhead and elementwise rate its inference fits
measured, as HardwareSpec fields with their spreads."""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.correlations import Origin
from simulator.device_fits import GUESSED_SPREAD, finite_positive, fit_spread, usable_fits
from simulator.serving.constants import DECODE_MEM_EFF
from simulator.serving.step import fixed_overhead_s


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
    for key, fit in usable_fits(profile, "roofline", device):
        param = "gemv_GBps" if finite_positive(fit["params"].get("gemv_GBps")) else "mem_GBps"
        bw = fit["params"].get(param)
        if finite_positive(bw) and bw <= hbm_GBps:
            fields["decode_mem_eff"] = bw / hbm_GBps
            spreads["decode_mem_eff"] = fit_spread(fit, param) or GUESSED_SPREAD
            origins["decode_mem_eff"] = Origin(f"fits.inference.roofline.{key}", fit, param)
            notes.append(f"decode bandwidth fitted: {param} {bw:.3g} GB/s of the {key} roofline fit of {name} "
                         f"({bw / hbm_GBps:.0%} of {hbm_GBps:g} GB/s)")
            break
    stream_GBps = fields.get("decode_mem_eff", DECODE_MEM_EFF) * hbm_GBps
    for key, fit in usable_fits(profile, "decode", device):
        intercept = fit["params"].get("overhead_s")
        if finite_positive(intercept):
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
    candidates = [(f"inference.prefill.{k}", f) for k, f in usable_fits(profile, "prefill", device)]
    candidates += [(f"compute.block_fwd_bwd.{k}", f)
                   for k, f in usable_fits(profile, "block_fwd_bwd", device, section="compute")]
    return next(((k, f) for k, f in candidates if finite_positive(f["params"].get("elem_GBps"))), None)


def _decode_kv_GBps(profile: dict[str, Any], fit: dict[str, Any]) -> float | None:
    """The rate decode attention reads the KV cache at, from a decode fit t = overhead + b·per_seq + b·ctx·per_kv_token:
    KV bytes per cached token (its rows' KV-cache bytes ÷ batch·context) ÷ per_kv_token_s; None without that term."""
    per_token_s = fit["params"].get("per_kv_token_s")
    if not finite_positive(per_token_s):
        return None
    rows = profile.get("measurements") or []
    found = []
    for point in (p for part in (fit.get("points") or {}).values() for p in part):
        for i in point.get("rows") or []:
            row = rows[i] if isinstance(i, int) and 0 <= i < len(rows) else None
            params = (row or {}).get("params") if isinstance(row, dict) else None
            kv = ((row or {}).get("extra") or {}).get("kv_cache_bytes") if isinstance(row, dict) else None
            if isinstance(params, dict) and finite_positive(kv) and finite_positive(params.get("batch")) \
                    and finite_positive(params.get("context")):
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
            if isinstance(row, dict) and finite_positive(row.get("bytes")) and finite_positive(kv) \
                    and row["bytes"] > kv:
                found.append(float(row["bytes"]) - float(kv))
    return float(np.median(found)) if found else None
