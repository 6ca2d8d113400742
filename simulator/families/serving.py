"""Serving family: latency, capacity and cost of serving the model under a request rate and latency targets.

Prefill is compute-bound and decode memory-bound on a per-operation roofline (simulator/serving/step.py); the KV
cache sets the largest batch (serving/memory.py); the batch is the largest that fits and meets the targets, the
replicas cover the peak rate, and the latencies are those of the batch the peak rate sustains (Little's law,
serving/capacity.py). Where the weights do not fit, or no batch meets the targets, the figures are NaN and a
warning says what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

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
from simulator.serving.memory import kv_budget_bytes, kv_bytes_per_token, max_batch
from simulator.serving.step import Replica, SteadyCurve, prefill_alone

KV_ROOM = 0.5  # the derived replica size leaves at least this share of its memory to the KV cache (assumed)


def _replica_gpus(c: Columns) -> np.ndarray:
    """Smallest power of two GPUs (at most a server, and dividing the heads) whose memory holds the weights in
    KV_ROOM of it."""
    w_bits = precision_bits(c)[0]
    need = weight_bytes(c, w_bits) / (KV_ROOM * c["serving_hw_hbm_GB"] * 1e9)
    gpus = 2.0 ** np.ceil(np.log2(np.maximum(need, 1.0)))
    heads = np.nan_to_num(np.asarray(c["heads"], dtype=float), nan=1.0).astype(np.int64)
    return np.minimum(np.minimum(gpus, c["serving_hw_gpus_per_node"]), (heads & -heads).astype(float))


INPUTS = (
    Input("serving.accelerator", "device", "Serving accelerator", "The accelerator the model is served on: a "
          "datasheet device or a calibrated profile:...; empty = the training cluster's accelerator.",
          link="sacc", column="serving_accelerator", provenance="datasheet",
          derived=Derived("the training cluster's accelerator", lambda c: c["accelerator"], ("cluster.accelerator",))),
    Input("serving.gpus_per_replica", "int", "GPUs per replica", "GPUs holding one copy of the model, split by "
          "tensor parallelism (Megatron); must divide the attention heads. Empty = the fewest (a power of two, at "
          "most a server, dividing the heads) whose memory holds the weights in half of it.", "GPUs", 1, 1024, link="sgpr",
          column="gpus_per_replica",
          derived=Derived("the fewest GPUs (power of two, at most a server) holding the weights in half their memory",
                          _replica_gpus, ("serving.accelerator", "model.params"))),
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
    F("serving.weights_gb", "Weights per replica", "GB", "params × weight bits / 8 (or compression.model_bytes)",
      "lower"),
)


def _low_precision(w_bits: np.ndarray, a_bits: np.ndarray) -> np.ndarray:
    """The GEMMs run in fp8 (else int8) where weights and activations are both at most 8 bits (LLM-Viewer's rule)."""
    return (w_bits <= 8.0) & (a_bits <= 8.0)


def _peak_flops(c: Columns, w_bits: np.ndarray, a_bits: np.ndarray) -> np.ndarray:
    """Peak of the GEMMs' dtype: fp8 (else int8) where they run in low precision (_low_precision), else bf16
    (else fp16, else fp32)."""
    def first(*dtypes: str) -> np.ndarray:
        out = np.full(len(w_bits), np.nan)
        for d in reversed(dtypes):
            v = c[f"serving_hw_peak_{d}_tflops"]
            out = np.where(np.isfinite(v), v, out)
        return out
    low = _low_precision(w_bits, a_bits)
    return np.where(low, first("fp8", "int8", "bf16", "fp16", "fp32"), first("bf16", "fp16", "fp32")) * 1e12


def replica(c: Columns) -> Replica:
    """The serving replica of every row, from the serving accelerator's columns and the model's shape and bits."""
    w_bits, a_bits, kv_bits = precision_bits(c)
    return Replica(
        layers=c["layers"], hidden=c["hidden"], heads=c["heads"], ffn_hidden=c["ffn_hidden"], glu=c["glu"],
        vocab=c["vocab"], params=c["params"], model_bytes=weight_bytes(c, w_bits),
        kv_token_bytes=kv_bytes_per_token(c["layers"], c["hidden"], c["heads"], c["kv_heads"], kv_bits),
        tp=c["gpus_per_replica"], peak_flops=_peak_flops(c, w_bits, a_bits),
        gemm_eff_max=c["serving_hw_gemm_eff_max"] * np.where(_low_precision(w_bits, a_bits),
                                                              LOW_PRECISION_GEMM_EFF_RATIO, 1.0), gemm_dim_half=c["serving_hw_gemm_dim_half"],
        hbm_Bps=c["serving_hw_hbm_GBps"] * 1e9, mem_eff=c["serving_hw_decode_mem_eff"],
        kv_eff=c["serving_hw_decode_kv_eff"], elem_eff=c["serving_hw_elementwise_eff"],
        intra_Bps=c["serving_hw_intra_GBps"] * 1e9, intra_latency_s=c["serving_hw_intra_latency_s"],
        overhead_s=c["serving_hw_step_overhead_s"],
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
    budget = kv_budget_bytes(c["serving_hw_hbm_GB"], r.tp, r.model_bytes)
    fits = max_batch(budget, r.kv_token_bytes, p + o)
    given = c["serving_batch"]
    limit = np.where(given > 0, np.minimum(given, fits), fits)
    prefill_s = prefill_alone(r, p).total_s
    batch = best_batch(r, limit, p, o, c["tpot_target_s"], c["ttft_target_s"], curve, prefill_s)
    batch = np.where(given > 0, np.where(batch == limit, batch, 0.0), batch)  # a given batch must meet the targets
    ok = (batch >= 1) & (fits >= 1) & ~((given > 0) & (given > fits))
    err = np.asarray(c.get("model_err_serve_step", 1.0), dtype=float)  # the step model's own error (model_error.py)
    tokens_per_s = np.where(ok, batch / (curve.total_s(np.maximum(batch, 1.0)) * err), np.nan)
    return {
        "serving.replica_output_tokens_per_s": tokens_per_s,
        "serving.output_tokens_per_s_per_gpu": tokens_per_s / r.tp,
        "serving.replica_requests_per_s": tokens_per_s / o,
        "serving.max_batch": fits,
        "serving.batch_run": np.where(ok, batch, np.nan),
        "serving.weights_gb": r.model_bytes / r.tp / 1e9,
        "serving_fits": fits,
        "serving_meets_targets": (batch >= 1).astype(float),
        "serving_prefill_s": prefill_s,
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
RULES = (
    Rule("serving.gpus_per_replica", "serving.gpus_per_replica must divide the attention heads",
         lambda c: np.mod(c["heads"], c["gpus_per_replica"]) != 0,
         lambda r: (f"serving.gpus_per_replica = {r['serving.gpus_per_replica']:g}: tensor parallelism splits the "
                    f"{r['heads']:g} attention heads evenly; use a divisor of the heads")),
    Rule("serving.gpus_per_replica", "the weights and one request's KV cache do not fit in a replica", _no_fit,
         lambda r: (f"serving: {r['serving.weights_gb'] * r['gpus_per_replica']:.3g} GB of weights and one request's "
                    f"KV cache do not fit in {r['gpus_per_replica']:g} × {r['serving_hw_hbm_GB']:g} GB: raise "
                    "serving.gpus_per_replica, shorten the requests, or use fewer weight bits (compression)"),
         "warning", "serving_no_fit"),
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
    FieldGroup("deploy", "Serving", ("serving.batch", "serving.peak_to_average", "serving.gpus_per_replica"),
               order=10),
    FieldGroup("compress", "Model", ("serving.accelerator",), main=True, order=1),
    FieldGroup("decide", "Hardware and traffic", TRAFFIC, main=True, order=2),
)
SECTIONS = (
    Section(("deploy",), "Serving", ("serving.gpus", "serving.replicas", "serving.batch_run", "serving.max_batch",
                                     "serving.ttft_s", "serving.tpot_s", "serving.output_tokens_per_s_per_gpu",
                                     "serving.cost_per_million_output_tokens_usd", "serving.monthly_cost_usd"),
            headline=True, order=1),
)

FAMILY = Family("serving", INPUTS, FIGURES, run, RULES, needs=("compression",),  # compression.model_bytes
                fields=FIELDS, sections=SECTIONS,
                doc="latency, batch, replicas, GPUs and cost of serving a request rate under latency targets")
