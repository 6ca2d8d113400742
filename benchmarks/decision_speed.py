"""Speed of the decision through the public path: candidates per second, optimiser time, and the PDF.

Run: python -m benchmarks.decision_speed [--repeats 5]

* `decide(Scenario)` on the default space (about 730,000 candidates: sizes × tokens × GPUs × TP × PP × weight bits ×
  GPUs per replica), timed end to end and its search alone, median of `--repeats` runs after one warm-up;
* the same candidates evaluated by one whole sweep (brute force, `factorised=False`) once, beside the factorised
  evaluation, so the ratio is measured side by side on the same machine;
* `decision_pdf(decision)` (the report a user downloads), median of `--repeats` after one warm-up
  (target: <= 2 s);
* `decide(Scenario)` with the most Monte Carlo draws `decision.samples` allows (MAX_SAMPLES): median time of
  `--repeats`, and the peak of memory allocated during one more run (tracemalloc; targets: a few seconds, 1 GiB);
* what the global sensitivity (Sobol' indices) adds: `decide` with `decision.sobol_samples` at its default, at 0
  and at its largest (MAX_SOBOL_SAMPLES), interleaved run by run so the three see the same machine; the median
  of the paired differences, in wall and CPU time (target at the default: under 0.25 s of CPU time, which is
  the wall time on a quiet machine and does not grow when other processes share the cores).
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
from simulator.families.decision import MAX_SAMPLES, MAX_SOBOL_SAMPLES
from simulator.inputs import INPUTS
from simulator.scenario import Scenario

SCENARIO = {"name": "Benchmark: a chat model for $20M", "model": {"params": 7e9},
            "serving": {"requests_per_s": 5.0}, "decision": {"budget_usd": 2e7, "samples": 2000, "seed": 0}}
PDF_TARGET_S = 2.0
MAX_SAMPLES_TARGET_S = 5.0  # "a few seconds" for the slowest question a user can ask
MAX_SAMPLES_TARGET_BYTES = 1024**3
SOBOL_TARGET_S = 0.25  # "well under a second" added to every decision at the default (CPU seconds)


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
    sobol_cost(args.repeats)


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


def sobol_cost(repeats: int) -> None:
    """The time the Sobol' indices add to `decide`: decision.sobol_samples at its default, at its largest and at 0,
    run in turn `repeats` times (after one warm-up each); the median of each run's difference from the 0 run, in
    wall time and in this process's CPU time (the steadier of the two on a shared machine)."""
    default = INPUTS["decision.sobol_samples"].default
    scenarios = {n: Scenario.from_dict({**SCENARIO, "decision": {**SCENARIO["decision"], "sobol_samples": n}})
                 for n in (0, default, MAX_SOBOL_SAMPLES)}
    wall: dict[int, list[float]] = {n: [] for n in scenarios}
    cpu: dict[int, list[float]] = {n: [] for n in scenarios}
    evaluations: dict[int, int] = {}
    for run in range(repeats + 1):
        for n, scenario in scenarios.items():
            t0, c0 = time.perf_counter(), time.process_time()
            d = decide(scenario)
            if run:  # the first round warms up
                wall[n].append(time.perf_counter() - t0)
                cpu[n].append(time.process_time() - c0)
            if d.global_sensitivity is not None:
                evaluations[n] = d.global_sensitivity.evaluations
    for n in (default, MAX_SOBOL_SAMPLES):
        added_s = float(np.median(np.subtract(wall[n], wall[0])))
        added_cpu_s = float(np.median(np.subtract(cpu[n], cpu[0])))
        verdict = "" if n != default else f"; {'meets' if added_cpu_s <= SOBOL_TARGET_S else 'MISSES'} the " \
                                          f"{SOBOL_TARGET_S:.2f} s target (CPU)"
        print(f"Sobol' indices, {n:,} base samples ({evaluations[n]:,} evaluations): decide median "
              f"{np.median(wall[n]):.2f} s against {np.median(wall[0]):.2f} s without, adds {added_s:.3f} s "
              f"({added_cpu_s:.3f} s CPU; median of {repeats} paired runs){verdict}")


if __name__ == "__main__":
    main()
