"""The chance that each candidate of a search goes over the budget (or misses the quality target), estimated
without a Monte Carlo per candidate.

Each candidate's resolved row is moved one uncertain column at a time to that column's P10 and P90
(`simulator.evaluator.perturbations`, the same columns the ranges, the tornado and the Monte Carlo move:
`uncertain_columns`), all candidates × moves in one vectorised `evaluate_columns` call. Each column's two moves
give its response (of log total cost, and of loss) to its standard draw z, taken as linear on each side of the plan
(through the P10 move below, the P90 move above; flat past a move a bound stopped short, as a draw is clipped
there). The responses are summed over the columns for the Monte Carlo's own standard draws (`standard_draws`: the
devices' fitted correlations, the model-error terms' Student-t tails), so a one-sided or heavy-tailed term (a run
never takes less than its steps; a quantization loss never below none) shapes the chance as it does in the Monte
Carlo, at the cost of a matrix of candidates × draws, not of the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator import model_error
from simulator.catalog import HardwareSpec
from simulator.correlations import correlation_matrix
from simulator.decision.search import COST, LOSS
from simulator.decision.uncertainty import standard_draws
from simulator.evaluator import (
    draw_of,
    move,
    perturbations,
    scenario_device_correlations,
    scenario_spreads,
    uncertain_columns,
)
from simulator.hardware_table import hardware_table
from simulator.inputs import INPUTS
from simulator.resolve import device_catalog, encode_values, expand_preset, resolve_columns
from simulator.scenario import Scenario
from simulator.sweeps import evaluate_columns

ESTIMATE_DRAWS = 2000  # standard draws per candidate for the estimate: its chances to about ±1 point


@dataclass(frozen=True)
class Estimate:
    """Each candidate's predicted total cost and loss, and draws of how far each moves (`estimate`)."""

    total_cost_usd: np.ndarray  # the predicted value, per candidate
    quality_loss: np.ndarray  # ... likewise
    log_cost_moves: np.ndarray  # (candidates, draws): log(total cost ÷ predicted) of each draw
    loss_moves: np.ndarray  # (candidates, draws): loss − predicted (nats/token)

    def prob_over_budget(self, budget_usd: float) -> np.ndarray:
        """P(total cost > budget): the share of draws over it (an infinite or undefined cost is over)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            within = np.log(self.total_cost_usd)[:, None] + self.log_cost_moves <= np.log(budget_usd)
        return _share_over(within)

    def prob_over_target(self, target_loss: float) -> np.ndarray:
        """P(loss > target): the share of draws above it."""
        with np.errstate(invalid="ignore"):
            return _share_over(self.quality_loss[:, None] + self.loss_moves <= target_loss)

    def budget_needed(self, tolerance: float) -> np.ndarray:
        """The least budget at which each candidate's chance of going over it is `tolerance`."""
        return self.total_cost_usd * np.exp(_upper(self.log_cost_moves, tolerance))

    def target_needed(self, tolerance: float) -> np.ndarray:
        """The lowest quality target each candidate misses with a chance of `tolerance`."""
        return self.quality_loss + _upper(self.loss_moves, tolerance)


def _share_over(within: np.ndarray) -> np.ndarray:
    """The share of draws outside, counted (k/N exactly, as a tolerance of k/N is written; 1 − share inside is
    k/N plus a rounding that put a plan at exactly the tolerance over it)."""
    return np.mean(~within, axis=1) if within.shape[1] else np.where(within.all(axis=1), 0.0, 1.0)


def _upper(moves: np.ndarray, tolerance: float) -> np.ndarray:
    """Per candidate, the move its draws exceed with a chance of `tolerance` (0 without draws)."""
    if not moves.shape[1]:
        return np.zeros(moves.shape[0])
    return np.quantile(np.where(np.isfinite(moves), moves, np.inf), 1.0 - tolerance, axis=1)


def candidate_rows(base: Scenario, choices: Sequence[Mapping[str, Any]],
                   devices: Mapping[str, HardwareSpec] | None = None) -> dict[str, np.ndarray]:
    """Resolved model columns of candidates of one search (the search's `base` with each choice's searched values),
    one row each, resolved as the search's sweep resolves its rows (simulator.sweeps), without a Scenario each."""
    table = hardware_table(device_catalog(devices))
    given, preset_tokens = expand_preset(dict(base.given))
    keys = list(choices[0])
    cols = {k: encode_values(k, [v], table)[0] for k, v in given.items()
            if INPUTS[k].column is not None and k not in keys}
    for key in keys:
        cols[key] = encode_values(key, [c[key] for c in choices], table)
    with np.errstate(divide="ignore", invalid="ignore"):
        return resolve_columns(cols, len(choices), table, preset_tokens) | model_error.unit_columns(len(choices))


def estimate(base: Scenario, choices: Sequence[Mapping[str, Any]],
             devices: Mapping[str, HardwareSpec] | None = None) -> Estimate:
    """The `Estimate` of each candidate (`candidate_rows`): one search's candidates share its devices, so their
    uncertain columns."""
    if not choices:
        empty = np.empty(0)
        return Estimate(empty, empty, np.empty((0, ESTIMATE_DRAWS)), np.empty((0, ESTIMATE_DRAWS)))
    cols = candidate_rows(base, choices, devices)
    spread = scenario_spreads(base, devices)  # the devices' and the model's own error
    spreads = uncertain_columns(cols, spread)
    n = len(choices)
    wide = {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)) for k, v in cols.items()}
    # each point's P10 and P90 moves of the uncertain columns (only those copied per point: the others repeat)
    # the same uncertain columns for every point (chosen on all of them above), so their rows line up
    per_point = [perturbations({k: wide[k][i:i + 1] for k in spreads}, spread, spreads) for i in range(n)]
    names = per_point[0][1]
    width = 1 + 2 * len(names)
    rows = {k: np.repeat(v, width) for k, v in wide.items() if k not in spreads}
    rows |= {k: np.concatenate([p[0][k] for p in per_point]) for k in spreads}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = evaluate_columns(rows)
        cost = np.asarray(out[COST], dtype=float).reshape(n, width)
        loss = np.asarray(out[LOSS], dtype=float).reshape(n, width)
        log_cost = np.log(cost)
    z = standard_draws(names, correlation_matrix(names, scenario_device_correlations(base, devices)),
                       ESTIMATE_DRAWS, base.decision.seed)
    cost_moves, loss_moves = np.zeros((n, ESTIMATE_DRAWS)), np.zeros((n, ESTIMATE_DRAWS))
    for i, name in enumerate(names):
        column = rows[name].reshape(n, width)
        # where the column's P10 and P90 moves landed, in standard draws of it (`factor`), and where they would have
        # without its bounds: a move a bound stopped short marks where the draws are clipped too
        nominal = [float(draw_of(name, spreads[name], f)) for f in move(name, spreads[name])]
        x_lo = draw_of(name, spreads[name], column[:, 1 + 2 * i] / column[:, 0])
        x_hi = draw_of(name, spreads[name], column[:, 2 + 2 * i] / column[:, 0])
        for moves, values in ((cost_moves, log_cost), (loss_moves, loss)):
            lo = values[:, 1 + 2 * i] - values[:, 0]
            hi = values[:, 2 + 2 * i] - values[:, 0]
            moves += _response(z[i], (x_lo, lo, nominal[0]), (x_hi, hi, nominal[1]))
    return Estimate(cost[:, 0], loss[:, 0], cost_moves, loss_moves)


def _response(z: np.ndarray, low: tuple[np.ndarray, np.ndarray, float],
              high: tuple[np.ndarray, np.ndarray, float]) -> np.ndarray:
    """(candidates, draws): a figure's change for one column's draws `z`, linear on each side of the plan through
    its P10 move and its P90 move (each: where it landed in draws, the figure's change there, and where it would
    have landed without the column's bounds); flat past a move a bound stopped short (the draws are clipped there
    too). A move that gives no finite change counts as none."""
    def side(x: np.ndarray, d: np.ndarray, nominal: float) -> tuple[np.ndarray, np.ndarray]:
        ok = np.isfinite(d) & np.isfinite(x) & (x != 0.0)
        slope = np.where(ok, d / np.where(ok, x, 1.0), 0.0)
        stopped = np.abs(x) < abs(nominal) * (1.0 - 1e-9)
        return slope[:, None], np.where(stopped, np.abs(x), np.inf)[:, None]

    s_lo, cap_lo = side(*low)
    s_hi, cap_hi = side(*high)
    zz = z[None, :]
    return np.where(zz < 0.0, s_lo * np.maximum(zz, -cap_lo), s_hi * np.minimum(zz, cap_hi))


def joined_estimate(a: Estimate, b: Estimate) -> Estimate:
    return Estimate(*(np.concatenate((getattr(a, f), getattr(b, f))) for f in
                      ("total_cost_usd", "quality_loss", "log_cost_moves", "loss_moves")))
