"""Rows that compress anything: the model's work is done on those only (most sweeps compress nothing)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


def compressed_rows(c: Mapping[str, np.ndarray]) -> np.ndarray:
    """True where weights, activations or KV are below 16 bits, or weights are pruned."""
    pruned = (np.asarray(c["pruning_method"]) > 0) & (np.asarray(c["sparsity"]) > 0)
    return (np.asarray(c["weight_bits"]) < 16) | (np.asarray(c["act_bits"]) < 16) | (np.asarray(c["kv_bits"]) < 16) \
        | pruned | (np.asarray(c["quant_method"]) == 5)  # 5: qat, which changes nothing at 16 bits but is cheap


def on_rows(fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], c: Mapping[str, np.ndarray],
            keys: Sequence[str], shape: tuple[int, ...], identity: Mapping[str, float | np.ndarray]
            ) -> dict[str, np.ndarray]:
    """`fn` on the compressed rows only; the others take `identity` (the dense model's value per output)."""
    mask = np.broadcast_to(compressed_rows(c), shape)
    out = {k: np.array(np.broadcast_to(np.asarray(v, dtype=float), shape)) for k, v in identity.items()}
    if mask.any():
        part = fn({k: np.broadcast_to(c[k], shape)[mask] for k in keys})
        for k, v in part.items():
            out[k][mask] = v
    return out
