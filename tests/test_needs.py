"""A family runs when its figures are needed: declared needs are complete, sweeps run only what their columns need,
and `valid`/`reason` never depend on which families ran (simulator/needs.py)."""

import re

import numpy as np
import pandas as pd
import pytest

from simulator import Scenario, ScenarioError
from simulator.cli import main
from simulator.evaluator import scenario_rows
from simulator.families import FAMILIES
from simulator.inputs import FIGURES
from simulator.needs import BY_NAME, closure, families_for, figures_of
from simulator.sweeps import evaluate_columns, sweep, sweep_arrays

SCENARIOS = [
    {"model": {"params": 7e9}},
    {"model": {"params": 70e9}, "cluster": {"gpus": 512, "tp": 8, "pp": 4}, "training": {"tokens": 2e12},
     "compression": {"weight_bits": 4, "quant_method": "gptq", "group_size": 128}},
    {"model": {"params": 13e9}, "serving": {"requests_per_s": 40, "batch": 16, "prompt_tokens": 2000},
     "finance": {"deploy": "buy", "traffic_growth_per_month": 0.05, "revenue_per_million_output_tokens_usd": 3.0},
     "decision": {"horizon_months": 24, "quality_target_loss": 2.1}},
    {"model": {"params": 1e9}, "cluster": {"accelerator": "A100-80GB-SXM", "gpus": 16},
     "finance": {"deploy": "api", "rent_term": "3y"}, "goodput": {"enabled": False}},
]
BASE = Scenario.from_dict({"model": {"params": 7e9}, "cluster": {"gpus": 64}, "training": {"tokens": 1e11}})
# some rows break a rule (tp 3 divides no head count), so that valid/reason are exercised
GRID = {"cluster.gpus": [48, 64, 192], "cluster.tp": [1, 3, 8], "training.zero_stage": [0, 3],
        "training.recompute": ["none", "full"]}


def _rows() -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return scenario_rows([Scenario.from_dict(s) for s in SCENARIOS])


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == bool or b.dtype == bool:
        return np.array_equal(a.astype(bool), b.astype(bool))
    return np.array_equal(a.astype(float), b.astype(float), equal_nan=True)


def test_each_family_runs_with_only_its_declared_needs():
    """Each family, given the resolved inputs and only the columns its declared needs made, runs without a KeyError,
    gives the figures it gives after every family before it (no optional read goes undeclared), and its rules can
    be checked on those columns."""
    base = _rows()
    made: dict[str, dict[str, np.ndarray]] = {}
    everything = dict(base)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for family in FAMILIES:
            made[family.name] = family.run(dict(everything))
            everything.update(made[family.name])
        for family in FAMILIES:
            cols = dict(base)
            for need in family.needs:
                cols.update(made[need])
            out = family.run(cols)
            assert set(out) == set(made[family.name]), family.name
            for key, value in out.items():
                assert _same(value, made[family.name][key]), f"{family.name}: {key} depends on an undeclared need"
            cols.update(out)
            for rule in family.rules:
                rule.broken(cols)


def test_needs_name_earlier_families():
    names = [f.name for f in FAMILIES]
    for i, family in enumerate(FAMILIES):
        for need in family.needs:
            assert need in names[:i], f"{family.name} needs {need}, which must be registered before it"


def test_the_families_a_figure_needs():
    assert [f.name for f in families_for(["training.step_time_s"])] == ["training"]
    assert [f.name for f in families_for(["serving.tpot_s"])] == ["compression", "serving"]
    assert [f.name for f in families_for(["finance.npv_usd"])] == ["training", "goodput", "cost", "compression",
                                                                  "serving", "finance"]
    assert families_for(None) == FAMILIES == families_for(["all"]) == closure([BY_NAME["decision"]])
    assert figures_of(["cost"]) == [f.key for f in BY_NAME["cost"].figures]


def test_a_training_only_sweep_gives_the_full_sweeps_training_figures():
    full = sweep(BASE, GRID, columns=["all"])
    training = sweep(BASE, GRID, columns=["training"])
    keys = [f.key for f in BY_NAME["training"].figures]
    assert [k for k in training.columns if k in FIGURES] == keys
    assert not (~full["valid"]).all() and (~full["valid"]).any()
    pd.testing.assert_series_equal(training["valid"], full["valid"])
    pd.testing.assert_series_equal(training["reason"], full["reason"])
    for key in keys:
        assert _same(training[key], full[key]), key
    default = sweep(BASE, GRID)  # a training plan's families: no serving or money asked
    assert {k.split(".")[0] for k in default.columns if k in FIGURES} == {"model", "training", "quality"}  # model: the counts
    for key in (k for k in default.columns if k in FIGURES):
        assert _same(default[key], full[key]), key
    pd.testing.assert_series_equal(default["reason"], full["reason"])


def test_asking_for_a_serving_figure_runs_serving():
    full = sweep_arrays(BASE, GRID, columns=["all"])
    one = sweep_arrays(BASE, GRID, columns=["serving.tpot_s", "cluster.gpus", "valid"])
    assert [k for k in one if k in FIGURES] == ["serving.tpot_s"]
    assert np.isfinite(one["serving.tpot_s"][one["valid"]]).all()
    assert _same(one["serving.tpot_s"], full["serving.tpot_s"])
    assert _same(one["valid"], full["valid"])
    # a scenario that gives serving inputs gets the serving figures by default
    served = sweep(BASE.replace(**{"serving.requests_per_s": 10.0}), {"cluster.gpus": [64, 128]})
    assert "serving.tpot_s" in served and "finance.npv_usd" not in served
    assert "training.wall_days" in served


def test_evaluate_columns_runs_the_families_asked_for():
    cols = evaluate_columns(_rows(), ["quality.loss"])
    assert "quality.loss" in cols and "training.step_time_s" in cols
    assert "serving.tpot_s" not in cols and "training.cost_usd" not in cols


@pytest.mark.parametrize("name, close", [("serving.tpot", "serving.tpot_s"), ("trainng", "training"),
                                         ("training.wall_day", "training.wall_days")])
def test_an_unknown_figure_names_close_matches(name, close):
    with pytest.raises(ScenarioError, match=rf"unknown figure '{re.escape(name)}'; did you mean .*{re.escape(close)}"):
        sweep(BASE, {"cluster.gpus": [64]}, columns=[name])
    with pytest.raises(ScenarioError, match=close):
        evaluate_columns(_rows(), [name])


def test_the_cli_columns_select_the_families(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text('{"model": {"params": 7e9}}')
    out = tmp_path / "out.csv"
    assert main(["sweep", str(path), "--grid", "cluster.gpus=64,128", "--columns", "serving.tpot_s,training",
                 "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert "serving.tpot_s" in frame and "training.step_time_s" in frame and "finance.npv_usd" not in frame
    assert "training.cost_usd" not in frame
    assert main(["sweep", str(path), "--grid", "cluster.gpus=64", "--columns", "serving.tpot"]) == 2
    assert "did you mean serving.tpot_s" in capsys.readouterr().err
