"""The model's shape as the serving step sees it: what every token multiplies, what the KV cache holds per token, the
attention widths and the routed experts (simulator.architecture counts them). A dense model with standard
attention gets the values the serving model used before MoE and MLA existed (the same numbers, bit for bit)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from simulator import architecture as arch
from simulator.serving.memory import kv_bytes_per_token, kv_bytes_per_token_mla


def kv_token_bytes(c: Mapping[str, np.ndarray], kv_bits: np.ndarray) -> np.ndarray:
    """KV-cache bytes per token of context, whole model: MLA's latent and rotary key, else K and V of the KV heads
    (head_dim wide where given: Qwen3 and GPT-OSS heads are not hidden/heads)."""
    standard = arch.standard_attention(c)
    gqa = np.where(standard, kv_bytes_per_token(c["layers"], c["hidden"], c["heads"], c["kv_heads"], kv_bits),
                   kv_bytes_per_token(c["layers"], c["heads"] * arch.head_dim(c), c["heads"], c["kv_heads"], kv_bits))
    mla = kv_bytes_per_token_mla(c["layers"], arch.col(c, "mla_kv_rank"), arch.col(c, "mla_rope_dim"), kv_bits)
    return np.where(arch.col(c, "attention") == arch.MLA, mla, gqa)


def replica_shape(c: Mapping[str, np.ndarray], model_bytes: np.ndarray, act_bits: np.ndarray,
                  kv_bits: np.ndarray) -> dict[str, np.ndarray]:
    """The `Replica` fields (simulator/serving/step.py) that come from the model's shape, the layout inputs
    (serving.ep, serving.attention_dp, serving.moe_imbalance) and the serving device's MoE efficiencies."""
    h, L = np.asarray(c["hidden"], np.float64), np.asarray(c["layers"], np.float64)
    heads, vocab = np.asarray(c["heads"], np.float64), np.asarray(c["vocab"], np.float64)
    experts, k = arch.col(c, "moe_experts"), arch.col(c, "moe_top_k")
    moe = experts > 0
    n_moe, width, one = arch.moe_layers(c), arch.expert_width(c), arch.expert_params(c)
    # what a token multiplies besides its k routed experts: the active count (architecture.counts) less those
    # experts and, for an untied model, the input table (a lookup); the output head stays (2·vocab·h per sample)
    body = np.asarray(c["active_params"], np.float64) - n_moe * k * one - vocab * h * (1.0 - arch.col(c, "tied"))
    routed_share = np.where(moe, np.clip(n_moe * experts * one / np.asarray(c["params"], np.float64), 0.0, 1.0), 0.0)
    # the MLP activations the elementwise passes touch per layer: the dense width, or k routed + shared experts
    moe_ffn = ((L - n_moe) * c["ffn_hidden"] + n_moe * (k + arch.col(c, "moe_shared")) * width) / L
    mla = arch.col(c, "attention") == arch.MLA
    standard = arch.standard_attention(c)
    d, rope, rank = arch.head_dim(c), arch.col(c, "mla_rope_dim"), arch.col(c, "mla_kv_rank")
    # decode: MLA with W_UK absorbed into the query and W_UV into the output (DeepSeek-V2 §2.1.2) scores over the
    # r_kv + d_R latent and sums r_kv values per head: 2·heads·(2·r_kv + d_R) FLOPs per cached token = 4·width
    decode_width = np.where(mla, heads * (rank + rope / 2.0), heads * d)
    # prefill runs MLA unabsorbed: QKᵀ over d + d_R, PV over d per head (causal s²·heads·(d_qk + d_v) = 2·s²·width)
    prefill_width = np.where(mla, heads * (2.0 * d + rope) / 2.0, heads * d)
    ep = np.asarray(c["serving_ep"], np.float64)
    gpus = np.asarray(c["gpus_per_replica"], np.float64)
    return {
        "params": np.where(moe, body, c["params"]),
        "ffn_hidden": np.where(moe, moe_ffn, c["ffn_hidden"]),
        "kv_token_bytes": kv_token_bytes(c, kv_bits),
        "attn_dp": np.where(np.asarray(c["attention_dp"]) > 0, gpus, 1.0),
        "kv_split": np.where(mla, 0.0, 1.0),
        "attn_width": np.where(standard, 1.0, decode_width / h),
        "prefill_attn_width": np.where(standard, 1.0, prefill_width / h),
        "routed_bytes": model_bytes * routed_share,
        "moe_layers": n_moe,
        "experts": experts,
        "top_k": k,
        "expert_params": np.where(moe, one, 0.0),
        "expert_width": np.where(moe, width, 0.0),
        "ep": ep,
        "imbalance": np.where(moe & (ep > 1), c["serving_moe_imbalance"], 1.0),
        "moe_eff": np.asarray(c["serving_hw_serve_moe_eff"], np.float64),
        "a2a_eff": np.asarray(c["serving_hw_a2a_eff"], np.float64),
        "dispatch_bytes": np.where(act_bits <= 8.0, 1.0, 2.0),  # DeepSeek-V3 §3.3.2: FP8 dispatch
    }
