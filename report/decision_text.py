"""The decision in words: the question and the answer as sentences, shared by the Decide page and its PDF."""

from __future__ import annotations

from typing import Any

from report import formatting as fmt
from report import messages

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
        return f"No plan answers this question: {messages.in_words(decision.missing.reason)}."
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


def architecture_sentence(decision: Any) -> str:
    """"Dense or mixture-of-experts, each architecture's best plan by its point estimate: the best dense plan (55B
    parameters) reaches a loss of 1.891 for $3.8M; the best mixture-of-experts plan (64 experts, 32B active of 182B
    parameters) reaches a loss of 1.893 for $4.6M. The recommended plan above is dense." (The recommendation itself
    may be a safer plan than the point-estimate best: the risk sentence.) Empty where the search held one
    architecture."""
    kinds = getattr(decision, "architectures", ())
    if not kinds:
        return ""
    parts = []
    for k in kinds:
        if k.pick is None:
            parts.append(f"no {k.name} plan meets it")
            continue
        experts = k.pick.choice.get("model.moe_experts")
        size = ""
        if k.params is not None:
            total, active = k.params
            size = (f" ({int(experts)} experts, {fmt.short(active)} active of {fmt.short(total)} parameters)" if experts
                    else f" ({fmt.short(total)} parameters)")
        parts.append(f"the best {k.name} plan{size} reaches a loss of {fmt.loss(k.pick.quality_loss)} for "
                     f"{fmt.usd(k.pick.total_cost_usd)}")
    verdict = f" The recommended plan above is {decision.architecture}." if decision.architecture else ""
    return ("Dense or mixture-of-experts, each architecture's best plan by its point estimate: " + "; ".join(parts)
            + "." + verdict)


def uncertainty_sentence(decision: Any) -> str:
    """"Total cost P10-P90 (Monte Carlo, 2,000 draws): $6.2M-$10M, median $8M; about a 12% chance of going over
    budget." The one range of total cost the page and the PDF give (the PDF's key figures use the same)."""
    u = decision.uncertainty
    if u is None:
        return messages.in_words("No Monte Carlo was run (decision.samples = 0).")
    c = u.total_cost_usd
    chance = u.prob_over_budget
    risk = ("almost no chance" if chance < 0.005 else f"about a {fmt.pct(chance)} chance" if chance < 0.995
            else "almost certainly going")
    over = "of going over budget" if chance < 0.995 else "over budget"
    return (f"Total cost P10-P90 ({MONTE_CARLO}, {u.samples:,} draws): {fmt.usd(c.p10)}-{fmt.usd(c.p90)}, median "
            f"{fmt.usd(c.p50)}; {risk} {over}.")


def risk_sentence(decision: Any) -> str:
    """How the recommendation respects the user's tolerance, beside the plan picked on its predicted values alone:
    "The best plan within $5M by its point estimate costs $4.7M but has a 43% chance of going over $5M; the
    recommended plan ($3.9M) has 13% (your limit: 20%)." Empty without a plan. Chances are the Monte Carlo's where
    it was drawn, else estimated (and said so)."""
    risk = getattr(decision, "risk", None)
    if risk is None:
        return ""
    rec, neutral = risk.recommended, risk.neutral
    drawn = rec.monte_carlo is not None

    def chance(c: Any, article: bool = True) -> str:
        """"a 13% chance" (or "13%" without the article), "almost no chance" ("almost none") below 0.5%."""
        p = c.monte_carlo if c.monte_carlo is not None else c.estimated
        if p < 0.005:
            return "almost no chance" if article else "almost none"
        return f"a {fmt.pct(p)} chance" if article else fmt.pct(p)

    event = (f"going over {fmt.usd(decision.budget_usd)}" if risk.bound == "budget"
             else f"a loss above {fmt.loss(decision.target_loss)}")
    how = "" if drawn else "estimated, no Monte Carlo was run; "
    limit = f"({how}your limit: {fmt.pct(risk.tolerance)})"
    if risk.tolerance >= 1.0:
        return (f"Picked on predicted values alone (a limit of 100%): the plan has {chance(rec)} of "
                f"{event}{' (' + how.removesuffix('; ') + ')' if how else ''}.")
    if not risk.differs:
        text = f"The recommended plan has {chance(rec)} of {event} {limit}."
    else:
        lead = ("The best plan within " + fmt.usd(decision.budget_usd) if risk.bound == "budget"
                else f"The cheapest plan reaching a loss of {fmt.loss(decision.target_loss)}")
        text = (f"{lead} by its point estimate costs {fmt.usd(neutral.total_cost_usd)} (loss "
                f"{fmt.loss(neutral.quality_loss)}) but has {chance(neutral)} of {event}; the recommended "
                f"plan ({fmt.usd(rec.total_cost_usd)}, loss {fmt.loss(rec.quality_loss)}) has {chance(rec, False)} {limit}.")
    if drawn and not risk.confirmed:
        text += (f" No plan the Monte Carlo checked ({len(risk.checks)}) stayed within your limit; this is the "
                 "safest of them: raise the budget or the limit for a plan within it.")
    return text


def risk_method(decision: Any) -> str:
    """How the risk-aware pick was made, for the PDF's method list ("" without one)."""
    risk = getattr(decision, "risk", None)
    if risk is None:
        return ""
    event = "going over the budget" if risk.bound == "budget" else "a loss above the quality target"
    checks = "; ".join(f"{fmt.usd(c.total_cost_usd)} estimated {fmt.pct(c.estimated)}"
                       + ("" if c.monte_carlo is None else f", Monte Carlo {fmt.pct(c.monte_carlo)}")
                       for c in risk.checks)
    return (f"Risk: the recommended plan is the best one whose chance of {event} is at most "
            f"{fmt.pct(risk.tolerance)}. The chance of every Pareto-front plan (and of the refinement around the "
            "pick) is estimated from each uncertain input moved alone to its P10 and P90 (its effect taken as linear "
            "on each side of the plan, summed over the Monte Carlo's own draws, correlations as calibrated); the pick is then drawn by the Monte Carlo and, where its "
            "chance exceeds the limit by more than two standard errors, the next safer plan is drawn instead. "
            f"Plans checked: {checks}.")
