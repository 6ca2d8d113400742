"""Parameter-server and DDP-overlap fits (network benches; oversubscribed rows never used).

Sharded parameter server (Li et al. 2014, OSDI; traffic derived):
    t = 2 * alpha_s + max(2 M / B_worker, 2 W M / (S * B_server))
DDP (Li et al. 2020, PyTorch Distributed, VLDB): T_step = T_compute + (1 - overlap) * T_allreduce, overlap fitted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import Model, Points, fit_largest_heldout, insufficient, num, usable
from simulator.profile import predict_s

PS_FORMULA = ("t_s = 2 * alpha_s + max(2 * M / (worker_GBps * 1e9), 2 * workers * M / "
              "(servers * server_GBps * 1e9)); M = message_bytes per worker")
DDP_FORMULA = "t_s = compute_s + (1 - overlap_fraction) * allreduce_s"


def fit_parameter_server(rows: list[dict[str, Any]]) -> dict[str, Any]:
    items = [(i, r) for i, r in usable(rows, ["ps_push_pull"])
             if (r.get("bytes") or 0) > 0 and num(r, "servers") and num(r, "workers")]
    if not items:
        n_over = sum(1 for r in rows if r.get("bench") == "ps_push_pull" and r.get("oversubscribed"))
        return {"sharded": insufficient("no usable non-oversubscribed ps_push_pull rows",
                                        oversubscribed_rows_excluded=n_over)}
    x = np.array([float(r["bytes"]) for _, r in items])
    s = np.array([num(r, "servers") for _, r in items])
    w = np.array([num(r, "workers") for _, r in items])
    t_s = np.array([float(r["median_s"]) for _, r in items])
    pts = Points(feats={"message_bytes": x, "servers": s, "workers": w}, y=t_s, x=x,
                 rows=[[i] for i, _ in items],
                 extra=[{"servers": int(s[j]), "workers": int(w[j])} for j in range(len(items))])
    bw0 = float(np.max(2 * x / t_s)) / 1e9
    a0 = float(np.min(t_s)) / 2
    model = Model("sharded_ps", PS_FORMULA, ("alpha_s", "worker_GBps", "server_GBps"),
                  lambda p, f: predict_s({"model": "sharded_ps", "params": p}, **f),
                  lower=(1e-9, 1e-6, 1e-6), upper=(10.0, 1e5, 1e5), log_params=(True, True, True),
                  starts=((a0, bw0, bw0), (a0 / 10, bw0 * 4, bw0 / 2), (a0 / 10, bw0 / 2, bw0 * 4)))
    rec = fit_largest_heldout([model], pts, x_name="message_bytes")
    if rec["status"] == "ok":
        _label_bottlenecks(rec)
    return {"sharded": rec}


def _label_bottlenecks(rec: dict[str, Any]) -> None:
    """Which link binds at each point; a link that binds nowhere is only bounded below by the data."""
    p = rec["params"]
    bound = set()
    for pt in rec["points"]["train"] + rec["points"]["heldout"]:
        worker_s = 2 * pt["x"] / (p["worker_GBps"] * 1e9)
        server_s = 2 * pt["workers"] * pt["x"] / (pt["servers"] * p["server_GBps"] * 1e9)
        pt["bound_by"] = "worker" if worker_s >= server_s else "server"
        bound.add(pt["bound_by"]) if pt in rec["points"]["train"] else None
    rec["unconstrained"] = [f"{link}_GBps" for link in ("worker", "server") if link not in bound]
    if rec["unconstrained"]:
        rec["note"] = (f"no training point is bound by {', '.join(rec['unconstrained'])}: the value is a lower "
                       "bound, not a measurement (add points with fewer workers per server)")


def _overlap_model() -> Model:
    return Model("ddp_overlap", DDP_FORMULA, ("overlap_fraction",),
                 lambda p, f: f["compute_s"] + (1 - p["overlap_fraction"]) * f["allreduce_s"],
                 lower=(-1.0,), upper=(1.0,), log_params=(False,), starts=((0.5,), (0.0,)))


def fit_ddp(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{"by_world": {"<n>": {"overlap_fraction_measured": {...}, "fit": fit}}, "pooled": fit}."""
    items = []
    for i, r in usable(rows, ["ddp_step"]):
        ex = r.get("extra") or {}
        comp, ar = ex.get("compute_s"), ex.get("allreduce_s")
        if isinstance(comp, int | float) and isinstance(ar, int | float) and comp > 0 and ar > 0:
            items.append((i, r, float(comp), float(ar), ex.get("overlap_fraction")))
    if not items:
        return {"by_world": {}, "pooled": insufficient("no usable ddp_step rows with extra.compute_s and "
                                                       "extra.allreduce_s (oversubscribed rows excluded)")}
    by_world: dict[str, Any] = {}
    for w in sorted({int(it[1].get("world_size", 1)) for it in items}):
        sub = [it for it in items if int(it[1].get("world_size", 1)) == w]
        fr = np.array([it[4] for it in sub if isinstance(it[4], int | float)], dtype=float)
        measured = ({"median": float(np.median(fr)), "p25": float(np.percentile(fr, 25)),
                     "p75": float(np.percentile(fr, 75)), "n": len(fr)} if len(fr) else None)
        by_world[str(w)] = {"overlap_fraction_measured": measured, "fit": _fit(sub, {"world_size": w})}
    return {"by_world": by_world, "pooled": _fit(items, {"world_sizes": sorted(by_world, key=int)})}


def _fit(items: list[tuple[int, dict[str, Any], float, float, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    rows = [it[1] for it in items]
    comp = np.array([it[2] for it in items])
    ar = np.array([it[3] for it in items])
    grad = np.array([num(r, "grad_bytes", 0.0) or float(r.get("bytes") or 0.0) for r in rows])
    by_grad = bool(np.all(grad > 0))
    pts = Points(feats={"compute_s": comp, "allreduce_s": ar},
                 y=np.array([float(r["median_s"]) for r in rows]), x=grad if by_grad else comp + ar,
                 rows=[[it[0]] for it in items],
                 extra=[{"world_size": int(r.get("world_size", 1)), "compute_s": float(c), "allreduce_s": float(a)}
                        for r, c, a in zip(rows, comp, ar, strict=True)])
    x_name = "grad_bytes" if by_grad else "compute_s + allreduce_s"
    return fit_largest_heldout([_overlap_model()], pts, x_name=x_name, meta=meta)
