"""Train page widgets: one per registered input (label, help and bounds from simulator.inputs), the note under
a field whose typed value the plan could not use as typed, and GPU steps that stay on counts the layout allows.

Number fields carry no min/max in the browser: a value typed out of range reaches the page, which uses the
nearest allowed value and says so right under the field (a bounded field would keep the typed text on screen
while the plan silently kept the previous value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import streamlit as st

from app_pages import _train_inputs as inputs
from app_pages._train_fields import GPUS, MODEL_CHOICES, Field
from report import formatting as fmt
from simulator.devices import all_devices

GPUS_SHOWN = "train.gpus_shown"  # the GPU count of the last run: tells a step button from typing
GPUS_NOTE = "train.gpus_note"  # why a step stopped or moved further than one step
AUTO = inputs.AUTO


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def range_note(field: Field, value: Any) -> str | None:
    """Said under a field whose value lies outside its registered bounds: the allowed range and the value used."""
    used = inputs.clamp(field, value)
    if value is None or used == value:
        return None
    unit = field.input.widget_unit if field.scale != 1 else field.input.unit
    return (f"Allowed: {_number(field.low)} to {_number(field.high)} {unit}".rstrip()
            + f"; the plan uses {_number(used)}, not {_number(value)}.")


def empty_note(field: Field, value: Any) -> str | None:
    """Said under an emptied field that has a default: the value the plan uses instead. (Empty optional fields
    show what they follow as their placeholder.)"""
    inp = field.input
    if value is not None or field.kind not in ("int", "float") or inp.default is None:
        return None
    if isinstance(inp.default, str):  # a named default ("dropless"), the field's placeholder
        return f"Empty: the plan uses the default, {inp.default}."
    shown = inp.default / field.scale if field.scale != 1 else inp.default
    return f"Empty: the plan uses the default, {_number(shown)}."


def auto_label(field: Field) -> str:
    """"auto (follows sync)": what an empty optional field follows, in the words of its first needed input."""
    derived = field.input.derived
    if derived is None or not derived.needs:
        return AUTO
    return f"{AUTO} (follows {derived.needs[0].partition('.')[2]})"


def widget(field: Field, *, disabled: bool = False, step: float | None = None, placeholder: str | None = None,
           auto: Any = None, note: str | None = None, on_change: Any = None) -> Any:
    """One input, labelled with its unit, with help text; its value lives in session state under its key.
    `auto`: the value an empty optional field gets now; `note`: a line to say under the field."""
    common = {"key": field.widget_key, "help": field.help, "disabled": disabled, "persist_state": "session",
              "on_change": on_change}
    choices = inputs.auto_choices(field)
    if choices is not None:
        label = auto_label(field)
        value = st.selectbox(field.label, choices, format_func=lambda v: label if v == AUTO else str(v), **common)
        notes = [] if value != AUTO or auto is None else [f"{label.capitalize()}: now {auto}."]
    elif field.kind in ("int", "float"):
        cast = int if field.kind == "int" else float
        word = next((w for w in field.input.words if w == field.input.default), None)  # a named default: empty
        if placeholder is None and word:
            placeholder = word
        if placeholder is None and field.optional:
            placeholder = AUTO if auto is None else f"{AUTO}: {fmt.by_unit(auto, field.input.unit)}"
        value = st.number_input(field.label, min_value=None, max_value=None, step=cast(step or field.step or 1),
                                format="%d" if field.kind == "int" else "%g", placeholder=placeholder, **common)
        notes = [n for n in (range_note(field, value), empty_note(field, value)) if n]
    else:
        fmt_fn = (lambda v: field.labels.get(v, str(v))) if field.labels else str
        if field.kind == "bool":
            value = st.toggle(field.label, **common)
        elif field.kind == "radio":
            value = st.radio(field.label, field.options, format_func=fmt_fn, horizontal=True, **common)
        else:
            value = st.selectbox(field.label, field.options, format_func=fmt_fn, **common)
        notes = []
    for text in [*notes, *([note] if note else [])]:
        st.caption(":material/info: " + text.replace("$", r"\$"))
    return value


def fields(group: Iterable[Field], options: Mapping[str, dict[str, Any]] | None = None) -> None:
    """Render a group of inputs; `options` maps a dotted key to extra widget arguments (disabled, auto, ...)."""
    for field in group:
        widget(field, **(options or {}).get(field.key, {}))


def model_select() -> str:
    return st.selectbox("Model", list(MODEL_CHOICES), format_func=MODEL_CHOICES.get, key=inputs.MODE,
                        on_change=inputs.on_model_change, persist_state="session",
                        help="A published model shape, or your own: 'Custom size' derives a GPT-3-like shape from a "
                             "parameter count; 'Custom shape' sets layers, hidden size and heads (More settings). "
                             "Each preset names its parameter count as counted here.")


def accelerator_select(field: Field, devices: Mapping[str, Any]) -> str:
    catalog = all_devices(devices)  # datasheet catalog, shipped profiles, this session's uploads

    def label(acc_id: str) -> str:
        spec = catalog.get(acc_id)
        return f"{spec.display_name} · {spec.hbm_GB:.0f} GB · ${spec.gpu_hour_usd:.2f}/h" if spec else acc_id

    return st.selectbox(field.label, list(catalog), format_func=label, key=field.widget_key, help=field.help,
                        persist_state="session")


# ---- GPU count: steps of tp×pp ----

def layout_unit() -> int:
    """tp × pp of the current inputs: the GPU count must be a multiple of it."""
    state = st.session_state
    return max(int(state.get("cluster.tp") or 1) * int(state.get("cluster.pp") or 1), 1)


def widest_gpus(unit: int) -> int:
    """The most GPUs the global batch can feed (one sequence per data-parallel rank) at this tp × pp."""
    batch = st.session_state.get("training.global_batch_seqs") or 1
    return unit * max(int(batch), 1)


def step_gpus() -> None:
    """on_change of the GPU count. A step button press (a change of exactly one step) from a count the layout
    does not allow (tp or pp changed since) lands on the next allowed count instead; a step up never passes the
    most GPUs the global batch can feed. Typed counts are kept as typed (the page says what to change)."""
    state = st.session_state
    new, before, unit = state.get(GPUS.widget_key), state.get(GPUS_SHOWN), layout_unit()
    if new is None or before is None or abs(new - before) != unit:
        return
    up = new > before
    if new % unit:
        state[GPUS.widget_key] = (before // unit + 1) * unit if up else max((before - 1) // unit * unit, unit)
        state[GPUS_NOTE] = f"Stepped to a multiple of tp×pp = {unit}."
    widest = widest_gpus(unit)
    if up and state[GPUS.widget_key] > widest >= before:
        state[GPUS.widget_key] = widest
        batch = st.session_state.get("training.global_batch_seqs")
        state[GPUS_NOTE] = (f"{widest:,} GPUs is the most a global batch of {batch:,} sequences can feed at "
                            f"tp×pp = {unit}; raise the batch to go further.")


def gpu_count() -> int | None:
    """The GPU count input, stepping by tp × pp (see step_gpus)."""
    state = st.session_state
    unit = layout_unit()
    value = widget(GPUS, step=unit, on_change=step_gpus, note=state.pop(GPUS_NOTE, None))
    state[GPUS_SHOWN] = value
    return value
