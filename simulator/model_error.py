"""The model's own error: how far its formulas land from published results, as spread terms of every range.

Each `Term` is a multiplier column of the model (1 in a plan) on one quantity the formulas compute: the training
step time, the goodput overheads (expected ÷ ideal wall time), the serving step time, the dense scaling-law loss.
Its spread is measured, not assumed: `benchmarks/model_error.py` evaluates every published row of
`benchmarks/published/` (and the leave-one-group-out fits of the loss law and the compression law) through the
public path, turns each row's error into the value of its term that would have made the prediction exact, and
writes those residuals with their provenance to `simulator/data/model_error.json`. The spread read here is the
one the P10-P90 ranges need to hold about 80% of the residuals:

    σ = q80(|r|) / 1.2816,   r = ln(published / predicted) / elasticity      (log scale, bias included)

so a biased model widens its ranges instead of hiding the bias (issue 19 asks for the bias to be fixed in the
physics; `bias` reports what is left). The Monte Carlo draws r from a Student-t (Gosset 1908) scaled to the same
P10-P90, with the degrees of freedom fitted to the residuals, so tails heavier than normal show in P(over budget).

The compression law's error is the existing `compression.loss_scale` / `compression.prune_loss_scale` inputs
(their spread is the leave-one-family-out error of simulator/compression/fitted.json); they are listed here so a
plan can say what its ranges include.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

DATA_PATH = Path(__file__).parent / "data" / "model_error.json"
Z_P90 = 1.2816  # standard normal quantile: ±1.2816σ spans P10-P90
MIN_ROWS_FOR_TAIL = 20  # fewer residuals: the tail is not estimated (normal)
# Student-t degrees of freedom kept in this range: at least 3, so the draws have a finite variance (the Sobol'
# indices are shares of it); above 60 it is normal for our purpose
DF_BOUNDS = (3.0, 60.0)


@dataclass(frozen=True)
class Declared:
    """What a term is (code); what it measured is in the data file."""

    name: str  # "train_step"
    column: str  # the model column it multiplies; 1 in a plan
    label: str  # "Training step-time model error"
    moves: str  # what it multiplies, in words
    figures: tuple[str, ...]  # published figures its residuals come from
    device_key: str = ""  # the device input whose calibration floors it (a profile's held-out error)
    less: tuple[str, ...] = ()  # terms already in those figures: σ² = σ(figures)² − Σ σ(less)²
    input_key: str = ""  # the term is this input's spread (compression), not a column of its own
    sets: tuple[str, ...] = ()  # measured on these published sets only (which then no figure-only term takes)
    applies: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None  # rows it acts on (None: every row)


DECLARED: tuple[Declared, ...] = (
    Declared("train_step", "model_err_train_step", "Training step-time model error",
             "the training step time (and with it throughput, MFU, wall time, GPU-hours, cost and energy)",
             ("training.tokens_per_s", "training.tflops_per_gpu", "training.hw_tflops_per_gpu", "training.mfu",
              "training.step_time_s", "training.ideal_wall_days", "training.tokens_per_s_per_gpu"),
             device_key="cluster.accelerator"),
    Declared("train_moe", "model_err_train_moe", "Training MoE-layer model error",
             "a mixture-of-experts model's training step beyond the dense step's own error (grouped expert GEMMs, "
             "all-to-all, expert-parallel layouts)",
             ("training.tokens_per_s", "training.tflops_per_gpu", "training.mfu", "training.step_time_s",
              "training.tokens_per_s_per_gpu"), device_key="cluster.accelerator", less=("train_step",),
             sets=("moe_fp8_training",), applies=lambda c: np.asarray(c["moe_experts"]) > 0),
    Declared("goodput", "model_err_goodput", "Goodput model error",
             "the expected ÷ ideal wall time (checkpoints, failures, restarts, evaluation, start-up)",
             ("training.gpu_hours", "training.wall_days"), less=("train_step",)),
    Declared("serve_step", "model_err_serve_step", "Serving step-time model error",
             "every serving step (and with it throughput, TTFT, time per token, replicas, GPUs and serving cost)",
             ("serving.replica_output_tokens_per_s", "serving.output_tokens_per_s_per_gpu", "serving.ttft_s",
              "serving.tpot_s", "serving.replica_requests_per_s"), device_key="serving.accelerator"),
    Declared("serve_moe", "model_err_serve_moe", "Serving MoE-layer model error",
             "a mixture-of-experts model's serving step beyond the dense step's own error (the experts, their "
             "all-to-all and the layouts around them; serving/constants.SERVING_MOE_EFF is fitted on part of the "
             "same published set)",
             ("serving.replica_output_tokens_per_s", "serving.output_tokens_per_s_per_gpu", "serving.ttft_s",
              "serving.tpot_s", "serving.replica_requests_per_s"), device_key="serving.accelerator",
             less=("serve_step",), sets=("serving_trtllm_moe",),
             applies=lambda c: np.asarray(c["moe_experts"]) > 0),
    Declared("loss", "model_err_loss", "Scaling-law loss model error", "the dense model's predicted loss",
             ("quality.dense_loss",)),
    Declared("compression", "loss_scale", "Compression law model error",
             "the loss increase of quantization", ("quality.ppl_ratio",), input_key="compression.loss_scale"),
    Declared("pruning", "prune_loss_scale", "Pruning law model error",
             "the loss increase of pruning", ("quality.ppl_ratio",), input_key="compression.prune_loss_scale"),
)
BY_NAME: dict[str, Declared] = {d.name: d for d in DECLARED}
BY_COLUMN_DECLARED: dict[str, Declared] = {d.column: d for d in DECLARED if not d.input_key}
COLUMNS: tuple[str, ...] = tuple(d.column for d in DECLARED if not d.input_key)  # columns this module adds


@dataclass(frozen=True)
class Term:
    """One term as measured: its spread (log scale), tail, bias and provenance."""

    declared: Declared
    sigma: float  # one-sigma log spread: P10-P90 = exp(±1.2816 σ)
    df: float  # Student-t degrees of freedom of the Monte Carlo draws (inf: normal)
    bias: float  # median residual (log), what the physics still misses on average
    rows: int
    groups: tuple[str, ...]
    sources: tuple[str, ...]
    coverage: float | None = None  # leave-one-group-out share of published rows inside their P10-P90
    method: str = ""
    date: str = ""

    @property
    def column(self) -> str:
        return self.declared.column

    @property
    def label(self) -> str:
        return self.declared.label

    def describe(self) -> str:
        """'measured on 23 published results in 5 groups (leave-one-group-out; P10–P90 held 78% of them)'."""
        if not self.rows:
            return "no published results to measure it on"
        held = f"; P10–P90 held {self.coverage:.0%} of them" if self.coverage is not None else ""
        return (f"measured on {self.rows} published results in {len(self.groups)} groups (leave-one-group-out"
                f"{held})")


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of `values` with `weights` (the smallest value whose cumulative weight reaches q; Hyndman &
    Fan 1996 definition 1, weighted)."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order]) / np.sum(weights)
    return float(values[order][min(int(np.searchsorted(cum, q - 1e-12)), len(values) - 1)])


def needed(residuals: Sequence[float], other: Sequence[float] | None = None) -> np.ndarray:
    """Per residual r (log), the least model σ that puts it inside a P10-P90 whose other terms already span
    ±1.2816·`other` (log σ of the device and input spreads of that row, in quadrature):
    |r| ≤ 1.2816·sqrt(other² + σ²)  ⇔  σ ≥ sqrt(max(0, (r/1.2816)² − other²))."""
    r = np.asarray(residuals, dtype=float) / Z_P90
    o = np.zeros_like(r) if other is None else np.asarray(other, dtype=float)
    return np.sqrt(np.maximum(0.0, r ** 2 - o ** 2))


def sigma_of(residuals: Sequence[float], groups: Sequence[str] | None = None,
             other: Sequence[float] | None = None, level: float = 0.8) -> float:
    """The model σ whose P10-P90, with each row's other spreads (`other`), holds the share `level` of these
    residuals, bias included. With `groups`, each group weighs the same whatever its rows: a new published result is
    most like a new group (one more paper or model family), not one more row of the largest table."""
    need = needed(residuals, other)
    keep = np.isfinite(need)
    if not keep.any():
        return 0.0
    if groups is None:
        w = np.ones(keep.sum())
    else:
        g = np.asarray(groups, dtype=object)[keep].astype(str)
        _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
        w = 1.0 / counts[inverse]
    return weighted_quantile(need[keep], w, level)


def tail_df(residuals: Sequence[float]) -> float:
    """Student-t degrees of freedom fitted to the residuals about their median (scipy.stats.t.fit, loc fixed: the
    tail's shape, the bias being in σ already), within DF_BOUNDS; inf (normal) for fewer than MIN_ROWS_FOR_TAIL
    residuals or a fit above the bound."""
    r = np.asarray(residuals, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < MIN_ROWS_FOR_TAIL or not np.any(r - np.median(r)):
        return math.inf
    from scipy import stats  # only the benchmark that writes the data file fits it

    df, _, _ = stats.t.fit(r, floc=float(np.median(r)))
    return math.inf if df > DF_BOUNDS[1] else float(max(df, DF_BOUNDS[0]))


def summarise(declared: Declared, residuals: Iterable[Mapping[str, Any]], less: Mapping[str, float] | None = None,
              exclude_group: str | None = None, level: float = 0.8, tail: bool = True) -> dict[str, Any]:
    """σ, df, bias, rows and groups of `declared` from residual records ({"group", "log_ratio", "source", and
    "other_sigma": the row's other spreads, log}), leaving out `exclude_group` (leave-one-group-out); `less`: σ of
    other model terms already in these figures (in quadrature with each row's other spreads); `level`: the share of
    rows σ's P10-P90 holds; `tail=False` skips the Student-t fit (df inf) where only σ is wanted."""
    kept = [r for r in residuals if r["group"] != exclude_group and np.isfinite(r["log_ratio"])]
    values = [float(r["log_ratio"]) for r in kept]
    extra = sum(s ** 2 for s in (less or {}).values())
    other = [math.sqrt(float(r.get("other_sigma", 0.0)) ** 2 + extra) for r in kept]
    return {"sigma": sigma_of(values, [r["group"] for r in kept], other, level),
            "df": tail_df(values) if tail else math.inf,
            "bias": float(np.median(values)) if values else 0.0, "rows": len(kept),
            "groups": sorted({r["group"] for r in kept}), "sources": sorted({r["source"] for r in kept})}


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    p = Path(path)
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {"terms": {}}


def load_terms(path: Path = DATA_PATH) -> dict[str, Term]:
    """The measured terms by name; a term the data file lacks is absent (no spread, said as such)."""
    data = _load(str(path))
    out = {}
    for name, rec in data.get("terms", {}).items():
        if name not in BY_NAME:
            continue
        df = rec.get("df")
        out[name] = Term(BY_NAME[name], float(rec["sigma"]), math.inf if df is None else float(df),
                         float(rec.get("bias", 0.0)), int(rec.get("rows", 0)), tuple(rec.get("groups", ())),
                         tuple(rec.get("sources", ())), rec.get("coverage"), data.get("method", ""),
                         data.get("date", ""))
    return out


TERMS: dict[str, Term] = load_terms()
LOG_COLUMNS: frozenset[str] = frozenset(COLUMNS)  # moved on a log scale (exp(±Zσ)), not 1 ± Zσ
BY_COLUMN: dict[str, Term] = {t.column: t for t in TERMS.values()}


def input_sigma(name: str, unmeasured: float) -> float:
    """The spread of an input that is a model-error term (compression): as measured here, or `unmeasured` (the
    fit's own statistic) while the data file has no such term."""
    term = TERMS.get(name)
    return unmeasured if term is None else term.sigma


def unit_columns(n: int) -> dict[str, np.ndarray]:
    """The terms' columns of n plan rows: 1 (the model as it stands)."""
    return {column: np.ones(n) for column in COLUMNS}


MAPE_TO_SIGMA = math.sqrt(math.pi / 2.0)  # mean |x| of a normal is σ·sqrt(2/π) (Geary 1935)


def spreads(floors: Mapping[str, float] | None = None, override: Mapping[str, float] | None = None
            ) -> dict[str, float]:
    """Column -> σ of every measured term that is a column of its own. `floors` (device input key -> a calibrated
    device's held-out mean relative error, its profile's own measure of how far the model lands on it) raise the
    terms that device floors, never lower them; `override` (column -> σ) replaces the measured σ (the
    leave-one-group-out check of benchmarks/model_error.py)."""
    out = {}
    for declared in DECLARED:
        if declared.input_key:
            continue
        term = TERMS.get(declared.name)
        sigma = 0.0 if term is None else term.sigma
        floor = (floors or {}).get(declared.device_key)
        if floor is not None and math.isfinite(floor) and floor * MAPE_TO_SIGMA > sigma:
            sigma = floor * MAPE_TO_SIGMA
        out[declared.column] = sigma
    for column, sigma in (override or {}).items():
        if column in COLUMNS:
            out[column] = float(sigma)
    return {k: v for k, v in out.items() if v > 0}


def acts(column: str, cols: Mapping[str, np.ndarray]) -> bool:
    """Whether the term of `column` acts on any of the plan rows `cols` (a mixture-of-experts term does not on a
    dense model, whose range then leaves it out); True for a column that is no term."""
    term = BY_COLUMN_DECLARED.get(column)
    return term is None or term.applies is None or bool(np.any(term.applies(cols)))


def tails() -> dict[str, float]:
    """Column -> Student-t degrees of freedom of every model-error term drawn with heavier tails than normal."""
    return {t.column: t.df for t in TERMS.values() if t.column in LOG_COLUMNS and math.isfinite(t.df)}


def t_draws(z: np.ndarray, df: float) -> np.ndarray:
    """Standard normals mapped, quantile for quantile, to a Student-t with `df` degrees of freedom scaled to the
    normal's P10-P90 (±1.2816): how the Monte Carlo and the Sobol' indices draw a model-error term (df = inf: `z`)."""
    if not math.isfinite(df):
        return z
    from scipy import stats

    tail = -stats.t.ppf(stats.norm.cdf(-np.abs(z)), df)  # from the nearer tail, so no quantile rounds to 1
    return np.sign(z) * tail * t_scale(df)


def t_scale(df: float) -> float:
    """Factor that gives a Student-t draw with `df` degrees of freedom the normal's P10-P90 (±1.2816)."""
    if not math.isfinite(df):
        return 1.0
    from scipy import stats

    return Z_P90 / float(stats.t.ppf(0.9, df))


def describe_column(column: str) -> str:
    """A term's provenance in words, for the provenance view; '' for a column that is no term."""
    term = BY_COLUMN.get(column)
    return "" if term is None else f"{term.label}: {term.describe()}"
