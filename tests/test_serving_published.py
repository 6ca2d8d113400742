"""The published serving sets (benchmarks/published/serving_*.json): every row is well formed, evaluates through
the public path, and the benchmark reports its error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import serving_trtllm as bench
from simulator.inputs import FIGURES

SETS = sorted((Path(__file__).parents[1] / "benchmarks" / "published").glob("serving_*.json"))
ROWS = [(p.stem, row) for p in SETS for row in json.loads(p.read_text())["rows"]]


def test_the_serving_sets_are_there():
    names = {p.stem for p in SETS}
    assert {"serving_trtllm", "serving_trtllm_v017", "serving_trtllm_online", "serving_trtllm_v06"} <= names
    assert len(ROWS) >= 300


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.stem)
def test_set_is_traceable(path):
    data = json.loads(path.read_text())
    assert data["set"] == path.stem
    assert data["source"] and data["retrieved"]
    ids = [r["id"] for r in data["rows"]]
    assert len(ids) == len(set(ids)), "row ids must be unique within a set"
    for r in data["rows"]:
        assert r["figure"] in FIGURES
        assert r["group"].startswith("trtllm/") and r["published"] > 0 and r["published_as"] and r["note"]


def test_every_row_evaluates_and_its_error_is_reported(capsys):
    for data in bench.load_sets():
        res = bench.residuals(data)
        assert len(res) == len(data["rows"])
        bad = [r.id for r in res if not math.isfinite(r.log_error)]
        assert not bad, f"rows without a prediction: {bad[:5]}"
    bench.main(["--rows"])
    out = capsys.readouterr().out
    for _, row in ROWS:
        assert row["id"] in out  # each row's error is printed
    for name in ("serving_trtllm", "serving_trtllm_v017", "serving_trtllm_online", "serving_trtllm_v06"):
        assert name in out


def test_summary_is_the_median_of_log_ratios():
    rows = [bench.Residual("s", str(i), "g", "f", 100.0, p) for i, p in enumerate((110.0, 90.0, 150.0))]
    s = bench.summary(rows)
    assert s["median_log"] == pytest.approx(math.log(1.1))
    assert s["median_abs"] == pytest.approx(0.1)
    assert s["worst"] == pytest.approx(0.5)
