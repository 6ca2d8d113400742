"""Dense or mixture-of-experts: each architecture a search holds, its own Pareto front and its pick for the question,
with the pick's total and active parameters (the Decide page and its PDF say which answers the question)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.decision.search import MAX_PARETO_POINTS, Candidates, ParetoPoint, pareto_front, pick, thin
from simulator.resolve import resolve
from simulator.scenario import Scenario

DENSE, MOE = "dense", "mixture-of-experts"  # the architectures a search may hold, as the pages and PDFs name them


@dataclass(frozen=True)
class Architecture:
    """One architecture's candidates in a search: "dense" or "mixture-of-experts"."""

    name: str
    feasible: int
    pick: ParetoPoint | None  # its plan for the objective (least loss within the budget, or least cost reaching the
    #                           target), None where none of its candidates meets it
    front: tuple[ParetoPoint, ...]
    params: tuple[float, float] | None = None  # (total, active) parameters of the pick

    def to_dict(self) -> dict[str, Any]:
        point = (None if self.pick is None else {"total_cost_usd": self.pick.total_cost_usd,
                                                 "quality_loss": self.pick.quality_loss, "scenario": self.pick.choice,
                                                 "total_params": self.params[0], "active_params": self.params[1]})
        return {"name": self.name, "feasible": self.feasible, "pick": point,
                "pareto": [{"total_cost_usd": p.total_cost_usd, "quality_loss": p.quality_loss, "scenario": p.choice}
                           for p in self.front]}


ARCHITECTURE_KEY = "model.moe_experts"  # the searched key that tells a mixture-of-experts candidate from a dense one


def architecture_of(scenario: Scenario) -> str:
    """DENSE or MOE: whether the scenario's model has routed experts."""
    return MOE if scenario.model.moe_experts > 0 else DENSE


@functools.lru_cache(maxsize=64)
def model_params(model_json: str) -> tuple[float, float]:
    """(total, active) parameters of a model section alone, as the resolver counts them for every plan (its
    `params` and `active_params` columns); cached by value since a page re-picks among the same candidates."""
    cols = resolve({"model": json.loads(model_json)}).cols
    return float(cols["params"][0]), float(cols["active_params"][0])


def architectures(c: Candidates, max_days: float, objective: str, budget_usd: float, target: float | None,
                  params_of_choice: Callable[[dict[str, Any]], tuple[float, float]] | None = None
                  ) -> tuple[Architecture, ...]:
    """Each architecture the search holds (DENSE, MOE), its front and its pick among the candidates feasible within
    `max_days` (the fronts computed once per candidates and longest training), the pick's (total, active) parameters
    where `params_of_choice` counts them; () when the search has one."""
    if ARCHITECTURE_KEY not in c.codes or len(c.values[ARCHITECTURE_KEY]) < 2:
        return ()
    ok, cost, loss, _ = c.view(max_days)
    experts_ok = c.column(ARCHITECTURE_KEY, ok)
    experts = np.unique(experts_ok)
    by_value = dict(zip(experts.tolist(), c.group_fronts(ARCHITECTURE_KEY, max_days), strict=True))
    empty = np.zeros(0, dtype=np.intp)
    dense = by_value.get(0, empty)
    moe = np.concatenate([f for v, f in by_value.items() if v > 0] or [empty])
    out = []
    for name, front, feasible in ((DENSE, dense, int(np.sum(experts_ok == 0))),
                                  (MOE, moe, int(np.sum(experts_ok > 0)))):
        if len(by_value) > 2 and name == MOE:  # several expert counts: their joint front
            front = front[pareto_front(cost[front], loss[front])]
        j = pick(cost[front], loss[front], objective, budget_usd, target) if front.size else None
        points = tuple(ParetoPoint(float(cost[i]), float(loss[i]), c.choice(int(ok[i])))
                       for i in front[thin(np.arange(front.size), MAX_PARETO_POINTS)])
        chosen = None if j is None else ParetoPoint(float(cost[front[j]]), float(loss[front[j]]),
                                                    c.choice(int(ok[front[j]])))
        counted = None if chosen is None or params_of_choice is None else params_of_choice(chosen.choice)
        out.append(Architecture(name, feasible, chosen, points, counted))
    return tuple(out)
