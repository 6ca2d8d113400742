"""Mixture-of-experts and context-parallel parts of a training step, per layer and micro-batch on one GPU.

An MoE layer replaces the dense MLP by a router, the top-k routed experts (sharded over `ep` expert-parallel GPUs,
drawn from the data-parallel ones as in Megatron-Core) and the shared experts; tokens reach their experts and come
back by two all-to-alls per pass (Lepikhin et al. 2021, GShard §2.2; Megatron-Core MoE token dispatcher). Every term
here is zero for a dense model (no routed experts) and cp = 1, so a dense plan is the same number as before.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

import simulator.architecture as arch

from .codes import RECOMPUTE_FULL
from .comm import all_to_all_s, p2p_s


def load(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Tokens on the busiest expert-parallel rank over the mean: the imbalance, capped by the capacity factor (Fedus
    et al. 2022 §2.1: an expert takes at most capacity × an even share, the rest are dropped); 0 = dropless."""
    imbalance, capacity = c["moe_imbalance"], c["moe_capacity"]
    return np.where(capacity > 0, np.minimum(imbalance, capacity), imbalance)


def flops_delta_per_token(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Forward FLOPs per token of the whole stack beyond the dense formula (flops.layer_flops_per_token on every
    layer): attention of another head width or MLA, and the MoE layers' FFN (router, top-k routed and shared
    experts) in place of the dense MLP. 2 FLOPs per multiply-add (Kaplan et al. 2020, Table 1)."""
    L, h, s = c["layers"], c["hidden"], c["seq_len"]
    heads, d = c["heads"], arch.head_dim(c)
    standard = arch.standard_attention(c)
    # attention core: QKᵀ over d (+ the rotary d_R for MLA, DeepSeek-V2 eq. 14) and PV over d: 2·s·a·(d_qk + d_v)
    rope = np.where(c["attention"] == arch.MLA, c["mla_rope_dim"], 0.0)
    attn = 2.0 * arch.attention_params(c) + 2.0 * s * heads * (2.0 * d + rope)
    old_attn = 4.0 * h * h * (1.0 + c["kv_heads"] / heads) + 4.0 * s * h
    attn_delta = np.where(standard, 0.0, attn - old_attn)
    n_moe = arch.moe_layers(c)
    dense_ffn = 2.0 * h * c["ffn_hidden"] * arch.ffn_matrices(c["glu"])
    moe_ffn = 2.0 * (c["moe_top_k"] + c["moe_shared"]) * arch.expert_params(c) + 2.0 * h * c["moe_experts"]
    return L * attn_delta + n_moe * (moe_ffn - dense_ffn)


def moe_fraction(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Share of the layers that are MoE (the step model spreads them evenly over the pipeline stages)."""
    return arch.moe_layers(c) / c["layers"]


def moe_ffn_times(c: Mapping[str, np.ndarray], micro_batch, gemm, inv_bw, ab):
    """(forward s, backward s, routed tokens per GPU) of one MoE layer's FFN for one micro-batch on one GPU.

    Tokens T = s·b/cp per GPU; each goes to k experts, so an expert-parallel rank's E/ep experts get T·k·load
    tokens in all, m = ep·T·k/E each on average (× load on the busiest rank), and run as one grouped GEMM per
    matrix (Gale et al. 2023, MegaBlocks §5) at the dense curve's efficiency of the per-expert shape; the routed part
    (router, permutation, expert GEMMs) divided by moe_gemm_eff, which calibration measures.
    Shared experts run on all T tokens (DeepSeekMoE, Dai et al. 2024 §3.2); the router is a T×h by h×E GEMM.
    Expert matrices are split over tp like the dense MLP (Megatron-Core's expert tensor parallelism = tp).
    """
    tp, ep, E, k = c["tp"], c["ep"], c["moe_experts"], c["moe_top_k"]
    h, glu = c["hidden"], c["glu"]
    tokens = c["seq_len"] * micro_batch / c["cp"]
    width = arch.expert_width(c) / tp
    busy = load(c)
    local = E / ep
    per_expert = ep * tokens * k / E * busy
    t_up, _ = gemm(per_expert, (1.0 + glu) * width, h)
    t_down, _ = gemm(per_expert, h, width)
    routed_s = local * (t_up + t_down)
    shared = c["moe_shared"] * width
    t_sup, _ = gemm(tokens, (1.0 + glu) * shared, h)
    t_sdown, _ = gemm(tokens, h, shared)
    shared_s = np.where(c["moe_shared"] > 0, t_sup + t_sdown, 0.0)
    t_router, _ = gemm(tokens, E, h)
    routed_tokens = tokens * k * busy
    # permute and unpermute (gather into expert order and back, weighted sum): a read and a write of T·k rows of h
    # each; with expert parallelism and several experts per GPU, Megatron-Core's all-to-all dispatcher also sorts the
    # received chunks by local expert and back (token_dispatcher.py, sort_chunks_by_idxs): two more each way. The
    # activation function on the routed rows as the dense MLP's (layer.py: (2 + glu) reads and writes)
    passes = 4.0 + np.where((ep > 1) & (local > 1), 4.0, 0.0)
    fwd_bytes = passes * routed_tokens * h * ab + (2.0 + glu) * routed_tokens * width * ab
    bwd_bytes = passes * routed_tokens * h * ab + (3.0 + 2.0 * glu) * routed_tokens * width * ab
    # fp8 GEMMs cast their inputs as the dense layer's do (layer.py): the routed rows into the up (h) and down (width)
    # projections forward, their output gradients backward, 3 bytes each (read 2, write 1)
    cast = c["gemm_fp8"] * 3.0 * routed_tokens * (h + width)
    fwd_bytes, bwd_bytes = fwd_bytes + cast, bwd_bytes + cast
    # moe_gemm_eff divides the routed part (router, routing traffic, expert GEMMs) as calibration fits it: measured
    # MoE layer time = that part as the dense fits time it / moe_gemm_eff (calibration/fit/moe.py); shared experts are
    # dense GEMMs
    eff = c["moe_gemm_eff"]
    fwd_s = (routed_s + t_router + fwd_bytes * inv_bw) / eff + shared_s
    bwd_s = (2.0 * (routed_s + t_router) + bwd_bytes * inv_bw) / eff + 2.0 * shared_s
    return fwd_s, bwd_s, routed_tokens


def a2a_layer_s(c: Mapping[str, np.ndarray], micro_batch, ab, gpn, intra_lat, intra_Bps, inter_lat, inter_Bps):
    """All-to-all seconds of one MoE layer for one micro-batch: dispatch and combine forward, and again backward
    (GShard §2.2), plus the forward pair once more under full recomputation. Each moves T·k rows of h from this
    GPU (Megatron-Core all-to-all dispatcher); EP ranks sit tp·cp apart (its rank order tp-cp-ep-dp), so
    gpus_per_node/(tp·cp) of them share a node."""
    tokens = c["seq_len"] * micro_batch / c["cp"]
    message = tokens * c["moe_top_k"] * c["hidden"] * ab
    ranks_per_node = np.clip(gpn / (c["tp"] * c["cp"]), 1.0, c["ep"])
    eff = c["a2a_eff"]
    one = all_to_all_s(message, c["ep"], ranks_per_node, intra_lat, intra_Bps * eff, inter_lat, inter_Bps * eff)
    passes = 4.0 + np.where(c["recompute"] >= RECOMPUTE_FULL, 2.0, 0.0)
    return np.where(c["ep"] > 1, passes * one, 0.0)


def cp_ring_s(c: Mapping[str, np.ndarray], micro_batch, ab, attn_fwd_s, attn_bwd_s, gpn, intra_lat, intra_Bps,
              inter_lat, inter_Bps):
    """Exposed ring-attention traffic of one layer for one micro-batch under context parallelism.

    Ring Attention (Liu et al. 2023, §3): cp − 1 steps, each passing this GPU's key/value block (2·g·d per token, on
    its tp share) to the next while attention runs on the block in hand, so only what exceeds the attention time
    shows; the backward passes keys/values and their gradients (twice the bytes). The ring crosses nodes when
    tp·cp exceeds the GPUs per node.
    """
    tokens = c["seq_len"] * micro_batch / c["cp"]
    kv_width = np.where(c["attention"] == arch.MLA, c["heads"], c["kv_heads"]) * 2.0 * arch.head_dim(c)
    block = tokens * kv_width * ab / c["tp"]
    inter = c["tp"] * c["cp"] > gpn
    hop = p2p_s(block, np.where(inter, inter_lat, intra_lat), np.where(inter, inter_Bps, intra_Bps))
    steps = c["cp"] - 1.0
    fwd = np.maximum(steps * hop - attn_fwd_s, 0.0)
    bwd = np.maximum(steps * 2.0 * hop - attn_bwd_s, 0.0)
    return np.where(c["cp"] > 1, fwd + bwd, 0.0)


def activation_delta_bytes(c: Mapping[str, np.ndarray], micro_batch, ab) -> np.ndarray:
    """Stored activation bytes of an MoE layer beyond the dense MLP's (memory.activation_bytes_per_layer's ab·T·ffn·
    (2 + glu)/tp): the routed rows' expert inputs (h each, permuted) and (1 + glu) + 1 expert activations of the
    expert width, the shared experts' as a dense MLP's, the router's probabilities (fp32, E per token)."""
    tokens = c["seq_len"] * micro_batch / c["cp"]
    tp, glu = c["tp"], c["glu"]
    routed = tokens * c["moe_top_k"] * load(c)
    width = arch.expert_width(c)
    moe = ab * routed * (c["hidden"] + width * arch.ffn_matrices(glu) / tp)
    moe = moe + ab * tokens * c["moe_shared"] * width * arch.ffn_matrices(glu) / tp + 4.0 * tokens * c["moe_experts"]
    dense = ab * tokens * c["ffn_hidden"] * arch.ffn_matrices(glu) / tp
    return moe - dense
