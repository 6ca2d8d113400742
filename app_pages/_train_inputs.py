"""Train page widgets <-> scenario input sections, and the link (URL query) that carries them."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

import streamlit as st

from app_pages._train_fields import (
    BILLION,
    CUSTOM_SHAPE,
    CUSTOM_SIZE,
    DEFAULT_PRESET,
    DEFAULTS,
    MODEL_CHOICES,
    MODEL_DEFAULTS,
    MODEL_FIELDS,
    PARAMS,
    PRESET_MODELS,
    PRESETS,
    SCENARIO_FIELDS,
    SHAPE,
    SHAPE_EXTRA,
    TOKENS,
    Field,
)
from simulator import share
from simulator.catalog import all_devices
from simulator.scenario import Scenario, ScenarioError

MODE = "model.preset"
READY = "train.ready"  # session flag: widgets were initialised from the link (or an import)
LINK_PROBLEMS = "train.link_problems"
LAST_MODEL = "train.last_model"  # resolved model section of the last valid run, for "edit this shape"
SHAPE_KEYS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden")


def _section_key(field: Field) -> tuple[str, str]:
    section, _, name = field.key.partition(".")
    return section, name


def _to_widget(field: Field, value: Any) -> Any:
    if value is None:
        return None
    if field.kind == "int":
        return int(value)
    if field.kind == "float":
        return float(value) / field.scale
    return value


@functools.lru_cache(maxsize=64)
def _resolved(model_json: str) -> Any:
    try:
        return Scenario.from_dict({"model": json.loads(model_json)}).model
    except ScenarioError:
        return None


def _mode_of(model: Mapping[str, Any]) -> str:
    for name, preset in PRESET_MODELS.items():
        if dict(model) == preset:
            return name
    resolved = _resolved(json.dumps(dict(model), sort_keys=True))
    for name, preset in PRESET_MODELS.items():
        if resolved is not None and resolved == _resolved(json.dumps(preset, sort_keys=True)):
            return name
    if any(model.get(k) is not None for k in SHAPE_KEYS[:3]):
        return CUSTOM_SHAPE
    return CUSTOM_SIZE if model.get("params") is not None else DEFAULT_PRESET


def model_without_defaults(model: Mapping[str, Any]) -> dict[str, Any]:
    """Drop values ModelSpec would fill anyway, so equal models compare (and link) equal."""
    keep = {k: v for k, v in model.items() if v is not None and v != MODEL_DEFAULTS.get(k)}
    if keep.get("kv_heads") is not None and keep.get("kv_heads") == keep.get("heads"):
        keep.pop("kv_heads")  # as many KV heads as heads is plain multi-head attention, the default
    if any(keep.get(k) is not None for k in SHAPE_KEYS[:3]):
        keep.pop("params", None)  # a full shape defines the parameter count
    return keep


def apply(sections: Mapping[str, Mapping[str, Any]]) -> None:
    """Set every widget's state from scenario input sections (from a link, an import or a preset)."""
    state = st.session_state
    model = model_without_defaults(sections.get("model", {}))
    mode = _mode_of(model)
    state[MODE] = mode
    shape_source = PRESETS[mode].model if mode in PRESETS else model
    if mode == CUSTOM_SIZE:
        shape_source = PRESETS[DEFAULT_PRESET].model
    for field in MODEL_FIELDS:
        _, name = _section_key(field)
        value = model.get(name, shape_source.get(name, MODEL_DEFAULTS.get(name)))
        if field is PARAMS and value is None:
            value = 70 * BILLION
        state[field.widget_key] = _to_widget(field, value)
    for field in SCENARIO_FIELDS:
        section, name = _section_key(field)
        value = sections.get(section, {}).get(name, DEFAULTS[section].get(name))
        state[field.widget_key] = _to_widget(field, value)


def init_from_link() -> None:
    """First run of a session: the link's parameters set the widgets; problems are kept to show once."""
    if st.session_state.get(READY):
        return
    shared = share.from_query(st.query_params.to_dict(), DEFAULTS, PRESET_MODELS)
    apply(shared.inputs)
    st.session_state[LINK_PROBLEMS] = list(shared.problems)
    st.session_state[READY] = True


def sync_link(sections: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the inputs that differ from the page defaults into the URL (nothing when all are defaults)."""
    query = share.to_query(sections, DEFAULTS, PRESET_MODELS)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def read() -> dict[str, dict[str, Any]]:
    """Scenario input sections from the widgets' current values (before validation)."""
    state = st.session_state
    sections = {s: {k: v for k, v in values.items() if v is not None} for s, values in DEFAULTS.items()}
    for field in SCENARIO_FIELDS:
        section, name = _section_key(field)
        value = state.get(field.widget_key)
        if value is None:
            sections[section].pop(name, None)
        else:
            sections[section][name] = value * field.scale if field.scale != 1 else value
    mode = state.get(MODE, DEFAULT_PRESET)
    if mode in PRESETS:
        sections["model"] = dict(PRESETS[mode].model)
    else:
        fields = (PARAMS, *SHAPE_EXTRA) if mode == CUSTOM_SIZE else (*SHAPE, *SHAPE_EXTRA)
        model = {}
        for field in fields:
            value = state.get(field.widget_key)
            model[_section_key(field)[1]] = value * field.scale if value is not None and field.scale != 1 else value
        sections["model"] = model_without_defaults(model)
    return sections


# ---- callbacks (run before the script, so they may set widget state) ----

def _on_model_change() -> None:
    state = st.session_state
    mode, last = state[MODE], state.get(LAST_MODEL) or {}
    if mode in PRESETS:
        state[TOKENS.widget_key] = PRESETS[mode].tokens / BILLION
    elif mode == CUSTOM_SIZE and last.get("params"):
        state[PARAMS.widget_key] = last["params"] / BILLION
    elif mode == CUSTOM_SHAPE and last:
        for field in (*SHAPE, *SHAPE_EXTRA):
            state[field.widget_key] = last.get(_section_key(field)[1])


def edit_shape() -> None:
    st.session_state[MODE] = CUSTOM_SHAPE
    _on_model_change()


# ---- widgets ----

def widget(field: Field, *, disabled: bool = False, step: float | None = None, placeholder: str | None = None) -> Any:
    """One input, labelled with its unit, with help text; its value lives in session state under its key."""
    common = {"key": field.widget_key, "help": field.help, "disabled": disabled, "persist_state": "session"}
    if field.kind in ("int", "float"):
        cast = int if field.kind == "int" else float
        lo = None if field.low is None else cast(field.low)
        hi = None if field.high is None else cast(field.high)
        st_step = cast(step or field.step or 1)
        fmt = "%d" if field.kind == "int" else "%g"
        return st.number_input(field.label, min_value=lo, max_value=hi, step=st_step, format=fmt,
                               placeholder=placeholder, **common)
    fmt_fn = (lambda v: field.labels.get(v, str(v))) if field.labels else str
    if field.kind == "bool":
        return st.toggle(field.label, **common)
    if field.kind == "radio":
        return st.radio(field.label, field.options, format_func=fmt_fn, horizontal=True, **common)
    return st.selectbox(field.label, field.options, format_func=fmt_fn, **common)


def model_select() -> str:
    return st.selectbox("Model", list(MODEL_CHOICES), format_func=MODEL_CHOICES.get, key=MODE,
                        on_change=_on_model_change, persist_state="session",
                        help="A published model shape, or your own: 'Custom size' derives a GPT-3-like shape from a "
                             "parameter count; 'Custom shape' sets layers, hidden size and heads (More settings).")


def accelerator_select(field: Field) -> str:
    catalog = all_devices()  # the datasheet catalog plus calibrated devices (shipped and uploaded profiles)

    def label(acc_id: str) -> str:
        spec = catalog.get(acc_id)
        return f"{spec.display_name} · {spec.hbm_GB:.0f} GB · ${spec.gpu_hour_usd:.2f}/h" if spec else acc_id

    return st.selectbox(field.label, list(catalog), format_func=label, key=field.widget_key, help=field.help,
                        persist_state="session")


def fields(group: Iterable[Field], options: Mapping[str, dict[str, Any]] | None = None) -> None:
    """Render a group of inputs; `options` maps a dotted key to extra widget arguments (disabled, step, ...)."""
    for field in group:
        widget(field, **(options or {}).get(field.key, {}))
