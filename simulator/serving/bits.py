"""Bits per weight, activation and KV element, and the model's weight bytes: the compression family's columns
where they exist (weight_bits, act_bits, kv_bits, figure compression.model_bytes), else 16-bit."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DEFAULT_BITS = 16.0  # bf16/fp16 serving when no compression is chosen


def _bits(c: Mapping[str, np.ndarray], column: str, n: int) -> np.ndarray:
    value = np.asarray(c[column], dtype=float) if column in c else np.full(n, np.nan)
    return np.where(np.isfinite(value), value, DEFAULT_BITS)


def precision_bits(c: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight_bits, act_bits, kv_bits) per row: the compression columns, NaN or absent -> 16."""
    n = len(c["params"])
    return _bits(c, "weight_bits", n), _bits(c, "act_bits", n), _bits(c, "kv_bits", n)


def weight_bytes(c: Mapping[str, np.ndarray], weight_bits: np.ndarray) -> np.ndarray:
    """The model's weight bytes: compression.model_bytes where that figure exists, else params × bits / 8."""
    plain = c["params"] * weight_bits / 8.0
    if "compression.model_bytes" in c:
        given = np.asarray(c["compression.model_bytes"], dtype=float)
        return np.where(np.isfinite(given), given, plain)
    return plain
