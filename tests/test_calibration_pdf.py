"""The Calibrate page's PDF: the shipped profiles read back with pypdf, rendered to PNG, and the page's button."""

from __future__ import annotations

import concurrent.futures as cf
import copy
import datetime as dt
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from app_pages import _calibrate_run as runner  # noqa: E402
from app_pages import _calibrate_state as state  # noqa: E402
from calibration.validate_summary import summarize  # noqa: E402
from report import calibration_summary as summary  # noqa: E402
from report import chart_process  # noqa: E402
from report import formatting as fmt  # noqa: E402
from report import quality_charts as qcharts  # noqa: E402
from report.calibration_pdf import calibration_pdf, key_fits, title_of  # noqa: E402
from report.pdf_fonts import fallback_for, fonts_found  # noqa: E402
from simulator.device_profile import device_from_profile  # noqa: E402
from simulator.devices import shipped_profiles  # noqa: E402
from simulator.plan import VERSION  # noqa: E402
from simulator.quality_curves import quality_from_profile  # noqa: E402

APP = str(ROOT / "app.py")
CREATED = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
PROFILES = shipped_profiles()
HAS_CJK_FONT = fonts_found()["regular"] is not None and fallback_for("中") is not None


def text_of(data: bytes) -> str:
    """Every page's text with runs of white space as one space (table cells and long lines wrap)."""
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages)


def squash(text: str) -> str:
    return "".join(text.split())  # a wrapped table cell may split a word: compare without any white space


def image_count(data: bytes) -> int:
    count = 0
    for page in PdfReader(io.BytesIO(data)).pages:
        xobjects = page["/Resources"].get("/XObject", {})
        count += sum(1 for ref in xobjects.values() if ref.get_object()["/Subtype"] == "/Image")
    return count


@pytest.fixture(scope="module", params=sorted(PROFILES))
def built(request):
    """(stem, profile, PDF bytes, its text) of each shipped profile, built once."""
    profile = PROFILES[request.param]
    data = calibration_pdf(profile, device_from_profile(profile), source=f"shipped reference ({request.param}.json)",
                           files=[f"simulator/data/profiles/{request.param}.json"], created=CREATED)
    return request.param, profile, data, text_of(data)


def test_title_is_the_device_and_run_date(built):
    _, profile, data, text = built
    reader = PdfReader(io.BytesIO(data))
    title = title_of(profile)
    assert reader.metadata.title == title and text.startswith(title)
    device = (profile["environment"]["gpu_names"] or [profile["environment"]["cpu_model"]])[0]
    assert device in title and profile["created_utc"][:10] in title


def test_the_headline_is_the_pages_sentence_with_its_numbers(built):
    _, profile, _, text = built
    sentence = summary.headline(profile, device_from_profile(profile))
    assert " ".join(sentence.split()) in text
    g = summary.gemm_throughput(profile)[0]  # the one GEMM figure, as the page writes it
    assert f"{g['dtype']} GEMMs reach {summary.tflops_text(g['tflops'])} TFLOP/s" in text


def test_every_fit_is_listed_with_its_training_and_held_out_error(built):
    _, profile, _, text = built
    flat = squash(text)
    assert "Held-outMAPE%" in flat and "TrainMAPE%" in flat
    fits = [(section, path, fit) for section in profile["fits"]
            for path, fit, _ in summary.iter_fits(profile["fits"][section])]
    assert len(fits) >= 20
    for section, path, fit in fits:
        assert squash(summary.fit_label(path)) in flat
        assert squash(".".join(("fits", section, *path))) in flat  # its formula block names its path
        if fit["status"] == "ok" and isinstance(fit.get("mape_heldout_pct"), int | float):
            held = fit["mape_heldout_pct"]
            assert squash(f"on {fit['n_heldout']} held-out points") in flat
            assert squash(f"{fmt.plain(held)}% on {fit['n_heldout']} held-out points") in flat


def test_formulas_and_undetermined_parameters_carry_the_pages_sentence(built):
    _, profile, _, text = built
    flat = squash(text)
    notes = [summary.undetermined_note(fit) for section in profile["fits"].values()
             for _, fit, _ in summary.iter_fits(section)]
    notes = [n for n in notes if n]
    assert notes, "the shipped profiles have undetermined parameters: the test needs one"
    for note in notes:
        assert squash(note) in flat
    gemm = profile["fits"]["compute"]["gemm"]
    assert all(squash(f["formula"]) in flat for f in gemm.values() if f.get("formula"))


def test_the_environment_and_provenance(built):
    stem, profile, _, text = built
    env = profile["environment"]
    assert env["torch_version"] in text and f"Torch threads {env['torch_threads']}" in text
    assert f"Schema version {profile['schema_version']}" in text and f"Modelfolio {VERSION}" in text
    assert "Run id: not recorded in the profile" in text  # the shipped files have an empty `run`
    assert squash(f"simulator/data/profiles/{stem}.json") in squash(text)
    if "probe" in env:  # measured with the probe: its figures and what it found emulated (nothing on these CPUs)
        assert "No dtype was emulated" in text and "cpu.fp32.gflops" in text
    else:  # predates the probe: nothing is marked emulated
        assert "no probe figures" in text


def test_the_pages_charts_and_the_quality_curves_are_images(built):
    _, profile, data, text = built
    quality = quality_from_profile(profile)
    panels = len(qcharts.panels(quality)) if quality is not None else 0
    # throughput, each section's key fit, the headline fit's errors, one per quality panel
    assert image_count(data) == 1 + len(key_fits(profile)) + 1 + panels >= 2
    assert ("Quality calibration" in text) == (quality is not None)
    if quality is not None:
        assert panels == 4 and "char_lm · loss_nats vs bits" in text
        assert all(squash(key) in squash(text) for key in quality.curves)


def test_the_pdf_renders_to_png(built, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm not installed (poppler-utils; `make pdf-fonts` installs it)")
    _, _, data, _ = built
    (tmp_path / "c.pdf").write_bytes(data)
    subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "3", "-png", str(tmp_path / "c.pdf"),
                    str(tmp_path / "p")], check=True, timeout=60)
    pngs = sorted(tmp_path.glob("p-*.png"))
    assert len(pngs) == 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000 for p in pngs)


SMALL_CHART = {"data": {"values": [{"x": 1, "y": 2}, {"x": 3, "y": 1}]}, "mark": "line",
               "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}},
               "width": 80, "height": 60}


def test_the_helper_process_draws_what_this_process_draws():
    assert chart_process.png_later(SMALL_CHART, None, 1.0)() == chart_process.draw_png(SMALL_CHART, None, 1.0)


class _BrokenHelper:
    def __init__(self, at_submit: bool) -> None:
        self.at_submit = at_submit

    def submit(self, *args, **kwargs):
        if self.at_submit:
            raise chart_process.HelperGoneError("cannot write to the helper process")
        future = cf.Future()
        future.set_exception(chart_process.HelperGoneError("the helper process stopped answering"))
        return future

    def close(self):
        pass


@pytest.mark.parametrize("at_submit", [True, False])
def test_a_broken_helper_process_falls_back_to_drawing_here(monkeypatch, caplog, at_submit):
    monkeypatch.setattr(chart_process, "_helper", _BrokenHelper(at_submit))
    monkeypatch.setattr(chart_process, "draw_here", False)
    png = chart_process.png_later(SMALL_CHART, None, 1.0)()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and chart_process.draw_here  # and from now on without it
    assert "drawn in this process from now on" in caplog.text


def test_a_chart_the_helper_cannot_draw_is_left_out():
    png = chart_process.png_later({"mark": "no such mark"}, None, 1.0)
    with pytest.raises(ValueError):
        png()
    assert not chart_process.draw_here  # the helper itself is fine


@pytest.fixture
def no_charts(monkeypatch):
    """Charts off (their descriptions stay) for tests about the text alone: seconds saved per PDF."""
    monkeypatch.setattr("report.calibration_pdf.render_later", lambda *args, **kwargs: lambda: None)


def test_a_back_test_is_reported_when_given(no_charts):
    profile = PROFILES["h200-quick"]
    results = [{"fit": "fits.compute.gemm.cuda/bf16", "error_pct": e, "repeat_pct": r, "error_vs_original_pct": o,
                "counted": True} for e, r, o in ((4.0, 1.0, 3.0), (-8.0, -3.0, 6.0))]
    validation = summarize(results)
    data = calibration_pdf(profile, None, validation=validation, created=CREATED)
    text = text_of(data)
    assert "Re-measured held-out points: 2; MAPE of the predictions 6% against a repeatability (noise floor) of 2%" \
        in text
    stored = copy.deepcopy(profile) | {"validation": validation}  # or held by the profile itself
    assert "MAPE of the predictions 6%" in text_of(calibration_pdf(stored, None, created=CREATED))
    assert "No back-test is stored" in text_of(calibration_pdf(profile, None, created=CREATED))


def test_emulated_dtypes_with_the_probes_figures(no_charts):
    profile = copy.deepcopy(PROFILES["cpu-reference"])
    profile["environment"] |= {"emulated": ["bf16"], "probe": {"cpu.bf16.gflops": 1.2, "cpu.fp32.gflops": 89.0}}
    text = text_of(calibration_pdf(profile, None, created=CREATED))
    sentences = summary.emulated(profile)
    assert len(sentences) == 1 and "probe: 1.2 GFLOP/s against 89 GFLOP/s in fp32" in sentences[0]
    assert " ".join(sentences[0].split()) in text  # under the headline, as on the page
    assert "Emulated dtypes (the probe measured them below 1/8 of fp32's throughput): bf16." in text
    assert "cpu.bf16.gflops 1.2" in text and "no probe figures" not in text


@pytest.mark.skipif(not HAS_CJK_FONT, reason="needs DejaVu Sans and Droid Sans Fallback (make pdf-fonts)")
def test_unicode_names_render(no_charts):
    profile = copy.deepcopy(PROFILES["h200-quick"])
    profile["name"] = "Labor é, 中文 — rig, calibrated 2026-11-28"
    profile["environment"]["gpu_names"] = ["中文 GPU é"]
    text = text_of(calibration_pdf(profile, None, created=CREATED))
    assert "Calibration: 中文 GPU é, 2026-11-28" in text and "Labor é, 中文 — rig" in text and "?" not in text[:80]


# ---------------------------------------------------------------- the page's button


@pytest.fixture
def deferred(deferred, monkeypatch, tmp_path):
    """tests/conftest.py's download spy, with this test's own runs folder."""
    monkeypatch.setenv(runner.RUNS_DIR_ENV, str(tmp_path / "runs"))
    return deferred


def pdf_button(at: AppTest):
    return next(b for b in at.get("download_button") if b.label == "Download PDF")


def test_the_calibrate_page_offers_the_pdf_of_the_active_profile(deferred):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[state.ACTIVE] = "shipped:h200-quick"
    at.switch_page("app_pages/calibrate.py").run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [b.label for b in at.get("download_button")]
    assert labels[labels.index("Download") + 1] == "Download PDF"  # beside the profile's JSON
    button = pdf_button(at)
    assert button.proto.deferred_file_id  # built on click, not on every rerun
    headline = next(m.value for m in at.markdown if m.value.startswith("#### Active profile"))
    text = text_of(deferred["calibration-h200-quick.pdf"]())
    assert " ".join(headline.removeprefix("#### ").replace("\\", "").split()) in text

    first_id = button.proto.id
    at.session_state[state.ACTIVE] = "shipped:cpu-reference"
    at.run()
    assert not at.exception
    assert pdf_button(at).proto.id != first_id  # the key follows the profile: never the previous profile's file
    assert "calibration-cpu-reference.pdf" in deferred
