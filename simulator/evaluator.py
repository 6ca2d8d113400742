"""evaluate(scenario) -> Plan: the one place a single scenario's numbers are made, by every registered family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.catalog import HardwareSpec, device_spreads
from simulator.correlations import pair
from simulator.errors import ScenarioError
from simulator.hardware_table import device_prefix, hardware_table, hw_column
from simulator.inputs import FIGURES, INPUTS, WARNINGS
from simulator.plan import Figure, Plan, PlanWarning, Suggestion
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
from simulator.sweeps import evaluate_columns

Z_P90 = 1.2816  # standard normal quantile: ±1.28σ spans P10-P90


def scenario_rows(scenarios: list[Scenario], devices: Mapping[str, HardwareSpec] | None = None) -> dict[str, np.ndarray]:
    """Resolved model columns of a few scenarios, one row each, by the same resolver a sweep uses."""
    table = hardware_table(device_catalog(devices))
    n = len(scenarios)
    given: dict[str, np.ndarray] = {}
    tokens = np.full(n, np.nan)
    for key, inp in INPUTS.items():
        if inp.column is not None:
            given[key] = encode_values(key, [s.value(key) for s in scenarios], table)
    for i, s in enumerate(scenarios):
        tokens[i] = expand_preset(dict(s.given))[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return resolve_columns(given, n, table, tokens)


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


def uncertain_columns(cols: Mapping[str, np.ndarray], device_spread: Mapping[str, float]) -> dict[str, float]:
    """Model column -> relative one-sigma spread: the devices' (fitted or assumed, `scenario_device_spreads`) and
    the inputs declared with a `spread` (published or assumed). Ranges, the tornado and the Monte Carlo all move
    these and only these."""
    spreads = {k: v for k, v in device_spread.items() if k in cols and v > 0}
    spreads |= {inp.column: inp.spread for inp in INPUTS.values() if inp.spread > 0 and inp.column in cols}
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


def perturbations(cols: dict[str, np.ndarray], device_spread: Mapping[str, float]
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """The plan's row, then for each uncertain column a P10 and a P90 row (all other columns as planned):
    rows 2i+1 and 2i+2 move column `names[i]`."""
    spreads = uncertain_columns(cols, device_spread)
    names = list(spreads)
    n = 1 + 2 * len(names)
    rows = {k: np.repeat(np.asarray(v, dtype=float)[:1], n) for k, v in cols.items()}
    for i, name in enumerate(names):
        rows[name][1 + 2 * i] *= max(0.0, 1.0 - Z_P90 * spreads[name])
        rows[name][2 + 2 * i] *= 1.0 + Z_P90 * spreads[name]
    clip_to_bounds(rows, spreads)
    return rows, names


def band(values: np.ndarray) -> tuple[float, float]:
    """Root-sum-square of the one-at-a-time moves below and above the plan (inputs taken as independent)."""
    base, moves = values[0], (values[1:] - values[0]).reshape(-1, 2)
    down = np.sqrt(np.sum(np.maximum(0.0, -moves.min(axis=1)) ** 2))
    up = np.sqrt(np.sum(np.maximum(0.0, moves.max(axis=1)) ** 2))
    return float(base - down), float(base + up)


def _basis(scenario: Scenario, hw: HardwareSpec) -> str:
    groups = dict(getattr(hw, "provenance_of", {}) or {}) or dict.fromkeys(hw.sources, hw.provenance)
    price = ("datasheet" if "finance.gpu_hour_usd" in scenario.derived else "your input") + f", {hw.price_date}"
    parts = [f"{group} {prov}" for group, prov in groups.items() if group != "price"]
    return f"computed from {hw.id} ({'; '.join(parts)}), price {price}, model constants assumed or published"


def _memory_suggestions(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None) -> list[Suggestion]:
    """Evaluate a few nearby plans and say which of them would fit (UX: say what would make it fit). The label is
    the reader's ("tensor parallel 16"); the change names the dotted keys (the JSON's `change`)."""
    c, t = scenario.cluster, scenario.training
    candidates: list[tuple[str, dict]] = []
    if t.zero_stage < 3 and c.sync in ("ring", "tree"):
        candidates.append(("ZeRO stage 3", {"training.zero_stage": 3}))
    if t.recompute != "full":
        candidates.append(("full recomputation", {"training.recompute": "full"}))
    if t.micro_batch_seqs > 1:
        candidates.append(("micro-batch 1", {"training.micro_batch_seqs": 1}))
    for factor in (2, 4, 8):
        candidates.append((f"tensor parallel {c.tp * factor}", {"cluster.tp": c.tp * factor}))
        candidates.append((f"pipeline parallel {c.pp * factor}", {"cluster.pp": c.pp * factor}))
    for factor in (2, 4):
        candidates.append((f"{c.gpus * factor:,} GPUs with ZeRO stage 3",
                           {"cluster.gpus": c.gpus * factor, "training.zero_stage": 3}))
    valid: list[tuple[str, dict, Scenario]] = []
    for label, change in candidates:
        try:
            valid.append((label, change, scenario.replace(devices=devices, **change)))
        except ScenarioError:
            continue
    if not valid:
        return []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cols = evaluate_columns(scenario_rows([s for _, _, s in valid], devices))
    fits = [Suggestion(label, change, float(gb))
            for (label, change, _), gb, ok in zip(valid, cols["training.memory_per_gpu_gb"],
                                                  cols["training.fits_memory"], strict=True) if ok]
    return fits[:4]


def _warnings(cols: dict[str, np.ndarray], row: dict[str, Any]) -> list[PlanWarning]:
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for rule in WARNINGS:
            if bool(np.asarray(rule.broken(cols))[0]):
                out.append(PlanWarning(rule.code or rule.short, rule.message(row), rule.key))
    return out


def evaluate(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None = None) -> Plan:
    """Evaluate one scenario. `devices` adds this caller's calibrated accelerators (from profiles)."""
    hw = lookup_device(scenario.cluster.accelerator, devices)
    cols = scenario_rows([scenario], devices)
    rows, names = perturbations(cols, scenario_device_spreads(scenario, devices))
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
        if spec.ranged and names and np.all(np.isfinite(out[key])):
            low, high = band(np.asarray(out[key], dtype=float))
        figures[key] = Figure(value, spec.unit, spec.provenance, spec.how, spec.label, low, high,
                              basis if spec.provenance == "computed" else "", spec.better)
    first = {k: v[:1] for k, v in out.items()}
    row = row_of(first) | {k: scenario.value(k) for k in INPUTS} | {"hw_name": hw.display_name}
    warnings = _warnings(first, row)
    suggestions = _memory_suggestions(scenario, devices) if not figures["training.fits_memory"].value else []
    return Plan(scenario=scenario, figures=figures, hardware=hw, warnings=tuple(warnings), notes=scenario.notes,
                suggestions=tuple(suggestions))
