"""decide(scenario) -> Decision: one coarse sweep over about a million candidates, the Pareto front, the pick,
a local refinement around it, then the Monte Carlo, the tornado and the Sobol' indices of the recommended plan."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.catalog import HardwareSpec
from simulator.decision.architectures import Architecture, architecture_of, architectures, model_params
from simulator.decision.risk import Outcome, RiskAware, pool_of, respect_risk
from simulator.decision.search import (
    COST,
    DAYS,
    LOSS,
    MAX_PARETO_POINTS,
    Candidates,
    ParetoPoint,
    evaluate_candidates,
    pareto_front,
    pick,
    refinement_grid,
    scenario_of,
    thin,
)
from simulator.decision.sensitivity import GlobalSensitivity, global_sensitivity
from simulator.decision.space import SEARCHED, base_inputs, candidate_inputs, open_space
from simulator.decision.uncertainty import MonteCarlo, Swing, monte_carlo, tornado
from simulator.errors import ScenarioError
from simulator.evaluator import evaluate, scenario_device_correlations, scenario_rows, scenario_spreads
from simulator.inputs import INPUTS
from simulator.keys import split_key
from simulator.plan import Plan
from simulator.scenario import Scenario

SOBOL_OUTPUTS = (COST, DAYS, LOSS)  # the figures the global sensitivity explains


@dataclass(frozen=True)
class NoPlan:
    """Why no candidate meets the objective, and what would change that."""

    reason: str
    closest: dict[str, Any] | None  # the candidate nearest to meeting it: its choices, cost and loss


@dataclass(frozen=True)
class Decision:
    scenario: Scenario  # the question as asked
    objective: str
    budget_usd: float
    target_loss: float | None
    recommendation: Plan | None
    missing: NoPlan | None
    pareto: tuple[ParetoPoint, ...]
    candidates_evaluated: int
    feasible: int
    search_s: float
    uncertainty: MonteCarlo | None
    sensitivity: tuple[Swing, ...]
    sample: dict[str, np.ndarray]  # a thinned sample of feasible candidates (cost, loss) for the chart
    devices: Mapping[str, HardwareSpec] | None = None  # the caller's calibrated devices the plan may run on
    global_sensitivity: GlobalSensitivity | None = None  # Sobol' indices of total cost, training days and loss
    risk: RiskAware | None = None  # how the recommendation respects the tolerance, beside the risk-neutral pick
    # dense or mixture-of-experts: each architecture's own front and its pick by the same objective among the coarse
    # candidates (empty where the search has one architecture), so a page can say which answers the question and
    # draw both
    architectures: tuple[Architecture, ...] = ()

    @property
    def total_cost_usd(self) -> float | None:
        return None if self.recommendation is None else float(self.recommendation.value(COST))

    @property
    def quality_loss(self) -> float | None:
        return None if self.recommendation is None else float(self.recommendation.value(LOSS))

    @property
    def architecture(self) -> str | None:
        """The recommendation's architecture (architectures.DENSE or MOE), None without one."""
        return None if self.recommendation is None else architecture_of(self.recommendation.scenario)

    def to_dict(self) -> dict[str, Any]:
        rec: dict[str, Any] | None = None
        if self.recommendation is not None:
            plan = self.recommendation.to_dict()
            rec = {"scenario": self.recommendation.scenario.inputs(), "figures": plan,
                   "total_cost_usd": self.total_cost_usd, "quality_loss": self.quality_loss}
        return {
            "name": self.scenario.name,
            "objective": self.objective,
            "budget_usd": self.budget_usd,
            "quality_target_loss": self.target_loss,
            "recommendation": rec,
            "no_plan": None if self.missing is None else {"reason": self.missing.reason,
                                                           "closest": self.missing.closest},
            "pareto": [{"total_cost_usd": p.total_cost_usd, "quality_loss": p.quality_loss,
                        "scenario": p.choice} for p in self.pareto],
            "candidates_evaluated": self.candidates_evaluated,
            "candidates_feasible": self.feasible,
            "search_s": self.search_s,
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
            "sensitivity": [s.to_dict() for s in self.sensitivity],
            "global_sensitivity": None if self.global_sensitivity is None else self.global_sensitivity.to_dict(),
            "risk": None if self.risk is None else self.risk.to_dict(),
            "architectures": [a.to_dict() for a in self.architectures],
        }


def _no_plan(c: Candidates, ok: np.ndarray, cost: np.ndarray, objective: str, budget_usd: float,
             target: float | None, why_none: Callable[[], NoPlan]) -> NoPlan:
    if ok.size == 0:
        return why_none()
    loss = c.figures[LOSS][ok]
    if objective == "cheapest_for_quality":
        j = int(np.argmin(loss))
        return NoPlan(f"no candidate reaches a loss of {target:.3g}; the best reachable is {loss[j]:.3g} for "
                      f"${cost[j]:,.0f}: raise the target loss or the longest training time",
                      _closest(c, int(ok[j]), cost[j]))
    j = int(np.argmin(cost))
    return NoPlan(f"no candidate fits a budget of ${budget_usd:,.0f}; the cheapest feasible plan costs "
                  f"${cost[j]:,.0f}: raise decision.budget_usd to at least that, or shorten "
                  "decision.horizon_months or the traffic", _closest(c, int(ok[j]), cost[j]))


def _closest(c: Candidates, i: int, cost_usd: float) -> dict[str, Any]:
    return {"scenario": c.choice(i), "total_cost_usd": float(cost_usd), "quality_loss": float(c.figures[LOSS][i])}


# the candidate that best shows why none is feasible: the smallest model, on the most GPUs, with the fewest weight
# bits (the one likeliest to fit in memory, serve its batch and train fast); keys a grid lacks are skipped
_GENEROUS = (("model.params", 1), ("serving.gpus_per_replica", -1), ("compression.weight_bits", 1),
             ("cluster.gpus", -1), ("cluster.pp", -1), ("cluster.tp", -1))


def _example(c: Candidates, rows: np.ndarray) -> int:
    """The most generous candidate among `rows` (a boolean mask or positions), by `_GENEROUS`."""
    at = np.flatnonzero(rows) if rows.dtype == bool else rows
    keys = [sign * np.asarray(c.column(k, at), dtype=float) for k, sign in reversed(_GENEROUS) if k in c.codes]
    return int(at[np.lexsort(keys)[0]]) if keys else int(at[0])


def _describe(choice: Mapping[str, Any]) -> str:
    """A candidate in a few words: "0.3B parameters, 8 GPUs per replica, 4-bit weights"."""
    parts = [f"{choice['model.params'] / 1e9:.3g}B parameters"] if "model.params" in choice else []
    if "serving.gpus_per_replica" in choice:
        gpus = int(choice["serving.gpus_per_replica"])
        parts.append(f"{gpus} GPU{'s' if gpus > 1 else ''} per replica")
    if "compression.weight_bits" in choice:
        parts.append(f"{int(choice['compression.weight_bits'])}-bit weights")
    return ", ".join(parts) or "any candidate"


class _Explainer:
    """Why no candidate of a search is feasible, in the user's words: which condition no candidate meets (breaks
    no rule, fits in memory, has a total cost, trains in time), and what the plan of one candidate that fails it
    says to change (its rule's message, or its serving and finance warnings: a batch that does not fit names the
    largest that does, a purchase without a price asks for one)."""

    def __init__(self, c: Candidates, scenario: Scenario, grid: Mapping[str, Sequence[Any]],
                 devices: Mapping[str, HardwareSpec] | None, max_days: float):
        self.c, self.scenario, self.grid, self.devices, self.max_days = c, scenario, grid, devices, max_days

    def _scenario(self, i: int) -> Scenario:
        return scenario_of(base_inputs(self.scenario, searched=tuple(self.grid)), self.c.choice(i), self.devices)

    def _broken(self) -> str:
        """Why no candidate is valid: the rule most of them break, told by one of them, or (where some break none)
        the training memory of the most generous of those."""
        lawful = self.c.broken == 0
        if not lawful.any():
            common = int(np.bincount(self.c.broken).argmax())
            try:
                self._scenario(_example(self.c, self.c.broken == common))
            except ScenarioError as exc:
                return (f"every one of the {self.c.n:,} candidates breaks a rule, most of them this one: "
                        f"{exc.problems[0]}")
            return f"every one of the {self.c.n:,} candidates breaks a rule relating its inputs"
        plan = evaluate(self._scenario(_example(self.c, lawful)), self.devices)
        hw = plan.hardware
        return (f"no candidate's training fits in the memory of the {hw.display_name} ({hw.hbm_GB:g} GB): for example "
                f"{plan.scenario.model.params / 1e9:.3g}B parameters on {plan.scenario.cluster.gpus:,} GPUs needs "
                f"{plan.value('training.memory_per_gpu_gb'):,.0f} GB per GPU; lower the "
                f"{INPUTS['model.seq_len'].label} or the {INPUTS['training.micro_batch_seqs'].label}, or choose an "
                f"{INPUTS['cluster.accelerator'].label.lower()} with more memory")

    def _uncosted(self, rows: np.ndarray) -> str:
        i = _example(self.c, rows)
        plan = evaluate(self._scenario(i), self.devices)
        said = [w.text for w in plan.warnings if split_key(w.key)[0] in ("serving", "finance")]
        return f"for {_describe(self.c.choice(i))}: {'; '.join(said) if said else 'its serving cost is undefined'}"

    def __call__(self) -> NoPlan:
        c = self.c
        usable = c.valid & np.isfinite(c.figures[LOSS])
        if not usable.any():
            return NoPlan(self._broken(), None)
        costed = usable & np.isfinite(c.figures[COST])
        with np.errstate(invalid="ignore"):
            timely = usable & (c.figures[DAYS] <= self.max_days)
        if not costed.any():
            return NoPlan("no candidate's serving can be costed, so none has a total cost; "
                          f"{self._uncosted(timely if timely.any() else usable)}", None)
        fastest = int(np.flatnonzero(costed)[np.argmin(c.figures[DAYS][costed])])
        days = float(c.figures[DAYS][fastest])
        closest = _closest(c, fastest, float(c.figures[COST][fastest]))
        longest = INPUTS["decision.max_training_days"]
        within = f"within the {longest.label.lower()} of {self.max_days:,.4g} {longest.unit}"
        fix = (f"raise {longest.label} to at least {np.ceil(days * 10) / 10:,.4g} {longest.unit}, or choose a "
               "faster accelerator")
        if not timely.any():
            return NoPlan(f"no candidate trains {within}: the fastest takes {days:,.1f} days; {fix}", closest)
        return NoPlan(f"the candidates that train {within} have no total cost, because their serving cannot be "
                      f"costed ({self._uncosted(timely)}), and those that have one take at least {days:,.1f} days "
                      f"to train: {fix}, or change the serving as said", closest)


def search_base(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None = None,
                searched: Sequence[str] = SEARCHED) -> Scenario:
    """The scenario every candidate starts from: the user's inputs less what the search chooses (`searched`) and
    the question. It is no plan, only where the rows start: the rules relating inputs are checked on every candidate
    (in the sweep), not on it, so a legal scenario whose own values are searched away never refuses the search."""
    return Scenario.from_dict(base_inputs(scenario, question=False, searched=searched), devices, rules=False)


def candidates_for(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None = None,
                   space: Mapping[str, Sequence[Any]] | None = None) -> Candidates:
    """Every candidate of `space` (default: `default_space()`) that the scenario leaves open (`open_space`),
    evaluated once; reusable for any question."""
    grid = open_space(scenario, space)
    return evaluate_candidates(search_base(scenario, devices, tuple(grid)), grid, devices)


def decide(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None = None,
           space: Mapping[str, Sequence[Any]] | None = None, refine: bool = True,
           candidates: Candidates | None = None) -> Decision:
    """The decision for `scenario`'s question (its `decision` section) over `space` (default: `default_space()`).
    `candidates`: the same space already evaluated for this scenario (`candidates_for`), e.g. cached by a page."""
    d = scenario.decision
    target = d.quality_target_loss
    t0 = time.perf_counter()
    grid = open_space(scenario, space)
    coarse = candidates if candidates is not None else candidates_for(scenario, devices, grid)
    ok, cost, loss, front = coarse.view(d.max_training_days)
    base_of_grid = base_inputs(scenario, searched=tuple(grid))
    kinds = architectures(coarse, d.max_training_days, d.objective, d.budget_usd, target,
                          lambda choice: model_params(json.dumps(candidate_inputs(base_of_grid, choice).get("model", {}),
                                                              sort_keys=True)))
    # the objective's plan is on the front (least loss within a budget, least cost reaching a loss), so it is
    # picked among the front's points only
    j = pick(cost[front], loss[front], d.objective, d.budget_usd, target)
    at = None if j is None else int(front[j])
    n_eval = coarse.n
    points = [ParetoPoint(float(cost[j]), float(loss[j]), coarse.choice(int(ok[j]))) for j in front]
    best: dict[str, Any] | None = None if at is None else coarse.choice(int(ok[at]))
    best_at = (float(cost[at]), float(loss[at])) if at is not None else (np.nan, np.nan)
    if best is not None and refine:
        base = search_base(scenario, devices, tuple(grid))
        fine = evaluate_candidates(base, refinement_grid(best, grid), devices)
        n_eval += fine.n
        fok = np.flatnonzero(fine.feasible(d.max_training_days))
        pool_cost = np.concatenate(([cost[at]], fine.figures[COST][fok]))
        pool_loss = np.concatenate(([loss[at]], fine.figures[LOSS][fok]))
        j = pick(pool_cost, pool_loss, d.objective, d.budget_usd, target)
        if j is not None and j > 0:
            best = fine.choice(int(fok[j - 1]))
            best_at = (float(pool_cost[j]), float(pool_loss[j]))
            points.append(ParetoPoint(*best_at, best))
    outcome = None if best is None else _risk_aware(scenario, devices, grid, coarse, best, best_at, refine)
    if outcome is not None:
        n_eval += outcome.refined
        best = outcome.choice
        if outcome.risk is not None and outcome.risk.differs:
            rec = outcome.risk.recommended
            points.append(ParetoPoint(rec.total_cost_usd, rec.quality_loss, rec.choice))
    search_s = time.perf_counter() - t0
    if points:  # the front again, with the refined point among it
        pc = np.array([p.total_cost_usd for p in points])
        pl = np.array([p.quality_loss for p in points])
        points = [points[i] for i in thin(pareto_front(pc, pl), MAX_PARETO_POINTS)]
    shown = thin(np.arange(ok.size), 4000)
    sample = {"total_cost_usd": cost[shown], "quality_loss": loss[shown]}
    if best is None:
        missing = NoPlan(outcome.reason, outcome.closest) if outcome is not None else _no_plan(
            coarse, ok, cost, d.objective, d.budget_usd, target,
            _Explainer(coarse, scenario, grid, devices, d.max_training_days))
        return Decision(scenario, d.objective, d.budget_usd, target, None, missing, tuple(points), n_eval,
                        int(ok.size), search_s, None, (), sample, devices, architectures=kinds)
    rec_scenario = scenario_of(base_inputs(scenario, searched=tuple(grid)), best, devices, name=scenario.name)
    plan = evaluate(rec_scenario, devices)
    spread = scenario_spreads(rec_scenario, devices)  # the devices' and the model's own error
    cols = scenario_rows([rec_scenario], devices)
    corr = scenario_device_correlations(rec_scenario, devices)
    mc = outcome.monte_carlo if outcome is not None and outcome.monte_carlo is not None else (
        monte_carlo(cols, spread, d.budget_usd, d.samples, d.seed, COST, LOSS, corr, target) if d.samples > 0
        else None)
    bars = tornado(cols, spread, COST, LOSS)
    indices = global_sensitivity(cols, spread, SOBOL_OUTPUTS, d.sobol_samples, d.seed, corr)
    return Decision(scenario, d.objective, d.budget_usd, target, plan, None, tuple(points), n_eval, int(ok.size),
                    search_s, mc, tuple(bars), sample, devices, indices, None if outcome is None else outcome.risk,
                    kinds)


def plan_monte_carlo(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None,
                     most: int | None = None) -> MonteCarlo | None:
    """The Monte Carlo of one plan's scenario for its question (None where decision.samples = 0), with at most
    `most` draws where given."""
    d = scenario.decision
    if d.samples <= 0:
        return None
    return monte_carlo(scenario_rows([scenario], devices), scenario_spreads(scenario, devices), d.budget_usd,
                       min(d.samples, most or d.samples), d.seed, COST, LOSS, scenario_device_correlations(scenario, devices),
                       d.quality_target_loss)


def _meets(cost_usd: np.ndarray, loss: np.ndarray, scenario: Scenario) -> np.ndarray:
    """Which plans meet the objective's constraint on their predicted values (within the budget, or reaching the
    target): the only ones a pick, risk-aware or not, can choose."""
    d = scenario.decision
    if d.objective == "cheapest_for_quality":
        return loss <= (np.inf if d.quality_target_loss is None else d.quality_target_loss)
    return cost_usd <= d.budget_usd


def _risk_aware(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None, grid: Mapping[str, Sequence[Any]],
                coarse: Candidates, neutral: dict[str, Any], neutral_at: tuple[float, float], refine: bool) -> Outcome:
    """The risk-aware recommendation (simulator.decision.risk) among the front's points and the risk-neutral pick
    `neutral` (its total cost and loss `neutral_at`), refined around its own pick when `refine`."""
    d = scenario.decision
    searched = base_inputs(scenario, searched=tuple(grid))
    ok, cost, loss, front = coarse.view(d.max_training_days)
    front = front[_meets(cost[front], loss[front], scenario)]  # only these can be picked
    choices = [coarse.choice(int(ok[j])) for j in front] + [neutral]

    base = search_base(scenario, devices, tuple(grid))
    pool, est = pool_of(scenario, base, choices, np.append(cost[front], neutral_at[0]),
                        np.append(loss[front], neutral_at[1]), devices)

    def around(choice: dict[str, Any]) -> tuple[Any, Any]:
        fine = evaluate_candidates(base, refinement_grid(choice, grid), devices)
        fok = np.flatnonzero(fine.feasible(d.max_training_days))
        fok = fok[_meets(fine.figures[COST][fok], fine.figures[LOSS][fok], scenario)]
        return pool_of(scenario, base, [fine.choice(int(i)) for i in fok], fine.figures[COST][fok],
                       fine.figures[LOSS][fok], devices)

    return respect_risk(scenario, pool, est, len(choices) - 1,
                        lambda c, most=None: plan_monte_carlo(scenario_of(searched, c, devices, name=scenario.name),
                                                              devices, most),
                        around if refine else None)
