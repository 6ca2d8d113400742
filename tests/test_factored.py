"""A factored sweep (simulator/factored.py: each stage on the sub-grid of the axes it reads) gives the numbers of the
same grid evaluated row by row, and runs each stage on no more rows than its axes hold."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Scenario, evaluate, factored, sweeps
from simulator.factored import Column, Factored, spread
from simulator.hardware_table import hardware_table
from simulator.inputs import FIGURES, INPUTS
from simulator.needs import sweep_figures
from simulator.registry import steps_of
from simulator.resolve import device_catalog, encode_values, expand_preset, resolve_into, rule_codes
from simulator.sweeps import BOOL_FIGURES, sweep_arrays

BASE = Scenario.from_dict({"model": {"params": 7e9}, "cluster": {"gpus": 64}, "training": {"tokens": 1e11}})
# training, serving and money keys together; tp 3 divides no head count, so some rows break a rule
GRID = {
    "cluster.gpus": [48, 64, 192],
    "cluster.tp": [1, 3, 8],
    "training.tokens": [1e10, 3e11],
    "serving.requests_per_s": [0.5, 40.0, 900.0],
    "serving.accelerator": ["H100-SXM", "A100-80GB-SXM"],
    "finance.deploy": ["rent", "buy", "api"],
    "finance.rent_term": ["on_demand", "3y"],
    "finance.traffic_growth_per_month": [0.0, 0.05],
}


def row_by_row(base: Scenario, grid: dict, columns) -> dict[str, np.ndarray]:
    """The grid's figures, every row written out and every stage run on all of them (one axis of N rows, no
    first-row trial): what a sweep computed before it was factored."""
    figures, families = sweep_figures(columns, [*base.given, *grid], list(grid))
    table = hardware_table(device_catalog())
    given, tokens = expand_preset(dict(base.given))
    rows = list(itertools.product(*grid.values()))
    n = len(rows)
    cols = {k: Column((), encode_values(k, [v], table)) for k, v in given.items()
            if INPUTS[k].column is not None and k not in grid}
    for i, key in enumerate(grid):
        cols[key] = Column((0,), encode_values(key, [r[i] for r in rows], table))
    every = Factored((n,), trial=False)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        resolve_into(every, cols, table, Column((), np.array([tokens])))
        code = rule_codes(every)
        for step in (s for f in families for s in steps_of(f.run)):
            every.store(*every.run(step))
    out = {k: np.where(code != 0, 0.0 if k in BOOL_FIGURES else np.nan, every.full(k).astype(float))
           for k in figures}  # a sweep's invalid rows: NaN, False where the figure is a yes/no
    return out | {"reason": code}


def _compare(fast: dict, slow: dict) -> None:
    assert np.array_equal(np.asarray(fast["reason"].codes), slow["reason"])
    assert 0 < (slow["reason"] != 0).sum() < len(slow["reason"])  # valid rows and broken ones
    for key, want in slow.items():
        if key in FIGURES:
            np.testing.assert_allclose(np.asarray(fast[key], dtype=float), want, rtol=1e-12, atol=0, err_msg=key)


def test_a_factored_sweep_gives_the_row_by_row_numbers():
    slow = row_by_row(BASE, GRID, ["all"])
    _compare(sweep_arrays(BASE, GRID, columns=["all"]), slow)
    assert any(np.isfinite(slow[k]).any() for k in ("finance.payback_months", "serving.tpot_s"))


def test_boxes_of_a_few_rows_give_the_same_numbers(monkeypatch):
    """Stages larger than STAGE_ROWS run box by box (fixed leading axes, a span of the next): the same numbers."""
    monkeypatch.setattr(factored, "STAGE_ROWS", 7)
    _compare(sweep_arrays(BASE, GRID, columns=["all"]), row_by_row(BASE, GRID, ["all"]))


def test_each_stage_runs_on_the_rows_of_the_axes_it_reads(monkeypatch):
    """A serving sweep over one training plan runs the training on one row; the layout choice of a grid over GPUs
    and tokens once per GPU count; the per-token figures on every row."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    run = Factored.run

    def spy(self, fn):
        axes, out = run(self, fn)
        seen.append((getattr(fn, "__name__", ""), axes))
        return axes, out

    monkeypatch.setattr(Factored, "run", spy)
    monkeypatch.setattr(sweeps, "TRIAL_ROWS", 0)  # small grids run every stage on all rows; these are small
    sweep_arrays(BASE, {"serving.requests_per_s": [0.5, 5.0, 50.0], "serving.prompt_tokens": [100, 4000],
                        "finance.deploy": ["rent", "buy"]}, columns=["all"])
    stages = dict(seen)
    assert stages["_per_step"] == () and stages["chosen_micro_batch"] == ()
    assert stages["_buy"] == (0, 1)  # rate and prompt: not the deployment
    assert stages["_chosen"] == (0, 1, 2)
    seen.clear()
    sweep_arrays(BASE, {"cluster.gpus": [64, 128], "training.tokens": [1e10, 1e11, 1e12]})
    stages = dict(seen)
    assert stages["chosen_micro_batch"] == (0,) and stages["_per_step"] == (0,)
    assert stages["_per_run"] == (0, 1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.data())
def test_rows_of_a_box_are_the_spread_grids_rows(sizes, data):
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(sizes) - 1)))))
    own = tuple(sorted(data.draw(st.sets(st.sampled_from(axes))))) if axes else ()
    grid = Factored(sizes)
    values = np.arange(grid.size(own), dtype=float) + 1.0
    grid.cols["x"] = Column(own, values)
    # the column over the sub-grid of `axes`: spread over every row, then the sub-grid's rows picked out
    whole = spread(sizes, own, values).reshape(sizes)
    want = whole[tuple(slice(None) if a in axes else 0 for a in range(len(sizes)))].reshape(-1)
    limit = data.draw(st.integers(1, 8))
    factored_rows = factored.STAGE_ROWS
    try:
        factored.STAGE_ROWS = limit
        boxes = list(grid.boxes(axes))
        got = np.concatenate([np.broadcast_to(grid.rows("x", b), (b.rows,)) for b in boxes])
    finally:
        factored.STAGE_ROWS = factored_rows
    assert sum(b.rows for b in boxes) == grid.size(axes)
    assert all(b.rows <= limit or (len(b.axes) - len(b.fixed) == 1 and b.span[1] - b.span[0] == 1) for b in boxes)
    np.testing.assert_array_equal(got, want)


def test_a_stage_that_reads_more_on_some_rows_is_run_on_the_wider_sub_grid():
    """A branch taken on some rows only (not on the first): the stage meets the column it did not read on the first
    row and runs again over that column's axes too."""
    grid = Factored((3, 2))
    grid.put("a", [0.0, 1.0, 2.0], (0,))
    grid.put("b", [10.0, 20.0], (1,))

    def stage(c):
        a = c["a"]
        return a + c["b"] if (a > 0).any() else a

    axes, out = grid.run(stage)
    assert axes == (0, 1)
    np.testing.assert_array_equal(out, [10, 20, 11, 21, 12, 22])


def test_a_stage_that_reads_nothing_that_varies_runs_once():
    grid = Factored((1000, 1000))
    grid.put("a", np.arange(1000.0), (0,))
    grid.put("k", 3.0)
    calls = []
    axes, out = grid.run(lambda c: calls.append(len(c["k"])) or c["k"] * 2)
    assert axes == () and calls == [1] and out.tolist() == [6.0]


def test_values_that_do_not_match_their_axes_are_refused():
    grid = Factored((3, 4))
    with pytest.raises(ValueError, match="5 values for axes"):
        grid.put("x", np.ones(5), (0, 1))


def test_an_empty_grid_is_the_base_scenario():
    one = sweep_arrays(BASE, {}, columns=["training"])
    plan = evaluate(BASE)
    assert len(one["valid"]) == 1 and bool(one["valid"][0])
    assert one["training.step_time_s"][0] == pytest.approx(plan.figures["training.step_time_s"].value, rel=1e-12)


def test_a_grid_larger_than_a_part_is_evaluated_in_parts(monkeypatch):
    """Past PART_ROWS rows a sweep runs slices of its leading axis one at a time: the same numbers."""
    whole = sweep_arrays(BASE, GRID, columns=["all"])
    monkeypatch.setattr(sweeps, "PART_ROWS", 100)  # 3 GPU counts of 432 rows: one slice of one value each
    parts = sweep_arrays(BASE, GRID, columns=["all"])
    monkeypatch.setattr(sweeps, "PART_ROWS", 5)  # even one value of the leading axis is larger: still one each
    tiny = sweep_arrays(BASE, GRID, columns=["all"])
    for key in whole:
        for other in (parts, tiny):
            a, b = whole[key], other[key]
            if hasattr(a, "codes"):  # a categorical: names as codes
                assert np.array_equal(a.codes, b.codes), key
            else:
                assert np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True), key


# keys of every family, a few values each (some combinations break a rule: the reasons are compared too)
POOL = {
    "cluster.gpus": [64, 96, 256], "cluster.tp": [1, 2, 8], "cluster.pp": [1, 2, 4],
    "cluster.accelerator": ["H100-SXM", "A100-80GB-SXM", "B200"], "cluster.sync": ["ring", "ps", "async"],
    "model.params": [1e9, 7e9, 70e9], "training.tokens": [1e10, 1e12], "training.global_batch_seqs": [256, 1024],
    "training.recompute": ["none", "full"], "training.zero_stage": [0, 1, 3], "training.precision": ["bf16", "fp8"],
    "training.sharding": ["random", "sequential"], "compression.weight_bits": [16, 8, 4],
    "compression.pruning_method": ["none", "wanda"], "quality.law": ["chinchilla", "epoch"],
    "serving.requests_per_s": [0.5, 50.0], "serving.prompt_tokens": [100, 8000],
    "serving.accelerator": ["H100-SXM", "A100-80GB-SXM"], "serving.tpot_target_s": [0.02, 0.1],
    "finance.deploy": ["rent", "buy", "api"], "finance.rent_term": ["on_demand", "1y"],
    "finance.traffic_growth_per_month": [0.0, 0.1], "decision.horizon_months": [12, 36],
    "goodput.enabled": [True, False],
}


@settings(max_examples=25, deadline=None)  # 600 examples pass too (run once by hand, 34 s)
@given(st.lists(st.sampled_from(sorted(POOL)), min_size=1, max_size=5, unique=True), st.integers(1, 9))
def test_any_grid_factored_gives_its_row_by_row_numbers(keys, block):
    """Random grids over keys of every family, every stage factored (no small-grid shortcut) in blocks of a few
    rows: the numbers of the grid evaluated row by row, every figure of every family."""
    grid = {k: POOL[k] for k in keys}
    trial, stage = sweeps.TRIAL_ROWS, factored.STAGE_ROWS
    try:
        sweeps.TRIAL_ROWS, factored.STAGE_ROWS = 0, block
        fast = sweep_arrays(BASE, grid, columns=["all"])
    finally:
        sweeps.TRIAL_ROWS, factored.STAGE_ROWS = trial, stage
    slow = row_by_row(BASE, grid, ["all"])
    assert np.array_equal(np.asarray(fast["reason"].codes), slow["reason"])
    for key, want in slow.items():
        if key in FIGURES:
            np.testing.assert_allclose(np.asarray(fast[key], dtype=float), want, rtol=1e-12, atol=0, err_msg=key)
