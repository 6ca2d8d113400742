"""Month-by-month money of serving: rent, buy or a hosted API for a growing traffic, and revenue.

Pure numpy on (rows × months) arrays, every row and month at once (no loop over either); the finance family sums
them into scalars, and a page can chart them. A per-month factor that is the same on every row of a block (traffic
growth, API price decline, discount rate: a sweep seldom varies them) is computed on one row and broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from simulator.registry import once
from simulator.serving.capacity import replicas_for_load
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


def _col(c: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    return np.asarray(c[key], dtype=float).reshape(-1, 1)


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


@dataclass(frozen=True)
class Months:
    """The months of every row's horizon (column horizon_months): month m is paid at its end; months past a row's
    horizon are 0."""

    horizon: np.ndarray  # (rows × 1)
    m: np.ndarray  # (1 × months): 0, 1, ..., the longest horizon − 1
    whole: bool  # every row runs the longest horizon: nothing to mask

    @classmethod
    def of(cls, c: Mapping[str, np.ndarray]) -> Months:
        def make() -> Months:
            horizon = _col(c, "horizon_months")
            months = int(np.nanmax(horizon))
            return cls(horizon, np.arange(months, dtype=float)[None, :], bool((horizon == months).all()))
        return once(c, "money.months", make)

    def within(self, a: np.ndarray) -> np.ndarray:
        return a if self.whole else np.where(self.m < self.horizon, a, 0.0)


def _grown(t: Months, c: Mapping[str, np.ndarray], per_row: np.ndarray, *per_month: np.ndarray) -> np.ndarray:
    """A per-row (rows × 1) amount in month m, grown by the monthly traffic growth and × any other (1 × months) or
    (rows × months) factors: the month factors are multiplied first, then one pass over (rows × months)."""
    months = power(1.0 + _col(c, "traffic_growth_per_month"), t.m)
    for factor in per_month:
        months = months * factor
    return per_row * months


def gpus_by_month(c: Mapping[str, np.ndarray], t: Months) -> np.ndarray:
    """Serving GPUs in month m: whole replicas for the month's peak (simulator.serving.capacity.replicas_for: the
    peak requests/s ÷ one replica's, rounded up) × GPUs per replica."""
    return once(c, "money.gpus", lambda: _gpus_by_month(c, t))  # shared by the rent and buy steps


def _gpus_by_month(c: Mapping[str, np.ndarray], t: Months) -> np.ndarray:
    load = _col(c, "requests_per_s") * _col(c, "peak_to_average") / _col(c, "serving.replica_requests_per_s")
    gpus = replicas_for_load(_grown(t, c, load))
    gpus *= _col(c, "gpus_per_replica")
    return t.within(gpus)


def rent_by_month(c: Mapping[str, np.ndarray], gpus: np.ndarray) -> np.ndarray:
    """Rented GPUs for the month's peak at the chosen term's price."""
    return gpus * (_col(c, "serving_gpu_hour_usd") * (1.0 - _col(c, "commit_discount")) * HOURS_PER_MONTH)


def buy_by_month(c: Mapping[str, np.ndarray], t: Months, gpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(buy, opex): GPUs bought as the peak grows (capex), their power and colocation, resale at the horizon; and
    of those, the power and colocation alone. Reads column purchase_usd (the price of one GPU)."""
    owned = t.within(np.fmax.accumulate(gpus, axis=1))  # bought GPUs are kept when traffic falls
    bought = np.empty_like(owned)  # the GPUs bought at the start of each month: the rise of `owned`
    bought[:, :1] = owned[:, :1]
    np.subtract(owned[:, 1:], owned[:, :-1], out=bought[:, 1:])
    if not t.whole:
        np.maximum(bought, 0.0, out=bought)  # past the horizon `owned` drops to 0: nothing is bought
    # Cottier et al. 2024: the cluster interconnect is 19% of the hardware cost -> capex = GPU price / (1 - share)
    capex_per_gpu = _col(c, "purchase_usd") / (1.0 - _col(c, "interconnect_share"))
    # Cottier et al. 2024: power = TDP × server factor × average draw × PUE; colocation per kW of IT capacity
    kw = _col(c, "serving_hw_tdp_W") * _col(c, "server_power_factor") / 1000.0
    opex = owned * (kw * (_col(c, "power_utilization") * _col(c, "pue") * HOURS_PER_MONTH
                          * _col(c, "electricity_usd_per_kwh") + _col(c, "colocation_usd_per_kw_month")))
    # straight-line book value at the horizon of each month's purchase, credited (sold) at the end
    left = per_month(lambda h, life: np.clip(1.0 - (h - t.m) / (12.0 * life), 0.0, 1.0), t.horizon,
                     _col(c, "lifetime_years"))
    book = capex_per_gpu[:, 0] * np.einsum("ij,ij->i", bought, left)
    buy = bought * capex_per_gpu + opex
    if t.whole:
        buy[:, -1] -= book
    else:
        buy -= np.where(t.m == t.horizon - 1.0, book[:, None], 0.0)
    return buy, opex


def api_by_month(c: Mapping[str, np.ndarray], t: Months) -> np.ndarray:
    """The requests of month m through the hosted API, at a price falling by the yearly decline."""
    per_request = (_col(c, "prompt_tokens") * _col(c, "api_input_usd_per_million")
                   + _col(c, "output_tokens") * _col(c, "api_output_usd_per_million")) / 1e6
    decline = power(1.0 - _col(c, "api_price_decline_per_year"), t.m / 12.0)
    return t.within(_grown(t, c, _col(c, "requests_per_s") * SECONDS_PER_MONTH * per_request, decline))


def revenue_by_month(c: Mapping[str, np.ndarray], t: Months) -> np.ndarray:
    """The requests of month m × output tokens × revenue per 1M output tokens."""
    def make() -> np.ndarray:
        per_request = _col(c, "output_tokens") * _col(c, "revenue_per_million_output_tokens_usd") / 1e6
        return t.within(_grown(t, c, _col(c, "requests_per_s") * SECONDS_PER_MONTH * per_request))
    return once(c, "money.revenue", make)  # shared by every deployment's step


def monthly_flows(c: Mapping[str, np.ndarray]) -> Monthly:
    """The flows of every row over its horizon from the serving figures and the finance inputs (column
    purchase_usd: the price of one GPU). Products of per-row factors are taken on the rows before they meet the
    months, so that each flow is one or two passes over the (rows × months) array."""
    t = Months.of(c)
    gpus = gpus_by_month(c, t)
    buy, opex = buy_by_month(c, t, gpus)
    return Monthly(rent_by_month(c, gpus), buy, api_by_month(c, t), revenue_by_month(c, t), gpus, opex)


def row_sums(flows: np.ndarray) -> np.ndarray:
    """Σ over the months of each row (a matrix-vector product: a few times faster than a sum along the rows)."""
    return flows @ np.ones(flows.shape[1])


def payback_month(upfront: np.ndarray, net: np.ndarray) -> np.ndarray:
    """First month (1-based) at whose end the cumulative net cash covers `upfront`; NaN if not in the horizon."""
    paid = np.cumsum(net, axis=1) >= np.asarray(upfront).reshape(-1, 1)  # cumulative − upfront ≥ 0
    first = np.argmax(paid, axis=1)
    return np.where(paid[np.arange(paid.shape[0]), first], first + 1.0, np.nan)


def npv(upfront: np.ndarray, net: np.ndarray, rate_per_year: np.ndarray) -> np.ndarray:
    """Net present value: -upfront now, month m's net at its end, discounted at the yearly rate compounded monthly."""
    m = np.arange(1, net.shape[1] + 1, dtype=float)[None, :]
    rate = np.asarray(rate_per_year, dtype=float).reshape(-1, 1)
    if rate.size == 1 or _same_rows(rate):  # one rate for every row: a matrix-vector product
        return -upfront + net @ (1.0 / (1.0 + rate[0, 0]) ** (m[0] / 12.0))
    return -upfront + np.einsum("ij,ij->i", net, 1.0 / (1.0 + rate) ** (m / 12.0))
