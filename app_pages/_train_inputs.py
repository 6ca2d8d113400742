"""Train page widget state <-> scenario input sections, the model the inputs describe, and the link."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import Any

import streamlit as st

from app_pages import _page_link as page_link
from app_pages._train_data import Devices, inputs_json
from app_pages._train_fields import (
    BILLION,
    CUSTOM_SHAPE,
    CUSTOM_SIZE,
    DEFAULT_PRESET,
    DEFAULTS,
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
from simulator.scenario import Scenario, ScenarioError

MODE = "model.preset"
PREFIX = "train."  # this page's session state
READY = "train.ready"  # session flag: widgets were initialised from the link (or an import)
LINK_PROBLEMS = "train.link_problems"
MODEL = "train.model"  # resolved model section of the current inputs (None: the model alone is invalid)
BASELINE = "train.baseline"  # inputs JSON (data.inputs_json) of the pinned baseline
SHAPE_KEYS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden")
LINK_KEYS = (MODE, *(field.key for field in (*MODEL_FIELDS, *SCENARIO_FIELDS)))  # the inputs a link may set here


def _section_key(field: Field) -> tuple[str, str]:
    section, _, name = field.key.partition(".")
    return section, name


AUTO = "auto"  # the choice "follow the rule" of an optional select (a select shows None as no choice at all)
AUTO_CHOICES = 8  # an optional int with at most this many values is a select with AUTO first


def auto_choices(field: Field) -> tuple[Any, ...] | None:
    """(AUTO, low, ..., high) for an optional int with a handful of values (ZeRO stage 0-3), else None."""
    if field.kind != "int" or not field.optional or field.low is None or field.high is None:
        return None
    if field.high - field.low + 1 > AUTO_CHOICES:
        return None
    return (AUTO, *range(int(field.low), int(field.high) + 1))


def _to_widget(field: Field, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value in field.input.words):  # a named value ("dropless"): empty
        return AUTO if auto_choices(field) else None
    if field.kind == "int":
        return int(value)
    if field.kind == "float":
        return float(value) / field.scale
    return value


def clamp(field: Field, value: Any) -> Any:
    """The value the plan uses for a widget value: a number outside the registered bounds is moved onto them;
    AUTO is None (follow the rule)."""
    if value is None or value == AUTO or field.kind not in ("int", "float"):
        return None if value == AUTO else value
    if field.low is not None and value < field.low:
        value = field.low
    if field.high is not None and value > field.high:
        value = field.high
    return int(value) if field.kind == "int" else value


# Resolving a model section takes about 4 ms, and every rerun of the Train page resolves the current model and
# each of the 8 preset models (to tell which one the inputs describe): about 70 ms uncached, 0.1 ms cached. The
# cache is process-wide on purpose: it is keyed by value (the section's JSON, keys sorted), holds no session
# state (the model section needs no devices), its values are frozen ModelSpecs, and it is bounded.
RESOLVED_MODELS_KEPT = 128


@functools.lru_cache(maxsize=RESOLVED_MODELS_KEPT)
def _resolved(model_json: str) -> Any:
    """The model section alone (`model_json`: its JSON, keys sorted), resolved (its shape and counted
    parameters) as a frozen ModelSpec, or None when it is invalid."""
    try:
        return Scenario.from_dict({"model": json.loads(model_json)}).model
    except ScenarioError:
        return None


def resolve_model(model: Mapping[str, Any]) -> dict[str, Any] | None:
    """Shape and parameter count of a model section, whatever the rest of the inputs: the page describes this
    model (headline, Model shape, "Edit this shape") even while the whole plan is invalid."""
    spec = _resolved(json.dumps(dict(model), sort_keys=True))
    return None if spec is None else dataclasses.asdict(spec)


def _mode_of(model: Mapping[str, Any]) -> str:
    if model.get("preset") in PRESETS and set(model) == {"preset"}:
        return model["preset"]
    if model.get("preset") in PRESETS:  # a preset with changes: edit it as a shape
        model = {**PRESETS[model["preset"]].model, **{k: v for k, v in model.items() if k != "preset"}}
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
    if model.get("preset") in PRESETS:
        model = {**PRESETS[model["preset"]].model, **{k: v for k, v in model.items() if k != "preset"}}
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
    state[MODEL] = resolve_model(read()["model"])


def pin(inputs: str | None) -> None:
    """Pin (or, with None, clear) the baseline: scenario inputs as JSON (data.inputs_json)."""
    if inputs is None:
        st.session_state.pop(BASELINE, None)
    else:
        st.session_state[BASELINE] = inputs


def baseline() -> str | None:
    return st.session_state.get(BASELINE)


def init_from_link(devices: Devices) -> None:
    """First run of a session: the link's parameters set the widgets and pin its baseline (`b.` parameters);
    problems (another page's parameters among them) are kept to show once."""
    state = st.session_state
    if state.get(READY):
        last = page_link.recall(PREFIX, [f.widget_key for f in SCENARIO_FIELDS])
        if last:  # back from another page: the inputs (and baseline) as this page left them
            st.query_params.from_dict(last)
            state[READY] = False
            init_from_link(devices)
            state.pop(LINK_PROBLEMS, None)
        return
    params, problems = page_link.split(st.query_params.to_dict(), LINK_KEYS, baseline=True)
    shared = share.from_query(params, DEFAULTS)
    apply(shared.inputs)
    problems += shared.problems
    if shared.baseline is not None:
        try:
            pin(inputs_json(Scenario.from_dict(shared.baseline, devices)))
        except ScenarioError as exc:
            problems.append("The link's baseline (its b. parameters) can't be simulated, so none is pinned: "
                            + "; ".join(exc.problems))
    state[LINK_PROBLEMS] = problems
    state[READY] = True


def sync_link(sections: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the inputs (and the pinned baseline) that differ from the page defaults into the URL."""
    pinned = baseline()
    query = share.to_query(sections, DEFAULTS, baseline=json.loads(pinned) if pinned else None)
    page_link.remember(PREFIX, query)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def read() -> dict[str, dict[str, Any]]:
    """Scenario input sections from the widgets' current values, each number within its registered bounds
    (the field says so when it had to be moved: _train_widgets.widget)."""
    state = st.session_state
    sections = {s: {k: v for k, v in values.items() if v is not None} for s, values in DEFAULTS.items()}
    for field in SCENARIO_FIELDS:
        section, name = _section_key(field)
        value = clamp(field, state.get(field.widget_key))
        if value is None and isinstance(field.input.default, str) and field.input.default in field.input.words:
            sections[section][name] = field.input.default  # an empty field at its named default ("dropless")
        elif value is None:
            sections[section].pop(name, None)
        else:
            sections[section][name] = value * field.scale if field.scale != 1 else value
    mode = state.get(MODE, DEFAULT_PRESET)
    if mode in PRESETS:
        sections["model"] = {"preset": mode}
    else:
        fields = (PARAMS, *SHAPE_EXTRA) if mode == CUSTOM_SIZE else (*SHAPE, *SHAPE_EXTRA)
        model = {}
        for field in fields:
            value = clamp(field, state.get(field.widget_key))
            model[_section_key(field)[1]] = value * field.scale if value is not None and field.scale != 1 else value
        sections["model"] = as_preset_change(model_without_defaults(model))
    return sections


def as_preset_change(model: dict[str, Any]) -> dict[str, Any]:
    """A custom shape written as the nearest preset plus what differs, when that is shorter (short links)."""
    best = model
    for name, preset in PRESET_MODELS.items():
        if not set(preset) <= set(model):
            continue
        change = {"preset": name, **{k: v for k, v in model.items() if preset.get(k) != v}}
        if len(change) < len(best):
            best = change
    return best


# ---- callbacks (run before the script, so they may set widget state) ----

def on_model_change() -> None:
    """The model select changed: a preset brings its published tokens; a custom choice starts from the model
    on screen (state[MODEL], the model the inputs described a moment ago)."""
    state = st.session_state
    mode, shown = state[MODE], state.get(MODEL) or {}
    if mode in PRESETS:
        state[TOKENS.widget_key] = PRESETS[mode].tokens / BILLION
    elif mode == CUSTOM_SIZE and shown.get("params"):
        state[PARAMS.widget_key] = shown["params"] / BILLION
    elif mode == CUSTOM_SHAPE and shown:
        shape = {name: shown.get(name) for name in (_section_key(field)[1] for field in (*SHAPE, *SHAPE_EXTRA))}
        # KV heads and FFN width the rules would derive anyway stay empty ("auto"): equal models, short links
        bare = resolve_model({k: v for k, v in shape.items() if k not in ("kv_heads", "ffn_hidden")})
        for name in ("kv_heads", "ffn_hidden"):
            if bare is not None and bare.get(name) == shape[name]:
                shape[name] = None
        for field in (*SHAPE, *SHAPE_EXTRA):
            state[field.widget_key] = _to_widget(field, shape[_section_key(field)[1]])


def edit_shape() -> None:
    st.session_state[MODE] = CUSTOM_SHAPE
    on_model_change()


def set_inputs(change: Mapping[str, Any]) -> None:
    """Button callback: move the inputs to a suggested plan (dotted scenario keys -> values)."""
    sections = read()
    for key, value in change.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    apply(sections)
