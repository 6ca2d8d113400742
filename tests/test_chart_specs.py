"""Chart specs that can be read whole (report/*_charts.py): an impossible latency target draws only what it can
(no NaN or null reaches a chart, and the words say why), the two latency targets are labelled on opposite sides
of their rules, long titles come in lines that fit a narrow column, and legends wrap by the plot's width.

The browser test (tests/test_browser_charts.py) checks the drawn result; these check the specs the pages and the
PDFs share."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from report import charts, compression_charts, decision_charts, scaling_law_charts, serving_charts
from simulator import compression_curves as predicted
from simulator import deployment as curves
from simulator.evaluator import evaluate
from simulator.scenario import Scenario

IMPOSSIBLE = {"ttft_target_s": 0.05, "tpot_target_s": 0.05}  # below one request's prefill: no batch meets them


def _deployment(**serving: float) -> tuple[Scenario, curves.Deployment]:
    scenario = Scenario.from_dict({"model": {"preset": "llama-3-70b"}, "serving": serving})
    return scenario, curves.deployment(scenario, evaluate(scenario))


@pytest.fixture(scope="module")
def impossible() -> tuple[Scenario, curves.Deployment]:
    return _deployment(**IMPOSSIBLE)


def _rows(spec: Any) -> Iterator[dict[str, Any]]:
    """Every data row anywhere in a Vega-Lite spec (named datasets and inline values, in layers and concats)."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "datasets":
                for rows in value.values():
                    yield from rows
            elif key == "values" and isinstance(value, list):
                yield from (row for row in value if isinstance(row, dict))
            else:
                yield from _rows(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from _rows(item)


def _missing(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows that carry a null or a non-finite number (drawn as NaN, or as an empty domain's 0.000000)."""
    return [row for row in _rows(spec)
            if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in row.values())]


def _impossible_specs(impossible) -> dict[str, dict[str, Any]]:
    scenario, d = impossible
    s, rate = scenario.serving, scenario.serving.requests_per_s
    latency, traffic, money = (curves.latency_frame(d), curves.traffic_frame(d),
                               curves.money_frame(d))
    chosen = d.plan.value("serving.batch_run")
    return {
        "latency": serving_charts.latency_chart(latency, s.ttft_target_s, s.tpot_target_s, chosen).to_dict(),
        "traffic GPUs": serving_charts.traffic_gpus_chart(traffic, rate).to_dict(),
        "traffic cost": serving_charts.traffic_cost_chart(traffic, rate).to_dict(),
        "traffic (PDF)": serving_charts.traffic_chart(traffic, rate).to_dict(),
        "money": serving_charts.money_chart(money).to_dict(),
    }


def test_an_impossible_target_puts_no_nan_on_any_chart(impossible):
    assert not math.isfinite(impossible[1].plan.value("serving.gpus"))  # the case: nothing can be served
    for name, spec in _impossible_specs(impossible).items():
        json.dumps(spec, allow_nan=False)  # no NaN in the spec itself
        assert _missing(spec) == [], name


def test_an_impossible_target_draws_the_traffic_charts_as_a_reason(impossible):
    scenario, d = impossible
    traffic = curves.traffic_frame(d)
    assert not serving_charts.traffic_served(traffic)
    for chart in (serving_charts.traffic_gpus_chart, serving_charts.traffic_cost_chart):
        spec = chart(traffic, scenario.serving.requests_per_s).to_dict()
        assert "x" not in spec.get("encoding", {}) and "layer" not in spec  # no axes over an empty domain
        assert [row["Text"] for row in _rows(spec)] == ["No request rate here can be served as set (the answer "
                                                        "above says what to change)."]
    words = serving_charts.describe_traffic(traffic, scenario.serving.requests_per_s)
    assert words.startswith("No chart of GPUs or cost against traffic")


def test_an_option_that_cannot_be_priced_leaves_the_money_chart_and_is_explained(impossible):
    money = curves.money_frame(impossible[1])
    spec = serving_charts.money_chart(money).to_dict()
    colour = next(layer["encoding"]["color"] for layer in spec["layer"] if "color" in layer["encoding"])
    assert colour["scale"]["domain"] == ["Hosted API"]  # rent and buy have no line, so no legend entry
    words = serving_charts.describe_money(money)
    assert "Renting and buying are not drawn: this traffic cannot be served as set" in words
    assert "n/a" not in words and "nan" not in words.lower()


def _target_labels(spec: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """Each latency target's label on the chart: its text -> (baseline, dy) of the mark that draws it."""
    out = {}
    for layer in spec["layer"]:
        mark = layer["mark"] if isinstance(layer["mark"], dict) else {"type": layer["mark"]}
        if mark["type"] != "text":
            continue
        data = layer.get("data", {})
        for row in spec.get("datasets", {}).get(data.get("name"), data.get("values", [])):
            if "target" in str(row.get("Text", "")):
                out[row["Text"]] = (mark.get("baseline", "middle"), mark.get("dy", 0))
    return out


@pytest.mark.parametrize(("ttft_s", "tpot_s"), [(0.05, 0.05), (2.0, 0.2), (0.1, 0.12)])
def test_the_two_latency_targets_are_labelled_on_opposite_sides(ttft_s, tpot_s):
    _, d = _deployment(ttft_target_s=ttft_s, tpot_target_s=tpot_s)
    spec = serving_charts.latency_chart(curves.latency_frame(d), ttft_s, tpot_s,
                                        d.plan.value("serving.batch_run")).to_dict()
    labels = _target_labels(spec)
    assert len(labels) == 2
    ttft = next(text for text in labels if text.startswith("time-to-first-token target"))
    tpot = next(text for text in labels if text.startswith("time-per-token target"))
    higher, lower = (ttft, tpot) if ttft_s >= tpot_s else (tpot, ttft)
    assert labels[higher][0] == "bottom" and labels[higher][1] < 0  # above its rule
    assert labels[lower][0] == "top" and labels[lower][1] > 0  # below its rule
    assert all(re.search(r"\d (ms|s)$", text) for text in labels)  # each says its unit


def _axis_titles(spec: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(spec, dict):
        for channel in ("x", "y"):
            encoding = spec.get("encoding", {}).get(channel)
            if isinstance(encoding, dict) and encoding.get("title"):
                yield channel, encoding["title"]
        for value in spec.values():
            yield from _axis_titles(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from _axis_titles(item)


def test_long_axis_titles_come_in_lines_that_fit_a_narrow_column(impossible):
    scenario, d = _deployment()
    quant = predicted.quant_frame(scenario)
    prune = predicted.prune_frame(scenario)
    specs = {
        "bits": compression_charts.quant_chart(quant).to_dict(),
        "sparsity": compression_charts.prune_chart(prune).to_dict(),
        "law": scaling_law_charts.law_chart(scaling_law_charts.law_frame(None)).to_dict(),
        "latency": serving_charts.latency_chart(curves.latency_frame(d), 2.0, 0.2, 8.0).to_dict(),
        "tornado": decision_charts.tornado_spec(decision_charts.tornado_frame(_no_decision()), 1e7),
        **_impossible_specs(impossible),
    }
    for name, spec in specs.items():
        for channel, title in _axis_titles(spec):
            lines = [title] if isinstance(title, str) else title
            most = charts.TITLE_CHARS if channel == "x" else charts.Y_TITLE_CHARS
            assert all(len(line) <= most for line in lines), (name, channel, title)


LONG_NAME = "Failures per 1,000 GPU-days (goodput.failures_per_1k_gpu_days)"  # a tornado input, key and all


def _no_decision() -> Any:
    """A decision with one uncertain input of a long name, as tornado_frame reads it."""
    swing = SimpleNamespace(label=LONG_NAME, cost_low_usd=9e6, cost_high_usd=1.1e7, cost_swing_usd=2e6, loss_low=2.0,
                            loss_high=2.0, spread=0.3)
    return SimpleNamespace(sensitivity=[swing])


def test_a_long_input_name_on_the_tornado_is_broken_into_lines_not_cut():
    spec = decision_charts.tornado_spec(decision_charts.tornado_frame(_no_decision()), 1e7)
    label = spec["datasets"]["bars"][0]["Label"]
    assert all(len(line) <= decision_charts.TORNADO_LABEL_CHARS for line in label.split("\n"))
    assert label.replace("\n", "").replace(" ", "") == LONG_NAME.replace(" ", "")
    axis = spec["layer"][0]["encoding"]["y"]["axis"]
    assert axis["labelLimit"] == 0 and "split(datum.label" in axis["labelExpr"]  # drawn whole, line by line


def test_every_uncertain_input_name_fits_the_tornados_fixed_band():
    """The tornado's band per bar is fixed (so a new plan swaps its data); every name an uncertain column can have
    (a device's spread on either accelerator, an input with a spread, a model-error term) fits its lines."""
    from simulator import model_error
    from simulator.catalog import SPREAD_LABELS
    from simulator.inputs import INPUTS
    from simulator.resolve import DEVICE_INPUTS

    names = ([f"{v} ({d.label.lower()})" for v in SPREAD_LABELS.values() for d in DEVICE_INPUTS]
             + [i.label for i in INPUTS.values() if i.spread] + [d.label for d in model_error.DECLARED])
    most = max(len(decision_charts._wrapped(name).split("\n")) for name in names)
    assert most <= decision_charts.TORNADO_MAX_LINES
    spec = decision_charts.tornado_spec(decision_charts.tornado_frame(_no_decision()), 1e7)
    assert spec["height"] == {"step": decision_charts.TORNADO_STEP_PX}
    assert most * spec["layer"][0]["encoding"]["y"]["axis"]["labelLineHeight"] <= decision_charts.TORNADO_STEP_PX


def test_title_lines_break_at_spaces_and_keep_every_word():
    text = "Sparsity, share of weights removed (more to the right)"
    lines = charts.title_lines(text)
    assert isinstance(lines, list) and " ".join(lines) == text
    assert all(len(line) <= charts.TITLE_CHARS for line in lines)
    assert charts.title_lines("Month of serving") == "Month of serving"
    assert charts.title_lines("a_very_long_identifier_of_forty_characters", 20) == [
        "a_very_long_identifi", "er_of_forty_characte", "rs"]


def test_a_legend_takes_as_many_columns_as_the_plot_holds_and_never_cuts_a_label():
    spec = charts.legend(column_px=170, most_columns=3).to_dict()
    assert spec["columns"] == {"expr": "clamp(floor(width / 170), 1, 3)"}
    assert spec["labelLimit"] == 0 and spec["orient"] == "bottom"


def test_a_page_spec_fits_the_width_and_grows_with_its_legend():
    page = charts.for_page({"mark": "point", "height": 240})
    assert page["autosize"] == {"type": "fit-x", "contains": "padding"} and page["height"] == 240
    assert "bottom" not in page["padding"]  # Streamlit adds its own below
