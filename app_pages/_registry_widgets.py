"""Widgets generated from the input registry (simulator.inputs.INPUTS): label, unit, help, bounds, step and
default come from the input's declaration, never restated here. Used by the Decide and Deploy pages; each page
keeps its widgets' values in session state under its own prefix ("decide.", "deploy.")."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from simulator.devices import all_devices
from simulator.inputs import INPUTS

RADIO_MOST = 4  # a choice with more options than this is a select box
EMPTY = "(empty)"  # the extra option of an optional choice (a select box's None means "nothing selected")


def label(key: str) -> str:
    """The input's label with its unit: "Requests per second (requests/s)"; "Parameters (billions)" when scaled."""
    inp = INPUTS[key]
    unit = inp.widget_unit if inp.scale != 1 else inp.unit
    said = unit and re.search(rf"(?<!\w){re.escape(unit.lower())}(?!\w)", inp.label.lower())  # a word, not "s" in "first"
    return f"{inp.label} ({unit})" if unit and not said else inp.label


def widget(key: str, prefix: str, disabled: bool = False, options: Sequence[Any] | None = None,
           none_label: str | None = None, format_value: Callable[[Any], str] | None = None) -> Any:
    """One input; its value in scenario units, or None when left empty (the registry's default or rule applies).

    `options`: offer these values of a number input as a select box (e.g. the allowed bit widths);
    `none_label`: a choice gets one more option, shown with this text, that leaves it empty (returns None; for an
    optional choice such as a preset).
    A number input with a named value (serving.batch "max") shows it as the empty field's placeholder and returns
    the name when empty."""
    inp = INPUTS[key]
    skey = prefix + key
    if inp.kind == "choice" or options is not None:
        choices = list(options if options is not None else inp.choices)
        if none_label is not None:
            choices.append(EMPTY)
        labels = {**inp.choice_labels, EMPTY: none_label}
        shown = format_value or (lambda v: labels.get(v, str(v)))
        if skey not in st.session_state:
            st.session_state[skey] = inp.default if inp.default in choices else choices[0]
        if len(choices) > RADIO_MOST or options is not None:
            value = st.selectbox(label(key), choices, format_func=shown, key=skey, help=inp.help, disabled=disabled)
        else:
            value = st.radio(label(key), choices, format_func=shown, key=skey, help=inp.help, horizontal=True,
                             disabled=disabled)
        return None if value == EMPTY else value
    if inp.kind == "bool":
        if skey not in st.session_state:
            st.session_state[skey] = bool(inp.default)
        return st.toggle(label(key), key=skey, help=inp.help, disabled=disabled)
    if inp.kind == "device":
        catalog = all_devices(st.session_state.get("devices.uploaded", {}))
        if skey not in st.session_state:
            st.session_state[skey] = inp.default if inp.default in catalog else next(iter(catalog))
        return st.selectbox(label(key), list(catalog), key=skey, help=inp.help, disabled=disabled,
                            format_func=lambda i: f"{catalog[i].display_name} · ${catalog[i].gpu_hour_usd:.2f}/h")
    cast = int if inp.kind == "int" else float
    word = next((w for w in inp.words if w == inp.default), None)  # a named default ("max") is the empty field
    if skey not in st.session_state:
        st.session_state[skey] = None if inp.default is None or word else cast(inp.default / inp.scale)
    low = None if inp.low is None else cast(inp.low / inp.scale)
    high = None if inp.high is None else cast(inp.high / inp.scale)
    step = cast((inp.step or 1) / inp.scale) if inp.kind == "float" else max(1, int(inp.step or 1))
    placeholder = word or ("auto" if inp.derived is not None else "empty" if inp.default is None else None)
    value = st.number_input(label(key), min_value=low, max_value=high, step=step, key=skey, help=inp.help,
                            format="%d" if inp.kind == "int" else "%g", disabled=disabled, placeholder=placeholder)
    if value is None:
        return word
    return cast(value * inp.scale) if inp.scale != 1 else value
