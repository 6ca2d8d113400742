"""What every bench returns, and how it says "not here"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from calibration.rows import Step
from calibration.timing import TimingConfig


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


BenchFn = Callable[[Step, TimingConfig], Measurement]


def device_of(step: Step) -> str:
    """The torch device string for a step; raises SkipBench if CUDA is asked for and absent."""
    if step.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SkipBench("CUDA is not available on this machine")
        return "cuda"
    return "cpu"
