"""Scenario inputs <-> compact URL query parameters, for shareable links (pure: no Streamlit).

Inputs are sparse scenario sections as `Scenario.from_dict` takes them (a missing key means "use the rule
for its default", e.g. the catalog price). Only values that differ from `defaults` are written, under short
keys (`SHORT`); a key with an empty value (`usd=`) clears a value back to that rule. The model section may
start from a named preset: `m=llama2-70b&seq=8192` is that preset with a longer sequence, `m=custom` starts
from an empty model (for example `m=custom&n=1.3e10`: 13B parameters, shape derived).

Reading a link never raises: a bad value is reported in `Shared.problems` and the default is kept, so
the other parameters still apply.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.catalog import UnknownAccelerator, get_accelerator
from simulator.validation import RULES, coerce_value

PRESET_KEY = "m"
CUSTOM_MODEL = "custom"  # m=custom: the model section starts empty instead of from the defaults
SHORT: dict[str, str] = {
    "model.params": "n", "model.layers": "ly", "model.hidden": "hd", "model.heads": "hh",
    "model.kv_heads": "kv", "model.ffn_hidden": "ffn", "model.mlp": "mlp", "model.vocab": "voc",
    "model.seq_len": "seq",
    "training.tokens": "tok", "training.global_batch_seqs": "gb", "training.micro_batch_seqs": "mb",
    "training.precision": "prec", "training.recompute": "rc", "training.zero_stage": "zero",
    "training.sequence_parallel": "sp", "training.interleave": "vpp", "training.sharding": "shard",
    "training.flash_attention": "fa",
    "cluster.accelerator": "hw", "cluster.gpus": "gpus", "cluster.gpus_per_node": "gpn", "cluster.tp": "tp",
    "cluster.pp": "pp", "cluster.sync": "sync", "cluster.ps_servers": "ps", "cluster.async_kappa": "kappa",
    "cluster.straggler_cv": "cv", "cluster.dp_overlap": "ovl",
    "finance.gpu_hour_usd": "usd", "finance.server_power_factor": "spf", "finance.power_utilization": "util",
    "finance.pue": "pue", "finance.co2_kg_per_kwh": "co2", "finance.electricity_usd_per_kwh": "elec",
    "quality.law": "law",
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

Sections = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Shared:
    """What a link asked for: scenario input sections, plus one message per parameter that was not used."""

    inputs: Sections
    problems: tuple[str, ...] = field(default=())


def url_key(dotted: str) -> str:
    """Short URL key of a dotted scenario key; keys added later without a short name travel as themselves."""
    return SHORT.get(dotted, dotted)


def _dotted_of() -> dict[str, str]:
    return {url_key(dotted): dotted for dotted in RULES}


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


def _parse(dotted: str, text: str) -> tuple[Any, str | None]:
    """(value, None) or (None, reason) for the URL text of one dotted key."""
    kind = RULES[dotted][0]
    problems: list[str] = []
    if kind in ("int", "float"):
        try:
            number = float(text)
        except ValueError:
            return None, f"expected a {'whole ' if kind == 'int' else ''}number"
        value = coerce_value(dotted, int(number) if kind == "int" and number.is_integer() else number, problems)
    elif kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            return None, "expected 1 or 0"
        value = text.lower() in _TRUE
    elif dotted == "cluster.accelerator":
        try:
            value = get_accelerator(text).id
        except UnknownAccelerator as exc:
            return None, str(exc).split(": ", 1)[-1].rstrip(".")
    else:
        value = coerce_value(dotted, text, problems)
    if problems:
        return None, problems[0].split(": ", 1)[-1]
    return value, None


def _diff(values: Mapping[str, Any], base: Mapping[str, Any], section: str) -> dict[str, str]:
    order = {dotted: i for i, dotted in enumerate(RULES)}
    out: dict[str, str] = {}
    for key in sorted(set(values) | set(base), key=lambda k: (order.get(f"{section}.{k}", len(order)), k)):
        if values.get(key) != base.get(key):
            out[url_key(f"{section}.{key}")] = format_value(values.get(key))
    return out


def _clean(inputs: Mapping[str, Mapping[str, Any]] | None) -> Sections:
    return {s: {k: v for k, v in (vals or {}).items() if v is not None} for s, vals in (inputs or {}).items()}


def to_query(
    inputs: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Mapping[str, Any]],
    presets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """Query parameters for `inputs`: only what differs from `defaults`; {} when nothing does.

    The model is written against whichever start (the defaults, a preset, or empty) needs the fewest
    parameters, so a preset with one change stays a short link.
    """
    inputs, defaults = _clean(inputs), _clean(defaults)
    query: dict[str, str] = {}
    model = inputs.get("model", {})
    starts: list[tuple[dict[str, str], Mapping[str, Any]]] = [({}, defaults.get("model", {}))]
    starts += [({PRESET_KEY: name}, preset) for name, preset in (presets or {}).items()]
    starts.append(({PRESET_KEY: CUSTOM_MODEL}, {}))
    query.update(min(({**head, **_diff(model, base, "model")} for head, base in starts), key=len))
    order = list(dict.fromkeys(dotted.partition(".")[0] for dotted in RULES))
    for section in sorted(set(inputs) | set(defaults), key=lambda s: (order.index(s) if s in order else len(order), s)):
        if section != "model":
            query.update(_diff(inputs.get(section, {}), defaults.get(section, {}), section))
    return query


def from_query(
    query: Mapping[str, str | list[str]],
    defaults: Mapping[str, Mapping[str, Any]],
    presets: Mapping[str, Mapping[str, Any]] | None = None,
) -> Shared:
    """Inputs a link asks for: `defaults` updated with every valid parameter; the rest explained."""
    inputs = copy.deepcopy(_clean(defaults))
    problems: list[str] = []
    params = {k: (v[-1] if isinstance(v, list) and v else v) for k, v in query.items()}
    params = {k: v if isinstance(v, str) else "" for k, v in params.items()}
    presets = presets or {}
    name = params.pop(PRESET_KEY, None)
    if name is not None:
        if name == CUSTOM_MODEL:
            inputs["model"] = {}
        elif name in presets:
            inputs["model"] = copy.deepcopy(dict(presets[name]))
        else:
            known = ", ".join([*presets, CUSTOM_MODEL])
            problems.append(f"{PRESET_KEY}={name}: unknown model preset (known: {known}); kept the default model.")
    dotted_of = _dotted_of()
    for key, text in params.items():
        dotted = dotted_of.get(key)
        if dotted is None:
            problems.append(f"{key}={text}: not a Modelfolio link parameter; ignored.")
            continue
        section, _, name_ = dotted.partition(".")
        values = inputs.setdefault(section, {})
        if text == "":
            values.pop(name_, None)
            continue
        value, reason = _parse(dotted, text.strip())
        if reason is None:
            values[name_] = value
        else:
            kept = f"kept {format_value(values[name_])}" if name_ in values else "kept the default"
            problems.append(f"{key}={text} ({dotted}): {reason}; {kept}.")
    return Shared(inputs, tuple(problems))
