"""What a user waits for in a real browser: change-to-last-redraw on the Decide, Train, Compress and Deploy pages.

Run: python -m benchmarks.browser_rerun [--changes 10] [--warmups 2] [--pages decide,train] [--compare DIR]

The app is served by `streamlit run` on 127.0.0.1 and driven in headless Debian Chromium through Playwright
(scripts/screenshot.py: `serve_app`, the browser's path and flags). On each page one main input is changed,
alternating between two values, `--warmups` times untimed, then `--changes` times timed. A change is timed in the
page, on its own clock, from the committing keydown (Enter in the field) to the last change drawn in the app by
the rerun it started: a DOM mutation inside Streamlit's app root or a draw on a canvas (charts and tables draw
there). The rerun must have run (Streamlit's `data-test-script-state` on the app root went to "running" after the
keydown, or the server answered) and finished ("notRunning"), and then nothing may be drawn or received for
`--quiet-ms` (300 ms, not counted; in 40 timed changes on the development machine no two draws after the script
finished were more than 27 ms apart). Not counted as drawn: a select box's closing menu (outside the app root) and
DOM inside a canvas (its accessibility fallback: a table mirrors its cells there ~200 ms after drawing them). A
page's cold load is its first visit in a new browser context (a new session, an empty browser cache) on a server
that has not served that page before (imports and the page's caches cold), from navigation start to the last
draw, with a 2 s quiet period (the chart library loads silently for a while on first use).

Alternating between two values is what a user comparing two answers does; after the warm-ups both values are in
the pages' `st.cache_data` caches, so the timed reruns measure what every rerun pays (widgets, charts, tables,
the transfer and the browser's work), not the model. `--fresh` types a new value every time instead (12 of them:
the defaults' 2 + 10 changes), so every rerun also computes its answer and builds its charts, as the server-side
benchmarks (`train_page_rerun`, `decide_page_rerun`: AppTest, no browser) do; on Compress it changes the training
tokens, since there are only 8 preset models.

Beside the wall times, the CPU time the server process and the browser's processes spent per timed change (Linux
/proc; steadier than wall time on a shared machine) says where the time goes. `--compare DIR` serves a second
checkout (e.g. `git worktree add /tmp/old 63bf0b0`) with its own browser at the same time and interleaves the two
change by change, so both see the same machine load. The load average (os.getloadavg) is printed with every page:
on a shared machine the numbers measure the neighbours too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 500.0
TIMEOUT_MS = 60_000
COLD_QUIET_MS = 2_000.0
VIEWPORT = {"width": 1400, "height": 1000}

# Installed before any page script runs, on the page's own clock (performance.now(): ms since navigation start):
# the last change drawn in the app (a DOM mutation inside Streamlit's app root, or a draw on a canvas: charts and
# tables draw there; a select box's closing menu lives outside the root and DOM inside a canvas is its
# accessibility fallback, never drawn: a table mirrors its cells there ~200 ms after drawing them), the root's
# script-state changes, the last message from the server (a rerun quick enough never shows "running") and the
# committing keydown.
PROBE_JS = """(() => {
  const b = window.__bench = {t0: null, last: 0, message: 0, states: []};
  const drawn = el => {
    const e = el.nodeType === Node.ELEMENT_NODE ? el : el.parentElement;
    return !!(e && e.closest('[data-testid="stApp"]') && !e.closest('canvas'));
  };
  new MutationObserver(records => {
    const t = performance.now();
    for (const r of records) {
      if (r.attributeName === 'data-test-script-state' && r.target.getAttribute('data-testid') === 'stApp')
        b.states.push([t, r.target.getAttribute('data-test-script-state')]);
      if (drawn(r.target)) b.last = t;
    }
  }).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  const canvas = CanvasRenderingContext2D.prototype;
  for (const name of ['fill', 'stroke', 'fillRect', 'strokeRect', 'clearRect', 'fillText', 'strokeText',
                      'drawImage', 'putImageData']) {
    const draw = canvas[name];
    canvas[name] = function (...args) { b.last = performance.now(); return draw.apply(this, args); };
  }
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => { b.message = performance.now(); });
    }
  };
  document.addEventListener('keydown', e => { if (e.key === 'Enter' && b.t0 === null) b.t0 = performance.now(); },
                            true);
})()"""

# Done: the server answered after `since` (a rerun ran), the app's script is not running, and nothing has been
# drawn or sent for `quiet` ms.
SETTLED_JS = """([since, quiet]) => {
  const b = window.__bench, root = document.querySelector('[data-testid="stApp"]');
  const ran = b.message >= since || b.states.some(([t, s]) => t >= since && s === 'running');
  return ran && root && root.getAttribute('data-test-script-state') === 'notRunning'
         && performance.now() - Math.max(b.last, b.message) >= quiet;
}"""

ARM_JS = "() => { window.__bench.t0 = null; }"
T0_JS = "() => window.__bench.t0"
LAST_JS = "() => window.__bench.last"
FAILED = '[data-testid="stException"]'
ANSWER = '[data-testid="stMetricValue"]'


@dataclass(frozen=True)
class Case:
    """One page and the main input a user changes on it: the widget's key (its `st-key-` class) and the values
    typed into the field in turn (a select box filters its options by the typed text and takes the first on
    Enter)."""

    page: str
    widget_key: str
    label: str
    values: tuple[str, ...]

    @property
    def selector(self) -> str:
        return f".st-key-{self.widget_key.replace('.', '-')} input"


CASES = (  # two values in turn: after the warm-ups, every rerun finds its answer in the page's caches
    Case("decide", "decide.decision.budget_usd", "budget $5M ↔ $8M", ("5", "8")),
    Case("train", "cluster.gpus", "GPUs 2,048 ↔ 1,024", ("2048", "1024")),
    Case("compress", "compress.model", "model Llama 2 13B ↔ 70B", ("Llama 2 13B", "Llama 2 70B")),
    Case("deploy", "deploy.serving.requests_per_s", "requests/s 20 ↔ 10", ("20", "10")),
)
FRESH_CASES = (  # `--fresh`: a new value every time (12), so every rerun computes its answer
    Case("decide", "decide.decision.budget_usd", "budget $5.5M, $6M, … (new)",
         tuple(f"{5.5 + 0.5 * k:g}" for k in range(12))),
    Case("train", "cluster.gpus", "GPUs 768, 1,536, … (new)",  # 32 × a data-parallel width that divides batch 1,536
         tuple(str(32 * dp) for dp in (24, 48, 96, 192, 384, 768, 16, 12, 8, 6, 4, 3))),
    Case("compress", "compress.training.tokens", "training tokens 1.4T, 1.6T, … (new)",
         tuple(f"{1400 + 200 * k}" for k in range(12))),
    Case("deploy", "deploy.serving.requests_per_s", "requests/s 11, 12, … (new)",
         tuple(f"{11 + k}" for k in range(12))),
)


@dataclass
class Timings:
    """One page on one tree: cold load and timed changes (ms), and the CPU ms the server and the browser spent
    per timed change."""

    tree: str
    case: Case
    cold_ms: float = float("nan")
    redraw_ms: list[float] = field(default_factory=list)  # keydown -> last draw
    server_cpu_ms: float = 0.0
    browser_cpu_ms: float = 0.0
    load_1min: list[float] = field(default_factory=list)


@dataclass
class Served:
    """One checkout served, and the browser that drives it (one each, so that each one's CPU time is its own)."""

    name: str
    root: Path
    url: str
    server_pid: int
    browser: Any
    browser_pid: int


# ---------------------------------------------------------------- CPU time from /proc


def _procs() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, command name, user + system CPU ticks) of every process (Linux /proc)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text[text.rindex(")") + 2:].split()  # from the state on: ppid is 2nd, utime 12th, stime 13th
            table[int(stat.parent.name)] = (int(fields[1]), name, int(fields[11]) + int(fields[12]))
    return table


def _descendants(procs: dict[int, tuple[int, str, int]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in procs.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_ms(root: int) -> float:
    """CPU time (user + system) of a process and its living descendants, ms."""
    procs = _procs()
    ticks = sum(procs[pid][2] for pid in _descendants(procs, root) if pid in procs)
    return 1000.0 * ticks / os.sysconf("SC_CLK_TCK")


def _server_pid(port: int) -> int:
    """The `streamlit run` process serving `port` (a descendant of this one)."""
    for pid in _descendants(_procs(), os.getpid()):
        with contextlib.suppress(OSError):
            if f"--server.port\0{port}\0" in Path(f"/proc/{pid}/cmdline").read_text():
                return pid
    raise RuntimeError(f"no streamlit process of this benchmark serves port {port}")


def _browser_roots() -> set[int]:
    """Chromium's main processes started by this one (a chromium process whose parent is not chromium)."""
    procs = _procs()
    return {pid for pid in _descendants(procs, os.getpid())
            if pid in procs and procs[pid][1].startswith("chrom") and not procs[procs[pid][0]][1].startswith("chrom")}


# ---------------------------------------------------------------- driving a page


def _settle(page, since_ms: float, quiet_ms: float) -> float:
    """Wait for the rerun started after `since_ms` to finish and the app to stay still; its last draw (ms)."""
    page.wait_for_function(SETTLED_JS, arg=[since_ms, quiet_ms], polling=25, timeout=TIMEOUT_MS)
    if page.locator(FAILED).count():
        raise RuntimeError(f"the page shows an exception: {page.locator(FAILED).first.inner_text()[:500]}")
    return page.evaluate(LAST_JS)


def cold_load(context, url: str, case: Case):
    """Open the page in `context` (a new session); (the page, ms from navigation start to its last draw)."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/{case.page}")
    last_ms = _settle(page, 0.0, COLD_QUIET_MS)
    page.wait_for_selector(ANSWER)  # the page gave its answer, not only an error
    return page, last_ms


def change(page, case: Case, value: str, quiet_ms: float) -> float:
    """Type `value` into the case's field and press Enter; ms from the keydown to the rerun's last draw."""
    box = page.locator(case.selector)
    box.click()
    box.fill(value)
    page.evaluate(ARM_JS)
    box.press("Enter")
    t0 = page.evaluate(T0_JS)
    if t0 is None:
        raise RuntimeError(f"{case.page}: the Enter keydown was not seen")
    last_ms = _settle(page, t0, quiet_ms)
    if not box.input_value().startswith(value):
        raise RuntimeError(f"{case.page}: the field shows {box.input_value()!r} after {value!r} was typed")
    return last_ms - t0


def run_page(trees: list[Served], case: Case, warmups: int, changes: int, quiet_ms: float) -> list[Timings]:
    """Cold load, then the changes; with two trees, each step is taken on one and then on the other."""
    results = [Timings(t.name, case) for t in trees]
    pages, contexts = [], []
    try:
        for tree, result in zip(trees, results, strict=True):
            context = tree.browser.new_context(viewport=VIEWPORT)
            context.add_init_script(PROBE_JS)
            contexts.append(context)
            result.load_1min.append(os.getloadavg()[0])
            page, result.cold_ms = cold_load(context, tree.url, case)
            pages.append(page)
        for i in range(warmups + changes):
            for tree, result, page in zip(trees, results, pages, strict=True):
                server0, browser0 = cpu_ms(tree.server_pid), cpu_ms(tree.browser_pid)
                redraw_ms = change(page, case, case.values[i % len(case.values)], quiet_ms)
                if i >= warmups:
                    result.redraw_ms.append(redraw_ms)
                    result.server_cpu_ms += (cpu_ms(tree.server_pid) - server0) / changes
                    result.browser_cpu_ms += (cpu_ms(tree.browser_pid) - browser0) / changes
        for result in results:
            result.load_1min.append(os.getloadavg()[0])
    finally:
        for context in contexts:
            context.close()
    return results


def _screenshot_tools():
    """scripts/screenshot.py (not a package): serve_app, the browser's path and flags."""
    spec = importlib.util.spec_from_file_location("modelfolio_screenshot", REPO / "scripts" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serving(tools, pw, roots: dict[str, Path]) -> Iterator[list[Served]]:
    """Each checkout served by `streamlit run` and driven by its own headless Chromium; all stopped after."""
    with contextlib.ExitStack() as stack:
        trees = []
        for name, root in roots.items():
            url = stack.enter_context(tools.serve_app(root=root, timeout_s=120))
            before = _browser_roots()
            browser = pw.chromium.launch(executable_path=tools.CHROMIUM, args=tools.CHROMIUM_ARGS, headless=True)
            stack.callback(browser.close)
            (browser_pid,) = _browser_roots() - before
            trees.append(Served(name, root, url, _server_pid(int(url.rsplit(":", 1)[1])), browser, browser_pid))
        yield trees


# ---------------------------------------------------------------- the report


def describe_tree(root: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{git('rev-parse', '--short', 'HEAD') or '?'}{dirty}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _row(t: Timings) -> str:
    ms = np.array(t.redraw_ms)
    median = np.median(ms)
    verdict = "meets" if median <= TARGET_MS else "misses"
    load = "–".join(f"{x:.1f}" for x in (min(t.load_1min), max(t.load_1min)))
    return (f"| {t.case.page.capitalize()} | {t.tree} | {t.case.label} | {t.cold_ms / 1000:.1f} | **{median:.0f}** "
            f"({verdict}) | {np.percentile(ms, 90):.0f} | {ms.min():.0f}–{ms.max():.0f} | {t.server_cpu_ms:.0f} | "
            f"{t.browser_cpu_ms:.0f} | {len(ms)} | {load} |")


def table(results: list[Timings]) -> str:
    head = ("| page | tree | input changed | cold load (s) | change-to-last-redraw, median (ms) | P90 | min–max | "
            "server CPU per change (ms) | browser CPU per change (ms) | n | load average, 1 min |")
    return "\n".join([head, "|" + "---|" * 11, *(_row(t) for t in results)])


def header(started_load: tuple[float, ...], chromium: str, args: argparse.Namespace, wall_s: float) -> str:
    def loads(x: tuple[float, ...]) -> str:
        return ", ".join(f"{v:.2f}" for v in x)
    return (f"Browser rerun benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: {cpu_model()}, "
            f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) {loads(started_load)} at the start, "
            f"{loads(os.getloadavg())} at the end; Chromium {chromium}, headless, {VIEWPORT['width']} × "
            f"{VIEWPORT['height']}; {args.warmups} warm-up and {args.changes} timed changes per page, quiet period "
            f"{args.quiet_ms:.0f} ms (not counted); target: median ≤ {TARGET_MS:.0f} ms on a quiet machine; "
            f"{wall_s:.0f} s in all.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10, help="timed changes per page (default 10)")
    parser.add_argument("--warmups", type=int, default=2, help="untimed changes first (default 2: both values)")
    parser.add_argument("--quiet-ms", type=float, default=300.0, help="nothing drawn this long: done (300)")
    parser.add_argument("--pages", default=",".join(c.page for c in CASES), help="comma-separated page names")
    parser.add_argument("--compare", type=Path, help="another checkout to serve and time side by side")
    parser.add_argument("--fresh", action="store_true", help="a new value every change (no cached answer)")
    args = parser.parse_args(argv)
    tools = _screenshot_tools()
    if not Path(tools.CHROMIUM).exists():
        print(f"{tools.CHROMIUM} not found: make browser-deps (apt-get install -y chromium)", file=sys.stderr)
        return 2
    cases = [c for c in (FRESH_CASES if args.fresh else CASES) if c.page in args.pages.split(",")]
    roots = {"this tree": REPO} | ({"compared": args.compare.resolve()} if args.compare else {})
    started, started_load = time.monotonic(), os.getloadavg()
    from playwright.sync_api import sync_playwright  # only this benchmark needs Playwright

    results: list[Timings] = []
    with sync_playwright() as pw, serving(tools, pw, roots) as trees:
        chromium = trees[0].browser.version
        for case in cases:
            results += run_page(trees, case, args.warmups, args.changes, args.quiet_ms)
            print(f"  {case.page}: done at {time.monotonic() - started:.0f} s", file=sys.stderr)
    for t in results:
        t.tree = f"{t.tree} ({describe_tree(roots[t.tree])})"
    print(header(started_load, chromium, args, time.monotonic() - started) + "\n", flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
