"""The data-order fit: from the measured runs (calibration/quality/data_order_worker.py), the extra optimizer
updates that sequential (non-shuffled) shards cost over random (shuffled) ones, per way of synchronising.

Each run's updates to the target loss are read off its held-out evaluations (linear interpolation between the two
evaluations around the first that reaches the target). A sequential run is compared with the random run of the
same repeat (same seed, same start), so each repeat gives one ratio r = U_sequential / U_random and one extra
fraction of updates r - 1. Per number of workers P, the extras' mean, standard deviation and P10-P90 over the
repeats (`extra_by_workers`: what the simulator interpolates). Beside it, the assumed form's one constant
(U_sequential / U_random = 1 + penalty·(1 - 1/P), least squares over every repeat and P, `form_penalty`), and the
trend of the extra in ln P (`depends_on_workers`: a slope more than two standard errors from zero), so a dependence
on P that the form does not have shows.

Synchronous all-reduce and the synchronous parameter server apply the same averaged gradient (same seed: the same
updates), so their runs are one measurement: the parameter server's are kept as a check (`ps_matches_allreduce`).
Asynchronous runs also give the staleness cost κ of U_async = U_sync·(1 + κ·s) at the measured mean staleness s
(Lian et al. 2015's form, the simulator's async_kappa), counting an asynchronous update as 1/P of a synchronous one
(it carries one worker's batch).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

KINDS = {"allreduce": "sync", "ps": "sync", "async": "async"}  # how the simulator's form treats each way
FORM = "U_sequential / U_random = 1 + penalty * (1 - 1/P)  (simulator/training/sync.py)"


def updates_to_target(evals: list[list[float]] | list[tuple[float, float, float]], target: float
                      ) -> tuple[float, bool]:
    """(updates at which the held-out loss first reaches `target`, reached?); not reached: the last evaluation's
    updates (a lower bound)."""
    prev: tuple[float, float] | None = None
    for e in evals:
        u, loss = float(e[0]), float(e[1])
        if loss <= target:
            if prev is None or prev[1] <= loss:
                return u, True
            frac = (prev[1] - target) / (prev[1] - loss)  # between the two evaluations, linearly
            return prev[0] + frac * (u - prev[0]), True
        prev = (u, loss)
    return (float(evals[-1][0]) if evals else float("nan")), False


def _stats(values: list[float]) -> dict[str, float | int | None]:
    v = np.asarray(values, dtype=float)
    if not v.size:
        return {"n": 0, "mean": None, "std": None, "p10": None, "p90": None}
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else None,
            "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90))}


def _fit_kind(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per P, the extra updates r - 1 over the repeats; the (1 - 1/P) form's penalty by least squares; the trend of
    the per-repeat extra in ln P."""
    workers = np.array([r["workers"] for r in rows], dtype=float)
    extra = np.array([r["ratio"] - 1.0 for r in rows])
    x = 1.0 - 1.0 / workers
    penalty = float(x @ extra / (x @ x))
    resid = extra - penalty * x
    n = len(rows)
    by_p: dict[int, list[float]] = defaultdict(list)
    for r, e in zip(rows, extra, strict=True):
        by_p[int(r["workers"])].append(float(e))
    trend = None
    if len(by_p) > 1 and n > 2:
        lp = np.log(workers)
        slope, icpt = np.polyfit(lp, extra, 1)
        res = extra - (slope * lp + icpt)
        slope_se = float(np.sqrt(res @ res / (n - 2) / ((lp - lp.mean()) @ (lp - lp.mean()))))
        trend = {"slope_per_ln_workers": float(slope), "stderr": slope_se,
                 "depends_on_workers": bool(abs(slope) > 2.0 * slope_se)}
    return {"extra_by_workers": {str(p): _stats(v) for p, v in sorted(by_p.items())},
            "form_penalty": penalty, "form_stderr": float(np.sqrt(resid @ resid / (n - 1) / (x @ x))) if n > 1 else None,
            "trend": trend, "censored": sum(1 for r in rows if r["censored"]),
            "ratios": [{"workers": r["workers"], "repeat": r["repeat"], "sync": r["sync"],
                        "ratio": round(r["ratio"], 4)} for r in rows]}


def fit_data_order(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The `data_order` section's fits from the run records (each: key, sync, sharding, repeat, workers, evals,
    target_loss, updates, wall_s, staleness_mean)."""
    u: dict[tuple[int, str, str, int], tuple[float, bool]] = {}
    walls: dict[tuple[int, str, str, int], float] = {}
    stale: dict[tuple[int, int], float] = {}
    for rec in records:
        k = (int(rec["workers"]), rec["sync"], rec["sharding"], int(rec["repeat"]))
        u[k] = updates_to_target(rec["evals"], float(rec["target_loss"]))
        walls[k] = float(rec["wall_s"]) / max(1, int(rec["updates"]))
        if rec["sync"] == "async":
            stale[(k[0], k[3])] = float(rec.get("staleness_mean") or 0.0)
    pairs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (p, sync, sharding, rep), (n_seq, ok_seq) in u.items():
        if sharding != "sequential" or (p, sync, "random", rep) not in u or p < 2:
            continue
        n_rand, ok_rand = u[(p, sync, "random", rep)]
        if sync == "ps" and (p, "allreduce", sharding, rep) in u:
            continue  # the same updates as all-reduce's: a check, not a second measurement
        pairs[KINDS[sync]].append({"workers": p, "repeat": rep, "sync": sync, "ratio": n_seq / n_rand,
                                   "censored": not (ok_seq and ok_rand)})
    fits = {kind: _fit_kind(rows) for kind, rows in pairs.items() if rows}
    checks = [abs(u[(p, "ps", s, r)][0] / u[(p, "allreduce", s, r)][0] - 1.0)
              for (p, sync, s, r) in u if sync == "ps" and (p, "allreduce", s, r) in u]
    kappas = []
    for (p, sync, sharding, rep), (n_async, ok) in u.items():
        sync_key = (p, "allreduce", "random", rep)
        if sync == "async" and sharding == "random" and ok and sync_key in u and stale.get((p, rep), 0) > 0:
            # an asynchronous update carries one worker's batch: 1/P of a synchronous update
            kappas.append(((n_async / p) / u[sync_key][0] - 1.0) / stale[(p, rep)])
    step_s = {f"{p}/{sync}": float(np.median([w for (pp, ss, _, _), w in walls.items() if pp == p and ss == sync]))
              for p, sync in sorted({(k[0], k[1]) for k in walls})}
    return {"form": FORM, "fits": fits,
            "ps_matches_allreduce": {"n": len(checks), "max_rel_diff": max(checks) if checks else None},
            "async_kappa": _stats(kappas), "seconds_per_update": step_s,
            "updates": [{"workers": p, "sync": s, "sharding": sh, "repeat": r, "updates_to_target": round(n, 2),
                         "reached": ok} for (p, s, sh, r), (n, ok) in sorted(u.items())]}
