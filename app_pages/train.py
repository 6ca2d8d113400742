"""Train: how long, how many GPU-hours, how many dollars and how much energy to train this model?"""

from __future__ import annotations

import json

import streamlit as st

from app_pages import _train_data as data
from app_pages import _train_fields as f
from app_pages import _train_inputs as inputs
from app_pages import _train_view as view
from simulator.catalog import get_accelerator
from simulator.scenario import Scenario, ScenarioError

BASELINE = "train.baseline"  # scenario JSON of the pinned baseline
IMPORT_KEY, IMPORT_RESULT = "train.import", "train.import_result"


def pin(scenario_json: str) -> None:
    st.session_state[BASELINE] = scenario_json


def clear_baseline() -> None:
    st.session_state.pop(BASELINE, None)


def import_scenario() -> None:
    """Load an uploaded scenario (or plan) JSON into the widgets; say exactly what is wrong with a bad file."""
    upload = st.session_state.get(IMPORT_KEY)
    if upload is None:
        return
    try:
        raw = json.loads(upload.getvalue().decode("utf-8"))
        raw = raw["scenario"] if isinstance(raw, dict) and "scenario" in raw and "version" in raw else raw
        scenario = Scenario.from_dict(raw)
    except UnicodeDecodeError:
        st.session_state[IMPORT_RESULT] = ("error", [f"{upload.name}: not a UTF-8 text file."])
    except json.JSONDecodeError as exc:
        st.session_state[IMPORT_RESULT] = ("error", [f"{upload.name}: not valid JSON ({exc.msg}, line {exc.lineno})."])
    except ScenarioError as exc:
        st.session_state[IMPORT_RESULT] = ("error", [f"{upload.name}: {p}" for p in exc.problems])
    else:
        inputs.apply(scenario.inputs())  # derived values (catalog price, server size) keep following their inputs
        st.session_state[IMPORT_RESULT] = ("ok", [f"Loaded {upload.name}."])


def apply_change(change: dict) -> None:
    """Button callback: move the inputs to a suggested plan (dotted scenario keys -> values)."""
    sections = inputs.read()
    for key, value in change.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    inputs.apply(sections)


def main_controls() -> None:
    state = st.session_state
    custom_size = state.get(inputs.MODE) == f.CUSTOM_SIZE
    columns = st.columns([2.2, 1.2, 1.3, 2.4, 1.2] if custom_size else [2.2, 1.3, 2.4, 1.2])
    with columns[0]:
        inputs.model_select()
    rest = iter(columns[1:])
    if custom_size:
        with next(rest):
            inputs.widget(f.PARAMS)
    with next(rest):
        inputs.widget(f.TOKENS)
    with next(rest):
        inputs.accelerator_select(f.ACCELERATOR)
    with next(rest):
        unit = max(int(state.get("cluster.tp") or 1) * int(state.get("cluster.pp") or 1), 1)
        inputs.widget(f.GPUS, step=unit)


def more_settings(resolved_model: dict | None) -> None:
    state = st.session_state
    mode = state.get(inputs.MODE)
    left, middle, right = st.columns(3)
    with left.expander("Model shape", icon=":material/account_tree:"):
        if mode == f.CUSTOM_SHAPE:
            inputs.fields((*f.SHAPE, *f.SHAPE_EXTRA))
        else:
            if mode in f.PRESETS:
                st.caption(view.md(f"Source: {f.PRESETS[mode].source}."))
            if resolved_model:
                m = resolved_model
                st.caption(f"{m['layers']} layers × {m['hidden']:,} hidden, {m['heads']} heads ({m['kv_heads']} KV), "
                           f"FFN {m['ffn_hidden']:,} {m['mlp']}, vocabulary {m['vocab']:,}, sequence {m['seq_len']:,}.")
            if mode == f.CUSTOM_SIZE:
                inputs.fields(f.SHAPE_EXTRA)
            st.button("Edit this shape", on_click=inputs.edit_shape, key="train.edit_shape",
                      help="Switch to a custom shape starting from this one.")
    with left.expander("Parallelism and batch", icon=":material/grid_view:"):
        inputs.fields(f.PARALLEL)
    with middle.expander("Precision and memory", icon=":material/memory:"):
        inputs.fields(f.MEMORY)
    with middle.expander("Gradient sync", icon=":material/sync_alt:"):
        sync = state.get("cluster.sync")
        inputs.fields(f.SYNC, {"cluster.ps_servers": {"disabled": sync != "ps"},
                               "cluster.async_kappa": {"disabled": sync != "async"},
                               "training.sharding": {"disabled": sync != "async"}})
    with right.expander("Money and energy", icon=":material/payments:"):
        hw = get_accelerator(state.get("cluster.accelerator") or f.DEFAULTS["cluster"]["accelerator"])
        inputs.fields(f.MONEY, {"finance.gpu_hour_usd": {
            "placeholder": f"catalog: ${hw.gpu_hour_usd:.2f} ({hw.price_date})"}})
    with right.expander("Quality (scaling law)", icon=":material/trending_down:"):
        inputs.fields(f.QUALITY)


def baseline_row(scenario: Scenario) -> None:
    left, middle, right = st.columns([1, 1, 4], vertical_alignment="center")
    left.button("Pin as baseline", on_click=pin, args=(scenario.to_json(),), icon=":material/push_pin:", key="train.pin",
                help="Keep this plan to compare: the figures above then show their change from it.")
    if BASELINE in st.session_state:
        middle.button("Clear baseline", on_click=clear_baseline, icon=":material/close:")
        base = json.loads(st.session_state[BASELINE])
        changed = view.changes(scenario.to_dict(), base)
        right.caption(view.md("Changed from the baseline: " + "; ".join(changed)) if changed
                      else "Same inputs as the baseline.")


def sidebar(scenario: Scenario | None, plan) -> None:
    with st.sidebar:
        st.subheader("Share and export")
        st.caption("The address bar holds this scenario: copy it to share.")
        if scenario is not None:
            st.download_button("Scenario JSON", scenario.to_json(), "modelfolio-scenario.json", "application/json",
                               icon=":material/download:", key="download_scenario", on_click="ignore")
            st.download_button("Plan JSON", json.dumps(plan.to_dict(), indent=2), "modelfolio-plan.json",
                               "application/json", icon=":material/download:", key="download_plan", on_click="ignore")
        st.file_uploader("Import scenario JSON", type=["json"], key=IMPORT_KEY, on_change=import_scenario,
                         help="A scenario exported from Modelfolio (or its plan JSON). Replaces every input.")
        kind, messages = st.session_state.pop(IMPORT_RESULT, (None, []))
        if messages:
            (st.success if kind == "ok" else st.error)("\n".join(f"- {view.md(m)}" for m in messages))


def page() -> None:
    inputs.init_from_link()
    st.title("Train")
    top = st.container()
    main_controls()
    more = st.container()
    sections = inputs.read()
    inputs.sync_link(sections)
    link_problems = st.session_state.pop(inputs.LINK_PROBLEMS, [])
    if link_problems:
        with top:
            st.info("Some link parameters were not used:\n" + "\n".join(f"- {view.md(p)}" for p in link_problems),
                    icon=":material/link_off:")
    try:
        scenario = Scenario.from_dict(sections)
    except ScenarioError as exc:
        with more:
            more_settings(st.session_state.get(inputs.LAST_MODEL))
        with top:
            st.error("This combination can't be simulated:\n" + "\n".join(f"- {view.md(p)}" for p in exc.problems),
                     icon=":material/error:")
        sidebar(None, None)
        return
    st.session_state[inputs.LAST_MODEL] = scenario.to_dict()["model"]
    with more:
        more_settings(st.session_state[inputs.LAST_MODEL])
    plan = data.plan_for(scenario.to_json())
    baseline = data.plan_for(st.session_state[BASELINE]) if BASELINE in st.session_state else None
    with top:
        view.answer(plan)
        view.metrics(plan, baseline)
        baseline_row(scenario)
        view.problems(plan, on_apply=apply_change)
    plans = {view.CURRENT_NAME: plan} | ({view.BASELINE_NAME: baseline} if baseline else {})
    view.breakdown_charts(plans)
    sweep = data.gpu_sweep(scenario.to_json(), data.gpu_counts(scenario))
    view.scaling_charts(sweep, scenario.cluster.gpus, baseline.scenario.cluster.gpus if baseline else None)
    view.provenance(plan)
    sidebar(scenario, plan)


page()
