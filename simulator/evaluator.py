"""evaluate(scenario) -> Plan: the one place a single scenario's numbers are made, by every registered family
(a plan shows every figure; where a yes/no figure fails, the family's remedies propose nearby plans)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator import model_error
from simulator.catalog import HardwareSpec, device_spreads
from simulator.correlations import pair
from simulator.errors import ScenarioError
from simulator.families import FAMILIES
from simulator.hardware_table import device_prefix, hardware_table, hw_column
from simulator.inputs import FIGURES, INPUTS, WARNINGS
from simulator.keys import split_key
from simulator.model_error import LOG_COLUMNS, Z_P90
from simulator.plan import Figure, Plan, PlanWarning, Suggestion
from simulator.registry import Remedy
from simulator.resolve import (
    DEVICE_INPUTS,
    device_catalog,
    encode_values,
    expand_preset,
    lookup_device,
    resolve_columns,
    row_of,
)
from simulator.scenario import Scenario
from simulator.spreads import spread_terms
from simulator.sweeps import evaluate_columns

__all__ = ["Z_P90", "evaluate", "scenario_rows", "scenario_spreads", "uncertain_columns"]


def scenario_rows(scenarios: list[Scenario], devices: Mapping[str, HardwareSpec] | None = None) -> dict[str, np.ndarray]:
    """Resolved model columns of a few scenarios, one row each, by the same resolver a sweep uses."""
    table = hardware_table(device_catalog(devices))
    n = len(scenarios)
    given: dict[str, np.ndarray] = {}
    tokens = np.full(n, np.nan)
    sections: dict[str, list[Any]] = {}  # each section's object of every scenario, looked up once
    for key, inp in INPUTS.items():
        if inp.column is not None:
            section, name = split_key(key)
            objects = sections.setdefault(section, [getattr(s, section) for s in scenarios])
            given[key] = encode_values(key, [getattr(o, name) for o in objects], table)
    for i, s in enumerate(scenarios):
        tokens[i] = expand_preset(dict(s.given))[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return resolve_columns(given, n, table, tokens) | model_error.unit_columns(n)


def _scenario_devices(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None
                      ) -> list[tuple[str, HardwareSpec]]:
    """(column prefix, HardwareSpec) of every device input of the scenario."""
    return [(device_prefix(inp.column), lookup_device(scenario.value(inp.key), devices, inp.key))
            for inp in DEVICE_INPUTS]


def scenario_device_spreads(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None) -> dict[str, float]:
    """Every device input's spreads (simulator.catalog.device_spreads), keyed by that device's model columns."""
    return {hw_column(prefix, name): v for prefix, spec in _scenario_devices(scenario, devices)
            for name, v in device_spreads(spec).items()}


def scenario_device_correlations(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None
                                 ) -> dict[tuple[str, str], float]:
    """Every device input's correlations between its uncertain columns (HardwareSpec.correlations), keyed by the
    sorted pair of that device's model columns."""
    return {pair(hw_column(prefix, a), hw_column(prefix, b)): r for prefix, spec in _scenario_devices(scenario, devices)
            for (a, b), r in spec.correlations.items()}


def scenario_model_spreads(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None,
                           override: Mapping[str, float] | None = None) -> dict[str, float]:
    """The model-error terms' spreads (simulator.model_error.spreads), each at least the held-out error of the
    calibrated device it runs on (a calibrated device narrows the device's spreads, never the model's)."""
    floors = {inp.key: spec.heldout_error for inp in DEVICE_INPUTS
              if (spec := lookup_device(scenario.value(inp.key), devices, inp.key)).heldout_error is not None}
    return model_error.spreads(floors, override)


def scenario_spreads(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None,
                     override: Mapping[str, float] | None = None) -> dict[str, float]:
    """Every spread of a plan that is not an input's: its devices' (`scenario_device_spreads`) and the model's own
    error (`scenario_model_spreads`), by model column. `override`: model-error σ by column (leave-one-group-out)."""
    return scenario_device_spreads(scenario, devices) | scenario_model_spreads(scenario, devices, override)


def uncertain_columns(cols: Mapping[str, np.ndarray], device_spread: Mapping[str, float]) -> dict[str, float]:
    """Model column -> relative one-sigma spread: the devices' (fitted or assumed) and the model's own error
    (`scenario_spreads`), and the inputs declared with a `spread` (published or assumed). Ranges, the tornado and
    the Monte Carlo all move these and only these."""
    spreads = {k: v for k, v in device_spread.items() if k in cols and v > 0 and model_error.acts(k, cols)}
    spreads |= {inp.column: inp.spread for inp in INPUTS.values() if inp.spread > 0 and inp.column in cols
                and (inp.applies is None or bool(np.any(inp.applies(cols))))}
    return spreads


def clip_to_bounds(rows: dict[str, np.ndarray], moved: Mapping[str, float]) -> None:
    """Keep moved columns within their declared bounds (a fraction stays <= 1), in place."""
    for inp in INPUTS.values():
        if inp.column in moved and inp.high is not None:
            rows[inp.column] = np.minimum(rows[inp.column], inp.high)
    for inp in DEVICE_INPUTS:  # fractions of a peak stay at most 1
        for name in ("gemm_eff_max", "decode_mem_eff", "decode_kv_eff", "elementwise_eff"):
            column = hw_column(device_prefix(inp.column), name)
            if column in rows:
                rows[column] = np.minimum(rows[column], 1.0)


# model-error terms that are inputs (the compression and pruning laws' loss scales): measured on a linear scale
LINEAR_TERMS = frozenset(d.column for d in model_error.DECLARED if d.input_key)


def factor(column: str, spread: float, z: np.ndarray | float) -> np.ndarray:
    """The factor that moves a column by `z` standard draws of its spread, as the Monte Carlo and the Sobol' indices
    draw it: exp(σz) (log-normal, its median the plan's value), except a model-error term measured on a linear scale
    (LINEAR_TERMS: 1 + σz, at least 0, as its residuals were measured and its range moves it)."""
    z = np.asarray(z, dtype=float)
    if column in LINEAR_TERMS:
        return np.maximum(0.0, 1.0 + spread * z)
    return np.exp(spread * z)


def draw_of(column: str, spread: float, ratio: np.ndarray) -> np.ndarray:
    """The inverse of `factor`: how many standard draws of its spread a column moved by `ratio` has moved."""
    ratio = np.asarray(ratio, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ratio - 1.0) / spread if column in LINEAR_TERMS else np.log(ratio) / spread


def move(column: str, spread: float) -> tuple[float, float]:
    """The factors that take a column to its P10 and P90: exp(∓1.2816σ) for a model-error term (log scale, as
    measured), 1 ∓ 1.2816σ for the others (relative spreads; at least 0)."""
    if column in LOG_COLUMNS:
        return float(np.exp(-Z_P90 * spread)), float(np.exp(Z_P90 * spread))
    return max(0.0, 1.0 - Z_P90 * spread), 1.0 + Z_P90 * spread


def perturbations(cols: dict[str, np.ndarray], device_spread: Mapping[str, float],
                  spreads: Mapping[str, float] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """The plan's row, then for each uncertain column a P10 and a P90 row (all other columns as planned):
    rows 2i+1 and 2i+2 move column `names[i]`. `spreads`: the uncertain columns already chosen (several points
    moved alike, whose `cols` hold only those columns); default `uncertain_columns(cols, device_spread)`."""
    spreads = uncertain_columns(cols, device_spread) if spreads is None else spreads
    names = list(spreads)
    n = 1 + 2 * len(names)
    rows = {k: np.repeat(np.asarray(v, dtype=float)[:1], n) for k, v in cols.items()}
    for i, name in enumerate(names):
        low, high = move(name, spreads[name])
        rows[name][1 + 2 * i] *= low
        rows[name][2 + 2 * i] *= high
    clip_to_bounds(rows, spreads)
    return rows, names


def band(values: np.ndarray) -> tuple[float, float]:
    """Root-sum-square of the one-at-a-time moves below and above the plan (inputs taken as independent)."""
    base, moves = values[0], (values[1:] - values[0]).reshape(-1, 2)
    down = np.sqrt(np.sum(np.maximum(0.0, -moves.min(axis=1)) ** 2))
    up = np.sqrt(np.sum(np.maximum(0.0, moves.max(axis=1)) ** 2))
    return float(base - down), float(base + up)


MOVED_REL = 1e-3  # a spread term "moves" a figure when its P10 or P90 shifts the figure by more than 0.1%


def movers(values: np.ndarray, names: list[str]) -> tuple[str, ...]:
    """The spread terms (columns, largest first) whose P10/P90 move the figure by more than MOVED_REL."""
    base = values[0]
    swing = np.abs(values[1:] - base).reshape(-1, 2).max(axis=1) / max(abs(float(base)), 1e-300)
    order = np.argsort(-swing, kind="stable")
    return tuple(names[i] for i in order if swing[i] > MOVED_REL)


def _basis(scenario: Scenario, hw: HardwareSpec) -> str:
    groups = dict(getattr(hw, "provenance_of", {}) or {}) or dict.fromkeys(hw.sources, hw.provenance)
    price = ("datasheet" if "finance.gpu_hour_usd" in scenario.derived else "your input") + f", {hw.price_date}"
    parts = [f"{group} {prov}" for group, prov in groups.items() if group != "price"]
    return f"computed from {hw.id} ({'; '.join(parts)}), price {price}, model constants assumed or published"


def _suggestions(scenario: Scenario, figures: Mapping[str, Figure],
                 devices: Mapping[str, HardwareSpec] | None) -> list[Suggestion]:
    """The nearby plans each family's remedies propose where their yes/no figure failed (registry.Remedy)."""
    out: list[Suggestion] = []
    for remedy in (r for family in FAMILIES for r in family.remedies):
        failed = remedy.figure in figures and not figures[remedy.figure].value
        out += _remedied(scenario, remedy, devices) if failed else []
    return out


def _remedied(scenario: Scenario, remedy: Remedy, devices: Mapping[str, HardwareSpec] | None) -> list[Suggestion]:
    """The first `remedy.most` of the remedy's changes that are valid plans under which its figure holds."""
    valid: list[tuple[str, dict, Scenario]] = []
    for label, change in remedy.changes(scenario):
        try:
            valid.append((label, change, scenario.replace(devices=devices, **change)))
        except ScenarioError:
            continue
    if not valid:
        return []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cols = evaluate_columns(scenario_rows([s for _, _, s in valid], devices), (remedy.figure, remedy.shown))
    kept = [Suggestion(label, change, float(value))
            for (label, change, _), value, ok in zip(valid, cols[remedy.shown], cols[remedy.figure], strict=True) if ok]
    return kept[:remedy.most]


def _warnings(cols: dict[str, np.ndarray], row: dict[str, Any]) -> list[PlanWarning]:
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for rule in WARNINGS:
            if bool(np.asarray(rule.broken(cols))[0]):
                out.append(PlanWarning(rule.code or rule.short, rule.message(row), rule.key))
    return out


def evaluate(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None = None,
             model_spreads: Mapping[str, float] | None = None) -> Plan:
    """Evaluate one scenario. `devices` adds this caller's calibrated accelerators (from profiles);
    `model_spreads` replaces the model-error terms' measured σ by column (leave-one-group-out checks)."""
    hw = lookup_device(scenario.cluster.accelerator, devices)
    cols = scenario_rows([scenario], devices)
    spread = scenario_spreads(scenario, devices, model_spreads)
    rows, names = perturbations(cols, spread)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = evaluate_columns(rows)
    basis = _basis(scenario, hw)
    figures: dict[str, Figure] = {}
    for key, spec in FIGURES.items():
        if key not in out:
            continue
        value = out[key][0]
        value = bool(value) if np.asarray(value).dtype == bool else float(value)
        low = high = None
        moved: tuple[str, ...] = ()
        if spec.ranged and names and np.all(np.isfinite(out[key])):
            low, high = band(np.asarray(out[key], dtype=float))
            moved = movers(np.asarray(out[key], dtype=float), names)
        figures[key] = Figure(value, spec.unit, spec.provenance, spec.how, spec.label, low, high,
                              basis if spec.provenance == "computed" else "", spec.better, moved)
    first = {k: v[:1] for k, v in out.items()}
    row = row_of(first) | {k: scenario.value(k) for k in INPUTS} | {"hw_name": hw.display_name}
    warnings = _warnings(first, row)
    suggestions = _suggestions(scenario, figures, devices)
    return Plan(scenario=scenario, figures=figures, hardware=hw, warnings=tuple(warnings), notes=scenario.notes,
                suggestions=tuple(suggestions), spreads=spread_terms(uncertain_columns(cols, spread)))
