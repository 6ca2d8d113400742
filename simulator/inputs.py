"""Every scenario input, gathered from the registered families, and the one check of a single value."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.families import FAMILIES
from simulator.registry import FigureSpec, Input, Rule
from simulator.safe_json_errors import shorten

INPUTS: dict[str, Input] = {inp.key: inp for family in FAMILIES for inp in family.inputs}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(inp.section for inp in INPUTS.values()))
BY_LINK: dict[str, Input] = {inp.link: inp for inp in INPUTS.values() if inp.link}
BY_COLUMN: dict[str, Input] = {inp.column: inp for inp in INPUTS.values() if inp.column}
ERRORS: tuple[Rule, ...] = tuple(r for f in FAMILIES for r in f.rules if r.severity == "error")
WARNINGS: tuple[Rule, ...] = tuple(r for f in FAMILIES for r in f.rules if r.severity == "warning")
FIGURES: dict[str, FigureSpec] = {fig.key: fig for f in FAMILIES for fig in f.figures}


def section_keys(section: str) -> list[str]:
    return [inp.name for inp in INPUTS.values() if inp.section == section]


def section_of(section: str) -> list[Input]:
    return [inp for inp in INPUTS.values() if inp.section == section]


def _show(value: Any) -> str:
    return shorten(value, 60)


def coerce(inp: Input, value: Any) -> tuple[Any, str | None]:
    """(canonical value, None), or (None, message naming the field, the value and what is allowed).

    Devices are returned as the name given; resolving it against the catalog is the resolver's job.
    """
    key = inp.key
    if value is None:
        return None, None
    if isinstance(value, np.generic) and np.ndim(value) == 0:  # numpy scalars, e.g. from np.arange grids
        value = value.item()
    if inp.kind == "choice":
        text = value.strip().lower() if isinstance(value, str) else value
        if isinstance(value, bool) or text not in inp.choices:
            return None, f"{key} = {_show(value)}: allowed values are {inp.allowed_text()}"
        return text, None
    if inp.kind == "device":
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            return None, f"{key} = {_show(value)}: expected an accelerator name (`python -m simulator catalog`)"
        return value.strip(), None
    if inp.kind == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true", None
        return None, f"{key} = {_show(value)}: expected true or false"
    if isinstance(value, str) and value.strip().lower() in inp.words:
        return value.strip().lower(), None
    if isinstance(value, bool) or not isinstance(value, int | float):
        named = "".join(f' or "{w}"' for w in inp.words)
        return None, f"{key} = {_show(value)}: expected a number{named}, got {type(value).__name__}"
    if isinstance(value, int) and value.bit_length() > 128:
        return None, f"{key} = {_show(value)}: must be between {inp.low:g} and {inp.high:g}"
    if not math.isfinite(value):
        return None, f"{key} = {value!r}: must be a finite number"
    if inp.kind == "int":
        if float(value) != int(value):
            return None, f"{key} = {value!r}: must be a whole number"
        value = int(value)
    else:
        value = float(value)
    if value < inp.low or value > inp.high:
        return None, f"{key} = {value:g}: must be between {inp.low:g} and {inp.high:g}"
    return value, None


def derived_value(key: str, values: Mapping[str, Any]) -> Any:
    """What input `key`'s derived rule makes of `values` (dotted keys; an absent or None one at its default), for a
    page to say what "auto" means before the plan is made ("auto: round-to-nearest"). None when the rule reads
    more than inputs with a constant default (a device's columns, another derived input)."""
    inp = INPUTS[key]
    if inp.derived is None:
        return None
    cols: dict[str, np.ndarray] = {}
    for need in inp.derived.needs:
        source = INPUTS[need]
        value = values.get(need)
        value = source.default if value is None else value
        if value is None or source.column is None or source.kind == "device":
            return None
        cols[source.column] = np.array([source.encode(value)])
    try:
        number = float(np.asarray(inp.derived.fn(cols), dtype=float).reshape(-1)[0])
    except KeyError:  # it reads a column that is not an input's
        return None
    return inp.decode(number) if math.isfinite(number) else None
