"""Shared fitting machinery: row selection, held-out split, weighted least squares with standard errors,
model selection, MAPE, and the fit record every fit in the profile uses (docs/profile-schema.md).

Fits are done in log space (residual = log predicted - log measured), so a 10 us point and a 10 s point
weigh the same: a relative error, which is what MAPE then reports. The loss is soft-L1 with a 10% scale,
so a point disturbed by a neighbour process on a shared machine does not drag the whole curve.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import least_squares

Features = dict[str, np.ndarray]
Predict = Callable[[dict[str, float], Features], np.ndarray]
SELECTION_RULE = ("lowest score on the training points: the mean of the cross-validated MAPE (leave-one-out, or "
                  "8-fold above 24 points) and the extrapolation MAPE (refit without the largest quarter of the "
                  "training points by x, or fewer where the rest would be too few to fit the candidate, at least "
                  "one, predict them); a candidate too large to be fitted without its largest point "
                  "is not chosen when others can be; without any such candidate, the cross-validated MAPE alone; "
                  "a point's error counted at most 100%; "
                  "a model with more parameters must beat the simpler choice by 5% of its score; a two-tier "
                  "candidate whose rate beyond the cache beats its rate within it is not a candidate; "
                  "held-out points are never used")
CV_MARGIN = 0.95
CV_CAP = 1.0  # a fold's error counts at most 100%: one exploding refit does not decide the choice alone
LOSS, LOSS_SCALE = "soft_l1", 0.1
NETWORK_BENCHES = frozenset({"all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all",
                             "ps_push_pull", "ddp_step"})


@dataclass(frozen=True)
class Model:
    """A physically shaped model: public parameter names (units in names), bounds and starting points.

    Positive parameters spanning decades are fitted as log10 (`log_params`), which also keeps them > 0.
    `fixed` parameters are reported with the fit but not fitted (e.g. a cache size from the environment).
    """

    name: str
    formula: str
    params: tuple[str, ...]
    predict: Predict
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    starts: tuple[tuple[float, ...], ...]
    log_params: tuple[bool, ...]
    fixed: dict[str, float] = field(default_factory=dict)
    label: str = ""  # the candidate's name in `selection` when two candidates share a model (name)
    # weight of a residual where the measurement is slower than the model (1: symmetric). Below 1 for
    # benches whose disturbances only ever add time (see calibration/fit/compute.py)
    slow_weight: float = 1.0
    # (fast, slow): two rates of which the first must not be the slower (a cache tier and the memory beyond it);
    # a fit that inverts them has not resolved the tiers and is not a candidate
    ordered: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        return self.label or self.name

    @property
    def min_train(self) -> int:
        return len(self.params) + 1


@dataclass(frozen=True)
class Outcome:
    params: dict[str, float]
    stderr: dict[str, float | None]
    n: int
    at_bound: list[str]
    corr: dict[str, Any] | None = None  # the record's "corr" (see `correlation`); None: not determined


def usable(rows: Sequence[dict[str, Any]], benches: Iterable[str]) -> list[tuple[int, dict[str, Any]]]:
    """(index, row) of status-ok rows of these benches with a positive median. Network benches also drop
    oversubscribed rows (more ranks than cores measures the scheduler, not the network)."""
    wanted = set(benches)
    out = []
    for i, r in enumerate(rows):
        med = r.get("median_s")
        if r.get("bench") not in wanted or r.get("status") != "ok" or not _positive(med):
            continue
        if r["bench"] in NETWORK_BENCHES and r.get("oversubscribed"):
            continue
        out.append((i, r))
    return out


def _positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def num(row: dict[str, Any], key: str, default: float | None = None) -> float | None:
    """A numeric param (row["params"][key]), or `default` when absent or not numeric."""
    v = (row.get("params") or {}).get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else default


def mape_pct(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    if len(measured) == 0:
        return None
    return float(np.mean(np.abs(np.asarray(predicted) - measured) / measured) * 100.0)


def insufficient(reason: str, **info: Any) -> dict[str, Any]:
    return {"status": "insufficient_data", "reason": reason, **info}


def split_largest(x: np.ndarray, min_train: int, frac: float = 0.25, min_heldout: int = 2,
                  x_name: str = "x") -> tuple[np.ndarray, np.ndarray, str]:
    """Hold out the largest points: the top `frac` by x (at least `min_heldout`), ties broken by order.

    With too few points to hold any out and still fit, everything trains and the rule says so.
    """
    n = len(x)
    order = np.argsort(x, kind="stable")
    n_held = max(min_heldout, math.ceil(frac * n))
    if n - n_held < min_train:
        return order, order[:0], f"none held out: {n} points are too few to hold {n_held} out and fit"
    return (order[: n - n_held], order[n - n_held:],
            f"the largest {n_held} of {n} points by {x_name} (top {frac:.0%}, at least {min_heldout})")


def fit_model(model: Model, feats: Features, y: np.ndarray) -> Outcome | None:
    """Robust least squares on log y from several starts; standard errors from the covariance
    (J^T J)^-1 * s^2 with s^2 = 2*cost/(n - k) (J as least_squares returns it for the loss), mapped to
    public units by the delta method for log10 parameters; the same covariance's correlations (`correlation`)."""
    log_mask = np.array(model.log_params)

    def public(q: np.ndarray) -> dict[str, float]:
        vals = np.where(log_mask, 10.0 ** q, q)
        return {**model.fixed, **dict(zip(model.params, map(float, vals), strict=True))}

    def internal(v: Sequence[float]) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        return np.where(log_mask, np.log10(np.maximum(v, 1e-300)), v)

    lo, hi = internal(model.lower), internal(model.upper)
    log_y = np.log(y)

    def resid(q: np.ndarray) -> np.ndarray:
        pred = np.asarray(model.predict(public(q), feats), dtype=float)
        r = np.log(np.maximum(pred, 1e-300)) - log_y
        return r if model.slow_weight == 1.0 else np.where(r < 0, model.slow_weight * r, r)

    best = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for start in model.starts:
            q0 = np.clip(internal(start), lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
            try:
                res = least_squares(resid, q0, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=2000,
                                    loss=LOSS, f_scale=LOSS_SCALE)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.all(np.isfinite(res.fun)) and (best is None or res.cost < best.cost):
                best = res
    if best is None:
        return None
    n, k = len(y), len(model.params)
    rss = float(2 * best.cost)
    cov = _covariance(best.jac, rss, n, k)
    se_internal = _stderr(cov, k)
    pub = public(best.x)
    tol = 1e-6 * (hi - lo)
    at_bound = [name for j, name in enumerate(model.params)
                if best.x[j] <= lo[j] + tol[j] or best.x[j] >= hi[j] - tol[j]]
    stderr: dict[str, float | None] = {}
    for j, name in enumerate(model.params):
        s = se_internal[j]
        if s is None or name in at_bound:
            stderr[name] = None
        else:
            stderr[name] = float(pub[name] * math.log(10) * s) if log_mask[j] else float(s)
    corr = correlation(cov, best.jac, model, [name for name in model.params if stderr[name] is not None])
    return Outcome(params=pub, stderr=stderr, n=n, at_bound=at_bound, corr=corr)


def _covariance(jac: np.ndarray, rss: float, n: int, k: int) -> np.ndarray | None:
    """Covariance of the fitted (internal) parameters, (J^T J)^+ * rss / (n - k); None without residual
    degrees of freedom."""
    if n <= k:
        return None
    try:
        return np.linalg.pinv(jac.T @ jac) * (rss / (n - k))
    except np.linalg.LinAlgError:
        return None


def _stderr(cov: np.ndarray | None, k: int) -> list[float | None]:
    if cov is None:
        return [None] * k
    return [float(math.sqrt(d)) if math.isfinite(d) and d >= 0 else None for d in np.diag(cov)]


def correlation(cov: np.ndarray | None, jac: np.ndarray, model: Model, names: Sequence[str]) -> dict[str, Any] | None:
    """The fit record's "corr": correlations of the estimates of `names` (the parameters with a standard error)
    as fitted, log10 of those in "log10_params" (docs/profile-schema.md), r_ij = C_ij / sqrt(C_ii C_jj) of the
    covariance the standard errors come from. None (absent) with fewer than two such parameters, a Jacobian
    of less than full column rank (the covariance is then not determined) or a non-finite or zero variance."""
    if cov is None or len(names) < 2 or np.linalg.matrix_rank(jac) < len(model.params):
        return None
    idx = [model.params.index(name) for name in names]
    sub = cov[np.ix_(idx, idx)]
    var = np.diag(sub)
    if not (np.all(np.isfinite(sub)) and np.all(var > 0)):
        return None
    r = np.clip(sub / np.sqrt(np.outer(var, var)), -1.0, 1.0)
    r = 0.5 * (r + r.T)
    np.fill_diagonal(r, 1.0)
    logs = [name for name in names if model.log_params[model.params.index(name)]]
    return {"params": list(names), "log10_params": logs, "matrix": [[float(v) for v in row] for row in r]}


def cv_mape_pct(model: Model, feats: Features, y: np.ndarray, full: Outcome) -> float | None:
    """Cross-validated MAPE: refit without each fold (starting from the full fit), predict the fold."""
    n, k = len(y), len(model.params)
    idx = np.arange(n)
    folds = [idx[j::8] for j in range(8)] if n > 24 else [idx[j:j + 1] for j in range(n)]
    if n - max(len(f) for f in folds) < k:
        return None
    warm = replace(model, starts=(tuple(full.params[name] for name in model.params),))
    errs = []
    for fold in folds:
        keep = np.setdiff1d(idx, fold)
        out = fit_model(warm, take(feats, keep), y[keep])
        if out is None:
            return None
        pred = np.asarray(model.predict(out.params, take(feats, fold)), dtype=float)
        errs.extend(np.minimum(np.abs(pred - y[fold]) / y[fold], CV_CAP))
    return float(np.mean(errs) * 100)


def extrapolation_mape_pct(model: Model, feats: Features, y: np.ndarray, x: np.ndarray,
                           full: Outcome) -> float | None:
    """The held-out test in miniature, inside the training points: refit without the largest quarter of
    them by x (fewer where the rest would be too few for this model; at least one), predict those. None when
    the model cannot be fitted even without only the largest point."""
    n = len(y)
    k = max(1, min(math.ceil(0.25 * n), n - model.min_train))  # fewer when the quarter leaves too few to fit
    order = np.argsort(x, kind="stable")
    keep, top = order[: n - k], order[n - k:]
    if len(keep) < model.min_train:
        return None
    warm = replace(model, starts=(*model.starts, tuple(full.params[name] for name in model.params)))
    out = fit_model(warm, take(feats, keep), y[keep])
    if out is None:
        return None
    pred = np.asarray(model.predict(out.params, take(feats, top)), dtype=float)
    return float(np.mean(np.minimum(np.abs(pred - y[top]) / y[top], CV_CAP)) * 100)


def take(feats: Features, idx: np.ndarray) -> Features:
    return {k: v[idx] for k, v in feats.items()}


@dataclass
class Points:
    """What a fit sees: features per point, measured y, x for plotting and splitting, source rows."""

    feats: Features
    y: np.ndarray
    x: np.ndarray
    rows: list[list[int]]
    extra: list[dict[str, Any]]


def fit_record(models: Sequence[Model], pts: Points, train: np.ndarray, held: np.ndarray, rule: str, *,
               x_name: str, y_name: str = "median_s", y_kind: str = "time_s",
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit each candidate on the training points, keep the best by cross-validation (SELECTION_RULE),
    and report it with its points."""
    n_train = len(train)
    candidates = [m for m in models if n_train >= m.min_train]
    if not candidates:
        need = min(m.min_train for m in models)
        return insufficient(f"{n_train} training points; the simplest model needs {need}",
                            n_points=len(pts.y), **(meta or {}))
    tried: dict[str, dict[str, Any]] = {}
    fitted: list[tuple[Model, Outcome, float | None]] = []
    scores: list[tuple[float | None, float | None]] = []
    feats_train, y_train, x_train = take(pts.feats, train), pts.y[train], pts.x[train]
    for m in sorted(candidates, key=lambda m: len(m.params)):
        out = fit_model(m, feats_train, y_train)
        if out is None:
            tried[m.key] = {"status": "failed"}
            continue
        if m.ordered and out.params[m.ordered[1]] > out.params[m.ordered[0]]:
            fast, slow = m.ordered
            tried[m.key] = {"status": "inverted", "reason": f"inverted, {slow} {out.params[slow]:.3g} > {fast} "
                                                             f"{out.params[fast]:.3g}: the tiers are not resolved"}
            continue
        several = len(candidates) > 1
        cv = cv_mape_pct(m, feats_train, y_train, out) if several else None
        xcv = extrapolation_mape_pct(m, feats_train, y_train, x_train, out) if several else None
        pred = np.asarray(m.predict(out.params, pts.feats), dtype=float)
        tried[m.key] = {"cv_mape_pct": cv, "extrapolation_mape_pct": xcv,
                        "mape_train_pct": mape_pct(pred[train], pts.y[train]),
                        "mape_heldout_pct": mape_pct(pred[held], pts.y[held])}
        fitted.append((m, out, cv))
        scores.append((cv, xcv))
    if not fitted:
        inverted = [f"{key}: {t['reason']}" for key, t in tried.items() if t.get("status") == "inverted"]
        if inverted and len(inverted) == len(tried):  # a caller may then fit a form without tiers
            return {"status": "failed", "reason": "; ".join(inverted), "tiers_inverted": True, **(meta or {})}
        return {"status": "failed", "reason": "the optimiser did not converge for any model", **(meta or {})}
    if any(cv is not None and xcv is not None for cv, xcv in scores):
        # a candidate that cannot be fitted without the largest quarter of the training points is not
        # chosen over ones that can (it has too many parameters for these points to extrapolate from)
        fitted = [(m, out, 0.5 * (cv + xcv) if cv is not None and xcv is not None else None)
                  for (m, out, _), (cv, xcv) in zip(fitted, scores, strict=True)]
    for (m, _, score), _s in zip(fitted, scores, strict=True):
        tried[m.key]["score_pct"] = score
    best = next((f for f in fitted if f[2] is not None), fitted[0])
    for cand in fitted:  # ordered by parameter count: more parameters must clearly pay
        if cand[2] is not None and (best[2] is None or cand[2] < CV_MARGIN * best[2]):
            best = cand
    model, out, _ = best
    pred = np.asarray(model.predict(out.params, pts.feats), dtype=float)

    def point_list(idx: np.ndarray) -> list[dict[str, Any]]:
        return [{"x": float(pts.x[i]), "measured": float(pts.y[i]), "predicted": float(pred[i]),
                 "rows": pts.rows[i], **pts.extra[i]} for i in idx]

    return {
        "status": "ok", **(meta or {}), "model": model.name, "candidate": model.key, "formula": model.formula,
        "params": out.params, "stderr": out.stderr, "params_at_bound": out.at_bound,
        **({"corr": out.corr} if out.corr is not None else {}),
        "n_train": n_train, "n_heldout": len(held),
        "mape_train_pct": mape_pct(pred[train], pts.y[train]),
        "mape_heldout_pct": mape_pct(pred[held], pts.y[held]),
        "heldout_rule": rule, "x_name": x_name, "y_name": y_name, "y_kind": y_kind,
        "selection": {"rule": SELECTION_RULE, "candidates": tried},
        "points": {"train": point_list(train), "heldout": point_list(held)},
    }


def fit_largest_heldout(models: Sequence[Model], pts: Points, *, x_name: str, **kw: Any) -> dict[str, Any]:
    """The usual case: hold out the largest points by x, fit the rest."""
    if len(pts.y) == 0:
        return insufficient("no usable rows (status ok, positive median)", n_points=0, **kw.get("meta", {}))
    need = min(m.min_train for m in models)
    train, held, rule = split_largest(pts.x, need, x_name=x_name)
    return fit_record(models, pts, train, held, rule, x_name=x_name, **kw)
