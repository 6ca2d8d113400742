"""Rows alike (simulator.training.rows.unique_rows) and the training model run once per distinct step
(training_per_token, then × the tokens as the training family's steps do): the same numbers as every row evaluated."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.sweep_speed import random_columns
from simulator.training import rows
from simulator.training.model import PER_TOKEN, per_run, training_columns, training_per_token
from simulator.training.rows import unique_rows


def training_columns_by_step(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model once per distinct step, the outputs proportional to the tokens scaled per row (the training
    family's two steps, simulator/families/training.py)."""
    out = training_per_token(c)
    return out | per_run(out, c["tokens"])


def _check(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    first, inverse = unique_rows(columns)
    for c in columns:  # every row is its distinct row again, bit for bit
        assert np.array_equal(np.asarray(c)[first][inverse].view(np.uint64), np.asarray(c).view(np.uint64))
    key = np.stack([np.asarray(c).view(np.uint64) for c in columns], axis=1)
    assert len({row.tobytes() for row in key}) == first.size  # as many distinct rows as there are
    assert np.all(np.diff(first) > 0) and first[0] == 0  # in order of first appearance
    return first, inverse


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, -0.0, 1.0, 2.5, np.nan, np.inf, 1e300]),
                          st.sampled_from([3.0, 4.0, np.nan])), min_size=1, max_size=200))
def test_unique_rows_groups_exactly_the_equal_rows(pairs):
    a, b = (np.array(x, dtype=float) for x in zip(*pairs, strict=True))
    _check([a, b])


def test_a_hash_collision_falls_back_to_the_exact_grouping(monkeypatch):
    monkeypatch.setattr(rows, "_MIX", np.zeros(4, dtype=np.uint64))  # every row hashes alike
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 3, 500).astype(float), rng.integers(0, 2, 500).astype(float)
    first, _ = _check([a, b])
    assert first.size == 6


def test_the_training_model_once_per_step_gives_every_rows_numbers():
    cols = random_columns(3000, seed=3)
    step = {k: v[:300] for k, v in cols.items()}  # 300 steps, each at ten token counts
    alike = {k: np.tile(v, 10) for k, v in step.items()}
    alike["tokens"] = np.repeat(np.geomspace(1e9, 1e13, 10), 300)
    every, once = training_columns(alike), training_columns_by_step(alike)
    assert set(every) == set(once)
    for key in every:
        np.testing.assert_allclose(once[key], every[key], rtol=1e-12, equal_nan=True, err_msg=key)
    assert {"wall_days", "iterations"} <= set(PER_TOKEN)


@pytest.mark.parametrize("n", [1, 10, 2000])
def test_rows_all_different_are_evaluated_as_they_come(n):
    cols = {k: v[:n] for k, v in random_columns(2000, seed=5).items()}
    every, once = training_columns(cols), training_columns_by_step(cols)
    for key in every:
        np.testing.assert_allclose(once[key], every[key], rtol=1e-12, equal_nan=True, err_msg=key)
