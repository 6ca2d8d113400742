"""Timing loops: warm-up, optional barrier before each repeat, wall clock on CPU, events on CUDA.

Timing hygiene follows reference/formulas.md §7 (warm-up, CUDA events + synchronize) and
machine-notes (2 shared cores: store medians and spread, repeat).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TimingConfig:
    repeats: int = 5
    warmup: int = 2
    max_s: float = 3.0  # stop adding repeats (never below min_repeats) once this much was spent
    min_repeats: int = 3


# Cheap points get many repeats (a busy 2-core machine makes small ops bimodal: a descheduled OMP
# thread costs a whole scheduler slice), expensive ones stop after min_repeats once max_s is spent.
QUICK = TimingConfig(repeats=15, warmup=1, max_s=0.6, min_repeats=3)
FULL = TimingConfig(repeats=25, warmup=1, max_s=2.0, min_repeats=5)


TINY = TimingConfig(repeats=3, warmup=1, max_s=0.5, min_repeats=3)
GPU = TimingConfig(repeats=20, warmup=3, max_s=1.0, min_repeats=10)  # kernels are cheap: many repeats


def timing_for(mode: str, device: str = "cpu") -> TimingConfig:
    if mode == "tiny":
        return TINY
    if device == "cuda":
        return GPU
    return FULL if mode == "full" else QUICK


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], device: str, cfg: TimingConfig,
            barrier: Callable[[], object] | None = None, fixed: bool = False) -> list[float]:
    """Seconds per call of `fn`, one entry per repeat.

    `fixed=True` runs exactly `cfg.repeats` repeats: distributed ranks must agree on the count,
    so they never stop early on their own clock.
    """
    for _ in range(cfg.warmup):
        fn()
    sync(device)
    times_s: list[float] = []
    spent_s = 0.0
    for i in range(cfg.repeats):
        if not fixed and i >= cfg.min_repeats and spent_s > cfg.max_s:
            break
        if barrier is not None:
            barrier()
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            dt_s = start.elapsed_time(end) / 1e3
        else:
            t0 = time.perf_counter()
            fn()
            dt_s = time.perf_counter() - t0
        times_s.append(dt_s)
        spent_s += dt_s
    return times_s


def available_cpus() -> int:
    """CPUs this process may run on (affinity), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def is_oversubscribed(world_size: int, device: str = "cpu") -> bool:
    """More CPU ranks than CPUs: the run measures the scheduler, not the network (machine-notes)."""
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
