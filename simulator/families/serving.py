"""Serving family: latency, capacity and cost of serving the model under a request rate and latency targets.

Prefill is compute-bound and decode memory-bound on a per-operation roofline (simulator/serving/step.py); the KV
cache sets the largest batch (serving/memory.py); the batch is the largest that fits and meets the targets, the
replicas cover the peak rate, and the latencies are those of the batch the peak rate sustains (Little's law,
serving/capacity.py). Where the weights do not fit, or no batch meets the targets, the figures are NaN and a
warning says what to change. A mixture-of-experts model holds every expert (total parameters) sharded over the
replica's GPUs, computes with its active ones, reads the experts a step touches and, with data-parallel attention,
pays an all-to-all per MoE layer (serving/experts.py, serving/shape.py).
"""

from __future__ import annotations

import numpy as np

from simulator.families.serving_inputs import INPUTS
from simulator.families.serving_rules import RULES, fp4_wanted, has_fp4
from simulator.registry import (
    Columns,
    Family,
    FieldGroup,
    FigureSpec,
    Section,
    Steps,
    once,
)
from simulator.serving.bits import precision_bits, weight_bytes
from simulator.serving.capacity import best_batch, operating_batch, replicas_for
from simulator.serving.constants import HOURS_PER_MONTH, LOW_PRECISION_GEMM_EFF_RATIO, SECONDS_PER_MONTH
from simulator.serving.experts import experts_touched
from simulator.serving.memory import kv_budget_bytes, max_batch
from simulator.serving.shape import replica_shape
from simulator.serving.step import Replica, SteadyCurve, prefill_alone, steady_step

F = FigureSpec
FIGURES = (
    F("serving.ttft_s", "Time to first token", "s", "prefill of one prompt (compute-bound roofline, LLM-Viewer) + "
      "the step it joins, at the batch the peak rate sustains (Little's law)", "lower", ranged=True),
    F("serving.tpot_s", "Time per output token", "s", "one decode step at the batch the peak rate sustains: "
      "max(GEMM FLOPs / peak·eff, weights / HBM·eff) + KV reads + elementwise + TP all-reduce + overhead", "lower",
      ranged=True),
    F("serving.replica_output_tokens_per_s", "Output tokens/s per replica", "tokens/s",
      "chosen batch / step time at that batch (continuous batching, chunked prefill)", "higher", ranged=True),
    F("serving.output_tokens_per_s_per_gpu", "Output tokens/s per GPU", "tokens/s",
      "replica output tokens/s ÷ GPUs per replica", "higher", ranged=True),
    F("serving.replica_requests_per_s", "Requests/s per replica", "requests/s",
      "replica output tokens/s ÷ output tokens per request, under the latency targets", "higher", ranged=True),
    F("serving.max_batch", "Largest batch that fits", "sequences", "KV budget (0.9 of the memory after the "
      "weights) ÷ KV bytes of a full context (GQA: 2·layers·kv_heads·head_dim·kv_bits/8 per token)", "higher"),
    F("serving.batch_run", "Batch run", "sequences", "the given batch, or the largest that fits and meets the targets"),
    F("serving.replicas", "Replicas", "replicas", "⌈peak rate ÷ requests/s per replica⌉", "lower", ranged=True),
    F("serving.gpus", "Serving GPUs", "GPUs", "replicas × GPUs per replica", "lower", ranged=True),
    F("serving.cost_per_million_output_tokens_usd", "Cost per 1M output tokens", "USD",
      "GPUs × price per GPU-hour ÷ average output tokens per hour × 1e6 (peak capacity idles off-peak)", "lower",
      ranged=True),
    F("serving.monthly_cost_usd", "Serving cost per month", "USD", "GPUs × on-demand price per GPU-hour × 730.5 h",
      "lower", ranged=True),
    F("serving.weights_gb", "Weights per GPU", "GB", "params (total: every expert) × weight bits / 8 (or "
      "compression.model_bytes) on the busiest GPU: the routed experts ÷ GPUs per replica, the rest ÷ the attention's "
      "tensor-parallel width (whole on each GPU with attention data parallelism)", "lower"),
    F("serving.experts_touched", "Experts touched per decode step", "experts", "expected distinct routed experts "
      "of one MoE layer the batch run's decode tokens touch, uniform top-k routing: E·(1 − (1 − k/E)^B) (the "
      "occupancy problem, Feller 1968); none for a dense model"),
    F("serving.expert_read_share", "Expert weights read per decode step", "fraction", "share of the busiest GPU's "
      "routed-expert weights a decode step at the batch run reads: touched experts of imbalance × batch tokens ÷ E; "
      "none for a dense model"),
    F("serving.alltoall_share", "All-to-all share of a decode step", "fraction", "MoE dispatch + combine (alpha-beta "
      "over the intra-node link × a2a_eff, per MoE layer) ÷ the steady step at the batch run; 0 with tensor-parallel "
      "attention, none for a dense model", "lower"),
)


def _low_precision(w_bits: np.ndarray, a_bits: np.ndarray) -> np.ndarray:
    """The GEMMs run in fp8 (else int8) where weights and activations are both at most 8 bits (LLM-Viewer's rule)."""
    return (w_bits <= 8.0) & (a_bits <= 8.0)


def _peak_flops(c: Columns, w_bits: np.ndarray, a_bits: np.ndarray) -> np.ndarray:
    """Peak of the GEMMs' dtype: fp4 where weights and activations are 4-bit floats and the device has an FP4 unit
    (the catalog's fp4 peak, compression/hardware.py; without one they run at the fp8 peak and the rule
    serving_no_fp4 says so), fp8 (else int8) where they run in low precision (_low_precision), else bf16 (else
    fp16, else fp32)."""
    def first(*dtypes: str) -> np.ndarray:
        out = np.full(len(w_bits), np.nan)
        for d in reversed(dtypes):
            v = c[f"serving_hw_peak_{d}_tflops"]
            out = np.where(np.isfinite(v), v, out)
        return out
    low = _low_precision(w_bits, a_bits)
    peak = np.where(low, first("fp8", "int8", "bf16", "fp16", "fp32"), first("bf16", "fp16", "fp32"))
    fp4 = fp4_wanted(c, w_bits, a_bits) & has_fp4(c)
    if np.any(fp4):
        peak = np.where(fp4, c["serving_hw_peak_fp4_tflops"], peak)
    return peak * 1e12


def replica(c: Columns) -> Replica:
    """The serving replica of every row, from the serving accelerator's columns and the model's shape and bits."""
    w_bits, a_bits, kv_bits = precision_bits(c)
    model_bytes = weight_bytes(c, w_bits)
    return Replica(
        layers=c["layers"], hidden=c["hidden"], heads=c["heads"], glu=c["glu"], vocab=c["vocab"],
        model_bytes=model_bytes, tp=c["gpus_per_replica"], peak_flops=_peak_flops(c, w_bits, a_bits),
        gemm_eff_max=c["serving_hw_gemm_eff_max"] * np.where(_low_precision(w_bits, a_bits),
                                                              LOW_PRECISION_GEMM_EFF_RATIO, 1.0), gemm_dim_half=c["serving_hw_gemm_dim_half"],
        hbm_Bps=c["serving_hw_hbm_GBps"] * 1e9, mem_eff=c["serving_hw_decode_mem_eff"],
        kv_eff=c["serving_hw_decode_kv_eff"], elem_eff=c["serving_hw_elementwise_eff"],
        intra_Bps=c["serving_hw_intra_GBps"] * 1e9, intra_latency_s=c["serving_hw_intra_latency_s"],
        overhead_s=c["serving_hw_step_overhead_s"], **replica_shape(c, model_bytes, a_bits, kv_bits),
    )


def _curve(c: Columns) -> tuple[Replica, SteadyCurve]:
    """Every row's replica and its step-time curve, made once per plain evaluation (registry.once)."""
    def make() -> tuple[Replica, SteadyCurve]:
        r = replica(c)
        return r, SteadyCurve(r, c["prompt_tokens"], c["output_tokens"])
    return once(c, "serving.curve", make)


def _capacity(c: Columns) -> dict[str, np.ndarray]:
    """What one replica holds and carries within the latency targets: the largest batch that fits and meets them,
    and its throughput. Reads no traffic (a sweep over the request rate finds the batch once per replica)."""
    r, curve = _curve(c)
    p, o = c["prompt_tokens"], c["output_tokens"]
    fits = _fits(c["serving_hw_hbm_GB"], r, p + o)
    given = c["serving_batch"]
    limit = np.where(given > 0, np.minimum(given, fits), fits)
    prefill_s = prefill_alone(r, p).total_s
    batch = best_batch(r, limit, p, o, c["tpot_target_s"], c["ttft_target_s"], curve, prefill_s)
    batch = np.where(given > 0, np.where(batch == limit, batch, 0.0), batch)  # a given batch must meet the targets
    ok = (batch >= 1) & (fits >= 1) & ~((given > 0) & (given > fits))
    err = step_error(c, r)
    tokens_per_s = np.where(ok, batch / (curve.total_s(np.maximum(batch, 1.0)) * err), np.nan)
    moe = np.asarray(r.moe_layers) > 0
    run_batch = np.where(ok, batch, np.nan)
    return {
        **(_moe_figures(r, run_batch, p, o) if np.any(moe) else _no_moe(moe.shape)),
        "serving.replica_output_tokens_per_s": tokens_per_s,
        "serving.output_tokens_per_s_per_gpu": tokens_per_s / r.tp,
        "serving.replica_requests_per_s": tokens_per_s / o,
        "serving.max_batch": fits,
        "serving.batch_run": np.where(ok, batch, np.nan),
        "serving.weights_gb": r.weights_per_gpu_bytes / 1e9,
        "serving_fits": fits,
        "serving_meets_targets": (batch >= 1).astype(float),
        "serving_prefill_s": prefill_s,
    }


def step_error(c: Columns, r: Replica) -> np.ndarray:
    """The step model's own error (simulator/model_error.py): the serving step's, and a mixture-of-experts
    model's MoE-layer term on top of it (1 for a dense model)."""
    err = np.asarray(c.get("model_err_serve_step", 1.0), dtype=float)
    moe = np.asarray(r.moe_layers) > 0
    return err * np.where(moe, np.asarray(c.get("model_err_serve_moe", 1.0), dtype=float), 1.0)


def _fits(hbm_GB: np.ndarray, r: Replica, context_tokens: np.ndarray) -> np.ndarray:
    """Sequences whose full context fits: each GPU gives the KV cache its share of what its weights leave
    (kv_budget_bytes), and a sequence's cache is split over kv_div GPUs and the sequences over attn_dp of them; a
    tensor-parallel replica without routed experts or MLA by the whole replica's memory, as before (same numbers)."""
    budget = kv_budget_bytes(hbm_GB, r.tp, r.model_bytes)
    plain_fits = max_batch(budget, r.kv_token_bytes, context_tokens)
    simple = (np.asarray(r.attn_dp) == 1.0) & (np.asarray(r.kv_split) > 0) & (np.asarray(r.routed_bytes) == 0.0)
    if np.all(simple):
        return plain_fits
    per_gpu = kv_budget_bytes(hbm_GB, 1.0, r.weights_per_gpu_bytes)
    spread = max_batch(per_gpu * r.kv_div * r.attn_dp, r.kv_token_bytes, context_tokens)
    return np.where(simple, plain_fits, np.where(per_gpu > 0, spread, 0.0))


def _no_moe(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    nan = np.full(shape, np.nan)
    return {"serving.experts_touched": nan, "serving.expert_read_share": nan, "serving.alltoall_share": nan}


def _moe_figures(r: Replica, batch: np.ndarray, prompt: np.ndarray, output: np.ndarray) -> dict[str, np.ndarray]:
    """What a decode step of the batch run does with the experts (serving/experts.py); NaN for a dense model."""
    moe = np.asarray(r.moe_layers) > 0
    b = np.nan_to_num(batch, nan=1.0)
    step = steady_step(r, b, prompt, output)
    ok = moe & np.isfinite(batch)
    e = np.maximum(np.asarray(r.experts, dtype=float), 1.0)
    return {
        "serving.experts_touched": np.where(ok, experts_touched(r.experts, r.top_k, b), np.nan),
        "serving.expert_read_share": np.where(ok, experts_touched(r.experts, r.top_k, b * r.imbalance) / e, np.nan),
        "serving.alltoall_share": np.where(ok, step.alltoall_s / step.total_s, np.nan),
    }


def _load(c: Columns) -> dict[str, np.ndarray]:
    """The replicas the peak traffic needs, the batch it keeps each at (serving/capacity.operating_batch), the
    latencies at that batch, and the money of the GPUs."""
    r, curve = _curve(c)
    p, o = c["prompt_tokens"], c["output_tokens"]
    ok = np.isfinite(c["serving.batch_run"])
    err = step_error(c, r)
    peak = c["requests_per_s"] * c["peak_to_average"]
    replicas = replicas_for(peak, c["serving.replica_requests_per_s"])
    gpus = replicas * r.tp
    b_op = operating_batch(r, peak / replicas, np.where(ok, c["serving.batch_run"], 1.0), p, o, curve)
    step_op = curve.total_s(b_op)
    monthly = gpus * c["serving_gpu_hour_usd"] * HOURS_PER_MONTH
    out_tokens_month = c["requests_per_s"] * o * SECONDS_PER_MONTH
    return {
        "serving.ttft_s": np.where(ok, (c["serving_prefill_s"] + step_op) * err, np.nan),  # serving/capacity.ttft_s
        "serving.tpot_s": np.where(ok, step_op * err, np.nan),
        "serving.replicas": replicas,
        "serving.gpus": gpus,
        "serving.cost_per_million_output_tokens_usd": monthly / out_tokens_month * 1e6,
        "serving.monthly_cost_usd": monthly,
    }


run = Steps(_capacity, _load)


TRAFFIC = ("serving.requests_per_s", "serving.prompt_tokens", "serving.output_tokens")
FIELDS = (
    FieldGroup("deploy", "Model", ("serving.accelerator",), main=True, order=1),
    FieldGroup("deploy", "Traffic", (*TRAFFIC, "serving.ttft_target_s", "serving.tpot_target_s"), main=True, order=3),
    FieldGroup("deploy", "Serving", ("serving.batch", "serving.peak_to_average", "serving.gpus_per_replica",
                                      "serving.ep", "serving.attention_dp", "serving.moe_imbalance"), order=10),
    FieldGroup("compress", "Model", ("serving.accelerator",), main=True, order=1),
    FieldGroup("decide", "Hardware and traffic", TRAFFIC, main=True, order=2),
)
SECTIONS = (
    Section(("deploy",), "Serving", ("serving.gpus", "serving.replicas", "serving.batch_run", "serving.max_batch",
                                     "serving.ttft_s", "serving.tpot_s", "serving.output_tokens_per_s_per_gpu",
                                     "serving.cost_per_million_output_tokens_usd", "serving.monthly_cost_usd"),
            headline=True, order=1),
    Section(("deploy",), "Weights and experts", ("serving.weights_gb", "serving.experts_touched",
                                                 "serving.expert_read_share", "serving.alltoall_share"), order=20,
            text="Weights on the busiest GPU (a mixture-of-experts model holds every expert: its total parameters), "
                 "and what one decode step at the batch run does with the routed experts: how many a layer's tokens "
                 "touch, the share of the expert weights it reads, and the all-to-all's share of the step "
                 "(n/a for a dense model)."),
)

FAMILY = Family("serving", INPUTS, FIGURES, run, RULES, needs=("compression",),  # compression.model_bytes
                fields=FIELDS, sections=SECTIONS,
                doc="latency, batch, replicas, GPUs and cost of serving a request rate under latency targets")
