"""Prediction against measurement across test hosts (benchmarks/multihost_predict.py, issue 22 part 4): the
table's arithmetic, DDP's overlap read off its buckets, and one real run (root only): DDP over two hosts whose link
calibration measured, predicted within a loose bound, and slower when the link is slowed."""

from __future__ import annotations

import pytest

from benchmarks.multihost_predict import (
    Model,
    calibrate,
    ddp_overlap,
    markdown,
    predict,
    shape_both_ways,
    train,
    unavailable,
)
from benchmarks.testhosts import test_hosts
from simulator.device_profile import device_from_profile
from simulator.profile import load_profile
from simulator.training.constants import DEFAULT_CONSTANTS

FAST_MBIT, SLOW_MBIT = 1000.0, 200.0
LOOSE = 0.40  # the CI bound on the predicted DDP step (the benchmark's target is 15%, on a quiet machine)


def test_ddp_overlaps_every_bucket_but_the_last_ready():
    assert ddp_overlap([1 << 20, 3 << 20]) == pytest.approx(0.25)
    assert ddp_overlap([16832512]) == 0.0  # one bucket: it waits for the end of the backward
    assert ddp_overlap(None) == 0.0


def test_the_table_says_within_15_percent_or_not_and_sets_compute_apart():
    def run(mode: str, median: float, predicted: float) -> dict:
        return {"mode": mode, "median_s": median, "p25_s": median * 0.9, "p75_s": median * 1.1,
                "predicted": {"step_s": predicted, "compute_s": 0.3, "exposed_sync_s": predicted - 0.3}}

    result = {"rate_mbit": 200.0, "rows": [run("ddp", 1.0, 1.1), run("ps", 2.0, 2.4)],
              "compute": {"alone": {"median_s": 0.25}, "both": {"median_s": 0.3}, "predicted": {"compute_s": 0.3}}}
    rows = markdown([result]).splitlines()[2:]
    assert "| ddp | 1.000 (0.900-1.100) | 1.100 | +10.0% | yes |" in rows[0]
    assert "| ps | 2.000 (1.800-2.200) | 2.400 | +20.0% | no |" in rows[1]
    # compute alone against predicted; communication = the step less the compute of both hosts at once
    assert rows[0].endswith("| 0.250 / 0.300 | 0.300 (+20.0%) | 0.700 / 0.800 (+14.3%) |")


def test_ddp_across_two_hosts_is_predicted_from_their_calibration_and_slows_with_the_link(tmp_path):
    why = unavailable()
    if why is not None:
        pytest.skip(why)
    model = Model()
    with test_hosts(2) as hosts:
        for i in (0, 1):
            shape_both_ways(hosts, i, FAST_MBIT)
        profile = calibrate(hosts, tmp_path / "calibration", budget_s=40)
        fast = train(hosts, "ddp", model, tmp_path / "fast", steps=4, warmup=1, port=29610)
        for i in (0, 1):
            shape_both_ways(hosts, i, SLOW_MBIT)
        slow = train(hosts, "ddp", model, tmp_path / "slow", steps=4, warmup=1, port=29611)
    spec = device_from_profile(load_profile(profile))
    link_MBps = spec.inter_node_GBps * DEFAULT_CONSTANTS.inter_link_eff * 1000
    assert link_MBps == pytest.approx(FAST_MBIT / 8, rel=0.15), spec.sources["inter_node"]  # the hosts' link
    predicted = predict(profile, model, "ddp", ddp_overlap(fast["bucket_bytes"]))["step_s"]
    assert predicted / fast["median_s"] - 1 == pytest.approx(0.0, abs=LOOSE), (predicted, fast)
    # a 2-rank ring all-reduce moves the gradient once each way: at 200 Mbit/s it takes this much longer
    extra_s = fast["grad_bytes"] * 8 / 1e6 * (1 / SLOW_MBIT - 1 / FAST_MBIT)
    assert slow["median_s"] - fast["median_s"] > 0.5 * extra_s, (fast, slow)
