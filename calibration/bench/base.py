"""What every bench returns, and how it says "not here".

A local bench is split in two: `prepare(step)` builds the operands and returns a `Prepared` (the call to
time, the context it runs in, and how to turn the samples into a `Measurement`); the timing is done by
`calibration.timing` — alone (`measure`) or interleaved with the other points of a run
(`calibration.timing.time_interleaved`), so every point sees the same mix of a shared machine's states.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from calibration.rows import Step
from calibration.timing import TimingConfig, Timings, time_fn


class SkipBench(Exception):  # noqa: N818 - it is a signal, not an error
    """Raised by a bench that cannot run here (no CUDA, torchao missing, ...): becomes a "skipped" row."""


@dataclass
class Measurement:
    times_s: list[float]
    flops: float | None = None
    bytes: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    dtype: str | None = None  # overrides the step's dtype in the row, when set
    params: dict[str, Any] | None = None  # overrides the step's params in the row, when set


@dataclass
class Prepared:
    """One point, ready to time: `fn()` is one call, run inside `mode()` (e.g. torch.inference_mode);
    `done(samples)` builds the Measurement (it may keep `samples.info`, how they were taken)."""

    fn: Callable[[], object]
    device: str
    done: Callable[[Timings], Measurement]
    mode: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext


BenchFn = Callable[[Step, TimingConfig], Measurement]
PrepareFn = Callable[[Step], Prepared]


def measure(prepared: Prepared, cfg: TimingConfig) -> Measurement:
    """Time one prepared point on its own (warm-up, inner loop, adaptive repeats)."""
    with prepared.mode():
        times_s = time_fn(prepared.fn, prepared.device, cfg)
    return prepared.done(times_s)


def device_of(step: Step) -> str:
    """The torch device string for a step; raises SkipBench if CUDA is asked for and absent."""
    if step.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SkipBench("CUDA is not available on this machine")
        return "cuda"
    return "cpu"
