"""Mixture-of-experts loss: the joint dense/MoE scaling law of Ludziejewski et al. 2025 ("Joint MoE Scaling Laws:
Mixture of Experts Can Be Memory Efficient", ICML 2025, arXiv 2502.05172), joined to the product's dense law.

The joint law was fitted on FineWeb-Edu with the GPT-2 tokenizer, so its losses are not the Chinchilla law's.
What transfers is its *relative* gain: an MoE's reducible loss (loss less the irreducible entropy c) divided by the
reducible loss of the dense model (E = 1) of the same active parameters and tokens. The product's MoE loss is the
dense law's irreducible term plus its reducible part at the active parameters times that ratio (docs/quality.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JointMoELaw:
    a: float
    alpha: float
    delta: float
    gamma: float
    b: float
    beta: float
    omega: float
    zeta: float
    e_start: float
    e_max: float
    c: float
    source: str
    active_params_range: tuple[float, float]  # the runs it was fitted on (Appendix E)
    tokens_range: tuple[float, float]
    experts_range: tuple[float, float]
    heldout_rmse: float  # on the held-out set of the 30 lowest-loss runs (§5.2)
    heldout_max_abs: float  # largest absolute error on that set (Figure 5a)


# Ludziejewski et al. 2025, Appendix B, Table 3 ("Fitted coefficients of our joined formula"), as printed
JOINT_MOE = JointMoELaw(
    a=35.91, alpha=-0.1889, delta=-0.2285, gamma=0.0098, b=35.98, beta=-0.1775, omega=0.5529, zeta=-0.0259,
    e_start=2.0732, e_max=290.4521, c=1.3637,
    source="Ludziejewski et al. 2025 (arXiv 2502.05172), eq. 6 with Table 3",
    # Appendix E: 79M to 2.7B active parameters (up to 5.0B total), E in {1, 2, 4, 8, 16, 32}, 500M to 80B tokens
    active_params_range=(7.9e7, 2.7e9), tokens_range=(5e8, 8e10), experts_range=(1.0, 32.0),
    heldout_rmse=0.0039, heldout_max_abs=0.018,
)


def expansion(experts, top_k):
    """The law's E for a top-k MoE: routed experts over experts used per token, the ratio of stored to multiplied
    routed-expert weights. The law was fitted on top-1 Switch layers of dense-FFN-sized experts (§5.1), where this
    is the number of experts; a dense model (0 routed experts) is E = 1."""
    e = np.asarray(experts, dtype=float)
    k = np.maximum(np.asarray(top_k, dtype=float), 1.0)
    return np.where(e > 0, np.maximum(e / k, 1.0), 1.0)


def e_hat(experts, law: JointMoELaw = JOINT_MOE):
    # Ludziejewski et al. 2025 eq. 4 (after Clark et al. 2022): 1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max
    e = np.asarray(experts, dtype=float)
    return 1.0 / (1.0 / (e - 1.0 + 1.0 / (1.0 / law.e_start - 1.0 / law.e_max)) + 1.0 / law.e_max)


def chinchilla_form(experts, law: JointMoELaw = JOINT_MOE):
    """(m, μ, n, ν): the joint law at E experts as L = m·N^μ + n·D^ν + c (the paper's Table 4)."""
    # Ludziejewski et al. 2025 §3: m(E) = a·Ê^δ, μ(E) = α + γ·ln Ê, n(E) = b·Ê^ω, ν(E) = β + ζ·ln Ê
    log_e = np.log(e_hat(experts, law))
    return (law.a * np.exp(law.delta * log_e), law.alpha + law.gamma * log_e,
            law.b * np.exp(law.omega * log_e), law.beta + law.zeta * log_e)


def joint_loss(active_params, tokens, experts, law: JointMoELaw = JOINT_MOE):
    # Ludziejewski et al. 2025 eq. 6: L = a·Ê^δ·N_act^(α + γ ln Ê) + b·Ê^ω·D^(β + ζ ln Ê) + c
    m, mu, n, nu = chinchilla_form(experts, law)
    return m * np.asarray(active_params, dtype=float) ** mu + n * np.asarray(tokens, dtype=float) ** nu + law.c


def reducible_ratio(active_params, tokens, experts, law: JointMoELaw = JOINT_MOE):
    """The MoE's reducible loss over that of the dense model (E = 1) of the same active parameters and tokens."""
    # Ludziejewski et al. 2025 §3: c does not depend on E (the data's entropy), so only L - c is architecture's
    moe = joint_loss(active_params, tokens, experts, law) - law.c
    dense = joint_loss(active_params, tokens, 1.0, law) - law.c
    return moe / dense


def compute_optimal(flops, experts, law: JointMoELaw = JOINT_MOE):
    """(N_act_opt, D_opt) for budgets C = 6·N_act·D at E experts (the paper's Table 1)."""
    m, mu, n, nu = chinchilla_form(experts, law)
    # Hoffmann et al. 2022 eq. 4 with A = m, α = -μ, B = n, β = -ν (Ludziejewski et al. 2025 eq. 7, exponents
    # written there as positive): G = (αA/(βB))^(1/(α+β)), N_opt = G·(C/6)^(β/(α+β)), D_opt = (C/6)/N_opt
    g = (mu * m / (nu * n)) ** (-1.0 / (mu + nu))
    c6 = np.asarray(flops, dtype=float) / 6.0
    n_opt = g * c6 ** (nu / (mu + nu))
    return n_opt, c6 / n_opt


def outside_fit(active_params, tokens, experts, law: JointMoELaw = JOINT_MOE) -> np.ndarray:
    """True where an MoE lies outside the runs the law was fitted on (active parameters, tokens or E)."""
    n, d, e = (np.asarray(x, dtype=float) for x in (active_params, tokens, experts))
    lo_n, hi_n = law.active_params_range
    lo_d, hi_d = law.tokens_range
    return (n < lo_n) | (n > hi_n) | (d < lo_d) | (d > hi_d) | (e > law.experts_range[1])


# the largest dense run of the fit (Appendix E: 2.7B parameters, 9.2B tokens), where the spread below is taken
_LARGEST_RUN = (2.7e9, 9.2e9)


def ratio_sigma(law: JointMoELaw = JOINT_MOE) -> float:
    """One-sigma relative error of the reducible-loss ratio: the law's held-out RMSE of ln L (§5.2, fitted on ln L,
    Appendix B) carried to L - c, at the fit's largest dense run (L / (L - c) ≈ 2 there)."""
    loss_at = float(joint_loss(*_LARGEST_RUN, 1.0, law))
    return law.heldout_rmse * loss_at / (loss_at - law.c)
