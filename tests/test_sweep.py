import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Scenario, ScenarioError, evaluate, sweep

BASE = Scenario.from_dict({
    "model": {"layers": 32, "hidden": 4096, "heads": 32, "mlp": "swiglu", "vocab": 32000, "seq_len": 4096},
    "training": {"tokens": 1e12, "global_batch_seqs": 1024},
    "cluster": {"accelerator": "H100-SXM", "gpus": 64, "tp": 2},
})
OUTPUTS = ["step_time_s", "wall_days", "cost_usd", "memory_per_gpu_gb", "mfu", "energy_mwh"]


def test_sweep_rows_equal_single_evaluations():
    grid = {"cluster.gpus": [32, 64, 128], "training.zero_stage": [0, 3], "cluster.accelerator": ["H100-SXM", "A100-80GB-SXM"],
            "cluster.sync": ["ring", "tree"], "training.recompute": ["none", "full"]}
    frame = sweep(BASE, grid)
    assert len(frame) == 48 and frame["valid"].all()
    for _, row in frame.sample(10, random_state=0).iterrows():
        one = evaluate(BASE.replace(**{k: row[k] for k in grid}))
        for key in OUTPUTS:
            assert row[f"training.{key}"] == pytest.approx(one.value(f"training.{key}"), rel=1e-9), key
        assert row["quality.loss"] == pytest.approx(one.value("quality.loss"), rel=1e-12)


def test_sweep_over_params_derives_shapes_like_scenario_does():
    base = Scenario.from_dict({"model": {"params": 1e9}, "cluster": {"gpus": 8}, "training": {"tokens": 1e11}})
    frame = sweep(base, {"model.params": [1e9, 7e9, 70e9]})
    for _, row in frame.iterrows():
        one = Scenario.from_dict({"model": {"params": row["model.params"]}, "cluster": {"gpus": 8}, "training": {"tokens": 1e11}})
        assert one.model.params == pytest.approx(row["model.params_counted"], rel=1e-12)


def test_invalid_rows_are_flagged_not_dropped():
    frame = sweep(BASE, {"cluster.tp": [1, 2, 3], "cluster.gpus": [64, 96]})
    assert len(frame) == 6
    bad = frame[~frame["valid"]]
    assert set(bad["cluster.tp"]) == {3} or (bad["reason"] != "").all()
    assert bad["training.wall_days"].isna().all()
    assert frame.loc[(frame["cluster.tp"] == 3) & (frame["cluster.gpus"] == 96), "reason"].item().startswith("cluster.tp")
    good = frame[frame["valid"]]
    assert np.isfinite(good["training.wall_days"]).all()


def test_sweep_rejects_bad_grids():
    with pytest.raises(ScenarioError, match=r"unknown key"):
        sweep(BASE, {"cluster.gpuz": [1]})
    with pytest.raises(ScenarioError, match=r"cluster\.gpus"):
        sweep(BASE, {"cluster.gpus": [-4]})
    with pytest.raises(ScenarioError, match=r"cluster\.accelerator"):
        sweep(BASE, {"cluster.accelerator": ["NoSuchGPU"]})


def test_more_tokens_cost_more_in_a_sweep():
    frame = sweep(BASE, {"training.tokens": np.geomspace(1e9, 1e13, 20).tolist()})
    assert np.all(np.diff(frame["training.cost_usd"].to_numpy()) > 0)


SHAPES = st.sampled_from([(24, 2048, 16), (32, 4096, 32), (40, 5120, 40), (80, 8192, 64), (96, 12288, 96)])


@st.composite
def valid_scenarios(draw):
    layers, hidden, heads = draw(SHAPES)
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if heads % t == 0]))
    pp = draw(st.sampled_from([p for p in (1, 2, 4, 8) if layers % p == 0]))
    dp = draw(st.integers(1, 64))
    micro = draw(st.sampled_from([1, 2, 4]))
    sync = draw(st.sampled_from(["ring", "tree", "ps", "async"]))
    data = {
        "model": {"layers": layers, "hidden": hidden, "heads": heads, "mlp": draw(st.sampled_from(["gelu", "swiglu"])),
                  "vocab": draw(st.sampled_from([32000, 50257, 128256])), "seq_len": draw(st.sampled_from([1024, 2048, 8192]))},
        "training": {"tokens": draw(st.floats(1e8, 1e13)), "global_batch_seqs": micro * dp * draw(st.integers(1, 32)),
                     "micro_batch_seqs": micro, "precision": draw(st.sampled_from(["bf16", "fp16", "fp32", "fp8"])),
                     "recompute": draw(st.sampled_from(["none", "selective", "full"])),
                     "zero_stage": 0 if sync in ("ps", "async") else draw(st.integers(0, 3)),
                     "sequence_parallel": draw(st.booleans()), "sharding": draw(st.sampled_from(["random", "sequential"]))},
        "cluster": {"accelerator": draw(st.sampled_from(["H100-SXM", "H200", "B200", "MI300X"])), "gpus": tp * pp * dp,
                    "gpus_per_node": 8, "tp": tp, "pp": pp, "sync": sync, "ps_servers": draw(st.integers(1, dp)),
                    "straggler_cv": draw(st.floats(0, 0.5)), "dp_overlap": draw(st.floats(0, 1))},
        "quality": {"law": draw(st.sampled_from(["chinchilla", "epoch"]))},
    }
    return Scenario.from_dict(data)


@settings(max_examples=120, deadline=None)
@given(scenario=valid_scenarios())
def test_every_valid_scenario_gives_finite_figures(scenario):
    plan = evaluate(scenario)
    for section in (plan.training, plan.quality):
        for key, fig in section.items():
            assert isinstance(fig.value, bool) or math.isfinite(fig.value), key
    t = plan.training
    assert 0 < t["mfu"].value <= t["hfu"].value <= 1.0
    assert t["wall_days"].value > 0 and t["cost_usd"].value > 0
    assert sum(plan.step_breakdown().values()) == pytest.approx(t["step_time_s"].value, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(scenario=valid_scenarios(), factor=st.floats(1.01, 100))
def test_cost_grows_with_tokens(scenario, factor):
    more = scenario.replace(**{"training.tokens": min(scenario.training.tokens * factor, 1e16)})
    assert evaluate(more).value("training.cost_usd") > evaluate(scenario).value("training.cost_usd")


def test_derived_inputs_follow_the_swept_inputs():
    base = Scenario.from_dict({"model": {"params": 1e9}, "cluster": {"gpus": 8}})
    frame = sweep(base, {"model.params": [1e9, 2e9], "cluster.accelerator": ["H100-SXM", "A100-80GB-SXM"]})
    for _, row in frame.iterrows():
        one = evaluate(base.replace(**{"model.params": row["model.params"], "cluster.accelerator": row["cluster.accelerator"]}))
        assert row["training.cost_usd"] == pytest.approx(one.value("training.cost_usd"), rel=0.05)
    a100 = frame[frame["cluster.accelerator"] == "A100-80GB-SXM"]
    assert (a100["training.cost_usd"] / a100["training.gpu_hours"]).round(2).unique().tolist() == [1.59]
