"""The Decide page's question as widgets: one per registered input (label, unit, help, bounds and default from
simulator.inputs), and the scenario they make. Saved scenarios live in this session only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import streamlit as st

from app_pages._page_link import NAME, PageLink
from app_pages._registry_widgets import widget as registry_widget
from report import formatting as fmt
from simulator import presentation
from simulator.inputs import INPUTS
from simulator.keys import nested

PREFIX = "decide."
PAGE = "decide"
LAID_OUT = ("Question", "Hardware and traffic", "Risk")  # the groups this page lays out itself; the rest are generated
MAIN = presentation.field_group(PAGE, "Question").keys
HARDWARE = presentation.field_group(PAGE, "Hardware and traffic").keys
# the highest chance of going over the budget, of missing the quality target: each objective reads one
RISK = {"best_quality_within_budget": "decision.max_prob_over_budget",
        "cheapest_for_quality": "decision.max_prob_over_target"}
SAVED = "decide.saved"  # name -> scenario inputs (JSON text), this session only
BASE_PARAMS = 1e9  # the search chooses the size; a scenario needs one to be valid


def widget(key: str, disabled: bool = False) -> Any:
    """One input (app_pages._registry_widgets); its value (in scenario units) or None when left empty."""
    return registry_widget(key, PREFIX, disabled=disabled)


def scenario_data(values: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Scenario inputs from dotted keys (None: left empty, so the registry's default or rule applies)."""
    data: dict[str, Any] = {"name": name} if name else {}
    data["model"] = {"params": BASE_PARAMS}
    for section, fields in nested(values).items():
        data.setdefault(section, {}).update(fields)
    return data


LINK = PageLink(PREFIX, presentation.page_inputs(PAGE), extras=(NAME,))


def save(name: str, data: Mapping[str, Any]) -> None:
    st.session_state.setdefault(SAVED, {})[name] = json.dumps(data, sort_keys=True, ensure_ascii=False)


def saved() -> dict[str, str]:
    return dict(st.session_state.get(SAVED, {}))


def flat(data: Mapping[str, Any]) -> dict[str, Any]:
    """{"decision": {"budget_usd": 1}} -> {"decision.budget_usd": 1} (the name left out)."""
    return {f"{s}.{k}": v for s, values in data.items() if isinstance(values, Mapping) for k, v in values.items()}


def shown_value(key: str, flat_values: Mapping[str, Any]) -> str:
    """An input's value in a scenario (flat dotted keys) as the user reads it, with its unit: "$8M", "36 months";
    "auto" or "default: ..." when the scenario leaves it out."""
    inp = INPUTS[key]
    if key in flat_values:
        return fmt.input_text(inp, flat_values[key])
    if inp.default is None:
        return fmt.input_text(inp, None)
    return f"default: {fmt.input_text(inp, inp.default)}"
