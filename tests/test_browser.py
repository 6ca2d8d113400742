"""The real app in headless Chromium: served by `streamlit run`, driven with Playwright."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(180),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="the playwright package is not installed"),
]

# every box in a metric whose text overflows it (shown cut off with an ellipsis), as "text: needed > shown px"
CLIPPED_METRICS_JS = """() => [...document.querySelectorAll('[data-testid="stMetric"] div, [data-testid="stMetric"] label')]
    .filter(el => el.scrollWidth > el.clientWidth + 1)
    .map(el => el.innerText + ': ' + el.scrollWidth + ' > ' + el.clientWidth)"""


@pytest.fixture(scope="module")
def page(tools, app_url):
    with tools.browser_page() as page:  # 1400 × 1000, the width the page must stay readable at
        page.set_default_timeout(30_000)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.requests = requests
        yield page


def headline(page) -> str:
    return page.locator("h4").filter(has_text="Training").first.inner_text()


def metric_value(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def gpus_field(page):
    return page.get_by_label("GPUs", exact=True)


def choose(page, name: str, option: str) -> None:
    """Pick `option` in the select labelled `name` (a click that lands while an expander still opens only
    focuses the select: the arrow key then opens its list)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    select, item = page.get_by_role("combobox", name=name), page.get_by_role("option", name=option)
    select.click()
    try:
        item.wait_for(timeout=3_000)
    except PlaywrightTimeout:
        select.press("ArrowDown")
    item.click()


def wait_headline(page, text: str) -> None:
    page.wait_for_function(
        "t => [...document.querySelectorAll('h4')].some(h => h.innerText.includes(t))", arg=text
    )


def test_page_shows_answer_and_reacts_to_gpu_count(tools, app_url, page):
    page.goto(f"{app_url}/train")
    tools.wait_rendered(page)
    assert re.search(r"Training a \d+B model on 1\.4T tokens takes .* on 1,024 H100", headline(page))
    assert page.locator('[data-testid="stMetricValue"]').count() == 8
    before = metric_value(page, "Time (days)")
    gpus = gpus_field(page)
    gpus.fill("2048")
    gpus.press("Enter")
    wait_headline(page, "2,048 H100")
    tools.wait_rendered(page)
    assert metric_value(page, "Time (days)") != before
    page.wait_for_url(re.compile(r"/train\?(.*&)?gpus=2048"))


def test_link_parameters_are_applied(tools, app_url, page):
    page.goto(f"{app_url}/?m=llama2-13b&tok=2e12&gpus=512&hw=A100-80GB-SXM")
    tools.wait_rendered(page)
    text = headline(page)
    assert "on 2T tokens" in text and "512 A100" in text
    assert gpus_field(page).input_value() == "512"
    page.wait_for_url(re.compile(r"/train\?.*gpus=512"))  # the root forwards to /train, link and all


def test_deep_link_opens_the_page_and_nothing_is_fetched_from_elsewhere(tools, app_url, page):
    page.requests.clear()
    page.goto(f"{app_url}/train?gpus=256")
    tools.wait_rendered(page)
    assert "on 256 H100" in headline(page)
    assert not page.get_by_text("Page not found").count()
    page.get_by_role("link", name="Calibrate").click()
    page.wait_for_url(re.compile(r"/calibrate"))
    page.get_by_role("link", name="Train").click()
    tools.wait_rendered(page)
    favicon = page.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\").href")
    assert favicon.startswith("data:image/svg+xml")  # the emoji, drawn locally
    remote = [u for u in page.requests if not u.startswith((app_url, "data:", "blob:", "about:"))]
    assert not remote, remote  # no font server, no CDN: works offline


def test_metrics_are_readable_at_1400_px_with_deltas(tools, app_url, page):
    page.goto(f"{app_url}/train?hw=H200&gpus=256&b.gpus=2048")  # long values (/ 141) and long deltas
    tools.wait_rendered(page)
    assert page.viewport_size["width"] == 1400
    assert page.locator('[data-testid="stMetricDelta"]').count() >= 6
    assert metric_value(page, "Memory (GB)").endswith("/ 141")
    assert page.evaluate(CLIPPED_METRICS_JS) == []
    ranges = page.get_by_text(re.compile(r"P10–P90 .*time \d+–\d+ days · cost \$"))
    assert ranges.count() == 1 and ranges.first.is_visible()


def test_gpu_plus_button_steps_to_an_allowed_count(tools, app_url, page):
    page.goto(f"{app_url}/train?gpus=4096")
    tools.wait_rendered(page)
    page.locator('[data-testid="stNumberInput"]').filter(has=gpus_field(page)).get_by_test_id(
        "stNumberInputStepUp").click()
    wait_headline(page, "4,128 H100")
    tools.wait_rendered(page)
    assert gpus_field(page).input_value() == "4128"
    assert page.locator('[data-testid="stMetricValue"]').count() == 8
    assert page.locator('[data-testid="stDownloadButton"]').count() == 4  # scenario, plan, PDF and sweep CSV


def test_an_invalid_plan_keeps_the_last_valid_one_on_screen_marked_stale(tools, app_url, page):
    page.goto(f"{app_url}/train?gpus=1024")
    tools.wait_rendered(page)
    gpus = gpus_field(page)
    gpus.fill("1000")
    gpus.press("Enter")
    page.get_by_text(re.compile("^This combination can't be simulated")).wait_for()
    stale = page.get_by_text(re.compile("^Showing the last valid plan: Training a 65B model"))
    stale.wait_for()
    assert stale.is_visible()
    assert page.locator('[data-testid="stMetricValue"]').count() == 8
    assert page.get_by_role("button", name="Use 1,024 GPUs").is_visible()
    exports = page.get_by_text("Scenario JSON (last valid plan)")
    exports.wait_for()  # the sidebar's exports may be drawn a moment after the page body
    assert exports.is_visible()


def test_a_value_typed_out_of_range_is_said_at_the_field(tools, app_url, page):
    page.goto(f"{app_url}/train")
    tools.wait_rendered(page)
    gpus = gpus_field(page)
    gpus.fill("20000000")
    gpus.press("Enter")
    note = page.get_by_text("Allowed: 1 to 10,000,000 GPUs; the plan uses 10,000,000, not 20,000,000.")
    note.wait_for()
    assert note.is_visible()
    field_box = page.locator('[data-testid="stNumberInput"]').filter(has=gpus).bounding_box()
    note_box = note.bounding_box()
    assert 0 <= note_box["y"] - (field_box["y"] + field_box["height"]) < 60  # right under the field


def test_parameter_server_with_the_zero_stage_on_auto(tools, app_url, page):
    page.goto(f"{app_url}/train")
    tools.wait_rendered(page)
    page.get_by_text("Precision and memory", exact=True).click()
    zero = page.get_by_role("combobox", name="ZeRO stage")
    assert zero.input_value() == "auto (follows sync)"  # shown as a choice, not as an empty select
    page.get_by_text("Gradient sync", exact=True).first.click()
    choose(page, "Gradient sync", "Parameter server")
    note = page.get_by_text("The ZeRO stage follows the sync (auto): now 0, was 1.")
    note.wait_for()
    tools.wait_rendered(page)
    assert not page.locator('[data-testid="stAlertContentError"]').count()
    assert zero.input_value() == "auto (follows sync)"


def _file_input(page, label: str):
    return page.locator('[data-testid="stFileUploader"]').filter(has_text=label).locator('input[type="file"]')


def test_a_hostile_import_is_a_message_and_no_traceback(tools, app_url, page, tmp_path):
    page.goto(f"{app_url}/train")
    tools.wait_rendered(page)
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    _file_input(page, "Import scenario JSON").set_input_files(str(deep))
    error = page.locator('[data-testid="stAlertContentError"]').filter(has_text="nesting depth")
    error.wait_for()
    assert "deep.json" in error.inner_text()
    assert not page.locator('[data-testid="stException"]').count()
    assert page.locator('[data-testid="stMetric"]').count() >= 7  # the plan on screen is untouched


def _accelerator_options(tools, page, url: str | None = None) -> list[str]:
    """The Train page's accelerator choices: opened by URL (a new session), or by the sidebar (this session)."""
    if url:
        page.goto(f"{url}/train")
    else:
        page.get_by_role("link", name="Train").click()
    tools.wait_rendered(page)
    page.get_by_role("combobox", name="Accelerator").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    names = options.all_inner_texts()
    page.keyboard.press("Escape")
    return names


def test_an_upload_in_one_browser_session_leaves_another_sessions_devices_alone(tools, app_url, page, tmp_path):
    import json

    from simulator.devices import shipped_profiles

    profile = json.loads(json.dumps(shipped_profiles()["h200-quick"]))
    profile["name"], profile["created_utc"] = "Browser rig, calibrated 2026-11-29", "2026-11-29T11:00:00+00:00"
    path = tmp_path / "rig.json"
    path.write_text(json.dumps(profile))
    other = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        before = _accelerator_options(tools, other, app_url)
        page.goto(f"{app_url}/calibrate")
        page.get_by_role("button", name="Upload").click()
        _file_input(page, "Profile JSON").set_input_files(str(path))
        page.get_by_text("Loaded rig.json; it is now the active profile.").wait_for()
        assert any("Browser rig" in name for name in _accelerator_options(tools, page))
        after = _accelerator_options(tools, other, app_url)
        assert after == before and not any("Browser rig" in name for name in after)
    finally:
        other.context.close()


def decide_answer(page) -> str:
    return page.locator("h3").filter(has_text="plan").first.inner_text()


def test_decide_budget_change_moves_the_recommendation_and_the_pdf_says_the_same(tools, app_url, page, tmp_path):
    from pypdf import PdfReader

    page.goto(app_url)  # the home page
    tools.wait_rendered(page)
    page.wait_for_url(re.compile(r"/decide"))
    before = decide_answer(page)
    assert before.startswith("The best plan within $10M")
    budget = page.get_by_label("Budget (million USD)", exact=True)
    budget.fill("40")
    budget.press("Enter")
    page.wait_for_function("t => [...document.querySelectorAll('h3')].some(h => h.innerText.startsWith(t))",
                           arg="The best plan within $40M")
    tools.wait_rendered(page)
    after = decide_answer(page)
    assert after != before
    with page.expect_download() as info:
        page.get_by_role("button", name="Download PDF").click()
    path = tmp_path / "decision.pdf"
    info.value.save_as(path)
    reader = PdfReader(path)
    text = " ".join(p.extract_text() for p in reader.pages)
    assert "The best plan within $40M" in " ".join(text.split())
    assert sum(len(p.images) for p in reader.pages) >= 2  # the Pareto chart and the tornado


def test_a_decide_link_opened_in_a_new_browser_keeps_the_budget(tools, app_url, page):
    page.goto(f"{app_url}/decide")
    tools.wait_rendered(page)
    budget = page.get_by_label("Budget (million USD)", exact=True)
    budget.fill("8")
    budget.press("Enter")
    page.wait_for_url(re.compile(r"/decide\?(.*&)?budget=8e6"))  # the address follows the question
    link = page.url
    other = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        other.goto(link)  # a new browser session: nothing but the address carries the question
        tools.wait_rendered(other)
        assert other.get_by_label("Budget (million USD)", exact=True).input_value() == "8"
        assert decide_answer(other).startswith("The best plan within $8M")
        assert not other.get_by_text("Some link parameters were not used").count()
    finally:
        other.context.close()


def test_pages_keep_their_inputs_when_the_menu_leads_away_and_back(tools, app_url, page):
    """Streamlit drops a page's widget state while another page runs: coming back through the menu (an address
    without parameters) must show the inputs as the page was left, and its address again."""
    page.goto(f"{app_url}/decide?budget=8e6")
    tools.wait_rendered(page)
    page.goto(f"{app_url}/train?gpus=64")  # a new session on Train, then the menu only
    tools.wait_rendered(page)
    for target, back, seen in (("Decide", "Train", lambda: gpus_field(page).input_value() == "64"),
                               ("Train", "Decide", lambda: decide_answer(page).startswith("The best plan within $10M"))):
        for name in (target, back):  # each page's own title first: the last page's charts may still be on screen
            page.get_by_role("link", name=name).click()
            page.get_by_role("heading", name=name, exact=True).wait_for(timeout=60_000)
            tools.wait_rendered(page)
        assert seen(), f"{back} forgot its inputs after a visit to {target}"
    page.get_by_label("Budget (million USD)", exact=True).fill("7")
    page.get_by_label("Budget (million USD)", exact=True).press("Enter")
    page.wait_for_url(re.compile(r"/decide\?(.*&)?budget=7e6"))
    page.get_by_role("link", name="Deploy").click()
    tools.wait_rendered(page)
    page.get_by_role("link", name="Decide").click()
    tools.wait_rendered(page)
    page.wait_for_url(re.compile(r"/decide\?(.*&)?budget=7e6"))  # the address comes back with the inputs
    # and the rerun with them lands (on a busy machine the address can come a render before the answer)
    page.wait_for_function("t => [...document.querySelectorAll('h3')].some(h => h.innerText.startsWith(t))",
                           arg="The best plan within $7M")
    assert decide_answer(page).startswith("The best plan within $7M")
