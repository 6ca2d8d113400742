"""Inputs -> resolved model columns, for one scenario or a million rows, by one set of steps.

1. each given value is checked alone against its declaration (`inputs.coerce`);
2. the values are encoded as columns, absent ones take their constant default;
3. each device input's hardware columns are looked up (simulator.hardware_table: the cluster's under their historic
   names, another device's prefixed), a derived device right after its rule has chosen it;
4. derived defaults are computed, in declaration order, by their vectorised rule;
5. the rules that relate inputs (`Family.rules`) mark the rows that break them.

`Scenario.from_dict` runs these on one row; `sweep` runs the same functions on blocks of rows, so the two
agree on every layout by construction.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.catalog import HardwareSpec, UnknownAccelerator
from simulator.devices import all_devices, get_accelerator
from simulator.errors import ScenarioError
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


class OneRow(Mapping):
    """The first row of `cols` (as 1-element arrays), recording which columns a vectorised rule (or a family) reads."""

    __slots__ = ("cols", "read")

    def __init__(self, cols: Mapping[str, np.ndarray]):
        self.cols, self.read = cols, set()

    def __getitem__(self, key: str) -> np.ndarray:
        self.read.add(key)  # recorded even when absent (`present` leaves those out)
        return self.cols[key][:1]

    def __iter__(self):
        return iter(self.cols)

    def __len__(self) -> int:
        return len(self.cols)

    def present(self) -> frozenset[str]:
        """The columns read that exist: a column absent from the block is absent from every row alike (a rule
        that asks `key in cols` or `cols.get(key, default)` takes the same branch on every row)."""
        return frozenset(k for k in self.read if k in self.cols)


_READS: dict[Any, frozenset[str]] = {}  # the columns each rule read on its last one-row trial
# each rule's last one-row result: (columns read, their first-row bytes, columns asked for but absent, result)
_LAST: dict[Any, tuple[tuple[str, ...], tuple[bytes, ...], frozenset[str], Any]] = {}


def on_one_row(fn: Callable[[Mapping[str, np.ndarray]], Any], cols: Mapping[str, np.ndarray], constant: set[str],
               key: Any = None) -> Any:
    """`fn(view)` on the first row (a OneRow view) when every column it reads holds one value in all rows (so every
    row has that value: rules, derived defaults and families are row-wise), else None. The columns `fn` read last
    time only decide whether the one-row trial is worth making; the trial itself records what is read this time.
    The result is kept (by `key`, default `fn`) while the columns it read hold the same values and those it found
    absent stay absent: the blocks of a sweep that hold one training plan choose its layout once, not per block."""
    key = fn if key is None else key
    if not _READS.get(key, frozenset()) <= constant:
        return None
    last = _LAST.get(key)
    if (last is not None and all(k in constant for k in last[0]) and not any(k in cols for k in last[2])
            and all(cols[k][:1].tobytes() == b for k, b in zip(last[0], last[1], strict=True))):
        return last[3]
    view = OneRow(cols)
    result = fn(view)
    _READS[key] = present = view.present()
    if not present <= constant:
        return None
    names = tuple(present)
    _LAST[key] = (names, tuple(np.asarray(cols[k][:1]).tobytes() for k in names), frozenset(view.read - present),
                  result)
    return result


def _one_row(fn: Callable[[Mapping[str, np.ndarray]], Any], cols: Mapping[str, np.ndarray],
             constant: set[str]) -> np.ndarray | None:
    """`fn`'s value on one row (`on_one_row`) when it is one number, else None."""
    value = on_one_row(fn, cols, constant)
    if value is None:
        return None
    value = np.asarray(value)
    return value if value.size == 1 else None


DEVICE_INPUTS = tuple(inp for inp in INPUTS.values() if inp.kind == "device")
TRAINING_DEVICE = "cluster.accelerator"  # the device whose columns also carry the training precision's peak


def _hardware(inp, cols: dict[str, np.ndarray], n: int, table: HardwareTable, const: set[str] | None) -> None:
    """Add device input `inp`'s hardware columns to `cols` (looked up once when its device is one for all rows)."""
    prefix = device_prefix(inp.column)
    keys = [inp.column, "precision"] if inp.key == TRAINING_DEVICE else [inp.column]
    if const is not None and set(keys) <= const:
        hardware = table.columns(*(cols[k][:1] for k in keys), prefix=prefix)
        cols.update({name: np.full(n, v[0], dtype=v.dtype) for name, v in hardware.items()})
        const.update(hardware)
    else:
        hardware = table.columns(*(cols[k] for k in keys), prefix=prefix)
        cols.update(hardware)
        if const is not None:
            const.difference_update(hardware)


def resolve_columns(given: Mapping[str, np.ndarray], n: int, table: HardwareTable,
                    preset_tokens: np.ndarray | float = NAN, constant: set[str] | None = None) -> dict[str, np.ndarray]:
    """Model columns for `n` rows from the given inputs (dotted key -> encoded column; the accelerator as an
    index into `table`). Absent inputs take their constant default, their derived rule, or NaN (optional).

    With `constant` (a set, filled in; sweeps): the names of the columns that hold one value in every row are
    added to it, and a derived rule that reads only such columns is computed on one row and repeated
    (a given column of one element counts as constant)."""
    if constant is not None:
        constant.clear()
    const = constant if constant is not None and n > 1 else None
    cols: dict[str, np.ndarray] = {}
    for inp in INPUTS.values():
        if inp.column is None:
            continue
        if inp.key in given:
            value = np.asarray(given[inp.key], dtype=float)
            cols[inp.column] = np.broadcast_to(value, (n,))
            if const is not None and value.size == 1:
                const.add(inp.column)
        else:
            if inp.default is not None and inp.derived is None:
                cols[inp.column] = np.full(n, encode_values(inp.key, [inp.default], table)[0])
            else:
                cols[inp.column] = np.full(n, NAN)
            if const is not None:
                const.add(inp.column)
    for inp in DEVICE_INPUTS:
        if inp.derived is None or inp.key in given:
            _hardware(inp, cols, n, table, const)
    tokens = np.asarray(preset_tokens, dtype=float)
    cols["preset_tokens"] = np.broadcast_to(tokens, (n,))
    cols["params_given"] = np.full(n, NAN)
    cols["shape_given"] = np.full(n, float(all(k in given for k in SHAPE_KEYS)))
    if const is not None:
        const.update(("params_given", "shape_given"))
        if tokens.size == 1:
            const.add("preset_tokens")
    for inp in INPUTS.values():
        rule = inp.derived
        if rule is None or (inp.key in given and not rule.always):
            continue
        if inp.key in given:
            cols[f"{inp.column}_given"] = cols[inp.column]
            if const is not None and inp.column in const:
                const.add(f"{inp.column}_given")
            elif const is not None:
                const.discard(f"{inp.column}_given")
        one = _one_row(rule.fn, cols, const) if const is not None else None
        if one is None:
            cols[inp.column] = np.broadcast_to(np.asarray(rule.fn(cols), dtype=float), (n,))
            if const is not None:
                const.discard(inp.column)
        else:
            cols[inp.column] = np.full(n, float(one.reshape(-1)[0]))
            const.add(inp.column)
        if inp.kind == "device":
            _hardware(inp, cols, n, table, const)
    cols["dp"] = cols["gpus"] / (cols["tp"] * cols["pp"])
    if const is not None and {"gpus", "tp", "pp"} <= const:
        const.add("dp")
    return cols


def rule_codes(cols: Mapping[str, np.ndarray], constant: set[str] | frozenset[str] = frozenset()) -> np.ndarray:
    """0 where a row breaks no rule, else 1 + the index in ERRORS of the first rule it breaks.

    `constant`: columns known to hold one value in every row (from `resolve_columns`); a rule that reads only
    those is checked on one row."""
    n = len(cols["gpus"])
    code = np.zeros(n, dtype=np.int16)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(ERRORS), 0, -1):  # the first rule listed wins
            broken = ERRORS[i - 1].broken
            one = _one_row(broken, cols, constant) if constant and n > 1 else None
            if one is None:
                code[np.asarray(broken(cols), dtype=bool)] = i
            elif bool(one.reshape(-1)[0]):
                code[:] = i
    return code


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
            if inp.key not in given or value != given[inp.key]:
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
    return Resolved(values, user, frozenset(derived - set(user)), tuple(notes), cols)
