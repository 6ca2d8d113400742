"""The Deploy page's curves, computed once for the page and its PDF: latency against batch, GPUs and cost against
traffic, and the cumulative cost of renting, buying or a hosted API over the horizon, each with the plan's
P10-P90 band (report.serving_charts draws them).

The numbers come from the simulator's own functions on the scenario's resolved columns: the plan's row and its
P10/P90 moves (simulator.evaluator.perturbations, the rows `evaluate` ranges over), so the bands are the plan's
ranges drawn along each axis. Latency at a batch is one steady step of that batch (simulator.serving); the
traffic axis is a sweep of serving.requests_per_s; the money is simulator.serving.money.monthly_flows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from simulator.catalog import HardwareSpec
from simulator.evaluator import band, perturbations, scenario_rows, scenario_spreads
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
    rows, _ = perturbations(cols, scenario_spreads(scenario, devices))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rows = evaluate_columns(rows)
    rate = scenario.serving.requests_per_s
    grid = np.geomspace(rate / TRAFFIC_SPAN, rate * TRAFFIC_SPAN, TRAFFIC_POINTS)
    grid = np.unique(np.clip([float(f"{v:.4g}") for v in np.append(grid, rate)], RPS_LOW, RPS_HIGH))
    traffic = sweep(scenario, {RPS: [float(v) for v in grid]}, devices, columns=["all"])  # the CSV has every figure
    return Deployment(plan, rows, traffic)


def bands(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    return Replica(**{f.name: np.asarray(getattr(r, f.name), dtype=float).reshape(-1, 1) for f in fields(Replica)})


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
        low, high = bands(np.broadcast_to(matrix, (len(p), len(batches))))
        out.append(pd.DataFrame({"Batch": batches.astype(int), "Latency": name, "Seconds": matrix[0],
                                 "P10 (s)": low, "P90 (s)": high}))
    return pd.concat(out, ignore_index=True)[columns]



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
    low, high = bands(np.asarray(moved["serving.monthly_cost_usd"], dtype=float).reshape(n, len(rates)))
    return pd.DataFrame({"Requests/s": rates, "GPUs": t["serving.gpus"].to_numpy(dtype=float),
                         "Monthly cost (USD)": t["serving.monthly_cost_usd"].to_numpy(dtype=float),
                         "P10 (USD)": low, "P90 (USD)": high,
                         "Per 1M output tokens (USD)": t["serving.cost_per_million_output_tokens_usd"].to_numpy(
                             dtype=float)})



def money_frame(d: Deployment) -> pd.DataFrame:
    """Cumulative serving cost (training left out) of renting, buying and the hosted API at the end of each month
    of the horizon, with the P10-P90 band."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        flows = monthly_flows({**d.rows, "purchase_usd": purchase_usd(d.rows)})
    months = np.arange(1, flows.rent.shape[1] + 1)
    out = []
    for name, matrix in zip(OPTIONS, (flows.rent, flows.buy, flows.api), strict=True):
        total = np.cumsum(matrix, axis=1)
        low, high = bands(total)
        out.append(pd.DataFrame({"Month": months, "Option": name, "Cumulative cost (USD)": total[0],
                                 "P10 (USD)": low, "P90 (USD)": high}))
    if float(d.rows["revenue_per_million_output_tokens_usd"][0]) > 0:
        out.append(pd.DataFrame({"Month": months, "Option": "Revenue",
                                 "Cumulative cost (USD)": np.cumsum(flows.revenue[0]),
                                 "P10 (USD)": np.nan, "P90 (USD)": np.nan}))
    return pd.concat(out, ignore_index=True)



def totals(frame: pd.DataFrame) -> dict[str, float]:
    """Each option's cumulative cost at the horizon (NaN where it cannot be priced)."""
    last = frame[frame["Month"] == frame["Month"].max()]
    return {row["Option"]: float(row["Cumulative cost (USD)"]) for _, row in last.iterrows()}



def traffic_csv(d: Deployment) -> str:
    """The traffic sweep (every figure, one row per request rate) as CSV."""
    return d.traffic.to_csv(index=False)
