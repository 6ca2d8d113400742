"""Compress: what do quantization and pruning do to my model's size, speed and quality, predicted at LLM scale and
measured on small models?"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import _chart_specs as specs
from app_pages import _compress_inputs as ui
from app_pages import _page_link as link
from app_pages._devices import session_devices
from app_pages._last_answer import answer_or_last
from app_pages._metric_cells import metric_cells
from app_pages._ranges import spread_table
from app_pages._registry_widgets import main_rows, more_settings
from app_pages._sections import show_sections
from app_pages._train_data import device_key
from report import compression_charts as charts
from report import compression_text as text
from report import formatting as fmt
from report import messages, ranges_text
from report import scaling_law_charts as laws
from report.charts import for_page
from report.formatting import md_escape
from simulator import compression_curves as predicted
from simulator import presentation
from simulator.devices import all_devices
from simulator.evaluator import evaluate
from simulator.plan import Plan
from simulator.scenario import Scenario

METRICS = (  # figure key, metric label
    ("compression.model_bytes", "Model size"), ("compression.decode_speedup", "Decode speed-up"),
    ("compression.prefill_speedup", "Prefill speed-up"), ("quality.loss_delta", "Loss increase (nats)"),
    ("quality.ppl_ratio", "Perplexity ratio"))
SMALL_MODEL = ui.SMALL_MODEL
LAST_VALID = "compress.last_valid"  # the inputs of the last plan made: shown under an error

# Each chart's alt text says what it shows and never its numbers (its caption has them): Streamlit's frontend keys a
# chart on its alt text too, and one that changes with the inputs rebuilds the chart on every rerun instead of
# swapping its data (docs/benchmarks.md, "Browser rerun"; tests/test_page_speed.py).
ALT = {
    "quant": "Line chart: predicted perplexity ratio against weight bits, one line per quantization method with its "
             "P10-P90 band, this plan marked.",
    "prune": "Line chart: predicted loss increase against sparsity, one line per pruning method with its P10-P90 "
             "band, this plan marked.",
    "measured": "Line chart: a small model's measured quality against {}, one line per method.",
    "law": "Line chart: loss against parameters (log scale) for the measured and the published scaling laws, the "
           "measured runs as points.",
}


def md(s: str) -> str:
    return md_escape(s)


@st.cache_data(show_spinner=False, max_entries=64)
def _plan(data_json: str, device_ids: Any, _devices: Any) -> Plan:
    return evaluate(Scenario.from_dict(json.loads(data_json), _devices), _devices)


@st.cache_data(show_spinner=False, max_entries=64)
def _frames(data_json: str, device_ids: Any, _devices: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    scenario = Scenario.from_dict(json.loads(data_json), _devices)
    return predicted.quant_frame(scenario, _devices), predicted.prune_frame(scenario, _devices)


def question() -> dict[str, Any]:
    st.title("Compress")
    st.caption("What do fewer bits and pruning do to this model's size, decode and prefill speed on the serving "
               "accelerator, and its quality? Predicted at LLM scale from published laws, beside what the "
               "calibration measured on small models.")
    link.open_link(ui.LINK)
    top = st.columns([2.2, 1, 1, 2])
    with top[0]:
        model = ui.model_inputs()
    values: dict[str, Any] = {}
    with top[1]:
        values["training.tokens"] = ui.widget("training.tokens")
    with top[3]:
        values["serving.accelerator"] = ui.serving_accelerator()
    values |= ui.widgets(ui.MAIN)
    main_rows(presentation.other_main_groups(ui.PAGE, ui.LAID_OUT), values, ui.one)
    more_settings(presentation.more_groups(ui.PAGE, ui.LAID_OUT), values, ui.one)
    return ui.scenario_data(model, values)


def device_name(plan: Plan) -> str:
    spec = all_devices(session_devices()).get(plan.scenario.serving.accelerator or plan.scenario.cluster.accelerator)
    return fmt.hardware_name(spec.display_name) if spec is not None else str(plan.scenario.serving.accelerator)


def _help(plan: Plan, key: str) -> str:
    f = plan.figures[key]
    return f"{f.label}: {f.source} · {f.provenance}"


def metrics(plan: Plan) -> None:
    ratio = plan.value("compression.size_ratio")
    with metric_cells(len(METRICS)) as cells:
        for column, (key, label) in zip(cells, METRICS, strict=True):
            f = plan.figures[key]
            value = text.figure_text(f.value, f.unit)
            change = None
            if key == "compression.model_bytes":
                change = fmt.delta(ratio, 1.0, fmt.pct, relative=False)
                change = f"{change} vs 16-bit" if change else None
            elif key == "quality.loss_delta":  # the unit is in the label: a metric's value stays short
                value = value.removesuffix(" nats/token")
                value = "+" + value if f.value > 0 else value
            column.metric(label, value, change, delta_color="inverse", help=_help(plan, key))
            if key == "compression.model_bytes":
                column.caption(f"{fmt.plain(1 / ratio)}× smaller than 16-bit dense" if ratio < 0.995 else
                               "as large as 16-bit dense")
            else:
                span = text.span_text(f)
                column.caption(f"P10–P90 {span}" if span else "no spread at this point (batch 1 decode is "
                               "memory-bound)" if key == "compression.decode_speedup" else "no spread")
    st.caption(md(text.ranges_text(plan)))


def warnings(plan: Plan) -> None:
    for warning in text.warning_texts(plan):
        st.warning(md(warning), icon=":material/warning:")


RATIOS = {"Perplexity ratio": "ratio", "P10": "ratio", "P90": "ratio"}  # table views' units, by column
SHARES = {"Sparsity": "fraction"}
COUNTS = {"Params": "params", "Tokens": "tokens"}


def _table(title: str, frame: pd.DataFrame, units: dict[str, str] | None = None) -> None:
    with st.expander(f"Table view: {title}"):
        st.dataframe(fmt.table_text(frame, units), hide_index=True, width="stretch")


def predicted_bits(quant: pd.DataFrame) -> None:
    st.markdown("**Predicted for this model: perplexity against weight bits**")
    if quant.empty:
        st.info(charts.describe_quant(quant))
        return
    st.vega_lite_chart(for_page(specs.spec(charts.quant_chart, quant)), width="stretch", alt=ALT["quant"])
    st.caption(md(charts.describe_quant(quant)))
    _table("predicted perplexity by bits and method", quant, RATIOS)


def predicted_sparsity(prune: pd.DataFrame) -> None:
    st.markdown("**Predicted for this model: loss increase against sparsity**")
    if prune[~prune["This plan"]].empty:
        st.info(charts.describe_prune(prune))
        return
    st.vega_lite_chart(for_page(specs.spec(charts.prune_chart, prune)), width="stretch", alt=ALT["prune"])
    st.caption(md(charts.describe_prune(prune)))
    _table("predicted loss increase by sparsity and method", prune, SHARES)


def measured(found: tuple[dict[str, Any], Any, str] | None, family: str, model_name: str | None) -> None:
    what = "weight bits" if family == "bits" else "sparsity"
    st.markdown(f"**Measured on a small model: quality against {what}**")
    if found is None or model_name is None:
        st.info("No calibration profile at hand has quality curves; run `python -m calibration quality` "
                "(docs/calibration.md) and make its profile active on the Calibrate page.")
        return
    profile, section, _ = found
    y_name = charts.main_metric(section, model_name)
    title = charts.measured_title(profile, section, model_name)
    frame = charts.measured_frame(section, model_name, family, y_name)
    if frame.empty:
        st.info(f"The profile has no {what} curve for {md(model_name)}.")
        return
    st.vega_lite_chart(for_page(specs.spec(charts.measured_chart, frame, y_name, title)), width="stretch",
                       alt=ALT["measured"].format(what))
    st.caption(md(charts.describe_measured(frame, y_name, title)))
    _table(f"{title}, {what}", frame, SHARES)


def quality(quant: pd.DataFrame, prune: pd.DataFrame, found: tuple[dict[str, Any], Any, str] | None) -> None:
    st.subheader("Quality: predicted for this model, measured on small models")
    model_name = None
    if found is not None:
        _, section, source = found
        names = list(section.models)
        if SMALL_MODEL not in st.session_state or st.session_state[SMALL_MODEL] not in names:
            st.session_state[SMALL_MODEL] = names[0]
        model_name = st.radio("Small model measured", names, key=SMALL_MODEL, horizontal=True,
                              format_func=lambda n: f"{n} ({section.models[n].get('task', '')})",
                              help="Small models trained, compressed and measured with k-fold cross-validation by "
                                   "the quality calibration (docs/calibration.md, \"Quality calibration\").")
        st.caption(md(f"Two different scales, side by side: on the left the prediction for this model (published "
                      f"laws with fitted constants; below 125M parameters blended towards the shipped small LM's "
                      f"measured curves, docs/compression.md); on the right small models measured by {source}, "
                      f"whose curves show the shape of the degradation, not this model's numbers."))
    left, right = st.columns(2)
    with left:
        predicted_bits(quant)
    with right:
        measured(found, "bits", model_name)
    left, right = st.columns(2)
    with left:
        predicted_sparsity(prune)
    with right:
        measured(found, "sparsity", model_name)
    if found is not None and model_name is not None:
        with st.expander(f"k-fold metrics of {model_name} (accuracy, precision, recall, F1 or loss)"):
            st.dataframe(charts.kfold_table(found[0]["quality"], model_name), hide_index=True, width="stretch")
    scaling_law(ui.scaling_law_source(found))


def scaling_law(found_law: tuple[Any, str]) -> None:
    """The small LM's measured scaling law (a `--full` quality calibration) beside Chinchilla's and Epoch's."""
    law, source = found_law
    st.markdown("**Scaling law: measured on the small LM, beside the published fits**")
    frame = laws.law_frame(law)
    if law is None:
        st.info("No profile at hand has a measured scaling law: `python -m calibration quality --full` trains the "
                "small LM at several sizes and token budgets and fits one (docs/calibration.md, \"Quality "
                "calibration\").")
    st.vega_lite_chart(for_page(specs.spec(laws.law_chart, frame)), width="stretch", alt=ALT["law"])
    st.caption(md(laws.describe_law(frame, law, source)))
    st.dataframe(laws.law_table(law), hide_index=True, width="stretch")
    _table("scaling-law points and lines", frame, COUNTS)


def provenance(plan: Plan) -> None:
    with st.expander("Where every figure comes from"):
        rows = [{"Figure": f.label, "Value": text.figure_text(f.value, f.unit), "P10–P90": text.span_text(f),
                 "Range includes": ranges_text.labels(plan, key), "Provenance": f.provenance,
                 "How": messages.in_words(f.source)}
                for key in presentation.source_figures(ui.PAGE) if (f := plan.figures.get(key)) is not None]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        spread_table(plan)


def downloads(plan: Plan, data: dict[str, Any], quant: pd.DataFrame, prune: pd.DataFrame,
              found: tuple[dict[str, Any], Any, str] | None) -> None:
    def pdf() -> bytes:
        from report.compress_pdf import compress_pdf  # fpdf2 loads on the first click, not with the page

        return compress_pdf(plan, name, quant, prune, found, law=law)

    name = device_name(plan)
    profile_id = "" if found is None else f"{found[0].get('name')}@{found[0].get('created_utc')}"
    # the key follows the inputs: a deferred download keeps the callable of the widget it was made with
    version = hashlib.sha256((json.dumps(data, sort_keys=True) + profile_id).encode()).hexdigest()[:12]
    c = st.columns(5)
    law = ui.scaling_law_source(found)
    c[0].download_button("Download PDF", pdf, "modelfolio-compress.pdf", "application/pdf", on_click="ignore",
                         key=f"compress.pdf.{version}")
    c[1].download_button("Plan JSON", json.dumps(plan.to_dict(), indent=2, default=str, ensure_ascii=False),
                         "modelfolio-compress-plan.json", "application/json", on_click="ignore",
                         key=f"compress.plan.{version}")
    c[2].download_button("Scenario JSON", json.dumps(data, indent=2, ensure_ascii=False),
                         "modelfolio-compress-scenario.json", "application/json", on_click="ignore",
                         key=f"compress.scenario.{version}")
    c[3].download_button("Bits sweep CSV", quant.to_csv(index=False), "modelfolio-compress-bits.csv", "text/csv",
                         on_click="ignore", key=f"compress.bits_csv.{version}")
    c[4].download_button("Sparsity sweep CSV", prune.to_csv(index=False), "modelfolio-compress-sparsity.csv",
                         "text/csv", on_click="ignore", key=f"compress.sparsity_csv.{version}")


def main() -> None:
    devices = session_devices()
    data = question()
    link.publish(ui.LINK)
    found = answer_or_last(lambda d: _plan(json.dumps(d, sort_keys=True, ensure_ascii=False), device_key(devices),
                                           devices), data, LAST_VALID, "plan")
    if found is None:
        return
    plan, data = found
    data_json = json.dumps(data, sort_keys=True, ensure_ascii=False)
    st.subheader(md(text.answer_sentence(plan, device_name(plan))))
    metrics(plan)
    warnings(plan)
    quant, prune = _frames(data_json, device_key(devices), devices)
    found = ui.quality_profile()
    quality(quant, prune, found)
    show_sections(plan, ui.PAGE)
    provenance(plan)
    downloads(plan, data, quant, prune, found)


main()
