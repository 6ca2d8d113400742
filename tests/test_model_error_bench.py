"""benchmarks/model_error.py: residuals in the term's own units, leave-one-group-out coverage, the data file."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import model_error as bench
from simulator.model_error import BY_NAME, Z_P90

SCENARIO = {"model": {"params": 7e9}, "training": {"tokens": 1e11}, "cluster": {"gpus": 64},
            "goodput": {"enabled": False}}


def _row(figure: str, published: float, group: str, scenario: dict | None = None) -> bench.Row:
    return bench.Row(f"{group}-{figure}", group, figure, published, scenario or SCENARIO, "test", "test",
                     bench.term_of(figure))


def test_a_throughput_row_measures_the_step_time_inversely():
    predicted = bench.record(_row("training.tokens_per_s", 1.0, "a"))["predicted"]
    rec = bench.record(_row("training.tokens_per_s", predicted / 1.2, "a"))  # published 20% slower
    assert rec["elasticity"] == pytest.approx(-1.0, rel=1e-6)
    assert rec["log_ratio"] == pytest.approx(math.log(1.2), rel=1e-6)  # the step time is 20% longer
    assert rec["other_sigma"] > 0  # the device's spreads already give this row a range


def test_a_gpu_hours_row_measures_goodput_after_the_step():
    s = SCENARIO | {"goodput": {"enabled": True}}
    row = _row("training.gpu_hours", 1.0, "a", s)
    assert row.term is BY_NAME["goodput"]
    predicted = bench.record(row)["predicted"]
    rec = bench.record(_row("training.gpu_hours", predicted * 1.3, "a", s))
    assert rec["elasticity"] == pytest.approx(1.0, rel=1e-6)
    assert rec["log_ratio"] == pytest.approx(math.log(1.3), rel=1e-6)


def test_an_unknown_figure_is_named():
    with pytest.raises(ValueError, match=r"training\.memory_per_gpu_gb"):
        bench.term_of("training.memory_per_gpu_gb")


def test_leave_one_group_out_coverage_judges_a_group_by_the_others(tmp_path):
    """Two groups whose rows are off by 10% and 40%: the 40% group is judged by the 10% group's spread only, and
    falls outside; the 10% group, judged by the 40% group's, falls inside."""
    predicted = bench.record(_row("training.tokens_per_s", 1.0, "x"))["predicted"]
    rows = [_row("training.tokens_per_s", predicted / 1.1, "near"), _row("training.tokens_per_s", predicted / 1.4, "far")]
    by_term = {d.name: [] for d in bench.DECLARED} | {"train_step": [bench.record(r) for r in rows]}
    checks = bench.coverage(rows, by_term)
    inside = {c.group: c.inside_after for c in checks}
    assert inside == {"near": True, "far": False}
    assert all(c.width_after >= c.width_before for c in checks)
    table = bench.table(checks)
    assert table[-1]["family"] == "all" and bench.table(checks, "set")[0]["family"] == "test"
    assert table[-1]["family"] == "all" and table[-1]["coverage_after"] == 0.5


def test_the_written_file_reads_back_as_terms(tmp_path, monkeypatch):
    predicted = bench.record(_row("training.tokens_per_s", 1.0, "x"))["predicted"]
    rows = [_row("training.tokens_per_s", predicted / f, g) for f, g in ((1.1, "a"), (0.95, "b"), (1.2, "c"))]
    by_term = {d.name: [] for d in bench.DECLARED} | {"train_step": [bench.record(r) for r in rows]}
    data = bench.data_file(by_term, bench.coverage(rows, by_term))
    term = data["terms"]["train_step"]
    assert term["rows"] == 3 and term["groups"] == ["a", "b", "c"] and len(term["residuals"]) == 3
    path = tmp_path / "model_error.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    from simulator import model_error

    loaded = model_error.load_terms(path)
    assert loaded["train_step"].sigma == pytest.approx(term["sigma"])
    assert loaded["train_step"].sigma <= abs(math.log(1.2)) / Z_P90 + 1e-9
    assert "3 published results" in loaded["train_step"].describe()


def _synthetic(residuals: list[float]) -> dict[str, list[dict]]:
    """One residual per group, train_step only (no evaluate)."""
    recs = [{"id": f"r{i}", "group": f"g{i}", "log_ratio": r, "source": "test", "other_sigma": 0.0}
            for i, r in enumerate(residuals)]
    return {d.name: [] for d in bench.DECLARED} | {"train_step": recs}


def test_the_quantile_is_raised_until_held_out_rows_are_covered():
    """Seven groups one residual each: the 80th percentile of the others covers fewer than 80% of the held-out
    groups, so the chosen quantile is higher, the least in LEVELS that reaches the target."""
    by_term = _synthetic([math.log(1 + 0.05 * k) for k in range(1, 8)])
    shares = [bench.heldout_share(by_term, float(lv)) for lv in bench.LEVELS]
    assert shares == sorted(shares)  # a higher quantile never covers fewer
    assert shares[0] < bench.LEVEL_TARGET
    level = bench.choose_level(by_term)
    assert level > 0.8
    i = list(bench.LEVELS).index(level)
    assert shares[i] >= bench.LEVEL_TARGET or level == bench.LEVELS[-1]
    assert all(s < bench.LEVEL_TARGET for s in shares[:i])


def test_the_data_file_says_its_quantile():
    by_term = _synthetic([0.1, -0.05, 0.2, 0.02])
    data = bench.data_file(by_term, [], 0.87)
    assert data["level"] == 0.87 and "quantile" in data["method"]
    assert data["terms"]["train_step"]["sigma"] >= round(bench.term_summary(by_term)["train_step"]["sigma"], 5)


def test_a_set_of_its_own_goes_to_its_own_term():
    """The MoE serving set measures the MoE term; every other serving set the dense step's, though the figure is
    the same."""
    from benchmarks.model_error import term_of

    assert term_of("serving.output_tokens_per_s_per_gpu", "serving_trtllm_moe").name == "serve_moe"
    assert term_of("serving.output_tokens_per_s_per_gpu", "serving_trtllm_v06").name == "serve_step"
    assert term_of("serving.output_tokens_per_s_per_gpu").name == "serve_step"
