"""The Deploy page's charts, shared with its PDF: latency against batch, GPUs and cost against traffic, and the
cumulative cost of renting, buying or a hosted API over the horizon. Each frame (simulator.deployment: also the
chart's table view) gets a chart and a text alternative here.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from report import formatting as fmt
from report.charts import OKABE_ITO, Y_TITLE_CHARS, legend, title_lines
from simulator.deployment import OPTIONS, totals
from simulator.inputs import INPUTS

OPTION_COLOURS = {"Rent": "blue", "Buy": "vermillion", "Hosted API": "bluish_green"}
LATENCIES = {"Time to first token": "orange", "Time per output token": "blue"}
NOT_SERVED = "no request rate here can be served as set (the answer above says what to change)"


def _finite(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows a layer can draw: every one of `columns` a finite number (a NaN would reach the chart as an axis
    of `NaN` or an empty domain drawn as 0.000000)."""
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return frame[np.isfinite(values).all(axis=1)]


def target_frame(ttft_target_s: float, tpot_target_s: float) -> pd.DataFrame:
    """The two latency targets as rules, each with its label on its own side: the higher target's above its rule,
    the lower's below, so the labels never overlap however close the targets are (equal ones included)."""
    targets = pd.DataFrame({"Seconds": [ttft_target_s, tpot_target_s],
                            "Text": [f"time-to-first-token target {fmt.seconds(ttft_target_s)}",
                                     f"time-per-token target {fmt.seconds(tpot_target_s)}"]})
    targets = _finite(targets, ["Seconds"])
    targets = targets[targets["Seconds"] > 0].sort_values("Seconds", ascending=False, kind="stable")
    return targets.assign(Side=["above" if i == 0 else "below" for i in range(len(targets))])


def _target_layers(targets: pd.DataFrame) -> list[alt.Chart]:
    rule = alt.Chart(targets).mark_rule(strokeDash=[2, 3], color=OKABE_ITO["black"]).encode(y="Seconds:Q")
    labels = [alt.Chart(targets[targets["Side"] == side]).mark_text(
        align="left", x=4, baseline="bottom" if side == "above" else "top", dy=-3 if side == "above" else 3)
        .encode(y="Seconds:Q", text="Text:N") for side in ("above", "below") if (targets["Side"] == side).any()]
    return [rule, *labels]


def _batch_layers(chosen_batch: float, largest_batch: float) -> list[alt.Chart]:
    """The batch run as a vertical rule, labelled on the side with room (left of it in the right half of the log
    axis, so the label stays inside the plot)."""
    right_half = chosen_batch > 1 and np.log(chosen_batch) > 0.5 * np.log(max(largest_batch, 1.0))
    mark = pd.DataFrame({"Batch": [chosen_batch], "Text": [f"batch run: {int(chosen_batch):,}"]})
    colour = OKABE_ITO["reddish_purple"]
    return [alt.Chart(mark).mark_rule(color=colour).encode(x="Batch:Q"),
            alt.Chart(mark).mark_text(align="right" if right_half else "left", dx=-4 if right_half else 4,
                                      baseline="top", y=4, color=colour).encode(x="Batch:Q", text="Text:N")]


def latency_chart(frame: pd.DataFrame, ttft_target_s: float, tpot_target_s: float, chosen_batch: float | None
                  ) -> alt.LayerChart:
    x = alt.X("Batch:Q", scale=alt.Scale(type="log"), title=title_lines("Batch per replica, sequences (log scale)"))
    y = alt.Y("Seconds:Q", scale=alt.Scale(type="log"),
              title=title_lines("Latency, s (log scale; lower is better)", Y_TITLE_CHARS))
    colour = alt.Color("Latency:N", scale=alt.Scale(domain=list(LATENCIES),
                                                    range=[OKABE_ITO[c] for c in LATENCIES.values()]),
                       legend=legend())
    dash = alt.StrokeDash("Latency:N", legend=None, scale=alt.Scale(domain=list(LATENCIES), range=[[1, 0], [6, 3]]))
    tip = [alt.Tooltip("Latency:N"), alt.Tooltip("Batch:Q"), alt.Tooltip("Seconds:Q", format=".4f"),
           alt.Tooltip("P10 (s):Q", format=".4f"), alt.Tooltip("P90 (s):Q", format=".4f")]
    curves = _finite(frame, ["Batch", "Seconds"])
    curves = curves[(curves["Batch"] > 0) & (curves["Seconds"] > 0)]
    layers: list[alt.Chart] = [
        alt.Chart(_finite(curves, ["P10 (s)", "P90 (s)"])).mark_area(opacity=0.18).encode(
            x=x, y="P10 (s):Q", y2="P90 (s):Q", color=colour),
        alt.Chart(curves).mark_line(point=alt.OverlayMarkDef(size=18)).encode(x=x, y=y, color=colour,
                                                                              strokeDash=dash, tooltip=tip),
        *_target_layers(target_frame(ttft_target_s, tpot_target_s)),
    ]
    if chosen_batch is not None and np.isfinite(chosen_batch) and chosen_batch > 0:
        largest = float(curves["Batch"].max()) if len(curves) else chosen_batch
        layers += _batch_layers(chosen_batch, largest)
    return alt.layer(*layers).properties(height=320)


def describe_latency(frame: pd.DataFrame, ttft_target_s: float, tpot_target_s: float,
                     chosen_batch: float | None) -> str:
    if frame.empty:
        return "No batch fits: the weights and one request's KV cache do not fit in a replica."
    tpot = frame[frame["Latency"] == "Time per output token"]
    ttft = frame[frame["Latency"] == "Time to first token"]
    text = (f"Time to first token and time per output token of one replica running batches from 1 to "
            f"{int(frame['Batch'].max()):,} sequences (the largest that fits): time per token rises from "
            f"{fmt.seconds(tpot['Seconds'].iloc[0])} to {fmt.seconds(tpot['Seconds'].iloc[-1])}, time to first "
            f"token from {fmt.seconds(ttft['Seconds'].iloc[0])} to {fmt.seconds(ttft['Seconds'].iloc[-1])}; the "
            f"dotted lines are the targets, {fmt.seconds(ttft_target_s)} to the first token and "
            f"{fmt.seconds(tpot_target_s)} per token")
    if chosen_batch is not None and np.isfinite(chosen_batch):
        text += f"; the vertical line is the batch run, {int(chosen_batch):,}, the largest meeting both"
    else:
        text += "; no batch meets both targets"
    return text + ". Shaded: P10-P90 from the uncertain hardware inputs."


# ---------------------------------------------------------------- GPUs and cost against traffic



def _traffic_x() -> alt.X:
    return alt.X("Requests/s:Q", scale=alt.Scale(type="log"), title="Average requests/s (log scale)")


def _traffic_tip() -> list[alt.Tooltip]:
    return [alt.Tooltip("Requests/s:Q", format=",.3g"), alt.Tooltip("GPUs:Q", format=",.0f"),
            alt.Tooltip("Monthly cost (USD):Q", format="$,.0f"),
            alt.Tooltip("P10 (USD):Q", format="$,.0f"), alt.Tooltip("P90 (USD):Q", format="$,.0f"),
            alt.Tooltip("Per 1M output tokens (USD):Q", format="$,.2f")]


def _your_rate(requests_per_s: float) -> alt.Chart:
    now = pd.DataFrame({"Requests/s": [requests_per_s]})
    return alt.Chart(now).mark_rule(strokeDash=[6, 4], color=OKABE_ITO["black"]).encode(x="Requests/s:Q")


def _nothing_served(title: str) -> alt.Chart:
    """What a traffic chart draws when no rate of the sweep can be served: no axes (their domain would be
    empty, drawn as NaN or 0.000000), only the reason."""
    note = pd.DataFrame({"Text": [NOT_SERVED[0].upper() + NOT_SERVED[1:] + "."]})
    return alt.Chart(note).mark_text(fontSize=12, color="#555555").encode(text="Text:N").properties(
        height=60, title=title)


def traffic_gpus_chart(frame: pd.DataFrame, requests_per_s: float) -> alt.LayerChart | alt.Chart:
    served = _finite(frame, ["Requests/s", "GPUs"])
    if served.empty:
        return _nothing_served("GPUs needed")
    line = alt.Chart(served).mark_line(interpolate="step-after", color=OKABE_ITO["blue"], point=True).encode(
        x=_traffic_x(), y=alt.Y("GPUs:Q", title="Serving GPUs (fewer is cheaper)"), tooltip=_traffic_tip())
    return alt.layer(line, _your_rate(requests_per_s)).properties(height=260, title="GPUs needed")


def traffic_cost_chart(frame: pd.DataFrame, requests_per_s: float) -> alt.LayerChart | alt.Chart:
    served = _finite(frame, ["Requests/s", "Monthly cost (USD)"])
    if served.empty:
        return _nothing_served("Monthly cost")
    band = alt.Chart(_finite(served, ["P10 (USD)", "P90 (USD)"])).mark_area(
        opacity=0.2, color=OKABE_ITO["vermillion"]).encode(x=_traffic_x(), y="P10 (USD):Q", y2="P90 (USD):Q")
    line = alt.Chart(served).mark_line(color=OKABE_ITO["vermillion"], point=True).encode(
        x=_traffic_x(), y=alt.Y("Monthly cost (USD):Q",
                                title=title_lines("Serving cost per month, USD (lower is better)", Y_TITLE_CHARS),
                                axis=alt.Axis(format="$~s")), tooltip=_traffic_tip())
    return alt.layer(band, line, _your_rate(requests_per_s)).properties(height=260, title="Monthly cost")


def traffic_served(frame: pd.DataFrame) -> bool:
    """Whether any request rate of the sweep can be served (else the traffic charts only say why)."""
    return not _finite(frame, ["Requests/s", "GPUs"]).empty


def traffic_chart(frame: pd.DataFrame, requests_per_s: float) -> alt.HConcatChart:
    """Both traffic charts side by side (the PDF's; the page puts them in two columns)."""
    return alt.hconcat(traffic_gpus_chart(frame, requests_per_s), traffic_cost_chart(frame, requests_per_s))


def describe_traffic(frame: pd.DataFrame, requests_per_s: float) -> str:
    ok = frame.dropna(subset=["GPUs"])
    if ok.empty:
        return f"No chart of GPUs or cost against traffic: {NOT_SERVED}."
    first, last = ok.iloc[0], ok.iloc[-1]
    return (f"Serving GPUs and monthly cost for average rates from {fmt.plain(first['Requests/s'])} to "
            f"{fmt.plain(last['Requests/s'])} requests/s: from {fmt.count(first['GPUs'])} GPUs "
            f"({fmt.usd(first['Monthly cost (USD)'])} a month) to {fmt.count(last['GPUs'])} GPUs "
            f"({fmt.usd(last['Monthly cost (USD)'])}); GPUs come in whole replicas, so the cost rises in steps. "
            f"The dashed line is your rate, {fmt.plain(requests_per_s)} requests/s. Shaded: P10-P90 of the cost.")


# ---------------------------------------------------------------- rent, buy or API over time



def money_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Each option that can be priced as a line (with its P10-P90 band); one that cannot is left out of the
    chart and its legend (describe_money says why)."""
    drawn = _finite(frame, ["Month", "Cumulative cost (USD)"])
    names = list(dict.fromkeys(drawn["Option"]))
    colours = {**OPTION_COLOURS, "Revenue": "black"}
    dashes = dict(zip((*OPTIONS, "Revenue"), ([1, 0], [6, 3], [2, 2], [8, 2, 2, 2]), strict=True))
    colour = alt.Color("Option:N", scale=alt.Scale(domain=names, range=[OKABE_ITO[colours[n]] for n in names]),
                       legend=legend(column_px=120, most_columns=4))
    dash = alt.StrokeDash("Option:N", legend=None, scale=alt.Scale(domain=names, range=[dashes[n] for n in names]))
    x = alt.X("Month:Q", title="Month of serving")
    y = alt.Y("Cumulative cost (USD):Q",
              title=title_lines("Cumulative serving cost, USD (lower is better)", Y_TITLE_CHARS),
              axis=alt.Axis(format="$~s"))
    tip = [alt.Tooltip("Option:N"), alt.Tooltip("Month:Q"), alt.Tooltip("Cumulative cost (USD):Q", format="$,.0f"),
           alt.Tooltip("P10 (USD):Q", format="$,.0f"), alt.Tooltip("P90 (USD):Q", format="$,.0f")]
    return alt.layer(
        alt.Chart(_finite(drawn, ["P10 (USD)", "P90 (USD)"])).mark_area(opacity=0.15).encode(
            x=x, y="P10 (USD):Q", y2="P90 (USD):Q", color=colour),
        alt.Chart(drawn).mark_line().encode(x=x, y=y, color=colour, strokeDash=dash, tooltip=tip),
    ).properties(height=320)



def describe_money(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "No month to draw."
    months = int(frame["Month"].max())
    end = totals(frame)
    priced = [name for name in OPTIONS if np.isfinite(end.get(name, np.nan))]
    parts = [f"{name.lower() if name != 'Hosted API' else 'the hosted API'} {fmt.usd(end[name])}" for name in priced]
    text = f"Cumulative serving cost, training left out, month by month over {months} months"
    text += ("; at the end: " + ", ".join(parts)) if parts else ""
    if np.isfinite(end.get("Revenue", np.nan)):
        text += f"; revenue {fmt.usd(end['Revenue'])} (black line)"
    if "Buy" in priced:
        text += ". Buying pays the GPUs up front and credits their book value in the last month"
    text += ". Shaded: P10-P90."
    if "Rent" not in priced and "Buy" not in priced:
        text += " Renting and buying are not drawn: this traffic cannot be served as set (the answer above says what to change)."
    elif "Buy" not in priced:
        price = INPUTS["finance.purchase_usd_per_gpu"].label.lower()
        text += f" Buying is not drawn: give a {price} for this accelerator (More settings)."
    return text


def table_view(frame: pd.DataFrame) -> pd.DataFrame:
    """A chart's frame as text for its table view: dollars and seconds formatted, NaN as n/a."""
    view = frame.copy()
    for col in view.columns:
        if "(USD)" in col:
            view[col] = [fmt.usd(v) for v in view[col]]
        elif "(s)" in col or col == "Seconds":
            view[col] = [fmt.seconds(v) for v in view[col]]
        elif col in ("GPUs",):
            view[col] = [fmt.count(v) for v in view[col]]
        elif col == "Requests/s":
            view[col] = [fmt.plain(v) for v in view[col]]
    return view


