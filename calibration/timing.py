"""Timing loops: a steady-state warm-up, an inner loop for sub-millisecond calls, adaptive repeats,
an optional barrier before each repeat, wall clock on CPU and events on CUDA.

Timing hygiene: warm-up, CUDA events + synchronize (PyTorch CUDA semantics, torch.cuda.Event) and
on shared hosts (2 shared cores on the development VM: store medians and spread, repeat):

- warm-up runs at least `warmup` calls and at least `warmup_s` seconds, so JIT'd kernels (oneDNN),
  the allocator's free lists and the caches reach the state later calls see;
- a call shorter than `min_sample_s` is repeated k times per sample (k from the warm-up calls), so one
  timer read, one Python wake-up or one descheduled thread does not make up a sample;
- repeats go on until the 95% confidence interval of the median is within `target_rel_ci` of it, or
  `max_s` is spent, or `repeats` samples are taken (never fewer than `min_repeats`).
"""

from __future__ import annotations

import heapq
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class TimingConfig:
    repeats: int = 5  # most samples
    warmup: int = 2  # fewest warm-up calls
    max_s: float = 3.0  # stop adding samples (never below min_repeats) once this much was spent
    min_repeats: int = 3
    warmup_s: float = 0.0  # and warm up for at least this long
    min_sample_s: float = 0.0  # a sample times k calls so it lasts at least this long
    target_rel_ci: float = 0.0  # stop once the median's 95% CI half-width is this fraction of it (0: never)
    max_inner: int = 2000
    rewarm_below_s: float = 0.0  # interleaved: one untimed call before a sample of calls shorter than this
    sample_sleep_s: float = 0.0  # test hook only (MODELFOLIO_CALIB_SLOW): each interleaved sample also sleeps


SLOW_ENV = "MODELFOLIO_CALIB_SLOW"  # hidden test hook: "0.05" makes tiny groups last (8 samples, each +0.05 s)
ROUND_MAX_S = 2.0  # an interleaved round ends after one sample per live point, or after this long


# Cheap points get many samples of a k-call loop (a busy 2-core machine makes small ops bimodal: a
# descheduled OMP thread costs a whole scheduler slice); expensive ones stop once the median is pinned
# down to 1.5% (2.5 s of samples at most), or after min_repeats once the budget is spent.
QUICK = TimingConfig(repeats=31, warmup=1, max_s=0.4, min_repeats=11, warmup_s=0.03, min_sample_s=0.004,
                     target_rel_ci=0.015, rewarm_below_s=0.02)
FULL = TimingConfig(repeats=41, warmup=1, max_s=1.5, min_repeats=11, warmup_s=0.15, min_sample_s=0.006,
                    target_rel_ci=0.01, rewarm_below_s=0.02)


TINY = TimingConfig(repeats=3, warmup=1, max_s=0.5, min_repeats=3)
GPU = TimingConfig(repeats=20, warmup=3, max_s=1.0, min_repeats=10, warmup_s=0.05, min_sample_s=0.001,
                   target_rel_ci=0.01)


def timing_for(mode: str, device: str = "cpu") -> TimingConfig:
    if mode == "tiny":
        slow = float(os.environ.get(SLOW_ENV) or 0)
        if slow > 0:
            return TimingConfig(repeats=8, warmup=1, max_s=1e9, min_repeats=3, sample_sleep_s=slow)
        return TINY
    if device == "cuda":
        return GPU
    return FULL if mode == "full" else QUICK


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Timings(list):
    """Seconds per call, one entry per sample, plus how they were taken (`info`, kept in the row's extra)."""

    info: dict


def median_rel_ci(times_s: Sequence[float], z: float = 1.96) -> float:
    """Half-width of the distribution-free ~95% CI of the median (order statistics), over the median.

    With fewer than 6 samples the interval is [min, max]."""
    xs = sorted(times_s)
    n = len(xs)
    if n == 0:
        return math.inf
    med = xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])
    if med <= 0:
        return math.inf
    lo = max(0, math.floor(n / 2 - z * math.sqrt(n) / 2) - 1)
    hi = min(n - 1, math.ceil(n / 2 + 1 + z * math.sqrt(n) / 2) - 1)
    return (xs[hi] - xs[lo]) / 2 / med


def inner_count(call_s: float, cfg: TimingConfig) -> int:
    if cfg.min_sample_s <= 0 or call_s <= 0 or call_s >= cfg.min_sample_s:
        return 1
    return max(1, min(cfg.max_inner, math.ceil(cfg.min_sample_s / call_s)))


def warm_up(fn: Callable[[], object], device: str, cfg: TimingConfig) -> list[float]:
    """At least cfg.warmup calls and at least cfg.warmup_s seconds; returns each call's seconds."""
    t_start = time.perf_counter()
    warm: list[float] = []
    while len(warm) < cfg.warmup or (time.perf_counter() - t_start < cfg.warmup_s and len(warm) < 10_000):
        t0 = time.perf_counter()
        fn()
        sync(device)
        warm.append(time.perf_counter() - t0)
    return warm


def sample_s(fn: Callable[[], object], device: str, inner: int) -> float:
    """Seconds for `inner` back-to-back calls (CUDA: events around them)."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return time.perf_counter() - t0


def time_fn(fn: Callable[[], object], device: str, cfg: TimingConfig,
            barrier: Callable[[], object] | None = None, fixed: bool = False,
            agree: Callable[[int], int] | None = None) -> Timings:
    """Seconds per call of `fn`, one entry per sample (a sample may time k calls: `info["inner"]`).

    `fixed=True` takes exactly `cfg.repeats` samples: distributed ranks must agree on the count, so they
    never stop early on their own clock; `agree` maps this rank's inner count to the one all ranks use.
    """
    warm = warm_up(fn, device, cfg)
    call_s = min(warm[-3:]) if warm else 0.0
    inner = inner_count(call_s, cfg)
    if agree is not None:
        inner = int(agree(inner))
    times_s = Timings()
    spent_s = 0.0
    for i in range(cfg.repeats):
        if not fixed and i >= cfg.min_repeats and (
                spent_s > cfg.max_s or (cfg.target_rel_ci > 0 and median_rel_ci(times_s) <= cfg.target_rel_ci)):
            break
        if barrier is not None:
            barrier()
        dt_s = sample_s(fn, device, inner)
        times_s.append(dt_s / inner)
        spent_s += dt_s
    times_s.info = {"inner": inner, "warmup_calls": len(warm), "warmup_s": round(sum(warm), 4),
                    "rel_ci_median": round(median_rel_ci(times_s), 4) if len(times_s) else None}
    return times_s


Call = Callable[[], object]
Mode = Callable[[], AbstractContextManager[Any]]


class PointSource(Protocol):
    """A point whose operands may be built when its samples need them and dropped in between (to bound
    the memory of a group): `get()` returns (call, its context, built_now); built_now means the operands
    were (re)built for this call, so the timing loop gives it one untimed call first."""

    device: str

    def get(self) -> tuple[Call, Mode, bool]: ...


@dataclass
class _Fixed:
    """A point whose call is built once, up front (items given as (fn, device, mode))."""

    fn: Call
    device: str
    mode: Mode

    def get(self) -> tuple[Call, Mode, bool]:
        return self.fn, self.mode, False


@dataclass
class _Point:
    index: int
    source: PointSource
    device: str
    inner: int = 1
    planned: int = 0
    rewarm: bool = False
    call_s: float = 0.0
    warm: list[float] = field(default_factory=list)
    times: Timings = field(default_factory=Timings)


def _scale_samples(points: list[_Point], cfg: TimingConfig, pace: Pacing, state: dict[str, int]) -> None:
    """The samples still to take, scaled to what the budget has left (`pace.sample_scale`), each point keeping
    cfg.min_repeats (and one more than it has)."""
    def left_s(p: _Point) -> float:
        return max(p.planned - len(p.times), 0) * p.call_s * (p.inner + (1 if p.rewarm else 0))

    scale = pace.sample_scale(sum(left_s(p) for p in points))
    if scale >= 1.0:
        return
    for p in points:
        fewest = max(cfg.min_repeats, len(p.times) + 1)
        new = max(fewest, len(p.times) + math.floor((p.planned - len(p.times)) * scale))
        if new < p.planned:
            state["planned"] -= p.planned - new
            p.planned = new


def plan_samples(call_s: float, inner: int, cfg: TimingConfig) -> int:
    """Samples for one point: as many as max_s buys, between min_repeats and repeats."""
    per_sample = max(call_s * inner, 1e-9)
    return max(cfg.min_repeats, min(cfg.repeats, int(cfg.max_s / per_sample)))


class Pacing(Protocol):
    """What `time_interleaved` asks as it goes to stay within a budget (calibration/pace.py, by point index):
    whether a point is still to be measured (before its warm-up; False: `on_done(i, dropped(i))`), a point's
    measured call time (after its warm-up), and the share of the samples left that fits (after every warm-up)."""

    def admit(self, i: int) -> bool: ...

    def warmed(self, i: int, call_s: float) -> None: ...

    def sample_scale(self, sampling_s: float) -> float: ...

    def dropped(self, i: int) -> BaseException: ...


class RoundReport(dict):
    """What `time_interleaved` reports after each round (and while warming up): `phase` ("warmup" |
    "sampling"), `round`, `points`, `points_done`, `samples` (taken so far, prior ones included),
    `samples_planned`, `elapsed_s`, `eta_s` (None until a sample was taken)."""


def time_interleaved(items: Sequence[tuple[Call, str, Mode] | PointSource],
                     cfg: TimingConfig, on_done: Callable[[int, Timings | BaseException], None],
                     prior: Sequence[Sequence[float]] | None = None,
                     on_round: Callable[[dict[int, list[float]], RoundReport], None] | None = None,
                     pace: Pacing | None = None) -> None:
    """Time many points together, their samples interleaved so that each point's samples are spread
    evenly over the whole group's wall time.

    On a machine whose speed changes under us (other tenants of the host share its cores, caches and
    memory bandwidth: bf16 GEMMs here flip between ~2 and ~5 ms within seconds), a point timed in one
    0.5 s burst sees whatever state that half-second had; spread over the group, every point sees the
    same mix, so the medians are comparable across points and repeatable across runs.

    items[i] = (fn, device, mode), or a `PointSource` whose operands are fetched (and possibly rebuilt: then one
    untimed call first) before its warm-up and before each of its samples, never held here in between, so the
    source may drop them between samples; each point is warmed up (cfg.warmup calls and cfg.warmup_s), gets its
    inner count and a planned number of samples (`plan_samples`), then samples are taken in stride order
    (the point whose next sample is most overdue, as a fraction of its plan, goes next). A call shorter
    than cfg.rewarm_below_s gets one untimed call before each sample (the previous point evicted its
    operands from the caches). `on_done(i, samples)` fires when point i has its samples, `on_done(i, exc)`
    when it raised (the others go on). On KeyboardInterrupt, points with at least cfg.min_repeats samples
    are handed to `on_done` (info "interrupted": True) before it propagates.

    `prior[i]`: samples point i already has (a resumed run): with cfg.min_repeats of them it is done at once
    (info "resumed": True), without warming up; otherwise sampling continues from them. A round ends once
    the live points took one sample each (or after ROUND_MAX_S): `on_round(new, report)` gets the samples
    taken in it, {point: [seconds per call]}, to store before the report is shown (an interrupt stores the
    last, partial round first); with new == {} it only reports (warm-up).

    `pace` (a budget, calibration/pace.py): a point it no longer admits is not warmed up (`on_done(i,
    pace.dropped(i))`); after the warm-ups the samples still to take are scaled by `pace.sample_scale`, never
    below cfg.min_repeats per point.
    """
    t_start = time.perf_counter()
    prior = prior or [[] for _ in items]
    points: list[_Point] = []
    finished: set[int] = set()
    pending: dict[int, list[float]] = {}
    state = {"round": 0, "taken": 0, "samples": sum(len(x) for x in prior), "planned": 0}

    def report(phase: str, n_done: int) -> RoundReport:
        elapsed = time.perf_counter() - t_start
        taken, left = state["taken"], max(0, state["planned"] - state["samples"])
        eta = None if phase == "warmup" or not taken else round(elapsed / taken * left, 1)
        return RoundReport(phase=phase, round=state["round"], points=len(items), points_done=n_done,
                           samples=state["samples"], samples_planned=state["planned"],
                           elapsed_s=round(elapsed, 2), eta_s=eta)

    def flush() -> None:
        if on_round is None:
            pending.clear()
            return
        new = {i: xs for i, xs in pending.items() if xs}
        pending.clear()
        state["round"] += 1
        on_round(new, report("sampling", len(finished)))

    def finish(p: _Point, **more: Any) -> None:
        finished.add(p.index)
        p.times.info = {"inner": p.inner, "warmup_calls": len(p.warm), "warmup_s": round(sum(p.warm), 4),
                        "rel_ci_median": round(median_rel_ci(p.times), 4), "interleaved_with": len(items) - 1,
                        **more}
        on_done(p.index, p.times)

    sources = [item if not isinstance(item, tuple) else _Fixed(*item) for item in items]
    for i, source in enumerate(sources):
        p = _Point(i, source, source.device)
        p.times.extend(float(t) for t in prior[i])
        if len(p.times) >= max(1, cfg.min_repeats):  # resumed: its samples make the row
            finish(p, resumed=True, interrupted=True)
            continue
        if pace is not None and not pace.admit(i):
            finished.add(i)
            on_done(i, pace.dropped(i))
            continue
        try:
            fn, mode, _ = source.get()
            with mode():
                p.warm = warm_up(fn, p.device, cfg)
            del fn
        except Exception as e:
            finished.add(i)
            on_done(i, e)
            continue
        call_s = min(p.warm[-3:])
        p.call_s = call_s
        if pace is not None:
            pace.warmed(i, call_s)
        p.inner = inner_count(call_s, cfg)
        p.planned = max(plan_samples(call_s, p.inner, cfg), len(p.times) + 1)
        p.rewarm = call_s < cfg.rewarm_below_s
        state["planned"] += p.planned
        points.append(p)
        if on_round is not None:
            on_round({}, report("warmup", len(finished)))
    state["planned"] += sum(len(x) for x in prior if len(x) >= max(1, cfg.min_repeats))
    if pace is not None and points:
        _scale_samples(points, cfg, pace, state)
    queue = [((len(p.times) + 0.5) / p.planned, p.index, p) for p in points]
    heapq.heapify(queue)
    in_round, round_t0 = 0, time.perf_counter()

    try:
        while queue:
            _, _, p = heapq.heappop(queue)
            try:
                fn, mode, built_now = p.source.get()
                with mode():
                    if p.rewarm or built_now:
                        fn()
                        sync(p.device)
                    dt_s = sample_s(fn, p.device, p.inner)
                    if cfg.sample_sleep_s > 0:
                        time.sleep(cfg.sample_sleep_s)
                    p.times.append(dt_s / p.inner)
                del fn  # a source may drop the operands before this point's next sample
            except Exception as e:
                finished.add(p.index)
                pending.pop(p.index, None)
                on_done(p.index, e)
                continue
            pending.setdefault(p.index, []).append(p.times[-1])
            state["taken"] += 1
            state["samples"] += 1
            in_round += 1
            n = len(p.times)
            if n < p.planned:
                heapq.heappush(queue, ((n + 0.5) / p.planned, p.index, p))
            else:
                finish(p)
            if in_round >= max(1, len(queue)) or time.perf_counter() - round_t0 > ROUND_MAX_S or not queue:
                flush()
                in_round, round_t0 = 0, time.perf_counter()
    except KeyboardInterrupt:
        # Ctrl-C mid-group: the samples of the partial round are stored first; a point that already has
        # min_repeats samples (spread over the group so far) is a measurement, kept and marked; the others
        # are continued by --resume from their stored samples
        if pending:
            flush()
        for p in points:
            if p.index not in finished and len(p.times) >= max(1, cfg.min_repeats):
                finish(p, interrupted=True, planned=p.planned)
        raise


def available_cpus() -> int:
    """CPUs this process may run on (affinity), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def is_oversubscribed(world_size: int, device: str = "cpu") -> bool:
    """More CPU ranks than CPUs: the run measures the scheduler, not the network."""
    if device == "cuda":
        return torch.cuda.is_available() and world_size > torch.cuda.device_count()
    return world_size > available_cpus()


TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
}


def torch_dtype(name: str | None) -> torch.dtype:
    if name is None:
        return torch.float32
    try:
        return TORCH_DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype {name!r} is not one of {sorted(TORCH_DTYPES)}") from None


def element_bytes(name: str | None) -> int:
    return {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}.get(name or "fp32", 4)
