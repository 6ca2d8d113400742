"""The Deploy page through AppTest (the answer first, traffic moves the GPUs, impossible targets say what to change,
downloads offered) and its PDF read back with pypdf (title, answer, the three charts)."""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
from pathlib import Path

import page_links
import pypdf
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from app_pages import _deploy_inputs as ui  # noqa: E402
from app_pages._registry_widgets import EMPTY  # noqa: E402
from report import deploy_text as text  # noqa: E402
from report.deploy_pdf import deploy_pdf  # noqa: E402
from simulator import deployment as curves  # noqa: E402
from simulator.evaluator import evaluate  # noqa: E402
from simulator.scenario import Scenario  # noqa: E402

APP = str(ROOT / "app.py")
TIMEOUT_S = 60
RPS = ui.PREFIX + "serving.requests_per_s"
TPOT = ui.PREFIX + "serving.tpot_target_s"


pytestmark = pytest.mark.usefixtures("fresh_caches")  # tests/conftest.py


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.switch_page("app_pages/deploy.py").run()  # straight to the page: the home page's search is not needed
    assert not at.exception, [e.value for e in at.exception]
    return at


def answer(at: AppTest) -> str:
    return next(h.value for h in at.subheader if h.value.startswith("Serving")).replace("\\$", "$")


def gpus(at: AppTest) -> int:
    shown = next(m.value for m in at.metric if m.label == "Serving GPUs")
    return int(shown.split()[0].replace(",", ""))


def test_the_answer_comes_first_with_metrics():
    at = open_page()
    assert at.title[0].value == "Deploy"
    text_ = answer(at)
    assert text_.startswith("Serving 1 requests/s of Llama 3 70B within 200 ms per token takes")
    assert "per 1M output tokens; over 36 months serving alone costs $" in text_
    labels = {m.label for m in at.metric}
    assert {"Serving GPUs", "Time to first token", "Time per output token", "Cost per 1M output tokens"} <= labels
    assert any(c.value.startswith("P10–P90") for c in at.caption)
    assert len(at.get("vega_lite_chart")) == 4  # latency, money, and the two traffic charts


def test_more_traffic_takes_more_gpus():
    at = open_page()
    before = gpus(at)
    at.number_input(key=RPS).set_value(100.0).run()
    assert not at.exception
    assert gpus(at) > before
    assert "Serving 100 requests/s" in answer(at)


def test_revenue_gives_a_payback_sentence():
    at = open_page()
    at.number_input(key=ui.PREFIX + "finance.revenue_per_million_output_tokens_usd").set_value(50.0).run()
    assert not at.exception
    assert re.search(r"renting (pays back in \d+ months|does not pay back within 36 months)", answer(at))
    assert "Payback" in {m.label for m in at.metric}


def test_impossible_targets_say_what_to_change():
    at = open_page()
    at.number_input(key=TPOT).set_value(0.001).run()
    assert not at.exception
    text_ = answer(at)
    assert "is not possible as set" in text_ and "add GPUs per replica" in text_ and "faster accelerator" in text_
    assert not at.metric


def test_a_model_that_does_not_fit_says_what_to_change():
    at = open_page()
    at.selectbox(key=ui.PREFIX + "model.preset").set_value("llama-3-405b").run()
    at.number_input(key=ui.PREFIX + "serving.gpus_per_replica").set_value(1).run()
    assert not at.exception
    text_ = answer(at)
    assert "do not fit" in text_ and "raise GPUs per replica" in text_ and "serving." not in text_


def test_fewer_weight_bits_quantize_and_need_fewer_gpus():
    """Lowering the bits with the method left alone quantizes by the registry's auto rule, said on the page as on
    Compress: the method's list opens on "auto", which names what it stands for now."""
    at = open_page()
    before = gpus(at)
    method = at.selectbox(key=ui.PREFIX + "compression.quant_method")
    assert method.value == EMPTY and method.options[0] == "auto"
    at.selectbox(key=ui.PREFIX + "compression.weight_bits").set_value(4).run()
    assert not at.exception and not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "Auto: now round-to-nearest, following weight bits and activation bits." in captions
    assert ("Quantization method on auto: fewer than 16 bits are quantized by round-to-nearest; choose GPTQ, AWQ, "
            "SmoothQuant, quantization-aware training instead under More settings.") in captions
    assert gpus(at) < before
    auto = answer(at)
    at.selectbox(key=ui.PREFIX + "compression.quant_method").set_value("rtn").run()
    assert answer(at) == auto  # auto is round-to-nearest, number for number
    assert "Quantization method on auto" not in " ".join(c.value for c in at.caption)


def test_a_refused_combination_keeps_the_last_answer_below_its_message():
    at = open_page()
    last = answer(at)
    at.radio(key=ui.PREFIX + "compression.format").set_value("fp").run()
    at.selectbox(key=ui.PREFIX + "compression.weight_bits").set_value(5).run()  # no FP5 format
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Number format = “floating point” with Weight bits = 5: floating-point numbers exist" in errors
    assert "compression." not in errors
    assert any("the last plan these inputs allowed" in w.value for w in at.warning)
    assert answer(at) == last and at.metric


def test_downloads_are_offered():
    at = open_page()
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download PDF", "Scenario JSON", "Plan JSON", "Traffic sweep CSV"]


def test_pdf_reads_back_with_title_answer_and_three_charts():
    s = Scenario.from_dict({"name": "Chat 東京", "model": {"preset": "llama-3-8b"},
                            "serving": {"accelerator": "h100-sxm", "requests_per_s": 5}})
    plan = evaluate(s)
    d = curves.deployment(s, plan)
    label = "NVIDIA H100 SXM5 80GB"
    pdf = pypdf.PdfReader(io.BytesIO(deploy_pdf(d, label, created=dt.datetime(2026, 1, 2))))
    assert pdf.metadata.title == "Chat 東京"
    body = " ".join(page.extract_text() for page in pdf.pages)
    sentence = text.answer_sentence(plan, label, curves.totals(curves.money_frame(d)))
    assert sentence.split(",")[0] in " ".join(body.split())
    assert "Latency against batch" in body and "Rent, buy or a hosted API over time" in body
    assert sum(len(page.images) for page in pdf.pages) == 3


def _deployment(**serving):
    s = Scenario.from_dict({"model": {"preset": "llama-3-8b"}, "serving": {"accelerator": "h100-sxm", **serving},
                            "finance": {"include_training": False}})
    plan = evaluate(s)
    return plan, curves.deployment(s, plan)


def test_chart_frames_agree_with_the_plan():
    plan, d = _deployment(requests_per_s=5)
    end = curves.totals(curves.money_frame(d))  # the money chart ends where the finance totals do
    assert end["Rent"] == pytest.approx(plan.value("finance.rent_tco_usd"))
    assert end["Buy"] == pytest.approx(plan.value("finance.buy_tco_usd"))
    assert end["Hosted API"] == pytest.approx(plan.value("finance.api_cost_usd"))
    traffic = curves.traffic_frame(d)  # more traffic never takes fewer GPUs; the plan's rate is on the axis
    assert traffic["GPUs"].is_monotonic_increasing
    assert traffic.loc[traffic["Requests/s"] == 5, "GPUs"].iloc[0] == plan.value("serving.gpus")
    latency = curves.latency_frame(d)  # a bigger batch is never faster; bands hold the value
    for _, curve in latency.groupby("Latency"):
        assert curve["Seconds"].is_monotonic_increasing
        assert (curve["P10 (s)"] <= curve["Seconds"] + 1e-12).all() and (curve["Seconds"] <= curve["P90 (s)"] + 1e-12).all()
    run = plan.value("serving.batch_run")  # the batch run is the largest meeting the time-per-token target
    tpot = latency[latency["Latency"] == "Time per output token"].set_index("Batch")["Seconds"]
    assert tpot[int(run)] <= plan.scenario.serving.tpot_target_s


def open_link(query: dict[str, str]) -> AppTest:
    return page_links.open_link("deploy", query, TIMEOUT_S)


def test_a_link_restores_the_deployment_and_its_answer():
    at = open_page()
    assert page_links.link_of(at) == {}  # the defaults make an empty link
    at.selectbox(key=ui.PREFIX + "model.preset").set_value(EMPTY).run()  # "Custom size (parameters)"
    at.number_input(key=ui.PREFIX + "model.params").set_value(13.0).run()
    at.selectbox(key=ui.PREFIX + "compression.weight_bits").set_value(4).run()
    at.selectbox(key=ui.PREFIX + "serving.accelerator").set_value("H200").run()
    at.number_input(key=RPS).set_value(10.0).run()
    at.number_input(key=ui.PREFIX + "serving.batch").set_value(32).run()
    at.text_input(key=ui.PREFIX + "name").set_value("Support bot").run()
    assert not at.exception
    query = page_links.link_of(at)
    assert query == {"m": "", "n": "1.3e10", "wb": "4", "sacc": "H200", "rps": "10", "sb": "32", "name": "Support bot"}
    shared = open_link(query)
    for key in ("model.preset", "model.params", "compression.weight_bits", "serving.accelerator",
                "serving.requests_per_s", "serving.batch", "name"):
        assert shared.session_state[ui.PREFIX + key] == at.session_state[ui.PREFIX + key], key
    assert not shared.info  # every parameter was used
    assert answer(shared) == answer(at) and answer(shared).startswith("Serving 10 requests/s of a 13B model")
    assert page_links.link_of(shared) == query


def test_a_bad_link_value_is_named_and_the_rest_applies():
    at = open_link({"wb": "7", "rps": "-1", "tok": "1e12", "sb": "max", "ttft": "5", "ab": ""})
    said = at.info[0].value.replace("\\", "")
    assert "Weight bits (wb=7): this page offers 16, 8, 6, 5, 4, 3, 2, 1; kept 16 bits." in said
    assert "Requests per second (rps=-1): must be between" in said and "kept 1 requests/s." in said
    assert "Training tokens (tok=1e12): not an input of this page; ignored." in said  # a Train link's parameter
    assert "Activation bits (ab=): this page has no empty choice for it; kept 16 bits." in said
    assert at.selectbox(key=ui.PREFIX + "compression.weight_bits").value == 16
    assert at.number_input(key=ui.PREFIX + "serving.ttft_target_s").value == 5.0
    assert at.number_input(key=ui.PREFIX + "serving.batch").value is None  # "max", the default, shown empty
    assert page_links.link_of(at) == {"ttft": "5"}
