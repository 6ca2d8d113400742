"""Scenario inputs <-> compact URL query parameters, for shareable links (pure: no Streamlit).

Inputs are sparse scenario sections as `Scenario.from_dict` takes them (a missing key means "use the rule for
its default", e.g. the catalog price). Only values that differ from `defaults` are written, under each input's
declared short `link` key (simulator.inputs); a key with an empty value (`usd=`) clears a value back to its
rule. A pinned baseline travels beside the inputs: its parameters carry the prefix `b.` (`b.gpus=512`), and
`b=1` alone pins a baseline equal to the defaults.

Reading a link never raises: a bad value is reported in `Shared.problems`, in the user's words (the input's
label, the parameter as written, why, and what was kept), and the default is kept, so the other parameters still
apply.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.catalog import UnknownAccelerator
from simulator.inputs import BY_LINK, INPUTS, coerce
from simulator.registry import Input

BASELINE_PREFIX = "b."
BASELINE_FLAG = "b"
MAX_VALUE_CHARS = 200  # a link value longer than this is refused without being echoed whole
UNITLESS = ("ratio", "fraction")  # units a number reads better without
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

Sections = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Shared:
    """What a link asked for: scenario input sections, the pinned baseline's (or None), and one message per
    parameter that was not used."""

    inputs: Sections
    problems: tuple[str, ...] = field(default=())
    baseline: Sections | None = None


def url_key(dotted: str) -> str:
    return INPUTS[dotted].link or dotted


def input_of(key: str) -> Input | None:
    """The input a link parameter names: by its short key (`gpus`) or its dotted key (`cluster.gpus`)."""
    return BY_LINK.get(key) or INPUTS.get(key)


def shown(text: str) -> str:
    """A link value as a message quotes it: never a 5 MB string whole."""
    return text if len(text) <= MAX_VALUE_CHARS else text[:40] + f"... ({len(text):,} characters)"


def value_text(inp: Input, value: Any) -> str:
    """A value as its widget shows it, with the unit: "10 million USD", "1024 GPUs", "1.25", "on", "none"."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float) and inp.kind in ("int", "float"):
        unit = inp.widget_unit if inp.scale != 1 else inp.unit
        number = format_value(value / inp.scale if inp.scale != 1 else value)
        return f"{number} {unit}" if unit and unit not in UNITLESS else number
    return str(value)


def problem(inp: Input, key: str, text: str, reason: str, kept: str) -> str:
    """One parameter not used, in the user's words: "GPUs (gpus=lots): expected a whole number; kept 1024 GPUs"."""
    return f"{inp.label} ({key}={shown(text)}): {reason}; {kept}."


def format_value(value: Any) -> str:
    """Shortest text that reads back to exactly `value` (1.4e12 -> "1.4e12", True -> "1", None -> "")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        for digits in range(1, 18):
            text = f"{value:.{digits}g}"
            if float(text) == value:
                break
        mantissa, _, exponent = text.partition("e")
        return f"{mantissa}e{int(exponent)}" if exponent else mantissa
    return str(value)


def _parse(inp: Input, text: str) -> tuple[Any, str | None]:
    """(value, None) or (None, reason) for the URL text of one input."""
    if inp.kind in ("int", "float") and text.lower() in inp.words:  # a named value: serving.batch "max"
        raw: Any = text.lower()
    elif inp.kind in ("int", "float"):
        try:
            number = float(text)
        except ValueError:
            named = "".join(f' or "{w}"' for w in inp.words)
            return None, f"expected a {'whole ' if inp.kind == 'int' else ''}number{named}"
        raw = int(number) if inp.kind == "int" and number.is_integer() else number
    elif inp.kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            return None, "expected 1 or 0"
        raw = text.lower() in _TRUE
    elif inp.kind == "device":
        from simulator.devices import get_accelerator  # devices load profiles: only when a link names one

        try:
            return get_accelerator(text).id, None
        except UnknownAccelerator as exc:
            return None, str(exc).split(": ", 1)[-1].rstrip(".")
    else:
        raw = text
    value, problem = coerce(inp, raw)
    return (None, problem.split(": ", 1)[-1]) if problem else (value, None)


def _clean(inputs: Mapping[str, Mapping[str, Any]] | None) -> Sections:
    return {s: {k: v for k, v in (vals or {}).items() if v is not None} for s, vals in (inputs or {}).items()}


def _diff(inputs: Sections, defaults: Sections, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, inp in INPUTS.items():  # declaration order: links read in the order of the docs
        mine = inputs.get(inp.section, {}).get(inp.name)
        theirs = defaults.get(inp.section, {}).get(inp.name)
        if mine != theirs:
            out[prefix + url_key(key)] = format_value(mine)
    return out


def to_query(inputs: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Mapping[str, Any]],
             baseline: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
    """Query parameters for `inputs` (and a pinned `baseline`): only what differs from `defaults`."""
    inputs_, defaults_ = _clean(inputs), _clean(defaults)
    query = _diff(inputs_, defaults_)
    if baseline is not None:
        query |= _diff(_clean(baseline), defaults_, BASELINE_PREFIX) or {BASELINE_FLAG: "1"}
    return query


def _read(params: Mapping[str, str], defaults: Sections, prefix: str, problems: list[str]) -> Sections:
    inputs = copy.deepcopy(defaults)
    for key, text in params.items():
        inp = input_of(key.removeprefix(prefix))
        if inp is None:
            problems.append(f"{key[:60]}={shown(text)}: not a Modelfolio link parameter; ignored.")
            continue
        values = inputs.setdefault(inp.section, {})
        if text == "":
            values.pop(inp.name, None)
            continue
        value, reason = (None, "too long") if len(text) > MAX_VALUE_CHARS else _parse(inp, text.strip())
        if reason is None:
            values[inp.name] = value
        else:
            kept = f"kept {value_text(inp, values[inp.name])}" if inp.name in values else "kept the default"
            problems.append(problem(inp, key, text, reason, kept))
    return inputs


def from_query(query: Mapping[str, str | list[str]], defaults: Mapping[str, Mapping[str, Any]]) -> Shared:
    """Inputs a link asks for: `defaults` updated with every valid parameter; the rest explained."""
    params = {k: (v[-1] if isinstance(v, list) and v else v) for k, v in query.items()}
    params = {str(k): v if isinstance(v, str) else "" for k, v in params.items()}
    problems: list[str] = []
    defaults_ = _clean(defaults)
    mine = {k: v for k, v in params.items() if not k.startswith(BASELINE_PREFIX) and k != BASELINE_FLAG}
    theirs = {k: v for k, v in params.items() if k.startswith(BASELINE_PREFIX)}
    inputs = _read(mine, defaults_, "", problems)
    baseline = None
    if theirs or BASELINE_FLAG in params:
        baseline = _read(theirs, defaults_, BASELINE_PREFIX, problems)
    return Shared(inputs, tuple(problems), baseline)
