"""The real app in headless Chromium: served by `streamlit run`, driven with Playwright."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="the playwright package is not installed"),
]


def _tools():
    """scripts/screenshot.py serves the app and opens the browser the same way for the README screenshot."""
    spec = importlib.util.spec_from_file_location("modelfolio_screenshot", ROOT / "scripts" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tools():
    return _tools()


@pytest.fixture(scope="module")
def app_url(tools):
    with tools.serve_app() as url:
        yield url


@pytest.fixture(scope="module")
def page(tools, app_url):
    with tools.browser_page() as page:
        page.set_default_timeout(30_000)
        yield page


def headline(page) -> str:
    return page.locator("h4").filter(has_text="Training a").first.inner_text()


def metric_value(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def test_page_shows_answer_and_reacts_to_gpu_count(tools, app_url, page):
    page.goto(app_url)
    tools.wait_rendered(page)
    assert re.search(r"Training a \d+B model on 1\.4T tokens takes .* on 1,024 H100", headline(page))
    assert page.locator('[data-testid="stMetricValue"]').count() == 7
    before = metric_value(page, "Time (days)")
    gpus = page.get_by_label("GPUs", exact=True)
    gpus.fill("2048")
    gpus.press("Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('h4')].some(h => h.innerText.includes('2,048 H100'))"
    )
    tools.wait_rendered(page)
    assert metric_value(page, "Time (days)") != before
    page.wait_for_url(re.compile(r"[?&]gpus=2048"))


def test_link_parameters_are_applied(tools, app_url, page):
    page.goto(f"{app_url}/?m=llama2-13b&tok=2e12&gpus=512&hw=A100-80GB-SXM")
    tools.wait_rendered(page)
    text = headline(page)
    assert "on 2T tokens" in text and "512 A100" in text
    assert page.get_by_label("GPUs", exact=True).input_value() == "512"
