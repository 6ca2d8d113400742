"""Bytes of a compressed model's weights: packed values, group scales (and zero points), sparse metadata."""

from __future__ import annotations

import numpy as np

from simulator.compression.constants import FORMATS, SCALE_BITS, SPARSITY_PATTERNS


def scale_bits_per_weight(weight_bits: np.ndarray, quant_format: np.ndarray, group_size: np.ndarray,
                          hidden: np.ndarray) -> np.ndarray:
    """Overhead bits per weight of the group scales: one fp16 scale per group, plus an integer zero point at the
    weight's width (GPTQ/AutoGPTQ `qzeros` packing) for the int format; a row of `hidden` weights per group when
    group_size = 0 (per channel); nothing at 16 bits."""
    group = np.where(np.asarray(group_size) > 0, group_size, hidden).astype(float)
    per_group = SCALE_BITS + np.where(np.asarray(quant_format) == FORMATS.index("int"), weight_bits, 0.0)
    return np.where(np.asarray(weight_bits) >= 16, 0.0, per_group / group)


def weight_bits_per_param(weight_bits, quant_format, group_size, hidden) -> np.ndarray:
    """Stored bits per dense weight before pruning: value bits + scale overhead."""
    return np.asarray(weight_bits, dtype=float) + scale_bits_per_weight(weight_bits, quant_format, group_size, hidden)


def pruned_bits_per_param(value_bits: np.ndarray, sparsity: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Stored bits per dense weight after pruning, by pattern (codes of SPARSITY_PATTERNS):
    2:4 keeps half the values + a 2-bit index per kept value (NVIDIA A100 whitepaper 2020; Mishra et al. 2021);
    4:8 half + a 3-bit index (log2 8); rows: the matrix shrinks to (1−S) of its rows, no metadata;
    unstructured: kept values + a 1-bit presence mask per weight, or dense if that is smaller."""
    s = np.asarray(sparsity, dtype=float)
    p = np.asarray(pattern)
    kept = (1.0 - s) * value_bits
    unstructured = np.minimum(value_bits, kept + 1.0)
    return np.select([s <= 0, p == SPARSITY_PATTERNS.index("2:4"), p == SPARSITY_PATTERNS.index("4:8"),
                      p == SPARSITY_PATTERNS.index("rows")],
                     [np.broadcast_to(value_bits, np.shape(kept)), kept + (1.0 - s) * 2.0, kept + (1.0 - s) * 3.0,
                      kept], unstructured)


def model_bytes(params, weight_bits, quant_format, group_size, hidden, sparsity, pattern) -> np.ndarray:
    """Bytes of all weights (every parameter compressed alike, embeddings included): N · bits / 8."""
    per_param = weight_bits_per_param(weight_bits, quant_format, group_size, hidden)
    return np.asarray(params, dtype=float) * pruned_bits_per_param(per_param, sparsity, pattern) / 8.0
