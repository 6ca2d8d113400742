"""The model's own error as spread terms (simulator/model_error.py): it widens every range it touches, moves
correlated figures together, is never narrowed by a calibrated device, and its σ is what the residuals say."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from simulator import Scenario, evaluate, model_error
from simulator.catalog import get_accelerator
from simulator.decision.uncertainty import monte_carlo
from simulator.evaluator import perturbations, scenario_model_spreads, scenario_rows, uncertain_columns
from simulator.model_error import BY_NAME, Z_P90, needed, sigma_of, summarise, t_scale
from simulator.sweeps import evaluate_columns

TRAIN = {"model": {"params": 7e9}, "training": {"tokens": 1e11}, "cluster": {"gpus": 64},
         "serving": {"requests_per_s": 400.0}}
ZERO = dict.fromkeys(model_error.COLUMNS, 0.0)


def _width(plan, key):
    f = plan.figures[key]
    assert f.low is not None and f.high is not None, key
    return f.high - f.low


@pytest.mark.parametrize("term, figures", [
    ("train_step", ("training.step_time_s", "training.tokens_per_s", "training.mfu", "training.hw_tflops_per_gpu",
                    "training.wall_days", "training.gpu_hours", "training.cost_usd", "training.energy_mwh",
                    "decision.total_cost_usd")),
    ("goodput", ("training.wall_days", "training.gpu_hours", "training.cost_usd", "decision.total_cost_usd")),
    ("serve_step", ("serving.replica_output_tokens_per_s", "serving.ttft_s", "serving.tpot_s",
                    "serving.monthly_cost_usd", "serving.cost_per_million_output_tokens_usd")),
    ("loss", ("quality.loss", "quality.dense_loss")),
])
def test_a_model_error_term_widens_every_range_it_touches(term, figures):
    s = Scenario.from_dict(TRAIN)
    column = BY_NAME[term].column
    without = evaluate(s, model_spreads=ZERO)
    with_term = evaluate(s, model_spreads=ZERO | {column: 0.1})
    for i, key in enumerate(figures):
        assert _width(with_term, key) > _width(without, key), key
        if i < 2:  # the figures it multiplies directly: listed among what moves their range
            assert column in with_term.figures[key].moved_by, key
        assert with_term.figures[key].value == pytest.approx(without.figures[key].value, rel=1e-12), key
    assert any(t.column == column and t.kind == "model error" for t in with_term.spreads)


def test_the_step_time_error_moves_time_gpu_hours_cost_and_energy_together():
    s = Scenario.from_dict(TRAIN)
    cols = scenario_rows([s])
    rows, names = perturbations(cols, {"model_err_train_step": 0.1})
    i = names.index("model_err_train_step")
    with np.errstate(all="ignore"):
        out = evaluate_columns(rows)
    for key in ("training.wall_days", "training.gpu_hours", "training.cost_usd", "training.energy_mwh",
                "decision.total_cost_usd"):
        base, low, high = out[key][0], out[key][1 + 2 * i], out[key][2 + 2 * i]
        assert low < base < high, key
    # log scale: P10 and P90 of the step time are exp(∓1.2816σ) of the plan's
    assert out["training.step_time_s"][2 + 2 * i] / out["training.step_time_s"][0] == pytest.approx(
        math.exp(Z_P90 * 0.1), rel=1e-9)


def test_in_the_monte_carlo_the_serving_error_moves_gpus_and_cost_together():
    """One draw of the serving step error sets replicas, GPUs and cost at once: with only that term drawn, the
    total cost never falls when the draw is slower."""
    s = Scenario.from_dict(TRAIN)
    cols = scenario_rows([s])
    draws = np.exp(0.2 * np.linspace(-2, 2, 9))
    rows = {k: np.repeat(np.asarray(v, dtype=float)[:1], draws.size) for k, v in cols.items()}
    rows["model_err_serve_step"] = draws
    with np.errstate(all="ignore"):
        out = evaluate_columns(rows)
    for key in ("serving.gpus", "serving.monthly_cost_usd", "decision.total_cost_usd"):
        assert np.all(np.diff(out[key]) >= 0), key
    assert out["serving.gpus"][-1] > out["serving.gpus"][0]


def test_monte_carlo_with_only_a_model_error_is_centred_on_the_plan():
    s = Scenario.from_dict(TRAIN)
    cols = scenario_rows([s])
    plan_cost = float(evaluate(s).value("decision.total_cost_usd"))
    spreads = {"model_err_train_step": 0.2}  # no device spread: only this term and the inputs with a spread
    mc = monte_carlo(cols, spreads, plan_cost, 4000, 1, "decision.total_cost_usd", "quality.loss")
    assert "model_err_train_step" in mc.moved
    assert mc.total_cost_usd.p10 < plan_cost * 1.05 and mc.total_cost_usd.p90 > plan_cost


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 2.0, allow_nan=False))
def test_a_calibrated_device_never_narrows_the_model_term(heldout):
    spec = dataclasses.replace(get_accelerator("H100-SXM"), id="my-h100", display_name="my H100",
                               heldout_error=heldout)
    s = Scenario.from_dict(TRAIN | {"cluster": {"gpus": 64, "accelerator": "my-h100"}}, {"my-h100": spec})
    measured = model_error.spreads()
    got = scenario_model_spreads(s, {"my-h100": spec})
    for column, sigma in measured.items():
        assert got[column] >= sigma
    step = got.get("model_err_train_step", 0.0)
    assert step >= heldout * model_error.MAPE_TO_SIGMA - 1e-12 or heldout == 0.0
    # and the ranges a plan on it gets hold at least that model term
    assert uncertain_columns(scenario_rows([s], {"my-h100": spec}), got).get("model_err_train_step", 0.0) == step


def test_sigma_is_the_80th_percentile_of_the_residuals_needed():
    r = [0.0, 0.1, -0.2, 0.3, 0.05]
    # |r| sorted: 0, 0.05, 0.1, 0.2, 0.3; the 80% quantile (definition 1) is 0.2
    assert sigma_of(r) == pytest.approx(0.2 / Z_P90)
    # a row whose device range already spans it needs no model error
    assert needed([0.2], [0.2 / Z_P90])[0] == pytest.approx(0.0)
    assert needed([0.3], [0.4 / Z_P90])[0] == 0.0
    assert needed([0.5], [0.3 / Z_P90])[0] == pytest.approx(0.4 / Z_P90)


def test_every_group_weighs_the_same():
    """Ten rows of one paper near 0 do not drown two other papers off by 30%."""
    r = [0.01] * 10 + [0.3, -0.3]
    groups = ["big"] * 10 + ["a", "b"]
    assert sigma_of(r) < 0.05
    assert sigma_of(r, groups) == pytest.approx(0.3 / Z_P90)


def test_leave_one_group_out_leaves_the_group_out():
    recs = [{"group": "a", "log_ratio": 0.5, "source": "A"}, {"group": "b", "log_ratio": 0.1, "source": "B"},
            {"group": "b", "log_ratio": -0.1, "source": "B"}]
    held = summarise(BY_NAME["train_step"], recs, exclude_group="a")
    assert held["rows"] == 2 and held["groups"] == ["b"] and held["sigma"] == pytest.approx(0.1 / Z_P90)
    assert summarise(BY_NAME["train_step"], recs)["sigma"] > held["sigma"]


@pytest.mark.parametrize("df", [2.5, 4.0, 10.0, 40.0])
def test_student_t_draws_keep_the_normal_p10_p90(df):
    assert stats.t.ppf(0.9, df) * t_scale(df) == pytest.approx(Z_P90)
    assert t_scale(math.inf) == 1.0


def test_the_data_file_is_what_its_residuals_say():
    """Each shipped term's σ is recomputed from the residuals stored beside it: the file is written by
    `python -m benchmarks.model_error --write`, never edited by hand, at the quantile it names."""
    data = model_error._load(str(model_error.DATA_PATH))
    if not data.get("terms"):
        pytest.skip("no model_error.json shipped")
    measured = {}
    for name, rec in data["terms"].items():
        declared = BY_NAME[name]
        residuals = [r | {"source": "s", "log_ratio": r["log_ratio"] if not declared.input_key
                          else r.get("linear", r["log_ratio"])} for r in rec["residuals"]]
        less = {n: measured.get(n, data["terms"].get(n, {}).get("sigma", 0.0)) for n in declared.less}
        got = summarise(declared, residuals, less, level=data["level"])
        measured[name] = got["sigma"]
        assert got["sigma"] == pytest.approx(rec["sigma"], abs=1e-4), name
        assert got["rows"] == rec["rows"] == len(rec["residuals"]), name


@given(st.floats(-4.0, 4.0), st.floats(0.01, 2.0))
def test_a_draw_and_the_factor_it_gives_invert(z, sigma):
    """A model-error term moves by one rule in its range, the Monte Carlo and the risk estimate (evaluator.factor):
    log scale, or 1 + σz (at least 0) for a term measured on a linear scale; draw_of reads a move back as draws."""
    from simulator.evaluator import draw_of, factor, move

    for column, log in (("model_err_train_step", True), ("loss_scale", False)):
        f = float(factor(column, sigma, z))
        assert f == pytest.approx(math.exp(sigma * z) if log else max(0.0, 1.0 + sigma * z))
        if f > 0.0:
            assert float(draw_of(column, sigma, f)) == pytest.approx(z, abs=1e-9)
        low, high = move(column, sigma)
        assert (low, high) == pytest.approx((float(factor(column, sigma, -Z_P90)), float(factor(column, sigma, Z_P90))))
