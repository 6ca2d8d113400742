"""The Deploy page's question as widgets (app_pages._registry_widgets: everything from the registry) and the
scenario they make."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from app_pages._page_link import NAME, PageLink
from app_pages._registry_widgets import EMPTY, main_rows, more_settings, rows, widget
from simulator import presentation
from simulator.inputs import INPUTS
from simulator.keys import nested

PREFIX = "deploy."
PAGE = "deploy"
FIRST_PRESET = "llama-3-70b"  # the preset the page opens with (the registry gives the preset no default)
CUSTOM = "Custom size (parameters)"
MODEL = presentation.field_group(PAGE, "Model").keys  # the main groups this page lays out; the rest are generated
TRAFFIC = presentation.field_group(PAGE, "Traffic").keys


LINK = PageLink(PREFIX, presentation.page_inputs(PAGE),
                empty={"model.preset": EMPTY, "compression.quant_method": EMPTY},
                # the training cluster's default accelerator, as the registry's rule derives an empty one
                defaults={"model.preset": FIRST_PRESET, "serving.accelerator": INPUTS["cluster.accelerator"].default},
                extras=(NAME,))


def one(key: str, values: Mapping[str, Any], disabled: bool = False) -> Any:
    """One input; `values`, the inputs above it, tell a derived choice what its "auto" stands for now."""
    if key in LINK.defaults:
        st.session_state.setdefault(PREFIX + key, LINK.default(key))
    if key == "model.preset":
        return widget(key, PREFIX, none_label=CUSTOM)
    disabled = disabled or (key == "model.params" and values.get("model.preset") is not None)
    return widget(key, PREFIX, disabled=disabled, given=values)


def question() -> dict[str, Any]:
    """The widgets, main ones first and the rest in an expander; their values by dotted key."""
    values: dict[str, Any] = {}
    rows(MODEL, values, one, per_row=len(MODEL))
    rows(TRAFFIC, values, one, per_row=len(TRAFFIC))
    main_rows(presentation.other_main_groups(PAGE, ("Model", "Traffic")), values, one)
    more_settings(presentation.more_groups(PAGE), values, one)
    return values


def scenario_data(values: Mapping[str, Any], name: str = "") -> dict[str, Any]:
    """Scenario inputs from dotted keys (None: left empty, so the registry's default or rule applies)."""
    data: dict[str, Any] = {"name": name} if name else {}
    chosen = dict(values)
    if chosen.get("model.preset") is not None:
        chosen.pop("model.params", None)  # the preset's shape counts the parameters
    for section, fields in nested(chosen).items():
        data.setdefault(section, {}).update(fields)
    return data
