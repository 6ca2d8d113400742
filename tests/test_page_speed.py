"""What keeps a page's rerun short (docs/benchmarks.md, "Browser rerun"): no forced full garbage collection after
each rerun, and no PDF library loaded before a PDF is asked for. Each check runs in a fresh interpreter, since the
test process has loaded everything already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
