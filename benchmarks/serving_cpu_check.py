"""Benchmark: the serving calibration check on this CPU (issue 11 item 5). A TinyDecoder (4 layers, hidden 512,
8 heads, vocabulary 1000, bf16) is served by the continuous-batching loop of calibration/serve_check.py under a
seeded Poisson stream (prompt 128, output 64 tokens, batch up to 16), as `python -m calibration serve-check` runs
it, and its measured output tokens/s is compared with the shipped CPU reference profile's prediction through
Scenario -> evaluate. Target: within 15%. Exit 1 when missed.

`python -m benchmarks.serving_cpu_check [--quick] [--profile P] [--json OUT]`. The profile must describe this
machine (the shipped one is the development VM: 2 cores of an Intel Xeon with AMX); the CPU share printed says
whether other load took the cores during the measurement (then the numbers measure the contention, not the model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from calibration.env import cpu_info
from calibration.serve_check import (
    DEFAULT_PROFILE,
    FULL,
    QUICK,
    TARGET_THROUGHPUT_ERR,
    profile_device,
    run_check,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serving_cpu_check")
    p.add_argument("--quick", action="store_true", help="two 9 s streams instead of two 40 s")
    p.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    ns = p.parse_args(argv)
    cfg = QUICK if ns.quick else FULL
    device = profile_device(ns.profile)
    cpu = cpu_info()
    print(f"# Serving calibration check: {cpu['cpu_model']}, {cpu['available_cpus']} CPUs available; "
          f"profile {ns.profile.name} ({device.id})")
    report = run_check(cfg, ns.profile, device=device)
    print(f"streams of {cfg.stream_s:g} s (first {cfg.warmup_s:g} s left out); rates: "
          + ", ".join(f"{k} {v:.3g}/s" for k, v in report.rates_per_s.items())
          + "; CPU share: " + ", ".join(f"{k} {v:.0%}" for k, v in report.cpu_share.items()))
    print(f"saturated: mean batch {report.saturated.mean_batch:.3g}; steady: mean batch {report.steady.mean_batch:.3g},"
          f" {report.steady.completed} requests; measured P90 TTFT {report.steady.ttft_p90_s:.4g} s, "
          f"TPOT {report.steady.tpot_p90_s:.4g} s")
    print(report.table())
    if ns.json:
        ns.json.write_text(json.dumps(report.as_dict(), indent=1))
    ok = abs(report.throughput_error) <= TARGET_THROUGHPUT_ERR
    print(f"throughput error {report.throughput_error:+.1%}: target within {TARGET_THROUGHPUT_ERR:.0%} "
          + ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
