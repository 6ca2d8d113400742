"""The deployment in words: the Deploy page's answer as one sentence, shared by the page and its PDF. Every
number comes from the plan's figures or from the rent / buy / API totals of simulator.deployment.money_frame."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from report import formatting as fmt
from report import messages
from simulator.families.serving import RULES as SERVING_RULES
from simulator.inputs import INPUTS

PAYERS = {"rent": "renting", "buy": "buying", "api": "the hosted API"}
SERVING_BY_OPTION = (("Rent", "rented"), ("Buy", "bought"), ("Hosted API", "through the hosted API"))
# the serving family's warnings: each says why the deployment cannot be served as set, and what to change
SERVING_WARNINGS = tuple(r.code for r in SERVING_RULES if r.severity == "warning")


def model_name(scenario: Any) -> str:
    """"Llama 3 70B" for a preset (its label without the counted size), else "a 7B model"."""
    preset = scenario.model.preset
    if preset:
        return str(INPUTS["model.preset"].choice_labels.get(preset, preset)).split(" (")[0]
    size = fmt.short(scenario.model.params)
    return f"{fmt.article(size)} {size} model"


def serving_problem(plan: Any) -> str | None:
    """The serving warning's message (what to change) when the deployment cannot be served as set."""
    for w in plan.warnings:
        if w.code in SERVING_WARNINGS:
            return messages.in_words(w.text.removeprefix("serving: "))
    return None


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def money_clause(plan: Any, totals: Mapping[str, float]) -> str:
    """"buying pays back in 9 months" with revenue, else what serving costs over the horizon rented, bought and
    through the API (the money chart's end), and the training cost the rent and buy totals add."""
    s = plan.scenario
    months = s.decision.horizon_months
    payer = PAYERS[s.finance.deploy]
    if s.finance.deploy == "buy" and not _finite(plan.value("finance.buy_tco_usd")):
        return (f"buying is not priced for this accelerator (no catalog purchase price): give "
                f"finance.purchase_usd_per_gpu, or rent ({fmt.usd(totals.get('Rent', float('nan')))} of serving "
                f"over {months} months)")
    if s.finance.revenue_per_million_output_tokens_usd > 0:
        payback = plan.value("finance.payback_months")
        if _finite(payback):
            return f"{payer} pays back in {fmt.count(payback)} month{'' if payback == 1 else 's'}"
        return (f"{payer} does not pay back within {months} months (net present value "
                f"{fmt.usd(plan.value('finance.npv_usd'))})")
    parts = [f"{fmt.usd(totals.get(key, float('nan')))} {how}" for key, how in SERVING_BY_OPTION]
    text = f"over {months} months serving alone costs {', '.join(parts[:-1])} or {parts[-1]}"
    training = counted_training_usd(plan)
    if training > 0:
        text += f" (training, {fmt.usd(training)}, comes on top of renting or buying)"
    return text


def counted_training_usd(plan: Any) -> float:
    """The training cost the rent and buy totals over the horizon count (0 when finance.include_training is off)."""
    if not plan.scenario.finance.include_training:
        return 0.0
    training = plan.figures.get("training.cost_usd")
    return float(training.value) if training is not None and _finite(training.value) else 0.0


def answer_sentence(plan: Any, serving_hardware_label: str, totals: Mapping[str, float]) -> str:
    """"Serving 20 requests/s of Llama 3 70B within 200 ms per token takes 16 H100 SXM5 80GB, $3.9 per 1M output
    tokens; over 36 months serving alone costs $1.8M rented, $693k bought or $2M through the hosted API
    (training, $10M, comes on top of renting or buying)." The money counts what the money chart draws (serving
    only); the training it leaves out is said, so that the totals over the horizon (serving + training) add up."""
    s = plan.scenario
    lead = (f"Serving {fmt.plain(s.serving.requests_per_s)} requests/s of {model_name(s)} within "
            f"{fmt.seconds(s.serving.tpot_target_s)} per token")
    problem = serving_problem(plan)
    if problem is not None:
        return f"{lead} is not possible as set: {problem}."
    gpus = plan.value("serving.gpus")
    per_million = plan.value("serving.cost_per_million_output_tokens_usd")
    return (f"{lead} takes {fmt.on_gpus(gpus, serving_hardware_label)}, {fmt.usd(per_million)} per 1M output "
            f"tokens; {money_clause(plan, totals)}.")
