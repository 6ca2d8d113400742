"""Widgets generated from the input registry (simulator.inputs.INPUTS): label, unit, help, bounds, step and
default come from the input's declaration, never restated here. Used by the Decide and Deploy pages; each page
keeps its widgets' values in session state under its own prefix ("decide.", "deploy.")."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from report import formatting as fmt
from simulator.devices import all_devices
from simulator.inputs import INPUTS, derived_value
from simulator.registry import FieldGroup

PER_ROW = 4  # widgets side by side in a generated group
RADIO_MOST = 4  # a choice with more options than this is a select box
EMPTY = "(empty)"  # the extra option of an optional choice (a select box's None means "nothing selected")
AUTO = "auto"  # how that option reads for a choice the registry derives


def label(key: str) -> str:
    """The input's label with its unit: "Requests per second (requests/s)"; "Parameters (billions)" when scaled."""
    return fmt.labelled(INPUTS[key])


def auto_note(key: str, given: Mapping[str, Any]) -> str | None:
    """Said under a derived choice left on auto: what its rule makes of the inputs now and what it follows,
    "Auto: now round-to-nearest, following weight bits and activation bits." (as Train says it)."""
    value = derived_value(key, given)
    if value is None:
        return None
    follows = " and ".join(INPUTS[k].label.lower() for k in INPUTS[key].derived.needs)
    return f"Auto: now {INPUTS[key].choice_labels.get(value, value)}, following {follows}."


def widget(key: str, prefix: str, disabled: bool = False, options: Sequence[Any] | None = None,
           none_label: str | None = None, format_value: Callable[[Any], str] | None = None,
           given: Mapping[str, Any] | None = None) -> Any:
    """One input; its value in scenario units, or None when left empty (the registry's default or rule applies).

    `options`: offer these values of a number input as a select box (default: the input's `offered` values, e.g.
    the allowed bit widths); `none_label`: a choice gets one more option, shown with this text, that leaves it
    empty (returns None; for an optional choice such as a preset). A choice the registry derives (the quantization
    method) gets that option first, "auto", starts on it, and while on it says under it what its rule makes of the
    inputs `given` now, as the Train page does.
    A number input with a named value (serving.batch "max") shows it as the empty field's placeholder and returns
    the name when empty."""
    inp = INPUTS[key]
    skey = prefix + key
    options = options if options is not None else (inp.offered or None)
    auto = inp.kind == "choice" and inp.derived is not None and none_label is None
    if auto:
        none_label = AUTO
    if inp.kind == "choice" or options is not None:
        choices = list(options if options is not None else inp.choices)
        if none_label is not None:
            choices = [EMPTY, *choices] if auto else [*choices, EMPTY]
        labels = {**inp.choice_labels, EMPTY: none_label}
        shown = format_value or (lambda v: labels.get(v, str(v)))
        if skey not in st.session_state:
            st.session_state[skey] = inp.default if inp.default in choices else EMPTY if auto else choices[0]
        if len(choices) > RADIO_MOST or options is not None:
            value = st.selectbox(label(key), choices, format_func=shown, key=skey, help=inp.help, disabled=disabled)
        else:
            value = st.radio(label(key), choices, format_func=shown, key=skey, help=inp.help, horizontal=True,
                             disabled=disabled)
        note = auto_note(key, given or {}) if auto and value == EMPTY else None
        if note:
            st.caption(":material/info: " + note)
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


One = Callable[[str, dict[str, Any]], Any]  # one widget: (key, the values above it) -> its value


def rows(keys: Sequence[str], values: dict[str, Any], one: One, per_row: int = PER_ROW) -> None:
    """Widgets `per_row` side by side, in order; each sees the values above and left of it, and adds its own."""
    for start in range(0, len(keys), per_row):
        for column, key in zip(st.columns(per_row), keys[start:start + per_row], strict=False):
            with column:
                values[key] = one(key, values)


def main_rows(groups: Sequence[FieldGroup], values: dict[str, Any], one: One) -> None:
    """Main groups the page does not lay out itself (simulator.presentation.other_main_groups): a row each."""
    for group in groups:
        rows(group.keys, values, one)


def more_settings(groups: Sequence[FieldGroup], values: dict[str, Any], one: One,
                  then: Callable[[], None] | None = None, titles: Sequence[str] = ()) -> None:
    """The groups a page shows under "More settings" (simulator.presentation.more_groups): one expander, each group
    under its title, then (`then`) what the page lays out there itself (`titles`: its groups' titles, for the
    expander's label); nothing when there is nothing to show."""
    if not groups and then is None:
        return
    label = ", ".join(t.lower() for t in (*(g.title for g in groups), *titles))
    with st.expander(f"More settings: {label}"):
        for group in groups:
            st.markdown(f"**{group.title}**")
            rows(group.keys, values, one)
        if then is not None:
            if titles:
                st.markdown("**" + ", ".join(titles) + "**")
            then()
