"""Prepared points held in memory within a byte budget, so an interleaved group of any size keeps its
memory bounded.

`partition` splits a group into parts that each fit the budget, keeping every fit group (bench, device, dtype)
in one part where it fits, so the points one curve is fitted to are still interleaved with each other (and with
as many others as fit); the parts are timed one after the other. Within a part, each point of a group is a `LazyPoint` (a `timing.PointSource`): its operands are prepared when a sample needs
them. While the estimated bytes of the resident points (`footprint`, shared parts counted once) would pass the
budget, the resident point whose release frees the most is dropped first, so the many small points stay
prepared and the few large ones (weights past the last-level cache, long KV caches) take turns; a dropped point
is prepared again for its next sample, which the timing loop precedes with an untimed call. A point larger
than the budget on its own is prepared alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from typing import Any

from calibration.bench.base import Prepared
from calibration.bench.footprint import Footprint
from calibration.rows import Step
from calibration.timing import Timings

COLLECT_ABOVE_BYTES = 64 << 20  # a release freeing this much also runs the cycle collector (module graphs)


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc malloc_trim): tensors of a few MiB come from the
    heap, whose freed pages otherwise stay in the process's memory (a quick run's parts would add up)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


class LazyPoint:
    """One point: `get()` prepares it when it is not resident (built_now True), `done(samples)` makes its
    Measurement with the latest preparation's `done` (kept after the operands are dropped)."""

    def __init__(self, owner: Resident, index: int, device: str, build: Callable[[], Prepared],
                 parts: Footprint) -> None:
        self.owner, self.index, self.device, self.build, self.parts = owner, index, device, build, parts
        self.prepared: Prepared | None = None
        self.finish: Callable[[Timings], Any] | None = None
        self.builds = 0

    def get(self) -> tuple[Callable[[], object], Callable[[], AbstractContextManager[Any]], bool]:
        built_now = self.prepared is None
        if built_now:
            self.owner.make_room(self)
            self.prepared = self.build()
            self.finish = self.prepared.done
            self.builds += 1
            trim_heap()  # the preparation's temporaries (before anything is timed)
            self.owner.resident[self.index] = self
        p = self.prepared
        return p.fn, p.mode, built_now

    def release(self) -> None:
        self.owner.release(self)


class Resident:
    """The group's prepared points and their estimated bytes; `budget_bytes` bounds what is held at once."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.resident: dict[int, LazyPoint] = {}
        self.peak_bytes = 0  # the largest estimate held at once (for the rows' extra and the tests)

    def point(self, index: int, device: str, build: Callable[[], Prepared], parts: Footprint) -> LazyPoint:
        return LazyPoint(self, index, device, build, parts)

    def held_bytes(self, extra: LazyPoint | None = None) -> int:
        parts: dict[Hashable, int] = {}
        for p in [*self.resident.values(), *([extra] if extra is not None else [])]:
            parts.update(p.parts)
        return sum(parts.values())

    def _freed_by(self, victim: LazyPoint, coming: LazyPoint | None) -> int:
        """Bytes dropping `victim` frees: its parts that no other resident point (nor the coming one) holds."""
        others: set[Hashable] = set(coming.parts) if coming is not None else set()
        for p in self.resident.values():
            if p is not victim:
                others.update(p.parts)
        return sum(b for k, b in victim.parts.items() if k not in others)

    def make_room(self, coming: LazyPoint) -> None:
        """Drop resident points, largest release first, until `coming` fits the budget (or none is left to drop)."""
        freed = 0
        while self.resident and self.held_bytes(coming) > self.budget_bytes:
            gains = [(self._freed_by(p, coming), -p.index, p) for p in self.resident.values() if p is not coming]
            if not gains:
                break
            gain, _, victim = max(gains, key=lambda g: g[:2])
            if gain <= 0:
                break
            self._drop(victim)
            freed += gain
        if freed >= COLLECT_ABOVE_BYTES:
            gc.collect()
            trim_heap()
        self.peak_bytes = max(self.peak_bytes, self.held_bytes(coming))

    def _drop(self, p: LazyPoint) -> None:
        p.prepared = None
        self.resident.pop(p.index, None)

    def release(self, p: LazyPoint) -> None:
        """A finished point: its operands go (its `finish` stays for the row)."""
        big = self._freed_by(p, None) if p.index in self.resident else 0
        self._drop(p)
        if big >= COLLECT_ABOVE_BYTES:
            gc.collect()
            trim_heap()

    def clear(self) -> None:
        """After a part: every point dropped, the heap trimmed."""
        for p in list(self.resident.values()):
            self._drop(p)
        gc.collect()
        trim_heap()


def union_bytes(footprints: list[Footprint]) -> int:
    parts: dict[Hashable, int] = {}
    for f in footprints:
        parts.update(f)
    return sum(parts.values())


def partition(steps: list[Step], footprints: list[Footprint], budget_bytes: int) -> list[list[int]]:
    """Indices of `steps` in parts of at most `budget_bytes` (estimated, shared parts once), in order within each
    part. Fit groups (bench, device, dtype) are placed whole, each in the first part with room (a new one if
    none has); a fit group larger than the budget is split, in order, over parts of its own; a point larger
    than the budget is a part on its own."""
    groups: dict[tuple[str, str, str | None], list[int]] = {}
    for i, s in enumerate(steps):
        groups.setdefault((s.bench, s.device, s.dtype), []).append(i)
    parts: list[list[int]] = []

    def size(idx: list[int]) -> int:
        return union_bytes([footprints[i] for i in idx])

    for idx in groups.values():
        if size(idx) <= budget_bytes:
            home = next((part for part in parts if size(part + idx) <= budget_bytes), None)
            if home is None:
                parts.append(list(idx))
            else:
                home.extend(idx)
            continue
        current: list[int] = []
        for i in idx:
            if current and size([*current, i]) > budget_bytes:
                parts.append(current)
                current = []
            current.append(i)
        parts.append(current)
    return [sorted(part) for part in parts]
