"""Inputs -> resolved model columns, for one scenario or a million rows, by one set of steps.

1. each given value is checked alone against its declaration (`inputs.coerce`);
2. the values are encoded as columns, absent ones take their constant default;
3. each device input's hardware columns are looked up (simulator.hardware_table: the cluster's under their historic
   names, another device's prefixed), a derived device right after its rule has chosen it;
4. derived defaults are computed, in declaration order, by their vectorised rule;
5. the rules that relate inputs (`Family.rules`) mark the rows that break them.

`Scenario.from_dict` runs these on one row, `scenario_rows` on N independent rows, and `sweep` on a grid kept
factored (simulator.factored: each derived default and rule on the sub-grid of the swept values it reads): the same
functions on every path (`resolve_into`), so they agree on every layout by construction.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator import architecture
from simulator.catalog import HardwareSpec, UnknownAccelerator
from simulator.devices import all_devices, get_accelerator
from simulator.errors import ScenarioError
from simulator.factored import Column, Factored
from simulator.families.training_inputs import SHAPE_KEYS
from simulator.hardware_table import HardwareTable, device_prefix, hardware_table
from simulator.inputs import ERRORS, INPUTS, SECTIONS, coerce, section_keys
from simulator.presets import PRESETS
from simulator.safe_json_errors import shorten

NAN = float("nan")


@dataclass(frozen=True)
class Resolved:
    values: dict[str, Any]  # dotted key -> resolved value (None: optional and absent)
    given: dict[str, Any]  # the values the user gave (canonical; a preset stays a preset)
    derived: frozenset[str]  # keys filled by a derived rule
    notes: tuple[str, ...]  # how the derived values were made
    cols: dict[str, np.ndarray]  # the one row's model columns
    idle: frozenset[str] = frozenset()  # keys that act on nothing in this scenario (Input.applies false)


def device_catalog(devices: Mapping[str, HardwareSpec] | None = None) -> dict[str, HardwareSpec]:
    """Datasheet catalog + shipped calibrated devices + this caller's own (uploaded) devices."""
    return all_devices(devices)


def lookup_device(name: str, devices: Mapping[str, HardwareSpec] | None = None,
                  field: str = "cluster.accelerator") -> HardwareSpec:
    return get_accelerator(name, field, extra=devices)


def parse_sections(data: Any) -> dict[str, dict[str, Any]]:
    """Check the JSON structure (sections and key names) before any value is looked at."""
    if not isinstance(data, dict):
        raise ScenarioError([f"scenario: expected a JSON object with sections {', '.join(SECTIONS)}, got "
                             f"{type(data).__name__}"])
    problems: list[str] = []
    out: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if section not in SECTIONS:
            hint = difflib.get_close_matches(shorten(section, 100), SECTIONS, n=1)
            tip = f'; did you mean "{hint[0]}"?' if hint else ""
            problems.append(f"{shorten(section, 60)}: unknown section; allowed: {', '.join(SECTIONS)}{tip}")
            continue
        if not isinstance(values, dict):
            problems.append(f"{section}: expected an object of keys, got {type(values).__name__}")
            continue
        known = section_keys(section)
        for key in values:
            if key not in known:
                hint = difflib.get_close_matches(shorten(key, 100), known, n=1)
                tip = f'; did you mean "{section}.{hint[0]}"?' if hint else ""
                problems.append(f"{section}.{shorten(key, 60)}: unknown key; allowed: {', '.join(known)}{tip}")
        out[section] = dict(values)
    if problems:
        raise ScenarioError(problems)
    return out


def expand_preset(given: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """The given values with a model preset's shape filled in under them, and the preset's tokens (or NaN)."""
    name = given.get("model.preset")
    if name is None:
        return given, NAN
    preset = PRESETS[name]
    return {**{f"model.{k}": v for k, v in preset.model.items()}, **given}, preset.tokens


DEVICE_INPUTS = tuple(inp for inp in INPUTS.values() if inp.kind == "device")
TRAINING_DEVICE = "cluster.accelerator"  # the device whose columns also carry the training precision's peak


def _hardware(inp, grid: Factored, table: HardwareTable) -> None:
    """Add device input `inp`'s hardware columns to `grid` (looked up once per device the grid holds)."""
    prefix = device_prefix(inp.column)
    keys = [inp.column, "precision"] if inp.key == TRAINING_DEVICE else [inp.column]
    grid.store(*grid.run(lambda c: table.columns(*(c[k] for k in keys), prefix=prefix)))


def _dp(c: Mapping[str, np.ndarray]) -> np.ndarray:
    return c["gpus"] / (c["tp"] * c["pp"] * c["cp"])


def _active_params(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Parameters one token's forward pass multiplies (simulator.architecture.counts): model.params for a dense model."""
    moe = c["moe_experts"] > 0
    if not np.any(moe):
        return np.asarray(c["params"], dtype=float)
    return np.where(moe, architecture.counts(c)[1], c["params"])


def resolve_into(grid: Factored, given: Mapping[str, Column], table: HardwareTable, preset_tokens: Column) -> None:
    """Add to `grid` the model columns of the given inputs (dotted key -> encoded column over its grid axes; the
    accelerator as an index into `table`). Absent inputs take their constant default, their derived rule (run on
    the sub-grid of what it reads, simulator.factored), or NaN (optional)."""
    for inp in INPUTS.values():
        if inp.column is None:
            continue
        if inp.key in given:
            grid.set(inp.column, given[inp.key])
        elif inp.default is not None and inp.derived is None:
            grid.put(inp.column, encode_values(inp.key, [inp.default], table))
        else:
            grid.put(inp.column, NAN)
    for inp in DEVICE_INPUTS:
        if inp.derived is None or inp.key in given:
            _hardware(inp, grid, table)
    grid.set("preset_tokens", preset_tokens)
    grid.put("params_given", NAN)
    grid.put("shape_given", float(all(k in given for k in SHAPE_KEYS)))
    for inp in INPUTS.values():
        rule = inp.derived
        if rule is None or (inp.key in given and not rule.always):
            continue
        if inp.key in given:
            grid.alias(f"{inp.column}_given", inp.column)
        axes, values = grid.run(rule.fn)
        grid.put(inp.column, np.asarray(values, dtype=float), axes)
        if inp.kind == "device":
            _hardware(inp, grid, table)
    axes, dp = grid.run(_dp)
    grid.put("dp", dp, axes)
    axes, active = grid.run(_active_params)
    grid.put("active_params", active, axes)


def _row_column(values: Any) -> Column:
    """A plain column of N rows (or one value for all) as a column over the single axis of N rows."""
    values = np.asarray(values, dtype=float).reshape(-1)
    return Column((0,) if values.size > 1 else (), values)


def resolve_columns(given: Mapping[str, np.ndarray], n: int, table: HardwareTable,
                    preset_tokens: np.ndarray | float = NAN) -> dict[str, np.ndarray]:
    """Model columns for `n` rows from the given inputs (dotted key -> encoded column of `n` values or one; the
    accelerator as an index into `table`), by the steps of `resolve_into` on every row."""
    grid = Factored((n,), trial=False)
    resolve_into(grid, {k: _row_column(v) for k, v in given.items()}, table, _row_column(preset_tokens))
    return dict(grid.plain)  # every column over the n rows (a constant as np.full), as the stages read them


def rule_codes(grid: Factored) -> np.ndarray:
    """Each row of `grid`: 0 where it breaks no rule, else 1 + the index in ERRORS of the first rule it breaks (each
    rule checked on the sub-grid of what it reads)."""
    code = np.zeros(grid.sizes, dtype=np.int16)
    for i in range(len(ERRORS), 0, -1):  # the first rule listed wins
        axes, broken = grid.run(ERRORS[i - 1].broken)
        broken = np.asarray(broken, dtype=bool).reshape(-1)
        if broken.any():
            shape = [s if a in axes else 1 for a, s in enumerate(grid.sizes)]
            np.copyto(code, np.int16(i), where=np.broadcast_to(broken, (grid.size(axes),)).reshape(shape))
    return code.reshape(-1)


def row_of(cols: Mapping[str, np.ndarray], i: int = 0) -> dict[str, Any]:
    return {k: float(v[i]) if np.ndim(v) else float(v) for k, v in cols.items()}


def encode_values(key: str, values: Sequence[Any], table: HardwareTable) -> np.ndarray:
    """One input's values as its model column: choices as codes, the accelerator as its index in `table`,
    None (an optional input left out) as NaN."""
    inp = INPUTS[key]
    return np.array([np.nan if v is None else table.index(v) if inp.kind == "device" else inp.encode(v)
                     for v in values], dtype=float)


def _encode_given(values: Mapping[str, Any], table: HardwareTable) -> dict[str, np.ndarray]:
    return {key: encode_values(key, [value], table) for key, value in values.items()
            if INPUTS[key].column is not None and value is not None}


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e6 or not value.is_integer() else f"{int(value)}"
    return str(value)


def resolve(data: Any, devices: Mapping[str, HardwareSpec] | None = None, *, rules: bool = True) -> Resolved:
    """Check and complete one scenario's inputs; every problem found is reported at once (ScenarioError).
    `rules=False` leaves out the rules relating inputs (a search's base, whose rows are each checked in the sweep)."""
    sections = parse_sections(data)
    problems: list[str] = []
    given: dict[str, Any] = {}
    for section, values in sections.items():
        for name, raw in values.items():
            key = f"{section}.{name}"
            value, problem = coerce(INPUTS[key], raw)
            if problem:
                problems.append(problem)
            elif value is not None:
                given[key] = value
    if problems:
        raise ScenarioError(problems)
    user = dict(given)
    given, preset_tokens = expand_preset(given)
    shape = [k for k in SHAPE_KEYS if k in given]
    if not shape and "model.params" not in given:
        problems.append("model: give model.params, model.preset, or the shape model.layers, model.hidden and "
                        "model.heads")
    elif shape and len(shape) < len(SHAPE_KEYS):
        missing = [k for k in SHAPE_KEYS if k not in given]
        problems.append(f"model: a shape needs layers, hidden and heads; missing {', '.join(missing)}")
    spec = None
    for inp in DEVICE_INPUTS:
        if inp.key not in given and inp.default is None:
            continue  # derived: a device of the table, decoded below
        try:
            found = lookup_device(given.get(inp.key, inp.default), devices, inp.key)
        except UnknownAccelerator as exc:
            problems.append(str(exc))
            continue
        given[inp.key] = found.id
        if inp.key in user:
            user[inp.key] = found.id
        if inp.key == TRAINING_DEVICE:
            spec = found
    if problems:
        raise ScenarioError(problems)
    table = hardware_table(device_catalog(devices))
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = resolve_columns(_encode_given(given, table), 1, table, preset_tokens)
    values: dict[str, Any] = {}
    derived: set[str] = set()
    notes: list[str] = []
    idle = frozenset(inp.key for inp in INPUTS.values()
                     if inp.applies is not None and not bool(np.asarray(inp.applies(cols)).reshape(-1)[0]))
    for inp in INPUTS.values():
        rule = inp.derived
        if rule is not None and (inp.key not in given or rule.always) and inp.column is not None:
            number = cols[inp.column][0]
            if not np.isfinite(number):
                problems.append(f"{inp.key}: cannot be derived ({rule.text}) from the other inputs; give it")
                continue
            value = table.ids[int(number)] if inp.kind == "device" else inp.decode(number)
            values[inp.key] = value
            derived.add(inp.key)
            if (inp.key not in given or value != given[inp.key]) and inp.key not in idle:
                notes.append(f"{inp.key} = {_show(value)}: {rule.text}")
        elif inp.key in given:
            values[inp.key] = given[inp.key]
        else:
            values[inp.key] = inp.default
    row = row_of(cols) | dict(values.items()) | {"hw_precisions": ", ".join(spec.peak_tflops)}
    with np.errstate(divide="ignore", invalid="ignore"):
        for rule in ERRORS if rules else ():
            if bool(np.asarray(rule.broken(cols))[0]):
                problems.append(rule.message(row))
    if problems:
        raise ScenarioError(problems)
    return Resolved(values, user, frozenset(derived - set(user)), tuple(notes), cols, idle)
