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
