"""The Decide page's question as widgets: one per registered input (label, unit, help, bounds and default from
simulator.inputs), and the scenario they make. Saved scenarios live in this session only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import streamlit as st

from simulator.devices import all_devices
from simulator.inputs import INPUTS

PREFIX = "decide."
MAIN = ("decision.budget_usd", "decision.horizon_months", "decision.objective", "decision.quality_target_loss")
TRAFFIC = ("serving.requests_per_s", "serving.prompt_tokens", "serving.output_tokens")  # where registered
MORE = ("decision.max_training_days", "finance.gpu_hour_usd", "quality.law", "decision.samples", "decision.seed")
SAVED = "decide.saved"  # name -> scenario inputs (JSON text), this session only
BASE_PARAMS = 1e9  # the search chooses the size; a scenario needs one to be valid


def _state_key(key: str) -> str:
    return PREFIX + key


def _label(key: str) -> str:
    inp = INPUTS[key]
    unit = inp.widget_unit if inp.scale != 1 else inp.unit
    return f"{inp.label} ({unit})" if unit and unit.lower() not in inp.label.lower() else inp.label


def widget(key: str, disabled: bool = False) -> Any:
    """One input; its value (in scenario units) or None when left empty."""
    inp = INPUTS[key]
    skey = _state_key(key)
    if inp.kind == "choice":
        labels = dict(inp.choice_labels)
        if skey not in st.session_state:
            st.session_state[skey] = inp.default
        return st.radio(_label(key), inp.choices, format_func=lambda v: labels.get(v, str(v)), key=skey,
                        help=inp.help, horizontal=True, disabled=disabled)
    if inp.kind == "device":
        catalog = all_devices(st.session_state.get("devices.uploaded", {}))
        if skey not in st.session_state:
            st.session_state[skey] = inp.default if inp.default in catalog else next(iter(catalog))
        return st.selectbox(_label(key), list(catalog), key=skey, help=inp.help, disabled=disabled,
                            format_func=lambda i: f"{catalog[i].display_name} · ${catalog[i].gpu_hour_usd:.2f}/h")
    cast = int if inp.kind == "int" else float
    if skey not in st.session_state:
        st.session_state[skey] = None if inp.default is None else cast(inp.default / inp.scale)
    low = None if inp.low is None else cast(inp.low / inp.scale)
    high = None if inp.high is None else cast(inp.high / inp.scale)
    step = cast((inp.step or 1) / inp.scale) if inp.kind == "float" else max(1, int(inp.step or 1))
    value = st.number_input(_label(key), min_value=low, max_value=high, step=step, key=skey, help=inp.help,
                            format="%d" if inp.kind == "int" else "%g", disabled=disabled,
                            placeholder="empty" if inp.default is None else None)
    return None if value is None else cast(value * inp.scale) if inp.scale != 1 else value


def scenario_data(values: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Scenario inputs from dotted keys (None: left empty, so the registry's default or rule applies)."""
    data: dict[str, Any] = {"name": name} if name else {}
    data["model"] = {"params": BASE_PARAMS}
    for key, value in values.items():
        if value is None:
            continue
        section, _, field = key.partition(".")
        data.setdefault(section, {})[field] = value
    return data


def registered(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in keys if k in INPUTS)


def save(name: str, data: Mapping[str, Any]) -> None:
    st.session_state.setdefault(SAVED, {})[name] = json.dumps(data, sort_keys=True, ensure_ascii=False)


def saved() -> dict[str, str]:
    return dict(st.session_state.get(SAVED, {}))


def flat(data: Mapping[str, Any]) -> dict[str, Any]:
    """{"decision": {"budget_usd": 1}} -> {"decision.budget_usd": 1} (the name left out)."""
    return {f"{s}.{k}": v for s, values in data.items() if isinstance(values, Mapping) for k, v in values.items()}
