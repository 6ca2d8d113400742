"""Energy removed by N:M pruning of Gaussian weights (order statistics of |w|), computed once by quadrature."""

from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np
from scipy.special import ndtr


@lru_cache(maxsize=8)
def nm_removed_energy(n_kept: int, m: int) -> float:
    """Share of the energy in the m − n_kept smallest |w| of every group of m Gaussian weights:
    Σ_j E[X_(j)²]/m over the smallest order statistics, with the order-statistic density
    f_(j)(x) = m!/((j−1)!(m−j)!) F^{j−1} (1−F)^{m−j} f of the half-normal |w| (David & Nagaraja 2003, eq. 2.1.6)."""
    x = np.linspace(0.0, 10.0, 20001)
    f = 2.0 * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)  # half-normal density
    cdf = 2.0 * ndtr(x) - 1.0
    total = 0.0
    for j in range(1, m - n_kept + 1):
        dens = j * comb(m, j) * cdf ** (j - 1) * (1.0 - cdf) ** (m - j) * f
        total += float(np.trapezoid(x * x * dens, x))
    return total / m
