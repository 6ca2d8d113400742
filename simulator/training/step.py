"""Time of one optimizer step: compute, tensor-parallel traffic, pipeline bubble and p2p, gradient sync."""

from dataclasses import dataclass

import numpy as np

from simulator.architecture import routed_expert_params

from .codes import RECOMPUTE_FULL, RECOMPUTE_SELECTIVE
from .comm import hierarchical_allreduce_s, p2p_s, ring_allgather_s
from .constants import DEFAULT_CONSTANTS, TrainingConstants
from .efficiency import GemmCost, memory_pass_s
from .layer import layer_times
from .layout import batch_layout, stage_layout
from .memory import state_bytes_per_param
from .moe import a2a_layer_s, cp_ring_s, moe_ffn_times, moe_fraction
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
    a2a_s: np.ndarray = 0.0          # expert-parallel all-to-all (MoE dispatch and combine)
    cp_comm_s: np.ndarray = 0.0      # context-parallel ring traffic not hidden behind attention


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
    cp = c["cp"]
    inter_stage = tp * cp * dp >= gpn
    moe = bool(np.any(c["moe_experts"] > 0))
    full = recompute >= RECOMPUTE_FULL
    attn_peak = c["attn_peak_tflops"] * 1e12

    def per_layer(b):
        """(layer times, recompute s, compute s, TP s, p2p hop s, all-to-all s, CP ring s) of one layer (MoE
        layers spread evenly: moe.moe_fraction of each) for micro-batches of b."""
        lt = layer_times(c["seq_len"], b, c["hidden"], c["heads"], c["kv_heads"], c["ffn_hidden"],
                         c["glu"], c["vocab"], tp, c["sequence_parallel"], c["act_bytes"], c["flash_attention"],
                         peak, hbm, c["gemm_eff_max"], c["hbm_eff"], k, c["gemm_dim_half"],
                         shape=None if c.get("_all_standard", False) else c, cp=cp,
                         attn_peak_flops=attn_peak, fp8=c["gemm_fp8"])
        # Chen et al. 2016 / Korthikanti 2022: full recomputation re-runs the layer forward before its
        # backward; selective re-runs only the attention core
        recompute_s = np.where(full, lt.fwd_s, np.where(recompute >= RECOMPUTE_SELECTIVE, lt.attn_core_fwd_s, 0.0))
        layer_compute_s = lt.fwd_s + lt.bwd_s + recompute_s
        a2a_s = cp_s = 0.0
        if moe:
            # an MoE layer's FFN in place of the dense MLP, forward (twice under full recomputation) and backward
            gemm = GemmCost(c["act_bytes"], peak, hbm, c["gemm_eff_max"], c["hbm_eff"], c["gemm_dim_half"]).time_s
            moe_fwd, moe_bwd, _ = moe_ffn_times(c, b, gemm, 1.0 / (hbm * c["hbm_eff"]), c["act_bytes"])
            frac = moe_fraction(c)
            delta = (moe_fwd - lt.ffn_fwd_s) * np.where(full, 2.0, 1.0) + (moe_bwd - lt.ffn_bwd_s)
            layer_compute_s = layer_compute_s + np.where(frac > 0, frac * delta, 0.0)
            a2a_s = np.where(frac > 0, frac * a2a_layer_s(c, b, c["act_bytes"], gpn, intra_lat, intra_Bps, inter_lat,
                                                          inter_Bps), 0.0)
        if np.any(cp > 1):
            cp_s = cp_ring_s(c, b, c["act_bytes"], lt.attn_fwd_s, lt.attn_bwd_s, gpn, intra_lat, intra_Bps,
                             inter_lat, inter_Bps)
        # Shoeybi 2019 §3: 2 all-reduces of b·s·h forward and 2 backward per layer (SP: RS+AG, same
        # volume, Korthikanti §4.2.2); full recomputation repeats the forward pair; each GPU's s/cp tokens
        act_msg = c["seq_len"] / cp * b * c["hidden"] * c["act_bytes"]
        n_tp = 4.0 + np.where(recompute >= RECOMPUTE_FULL, 2.0, 0.0)
        tp_one = hierarchical_allreduce_s(act_msg, tp, gpn, intra_lat, intra_Bps, inter_lat, inter_Bps)
        layer_tp_s = np.where(tp > 1, n_tp * tp_one, 0.0)
        # Narayanan §4.1 scatter/gather: each TP rank sends b·s·h/t to the next stage, which all-gathers
        # it over NVLink (not needed with SP, whose activations stay split)
        hop_s = p2p_s(act_msg / tp, np.where(inter_stage, inter_lat, intra_lat),
                      np.where(inter_stage, inter_Bps, intra_Bps))
        hop_s = hop_s + np.where(c["sequence_parallel"] > 0, 0.0, ring_allgather_s(act_msg, tp, intra_lat,
                                                                                   intra_Bps))
        return lt, recompute_s, layer_compute_s, layer_tp_s, hop_s, a2a_s, cp_s

    lt, recompute_s, layer_compute_s, layer_tp_s, hop_s, layer_a2a_s, layer_cp_s = per_layer(c["micro_batch"])
    # expert all-to-all and context-parallel ring: exact zeros for a dense model without cp (x + 0.0 is x)
    layer_other_s = layer_a2a_s + layer_cp_s

    # Narayanan 2021 §2.2: the pipeline runs at the pace of its slowest stage; the first stage also
    # runs the embedding (no kernel in layer_times: a gather, not modelled, so 0 s), the last the
    # logits and the loss (lt.logits_s); the split is given or balanced (layout.stage_split)
    lay = stage_layout(c["layers"], pp, c.get("first_stage_layers", np.nan), c.get("last_stage_layers", np.nan),
                       layer_compute_s + layer_tp_s + layer_other_s, 0.0, lt.logits_s, interleave=v)
    mb_compute_s = lay.pacing_layers * layer_compute_s + np.where(lay.pacing_last, lt.logits_s, 0.0)
    mb_tp_s = lay.pacing_layers * layer_tp_s
    mb_a2a_s, mb_cp_s = lay.pacing_layers * layer_a2a_s, lay.pacing_layers * layer_cp_s
    # the last micro-batch, of r < b sequences, on the same split (its slowest stage may differ): one
    # more vectorised pass, skipped when every row divides
    lt_r, recompute_r_s, mb_compute_r_s, mb_tp_r_s, hop_r_s = lt, recompute_s, mb_compute_s, mb_tp_s, hop_s
    mb_a2a_r_s, mb_cp_r_s = mb_a2a_s, mb_cp_s
    if np.any(r != c["micro_batch"]):
        lt_r, recompute_r_s, layer_compute_r_s, layer_tp_r_s, hop_r_s, layer_a2a_r_s, layer_cp_r_s = per_layer(r)
        lay_r = stage_layout(c["layers"], pp, lay.first, lay.last,
                             layer_compute_r_s + layer_tp_r_s + layer_a2a_r_s + layer_cp_r_s, 0.0, lt_r.logits_s)
        mb_compute_r_s = lay_r.pacing_layers * layer_compute_r_s + np.where(lay_r.pacing_last, lt_r.logits_s, 0.0)
        mb_tp_r_s = lay_r.pacing_layers * layer_tp_r_s
        mb_a2a_r_s, mb_cp_r_s = lay_r.pacing_layers * layer_a2a_r_s, lay_r.pacing_layers * layer_cp_r_s

    # Adam step over this GPU's (possibly ZeRO-sharded) optimizer state, bandwidth-bound; routed experts are split
    # over ep more GPUs and their states sharded over the dp/ep expert-data-parallel ones (Megatron-Core)
    routed = routed_expert_params(c) if moe else 0.0
    ep, zero = c["ep"], c["zero_stage"]
    opt_params = ((c["params"] - routed) / (tp * pp) / np.where(zero >= 1, dp, 1.0)
                  + routed / (tp * ep * pp) / np.where(zero >= 1, dp / ep, 1.0))
    optimizer_s = memory_pass_s(opt_params * k.optimizer_bytes_per_param, hbm, c["hbm_eff"])
    # (m - 1) full micro-batches and one of r sequences (m·full when r = b: the difference is 0)
    compute_s = m * mb_compute_s + (mb_compute_r_s - mb_compute_s) + optimizer_s
    tp_comm_s = m * mb_tp_s + (mb_tp_r_s - mb_tp_s)
    a2a_s = m * mb_a2a_s + (mb_a2a_r_s - mb_a2a_s)
    cp_comm_s = m * mb_cp_s + (mb_cp_r_s - mb_cp_s)

    # Narayanan 2021 §2.2: bubble = (p-1)/(v·m) of the ideal time of m full micro-batches
    pp_bubble_s = bubble_fraction(pp, m, v) * m * (mb_compute_s + mb_tp_s + mb_a2a_s + mb_cp_s)
    # Narayanan §4.1: forward and backward hops per micro-batch and model chunk, plus the p-1 hops of
    # fill and drain; the last micro-batch's hops carry r sequences
    pp_p2p_s = np.where(pp > 1, 2.0 * (v * m + pp - 1.0) * hop_s + 2.0 * v * (hop_r_s - hop_s), 0.0)

    _, grad_bytes, _ = state_bytes_per_param(c["param_bytes"])
    grad_bytes_per_gpu = (c["params"] - routed) / (tp * pp) * grad_bytes
    # Megatron rank order (tp fastest, then cp, then dp): a node holds G/t ranks of each DP×CP group, over which
    # the gradients are reduced (Megatron-Core reduces over data and context parallel ranks)
    dp_cp = dp * cp
    dp_per_node = np.clip(gpn / tp, 1.0, dp_cp)
    sync_s = dp_sync_s(grad_bytes_per_gpu, dp_cp, dp_per_node, c["sync"], c["ps_servers"], c["gpus"],
                       c["zero_stage"], intra_lat, intra_Bps, inter_lat, inter_Bps)
    if moe:
        # the routed experts' gradients over their dp·cp/ep expert-data-parallel ranks, tp·cp·ep apart
        edp = dp_cp / ep
        expert_sync_s = dp_sync_s(routed / (tp * ep * pp) * grad_bytes, edp, np.clip(gpn / (tp * cp * ep), 1.0, edp),
                                  c["sync"], c["ps_servers"], c["gpus"], zero, intra_lat, intra_Bps, inter_lat,
                                  inter_Bps)
        sync_s = sync_s + np.where(routed > 0, expert_sync_s, 0.0)
    # Zhao et al. 2023 (PyTorch FSDP, VLDB) §3: ZeRO-3 all-gathers the parameters before each micro-batch's
    # forward and again before its backward, and reduce-scatters its gradients (3Ψ, ZeRO §7): m times per step
    # under gradient accumulation (whole parameters, whatever the micro-batch size); its prefetching overlaps
    # them with the step's compute (FSDP §3.3)
    zero3 = c["zero_stage"] >= 3
    sync_s = sync_s * np.where(zero3, m, 1.0)
    # Li et al. 2020 (DDP §3.2.3): the sync overlaps the backward of the last (r-sequence) micro-batch
    window_s = np.where(zero3, compute_s - optimizer_s, lay.pacing_layers * (lt_r.bwd_s + recompute_r_s))
    dp_exposed_s = exposed_sync_s(sync_s, c["dp_overlap"], window_s)

    work_s = compute_s + tp_comm_s + pp_bubble_s + pp_p2p_s + a2a_s + cp_comm_s
    straggler_s = straggler_factor(c["straggler_cv"], dp, c["sync"]) * work_s
    step_s = work_s + dp_exposed_s + straggler_s
    return StepTimes(compute_s, tp_comm_s, pp_bubble_s, pp_p2p_s, dp_exposed_s, straggler_s, step_s,
                     optimizer_s, lt.gemm_efficiency, lay.first, lay.last, m, idle, a2a_s, cp_comm_s)
