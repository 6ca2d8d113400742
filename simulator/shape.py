"""Derive a transformer shape from a parameter count alone (vectorised)."""

from __future__ import annotations

import numpy as np

HEAD_DIM_LARGE = 128
HEAD_DIM_SMALL = 64
ASPECT_HIDDEN_PER_LAYER = 128.0  # GPT-3 family: h/L = 12288/96 = 128 (Brown et al. 2020, Table 2.1)


def derive_shape(params: np.ndarray | float, vocab: np.ndarray | float, swiglu: np.ndarray | bool = False):
    """Return (layers, hidden, heads, ffn_hidden) arrays for total parameter counts `params`.

    Kaplan et al. 2020 (Table 1): non-embedding N ≈ 12·L·h² for a GELU block with ffn = 4h (SwiGLU with
    ffn = 8h/3 keeps the same count). With h = 128·L this gives h = (128·N/12)^(1/3).
    """
    n = np.asarray(params, dtype=float)
    v = np.asarray(vocab, dtype=float)
    glu = np.asarray(swiglu, dtype=bool)
    raw_hidden = np.cbrt(ASPECT_HIDDEN_PER_LAYER * n / 12.0)
    head_dim = np.where(raw_hidden >= 2048, HEAD_DIM_LARGE, HEAD_DIM_SMALL)
    heads = np.maximum(np.rint(raw_hidden / head_dim), 1)
    heads = np.where(heads >= 16, np.maximum(np.rint(heads / 8) * 8, 8), heads)  # multiples of 8 suit TP 1-8
    hidden = heads * head_dim
    non_embedding = np.maximum(n - v * hidden, 0.25 * n)  # tied input/output embedding: V·h
    layers = np.maximum(np.rint(non_embedding / (12.0 * hidden**2)), 1)
    layers = np.where(layers > 8, np.rint(layers / 4) * 4, layers)  # multiples of 4 suit PP 1/2/4
    # SwiGLU keeps 3·h·ffn = 8h² per MLP with ffn = 8h/3, rounded up to 256 (LLaMA, Touvron et al. 2023)
    ffn = np.where(glu, np.ceil(8.0 * hidden / 3.0 / 256.0) * 256.0, 4.0 * hidden)
    return layers.astype(np.int64), hidden.astype(np.int64), heads.astype(np.int64), ffn.astype(np.int64)
