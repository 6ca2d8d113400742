"""Fits of the quality calibration: degradation curves (error vs bits or sparsity) with uncertainty across folds,
and the small LM's scaling law L(N, D). The curve formulas are `simulator.quality_curves.error_at` (one place)."""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, minimize
from scipy.special import huber, logsumexp

from simulator.quality_curves import CURVE_MODELS, error_at, to_error, to_metric

FORMULAS = {
    "exp_bits": "e(P) = e_dense + C * exp(-P / gamma_bits)  (Kumar et al. 2024, eq. 2 shape)",
    "logistic_bits": "e(P) = e_dense + (e_max - e_dense) / (1 + exp((P - bits_mid) / width_bits))",
    "rosenfeld_density": "e(d) = e_dense * ((d^2 + p^2 (e_max/e_dense)^(2/gamma)) / (d^2 + p^2))^(gamma/2), "
                         "d = 1 - sparsity  (Rosenfeld et al. 2021, eq. 1)",
    "rosenfeld_limit": "e(d) = e_dense * (e_max/e_dense)^(p^2 / (d^2 + p^2)), d = 1 - sparsity  (Rosenfeld et al. "
                       "2021, eq. 1 as gamma -> infinity)",
}
CANDIDATES = {"bits": ("exp_bits", "logistic_bits"), "sparsity": ("rosenfeld_limit", "rosenfeld_density")}
HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, App. D.2
# the start grid of (a, b, e, alpha, beta), A = e^a, B = e^b, E = e^e (Hoffmann et al. 2022 App. D.2 used a grid too)
GRID = ((0.0, 2.5, 5.0, 7.5, 10.0), (0.0, 2.5, 5.0, 7.5, 10.0), (-1.0, -0.5, 0.0, 0.5, 1.0), (0.1, 0.3, 0.6, 1.0, 1.5),
        (0.1, 0.3, 0.6, 1.0, 1.5))
N_STARTS = 8


def _free(model: str) -> tuple[str, ...]:
    return tuple(n for n in CURVE_MODELS[model] if n != "e_dense")


def _bounds(model: str, e0: float, e_cap: float) -> tuple[list[float], list[float]]:
    if model == "exp_bits":
        return [0.0, 0.05], [100.0, 20.0]
    if model == "logistic_bits":
        return [e0, 0.0, 0.05], [e_cap, 16.0, 8.0]
    if model == "rosenfeld_limit":
        return [e0 * 1.0001, 1e-4], [e_cap, 1.0]
    return [e0 * 1.0001, 1e-4, 0.1], [e_cap, 1.0, 20.0]


def _starts(model: str, x: np.ndarray, e: np.ndarray, e0: float, e_cap: float) -> list[list[float]]:
    top = float(np.clip(np.nanmax(e), e0 * 1.01 + 1e-6, e_cap))
    if model == "exp_bits":
        return [[max(top - e0, 1e-6) * math.exp(float(x.min()) / g), g] for g in (0.5, 1.0, 2.0)]
    if model == "logistic_bits":
        return [[top, m, w] for m in (1.5, 2.5, 3.5) for w in (0.3, 1.0)]
    if model == "rosenfeld_limit":
        return [[top, p] for p in (0.05, 0.2, 0.5)]
    return [[top, p, g] for p in (0.05, 0.2, 0.5) for g in (1.0, 3.0)]


def _at_bound(model: str, params: dict[str, float], e_cap: float) -> list[str]:
    """Free parameters that ended on a bound of the fit (their stderr is null: not estimable)."""
    lo, hi = _bounds(model, params["e_dense"], e_cap)
    return [n for n, a, b in zip(_free(model), lo, hi, strict=True)
            if min(abs(params[n] - a), abs(params[n] - b)) <= 1e-6 * max(1.0, abs(a), abs(b))]


def fit_one(model: str, x: np.ndarray, e: np.ndarray, e0: float, e_cap: float,
            sigma: np.ndarray | None = None, start: dict[str, float] | None = None
            ) -> tuple[dict[str, float], dict[str, float | None]] | None:
    """Weighted least squares (scipy curve_fit, trust-region reflective within bounds) from a few starts; the best
    by weighted residuals (`start`: one start only, e.g. the full fit for a refit). None when no start converges or
    there are fewer points than free parameters."""
    names = _free(model)
    if len(x) < len(names):
        return None
    e0 = max(e0, 1e-6)
    lo, hi = _bounds(model, e0, e_cap)

    def f(xx: np.ndarray, *theta: float) -> np.ndarray:
        return error_at(model, {"e_dense": e0, **dict(zip(names, theta, strict=True))}, xx)

    best = None
    starts = [[start[n] for n in names]] if start else _starts(model, x, e, e0, e_cap)
    for p0 in starts:
        p0 = list(np.clip(p0, np.nextafter(lo, np.inf), np.nextafter(hi, -np.inf)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                theta, cov = curve_fit(f, x, e, p0=p0, sigma=sigma, bounds=(lo, hi), max_nfev=400)
        except (RuntimeError, ValueError):
            continue
        w = 1.0 if sigma is None else sigma
        cost = float(np.sum(((f(x, *theta) - e) / w) ** 2))
        if math.isfinite(cost) and (best is None or cost < best[0]):
            best = (cost, theta, cov)
    if best is None:
        return None
    _, theta, cov = best
    params = {"e_dense": e0, **{n: float(v) for n, v in zip(names, theta, strict=True)}}
    bound = _at_bound(model, params, e_cap)
    cov = np.where(np.isin(np.arange(len(names)), [names.index(n) for n in bound])[:, None], np.nan, cov)
    diag = np.diag(cov) if np.all(np.isfinite(cov)) else np.full(len(names), np.nan)
    stderr: dict[str, float | None] = {n: (float(math.sqrt(d)) if np.isfinite(d) and d >= 0 else None)
                                       for n, d in zip(names, diag, strict=True)}
    return params, stderr


def fit_curve(x: np.ndarray, values: np.ndarray, dense: np.ndarray, *, family: str, y_name: str,
              y_transform: str, e_cap: float) -> dict[str, Any]:
    """One degradation curve. `values[i, f]`: the metric at x[i] on fold f (NaN where not measured); `dense[f]`:
    the uncompressed model's metric on fold f. Fitted on the fold means (sigma: their standard error, floored), a
    leave-one-point-out error per candidate decides the model, and each fold is fitted alone for the band."""
    x = np.asarray(x, dtype=float)
    e_all = to_error(values, y_transform)
    e0_folds = to_error(dense, y_transform)
    n = np.sum(np.isfinite(e_all), axis=1)
    keep = n > 0
    x, e_all, n = x[keep], e_all[keep], n[keep]
    mean = np.nanmean(e_all, axis=1)
    std = np.array([np.nanstd(r, ddof=1) if k > 1 else 0.0 for r, k in zip(e_all, n, strict=True)])
    se = std / np.sqrt(n)
    sigma = np.sqrt(se ** 2 + max(1e-4, 0.25 * float(np.median(se))) ** 2)
    e0 = float(np.nanmean(e0_folds))
    points = [{"x": float(a), "mean": float(to_metric(m, y_transform)), "std": float(s), "n": int(k)}
              for a, m, s, k in zip(x, mean, std, n, strict=True)]
    base = {"family": family, "y_name": y_name, "y_transform": y_transform, "points": points,
            "dense": {"mean": float(np.nanmean(dense)), "std": float(np.nanstd(dense, ddof=1)) if len(dense) > 1
                      else 0.0, "n": int(np.sum(np.isfinite(dense)))},
            "points_provenance": "measured", "provenance": "fitted"}
    candidates: dict[str, dict[str, Any]] = {}
    fitted: dict[str, tuple[dict[str, float], dict[str, float | None]]] = {}
    for model in CANDIDATES[family]:
        if len(x) < len(_free(model)) + 1:
            candidates[model] = {"skipped": f"{len(x)} points; needs {len(_free(model)) + 1}"}
            continue
        res = fit_one(model, x, mean, e0, e_cap, sigma)
        if res is None:
            candidates[model] = {"skipped": "no start converged"}
            continue
        errs = []
        for i in range(len(x)):
            m = np.arange(len(x)) != i
            r = fit_one(model, x[m], mean[m], e0, e_cap, sigma[m], start=res[0])
            if r is not None:
                errs.append(abs(float(error_at(model, r[0], x[i])) - float(mean[i])))  # |Δ| of e = |Δ| of metric
        fitted[model] = res
        candidates[model] = {"loo_mae": float(np.mean(errs)) if errs else None,
                             "loo_max_abs": float(np.max(errs)) if errs else None, "loo_points": len(errs)}
    scored = [m for m in fitted if candidates[m].get("loo_mae") is not None]
    if not scored:
        reason = "; ".join(f"{m}: {c.get('skipped', 'no leave-one-out refit converged')}"
                           for m, c in candidates.items())
        return {**base, "status": "insufficient_data", "reason": reason or "no candidate", "candidates": candidates}
    # fewest parameters first; a larger model is kept only if it cuts the held-out error by 5% (as calibration/fit)
    model = scored[0]
    for m in scored[1:]:
        if candidates[m]["loo_mae"] < 0.95 * candidates[model]["loo_mae"]:
            model = m
    params, stderr = fitted[model]
    fold_params = []
    for f in range(e_all.shape[1]):
        ok = np.isfinite(e_all[:, f])
        if ok.sum() >= len(_free(model)) and np.isfinite(e0_folds[f]):
            r = fit_one(model, x[ok], e_all[ok, f], float(e0_folds[f]), e_cap, start=params)
            if r is not None:
                fold_params.append(r[0])
    return {**base, "status": "ok", "model": model, "formula": FORMULAS[model], "params": params,
            "stderr": stderr, "fixed": ["e_dense"],
            "params_at_bound": _at_bound(model, params, e_cap), "fold_params": fold_params,
            "heldout": {"rule": "leave one point out: refit without it, predict it (metric units)",
                        "loo_mae": candidates[model]["loo_mae"], "loo_max_abs": candidates[model]["loo_max_abs"]},
            "selection": {"rule": "lowest leave-one-point-out mean absolute error; a candidate with more parameters "
                                  "must cut it by 5%", "candidates": candidates}}


# ---------------------------------------------------------------- the scaling law


def _law_pred(theta: np.ndarray, logn: np.ndarray, logd: np.ndarray) -> np.ndarray:
    # Hoffmann et al. 2022 App. D.2: log L = LSE(a - alpha log N, b - beta log D, e); A = e^a, B = e^b, E = e^e
    a, b, e, alpha, beta = theta
    return logsumexp(np.stack([a - alpha * logn, b - beta * logd, np.full_like(logn, e)]), axis=0)


def _law_objective(theta: np.ndarray, logn: np.ndarray, logd: np.ndarray, logl: np.ndarray
                   ) -> tuple[float, np.ndarray]:
    """Sum of Huber(log L_pred - log L) and its gradient (analytic: the log-sum-exp's softmax weights)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * logn, b - beta * logd, np.full_like(logn, e)])
    pred = logsumexp(terms, axis=0)
    w = np.exp(terms - pred)
    r = pred - logl
    psi = np.clip(r, -HUBER_DELTA, HUBER_DELTA)  # Huber's derivative
    grad = np.array([np.sum(psi * w[0]), np.sum(psi * w[1]), np.sum(psi * w[2]), -np.sum(psi * w[0] * logn),
                     -np.sum(psi * w[1] * logd)])
    return float(np.sum(huber(HUBER_DELTA, r))), grad


def _law_fit(logn: np.ndarray, logd: np.ndarray, logl: np.ndarray, starts: list[np.ndarray]) -> np.ndarray:
    best = None
    for s in starts:
        r = minimize(_law_objective, s, args=(logn, logd, logl), method="BFGS", jac=True)
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    return best.x


def _law_params(theta: np.ndarray) -> dict[str, float]:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": alpha, "beta": beta}


def fit_scaling_law(params: np.ndarray, tokens: np.ndarray, loss: np.ndarray, *, n_boot: int = 100,
                    seed: int = 0) -> dict[str, Any]:
    """L(N, D) = E + A/N^alpha + B/D^beta by Huber loss on log L from a grid of starts (Hoffmann et al. 2022,
    App. D.2: the objective is evaluated on a 5^5 grid and BFGS, L-BFGS's full-memory form for 5 parameters, starts
    from its 8 best points), P10/P90 from a bootstrap over the points (Besiroglu et al. 2024), leave-one-out MAPE."""
    n, d, l_ = (np.asarray(v, dtype=float) for v in (params, tokens, loss))
    if len(n) < 6:
        return {"status": "insufficient_data", "reason": f"{len(n)} runs; the 5-parameter law needs at least 6"}
    logn, logd, logl = np.log(n), np.log(d), np.log(l_)
    grid = np.array(list(itertools.product(*GRID)))
    terms = np.stack([grid[:, :1] - grid[:, 3:4] * logn, grid[:, 1:2] - grid[:, 4:5] * logd,
                      np.broadcast_to(grid[:, 2:3], (len(grid), len(logn)))], axis=1)  # (grid, 3, points)
    scores = huber(HUBER_DELTA, logsumexp(terms, axis=1) - logl).sum(axis=1)  # _law_objective at every grid point
    starts = list(grid[np.argsort(scores)[:N_STARTS]])  # the best grid points start BFGS
    theta = _law_fit(logn, logd, logl, starts)
    near = [theta, starts[0]]
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(n), len(n))
        boot.append(_law_fit(logn[idx], logd[idx], logl[idx], near))
    boot_p = [_law_params(t) for t in boot]
    errs = []
    for i in range(len(n)):
        m = np.arange(len(n)) != i
        t = _law_fit(logn[m], logd[m], logl[m], near)
        errs.append(abs(math.exp(float(_law_pred(t, logn[i:i + 1], logd[i:i + 1])[0])) - l_[i]) / l_[i] * 100)
    names = ("E", "A", "B", "alpha", "beta")
    return {"status": "ok", "formula": "L = E + A / N^alpha + B / D^beta (nats per character; N = non-embedding "
                                       "parameters, D = training characters)",
            "params": _law_params(theta),
            "p10": {k: float(np.percentile([p[k] for p in boot_p], 10)) for k in names},
            "p90": {k: float(np.percentile([p[k] for p in boot_p], 90)) for k in names},
            "n_bootstrap": n_boot, "loo_mape_pct": float(np.mean(errs)),
            "points": [{"params": float(a), "tokens": float(b), "loss": float(c)} for a, b, c in zip(n, d, l_,
                                                                                                   strict=True)],
            "method": "Huber (delta 1e-3) on log L, BFGS from the 8 best points of a 5^5 grid (Hoffmann et al. "
                      "2022 App. D.2)",
            "provenance": "fitted", "points_provenance": "measured"}
