"""Finance family: rent (on-demand or committed) vs buy vs a hosted API for the serving traffic, and training plus
serving total cost, payback and NPV over a horizon (simulator/serving/money.py has the month-by-month flows)."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.factored import block_rows
from simulator.registry import Columns, Derived, Family, FieldGroup, FigureSpec, Input, Rule, Section, Steps
from simulator.serving.money import (
    Months,
    api_by_month,
    buy_by_month,
    gpus_by_month,
    npv,
    payback_month,
    rent_by_month,
    revenue_by_month,
    row_sums,
)

DEPLOY = ("rent", "buy", "api")
RENT_TERMS = ("on_demand", "1y", "3y")
# committed-use discounts vs on-demand, median of AWS 41/64%, GCP 37/56%, Azure 25/49% (1 y / 3 y; Epoch, A100 era)
COMMIT_DISCOUNT = np.array([0.0, 0.37, 0.56])

INPUTS = (
    Input("finance.serving_gpu_hour_usd", "float", "Serving price per GPU-hour", "On-demand rent per GPU-hour of "
          "the serving accelerator; empty = the catalog's dated price.", "USD/GPU-hour", 0.0, 10_000.0, link="susd",
          column="serving_gpu_hour_usd", step=0.1, provenance="datasheet",
          spread=0.20,  # assumed, as finance.gpu_hour_usd: prices drift and differ by provider
          derived=Derived("the catalog's dated price of the serving accelerator", lambda c: c["serving_hw_gpu_hour_usd"],
                          ("serving.accelerator",))),
    Input("finance.deploy", "choice", "Deployment", "How the serving GPUs are paid for: rented, bought, or not at "
          "all (a hosted API serves the same tokens). Sets finance.tco_usd, npv_usd and payback_months.",
          choices=DEPLOY, choice_labels={"rent": "Rent", "buy": "Buy", "api": "Hosted API"}, default="rent",
          link="dep", column="deploy"),
    Input("finance.rent_term", "choice", "Rental term", "On demand, or a 1- or 3-year commitment at a discount.",
          choices=RENT_TERMS, choice_labels={"on_demand": "On demand", "1y": "1-year commitment",
                                             "3y": "3-year commitment"}, default="on_demand", link="term",
          column="rent_term"),
    Input("finance.commit_discount", "float", "Committed-use discount", "Discount of the rental term off the "
          "on-demand price; empty = median of AWS, GCP and Azure (Epoch, A100-era data): 37% for 1 year, 56% for 3.",
          "fraction", 0.0, 0.95, link="cd", column="commit_discount", step=0.01, provenance="published",
          derived=Derived("median published discount of the rental term", lambda c: COMMIT_DISCOUNT[
              c["rent_term"].astype(int)], ("finance.rent_term",))),
    Input("finance.purchase_usd_per_gpu", "float", "Purchase price per GPU", "Price of one GPU inside its server "
          "(server price ÷ GPUs); empty = the catalog's dated price for the serving accelerator where it has one.",
          "USD", 1.0, 10_000_000.0, link="buy", column="purchase_usd_per_gpu", step=1000.0,
          absent="the catalog's dated purchase price of the serving accelerator (NaN where it has none)"),
    Input("finance.interconnect_share", "float", "Interconnect share of hardware cost", "Cluster network as a "
          "share of the hardware cost (Cottier et al. 2024: 19%).", "fraction", 0.0, 0.9, default=0.19, link="ic",
          column="interconnect_share", step=0.01, provenance="published"),
    Input("finance.lifetime_years", "float", "Hardware life", "Straight-line depreciation life; unsold value is "
          "credited at the horizon (hyperscalers' server book lives: 5-6 years, 10-K filings 2022-2025).", "years",
          0.5, 20.0, default=5.0, link="life", column="lifetime_years", step=0.5, provenance="published"),
    Input("finance.colocation_usd_per_kw_month", "float", "Colocation per kW-month", "Hosting of owned servers "
          "per kW of IT capacity per month (CBRE, US primary markets, H2 2024: $184).", "USD/kW-month", 0.0,
          10_000.0, default=184.0, link="colo", column="colocation_usd_per_kw_month", step=5.0, provenance="published"),
    Input("finance.api_input_usd_per_million", "float", "API price per 1M input tokens", "Hosted API price of a "
          "comparable model (Together AI, Llama-3.1-70B-Instruct-Turbo, $0.88, 2024-07-23); edit for yours.",
          "USD/1M tokens", 0.0, 10_000.0, default=0.88, link="apin", column="api_input_usd_per_million", step=0.01,
          provenance="published"),
    Input("finance.api_output_usd_per_million", "float", "API price per 1M output tokens", "Hosted API price of a "
          "comparable model (Together AI, Llama-3.1-70B-Instruct-Turbo, $0.88, 2024-07-23); edit for yours.",
          "USD/1M tokens", 0.0, 10_000.0, default=0.88, link="apout", column="api_output_usd_per_million", step=0.01,
          provenance="published"),
    Input("finance.api_price_decline_per_year", "float", "API price decline per year", "Yearly fall of the API "
          "price; about 0.9 (10× a year) at constant capability (a16z, 2024-11); 0 = flat.", "fraction", 0.0, 0.999,
          default=0.0, link="apid", column="api_price_decline_per_year", step=0.05),
    Input("finance.revenue_per_million_output_tokens_usd", "float", "Revenue per 1M output tokens", "What users "
          "pay you per 1M output tokens; 0 = no revenue (costs only).", "USD/1M tokens", 0.0, 100_000.0, default=0.0,
          link="rev", column="revenue_per_million_output_tokens_usd", step=0.1),
    Input("finance.traffic_growth_per_month", "float", "Traffic growth per month", "Monthly growth of the request "
          "rate over the horizon.", "fraction", -0.5, 2.0, default=0.0, link="grow",
          column="traffic_growth_per_month", step=0.01),
    Input("finance.discount_rate_per_year", "float", "Discount rate", "Yearly rate for the net present value "
          "(assumed 10%).", "fraction", 0.0, 1.0, default=0.10, link="dr", column="discount_rate_per_year", step=0.01),
    Input("finance.include_training", "bool", "Include training cost", "Add the training run's rental cost "
          "(training.cost_usd) at month 0 of the total cost, NPV and payback.", default=True, link="itr",
          column="include_training"),
)

F = FigureSpec
FIGURES = (
    F("finance.rent_monthly_usd", "Rent per month", "USD", "serving GPUs × price × (1 − committed discount) × "
      "730.5 h, first month", "lower", ranged=True),
    F("finance.buy_monthly_usd", "Buy per month (amortised)", "USD", "GPUs × price ÷ (1 − interconnect share) ÷ "
      "life + power (TDP × server factor × draw × PUE × electricity) + colocation per kW, first month", "lower",
      ranged=True),
    F("finance.api_monthly_usd", "Hosted API per month", "USD", "tokens × API price per 1M, first month", "lower"),
    F("finance.rent_tco_usd", "Rent: total over the horizon", "USD", "Σ monthly rent + training", "lower",
      ranged=True),
    F("finance.buy_tco_usd", "Buy: total over the horizon", "USD", "Σ purchases + power + colocation − book value "
      "at the horizon + training", "lower", ranged=True),
    F("finance.api_cost_usd", "Hosted API: total over the horizon", "USD",
      "the same traffic's tokens × API prices, falling by the yearly decline (no training)", "lower"),
    F("finance.tco_usd", "Total cost of ownership", "USD", "training + serving over the horizon, for the chosen "
      "deployment", "lower", ranged=True),
    F("finance.revenue_usd", "Revenue over the horizon", "USD", "output tokens × revenue per 1M", "higher"),
    F("finance.margin", "Margin", "fraction", "(revenue − total cost) ÷ revenue; n/a without revenue", "higher"),
    F("finance.npv_usd", "Net present value", "USD", "−training now + Σ (revenue − serving cost) of month m "
      "discounted to its end", "higher", ranged=True),
    F("finance.payback_months", "Payback", "months", "first month whose cumulative revenue − cost covers the "
      "training; n/a when not within the horizon", "lower"),
)


def purchase_usd(c: Columns) -> np.ndarray:
    """Purchase price per GPU: the input, else the catalog's dated price of the serving accelerator (NaN: none)."""
    given = np.asarray(c["purchase_usd_per_gpu"], dtype=float)
    return np.where(np.isfinite(given), given, c["serving_hw_purchase_usd"])


# helper columns of each deployment, whichever the row chose: its total over the horizon, NPV and payback
_TOTAL, _NPV, _PAYBACK = "finance.total_usd.", "finance.npv_usd.", "finance.payback_months."


def _training(c: Columns) -> np.ndarray:
    """The training cost the serving must pay back, where the finance counts it (include_training)."""
    return np.asarray(c.get("training.cost_usd", 0.0), dtype=float).reshape(-1) * (
        np.asarray(c["include_training"]).reshape(-1) > 0)


def _option(c: Columns, t: Months, name: str, cost: np.ndarray) -> dict[str, np.ndarray]:
    """Helper columns of deployment `name` whose flows are `cost` (rows × months): total, NPV, payback."""
    training = _training(c)
    net = revenue_by_month(c, t) - cost
    return {f"{_TOTAL}{name}": row_sums(cost), f"{_NPV}{name}": npv(training, net, c["discount_rate_per_year"]),
            f"{_PAYBACK}{name}": payback_month(training, net)}


MONTH_ROWS = 8192  # a sweep's blocks of the steps with (rows × months) arrays: 8192 × 36 months × 8 B = 2.4 MB

# Each deployment in a step of its own, which reads only its own prices, so that a sweep over the deployment or the
# rental term computes each deployment's months once per combination of what that deployment reads.
@block_rows(MONTH_ROWS)
def _rent(c: Columns) -> dict[str, np.ndarray]:
    t = Months.of(c)
    rent = rent_by_month(c, gpus_by_month(c, t))
    return {"finance.rent_monthly_usd": rent[:, 0]} | _option(c, t, "rent", rent)


@block_rows(MONTH_ROWS)
def _buy(c: Columns) -> dict[str, np.ndarray]:
    t = Months.of(c)
    purchase, gpus = purchase_usd(c), gpus_by_month(c, t)
    buy, opex = buy_by_month(ChainMap({"purchase_usd": purchase}, c), t, gpus)
    capex0 = gpus[:, 0] * purchase / (1.0 - c["interconnect_share"])
    with np.errstate(divide="ignore", invalid="ignore"):
        monthly = capex0 / (12.0 * c["lifetime_years"]) + opex[:, 0]
    return {"finance.buy_monthly_usd": monthly} | _option(c, t, "buy", buy)


@block_rows(MONTH_ROWS)
def _api(c: Columns) -> dict[str, np.ndarray]:
    t = Months.of(c)
    api = api_by_month(c, t)
    return {"finance.api_monthly_usd": api[:, 0]} | _option(c, t, "api", api)


@block_rows(MONTH_ROWS)
def _revenue(c: Columns) -> dict[str, np.ndarray]:
    return {"finance.revenue_usd": row_sums(revenue_by_month(c, Months.of(c)))}


def _chosen(c: Columns) -> dict[str, np.ndarray]:
    """The totals with the training, and the chosen deployment's total, margin, NPV and payback."""
    training = _training(c)
    deploy = np.asarray(c["deploy"]).astype(int)

    def chosen(prefix: str) -> np.ndarray:  # each row's deployment's helper (codes: positions in DEPLOY)
        return np.select([deploy == code for code in range(len(DEPLOY))],
                         [np.asarray(c[f"{prefix}{d}"], dtype=float) for d in DEPLOY], np.nan)

    tco = training + chosen(_TOTAL)
    revenue = c["finance.revenue_usd"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "finance.rent_tco_usd": training + c[f"{_TOTAL}rent"],
            "finance.buy_tco_usd": training + c[f"{_TOTAL}buy"],
            "finance.api_cost_usd": c[f"{_TOTAL}api"],
            "finance.tco_usd": tco,
            "finance.margin": np.where(revenue > 0, (revenue - tco) / revenue, np.nan),
            "finance.npv_usd": chosen(_NPV),
            "finance.payback_months": chosen(_PAYBACK),
        }


run = Steps(_rent, _buy, _api, _revenue, _chosen)


def _buys_without_price(c: Columns) -> np.ndarray:
    return (np.asarray(c["deploy"]) == DEPLOY.index("buy")) & ~np.isfinite(purchase_usd(c))


def _no_price_message(r: Mapping[str, Any]) -> str:
    deploy, price = _INPUT["finance.deploy"], _INPUT["finance.purchase_usd_per_gpu"]
    others = " or ".join(deploy.choice_labels[d] for d in DEPLOY if d != "buy")
    return (f"{deploy.label} is {deploy.choice_labels['buy']}, but the catalog has no purchase price for the serving "
            f"accelerator {r['serving.accelerator']}, so the serving and total costs cannot be computed: give "
            f"{price.label} ({price.unit}), or choose {others}")


_INPUT = {inp.key: inp for inp in INPUTS}
RULES = (
    Rule("finance.purchase_usd_per_gpu", "buying needs a purchase price per GPU", _buys_without_price,
         _no_price_message, "warning", "finance_no_purchase_price"),
)

# the horizon (months the totals, NPV and payback cover) is the question's: decision.horizon_months, column
# `horizon_months`, declared once in simulator/families/decision.py
FIELDS = (
    FieldGroup("deploy", "Money", ("finance.deploy", "finance.rent_term"), order=20),
    FieldGroup("deploy", "Money", ("finance.serving_gpu_hour_usd", "finance.purchase_usd_per_gpu",
                                   "finance.api_input_usd_per_million", "finance.api_output_usd_per_million",
                                   "finance.revenue_per_million_output_tokens_usd", "finance.traffic_growth_per_month",
                                   "finance.include_training"), order=22),
)
SECTIONS = (
    Section(("deploy",), "Money", ("finance.tco_usd", "finance.npv_usd", "finance.payback_months"), headline=True,
            order=2),
)

FAMILY = Family("finance", INPUTS, FIGURES, run, RULES, needs=("cost", "serving"), fields=FIELDS, sections=SECTIONS,
                doc="rent vs buy vs hosted API, total cost over a horizon, margin, NPV and payback")
