"""Mixture-of-experts, MLA, expert and context parallelism, fp8: shapes, counts, the training step, rules.

Published counts come from the presets' sources (simulator/presets.py); closed forms are computed here by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Scenario, evaluate
from simulator.errors import ScenarioError
from simulator.presets import PRESETS
from simulator.training.comm import all_to_all_s

DENSE_BEFORE = json.loads((Path(__file__).parent / "data" / "dense_before_moe.json").read_text(encoding="utf-8"))
MOE_PRESETS = [name for name, p in PRESETS.items() if p.published_params is not None]
NO_GOODPUT = {"goodput": {"enabled": False}}


def plan(data: dict) -> object:
    return evaluate(Scenario.from_dict(data))


def merge(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        for section, values in part.items():
            out.setdefault(section, {}).update(values)
    return out


@pytest.mark.parametrize("name", MOE_PRESETS)
def test_preset_counts_match_their_published_values(name):
    """Total and active parameters of every MoE preset within 2% of the publisher's, counted as the publisher does
    (OpenAI leaves the input embedding out of GPT-OSS's active count)."""
    preset = PRESETS[name]
    p = plan({"model": {"preset": name}, "training": {"tokens": 1e12}})
    total, active = p.value("model.total_params"), p.value("model.active_params")
    if not preset.active_counts_input_embedding:
        active -= p.scenario.model.vocab * p.scenario.model.hidden
    published_total, published_active = preset.published_params
    assert total == pytest.approx(published_total, rel=0.02)
    assert active == pytest.approx(published_active, rel=0.02)
    assert p.value("model.total_params") == p.scenario.model.params  # model.params is the total


def test_deepseek_v3_count_by_hand():
    """DeepSeek-V3 (config.json): MLA per layer 7168·1536 + 1536·128·192 + 7168·576 + 512·128·256 + 128·128·7168,
    3 dense layers of 3·7168·18432, 58 MoE layers of (256 + 1)·3·7168·2048 + a 256·7168 router, two 129280·7168
    tables, norms 4·7168 per layer and 2·7168 at the end."""
    h = 7168
    mla = h * 1536 + 1536 * 128 * 192 + h * 576 + 512 * 128 * 256 + 128 * 128 * h
    expert = 3 * h * 2048
    total = 61 * (mla + 4 * h) + 3 * 3 * h * 18432 + 58 * (257 * expert + 256 * h) + 2 * 129280 * h + 2 * h
    active = 61 * (mla + 4 * h) + 3 * 3 * h * 18432 + 58 * (9 * expert + 256 * h) + 2 * 129280 * h + 2 * h
    p = plan({"model": {"preset": "deepseek-v3"}})
    assert p.value("model.total_params") == total
    assert p.value("model.active_params") == active


def test_dense_plans_are_unchanged_bit_for_bit():
    """Dense bf16 plans give exactly the figures they gave before MoE, MLA, EP and CP existed (commit 40c230a)."""
    for case in DENSE_BEFORE["plans"]:
        p = plan(case["scenario"])
        for key, before in case["figures"].items():
            now = float(p.value(key))
            assert now == before or (math.isnan(now) and math.isnan(before)), (case["scenario"], key, now, before)


def test_one_expert_top_one_is_the_dense_model_up_to_the_router():
    """An MoE of one expert of the dense width, top-1, computes what the dense model computes plus the router (one
    h×1 GEMM per layer): L·h more parameters and 3·2·h·L more FLOPs per token; its step is the dense step plus the
    router and the token permutation, a few percent."""
    dense = {"model": {"layers": 16, "hidden": 2048, "heads": 16, "seq_len": 2048, "mlp": "swiglu"},
             "training": {"tokens": 1e11}, "cluster": {"gpus": 8}, **NO_GOODPUT}
    moe = merge(dense, {"model": {"moe_experts": 1, "moe_top_k": 1}, "training": {"moe_imbalance": 1.0}})
    a, b = plan(dense), plan(moe)
    L, h, tokens = 16, 2048, 1e11
    assert b.value("model.total_params") - a.value("model.total_params") == L * h
    assert b.value("model.active_params") - a.value("model.active_params") == L * h
    assert b.value("training.flops_total") - a.value("training.flops_total") == pytest.approx(3 * 2 * h * L * tokens,
                                                                                              rel=1e-9)
    ratio = b.value("training.step_time_s") / a.value("training.step_time_s")
    assert 1.0 < ratio < 1.06
    assert b.value("training.a2a_s") == 0.0  # one GPU per expert group: nothing to send


def test_all_to_all_closed_form():
    """Thakur et al. 2005 pairwise exchange: (p−1)·α + n·(p−1)/p/B in a node; across nodes the NIC carries the
    n·(p−k)/p bytes for the other nodes while NVLink carries n·(k−1)/p."""
    n = 1e9
    assert all_to_all_s(n, 8, 8, 1e-5, 1e11, 2e-5, 1e10) == pytest.approx(7 * 1e-5 + n * 7 / 8 / 1e11)
    assert all_to_all_s(n, 16, 8, 1e-5, 1e11, 2e-5, 1e10) == pytest.approx(15 * 2e-5 + n * 8 / 16 / 1e10)
    assert all_to_all_s(n, 1, 8, 1e-5, 1e11, 2e-5, 1e10) == 0.0


QWEN = {"model": {"preset": "qwen3-30b-a3b"}, "training": {"global_batch_seqs": 512, "micro_batch_seqs": 2,
                                                           "moe_imbalance": 1.0},
        "cluster": {"gpus": 64}, **NO_GOODPUT}


def test_expert_parallelism_shards_the_experts_and_costs_an_all_to_all():
    """EP 8 holds an eighth of the routed experts per GPU, and its all-to-all shows in the step; EP 16 spans two
    nodes of 8 GPUs, so its all-to-all runs over the slower NIC and takes a larger share."""
    one, eight, sixteen = (plan(merge(QWEN, {"cluster": {"ep": ep}})) for ep in (1, 8, 16))
    assert eight.value("training.mem_weights_gb") < one.value("training.mem_weights_gb") / 4
    assert one.value("training.a2a_s") == 0.0 < eight.value("training.a2a_s")
    assert sixteen.value("training.a2a_share") > eight.value("training.a2a_share")
    step = sum(eight.step_breakdown().values())
    assert step == pytest.approx(eight.value("training.step_time_s"), rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(ep=st.sampled_from([1, 2, 4, 8, 16, 32]), imbalance=st.floats(1.0, 3.0))
def test_more_expert_parallelism_never_holds_more_weights_and_imbalance_never_speeds_up(ep, imbalance):
    base = merge(QWEN, {"training": {"moe_imbalance": imbalance}})
    p = plan(merge(base, {"cluster": {"ep": ep}}))
    wider = plan(merge(base, {"cluster": {"ep": min(ep * 2, 64)}}))
    assert wider.value("training.mem_weights_gb") <= p.value("training.mem_weights_gb")
    balanced = plan(merge(base, {"cluster": {"ep": ep}, "training": {"moe_imbalance": 1.0}}))
    assert p.value("training.step_time_s") >= balanced.value("training.step_time_s")
    assert 0.0 <= p.value("training.a2a_share") < 1.0


def test_a_capacity_factor_caps_the_imbalance():
    """Switch Transformer §2.1: an expert takes at most capacity × an even share; imbalance 2 under capacity 1.25
    plans as imbalance 1.25 (the rest is dropped)."""
    capped = plan(merge(QWEN, {"cluster": {"ep": 8}, "training": {"moe_imbalance": 2.0, "moe_capacity_factor": 1.25}}))
    same = plan(merge(QWEN, {"cluster": {"ep": 8}, "training": {"moe_imbalance": 1.25}}))
    assert capped.value("training.step_time_s") == same.value("training.step_time_s")


def test_fp8_runs_the_gemms_at_the_fp8_peak_and_attention_in_bf16():
    """fp8 training (Transformer Engine): the linear layers at the fp8 peak, attention at bf16's; so the step is
    faster than bf16 but slower than a run with every kernel at the fp8 peak (twice bf16's on H100)."""
    base = {"model": {"preset": "llama-3-8b"}, "training": {"global_batch_seqs": 128, "micro_batch_seqs": 1},
            "cluster": {"gpus": 8}, **NO_GOODPUT}
    bf16 = plan(merge(base, {"training": {"precision": "bf16"}}))
    fp8 = plan(merge(base, {"training": {"precision": "fp8"}}))
    ratio = bf16.value("training.compute_s") / fp8.value("training.compute_s")
    assert 1.2 < ratio < 2.0


def test_context_parallelism_splits_the_sequence():
    """CP 2 holds half of each sequence per GPU (activations about half), reduces gradients over dp·cp, and its ring
    traffic hides behind attention at this length; the GPU count is tp·cp·pp·dp."""
    base = {"model": {"preset": "llama-3-8b", "seq_len": 32768}, "training": {"global_batch_seqs": 64,
                                                                           "micro_batch_seqs": 1},
            "cluster": {"gpus": 16}, **NO_GOODPUT}
    one, two = plan(base), plan(merge(base, {"cluster": {"cp": 2}}))
    ratio = two.value("training.mem_activations_gb") / one.value("training.mem_activations_gb")
    assert 0.4 < ratio < 0.6
    assert two.value("training.cp_comm_s") >= 0.0
    with pytest.raises(ScenarioError, match="tp×cp×pp"):
        Scenario.from_dict(merge(base, {"cluster": {"cp": 3}}))


@pytest.mark.parametrize(("change", "words"), [
    ({"cluster": {"ep": 3}}, "must divide model.moe_experts"),
    ({"cluster": {"ep": 128}}, "must divide the data-parallel width"),
    ({"model": {"moe_top_k": 200}}, "at most the 128 routed experts"),
    ({"model": {"moe_dense_layers": 48}}, "none is a mixture-of-experts layer"),
])
def test_moe_rules_say_what_to_change(change, words):
    with pytest.raises(ScenarioError, match=words):
        Scenario.from_dict(merge(QWEN, change))


def test_expert_parallelism_needs_experts_and_mha_needs_every_kv_head():
    with pytest.raises(ScenarioError, match="this model is dense"):
        Scenario.from_dict({"model": {"preset": "llama-3-8b"}, "cluster": {"gpus": 8, "ep": 2}})
    with pytest.raises(ScenarioError, match="grouped-query attention"):
        Scenario.from_dict({"model": {"preset": "llama-3-8b", "attention": "mha"}})
    assert Scenario.from_dict({"model": {"preset": "llama-3-8b"}}).model.attention == "gqa"
    assert Scenario.from_dict({"model": {"preset": "gpt3-175b"}}).model.attention == "mha"


def test_mla_counts_its_latent_projections():
    """MLA of ranks 0 (no query compression) vs 1536: the second replaces h·a·(d+d_R) by h·r + r·a·(d+d_R)."""
    base = {"model": {"layers": 4, "hidden": 1024, "heads": 8, "head_dim": 128, "attention": "mla",
                      "mla_kv_lora_rank": 256, "mla_rope_dim": 32}}
    p0 = plan(merge(base, {"model": {"mla_q_lora_rank": 0}}))
    p1 = plan(merge(base, {"model": {"mla_q_lora_rank": 256}}))
    per_layer = (1024 * 256 + 256 * 8 * 160) - 1024 * 8 * 160
    assert p1.value("model.total_params") - p0.value("model.total_params") == 4 * per_layer
    assert np.isfinite(p1.value("training.step_time_s"))


def test_the_decision_searches_dense_and_mixture_of_experts_and_says_which():
    """The search holds both architectures: each has its own front and pick, the chart draws the one the
    recommendation is not, and a sentence names both with active and total parameters."""
    from report import decision_charts as charts
    from report import decision_text as text
    from simulator.decision.decide import decide

    scenario = Scenario.from_dict({"model": {"params": 7e9}, "cluster": {"accelerator": "H100-SXM"},
                                   "serving": {"requests_per_s": 0.2, "prompt_tokens": 1024, "output_tokens": 256},
                                   "decision": {"budget_usd": 5e6, "horizon_months": 36, "samples": 0}})
    d = decide(scenario)
    kinds = {k.name: k for k in d.architectures}
    assert set(kinds) == {"dense", "mixture-of-experts"}
    moe = kinds["mixture-of-experts"]
    assert moe.feasible > 0 and moe.pick is not None and moe.pick.choice["model.moe_experts"] == 64
    total, active = moe.params
    assert total > 3 * active  # 64 experts of an eighth of the FFN, 8 per token: about 8× the FFN weights
    assert all(p.choice["model.moe_experts"] == 64 for p in moe.front)
    frame = charts.pareto_frame(d)
    spec = charts.pareto_spec(frame, d.budget_usd)
    other = charts.other_architecture(d)
    assert other is not None and len(spec["datasets"]["other front"]) == len(other.front)
    sentence = text.architecture_sentence(d)
    assert sentence.startswith("Dense or mixture-of-experts, each architecture's best plan by its point estimate: "
                               "the best dense plan")
    assert "64 experts" in sentence and "active of" in sentence
    assert d.to_dict()["architectures"][1]["pick"]["active_params"] == active


def test_a_user_who_fixes_the_experts_keeps_them():
    """A scenario that gives model.moe_experts closes the architecture: every candidate keeps its experts."""
    from simulator.decision.space import closed

    scenario = Scenario.from_dict({"model": {"params": 7e9, "moe_experts": 8, "moe_top_k": 2},
                                   "decision": {"budget_usd": 5e6}})
    assert "model.moe_experts" in closed(scenario)


def test_a_measured_grouped_gemm_efficiency_slows_only_the_routed_part():
    """moe_gemm_eff (calibration's MoE-layer fit) divides the router, the routing traffic and the expert GEMMs; a
    dense model does not read it."""
    from simulator.evaluator import scenario_rows
    from simulator.training import training_columns

    moe = Scenario.from_dict(merge(QWEN, {"cluster": {"ep": 8}}))
    dense = Scenario.from_dict({"model": {"preset": "llama-3-8b"}, "cluster": {"gpus": 8}})
    for scenario, moves in ((moe, True), (dense, False)):
        cols = scenario_rows([scenario])
        full = training_columns(cols)["compute_s"][0]
        half = training_columns({**cols, "moe_gemm_eff": np.array([0.5])})["compute_s"][0]
        assert (half > full * 1.05) if moves else (half == full)


def test_the_total_counts_experts_of_the_width_the_granularity_gives():
    """model.params (the total) is counted after the expert width is derived: 64 experts of granularity 8 count as
    experts of ffn/8, the same total as that width given, and a total near 8× the FFN (not 64×)."""
    base = {"params": 7e9, "moe_experts": 64, "moe_top_k": 8, "moe_granularity": 8}
    by_granularity = Scenario.from_dict({"model": base}).model
    given = Scenario.from_dict({"model": {**base, "moe_ffn_hidden": by_granularity.moe_ffn_hidden}}).model
    assert by_granularity.moe_ffn_hidden == round(by_granularity.ffn_hidden / 8)
    assert by_granularity.params == given.params
    p = plan({"model": base})
    assert 4 < p.value("model.total_params") / p.value("model.active_params") < 9
