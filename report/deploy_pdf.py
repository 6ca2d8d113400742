"""The PDF of the Deploy page: `deploy_pdf(deployment, serving_hardware_label) -> bytes`.

The scenario's name (or "Deployment plan") as the title, the answer in one sentence, the key figures with their
P10-P90 ranges and provenance, the page's three charts (its own Altair charts, rendered offline) with their text
alternatives, the inputs of the serving, compression and finance families, and where every figure comes from.
Fonts and odd text are handled as in report.pdf.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from report import deploy_text as text
from report import formatting as fmt
from report import sections_text
from report import serving_charts as charts
from report.pdf_charts import FULL_CHART_PX, HALF_CHART_PX, figure, render
from report.pdf_doc import GREY, Doc, new_document, report_date, shown_name, title_block
from report.pdf_tables import (
    inputs_table,
    key_figures_table,
    sections_pdf,
    sources_table,
    spread_section,
)
from simulator import deployment as curves
from simulator import presentation
from simulator.plan import VERSION

TOTALS = {"Rent": "finance.rent_tco_usd", "Buy": "finance.buy_tco_usd",
          "Hosted API": "finance.api_cost_usd"}  # each option's total over the horizon, by the money chart's name
DEPLOYS = {"rent": "Rent", "buy": "Buy", "api": "Hosted API"}  # finance.deploy's choices, by that name

def _horizon(doc: Doc, plan: Any, money: Any) -> None:
    """Each option over the horizon as serving (the answer's and the money chart's figure) + training = the total
    (the plan's rent, buy and API totals), so that the sentence and the table count the same things."""
    serving = curves.totals(money)
    training = text.counted_training_usd(plan)
    chosen = DEPLOYS[plan.scenario.finance.deploy]
    rows = []
    for option, key in TOTALS.items():
        total = plan.figures[key]
        band = sections_text.band(total)
        counted = fmt.usd(training) if option != "Hosted API" else "none"
        rows.append([option + (" (chosen)" if option == chosen else ""), fmt.usd(serving.get(option, float("nan"))),
                     counted, fmt.usd(total.value), band])
    months = plan.scenario.decision.horizon_months
    doc.grid([f"Over {months} months", "Serving", "+ Training", "= Total", "Total P10–P90"], rows,
             [44, 30, 30, 30, 46], size=8.5, align=["LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"])
    doc.para("Serving: what the money chart draws, training left out. Training: the training run's cost, counted "
             "at month 0 of renting or buying when training is included (a hosted API needs no training run). "
             "Total: the plan's total over the horizon.", 8, colour=GREY)


def _chart(doc: Doc, title: str, draw: Any, description: str, width_px: int = FULL_CHART_PX) -> None:
    figure(doc, title, [(render(draw, width_px), description)])


def _sources(doc: Doc, plan: Any, hardware_label: str) -> None:
    sources_table(doc, plan, presentation.source_figures("deploy"), hardware=False)
    doc.para(f"Serving accelerator: {hardware_label} ({plan.scenario.serving.accelerator}). Horizon: "
             f"{plan.scenario.decision.horizon_months} months. Ranges: the uncertain "
             "hardware inputs (fitted or assumed spreads) moved to P10 and P90 one at a time, combined as a "
             "root-sum-square.", 8, colour=GREY)


def deploy_pdf(d: curves.Deployment, serving_hardware_label: str, *, name: str | None = None,
               created: dt.datetime | None = None) -> bytes:
    """The deployment as an A4 PDF; `name` titles it (default: the scenario's name, else "Deployment plan");
    `created` fixes the printed date (default now, UTC)."""
    created = report_date(created)
    plan = d.plan
    s = plan.scenario
    title = shown_name(name) or shown_name(s.name) or "Deployment plan"
    latency, traffic, money = curves.latency_frame(d), curves.traffic_frame(d), curves.money_frame(d)
    answer = text.answer_sentence(plan, serving_hardware_label, curves.totals(money))
    doc = new_document(title, answer, created)
    title_block(doc, title, f"{created:%Y-%m-%d %H:%M} UTC · Modelfolio {VERSION} · served on {serving_hardware_label}")
    doc.para(answer, 12, bold=True)
    doc.heading("Key figures", keep=40)
    key_figures_table(doc, plan, "deploy")
    doc.heading("Rent, buy or a hosted API: what each costs", keep=30)
    _horizon(doc, plan, money)

    sv = s.serving
    chosen = plan.value("serving.batch_run")
    _chart(doc, "Latency against batch",
           lambda: charts.latency_chart(latency, sv.ttft_target_s, sv.tpot_target_s, chosen),
           charts.describe_latency(latency, sv.ttft_target_s, sv.tpot_target_s, chosen))
    _chart(doc, "GPUs and cost against traffic", lambda: charts.traffic_chart(traffic, sv.requests_per_s),
           charts.describe_traffic(traffic, sv.requests_per_s), HALF_CHART_PX)
    _chart(doc, "Rent, buy or a hosted API over time", lambda: charts.money_chart(money),
           charts.describe_money(money))

    sections_pdf(doc, plan, "deploy")
    spread_section(doc, plan)
    doc.heading("Inputs", keep=40)
    inputs_table(doc, plan, "deploy")
    doc.heading("Sources: every figure and how it is made", keep=40)
    _sources(doc, plan, serving_hardware_label)
    return bytes(doc.output())
