"""Search the candidates: evaluate every combination in one vectorised sweep, keep the feasible ones, take the
Pareto front of quality against total cost, pick the plan the objective asks for, and refine it locally."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.catalog import HardwareSpec
from simulator.decision.space import candidate_inputs
from simulator.inputs import FIGURES
from simulator.keys import split_key
from simulator.scenario import Scenario
from simulator.sweeps import sweep_arrays

COST = "decision.total_cost_usd"
LOSS = "quality.loss"
DAYS = "training.wall_days"
KEPT = (COST, LOSS, DAYS, "training.fits_memory")


@dataclass(frozen=True)
class Candidates:
    """The searched values and the kept figures of every candidate, as arrays. None of them depends on the
    budget, objective, quality target or longest training (only the horizon moves a cost), so a page that changes
    only those re-picks from the same candidates instead of evaluating them again."""

    codes: dict[str, np.ndarray]  # searched key -> each row's position among `values` (int8/int16: a few MB)
    values: dict[str, np.ndarray]  # searched key -> the grid's values
    figures: dict[str, np.ndarray]
    valid: np.ndarray  # breaks no rule and fits in memory
    broken: np.ndarray  # 0, else 1 + the index in simulator.inputs.ERRORS of a rule the row breaks
    _views: dict[float, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False, compare=False)
    _groups: dict[tuple[str, float], tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.valid)

    @property
    def choices(self) -> dict[str, np.ndarray]:
        """Searched key -> each row's value (decoded on each call: the codes are what is kept)."""
        return {k: self.values[k][codes] for k, codes in self.codes.items()}

    def column(self, key: str, rows: np.ndarray) -> np.ndarray:
        """The values of searched key `key` on `rows` (positions or a mask)."""
        return self.values[key][self.codes[key][rows]]

    def feasible(self, max_days: float) -> np.ndarray:
        """Valid, trained within `max_days`, with a finite total cost (it serves its traffic) and loss."""
        with np.errstate(invalid="ignore"):
            return (self.valid & (self.figures[DAYS] <= max_days) & np.isfinite(self.figures[COST])
                    & np.isfinite(self.figures[LOSS]))

    def view(self, max_days: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows that are feasible, their total cost, their loss, the Pareto front as positions among them),
        computed once per longest training time: a new budget or target picks from the front alone."""
        if max_days not in self._views:
            ok = np.flatnonzero(self.feasible(max_days))
            cost, loss = self.figures[COST][ok], self.figures[LOSS][ok]
            self._views[max_days] = (ok, cost, loss, pareto_front(cost, loss))
        return self._views[max_days]

    def group_fronts(self, key: str, max_days: float) -> tuple[np.ndarray, ...]:
        """Per value of searched key `key` (ascending), the Pareto front of the feasible rows holding it, as positions
        among `view(max_days)`'s feasible rows; computed once per longest training time, like `view`."""
        if (key, max_days) not in self._groups:
            ok, cost, loss, _ = self.view(max_days)
            values = self.column(key, ok)
            fronts = []
            for v in np.unique(values):
                rows = np.flatnonzero(values == v)
                fronts.append(rows[pareto_front(cost[rows], loss[rows])])
            self._groups[key, max_days] = tuple(fronts)
        return self._groups[key, max_days]

    def choice(self, i: int) -> dict[str, Any]:
        out = {}
        for key, codes in self.codes.items():
            v = self.values[key][codes[i]]
            out[key] = v.item() if isinstance(v, np.generic) else v
        return out


# Which parts of a plan each scenario section moves. Training cost, days and memory follow the model and the
# training run; serving cost follows the model, its compression and its deployment; the loss follows the model,
# its tokens and its compression. Total cost = training cost + serving cost and the loss is its own, so the product
# of the searched values is evaluated as three much smaller sweeps and combined exactly (see `evaluate_candidates`).
PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # part -> (sections it depends on, figures kept)
    "training": (("model", "training", "cluster"), ("training.cost_usd", DAYS, "training.fits_memory")),
    "serving": (("model", "compression", "serving"), ("decision.serving_cost_usd",)),
    "quality": (("model", "training", "compression"), (LOSS,)),
}


def _product_index(shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Each row's position along `axis` of the row-major product of `shape` (repeat and tile, no unravel)."""
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    return np.tile(np.repeat(np.arange(shape[axis], dtype=_code_dtype(shape[axis])), inner), outer)


def _code_dtype(n: int) -> type:
    """The smallest integer type that numbers n values (a candidate's choice is kept as its position)."""
    return np.int8 if n < 128 else np.int16 if n < 32768 else np.int32


def _whole(base: Scenario, space: Mapping[str, Sequence[Any]],
           devices: Mapping[str, HardwareSpec] | None) -> Candidates:
    """Every combination in one sweep (brute force): any searched key, any family."""
    keep = [k for k in KEPT if k in FIGURES]
    arrays = sweep_arrays(base, space, devices, keep=keep)
    codes, values = {}, {}
    for key in space:  # each row's value as its position among the values the sweep holds
        values[key], inverse = np.unique(np.asarray(arrays[key]), return_inverse=True)
        codes[key] = inverse.astype(_code_dtype(len(values[key])))
    figures = {key: np.asarray(arrays[key], dtype=float) for key in keep}
    valid = np.asarray(arrays["valid"]) & (figures["training.fits_memory"] > 0)
    return Candidates(codes, values, figures, valid, np.asarray(arrays["reason"].codes, dtype=np.int16))


def evaluate_candidates(base: Scenario, space: Mapping[str, Sequence[Any]],
                        devices: Mapping[str, HardwareSpec] | None = None, factorised: bool = True) -> Candidates:
    """Every combination of `space` with its total cost, loss, training days and validity.

    Factorised (when every searched key's section is one `PARTS` knows): each part is swept over its own keys only,
    the other searched keys held at their first value (choose neutral first values: 16-bit weights, one GPU per
    replica), and each combination takes its parts' figures by index. Exact, because no part's figures depend on
    another part's keys and the rules relate keys within one part; tests check it against `factorised=False`."""
    sections = {split_key(key)[0] for key in space}
    known = set().union(*(parts for parts, _ in PARTS.values()))
    if not factorised or not sections <= known:
        return _whole(base, space, devices)
    keys = list(space)
    shape = tuple(len(space[k]) for k in keys)
    at = {k: _product_index(shape, i) for i, k in enumerate(keys)}
    figures: dict[str, np.ndarray] = {}
    valid = np.ones(int(np.prod(shape, dtype=np.int64)), dtype=bool)
    broken = np.zeros(len(valid), dtype=np.int16)
    for part_sections, kept in PARTS.values():
        mine = [k for k in keys if split_key(k)[0] in part_sections]
        grid = {k: list(space[k]) if k in mine else list(space[k])[:1] for k in keys}
        arrays = sweep_arrays(base, grid, devices, keep=[k for k in kept if k in FIGURES])
        row = (np.ravel_multi_index([at[k] for k in mine], [len(space[k]) for k in mine]) if mine
               else np.zeros(len(valid), dtype=np.intp))
        valid &= np.asarray(arrays["valid"])[row]
        codes = np.asarray(arrays["reason"].codes, dtype=np.int16)
        if codes.any():
            broken = np.where(broken == 0, codes[row], broken)
        for key in kept:
            if key in arrays:
                figures[key] = np.asarray(arrays[key], dtype=float)[row]
    valid &= figures.pop("training.fits_memory") > 0
    figures["training.fits_memory"] = valid.astype(float)
    # as the decision family adds them (simulator/families/decision.py): training plus serving over the horizon
    figures[COST] = figures.pop("training.cost_usd") + figures.pop("decision.serving_cost_usd")
    return Candidates(at, {k: np.asarray(space[k]) for k in keys}, figures, valid, broken)


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


MAX_PARETO_POINTS = 60  # the front is thinned to this many points for the JSON and the chart


@dataclass(frozen=True)
class ParetoPoint:
    total_cost_usd: float
    quality_loss: float
    choice: dict[str, Any]


def thin(indices: np.ndarray, most: int) -> np.ndarray:
    if len(indices) <= most:
        return indices
    return indices[np.unique(np.linspace(0, len(indices) - 1, most).round().astype(int))]
