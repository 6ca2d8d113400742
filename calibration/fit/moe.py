"""The mixture-of-experts layer against this device's dense fits: one multiplier, `moe_gemm_eff`, per (device, dtype).

    t_s = (sum of the layer's GEMMs by the GEMM fit, each expert GEMM at its own shape
           + router/permute/activation/combine bytes / (mem_GBps * 1e9)) / moe_gemm_eff

so moe_gemm_eff = 1 is a layer exactly as fast as its dense parts, below 1 slower (grouping, routing, imbalance),
above 1 faster (the dense fit's per-call overhead over-charged for many small calls). The GEMM inventory and bytes
are simulator.profile_models.moe_layer_inventory, shared with the bench. `mem_GBps` is the fitted elementwise rate
of the transformer-block fit of the same device and dtype (norms, activations: passes like these), else the GEMM
fit's memory rate; it is fixed, not fitted. The training model multiplies its expert-GEMM efficiency by the column.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import Model, Points, fit_record, insufficient, num, split_largest, usable
from calibration.fit.compute import ELEMENT_BYTES
from simulator.profile import predict_s
from simulator.profile_models import moe_dense_s

SHAPE = ("tokens", "experts", "top_k", "hidden", "expert_ffn")
FORMULA = ("t_s = (sum(GEMM fit over the router GEMM and each expert's gate+up and down GEMMs) + (router_bytes + "
           "permute_bytes + activation_bytes + combine_bytes) / (mem_GBps * 1e9)) / moe_gemm_eff; inventory in "
           "simulator/profile_models.py:moe_layer_inventory")


def memory_rate(compute: dict[str, Any], key: str) -> tuple[float, str] | None:
    """(GB/s, where from) for the layer's non-GEMM bytes: the block fit's elementwise rate, else the GEMM fit's
    memory rate (beyond the cache where it has two tiers); None without either."""
    block = (compute.get("block_fwd_bwd") or {}).get(key) or {}
    gemm = (compute.get("gemm") or {}).get(key) or {}
    for fit, param, where in ((block, "elem_GBps", "block_fwd_bwd"), (gemm, "mem_GBps", "gemm"),
                              (gemm, "dram_GBps", "gemm")):
        value = (fit.get("params") or {}).get(param) if fit.get("status") == "ok" else None
        if isinstance(value, int | float) and np.isfinite(value) and value > 0:
            return float(value), f"fits.compute.{where}.{key}.params.{param}"
    return None


def moe_models(gemm: dict[str, Any], mem_GBps: float, element_bytes: float, ratio0: float) -> list[Model]:
    def predict(p: dict[str, float], f: dict[str, np.ndarray]) -> np.ndarray:
        return predict_s({"model": "moe_inventory", "params": p, "gemm_fit": gemm}, **f)

    return [Model("moe_inventory", FORMULA, ("moe_gemm_eff",), predict, lower=(1e-3,), upper=(1e2,),
                  log_params=(True,), starts=((ratio0,), (1.0,)),
                  fixed={"mem_GBps": mem_GBps, "element_bytes": element_bytes})]


def fit_moe_layer(rows: list[dict[str, Any]], compute: dict[str, Any]) -> dict[str, Any]:
    """{"<device>/<dtype>": fit} of the moe_layer rows, each against the GEMM fit of its device and dtype."""
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, r in usable(rows, ["moe_layer"]):
        if all(num(r, k) for k in SHAPE):
            groups.setdefault(f"{r.get('device')}/{r.get('dtype')}", []).append((i, r))
    return {key: _fit_group(key, group, compute) for key, group in sorted(groups.items())}


def _fit_group(key: str, group: list[tuple[int, dict[str, Any]]], compute: dict[str, Any]) -> dict[str, Any]:
    device, dtype = key.split("/", 1)
    meta: dict[str, Any] = {"bench": "moe_layer", "device": device, "dtype": dtype}
    gemm_fit = (compute.get("gemm") or {}).get(key)
    if not gemm_fit or gemm_fit.get("status") != "ok":
        return insufficient(f"no GEMM fit of {key} to compare the layer with (fits.compute.gemm.{key})", **meta)
    rate = memory_rate(compute, key)
    if rate is None:
        return insufficient(f"no fitted memory rate for {key} (the block fit's elem_GBps or the GEMM fit's "
                            "mem_GBps / dram_GBps)", **meta)
    mem_GBps, mem_source = rate
    elt = float(ELEMENT_BYTES.get(dtype, 4))
    gemm = {"model": gemm_fit["model"], "params": dict(gemm_fit["params"])}
    feats = {k: np.array([float(num(r, k)) for _, r in group]) for k in SHAPE}
    t_s = np.array([float(r["median_s"]) for _, r in group])
    flops = np.array([float(r.get("flops") or 6.0 * num(r, "tokens") * num(r, "top_k") * num(r, "hidden")
                            * num(r, "expert_ffn")) for _, r in group])
    dense_s = np.asarray(moe_dense_s(gemm, mem_GBps, elt, **feats), dtype=float)
    extra = [{**{k: float(feats[k][j]) for k in SHAPE}, "dense_s": float(dense_s[j]),
              "dense_over_measured": float(dense_s[j] / t_s[j])} for j in range(len(group))]
    pts = Points(feats=feats, y=t_s, x=flops, rows=[[i] for i, _ in group], extra=extra)
    train, held, rule = split_largest(flops, min_train=2, x_name="expert GEMM flops")
    ratio0 = float(np.exp(np.median(np.log(dense_s[train] / t_s[train])))) if len(train) else 1.0
    meta.update(gemm_fit=gemm, gemm_fit_source=f"fits.compute.gemm.{key}", mem_GBps_source=mem_source)
    return fit_record(moe_models(gemm, mem_GBps, elt, float(np.clip(ratio0, 2e-3, 50.0))), pts, train, held, rule,
                      x_name="flops", meta=meta)
