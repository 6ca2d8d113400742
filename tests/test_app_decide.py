"""The Decide page through AppTest: the answer first, a budget change moves it, saved scenarios compare, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import page_links
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from app_pages import _decide_inputs as ui  # noqa: E402

APP = str(ROOT / "app.py")
TIMEOUT_S = 60
BUDGET = ui.PREFIX + "decision.budget_usd"


pytestmark = pytest.mark.usefixtures("fresh_caches")  # tests/conftest.py


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()  # the root forwards to the home page, Decide
    assert not at.exception, [e.value for e in at.exception]
    return at


def answer(at: AppTest) -> str:
    return next(h.value for h in at.subheader if "plan" in h.value.lower())


def test_home_is_decide_and_answers_first():
    at = open_page()
    assert at.title[0].value == "Decide"
    text = answer(at)
    assert text.startswith("The best plan within") and "predicted loss" in text
    labels = [m.label for m in at.metric]
    assert {"Total cost", "Predicted loss", "Training time", "Chance over budget"} <= set(labels)


def test_a_budget_change_moves_the_recommendation():
    at = open_page()
    before = answer(at)
    at.number_input(key=BUDGET).set_value(50.0).run()  # million USD
    assert not at.exception
    after = answer(at)
    assert after != before and r"\$50M" in after


def test_cheapest_for_quality_uses_the_target():
    at = open_page()
    at.radio(key=ui.PREFIX + "decision.objective").set_value("cheapest_for_quality").run()
    target = at.number_input(key=ui.PREFIX + "decision.quality_target_loss")
    assert not target.disabled
    target.set_value(2.2).run()
    assert not at.exception
    assert answer(at).startswith("The cheapest plan reaching a loss of 2.200")


def test_an_unreachable_budget_says_what_to_change():
    at = open_page()
    at.number_input(key=BUDGET).set_value(0.0).run()
    assert not at.exception
    assert "raise Budget to at least that" in answer(at).replace("\\", "")


def test_saved_scenarios_compare_by_their_differences():
    at = open_page()
    at.text_input(key="decide.name").set_value("Ten million").run()
    at.button[0].click().run()
    at.number_input(key=BUDGET).set_value(40.0).run()
    assert not at.exception
    assert at.selectbox(key="decide.compare").value == "Ten million"
    frames = [d.value for d in at.dataframe]
    changed = next(f for f in frames if {"Input", "This scenario"} <= set(f.columns))
    assert changed.to_dict("records") == [{"Input": "Budget", "This scenario": "$40M", "Ten million": "$10M"}]
    moved = next(f for f in frames if "Output" in f.columns)
    assert "Total cost" in set(moved["Output"])


def test_downloads_are_offered():
    at = open_page()
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download PDF", "Decision JSON", "Scenario JSON", "Pareto front CSV"]


def open_link(query: dict[str, str]) -> AppTest:
    return page_links.open_link("decide", query, TIMEOUT_S)


def test_a_link_restores_the_question_and_its_answer():
    at = open_page()
    assert page_links.link_of(at) == {}  # the defaults make an empty link
    at.number_input(key=BUDGET).set_value(8.0).run()
    at.selectbox(key=ui.PREFIX + "cluster.accelerator").set_value("A100-80GB-SXM").run()
    at.radio(key=ui.PREFIX + "decision.objective").set_value("cheapest_for_quality").run()
    at.number_input(key=ui.PREFIX + "decision.quality_target_loss").set_value(2.2).run()
    at.text_input(key="decide.name").set_value("Chat model").run()
    assert not at.exception
    query = page_links.link_of(at)
    assert query == {"budget": "8e6", "hw": "A100-80GB-SXM", "obj": "cheapest_for_quality", "qt": "2.2",
                     "name": "Chat model"}
    shared = open_link(query)
    for key in (BUDGET, ui.PREFIX + "cluster.accelerator", ui.PREFIX + "decision.objective",
                ui.PREFIX + "decision.quality_target_loss", "decide.name"):
        assert shared.session_state[key] == at.session_state[key], key
    assert not shared.info  # every parameter was used
    assert answer(shared) == answer(at) and answer(shared).startswith("The cheapest plan reaching a loss of 2.200")
    assert page_links.link_of(shared) == query


def test_a_bad_link_value_is_named_and_the_rest_applies():
    at = open_link({"budget": "lots", "hz": "24", "obj": "cheapest", "gpus": "64", "name": "Plan B"})
    said = at.info[0].value.replace("\\", "")
    assert "Budget (budget=lots): expected a number; kept 10 million USD." in said
    assert "Objective (obj=cheapest): allowed values are" in said
    assert "GPUs (gpus=64): not an input of this page; ignored." in said  # a Train link's parameter
    assert at.number_input(key=BUDGET).value == 10.0
    assert at.number_input(key=ui.PREFIX + "decision.horizon_months").value == 24
    assert at.text_input(key="decide.name").value == "Plan B"
    assert answer(at).startswith("The best plan within $10M".replace("$", "\\$"))
    assert page_links.link_of(at) == {"hz": "24", "name": "Plan B"}  # the address now says what the page shows
