"""Every chart and key figure fits its space in a real browser: the four main pages opened in headless Chromium at
1400 and at 1000 px, each chart's drawing inside its box with its marks drawn, no title, legend or label cut
(clipped at the edge or shortened with an ellipsis), no NaN or 0.000000 on a chart, no metric cut; and Deploy with
an impossible latency target draws only what it can, with its two target labels apart.

One server and one browser for the module; a page per test. scripts/screenshot.py serves and opens them."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from test_browser import CLIPPED_METRICS_JS

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PAGES = ("decide", "train", "compress", "deploy", "calibrate")
WIDTHS = (1400, 1000)  # the width the pages are designed at, and a laptop's with the sidebar open
HEIGHT = 1000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="the playwright package is not installed"),
]

CHART = '[data-testid="stVegaLiteChart"]'
GRAPHIC = "svg.marks, canvas.marks"  # Vega's drawing (the chart's toolbar has svg icons of its own)

# Each chart on the page, as what a reader would miss:
#   outside: an SVG text or mark drawn beyond the drawing's box (clipped), as "text or mark: side by px";
#   edge: a canvas drawing's pixels touching its outer edge (a canvas shows no text to measure, but what runs
#         past its box is cut right at the edge);
#   cut: a text Vega shortened with an ellipsis (a label limit); bad: a text showing NaN or 0.000000;
#   marks: data marks drawn inside the box (SVG) or non-background pixels (canvas); beyond: the drawing's box
#   reaching past its column, or squeezed to less than 50 px.
VISIBLE_CHARTS_JS = """chartSelector => [...document.querySelectorAll(chartSelector)]
  .filter(chart => chart.getClientRects().length > 0)"""  # not those in a closed expander
CHART_PROBLEMS_JS = "([chartSelector, graphicSelector]) => (" + VISIBLE_CHARTS_JS + """)(chartSelector)
.map((chart, index) => {
  const graphic = chart.querySelector(graphicSelector);
  if (!graphic) return {index, name: chart.innerText.slice(0, 60), missing: true};
  const box = graphic.getBoundingClientRect();
  const frame = chart.closest('[data-testid="stVerticalBlock"]').getBoundingClientRect();  // its column
  const name = chart.getAttribute('aria-label') || '';
  const beyond = box.left < frame.left - 1 || box.right > frame.right + 1 || box.width < 50 || box.height < 50;
  const out = {index, name: name.slice(0, 70), missing: false, beyond, outside: [], edge: 0, cut: [], bad: [],
               marks: 0};
  if (graphic.tagName.toLowerCase() === 'canvas') {
    const {width, height} = graphic, pixels = graphic.getContext('2d').getImageData(0, 0, width, height).data;
    const ink = i => pixels[i + 3] > 0 && (pixels[i] < 235 || pixels[i + 1] < 235 || pixels[i + 2] < 235);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
      if (!ink(4 * (y * width + x))) continue;
      out.marks++;
      if (x < 2 || y < 2 || x >= width - 2 || y >= height - 2) out.edge++;
    }
    return out;
  }
  const side = b => [['left', box.left - b.left], ['right', b.right - box.right], ['top', box.top - b.top],
                     ['bottom', b.bottom - box.bottom]].filter(([, px]) => px > 1);
  for (const el of graphic.querySelectorAll('text, g.role-mark > *')) {
    const b = el.getBoundingClientRect();
    if (b.width === 0 && b.height === 0) continue;
    const text = el.tagName.toLowerCase() === 'text' ? el.textContent : '';
    const past = side(b);
    if (past.length) out.outside.push((text || el.parentElement.getAttribute('class')) + ': ' +
                                      past.map(([s, px]) => s + ' ' + Math.round(px) + ' px').join(', '));
    else if (!text && el.closest('g.role-mark')) out.marks++;
    if (text.endsWith('…')) out.cut.push(text);
    if (/NaN|0\\.000000/.test(text)) out.bad.push(text);
  }
  return out;
})"""


@pytest.fixture(scope="module")
def page(tools, app_url):
    with tools.browser_page(WIDTHS[0], HEIGHT) as page:
        page.set_default_timeout(60_000)
        yield page


def charts_drawn(page) -> None:
    """The page's charts are on screen, every one has drawn, and Streamlit has stopped running."""
    page.wait_for_selector(CHART)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    page.wait_for_function(f"([chart, graphic]) => ({VISIBLE_CHARTS_JS})(chart).every(c => c.querySelector(graphic))",
                           arg=[CHART, GRAPHIC])
    page.wait_for_timeout(500)  # vega's last paint after a resize


def problems(page) -> list[str]:
    """Everything a reader would miss on this page's charts and key figures, one line each."""
    found = []
    for c in page.evaluate(CHART_PROBLEMS_JS, [CHART, GRAPHIC]):
        where = f"chart {c['index']} ({c['name']!r})"
        if c["missing"]:
            found.append(f"{where}: not drawn")
            continue
        found += [f"{where}: {what} {c[what]}" for what in ("outside", "cut", "bad") if c[what]]
        if c["edge"] > 3:
            found.append(f"{where}: {c['edge']} drawn pixels on the canvas's edge (cut off)")
        if c["beyond"]:
            found.append(f"{where}: drawing reaches past its element or is squeezed")
        if c["marks"] == 0:
            found.append(f"{where}: no data mark drawn inside its box")
    found += [f"metric cut: {m}" for m in page.evaluate(CLIPPED_METRICS_JS)]
    return found


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_every_chart_and_figure_fits(tools, app_url, page, name, width):
    page.set_viewport_size({"width": width, "height": HEIGHT})
    page.goto(f"{app_url}/{name}")
    tools.wait_rendered(page, 90_000)  # metrics and a chart, Streamlit done
    charts_drawn(page)
    assert page.locator(CHART).count() >= 2
    assert problems(page) == []
    names = page.evaluate(f"chart => ({VISIBLE_CHARTS_JS})(chart).map(c => c.getAttribute('aria-label'))", CHART)
    assert all(len(n.split()) > 8 for n in names), names  # a sentence (alt=) each, not "Vega visualization"


def _target(page, field: str, seconds: str) -> None:
    box = page.get_by_role("spinbutton", name=re.compile(f"^{field}"))
    box.fill(seconds)
    box.press("Enter")


def test_an_impossible_latency_target_draws_only_what_it_can(tools, app_url, page):
    page.set_viewport_size({"width": WIDTHS[1], "height": HEIGHT})
    page.goto(f"{app_url}/deploy")
    charts_drawn(page)
    _target(page, "Time-to-first-token target", "0.05")  # below one request's prefill: nothing meets it
    page.get_by_text(re.compile("is not possible as set")).first.wait_for()
    _target(page, "Time-per-output-token target", "0.05")  # the two targets on one line of the chart
    page.wait_for_function("() => [...document.querySelectorAll('svg.marks text')]"
                           ".filter(t => /target 50 ms$/.test(t.textContent)).length === 2")
    charts_drawn(page)
    assert problems(page) == []  # no $NaN, no 0.000000, nothing cut
    labels = page.locator(f"{CHART} svg.marks text").filter(has_text=re.compile("target"))
    assert labels.count() == 2
    first, second = (labels.nth(i).bounding_box() for i in range(2))
    apart = (first["y"] + first["height"] <= second["y"] or second["y"] + second["height"] <= first["y"]
             or first["x"] + first["width"] <= second["x"] or second["x"] + second["width"] <= first["x"])
    assert apart, (first, second)
    assert page.get_by_text(re.compile("^No chart of GPUs or cost against traffic")).is_visible()
    assert page.locator(CHART).count() == 2  # latency and money; the traffic charts have nothing to draw
