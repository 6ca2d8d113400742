"""Parameter counts of a decoder-only transformer's parts: attention (MHA, GQA or MLA), dense and mixture-of-experts
FFNs, embeddings. Pure numpy on columns, shared by the training, serving and quality models.

A model's shape is given by model columns (simulator/families/training_inputs.py): `layers`, `hidden`, `heads`,
`kv_heads`, `head_dim`, `attention` (ATTENTION codes), the MLA ranks, `ffn_hidden`, `glu`, `vocab`, `tied`, and the MoE
columns `moe_experts` (routed experts; 0 = dense), `moe_top_k`, `moe_shared`, `moe_ffn_hidden`, `moe_dense_layers`,
`moe_layer_step`. Counts leave out biases and learned position embeddings (each < 0.1% of the models here)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

ATTENTION = ("mha", "gqa", "mla")  # codes of model.attention, in this order
MLA = 2.0
# the columns a dense model of today's shape leaves at these values (an absent column reads as its value here)
SHAPE_DEFAULTS = {"head_dim": np.nan, "attention": 1.0, "mla_q_rank": 0.0, "mla_kv_rank": 0.0, "mla_rope_dim": 0.0,
                  "tied": 1.0, "moe_experts": 0.0, "moe_top_k": 1.0, "moe_shared": 0.0, "moe_ffn_hidden": np.nan,
                  "moe_dense_layers": 0.0, "moe_layer_step": 1.0}


def col(c: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """Column `key` of `c` as float64, or its SHAPE_DEFAULTS value when absent (a dense model of today's shape)."""
    return np.asarray(c[key] if key in c else SHAPE_DEFAULTS[key], dtype=np.float64)


def ffn_matrices(glu):
    # SwiGLU/GeGLU (Shazeer 2020) have gate, up and down projections; a GELU MLP has up and down
    return 2.0 + np.asarray(glu, dtype=np.float64)


def head_dim(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-head width: given (Qwen3, GPT-OSS, DeepSeek's no-RoPE part), else hidden / heads (Vaswani et al. 2017)."""
    d = col(c, "head_dim")
    return np.where(np.isfinite(d), d, np.asarray(c["hidden"], np.float64) / c["heads"])


def standard_attention(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """True where attention is MHA/GQA with heads × head_dim = hidden: the shape the dense formulas were written for
    (they then apply exactly, so a dense model plans bit for bit as before these columns existed)."""
    return (col(c, "attention") != MLA) & (np.asarray(c["heads"], np.float64) * head_dim(c) == c["hidden"])


def attention_params(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Weights of one layer's attention.

    MHA/GQA (Ainslie et al. 2023): Q h·(a·d), K and V h·(g·d) each, output (a·d)·h. MLA (DeepSeek-AI 2024,
    DeepSeek-V2 §2.1.2-2.1.3, eqs. 9-14; V3 config): Q down h·r_q then up r_q·a·(d + d_R) (r_q = 0: one h·a·(d + d_R)
    projection, as V2-Lite), KV down h·(r_kv + d_R), up r_kv·a·(d + d_v) with d_v = d, output (a·d)·h.
    """
    h, a = np.asarray(c["hidden"], np.float64), np.asarray(c["heads"], np.float64)
    g, d = np.asarray(c["kv_heads"], np.float64), head_dim(c)
    qw = a * d
    gqa = h * qw + 2.0 * h * g * d + qw * h
    rq, rkv, rope = col(c, "mla_q_rank"), col(c, "mla_kv_rank"), col(c, "mla_rope_dim")
    q = np.where(rq > 0, h * rq + rq * a * (d + rope), h * a * (d + rope))
    mla = q + h * (rkv + rope) + rkv * a * 2.0 * d + qw * h
    return np.where(col(c, "attention") == MLA, mla, gqa)


def moe_layers(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """MoE layers: after `moe_dense_layers` dense ones (DeepSeek-V3: 3), every `moe_layer_step`-th layer (Llama 4
    Maverick: 2, the layers with (i + 1) % step = 0 in its Hugging Face code); 0 for a dense model."""
    experts = col(c, "moe_experts")
    rest = np.maximum(np.asarray(c["layers"], np.float64) - col(c, "moe_dense_layers"), 0.0)
    return np.where(experts > 0, np.floor(rest / np.maximum(col(c, "moe_layer_step"), 1.0)), 0.0)


def expert_width(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """One expert's inner width: given, else the dense FFN width (Mixtral: experts are the dense MLP's size)."""
    w = col(c, "moe_ffn_hidden")
    return np.where(np.isfinite(w), w, np.asarray(c["ffn_hidden"], np.float64))


def expert_params(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Weights of one expert (a gated or plain MLP of the expert width)."""
    return ffn_matrices(c["glu"]) * np.asarray(c["hidden"], np.float64) * expert_width(c)


def routed_expert_params(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Weights of every routed expert of every MoE layer: what expert parallelism shards."""
    return moe_layers(c) * col(c, "moe_experts") * expert_params(c)


def _moe_layer_params(c: Mapping[str, np.ndarray], experts_used: np.ndarray) -> np.ndarray:
    """FFN weights of one MoE layer that `experts_used` routed experts touch, with the shared experts and the router
    (Fedus et al. 2022 Switch Transformer §2.1: router h·E; DeepSeekMoE, Dai et al. 2024 §3: shared experts)."""
    h = np.asarray(c["hidden"], np.float64)
    return (experts_used + col(c, "moe_shared")) * expert_params(c) + col(c, "moe_experts") * h


def counts(c: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(total, active) parameters, embeddings included.

    Active: the weights one token's forward pass multiplies: every non-MoE weight, the top-k routed and the shared
    experts, the router, and both embedding tables (the input table as the publishers of Mixtral, Qwen3, Llama 4
    and DeepSeek-V3 count it; OpenAI's GPT-OSS card leaves it out). Dense: active = total.
    """
    L, h = np.asarray(c["layers"], np.float64), np.asarray(c["hidden"], np.float64)
    n_moe = moe_layers(c)
    dense_ffn = ffn_matrices(c["glu"]) * h * c["ffn_hidden"]
    common = L * (attention_params(c) + 4.0 * h) + (L - n_moe) * dense_ffn
    embed = np.asarray(c["vocab"], np.float64) * h * (2.0 - col(c, "tied")) + 2.0 * h
    total = common + n_moe * _moe_layer_params(c, col(c, "moe_experts")) + embed
    active = common + n_moe * _moe_layer_params(c, col(c, "moe_top_k")) + embed
    return total, active
