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


@pytest.fixture(scope="module")
def residuals() -> dict[str, list[bench.Residual]]:
    """Every set's residuals, predicted once for the module."""
    return {data["set"]: bench.residuals(data) for data in bench.load_sets()}


def test_every_row_evaluates_and_its_error_is_reported(residuals, capsys):
    for data in bench.load_sets():
        res = residuals[data["set"]]
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


@pytest.mark.parametrize("name", ["serving_trtllm", "serving_trtllm_v017"])
def test_max_throughput_is_not_biased(name, residuals):
    # issue 19 item 3: the serving throughput at maximum load was predicted too high (median +11% and +9% on these
    # sets before the FP8 GEMM efficiency and the fitted step overhead); a bias beyond ±5% is to be fixed in the model
    s = bench.summary(residuals[name])
    assert abs(math.expm1(s["median_log"])) <= 0.05


def test_the_step_overhead_is_what_its_fit_set_says(residuals):
    # serving/constants.py labels STEP_OVERHEAD_S a global correction fitted on the online inter-token latencies:
    # at that value their median log-error is about 0 (a change to the step model must refit it or drop the label)
    tpot = [r for r in residuals["serving_trtllm_online"] if r.figure == "serving.tpot_s"]
    assert abs(bench.summary(tpot)["median_log"]) <= 0.02
