"""Time of one optimizer step: compute, tensor-parallel traffic, pipeline bubble and p2p, gradient sync."""

from dataclasses import dataclass

import numpy as np

from .codes import RECOMPUTE_FULL, RECOMPUTE_SELECTIVE
from .comm import hierarchical_allreduce_s, p2p_s, ring_allgather_s
from .constants import DEFAULT_CONSTANTS, TrainingConstants
from .efficiency import memory_pass_s
from .layer import layer_times
from .layout import batch_layout, stage_layout
from .memory import state_bytes_per_param
from .sync import dp_sync_s, exposed_sync_s, straggler_factor


@dataclass(frozen=True)
class StepTimes:
    compute_s: np.ndarray
    tp_comm_s: np.ndarray
    pp_bubble_s: np.ndarray
    pp_p2p_s: np.ndarray
    dp_exposed_s: np.ndarray
    straggler_s: np.ndarray
    step_time_s: np.ndarray
    optimizer_s: np.ndarray      # the Adam update inside compute_s
    gemm_efficiency: np.ndarray
    first_stage_layers: np.ndarray   # the pipeline split used (layout.stage_split)
    last_stage_layers: np.ndarray
    microbatches: np.ndarray         # m on the data-parallel rank that paces the step
    batch_idle_fraction: np.ndarray  # 1 - B/(dp·m·b)


def microbatches(global_batch, dp, micro_batch):
    # Narayanan 2021 §2.2: m = B/(d·b) micro-batches per pipeline per step; ⌈⌈B/d⌉/b⌉ when b·d does not
    # divide B (layout.batch_layout)
    return batch_layout(global_batch, dp, micro_batch)[0]


def bubble_fraction(pp, microbatches_, interleave):
    # Narayanan 2021 §2.2: bubble / ideal time = (p-1)/m for 1F1B, (p-1)/(v·m) interleaved
    return (pp - 1.0) / (interleave * microbatches_)


def step_times(c, k: TrainingConstants = DEFAULT_CONSTANTS) -> StepTimes:
    """Parts of one optimizer step for input columns `c` (the keys of model.INPUT_KEYS)."""
    tp, pp, dp, v = c["tp"], c["pp"], c["dp"], c["interleave"]
    gpn, recompute = c["gpus_per_node"], c["recompute"]
    peak = c["peak_tflops"] * 1e12
    hbm = c["hbm_GBps"] * 1e9
    intra_Bps = c["intra_GBps"] * 1e9 * k.intra_link_eff
    inter_Bps = c["inter_GBps"] * 1e9 * k.inter_link_eff
    intra_lat, inter_lat = c["intra_latency_s"], c["inter_latency_s"]
    # Narayanan 2021 §2.2: m micro-batches per pipeline; with an uneven batch the busiest rank runs m - 1
    # full ones and a last one of r sequences (layout.batch_layout)
    m, r, idle = batch_layout(c["global_batch"], dp, c["micro_batch"])
    inter_stage = tp * dp >= gpn

    def per_layer(b):
        """(layer times, recompute s, compute s, TP s, p2p hop s) of one layer for micro-batches of b."""
        lt = layer_times(c["seq_len"], b, c["hidden"], c["heads"], c["kv_heads"], c["ffn_hidden"],
                         c["glu"], c["vocab"], tp, c["sequence_parallel"], c["act_bytes"], c["flash_attention"],
                         peak, hbm, c["gemm_eff_max"], c["hbm_eff"], k, c["gemm_dim_half"])
        # Chen et al. 2016 / Korthikanti 2022: full recomputation re-runs the layer forward before its
        # backward; selective re-runs only the attention core
        recompute_s = np.where(recompute >= RECOMPUTE_FULL, lt.fwd_s,
                               np.where(recompute >= RECOMPUTE_SELECTIVE, lt.attn_core_fwd_s, 0.0))
        layer_compute_s = lt.fwd_s + lt.bwd_s + recompute_s
        # Shoeybi 2019 §3: 2 all-reduces of b·s·h forward and 2 backward per layer (SP: RS+AG, same
        # volume, Korthikanti §4.2.2); full recomputation repeats the forward pair
        act_msg = c["seq_len"] * b * c["hidden"] * c["act_bytes"]
        n_tp = 4.0 + np.where(recompute >= RECOMPUTE_FULL, 2.0, 0.0)
        tp_one = hierarchical_allreduce_s(act_msg, tp, gpn, intra_lat, intra_Bps, inter_lat, inter_Bps)
        layer_tp_s = np.where(tp > 1, n_tp * tp_one, 0.0)
        # Narayanan §4.1 scatter/gather: each TP rank sends b·s·h/t to the next stage, which all-gathers
        # it over NVLink (not needed with SP, whose activations stay split)
        hop_s = p2p_s(act_msg / tp, np.where(inter_stage, inter_lat, intra_lat),
                      np.where(inter_stage, inter_Bps, intra_Bps))
        hop_s = hop_s + np.where(c["sequence_parallel"] > 0, 0.0, ring_allgather_s(act_msg, tp, intra_lat,
                                                                                   intra_Bps))
        return lt, recompute_s, layer_compute_s, layer_tp_s, hop_s

    lt, recompute_s, layer_compute_s, layer_tp_s, hop_s = per_layer(c["micro_batch"])

    # Narayanan 2021 §2.2: the pipeline runs at the pace of its slowest stage; the first stage also
    # runs the embedding (no kernel in layer_times: a gather, not modelled, so 0 s), the last the
    # logits and the loss (lt.logits_s); the split is given or balanced (layout.stage_split)
    lay = stage_layout(c["layers"], pp, c.get("first_stage_layers", np.nan), c.get("last_stage_layers", np.nan),
                       layer_compute_s + layer_tp_s, 0.0, lt.logits_s, interleave=v)
    mb_compute_s = lay.pacing_layers * layer_compute_s + np.where(lay.pacing_last, lt.logits_s, 0.0)
    mb_tp_s = lay.pacing_layers * layer_tp_s
    # the last micro-batch, of r < b sequences, on the same split (its slowest stage may differ): one
    # more vectorised pass, skipped when every row divides
    lt_r, recompute_r_s, mb_compute_r_s, mb_tp_r_s, hop_r_s = lt, recompute_s, mb_compute_s, mb_tp_s, hop_s
    if np.any(r != c["micro_batch"]):
        lt_r, recompute_r_s, layer_compute_r_s, layer_tp_r_s, hop_r_s = per_layer(r)
        lay_r = stage_layout(c["layers"], pp, lay.first, lay.last, layer_compute_r_s + layer_tp_r_s, 0.0,
                             lt_r.logits_s)
        mb_compute_r_s = lay_r.pacing_layers * layer_compute_r_s + np.where(lay_r.pacing_last, lt_r.logits_s, 0.0)
        mb_tp_r_s = lay_r.pacing_layers * layer_tp_r_s

    # Adam step over this GPU's (possibly ZeRO-sharded) optimizer state, bandwidth-bound
    opt_params = c["params"] / (tp * pp) / np.where(c["zero_stage"] >= 1, dp, 1.0)
    optimizer_s = memory_pass_s(opt_params * k.optimizer_bytes_per_param, hbm, c["hbm_eff"])
    # (m - 1) full micro-batches and one of r sequences (m·full when r = b: the difference is 0)
    compute_s = m * mb_compute_s + (mb_compute_r_s - mb_compute_s) + optimizer_s
    tp_comm_s = m * mb_tp_s + (mb_tp_r_s - mb_tp_s)

    # Narayanan 2021 §2.2: bubble = (p-1)/(v·m) of the ideal time of m full micro-batches
    pp_bubble_s = bubble_fraction(pp, m, v) * m * (mb_compute_s + mb_tp_s)
    # Narayanan §4.1: forward and backward hops per micro-batch and model chunk, plus the p-1 hops of
    # fill and drain; the last micro-batch's hops carry r sequences
    pp_p2p_s = np.where(pp > 1, 2.0 * (v * m + pp - 1.0) * hop_s + 2.0 * v * (hop_r_s - hop_s), 0.0)

    _, grad_bytes, _ = state_bytes_per_param(c["param_bytes"])
    grad_bytes_per_gpu = c["params"] / (tp * pp) * grad_bytes
    # Megatron rank order (tp fastest, then dp): a node holds G/t ranks of each DP group
    dp_per_node = np.clip(gpn / tp, 1.0, dp)
    sync_s = dp_sync_s(grad_bytes_per_gpu, dp, dp_per_node, c["sync"], c["ps_servers"], c["gpus"],
                       c["zero_stage"], intra_lat, intra_Bps, inter_lat, inter_Bps)
    # Zhao et al. 2023 (PyTorch FSDP, VLDB) §3: ZeRO-3 all-gathers the parameters before each micro-batch's
    # forward and again before its backward, and reduce-scatters its gradients (3Ψ, ZeRO §7): m times per step
    # under gradient accumulation (whole parameters, whatever the micro-batch size); its prefetching overlaps
    # them with the step's compute (FSDP §3.3)
    zero3 = c["zero_stage"] >= 3
    sync_s = sync_s * np.where(zero3, m, 1.0)
    # Li et al. 2020 (DDP §3.2.3): the sync overlaps the backward of the last (r-sequence) micro-batch
    window_s = np.where(zero3, compute_s - optimizer_s, lay.pacing_layers * (lt_r.bwd_s + recompute_r_s))
    dp_exposed_s = exposed_sync_s(sync_s, c["dp_overlap"], window_s)

    work_s = compute_s + tp_comm_s + pp_bubble_s + pp_p2p_s
    straggler_s = straggler_factor(c["straggler_cv"], dp, c["sync"]) * work_s
    step_s = work_s + dp_exposed_s + straggler_s
    return StepTimes(compute_s, tp_comm_s, pp_bubble_s, pp_p2p_s, dp_exposed_s, straggler_s, step_s,
                     optimizer_s, lt.gemm_efficiency, lay.first, lay.last, m, idle)
