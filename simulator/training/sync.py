"""Data-parallel gradient synchronisation, stragglers, asynchronous SGD and data sharding."""

from collections.abc import Mapping

import numpy as np

from .codes import SHARDING_SEQUENTIAL, SYNC_ASYNC, SYNC_PS, SYNC_TREE
from .comm import hierarchical_allreduce_s, parameter_server_s
from .constants import DEFAULT_CONSTANTS, TrainingConstants


def zero_traffic_factor(zero_stage):
    # ZeRO §7 (Rajbhandari 2020): stages 0-2 move 2Ψ per step (reduce-scatter + all-gather = all-reduce),
    # stage 3 moves 3Ψ (an extra parameter all-gather), i.e. 1.5×
    return np.where(zero_stage >= 3, 1.5, 1.0)


def dp_sync_s(grad_bytes_per_gpu, dp, ranks_per_node, sync, ps_servers, gpus, zero_stage,
              intra_latency_s, intra_Bps, inter_latency_s, inter_Bps):
    """One step's gradient synchronisation across the dp replicas of one model shard.

    Ring/tree all-reduce are hierarchical (comm.hierarchical_allreduce_s); the parameter server and
    asynchronous SGD push to and pull from S shared servers on the inter-node network, where the
    server links carry every GPU's gradient shard (Li et al. 2014, OSDI: the parameter server).
    """
    message = grad_bytes_per_gpu * zero_traffic_factor(zero_stage)
    allreduce = hierarchical_allreduce_s(message, dp, ranks_per_node, intra_latency_s, intra_Bps,
                                         inter_latency_s, inter_Bps, tree=sync == SYNC_TREE)
    ps = parameter_server_s(message, message * gpus, ps_servers, inter_latency_s, inter_Bps, inter_Bps)
    t = np.where(sync >= SYNC_PS, ps, allreduce)
    return np.where(dp > 1, t, 0.0)


def exposed_sync_s(sync_s, dp_overlap, overlap_window_s):
    # PyTorch DDP (Li et al. 2020, VLDB) overlaps bucketed all-reduce with backward: only the part that
    # does not fit under the last micro-batch's backward, or that the user marks not overlappable, shows
    return sync_s - np.minimum(dp_overlap * sync_s, overlap_window_s)


def straggler_factor(straggler_cv, dp, sync):
    """Extra fraction of the step a synchronous barrier waits for the slowest of dp workers.

    Order statistics of P Gaussian step times: E[max] ≈ μ·(1 + cv·√(2 ln P)) (Cramér 1946; the
    exponential case is Dutta et al. 2018 H_P/μ). Asynchronous SGD has no barrier (Dutta 2018 §4).
    """
    p = np.maximum(dp, 1.0)
    return np.where(sync == SYNC_ASYNC, 0.0, straggler_cv * np.sqrt(2.0 * np.log(p)))


def measured_extra(dp, lo, hi, p_lo, p_hi):
    """A profile's measured extra updates of sequential shards at dp workers: linear in ln P between the fewest
    (p_lo, extra lo) and the most (p_hi, hi) workers it measured, held beyond them; NaN where nothing was measured."""
    span = np.log(np.maximum(p_hi, 1.0)) - np.log(np.maximum(p_lo, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(span > 0, (np.log(np.maximum(dp, 1.0)) - np.log(np.maximum(p_lo, 1.0))) / span, 0.0)
    return lo + (hi - lo) * np.clip(t, 0.0, 1.0)


def updates_multiplier(sync, dp, async_kappa, sharding, k: TrainingConstants = DEFAULT_CONSTANTS,
                       measured: Mapping[str, np.ndarray] | None = None):
    """Factor on the number of optimizer updates (global-batch equivalents) needed for the same loss.

    Asynchronous SGD: U = U0·(1 + κ·s) with mean staleness s ≈ P - 1 (Lian et al.
    2015, Dai et al. 2019 on staleness cost; Dutta et al. 2018 on the error floor). Sequential
    (non-shuffled) shards, assumed: leave a synchronous average unchanged, the global batch still covering
    every shard, but make each stale update non-iid (Hsieh et al. 2020; Bottou 2009): a further
    (1 + penalty·(1 - 1/P)), with the penalty an assumed, adjustable constant. Measured (a calibrated device's
    `seq_*` columns, simulator/data_order.py): (1 + extra(P)) for each way of synchronising, the extra
    interpolated from what calibration measured with real workers (calibration/quality/data_order.py).
    """
    p = np.maximum(dp, 1.0)
    stale = 1.0 + async_kappa * (p - 1.0)
    sequential = (sharding == SHARDING_SEQUENTIAL) & (p > 1.0)
    noniid_async = 1.0 + np.where(sequential, k.noniid_async_penalty * (1.0 - 1.0 / p), 0.0)
    noniid_sync = np.ones_like(p)
    if measured is not None:
        m = measured

        def factor(kind: str, assumed: np.ndarray) -> np.ndarray:
            """The measured factor where this kind was measured, else `assumed`; a measured speed-up is kept (it
            can be real, or noise) but never below half the updates."""
            extra = measured_extra(p, m[f"seq_{kind}_lo"], m[f"seq_{kind}_hi"], m["seq_p_lo"], m["seq_p_hi"])
            return np.where(np.isfinite(extra), np.where(sequential, 1.0 + np.maximum(extra, -0.5), 1.0), assumed)

        noniid_async, noniid_sync = factor("async", noniid_async), factor("sync", noniid_sync)
    return np.where(sync == SYNC_ASYNC, stale * noniid_async, noniid_sync)
