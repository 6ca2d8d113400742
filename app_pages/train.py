"""Train: how long, how many GPU-hours, how many dollars and how much energy to train this model?"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import streamlit as st

from app_pages import _page_link as page_link
from app_pages import _train_data as data
from app_pages import _train_explain as explain
from app_pages import _train_fields as f
from app_pages import _train_inputs as inputs
from app_pages import _train_view as view
from app_pages import _train_widgets as widgets
from app_pages._devices import session_devices
from app_pages._sections import show_sections
from report import formatting as fmt
from report import messages
from simulator.catalog import UnknownAccelerator
from simulator.devices import get_accelerator
from simulator.inputs import INPUTS
from simulator.safe_json import read_upload
from simulator.safe_json_errors import JSONInputError
from simulator.safe_json_limits import MAX_SCENARIO_BYTES
from simulator.scenario import Scenario, ScenarioError
from simulator.training import choice
from simulator.training.choice import chosen_by_planner

IMPORT_KEY, IMPORT_RESULT = "train.import", "train.import_result"
LAST_VALID = "train.last_valid"  # inputs JSON of the last valid plan: shown, marked stale, while the inputs are not
ZERO_AUTO = "train.zero_auto"  # the ZeRO stage its rule gave on the last valid run (to say when it changes)


def import_scenario() -> None:
    """Load an uploaded scenario (or plan) JSON into the widgets; say exactly what is wrong with a bad file."""
    upload = st.session_state.get(IMPORT_KEY)
    if upload is None:
        return
    try:
        raw = read_upload(upload.getvalue(), upload.name, MAX_SCENARIO_BYTES)
        raw = raw["scenario"] if isinstance(raw, dict) and "scenario" in raw and "version" in raw else raw
        scenario = Scenario.from_dict(raw, session_devices())
    except JSONInputError as exc:
        st.session_state[IMPORT_RESULT] = ("error", [fmt.md_escape(str(exc))])
    except ScenarioError as exc:
        st.session_state[IMPORT_RESULT] = ("error", [f"{fmt.md_escape(upload.name[:80])}: {p}" for p in exc.problems])
    else:
        inputs.apply(scenario.inputs())  # derived values (catalog price, server size) keep following their inputs
        st.session_state[IMPORT_RESULT] = ("ok", [f"Loaded {fmt.md_escape(upload.name[:80])}."])


def device_name(devices: Mapping[str, Any]):
    def name(acc_id: str) -> str:
        try:
            return get_accelerator(acc_id, extra=devices).display_name
        except UnknownAccelerator:
            return acc_id
    return name


def main_controls(devices: Mapping[str, Any]) -> None:
    custom_size = st.session_state.get(inputs.MODE) == f.CUSTOM_SIZE
    columns = st.columns([2.2, 1.2, 1.3, 2.4, 1.2] if custom_size else [2.2, 1.3, 2.4, 1.2])
    with columns[0]:
        widgets.model_select()
    rest = iter(columns[1:])
    if custom_size:
        with next(rest):
            widgets.widget(f.PARAMS)
    with next(rest):
        widgets.widget(f.TOKENS)
    with next(rest):
        widgets.accelerator_select(f.ACCELERATOR, devices)
    with next(rest):
        widgets.gpu_count()


def auto_values(scenario: Scenario | None, plan: Any) -> dict[str, dict[str, Any]]:
    """Widget options giving each empty optional field the value its rule gives now (shown as its placeholder)."""
    if scenario is None:
        return {}
    auto = {key: scenario.value(key) for key in scenario.derived}
    for side in ("first", "last"):  # absent: the planner chooses; the plan says what it chose
        auto[f"cluster.{side}_stage_layers"] = plan.value(f"training.{side}_stage_layers")
    options = {key: {"auto": value} for key, value in auto.items()}
    for key in scenario.derived:  # micro-batch and interleave: say it was a choice, and how it was made
        if chosen_by_planner(INPUTS[key].derived):
            options[key]["note"] = f"Auto: {auto[key]}, {choice.TEXT}."
    return options


def zero_note(scenario: Scenario | None) -> str | None:
    """Said under the sync choice when the ZeRO stage follows it and just changed with it."""
    state = st.session_state
    if scenario is None or "training.zero_stage" not in scenario.derived:
        return None
    now, before = scenario.training.zero_stage, state.get(ZERO_AUTO)
    state[ZERO_AUTO] = now
    if before is None or before == now:
        return None
    return f"The ZeRO stage follows the sync (auto): now {now}, was {before}."


def more_settings(model: dict | None, scenario: Scenario | None, plan: Any, devices: Mapping[str, Any]) -> None:
    state = st.session_state
    mode = state.get(inputs.MODE)
    auto = auto_values(scenario, plan) if scenario is not None else {}
    left, middle, right = st.columns(3)
    with left.expander("Model shape", icon=":material/account_tree:"):
        if mode == f.CUSTOM_SHAPE:
            shape_auto = {k: {"auto": (model or {}).get(k.partition(".")[2])} for k in ("model.kv_heads",
                                                                                         "model.ffn_hidden")}
            widgets.fields((*f.SHAPE, *f.SHAPE_EXTRA), shape_auto)
        else:
            if mode in f.PRESETS:
                st.caption(view.md(f"{f.PRESETS[mode].label}. Source: {f.PRESETS[mode].source}."))
            if model:
                m = model
                st.caption(f"{m['layers']} layers × {m['hidden']:,} hidden, {m['heads']} heads ({m['kv_heads']} KV), "
                           f"FFN {m['ffn_hidden']:,} {m['mlp']}, vocabulary {m['vocab']:,}, sequence {m['seq_len']:,}: "
                           f"{m['params'] / 1e9:,.1f}B parameters as counted.")
            if mode == f.CUSTOM_SIZE:
                widgets.fields(f.SHAPE_EXTRA)
            if model:
                st.button("Edit this shape", on_click=inputs.edit_shape, key="train.edit_shape",
                          help="Switch to a custom shape starting from this one.")
    with left.expander("Parallelism and batch", icon=":material/grid_view:"):
        widgets.fields(f.PARALLEL, auto)
    with middle.expander("Precision and memory", icon=":material/memory:"):
        widgets.fields(f.MEMORY, auto)
    with middle.expander("Gradient sync", icon=":material/sync_alt:"):
        sync = state.get("cluster.sync")
        widgets.fields(f.SYNC, {"cluster.sync": {"note": zero_note(scenario)},
                                "cluster.ps_servers": {"disabled": sync != "ps"},
                                "cluster.async_kappa": {"disabled": sync != "async"},
                                "training.sharding": {"disabled": sync != "async"}})
    with middle.expander("Goodput", icon=":material/restart_alt:"):
        off = not state.get("goodput.enabled", True)
        widgets.fields(f.GOODPUT, {field.key: {"disabled": off} for field in f.GOODPUT if field.key != "goodput.enabled"})
    with right.expander("Money and energy", icon=":material/payments:"):
        try:
            hw = get_accelerator(state.get("cluster.accelerator") or f.DEFAULTS["cluster"]["accelerator"],
                                 extra=devices)
            price = {"placeholder": f"catalog: ${hw.gpu_hour_usd:.2f} ({hw.price_date})"}
        except UnknownAccelerator:
            price = {}
        widgets.fields(f.MONEY, {**auto, "finance.gpu_hour_usd": price})
    with right.expander("Quality (scaling law)", icon=":material/trending_down:"):
        widgets.fields(f.QUALITY)
    for title, fields in f.OTHER:  # another family's groups on this page
        with right.expander(title, icon=":material/tune:"):
            widgets.fields(fields, auto)


def invalid_inputs(problems: list[str], sections: Mapping[str, Mapping[str, Any]]) -> None:
    """What is wrong, and for a GPU count the layout does not allow, the nearest counts it does, as buttons."""
    st.error("This combination can't be simulated; change what each line says:\n"
             + "\n".join(f"- {view.md(messages.in_words(p))}" for p in problems), icon=":material/error:")
    cluster = sections["cluster"]
    unit, gpus = cluster.get("tp", 1) * cluster.get("pp", 1), cluster.get("gpus")
    if gpus and gpus % unit:
        below, above = gpus // unit * unit, (gpus // unit + 1) * unit
        columns = st.columns(4)
        for i, count in enumerate(c for c in (below, above) if c >= unit):
            columns[i].button(f"Use {count:,} GPUs", key=f"train.fix_gpus_{i}", on_click=inputs.set_inputs,
                              args=({"cluster.gpus": count},), help=f"A multiple of tp×pp = {unit}.")


def baseline_row(scenario: Scenario, baseline: Any, devices: Mapping[str, Any]) -> None:
    left, middle, right = st.columns([1, 1, 4], vertical_alignment="center")
    left.button("Pin as baseline", on_click=inputs.pin, args=(data.inputs_json(scenario),), icon=":material/push_pin:",
                key="train.pin", help="Keep this plan to compare: the figures above then show their change from it. "
                                      "The link carries it too.")
    if baseline is not None:
        middle.button("Clear baseline", on_click=inputs.pin, args=(None,), icon=":material/close:", key="train.unpin")
        right.caption(view.md(explain.changes_text(scenario, baseline.scenario, device_name(devices))))


def pdf_report(plan: Any, sweep: Any, baseline: Any):
    """The PDF summary, built only when the button is clicked (a rerun stays fast), from this run's plan,
    GPU-count sweep and baseline."""
    def build() -> bytes:
        from report.pdf import plan_pdf  # fpdf2 and vl-convert load on the first click, not with the page

        return plan_pdf(plan, sweep, baseline)
    return build


def sidebar(plan: Any, stale: bool, sweep: Any = None, baseline: Any = None) -> None:
    with st.sidebar:
        st.subheader("Share and export")
        st.caption("The address bar holds this scenario (and a pinned baseline): copy it to share.")
        if plan is not None:
            suffix = " (last valid plan)" if stale else ""
            st.download_button(f"Scenario JSON{suffix}", plan.scenario.to_json(), "modelfolio-scenario.json",
                               "application/json", icon=":material/download:", key="download_scenario",
                               on_click="ignore")
            st.download_button(f"Plan JSON{suffix}", json.dumps(plan.to_dict(), indent=2), "modelfolio-plan.json",
                               "application/json", icon=":material/download:", key="download_plan", on_click="ignore")
            # a deferred download keeps the callable of the widget it was made with: the key follows the plan
            version = hashlib.sha256((plan.scenario.to_json() + repr(baseline and baseline.scenario.to_json()))
                                     .encode()).hexdigest()[:12]
            st.download_button(f"PDF report{suffix}", pdf_report(plan, sweep, baseline), "modelfolio-plan.pdf",
                               "application/pdf", icon=":material/picture_as_pdf:", key=f"download_pdf.{version}",
                               on_click="ignore", help="The answer, key figures with ranges and provenance, warnings, "
                                                       "the charts above, every input and the sources, on A4.")
            if sweep is not None:
                st.download_button(f"GPU-count sweep CSV{suffix}", sweep.to_csv(index=False),
                                   "modelfolio-gpu-sweep.csv", "text/csv", icon=":material/download:",
                                   key="download_sweep_csv", on_click="ignore",
                                   help="The scaling charts' rows: this plan at each GPU count.")
        st.file_uploader("Import scenario JSON", type=["json"], key=IMPORT_KEY, on_change=import_scenario,
                         max_upload_size=max(1, MAX_SCENARIO_BYTES // 2**20),
                         help="A scenario exported from Modelfolio (or its plan JSON). Replaces every input.")
        kind, said = st.session_state.pop(IMPORT_RESULT, (None, []))
        if said:
            (st.success if kind == "ok" else st.error)("\n".join(f"- {view.md(messages.in_words(m))}" for m in said))


def pinned_plan(devices: Mapping[str, Any]) -> Any:
    pinned = inputs.baseline()
    if pinned is None:
        return None
    try:
        return data.plan_of(pinned, devices)
    except (ScenarioError, UnknownAccelerator):  # its device is no longer known: nothing to compare with
        inputs.pin(None)
        return None


def page() -> None:
    state = st.session_state
    devices = session_devices()
    inputs.init_from_link(devices)
    st.title("Train")
    headline, top = st.container(), st.container()
    main_controls(devices)
    more = st.container()
    sections = inputs.read()
    inputs.sync_link(sections)
    model = state[inputs.MODEL] = inputs.resolve_model(sections["model"])
    link_problems = state.pop(inputs.LINK_PROBLEMS, [])
    if link_problems:
        with top:
            page_link.say_unused(link_problems)
    try:
        scenario, problems = Scenario.from_dict(sections, devices), []
    except ScenarioError as exc:
        scenario, problems = None, list(exc.problems)
    if scenario is not None:
        state[LAST_VALID] = data.inputs_json(scenario)
        plan = data.plan_for(scenario, devices)
        with headline:
            view.answer(plan)
    else:
        plan = data.plan_of(state[LAST_VALID], devices) if LAST_VALID in state else None
        cluster = sections["cluster"]
        with headline:
            view.answer_invalid(model, sections["training"].get("tokens"), cluster.get("gpus"),
                                device_name(devices)(cluster.get("accelerator", "")))
        with top:
            invalid_inputs(problems, sections)
    with more:
        more_settings(model, scenario, plan, devices)
    stale = scenario is None
    if plan is None:
        sidebar(None, stale)
        return
    baseline = pinned_plan(devices)
    with top:
        if stale:
            view.stale_banner(plan)
        view.metrics(plan, baseline, stale)
        if not stale:
            baseline_row(scenario, baseline, devices)
        view.problems(plan, on_apply=None if stale else inputs.set_inputs)
    plans = {view.STALE_NAME if stale else view.CURRENT_NAME: plan} | ({view.BASELINE_NAME: baseline} if baseline else {})
    view.breakdown_charts(plans)
    sweep = data.gpu_sweep(plan.scenario, devices)
    view.scaling_charts(sweep, plan.scenario.cluster.gpus, baseline.scenario.cluster.gpus if baseline else None)
    show_sections(plan, "train")
    explain.provenance(plan)
    sidebar(plan, stale, sweep, baseline)


page()
