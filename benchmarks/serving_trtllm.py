"""Benchmark: published serving figures (NVIDIA TensorRT-LLM's Performance Overview tables) against the serving
family, through the public path only (Scenario.from_dict -> evaluate -> the row's figure), no per-row tuning.

The rows live in `benchmarks/published/serving_*.json` (format: one set per file, see docs/serving.md); this
reads them, predicts each and prints per set the median signed log-error, the median |error| and the worst row.
`python -m benchmarks.serving_trtllm [--rows] [SET ...]`; exit 1 when the max-throughput set `serving_trtllm`
has a median |error| above the 15% target.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.evaluator import evaluate
from simulator.scenario import Scenario

PUBLISHED = Path(__file__).parent / "published"
PATTERN = "serving_*.json"
TARGET_SET = "serving_trtllm"
TARGET_MEDIAN = 0.15


@dataclass(frozen=True)
class Residual:
    set: str
    id: str
    group: str
    figure: str
    published: float
    predicted: float

    @property
    def log_error(self) -> float:
        """ln(predicted / published): the signed error on the log-ratio scale (NaN where nothing was predicted)."""
        ok = self.predicted > 0 and math.isfinite(self.predicted)
        return math.log(self.predicted / self.published) if ok else math.nan


def load_sets(names: list[str] | None = None) -> list[dict[str, Any]]:
    """The serving sets, each file's JSON, in name order (only `names` where given)."""
    sets = [json.loads(p.read_text()) for p in sorted(PUBLISHED.glob(PATTERN))]
    return [s for s in sets if not names or s["set"] in names]


def predict(row: dict[str, Any]) -> float:
    """The model's value of the row's figure for the row's scenario."""
    return float(evaluate(Scenario.from_dict(row["scenario"])).value(row["figure"]))


def residuals(data: dict[str, Any]) -> list[Residual]:
    return [Residual(data["set"], r["id"], r["group"], r["figure"], float(r["published"]), predict(r))
            for r in data["rows"]]


def summary(res: list[Residual]) -> dict[str, float]:
    """Median signed log-error, median |relative error|, the worst |relative error| and rows without a value."""
    logs = [r.log_error for r in res if math.isfinite(r.log_error)]
    rel = [abs(math.expm1(x)) for x in logs]
    return {"rows": len(res), "missing": len(res) - len(logs),
            "median_log": statistics.median(logs) if logs else math.nan,
            "median_abs": statistics.median(rel) if rel else math.nan, "worst": max(rel) if rel else math.nan}


def _print_rows(res: list[Residual]) -> None:
    print(f"  {'row':<58} {'published':>11} {'predicted':>11} {'error':>8}")
    for r in res:
        err = math.expm1(r.log_error) if math.isfinite(r.log_error) else math.nan
        print(f"  {r.id:<58} {r.published:>11,.4g} {r.predicted:>11,.4g} {err:>+8.1%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="*", help="set names (default: every serving set)")
    ap.add_argument("--rows", action="store_true", help="print every row's error")
    args = ap.parse_args(argv)
    status = 0
    print(f"{'set / figure':<52} {'rows':>5} {'median ln(pred/pub)':>20} {'median |err|':>13} {'worst':>8}")
    for data in load_sets(args.sets):
        res = residuals(data)
        for figure in sorted({r.figure for r in res}):
            part = [r for r in res if r.figure == figure]
            s = summary(part)
            missing = f" ({s['missing']} not predicted)" if s["missing"] else ""
            print(f"{data['set'] + ' ' + figure:<52} {s['rows']:>5} {s['median_log']:>+20.3f} {s['median_abs']:>13.1%} "
                  f"{s['worst']:>8.1%}{missing}")
            if args.rows:
                _print_rows(part)
        if data["set"] == TARGET_SET and not summary(res)["median_abs"] <= TARGET_MEDIAN:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
