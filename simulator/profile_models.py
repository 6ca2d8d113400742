"""Predictors of calibration fits: one function, `predict_s(fit, **features)`, evaluates every fitted model
(docs/profile-schema.md), shared by the fitter (calibration/fit) and the simulator, so the two cannot drift
apart. Pure stdlib + numpy; features may be scalars or numpy arrays.

Models are physically shaped, so they extrapolate: rooflines with a saturating efficiency, alpha-beta
communication, and transformer layers predicted from their GEMM inventory (timed by the profile's own GEMM
fit) plus a memory-bound term per element moved, as the training model does (simulator/training/layer.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BUS_FACTORS = {"all_reduce": "2(n-1)/n", "all_gather": "(n-1)/n", "reduce_scatter": "(n-1)/n",
               "broadcast": "1", "all_to_all": "(n-1)/n"}
_HILL_PARAMS = ("overhead_s", "achieved_tflops", "x_half_flops", "hill_exponent")
_INVENTORY_PARAMS = ("overhead_s", "gemm_scale", "elem_GBps")
REQUIRED_PARAMS: dict[str, tuple[str, ...]] = {  # models `predict_s` evaluates, and what each needs
    "constant": ("alpha_s",),
    "local_copy": ("alpha_s", "copy_GBps"),
    "local_copy_two_tier": ("alpha_s", "cache_GBps", "dram_GBps", "cache_bytes"),
    "alpha_beta": ("alpha_s", "busbw_GBps"),
    "flat_then_linear": ("floor_s", "alpha_s", "busbw_GBps"),
    "alpha_beta_two_tier": ("alpha_s", "cache_busbw_GBps", "busbw_GBps", "cache_bytes"),
    "sharded_ps": ("alpha_s", "worker_GBps", "server_GBps"),
    "linear_compute": ("overhead_s", "achieved_tflops"),
    "overhead_hill": _HILL_PARAMS,
    "hill_roofline": (*_HILL_PARAMS, "mem_GBps"),
    "hill_roofline_two_tier": (*_HILL_PARAMS, "cache_GBps", "dram_GBps", "cache_bytes"),
    "hill_roofline_sum": (*_HILL_PARAMS, "mem_GBps"),
    "hill_roofline_sum_gemv": (*_HILL_PARAMS, "mem_GBps", "gemv_GBps"),
    "roofline_sum_gemv_act": ("overhead_s", "achieved_tflops", "mem_GBps", "gemv_GBps", "act_GBps"),
    "roofline": ("overhead_s", "achieved_tflops", "mem_GBps"),
    "roofline_two_tier": ("overhead_s", "achieved_tflops", "cache_GBps", "dram_GBps", "cache_bytes"),
    "roofline_sum": ("overhead_s", "achieved_tflops", "mem_GBps"),
    "roofline_sum_gemv": ("overhead_s", "achieved_tflops", "mem_GBps", "gemv_GBps"),
    "block_inventory": (*_INVENTORY_PARAMS, "element_bytes"),
    "prefill_inventory": (*_INVENTORY_PARAMS, "element_bytes"),
    "moe_inventory": ("moe_gemm_eff", "mem_GBps", "element_bytes"),
    "ddp_overlap": ("overlap_fraction",),
    "density_linear": ("fixed_ratio", "density_ratio"),
    "shrunk_bytes": ("overhead_bytes", "cache_speedup", "cache_bytes"),
    "prefill_linear": ("overhead_s", "per_token_s"),
    "prefill_quadratic": ("overhead_s", "per_token_s", "per_token_ctx_s"),
    "decode_batch": ("overhead_s", "per_seq_s"),
    "decode_kv": ("overhead_s", "per_seq_s", "per_kv_token_s"),
}
# models whose prediction needs the GEMM fit they were built on (stored in the record as "gemm_fit")
INVENTORY_MODELS = ("block_inventory", "prefill_inventory", "moe_inventory")
MOE_MODELS = ("moe_inventory",)
# a model with no parameters of its own (the ratio of two roofline fits): known, but `predict_s` refuses it
RATIO_MODELS = ("ratio_of_roofline_fits",)
BUS_MODELS = ("alpha_beta", "flat_then_linear", "alpha_beta_two_tier")  # across a link: the bus factor applies
COLLECTIVE_MODELS = ("constant", "local_copy", "local_copy_two_tier", *BUS_MODELS)
PREFILL_MODELS = ("prefill_inventory", "prefill_linear", "prefill_quadratic")
DECODE_MODELS = ("decode_batch", "decode_kv")
PRUNING_MODELS = ("density_linear", "shrunk_bytes")
# every model name a profile may carry (the loader refuses any other)
KNOWN_MODELS: tuple[str, ...] = (*REQUIRED_PARAMS, *RATIO_MODELS)


def bus_factor(op: str, world_size: Any) -> Any:
    # nccl-tests doc/PERFORMANCE.md: busbw = algbw * factor; a world of one moves nothing
    n = np.asarray(world_size, dtype=float)
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    if op == "broadcast":
        return np.where(n > 1, 1.0, 0.0)
    raise ValueError(f"unknown collective {op!r}; expected one of {sorted(BUS_FACTORS)}")


def _hill_eff(flops: Any, x_half_flops: float, hill_exponent: float, floor_flops: float | None = None) -> Any:
    # below the smallest size the fit saw, the efficiency is held at its value there (a Hill curve
    # extrapolated down would make a 100 kFLOP attention product take seconds); time -> overhead
    f = np.asarray(flops, dtype=float) if floor_flops is None else np.maximum(np.asarray(flops, dtype=float), floor_flops)
    return 1.0 / (1.0 + (x_half_flops / f) ** hill_exponent)


def _cache_step(ws_bytes: Any, cache_bytes: float) -> Any:
    # 0 in cache, 1 out of it: a logistic in log2(working set), about a factor of 2 wide
    return 1.0 / (1.0 + np.exp(-4.0 * (np.log2(np.asarray(ws_bytes, dtype=float)) - np.log2(cache_bytes))))


def _two_tier_s_per_byte(p: dict[str, float], ws_bytes: Any, fast: str = "cache_GBps", slow: str = "dram_GBps") -> Any:
    out = _cache_step(ws_bytes, p["cache_bytes"])
    return (1 - out) / (p[fast] * 1e9) + out / (p[slow] * 1e9)


_HILL = ("overhead_hill", "hill_roofline", "hill_roofline_two_tier", "hill_roofline_sum", "hill_roofline_sum_gemv")
_ONE_TIER = ("roofline", "hill_roofline")
_TWO_TIER = ("roofline_two_tier", "hill_roofline_two_tier")
_SUM = ("roofline_sum", "roofline_sum_gemv", "hill_roofline_sum", "hill_roofline_sum_gemv", "roofline_sum_gemv_act")
_GEMV = ("roofline_sum_gemv", "hill_roofline_sum_gemv", "roofline_sum_gemv_act")
COMPUTE_MODELS = tuple(dict.fromkeys(("linear_compute", *_HILL, "roofline", "roofline_two_tier", *_SUM)))


def _compute_s(p: dict[str, float], model: str, features: dict[str, Any]) -> Any:
    # Calculon-style: flops at a size-dependent efficiency, bounded below by the memory traffic (roofline),
    # or (the "no_overlap" form) the two added
    flops = np.asarray(features["flops"], dtype=float)
    t_s = flops / (p["achieved_tflops"] * 1e12)
    if model in _HILL:
        t_s = t_s / _hill_eff(flops, p["x_half_flops"], p["hill_exponent"], p.get("eff_floor_flops"))
    if model in _ONE_TIER:
        t_s = np.maximum(t_s, np.asarray(features["ws_bytes"], dtype=float) / (p["mem_GBps"] * 1e9))
    if model in _TWO_TIER:
        ws = np.asarray(features["ws_bytes"], dtype=float)
        t_s = np.maximum(t_s, ws * _two_tier_s_per_byte(p, ws))
    if model in _SUM:
        ws = np.asarray(features["ws_bytes"], dtype=float)
        bw = p["mem_GBps"]
        if model in _GEMV and features.get("batch") is not None:
            # one row of activations: the library's GEMV path streams the weights at its own rate
            bw = np.where(np.asarray(features["batch"], dtype=float) < 1.5, p["gemv_GBps"], p["mem_GBps"])
        t_s = t_s + ws / (np.asarray(bw, dtype=float) * 1e9)
    if model == "roofline_sum_gemv_act":
        # activations in and out of every layer (bias, ReLU, dynamic (de)quantisation): per element moved
        t_s = t_s + np.asarray(features["act_bytes"], dtype=float) / (p["act_GBps"] * 1e9)
    return p["overhead_s"] + t_s


# ---------------------------------------------------------------- transformer inventories


def _gemm_time_s(gemm_fit: dict[str, Any], m: Any, k: Any, n: Any, element_bytes: float, batch: Any = 1.0) -> Any:
    """One (batched) GEMM C[m,n] = A[m,k] @ B[k,n] timed by a compute fit (flops and operand bytes)."""
    flops = 2.0 * batch * m * k * n
    ws = batch * (m * k + k * n + m * n) * element_bytes
    return _compute_s(gemm_fit["params"], gemm_fit["model"], {"flops": flops, "ws_bytes": ws})


def encoder_layer_inventory(hidden: Any, seq: Any, batch: Any, heads: Any = None,
                            ffn: Any = None) -> tuple[list[tuple[Any, ...]], Any]:
    """GEMMs and elementwise elements of one nn.TransformerEncoderLayer step, forward + backward.

    GEMMs as (m, k, n, calls, batch per call): QKV h->3h, output h->h, FFN h->ffn->h on M = batch*seq tokens, each
    forward, data-gradient and weight-gradient (Chinchilla App. F: backward = 2x forward); the attention
    core QK^T and PV per (sequence, head), once forward and twice backward.  Elementwise: about 26 tensor
    passes of M*h forward (layer norms, residual adds, ReLU over the 4h FFN, head reshapes) and twice that
    backward, plus 5 passes over the s^2 scores per head (softmax forward and backward).
    """
    h = np.asarray(hidden, dtype=float)
    s = np.asarray(seq, dtype=float)
    b = np.asarray(batch, dtype=float)
    a = np.maximum(1.0, np.floor(h / 64.0)) if heads is None else np.asarray(heads, dtype=float)
    f = 4.0 * h if ffn is None else np.asarray(ffn, dtype=float)
    d = h / a
    tokens = b * s
    gemms = []
    for k_, n_ in ((h, 3 * h), (h, h), (h, f), (f, h)):
        gemms += [(tokens, k_, n_, 1.0, 1.0), (tokens, n_, k_, 1.0, 1.0), (k_, tokens, n_, 1.0, 1.0)]
    # attention core: one batched call per product, forward once and backward twice
    gemms += [(s, d, s, 3.0, b * a), (s, s, d, 3.0, b * a)]
    elems = (26.0 + 52.0) * tokens * h + 5.0 * b * a * s * s
    return gemms, elems


def decoder_prefill_inventory(layers: Any, hidden: Any, heads: Any, vocab: Any, batch: Any,
                              prompt: Any) -> tuple[list[tuple[Any, ...]], Any]:
    """GEMMs and elementwise elements of a decoder forward over a prompt (calibration/bench/decoder.py):
    per layer QKV, output and a 4h FFN on M = batch*prompt tokens and causal attention (half the
    scores), then the vocabulary head on the last position only; elementwise about 22 passes of M*h per
    layer (norms, K/V cache writes, reshapes, residual adds, GELU over 4h) and the causal scores."""
    n_layers = np.asarray(layers, dtype=float)
    h = np.asarray(hidden, dtype=float)
    a = np.asarray(heads, dtype=float)
    b = np.asarray(batch, dtype=float)
    s = np.asarray(prompt, dtype=float)
    d = h / a
    tokens = b * s
    gemms = [(tokens, k_, n_, n_layers, 1.0) for k_, n_ in ((h, 3 * h), (h, h), (h, 4 * h), (4 * h, h))]
    gemms += [(s, d, s, n_layers, 0.5 * b * a), (s, s, d, n_layers, 0.5 * b * a)]  # causal: half the scores
    gemms.append((b, h, np.asarray(vocab, dtype=float), 1.0, 1.0))
    # no s^2 term: the bench's SDPA runs a fused (flash) kernel whose scores stay in cache, never in
    # memory (Dao et al. 2022, FlashAttention §3.1; torch's CPU path is _scaled_dot_product_flash_attention_for_cpu)
    elems = n_layers * 22.0 * tokens * h
    return gemms, elems


INDEX_BYTES = 8.0  # int64 expert ids and token indices (torch.topk / torch.argsort return int64)
PROB_BYTES = 4.0  # the router's probabilities: softmax in fp32, as MoE routers compute it


def moe_layer_inventory(tokens: Any, experts: Any, top_k: Any, hidden: Any, expert_ffn: Any,
                        element_bytes: Any) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """GEMMs and bytes moved of one mixture-of-experts FFN forward (calibration/bench/moe.py), tokens routed evenly.

    GEMMs as (m, k, n, calls, batch per call): the router tokens x hidden -> experts, then per expert a fused
    gate+up projection hidden -> 2·ffn and a down projection ffn -> hidden on its tokens·top_k/experts rows
    (SwiGLU, Shazeer 2020; experts in a loop of `experts` calls each, Switch Transformer / Mixtral's per-expert
    loop). Bytes: each tensor of the bench's passes read and written once (C = tokens·top_k token copies, e the
    element bytes): router softmax + top-k T·E·e + 2·T·E·4 + C·(4 + 8); permute (argsort of the C expert ids, the
    index_select gather) 2·C·h·e + 4·C·8; SwiGLU's elementwise 3·C·f·e; combine (scale by the routing weight,
    index_add_ back) 3·C·h·e + 2·T·h·e + C·12."""
    t, e_, k_ = (np.asarray(v, dtype=float) for v in (tokens, experts, top_k))
    h, f, e = (np.asarray(v, dtype=float) for v in (hidden, expert_ffn, element_bytes))
    copies = t * k_
    rows = copies / e_  # tokens per expert, routed evenly
    gemms = [(t, h, e_, 1.0, 1.0), (rows, h, 2.0 * f, e_, 1.0), (rows, f, h, e_, 1.0)]
    moved = {
        "router_bytes": t * e_ * e + 2.0 * t * e_ * PROB_BYTES + copies * (PROB_BYTES + INDEX_BYTES),
        "permute_bytes": 2.0 * copies * h * e + 4.0 * copies * INDEX_BYTES,
        "activation_bytes": 3.0 * copies * f * e,
        "combine_bytes": 3.0 * copies * h * e + 2.0 * t * h * e + copies * (PROB_BYTES + INDEX_BYTES),
    }
    return gemms, moved


def moe_expert_flops(tokens: Any, top_k: Any, hidden: Any, expert_ffn: Any) -> Any:
    # SwiGLU expert (Shazeer 2020): three h x f matrices, 2 flops per multiply-add, per routed token copy
    return 6.0 * np.asarray(tokens, dtype=float) * np.asarray(top_k, dtype=float) * np.asarray(hidden, dtype=float) \
        * np.asarray(expert_ffn, dtype=float)


def moe_dense_s(gemm_fit: dict[str, Any], mem_GBps: float, element_bytes: float, **shape: Any) -> Any:
    """The MoE layer as the dense fits time it: its GEMMs by the GEMM fit (each expert GEMM a call of its own
    shape), plus its non-GEMM bytes at `mem_GBps`: what moe_gemm_eff divides."""
    gemms, moved = moe_layer_inventory(shape["tokens"], shape["experts"], shape["top_k"], shape["hidden"],
                                       shape["expert_ffn"], element_bytes)
    gemm_s = 0.0
    for m, k, n, calls, per_call in gemms:
        gemm_s = gemm_s + calls * _gemm_time_s(gemm_fit, m, k, n, element_bytes, per_call)
    return gemm_s + sum(moved.values()) / (mem_GBps * 1e9)


def _inventory_s(fit: dict[str, Any], features: dict[str, Any]) -> Any:
    p, model = fit["params"], fit["model"]
    gemm_fit = fit.get("gemm_fit")
    if not isinstance(gemm_fit, dict) or gemm_fit.get("model") not in COMPUTE_MODELS:
        raise ValueError(f"model {model!r} needs the GEMM fit it was built on (record key 'gemm_fit')")
    if model == "moe_inventory":
        # t = t_dense / moe_gemm_eff: the dense GEMM fit over the expert shapes plus the routing bytes
        shape = {k: features[k] for k in ("tokens", "experts", "top_k", "hidden", "expert_ffn")}
        return moe_dense_s(gemm_fit, p["mem_GBps"], p["element_bytes"], **shape) / p["moe_gemm_eff"]
    if model == "block_inventory":
        gemms, elems = encoder_layer_inventory(features["hidden"], features["seq"], features["batch"],
                                               features.get("heads"), features.get("ffn"))
    else:
        gemms, elems = decoder_prefill_inventory(features["layers"], features["hidden"], features["heads"],
                                                 features["vocab"], features["batch"], features["prompt"])
    elt = p["element_bytes"]
    gemm_s = 0.0
    for m, k, n, calls, per_call in gemms:
        # a batched GEMM (per_call > 1) is one call: the GEMM fit's per-call overhead is paid once
        gemm_s = gemm_s + calls * _gemm_time_s(gemm_fit, m, k, n, elt, per_call)
    return p["overhead_s"] + p["gemm_scale"] * gemm_s + elems * elt / (p["elem_GBps"] * 1e9)


def inventory_gemm_s(fit: dict[str, Any], **features: Any) -> Any:
    """The GEMM part alone (gemm_scale = 1, no overhead or elementwise term): what the GEMM fit predicts."""
    probe = {**fit, "params": {**fit["params"], "overhead_s": 0.0, "gemm_scale": 1.0, "elem_GBps": np.inf}}
    return _inventory_s(probe, features)


# ---------------------------------------------------------------- the one entry point


def _linear_terms(p: dict[str, float], model: str, f: dict[str, Any]) -> Any:
    one = 0.0 * np.asarray(next(iter(f.values()), 0.0), dtype=float) + 1.0 if f else 1.0
    if model == "prefill_linear":
        return p["overhead_s"] * one + np.asarray(f["tokens"], dtype=float) * p["per_token_s"]
    if model == "prefill_quadratic":
        return (p["overhead_s"] * one + np.asarray(f["tokens"], dtype=float) * p["per_token_s"]
                + np.asarray(f["tokens_x_prompt"], dtype=float) * p["per_token_ctx_s"])
    if model == "decode_batch":
        return p["overhead_s"] * one + np.asarray(f["batch"], dtype=float) * p["per_seq_s"]
    return (p["overhead_s"] * one + np.asarray(f["batch"], dtype=float) * p["per_seq_s"]
            + np.asarray(f["kv_tokens"], dtype=float) * p["per_kv_token_s"])


def predict_s(fit: dict[str, Any], **features: Any) -> Any:
    """What a fit record predicts: seconds for time models, a ratio for the pruning ratio models.

    Features: flops [, ws_bytes, batch] (compute, inference rooflines); message_bytes [, world_size]
    (collectives); message_bytes, servers, workers (parameter server); hidden, seq, batch (block inventory);
    layers, hidden, heads, vocab, batch, prompt (prefill inventory); compute_s, allreduce_s (DDP);
    density [, weight_bytes] (pruning); tokens [, tokens_x_prompt] (prefill), batch [, kv_tokens] (decode).
    """
    p, model = fit["params"], fit["model"]
    if model == "constant":
        return p["alpha_s"] + 0.0 * np.asarray(features.get("message_bytes", 0.0), dtype=float)
    if model == "local_copy":
        # world size 1: no link, but the collective still copies its buffer locally (all_gather, reduce_scatter)
        return p["alpha_s"] + np.asarray(features["message_bytes"], dtype=float) / (p["copy_GBps"] * 1e9)
    if model == "local_copy_two_tier":
        # the copy reads the input and writes the output (2x the message): in-cache rate below the cache,
        # the beyond-cache rate above it (the compute fits' two-tier step, _cache_step)
        m = np.asarray(features["message_bytes"], dtype=float)
        return p["alpha_s"] + m * _two_tier_s_per_byte(p, 2.0 * m)
    if model in COMPUTE_MODELS:
        return _compute_s(p, model, features)
    if model in BUS_MODELS:
        n = features.get("world_size")
        n = fit.get("world_size") if n is None else n
        m = np.asarray(features["message_bytes"], dtype=float)
        if model == "alpha_beta_two_tier":
            # the alpha-beta model (Hockney 1994) with its bus rate in two tiers: a rank's buffer and the one it
            # receives (2x the message) in cache, or beyond it (the copy's and the compute fits' _cache_step)
            return p["alpha_s"] + m * bus_factor(fit["op"], n) * _two_tier_s_per_byte(
                p, 2.0 * m, fast="cache_busbw_GBps", slow="busbw_GBps")
        t_s = p["alpha_s"] + m * bus_factor(fit["op"], n) / (p["busbw_GBps"] * 1e9)
        return np.maximum(t_s, p["floor_s"]) if model == "flat_then_linear" else t_s
    if model == "sharded_ps":
        # 2*alpha + max(2M/B_worker, 2*W*M/(S*B_server)); derived from Li et al. 2014 (OSDI): server links carry every worker's shard
        m = np.asarray(features["message_bytes"], dtype=float)
        worker_s = 2 * m / (p["worker_GBps"] * 1e9)
        server_s = 2 * np.asarray(features["workers"]) * m / (np.asarray(features["servers"])
                                                                * p["server_GBps"] * 1e9)
        return 2 * p["alpha_s"] + np.maximum(worker_s, server_s)
    if model in INVENTORY_MODELS:
        return _inventory_s(fit, features)
    if model == "ddp_overlap":
        return (np.asarray(features["compute_s"], dtype=float)
                + (1 - p["overlap_fraction"]) * np.asarray(features["allreduce_s"], dtype=float))
    if model == "density_linear":
        return p["fixed_ratio"] + p["density_ratio"] * np.asarray(features["density"], dtype=float)
    if model == "shrunk_bytes":
        # a structurally pruned (physically smaller) layer streams density * W bytes; the ratio to the dense
        # layer follows the two-tier memory rate (the small layer may fit the caches the dense one did not)
        # A ratio fixes no absolute rate: time is counted in bytes at the beyond-cache rate, the call overhead
        # as the bytes it is worth, cache-resident bytes cost 1 / cache_speedup each
        w = np.asarray(features["weight_bytes"], dtype=float)
        small = w * np.asarray(features["density"], dtype=float)

        def cost(b: Any) -> Any:
            out = _cache_step(b, p["cache_bytes"])
            return p["overhead_bytes"] + b * ((1 - out) / p["cache_speedup"] + out)

        return cost(small) / cost(w)
    if model in ("prefill_linear", "prefill_quadratic", "decode_batch", "decode_kv"):
        return _linear_terms(p, model, features)
    raise ValueError(f"model {model!r} has no predictor here; see docs/profile-schema.md")
