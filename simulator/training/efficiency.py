"""Kernel times on one GPU: matrix multiplies with a size-dependent efficiency, and memory-bound passes."""

import numpy as np


def gemm_compute_efficiency(m, n, k_dim, eff_max, dim_half):
    """Fraction of dense peak a GEMM (m×k)·(k×n) sustains when compute-bound.

    A smooth, saturating stand-in for Calculon's A100 system table (Isaev et al. 2023, SC'23: matrix
    efficiency rising from 0.1 to 0.95 with GEMM size): each small dimension wastes tile work,
    eff = eff_max / (1 + d½·(1/m + 1/n + 1/k)).
    """
    return eff_max / (1.0 + dim_half * (1.0 / m + 1.0 / n + 1.0 / k_dim))


class GemmCost:
    """Roofline GEMM timer for one set of device columns; the scale factors are computed once."""

    def __init__(self, elem_bytes, peak_flops, hbm_Bps, eff_max, hbm_eff, dim_half):
        self.s_compute = 2.0 / (peak_flops * eff_max)
        self.s_memory = elem_bytes / (hbm_Bps * hbm_eff)
        self.d_half = dim_half

    def time_s(self, m, n, k_dim, batch=None):
        """(seconds, multiply-adds) of `batch` GEMMs (m×k)·(k×n).

        Calculon (SC'23) 'roofline' op time: max(flops/(peak·eff(size)), bytes/(BW·eff_mem)), with
        bytes = inputs + output (LLM-Viewer roofline_model.py). With S = mk + kn + mn and the
        efficiency above, flops/(peak·eff) = 2·(mnk + d½·S)/(peak·eff_max).
        """
        mn = m * n
        surface = mn + k_dim * (m + n)
        volume = mn * k_dim
        t = np.maximum((volume + self.d_half * surface) * self.s_compute, surface * self.s_memory)
        if batch is None:
            return t, volume
        return t * batch, volume * batch


def memory_pass_s(traffic_bytes, hbm_Bps, hbm_eff):
    # elementwise kernels are bandwidth-bound (Williams et al. 2009 roofline): t = bytes/(BW·eff)
    return traffic_bytes / (hbm_Bps * hbm_eff)
