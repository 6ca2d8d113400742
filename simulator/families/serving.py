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

from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.compression.constants import FORMATS
from simulator.families.training_inputs import moe_model
from simulator.registry import (
    Columns,
    Derived,
    Family,
    FieldGroup,
    FigureSpec,
    Input,
    Rule,
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

KV_ROOM = 0.5  # the derived replica size leaves at least this share of its memory to the KV cache (assumed)


def _replica_gpus(c: Columns) -> np.ndarray:
    """Smallest power of two GPUs (at most a server, and dividing the heads unless attention is data-parallel)
    whose memory holds the weights in KV_ROOM of it."""
    w_bits = precision_bits(c)[0]
    need = weight_bytes(c, w_bits) / (KV_ROOM * c["serving_hw_hbm_GB"] * 1e9)
    gpus = 2.0 ** np.ceil(np.log2(np.maximum(need, 1.0)))
    heads = np.nan_to_num(np.asarray(c["heads"], dtype=float), nan=1.0).astype(np.int64)
    split = np.where(np.asarray(c["attention_dp"]) > 0, np.inf, (heads & -heads).astype(float))
    return np.minimum(np.minimum(gpus, c["serving_hw_gpus_per_node"]), split)


def _ep_default(c: Columns) -> np.ndarray:
    """The largest expert-parallel width dividing both the replica's GPUs and the routed experts; 1 when dense."""
    gpus = np.nan_to_num(np.asarray(c["gpus_per_replica"], dtype=float), nan=1.0).astype(np.int64)
    experts = np.nan_to_num(np.asarray(c["moe_experts"], dtype=float), nan=0.0).astype(np.int64)
    return np.where(experts > 0, np.gcd(np.maximum(gpus, 1), np.maximum(experts, 1)), 1).astype(float)


INPUTS = (
    Input("serving.accelerator", "device", "Serving accelerator", "The accelerator the model is served on: a "
          "datasheet device or a calibrated profile:...; empty = the training cluster's accelerator.",
          link="sacc", column="serving_accelerator", provenance="datasheet",
          derived=Derived("the training cluster's accelerator", lambda c: c["accelerator"], ("cluster.accelerator",))),
    Input("serving.gpus_per_replica", "int", "GPUs per replica", "GPUs holding one copy of the model, split by "
          "tensor parallelism (Megatron; must then divide the attention heads), or with serving.attention_dp each "
          "holding the attention and its own requests; a mixture-of-experts model's routed experts are spread over "
          "all of them (serving.ep). Empty = the fewest (a power of two, at most a server, dividing the heads) whose "
          "memory holds the weights in half of it.", "GPUs", 1, 1024, link="sgpr",
          column="gpus_per_replica",
          derived=Derived("the fewest GPUs (power of two, at most a server) holding the weights in half their memory",
                          _replica_gpus, ("serving.accelerator", "model.params"))),
    Input("serving.ep", "int", "Expert parallel (serving)", "Mixture-of-experts: the replica's GPUs its routed "
          "experts are split over, E/ep experts each (GShard, Lepikhin et al. 2021); the other gpus_per_replica/ep "
          "split each expert's matrices (expert tensor parallelism, TensorRT-LLM's moe_tp_size), so every GPU holds "
          "1/gpus_per_replica of the experts either way and ep sets how unevenly the tokens load them "
          "(serving.moe_imbalance). Must divide serving.gpus_per_replica and model.moe_experts. Empty = the largest "
          "that divides both (1 for a dense model).", "GPUs", 1, 1024, link="sep", column="serving_ep",
          derived=Derived("the largest divisor of both serving.gpus_per_replica and model.moe_experts (1 when dense)",
                          _ep_default, ("serving.gpus_per_replica", "model.moe_experts")), applies=moe_model),
    Input("serving.attention_dp", "bool", "Attention data parallel", "Each GPU of the replica holds the whole "
          "attention (and every weight but the routed experts) and its own requests' KV cache, and the MoE layers "
          "reach the experts by all-to-all (TensorRT-LLM's enable_attention_dp; with serving.ep = GPUs per replica "
          "its \"DEP\" layout, e.g. DEP8). Off: attention is tensor-parallel over the replica's GPUs (Megatron); MLA's "
          "latent KV cache is then held whole by every GPU.", default=False, link="sadp", column="attention_dp"),
    Input("serving.moe_imbalance", "float", "Expert load imbalance (serving)", "Mixture-of-experts: tokens on the "
          "busiest expert-parallel GPU over the mean, raising its expert compute and reads and its all-to-all "
          "(1 = balanced). Empty = training.moe_imbalance, the trained router's balance; give it where served "
          "traffic balances differently from training batches.", "ratio", 1.0, 64.0, link="simb",
          column="serving_moe_imbalance", step=0.05,
          derived=Derived("training.moe_imbalance", lambda c: c["moe_imbalance"], ("training.moe_imbalance",)),
          applies=moe_model),
    Input("serving.prompt_tokens", "int", "Prompt tokens", "Mean input tokens per request.", "tokens", 1,
          10_000_000, default=1000, link="pin", column="prompt_tokens", step=100),
    Input("serving.output_tokens", "int", "Output tokens", "Mean generated tokens per request.", "tokens", 1,
          10_000_000, default=200, link="pout", column="output_tokens", step=50),
    Input("serving.requests_per_s", "float", "Requests per second", "Average request rate of the traffic.",
          "requests/s", 1e-6, 1e7, default=1.0, link="rps", column="requests_per_s", step=1.0,
          spread=0.25),  # assumed: a traffic forecast is seldom known better than ±25%
    Input("serving.peak_to_average", "float", "Peak ÷ average traffic", "Capacity is sized for the peak rate = "
          "average × this factor (assumed 2: a daily cycle).", "ratio", 1.0, 100.0, default=2.0, link="p2a",
          column="peak_to_average", step=0.1),
    Input("serving.ttft_target_s", "float", "Time-to-first-token target", "Longest acceptable wait for the first "
          "token.", "s", 1e-3, 3600.0, default=2.0, link="ttft", column="ttft_target_s", step=0.1),
    Input("serving.tpot_target_s", "float", "Time-per-output-token target", "Longest acceptable time between "
          "output tokens (0.2 s: 5 tokens/s per user).", "s", 1e-4, 60.0, default=0.2, link="tpot",
          column="tpot_target_s", step=0.01),
    Input("serving.batch", "int", "Batch", 'Sequences decoded together per replica, or "max": the largest batch '
          'that fits in memory and meets the targets (the throughput-optimal one; encoded as 0).', "sequences", 1,
          10_000_000, default="max", link="sb", column="serving_batch", words={"max": 0.0}),
)

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


def _fp4_wanted(c: Columns, w_bits: np.ndarray, a_bits: np.ndarray) -> np.ndarray:
    """4-bit floating-point weights and activations (NVFP4, MXFP4 W4A4): GEMMs for an FP4 tensor core (B200)."""
    fp = np.asarray(c.get("quant_format", np.nan)) == float(FORMATS.index("fp"))
    return fp & (w_bits <= 4.0) & (a_bits <= 4.0)


def _has_fp4(c: Columns) -> np.ndarray:
    return np.isfinite(np.asarray(c["serving_hw_peak_fp4_tflops"], dtype=float))


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
    fp4 = _fp4_wanted(c, w_bits, a_bits) & _has_fp4(c)
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
    err = np.asarray(c.get("model_err_serve_step", 1.0), dtype=float)  # the step model's own error (model_error.py)
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
    err = np.asarray(c.get("model_err_serve_step", 1.0), dtype=float)
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


def _no_fit(c: Columns) -> np.ndarray:
    return np.asarray(c["serving.max_batch"]) < 1


def _batch_too_big(c: Columns) -> np.ndarray:
    given, fits = np.asarray(c["serving_batch"]), np.asarray(c["serving.max_batch"])
    return (given > 0) & (fits >= 1) & (given > fits)


def _batch_message(r: Mapping[str, Any]) -> str:
    batch, replica = _INPUT["serving.batch"], _INPUT["serving.gpus_per_replica"]
    fits, gpus = int(r["serving.max_batch"]), int(r["gpus_per_replica"])
    context = int(r["prompt_tokens"] + r["output_tokens"])
    return (f"{batch.label} of {int(r['serving_batch']):,} {batch.unit} does not fit in memory: at most {fits:,} fit "
            f"({gpus:,} GPU{'s' if gpus > 1 else ''} of {r['serving_hw_hbm_GB']:g} GB per replica, {context:,} tokens "
            f'a request). Give a {batch.label.lower()} of at most {fits:,} or "max", or raise {replica.label}')


_INPUT = {inp.key: inp for inp in INPUTS}
def _divisors(n: float) -> str:
    """The divisors of n, for a message ("1, 2, 4 or 8")."""
    ds = [d for d in range(1, int(n) + 1) if int(n) % d == 0]
    return ", ".join(str(d) for d in ds[:-1]) + f" or {ds[-1]}" if len(ds) > 1 else str(ds[0])


def _common_divisors(a: float, b: float) -> str:
    g = int(np.gcd(int(a), int(b)))
    return _divisors(g)


def _no_fp4(c: Columns) -> np.ndarray:
    w_bits, a_bits, _ = precision_bits(c)
    return _fp4_wanted(c, w_bits, a_bits) & ~_has_fp4(c)


RULES = (
    Rule("serving.gpus_per_replica", "serving.gpus_per_replica must divide the attention heads",
         lambda c: (np.asarray(c["attention_dp"]) == 0) & (np.mod(c["heads"], c["gpus_per_replica"]) != 0),
         lambda r: (f"serving.gpus_per_replica = {r['serving.gpus_per_replica']:g}: tensor parallelism splits the "
                    f"{r['heads']:g} attention heads evenly; use a divisor of the heads, or set "
                    "serving.attention_dp = true (each GPU then holds the whole attention)")),
    Rule("serving.ep", "serving.ep must divide serving.gpus_per_replica",
         lambda c: np.mod(c["gpus_per_replica"], c["serving_ep"]) != 0,
         lambda r: (f"serving.ep = {r['serving.ep']:g}: expert parallelism splits the replica's "
                    f"{r['gpus_per_replica']:g} GPUs (serving.gpus_per_replica) into equal groups; use a divisor of "
                    f"{r['gpus_per_replica']:g} ({_divisors(r['gpus_per_replica'])}), or change "
                    "serving.gpus_per_replica")),
    Rule("serving.ep", "serving.ep needs a mixture-of-experts model",
         lambda c: (np.asarray(c["moe_experts"]) == 0) & (np.asarray(c["serving_ep"]) > 1),
         lambda r: (f"serving.ep = {r['serving.ep']:g}, but the model has no routed experts (model.moe_experts = 0): "
                    "expert parallelism needs a mixture-of-experts model; set serving.ep = 1 or give "
                    "model.moe_experts")),
    Rule("serving.ep", "serving.ep must divide the routed experts",
         lambda c: (np.asarray(c["moe_experts"]) > 0) & (np.mod(c["moe_experts"], c["serving_ep"]) != 0),
         lambda r: (f"serving.ep = {r['serving.ep']:g}: the {r['moe_experts']:g} routed experts "
                    "(model.moe_experts) must split evenly over the expert-parallel GPUs; use a divisor of both "
                    f"{r['moe_experts']:g} and serving.gpus_per_replica = {r['gpus_per_replica']:g} "
                    f"({_common_divisors(r['moe_experts'], r['gpus_per_replica'])})")),
    Rule("serving.gpus_per_replica", "the weights and one request's KV cache do not fit in a replica", _no_fit,
         lambda r: (f"serving: {r['serving.weights_gb']:.3g} GB of weights per GPU and one request's KV cache do "
                    f"not fit in {r['gpus_per_replica']:g} × {r['serving_hw_hbm_GB']:g} GB: raise "
                    "serving.gpus_per_replica, shorten the requests, or use fewer weight bits (compression)"),
         "warning", "serving_no_fit"),
    Rule("compression.act_bits", "no FP4 unit: 4-bit GEMMs timed at the FP8 peak", _no_fp4,
         lambda r: (f"serving: 4-bit floating-point weights and activations need an FP4 tensor core, which "
                    f"serving.accelerator = {r['serving.accelerator']} does not have (no fp4 peak in the catalog): "
                    "the matrix multiplies are timed at its FP8 peak and the weights stay 4-bit in memory. Choose "
                    "an accelerator with FP4 (B200), or set compression.act_bits = 8 to say what runs"),
         "warning", "serving_no_fp4"),
    Rule("serving.tpot_target_s", "no batch meets the latency targets",
         lambda c: ~_no_fit(c) & (np.asarray(c["serving_meets_targets"]) < 1),
         lambda r: ("serving: no batch meets the targets (TTFT ≤ "
                    f"{r['serving.ttft_target_s']:g} s, time per token ≤ {r['serving.tpot_target_s']:g} s"
                    + (f" at batch {r['serving.batch']}" if r["serving_batch"] > 0 else "")
                    + "): relax a target, give a smaller batch, add GPUs per replica, or choose a faster accelerator"),
         "warning", "serving_targets"),
    Rule("serving.batch", "the batch does not fit in memory", _batch_too_big, _batch_message, "warning",
         "serving_batch_no_fit"),
)

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
