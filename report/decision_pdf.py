"""The PDF of a decision: `decision_pdf(decision) -> bytes`.

The scenario's name as the title, the question, the recommendation in one sentence with its uncertainty, the key
figures with ranges and provenance, the Pareto chart and the tornado (the Decide page's own Altair charts,
rendered offline), the best alternatives, every input of the recommended plan, where each figure and hardware
number comes from (the calibration profile and its held-out errors when the accelerator is a calibrated one),
the method and its assumptions, and the app version. Fonts and odd text are handled as in report.pdf.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from report import decision_charts as charts
from report import decision_text as text
from report import formatting as fmt
from report import sensitivity_text
from report.pdf_charts import FULL_CHART_PX, figure, render
from report.pdf_doc import GREY, Doc, new_document, report_date, shown_name, title_block
from report.pdf_tables import inputs_table, sections_pdf, sources_table, spread_section
from simulator import presentation
from simulator.decision.search import COST, LOSS
from simulator.plan import VERSION

SOURCES = ("quality.dense_loss", "quality.loss_delta", "training.step_time_s", "training.goodput",
           "compression.model_bytes", "serving.ttft_s", "serving.tpot_s", "serving.replicas", "serving.gpus",
           "serving.cost_per_million_output_tokens_usd", "serving.monthly_cost_usd", "finance.tco_usd",
           "finance.api_cost_usd", "finance.npv_usd", "finance.payback_months")  # with the key figures: the figures the decision rests on
ALTERNATIVES = 8
SPREAD_GROUPS = {"gemm_eff_max": "peak_tflops", "gemm_dim_half": "peak_tflops", "hbm_eff": "hbm",
                 "decode_mem_eff": "hbm", "decode_kv_eff": "hbm", "step_overhead_s": "hbm", "elementwise_eff": "hbm",
                 "intra_GBps": "intra_node", "a2a_eff": "all_to_all", "moe_gemm_eff": "moe_gemm",
                 "inter_GBps": "inter_node", "seq_sync_lo": "data_order", "seq_sync_hi": "data_order",
                 "seq_async_lo": "data_order", "seq_async_hi": "data_order"}  # the hardware source group each spread belongs to


def _key_figures(doc: Doc, decision: Any) -> None:
    """The recommended plan's figures, each with one P10-P90 range said to be the Monte Carlo's (total cost and
    loss, when it ran: the range the uncertainty sentence gives) or the propagated one (the others)."""
    plan, u = decision.recommendation, decision.uncertainty
    drawn = {} if u is None else {COST: (u.total_cost_usd, fmt.usd), LOSS: (u.quality_loss, fmt.loss)}
    rows = []
    for key in presentation.key_figures("decide"):
        if key not in plan.figures:
            continue
        f = plan.figures[key]
        if key in drawn:
            spread, shown = drawn[key]
            band, method = f"{shown(spread.p10)}–{shown(spread.p90)}", text.MONTE_CARLO
        elif f.low is not None and f.high is not None:
            band, method = fmt.span(f.low, f.high, f.unit), text.PROPAGATED
        else:
            band, method = "", ""
        rows.append([f.label, fmt.by_unit(f.value, f.unit), band, method, f.provenance])
    if u is not None:
        rows.append(["Chance of going over budget", fmt.pct(u.prob_over_budget), "", text.MONTE_CARLO, "computed"])
    doc.grid(["Figure", "Value", "P10–P90", "Range", "Provenance"], rows, [56, 30, 44, 24, 26], size=8.5,
             align=["LEFT", "RIGHT", "RIGHT", "LEFT", "LEFT"])
    note = ("Value: the recommended plan's figure, its inputs at their planned values. Range: "
            f"{text.PROPAGATED}, each uncertainty (the model's own error measured on published results, the devices' "
            "and the inputs' spreads) moved to its P10 and P90 one at a time and the moves combined as independent")
    if u is not None:
        note += (f"; {text.MONTE_CARLO}, {u.samples:,} draws of all of them together (correlated where "
                 f"calibrated), as in the sentence above (median total cost {fmt.usd(u.total_cost_usd.p50)})")
    doc.para(note + ".", 8, colour=GREY)


def _alternatives(doc: Doc, decision: Any) -> None:
    rows = []
    points = sorted(decision.pareto, key=lambda p: abs(p.total_cost_usd - (decision.total_cost_usd or 0.0)))
    for p in sorted(points[:ALTERNATIVES], key=lambda p: p.total_cost_usd):
        within = "yes" if p.total_cost_usd <= decision.budget_usd else "no"
        rows.append([charts.choice_text(p.choice), fmt.usd(p.total_cost_usd), fmt.loss(p.quality_loss), within])
    if rows:
        doc.grid(["Plan on the Pareto front", "Total cost", "Loss", "In budget"], rows, [110, 26, 22, 22], size=8,
                 align=["LEFT", "RIGHT", "RIGHT", "LEFT"])


def _global_sensitivity(doc: Doc, decision: Any) -> None:
    """Which uncertainties matter most (Sobol' indices): a sentence per output and the largest shares."""
    lines = sensitivity_text.sentences(decision)
    if not lines:
        return
    doc.heading("Which uncertainties matter most", keep=40)
    doc.bullets(lines, size=9)
    rows = sensitivity_text.table_rows(decision)
    if rows:
        doc.grid(list(sensitivity_text.TABLE_HEADER), rows, [70, 40, 16, 27, 27], size=7.5,
                 align=["LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"])
    doc.para(sensitivity_text.method_note(decision), 8, colour=GREY)


def _method(doc: Doc, decision: Any) -> None:
    u = decision.uncertainty
    doc.bullets([
        f"{decision.candidates_evaluated:,} candidates evaluated ({decision.feasible:,} feasible: valid layout, fits "
        f"in memory, trained within {fmt.days(decision.scenario.decision.max_training_days)}); the recommendation "
        "was then refined on a finer grid of size and tokens.",
        "Searched: model size, training tokens, GPU count, tensor and pipeline parallelism, and where available "
        "weight bits and GPUs per serving replica; every other input stays as given.",
        "Quality is the scaling law's predicted loss (lower is better); total cost is training plus serving over "
        "the horizon.",
        (u.to_dict()["method"] + "; inputs drawn: " + ", ".join(u.to_dict()["inputs_drawn"]) + ".")
        if u is not None else "No Monte Carlo was run.",
        "The tornado moves one uncertain input at a time to its P10 and P90 value; the others stay as planned.",
        *([text.risk_method(decision)] if text.risk_method(decision) else []),
    ], size=8.5)


def _devices(doc: Doc, decision: Any) -> None:
    """The accelerators the plan runs on, where their numbers come from (datasheet, or the calibration profile that
    fitted them) and the relative uncertainty the ranges, the Monte Carlo and the tornado use for each."""
    from simulator.catalog import SPREAD_LABELS, device_spreads
    from simulator.resolve import DEVICE_INPUTS, lookup_device

    s = decision.recommendation.scenario
    for inp in DEVICE_INPUTS:
        spec = lookup_device(s.value(inp.key), decision.devices)
        groups = dict(getattr(spec, "provenance_of", {}) or {})
        kinds = ", ".join(f"{g} {p}" for g, p in groups.items()) or spec.provenance
        doc.para(f"{inp.label}: {spec.display_name} ({spec.id}); {kinds}.", 9, bold=True, after=0.8)
        rows = [[SPREAD_LABELS.get(name, name), fmt.pct(sigma),
                 "fitted: the calibration profile's standard error or held-out error, whichever is larger"
                 if groups.get(SPREAD_GROUPS.get(name, "")) in ("fitted", "measured") else "assumed datasheet spread"]
                for name, sigma in device_spreads(spec).items()]
        doc.grid(["Quantity", "Relative 1σ", "From"], rows, [60, 24, 96], size=7.5, align=["LEFT", "RIGHT", "LEFT"])


def decision_pdf(decision: Any, *, name: str | None = None, created: dt.datetime | None = None) -> bytes:
    """The decision as an A4 PDF, titled `name` (default: the scenario's `name`, else "Modelfolio decision");
    `created` fixes the printed date (default `report_date`'s). The Decide page's download and `python -m
    modelfolio report` both make it, with the same bytes for the same inputs and date."""
    created = report_date(created)
    name = shown_name(name) or shown_name(decision.scenario.name) or "Modelfolio decision"
    doc = new_document(name, text.answer_sentence(decision), created)
    title_block(doc, name, f"{created:%Y-%m-%d %H:%M} UTC · Modelfolio {VERSION}")
    doc.heading("The question", before=0, keep=10)
    doc.para(text.question_sentence(decision), 10)
    doc.heading("The recommendation", keep=20)
    doc.para(text.answer_sentence(decision), 12, bold=True)
    if decision.recommendation is None:
        return bytes(doc.output())
    doc.para(text.uncertainty_sentence(decision), 10)
    if text.risk_sentence(decision):
        doc.para(text.risk_sentence(decision), 10)
    if text.architecture_sentence(decision):
        doc.para(text.architecture_sentence(decision), 10)
    doc.heading("Key figures", keep=40)
    _key_figures(doc, decision)

    frame, budget = charts.pareto_frame(decision), charts.shown_budget(decision)  # the page's chart, point for point
    figure(doc, "Quality against total cost", [(render(lambda: charts.pareto_spec(frame, budget), FULL_CHART_PX),
                                                charts.describe_pareto(frame, budget, decision.feasible))])
    doc.heading("Best alternatives", keep=40)
    _alternatives(doc, decision)

    bars = charts.tornado_frame(decision)
    if bars.empty:
        doc.heading("What moves the total cost most", keep=10)
        doc.para(charts.describe_tornado(bars, decision.total_cost_usd), 8, colour=GREY)
    else:
        figure(doc, "What moves the total cost most",
               [(render(lambda: charts.tornado_spec(bars, decision.total_cost_usd), FULL_CHART_PX),
                 charts.describe_tornado(bars, decision.total_cost_usd))])

    _global_sensitivity(doc, decision)
    doc.heading("Method and assumptions", keep=30)
    _method(doc, decision)
    sections_pdf(doc, decision.recommendation, "decide")
    spread_section(doc, decision.recommendation)
    doc.heading("Accelerators and their uncertainty (calibration profile or datasheet)", keep=40)
    _devices(doc, decision)
    doc.heading("Inputs of the recommended plan", keep=40)
    inputs_table(doc, decision.recommendation, "decide")
    doc.heading("Sources: the figures the decision rests on and how each is made", keep=40)
    sources_table(doc, decision.recommendation, (*presentation.key_figures("decide"), *SOURCES))
    return bytes(doc.output())
