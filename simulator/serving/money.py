"""Month-by-month money of serving: rent, buy or a hosted API for a growing traffic, and revenue.

Pure numpy on (rows × months) arrays, every row and month at once (no loop over either); the finance family sums
them into scalars, and a page can chart them. A per-month factor that is the same on every row of a block (traffic
growth, API price decline, discount rate: a sweep seldom varies them) is computed on one row and broadcast.
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


# the columns monthly_flows reads (rows), besides serving.replica_requests_per_s
READS = ("horizon_months", "traffic_growth_per_month", "requests_per_s", "peak_to_average", "gpus_per_replica",
         "serving.replica_requests_per_s", "serving_gpu_hour_usd", "commit_discount", "purchase_usd",
         "interconnect_share", "serving_hw_tdp_W", "server_power_factor", "power_utilization", "pue",
         "electricity_usd_per_kwh", "colocation_usd_per_kw_month", "lifetime_years", "api_price_decline_per_year",
         "prompt_tokens", "api_input_usd_per_million", "output_tokens", "api_output_usd_per_million",
         "revenue_per_million_output_tokens_usd")


def _same_rows(*columns: np.ndarray) -> bool:
    """Every (rows × 1) column holds one value in all rows."""
    return all(c.size > 1 and (c == c.reshape(-1)[0]).all() for c in columns)


def per_month(fn, *columns: np.ndarray) -> np.ndarray:
    """fn(*columns), a (rows × months) array of per-row (rows × 1) columns and the months, computed on one row
    and broadcast (read-only) when every column holds one value in all rows: the same numbers, months × fewer."""
    if _same_rows(*columns):
        one = fn(*(c[:1] for c in columns))
        return np.broadcast_to(one, (columns[0].shape[0], one.shape[1]))
    return fn(*columns)


def power(base: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """base ** exponent for a (rows × 1) base and a (1 × months) exponent (on one row where the rows share it)."""
    return per_month(lambda b: b ** exponent, base)


def monthly_flows(c: Mapping[str, np.ndarray]) -> Monthly:
    """The flows of every row over its horizon (column horizon_months; months past a row's horizon are 0) from the
    serving figures and the finance inputs. Products of per-row factors are taken on the rows before they meet
    the months, so that each flow is one or two passes over the (rows × months) array."""
    col = {k: np.asarray(c[k], dtype=float).reshape(-1, 1) for k in READS}
    horizon = col["horizon_months"]
    months = int(np.nanmax(horizon))
    m = np.arange(months, dtype=float)[None, :]
    whole = bool((horizon == months).all())  # every row runs the longest horizon: nothing to mask

    def within(a: np.ndarray) -> np.ndarray:
        return a if whole else np.where(m < horizon, a, 0.0)

    growth = power(1.0 + col["traffic_growth_per_month"], m)
    rate = col["requests_per_s"] * growth  # average requests/s in month m
    gpus = within(replicas_for(rate * col["peak_to_average"], col["serving.replica_requests_per_s"])
                  * col["gpus_per_replica"])
    rent = gpus * (col["serving_gpu_hour_usd"] * (1.0 - col["commit_discount"]) * HOURS_PER_MONTH)
    owned = within(np.fmax.accumulate(gpus, axis=1))  # bought GPUs are kept when traffic falls
    bought = np.empty_like(owned)  # the GPUs bought at the start of each month: the rise of `owned`
    bought[:, :1] = owned[:, :1]
    np.subtract(owned[:, 1:], owned[:, :-1], out=bought[:, 1:])
    if not whole:
        np.maximum(bought, 0.0, out=bought)  # past the horizon `owned` drops to 0: nothing is bought
    # Cottier et al. 2024: the cluster interconnect is 19% of the hardware cost -> capex = GPU price / (1 - share)
    capex_per_gpu = col["purchase_usd"] / (1.0 - col["interconnect_share"])
    # Cottier et al. 2024: power = TDP × server factor × average draw × PUE; colocation per kW of IT capacity
    kw = col["serving_hw_tdp_W"] * col["server_power_factor"] / 1000.0
    opex = owned * (kw * (col["power_utilization"] * col["pue"] * HOURS_PER_MONTH * col["electricity_usd_per_kwh"]
                          + col["colocation_usd_per_kw_month"]))
    # straight-line book value at the horizon of each month's purchase, credited (sold) at the end
    left = per_month(lambda h, life: np.clip(1.0 - (h - m) / (12.0 * life), 0.0, 1.0), horizon, col["lifetime_years"])
    book = capex_per_gpu[:, 0] * np.einsum("ij,ij->i", bought, left)
    buy = bought * capex_per_gpu + opex
    if whole:
        buy[:, -1] -= book
    else:
        buy -= np.where(m == horizon - 1.0, book[:, None], 0.0)
    served = within(rate) * SECONDS_PER_MONTH  # requests in month m
    price = power(1.0 - col["api_price_decline_per_year"], m / 12.0)
    api = served * ((col["prompt_tokens"] * col["api_input_usd_per_million"]
                     + col["output_tokens"] * col["api_output_usd_per_million"]) / 1e6) * price
    revenue = served * (col["output_tokens"] * col["revenue_per_million_output_tokens_usd"] / 1e6)
    return Monthly(rent, buy, api, revenue, gpus, opex)


def payback_month(upfront: np.ndarray, net: np.ndarray) -> np.ndarray:
    """First month (1-based) at whose end the cumulative net cash covers `upfront`; NaN if not in the horizon."""
    paid = np.cumsum(net, axis=1) >= upfront[:, None]  # cumulative − upfront ≥ 0
    return np.where(paid.any(axis=1), np.argmax(paid, axis=1) + 1.0, np.nan)


def npv(upfront: np.ndarray, net: np.ndarray, rate_per_year: np.ndarray) -> np.ndarray:
    """Net present value: -upfront now, month m's net at its end, discounted at the yearly rate compounded monthly."""
    m = np.arange(1, net.shape[1] + 1, dtype=float)[None, :]
    return -upfront + np.sum(net / power(1.0 + np.asarray(rate_per_year, dtype=float)[:, None], m / 12.0), axis=1)
