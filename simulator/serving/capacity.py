"""The batch a replica runs: the largest that fits and meets the latency targets, and the batch a request rate
sustains (Little's law); replicas for a peak rate. Vectorised bisections (step time grows with the batch): every
row of a block halves its bracket at once, each halving a few whole-array operations on the step time's batch
curve (serving/step.py SteadyCurve, its batch-free terms computed once), never a loop over rows."""

from __future__ import annotations

import numpy as np

from simulator.serving.step import Replica, SteadyCurve, prefill_alone, steady_step

BISECT_STEPS = 40  # halvings at most: 2^-40 of a batch range of at most 1e7 sequences is far below one sequence
REL_TOL = 1e-6  # the operating batch's bisection stops when every row's bracket is this narrow (relative)


def replicas_for(peak_requests_per_s, replica_requests_per_s):
    """Replicas that carry the peak: each carries its share of the peak at most (a whole number, rounded up; a
    hair of float error does not add one)."""
    return replicas_for_load(np.asarray(peak_requests_per_s) / np.asarray(replica_requests_per_s))


def replicas_for_load(load: np.ndarray) -> np.ndarray:
    """`replicas_for` of a load given as the peak ÷ one replica's rate (a new array, rounded up in place)."""
    replicas = np.subtract(load, 1e-9)
    return np.ceil(replicas, out=replicas)


def ttft_s(r: Replica, batch, prompt_tokens, output_tokens):
    """Time to first token at `batch`: the prompt's own prefill plus the running step it joins (chunked
    prefill shares that step; queueing before admission is left out below capacity)."""
    return prefill_alone(r, prompt_tokens).total_s + steady_step(r, batch, prompt_tokens, output_tokens).total_s


def best_batch(r: Replica, limit, prompt_tokens, output_tokens, tpot_target_s, ttft_target_s,
               curve: SteadyCurve | None = None, prefill_s=None):
    """The largest whole batch in [1, limit] whose step time and TTFT meet the targets; 0 where none does.
    `curve` and `prefill_s`: the rows' SteadyCurve and lone prefill time, when the caller has them already."""
    curve = SteadyCurve(r, prompt_tokens, output_tokens) if curve is None else curve
    if prefill_s is None:
        prefill_s = prefill_alone(r, prompt_tokens).total_s  # the same at every batch (see ttft_s)

    def ok(b):
        step_s = curve.total_s(b)
        return (step_s <= tpot_target_s) & (prefill_s + step_s <= ttft_target_s) & (b >= 1) & (b <= limit)

    limit = np.floor(np.asarray(limit, dtype=float))
    at_limit = ok(limit)
    lo = np.where(ok(np.ones_like(limit)), 1.0, 0.0)  # invariant: lo meets the targets, or is 0 (none does)
    hi = np.maximum(limit, 1.0)                        # invariant: hi misses them (unless at_limit)
    for _ in range(BISECT_STEPS):
        if not np.any((lo > 0) & (hi - lo > 1.0)):  # every bracket is down to neighbouring whole batches
            break
        mid = np.floor((lo + hi) / 2.0)
        good = (lo > 0) & ok(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good | (lo == 0), hi, mid)
    return np.where(at_limit, limit, lo)


def operating_batch(r: Replica, arrivals_per_s, cap_batch, prompt_tokens, output_tokens,
                    curve: SteadyCurve | None = None):
    """Sequences decoding at once under a steady `arrivals_per_s`: Little's law L = λ·W with W = output steps ×
    step time, B = λ·output·t(B), solved in [0, cap_batch] (the rate is within the replica's capacity)."""
    curve = SteadyCurve(r, prompt_tokens, output_tokens) if curve is None else curve
    demand = arrivals_per_s * output_tokens  # × step time: the sequences decoding at once
    lo, hi = np.zeros_like(cap_batch), np.asarray(cap_batch, dtype=float)
    for _ in range(BISECT_STEPS):
        open_ = hi - lo > REL_TOL * np.maximum(hi, 1.0)  # a row stops at its own tolerance: no row's answer
        if not np.any(open_):                           # depends on the other rows of its block
            break
        mid = (lo + hi) / 2.0
        above = demand * curve.total_s(mid) > mid
        lo = np.where(open_ & above, mid, lo)
        hi = np.where(open_ & ~above, mid, hi)
    return hi
