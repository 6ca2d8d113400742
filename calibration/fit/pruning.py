"""Pruning latency ratios t(sparsity) / t(dense) per (device, method, hook), pooled over sizes:

    ratio = fixed_ratio + density_ratio * (1 - sparsity)

Masked (unstructured or structured, dense kernels) should give fixed_ratio ~ 1, density_ratio ~ 0;
physically shrunk structured layers should give ~ 0 and ~ 1 (formulas.md section 7, pitfall 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import Model, Points, fit_largest_heldout, num, usable

FORMULA = "ratio = fixed_ratio + density_ratio * (1 - sparsity)"


def _model() -> Model:
    return Model("density_linear", FORMULA, ("fixed_ratio", "density_ratio"),
                 lambda p, f: p["fixed_ratio"] + p["density_ratio"] * f["density"],
                 lower=(0.0, 0.0), upper=(20.0, 20.0), log_params=(False, False),
                 starts=((1.0, 0.01), (0.01, 1.0), (0.5, 0.5)))


def fit_pruning(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{"<device>/<method>/hook=<bool>": {"measured": [...], "fit": fit}}."""
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
        measured = [{"sparsity": sp, "hidden": num(r, "hidden"), "batch": num(r, "batch"), "ratio": float(q),
                     "rows": [i, b]} for (i, b, sp, r), q in zip(g, ratio, strict=True)]
        pts = Points(feats={"density": 1.0 - sparsity}, y=ratio, x=sparsity, rows=[[i, b] for i, b, _, _ in g],
                     extra=[{"hidden": num(r, "hidden"), "batch": num(r, "batch")} for *_, r in g])
        fit = fit_largest_heldout([_model()], pts, x_name="sparsity", y_name="latency_ratio",
                                  y_kind="ratio_of_medians", meta={"group": key})
        out[key] = {"measured": measured, "fit": fit}
    return out
