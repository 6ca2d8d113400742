"""Every page speaks the user's words (issue 18, item 4): each page is walked through AppTest over several
scenarios (defaults, the messages users meet first, a saved-scenario comparison, a refused combination) and
everything it renders as text (markdown, captions, alerts, dataframes, metrics, widget labels and options,
expander labels) is searched for dotted registry keys, exponents, raw floats, long dollar figures and NaN.
Help tooltips are left alone: the dotted key may stay there (and in the JSON and the CLI)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import element_tree as et

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from app_pages import _compress_inputs as compress_ui  # noqa: E402
from app_pages import _decide_inputs as decide_ui  # noqa: E402
from app_pages import _deploy_inputs as deploy_ui  # noqa: E402
from report import formatting as fmt  # noqa: E402
from report import messages  # noqa: E402
from simulator.inputs import FIGURES, INPUTS  # noqa: E402

APP = str(ROOT / "app.py")
TIMEOUT_S = 90
KEYS = set(INPUTS) | set(FIGURES)
DOTTED = re.compile(r"(?<![\w.])[a-z][a-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*(?!\w)")
EXPONENT = re.compile(r"\d(?:\.\d+)?[eE][+-]?\d+(?!\d)(?! FLOP)")  # 1.51e+04, 7e10; "4.3e24 FLOP" is the unit's
DECIMAL = re.compile(r"(?<![\w.,])(\d+)\.(\d+)(?![\w.])")
LONG_DOLLARS = re.compile(r"\$\d{1,3}(?:,\d{3}){2,}")  # $156,672,472: a dollar figure says $157M
NOT_A_NUMBER = re.compile(r"(?i)(?<![\w-])(nan|inf)(?![\w-])")
RAW_DIGITS = 7  # significant digits no formatted number shows (a float's repr has 15-17)
# file names and citations that look like keys or long numbers: not values
NOT_VALUES = re.compile(r"arXiv \d+\.\d+|\b[\w-]+\.(json|md|py|csv|pdf)\b")

pytestmark = pytest.mark.usefixtures("fresh_caches")  # tests/conftest.py


def shown_text(node: et.Node) -> Iterator[str]:
    """Every text a user reads on the page (not the help tooltips)."""
    if isinstance(node, et.Block):
        if node.type == "expandable":
            yield node.proto.expandable.label
        for child in node.children.values():
            yield from shown_text(child)
        return
    if isinstance(node, et.Dataframe):
        frame = node.value
        yield from (str(c) for c in frame.columns)
        for row in frame.itertuples(index=False):
            yield from (str(v) for v in row)
    elif isinstance(node, et.Metric):
        yield from (node.label, node.value, node.delta or "")
    elif isinstance(node, et.Widget):
        yield str(node.label)
        yield from (str(o) for o in getattr(node, "options", None) or ())
    elif isinstance(getattr(node, "value", None), str) and not isinstance(node, et.UnknownElement | et.Code):
        yield node.value  # a code block (a fit's formula) is shown as written


def offenders(text: str) -> list[str]:
    """What in one text is not in the user's words."""
    text = NOT_VALUES.sub("", text)
    found = [k for k in DOTTED.findall(text) if k in KEYS]
    found += [m.group(0) for pattern in (EXPONENT, LONG_DOLLARS, NOT_A_NUMBER) for m in pattern.finditer(text)]
    found += [m.group(0) for m in DECIMAL.finditer(text) if len((m.group(1) + m.group(2)).lstrip("0")) >= RAW_DIGITS]
    return found


def check(at: AppTest) -> str:
    """All the page's text; fails with each text that is not in the user's words and what in it is not."""
    assert not at.exception, [e.value for e in at.exception]
    texts = [t for root in (at.main, at.sidebar) for t in shown_text(root)]
    bad = {t[:160]: offenders(t) for t in texts if offenders(t)}
    assert not bad, bad
    return "\n".join(texts).replace("\\", "")


def open_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_checker_catches_what_the_issue_saw():
    seen = ["decision.quality_target_loss: the objective cheapest_for_quality needs a target loss",
            "cluster.gpus = 8", "training.zero_stage = 3", "raise serving.gpus_per_replica",
            "compression.format = fp with 3/16/16 bits", "decision.budget_usd", "8000000.0", "$156,672,472",
            "1.51e+04", "Margin: NaN", "1.86829828995866"]
    assert all(offenders(t) for t in seen), [t for t in seen if not offenders(t)]
    fine = ["Budget = $8M", "4.3e24 FLOP", "0.000258", "1.868 nats/token", "arXiv 2405.21015", "fitted.json",
            "$31,905 per GPU", "2026-09-25", "round-to-nearest"]
    assert not any(offenders(t) for t in fine), [t for t in fine if offenders(t)]


@pytest.mark.parametrize("page", ["decide", "train", "compress", "deploy", "calibrate"])
def test_every_page_opens_in_the_users_words(page):
    check(open_page(page))


def test_decide_cheapest_plan_without_a_target_asks_for_it_in_labels():
    at = open_page("decide")
    at.radio(key=decide_ui.PREFIX + "decision.objective").set_value("cheapest_for_quality").run()
    text = check(at)
    error = " ".join(e.value for e in at.error).replace("\\", "")
    assert "Quality target is empty" in error and "“Cheapest plan that reaches the quality target”" in error
    assert "“Best quality within the budget”" in error
    assert any(h.value.startswith("The best plan within") for h in at.subheader)  # the last answer stays
    assert "the last question these inputs allowed" in text


def test_decide_what_changed_lists_labels_and_values_with_units():
    at = open_page("decide")
    at.number_input(key=decide_ui.PREFIX + "decision.budget_usd").set_value(8.0).run()
    at.text_input(key="decide.name").set_value("Eight").run()
    at.button[0].click().run()
    at.number_input(key=decide_ui.PREFIX + "decision.budget_usd").set_value(5.0).run()
    check(at)
    changed = next(d.value for d in at.dataframe if {"Input", "This scenario"} <= set(d.value.columns))
    assert changed.to_dict("records") == [{"Input": "Budget", "This scenario": "$5M", "Eight": "$8M"}]


def test_decide_an_unreachable_budget_names_the_label_and_short_dollars():
    at = open_page("decide")
    at.number_input(key=decide_ui.PREFIX + "decision.budget_usd").set_value(0.01).run()
    check(at)
    answer = next(h.value for h in at.subheader if h.value.startswith("No plan")).replace("\\", "")
    assert "raise Budget to at least that" in answer
    assert re.search(r"the cheapest feasible plan costs \$\d+(\.\d)?k", answer), answer


def test_train_messages_name_labels():
    at = open_page("train", {"tp": "8", "gpus": "12"})  # 12 GPUs do not split over tp × pp = 8
    check(at)
    error = " ".join(e.value for e in at.error).replace("\\", "")
    assert "GPUs = 12: tp×cp×pp×dp must equal the GPU count" in error
    at = open_page("train", {"sync": "ps", "zero": "3"})
    check(at)
    assert "ZeRO stage = 3: ZeRO shards states" in " ".join(e.value for e in at.error)
    at = open_page("train", {"m": "llama-3-405b", "hw": "A100-40GB", "sgpr": "1"})
    check(at)
    warning = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "raise GPUs per replica" in warning and "Serving: " in warning


def test_train_notes_say_values_by_unit():
    at = open_page("train")
    text = check(at)
    assert "Parameters = 65B: counted from the shape" in text
    assert "Price per GPU-hour = $3.49: the catalog's dated price for the accelerator" in text
    assert "Serving accelerator = H100 SXM5 80GB" in text


def test_compress_refusals_and_tables_in_the_users_words():
    at = open_page("compress")
    at.radio(key=compress_ui.PREFIX + "compression.format").set_value("fp").run()
    at.selectbox(key=compress_ui.PREFIX + "compression.weight_bits").set_value(3).run()
    check(at)
    error = " ".join(e.value for e in at.error).replace("\\", "")
    assert error.startswith("Number format = “floating point” with Weight bits = 3: floating-point numbers exist")
    at.radio(key=compress_ui.PREFIX + "compression.format").set_value("int").run()
    at.selectbox(key=compress_ui.PREFIX + "compression.pruning_method").set_value("wanda").run()
    at.number_input(key=compress_ui.PREFIX + "compression.sparsity").set_value(0.5).run()
    check(at)  # the sparsity table view with its tiny loss increases; the measured and scaling-law tables


def test_deploy_impossible_targets_and_a_quantized_model_in_the_users_words():
    at = open_page("deploy")
    at.number_input(key=deploy_ui.PREFIX + "serving.tpot_target_s").set_value(0.0001).run()
    check(at)
    at.number_input(key=deploy_ui.PREFIX + "serving.tpot_target_s").set_value(0.2).run()
    at.selectbox(key=deploy_ui.PREFIX + "compression.weight_bits").set_value(4).run()
    check(at)


def test_in_words_translates_a_rule_message_once_for_every_page():
    """The one translation point: keys to labels, `key = value` by unit, choice codes to labels, numbers without
    exponents; text that names no registered key is left as written."""
    assert messages.in_words("cluster.gpus = 12: use a multiple of 8") == "GPUs = 12: use a multiple of 8"
    assert messages.in_words("decision.budget_usd = 8000000.0: x") == "Budget = $8M: x"
    assert messages.in_words("model.params = 6.469e+10: counted") == "Parameters = 65B: counted"
    assert messages.in_words("compression.quant_method = rtn with (rtn, gptq, awq)") == (
        "Quantization method = round-to-nearest with (round-to-nearest, GPTQ, AWQ)")
    assert messages.in_words("finance.rent_term = on_demand") == "Rental term = “On demand”"
    assert messages.in_words("Price per GPU-hour (finance.gpu_hour_usd)") == "Price per GPU-hour"
    assert messages.in_words("costs $156,672,472: raise decision.budget_usd") == "costs $157M: raise Budget"
    assert messages.in_words("serving: 1.51e+04 GB do not fit") == "Serving: 15k GB do not fit"
    assert messages.in_words("see docs/compression.md and fitted.json") == "see docs/compression.md and fitted.json"


def test_every_widget_label_says_its_unit():
    """A unit shows beside its label unless the label says it as a word: "Time-to-first-token target (s)" (the
    "s" inside "target" is not the unit), "GPUs per node" (it is)."""
    assert fmt.labelled(INPUTS["serving.ttft_target_s"]) == "Time-to-first-token target (s)"
    assert fmt.labelled(INPUTS["cluster.gpus_per_node"]) == "GPUs per node"
    assert fmt.labelled(INPUTS["model.params"]) == "Parameters (billions)"
    for inp in INPUTS.values():
        unit = inp.widget_unit if inp.scale != 1 else inp.unit
        shown = fmt.labelled(inp)
        assert not unit or f"({unit})" in shown or re.search(rf"\b{re.escape(unit)}\b", inp.label, re.I), inp.key
