"""What keeps a page's rerun short (docs/benchmarks.md, "Browser rerun"): no forced full garbage collection after
each rerun and no PDF library loaded before a PDF is asked for (each checked in a fresh interpreter, since the test
process has loaded everything already), and charts that the browser updates in place after a main input changes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_server_skips_streamlits_full_collection_after_each_rerun():
    # read as `streamlit run` reads it: .streamlit/config.toml of the directory the app is run from
    code = "from streamlit import config; config.get_config_options(force_reparse=True); " \
           "print(config.get_option('runner.postScriptGC'))"
    assert _python(code) == "False"


def test_no_page_loads_the_pdf_library_until_a_pdf_is_asked_for():
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from streamlit.testing.v1 import AppTest
for page in ("decide", "train", "compress", "deploy"):
    at = AppTest.from_file({str(ROOT / "app.py")!r}, default_timeout=300)
    at.switch_page(f"app_pages/{{page}}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    print(page, "fpdf" in sys.modules)
"""
    assert _python(code).splitlines() == ["decide False", "train False", "compress False", "deploy False"]


MAIN_INPUT = {  # page -> (widget kind, key, two values): the inputs benchmarks/browser_rerun.py changes
    "decide": ("number_input", "decide.decision.budget_usd", (5.0, 8.0)),
    "train": ("number_input", "cluster.gpus", (2048, 1024)),
    "compress": ("selectbox", "compress.model", ("llama2-13b", "llama2-70b")),
    "deploy": ("number_input", "deploy.serving.requests_per_s", (20.0, 10.0)),
}


def _chart_keys(at) -> list[str]:
    """What Streamlit's frontend keys a drawn chart on: its spec with the datasets named by position, and its alt
    text. The same key after a rerun: the browser swaps the chart's data; another: it builds the chart anew."""
    keys = []
    for chart in at.get("vega_lite_chart"):
        spec = chart.proto.spec
        for i, dataset in enumerate(chart.proto.datasets):
            spec = spec.replace(json.dumps(dataset.name), json.dumps(f"#{i}"))
        keys.append(json.dumps([spec, chart.proto.alt]))
    return keys


@pytest.mark.usefixtures("fresh_caches")
@pytest.mark.parametrize("page", list(MAIN_INPUT))
def test_a_new_main_input_value_swaps_the_charts_data_instead_of_rebuilding_them(page):
    from streamlit.testing.v1 import AppTest

    kind, key, values = MAIN_INPUT[page]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.switch_page(f"app_pages/{page}.py").run()
    seen = []
    for value in values:
        getattr(at, kind)(key=key).set_value(value)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        seen.append(_chart_keys(at))
    assert seen[0] and seen[0] == seen[1]
