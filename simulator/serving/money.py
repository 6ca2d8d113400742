"""Month-by-month money of serving: rent, buy or a hosted API for a growing traffic, and revenue.

Pure numpy on (rows × months) arrays; the finance family sums them into scalars, and a page can chart them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from simulator.serving.capacity import replicas_for
from simulator.serving.constants import HOURS_PER_MONTH, SECONDS_PER_MONTH


@dataclass(frozen=True)
class Monthly:
    """(rows × months) flows in USD; month m is paid at its end."""

    rent: np.ndarray      # rented GPUs for the month's peak, at the chosen term's price
    buy: np.ndarray       # GPUs bought as the peak grows (capex), their power and colocation, resale at the end
    api: np.ndarray       # the same tokens through the hosted API, at a price falling by the yearly decline
    revenue: np.ndarray   # output tokens × revenue per 1M output tokens
    gpus: np.ndarray      # serving GPUs needed in the month
    opex: np.ndarray      # of the bought GPUs: power and colocation


def monthly_flows(c: Mapping[str, np.ndarray]) -> Monthly:
    """The flows of every row over its horizon (column horizon_months; months past a row's horizon are 0) from the
    serving figures and the finance inputs."""
    col = {k: np.asarray(v, dtype=float)[:, None] for k, v in c.items() if np.ndim(v) == 1}
    horizon = col["horizon_months"]
    m = np.arange(int(np.nanmax(horizon)), dtype=float)[None, :]
    within = m < horizon
    growth = (1.0 + col["traffic_growth_per_month"]) ** m
    rate = col["requests_per_s"] * growth  # average requests/s in month m
    gpus = replicas_for(rate * col["peak_to_average"], col["serving.replica_requests_per_s"]) * col["gpus_per_replica"]
    rent = gpus * col["serving_gpu_hour_usd"] * (1.0 - col["commit_discount"]) * HOURS_PER_MONTH
    gpus = np.where(within, gpus, 0.0)
    rent = np.where(within, rent, 0.0)
    owned = np.where(within, np.fmax.accumulate(gpus, axis=1), 0.0)  # bought GPUs are kept when traffic falls
    bought = np.maximum(np.diff(owned, axis=1, prepend=0.0), 0.0)
    # Cottier et al. 2024: the cluster interconnect is 19% of the hardware cost -> capex = GPU price / (1 - share)
    capex_per_gpu = col["purchase_usd"] / (1.0 - col["interconnect_share"])
    # Cottier et al. 2024: power = TDP × server factor × average draw × PUE; colocation per kW of IT capacity
    kw = col["serving_hw_tdp_W"] * col["server_power_factor"] / 1000.0
    opex = owned * kw * (col["power_utilization"] * col["pue"] * HOURS_PER_MONTH * col["electricity_usd_per_kwh"]
                         + col["colocation_usd_per_kw_month"])
    life_months = 12.0 * col["lifetime_years"]
    # straight-line book value at the horizon of each month's purchase, credited (sold) at the end
    book = np.sum(bought * capex_per_gpu * np.clip(1.0 - (horizon - m) / life_months, 0.0, 1.0), axis=1,
                  keepdims=True)
    buy = bought * capex_per_gpu + opex - np.where(m == horizon - 1.0, book, 0.0)
    seconds = np.where(within, rate, 0.0) * SECONDS_PER_MONTH
    price = (1.0 - col["api_price_decline_per_year"]) ** (m / 12.0)
    api = seconds * (col["prompt_tokens"] * col["api_input_usd_per_million"]
                     + col["output_tokens"] * col["api_output_usd_per_million"]) / 1e6 * price
    revenue = seconds * col["output_tokens"] * col["revenue_per_million_output_tokens_usd"] / 1e6
    return Monthly(rent, buy, api, revenue, gpus, opex)


def payback_month(upfront: np.ndarray, net: np.ndarray) -> np.ndarray:
    """First month (1-based) at whose end the cumulative net cash covers `upfront`; NaN if not in the horizon."""
    cumulative = np.cumsum(net, axis=1) - upfront[:, None]
    paid = cumulative >= 0.0
    return np.where(paid.any(axis=1), np.argmax(paid, axis=1) + 1.0, np.nan)


def npv(upfront: np.ndarray, net: np.ndarray, rate_per_year: np.ndarray) -> np.ndarray:
    """Net present value: -upfront now, month m's net at its end, discounted at the yearly rate compounded monthly."""
    m = np.arange(1, net.shape[1] + 1, dtype=float)[None, :]
    return -upfront + np.sum(net / (1.0 + rate_per_year[:, None]) ** (m / 12.0), axis=1)
