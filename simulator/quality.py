"""Scaling-law quality: loss for (N, D) and the compute-optimal split of a FLOP budget (vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScalingLaw:
    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str
    params_range: tuple[float, float]  # the models it was fitted on
    tokens_range: tuple[float, float]


# Hoffmann et al. 2022, §1 and §3: over 400 models of 70M to over 16B parameters trained on 5B to 500B tokens
_CHINCHILLA_PARAMS, _CHINCHILLA_TOKENS = (7e7, 1.6e10), (5e9, 5e11)
LAWS: dict[str, ScalingLaw] = {
    # Hoffmann et al. 2022 (arXiv 2203.15556), Approach 3, appendix D.2, as printed in the paper
    "chinchilla": ScalingLaw("chinchilla", 1.69, 406.4, 410.7, 0.34, 0.28, "Hoffmann et al. 2022, App. D.2 (Approach 3)",
                             _CHINCHILLA_PARAMS, _CHINCHILLA_TOKENS),
    # Besiroglu et al. 2024 (arXiv 2404.10102), Epoch AI refit of Approach 3 on the paper's own data
    "epoch": ScalingLaw("epoch", 1.8172, 482.01, 2085.43, 0.3478, 0.3658, "Besiroglu et al. 2024 (Epoch AI refit)",
                        _CHINCHILLA_PARAMS, _CHINCHILLA_TOKENS),
}


def get_law(name: str) -> ScalingLaw:
    try:
        return LAWS[name]
    except KeyError:
        raise ValueError(f"quality.law = {name!r}: allowed values are {', '.join(LAWS)}") from None


def loss(params, tokens, law: ScalingLaw):
    # Hoffmann et al. 2022, eq. 2: L(N, D) = E + A/N^α + B/D^β
    n = np.asarray(params, dtype=float)
    d = np.asarray(tokens, dtype=float)
    return law.E + law.A / n**law.alpha + law.B / d**law.beta


def compute_optimal(flops, law: ScalingLaw):
    """Return (N_opt, D_opt) for FLOP budgets C, with C = 6·N·D."""
    c = np.asarray(flops, dtype=float)
    a, b = law.alpha, law.beta
    # Hoffmann et al. 2022, eq. 4: G = (αA/(βB))^(1/(α+β)); N_opt = G·(C/6)^(β/(α+β)); D_opt = (C/6)/N_opt
    g = (a * law.A / (b * law.B)) ** (1.0 / (a + b))
    n_opt = g * (c / 6.0) ** (b / (a + b))
    return n_opt, (c / 6.0) / n_opt
