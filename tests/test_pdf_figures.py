"""One figure, one number: the Deploy PDF's sentence and its table count the same things (serving, then training,
then the total over the horizon), and the Decide PDF gives total cost one P10-P90 range, said to be the Monte
Carlo's as on the page, and the page's count of candidates."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pypdf import PdfReader

from report import decision_charts
from report import formatting as fmt
from report.decision_pdf import decision_pdf
from report.decision_text import MONTE_CARLO, uncertainty_sentence
from report.deploy_pdf import TOTALS, deploy_pdf
from report.deploy_text import answer_sentence
from simulator import Scenario, evaluate
from simulator import deployment as curves
from simulator.decision import decide

CREATED = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
LABEL = "NVIDIA H100 SXM5 80GB"


def flat(text: str) -> str:
    return " ".join(text.split())


def text_of(data: bytes) -> str:
    return flat(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))


@pytest.mark.parametrize("include_training", [True, False])
def test_deploy_sentence_and_table_count_the_same_things(include_training):
    s = Scenario.from_dict({"model": {"preset": "llama-3-70b"}, "serving": {"accelerator": "H100-SXM",
                                                                          "requests_per_s": 20},
                            "finance": {"include_training": include_training}})
    plan = evaluate(s)
    d = curves.deployment(s, plan)
    serving = curves.totals(curves.money_frame(d))
    sentence = answer_sentence(plan, LABEL, serving)
    text = text_of(deploy_pdf(d, LABEL, created=CREATED))
    assert flat(sentence) in text
    training = plan.value("training.cost_usd") if include_training else 0.0
    assert (f"(training, {fmt.usd(training)}, comes on top of renting or buying)" in sentence) == include_training
    for option, key in TOTALS.items():
        assert fmt.usd(serving[option]) in sentence  # the sentence's figure is the table's Serving column
        counted = training if option != "Hosted API" else 0.0
        assert serving[option] + counted == pytest.approx(plan.value(key), rel=1e-9)  # serving + training = total
        chosen = " (chosen)" if option == "Rent" else ""
        row = (f"{option}{chosen} {fmt.usd(serving[option])} {fmt.usd(counted) if option != 'Hosted API' else 'none'}"
               f" {fmt.usd(plan.value(key))}")
        assert row in text, row


@pytest.fixture(scope="module")
def decision():
    """The default search space (thousands of feasible candidates, more than a chart draws)."""
    return decide(Scenario.from_dict({"name": "Chat", "model": {"params": 7e9}, "cluster": {"accelerator": "H100-SXM"},
                                      "serving": {"requests_per_s": 5},
                                      "decision": {"budget_usd": 20e6, "samples": 300, "seed": 0}}))


def test_decide_pdf_gives_total_cost_one_range_the_pages(decision):
    text = text_of(decision_pdf(decision, created=CREATED))
    u, f = decision.uncertainty, decision.recommendation.figures["decision.total_cost_usd"]
    assert flat(uncertainty_sentence(decision)) in text and MONTE_CARLO in uncertainty_sentence(decision)
    drawn = f"{fmt.usd(u.total_cost_usd.p10)}–{fmt.usd(u.total_cost_usd.p90)}"
    assert f"{f.label} {fmt.usd(f.value)} {drawn} {MONTE_CARLO}" in text
    propagated = fmt.span(f.low, f.high, f.unit)
    assert propagated == drawn or propagated not in text


def test_decide_pdf_counts_the_candidates_the_page_draws(decision):
    text = text_of(decision_pdf(decision, created=CREATED))
    frame = decision_charts.pareto_frame(decision)  # the page's frame (app_pages/decide.py)
    caption = decision_charts.describe_pareto(frame, decision_charts.shown_budget(decision), decision.feasible)
    assert flat(caption) in text
    shown = int((frame["Kind"] == "candidate").sum())
    assert f"a sample of {shown:,} of the {decision.feasible:,} feasible candidates" in caption
