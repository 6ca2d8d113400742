"""The Compress page through AppTest: the answer first, fewer bits move size and quality, an invalid combination
shows the registry's message, the measured curves of the shipped profile, downloads; and its PDF read back."""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path

import page_links
import pypdf
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from app_pages import _compress_inputs as ui  # noqa: E402
from app_pages._registry_widgets import EMPTY  # noqa: E402
from report.compress_pdf import compress_pdf  # noqa: E402
from simulator import compression_curves as predicted  # noqa: E402
from simulator.devices import shipped_profiles  # noqa: E402
from simulator.evaluator import evaluate  # noqa: E402
from simulator.quality_curves import quality_from_profile  # noqa: E402
from simulator.scenario import Scenario  # noqa: E402

APP = str(ROOT / "app.py")
TIMEOUT_S = 60
BITS, METHOD = ui.PREFIX + "compression.weight_bits", ui.PREFIX + "compression.quant_method"
SMALL_MODEL = ui.PREFIX + "small_model"


pytestmark = pytest.mark.usefixtures("fresh_caches")  # tests/conftest.py


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.switch_page("app_pages/compress.py").run()  # straight to the page: the home page's search is not needed
    assert not at.exception, [e.value for e in at.exception]
    return at


def answer(at: AppTest) -> str:
    return at.subheader[0].value


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def quantize(at: AppTest, bits: int, method: str = "awq") -> None:
    at.selectbox(key=METHOD).set_value(method).run()
    at.selectbox(key=BITS).set_value(bits).run()
    assert not at.exception, [e.value for e in at.exception]


def test_answer_first_and_fewer_bits_move_size_and_quality():
    at = open_page()
    assert at.title[0].value == "Compress"
    assert answer(at).startswith("Uncompressed, Llama 2 70B")
    quantize(at, 8)
    eight = answer(at)
    size8, ppl8 = float(metric(at, "Model size").split()[0]), float(metric(at, "Perplexity ratio"))
    quantize(at, 4)
    four = answer(at)
    assert four.startswith("4-bit AWQ makes Llama 2 70B") and "smaller and decode" in four
    assert "predicted perplexity" in four and "P10–P90" in four and four != eight
    size4, ppl4 = float(metric(at, "Model size").split()[0]), float(metric(at, "Perplexity ratio"))
    assert size4 < size8 and ppl4 > ppl8
    assert {"Decode speed-up", "Prefill speed-up", "Loss increase (nats)"} <= {m.label for m in at.metric}
    assert metric(at, "Loss increase (nats)").startswith("+0.")  # short enough not to be cut: no unit
    assert any(c.value.startswith("P10–P90") for c in at.caption)  # the metric row carries ranges


def test_invalid_combination_shows_the_registry_message():
    at = open_page()
    at.selectbox(key=ui.PREFIX + "compression.pruning_method").set_value("wanda").run()
    at.radio(key=ui.PREFIX + "compression.pattern").set_value("2:4").run()
    at.number_input(key=ui.PREFIX + "compression.sparsity").set_value(0.3).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error).replace("\\", "")
    assert "Sparsity pattern = 2:4 keeps half of every group, so it needs Sparsity = 50% (got Sparsity = 30%)" in errors
    at.number_input(key=ui.PREFIX + "compression.sparsity").set_value(0.5).run()
    assert not at.error and "50% 2:4 wanda pruning" in answer(at)


def test_lowering_the_bits_quantizes_by_the_methods_auto_default():
    """The first natural action: fewer weight bits with the method left alone. The method follows the registry's
    rule (none at 16 bits, round-to-nearest below), the page says so, and the answer stays (as on Deploy)."""
    at = open_page()
    method = at.selectbox(key=METHOD)
    assert method.value == EMPTY and method.options[0] == "auto"  # starts on auto
    auto = ":material/info: Auto: now none, following weight bits and activation bits."
    assert auto in [c.value for c in at.caption]  # said under the method, as Train says its auto values
    at.selectbox(key=BITS).set_value(4).run()
    assert not at.exception and not at.error
    assert answer(at).startswith("4-bit round-to-nearest makes Llama 2 70B")
    captions = " ".join(c.value for c in at.caption)
    assert "Auto: now round-to-nearest, following weight bits and activation bits." in captions
    at.selectbox(key=BITS).set_value(16).run()
    assert not at.error and answer(at).startswith("Uncompressed")


def test_bits_are_offered_never_typed_so_none_is_truncated():
    """Weight, activation and KV bits are the registry's offered widths (a list, as on Deploy): 3.5 cannot be
    typed and silently become 3, and 15 (one step down from 16) is not offered."""
    at = open_page()
    for key, offered in (("compression.weight_bits", ["16 (not quantized)", "8", "6", "5", "4", "3", "2", "1"]),
                         ("compression.act_bits", ["16 (not quantized)", "8", "4"]),
                         ("compression.kv_bits", ["16 (not quantized)", "8", "4"])):
        assert at.selectbox(key=ui.PREFIX + key).options == offered
    assert not {n.key for n in at.number_input} & {ui.PREFIX + k for k in ui.MAIN}  # no bits field takes typing


def test_a_refused_combination_keeps_the_last_answer_below_its_message():
    """One click into a combination the registry refuses (floating point at 5 bits) shows what to change, in
    labels, above the last answer; it never blanks the page."""
    at = open_page()
    at.selectbox(key=BITS).set_value(4).run()
    at.radio(key=ui.PREFIX + "compression.format").set_value("fp").run()  # FP4 exists
    assert not at.exception and not at.error
    last = answer(at)
    assert last.startswith("4-bit FP round-to-nearest makes")
    at.selectbox(key=BITS).set_value(5).run()  # FP5 does not
    assert not at.exception
    errors = " ".join(e.value for e in at.error).replace("\\", "")
    assert "Number format = “floating point” with Weight bits = 5: floating-point numbers exist at" in errors
    assert "compression." not in errors
    assert any("the last plan these inputs allowed" in w.value for w in at.warning)
    assert answer(at) == last and at.metric and at.get("vega_lite_chart")


def test_measured_curves_from_the_shipped_profile_and_downloads():
    at = open_page()
    quantize(at, 4)
    captions = " ".join(c.value for c in at.caption).replace("\\", "")
    assert "shipped reference profile cpu-reference.json" in captions
    assert "measured on Intel(R) Xeon(R) Processor: digits_mlp (26,122 params)" in captions
    assert "this plan (4-bit AWQ)" in captions
    at.radio(key="compress.small_model").set_value("char_lm").run()
    captions = " ".join(c.value for c in at.caption).replace("\\", "")
    assert "char_lm (62,145 params)" in captions and "nats/character" in captions
    assert len(at.get("vega_lite_chart")) == 5  # 2 predicted, 2 measured, the scaling laws
    assert any("Scaling law: measured on the small LM" in m.value for m in at.markdown)
    assert any("Measured by the shipped profile epyc-quick.json" in c.value.replace("\\", "") for c in at.caption)
    assert any("Law" in d.value.columns and "Chinchilla (Hoffmann et al. 2022)" in set(d.value["Law"])
               for d in at.dataframe)
    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert list(buttons) == ["Download PDF", "Plan JSON", "Scenario JSON", "Bits sweep CSV", "Sparsity sweep CSV"]


def _found():
    profile = shipped_profiles()["cpu-reference"]
    return profile, quality_from_profile(profile), "the shipped reference profile cpu-reference.json"


def test_chart_band_is_the_plans_range():
    s = Scenario.from_dict({"model": {"preset": "llama2-7b"},
                            "compression": {"weight_bits": 3, "quant_method": "gptq", "group_size": 128}})
    plan, frame = evaluate(s), predicted.quant_frame(s)
    mine = frame[frame["This plan"]].iloc[0]
    f = plan.figures["quality.ppl_ratio"]
    assert mine["Perplexity ratio"] == pytest.approx(f.value, rel=1e-9)
    assert (mine["P10"], mine["P90"]) == (pytest.approx(f.low, rel=1e-9), pytest.approx(f.high, rel=1e-9))
    by_bits = frame[frame["Method"] == "GPTQ"].sort_values("Weight bits")["Perplexity ratio"].to_numpy()
    assert (by_bits[:-1] >= by_bits[1:] - 1e-12).all()  # fewer bits never predicted better


def test_pdf_reads_back():
    s = Scenario.from_dict({"model": {"preset": "llama2-70b"}, "serving": {"accelerator": "H100-SXM"},
                            "compression": {"weight_bits": 4, "quant_method": "awq", "group_size": 128,
                                            "pruning_method": "sparsegpt", "sparsity": 0.5, "pattern": "2:4"}})
    plan = evaluate(s)
    data = compress_pdf(plan, "H100 SXM5 80GB", predicted.quant_frame(s), predicted.prune_frame(s), _found(),
                        created=dt.datetime(2026, 11, 29, tzinfo=dt.UTC))
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert reader.metadata.title == "Compression: Llama 2 70B (69B counted)"
    text = " ".join(page.extract_text() for page in reader.pages)
    flat = " ".join(text.split())
    assert "4-bit g128 AWQ + 50% 2:4 sparsegpt pruning makes Llama 2 70B" in flat
    assert "Perplexity, compressed ÷ dense" in flat and "P10–P90" in flat
    assert "measured on Intel(R) Xeon(R) Processor: digits_mlp (26,122 params)" in flat
    assert "compression.weight_bits" in flat  # the compression family's inputs
    assert sum(len(page.images) for page in reader.pages) == 7  # 2 predicted + 2 × 2 measured + scaling laws
    assert "Scaling law: measured on the small LM beside the published fits" in flat
    assert "Epoch AI refit (Besiroglu et al. 2024)" in flat and "nats/token" in flat


def test_an_active_profile_without_curves_falls_back_to_the_shipped_one():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.session_state["active_profile_id"] = "shipped:h200-quick"  # the Calibrate page's active profile: no curves
    at.run()
    at.switch_page("app_pages/compress.py").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption).replace("\\", "")
    assert "cpu-reference.json (the active profile has no quality curves)" in captions


def open_link(query: dict[str, str]) -> AppTest:
    return page_links.open_link("compress", query, TIMEOUT_S)


def test_a_link_restores_the_model_the_compression_and_the_small_model_shown():
    at = open_page()
    assert page_links.link_of(at) == {}  # the defaults make an empty link
    at.selectbox(key=ui.MODEL).set_value(ui.CUSTOM).run()
    at.number_input(key=ui.PREFIX + "model.params").set_value(13.0).run()
    at.number_input(key=ui.PREFIX + "training.tokens").set_value(260.0).run()
    at.selectbox(key=ui.PREFIX + "serving.accelerator").set_value("L40S").run()
    quantize(at, 4)
    at.radio(key=SMALL_MODEL).set_value("char_lm").run()
    query = page_links.link_of(at)
    assert query == {"m": "", "n": "1.3e10", "tok": "2.6e11", "sacc": "L40S", "wb": "4", "qm": "awq", "sm": "char_lm"}
    shared = open_link(query)
    for key in (ui.MODEL, ui.PREFIX + "model.params", ui.PREFIX + "training.tokens", ui.PREFIX + "serving.accelerator",
                BITS, METHOD, SMALL_MODEL):
        assert shared.session_state[key] == at.session_state[key], key
    assert not shared.info  # every parameter was used
    assert answer(shared) == answer(at) and answer(shared).startswith("4-bit AWQ makes a 13B-parameter model")
    assert page_links.link_of(shared) == query


def test_a_bad_link_value_is_named_and_the_rest_applies():
    at = open_link({"wb": "3.5", "m": "gpt5", "sm": "nope", "budget": "5e6", "qm": "gptq", "wb ": "4"})
    said = at.info[0].value.replace("\\", "")
    assert "Weight bits (wb=3.5): must be a whole number; kept 16 bits." in said
    assert "Model preset (m=gpt5): allowed values are" in said and "kept llama2-70b." in said
    assert "Small model measured (sm=nope): allowed values are digits_mlp, char_lm; ignored." in said
    assert "Budget (budget=5e6): not an input of this page; ignored." in said  # a Decide link's parameter
    assert "wb =4: not a Modelfolio link parameter; ignored." in said
    assert at.selectbox(key=METHOD).value == "gptq"
    assert at.selectbox(key=BITS).value == 16 and at.selectbox(key=ui.MODEL).value == ui.DEFAULT_PRESET
    assert page_links.link_of(at) == {"qm": "gptq"}
