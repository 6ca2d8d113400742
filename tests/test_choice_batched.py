"""The layout planner times every candidate in two model passes (simulator/training/choice.py: all micro-batches,
then every legal micro-batch × interleave pair) and picks what trying them one at a time, in order, picked."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.sweep_speed import random_columns
from simulator.training import choice
from simulator.training.layout import interleave_legal, planner_can_interleave


def one_at_a_time(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The planner as it was: one model pass per candidate, micro-batch by micro-batch, interleave by interleave."""
    n = cols["layers"].size
    b_in, v_in = cols["micro_batch"], cols["interleave"]
    b_free, v_free = ~np.isfinite(b_in), ~np.isfinite(v_in)
    per_rank = np.ceil(cols["global_batch"] / cols["dp"])
    b_cands = [np.where(b_free, b, b_in) for b in choice.MICRO_BATCH_CANDIDATES]
    v_cands = [np.where(v_free, v, v_in) for v in choice.INTERLEAVE_CANDIDATES]
    b_legal = [b_free & (b <= per_rank) for b in choice.MICRO_BATCH_CANDIDATES]
    b_legal[0] = np.ones(n, dtype=bool)
    stages = choice._stages_given(cols, np.arange(n))
    v_maybe = [v_free & (cols["pp"] > 1) & (stages | planner_can_interleave(cols["layers"], cols["pp"], v))
               for v in choice.INTERLEAVE_CANDIDATES[1:]]
    several = (np.sum(b_legal, axis=0) > 1) | np.any(v_maybe, axis=0)
    best_s = np.full(n, np.inf)
    best_b, best_v = b_cands[0].copy(), v_cands[0].copy()
    for b_ok, b in zip(b_legal, b_cands, strict=True):
        rows = np.flatnonzero(b_ok & several)
        if rows.size == 0:
            continue
        step_s, fits, first, last = choice._run(cols, rows, b[rows], v_cands[0][rows])
        choice._keep_faster(best_s, best_b, best_v, rows, np.where(fits, step_s, np.inf), b[rows], v_cands[0][rows])
        for i in range(1, len(choice.INTERLEAVE_CANDIDATES)):
            v = v_cands[i][rows]
            ok = v_maybe[i - 1][rows] & interleave_legal(cols["layers"][rows], cols["pp"][rows], first, last, v,
                                                          stages[rows])
            sub = rows[ok]
            if sub.size:
                step_v, fits_v, _, _ = choice._run(cols, sub, b[sub], v[ok])
                choice._keep_faster(best_s, best_b, best_v, sub, np.where(fits_v, step_v, np.inf), b[sub], v[ok])
    return best_b, best_v


@pytest.mark.parametrize("seed", range(4))
def test_two_passes_choose_what_one_candidate_at_a_time_chose(seed):
    rng = np.random.default_rng(seed)
    c = random_columns(3000, seed=seed)
    c["micro_batch"] = np.where(rng.random(3000) < 0.7, np.nan, rng.choice([1.0, 2.0, 4.0], 3000))
    c["interleave"] = np.where(rng.random(3000) < 0.7, np.nan, 1.0)
    c["pp"] = rng.choice([1.0, 2.0, 4.0, 8.0], 3000)
    cols = choice._model_columns(c)
    want_b, want_v = one_at_a_time(cols)
    got_b, got_v = choice._choose(cols)
    np.testing.assert_array_equal(got_b, want_b)
    np.testing.assert_array_equal(got_v, want_v)
    assert np.any(got_v > 1) and np.any(got_b > 1)  # the grid exercises both choices
