import numpy as np
import pytest

from benchmarks.megatron_fidelity import load_table1
from simulator.training import flops_per_token_hw, flops_per_token_model, params_from_shape, training_columns
from simulator.training.examples import gpt3_175b_columns

GPT3 = {"layers": 96, "hidden": 12288, "heads": 96, "kv_heads": 96, "ffn_hidden": 4 * 12288, "glu": 0,
        "vocab": 50257}


def test_gpt3_params_and_total_flops():
    # GPT-3 paper Table D.1: 3.14e23 FLOPs = 6·N·D with N = 174.6B, D = 300B (attention ignored there)
    n = params_from_shape(**GPT3)
    assert n == pytest.approx(174.6e9, rel=2e-3)
    assert 6 * n * 300e9 == pytest.approx(3.14e23, rel=5e-3)
    out = training_columns(gpt3_175b_columns(tokens=300e9))
    # ours adds the attention score FLOPs 12·L·h·s per token (PaLM App. B): +2.8%
    assert out["flops_total"][0] == pytest.approx(3.229e23, rel=1e-3)
    assert out["flops_total"][0] / 3.14e23 - 1 == pytest.approx(0.028, abs=0.002)


def test_palm_form_for_gelu_mha():
    # PaLM App. B: 6N + 12·L·h·s, N excluding embeddings; plus the 6·h·V logit layer
    L, h, s, V = 24.0, 2048.0, 2048.0, 50000.0
    got = flops_per_token_model(L, h, 16, 16, 4 * h, 0, V, s)
    n_non_embedding = 12 * L * h * h
    assert got == pytest.approx(6 * n_non_embedding + 12 * L * h * s + 6 * h * V, rel=1e-12)


def test_megatron_general_form_swiglu_gqa():
    # Megatron num_floating_point_operations: 12·L·h²·(1 + (ffn/h)·g + kv/a + s/h + V/(2Lh)) per token
    L, h, a, kv, ffn, V, s = 32.0, 4096.0, 32.0, 8.0, 14336.0, 128256.0, 8192.0
    expected = 12 * L * h * h * (1 + ffn / h * 1.5 + kv / a + s / h + V / (2 * L * h))
    assert flops_per_token_model(L, h, a, kv, ffn, 1, V, s) == pytest.approx(expected, rel=1e-12)


def test_hardware_flops_match_megatron_table1_formula():
    t = load_table1()
    L, h, s, V = t["layers"], t["hidden"], t["seq_len"], t["vocab"]
    hw = flops_per_token_hw(L, h, t["heads"], t["heads"], 4 * h, 0, V, s, 2)
    # Narayanan 2021: 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)) per iteration of B·s tokens
    ref = 96 * L * h * h * (1 + s / (6 * h) + V / (16 * L * h))
    np.testing.assert_allclose(hw, ref, rtol=1e-12)


def test_recompute_levels():
    args = (40.0, 5120.0, 40.0, 40.0, 20480.0, 0.0, 51200.0, 2048.0)
    model = flops_per_token_model(*args)
    none, selective, full = (flops_per_token_hw(*args, r) for r in (0, 1, 2))
    assert none == model
    assert selective - model == pytest.approx(40 * 4 * 2048 * 5120)  # QKᵀ and PV forward again
    layer_fwd = (model - 6 * 5120 * 51200) / 3 / 40
    assert full - model == pytest.approx(40 * layer_fwd)
    # FlashAttention leaves nothing for selective recomputation to redo
    assert flops_per_token_hw(*args, 1, flash_attention=1.0) == model


def test_params_llama2_7b_untied():
    # Llama 2 7B: 6.74B parameters (Touvron et al. 2023), untied input and output embeddings, no biases
    n = params_from_shape(32, 4096, 32, 32, 11008, 1, 32000, tied_embeddings=False)
    assert n == pytest.approx(6.738e9, rel=2e-3)


def test_narayanan_section_5_1_estimates():
    from benchmarks.megatron_fidelity import section_5_1_days

    (_, gpt3_paper, gpt3_at_140, gpt3_ours), (_, t1_paper, t1_at_163, t1_ours) = section_5_1_days()
    assert gpt3_paper == pytest.approx(34, abs=0.5)
    assert t1_paper == pytest.approx(84, abs=1.0)
    # our FLOPs count attention and logits that 8·T·P leaves out: a few percent more
    assert gpt3_at_140 == pytest.approx(gpt3_paper, rel=0.04)
    assert t1_at_163 == pytest.approx(t1_paper, rel=0.04)
    assert 25 < gpt3_ours < 40
    assert 70 < t1_ours < 95
