"""Server-side rerun time of the Train page after one widget change, through Streamlit's AppTest.

Run: python -m benchmarks.train_page_rerun [--reruns 15] [--warmups 3]

The app is driven as tests/test_app_train.py drives it (`AppTest.from_file("app.py")`): after the first run,
one widget is changed and `at.run()` is timed (the script rerun on the server: inputs, scenario, plan, sweep
for the scaling charts, every element built; no browser). Two changes are timed, each `--warmups` times
untimed and then `--reruns` times, and the median wall-clock time is reported (target: <= 300 ms), with the
process's CPU time beside it (steadier on a machine shared with other work):

* the GPU count, a new value each time (so the plan and the GPU sweep are never in the page's cache);
* the accelerator, cycling through every device the selector offers, with `st.cache_data` cleared before each
  rerun so that each one evaluates its plan and sweep afresh (the catalog's own caches stay warm, as on a
  running server).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TARGET_MS = 300.0
TIMEOUT_S = 120


def _app(page: str | None = "app_pages/train.py", timeout_s: float = TIMEOUT_S):
    """The app after its first run, on `page` (None: the home page, Decide)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout_s)
    if page is not None:
        at.switch_page(page)
    at.run()
    if at.exception:
        raise RuntimeError(f"the app failed on its first run: {[e.value for e in at.exception]}")
    return at


def _time_reruns(at, change: Callable[[object, int], None], warmups: int, reruns: int,
                 before_each: Callable[[], None] = lambda: None) -> np.ndarray:
    """(wall ms, this process's CPU ms) of `at.run()` after `change(at, i)`, one row per timed rerun: the
    `reruns` runs that follow `warmups` untimed ones."""
    times = []
    for i in range(warmups + reruns):
        change(at, i)
        before_each()
        w0, c0 = time.perf_counter(), time.process_time()
        at.run()
        elapsed = (1000.0 * (time.perf_counter() - w0), 1000.0 * (time.process_time() - c0))
        if at.exception:
            raise RuntimeError(f"rerun {i} failed: {[e.value for e in at.exception]}")
        if i >= warmups:
            times.append(elapsed)
    return np.array(times)


def gpu_reruns(warmups: int = 3, reruns: int = 15) -> np.ndarray:
    """Change cluster.gpus to a new multiple of tp×pp before each rerun."""
    at = _app()
    unit = int(at.number_input(key="cluster.tp").value) * int(at.number_input(key="cluster.pp").value)
    start = int(at.number_input(key="cluster.gpus").value)
    values = [start + unit * (k + 1) for k in range(warmups + reruns)]  # each new: never a cache hit

    def change(app, i):
        app.number_input(key="cluster.gpus").set_value(values[i])

    return _time_reruns(at, change, warmups, reruns)


def accelerator_reruns(warmups: int = 3, reruns: int = 15) -> np.ndarray:
    """Change cluster.accelerator to the next device of the selector before each rerun (cache cleared)."""
    import streamlit as st

    from simulator.devices import all_devices

    at = _app()
    current = at.selectbox(key="cluster.accelerator").value
    ids = [d for d in all_devices() if d != current] + [current]  # the selector's list, without uploads
    cycle: Iterator[str] = itertools.cycle(ids)

    def change(app, _i):
        app.selectbox(key="cluster.accelerator").set_value(next(cycle))

    return _time_reruns(at, change, warmups, reruns, before_each=st.cache_data.clear)


def _line(name: str, ms: np.ndarray, target_ms: float = TARGET_MS) -> str:
    wall, cpu = np.median(ms, axis=0)
    verdict = "meets" if wall <= target_ms else "MISSES"
    return (f"{name:<36} median {wall:5.0f} ms wall (min {ms[:, 0].min():.0f}, max {ms[:, 0].max():.0f}, "
            f"n {len(ms)}), {cpu:5.0f} ms CPU; {verdict} the {target_ms:.0f} ms target")


def _quiet() -> None:
    """Drop Streamlit's bare-mode notices ("No runtime found" after each cache clear, "missing ScriptRunContext");
    a filter, since AppTest resets the loggers' levels."""
    for name in ("streamlit.runtime.caching.cache_data_api", "streamlit.runtime.scriptrunner_utils.script_run_context"):
        logging.getLogger(name).addFilter(
            lambda r: "No runtime found" not in r.getMessage() and "missing ScriptRunContext" not in r.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=15)
    parser.add_argument("--warmups", type=int, default=3)
    args = parser.parse_args()
    _quiet()
    t0 = time.perf_counter()
    _app()
    print(f"Train page, AppTest on {APP}: first run (imports, catalog) {1000 * (time.perf_counter() - t0):.0f} ms")
    print(_line("rerun after a GPU count change", gpu_reruns(args.warmups, args.reruns)))
    print(_line("rerun after an accelerator change", accelerator_reruns(args.warmups, args.reruns)))


if __name__ == "__main__":
    main()
