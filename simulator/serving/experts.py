"""Mixture-of-experts terms of one serving step: the routed experts a batch touches, their weight reads and compute
on the busiest GPU, and the all-to-all that carries tokens to them and back (expert parallelism, GShard, Lepikhin
et al. 2021 §2.2-2.3; DeepSpeed-MoE inference, Rajbhandari et al. 2022 §5).

Every function takes arrays (one entry per row) and gives exact zeros for a dense model (no MoE layers), so a dense
replica's step is bit for bit the step it was before these terms existed.
"""

from __future__ import annotations

import numpy as np

from simulator.training.efficiency import gemm_compute_efficiency


def experts_touched(experts, top_k, tokens):
    """Expected distinct routed experts `tokens` tokens touch in one MoE layer when each picks `top_k` distinct
    experts uniformly at random: E·(1 − (1 − k/E)^B).

    The occupancy problem (Feller 1968, An Introduction to Probability Theory, Vol. I, §II.5 and §IV.2: r balls
    in n cells leave n(1 − 1/n)^r cells empty on average) with k-subsets: one token misses a given expert with
    probability C(E−1, k)/C(E, k) = 1 − k/E, the tokens route independently, and linearity of expectation gives
    the count (exact for uniform routing; 0 for a dense model, E = 0)."""
    e = np.asarray(experts, dtype=float)
    safe = np.maximum(e, np.asarray(top_k, dtype=float))  # k ≤ E for a legal MoE; keeps a dense row (E = 0) finite
    return np.where(e > 0, e * (1.0 - (1.0 - top_k / safe) ** np.asarray(tokens, dtype=float)), 0.0)


def touched_share(experts, top_k, tokens):
    """The share of a layer's routed experts `tokens` tokens touch (experts_touched / E; 0 for a dense model)."""
    e = np.asarray(experts, dtype=float)
    return np.where(e > 0, experts_touched(e, top_k, tokens) / np.maximum(e, 1.0), 0.0)


def expert_step_s(tokens, *, moe_layers, experts, top_k, expert_params, expert_width, routed_bytes, gpus, ep,
                  imbalance, hidden, peak_flops, gemm_eff_max, gemm_dim_half, moe_eff, stream_Bps):
    """Seconds the busiest GPU spends in the routed experts' layers for `tokens` tokens of the replica.

    Each GPU holds 1/gpus of the routed weights (EP ranks of E/ep experts, each split over gpus/ep GPUs by expert
    tensor parallelism: TensorRT-LLM's moe_ep_size × moe_tp_size = tp_size). The busiest EP rank carries `imbalance`
    times its even share of the token-expert pairs (1 where ep = 1): FLOPs 2·expert_params·tokens·k·imbalance/gpus
    per MoE layer (LLM-Viewer's 2·ic·oc per token, Yuan et al. 2024), at the GEMM curve's efficiency for
    tokens·k·imbalance/E rows per expert; it reads the experts it touches, experts_touched of tokens·imbalance
    tokens over its local experts (the busiest rank sees the batch as if it were `imbalance` times larger).
    Roofline: the larger of the two (Williams et al. 2009), divided by `moe_eff`, the MoE layer's speed relative to
    that roofline (routing, activation quantisation, permutation and finalize kernels around the grouped GEMMs;
    serving/constants.SERVING_MOE_EFF, or a calibrated device's moe_layer fit)."""
    pairs = tokens * top_k * imbalance  # token-expert pairs the busiest rank's share stands for, over the replica
    flops = 2.0 * moe_layers * expert_params * pairs / gpus
    rows = pairs / np.maximum(experts, 1.0)  # tokens one expert multiplies
    eff = gemm_compute_efficiency(np.maximum(rows, 1.0), np.maximum(expert_width * ep / gpus, 1.0), hidden,
                                  gemm_eff_max, gemm_dim_half)
    read = routed_bytes * touched_share(experts, top_k, tokens * imbalance) / gpus
    return np.maximum(flops / (peak_flops * eff), read / stream_Bps) / moe_eff


def all_to_all_s(tokens_per_gpu, *, moe_layers, top_k, gpus, ep, imbalance, hidden, dispatch_bytes, combine_bytes,
                 link_Bps, latency_s, spread):
    """Seconds of the MoE layers' all-to-all on the busiest GPU: per MoE layer a dispatch (each token's hidden
    vector to its k experts' GPUs) and a combine (the experts' outputs back), alpha-beta as the one-shot collectives
    of the step: α + bytes / link (every peer at once over NVLink/NVSwitch, each GPU's link the bound).

    Only where attention is data-parallel (`spread` > 1: each GPU holds its own requests' tokens); with tensor-
    parallel attention every GPU already holds every token and the MoE output is combined by the layer's
    all-reduce (Megatron; TensorRT-LLM without enable_attention_dp). Bytes sent: tokens_per_gpu·k copies, each to
    the gpus/ep GPUs of its expert's tensor-parallel group, (gpus − 1)/gpus of them remote, raised by the busiest
    rank's imbalance. Dispatch in the activations' width (FP8 where they are 8-bit), combine in 16 bits: DeepSeek-V3
    (DeepSeek-AI 2024) §3.3.2, low-precision communication."""
    copies = tokens_per_gpu * top_k * imbalance * (gpus / ep) * (gpus - 1.0) / gpus
    on = (spread > 1.0) & (moe_layers > 0)
    dispatch = latency_s + copies * hidden * dispatch_bytes / link_Bps
    combine = latency_s + copies * hidden * combine_bytes / link_Bps
    return np.where(on, moe_layers * (dispatch + combine), 0.0)
