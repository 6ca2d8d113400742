"""Server-side rerun time of the Decide page after a budget change, through Streamlit's AppTest.

Run: python -m benchmarks.decide_page_rerun [--reruns 15] [--warmups 3]

The app is driven as tests/test_app_decide.py drives it: after the first run (which evaluates the candidates once
and caches them), the budget is set to a new value before each timed `at.run()` (a new value each time, so the
decision itself is never a cache hit: the pick, the local refinement, the recommended plan, its Monte Carlo and
tornado are computed afresh; the candidates stay cached because a budget does not change them). The median
wall-clock time is reported against the 150 ms target, with the process's CPU time beside it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.train_page_rerun import APP, _app, _line, _quiet, _time_reruns

TARGET_MS = 150.0
BUDGET_KEY = "decide.decision.budget_usd"


def _home():
    return _app(page=None, timeout_s=300)  # the home page: Decide


def budget_reruns(warmups: int, reruns: int) -> np.ndarray:
    at = _home()
    values = [5.0 + 0.5 * k for k in range(warmups + reruns)]  # million USD, each new

    def change(app, i):
        app.number_input(key=BUDGET_KEY).set_value(values[i])

    return _time_reruns(at, change, warmups, reruns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=15)
    parser.add_argument("--warmups", type=int, default=3)
    args = parser.parse_args()
    _quiet()
    t0 = time.perf_counter()
    _home()
    print(f"Decide page, AppTest on {APP}: first run (imports, candidates) {1000 * (time.perf_counter() - t0):.0f} ms")
    print(_line("rerun after a budget change", budget_reruns(args.warmups, args.reruns), TARGET_MS))


if __name__ == "__main__":
    main()
