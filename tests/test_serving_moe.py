"""Serving mixture-of-experts and MLA models: weights from total parameters sharded over the replica, compute from the
active ones, the experts a batch touches, the all-to-all of data-parallel attention, MLA's KV cache, FP4 GEMMs, and
the rules on serving.ep."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.evaluator import evaluate, scenario_rows
from simulator.families.serving import replica
from simulator.scenario import Scenario, ScenarioError
from simulator.serving.experts import experts_touched
from simulator.serving.step import Replica, SteadyCurve, steady_step
from simulator.sweeps import evaluate_columns, sweep

TARGETS = {"batch": "max", "requests_per_s": 1.0, "ttft_target_s": 3600.0, "tpot_target_s": 60.0}
FP8 = {"quant_method": "rtn", "format": "fp", "weight_bits": 8, "act_bits": 8, "kv_bits": 8}


def _scenario(model: dict, serving: dict, compression: dict | None = None) -> Scenario:
    data = {"model": model, "serving": {"accelerator": "H100-SXM", "prompt_tokens": 1000, "output_tokens": 1000,
                                        **TARGETS, **serving}}
    if compression:
        data["compression"] = compression
    return Scenario.from_dict(data)


def _replica(s: Scenario) -> Replica:
    return replica(evaluate_columns(scenario_rows([s])))


# ------------------------------------------------------------------ the experts a batch touches


@pytest.mark.parametrize(("experts", "top_k"), [(8, 2), (32, 4), (128, 8), (256, 8)])
def test_experts_touched_matches_random_routing(experts, top_k):
    """E·(1 − (1 − k/E)^B) against tokens that each pick k distinct experts uniformly at random."""
    rng = np.random.default_rng(experts * 31 + top_k)
    trials = 400
    for batch in (1, 3, 16, 64):
        scores = rng.random((trials * batch, experts))
        picked = np.argpartition(scores, top_k, axis=1)[:, :top_k]  # k distinct experts per token, uniform
        hit = np.zeros((trials, experts), dtype=bool)
        rows = np.repeat(np.arange(trials), batch * top_k)
        hit[rows, picked.reshape(-1)] = True
        distinct = hit.sum(axis=1)
        expected = experts_touched(experts, top_k, batch)
        assert abs(distinct.mean() - expected) < 4.0 * distinct.std() / np.sqrt(trials) + 1e-3, (batch, expected)


def test_experts_touched_ends():
    assert experts_touched(128, 8, 1) == pytest.approx(8.0)  # one token: its k experts
    assert experts_touched(128, 8, 0) == 0.0
    assert experts_touched(128, 8, 10_000) == pytest.approx(128.0)  # a large batch touches every expert
    assert experts_touched(0, 1, 64) == 0.0  # dense: none, and finite


# ------------------------------------------------------------------ weights, KV cache, compute


QWEN3_NON_ROUTED = 94 * (4096 * (8192 + 2 * 512 + 8192) + 4 * 4096 + 128 * 4096) + 2 * 151936 * 4096 + 2 * 4096
QWEN3_ROUTED = 94 * 128 * 3 * 4096 * 1536


def test_qwen3_weights_per_gpu_under_dep8_by_hand():
    """Qwen3-235B-A22B at 16 bits on 8 GPUs: with attention data parallelism every GPU holds the attention,
    embeddings and routers whole (7,997,988,864 parameters) and 1/8 of the 227,096,395,776 routed-expert ones;
    with tensor-parallel attention every weight is split 8 ways. 2 bytes each."""
    assert QWEN3_NON_ROUTED == 7_997_988_864 and QWEN3_ROUTED == 227_096_395_776
    dep8 = evaluate(_scenario({"preset": "qwen3-235b-a22b"}, {"accelerator": "H200", "gpus_per_replica": 8,
                                                              "ep": 8, "attention_dp": True}))
    assert dep8.value("serving.weights_gb") == pytest.approx(2 * (QWEN3_NON_ROUTED + QWEN3_ROUTED / 8) / 1e9,
                                                             rel=1e-12)
    tp8 = evaluate(_scenario({"preset": "qwen3-235b-a22b"}, {"accelerator": "H200", "gpus_per_replica": 8, "ep": 8}))
    assert tp8.value("serving.weights_gb") == pytest.approx(2 * (QWEN3_NON_ROUTED + QWEN3_ROUTED) / 8 / 1e9,
                                                            rel=1e-12)


def test_deepseek_v3_mla_kv_cache_by_hand():
    """DeepSeek-V2 §2.1.4: (d_c + d_R) = 512 + 64 = 576 elements per token and layer, 61 layers."""
    r = _replica(_scenario({"preset": "deepseek-v3"}, {"gpus_per_replica": 8, "attention_dp": True},
                           {**FP8, "kv_bits": 16}))
    assert float(r.kv_token_bytes[0]) == 61 * 576 * 2
    assert float(np.asarray(r.kv_split)[0]) == 0.0  # the latent is one per token: tensor parallelism cannot split it


def test_gqa_kv_cache_uses_head_dim():
    """GPT-OSS: 8 KV heads of 64 (not hidden/heads = 45): 2·36·8·64 elements per token."""
    r = _replica(_scenario({"preset": "gpt-oss-120b"}, {"gpus_per_replica": 4, "attention_dp": True}, FP8))
    assert float(r.kv_token_bytes[0]) == 2 * 36 * 8 * 64


def test_compute_counts_active_parameters():
    """Per token the replica multiplies its non-routed weights and k experts per MoE layer: 2·(active − input
    table) FLOPs, far below 2·total."""
    s = _scenario({"preset": "qwen3-235b-a22b"}, {"gpus_per_replica": 8, "attention_dp": True}, FP8)
    cols = evaluate_columns(scenario_rows([s]))
    r = replica(cols)
    per_token = float(r.params[0] + r.moe_layers[0] * r.top_k[0] * r.expert_params[0])
    untied_input_table = 151936 * 4096
    assert per_token == pytest.approx(float(cols["active_params"][0]) - untied_input_table, rel=1e-12)
    assert per_token < 0.11 * float(cols["params"][0])


@settings(max_examples=12, deadline=None)
@given(experts=st.sampled_from([8, 16, 64, 128]), top_k=st.sampled_from([1, 2, 4]),
       attention_dp=st.booleans(), width=st.sampled_from([512, 1408, 4096]))
def test_more_expert_parallel_gpus_hold_fewer_weights_each(experts, top_k, attention_dp, width):
    """Over replicas of 1, 2, 4, 8 GPUs with ep = the GPUs: weights per GPU never grow; with tensor-parallel
    attention they are total ÷ GPUs; and the per-token compute stays below the total parameters."""
    model = {"layers": 16, "hidden": 2048, "heads": 16, "kv_heads": 4, "mlp": "swiglu", "moe_experts": experts,
             "moe_top_k": top_k, "moe_ffn_hidden": width}
    base = _scenario(model, {"attention_dp": attention_dp})
    frame = sweep(base, {"serving.gpus_per_replica": [1, 2, 4, 8]}, columns=["serving.weights_gb"])
    weights = frame["serving.weights_gb"].to_numpy()
    assert np.all(np.diff(weights) <= 0.0)
    if not attention_dp:
        np.testing.assert_allclose(weights * np.array([1, 2, 4, 8]), weights[0], rtol=1e-12)
    r = _replica(base)
    assert float(r.params[0] + r.moe_layers[0] * r.top_k[0] * r.expert_params[0]) <= float(r.model_bytes[0] / 2.0)


# ------------------------------------------------------------------ the step


def test_alltoall_only_with_data_parallel_attention():
    model = {"preset": "qwen3-235b-a22b"}
    dep = evaluate(_scenario(model, {"gpus_per_replica": 8, "ep": 8, "attention_dp": True}, FP8))
    tp = evaluate(_scenario(model, {"gpus_per_replica": 8, "ep": 8}, FP8))
    assert 0.0 < dep.value("serving.alltoall_share") < 1.0
    assert tp.value("serving.alltoall_share") == 0.0
    assert 0.0 < dep.value("serving.experts_touched") <= 128.0
    dense = evaluate(_scenario({"preset": "llama-3-8b"}, {"gpus_per_replica": 1}))
    assert np.isnan(dense.value("serving.experts_touched")) and np.isnan(dense.value("serving.alltoall_share"))


def test_small_batches_read_fewer_experts():
    """At batch 1 a decode step reads k of E experts per layer, so it streams far fewer bytes than the weights."""
    s = _scenario({"preset": "qwen3-235b-a22b"}, {"gpus_per_replica": 8, "attention_dp": True, "batch": 1}, FP8)
    plan = evaluate(s)
    assert plan.value("serving.expert_read_share") == pytest.approx(8 * 1.2 / 128, rel=0.05)
    r = _replica(s)
    one = steady_step(r, np.array([1.0]), np.array([1000.0]), np.array([1000.0]))
    full = steady_step(r, np.array([4096.0]), np.array([1000.0]), np.array([1000.0]))
    assert float(one.experts_s[0]) < 0.2 * float(full.experts_s[0])


def test_the_batch_curve_is_the_steady_step_for_moe():
    rows = [_scenario({"preset": p}, {"gpus_per_replica": g, "attention_dp": adp}, FP8)
            for p, g, adp in [("qwen3-235b-a22b", 8, True), ("gpt-oss-120b", 4, True), ("mixtral-8x7b", 2, False),
                              ("deepseek-v3", 8, True), ("llama-4-maverick", 8, False)]]
    r = replica(evaluate_columns(scenario_rows(rows)))
    p, o = np.full(len(rows), 1000.0), np.full(len(rows), 300.0)
    curve = SteadyCurve(r, p, o)
    for batch in (1.0, 17.0, 300.0, 4000.0):
        b = np.full(len(rows), batch)
        np.testing.assert_allclose(curve.total_s(b), steady_step(r, b, p, o).total_s, rtol=1e-9, atol=0)


def test_fp4_uses_the_fp4_peak_where_there_is_one():
    nvfp4 = {"quant_method": "rtn", "format": "fp", "weight_bits": 4, "act_bits": 4, "kv_bits": 8}
    b200 = _replica(_scenario({"preset": "llama-3-70b"}, {"accelerator": "B200", "gpus_per_replica": 1}, nvfp4))
    b200_fp8 = _replica(_scenario({"preset": "llama-3-70b"}, {"accelerator": "B200", "gpus_per_replica": 1}, FP8))
    assert float(b200.peak_flops[0]) == pytest.approx(2.0 * float(b200_fp8.peak_flops[0]), rel=0.01)
    h100 = evaluate(_scenario({"preset": "llama-3-70b"}, {"gpus_per_replica": 2}, nvfp4))
    assert "serving_no_fp4" in {w.code for w in h100.warnings}
    h100_fp8 = _replica(_scenario({"preset": "llama-3-70b"}, {"gpus_per_replica": 2}, FP8))
    assert float(_replica(_scenario({"preset": "llama-3-70b"}, {"gpus_per_replica": 2}, nvfp4)).peak_flops[0]) == \
        float(h100_fp8.peak_flops[0])


# ------------------------------------------------------------------ rules


@pytest.mark.parametrize(("model", "serving", "says"), [
    ({"preset": "qwen3-235b-a22b"}, {"gpus_per_replica": 8, "ep": 3}, "use a divisor of 8 (1, 2, 4 or 8)"),
    ({"preset": "mixtral-8x7b"}, {"gpus_per_replica": 16, "ep": 16, "attention_dp": True},
     "use a divisor of both 8 and serving.gpus_per_replica = 16 (1, 2, 4 or 8)"),
    ({"preset": "llama-3-8b"}, {"gpus_per_replica": 2, "ep": 2}, "set serving.ep = 1"),
    ({"preset": "gpt-oss-120b"}, {"gpus_per_replica": 3}, "or set serving.attention_dp = true"),
])
def test_rules_refuse_expert_layouts_and_say_what_to_change(model, serving, says):
    with pytest.raises(ScenarioError) as err:
        _scenario(model, serving)
    assert says in str(err.value)


def test_the_default_ep_divides_both():
    assert float(_replica(_scenario({"preset": "mixtral-8x7b"}, {"gpus_per_replica": 4})).ep[0]) == 4.0
    assert float(_replica(_scenario({"preset": "qwen3-235b-a22b"}, {"gpus_per_replica": 8})).ep[0]) == 8.0
    assert float(_replica(_scenario({"preset": "llama-3-8b"}, {"gpus_per_replica": 2})).ep[0]) == 1.0


# ------------------------------------------------------------------ the MoE layer's speed (SERVING_MOE_EFF)


@pytest.mark.parametrize("tokens", [1.0, 64.0, 4096.0, 65536.0])
def test_the_moe_efficiency_divides_the_expert_time_read_or_compute_bound(tokens):
    """expert_step_s = max(FLOPs at the GEMM curve, weight reads) / moe_eff: halving moe_eff doubles it whether the
    step reads the experts (small batches) or computes them (large ones)."""
    from simulator.serving.experts import expert_step_s

    shape = {"moe_layers": 94.0, "experts": 128.0, "top_k": 8.0, "expert_params": 3 * 4096 * 1536.0,
             "expert_width": 1536.0, "routed_bytes": 227e9, "gpus": 8.0, "ep": 8.0, "imbalance": 1.0,
             "hidden": 4096.0, "peak_flops": 1979e12, "gemm_eff_max": 0.73, "gemm_dim_half": 96.0,
             "stream_Bps": 2.68e12}
    one = expert_step_s(tokens, moe_eff=1.0, **shape)
    assert expert_step_s(tokens, moe_eff=0.5, **shape) == pytest.approx(2.0 * one, rel=1e-12)
    read_s = 227e9 / 8 * float(experts_touched(128, 8, tokens)) / 128 / 2.68e12
    assert one >= read_s * (1 - 1e-12)  # never faster than reading the experts it touches


def test_a_datasheet_device_serves_moe_at_the_fitted_efficiency_and_a_calibrated_one_at_its_own():
    """SERVING_MOE_EFF for a datasheet accelerator; a device whose moe_layer fit measured moe_gemm_eff serves at
    that instead; a dense model's step does not read it."""
    from dataclasses import replace

    from simulator.devices import all_devices
    from simulator.hardware_table import hardware_table
    from simulator.serving.constants import SERVING_MOE_EFF

    base = all_devices()["H100-SXM"]
    measured = replace(base, id="H100-measured", display_name="H100 measured", moe_gemm_eff=0.8)
    table = hardware_table({"H100-SXM": base, "H100-measured": measured}).table
    assert list(table["serve_moe_eff"]) == [SERVING_MOE_EFF, 0.8]
    assert float(table["moe_gemm_eff"][0]) == 1.0  # training keeps its own assumption
    r = _replica(_scenario({"preset": "qwen3-235b-a22b"}, {"gpus_per_replica": 8, "ep": 8, "attention_dp": True},
                           FP8))
    assert float(np.asarray(r.moe_eff)[0]) == SERVING_MOE_EFF


def test_the_moe_model_error_acts_on_moe_plans_only():
    """The MoE serving term (measured on the MoE set) is in an MoE plan's spreads and not in a dense plan's."""
    from simulator import model_error

    moe = evaluate(_scenario({"preset": "qwen3-235b-a22b"}, {"gpus_per_replica": 8, "ep": 8, "attention_dp": True},
                             FP8))
    dense = evaluate(_scenario({"preset": "llama-3-70b"}, {"gpus_per_replica": 2}, FP8))
    assert "model_err_serve_moe" in model_error.TERMS["serve_moe"].column
    assert "model_err_serve_moe" in {t.column for t in moe.spreads}
    assert "model_err_serve_moe" not in {t.column for t in dense.spreads}
    assert "model_err_serve_step" in {t.column for t in dense.spreads}
