"""Finance family: rent, buy, API, TCO, NPV and payback against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.catalog import load_catalog
from simulator.evaluator import evaluate
from simulator.inputs import INPUTS
from simulator.scenario import Scenario
from simulator.serving.money import npv, payback_month

HPM = 730.5  # hours per month, 365.25 × 24 / 12
SPM = HPM * 3600


def _plan(finance: dict, serving: dict | None = None):
    finance = dict(finance)
    horizon = finance.pop("horizon_months", None)  # the question's horizon: decision.horizon_months
    return evaluate(Scenario.from_dict({"model": {"preset": "llama-3-8b"},
                                        "serving": {"accelerator": "H100-SXM", "requests_per_s": 10, **(serving or {})},
                                        "finance": finance,
                                        **({"decision": {"horizon_months": horizon}} if horizon else {})}))


def test_rent_tco_and_committed_discount():
    plan = _plan({"horizon_months": 12, "include_training": False, "rent_term": "1y", "serving_gpu_hour_usd": 2.0})
    gpus = plan.figures["serving.gpus"].value
    assert plan.figures["finance.rent_monthly_usd"].value == pytest.approx(gpus * 2.0 * 0.63 * HPM)
    assert plan.figures["finance.tco_usd"].value == pytest.approx(12 * gpus * 2.0 * 0.63 * HPM)


def test_buy_by_hand():
    f = {"horizon_months": 24, "include_training": False, "deploy": "buy", "purchase_usd_per_gpu": 30_000,
         "interconnect_share": 0.2, "lifetime_years": 4, "colocation_usd_per_kw_month": 200,
         "electricity_usd_per_kwh": 0.1, "pue": 1.2, "power_utilization": 0.5, "server_power_factor": 2.0}
    plan = _plan(f)
    g = plan.figures["serving.gpus"].value
    capex = g * 30_000 / 0.8
    kw = g * 700 * 2.0 / 1000  # H100 SXM TDP 700 W
    opex_month = kw * (0.5 * 1.2 * HPM * 0.1 + 200)
    book = capex * (1 - 24 / 48)  # half the 4-year life left at 24 months
    assert plan.figures["finance.buy_tco_usd"].value == pytest.approx(capex + 24 * opex_month - book)
    assert plan.figures["finance.buy_monthly_usd"].value == pytest.approx(capex / 48 + opex_month)
    assert plan.figures["finance.tco_usd"].value == plan.figures["finance.buy_tco_usd"].value


def test_api_cost_and_decline():
    plan = _plan({"horizon_months": 24, "api_input_usd_per_million": 1.0, "api_output_usd_per_million": 3.0,
                  "api_price_decline_per_year": 0.5}, {"prompt_tokens": 1000, "output_tokens": 200})
    month = 10 * SPM * (1000 * 1.0 + 200 * 3.0) / 1e6
    expected = month * sum(0.5 ** (m / 12) for m in range(24))
    assert plan.figures["finance.api_monthly_usd"].value == pytest.approx(month)
    assert plan.figures["finance.api_cost_usd"].value == pytest.approx(expected)


def test_npv_and_payback_by_hand():
    net = np.array([[100.0, 100.0, 100.0, 100.0]])
    assert payback_month(np.array([250.0]), net)[0] == 3
    assert math.isnan(payback_month(np.array([500.0]), net)[0])
    r = 0.12
    expected = -250 + sum(100 / (1 + r) ** (m / 12) for m in range(1, 5))
    assert npv(np.array([250.0]), net, np.array([r]))[0] == pytest.approx(expected)


def test_revenue_pays_back_the_training():
    plan = _plan({"horizon_months": 60, "revenue_per_million_output_tokens_usd": 20.0, "discount_rate_per_year": 0.0})
    train = plan.figures["training.cost_usd"].value
    rent = plan.figures["finance.rent_monthly_usd"].value
    revenue = 10 * SPM * 200 * 20.0 / 1e6  # default 200 output tokens per request
    months = math.ceil(train / (revenue - rent))
    payback = plan.figures["finance.payback_months"].value
    assert payback == months if months <= 60 else math.isnan(payback)
    assert plan.figures["finance.npv_usd"].value == pytest.approx(-train + 60 * (revenue - rent))


def test_growth_never_lowers_cost():
    flat = _plan({"horizon_months": 12})
    grow = _plan({"horizon_months": 12, "traffic_growth_per_month": 0.1})
    assert grow.figures["finance.rent_tco_usd"].value >= flat.figures["finance.rent_tco_usd"].value
    assert grow.figures["finance.api_cost_usd"].value > flat.figures["finance.api_cost_usd"].value


def test_no_purchase_price_gives_nan_buy():
    plan = evaluate(Scenario.from_dict({"model": {"preset": "llama-3-8b"}, "serving": {"accelerator": "L40S"}}))
    assert math.isnan(plan.figures["finance.buy_tco_usd"].value)
    assert math.isfinite(plan.figures["finance.rent_tco_usd"].value)


UNPRICED = [spec.id for spec in load_catalog().values() if spec.purchase_usd is None]


def test_seven_catalog_accelerators_have_no_purchase_price():
    assert len(UNPRICED) == 7, UNPRICED  # the case below covers every one of them


@pytest.mark.parametrize("accelerator", UNPRICED)
def test_buying_without_a_price_warns_and_asks_for_it(accelerator):
    """deploy = buy where the catalog has no purchase price: the total cost is NaN, and a warning says so and asks
    for the input by its label (the buy plan is still planned: training, rent and API stay finite)."""
    plan = _plan({"deploy": "buy"}, {"accelerator": accelerator})
    assert math.isnan(plan.figures["finance.tco_usd"].value)
    assert math.isfinite(plan.figures["finance.rent_tco_usd"].value)
    found = [w for w in plan.warnings if w.code == "finance_no_purchase_price"]
    assert len(found) == 1 and found[0].key == "finance.purchase_usd_per_gpu"
    text = found[0].text
    assert INPUTS["finance.purchase_usd_per_gpu"].label in text and accelerator in text
    assert "Rent or Hosted API" in text and "finance." not in text


def test_a_given_price_or_another_deployment_needs_no_warning():
    for finance in ({"deploy": "buy", "purchase_usd_per_gpu": 25_000}, {"deploy": "rent"}, {"deploy": "api"}):
        plan = _plan(finance, {"accelerator": "L40S"})
        assert "finance_no_purchase_price" not in plan.warning_codes(), finance
        assert math.isfinite(plan.figures["finance.tco_usd"].value), finance
