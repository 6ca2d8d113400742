"""Time of one engine step of a replica on a per-operation roofline (LLM-Viewer, Yuan et al. 2024, arXiv
2402.16363: each operation takes max(FLOPs / compute, bytes / bandwidth), and the operations' times add).

A step of continuous batching (Orca; chunked prefill, Sarathi-Serve, Agrawal et al. 2024, OSDI) carries one new
token of each decoding sequence plus any prompts admitted in it; the same function times a lone prefill (TTFT).
Tensor parallelism (Megatron, Shoeybi et al. 2019) splits every matrix and the KV cache over `tp` GPUs and adds
two all-reduces of the activations per layer. A mixture-of-experts replica (serving/experts.py) shards its routed
experts over all its GPUs (expert parallelism × expert tensor parallelism), reads only the experts a step touches
and, with data-parallel attention (`attn_dp` > 1: each GPU holds the attention weights and its own requests), moves
tokens to the experts and back by all-to-all. Every term is timed on the busiest GPU. The MoE fields default to a
dense replica, whose step they leave bit for bit as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.serving.experts import all_to_all_s, expert_step_s
from simulator.training.comm import ring_allreduce_s
from simulator.training.constants import DEFAULT_CONSTANTS
from simulator.training.efficiency import gemm_compute_efficiency

RESIDUAL_BYTES = 2.0  # the residual stream and elementwise kernels stay 16-bit (FP8 recipes quantise GEMM inputs)


@dataclass(frozen=True)
class Replica:
    """One replica's model and hardware, as arrays (one entry per row)."""

    layers: np.ndarray
    hidden: np.ndarray
    heads: np.ndarray
    ffn_hidden: np.ndarray     # MLP width the elementwise passes see (an MoE layer: (k + shared) experts' width)
    glu: np.ndarray
    vocab: np.ndarray
    params: np.ndarray         # weights every token multiplies (MoE: all but the routed experts; one vocab table)
    model_bytes: np.ndarray    # weights of the whole model (MoE: every expert)
    kv_token_bytes: np.ndarray  # KV cache per token of context, whole model
    tp: np.ndarray             # GPUs per replica
    peak_flops: np.ndarray     # per GPU, at the compute dtype
    gemm_eff_max: np.ndarray
    gemm_dim_half: np.ndarray
    hbm_Bps: np.ndarray        # per GPU, datasheet
    mem_eff: np.ndarray        # share of hbm_Bps a streaming (decode) kernel reaches
    kv_eff: np.ndarray         # share of hbm_Bps decode attention reads the KV cache at
    elem_eff: np.ndarray       # share of hbm_Bps the elementwise passes (norms, activations, adds) reach
    intra_Bps: np.ndarray      # per GPU, one direction, datasheet
    intra_latency_s: np.ndarray
    overhead_s: np.ndarray     # fixed time per step
    # mixture of experts and its layout; the defaults are a dense replica (terms exactly 0, shapes as before)
    attn_dp: np.ndarray | float = 1.0       # GPUs attention is data-parallel over (tp with attention DP, else 1)
    kv_split: np.ndarray | float = 1.0      # 1: tensor parallelism splits the KV cache (by heads); 0: every GPU
    #                                         holds it whole (MLA's latent is one per token, DeepSeek-V2 §2.1.2)
    attn_width: np.ndarray | float = 1.0    # decode attention FLOPs' width ÷ hidden (heads·head_dim; MLA absorbed)
    prefill_attn_width: np.ndarray | float = 1.0  # prefill attention FLOPs' width ÷ hidden
    routed_bytes: np.ndarray | float = 0.0  # weights of the routed experts (a share of model_bytes)
    moe_layers: np.ndarray | float = 0.0
    experts: np.ndarray | float = 0.0       # routed experts per MoE layer
    top_k: np.ndarray | float = 1.0
    expert_params: np.ndarray | float = 0.0  # one expert of one layer
    expert_width: np.ndarray | float = 0.0
    ep: np.ndarray | float = 1.0            # expert-parallel ranks
    imbalance: np.ndarray | float = 1.0     # busiest EP rank's tokens ÷ the mean (1 where ep = 1)
    moe_eff: np.ndarray | float = 1.0       # the MoE layer's speed relative to its experts' GEMM roofline
    a2a_eff: np.ndarray | float = 1.0       # all-to-all's share of the all-reduce's link rate
    dispatch_bytes: np.ndarray | float = 2.0  # bytes per element the dispatch sends (the activations' width)

    @property
    def attn_tp(self):
        """GPUs each attention layer (and every non-expert matrix) is split over: tp ÷ attention-DP width."""
        return self.tp / self.attn_dp

    @property
    def kv_div(self):
        """GPUs one sequence's KV cache is split over."""
        return np.where(np.asarray(self.kv_split) > 0, self.attn_tp, 1.0)

    @property
    def weights_per_gpu_bytes(self):
        """The busiest GPU's weights: the non-expert ones split by attention's tensor parallelism, the routed
        experts over every GPU of the replica."""
        return (self.model_bytes - self.routed_bytes) / self.attn_tp + self.routed_bytes / self.tp


@dataclass(frozen=True)
class StepTime:
    total_s: np.ndarray
    linear_s: np.ndarray       # the weight matrices: max(GEMM compute, weight streaming)
    attention_s: np.ndarray    # decode attention (KV streaming) + prefill attention (compute)
    elementwise_s: np.ndarray
    allreduce_s: np.ndarray
    compute_bound: np.ndarray  # the linear layers are compute-bound at this step
    experts_s: np.ndarray      # the routed experts' matrices (0 for a dense model)
    alltoall_s: np.ndarray     # the MoE dispatch and combine (0 for a dense model or tensor-parallel attention)


def step_time(r: Replica, decode_seqs, context_avg, prefill_tokens, prefill_seqs, prompt_tokens,
              prefill_spread: bool = True) -> StepTime:
    """One step: `decode_seqs` sequences each add a token over `context_avg` tokens of KV; `prefill_tokens`
    prompt tokens of `prefill_seqs` prompts of length `prompt_tokens` are processed alongside. With data-parallel
    attention the decoding sequences are spread over the ranks, and so are the prompts where `prefill_spread`
    (a steady stream: the scheduler balances them, TensorRT-LLM's attention_dp_config.enable_balance), not where a
    lone prompt runs on one rank (prefill_alone)."""
    k = DEFAULT_CONSTANTS
    d = r.attn_dp
    d_prefill = d if prefill_spread else 1.0
    tokens = decode_seqs + prefill_tokens  # the replica's: every one reaches the experts
    local = decode_seqs / d + prefill_tokens / d_prefill  # the busiest attention rank's tokens
    sampled = decode_seqs / d + prefill_seqs / d_prefill
    a_tp = r.attn_tp
    embed = r.vocab * r.hidden  # tied input/output embedding: the head reads it, the lookup costs no FLOPs
    # LLM-Viewer linear layer: 2·ic·oc FLOPs per token; logits only for the tokens that sample (decode + last prompt)
    flops = 2.0 * (r.params - embed) * local + 2.0 * embed * sampled
    eff = gemm_compute_efficiency(np.maximum(local, 1.0), r.hidden / a_tp, r.hidden, r.gemm_eff_max, r.gemm_dim_half)
    stream_Bps = r.hbm_Bps * r.mem_eff
    dense_bytes = r.model_bytes - r.routed_bytes
    linear_s = np.maximum(flops / a_tp / (r.peak_flops * eff), dense_bytes / a_tp / stream_Bps)
    # decode attention reads each sequence's K and V once (LLM-Viewer: memory-bound at any batch), at the rate a
    # calibrated device's decode fit measured per cached token (kv_eff; else the streaming rate); its FLOPs are
    # QKᵀ and PV, 2·2·context·width per layer and token (width = hidden for standard attention)
    kv_read = decode_seqs / d * context_avg * r.kv_token_bytes / r.kv_div
    attn_flops = 4.0 * r.layers * (r.hidden * r.attn_width) * (decode_seqs / d) * context_avg / a_tp
    decode_attn_s = np.maximum(kv_read / (r.hbm_Bps * r.kv_eff), attn_flops / (r.peak_flops * k.flash_attn_eff))
    # prefill attention, causal: QKᵀ and PV over half the s×s scores, 2·s²·hidden FLOPs per layer and prompt
    prefill_attn_s = (prefill_seqs / d_prefill * 2.0 * r.layers * (r.hidden * r.prefill_attn_width) * prompt_tokens**2
                      / a_tp / (r.peak_flops * k.flash_attn_eff))
    # elementwise passes per token and layer (Korthikanti et al. 2022 §4.1 forward tensors, no dropout masks):
    # 2 norms and 2 residual adds over hidden (10 reads/writes), attention context and MLP activation over the shards
    per_token = RESIDUAL_BYTES * (10.0 * r.hidden + 2.0 * r.hidden / a_tp + (2.0 + r.glu) * r.ffn_hidden / a_tp)
    elementwise_s = local * r.layers * per_token / (r.hbm_Bps * r.elem_eff)
    # Megatron: one all-reduce after attention and one after the MLP, of tokens × hidden activations; small
    # messages take a one-shot all-reduce (each GPU reads its peers' shards at once: α + (p-1)·n/B, TensorRT-LLM's
    # custom all-reduce), large ones the ring (Thakur et al. 2005): the faster of the two
    message = local * r.hidden * RESIDUAL_BYTES
    link_Bps = r.intra_Bps * k.intra_link_eff
    one_shot = np.where(a_tp > 1, r.intra_latency_s + (a_tp - 1.0) * message / link_Bps, 0.0)
    allreduce_s = 2.0 * r.layers * np.minimum(ring_allreduce_s(message, a_tp, r.intra_latency_s, link_Bps), one_shot)
    attention_s = decode_attn_s + prefill_attn_s
    moe = bool(np.any(np.asarray(r.moe_layers) > 0))  # a dense block skips the (zero) expert terms
    zero = np.zeros_like(linear_s + prefill_attn_s)
    experts_s = _experts_s(r, tokens) if moe else zero
    alltoall_s = _alltoall_s(r, local) if moe else zero
    total = linear_s + attention_s + elementwise_s + allreduce_s + r.overhead_s + experts_s + alltoall_s
    compute_bound = flops / a_tp / (r.peak_flops * eff) >= dense_bytes / a_tp / stream_Bps
    return StepTime(total, linear_s, attention_s, elementwise_s, allreduce_s, compute_bound, experts_s, alltoall_s)


def _experts_s(r: Replica, tokens):
    """The routed experts' time on the busiest GPU for the replica's `tokens` (serving/experts.py; 0 when dense)."""
    return expert_step_s(tokens, moe_layers=r.moe_layers, experts=r.experts, top_k=r.top_k,
                         expert_params=r.expert_params, expert_width=r.expert_width, routed_bytes=r.routed_bytes,
                         gpus=r.tp, ep=r.ep, imbalance=r.imbalance, hidden=r.hidden, peak_flops=r.peak_flops,
                         gemm_eff_max=r.gemm_eff_max, gemm_dim_half=r.gemm_dim_half, moe_eff=r.moe_eff,
                         stream_Bps=r.hbm_Bps * r.mem_eff)


def _alltoall_s(r: Replica, local_tokens):
    """The MoE all-to-all on the busiest GPU for its `local_tokens` (serving/experts.py; 0 when dense)."""
    return all_to_all_s(local_tokens, moe_layers=r.moe_layers, top_k=r.top_k, gpus=r.tp, ep=r.ep,
                        imbalance=r.imbalance, hidden=r.hidden, dispatch_bytes=r.dispatch_bytes,
                        combine_bytes=RESIDUAL_BYTES,
                        link_Bps=r.intra_Bps * DEFAULT_CONSTANTS.intra_link_eff * r.a2a_eff,
                        latency_s=r.intra_latency_s, spread=np.asarray(r.attn_dp, dtype=float))


def fixed_overhead_s(intercept_s: float, weight_bytes: float, stream_Bps: float) -> float:
    """The fixed time per step (launches, Python, scheduling) in a decode fit's intercept t(batch -> 0). At batch
    -> 0 the step above charges only the weights streamed once, weight_bytes / stream_Bps (the linear layers'
    roofline bound, LLM-Viewer; Pope et al. 2022 §2: small-batch decode reads every weight per step), which that
    intercept already contains; what is left is the overhead (never below zero)."""
    return max(float(intercept_s) - float(weight_bytes) / float(stream_Bps), 0.0)


def steady_step(r: Replica, batch, prompt_tokens, output_tokens) -> StepTime:
    """A steady-state step at `batch` decoding sequences (mean context prompt + output/2). Each request's prompt
    is admitted whole in one step (Orca's iteration-level scheduling, Yu et al. 2022; chunked prefill,
    Sarathi-Serve, splits only a prompt longer than its per-step token budget), so batch/output prompts join a
    step on average: the mean step is the decode step plus that many times the time one whole prompt adds to it
    (exact while at most one prompt joins a step, additive beyond). Spreading the prompt tokens evenly over the
    steps instead would hide them under a memory-bound decode step's weight streaming, which no whole prompt
    does."""
    context = prompt_tokens + output_tokens / 2.0
    zero = np.zeros_like(np.asarray(batch * prompt_tokens * output_tokens, dtype=float))
    base = step_time(r, batch, context, zero, zero, prompt_tokens)
    joined = step_time(r, batch, context, zero + prompt_tokens, zero + 1.0, prompt_tokens)
    per_step = batch / output_tokens  # prompts admitted per step (Little's law: each request is admitted once)

    def mean(a, b):
        return a + per_step * (b - a)

    return StepTime(mean(base.total_s, joined.total_s), mean(base.linear_s, joined.linear_s),
                    mean(base.attention_s, joined.attention_s), mean(base.elementwise_s, joined.elementwise_s),
                    mean(base.allreduce_s, joined.allreduce_s), joined.compute_bound,
                    mean(base.experts_s, joined.experts_s), mean(base.alltoall_s, joined.alltoall_s))


def prefill_alone(r: Replica, prompt_tokens) -> StepTime:
    """One prompt prefilled alone (the first token's compute on an idle replica; on one rank where attention is
    data-parallel)."""
    zero = np.zeros_like(np.asarray(prompt_tokens, dtype=float))
    return step_time(r, zero, zero, prompt_tokens, zero + 1.0, prompt_tokens, prefill_spread=False)


class SteadyCurve:
    """`steady_step(r, batch, prompt_tokens, output_tokens).total_s` as a function of the batch alone, for the
    batch searches (serving/capacity.py), which time a step at some 20-40 batches per row: the terms that do not
    depend on the batch are computed once here, and `total_s(batch)` is a few whole-array operations.

    The same sums as `step_time`, regrouped (equal to it to rounding, ~1e-15 relative; tests/test_serving_curve.py):
    a step with d decoding sequences and m = d + prefill tokens (m/D on each of D attention-DP ranks) takes
    max(flops·(1 + d½(1/max(m/D,1) + A/H + 1/H)) / (tp·peak·eff_max), dense weights / (A·HBM·mem_eff))
    + d·(decode attention per sequence) + prefill attention + m·(elementwise per token)
    + 2·layers·min(ring(2·H·m/D bytes), one-shot(2·H·m/D bytes)) + overhead + experts(m) + all-to-all(m/D), with
    flops = 2(P − E)·m + 2E·(d + prompts), A = tp/D; the steady step is the decode step plus batch/output times what
    one whole prompt adds to it (`steady_step`)."""

    def __init__(self, r: Replica, prompt_tokens, output_tokens):
        k = DEFAULT_CONSTANTS
        p = np.asarray(prompt_tokens, dtype=float)
        self.p, self.o = p, np.asarray(output_tokens, dtype=float)
        self.r = r
        self.moe = bool(np.any(np.asarray(r.moe_layers) > 0))  # a dense block skips the (zero) expert terms
        context = p + self.o / 2.0
        embed = r.vocab * r.hidden
        d, a_tp = r.attn_dp, r.attn_tp
        self.d = d
        self.two_body = 2.0 * (r.params - embed)  # FLOPs per token of the non-embedding weights
        self.two_embed = 2.0 * embed  # FLOPs per sampled token of the output head
        self.d_half = r.gemm_dim_half
        self.inv_nk = a_tp / r.hidden + 1.0 / r.hidden  # 1/n + 1/k of the GEMMs (n = H/A, k = H)
        self.scale = 1.0 / (r.tp * r.peak_flops * r.gemm_eff_max)
        self.weights_s = (r.model_bytes - r.routed_bytes) / a_tp / (r.hbm_Bps * r.mem_eff)
        per_seq = np.maximum(context * r.kv_token_bytes / r.kv_div / d / (r.hbm_Bps * r.kv_eff),
                             4.0 * r.layers * (r.hidden * r.attn_width) * context / r.tp
                             / (r.peak_flops * k.flash_attn_eff))
        per_token = RESIDUAL_BYTES * (10.0 * r.hidden + 2.0 * r.hidden / a_tp + (2.0 + r.glu) * r.ffn_hidden / a_tp)
        self.elem_s = r.layers * per_token / (r.hbm_Bps * r.elem_eff) / d  # elementwise seconds per token
        self.per_seq_s = per_seq + self.elem_s  # decode attention and elementwise per decoding sequence
        self.prefill_attn_s = (2.0 * r.layers * (r.hidden * r.prefill_attn_width) * p**2 / r.tp
                               / (r.peak_flops * k.flash_attn_eff))
        link_Bps = r.intra_Bps * k.intra_link_eff
        many = a_tp > 1
        # the all-reduces of a step, 2·layers of them, each the faster of the ring and the one-shot: a + b·tokens
        self.ring_a = 2.0 * r.layers * 2.0 * (a_tp - 1.0) * r.intra_latency_s
        self.ring_b = 2.0 * r.layers * 2.0 * (a_tp - 1.0) / a_tp * r.hidden * RESIDUAL_BYTES / link_Bps / d
        self.shot_a = 2.0 * r.layers * np.where(many, r.intra_latency_s, 0.0)
        self.shot_b = 2.0 * r.layers * np.where(many, (a_tp - 1.0) * r.hidden * RESIDUAL_BYTES / link_Bps, 0.0) / d
        self.overhead_s = r.overhead_s

    def _linear_s(self, tokens, flops):
        compute = flops * (1.0 + self.d_half * (1.0 / np.maximum(tokens / self.d, 1.0) + self.inv_nk)) * self.scale
        return np.maximum(compute, self.weights_s)

    def _allreduce_s(self, tokens):
        return np.minimum(self.ring_a + self.ring_b * tokens, self.shot_a + self.shot_b * tokens)

    def _moe_s(self, tokens):
        """The routed experts and the all-to-all for the replica's `tokens` (0, exactly, for a dense block)."""
        if not self.moe:
            return 0.0
        return _experts_s(self.r, tokens) + _alltoall_s(self.r, tokens / self.d)

    def total_s(self, batch):
        """The mean step time at `batch` decoding sequences (as `steady_step(...).total_s`)."""
        b = np.asarray(batch, dtype=float)
        joined_tokens = b + self.p
        decode = self._linear_s(b, (self.two_body + self.two_embed) * b) + self._allreduce_s(b) + self._moe_s(b)
        joined = (self._linear_s(joined_tokens, self.two_body * joined_tokens + self.two_embed * (b + 1.0))
                  + self._allreduce_s(joined_tokens) + self.prefill_attn_s + self.p * self.elem_s
                  + self._moe_s(joined_tokens))
        return decode + b * self.per_seq_s + self.overhead_s + b / self.o * (joined - decode)
