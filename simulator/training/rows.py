"""Rows alike: which rows of a few columns are the same, found by hashing (a sweep's rows repeat across the axes a
model does not read, such as the training tokens for the step time)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# odd 64-bit multipliers (splitmix64's constants and the golden ratio's): each column's bits are mixed differently
_MIX = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93],
                dtype=np.uint64)


def unique_rows(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse) of the rows of equal-length float columns: `first[j]` is the first row of the j-th distinct
    row (in order of first appearance) and `inverse[i]` the distinct row of row i, so `column[first][inverse]`
    is `column` again. Rows are equal when every column's bits are (NaN equals NaN of the same bits, as
    np.unique on the rows' bytes has it). One 64-bit hash per row, grouped by a one-key np.unique, then checked: on
    a collision the exact np.unique over every column's bits is used."""
    bits = [np.ascontiguousarray(c, dtype=np.float64).reshape(-1).view(np.uint64) for c in columns]
    n = bits[0].size if bits else 0
    if n == 0 or not bits:
        return np.zeros(min(n, 1), dtype=np.int64), np.zeros(n, dtype=np.int64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, b in enumerate(bits):
            h = (h ^ b) * _MIX[i % _MIX.size]
            h ^= h >> np.uint64(31)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    if all(np.array_equal(b[first][inverse], b) for b in bits):
        return _in_order(first, inverse.ravel())
    key = np.ascontiguousarray(np.stack(bits, axis=1))
    _, first, inverse = np.unique(key.view(np.dtype((np.void, 8 * len(bits)))).ravel(), return_index=True,
                                  return_inverse=True)
    return _in_order(first, inverse.ravel())


def _in_order(first: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows renumbered in order of first appearance."""
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order].astype(np.int64), rank[inverse].astype(np.int64)
