"""Loss increase at small scale: the quality calibration's measured curves instead of the LLM-scale law.

The law of penalty.py is fitted on published models of 125M parameters and more; far below that it is an
extrapolation (for a 0.1M-parameter model at 4 bits it gives ~0.5 nats, the calibrated 62K-parameter
character LM measures ~0.007). The quality calibration (`python -m calibration quality`) measures that small
LM's loss per character after compression and fits curves (simulator.quality_curves), so:

- N <= N_cal * SMALL_SPAN: the curve's loss increase at the row's bits or sparsity, carried from the calibrated
  model's (N_cal, D_cal) to the row's (N, D) by the law's own exponents (Kumar et al. 2024 eq. 2: δ ∝ D^γ_D/N^γ_N);
- N >= the smallest model the law was fitted on: the law;
- between: log δ interpolated linearly in log N between the two (no step where one hands over to the other).

Only where a curve measured the same operation: weights by round-to-nearest (the `rtn` one-shot curve) or
quantization-aware training (the `qat` fine-tuned curve), pruning by magnitude unstructured (`l1_unstructured`
one-shot) or of whole rows by magnitude or structured pruning (`l2_rows` one-shot), and magnitude 2:4 (measured
at its one sparsity, 0.5, in the section's k-fold table). Activations and the KV cache, GPTQ, AWQ, SmoothQuant, Wanda,
SparseGPT and 4:8 have no small-model measurement and keep the law. The LM is character-level, so its loss per
character is its loss per token. The curves are the shipped reference profile's (a seeded small model on a
generated corpus: what compression does to it does not depend on the machine that measured it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from simulator.compression.constants import PRUNING_METHODS, QUANT_METHODS, SPARSITY_PATTERNS, load_fitted
from simulator.quality_curves import QualityCurve, QualitySection, error_at, quality_from_profile

# the calibrated curves are used as measured up to this many times the calibrated model's parameters (one decade:
# as far as the law's N exponent is trusted to carry them), then blended towards the law
SMALL_SPAN = 10.0
LM_NAME = "char_lm"  # the quality calibration's language model (calibration/quality/models.py)
# scenario operation -> the curve that measured it: (family, curve method, fine-tuned)
WEIGHT_CURVES = {"rtn": ("bits", "rtn", False), "qat": ("bits", "qat", True)}
PRUNE_CURVES = {"unstructured": ("sparsity", "l1_unstructured", False), "rows": ("sparsity", "l2_rows", False)}


@dataclass(frozen=True)
class SmallScale:
    params: float  # N_cal: the calibrated LM's parameters (embeddings included, like model.params)
    tokens: float  # D_cal: the tokens (characters) it was trained on
    law_min_params: float  # the smallest model the law was fitted on
    weight: dict[str, QualityCurve]  # by quant method name: "rtn", "qat"
    prune: dict[str, QualityCurve]  # by pattern: "unstructured" (magnitude), "rows" (magnitude or structured)
    source: str
    # a pattern measured at its one sparsity (2:4 at 0.5, magnitude, one-shot): its loss increase over dense, nats
    prune_points: dict[str, float] = field(default_factory=dict)

    def measured_prune(self) -> dict[str, QualityCurve | float]:
        return {**self.prune, **self.prune_points}


def _finite_positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def point_deltas(table: Any) -> dict[str, float]:
    """From the quality section's k-fold table (raw JSON, so checked here): the LM's one-shot 2:4 loss over its
    dense loss. Entries that are missing or not finite positive numbers give nothing."""
    def loss(family: str, method: str) -> float | None:
        for row in table if isinstance(table, list) else []:
            if (isinstance(row, dict) and row.get("model") == LM_NAME and row.get("family") == family
                    and row.get("method") == method and row.get("finetuned") is False):
                mean = ((row.get("metrics") or {}).get("loss_nats") or {}).get("mean")
                return float(mean) if _finite_positive(mean) else None
        return None

    dense, two_four = loss("dense", "none"), loss("sparsity", "2:4")
    return {} if dense is None or two_four is None else {"2:4": max(two_four - dense, 0.0)}


def from_section(section: QualitySection, law_min_params: float, source: str,
                 table: Any = None) -> SmallScale | None:
    """The LM's curves of a parsed quality section (and its one-point patterns from the raw `table`); None when it
    has no LM with its size and tokens."""
    info = section.models.get(LM_NAME, {})
    n_cal, d_cal = info.get("params"), info.get("tokens_trained")
    if not (_finite_positive(n_cal) and _finite_positive(d_cal)):
        return None

    def curves(table: dict[str, tuple[str, str, bool]]) -> dict[str, QualityCurve]:
        found = {k: section.curve(LM_NAME, fam, method, tuned, "loss_nats") for k, (fam, method, tuned) in table.items()}
        return {k: c for k, c in found.items() if c is not None}

    return SmallScale(float(n_cal), float(d_cal), float(law_min_params), curves(WEIGHT_CURVES), curves(PRUNE_CURVES),
                      source, point_deltas(table))


@lru_cache(maxsize=1)
def reference() -> SmallScale | None:
    """The shipped reference profiles' first LM curves (sorted by file name), or None when none has them."""
    from simulator.devices import shipped_profiles  # here, not at import: the profiles are read on first use

    law_min = float(load_fitted()["params_range"][0])
    for stem, profile in shipped_profiles().items():
        section = quality_from_profile(profile)
        found = None if section is None else from_section(section, law_min, f"{stem}.json",
                                                          profile["quality"].get("table"))
        if found is not None and (found.weight or found.prune):
            return found
    return None


def curve_delta(curve: QualityCurve, x: np.ndarray) -> np.ndarray:
    """The curve's loss increase at bits or sparsity x over the curve at 16 bits or no sparsity (so 0 there;
    >= 0: compression never helps)."""
    uncompressed = 16.0 if curve.family == "bits" else 0.0
    return np.maximum(error_at(curve.model, curve.params, x) - error_at(curve.model, curve.params, uncompressed), 0.0)


def law_weight(params: np.ndarray, small: SmallScale) -> np.ndarray:
    """The law's share of a row's δ: 0 up to N_cal·SMALL_SPAN, 1 from the law's smallest model, linear in log N."""
    lo, hi = np.log(small.params * SMALL_SPAN), np.log(max(small.law_min_params, small.params * SMALL_SPAN * 1.0001))
    return np.clip((np.log(np.asarray(params, dtype=float)) - lo) / (hi - lo), 0.0, 1.0)


def blend(law_delta: np.ndarray, measured: QualityCurve | float, x: np.ndarray, params: np.ndarray,
          tokens: np.ndarray, small: SmallScale, k: dict[str, float]) -> np.ndarray:
    """δ of rows measured by a curve (or at one point: a number): the measurement carried to (N, D), the law, or
    log-linear between them."""
    n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    at_cal = curve_delta(measured, x) if isinstance(measured, QualityCurve) else np.full(np.shape(x), measured)
    # Kumar et al. 2024 eq. 2: δ ∝ D^γ_D / N^γ_N at fixed effective bits
    carried = at_cal * (d / small.tokens) ** k["gamma_D"] * (small.params / n) ** k["gamma_N"]
    w = law_weight(n, small)
    tiny = 1e-300  # a zero δ on either side: the blend follows the other side's weight
    mixed = np.exp((1.0 - w) * np.log(np.maximum(carried, tiny)) + w * np.log(np.maximum(law_delta, tiny)))
    mixed = np.where(mixed < 1e-250, 0.0, mixed)
    return np.select([w <= 0.0, w >= 1.0], [carried, law_delta], mixed)


def weight_rows(method: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the rows each weight curve measures, by method name."""
    return {name: np.asarray(method) == QUANT_METHODS.index(name) for name in WEIGHT_CURVES}


def prune_rows(method: np.ndarray, pattern: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the rows each pruning curve measures: magnitude unstructured; whole rows by magnitude (L2 row norms)
    or structured pruning."""
    m, p = np.asarray(method), np.asarray(pattern)
    by_norm = (m == PRUNING_METHODS.index("magnitude")) | (m == PRUNING_METHODS.index("structured"))
    magnitude = m == PRUNING_METHODS.index("magnitude")
    return {"unstructured": magnitude & (p == SPARSITY_PATTERNS.index("unstructured")),
            "rows": by_norm & (p == SPARSITY_PATTERNS.index("rows")), "2:4": magnitude & (p == SPARSITY_PATTERNS.index("2:4"))}


def replace(delta: np.ndarray, masks: dict[str, np.ndarray], curves: dict[str, QualityCurve | float],
            x: np.ndarray, params: np.ndarray, tokens: np.ndarray, small: SmallScale, k: dict[str, float]) -> np.ndarray:
    """`delta` (the law's, per row) with each measurement's rows blended towards it; other rows unchanged."""
    out, x, n, d = (np.array(a, dtype=float) for a in np.broadcast_arrays(delta, x, params, tokens))
    for name, curve in curves.items():
        rows = np.broadcast_to(masks[name], out.shape)
        if rows.any():
            out[rows] = blend(out[rows], curve, x[rows], n[rows], d[rows], small, k)
    return out
