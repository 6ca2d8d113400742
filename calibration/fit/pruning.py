"""Pruning latency ratios t(sparsity) / t(dense) per (device, method, hook), pooled over sizes.

Masked layers (unstructured or structured zeros, dense kernels, with or without the mask hook):

    ratio = fixed_ratio + density_ratio * (1 - sparsity)

which should give fixed_ratio ~ 1, density_ratio ~ 0 (torch.nn.utils.prune keeps dense weights behind a mask).

Physically shrunk structured layers (rows removed) are smaller dense layers: a batch-8 Linear streams its
weights, so its time is t(W) = overhead + W / rate(W), with the rate in two tiers around the cores'
aggregate L2 (a layer pruned to a fifth may fit the caches its dense parent did not), and

    ratio = t(density * W) / t(W)

with W the dense layer's weight bytes; a ratio fixes no absolute rate, so the parameters are the overhead
in bytes-equivalent and the in-cache speed-up.  This needs sizes on both sides of the cache among the training
points, which the grids provide (a smaller hidden size for the shrunk variant).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import Model, Points, fit_largest_heldout, num, usable
from simulator.profile import predict_s

FORMULA = "ratio = fixed_ratio + density_ratio * (1 - sparsity)"
SHRUNK_FORMULA = ("ratio = c(density * W) / c(W); c(w) = overhead_bytes + w * ((1 - out) / cache_speedup + out); "
                  "out = 1 / (1 + exp(-4 * (log2(w) - log2(cache_bytes)))); W = dense weight bytes; c is the "
                  "time in bytes at the beyond-cache rate (a ratio fixes no absolute rate)")
DEFAULT_L2_BYTES = 1 << 20


def _model() -> Model:
    return Model("density_linear", FORMULA, ("fixed_ratio", "density_ratio"),
                 lambda p, f: p["fixed_ratio"] + p["density_ratio"] * f["density"],
                 lower=(0.0, 0.0), upper=(20.0, 20.0), log_params=(False, False),
                 starts=((1.0, 0.01), (0.01, 1.0), (0.5, 0.5)))


def _shrunk_model(cache_bytes: float) -> Model:
    return Model("shrunk_bytes", SHRUNK_FORMULA, ("overhead_bytes", "cache_speedup"),
                 lambda p, f: predict_s({"model": "shrunk_bytes", "params": p}, **f),
                 lower=(1.0, 0.2), upper=(1e9, 50.0), log_params=(True, True),
                 fixed={"cache_bytes": float(cache_bytes)},
                 starts=((1e5, 2.0), (1e4, 1.2), (1e6, 4.0)))


def cache_bytes_for_pruning(env: dict[str, Any] | None) -> tuple[float, str]:
    """The aggregate L2 of the CPUs the run used: each thread streams its share of the weights."""
    env = env or {}
    l2 = env.get("l2_cache_bytes")
    cpus = env.get("available_cpus") or env.get("torch_threads") or 1
    if isinstance(l2, int | float) and not isinstance(l2, bool) and l2 > 0:
        return float(l2) * float(cpus), f"environment.l2_cache_bytes x {cpus} CPUs"
    return float(DEFAULT_L2_BYTES) * float(cpus), f"assumed 1 MiB L2 x {cpus} CPUs"


def fit_pruning(rows: list[dict[str, Any]], env: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"<device>/<method>/hook=<bool>": {"measured": [...], "fit": fit}}."""
    cache_bytes, cache_source = cache_bytes_for_pruning(env)
    items = usable(rows, ["prune_latency"])
    dense: dict[tuple, int] = {}
    for i, r in items:
        p = r.get("params") or {}
        if num(r, "sparsity") == 0.0:
            dense[(r.get("device"), p.get("method"), p.get("hook"), num(r, "hidden"), num(r, "batch"))] = i
    groups: dict[str, list[tuple[int, int, float, dict[str, Any]]]] = {}
    for i, r in items:
        p = r.get("params") or {}
        sp = num(r, "sparsity")
        base = dense.get((r.get("device"), p.get("method"), p.get("hook"), num(r, "hidden"), num(r, "batch")))
        if sp is None or sp <= 0 or base is None:
            continue
        key = f"{r.get('device')}/{p.get('method')}/hook={p.get('hook')}"
        groups.setdefault(key, []).append((i, base, sp, r))
    out = {}
    for key, g in sorted(groups.items()):
        sparsity = np.array([x[2] for x in g])
        ratio = np.array([float(r["median_s"]) / float(rows[b]["median_s"]) for _, b, _, r in g])
        dense_bytes = np.array([float(rows[b].get("bytes") or 4.0 * (num(r, "hidden") or 0.0) ** 2)
                                for _, b, _, r in g])
        measured = [{"sparsity": sp, "hidden": num(r, "hidden"), "batch": num(r, "batch"), "ratio": float(q),
                     "rows": [i, b]} for (i, b, sp, r), q in zip(g, ratio, strict=True)]
        shrunk = "shrunk" in key
        feats = {"density": 1.0 - sparsity}
        if shrunk:
            feats["weight_bytes"] = dense_bytes
        pts = Points(feats=feats, y=ratio, x=sparsity, rows=[[i, b] for i, b, _, _ in g],
                     extra=[{"hidden": num(r, "hidden"), "batch": num(r, "batch"), "density": float(1.0 - sp),
                             **({"weight_bytes": float(w)} if shrunk else {})}
                            for (_, _, sp, r), w in zip(g, dense_bytes, strict=True)])
        meta = {"group": key, **({"cache_bytes_source": cache_source} if shrunk else {})}
        models = [_shrunk_model(cache_bytes)] if shrunk else [_model()]
        fit = fit_largest_heldout(models, pts, x_name="sparsity", y_name="latency_ratio",
                                  y_kind="ratio_of_medians", meta=meta)
        out[key] = {"measured": measured, "fit": fit}
    return out
