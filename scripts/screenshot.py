"""Take the README screenshot: serve the app on 127.0.0.1, open it in headless Chromium, save docs/screenshot.png.

    .venv/bin/python scripts/screenshot.py [--query "gpus=2048"] [--out docs/screenshot.png]

`serve_app` and `browser_page` are reused by tests/test_browser.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
METRIC = '[data-testid="stMetricValue"]'
CHART = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as reply:
            if reply.read().strip() == b"ok":
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url}/_stcore/health did not answer ok within {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and anything it started: it leads its own process group."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def serve_app(port: int | None = None, timeout_s: float = 40, root: Path = ROOT) -> Iterator[str]:
    """Run `streamlit run app.py` on 127.0.0.1 only; yield its base URL; always stop it. `root`: the checkout
    served (another one for a before/after benchmark: its own code is imported, run from its directory)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_healthy(url, proc, timeout_s)
            except (RuntimeError, TimeoutError) as exc:
                log.seek(0)
                raise RuntimeError(f"{exc}; streamlit said:\n{log.read()[-2000:].decode(errors='replace')}") from exc
            yield url
        finally:
            _stop(proc)


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    """A Playwright page in headless Debian Chromium, closed afterwards."""
    from playwright.sync_api import sync_playwright  # only the browser paths need Playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def wait_rendered(page, timeout_ms: int = 30_000) -> None:
    """Wait for the metrics and every chart, then for Streamlit to stop running."""
    page.wait_for_selector(METRIC, timeout=timeout_ms)
    page.wait_for_selector(CHART, timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", default="", help='URL query string, e.g. "m=llama2-70b&gpus=2048"')
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--full-page", action="store_true", help="capture the whole scrolling page")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with serve_app() as url, browser_page(args.width, args.height) as page:
        page.goto(f"{url}/?{args.query}" if args.query else url)
        wait_rendered(page)
        page.wait_for_timeout(500)  # let vega finish its last paint
        page.screenshot(path=str(args.out), full_page=args.full_page)
    print(f"wrote {args.out} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
