"""Altair charts shared by the pages and the PDF report.

Each chart comes as a pair: `*_frame` turns plans or a sweep into the tidy table the chart draws (also shown
as the chart's table view), and `*_chart` draws that table. `describe_*` gives the text alternative.
Colours are Okabe-Ito (colour-blind safe) and never the only signal: parts are labelled, points change shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd

from report import formatting as fmt
from simulator.inputs import INPUTS
from simulator.plan import FIGURES, STEP_PARTS

OKABE_ITO = {
    "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "black": "#000000",
    "grey": "#999999",  # the colour-blind-safe palette's grey (Cookbook for R, "cbPalette")
}
STEP_COLOURS = ("sky_blue", "orange", "yellow", "reddish_purple", "blue", "grey", "vermillion", "bluish_green")
MEMORY_PARTS = ("mem_weights_gb", "mem_grads_gb", "mem_optimizer_gb", "mem_activations_gb")
MEMORY_COLOURS = ("sky_blue", "orange", "bluish_green", "reddish_purple")
SHORT_NAMES = {
    "compute_s": "compute", "tp_comm_s": "TP comm", "pp_bubble_s": "bubble", "pp_p2p_s": "p2p",
    "a2a_s": "all-to-all", "cp_comm_s": "CP ring", "dp_exposed_s": "DP sync", "straggler_s": "straggler", "mem_weights_gb": "weights", "mem_grads_gb": "grads",
    "mem_optimizer_gb": "optimizer", "mem_activations_gb": "activations",
}
LABEL_MIN_WIDTH = 0.2  # segments narrower than this fraction of the axis carry no text label
FITS, NO_FIT = "fits in memory", "does not fit in memory"


PAGE_AUTOSIZE = {"type": "fit-x", "contains": "padding"}
# room at the edges for the glyphs of a title or a tick label drawn flush with the chart's bounds (Streamlit adds
# its own padding below, and wants an object here)
PAGE_PADDING_PX = {"left": 6, "top": 6, "right": 6}
LEGEND_COLUMN_PX = 170  # one legend column (symbol, label, gap): a 262-px column holds one, a 462-px one two
CHAR_PX = 6.5  # a character of an 11-px label, on average
TITLE_CHARS = 32  # an x-axis or chart title breaks into lines of at most this many characters (about 190 px)
Y_TITLE_CHARS = 40  # a y-axis title runs along the plot's height (240-320 px), so its lines may be longer


def for_page(chart: alt.TopLevelMixin | Mapping[str, Any]) -> dict[str, Any]:
    """A chart's Vega-Lite spec as a page draws it: as wide as its column, its height the plot's own. Streamlit's
    theme fits the whole chart (plot, legend, titles) into the spec's height, which squeezed a chart with a long
    legend to a strip or to nothing; with the width fitted and the height padded, the legend adds below instead."""
    spec = dict(chart) if isinstance(chart, Mapping) else chart.to_dict(validate=False)
    return spec | {"autosize": PAGE_AUTOSIZE, "padding": PAGE_PADDING_PX}


def title_lines(text: str, most: int = TITLE_CHARS) -> str | list[str]:
    """A title as lines of at most `most` characters, broken at spaces (Vega-Lite draws a list as lines), so that
    it fits a narrow column or a PDF's half width uncut; a short title stays one string, a word longer than a line
    (an identifier) is cut into pieces."""
    if len(text) <= most:
        return text
    out: list[str] = []
    words = [word[i:i + most] for word in text.split(" ") for i in range(0, max(len(word), 1), most)]
    for word in words:
        if out and len(out[-1]) + 1 + len(word) <= most:
            out[-1] += " " + word
        else:
            out.append(word)
    return out


def _two_lines_expr(most: int) -> str:
    """A Vega expression that breaks a label longer than `most` characters at its last space within them."""
    cut = f"lastindexof(substring(datum.label, 0, {most + 1}), ' ')"
    return (f"length(datum.label) > {most} && {cut} > 0 ? [substring(datum.label, 0, {cut}), "
            f"substring(datum.label, {cut} + 1)] : datum.label")


def legend(title: str | None = None, column_px: int = LEGEND_COLUMN_PX, most_columns: int = 3,
           **more: Any) -> alt.Legend:
    """A legend under the plot in as many columns as the plot's width holds (one in a narrow column), a label
    longer than its column on two lines: never cut with an ellipsis."""
    columns = alt.ExprRef(f"clamp(floor(width / {column_px}), 1, {most_columns})")
    most = int((column_px - 30) / CHAR_PX)
    return alt.Legend(title=title, orient="bottom", columns=columns, labelLimit=0, labelExpr=_two_lines_expr(most),
                      symbolOpacity=1, **more)


def _label(key: str) -> str:
    return FIGURES[f"training.{key}"].label


def table_view(frame: pd.DataFrame, units: Mapping[str, str]) -> pd.DataFrame:
    """A chart's table as the page shows it: each column of `units` formatted by its registered unit
    (report.formatting.by_unit), so no raw float (1285512.0048, 0.5465) reaches the reader."""
    out = frame.drop(columns=["Short"], errors="ignore").copy()
    for column, unit in units.items():
        if column in out:
            out[column] = [fmt.by_unit(v, unit) for v in out[column]]
    return out


def _scale(keys: tuple[str, ...], colours: tuple[str, ...]) -> alt.Scale:
    return alt.Scale(domain=[_label(k) for k in keys], range=[OKABE_ITO[c] for c in colours])


def _stacked_bars(frame: pd.DataFrame, value: str, keys, colours, x_title: str, fmt_code: str,
                  extent: float) -> list[alt.Chart]:
    """Horizontal stacked bars, one per scenario; segments wider than LABEL_MIN_WIDTH of the axis are labelled."""
    order = {_label(k): i for i, k in enumerate(keys)}
    data = frame.assign(order=frame["Part"].map(order), Width=frame[value] / (extent or 1.0))
    base = alt.Chart(data).encode(
        y=alt.Y("Scenario:N", title=None, sort=list(dict.fromkeys(data["Scenario"]))),
        tooltip=["Scenario:N", "Part:N", alt.Tooltip(f"{value}:Q", format=fmt_code), alt.Tooltip("Share:Q", format=".0%")],
    )
    bars = base.mark_bar(stroke="white", strokeWidth=1).encode(
        x=alt.X(f"sum({value}):Q", title=title_lines(x_title), stack="zero"),
        color=alt.Color("Part:N", scale=_scale(keys, colours), legend=legend(most_columns=2)),
        order=alt.Order("order:Q"),
    )
    text = (
        base.transform_window(end=f"sum({value})", sort=[alt.SortField("order")], groupby=["Scenario"], frame=[None, 0])
        .transform_calculate(mid=f"datum.end - datum['{value}'] / 2", text="datum.Short + ' ' + format(datum.Share, '.0%')")
        .transform_filter(alt.datum.Width >= LABEL_MIN_WIDTH)
        .mark_text(color="black", fontSize=11)
        .encode(x=alt.X("mid:Q"), text="text:N")
    )
    return [bars, text]


def step_frame(plans: Mapping[str, Any]) -> pd.DataFrame:
    """Seconds per optimizer step by part, for {scenario name: Plan}."""
    rows = []
    for name, plan in plans.items():
        total = sum(float(plan.training[k].value) for k in STEP_PARTS) or 1.0
        for key in STEP_PARTS:
            seconds = float(plan.training[key].value)
            rows.append({"Scenario": name, "Part": _label(key), "Short": SHORT_NAMES[key], "Seconds": seconds,
                         "Share": seconds / total})
    return pd.DataFrame(rows, columns=["Scenario", "Part", "Short", "Seconds", "Share"])


STEP_UNITS = {"Seconds": FIGURES["training.compute_s"].unit, "Share": "fraction"}


def step_chart(frame: pd.DataFrame) -> alt.LayerChart:
    extent = frame.groupby("Scenario")["Seconds"].sum().max() if len(frame) else 1.0
    layers = _stacked_bars(frame, "Seconds", STEP_PARTS, STEP_COLOURS, "Seconds per optimizer step (shorter is better)",
                           ".3g", extent)
    return alt.layer(*layers).properties(height=alt.Step(44))


def describe_step(frame: pd.DataFrame) -> str:
    parts = []
    for name, group in frame.groupby("Scenario", sort=False):
        big = group.sort_values("Seconds", ascending=False)
        shares = ", ".join(f"{p.lower()} {fmt.pct(s)}" for p, s in zip(big["Part"], big["Share"], strict=True) if s >= 0.005)
        parts.append(f"{name}: {fmt.seconds(group['Seconds'].sum())} per step ({shares}).")
    return "Stacked bar of the time one optimizer step takes, by part. " + " ".join(parts)


def memory_frame(plans: Mapping[str, Any], hbm_GB: Mapping[str, float]) -> pd.DataFrame:
    """GB per GPU by part, with each scenario's HBM capacity and whether it fits (the plan's own
    training.fits_memory), for {scenario name: Plan}."""
    rows = []
    for name, plan in plans.items():
        total = float(plan.training["memory_per_gpu_gb"].value) or 1.0
        fits = FITS if bool(plan.training["fits_memory"].value) else NO_FIT
        for key in MEMORY_PARTS:
            value = float(plan.training[key].value)
            rows.append({"Scenario": name, "Part": _label(key), "Short": SHORT_NAMES[key], "GB": value,
                         "Share": value / total, "HBM GB": hbm_GB[name], "Memory": fits})
    return pd.DataFrame(rows, columns=["Scenario", "Part", "Short", "GB", "Share", "HBM GB", "Memory"])


MEMORY_UNITS = {"GB": FIGURES["training.mem_weights_gb"].unit, "Share": "fraction",
                "HBM GB": FIGURES["training.memory_per_gpu_gb"].unit}


def memory_chart(frame: pd.DataFrame) -> alt.LayerChart:
    extent = max(frame.groupby("Scenario")["GB"].sum().max(), frame["HBM GB"].max()) if len(frame) else 1.0
    layers = _stacked_bars(frame, "GB", MEMORY_PARTS, MEMORY_COLOURS, "GB per GPU (must end left of the HBM mark)",
                           ".3g", extent)
    capacity = frame.groupby("Scenario", sort=False, as_index=False)["HBM GB"].first()
    mark = alt.Chart(capacity).encode(
        y=alt.Y("Scenario:N", sort=list(capacity["Scenario"])), x="HBM GB:Q",
        tooltip=["Scenario:N", alt.Tooltip("HBM GB:Q", title="HBM capacity (GB)")],
    )
    rule = mark.mark_tick(color="black", thickness=3, size=40)
    first = capacity.drop_duplicates("HBM GB")  # label each capacity once
    label = (
        alt.Chart(first).encode(y=alt.Y("Scenario:N", sort=list(capacity["Scenario"])), x="HBM GB:Q")
        .transform_calculate(cap="'HBM ' + format(datum['HBM GB'], '.0f') + ' GB'")
        .mark_text(align="right", dx=-4, dy=-18, fontSize=11)  # left of the mark: it often ends the axis
        .encode(text="cap:N")
    )
    return alt.layer(*layers, rule, label).properties(height=alt.Step(44))


def describe_memory(frame: pd.DataFrame) -> str:
    parts = []
    for name, group in frame.groupby("Scenario", sort=False):
        total, cap = group["GB"].sum(), group["HBM GB"].iloc[0]
        split = ", ".join(f"{p.lower()} {fmt.gb(v)}" for p, v in zip(group["Part"], group["GB"], strict=True))
        verdict = "fits" if group["Memory"].iloc[0] == FITS else "does not fit"
        parts.append(f"{name}: {fmt.gb(total)} of {fmt.gb(cap)} HBM, {verdict} ({split}).")
    return "Stacked bar of memory per GPU by part against the accelerator's HBM capacity. " + " ".join(parts)


SCALING_MEASURES = {  # sweep column -> (frame column, axis title, log y, number format)
    "training.wall_days": ("Expected days", "Expected days (lower is better)", True, ".3g"),
    "training.cost_usd": ("Cost (USD)", "Cost, USD (lower is better)", False, "$,.3s"),
}
SCALING_UNITS = {"GPUs": INPUTS["cluster.gpus"].unit, "Expected days": FIGURES["training.wall_days"].unit,
                 "Cost (USD)": FIGURES["training.cost_usd"].unit, "GPU-hours": FIGURES["training.gpu_hours"].unit,
                 "MFU": FIGURES["training.mfu"].unit}


def scaling_frame(sweep: pd.DataFrame) -> pd.DataFrame:
    """Valid rows of a `cluster.gpus` sweep, with readable column names."""
    ok = sweep[sweep["valid"]].sort_values("cluster.gpus")
    return pd.DataFrame({
        "GPUs": ok["cluster.gpus"].astype(int),
        "Expected days": ok["training.wall_days"],
        "Cost (USD)": ok["training.cost_usd"],
        "GPU-hours": ok["training.gpu_hours"],
        "MFU": ok["training.mfu"],
        "Memory": ok["training.fits_memory"].map({True: FITS, False: NO_FIT}),
    }).reset_index(drop=True)


def scaling_chart(frame: pd.DataFrame, measure: str, current_gpus: int, baseline_gpus: int | None = None) -> alt.LayerChart:
    """One measure against the GPU count (log x); the current choice is a solid rule, the baseline a dashed one."""
    column, title, log_y, number = SCALING_MEASURES[measure]
    x = alt.X("GPUs:Q", scale=alt.Scale(type="log", base=2), title="GPUs (log scale)", axis=alt.Axis(format=","))
    y_axis = alt.Axis(format=",~r" if log_y else "$~s")
    y = alt.Y(f"{column}:Q", title=title, axis=y_axis, scale=alt.Scale(type="log") if log_y else alt.Scale(zero=True))
    tips = ["GPUs:Q", alt.Tooltip(f"{column}:Q", format=number), alt.Tooltip("MFU:Q", format=".0%"), "Memory:N"]
    base = alt.Chart(frame).encode(x=x, y=y, tooltip=tips)
    line = base.mark_line(color=OKABE_ITO["blue"])
    points = base.mark_point(size=70, filled=True).encode(
        shape=alt.Shape("Memory:N", scale=alt.Scale(domain=[FITS, NO_FIT], range=["circle", "cross"]),
                        legend=legend(most_columns=2)),
        color=alt.Color("Memory:N", scale=alt.Scale(domain=[FITS, NO_FIT], range=[OKABE_ITO["blue"], OKABE_ITO["vermillion"]]),
                        legend=legend(most_columns=2)),
    )
    marks = [{"GPUs": current_gpus, "which": "this plan"}]
    if baseline_gpus and baseline_gpus != current_gpus:
        marks.append({"GPUs": baseline_gpus, "which": "baseline"})
    rules_data = alt.Chart(pd.DataFrame(marks)).encode(x=alt.X("GPUs:Q"))
    rules = rules_data.mark_rule(color="black").encode(
        strokeDash=alt.StrokeDash("which:N", scale=alt.Scale(domain=["this plan", "baseline"], range=[[1, 0], [5, 4]]), legend=None)
    )
    # each label on the outer side of its rule, so that two neighbouring rules' labels do not overlap
    left_of = {"baseline": baseline_gpus is not None and baseline_gpus < current_gpus,
               "this plan": baseline_gpus is not None and baseline_gpus > current_gpus}
    labels = [
        alt.Chart(pd.DataFrame([m for m in marks if left_of[m["which"]] == side])).encode(x=alt.X("GPUs:Q"), text="which:N")
        .mark_text(align="right" if side else "left", dx=-4 if side else 4, baseline="top", y=4, fontSize=11)
        for side in (False, True) if any(left_of[m["which"]] == side for m in marks)
    ]
    return alt.layer(line, points, rules, *labels).properties(height=300)


def describe_scaling(frame: pd.DataFrame, measure: str, current_gpus: int) -> str:
    column = SCALING_MEASURES[measure][0]
    if frame.empty:
        return f"No valid GPU counts to plot {column.lower()} against."
    show = fmt.usd if measure.endswith("cost_usd") else fmt.days
    lo, hi = frame.iloc[0], frame.iloc[-1]
    misfits = frame.loc[frame["Memory"] == NO_FIT, "GPUs"].tolist()
    text = (f"{column} against GPU count on a log scale: {show(lo[column])} on {fmt.count(lo['GPUs'])} GPUs to "
            f"{show(hi[column])} on {fmt.count(hi['GPUs'])} GPUs; this plan uses {fmt.count(current_gpus)}.")
    if misfits:
        text += f" Does not fit in memory at {', '.join(fmt.count(g) for g in misfits)} GPUs."
    return text
