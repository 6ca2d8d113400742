"""A recommendation that respects risk: the best plan whose chance of going over the budget (or of a loss above the
quality target) is within the user's tolerance (`decision.max_prob_over_budget`, `decision.max_prob_over_target`).

The chance of every candidate is estimated without a Monte Carlo per candidate (simulator/decision/chance.py). The
best candidate within the tolerance is then checked by the Monte Carlo itself
(`simulator.decision.uncertainty.monte_carlo`); where that chance exceeds the tolerance beyond its sampling error,
the next safer candidate is checked, a few at most."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.catalog import HardwareSpec
from simulator.decision.chance import Estimate, estimate, joined_estimate
from simulator.decision.search import pick
from simulator.decision.uncertainty import MonteCarlo
from simulator.inputs import INPUTS
from simulator.scenario import Scenario

SAMPLING_Z = 2.0  # a Monte Carlo chance above the tolerance by more than 2 standard errors is over it
MAX_CHECKS = 4  # Monte Carlo checks of the risk-aware pick before giving up on a confirmed one
BUDGET, TARGET = "budget", "target"  # which chance the tolerance bounds
# the risk-neutral pick, where it is not the recommendation, is drawn only to say its chance: at most this many draws
# (the default decision.samples; its chance then to about ±1 point), so a 50,000-draw question pays for one plan
NEUTRAL_SAMPLES = 2000


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
            pool, estimated = _joined(pool, fine), joined_estimate(estimated, fine_est)
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
