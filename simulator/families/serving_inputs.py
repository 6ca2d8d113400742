"""The serving family's inputs (the accelerator, the replica, expert parallelism, traffic and targets), each
declared once, with the rules that derive their defaults."""

from __future__ import annotations

import numpy as np

from simulator.families.training_inputs import moe_model
from simulator.registry import Columns, Derived, Input
from simulator.serving.bits import precision_bits, weight_bytes

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
