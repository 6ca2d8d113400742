"""The continuous-batching serving loop (torch-free, any `Engine`) under a seeded Poisson request stream.

The loop (Orca's iteration-level scheduling, Yu et al. 2022, OSDI): at each step, waiting requests are admitted
up to the largest batch, and their prompts and one new token of every request already running go through the
model in one forward pass (Orca's selective batching: one token batch for the matrix products, attention per
request), the step the serving family times (simulator/serving/step.py); a step's tokens are delivered when it
ends. The loop runs on any `Engine` with an injected clock, so its bookkeeping is tested on a fake engine with
deterministic step times.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


def poisson_arrivals_s(requests_per_s: float, duration_s: float, seed: int) -> np.ndarray:
    """Arrival times in [0, duration_s) of a Poisson process: exponential gaps of mean 1/rate, seeded."""
    if not (requests_per_s > 0 and duration_s > 0):
        raise ValueError(f"requests_per_s ({requests_per_s}) and duration_s ({duration_s}) must be positive")
    rng = np.random.default_rng(seed)
    n = int(requests_per_s * duration_s + 10.0 * math.sqrt(requests_per_s * duration_s) + 10)
    times = np.cumsum(rng.exponential(1.0 / requests_per_s, n))
    while times[-1] < duration_s:  # never short of arrivals, however unlucky the draw
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / requests_per_s, n))])
    return times[times < duration_s]


# ---------------------------------------------------------------- the continuous-batching loop


class Engine(Protocol):
    """A model with one KV-cache slot per running request; slots 0..running-1 are the running requests."""

    def step(self, lengths: np.ndarray, first_slot: int, count: int) -> None:
        """One iteration: one token for each of slots 0..len(lengths)-1, whose contexts hold `lengths` tokens, and
        the prompts of `count` new requests prefilled into slots first_slot.. (each yields its first token), in one
        forward pass."""

    def move(self, src: int, dst: int) -> None:
        """Copy slot src's cache into slot dst (keeps the running slots contiguous after a request ends)."""


@dataclass(frozen=True)
class Stream:
    prompt_tokens: int
    output_tokens: int
    max_batch: int
    duration_s: float   # the loop stops admitting and measuring at this time
    warmup_s: float     # tokens and requests before this time are left out of the figures


@dataclass
class Request:
    arrival_s: float
    first_token_s: float = math.nan
    last_token_s: float = math.nan
    tokens: int = 0


@dataclass(frozen=True)
class ServeResult:
    output_tokens_per_s: float  # tokens delivered in [warmup_s, end] / (end - warmup_s)
    ttft_median_s: float
    ttft_p90_s: float
    tpot_median_s: float        # per request: (last token - first token) / (output tokens - 1)
    tpot_p90_s: float
    mean_batch: float           # sequences decoding per decode step, over the measured window
    completed: int              # requests finished within the window (the latency figures are theirs)
    steps: int
    window_s: float
    busy_s: float = 0.0         # wall time inside steps (the rest is waiting for arrivals)
    busy_cpu_s: float = 0.0     # this process's CPU time inside steps (all threads)


def _q(values: Sequence[float], q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else math.nan


def serve(engine: Engine, arrivals_s: np.ndarray, stream: Stream, clock: Callable[[], float] = time.perf_counter,
          sleep: Callable[[float], None] = time.sleep, cpu_clock: Callable[[], float] = time.process_time
          ) -> ServeResult:
    """Run the stream through the engine until `stream.duration_s` (clock time from the start); each step admits
    waiting requests (FIFO) up to max_batch and prefills them, decodes one token for every request admitted in an
    earlier step, then delivers the step's tokens at its end and retires the finished requests."""
    if stream.output_tokens < 1 or stream.prompt_tokens < 1 or stream.max_batch < 1:
        raise ValueError(f"prompt_tokens, output_tokens and max_batch must be at least 1: {stream}")
    if not 0 <= stream.warmup_s < stream.duration_s:
        raise ValueError(f"warmup_s ({stream.warmup_s}) must lie in [0, duration_s = {stream.duration_s})")
    requests = [Request(float(a)) for a in np.sort(arrivals_s)]
    running: list[Request] = []   # running[i] holds slot i
    next_arrival = 0
    t0 = clock()
    tokens_in_window, steps, batch_sum, decode_steps = 0, 0, 0, 0
    busy_s = busy_cpu_s = 0.0
    end_s = stream.duration_s
    while True:
        now = clock() - t0
        if now >= stream.duration_s:
            end_s = now
            break
        if not running and (next_arrival >= len(requests) or requests[next_arrival].arrival_s > now):
            if next_arrival >= len(requests):  # nothing more will arrive: idle to the end
                sleep(stream.duration_s - now)
                continue
            sleep(min(requests[next_arrival].arrival_s, stream.duration_s) - now)
            continue
        decoding = len(running)
        cpu0 = cpu_clock()
        admitted = []
        while (next_arrival < len(requests) and requests[next_arrival].arrival_s <= now
               and len(running) < stream.max_batch):
            admitted.append(requests[next_arrival])
            running.append(requests[next_arrival])
            next_arrival += 1
        lengths = np.array([stream.prompt_tokens + r.tokens for r in running[:decoding]], dtype=np.int64)
        engine.step(lengths, decoding, len(admitted))
        done_s = clock() - t0
        busy_s += done_s - now
        busy_cpu_s += cpu_clock() - cpu0
        steps += 1
        if done_s >= stream.warmup_s and decoding:
            batch_sum += decoding
            decode_steps += 1
        for r in admitted:
            r.first_token_s = done_s
        for r in running:
            r.tokens += 1
            r.last_token_s = done_s
        if stream.warmup_s <= done_s < stream.duration_s:
            tokens_in_window += len(running)
        finished = [i for i, r in enumerate(running) if r.tokens >= stream.output_tokens]
        for i in reversed(finished):  # fill each freed slot with the last running one
            last = len(running) - 1
            if i != last:
                engine.move(last, i)
                running[i] = running[last]
            running.pop()
    window = [r for r in requests if r.tokens >= stream.output_tokens and r.arrival_s >= stream.warmup_s
              and r.last_token_s < stream.duration_s]
    ttft = [r.first_token_s - r.arrival_s for r in window]
    tpot = [(r.last_token_s - r.first_token_s) / (stream.output_tokens - 1) for r in window
            if stream.output_tokens > 1]
    span = min(end_s, stream.duration_s) - stream.warmup_s
    return ServeResult(
        output_tokens_per_s=tokens_in_window / span, ttft_median_s=_q(ttft, 0.5), ttft_p90_s=_q(ttft, 0.9),
        tpot_median_s=_q(tpot, 0.5), tpot_p90_s=_q(tpot, 0.9),
        mean_batch=batch_sum / decode_steps if decode_steps else math.nan, completed=len(window), steps=steps,
        window_s=span, busy_s=busy_s, busy_cpu_s=busy_cpu_s)
