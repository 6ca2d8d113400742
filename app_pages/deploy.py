"""Deploy: how many GPUs does my traffic need under my latency targets, what does a million tokens cost, and
should I rent, buy or pay a hosted API?"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import _chart_specs as specs
from app_pages import _deploy_inputs as ui
from app_pages import _page_link as link
from app_pages._devices import session_devices
from app_pages._last_answer import answer_or_last
from app_pages._metric_cells import metric_cells
from app_pages._ranges import spread_table
from app_pages._sections import show_sections
from app_pages._train_data import device_key
from report import compression_text, messages, ranges_text, sections_text
from report import deploy_text as text
from report import formatting as fmt
from report import serving_charts as charts
from report.charts import for_page
from simulator import deployment as curves
from simulator import presentation
from simulator.evaluator import evaluate
from simulator.resolve import lookup_device
from simulator.scenario import Scenario

METRICS = ("serving.gpus", "serving.ttft_s", "serving.tpot_s", "serving.cost_per_million_output_tokens_usd",
           "serving.monthly_cost_usd")
LAST_VALID = "deploy.last_valid"  # the inputs of the last result made: shown under an error


class Result:
    """What the page draws for one question."""

    def __init__(self, d: curves.Deployment, hardware_label: str, frames: tuple[pd.DataFrame, ...]) -> None:
        self.d, self.plan, self.hardware_label = d, d.plan, hardware_label
        self.latency, self.traffic, self.money = frames
        self.answer = text.answer_sentence(d.plan, hardware_label, curves.totals(self.money))


@st.cache_data(show_spinner=False, max_entries=64)
def _computed(data_json: str, device_ids: Any, _devices: Any) -> tuple[Any, str, tuple[pd.DataFrame, ...]]:
    scenario = Scenario.from_dict(json.loads(data_json), _devices)
    plan = evaluate(scenario, _devices)
    label = lookup_device(scenario.serving.accelerator, _devices, "serving.accelerator").display_name
    d = curves.deployment(scenario, plan, _devices)
    return d, label, (curves.latency_frame(d), curves.traffic_frame(d), curves.money_frame(d))

# Each chart's alt text says what it shows and never its numbers (its caption has them): Streamlit's frontend keys a
# chart on its alt text too, and one that changes with the inputs rebuilds the chart on every rerun instead of
# swapping its data (docs/benchmarks.md, "Browser rerun"; tests/test_page_speed.py).
ALT = {
    "latency": "Line chart: time to first token and time per output token against batch size, the targets as "
               "rules and the chosen batch marked.",
    "traffic_gpus": "Line chart: GPUs needed against requests per second, this traffic marked.",
    "traffic_cost": "Line chart: cost per million output tokens against requests per second, this traffic marked.",
    "money": "Line chart: cumulative serving cost by month of renting, buying and a hosted API.",
}


def result_for(data: dict[str, Any]) -> Result:
    devices = session_devices()
    return Result(*_computed(json.dumps(data, sort_keys=True, ensure_ascii=False), device_key(devices), devices))


def _md(s: str) -> str:
    return s.replace("$", r"\$")


def metrics(r: Result) -> None:
    plan = r.plan
    keys = list(METRICS)
    if plan.scenario.finance.revenue_per_million_output_tokens_usd > 0:
        keys.append("finance.payback_months")
    with metric_cells(len(keys)) as cells:
        for col, key in zip(cells, keys, strict=True):
            f = plan.figures[key]
            value = fmt.by_unit(f.value, f.unit) if key != "finance.payback_months" or fmt.count(f.value) != "n/a" \
                else f"not in {plan.scenario.decision.horizon_months} months"
            ranged = f.low is not None and f.high is not None and f.low != f.high
            col.metric(f.label, value, help=_md(f"{f.provenance}: {f.source}"))
            col.caption(_md(f"P10–P90: {fmt.span(f.low, f.high, f.unit)}") if ranged else f.provenance)


def latency(r: Result) -> None:
    s = r.plan.scenario.serving
    chosen = r.plan.value("serving.batch_run")
    st.subheader("Latency against batch")
    if r.latency.empty:
        st.caption(charts.describe_latency(r.latency, s.ttft_target_s, s.tpot_target_s, chosen))
        return
    st.vega_lite_chart(for_page(specs.spec(charts.latency_chart, r.latency, s.ttft_target_s, s.tpot_target_s,
                                            chosen)), width="stretch", alt=ALT["latency"])
    st.caption(_md(charts.describe_latency(r.latency, s.ttft_target_s, s.tpot_target_s, chosen)))
    with st.expander("Table view: latency against batch"):
        st.dataframe(charts.table_view(r.latency), hide_index=True, width="stretch")


def traffic(r: Result) -> None:
    rate = r.plan.scenario.serving.requests_per_s
    st.subheader("GPUs and cost against traffic")
    description = charts.describe_traffic(r.traffic, rate)
    if not charts.traffic_served(r.traffic):  # nothing to draw: say why, no empty axes
        st.caption(_md(description))
        return
    left, right = st.columns(2)
    left.vega_lite_chart(for_page(specs.spec(charts.traffic_gpus_chart, r.traffic, rate)), width="stretch",
                         alt=ALT["traffic_gpus"])
    right.vega_lite_chart(for_page(specs.spec(charts.traffic_cost_chart, r.traffic, rate)), width="stretch",
                          alt=ALT["traffic_cost"])
    st.caption(_md(description))
    with st.expander("Table view: GPUs and cost against traffic"):
        st.dataframe(charts.table_view(r.traffic), hide_index=True, width="stretch")


def money(r: Result) -> None:
    st.subheader("Rent, buy or a hosted API over time")
    st.vega_lite_chart(for_page(specs.spec(charts.money_chart, r.money)), width="stretch", alt=ALT["money"])
    st.caption(_md(messages.in_words(charts.describe_money(r.money))))
    with st.expander("Table view: cumulative cost by month"):
        st.dataframe(charts.table_view(r.money), hide_index=True, width="stretch")


def provenance(r: Result) -> None:
    with st.expander("Where every figure comes from"):
        rows = [{"Figure": f.label, "Value": fmt.by_unit(f.value, f.unit),
                 "P10–P90": sections_text.band(f),
                 "Range includes": ranges_text.labels(r.plan, key), "Provenance": f.provenance,
                 "How": messages.in_words(f.source)}
                for key in presentation.source_figures(ui.PAGE) if (f := r.plan.figures.get(key)) is not None]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        spread_table(r.plan)


def downloads(r: Result, data: dict[str, Any]) -> None:
    def pdf() -> bytes:
        from report.deploy_pdf import deploy_pdf  # fpdf2 loads on the first click, not with the page

        return deploy_pdf(r.d, r.hardware_label, name=name or None)

    st.subheader("Export")
    name = st.text_input("Name this deployment", key=ui.PREFIX + "name",
                         help="Any text; it titles the PDF (empty: \"Deployment plan\").")
    data = {"name": name, **data} if name else data
    c = st.columns(4)
    # the key follows the content: a deferred download keeps the callable of the widget it was made with
    version = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    safe = "".join(ch if ch.isalnum() else "-" for ch in (name or "deployment"))[:40] or "deployment"
    c[0].download_button("Download PDF", pdf, f"modelfolio-{safe}.pdf", "application/pdf", on_click="ignore",
                         key=f"deploy.pdf.{version}")
    c[1].download_button("Scenario JSON", json.dumps(data, indent=2, ensure_ascii=False),
                         f"modelfolio-{safe}-scenario.json", "application/json", on_click="ignore",
                         key=f"deploy.scenario.{version}")
    c[2].download_button("Plan JSON", json.dumps(r.plan.to_dict(), indent=2, default=str, ensure_ascii=False),
                         f"modelfolio-{safe}-plan.json", "application/json", on_click="ignore",
                         key=f"deploy.plan.{version}")
    c[3].download_button("Traffic sweep CSV", curves.traffic_csv(r.d), f"modelfolio-{safe}-traffic.csv", "text/csv",
                         on_click="ignore", key=f"deploy.csv.{version}")


def main() -> None:
    st.title("Deploy")
    st.caption("How many GPUs does my traffic need within my latency targets, what does a million tokens cost, "
               "and should I rent, buy or pay a hosted API?")
    link.open_link(ui.LINK)
    values = ui.question()
    link.publish(ui.LINK)
    found = answer_or_last(result_for, ui.scenario_data(values), LAST_VALID, "plan")
    if found is None:
        return
    r, data = found
    st.subheader(_md(r.answer))
    note = compression_text.auto_method_note(r.plan.scenario, " under More settings")
    if note:
        st.caption(note)
    for w in r.plan.warnings:
        if w.code.startswith("compression"):
            st.warning(_md(messages.in_words(w.text)))
    if text.serving_problem(r.plan) is None:
        metrics(r)
    left, right = st.columns(2)
    with left:
        latency(r)
    with right:
        money(r)
    traffic(r)
    show_sections(r.plan, ui.PAGE)
    provenance(r)
    downloads(r, data)


main()
