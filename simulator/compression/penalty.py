"""Loss increase of a compressed model over its dense 16-bit self, in nats per token (vectorised over rows).

One law for every source of weight noise: Kumar et al. 2024 ("Scaling Laws for Precision", arXiv 2411.04330)
eq. 2, δ = C_T · D^γ_D / N^γ_N · e^{−P/γ_post}, where P is the *effective* bit width of the noise:
the nominal bits plus a per-method offset (fitted once, `fitted.json`), plus the gain of finer scale groups;
pruning enters the same law through the bit width whose rounding noise equals the pruned weights' energy.
Quantization-aware training instead shrinks the effective parameter count (Kumar et al. eq. 4). Pruning also
pays the capacity term of Frantar et al. 2023 (arXiv 2309.08520) eq. 1. Sources of noise add (first order).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from simulator.compression.constants import (
    FRANTAR_T5,
    KUMAR_QAT_GAMMA,
    LAW,
    PRUNE_OFFSET_ASSUMED_BITS,
    PRUNING_METHODS,
    QUANT_METHODS,
    SPARSITY_PATTERNS,
)
from simulator.compression.patterns import nm_removed_energy
from simulator.compression.small_scale import SmallScale, prune_rows, replace, weight_rows

PTQ_METHODS = ("rtn", "gptq", "awq", "smoothquant")


def group_gain_bits(group_size: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Bits gained by one scale per `group_size` weights instead of one per row of `row` weights (0 = per row).

    The largest of n Gaussian weights is ≈ σ·√(2 ln n) (extreme-value theory, e.g. Cramér 1946 §28.6), so the
    rounding step, and the noise energy, scale with ln n: ΔP = ½·log2(ln row / ln group)."""
    row = np.maximum(np.asarray(row, dtype=float), 2.0)
    g = np.where(np.asarray(group_size) > 0, np.minimum(group_size, row), row)
    return 0.5 * np.log2(np.log(row) / np.log(np.maximum(g, 2.0)))


def rtn_noise_energy(bits: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Relative noise energy of round-to-nearest with one scale per row: step Δ = 2·max/2^P with
    max ≈ σ√(2 ln row) (Cramér 1946), noise Δ²/12 (Bennett 1948): (2 ln row / 3)·4^−P."""
    return (2.0 * np.log(np.maximum(row, 2.0)) / 3.0) * 4.0 ** (-np.asarray(bits, dtype=float))


def unstructured_removed_energy(sparsity: np.ndarray) -> np.ndarray:
    """Share of a Gaussian weight matrix's energy in its smallest-magnitude fraction S:
    with t = Φ⁻¹((1+S)/2), E(S) = S − 2·t·φ(t) (truncated-normal second moment)."""
    s = np.clip(np.asarray(sparsity, dtype=float), 0.0, 0.999999)
    t = ndtri((1.0 + s) / 2.0)
    return np.maximum(s - 2.0 * t * np.exp(-0.5 * t * t) / np.sqrt(2.0 * np.pi), 0.0)


def removed_energy(sparsity: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Energy share of the pruned weights per sparsity pattern (codes of SPARSITY_PATTERNS): global magnitude
    order (unstructured), 2 of 4 / 4 of 8 per group, or whole rows (rows of equal norm: E = S)."""
    s = np.asarray(sparsity, dtype=float)
    p = np.asarray(pattern)
    return np.select(
        [p == SPARSITY_PATTERNS.index("2:4"), p == SPARSITY_PATTERNS.index("4:8"), p == SPARSITY_PATTERNS.index("rows")],
        [np.broadcast_to(nm_removed_energy(2, 4), np.shape(s)), np.broadcast_to(nm_removed_energy(4, 8), np.shape(s)),
         s],
        unstructured_removed_energy(s),
    )


def pruning_bits(sparsity: np.ndarray, pattern: np.ndarray, method: np.ndarray, hidden: np.ndarray,
                 k: dict[str, float]) -> np.ndarray:
    """Noise-equivalent bits of pruning: the bit width whose per-row rounding noise (2 ln hidden/3)·4^−P equals the
    pruned energy share, plus the method's offset (`prune_offset_<method>` of the fitted constants, else assumed:
    PRUNE_OFFSET_ASSUMED_BITS)."""
    energy = np.maximum(removed_energy(sparsity, pattern), 1e-30)
    offset = np.zeros(np.shape(method))
    for code, name in enumerate(PRUNING_METHODS[1:], start=1):  # a loop over the methods, not over rows
        bits = k[f"prune_offset_{name}"] if f"prune_offset_{name}" in k else PRUNE_OFFSET_ASSUMED_BITS[name]
        offset = np.where(np.asarray(method) == code, bits, offset)
    return 0.5 * np.log2(rtn_noise_energy(0.0, hidden) / energy) + offset


def kumar_ptq(params: np.ndarray, tokens: np.ndarray, bits: np.ndarray, k: dict[str, float]) -> np.ndarray:
    # Kumar et al. 2024, eq. 2: δ_PTQ = C_T · D^γ_D / N^γ_N · e^{−P_post/γ_post}
    n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    return np.exp(k["ln_C_T"]) * d ** k["gamma_D"] / n ** k["gamma_N"] * np.exp(-np.asarray(bits) / k["gamma_post"])


def weight_ptq_bits(weight_bits: np.ndarray, method: np.ndarray, group_size: np.ndarray, hidden: np.ndarray,
                    k: dict[str, float]) -> np.ndarray:
    """Effective weight bits of a post-training method: nominal + method offset (fitted) + group gain."""
    offset = np.zeros(np.shape(method))
    for code, name in enumerate(QUANT_METHODS):  # a loop over the methods, not over rows
        offset = np.where(np.asarray(method) == code, k.get(f"offset_{name}", 0.0), offset)
    return np.asarray(weight_bits, dtype=float) + offset + group_gain_bits(group_size, hidden)


def qat_delta(params, weight_bits, act_bits, kv_bits, law_A, law_alpha) -> np.ndarray:
    """Kumar et al. 2024, eq. 4: N_eff = N·∏_x (1 − e^{−P_x/γ_x}); δ = A·(N_eff^−α − N^−α) with the dense law's
    A, α. A 16-bit tensor is the dense reference and costs nothing (factor 1)."""
    n = np.asarray(params, dtype=float)
    factor = np.ones(np.broadcast_shapes(np.shape(n), np.shape(weight_bits)))
    for bits, gamma in zip((weight_bits, act_bits, kv_bits), KUMAR_QAT_GAMMA, strict=True):
        b = np.asarray(bits, dtype=float)
        # Kumar et al. 2024, eq. 4 factor (1 − e^{−P/γ}), relative to the 16-bit reference
        f = (1.0 - np.exp(-b / gamma)) / (1.0 - np.exp(-16.0 / gamma))
        factor = factor * np.where(b >= 16, 1.0, f)
    return law_A * ((n * factor) ** (-law_alpha) - n ** (-law_alpha))


def capacity_delta(sparsity, params, law_A, law_alpha) -> np.ndarray:
    """What even a fully retrained sparse model loses: Frantar et al. 2023 eq. 1, L ∝ (a_S(1−S)^b_S + c_S)·
    N_nz^−b_N with N_nz = (1−S)·N, as a multiplier on the dense law's parameter term A/N^α."""
    a, b, c, bn = FRANTAR_T5["a_S"], FRANTAR_T5["b_S"], FRANTAR_T5["c_S"], FRANTAR_T5["b_N"]
    s = np.clip(np.asarray(sparsity, dtype=float), 0.0, 0.999)
    ratio = (a * (1.0 - s) ** b + c) / (a + c) * (1.0 - s) ** (-bn)
    return law_A / np.asarray(params, dtype=float) ** law_alpha * np.maximum(ratio - 1.0, 0.0)  # ≥ 0 (rounding)


def loss_delta(c: dict[str, np.ndarray], law_A, law_alpha, k: dict[str, float],
               small: SmallScale | None = None) -> np.ndarray:
    """δ in nats/token for rows of model columns: params, tokens, hidden, weight_bits, act_bits, kv_bits,
    group_size, quant_method, pruning_method, sparsity, sparsity_pattern (codes), loss_scale (multiplies the
    quantization terms) and prune_loss_scale (the pruning terms: each has its own held-out error). With `small`,
    the weight and pruning terms that a small-model curve measured move to that curve at small N (small_scale.py)."""
    n, d, hidden = c["params"], c["tokens"], c["hidden"]
    wb, ab, kb, method = c["weight_bits"], c["act_bits"], c["kv_bits"], c["quant_method"]
    qat = np.asarray(method) == QUANT_METHODS.index("qat")
    none = np.asarray(method) == QUANT_METHODS.index("none")
    w_bits = weight_ptq_bits(wb, method, c["group_size"], hidden, k)
    delta_w = np.where(np.asarray(wb) >= 16, 0.0, kumar_ptq(n, d, w_bits, k))
    if small is not None and "rtn" in small.weight:
        delta_w = replace(delta_w, weight_rows(method), {"rtn": small.weight["rtn"]}, wb, n, d, small, k)
    # activations and KV cache: the same law, their own (assumed) offsets; SmoothQuant moves the outliers
    a_offset = np.where(np.asarray(method) == QUANT_METHODS.index("smoothquant"), LAW["act_offset_smoothquant"],
                        LAW["act_offset"])
    delta_a = np.where(np.asarray(ab) >= 16, 0.0, kumar_ptq(n, d, np.asarray(ab) + a_offset, k))
    delta_kv = np.where(np.asarray(kb) >= 16, 0.0, kumar_ptq(n, d, np.asarray(kb) + LAW["kv_offset"], k))
    ptq = np.where(none, delta_kv, delta_w + delta_a + delta_kv)
    delta_qat = qat_delta(n, wb, ab, kb, law_A, law_alpha)
    if small is not None and "qat" in small.weight:  # the curve measured weights only: activations and KV keep the law
        weights_only = qat_delta(n, wb, 16.0, 16.0, law_A, law_alpha)
        delta_qat = delta_qat - weights_only + replace(weights_only, weight_rows(method),
                                                       {"qat": small.weight["qat"]}, wb, n, d, small, k)
    quant = np.where(qat, delta_qat, ptq)
    # pruning: the bit width whose per-row rounding noise equals the pruned energy, plus the method's offset
    s, pm = np.asarray(c["sparsity"], dtype=float), np.asarray(c["pruning_method"])
    p_eq = pruning_bits(s, c["sparsity_pattern"], pm, hidden, k)
    pruned = (pm > 0) & (s > 0)
    delta_p = kumar_ptq(n, d, p_eq, k) + capacity_delta(s, n, law_A, law_alpha)
    if small is not None and small.measured_prune():
        delta_p = replace(delta_p, prune_rows(pm, c["sparsity_pattern"]), small.measured_prune(), s, n, d, small, k)
    delta_p = np.where(pruned, delta_p, 0.0)
    return quant * c["loss_scale"] + delta_p * c["prune_loss_scale"]
