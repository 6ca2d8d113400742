"""The PDF summary of a plan (report.pdf), read back with pypdf; the `report` command; the Train page's button."""

import dataclasses
import datetime as dt
import io
import json
import time
from pathlib import Path

import pytest
from pypdf import PdfReader
from streamlit.testing.v1 import AppTest

from modelfolio.cli import main
from report import formatting as fmt
from report import messages, pdf_charts, pdf_doc, pdf_fonts
from report.pdf import plan_pdf
from simulator import Scenario, evaluate, presentation
from simulator.catalog import load_catalog
from simulator.inputs import INPUTS
from simulator.plan import VERSION
from simulator.scaling import gpu_counts, gpu_sweep

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CREATED = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
UNICODE_NAME = "Labor é, 中文, — rig"
DEVICE_ID = "profile:unicode-rig"
SCENARIO = {"model": {"preset": "llama-3-70b"},
            "cluster": {"accelerator": DEVICE_ID, "gpus": 1024, "tp": 16, "pp": 4}}  # TP spans nodes: a warning
CLI_SCENARIO = {"model": {"params": 1.3e9}, "cluster": {"gpus": 64}}
HAS_UNICODE_FONT = pdf_fonts.fonts_found()["regular"] is not None
HAS_CJK_FONT = HAS_UNICODE_FONT and pdf_fonts.fallback_for("中") is not None


def text_of(data: bytes) -> str:
    """Every page's text with runs of white space as one space (table cells and long lines wrap)."""
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages)


def image_count(data: bytes) -> int:
    count = 0
    for page in PdfReader(io.BytesIO(data)).pages:
        xobjects = page["/Resources"].get("/XObject", {})
        count += sum(1 for ref in xobjects.values() if ref.get_object()["/Subtype"] == "/Image")
    return count


@pytest.fixture(scope="module")
def devices():
    h100 = load_catalog()["H100-SXM"]
    return {DEVICE_ID: dataclasses.replace(h100, id=DEVICE_ID, display_name=UNICODE_NAME)}


@pytest.fixture(scope="module")
def plan(devices):
    return evaluate(Scenario.from_dict(SCENARIO, devices), devices)


@pytest.fixture(scope="module")
def built(plan, devices):
    """(PDF bytes, its text, seconds of a warm build): the first build also starts vl-convert's engine."""
    sweep = gpu_sweep(plan.scenario, devices)
    plan_pdf(plan, sweep, created=CREATED)
    start = time.perf_counter()
    data = plan_pdf(plan, sweep, created=CREATED)
    return data, text_of(data), time.perf_counter() - start


def test_the_answer_comes_first_with_the_title_date_and_version(plan, built):
    data, text, _ = built
    assert data.startswith(b"%PDF-")
    assert 3 <= len(PdfReader(io.BytesIO(data)).pages) <= 8
    assert text.startswith("Training plan: Llama 3 70B")
    assert "2026-01-02 03:04 UTC" in text and f"Modelfolio {VERSION}" in text
    sentence = fmt.training_sentence(plan)
    assert " ".join(sentence.split()) in text[:600]


def test_every_key_figure_with_its_range_and_provenance(plan, built):
    _, text, _ = built
    for key in presentation.key_figures("train"):
        figure = plan.figures[key]
        assert figure.label in text, key
        assert fmt.by_unit(figure.value, figure.unit) in text, key
    wall = plan.figures["training.wall_days"]
    assert wall.low is not None and fmt.span(wall.low, wall.high, wall.unit) in text
    assert "P10–P90" in text
    assert "computed¹" in text and "published" in text
    assert "Basis of the computed figures: computed from profile:unicode-rig" in text


def test_ideal_and_expected_time_with_the_goodput_parts(plan, built):
    _, text, _ = built
    t = plan.training
    assert f"{t['ideal_wall_days'].label} (steps × step time) {fmt.days(t['ideal_wall_days'].value)}" in text
    for key in ("checkpoint_days", "failure_days", "eval_days", "warmup_days"):
        assert f"+ {t[key].label} {fmt.days(t[key].value)}" in text
    assert f"= {t['wall_days'].label} {fmt.days(t['wall_days'].value)}" in text


def test_warnings_by_code_with_their_text(plan, built):
    _, text, _ = built
    assert plan.warning_codes() == ("tp_spans_nodes",)
    assert "[tp_spans_nodes] Tensor parallel" in text  # the label, not the dotted key
    assert " ".join(messages.in_words(plan.warnings[0].text).split()) in text


def test_memory_warning_lists_the_plans_that_would_fit():
    plan = evaluate(Scenario.from_dict({"model": {"preset": "llama-3-70b"}, "cluster": {"gpus": 64, "tp": 1, "pp": 1}}))
    assert plan.suggestions
    text = text_of(plan_pdf(plan, created=CREATED))
    assert "Does not fit: needs" in text and "These nearby plans would fit:" in text
    assert all(s.label in text for s in plan.suggestions)


def test_the_pages_charts_are_embedded_as_images(plan, devices, built):
    data, text, _ = built
    assert image_count(data) == 4  # step, memory, time and cost against GPU count
    for heading in ("Where each step's time goes", "Memory per GPU against its capacity",
                    "Expected time and cost against GPU count"):
        assert heading in text
    assert "Stacked bar of the time one optimizer step takes" in text  # each chart's text alternative
    counts = gpu_counts(plan.scenario)
    assert f"{fmt.count(counts[-1])} GPUs" in text  # the sweep's table
    no_sweep = plan_pdf(plan, created=CREATED)
    assert image_count(no_sweep) == 2 and "against GPU count" not in text_of(no_sweep)


def test_a_chart_that_cannot_be_rendered_leaves_its_description(plan, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no renderer")

    monkeypatch.setattr(pdf_charts, "chart_png", broken)
    data = plan_pdf(plan, created=CREATED)
    text = text_of(data)
    assert image_count(data) == 0 and text.count("Chart not drawn here") == 2
    assert "Stacked bar of memory per GPU by part" in text and "Inputs" in text


def test_every_input_with_how_it_was_set_and_the_notes(plan, built):
    _, text, _ = built
    assert "Input Key Value Unit Set by" in text
    for key in presentation.listed_inputs("train"):
        if key in plan.scenario.idle:  # acts on nothing in this plan (a dense model's MoE and MLA inputs)
            assert f" {key} " not in text, key
            continue
        assert INPUTS[key].label in text and key in text, key
    assert {"model.moe_top_k", "model.mla_kv_lora_rank", "cluster.ep"} <= plan.scenario.idle
    assert "model.preset Llama 3 70B (69.5B counted) given" in text
    assert "finance.gpu_hour_usd $3.49 USD/GPU-hour derived" in text
    assert "model.vocab 128,256 tokens preset" in text and "training.precision bf16 default" in text
    assert "cluster.first_stage_layers auto (" in text
    assert "How the inputs were completed" in text
    assert all(" ".join(messages.in_words(note).split()) in text for note in plan.notes)  # in labels, by unit


def test_sources_of_every_figure_and_of_the_hardware(plan, built):
    _, text, _ = built
    assert "How it is made (formula or source)" in text
    assert "Hoffmann et al. 2022, eq. 4" in text
    assert "Group Provenance Source" in text
    for group in plan.hardware.sources:
        assert f"{group} {plan.hardware.provenance_of.get(group, plan.hardware.provenance)}" in text


def test_unicode_in_a_device_name_survives(built):
    _, text, _ = built
    if not HAS_UNICODE_FONT:
        pytest.skip("no DejaVu Sans on this machine (make pdf-fonts installs it)")
    assert "Labor é," in text and "— rig" in text
    assert ("中文" in text) if HAS_CJK_FONT else ("??" in text)


def test_without_unicode_fonts_the_core_font_replaces_what_latin_1_lacks(plan, monkeypatch):
    monkeypatch.setattr(pdf_doc, "fonts_found", lambda: {"regular": None, "bold": None, "fallbacks": ()})
    text = text_of(plan_pdf(plan, name="Plan é 中文 — \x00\udcff", created=CREATED))
    assert "Training plan: Plan é ?? - ?" in text  # the NUL as a space, the lone surrogate as "?"
    assert "Labor é, ??, - rig" in text


def test_hostile_names_do_not_break_the_layout(plan):
    name = "x" * 400 + " \u202e\u200b\t\n" + "🙂" * 3
    data = plan_pdf(plan, name=name, created=CREATED)
    assert "Training plan: xxx" in text_of(data)


def test_same_inputs_same_bytes(plan, devices, built):
    # its speed is a benchmark's (python -m benchmarks.decision_speed), not a timed unit test on a shared machine
    data, _, _ = built
    assert plan_pdf(plan, gpu_sweep(plan.scenario, devices), created=CREATED) == data


def test_a_baseline_adds_its_values_and_changes(plan, devices):
    base = evaluate(plan.scenario.replace(devices, **{"cluster.gpus": 512}), devices)
    data = plan_pdf(plan, gpu_sweep(plan.scenario, devices), base, created=CREATED)
    text = text_of(data)
    assert "Baseline Change" in text and "Baseline: Training a 70B model" in text
    assert fmt.days(base.figures["training.wall_days"].value) in text
    assert image_count(data) == 4


# ---------------------------------------------------------------- command line


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "small é.json"
    path.write_text(json.dumps(CLI_SCENARIO))
    return path


def test_cli_writes_the_report(scenario_file, tmp_path, capsys):
    out = tmp_path / "plan.pdf"
    assert main(["report", str(scenario_file), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    text = text_of(out.read_bytes())
    assert text.startswith("Training plan: small é.json") and "Training a 1.3B model" in text
    assert image_count(out.read_bytes()) == 4


def test_cli_refuses_bad_input_without_writing(tmp_path, capsys):
    bad, out = tmp_path / "bad.json", tmp_path / "plan.pdf"
    bad.write_text(json.dumps({"model": {"params": -5}}))
    assert main(["report", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model.params = -5" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["report", str(tmp_path / "missing.json"), "-o", str(out)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["report", str(bad)]) == 2  # -o is required
    assert "-o/--out" in capsys.readouterr().err


def test_cli_never_overwrites_without_force_nor_its_input(scenario_file, tmp_path, capsys):
    out = tmp_path / "plan.pdf"
    out.write_bytes(b"precious")
    assert main(["report", str(scenario_file), "-o", str(out)]) == 2
    assert "already exists; add --force" in capsys.readouterr().err and out.read_bytes() == b"precious"
    before = scenario_file.read_text()
    for force in ([], ["--force"]):
        assert main(["report", str(scenario_file), "-o", str(scenario_file), *force]) == 2
        assert "is an input of this report" in capsys.readouterr().err
    assert scenario_file.read_text() == before
    assert main(["report", str(scenario_file), "-o", str(out), "--force"]) == 0
    assert out.read_bytes().startswith(b"%PDF-")


# ---------------------------------------------------------------- the Train page




def test_the_train_page_offers_the_pdf(deferred):
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("app_pages/train.py")  # a bare visit opens Decide, the home page
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Scenario JSON", "Plan JSON", "PDF report", "GPU-count sweep CSV"]
    pdf = next(b for b in at.get("download_button") if b.label == "PDF report")
    assert pdf.proto.deferred_file_id  # built on click, not on every rerun
    data = deferred["modelfolio-plan.pdf"]()
    sentence = at.markdown[0].value.removeprefix("#### ").replace("\\$", "$")
    text = text_of(data)
    assert " ".join(sentence.split()) in text and image_count(data) == 4

    at.number_input(key="cluster.tp").set_value(3).run()  # invalid: the exports stay, marked stale
    assert [b.label for b in at.get("download_button")][-2:] == ["PDF report (last valid plan)",
                                                                 "GPU-count sweep CSV (last valid plan)"]
