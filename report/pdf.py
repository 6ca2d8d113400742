"""The PDF summary of a training plan: `plan_pdf(plan, scaling_sweep=None, baseline=None) -> bytes`.

One A4 document a planner can forward: the answer sentence first (the Train page's own), the key figures with
their P10–P90 ranges and provenance, ideal against expected wall time, the warnings with what would make the
plan fit, the page's Altair charts rendered offline by vl-convert, every input (given, derived or default), how
the inputs were completed, and where every figure and hardware number comes from. docs/reports.md maps each part
to its source.

Text goes through one font choice: DejaVu Sans from the system (Debian: fonts-dejavu-core) with fallback fonts
for the scripts it lacks (Chinese and Japanese, Korean, the Indic scripts, Thai and more, emoji in colour; see
FALLBACKS), each loaded only when a text needs it, and the text shaping of complex scripts switched on only for
a document that has them. A character no installed font has prints as "?" and the document ends with a note that
names it. Without DejaVu the PDF uses the built-in Helvetica with every non-Latin-1 character transliterated or
replaced. Nothing here raises on odd text, and a chart that cannot be drawn is replaced by its text description.
"""


from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any

import pandas as pd
from fpdf.enums import XPos, YPos

from report import charts, messages, sections_text
from report import formatting as fmt
from report.pdf_charts import FULL_CHART_PX, HALF_CHART_HEIGHT_PX, HALF_CHART_PX, figure, render
from report.pdf_doc import GREY, TEXT_W, Doc, new_document, report_date, shown_name, title_block
from report.pdf_tables import (
    inputs_table,
    key_figures_table,
    sections_pdf,
    sources_table,
    spread_section,
)
from simulator.inputs import INPUTS
from simulator.plan import VERSION
from simulator.words import NO_NEARBY_FIT

__all__ = ["plan_pdf"]

GOODPUT_PARTS = ("checkpoint_days", "failure_days", "eval_days", "warmup_days")


def _time(doc: Doc, plan: Any) -> None:
    t = plan.training
    if not plan.scenario.goodput.enabled:
        doc.para(f"Goodput overheads are off: {fmt.days(t['wall_days'].value)} is the ideal wall time (steps × step "
                 "time), as peak-throughput tables quote it.")
        return
    ideal, wall = t["ideal_wall_days"], t["wall_days"]
    rows = [[ideal.label + " (steps × step time)", fmt.days(ideal.value), sections_text.band(ideal)]]
    rows += [[f"+ {t[key].label}", fmt.days(t[key].value), ""] for key in GOODPUT_PARTS]
    rows.append([f"= {wall.label}", fmt.days(wall.value), sections_text.band(wall)])
    rows.append([t["goodput"].label + " (ideal ÷ expected)", fmt.pct(t["goodput"].value), ""])
    doc.grid(["Part", "Time", "P10–P90"], rows, [100, 40, 40], size=8.5)
    doc.para(f"{t['failures'].label}: {fmt.plain(t['failures'].value)}; "
             f"{t['checkpoint_interval_min'].label.lower()}: {fmt.plain(t['checkpoint_interval_min'].value)} min.",
             8.5, colour=GREY)


def _warnings(doc: Doc, plan: Any) -> None:
    if not plan.warnings:
        doc.para("None: the plan fits in memory and breaks no rule of thumb.")
        return
    for warning in plan.warnings:
        text = messages.in_words(warning.text)
        doc.font(9, bold=True)
        doc.multi_cell(TEXT_W, 4.4, doc.clean(f"[{warning.code}]" + (f" {messages.in_words(warning.key)}" if warning.key else "")),
                       align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        doc.para(text, 9, after=1)
        if warning.code == "memory" and plan.suggestions:
            doc.para("These nearby plans would fit:", 9, after=0.5)
            doc.bullets(f"{s.label}: {fmt.gb(s.memory_per_gpu_gb)} per GPU" for s in plan.suggestions)
        elif warning.code == "memory":
            doc.para(NO_NEARBY_FIT, 9)


def _breakdown(doc: Doc, plans: Mapping[str, Any]) -> None:
    frame = charts.step_frame(plans)
    figure(doc, "Where each step's time goes",
           [(render(lambda: charts.step_chart(frame), FULL_CHART_PX), charts.describe_step(frame))])
    frame = charts.memory_frame(plans, {name: p.hardware.hbm_GB for name, p in plans.items()})
    figure(doc, "Memory per GPU against its capacity",
           [(render(lambda: charts.memory_chart(frame), FULL_CHART_PX), charts.describe_memory(frame))])


def _scaling(doc: Doc, sweep: pd.DataFrame, gpus: int, baseline_gpus: int | None) -> None:
    frame = charts.scaling_frame(sweep)
    if frame.empty:
        doc.heading("Expected time and cost against GPU count", keep=12)
        doc.para("No other GPU count splits this global batch; change the batch or the parallelism to compare.")
        return
    figure(doc, "Expected time and cost against GPU count",
           [(render(functools.partial(charts.scaling_chart, frame, measure, gpus, baseline_gpus), HALF_CHART_PX,
                     HALF_CHART_HEIGHT_PX), charts.describe_scaling(frame, measure, gpus))
            for measure in charts.SCALING_MEASURES])
    table = charts.table_view(frame, charts.SCALING_UNITS)
    doc.grid(list(table.columns), table.itertuples(index=False), [24, 30, 28, 30, 16, 52], size=8,
             align=["RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "LEFT"])
    skipped = sweep.loc[~sweep["valid"], "cluster.gpus"].astype(int).tolist()
    note = f" Left out (the batch or parallelism does not split): {', '.join(map(fmt.count, skipped))}." if skipped else ""
    doc.para(f"Same model, tokens, batch and parallelism; only the data-parallel width changes.{note}", 8,
             colour=GREY)


def _scenario_name(plan: Any) -> str:
    name = shown_name(plan.scenario.name)
    if name:
        return name
    preset = plan.scenario.model.preset
    if preset:
        return str(INPUTS["model.preset"].choice_labels.get(preset, preset))
    return "custom model"


def plan_pdf(plan: Any, scaling_sweep: pd.DataFrame | None = None, baseline: Any | None = None, *,
             name: str | None = None, created: dt.datetime | None = None) -> bytes:
    """The plan as an A4 PDF. `scaling_sweep`: a `cluster.gpus` sweep of the plan (simulator.scaling.gpu_sweep)
    for the time and cost charts; `baseline`: a pinned plan to compare with; `name`: what the scenario is called
    (default: the scenario's `name`, else its preset or "custom model"); `created`: the date printed and stored
    (fixed for reproducible bytes; default `report_date`'s)."""
    created = report_date(created)
    name = shown_name(name) or _scenario_name(plan)
    doc = new_document(f"Training plan: {name}", fmt.training_sentence(plan), created,
                       footer=name)

    title_block(doc, f"Training plan: {name}", f"{created:%Y-%m-%d %H:%M} UTC · Modelfolio {VERSION} · "
                f"{plan.hardware_label}")
    doc.para(fmt.training_sentence(plan), 12, bold=True, after=1.5)
    if baseline is not None:
        doc.para(f"Baseline: {fmt.training_sentence(baseline)}", 9, colour=GREY)

    doc.heading("Key figures", before=2)
    key_figures_table(doc, plan, "train", baseline)
    doc.heading("Wall time: ideal and expected", keep=45)
    _time(doc, plan)
    doc.heading("Warnings", keep=20)
    _warnings(doc, plan)

    plans = {"This plan": plan} | ({"Baseline": baseline} if baseline is not None else {})
    _breakdown(doc, plans)
    if scaling_sweep is not None:
        _scaling(doc, scaling_sweep, plan.scenario.cluster.gpus,
                 baseline.scenario.cluster.gpus if baseline is not None else None)

    sections_pdf(doc, plan, "train")
    spread_section(doc, plan)
    doc.heading("Inputs", keep=40)
    inputs_table(doc, plan, "train")
    doc.heading("Sources: every figure and how it is made", keep=40)
    sources_table(doc, plan)
    return bytes(doc.output())
