"""Time of one engine step of a replica on a per-operation roofline (LLM-Viewer, Yuan et al. 2024, arXiv
2402.16363: each operation takes max(FLOPs / compute, bytes / bandwidth), and the operations' times add).

A step of continuous batching (Orca; chunked prefill, Sarathi-Serve, Agrawal et al. 2024, OSDI) carries one new
token of each decoding sequence plus any prompts admitted in it; the same function times a lone prefill (TTFT).
Tensor parallelism (Megatron, Shoeybi et al. 2019) splits every matrix and the KV cache over `tp` GPUs and adds
two all-reduces of the activations per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    ffn_hidden: np.ndarray
    glu: np.ndarray
    vocab: np.ndarray
    params: np.ndarray
    model_bytes: np.ndarray    # weights of the whole model
    kv_token_bytes: np.ndarray  # KV cache per token of context, whole model
    tp: np.ndarray             # GPUs per replica (tensor parallel)
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


@dataclass(frozen=True)
class StepTime:
    total_s: np.ndarray
    linear_s: np.ndarray       # the weight matrices: max(GEMM compute, weight streaming)
    attention_s: np.ndarray    # decode attention (KV streaming) + prefill attention (compute)
    elementwise_s: np.ndarray
    allreduce_s: np.ndarray
    compute_bound: np.ndarray  # the linear layers are compute-bound at this step


def step_time(r: Replica, decode_seqs, context_avg, prefill_tokens, prefill_seqs, prompt_tokens) -> StepTime:
    """One step: `decode_seqs` sequences each add a token over `context_avg` tokens of KV; `prefill_tokens`
    prompt tokens of `prefill_seqs` prompts of length `prompt_tokens` are processed alongside."""
    k = DEFAULT_CONSTANTS
    tokens = decode_seqs + prefill_tokens
    embed = r.vocab * r.hidden  # tied input/output embedding: the head reads it, the lookup costs no FLOPs
    # LLM-Viewer linear layer: 2·ic·oc FLOPs per token; logits only for the tokens that sample (decode + last prompt)
    flops = 2.0 * (r.params - embed) * tokens + 2.0 * embed * (decode_seqs + prefill_seqs)
    eff = gemm_compute_efficiency(np.maximum(tokens, 1.0), r.hidden / r.tp, r.hidden, r.gemm_eff_max, r.gemm_dim_half)
    stream_Bps = r.hbm_Bps * r.mem_eff
    linear_s = np.maximum(flops / r.tp / (r.peak_flops * eff), r.model_bytes / r.tp / stream_Bps)
    # decode attention reads each sequence's K and V once (LLM-Viewer: memory-bound at any batch), at the rate a
    # calibrated device's decode fit measured per cached token (kv_eff; else the streaming rate); its FLOPs are
    # QKᵀ and PV, 2·2·context·hidden per layer and token
    kv_read = decode_seqs * context_avg * r.kv_token_bytes / r.tp
    attn_flops = 4.0 * r.layers * r.hidden * decode_seqs * context_avg / r.tp
    decode_attn_s = np.maximum(kv_read / (r.hbm_Bps * r.kv_eff), attn_flops / (r.peak_flops * k.flash_attn_eff))
    # prefill attention, causal: QKᵀ and PV over half the s×s scores, 2·s²·hidden FLOPs per layer and prompt
    prefill_attn_s = prefill_seqs * 2.0 * r.layers * r.hidden * prompt_tokens**2 / r.tp / (r.peak_flops * k.flash_attn_eff)
    # elementwise passes per token and layer (Korthikanti et al. 2022 §4.1 forward tensors, no dropout masks):
    # 2 norms and 2 residual adds over hidden (10 reads/writes), attention context and MLP activation over the shards
    per_token = RESIDUAL_BYTES * (10.0 * r.hidden + 2.0 * r.hidden / r.tp + (2.0 + r.glu) * r.ffn_hidden / r.tp)
    elementwise_s = tokens * r.layers * per_token / (r.hbm_Bps * r.elem_eff)
    # Megatron: one all-reduce after attention and one after the MLP, of tokens × hidden activations; small
    # messages take a one-shot all-reduce (each GPU reads its peers' shards at once: α + (p-1)·n/B, TensorRT-LLM's
    # custom all-reduce), large ones the ring (Thakur et al. 2005): the faster of the two
    message = tokens * r.hidden * RESIDUAL_BYTES
    link_Bps = r.intra_Bps * k.intra_link_eff
    one_shot = np.where(r.tp > 1, r.intra_latency_s + (r.tp - 1.0) * message / link_Bps, 0.0)
    allreduce_s = 2.0 * r.layers * np.minimum(ring_allreduce_s(message, r.tp, r.intra_latency_s, link_Bps), one_shot)
    attention_s = decode_attn_s + prefill_attn_s
    total = linear_s + attention_s + elementwise_s + allreduce_s + r.overhead_s
    compute_bound = flops / r.tp / (r.peak_flops * eff) >= r.model_bytes / r.tp / stream_Bps
    return StepTime(total, linear_s, attention_s, elementwise_s, allreduce_s, compute_bound)


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
                    mean(base.allreduce_s, joined.allreduce_s), joined.compute_bound)


def prefill_alone(r: Replica, prompt_tokens) -> StepTime:
    """One prompt prefilled alone (the first token's compute on an idle replica)."""
    zero = np.zeros_like(np.asarray(prompt_tokens, dtype=float))
    return step_time(r, zero, zero, prompt_tokens, zero + 1.0, prompt_tokens)


class SteadyCurve:
    """`steady_step(r, batch, prompt_tokens, output_tokens).total_s` as a function of the batch alone, for the
    batch searches (serving/capacity.py), which time a step at some 20-40 batches per row: the terms that do not
    depend on the batch are computed once here, and `total_s(batch)` is a few whole-array operations.

    The same sums as `step_time`, regrouped (equal to it to rounding, ~1e-15 relative; tests/test_serving_curve.py):
    a step with d decoding sequences and m = d + prefill tokens takes
    max(flops·(1 + d½(1/max(m,1) + tp/H + 1/H)) / (tp·peak·eff_max), weights / (tp·HBM·mem_eff))
    + d·(decode attention per sequence) + prefill attention + m·(elementwise per token)
    + 2·layers·min(ring(2·H·m bytes), one-shot(2·H·m bytes)) + overhead, with flops = 2(P − E)·m + 2E·(d + prompts);
    the steady step is the decode step plus batch/output times what one whole prompt adds to it (`steady_step`)."""

    def __init__(self, r: Replica, prompt_tokens, output_tokens):
        k = DEFAULT_CONSTANTS
        p = np.asarray(prompt_tokens, dtype=float)
        self.p, self.o = p, np.asarray(output_tokens, dtype=float)
        context = p + self.o / 2.0
        embed = r.vocab * r.hidden
        self.two_body = 2.0 * (r.params - embed)  # FLOPs per token of the non-embedding weights
        self.two_embed = 2.0 * embed  # FLOPs per sampled token of the output head
        self.d_half = r.gemm_dim_half
        self.inv_nk = r.tp / r.hidden + 1.0 / r.hidden  # 1/n + 1/k of the GEMMs (n = H/tp, k = H)
        self.scale = 1.0 / (r.tp * r.peak_flops * r.gemm_eff_max)
        self.weights_s = r.model_bytes / r.tp / (r.hbm_Bps * r.mem_eff)
        per_seq = np.maximum(context * r.kv_token_bytes / r.tp / (r.hbm_Bps * r.kv_eff),
                             4.0 * r.layers * r.hidden * context / r.tp / (r.peak_flops * k.flash_attn_eff))
        per_token = RESIDUAL_BYTES * (10.0 * r.hidden + 2.0 * r.hidden / r.tp + (2.0 + r.glu) * r.ffn_hidden / r.tp)
        self.elem_s = r.layers * per_token / (r.hbm_Bps * r.elem_eff)  # elementwise seconds per token
        self.per_seq_s = per_seq + self.elem_s  # decode attention and elementwise per decoding sequence
        self.prefill_attn_s = 2.0 * r.layers * r.hidden * p**2 / r.tp / (r.peak_flops * k.flash_attn_eff)
        link_Bps = r.intra_Bps * k.intra_link_eff
        many = r.tp > 1
        # the all-reduces of a step, 2·layers of them, each the faster of the ring and the one-shot: a + b·tokens
        self.ring_a = 2.0 * r.layers * 2.0 * (r.tp - 1.0) * r.intra_latency_s
        self.ring_b = 2.0 * r.layers * 2.0 * (r.tp - 1.0) / r.tp * r.hidden * RESIDUAL_BYTES / link_Bps
        self.shot_a = 2.0 * r.layers * np.where(many, r.intra_latency_s, 0.0)
        self.shot_b = 2.0 * r.layers * np.where(many, (r.tp - 1.0) * r.hidden * RESIDUAL_BYTES / link_Bps, 0.0)
        self.overhead_s = r.overhead_s

    def _linear_s(self, tokens, flops):
        compute = flops * (1.0 + self.d_half * (1.0 / np.maximum(tokens, 1.0) + self.inv_nk)) * self.scale
        return np.maximum(compute, self.weights_s)

    def _allreduce_s(self, tokens):
        return np.minimum(self.ring_a + self.ring_b * tokens, self.shot_a + self.shot_b * tokens)

    def total_s(self, batch):
        """The mean step time at `batch` decoding sequences (as `steady_step(...).total_s`)."""
        b = np.asarray(batch, dtype=float)
        joined_tokens = b + self.p
        decode = self._linear_s(b, (self.two_body + self.two_embed) * b) + self._allreduce_s(b)
        joined = (self._linear_s(joined_tokens, self.two_body * joined_tokens + self.two_embed * (b + 1.0))
                  + self._allreduce_s(joined_tokens) + self.prefill_attn_s + self.p * self.elem_s)
        return decode + b * self.per_seq_s + self.overhead_s + b / self.o * (joined - decode)
