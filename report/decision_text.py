"""The decision in words: the question and the answer as sentences, shared by the Decide page and its PDF."""

from __future__ import annotations

from typing import Any

from report import formatting as fmt

MONTE_CARLO = "Monte Carlo"  # how the page and the PDF name the ranges drawn jointly (decision.samples draws)
PROPAGATED = "propagated"  # ... and those of one input at a time, combined as independent (the plan's P10-P90)


def question_sentence(decision: Any) -> str:
    s = decision.scenario
    horizon = f"{s.decision.horizon_months} months"
    if decision.objective == "cheapest_for_quality":
        return (f"What is the cheapest plan that reaches a predicted loss of {fmt.loss(decision.target_loss)}, "
                f"counting training and {horizon} of serving?")
    return (f"What model, data and cluster give the best predicted quality for {fmt.usd(decision.budget_usd)}, "
            f"counting training and {horizon} of serving?")


def answer_sentence(decision: Any) -> str:
    """"Within $10M, train a 56B model on 6.8T tokens with 512 H100 SXM5 80GB in 106 days ..." """
    if decision.recommendation is None:
        return f"No plan answers this question: {fmt.in_words(decision.missing.reason)}."
    plan = decision.recommendation
    s = plan.scenario
    lead = ("The best plan within " + fmt.usd(decision.budget_usd) if decision.objective != "cheapest_for_quality"
            else f"The cheapest plan reaching a loss of {fmt.loss(decision.target_loss)}")
    model = f"{fmt.article(fmt.short(s.model.params))} {fmt.short(s.model.params)} model"
    text = (f"{lead} trains {model} on {fmt.short(s.training.tokens)} tokens with "
            f"{fmt.on_gpus(s.cluster.gpus, plan.hardware_label)} in {fmt.days(plan.value('training.wall_days'))} "
            f"for {fmt.usd(plan.value('decision.total_cost_usd'))} in all")
    serving = plan.value("decision.serving_cost_usd")
    if serving > 0:
        text += (f" ({fmt.usd(plan.value('training.cost_usd'))} training, {fmt.usd(serving)} serving over "
                 f"{s.decision.horizon_months} months)")
    return text + f", reaching a predicted loss of {fmt.loss(plan.value('quality.loss'))}."


def uncertainty_sentence(decision: Any) -> str:
    """"Total cost P10-P90 (Monte Carlo, 2,000 draws): $6.2M-$10M, median $8M; about a 12% chance of going over
    budget." The one range of total cost the page and the PDF give (the PDF's key figures use the same)."""
    u = decision.uncertainty
    if u is None:
        return fmt.in_words("No Monte Carlo was run (decision.samples = 0).")
    c = u.total_cost_usd
    chance = u.prob_over_budget
    risk = ("almost no chance" if chance < 0.005 else f"about a {fmt.pct(chance)} chance" if chance < 0.995
            else "almost certainly going")
    over = "of going over budget" if chance < 0.995 else "over budget"
    return (f"Total cost P10-P90 ({MONTE_CARLO}, {u.samples:,} draws): {fmt.usd(c.p10)}-{fmt.usd(c.p90)}, median "
            f"{fmt.usd(c.p50)}; {risk} {over}.")
