"""Keeping a calibration run within its budget while it runs (calibration/pace.py): predictions scaled by what
is measured, the most expensive points dropped first, never a fit's smallest or held-out points, and the samples
scaled down to what is left, never below what each point needs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.pace import GROUP_MIN, Pace, PlannedPoint, protected_keys


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _points(groups: dict[str, list[float]]) -> list[PlannedPoint]:
    return [PlannedPoint(f"{g}/{i}", (g,), cost, cost / 10) for g, costs in groups.items()
            for i, cost in enumerate(costs)]


def test_protected_points_are_each_groups_smallest_and_its_held_out_largest():
    pts = _points({"gemm": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], "small": [1, 2, 3]})
    keep = protected_keys(pts)
    gemm = {p.key for p in pts if p.group == ("gemm",)}
    assert {"gemm/0", "gemm/1", "gemm/2"} <= keep  # the three cheapest
    assert {"gemm/9", "gemm/10", "gemm/11"} <= keep  # the largest quarter (3 of 12): what the fits hold out
    assert len(keep & gemm) == 6 and {"small/0", "small/1", "small/2"} <= keep


def test_a_run_on_plan_drops_nothing():
    clock = Clock()
    pace = Pace(_points({"gemm": [1.0] * 10}), budget_s=20.0, t0=0.0, clock=clock)
    for p in pace.points:
        assert pace.admit(p.key)
        pace.warmed(p.key, p.call_s)  # exactly as predicted
        clock.now += p.point_s
    assert pace.dropped == [] and pace.ratio == pytest.approx(1.0)


def test_a_slower_machine_drops_the_most_expensive_unprotected_points_first():
    clock = Clock()
    costs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
    pace = Pace(_points({"gemm": costs}), budget_s=sum(costs), t0=0.0, clock=clock)
    first = pace.points[0]
    assert pace.admit(first.key)
    pace.warmed(first.key, 2.0 * first.call_s)  # the machine runs at half the predicted speed
    clock.now += 2.0 * first.point_s
    admitted = [first.key]
    for p in pace.points[1:]:
        if pace.admit(p.key):
            admitted.append(p.key)
            pace.warmed(p.key, 2.0 * p.call_s)
            clock.now += 2.0 * p.point_s
    assert pace.dropped, "a run at half speed must leave points out"
    protected = protected_keys(pace.points)
    assert not set(pace.dropped) & protected
    unprotected = [p for p in pace.points if p.key not in protected]
    # dropped in order of cost, the most expensive first
    dropped_costs = [pace.by_key[k].point_s for k in pace.dropped]
    assert dropped_costs == sorted(dropped_costs, reverse=True)
    assert max(dropped_costs) == max(p.point_s for p in unprotected)
    assert clock.now <= pace.budget_s * 1.15  # what was kept fits (one point of slack: it was admitted first)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.01, 50.0), min_size=1, max_size=20), min_size=1, max_size=5),
       st.floats(0.5, 30.0), st.floats(1.0, 500.0))
def test_never_a_protected_point_and_never_a_group_below_what_its_fit_needs(groups, slowdown, budget_s):
    clock = Clock()
    pts = _points({f"g{i}": costs for i, costs in enumerate(groups)})
    pace = Pace(pts, budget_s=budget_s, t0=0.0, clock=clock)
    for p in pts:
        if pace.admit(p.key):
            pace.warmed(p.key, slowdown * p.call_s)
            clock.now += slowdown * p.point_s
    protected = protected_keys(pts)
    assert not set(pace.dropped) & protected
    for i, costs in enumerate(groups):
        kept = sum(1 for p in pts if p.group == (f"g{i}",) and p.key not in pace.dropped)
        assert kept >= min(len(costs), GROUP_MIN)


def test_samples_are_scaled_to_what_the_budget_has_left():
    clock = Clock()
    pace = Pace(_points({"gemm": [1.0] * 6}), budget_s=10.0, t0=0.0, later_s=2.0, clock=clock)
    clock.now = 5.0
    assert pace.sample_scale(2.0) == 1.0  # 3 s left: fits
    assert pace.sample_scale(6.0) == pytest.approx(0.5)
    clock.now = 9.0
    assert pace.sample_scale(6.0) == 0.0  # nothing left: the caller keeps each point's fewest


def test_time_interleaved_asks_the_pace_and_keeps_the_fewest_samples():
    """A point the pace no longer admits is never warmed up and is reported with the pace's reason; scaled-down
    samples never go below cfg.min_repeats."""
    from calibration.timing import TimingConfig, time_interleaved

    calls = {0: 0, 1: 0, 2: 0}

    def fn(i: int):
        def call() -> None:
            calls[i] += 1
            sum(range(200))
        return call

    class Shrink:
        def __init__(self) -> None:
            self.warm: dict[int, float] = {}

        def admit(self, i: int) -> bool:
            return i != 1

        def warmed(self, i: int, call_s: float) -> None:
            self.warm[i] = call_s

        def sample_scale(self, sampling_s: float) -> float:
            return 0.0

        def dropped(self, i: int) -> BaseException:
            return RuntimeError(f"left out {i}")

    cfg = TimingConfig(repeats=40, warmup=1, max_s=5.0, min_repeats=4)
    done: dict[int, object] = {}
    pace = Shrink()
    time_interleaved([(fn(i), "cpu", lambda: _nullcontext()) for i in range(3)], cfg,
                     lambda i, r: done.__setitem__(i, r), pace=pace)
    assert calls[1] == 0 and str(done[1]) == "left out 1"
    assert set(pace.warm) == {0, 2}
    for i in (0, 2):
        assert len(done[i]) == cfg.min_repeats  # scaled to nothing: the fewest each point needs


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def test_the_quality_part_gets_what_the_budget_has_left_never_below_half_its_share():
    from calibration.quality.hook import QUALITY_FLOOR, quality_budget_s
    from calibration.run_config import RunConfig

    cfg = RunConfig("quick", out=None)
    share = quality_budget_s(cfg, "quick")
    assert quality_budget_s(cfg, "quick", left_s=10 * share) == share
    assert quality_budget_s(cfg, "quick", left_s=0.8 * share) == pytest.approx(0.8 * share)
    assert quality_budget_s(cfg, "quick", left_s=-5.0) == pytest.approx(QUALITY_FLOOR * share)
    assert math.isclose(share, 45.0)


def test_a_dropped_point_gets_a_skipped_row_that_says_why_and_the_rest_are_measured():
    """Through the registry, as a run measures its local benches: a pace with no time left leaves out the
    unprotected points (rows "skipped", the reason in `error`) and measures every protected one."""
    from calibration.bench.registry import execute_interleaved
    from calibration.probe import group_key
    from calibration.rows import Step
    from calibration.timing import TINY

    sizes = [16, 24, 32, 40, 48, 56, 64, 72]
    steps = [Step("gemm", "cpu", "fp32", {"m": n, "n": n, "k": n}) for n in sizes]
    points = [PlannedPoint(s.key(), group_key(s), float(n), 1e-5 * n) for s, n in zip(steps, sizes, strict=True)]
    pace = Pace(points, budget_s=0.0, t0=0.0, clock=lambda: 1.0)
    rows: list[dict] = []
    execute_interleaved(steps, TINY, "test", rows.append, pace=pace)
    by_n = {r["params"]["m"]: r for r in rows}
    assert len(rows) == len(steps)
    dropped = {n for n, r in by_n.items() if r["status"] == "skipped"}
    assert dropped == {48, 56}  # the most expensive unprotected first, down to the plan's 6 per group
    assert all("within its budget" in by_n[n]["error"] for n in dropped)
    assert all(by_n[n]["status"] == "ok" for n in (16, 24, 32, 40, 64, 72))
    assert pace.finished_keys == {s.key() for s in steps}
