"""The PDF of the Compress page: `compress_pdf(plan, device_name, quant, prune, found) -> bytes`.

The answer in one sentence, the key figures with P10–P90 and provenance, the page's charts (predicted perplexity
against bits, predicted loss increase against sparsity, and the small models' measured curves, rendered offline
from the same Altair charts), the compression family's inputs, where each figure comes from, and the app version.
Fonts and odd text are handled as in report.pdf.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from report import compression_charts as charts
from report import compression_text as text
from report import scaling_law_charts as laws
from report.pdf_charts import FULL_CHART_PX, HALF_CHART_PX, figure, render, row_height
from report.pdf_doc import GREY, TEXT_W, Doc, new_document, report_date, shown_name, title_block
from report.pdf_tables import (
    inputs_table,
    key_figures_table,
    sections_pdf,
    sources_table,
    spread_section,
)
from simulator import presentation
from simulator.plan import VERSION


def _value(plan: Any, key: str) -> str:
    f = plan.figures[key]
    return text.figure_text(f.value, f.unit)


def _predicted(doc: Doc, quant: pd.DataFrame, prune: pd.DataFrame) -> None:
    """The two predictions' charts (those with points to draw) under one heading, kept with the first chart."""
    shown = []
    if not quant.empty:
        shown.append(("Perplexity against weight bits", render(lambda: charts.quant_chart(quant), FULL_CHART_PX),
                      charts.describe_quant(quant)))
    if not prune[~prune["This plan"]].empty:
        shown.append(("Loss increase against sparsity", render(lambda: charts.prune_chart(prune), FULL_CHART_PX),
                      charts.describe_prune(prune)))
    first = row_height(doc, [shown[0][1:]]) if shown else 0.0
    doc.heading("Predicted for this model", keep=first + 30)
    for title, png, description in shown:
        figure(doc, title, [(png, description)], size=10.5)


def _measured(doc: Doc, found: tuple[dict[str, Any], Any, str] | None) -> None:
    doc.heading("Measured on small models", keep=20)
    if found is None:
        doc.para("No calibration profile at hand has quality curves (python -m calibration quality makes them).", 9)
        return
    profile, section, source = found
    doc.para(f"From {source}. A different scale from the prediction above: small models trained, compressed and "
             "measured with k-fold cross-validation; their curves show the shape of the degradation, not this "
             "model's numbers.", 9)
    for model_name in section.models:
        y_name = charts.main_metric(section, model_name)
        title = charts.measured_title(profile, section, model_name)
        frames = [charts.measured_frame(section, model_name, family, y_name) for family in ("bits", "sparsity")]
        frames = [f for f in frames if not f.empty]
        if not frames:
            continue
        pictures = [(render(lambda f=frame, y=y_name, t=title: charts.measured_chart(f, y, t), HALF_CHART_PX),
                     charts.describe_measured(frame, y_name, title)) for frame in frames]
        figure(doc, title, pictures, size=10.5)
        table = charts.kfold_table(profile["quality"], model_name)
        if not table.empty:
            doc.grid(list(table.columns), table.astype(str).itertuples(index=False),
                     [TEXT_W / len(table.columns)] * len(table.columns), size=6.5)


def _scaling_law(doc: Doc, law: Any, source: str) -> None:
    frame = laws.law_frame(law)
    figure(doc, "Scaling law: measured on the small LM beside the published fits",
           [(render(lambda: laws.law_chart(frame), FULL_CHART_PX), laws.describe_law(frame, law, source))], size=10.5)
    table = laws.law_table(law)
    doc.grid(list(table.columns), table.astype(str).itertuples(index=False), laws.TABLE_WIDTHS_MM,
             size=6.5)


def _sources(doc: Doc, plan: Any, device: str) -> None:
    sources_table(doc, plan, presentation.source_figures("compress"), hardware=False, value=text.figure_text)
    doc.para(f"Speed-ups are on the serving accelerator, {device}; quality does not depend on it.", 8, colour=GREY)


def compress_pdf(plan: Any, device: str, quant: pd.DataFrame, prune: pd.DataFrame,
                 found: tuple[dict[str, Any], Any, str] | None = None, *, law: tuple[Any, str] | None = None,
                 created: dt.datetime | None = None) -> bytes:
    """The Compress page's summary as an A4 PDF; `law` is (the measured scaling law or None, where it came from),
    by default `found`'s; `created` fixes the printed date (default now, UTC)."""
    created = report_date(created)
    title = f"Compression: {shown_name(plan.scenario.name) or text.model_name(plan.scenario)}"
    answer = text.answer_sentence(plan, device)
    doc = new_document(title, answer, created)
    title_block(doc, title, f"{created:%Y-%m-%d %H:%M} UTC · Modelfolio {VERSION} · served on {device}")
    doc.para(answer, 12, bold=True)
    doc.heading("Key figures", keep=40)
    key_figures_table(doc, plan, "compress", value=_value)
    ranges = text.ranges_text(plan)
    if ranges:
        doc.para(ranges, 8, colour=GREY)
    notes = text.warning_texts(plan)
    if notes:
        doc.heading("Warnings", size=10.5, keep=15)
        doc.bullets(notes, size=8.5)

    _predicted(doc, quant, prune)
    _measured(doc, found)
    if law is None:
        law = (None, "") if found is None else (found[1].scaling_law, found[2])
    _scaling_law(doc, *law)

    sections_pdf(doc, plan, "compress")
    spread_section(doc, plan)
    doc.heading("Inputs of the compression", keep=40)
    inputs_table(doc, plan, "compress")
    doc.heading("Sources: every figure and how it is made", keep=40)
    _sources(doc, plan, device)
    return bytes(doc.output())
