"""Search the candidates: evaluate every combination in one vectorised sweep, keep the feasible ones, take the
Pareto front of quality against total cost, pick the plan the objective asks for, and refine it locally."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.catalog import HardwareSpec
from simulator.decision.space import candidate_inputs
from simulator.families.decision import total_cost_usd
from simulator.inputs import FIGURES
from simulator.scenario import Scenario
from simulator.sweeps import sweep_arrays

COST = "decision.total_cost_usd"
LOSS = "quality.loss"
DAYS = "training.wall_days"
MONTHLY = "serving.monthly_cost_usd"
KEPT = (LOSS, DAYS, "training.fits_memory", "training.cost_usd", MONTHLY)


@dataclass(frozen=True)
class Candidates:
    """The searched values and the kept figures of every candidate, as arrays. None of them depends on the
    decision section (budget, horizon, objective, target, longest training), so a page that changes only those
    re-picks from the same candidates instead of evaluating them again."""

    choices: dict[str, np.ndarray]  # searched key -> each row's value
    figures: dict[str, np.ndarray]
    valid: np.ndarray  # breaks no rule and fits in memory

    @property
    def n(self) -> int:
        return len(self.valid)

    def total_cost_usd(self, horizon_months: float) -> np.ndarray:
        return total_cost_usd(self.figures["training.cost_usd"], self.figures.get(MONTHLY), horizon_months)

    def feasible(self, horizon_months: float, max_days: float) -> np.ndarray:
        """Valid, trained within `max_days`, with a finite total cost and loss."""
        with np.errstate(invalid="ignore"):
            return (self.valid & (self.figures[DAYS] <= max_days) & np.isfinite(self.total_cost_usd(horizon_months))
                    & np.isfinite(self.figures[LOSS]))

    def choice(self, i: int) -> dict[str, Any]:
        out = {}
        for key, values in self.choices.items():
            v = values[i]
            out[key] = v.item() if isinstance(v, np.generic) else v
        return out


def evaluate_candidates(base: Scenario, space: Mapping[str, Sequence[Any]],
                        devices: Mapping[str, HardwareSpec] | None = None) -> Candidates:
    keep = [k for k in KEPT if k in FIGURES]
    arrays = sweep_arrays(base, space, devices, keep=keep)
    choices = {key: np.asarray(arrays[key]) for key in space}
    figures = {key: np.asarray(arrays[key], dtype=float) for key in keep}
    valid = np.asarray(arrays["valid"]) & (figures["training.fits_memory"] > 0)
    return Candidates(choices, figures, valid)


def pareto_front(cost: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Indices of the plans no other plan beats on both cost and loss, cheapest first (each one strictly better
    in loss than every cheaper one)."""
    order = np.lexsort((loss, cost))  # by cost, then loss
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], loss[order][:-1])))
    return order[loss[order] < best_before]


def pick(cost: np.ndarray, loss: np.ndarray, objective: str, budget_usd: float,
         target_loss: float | None) -> int | None:
    """Index of the recommended plan among these (all feasible), or None when no plan meets the constraint."""
    if objective == "cheapest_for_quality":
        ok = np.flatnonzero(loss <= (np.inf if target_loss is None else target_loss))
        if ok.size == 0:
            return None
        return int(ok[np.lexsort((loss[ok], cost[ok]))[0]])
    ok = np.flatnonzero(cost <= budget_usd)
    if ok.size == 0:
        return None
    return int(ok[np.lexsort((cost[ok], loss[ok]))[0]])


def refinement_grid(choice: Mapping[str, Any], space: Mapping[str, Sequence[Any]],
                    steps: int = 7) -> dict[str, list[Any]]:
    """A finer grid of model size and tokens between the recommendation's neighbours in the coarse grid, with its
    other choices fixed: the coarse grid's spacing no longer limits how close to the optimum the plan lands."""
    grid: dict[str, list[Any]] = {k: [v] for k, v in choice.items()}
    for key in ("model.params", "training.tokens"):
        if key not in space or key not in choice:
            continue
        coarse = np.sort(np.asarray(space[key], dtype=float))
        at = int(np.searchsorted(coarse, float(choice[key])))
        lo = coarse[max(at - 1, 0)]
        hi = coarse[min(at + 1, len(coarse) - 1)]
        fine = np.geomspace(lo, hi, steps) if hi > lo else np.array([lo])
        grid[key] = sorted({float(f"{v:.3g}") for v in fine} | {float(choice[key])})
    return grid


def scenario_of(base_inputs: Mapping[str, Mapping[str, Any]], choice: Mapping[str, Any],
                devices: Mapping[str, HardwareSpec] | None = None, name: str = "") -> Scenario:
    data: dict[str, Any] = candidate_inputs(base_inputs, choice)
    if name:
        data["name"] = name
    return Scenario.from_dict(data, devices)
