"""Speed of the decision through the public path: candidates per second, optimiser time, and the PDF.

Run: python -m benchmarks.decision_speed [--repeats 5]

* `decide(Scenario)` on the default space (about 730,000 candidates: sizes × tokens × GPUs × TP × PP × weight bits ×
  GPUs per replica), timed end to end and its search alone, median of `--repeats` runs after one warm-up;
* the same candidates evaluated by one whole sweep (brute force, `factorised=False`) once, beside the factorised
  evaluation, so the ratio is measured side by side on the same machine;
* `decision_pdf(decision)` (the report a user downloads), median of `--repeats` after one warm-up
  (target: <= 2 s);
* `decide(Scenario)` with the most Monte Carlo draws `decision.samples` allows (MAX_SAMPLES): median time of
  `--repeats`, and the peak of memory allocated during one more run (tracemalloc; targets: a few seconds, 1 GiB).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from simulator.decision import decide
from simulator.decision.decide import search_base
from simulator.decision.search import evaluate_candidates
from simulator.decision.space import default_space, only_registered
from simulator.families.decision import MAX_SAMPLES
from simulator.scenario import Scenario

SCENARIO = {"name": "Benchmark: a chat model for $20M", "model": {"params": 7e9},
            "serving": {"requests_per_s": 5.0}, "decision": {"budget_usd": 2e7, "samples": 2000, "seed": 0}}
PDF_TARGET_S = 2.0
MAX_SAMPLES_TARGET_S = 5.0  # "a few seconds" for the slowest question a user can ask
MAX_SAMPLES_TARGET_BYTES = 1024**3


def _median_s(fn, repeats: int) -> tuple[float, object]:
    fn()
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    scenario = Scenario.from_dict(SCENARIO)
    space = only_registered(default_space())
    total_s, d = _median_s(lambda: decide(scenario), args.repeats)
    n = d.candidates_evaluated
    print(f"decide: {n:,} candidates ({d.feasible:,} feasible), median {total_s:.2f} s end to end, search "
          f"{d.search_s:.2f} s -> {n / d.search_s / 1e6:.2f} M candidates/s")
    base = search_base(scenario)
    parts_s, parts = _median_s(lambda: evaluate_candidates(base, space), args.repeats)
    t0 = time.perf_counter()
    whole = evaluate_candidates(base, space, factorised=False)
    whole_s = time.perf_counter() - t0
    same = np.array_equal(parts.valid, whole.valid) and all(
        np.allclose(parts.figures[k][whole.valid], whole.figures[k][whole.valid], rtol=1e-9, equal_nan=True) for k in whole.figures)
    print(f"candidates: factorised {parts_s:.2f} s, one whole sweep {whole_s:.2f} s ({whole_s / parts_s:.1f}x), "
          f"identical: {same}")
    from report.decision_pdf import decision_pdf

    pdf_s, data = _median_s(lambda: decision_pdf(d), args.repeats)
    verdict = "meets" if pdf_s <= PDF_TARGET_S else "MISSES"
    print(f"decision PDF: median {pdf_s:.2f} s, {len(data):,} bytes; {verdict} the {PDF_TARGET_S:.0f} s target")
    most_samples(args.repeats)


def most_samples(repeats: int) -> None:
    """`decide` at the largest `decision.samples`: time and peak allocated memory, against their targets."""
    scenario = Scenario.from_dict({**SCENARIO, "decision": {**SCENARIO["decision"], "samples": MAX_SAMPLES}})
    total_s, d = _median_s(lambda: decide(scenario), repeats)
    tracemalloc.start()
    try:
        decide(scenario)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    ok = total_s <= MAX_SAMPLES_TARGET_S and peak_bytes <= MAX_SAMPLES_TARGET_BYTES
    print(f"decide with {MAX_SAMPLES:,} Monte Carlo draws: median {total_s:.2f} s end to end (search "
          f"{d.search_s:.2f} s), peak allocated {peak_bytes / 2**20:,.0f} MiB; {'meets' if ok else 'MISSES'} the "
          f"{MAX_SAMPLES_TARGET_S:.0f} s and {MAX_SAMPLES_TARGET_BYTES / 2**30:.0f} GiB targets")


if __name__ == "__main__":
    main()
