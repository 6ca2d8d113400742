"""What is uncertain about one plan: a Monte Carlo of total cost and quality, and a tornado of the inputs that move
them most. Both move the same columns the plan's P10-P90 ranges move (simulator.evaluator.uncertain_columns):
the device's fitted or assumed efficiencies and bandwidths, and every input declared with a spread (prices,
traffic, failure rate, ...). The Monte Carlo draws a device's columns that came from one profile fit jointly,
with that fit's parameter correlation (simulator/correlations.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from simulator import model_error
from simulator.correlations import Pair, correlation_matrix, psd_factor
from simulator.evaluator import clip_to_bounds, factor, perturbations, uncertain_columns
from simulator.spreads import label_of
from simulator.sweeps import evaluate_columns
from simulator.training.model import CHUNK_ROWS

QUANTILES = (0.10, 0.50, 0.90)


@dataclass(frozen=True)
class Spread:
    p10: float
    p50: float
    p90: float

    def to_dict(self) -> dict[str, float]:
        return {"p10": self.p10, "p50": self.p50, "p90": self.p90}


@dataclass(frozen=True)
class MonteCarlo:
    samples: int
    seed: int
    total_cost_usd: Spread
    quality_loss: Spread
    prob_over_budget: float
    moved: tuple[str, ...]  # the columns drawn
    correlated: tuple[tuple[str, str, float], ...] = ()  # (column, column, r) of the pairs drawn jointly
    prob_over_target: float | None = None  # chance of a loss above the quality target (None: no target)

    def to_dict(self) -> dict[str, object]:
        joint = "; ".join(f"{label_of(a)} with {label_of(b)} (r = {r:+.2f})" for a, b, r in self.correlated)
        method = ("lognormal draws, median = the plan's value, sigma = each input's relative spread (fitted standard "
                  "error or held-out error for calibrated devices; published or assumed otherwise); the model's own "
                  "error terms (measured on published results, leave-one-group-out: simulator/data/model_error.json) "
                  "from a Student-t with the degrees of freedom fitted to their residuals, scaled to the normal's "
                  "P10-P90, so heavier tails show (the quantization and pruning terms, measured on a linear scale, "
                  "as 1 + sigma·z, at least 0); ")
        method += (f"drawn jointly (multivariate normal in log space, correlation from the calibration fit both came "
                   f"from): {joint}; all other inputs independent") if joint else "all inputs independent"
        return {"samples": self.samples, "seed": self.seed, "total_cost_usd": self.total_cost_usd.to_dict(),
                "quality_loss": self.quality_loss.to_dict(), "prob_over_budget": self.prob_over_budget,
                "inputs_drawn": [label_of(c) for c in self.moved],
                "model_error_drawn": [label_of(c) for c in self.moved if c in model_error.LOG_COLUMNS],
                "inputs_correlated": [{"inputs": [label_of(a), label_of(b)], "columns": [a, b], "r": r}
                                      for a, b, r in self.correlated],
                "method": method, **({} if self.prob_over_target is None
                                     else {"prob_over_target": self.prob_over_target})}


@dataclass(frozen=True)
class Swing:
    """One bar of the tornado: the input at its P10 and P90, and what total cost and loss then are."""

    column: str
    label: str
    spread: float
    cost_low_usd: float  # total cost with the input at its P10 value
    cost_high_usd: float  # ... at its P90 value
    loss_low: float
    loss_high: float

    @property
    def cost_swing_usd(self) -> float:
        return abs(self.cost_high_usd - self.cost_low_usd)

    def to_dict(self) -> dict[str, object]:
        return {"input": self.label, "column": self.column, "relative_spread": self.spread,
                "low": {"total_cost_usd": self.cost_low_usd, "quality_loss": self.loss_low},
                "high": {"total_cost_usd": self.cost_high_usd, "quality_loss": self.loss_high}}


def _quantiles(values: np.ndarray) -> Spread:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Spread(np.nan, np.nan, np.nan)
    p10, p50, p90 = np.quantile(finite, QUANTILES)
    return Spread(float(p10), float(p50), float(p90))


def plan_row(cols: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The plan's one row of model columns as numbers (what every draw starts from)."""
    return {k: float(np.asarray(v, dtype=float).reshape(-1)[0]) for k, v in cols.items()}


def evaluate_draws(plan: Mapping[str, float], spreads: Mapping[str, float], names: list[str], z: np.ndarray,
                   keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The figures `keys` of each draw: draw j is the `plan` row (each column's value) with column `names[i]` ×
    factor(σ_i, z[i, j]) (σ from `spreads`; simulator.evaluator.factor: exp(σz), or 1 + σz for a model-error term
    measured on a linear scale), clipped to its bounds. Evaluated in blocks of CHUNK_ROWS draws, each one
    vectorised pass, so the memory of the model's columns stays that of one block whatever the number of draws."""
    samples = z.shape[1]
    out = {key: np.empty(samples) for key in keys}
    for start in range(0, samples, CHUNK_ROWS):
        stop = min(samples, start + CHUNK_ROWS)
        rows = {k: np.full(stop - start, v) for k, v in plan.items()}
        for i, name in enumerate(names):
            rows[name] = rows[name] * factor(name, spreads[name], z[i, start:stop])
        clip_to_bounds(rows, spreads)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            figures = evaluate_columns(rows)
        for key in keys:
            out[key][start:stop] = figures[key]
    return out


def standard_draws(names: list[str], r: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """The Monte Carlo's standard draws, one row per uncertain column (`names`, correlation `r`): normals made
    positive semidefinite through `psd_factor` where `r` is not the identity, and a model-error term's row from its
    Student-t, scaled to the normal's P10-P90 (simulator.model_error.t_draws)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((len(names), samples))
    if not np.array_equal(r, np.eye(len(names))):
        z = psd_factor(r) @ z
    heavy = model_error.tails()
    for i, name in enumerate(names):
        if name in heavy:
            z[i] = model_error.t_draws(z[i], heavy[name])
    return z


def monte_carlo(cols: Mapping[str, np.ndarray], device_spread: Mapping[str, float], budget_usd: float, samples: int, seed: int,
                cost_key: str, loss_key: str, correlations: Mapping[Pair, float] | None = None,
                target_loss: float | None = None) -> MonteCarlo:
    """`samples` draws of every uncertain column of the plan's one row: log(column / plan value) ~ N(0, Σ),
    Σ_ij = σ_i·σ_j·r_ij with r from `correlations` (simulator.evaluator.scenario_device_correlations; 0 for pairs
    not there), made positive semidefinite (simulator.correlations.psd_factor); a model-error term from its
    Student-t instead (simulator.model_error.t_draws). Without correlations the draws are the independent ones,
    number for number. The draws are made at once (one number per uncertain column and draw) and evaluated in blocks
    (`evaluate_draws`). `target_loss`: also the share of draws whose loss is above it (`prob_over_target`)."""
    spreads = uncertain_columns(cols, device_spread)
    names = sorted(spreads)  # a fixed order, so a seed gives the same draws whatever the dict order
    r = correlation_matrix(names, correlations or {})
    z = standard_draws(names, r, samples, seed)
    plan = plan_row(cols)
    out = evaluate_draws(plan, spreads, names, z, (cost_key, loss_key))
    cost, loss = out[cost_key], out[loss_key]
    over = float(np.mean(~(cost <= budget_usd))) if samples else float("nan")  # an infinite/NaN cost is over
    joint = tuple((a, b, float(r[i, j])) for i, a in enumerate(names) for j, b in enumerate(names)
                  if i < j and r[i, j] != 0.0)
    missed = None if target_loss is None or not samples else float(np.mean(~(loss <= target_loss)))
    return MonteCarlo(samples, seed, _quantiles(cost), _quantiles(loss), over, tuple(names), joint, missed)


def tornado(cols: Mapping[str, np.ndarray], device_spread: Mapping[str, float], cost_key: str, loss_key: str) -> list[Swing]:
    """Each uncertain input moved alone to its P10 and P90 value; sorted by how far it moves total cost, then
    loss."""
    rows, names = perturbations(dict(cols), device_spread)
    spreads = uncertain_columns(cols, device_spread)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = evaluate_columns(rows)
    cost = np.asarray(out[cost_key], dtype=float)
    loss = np.asarray(out[loss_key], dtype=float)
    bars = [Swing(name, label_of(name), spreads[name], float(cost[1 + 2 * i]), float(cost[2 + 2 * i]),
                  float(loss[1 + 2 * i]), float(loss[2 + 2 * i])) for i, name in enumerate(names)]
    return sorted(bars, key=lambda s: (-s.cost_swing_usd, -abs(s.loss_high - s.loss_low)))
