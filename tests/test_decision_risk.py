"""A recommendation that respects risk (issue 19, item 6): the recommended plan's chance of going over the budget (or
of missing the quality target), drawn by an independent Monte Carlo, is within the user's tolerance up to sampling
error; a tolerance of 100% is the risk-neutral pick; a stricter tolerance never picks a riskier plan; no plan within
the tolerance says which tolerance and what to change."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from report.decision_text import risk_sentence
from simulator.decision import decide
from simulator.decision.chance import estimate
from simulator.decision.decide import candidates_for, plan_monte_carlo, search_base
from simulator.decision.risk import allowance
from simulator.decision.search import scenario_of
from simulator.decision.space import base_inputs, open_space
from simulator.scenario import Scenario

SMALL = {"model.params": [3e8, 1e9, 3e9, 7e9], "training.tokens": [2e10, 6e10, 2e11, 6e11],
         "cluster.gpus": [8, 64, 512], "cluster.tp": [1, 8], "cluster.pp": [1, 4]}
# a 4-bit plan: the quantization's loss scale is uncertain, so the loss is
QUANTIZED = {"compression": {"weight_bits": 4, "quant_method": "gptq"}}
CHECK_SAMPLES, CHECK_SEED = 4000, 12345  # an independent Monte Carlo: other draws than the decision's own


def _scenario(sections: dict | None = None, **decision: object) -> Scenario:
    return Scenario.from_dict({"model": {"params": 1e9}, **(sections or {}), "decision": decision})


def _independent_chance(d, over_target: bool = False) -> float:
    """The recommended plan's chance, drawn again with other draws than the decision checked it with."""
    s = d.recommendation.scenario
    again = Scenario.from_dict({**s.inputs(), "decision": {**s.inputs()["decision"], "samples": CHECK_SAMPLES,
                                                           "seed": CHECK_SEED}})
    mc = plan_monte_carlo(again, None)
    return mc.prob_over_target if over_target else mc.prob_over_budget


def _within(chance: float, tolerance: float, samples: int) -> bool:
    """Within the tolerance, allowing the decision's own check and this one their sampling error."""
    return chance <= tolerance + allowance(tolerance, samples) + allowance(tolerance, CHECK_SAMPLES)


@pytest.mark.parametrize("budget_usd", [5e6, 8e6, 2e7])
def test_the_recommendation_stays_within_the_budget_tolerance(budget_usd):
    """The issue's cases: on point estimates the best plan within $5M has a 43% chance of going over (50% at $8M)."""
    d = decide(_scenario(budget_usd=budget_usd))
    tolerance = d.scenario.decision.max_prob_over_budget
    assert tolerance == pytest.approx(0.2)  # the default
    assert _within(_independent_chance(d), tolerance, d.uncertainty.samples)
    assert d.risk.confirmed and _within(d.uncertainty.prob_over_budget, tolerance, 0)
    assert d.total_cost_usd <= budget_usd


def test_the_recommendation_stays_within_a_strict_budget_tolerance():
    d = decide(_scenario(budget_usd=8e6, max_prob_over_budget=0.05))
    assert _within(_independent_chance(d), 0.05, d.uncertainty.samples)


def test_the_recommendation_stays_within_the_target_tolerance():
    d = decide(_scenario(QUANTIZED, objective="cheapest_for_quality", quality_target_loss=2.0))
    assert d.risk.bound == "target"
    assert _within(_independent_chance(d, over_target=True), 0.2, d.uncertainty.samples)
    neutral = decide(_scenario(QUANTIZED, objective="cheapest_for_quality", quality_target_loss=2.0,
                               max_prob_over_target=1.0))
    assert _independent_chance(neutral, over_target=True) > 0.3  # the point estimate alone misses it often
    assert d.total_cost_usd >= neutral.total_cost_usd


def test_a_tolerance_of_one_is_the_risk_neutral_pick():
    risky = decide(_scenario(budget_usd=5e6, max_prob_over_budget=1.0))
    assert risky.risk.recommended.choice == risky.risk.neutral.choice
    assert risky.uncertainty.prob_over_budget > 0.3  # the 43%: the point estimate sits near the budget
    safe = decide(_scenario(budget_usd=5e6))
    assert safe.risk.neutral.choice == risky.risk.neutral.choice  # the same risk-neutral pick, kept beside
    assert safe.risk.recommended.choice != safe.risk.neutral.choice
    assert safe.risk.neutral.monte_carlo == pytest.approx(risky.uncertainty.prob_over_budget)


def test_a_tolerance_of_one_agrees_with_brute_force():
    from simulator.sweeps import sweep

    s = _scenario(budget_usd=200_000, samples=200, max_prob_over_budget=1.0)
    d = decide(s, space=SMALL, refine=False)
    frame = sweep(Scenario.from_dict(base_inputs(s)), SMALL)
    ok = frame["valid"] & frame["training.fits_memory"] & (frame["training.wall_days"] <= 120)
    within = frame[ok & (frame["decision.total_cost_usd"] <= 200_000)]
    best = within.sort_values(["quality.loss", "decision.total_cost_usd"]).iloc[0]
    assert d.quality_loss == pytest.approx(best["quality.loss"])
    assert d.total_cost_usd == pytest.approx(best["decision.total_cost_usd"])


@settings(max_examples=12, deadline=None)
@given(st.floats(1e5, 3e7), st.floats(0.01, 0.99), st.floats(0.0, 1.0))
def test_a_stricter_tolerance_never_picks_a_riskier_plan(budget_usd, loose, fraction):
    strict = loose * fraction
    a = decide(_scenario(budget_usd=budget_usd, samples=0, max_prob_over_budget=strict), space=SMALL, refine=False)
    b = decide(_scenario(budget_usd=budget_usd, samples=0, max_prob_over_budget=loose), space=SMALL, refine=False)
    if a.recommendation is None:
        return
    assert b.recommendation is not None  # a looser tolerance finds a plan wherever a stricter one does
    assert a.risk.recommended.estimated <= b.risk.recommended.estimated + 1e-12
    assert a.risk.recommended.estimated <= strict
    assert a.quality_loss >= b.quality_loss - 1e-12  # safety is paid for in quality, never the reverse


def test_no_plan_within_the_tolerance_names_it_and_what_to_change():
    cheapest = decide(_scenario(budget_usd=1e4)).missing.closest["total_cost_usd"]
    d = decide(_scenario(budget_usd=1.05 * cheapest, max_prob_over_budget=0.05))
    assert d.recommendation is None
    reason = d.missing.reason
    assert "Highest chance over budget" in reason and "at most 5%" in reason
    assert "raise the Budget to $" in reason
    assert d.missing.closest is not None
    needed = float(reason.split("raise the Budget to $")[1].split(" ")[0].replace(",", ""))
    assert decide(_scenario(budget_usd=needed, max_prob_over_budget=0.05)).recommendation is not None


def test_no_plan_within_the_target_tolerance_names_it():
    d = decide(_scenario(QUANTIZED, objective="cheapest_for_quality", quality_target_loss=1.95,
                         max_prob_over_target=0.0))
    assert d.recommendation is None
    assert "Highest chance of missing the target" in d.missing.reason and "at most 0%" in d.missing.reason


def test_the_estimate_agrees_with_the_monte_carlo_on_the_front():
    """The chance estimated without a Monte Carlo is within a few points of the Monte Carlo's, point for point."""
    estimated, drawn = [], []
    for budget_usd in (1.4e7, 2e7):
        s = _scenario(budget_usd=budget_usd, samples=2000)
        grid = open_space(s)
        c = candidates_for(s, None, grid)
        ok, cost, _, front = c.view(s.decision.max_training_days)
        searched = base_inputs(s, searched=tuple(grid))
        near = [j for j in front if 0.4 * budget_usd < cost[j] < 2.5 * budget_usd]  # chances from low to high
        choices = [c.choice(int(ok[j])) for j in near[:: max(1, len(near) // 6)]]
        assert len(choices) >= 3
        scenarios = [scenario_of(searched, x) for x in choices]
        estimated += list(estimate(search_base(s, None, tuple(grid)), choices).prob_over_budget(budget_usd))
        drawn += [plan_monte_carlo(x, None).prob_over_budget for x in scenarios]
    assert np.max(np.abs(np.array(estimated) - drawn)) < 0.05, (estimated, drawn)
    assert np.ptp(drawn) > 0.5  # the points span a range of chances, so agreement is no accident


def test_the_json_and_the_sentence_give_both_picks_with_their_chances():
    d = decide(_scenario(budget_usd=5e6))
    risk = d.to_dict()["risk"]
    assert risk["tolerance"] == pytest.approx(0.2)
    assert risk["risk_neutral"]["chance_monte_carlo"] > 0.3 >= risk["recommended"]["chance_monte_carlo"]
    assert risk["recommended"]["total_cost_usd"] == pytest.approx(d.total_cost_usd)
    text = risk_sentence(d)
    assert f"{risk['risk_neutral']['chance_monte_carlo']:.0%} chance" in text and "your limit: 20%" in text
    assert "recommended plan" in text


def test_a_failed_check_steps_to_a_safer_plan():
    """Where the Monte Carlo finds the pick over the tolerance, the next one checked is estimated safer."""
    from simulator.decision import risk as r

    pool = r.Pool([{"i": 0}, {"i": 1}, {"i": 2}], np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]),
                  np.array([0.05, 0.15, 0.18]))
    drawn_chance = {0: 0.04, 1: 0.12, 2: 0.4}  # the best (i = 2) is riskier than estimated

    def draw(choice):
        base = r.MonteCarlo(2000, 0, None, None, drawn_chance[choice["i"]], ())
        return dataclasses.replace(base, prob_over_target=None)

    checks, _ = r.checked_pick(pool, "best_quality_within_budget", 10.0, None, 0.2, draw, r.BUDGET)
    assert [c.choice["i"] for c in checks] == [2, 1]
    assert [c.within for c in checks] == [False, True]


def test_the_page_takes_the_tolerance_from_a_link_and_says_both_picks():
    """The Decide page's tolerance widget comes from its declaration (percent), a link sets it, and the answer is
    followed by the risk-neutral pick and both chances."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the app imports app_pages from the root
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import page_links

    from app_pages import _decide_inputs as ui

    at = page_links.open_link("decide", {"budget": "5000000", "pob": "0.1"}, 120)
    assert not at.exception, [e.value for e in at.exception]
    widget = at.number_input(key=ui.PREFIX + "decision.max_prob_over_budget")
    assert widget.value == pytest.approx(10.0) and "Highest chance over budget" in widget.label
    assert at.number_input(key=ui.PREFIX + "decision.max_prob_over_target").disabled
    said = " ".join(m.value for m in at.markdown)
    assert re.search(r"\d+% chance of going over", said) and "your limit: 10%" in said
    assert page_links.link_of(at)["pob"] == "0.1"
