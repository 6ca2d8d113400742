"""A recommendation that respects risk: the best plan whose chance of going over the budget (or of a loss above the
quality target) is within the user's tolerance (`decision.max_prob_over_budget`, `decision.max_prob_over_target`).

The chance of every candidate is estimated without a Monte Carlo per candidate. Each candidate's resolved row is
moved one uncertain column at a time to that column's P10 and P90 (`simulator.evaluator.perturbations`, the same
columns the ranges, the tornado and the Monte Carlo move: `uncertain_columns`), all candidates × moves in one
vectorised `evaluate_columns` call. Each column's two moves give its response (of log total cost, and of loss) to
its standard draw z, taken as linear on each side of the plan (through the P10 move below, the P90 move above; flat
past a move a bound stopped short, as a draw is clipped there). The responses are summed over the columns for the
Monte Carlo's own standard draws (`standard_draws`: the devices' fitted correlations, the model-error terms'
Student-t tails), so a one-sided or heavy-tailed term (a run never takes less than its steps; a quantization loss
never below none) shapes the chance as it does in the Monte Carlo, at the cost of a matrix of candidates × draws,
not of the model. The best candidate within the tolerance is then checked by the Monte Carlo itself
(`simulator.decision.uncertainty.monte_carlo`); where that chance exceeds the tolerance beyond its sampling error,
the next safer candidate is checked, a few at most."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator import model_error
from simulator.catalog import HardwareSpec
from simulator.correlations import correlation_matrix
from simulator.decision.search import COST, LOSS, pick
from simulator.decision.uncertainty import MonteCarlo, standard_draws
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

SAMPLING_Z = 2.0  # a Monte Carlo chance above the tolerance by more than 2 standard errors is over it
MAX_CHECKS = 4  # Monte Carlo checks of the risk-aware pick before giving up on a confirmed one
BUDGET, TARGET = "budget", "target"  # which chance the tolerance bounds
# the risk-neutral pick, where it is not the recommendation, is drawn only to say its chance: at most this many draws
# (the default decision.samples; its chance then to about ±1 point), so a 50,000-draw question pays for one plan
NEUTRAL_SAMPLES = 2000


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
    return 1.0 - np.mean(within, axis=1) if within.shape[1] else np.where(within.all(axis=1), 0.0, 1.0)


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
    per_point = [perturbations({k: wide[k][i:i + 1] for k in spreads}, spread) for i in range(n)]
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


@dataclass(frozen=True)
class Checked:
    """One plan and its chance of exceeding the bound: estimated, and drawn by the Monte Carlo where it was run."""

    choice: dict[str, Any]
    total_cost_usd: float
    quality_loss: float
    estimated: float
    monte_carlo: float | None  # None: not drawn
    within: bool | None  # the Monte Carlo chance within the tolerance (plus sampling error); None: not drawn

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.choice, "total_cost_usd": self.total_cost_usd, "quality_loss": self.quality_loss,
                "chance_estimated": self.estimated, "chance_monte_carlo": self.monte_carlo,
                "within_tolerance": self.within}


@dataclass(frozen=True)
class RiskAware:
    """How the recommendation respects the tolerance: the plan picked on predicted values alone (risk-neutral) and
    the risk-aware picks the Monte Carlo checked, in order (the recommendation is the last accepted one)."""

    bound: str  # BUDGET or TARGET
    tolerance: float
    neutral: Checked
    checks: tuple[Checked, ...]
    samples: int

    @property
    def confirmed(self) -> bool:
        """The Monte Carlo drew the recommendation within the tolerance (plus sampling error)."""
        return self.checks[-1].within is True

    @property
    def recommended(self) -> Checked:
        """The last check where it passed or was not drawn, else the one the Monte Carlo found safest."""
        if self.checks[-1].within is not False:
            return self.checks[-1]
        return min(self.checks, key=lambda c: (c.monte_carlo, c.estimated))

    @property
    def differs(self) -> bool:
        return self.recommended.choice != self.neutral.choice

    def to_dict(self) -> dict[str, Any]:
        return {"chance_of": "going over the budget" if self.bound == BUDGET else "a loss above the quality target",
                "tolerance": self.tolerance, "sampling_allowance": allowance(self.tolerance, self.samples),
                "confirmed_by_monte_carlo": self.confirmed, "recommended": self.recommended.to_dict(),
                "risk_neutral": self.neutral.to_dict(), "checked": [c.to_dict() for c in self.checks],
                "method": "chance estimated for every point of the Pareto front (and of the refinement around the "
                          "pick) from the one-at-a-time P10/P90 moves of every uncertain input (each input's response "
                          "linear on each side of the plan), summed over the Monte Carlo's own draws (correlations, "
                          "Student-t tails); the pick checked by the Monte "
                          "Carlo, stepping to the next safer plan where it exceeds the tolerance beyond sampling "
                          "error"}


def allowance(tolerance: float, samples: int) -> float:
    """How far a Monte Carlo chance of `samples` draws may lie above `tolerance` by sampling error alone."""
    return SAMPLING_Z * float(np.sqrt(tolerance * (1.0 - tolerance) / samples)) if samples > 0 else 0.0


@dataclass(frozen=True)
class Pool:
    """Candidates of one search with their estimated chances: the risk-aware pick is made among them."""

    choices: list[dict[str, Any]]
    total_cost_usd: np.ndarray
    quality_loss: np.ndarray
    chance: np.ndarray


def pool_of(scenario: Scenario, base: Scenario, choices: list[dict[str, Any]], cost_usd: np.ndarray,
            loss: np.ndarray, devices: Mapping[str, HardwareSpec] | None) -> tuple[Pool, Estimate]:
    """The candidates of the search from `base` (their searched values, the search's cost and loss) with the
    chance the scenario's objective bounds."""
    d = scenario.decision
    est = estimate(base, choices, devices)
    chance = est.prob_over_budget(d.budget_usd) if bound_of(d.objective) == BUDGET else est.prob_over_target(
        np.inf if d.quality_target_loss is None else d.quality_target_loss)
    return Pool(choices, np.asarray(cost_usd, dtype=float), np.asarray(loss, dtype=float), chance), est


def pick_within(pool: Pool, objective: str, budget_usd: float, target_loss: float | None, tolerance: float,
                excluded: np.ndarray | None = None) -> int | None:
    """The objective's pick among the pool's candidates whose estimated chance is within `tolerance` (all of
    them at a tolerance of 1: the risk-neutral pick) and not `excluded`."""
    allowed = np.ones(len(pool.choices), dtype=bool) if tolerance >= 1.0 else pool.chance <= tolerance
    if excluded is not None:
        allowed &= ~excluded
    at = np.flatnonzero(allowed)
    j = pick(pool.total_cost_usd[at], pool.quality_loss[at], objective, budget_usd, target_loss)
    return None if j is None else int(at[j])


def checked_pick(pool: Pool, objective: str, budget_usd: float, target_loss: float | None, tolerance: float,
                 draw: Callable[..., MonteCarlo | None], bound: str
                 ) -> tuple[list[Checked], list[MonteCarlo | None]]:
    """Pick within the tolerance, draw the pick's Monte Carlo (`draw`), and where its chance exceeds the tolerance
    beyond sampling error step to the best plan estimated safer than it, `MAX_CHECKS` picks at most. The checks in
    order, with their Monte Carlos; empty when no candidate is estimated within the tolerance."""
    excluded = np.zeros(len(pool.choices), dtype=bool)
    checks: list[Checked] = []
    drawn: list[MonteCarlo | None] = []
    while len(checks) < MAX_CHECKS:
        j = pick_within(pool, objective, budget_usd, target_loss, tolerance, excluded)
        if j is None:
            break
        mc = draw(pool.choices[j])
        chance = None if mc is None else (mc.prob_over_budget if bound == BUDGET else mc.prob_over_target)
        within = None if chance is None else bool(chance <= tolerance + allowance(tolerance, mc.samples))
        checks.append(Checked(pool.choices[j], float(pool.total_cost_usd[j]), float(pool.quality_loss[j]),
                              float(pool.chance[j]), chance, within))
        drawn.append(mc)
        if within is not False:
            break
        excluded |= pool.chance >= pool.chance[j]  # the next pick is estimated strictly safer
    return checks, drawn


def bound_of(objective: str) -> str:
    """The chance a tolerance bounds for this objective: of going over the budget, or of missing the target."""
    return TARGET if objective == "cheapest_for_quality" else BUDGET


def tolerance_of(scenario: Scenario) -> float:
    d = scenario.decision
    return float(d.max_prob_over_target if bound_of(d.objective) == TARGET else d.max_prob_over_budget)


@dataclass(frozen=True)
class Outcome:
    """The risk-aware search's answer: the recommended candidate (None: none within the tolerance, `reason` says
    why), how it respects the tolerance, its Monte Carlo, and the candidates its refinement evaluated."""

    choice: dict[str, Any] | None
    risk: RiskAware | None
    monte_carlo: MonteCarlo | None
    refined: int  # candidates evaluated by the refinement around the risk-aware pick
    reason: str = ""
    closest: dict[str, Any] | None = None


def respect_risk(scenario: Scenario, pool: Pool, estimated: Estimate, neutral: int,
                 draw: Callable[..., MonteCarlo | None],
                 refine: Callable[[dict[str, Any]], tuple[Pool, Estimate]] | None = None) -> Outcome:
    """The best candidate of `pool` within the scenario's tolerance (`tolerance_of`), checked by `draw` (its Monte
    Carlo; `draw(choice, most)` with at most `most` draws); `neutral`: the position of the risk-neutral pick in the pool. `refine(choice)`: the candidates around
    a choice (with their estimates), added to the pool before the pick, so the refinement respects the tolerance."""
    d = scenario.decision
    bound, tolerance = bound_of(d.objective), tolerance_of(scenario)
    target = d.quality_target_loss
    refined = 0
    if tolerance < 1.0:
        coarse = pick_within(pool, d.objective, d.budget_usd, target, tolerance)
        if coarse is not None and coarse != neutral and refine is not None:
            fine, fine_est = refine(pool.choices[coarse])
            refined = len(fine.choices)
            pool, estimated = _joined(pool, fine), _joined_estimate(estimated, fine_est)
        checks, drawn = checked_pick(pool, d.objective, d.budget_usd, target, tolerance, draw, bound)
    else:  # the risk-neutral pick, drawn once
        mc = draw(pool.choices[neutral])
        chance = None if mc is None else (mc.prob_over_budget if bound == BUDGET else mc.prob_over_target)
        checks = [Checked(pool.choices[neutral], float(pool.total_cost_usd[neutral]),
                          float(pool.quality_loss[neutral]), float(pool.chance[neutral]), chance,
                          None if chance is None else True)]
        drawn = [mc]
    if not checks:
        reason, closest = _none_within(pool, estimated, scenario)
        return Outcome(None, None, None, refined, reason, closest)
    n_samples = next((m.samples for m in drawn if m is not None), 0)
    neutral_check = next((c for c in checks if c.choice == pool.choices[neutral]), None)
    if neutral_check is None:
        mc = draw(pool.choices[neutral], NEUTRAL_SAMPLES)
        chance = None if mc is None else (mc.prob_over_budget if bound == BUDGET else mc.prob_over_target)
        neutral_check = Checked(pool.choices[neutral], float(pool.total_cost_usd[neutral]),
                                float(pool.quality_loss[neutral]), float(pool.chance[neutral]), chance,
                                None if chance is None else bool(chance <= tolerance + allowance(tolerance,
                                                                                                  mc.samples)))
    risk = RiskAware(bound, tolerance, neutral_check, tuple(checks), n_samples)
    at = checks.index(risk.recommended)
    return Outcome(risk.recommended.choice, risk, drawn[at], refined)


def _joined(a: Pool, b: Pool) -> Pool:
    return Pool(a.choices + b.choices, np.concatenate((a.total_cost_usd, b.total_cost_usd)),
                np.concatenate((a.quality_loss, b.quality_loss)), np.concatenate((a.chance, b.chance)))


def _joined_estimate(a: Estimate, b: Estimate) -> Estimate:
    return Estimate(*(np.concatenate((getattr(a, f), getattr(b, f))) for f in
                      ("total_cost_usd", "quality_loss", "log_cost_moves", "loss_moves")))


def _up(x: float, digits: int = 3) -> float:
    """`x` rounded up to `digits` significant figures (a budget or target the user can type, still enough)."""
    scale = 10.0 ** (np.floor(np.log10(abs(x))) - digits + 1) if x else 1.0
    return float(np.ceil(x / scale) * scale)


def _pct(p: float) -> str:
    """A chance as a reader says it: "20%", "less than 1%"."""
    return f"{100 * p:.0f}%" if p >= 0.005 or p == 0 else "less than 1%"


def _none_within(pool: Pool, est: Estimate, scenario: Scenario) -> tuple[str, dict[str, Any] | None]:
    """Why no candidate is within the tolerance, in the user's words, and what to change: the safest candidate
    that meets the objective's constraint, its chance, and a budget (or target) at which one of the pool's
    candidates would be within it (enough, if not the least: the pool holds the plans within the budget)."""
    d = scenario.decision
    bound, tolerance = bound_of(d.objective), tolerance_of(scenario)
    meets = pool.quality_loss <= d.quality_target_loss if bound == TARGET else pool.total_cost_usd <= d.budget_usd
    at = np.flatnonzero(meets)
    safest = int(at[np.argmin(pool.chance[at])]) if at.size else None
    closest = None if safest is None else {"scenario": pool.choices[safest],
                                           "total_cost_usd": float(pool.total_cost_usd[safest]),
                                           "quality_loss": float(pool.quality_loss[safest]),
                                           "chance_estimated": float(pool.chance[safest])}
    if bound == BUDGET:
        knob, amount = INPUTS["decision.max_prob_over_budget"], INPUTS["decision.budget_usd"]
        asked = (f"no plan within the budget of ${d.budget_usd:,.0f} has a chance of going over it of at most "
                 f"{_pct(tolerance)} ({knob.label})")
        needed = float(np.min(est.budget_needed(tolerance)))
        fix_amount = f"raise the {amount.label} to ${_up(needed):,.0f}" if np.isfinite(needed) else ""
    else:
        knob, amount = INPUTS["decision.max_prob_over_target"], INPUTS["decision.quality_target_loss"]
        asked = (f"no plan reaching the quality target of {d.quality_target_loss:.3g} {amount.unit} has a chance "
                 f"of missing it of at most {_pct(tolerance)} ({knob.label})")
        needed = float(np.min(est.target_needed(tolerance)))
        fix_amount = (f"raise the {amount.label} to {_up(needed):.3g} {amount.unit}" if np.isfinite(needed) else "")
    if safest is not None:
        asked += f"; the safest has {_pct(float(pool.chance[safest]))}, for ${pool.total_cost_usd[safest]:,.0f}"
    fix_knob = (f"raise the {knob.label} to at least {_pct(np.ceil(100 * float(pool.chance[safest])) / 100)}"
                if safest is not None else f"raise the {knob.label}")
    return f"{asked}: {' or '.join(x for x in (fix_amount, fix_knob) if x)}", closest
