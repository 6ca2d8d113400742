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
from report import formatting as fmt
from report import scaling_law_charts as laws
from report.pdf import (
    FULL_CHART_PX,
    GREY,
    HALF_CHART_PX,
    TEXT_W,
    _Doc,
    _inputs,
    _markers,
    _provenance,
    _render,
    figure,
    new_document,
    report_date,
    row_height,
    shown_name,
    spread_section,
    title_block,
)
from simulator.plan import VERSION

KEY_FIGURES = ("compression.model_bytes", "compression.size_ratio", "compression.decode_speedup",
               "compression.prefill_speedup", "quality.dense_loss", "quality.loss", "quality.loss_delta",
               "quality.ppl_ratio")
FAMILIES = ("compression", "quality")


def _key_figures(doc: _Doc, plan: Any) -> None:
    rows = [[f.label, text.figure_text(f.value, f.unit), text.span_text(f), f.provenance]
            for key in KEY_FIGURES if (f := plan.figures.get(key)) is not None]
    doc.grid(["Figure", "Value", "P10–P90", "Provenance"], rows, [70, 36, 46, 28], size=8.5,
             align=["LEFT", "RIGHT", "RIGHT", "LEFT"])


def _predicted(doc: _Doc, quant: pd.DataFrame, prune: pd.DataFrame) -> None:
    """The two predictions' charts (those with points to draw) under one heading, kept with the first chart."""
    shown = []
    if not quant.empty:
        shown.append(("Perplexity against weight bits", _render(lambda: charts.quant_chart(quant), FULL_CHART_PX),
                      charts.describe_quant(quant)))
    if not prune[~prune["This plan"]].empty:
        shown.append(("Loss increase against sparsity", _render(lambda: charts.prune_chart(prune), FULL_CHART_PX),
                      charts.describe_prune(prune)))
    first = row_height(doc, [shown[0][1:]]) if shown else 0.0
    doc.heading("Predicted for this model", keep=first + 30)
    for title, png, description in shown:
        figure(doc, title, [(png, description)], size=10.5)


def _measured(doc: _Doc, found: tuple[dict[str, Any], Any, str] | None) -> None:
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
        pictures = [(_render(lambda f=frame, y=y_name, t=title: charts.measured_chart(f, y, t), HALF_CHART_PX),
                     charts.describe_measured(frame, y_name, title)) for frame in frames]
        figure(doc, title, pictures, size=10.5)
        table = charts.kfold_table(profile["quality"], model_name)
        if not table.empty:
            doc.grid(list(table.columns), table.astype(str).itertuples(index=False),
                     [TEXT_W / len(table.columns)] * len(table.columns), size=6.5)


def _scaling_law(doc: _Doc, law: Any, source: str) -> None:
    frame = laws.law_frame(law)
    figure(doc, "Scaling law: measured on the small LM beside the published fits",
           [(_render(lambda: laws.law_chart(frame), FULL_CHART_PX), laws.describe_law(frame, law, source))], size=10.5)
    table = laws.law_table(law)
    doc.grid(list(table.columns), table.astype(str).itertuples(index=False), laws.TABLE_WIDTHS_MM,
             size=6.5)


def _sources(doc: _Doc, plan: Any, device: str) -> None:
    figures = {k: f for k, f in plan.figures.items() if k.split(".")[0] in FAMILIES}
    markers = _markers(figures.values())
    rows = [[f.label, text.figure_text(f.value, f.unit), _provenance(f, markers), fmt.in_words(f.source)]
            for f in figures.values()]
    doc.grid(["Figure", "Value", "Provenance", "How it is made (formula or source)"], rows, [44, 24, 22, 90],
             size=7.5)
    for basis, marker in markers.items():
        doc.para(f"{marker} {basis}.", 7.5, colour=GREY, after=0.5)
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
    _key_figures(doc, plan)
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

    spread_section(doc, plan)
    doc.heading("Inputs of the compression", keep=40)
    _inputs(doc, plan, FAMILIES)
    doc.heading("Sources: every figure and how it is made", keep=40)
    _sources(doc, plan, device)
    return bytes(doc.output())
