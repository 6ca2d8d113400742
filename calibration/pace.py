"""Keeping a run within its budget while it runs: each point's predicted time against what is measured, and the
rest of the grid planned again from what was measured.

The plan (probe.fit_budget) predicts every local point from a few seconds of probing; on a CPU the probe misjudges
(a bf16 unit slower than the probe's matmuls showed, a cache the grid's large points miss, a neighbour on the host)
the run overruns its budget. So the local benches consult a `Pace` as they go: after each point's warm-up it
learns how long that point's calls take, and so how long the points so far take against their planned time (the
timing loop's time at the measured call, probe.point_parts: a point whose samples are capped by time costs the same
at any call time); before each point's warm-up it checks the projection against the budget: elapsed, plus the
samples of the points already warmed up, plus the points not started (planned time × that ratio), plus the stages
after this one; over it, the most expensive points not yet started are dropped, each
fit group keeping its smallest points (the fits' overhead and plateau), its planned held-out points (the
largest: fit.common.split_largest holds out the top quarter, at least 2) and the plan's fewest points per group, so
that it still fits and is still checked on points it never saw. The stages after the local benches (the torchrun
launches) count at what they likely take, not the plan's pessimistic prediction. A dropped point gets a "skipped" row that says why. When every point has warmed
up, the samples still to take are scaled down (never below the fewest each point needs) if they would overrun.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HELD_OUT_FRACTION, HELD_OUT_MIN = 0.25, 2  # fit.common.split_largest's defaults: the points each fit holds out
SMALLEST_KEPT = 3  # the cheapest points of a group, never dropped: the fits train on at least 3
GROUP_MIN = 6  # never fewer points in a group than the plan keeps (probe.MIN_POINTS: 3 to train, 2 held out, 1 spare)
RATIO_BOUNDS = (0.25, 20.0)  # a measured/predicted ratio outside this is a probe accident, not a trend
# points are left out only for a projected overrun beyond this share of the budget: the plan fills its budget, so a
# smaller overrun is more likely noise than a slower machine (the whole run's target: its budget + 10%)
SLACK = 0.05
DROP_NOTE = "left out while running, to keep the run within its budget"


@dataclass(frozen=True)
class PlannedPoint:
    """One local point as the plan predicted it: its key, fit group, predicted seconds for the point (warm-up,
    samples, preparation) and for one call, and the bytes of its operands (their preparation)."""

    key: str
    group: tuple
    point_s: float
    call_s: float
    nbytes: float = 0.0


def _plain_parts(c: float, point: PlannedPoint) -> tuple[float, float]:
    """Without a timing model: the plan's seconds scaled with the call (all of it in the samples)."""
    return 0.0, point.point_s * (c / point.call_s if point.call_s > 0 else 1.0)


@dataclass
class Pace:
    """The running check of one stage of local points against the budget (see the module docstring)."""

    points: Sequence[PlannedPoint]
    budget_s: float  # the hardware part of the budget, for the whole run
    t0: float  # when the run started (time.perf_counter)
    later_s: float = 0.0  # predicted seconds of the stages after this one (the torchrun launches)
    clock: Callable[[], float] = time.perf_counter
    # (seconds before its samples, seconds of its samples) of a point whose call takes c seconds
    parts: Callable[[float, PlannedPoint], tuple[float, float]] = _plain_parts
    started: set[str] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)
    measured_call_s: dict[str, float] = field(default_factory=dict)
    finished_keys: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.by_key = {p.key: p for p in self.points}
        self.protected = protected_keys(self.points)

    # ------------------------------------------------------------ what is measured
    @property
    def ratio(self) -> float:
        """The points warmed up so far, their time at the calls measured ÷ their time at the calls predicted
        (1 before any): how much longer than planned the points still to come will take. Weighted by time, not a
        median of call ratios: a point whose samples are capped by time (most cheap ones) costs the same at any
        call time, and the probe misjudges cheap calls (the per-call overhead) more than expensive ones."""
        if not self.measured_call_s:
            return 1.0
        planned = sum(sum(self.parts(self.by_key[k].call_s, self.by_key[k])) for k in self.measured_call_s)
        measured = sum(sum(self.parts(c, self.by_key[k])) for k, c in self.measured_call_s.items())
        lo, hi = RATIO_BOUNDS
        return min(max(measured / planned, lo), hi) if planned > 0 else 1.0

    def warmed(self, key: str, call_s: float) -> None:
        """A point's warm-up measured its call at `call_s`."""
        p = self.by_key.get(key)
        if p is None or not (call_s > 0) or not (p.call_s > 0):
            return
        self.measured_call_s[key] = call_s

    # ------------------------------------------------------------ what is left
    def left(self) -> list[PlannedPoint]:
        gone = self.started | set(self.dropped)
        return [p for p in self.points if p.key not in gone]

    def projected_s(self) -> float:
        """Elapsed + the samples of the points warmed up (their measured calls) + the points not warmed up (the
        plan's time × ratio) + the later stages."""
        warmed = sum(self.parts(c, self.by_key[k])[1] for k, c in self.measured_call_s.items()
                     if k not in self.finished_keys)
        gone = set(self.dropped) | set(self.measured_call_s) | self.finished_keys
        ahead = self.ratio * sum(p.point_s for p in self.points if p.key not in gone)
        return (self.clock() - self.t0) + warmed + ahead + self.later_s

    def finished(self, key: str) -> None:
        """A point has its row (measured, failed or left out): nothing of it is left to run."""
        self.finished_keys.add(key)

    def admit(self, key: str) -> bool:
        """Before `key`'s warm-up: drop what the projection says must go (most expensive first, protected points
        kept); True when `key` itself is still to be measured."""
        if key in self.dropped:
            return False
        over = self.projected_s() - self.budget_s
        if over > SLACK * self.budget_s:
            self._drop(over)
        if key in self.dropped:
            return False
        self.started.add(key)
        return True

    def _drop(self, over_s: float) -> None:
        kept: dict[tuple, int] = {}
        for p in self.points:
            if p.key not in self.dropped:
                kept[p.group] = kept.get(p.group, 0) + 1
        candidates = sorted((p for p in self.left() if p.key not in self.protected),
                            key=lambda p: p.point_s, reverse=True)
        ratio = self.ratio  # nothing is measured while dropping: one sum over the points warmed up, not one a drop
        for p in candidates:
            if over_s <= 0:
                break
            if kept[p.group] <= GROUP_MIN:
                continue
            self.dropped.append(p.key)
            kept[p.group] -= 1
            over_s -= ratio * p.point_s

    def sample_scale(self, sampling_s: float) -> float:
        """After the warm-ups: the share of the samples still to take (predicted `sampling_s` seconds) that fits
        what is left of the budget (1 when they fit; the caller keeps each point's fewest)."""
        room = self.budget_s - (self.clock() - self.t0) - self.later_s
        if sampling_s <= 0 or sampling_s <= room:
            return 1.0
        return max(room, 0.0) / sampling_s

    def reason(self) -> str:
        """Why a point was left out, for its "skipped" row."""
        return (f"{DROP_NOTE} of {self.budget_s:.0f} s for the hardware benches (the points warmed up so far "
                f"take {self.ratio:.2g}x their planned time here)")

    def record(self) -> dict[str, Any]:
        """What run.json keeps: the ratio, and what was dropped."""
        return {"measured_over_planned_time": round(self.ratio, 3), "warmed": len(self.measured_call_s),
                "dropped": list(self.dropped)}


def protected_keys(points: Sequence[PlannedPoint]) -> set[str]:
    """Per fit group: its SMALLEST_KEPT cheapest points and its planned held-out points (the most expensive
    quarter, at least HELD_OUT_MIN: the largest, which split_largest holds out)."""
    groups: dict[tuple, list[PlannedPoint]] = {}
    for p in points:
        groups.setdefault(p.group, []).append(p)
    keep: set[str] = set()
    for group in groups.values():
        group = sorted(group, key=lambda p: p.point_s)
        held = max(HELD_OUT_MIN, math.ceil(HELD_OUT_FRACTION * len(group)))
        keep.update(p.key for p in group[:SMALLEST_KEPT])
        keep.update(p.key for p in group[-held:])
    return keep
