"""Kernel inventory of one transformer layer for one micro-batch on one GPU (after the TP split).

Megatron-LM (Shoeybi 2019 Fig. 3; Narayanan 2021) splits QKV and FC1 by columns and the
projection and FC2 by rows, so each GPU runs GEMMs of tokens × h × (width/t); the attention
core runs a/t heads. Elementwise kernels follow Megatron's fused set: layer norm,
scale-mask-softmax, attention dropout, bias-GeLU (or SwiGLU), bias-dropout-add.
"""

from dataclasses import dataclass

import numpy as np

from .constants import DEFAULT_CONSTANTS, TrainingConstants
from .efficiency import GemmCost


@dataclass(frozen=True)
class LayerTimes:
    fwd_s: np.ndarray            # one layer forward: GEMMs, attention core, elementwise
    bwd_s: np.ndarray            # one layer backward: dgrad + wgrad GEMMs (2× forward) + elementwise
    attn_core_fwd_s: np.ndarray  # QKᵀ, softmax, dropout, PV: what selective recomputation re-runs
    logits_s: np.ndarray         # output layer forward + backward and the cross-entropy passes
    gemm_efficiency: np.ndarray  # flops-weighted efficiency of the layer's matmuls (fraction of peak)


def layer_times(seq_len, micro_batch, hidden, heads, kv_heads, ffn_hidden, glu, vocab, tp, sequence_parallel,
                act_bytes, flash_attention, peak_flops, hbm_Bps, gemm_eff_max, hbm_eff,
                k: TrainingConstants = DEFAULT_CONSTANTS, gemm_dim_half=None) -> LayerTimes:
    """Times of one layer's kernels; `gemm_eff_max`, `hbm_eff` and `gemm_dim_half` may be per-row (calibrated)
    columns (`gemm_dim_half` None: the constant)."""
    tokens = seq_len * micro_batch
    head_dim = hidden / heads
    ab = act_bytes
    dim_half = k.gemm_dim_half if gemm_dim_half is None else gemm_dim_half
    gemm = GemmCost(ab, peak_flops, hbm_Bps, gemm_eff_max, hbm_eff, dim_half).time_s

    # Megatron column/row-parallel linears (Shoeybi 2019 §3): QKV h→(h + 2·kv·d)/t, proj h/t→h,
    # FC1 h→(1+glu)·ffn/t, FC2 ffn/t→h
    hidden_gpu, ffn_gpu = hidden / tp, ffn_hidden / tp
    t_qkv, v_qkv = gemm(tokens, hidden_gpu + 2.0 * kv_heads / tp * head_dim, hidden)
    t_proj, v_proj = gemm(tokens, hidden, hidden_gpu)
    t_fc1, v_fc1 = gemm(tokens, (1.0 + glu) * ffn_gpu, hidden)
    t_fc2, v_fc2 = gemm(tokens, hidden, ffn_gpu)
    dense_s = t_qkv + t_proj + t_fc1 + t_fc2
    dense_macs = v_qkv + v_proj + v_fc1 + v_fc2

    # attention core over b·a/t heads: QKᵀ (s×d)·(d×s) and PV (s×s)·(s×d) share volume and surface,
    # hence one roofline time each; the s² scores go through HBM for softmax and dropout
    attn_batch = micro_batch * heads / tp
    t_score, v_score = gemm(seq_len, seq_len, head_dim, attn_batch)
    attn_macs = 2.0 * v_score
    mk = k.mask_bytes
    inv_bw = 1.0 / (hbm_Bps * hbm_eff)
    scores = attn_batch * seq_len * seq_len
    # softmax read+write, dropout read+write+mask; backward: softmax reads y, dy, writes dx, dropout
    # reads dy and mask, writes dx (Korthikanti 2022 §4.1 tensor list)
    std_fwd_s = 2.0 * t_score + scores * (4.0 * ab + mk) * inv_bw
    std_bwd_s = 4.0 * t_score + scores * (5.0 * ab + mk) * inv_bw
    # FlashAttention (Dao 2022/2023): one fused kernel, no s² traffic, backward 2.5× forward
    flash_fwd_s = 2.0 * attn_macs / (peak_flops * k.flash_attn_eff)
    fa = flash_attention
    attn_fwd_s = std_fwd_s + fa * (flash_fwd_s - std_fwd_s)
    attn_bwd_s = std_bwd_s + fa * (k.flash_bwd_factor * flash_fwd_s - std_bwd_s)
    attn_gemm_s = 2.0 * t_score + fa * (flash_fwd_s - 2.0 * t_score)
    gemm_eff = 2.0 * (dense_macs + attn_macs) / ((dense_s + attn_gemm_s) * peak_flops)

    # other elementwise traffic in bytes; u = hidden-sized tensor, replicated across TP ranks unless SP
    u = tokens * hidden / np.where(sequence_parallel > 0, tp, 1.0)
    common = 2.0 * tokens * hidden_gpu * ab
    f_ab = tokens * ffn_gpu * ab
    # fwd: 2 layer norms read+write, 2 bias-dropout-add read 2 write 1 + mask, context permute
    # read+write, bias-GeLU read+write (SwiGLU reads 2, writes 1)
    fwd_bytes = u * (10.0 * ab + 2.0 * mk) + common + (2.0 + glu) * f_ab
    # bwd: layer norm reads x and dy, writes dx (3); dropout bwd reads dy and mask, writes dx (2);
    # the residual sum reads 2, writes 1 (3); GeLU bwd reads x, dy, writes dx (SwiGLU reads 3, writes 2)
    bwd_bytes = u * (16.0 * ab + 2.0 * mk) + common + (3.0 + 2.0 * glu) * f_ab

    fwd_s = dense_s + attn_fwd_s + fwd_bytes * inv_bw
    bwd_s = 2.0 * dense_s + attn_bwd_s + bwd_bytes * inv_bw
    attn_core_fwd_s = std_fwd_s * (1.0 - fa)

    # output layer h→V/t (vocab-parallel, Megatron), forward + dgrad + wgrad, not recomputed
    vocab_gpu = vocab / tp
    t_logit, _ = gemm(tokens, vocab_gpu, hidden)
    logits_s = 3.0 * t_logit + tokens * vocab_gpu * k.cross_entropy_bytes_per_logit * inv_bw
    return LayerTimes(fwd_s, bwd_s, attn_core_fwd_s, logits_s, gemm_eff)
