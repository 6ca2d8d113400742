"""The profile's `quality` section: degradation curves of small models measured by `python -m calibration quality`.

A pure reader (stdlib + numpy): `parse_quality(section)` checks the JSON section and returns dataclasses;
`evaluate(curve, x)` gives a curve's value at given bits or sparsity with its band across folds. The curve
formulas live here once (`error_at`); the calibration fitter calls the same function, so the fit and the reader
cannot drift apart. Schema: docs/profile-schema.md, "Quality".

Every curve is fitted on an error-like quantity e (lower is better): e = 1 - metric for accuracy or macro-F1
(`y_transform` "one_minus"), e = the metric itself for the LM's loss in nats per character ("identity").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

CURVE_MODELS: dict[str, tuple[str, ...]] = {  # model -> its parameters (e_dense is the measured dense error, fixed)
    "exp_bits": ("e_dense", "C", "gamma_bits"),
    "logistic_bits": ("e_dense", "e_max", "bits_mid", "width_bits"),
    "rosenfeld_density": ("e_dense", "e_max", "p_density", "gamma"),
    "rosenfeld_limit": ("e_dense", "e_max", "p_density"),
}
CURVE_X = {"exp_bits": "bits", "logistic_bits": "bits", "rosenfeld_density": "sparsity", "rosenfeld_limit": "sparsity"}
Y_TRANSFORMS = ("one_minus", "identity")
MAX_CURVES = 2_000
MAX_POINTS = 1_000
MAX_FOLDS = 100
MAX_TEXT = 4_096


class QualitySectionError(ValueError):
    """The profile's quality section cannot be used; the message starts with its JSON path."""


def error_at(model: str, params: dict[str, float], x: Any) -> np.ndarray:
    """The error-like quantity e at bits (or sparsity) x, for one curve model; scalars or arrays."""
    x = np.asarray(x, dtype=float)
    e0 = params["e_dense"]
    if model == "exp_bits":
        # Kumar et al. 2024 ("Scaling Laws for Precision") eq. 2 at fixed N, D: delta_PTQ = C * exp(-P / gamma)
        return e0 + params["C"] * np.exp(-x / params["gamma_bits"])
    if model == "logistic_bits":
        # logistic in bits (Kumar et al. 2024 eq. 2's saturating alternative): e_max reached as P -> 0
        z = np.clip((x - params["bits_mid"]) / params["width_bits"], -60.0, 60.0)
        return e0 + (params["e_max"] - e0) / (1.0 + np.exp(z))
    if model == "rosenfeld_density":
        # Rosenfeld et al. 2021 ("On the Predictability of Pruning Across Scales") eq. 1, d = density = 1 - sparsity:
        # e(d) = e_np * |(d - j p (e_up/e_np)^(1/gamma)) / (d - j p)|^gamma, |.| of complex numbers written out
        d = 1.0 - x
        p, g = params["p_density"], params["gamma"]
        a2 = (p * (params["e_max"] / e0) ** (1.0 / g)) ** 2
        return e0 * ((d * d + a2) / (d * d + p * p)) ** (g / 2.0)
    if model == "rosenfeld_limit":
        # Rosenfeld et al. 2021 eq. 1 as gamma -> infinity: e(d) = e_np * (e_up/e_np)^(p^2 / (d^2 + p^2))
        d = 1.0 - x
        p = params["p_density"]
        return e0 * np.exp(np.log(params["e_max"] / e0) * p * p / (d * d + p * p))
    raise ValueError(f"unknown quality curve model {model!r}; expected one of {', '.join(CURVE_MODELS)}")


def to_metric(e: Any, y_transform: str) -> np.ndarray:
    """The metric (accuracy, macro-F1 or loss) from the error-like quantity."""
    e = np.asarray(e, dtype=float)
    return 1.0 - e if y_transform == "one_minus" else e


def to_error(y: Any, y_transform: str) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    return 1.0 - y if y_transform == "one_minus" else y


@dataclass(frozen=True)
class CurvePoint:
    x: float  # bits or sparsity
    mean: float  # the metric's mean across folds (accuracy, macro-F1, or loss in nats per character)
    std: float  # its standard deviation across folds
    n: int  # folds


@dataclass(frozen=True)
class QualityCurve:
    key: str  # "<model>/<family>/<method>/<oneshot|finetuned>/<metric>"
    model_name: str  # the small model, e.g. "digits_mlp", "char_lm"
    family: str  # "bits" | "sparsity"
    method: str  # "rtn", "qat", "l1_unstructured", "l2_rows"
    finetuned: bool
    y_name: str  # "accuracy", "f1_macro", "loss_nats"
    y_transform: str
    model: str  # one of CURVE_MODELS
    formula: str
    params: dict[str, float]
    stderr: dict[str, float | None]
    fold_params: tuple[dict[str, float], ...]  # the same model fitted to each fold alone
    points: tuple[CurvePoint, ...]
    loo_mae: float | None  # leave-one-point-out mean absolute error, in the metric's units
    loo_max_abs: float | None
    provenance: str  # "fitted" (the points are "measured")


@dataclass(frozen=True)
class Band:
    mean: np.ndarray  # the fitted curve, in the metric's units
    low: np.ndarray  # mean - std across the per-fold curves (or the points' spread when no fold fitted)
    high: np.ndarray


@dataclass(frozen=True)
class ScalingLaw:
    params: dict[str, float]  # E, A, B, alpha, beta: L = E + A / N^alpha + B / D^beta (nats per character)
    p10: dict[str, float]
    p90: dict[str, float]
    points: tuple[dict[str, float], ...]  # {"params": N, "tokens": D, "loss": L}
    loo_mape_pct: float | None
    provenance: str


@dataclass(frozen=True)
class QualitySection:
    mode: str
    duration_s: float | None
    models: dict[str, dict[str, Any]]  # per small model: task, size, tokens or samples trained, folds, baseline
    curves: dict[str, QualityCurve]
    scaling_law: ScalingLaw | None

    def curve(self, model_name: str, family: str, method: str, finetuned: bool, y_name: str) -> QualityCurve | None:
        return self.curves.get(f"{model_name}/{family}/{method}/{'finetuned' if finetuned else 'oneshot'}/{y_name}")


def evaluate(curve: QualityCurve, x: Any) -> Band:
    """The curve's metric at bits or sparsity x with a band: mean ± the std of the per-fold curves at x."""
    xa = np.asarray(x, dtype=float)
    mean = to_metric(error_at(curve.model, curve.params, xa), curve.y_transform)
    if len(curve.fold_params) >= 2:
        per_fold = np.stack([to_metric(error_at(curve.model, p, xa), curve.y_transform) for p in curve.fold_params])
        spread = per_fold.std(axis=0, ddof=1)
    else:
        spread = np.full_like(mean, float(np.mean([p.std for p in curve.points])) if curve.points else 0.0)
    return Band(mean, mean - spread, mean + spread)


def along(curve: QualityCurve, points: int) -> tuple[np.ndarray, Band]:
    """The fitted curve with its band at `points` evenly spaced values across its measured x range (the one x
    measured when there is only one), for a chart."""
    xs = np.array([p.x for p in curve.points], dtype=float)
    if xs.size:
        xs = np.linspace(xs.min(), xs.max(), points) if xs.max() > xs.min() else np.unique(xs)
    return xs, evaluate(curve, xs)


def predict_loss(law: ScalingLaw, params: Any, tokens: Any) -> np.ndarray:
    # Hoffmann et al. 2022 eq. 2 (Approach 3): L(N, D) = E + A / N^alpha + B / D^beta
    n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    p = law.params
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


# ---------------------------------------------------------------- checks


def _fail(path: str, problem: str) -> QualitySectionError:
    return QualitySectionError(f"{path}: {problem}")


def _num(v: Any, path: str, *, nullable: bool = False, low: float = -1e12, high: float = 1e12) -> float | None:
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _fail(path, f"expected a finite number, got {type(v).__name__}")
    if not low <= v <= high:
        raise _fail(path, f"{v} is outside [{low}, {high}]")
    return float(v)


def _str(v: Any, path: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(v, str) or not v or len(v) > MAX_TEXT:
        raise _fail(path, f"expected a non-empty string of at most {MAX_TEXT} characters")
    if choices is not None and v not in choices:
        raise _fail(path, f"{v[:60]!r} is not one of {', '.join(choices)}")
    return v


def _obj(v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(path, f"expected an object, got {type(v).__name__}")
    return v


def _list(v: Any, path: str, cap: int) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(path, f"expected a list, got {type(v).__name__}")
    if len(v) > cap:
        raise _fail(path, f"{len(v)} items are over the cap of {cap}")
    return v


def _params(v: Any, path: str, model: str) -> dict[str, float]:
    obj = _obj(v, path)
    missing = [n for n in CURVE_MODELS[model] if n not in obj]
    if missing:
        raise _fail(path, f"model {model!r} needs {', '.join(missing)}")
    out = {n: float(_num(obj[n], f"{path}.{n}")) for n in CURVE_MODELS[model]}
    for n in ("gamma_bits", "width_bits", "p_density", "gamma"):
        if n in out and not out[n] > 0:
            raise _fail(f"{path}.{n}", f"must be > 0, got {out[n]}")
    if model.startswith("rosenfeld") and not (out["e_dense"] > 0 and out["e_max"] > 0):
        raise _fail(path, f"e_dense and e_max must be > 0 for {model}, got {out['e_dense']}, {out['e_max']}")
    return out


def _curve(key: str, c: Any, path: str) -> QualityCurve:
    c = _obj(c, path)
    model = _str(c.get("model"), f"{path}.model", tuple(CURVE_MODELS))
    y_transform = _str(c.get("y_transform"), f"{path}.y_transform", Y_TRANSFORMS)
    params = _params(c.get("params"), f"{path}.params", model)
    stderr = {str(k): _num(v, f"{path}.stderr.{k}", nullable=True, low=0.0)
              for k, v in _obj(c.get("stderr", {}), f"{path}.stderr").items()}
    folds = tuple(_params(p, f"{path}.fold_params[{i}]", model)
                  for i, p in enumerate(_list(c.get("fold_params", []), f"{path}.fold_params", MAX_FOLDS)))
    points = []
    for i, p in enumerate(_list(c.get("points"), f"{path}.points", MAX_POINTS)):
        where = f"{path}.points[{i}]"
        p = _obj(p, where)
        n = p.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FOLDS:
            raise _fail(f"{where}.n", f"expected a whole number of folds in 1..{MAX_FOLDS}")
        points.append(CurvePoint(float(_num(p.get("x"), f"{where}.x", low=0.0, high=64.0)),
                                 float(_num(p.get("mean"), f"{where}.mean")),
                                 float(_num(p.get("std"), f"{where}.std", low=0.0)), n))
    held = _obj(c.get("heldout", {}), f"{path}.heldout")
    return QualityCurve(
        key=key, model_name=_str(c.get("model_name"), f"{path}.model_name"),
        family=_str(c.get("family"), f"{path}.family", ("bits", "sparsity")),
        method=_str(c.get("method"), f"{path}.method"), finetuned=bool(c.get("finetuned")),
        y_name=_str(c.get("y_name"), f"{path}.y_name"), y_transform=y_transform, model=model,
        formula=_str(c.get("formula"), f"{path}.formula"), params=params, stderr=stderr, fold_params=folds,
        points=tuple(points), loo_mae=_num(held.get("loo_mae"), f"{path}.heldout.loo_mae", nullable=True, low=0.0),
        loo_max_abs=_num(held.get("loo_max_abs"), f"{path}.heldout.loo_max_abs", nullable=True, low=0.0),
        provenance=_str(c.get("provenance"), f"{path}.provenance", ("fitted",)))


def _scaling(v: Any, path: str) -> ScalingLaw | None:
    v = _obj(v, path)
    if v.get("status") != "ok":
        _str(v.get("reason"), f"{path}.reason")
        return None
    names = ("E", "A", "B", "alpha", "beta")

    def block(key: str) -> dict[str, float]:
        obj = _obj(v.get(key), f"{path}.{key}")
        return {n: float(_num(obj.get(n), f"{path}.{key}.{n}", low=0.0, high=1e15)) for n in names}

    pts = []
    for i, p in enumerate(_list(v.get("points"), f"{path}.points", MAX_POINTS)):
        p = _obj(p, f"{path}.points[{i}]")
        pts.append({k: float(_num(p.get(k), f"{path}.points[{i}].{k}", low=0.0, high=1e18))
                    for k in ("params", "tokens", "loss")})
    return ScalingLaw(block("params"), block("p10"), block("p90"), tuple(pts),
                      _num(v.get("loo_mape_pct"), f"{path}.loo_mape_pct", nullable=True, low=0.0),
                      _str(v.get("provenance"), f"{path}.provenance", ("fitted",)))


def parse_quality(section: Any, path: str = "quality") -> QualitySection:
    """Check the profile's quality section and return it as dataclasses (QualitySectionError names the path)."""
    s = _obj(section, path)
    models = _obj(s.get("models", {}), f"{path}.models")
    for name, info in models.items():
        _obj(info, f"{path}.models.{name}")
    curves_raw = _obj(s.get("curves", {}), f"{path}.curves")
    if len(curves_raw) > MAX_CURVES:
        raise _fail(f"{path}.curves", f"{len(curves_raw)} curves are over the cap of {MAX_CURVES}")
    curves = {}
    for key, c in curves_raw.items():
        if _obj(c, f"{path}.curves.{key}").get("status") == "ok":
            curves[key] = _curve(key, c, f"{path}.curves.{key}")
        else:
            _str(c.get("reason"), f"{path}.curves.{key}.reason")
    law = _scaling(s["scaling_law"], f"{path}.scaling_law") if s.get("scaling_law") is not None else None
    return QualitySection(mode=_str(s.get("mode"), f"{path}.mode"),
                          duration_s=_num(s.get("duration_s"), f"{path}.duration_s", nullable=True, low=0.0),
                          models=models, curves=curves, scaling_law=law)


def quality_from_profile(profile: dict[str, Any]) -> QualitySection | None:
    """The parsed `quality` section of a loaded profile, or None when it has none."""
    section = profile.get("quality") if isinstance(profile, dict) else None
    return None if section is None else parse_quality(section)
