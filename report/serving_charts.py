"""The Deploy page's charts, shared with its PDF: latency against batch, GPUs and cost against traffic, and the
cumulative cost of renting, buying or a hosted API over the horizon. Each comes as a frame (also the chart's
table view), a chart, and a text alternative.

The numbers come from the simulator's own functions on the scenario's resolved columns: the plan's row and its
P10/P90 moves (simulator.evaluator.perturbations, the rows `evaluate` ranges over), so the bands are the plan's
ranges drawn along each axis. Latency at a batch is one steady step of that batch (simulator.serving); the
traffic axis is a sweep of serving.requests_per_s; the money is simulator.serving.money.monthly_flows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import altair as alt
import numpy as np
import pandas as pd

from report import formatting as fmt
from report.charts import OKABE_ITO
from simulator.catalog import HardwareSpec
from simulator.evaluator import band, perturbations, scenario_device_spreads, scenario_rows
from simulator.families.finance import purchase_usd
from simulator.families.serving import replica
from simulator.inputs import INPUTS
from simulator.plan import Plan
from simulator.scenario import Scenario
from simulator.serving.capacity import ttft_s
from simulator.serving.money import monthly_flows
from simulator.serving.step import Replica, steady_step
from simulator.sweeps import evaluate_columns, sweep

BATCH_POINTS = 24  # batches drawn between 1 and the largest that fits (geometric)
TRAFFIC_SPAN = 10.0  # the traffic axis runs from the rate ÷ this to the rate × this
TRAFFIC_POINTS = 25
RPS = "serving.requests_per_s"
OPTIONS = ("Rent", "Buy", "Hosted API")
OPTION_COLOURS = {"Rent": "blue", "Buy": "vermillion", "Hosted API": "bluish_green"}
LATENCIES = {"Time to first token": "orange", "Time per output token": "blue"}
RPS_LOW, RPS_HIGH = float(INPUTS[RPS].low), float(INPUTS[RPS].high)


@dataclass(frozen=True)
class Deployment:
    """One deployment question answered: the plan, its resolved rows (the plan's row, then a P10 and a P90 row
    per uncertain input) and the traffic sweep."""

    plan: Plan
    rows: dict[str, np.ndarray]
    traffic: pd.DataFrame


def deployment(scenario: Scenario, plan: Plan, devices: Mapping[str, HardwareSpec] | None = None) -> Deployment:
    cols = scenario_rows([scenario], devices)
    rows, _ = perturbations(cols, scenario_device_spreads(scenario, devices))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rows = evaluate_columns(rows)
    rate = scenario.serving.requests_per_s
    grid = np.geomspace(rate / TRAFFIC_SPAN, rate * TRAFFIC_SPAN, TRAFFIC_POINTS)
    grid = np.unique(np.clip([float(f"{v:.4g}") for v in np.append(grid, rate)], RPS_LOW, RPS_HIGH))
    traffic = sweep(scenario, {RPS: [float(v) for v in grid]}, devices)
    return Deployment(plan, rows, traffic)


def _bands(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of a (rows × points) matrix: the plan's P10-P90 band (simulator.evaluator.band), NaN where a
    row is not finite."""
    low, high = np.full(matrix.shape[1], np.nan), np.full(matrix.shape[1], np.nan)
    for j in range(matrix.shape[1]):  # one per chart point, not per scenario row
        if np.all(np.isfinite(matrix[:, j])):
            low[j], high[j] = band(matrix[:, j])
    return low, high


# ---------------------------------------------------------------- latency against batch


def _columnwise(r: Replica) -> Replica:
    """The replica's rows as a column, so a row of batches broadcasts against them."""
    return Replica(**{f.name: np.asarray(getattr(r, f.name), dtype=float)[:, None] for f in fields(Replica)})


def latency_frame(d: Deployment) -> pd.DataFrame:
    """TTFT and time per output token of a replica running each batch, with the P10-P90 band; empty where the
    model does not fit."""
    columns = ["Batch", "Latency", "Seconds", "P10 (s)", "P90 (s)"]
    rows = d.rows
    fits = float(rows["serving.max_batch"][0])
    if not np.isfinite(fits) or fits < 1:
        return pd.DataFrame(columns=columns)
    batches = np.unique(np.round(np.geomspace(1.0, fits, BATCH_POINTS)))
    chosen = d.plan.value("serving.batch_run")
    if np.isfinite(chosen):
        batches = np.unique(np.append(batches, chosen))
    r = _columnwise(replica(rows))
    p, o = rows["prompt_tokens"][:, None], rows["output_tokens"][:, None]
    b = batches[None, :]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        curves = {"Time to first token": ttft_s(r, b, p, o), "Time per output token": steady_step(r, b, p, o).total_s}
    out = []
    for name, matrix in curves.items():
        low, high = _bands(np.broadcast_to(matrix, (len(p), len(batches))))
        out.append(pd.DataFrame({"Batch": batches.astype(int), "Latency": name, "Seconds": matrix[0],
                                 "P10 (s)": low, "P90 (s)": high}))
    return pd.concat(out, ignore_index=True)[columns]


def latency_chart(frame: pd.DataFrame, ttft_target_s: float, tpot_target_s: float, chosen_batch: float | None
                  ) -> alt.LayerChart:
    x = alt.X("Batch:Q", scale=alt.Scale(type="log"), title="Batch per replica, sequences (log scale)")
    y = alt.Y("Seconds:Q", scale=alt.Scale(type="log"), title="Latency, s (log scale; lower is better)")
    colour = alt.Color("Latency:N", scale=alt.Scale(domain=list(LATENCIES),
                                                    range=[OKABE_ITO[c] for c in LATENCIES.values()]),
                       legend=alt.Legend(orient="bottom", title=None))
    dash = alt.StrokeDash("Latency:N", legend=None, scale=alt.Scale(domain=list(LATENCIES), range=[[1, 0], [6, 3]]))
    tip = [alt.Tooltip("Latency:N"), alt.Tooltip("Batch:Q"), alt.Tooltip("Seconds:Q", format=".4f"),
           alt.Tooltip("P10 (s):Q", format=".4f"), alt.Tooltip("P90 (s):Q", format=".4f")]
    base = alt.Chart(frame)
    layers: list[alt.Chart] = [
        base.mark_area(opacity=0.18).encode(x=x, y="P10 (s):Q", y2="P90 (s):Q", color=colour),
        base.mark_line(point=alt.OverlayMarkDef(size=18)).encode(x=x, y=y, color=colour, strokeDash=dash,
                                                                 tooltip=tip),
    ]
    targets = pd.DataFrame({"Seconds": [ttft_target_s, tpot_target_s],
                            "Text": [f"TTFT target {fmt.seconds(ttft_target_s)}",
                                     f"time-per-token target {fmt.seconds(tpot_target_s)}"]})
    layers.append(alt.Chart(targets).mark_rule(strokeDash=[2, 3], color=OKABE_ITO["black"]).encode(y="Seconds:Q"))
    layers.append(alt.Chart(targets).mark_text(align="left", dx=4, dy=-6, x=2).encode(y="Seconds:Q", text="Text:N"))
    if chosen_batch is not None and np.isfinite(chosen_batch):
        mark = pd.DataFrame({"Batch": [chosen_batch], "Text": [f"batch run: {int(chosen_batch):,}"]})
        layers.append(alt.Chart(mark).mark_rule(color=OKABE_ITO["reddish_purple"]).encode(x="Batch:Q"))
        layers.append(alt.Chart(mark).mark_text(align="left", dx=4, baseline="top", y=4,
                                                color=OKABE_ITO["reddish_purple"]).encode(x="Batch:Q", text="Text:N"))
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
            f"dotted lines are the targets ({fmt.seconds(ttft_target_s)} and {fmt.seconds(tpot_target_s)})")
    if chosen_batch is not None and np.isfinite(chosen_batch):
        text += f"; the vertical line is the batch run, {int(chosen_batch):,}, the largest meeting both"
    else:
        text += "; no batch meets both targets"
    return text + ". Shaded: P10-P90 from the uncertain hardware inputs."


# ---------------------------------------------------------------- GPUs and cost against traffic


def traffic_frame(d: Deployment) -> pd.DataFrame:
    """Serving GPUs, monthly cost and cost per 1M output tokens for each request rate of the sweep, with the
    P10-P90 band of the monthly cost."""
    t = d.traffic
    rates = np.asarray(t[RPS], dtype=float)
    rows = {k: np.repeat(v[:, None], len(rates), axis=1).ravel() for k, v in d.rows.items()
            if np.ndim(v) == 1 and not k.startswith(("serving.", "finance.", "decision."))}
    n = len(d.rows["requests_per_s"])
    rows["requests_per_s"] = np.tile(rates, n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        moved = evaluate_columns(rows)
    low, high = _bands(np.asarray(moved["serving.monthly_cost_usd"], dtype=float).reshape(n, len(rates)))
    return pd.DataFrame({"Requests/s": rates, "GPUs": t["serving.gpus"].to_numpy(dtype=float),
                         "Monthly cost (USD)": t["serving.monthly_cost_usd"].to_numpy(dtype=float),
                         "P10 (USD)": low, "P90 (USD)": high,
                         "Per 1M output tokens (USD)": t["serving.cost_per_million_output_tokens_usd"].to_numpy(
                             dtype=float)})


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


def traffic_gpus_chart(frame: pd.DataFrame, requests_per_s: float) -> alt.LayerChart:
    line = alt.Chart(frame).mark_line(interpolate="step-after", color=OKABE_ITO["blue"], point=True).encode(
        x=_traffic_x(), y=alt.Y("GPUs:Q", title="Serving GPUs (fewer is cheaper)"), tooltip=_traffic_tip())
    return alt.layer(line, _your_rate(requests_per_s)).properties(height=260, title="GPUs needed")


def traffic_cost_chart(frame: pd.DataFrame, requests_per_s: float) -> alt.LayerChart:
    base = alt.Chart(frame)
    band = base.mark_area(opacity=0.2, color=OKABE_ITO["vermillion"]).encode(x=_traffic_x(), y="P10 (USD):Q",
                                                                            y2="P90 (USD):Q")
    line = base.mark_line(color=OKABE_ITO["vermillion"], point=True).encode(
        x=_traffic_x(), y=alt.Y("Monthly cost (USD):Q", title="Serving cost per month, USD (lower is better)",
                                axis=alt.Axis(format="$~s")), tooltip=_traffic_tip())
    return alt.layer(band, line, _your_rate(requests_per_s)).properties(height=260, title="Monthly cost")


def traffic_chart(frame: pd.DataFrame, requests_per_s: float) -> alt.HConcatChart:
    """Both traffic charts side by side (the PDF's; the page puts them in two columns)."""
    return alt.hconcat(traffic_gpus_chart(frame, requests_per_s), traffic_cost_chart(frame, requests_per_s))


def describe_traffic(frame: pd.DataFrame, requests_per_s: float) -> str:
    ok = frame.dropna(subset=["GPUs"])
    if ok.empty:
        return "No request rate of the sweep can be served as set (see the answer above for what to change)."
    first, last = ok.iloc[0], ok.iloc[-1]
    return (f"Serving GPUs and monthly cost for average rates from {fmt.plain(first['Requests/s'])} to "
            f"{fmt.plain(last['Requests/s'])} requests/s: from {fmt.count(first['GPUs'])} GPUs "
            f"({fmt.usd(first['Monthly cost (USD)'])} a month) to {fmt.count(last['GPUs'])} GPUs "
            f"({fmt.usd(last['Monthly cost (USD)'])}); GPUs come in whole replicas, so the cost rises in steps. "
            f"The dashed line is your rate, {fmt.plain(requests_per_s)} requests/s. Shaded: P10-P90 of the cost.")


# ---------------------------------------------------------------- rent, buy or API over time


def money_frame(d: Deployment) -> pd.DataFrame:
    """Cumulative serving cost (training left out) of renting, buying and the hosted API at the end of each month
    of the horizon, with the P10-P90 band."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        flows = monthly_flows({**d.rows, "purchase_usd": purchase_usd(d.rows)})
    months = np.arange(1, flows.rent.shape[1] + 1)
    out = []
    for name, matrix in zip(OPTIONS, (flows.rent, flows.buy, flows.api), strict=True):
        total = np.cumsum(matrix, axis=1)
        low, high = _bands(total)
        out.append(pd.DataFrame({"Month": months, "Option": name, "Cumulative cost (USD)": total[0],
                                 "P10 (USD)": low, "P90 (USD)": high}))
    if float(d.rows["revenue_per_million_output_tokens_usd"][0]) > 0:
        out.append(pd.DataFrame({"Month": months, "Option": "Revenue",
                                 "Cumulative cost (USD)": np.cumsum(flows.revenue[0]),
                                 "P10 (USD)": np.nan, "P90 (USD)": np.nan}))
    return pd.concat(out, ignore_index=True)


def money_chart(frame: pd.DataFrame) -> alt.LayerChart:
    names = list(dict.fromkeys(frame["Option"]))
    colours = {**OPTION_COLOURS, "Revenue": "black"}
    colour = alt.Color("Option:N", scale=alt.Scale(domain=names, range=[OKABE_ITO[colours[n]] for n in names]),
                       legend=alt.Legend(orient="bottom", title=None))
    dash = alt.StrokeDash("Option:N", legend=None, scale=alt.Scale(
        domain=names, range=[[1, 0], [6, 3], [2, 2], [8, 2, 2, 2]][:len(names)]))
    x = alt.X("Month:Q", title="Month of serving")
    y = alt.Y("Cumulative cost (USD):Q", title="Cumulative serving cost, USD (lower is better)",
              axis=alt.Axis(format="$~s"))
    tip = [alt.Tooltip("Option:N"), alt.Tooltip("Month:Q"), alt.Tooltip("Cumulative cost (USD):Q", format="$,.0f"),
           alt.Tooltip("P10 (USD):Q", format="$,.0f"), alt.Tooltip("P90 (USD):Q", format="$,.0f")]
    base = alt.Chart(frame.dropna(subset=["Cumulative cost (USD)"]))
    return alt.layer(
        base.mark_area(opacity=0.15).encode(x=x, y="P10 (USD):Q", y2="P90 (USD):Q", color=colour),
        base.mark_line().encode(x=x, y=y, color=colour, strokeDash=dash, tooltip=tip),
    ).properties(height=320)


def totals(frame: pd.DataFrame) -> dict[str, float]:
    """Each option's cumulative cost at the horizon (NaN where it cannot be priced)."""
    last = frame[frame["Month"] == frame["Month"].max()]
    return {row["Option"]: float(row["Cumulative cost (USD)"]) for _, row in last.iterrows()}


def describe_money(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "No month to draw."
    months = int(frame["Month"].max())
    end = totals(frame)
    parts = [f"{name.lower() if name != 'Hosted API' else 'the hosted API'} {fmt.usd(end[name])}"
             for name in OPTIONS if name in end]
    text = (f"Cumulative serving cost, training left out, month by month over {months} months; at the end: "
            + ", ".join(parts))
    if "Revenue" in end:
        text += f"; revenue {fmt.usd(end['Revenue'])} (black line)"
    text += ". Buying pays the GPUs up front and credits their book value in the last month. Shaded: P10-P90."
    if not np.isfinite(end.get("Buy", np.nan)):
        text += " Buying is not priced: give finance.purchase_usd_per_gpu for this accelerator."
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


def traffic_csv(d: Deployment) -> str:
    """The traffic sweep (every figure, one row per request rate) as CSV."""
    return d.traffic.to_csv(index=False)
