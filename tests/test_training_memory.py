import numpy as np
import pytest

from simulator.training import training_columns
from simulator.training.examples import gpt_columns
from simulator.training.memory import activation_bytes_per_layer, activation_gb, model_state_gb


@pytest.mark.parametrize(("stage", "expected_gb"), [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_7_5b_on_64_gpus(stage, expected_gb):
    # ZeRO (Rajbhandari 2020) Fig. 1: Ψ = 7.5B, N_d = 64, K = 12
    w, g, o = model_state_gb(7.5e9, 1.0, 1.0, 64.0, float(stage), 2.0)
    assert w + g + o == pytest.approx(expected_gb, abs=0.05)


def test_zero_through_training_columns_with_tp_pp():
    cols = gpt_columns(32.0, 4096.0, 32.0, params=7.5e9, tp=2.0, pp=2.0, dp=16.0, gpus=64.0, zero_stage=1.0,
                       global_batch=64.0)
    out = training_columns(cols)
    psi = 7.5e9 / 4
    assert out["mem_weights_gb"][0] == pytest.approx(2 * psi / 1e9)
    assert out["mem_grads_gb"][0] == pytest.approx(2 * psi / 1e9)
    assert out["mem_optimizer_gb"][0] == pytest.approx(12 * psi / 16 / 1e9)


def test_fp8_and_fp32_state_bytes():
    # fp8 weights + bf16 grads + fp32 master/m/v = 15 B; fp32 training 4 + 4 + 8 = 16 B
    assert sum(model_state_gb(1e9, 1.0, 1.0, 1.0, 0.0, 1.0)) == pytest.approx(15.0)
    assert sum(model_state_gb(1e9, 1.0, 1.0, 1.0, 0.0, 4.0)) == pytest.approx(16.0)


S, B, H, A, T = 2048.0, 1.0, 12288.0, 96.0, 8.0
SBH = S * B * H


def _act(sp, recompute, tp=T, flash=0.0):
    stored, _ = activation_bytes_per_layer(S, B, H, A, A, 4 * H, 0.0, tp, sp, recompute, 2.0, flash)
    return float(stored)


def test_korthikanti_table2_hand_computed():
    # Korthikanti et al. 2022 Table 2 for s = 2048, b = 1, h = 12288, a = 96, t = 8
    assert _act(0, 0, tp=1.0) == pytest.approx(SBH * (34 + 5 * A * S / H))        # 141·sbh
    assert _act(0, 0) == pytest.approx(SBH * (10 + 24 / T + 5 * A * S / (H * T)))  # 23·sbh = 578.8 MB
    assert _act(0, 0) == pytest.approx(578_813_952.0)
    assert _act(1, 0) == pytest.approx(SBH / T * (34 + 5 * A * S / H))             # TP + SP
    assert _act(0, 1) == pytest.approx(SBH * (10 + 24 / T))                        # TP + selective
    assert _act(1, 1) == pytest.approx(34 * SBH / T)                               # TP + SP + selective
    assert _act(0, 2) == pytest.approx(2 * SBH)                                    # full recomputation
    # FlashAttention drops the 5as²b scores, keeping fp32 softmax statistics
    assert _act(1, 0, flash=1.0) == pytest.approx(34 * SBH / T + 4 * A * S * B / T)


def _stage_gb(pp, m, v, recompute=1.0):
    return float(activation_gb(96.0, S, B, H, A, A, 4 * H, 0.0, 51200.0, T, pp, v, m, 1.0, recompute, 2.0))


def test_pipeline_in_flight_microbatches():
    per_layer = 34 * SBH / T
    logits = S * B * 51200.0 / T * (2 + 8)
    # 1F1B: the first stage holds min(p, m) micro-batches of its L/p layers
    assert _stage_gb(8.0, 32.0, 1.0) == pytest.approx(8 * 12 * per_layer / 1e9)
    assert _stage_gb(8.0, 4.0, 1.0) == pytest.approx(max(4 * 12 * per_layer, 12 * per_layer + logits) / 1e9)
    # interleaved: × (1 + (p-1)/(p·v)) (Korthikanti §4.2.3; Megatron theoretical_memory_usage.py)
    assert _stage_gb(8.0, 32.0, 2.0) == pytest.approx(96 * per_layer * (1 + 7 / 16) / 1e9)


def test_more_pipeline_stages_need_less_memory_per_gpu():
    base = {"tp": 8.0, "gpus": 1024.0, "global_batch": 1024.0}
    small = training_columns(gpt_columns(96.0, 12288.0, 96.0, pp=4.0, dp=32.0, **base))
    large = training_columns(gpt_columns(96.0, 12288.0, 96.0, pp=16.0, dp=8.0, **base))
    assert large["memory_per_gpu_gb"][0] < small["memory_per_gpu_gb"][0]
    assert np.all(large["fits_memory"]) and not np.any(small["fits_memory"])
