"""The Train page through Streamlit's AppTest: renders, reacts, warns, explains errors, reads links."""

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT_S = 60  # first run imports the simulator; a 2-core machine shared with others can be slow


@pytest.fixture(autouse=True)
def _fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()


def run_app(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def sentence(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("#### Training"))


def test_defaults_render_answer_metrics_and_charts():
    at = run_app()
    assert "on 1,024 H100" in sentence(at)
    labels = [m.label for m in at.metric]
    for wanted in ("Time (days)", "Compute cost", "GPU-hours", "MFU", "Energy (MWh)", "Memory (GB)", "Predicted loss"):
        assert wanted in labels
    assert metric(at, "Compute cost").value.startswith("$")
    assert float(metric(at, "Time (days)").value) > 1
    assert metric(at, "Memory (GB)").value.endswith(" / 80")
    assert not at.error
    charts = at.get("vega_lite_chart")
    assert len(charts) == 4  # step breakdown, memory, days and cost against GPU count
    specs = [json.loads(c.proto.spec) for c in charts]
    assert any("shorter is better" in json.dumps(s) for s in specs)
    assert dict(at.query_params) == {}  # defaults make an empty link


def test_more_gpus_finish_sooner_and_the_link_follows():
    at = run_app()
    before = metric(at, "Time (days)").value
    at.number_input(key="cluster.gpus").set_value(2048).run()
    assert not at.exception
    assert metric(at, "Time (days)").value != before
    assert "on 2,048 H100" in sentence(at)
    assert at.query_params["gpus"] == "2048"


def test_more_tokens_cost_more():
    at = run_app()
    before = metric(at, "Compute cost").value
    at.number_input(key="training.tokens_B").set_value(2800).run()
    assert metric(at, "Compute cost").value != before
    assert "on 2.8T tokens" in sentence(at)


def test_pinned_baseline_gives_deltas():
    at = run_app()
    assert not metric(at, "Compute cost").delta
    at.button(key="train.pin").click().run()
    at.number_input(key="cluster.gpus").set_value(512).run()
    wall = metric(at, "Time (days)")
    assert wall.delta and wall.delta.startswith("+")  # half the GPUs: longer
    assert any("cluster.gpus: 1024 → 512" in c.value for c in at.caption)


def test_plan_that_does_not_fit_warns_with_a_way_out():
    at = run_app()
    at.number_input(key="cluster.tp").set_value(1)
    at.number_input(key="cluster.pp").set_value(1)
    at.number_input(key="cluster.gpus").set_value(64).run()
    assert not at.exception
    texts = " ".join(w.value for w in at.warning)
    assert "Does not fit" in texts
    assert "would fit" in texts and "ZeRO stage 3" in texts
    assert "does not fit" in sentence(at)
    assert len(at.metric) == 7  # the figures stay on screen
    apply = next(b for b in at.button if b.label.startswith("Apply:"))
    apply.click().run()  # one click moves the inputs to the suggested plan, and it fits
    assert not at.exception
    assert "Does not fit" not in " ".join(w.value for w in at.warning)
    assert "does not fit" not in sentence(at)


def test_invalid_combination_shows_the_problem_and_keeps_inputs():
    at = run_app()
    at.number_input(key="cluster.tp").set_value(3).run()
    assert not at.exception
    assert at.error, "expected an error message"
    assert "cluster.tp" in at.error[0].value and "heads" in at.error[0].value
    assert at.number_input(key="cluster.tp").value == 3
    assert not at.metric


def test_link_sets_the_scenario():
    at = run_app({"m": "llama2-7b", "gpus": "256", "hw": "A100-80GB-SXM", "tok": "1e12"})
    assert at.selectbox(key="model.preset").value == "llama2-7b"
    assert at.number_input(key="cluster.gpus").value == 256
    assert at.selectbox(key="cluster.accelerator").value == "A100-80GB-SXM"
    assert "on 1T tokens" in sentence(at) and "256 A100" in sentence(at)


def test_bad_link_values_are_explained_and_the_rest_still_applies():
    at = run_app({"gpus": "lots", "tok": "2e12"})
    assert any("gpus=lots" in i.value for i in at.info)
    assert at.number_input(key="cluster.gpus").value == 1024
    assert "on 2T tokens" in sentence(at)


def test_custom_size_derives_a_shape():
    at = run_app()
    at.selectbox(key="model.preset").set_value("custom-size").run()
    at.number_input(key="model.params_B").set_value(13.0).run()
    assert not at.exception
    assert "Training a 13B model" in sentence(at)
    assert at.query_params["m"] == "" and at.query_params["n"] == "1.3e10"


def test_import_of_a_bad_file_says_why():
    at = run_app()
    at.file_uploader(key="train.import").set_value(("broken.json", b"{not json", "application/json")).run()
    assert not at.exception
    assert any("broken.json: not valid JSON" in e.value for e in at.error)
    assert len(at.metric) == 7  # the current plan is untouched


def test_import_of_a_scenario_sets_the_inputs():
    at = run_app()
    scenario = {"model": {"params": 7e9}, "cluster": {"gpus": 64, "tp": 2}, "training": {"tokens": 1e11}}
    at.file_uploader(key="train.import").set_value(("s.json", json.dumps(scenario).encode(), "application/json")).run()
    assert not at.exception
    assert at.number_input(key="cluster.gpus").value == 64
    assert at.selectbox(key="model.preset").value == "custom-size"  # the file gave a size, not a shape
    assert "6.6B model on 100B tokens" in sentence(at)  # the shape derived from 7e9 counts 6.6B
    assert "on 64 H100" in sentence(at)


def test_editing_a_preset_shape_keeps_the_plan_and_a_short_link():
    at = run_app({"m": "llama2-70b", "tok": "2e12"})
    before = sentence(at)
    at.button(key="train.edit_shape").click().run()
    assert at.selectbox(key="model.preset").value == "custom-shape"
    assert sentence(at) == before
    at.number_input(key="model.seq_len").set_value(8192).run()
    assert not at.exception
    assert at.query_params["m"] == "llama2-70b" and at.query_params["seq"] == "8192"
