import json
import math

import numpy as np
import pytest

from benchmarks.published_rows import (
    PUBLISHED_DIR,
    errors,
    load_sets,
    optimism,
    predict,
    residuals,
    set_paths,
    summary,
)
from simulator import Scenario, evaluate
from simulator.inputs import FIGURES

TRAINING = load_sets("training")


def test_training_sets_are_well_formed():
    paths = set_paths("training")
    assert [p.name for p in paths] == ["training_gpu_hours.json", "training_throughput.json"]
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["set"] == path.stem and data["source"] and data["retrieved"]
    ids = [r["id"] for r in TRAINING]
    assert len(ids) == len(set(ids)) >= 30
    for r in TRAINING:
        assert r["figure"] in FIGURES, r["id"]
        assert r["published"] > 0 and r["published_as"] and r["note"] and r["group"], r["id"]
        assert r["source"], r["id"]
        Scenario.from_dict(r["scenario"])  # every scenario is valid as written


def test_throughput_rows_have_peak_settings_and_gpu_hours_rows_have_goodput():
    for r in TRAINING:
        goodput = r["scenario"].get("goodput", {}).get("enabled", True)
        assert goodput is (r["figure"] == "training.gpu_hours"), r["id"]


def test_every_group_is_one_paper_or_family_with_several_rows():
    groups = {r["group"] for r in TRAINING}
    assert {"narayanan2021", "korthikanti2022", "touvron2023a", "touvron2023b", "dubey2024"} <= groups
    assert sum(r["group"] == "narayanan2021" for r in TRAINING) == 10
    assert sum(r["group"] == "korthikanti2022" for r in TRAINING) == 8


def test_predict_is_the_public_path():
    row = next(r for r in TRAINING if r["id"] == "korthikanti-t5-175b-full")
    plan = evaluate(Scenario.from_dict(row["scenario"]))
    assert predict(row) == float(plan.value("training.step_time_s"))


def test_summary_of_log_errors():
    s = summary(np.log([1.1, 0.8, 1.0]))
    assert s["n"] == 3
    assert s["median_pct"] == pytest.approx(0.0, abs=1e-9)
    assert s["median_abs_pct"] == pytest.approx(10.0)
    assert s["worst_pct"] == pytest.approx(-20.0)


def test_errors_sign_is_predicted_over_published():
    row = next(r for r in TRAINING if r["id"] == "megatron-t1-1t")
    twice = {**row, "published": predict(row) / 2.0}
    assert errors([twice])[0] == pytest.approx(math.log(2.0))


def test_unknown_pattern_has_no_sets():
    assert set_paths("no-such-set") == [] and PUBLISHED_DIR.is_dir()


def test_optimism_reads_throughput_and_time_rows_alike():
    # promising 10% more throughput and 10% less time are both optimism
    assert optimism("training.tokens_per_s", math.log(1.1)) == pytest.approx(math.log(1.1))
    assert optimism("training.step_time_s", math.log(1 / 1.1)) == pytest.approx(math.log(1.1))
    assert optimism("training.gpu_hours", math.log(1.2)) < 0


def test_residual_records_carry_provenance_and_both_errors():
    rows = [r for r in TRAINING if r["group"] == "korthikanti2022"][:2]
    recs = residuals(rows)
    assert [r["id"] for r in recs] == [r["id"] for r in rows]
    for rec in recs:
        assert rec["set"] == "training_throughput" and rec["source"]
        assert rec["log_error"] == pytest.approx(math.log(rec["predicted"] / rec["published"]))
        assert rec["optimism"] == pytest.approx(-rec["log_error"])  # step time: lower is better
