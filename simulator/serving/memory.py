"""KV-cache bytes and the largest batch that fits in a replica's memory."""

from __future__ import annotations

import numpy as np

from simulator.serving.constants import KV_MEMORY_FRACTION


def kv_bytes_per_token(layers, hidden, heads, kv_heads, kv_bits):
    # Ainslie et al. 2023 (GQA): K and V of kv_heads heads of size hidden/heads per layer; × 2 (K and V)
    return 2.0 * layers * kv_heads * (hidden / heads) * kv_bits / 8.0


def kv_bytes_per_token_mla(layers, kv_rank, rope_dim, kv_bits):
    # DeepSeek-V2 §2.1.4 (Table 1): MLA caches the compressed latent c_KV (d_c) and the shared rotary key (d_h^R)
    # per token and layer, (d_c + d_h^R)·layers elements (DeepSeek-V3: (512 + 64)·61)
    return layers * (kv_rank + rope_dim) * kv_bits / 8.0


def kv_budget_bytes(hbm_GB, gpus_per_replica, model_bytes, fraction=KV_MEMORY_FRACTION):
    """Memory a replica gives the KV cache: `fraction` of what its GPUs hold after the weights (TensorRT-LLM's
    free_gpu_memory_fraction rule); negative where the weights alone do not fit."""
    total = hbm_GB * 1e9 * gpus_per_replica
    free = total - model_bytes
    return np.where(free > 0, fraction * free, free)


def max_batch(budget_bytes, kv_token_bytes, context_tokens):
    """Sequences whose full context (prompt + output, reserved on admission as TensorRT-LLM's
    GUARANTEED_NO_EVICT scheduler does) fit in the KV budget; 0 where not even one fits."""
    return np.maximum(np.floor(budget_bytes / (kv_token_bytes * context_tokens)), 0.0)
