"""Correlations between a calibrated device's uncertain columns, from the fits they came from.

Two columns set from parameters of one profile fit (the decode fit's intercept and its time per cached token, say)
inherit that fit's parameter correlation (the fit record's "corr", docs/profile-schema.md). A column proportional to
a parameter keeps its sign; one proportional to its inverse (a bandwidth efficiency from a time per byte) flips it.
Columns from different fits, or from a fit that states no correlation, stay uncorrelated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.profile import param_corr

Pair = tuple[str, str]  # two column names, sorted


@dataclass(frozen=True)
class Origin:
    """Where one uncertain column of a device came from: a fit of the profile, one of its params, and whether the
    column grows with the param (+1) or with its inverse (-1)."""

    where: str  # the fit's path in the profile, e.g. "fits.inference.decode.cpu/bf16/L4-h512"
    fit: dict[str, Any]
    param: str
    sign: int = 1


def pair(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


def fit_correlations(origins: Mapping[str, Origin]) -> tuple[dict[Pair, float], list[str]]:
    """({(column, column): r}, one source note per pair) for every two columns of `origins` from the same fit
    whose record states the correlation of their params."""
    out: dict[Pair, float] = {}
    notes: list[str] = []
    names = sorted(origins)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            oa, ob = origins[a], origins[b]
            if oa.where != ob.where or oa.param == ob.param:
                continue
            r = param_corr(oa.fit, oa.param, ob.param)
            if r is None or r == 0.0:
                continue
            out[pair(a, b)] = oa.sign * ob.sign * r
            flipped = " (sign flipped: one grows with its param's inverse)" if oa.sign * ob.sign < 0 else ""
            notes.append(f"{a} and {b}: r = {out[pair(a, b)]:+.2f}, the correlation of {oa.param} and {ob.param} "
                         f"in {oa.where}{flipped}")
    return out, notes


def correlation_matrix(names: list[str], correlations: Mapping[Pair, float]) -> np.ndarray:
    """The correlation matrix of `names` (1 on the diagonal, 0 for pairs not in `correlations`)."""
    r = np.eye(len(names))
    at = {name: i for i, name in enumerate(names)}
    for (a, b), value in correlations.items():
        if a in at and b in at and a != b:
            r[at[a], at[b]] = r[at[b], at[a]] = value
    return r


def psd_factor(r: np.ndarray) -> np.ndarray:
    """F with F·Fᵀ a unit-diagonal positive semidefinite matrix close to the correlation matrix `r`: `r` itself where
    it is one (Rebonato & Jäckel 1999, spectral method: negative eigenvalues clipped to 0, rows rescaled to a unit
    diagonal). Only the rows and columns with an off-diagonal entry are factored; the others keep the identity, so
    an uncorrelated column's draws are exactly its independent ones."""
    n = len(r)
    factor = np.eye(n)
    linked = np.flatnonzero(np.any((r - np.eye(n)) != 0.0, axis=1))
    if linked.size == 0:
        return factor
    block = r[np.ix_(linked, linked)]
    values, vectors = np.linalg.eigh(0.5 * (block + block.T))
    part = vectors * np.sqrt(np.clip(values, 0.0, None))
    scale = np.sqrt(np.sum(part**2, axis=1))
    factor[np.ix_(linked, linked)] = part / np.where(scale > 0, scale, 1.0)[:, None]
    return factor
