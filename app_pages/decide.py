"""Decide: for my budget, what model, data and cluster give the best quality, and how sure is that?"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import _chart_specs as specs
from app_pages import _decide_inputs as ui
from app_pages import _page_link as link
from app_pages._devices import session_devices
from app_pages._last_answer import answer_or_last
from app_pages._metric_cells import metric_cells
from app_pages._ranges import spread_table
from app_pages._registry_widgets import main_rows, more_settings, rows
from app_pages._sections import show_sections
from app_pages._train_data import device_key
from report import decision_charts as charts
from report import decision_text as text
from report import formatting as fmt
from report import messages, ranges_text, sections_text, sensitivity_text
from report.charts import for_page
from simulator import presentation
from simulator.decision.decide import Decision, candidates_for, decide
from simulator.decision.search import Candidates
from simulator.decision.space import base_inputs
from simulator.inputs import INPUTS
from simulator.scenario import Scenario

TORNADO_UNITS = {"At P10 (USD)": "USD", "At P90 (USD)": "USD", "Swing (USD)": "USD", "Loss at P10": "nats/token",
                 "Loss at P90": "nats/token", "Spread (1σ)": "fraction"}
LAST_VALID = "decide.last_valid"  # the last question a decision was made on: shown under an error
COMPARE_OUTPUTS = ("decision.total_cost_usd", "quality.loss", "training.wall_days", "training.cost_usd",
                   "decision.serving_cost_usd", "training.gpu_hours")


# a resource, not data: shared as is (never copied), so the Pareto front it keeps per longest-training time is
# computed once; nothing changes it but that cache
@st.cache_resource(show_spinner="Evaluating about a million candidate plans…", max_entries=16)
def _candidates(base_json: str, device_ids: Any, _devices: Any) -> Candidates:
    # the search's base, not a plan: its rows are each checked (simulator.decision.decide.search_base)
    return candidates_for(Scenario.from_dict(json.loads(base_json), _devices, rules=False), _devices)


@st.cache_data(show_spinner=False, max_entries=64)
def _decision(data_json: str, device_ids: Any, _devices: Any) -> Decision:
    scenario = Scenario.from_dict(json.loads(data_json), _devices)
    base = base_inputs(scenario, question=False)  # what the candidates depend on: a budget change re-picks only
    candidates = _candidates(json.dumps(base, sort_keys=True), device_ids, _devices)
    return decide(scenario, _devices, candidates=candidates)

# Each chart's alt text says what it shows and never its numbers (its caption has them): Streamlit's frontend keys a
# chart on its alt text too, and one that changes with the inputs rebuilds the chart on every rerun instead of
# swapping its data (docs/benchmarks.md, "Browser rerun"; tests/test_page_speed.py).
ALT = {
    "pareto": "Scatter chart: predicted loss against total cost for a sample of feasible plans, the Pareto front as "
              "a line, the recommended plan as a star and the budget as a dashed line.",
    "tornado": "Bar chart: how far each uncertain input moves the plan's total cost between its P10 and P90.",
}


def decision_for(data: dict[str, Any]) -> Decision:
    devices = session_devices()
    return _decision(json.dumps(data, sort_keys=True, ensure_ascii=False), device_key(devices), devices)


def question() -> dict[str, Any]:
    st.title("Decide")
    st.caption("For my budget, what model size, data and cluster give the best predicted quality, counting "
               "training and serving? Or: what is the cheapest plan that reaches my quality target?")
    link.open_link(ui.LINK)
    values: dict[str, Any] = {}
    widths = [1.2, 1, 2.4, 1.2] if len(ui.MAIN) == 4 else [1] * len(ui.MAIN)  # the objective's labels are long
    for col, key in zip(st.columns(widths), ui.MAIN, strict=True):
        with col:
            values[key] = one(key, values)
    rows(ui.HARDWARE, values, one, per_row=len(ui.HARDWARE))
    main_rows(presentation.other_main_groups(ui.PAGE, ui.LAID_OUT), values, one)
    more_settings(presentation.more_groups(ui.PAGE, ui.LAID_OUT), values, one, then=lambda: risk(values),
                  titles=("Risk",))
    if values.get("decision.objective") != "cheapest_for_quality":
        values["decision.quality_target_loss"] = None
    return values


def one(key: str, values: dict[str, Any]) -> Any:
    """One input; the quality target is disabled unless the objective reads it."""
    disabled = key == "decision.quality_target_loss" and st.session_state.get(
        ui.PREFIX + "decision.objective") != "cheapest_for_quality"
    return ui.widget(key, disabled=disabled)


def risk(values: dict[str, Any]) -> None:
    """The tolerances, one per objective: the one the chosen objective does not read is shown disabled."""
    objective = st.session_state.get(ui.PREFIX + "decision.objective", INPUTS["decision.objective"].default)
    for col, (reads, key) in zip(st.columns([1, 1, 3]), ui.RISK.items(), strict=False):
        with col:
            values[key] = ui.widget(key, disabled=objective != reads)


def metrics(d: Decision) -> None:
    plan = d.recommendation
    u = d.uncertainty
    cost = plan.figures["decision.total_cost_usd"]
    with metric_cells(5 if u is not None else 4) as c:
        c[0].metric("Total cost", fmt.usd(cost.value), help=cost.source + f" · {cost.provenance}")
        c[1].metric("Predicted loss", fmt.loss(plan.value("quality.loss")),
                    help=plan.figures["quality.loss"].source + " · published")
        c[2].metric("Training time", fmt.days(plan.value("training.wall_days")))
        c[3].metric("Training GPUs", fmt.count(plan.scenario.cluster.gpus))
        if u is not None:
            missed = d.objective == "cheapest_for_quality" and u.prob_over_target is not None
            c[4].metric("Chance of missing the target" if missed else "Chance over budget",
                        fmt.pct(u.prob_over_target if missed else u.prob_over_budget),
                        help=f"{u.samples:,} Monte Carlo draws, seed {u.seed}")


def pareto(d: Decision) -> None:
    st.subheader("Quality against total cost")
    frame = charts.pareto_frame(d)
    budget = charts.shown_budget(d)
    st.vega_lite_chart(for_page(specs.spec(charts.pareto_spec, frame, budget)), width="stretch", alt=ALT["pareto"])
    st.caption(charts.describe_pareto(frame, budget, d.feasible).replace("$", r"\$"))
    with st.expander("Table view: the Pareto front"):
        front = frame[frame["Kind"] != "candidate"].copy()
        front["Total cost (USD)"] = [fmt.usd(v) for v in front["Total cost (USD)"]]
        front["Loss"] = [fmt.loss(v) for v in front["Loss"]]
        st.dataframe(front, hide_index=True, width="stretch")


def alternatives(d: Decision) -> None:
    st.subheader("Best alternatives")
    points = sorted(d.pareto, key=lambda p: abs(p.total_cost_usd - (d.total_cost_usd or 0.0)))[:6]
    rows = [{"Plan": charts.choice_text(p.choice), "Total cost": fmt.usd(p.total_cost_usd),
             "Loss": fmt.loss(p.quality_loss), "Within budget": "yes" if p.total_cost_usd <= d.budget_usd else "no"}
            for p in sorted(points, key=lambda p: p.total_cost_usd)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def uncertainty(d: Decision) -> None:
    st.subheader("What is uncertain")
    st.markdown(text.uncertainty_sentence(d).replace("$", r"\$"))
    bars = charts.tornado_frame(d)
    if bars.empty:
        st.caption("No input of this plan is marked uncertain.")
        return
    st.vega_lite_chart(for_page(specs.spec(charts.tornado_spec, bars, d.total_cost_usd)), width="stretch",
                       alt=ALT["tornado"])
    st.caption(charts.describe_tornado(bars, d.total_cost_usd).replace("$", r"\$"))
    with st.expander("Table view: the tornado"):
        st.dataframe(fmt.table_text(bars, TORNADO_UNITS), hide_index=True, width="stretch")


def global_sensitivity(d: Decision) -> None:
    """Which uncertainties matter most (Sobol' indices), in words and as a small table."""
    lines = sensitivity_text.sentences(d)
    if not lines:
        return
    st.subheader("Which uncertainties matter most")
    st.markdown("\n".join(f"- {line}" for line in lines).replace("$", r"\$"))
    st.caption(sensitivity_text.method_note(d))
    with st.expander("Table view: the largest shares of each output's spread"):
        st.dataframe(pd.DataFrame(sensitivity_text.table_rows(d), columns=sensitivity_text.TABLE_HEADER),
                     hide_index=True, width="stretch")


def provenance(d: Decision) -> None:
    with st.expander("Where every figure comes from"):
        plan = d.recommendation
        rows = [{"Figure": f.label, "Value": fmt.by_unit(f.value, f.unit),
                 "P10–P90": sections_text.band(f),
                 "Range includes": ranges_text.labels(plan, key), "Provenance": f.provenance,
                 "How": messages.in_words(f.source)} for key, f in plan.figures.items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        spread_table(plan)


def compare(d: Decision, data: dict[str, Any]) -> None:
    st.subheader("Scenarios")
    c = st.columns([2, 1, 3])
    name = c[0].text_input("Name this scenario", key="decide.name",
                           help="Any text; it titles the PDF and names the saved scenario.")
    if c[1].button("Save", help="Keep this question under its name (this session only) to compare with later."):
        ui.save(name or f"Scenario {len(ui.saved()) + 1}", data)
    saved = ui.saved()
    if not saved:
        c[2].caption("Save a scenario, change the question, then compare the two here.")
        return
    other_name = c[2].selectbox("Compare with", list(saved), key="decide.compare")
    other = decision_for(json.loads(saved[other_name]))
    mine, theirs = ui.flat(data), ui.flat(json.loads(saved[other_name]))
    changed = [{"Input": INPUTS[k].label, "This scenario": ui.shown_value(k, mine), other_name: ui.shown_value(k, theirs)}
               for k in sorted(mine.keys() | theirs.keys()) if mine.get(k) != theirs.get(k) and k in INPUTS]
    st.markdown("**What changed**")
    if not changed:
        st.caption("The inputs are the same.")
    else:
        st.dataframe(pd.DataFrame(changed), hide_index=True, width="stretch")
    if d.recommendation is None or other.recommendation is None:
        st.caption("One of the two has no plan to compare.")
        return
    moved = []
    for key in COMPARE_OUTPUTS:
        a, b = d.recommendation.figures[key], other.recommendation.figures[key]
        if a.value != b.value:
            moved.append({"Output": a.label, "This scenario": fmt.by_unit(a.value, a.unit),
                          other_name: fmt.by_unit(b.value, b.unit),
                          "Change": fmt.delta(a.value, b.value, lambda x, u=a.unit: fmt.by_unit(x, u)) or "same"})
    st.markdown("**Outputs it moved**")
    st.dataframe(pd.DataFrame(moved), hide_index=True, width="stretch")


def downloads(d: Decision, data: dict[str, Any]) -> None:
    def pdf() -> bytes:
        from report.decision_pdf import decision_pdf  # fpdf2 loads on the first click, not with the page

        return decision_pdf(d)

    c = st.columns(4)
    # the key follows the question: a deferred download keeps the callable of the widget it was made with
    version = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    safe = "".join(ch if ch.isalnum() else "-" for ch in (d.scenario.name or "decision"))[:40] or "decision"
    c[0].download_button("Download PDF", pdf, f"modelfolio-{safe}.pdf", "application/pdf",
                         on_click="ignore", key=f"decide.pdf.{version}")
    c[1].download_button("Decision JSON", json.dumps(d.to_dict(), indent=2, default=str, ensure_ascii=False),
                         f"modelfolio-{safe}.json", "application/json", on_click="ignore")
    c[2].download_button("Scenario JSON", json.dumps(data, indent=2, ensure_ascii=False),
                         f"modelfolio-{safe}-scenario.json", "application/json", on_click="ignore")
    front = pd.DataFrame([{"total_cost_usd": p.total_cost_usd, "quality_loss": p.quality_loss, **p.choice}
                          for p in d.pareto])
    c[3].download_button("Pareto front CSV", front.to_csv(index=False), f"modelfolio-{safe}-pareto.csv", "text/csv",
                         on_click="ignore")


def main() -> None:
    values = question()
    link.publish(ui.LINK)
    found = answer_or_last(decision_for, ui.scenario_data(values, st.session_state.get("decide.name", "")),
                           LAST_VALID, "question")
    if found is None:
        return
    d, data = found
    st.markdown(f"**{text.question_sentence(d)}**".replace("$", r"\$"))
    st.subheader(text.answer_sentence(d).replace("$", r"\$"))
    if d.recommendation is None:
        return
    st.markdown(text.risk_sentence(d).replace("$", r"\$"))
    if text.architecture_sentence(d):
        st.markdown(text.architecture_sentence(d).replace("$", r"\$"))
    metrics(d)
    pareto(d)
    left, right = st.columns(2)
    with left:
        alternatives(d)
    with right:
        uncertainty(d)
    global_sensitivity(d)
    show_sections(d.recommendation, ui.PAGE)
    provenance(d)
    compare(d, data)
    downloads(d, data)


main()
