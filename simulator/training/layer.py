"""Kernel inventory of one transformer layer for one micro-batch on one GPU (after the TP split).

Megatron-LM (Shoeybi 2019 Fig. 3; Narayanan 2021) splits QKV and FC1 by columns and the
projection and FC2 by rows, so each GPU runs GEMMs of tokens × h × (width/t); the attention
core runs a/t heads. Elementwise kernels follow Megatron's fused set: layer norm,
scale-mask-softmax, attention dropout, bias-GeLU (or SwiGLU), bias-dropout-add.
"""

from dataclasses import dataclass

import numpy as np

import simulator.architecture as arch

from .constants import DEFAULT_CONSTANTS, TrainingConstants
from .efficiency import GemmCost


@dataclass(frozen=True)
class LayerTimes:
    fwd_s: np.ndarray            # one layer forward: GEMMs, attention core, elementwise
    bwd_s: np.ndarray            # one layer backward: dgrad + wgrad GEMMs (2× forward) + elementwise
    attn_core_fwd_s: np.ndarray  # QKᵀ, softmax, dropout, PV: what selective recomputation re-runs
    logits_s: np.ndarray         # output layer forward + backward and the cross-entropy passes
    gemm_efficiency: np.ndarray  # flops-weighted efficiency of the layer's matmuls (fraction of peak)
    ffn_fwd_s: np.ndarray = 0.0  # the dense MLP's part of fwd_s (GEMMs and activation function): what an MoE layer
    ffn_bwd_s: np.ndarray = 0.0  # replaces; and of bwd_s
    attn_fwd_s: np.ndarray = 0.0  # the attention core (fused or not) forward and backward: what context-parallel
    attn_bwd_s: np.ndarray = 0.0  # ring traffic hides behind


def _attention_gemms(shape, tokens, hidden, heads, kv_heads, tp, gemm):
    """(QKV s, QKV multiply-adds, output projection s, its multiply-adds, per-head width of QKᵀ and PV) of attention
    other than MHA/GQA with heads × head_dim = hidden: GQA of its own head width (Qwen3, GPT-OSS), or MLA (DeepSeek-V2
    §2.1.2-2.1.3: query down/up, key/value down to the latent and up, the rotary parts d_R; the down projections are
    not split over tp, the up projections by heads as Megatron-Core's MLA)."""
    d = arch.head_dim(shape)
    q_rank, kv_rank, rope = (arch.col(shape, k) for k in ("mla_q_rank", "mla_kv_rank", "mla_rope_dim"))
    t_gqa, v_gqa = gemm(tokens, (heads + 2.0 * kv_heads) * d / tp, hidden)
    compressed = q_rank > 0
    t_qd, v_qd = gemm(tokens, np.maximum(q_rank, 1.0), hidden)
    t_qu, v_qu = gemm(tokens, heads * (d + rope) / tp, np.where(compressed, q_rank, hidden))
    t_kvd, v_kvd = gemm(tokens, kv_rank + rope, hidden)
    t_kvu, v_kvu = gemm(tokens, heads * 2.0 * d / tp, np.maximum(kv_rank, 1.0))
    t_mla = np.where(compressed, t_qd, 0.0) + t_qu + t_kvd + t_kvu
    v_mla = np.where(compressed, v_qd, 0.0) + v_qu + v_kvd + v_kvu
    mla = arch.col(shape, "attention") == arch.MLA
    t_proj, v_proj = gemm(tokens, hidden, heads * d / tp)
    # QKᵀ spans d + d_R (DeepSeek-V2 eq. 14), PV spans d: one roofline time at their mean width
    return (np.where(mla, t_mla, t_gqa), np.where(mla, v_mla, v_gqa), t_proj, v_proj,
            d + np.where(mla, rope, 0.0) / 2.0)


def layer_times(seq_len, micro_batch, hidden, heads, kv_heads, ffn_hidden, glu, vocab, tp, sequence_parallel,
                act_bytes, flash_attention, peak_flops, hbm_Bps, gemm_eff_max, hbm_eff,
                k: TrainingConstants = DEFAULT_CONSTANTS, gemm_dim_half=None, shape=None, cp=1.0,
                attn_peak_flops=None, fp8=None) -> LayerTimes:
    """Times of one layer's kernels; `gemm_eff_max`, `hbm_eff` and `gemm_dim_half` may be per-row (calibrated)
    columns (`gemm_dim_half` None: the constant). `shape`: the model columns of attention other than MHA/GQA of
    width hidden/heads (simulator.architecture); `cp`: context-parallel GPUs, each with s/cp of every sequence's
    tokens, attending to all s keys; `attn_peak_flops`: the attention core's peak where it differs from the GEMMs'
    (fp8 training keeps attention in bf16, Transformer Engine); `fp8`: 1 on rows whose GEMMs run in fp8, which cast
    each GEMM's input (2-byte read, 1-byte write: NVIDIA Transformer Engine's delayed-scaling recipe)."""
    tokens = seq_len * micro_batch / cp
    head_dim = hidden / heads
    ab = act_bytes
    dim_half = k.gemm_dim_half if gemm_dim_half is None else gemm_dim_half
    gemm = GemmCost(ab, peak_flops, hbm_Bps, gemm_eff_max, hbm_eff, dim_half).time_s
    attn_peak = peak_flops if attn_peak_flops is None else attn_peak_flops
    attn_gemm = gemm if attn_peak_flops is None else GemmCost(ab, attn_peak, hbm_Bps, gemm_eff_max, hbm_eff,
                                                               dim_half).time_s

    # Megatron column/row-parallel linears (Shoeybi 2019 §3): QKV h→(h + 2·kv·d)/t, proj h/t→h,
    # FC1 h→(1+glu)·ffn/t, FC2 ffn/t→h
    hidden_gpu, ffn_gpu = hidden / tp, ffn_hidden / tp
    t_qkv, v_qkv = gemm(tokens, hidden_gpu + 2.0 * kv_heads / tp * head_dim, hidden)
    t_proj, v_proj = gemm(tokens, hidden, hidden_gpu)
    score_dim = head_dim
    if shape is not None:
        standard = arch.standard_attention(shape)
        if not np.all(standard):
            t_qkv2, v_qkv2, t_proj2, v_proj2, dim2 = _attention_gemms(shape, tokens, hidden, heads, kv_heads, tp, gemm)
            t_qkv, v_qkv = np.where(standard, t_qkv, t_qkv2), np.where(standard, v_qkv, v_qkv2)
            t_proj, v_proj = np.where(standard, t_proj, t_proj2), np.where(standard, v_proj, v_proj2)
            score_dim = np.where(standard, head_dim, dim2)
    t_fc1, v_fc1 = gemm(tokens, (1.0 + glu) * ffn_gpu, hidden)
    t_fc2, v_fc2 = gemm(tokens, hidden, ffn_gpu)
    dense_s = t_qkv + t_proj + t_fc1 + t_fc2
    dense_macs = v_qkv + v_proj + v_fc1 + v_fc2

    # attention core over b·a/t heads: QKᵀ (s×d)·(d×s) and PV (s×s)·(s×d) share volume and surface,
    # hence one roofline time each; the s² scores go through HBM for softmax and dropout
    attn_batch = micro_batch * heads / tp
    t_score, v_score = attn_gemm(seq_len / cp, seq_len, score_dim, attn_batch)
    attn_macs = 2.0 * v_score
    mk = k.mask_bytes
    inv_bw = 1.0 / (hbm_Bps * hbm_eff)
    scores = attn_batch * seq_len / cp * seq_len
    # softmax read+write, dropout read+write+mask; backward: softmax reads y, dy, writes dx, dropout
    # reads dy and mask, writes dx (Korthikanti 2022 §4.1 tensor list)
    std_fwd_s = 2.0 * t_score + scores * (4.0 * ab + mk) * inv_bw
    std_bwd_s = 4.0 * t_score + scores * (5.0 * ab + mk) * inv_bw
    # FlashAttention (Dao 2022/2023): one fused kernel, no s² traffic, backward 2.5× forward
    flash_fwd_s = 2.0 * attn_macs / (attn_peak * k.flash_attn_eff)
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
    if fp8 is not None and np.any(fp8 > 0):
        # the inputs of QKV, FC1 (h), the projection (h/t) and FC2 (ffn/t) forward, their output gradients backward
        cast = fp8 * 3.0 * tokens * (2.0 * hidden + hidden_gpu + ffn_gpu)
        fwd_bytes, bwd_bytes = fwd_bytes + cast, bwd_bytes + cast

    fwd_s = dense_s + attn_fwd_s + fwd_bytes * inv_bw
    bwd_s = 2.0 * dense_s + attn_bwd_s + bwd_bytes * inv_bw
    ffn_gemm_s = t_fc1 + t_fc2
    ffn_fwd_s = ffn_gemm_s + (2.0 + glu) * f_ab * inv_bw
    ffn_bwd_s = 2.0 * ffn_gemm_s + (3.0 + 2.0 * glu) * f_ab * inv_bw
    attn_core_fwd_s = std_fwd_s * (1.0 - fa)

    # output layer h→V/t (vocab-parallel, Megatron), forward + dgrad + wgrad, not recomputed
    vocab_gpu = vocab / tp
    t_logit, _ = gemm(tokens, vocab_gpu, hidden)
    logits_s = 3.0 * t_logit + tokens * vocab_gpu * k.cross_entropy_bytes_per_logit * inv_bw
    return LayerTimes(fwd_s, bwd_s, attn_core_fwd_s, logits_s, gemm_eff, ffn_fwd_s, ffn_bwd_s, attn_fwd_s, attn_bwd_s)
