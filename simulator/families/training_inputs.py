"""The training family's inputs (model shape, training recipe, cluster), each declared once."""

from __future__ import annotations

import numpy as np

from simulator import architecture
from simulator.presets import PRESETS
from simulator.registry import Derived, Input
from simulator.shape import derive_shape
from simulator.training import choice, params_from_shape
from simulator.training.codes import RECOMPUTE, SHARDING, SYNC_METHODS, SYNC_PS

MLP_KINDS = ("gelu", "swiglu")


def moe_model(c):
    """Where a mixture-of-experts input acts: a model with routed experts."""
    return c["moe_experts"] > 0


def mla_model(c):
    """Where a multi-head latent attention input acts."""
    return c["attention"] == architecture.MLA
PRECISIONS = ("bf16", "fp16", "fp8", "fp32", "tf32")
SHAPE_KEYS = ("model.layers", "model.hidden", "model.heads")
BILLION = 1e9


def _shape_part(i: int):
    def fn(c):
        return derive_shape(c["params"], c["vocab"], c["glu"] > 0)[i].astype(float)
    return fn


def _ffn_default(c):
    # 4·hidden for GELU (Vaswani 2017); SwiGLU keeps 8h² per MLP with ffn = 8h/3 rounded up to 256 (Touvron 2023)
    return np.where(c["glu"] > 0, np.ceil(8.0 * c["hidden"] / 3.0 / 256.0) * 256.0, 4.0 * c["hidden"])


def _params_counted(c):
    """Total parameters (simulator.architecture.counts); a dense model with standard attention and a tied embedding
    by the formula every plan used before MoE and MLA (the same count, bit for bit)."""
    dense = params_from_shape(c["layers"], c["hidden"], c["heads"], c["kv_heads"], c["ffn_hidden"], c["glu"],
                              c["vocab"]).astype(float)
    plain = architecture.standard_attention(c) & (architecture.col(c, "moe_experts") == 0) & (c["tied"] > 0)
    if np.all(plain):
        return dense
    return np.where(plain, dense, architecture.counts(c)[0])


EP_TRIED = tuple(2**i for i in range(11))  # 1 ... 1024


def _ep_default(c):
    """Megatron-Core's guidance (MoE README, parallel layout): expert parallelism first, within a node (NVLink); the
    widest power of two dividing the experts and the data-parallel width, at most gpus_per_node / (tp·cp)."""
    dp = c["gpus"] / (c["tp"] * c["pp"] * c["cp"])
    room = np.maximum(np.floor(c["gpus_per_node"] / (c["tp"] * c["cp"])), 1.0)
    best = np.ones(np.broadcast_shapes(*(np.shape(c[k]) for k in ("gpus", "tp", "pp", "cp", "gpus_per_node",
                                                                  "moe_experts"))))
    for p in EP_TRIED[1:]:
        ok = (np.fmod(c["moe_experts"], p) == 0) & (np.fmod(dp, p) == 0) & (p <= room) & (c["moe_experts"] > 0)
        best = np.where(ok, float(p), best)
    return best


def _attention_default(c):
    return np.where(c["kv_heads"] == c["heads"], 0.0, 1.0)


_SHAPE_TEXT = "derived from model.params with GPT-3 proportions (N ≈ 12·L·h², hidden ≈ 128·layers)"
_SHAPE_NEEDS = ("model.params", "model.vocab", "model.mlp")

MODEL = (
    Input("model.preset", "choice", "Model preset", "A published model shape; any model key given beside it "
          "overrides the preset's value. Presets: " + ", ".join(PRESETS) + ".", choices=tuple(PRESETS),
          choice_labels={k: p.label for k, p in PRESETS.items()}, link="m",
          absent="no preset: give model.params or the shape"),
    Input("model.layers", "int", "Layers", "Transformer blocks.", "", 1, 10_000, link="ly", column="layers",
          derived=Derived(_SHAPE_TEXT, _shape_part(0), _SHAPE_NEEDS), required_one_of="model size"),
    Input("model.hidden", "int", "Hidden size", "Model width d_model; must be divisible by the heads.", "", 8,
          1_000_000, link="hd", column="hidden", step=128,
          derived=Derived(_SHAPE_TEXT, _shape_part(1), _SHAPE_NEEDS), required_one_of="model size"),
    Input("model.heads", "int", "Attention heads", "Query heads; tensor parallelism must divide them.", "", 1, 10_000,
          link="hh", column="heads", derived=Derived(_SHAPE_TEXT, _shape_part(2), _SHAPE_NEEDS),
          required_one_of="model size"),
    Input("model.kv_heads", "int", "KV heads", "Key/value heads for grouped-query attention (Ainslie et al. 2023); "
          "empty = as many as the heads (multi-head attention).", "", 1, 10_000, link="kv", column="kv_heads",
          derived=Derived("model.heads", lambda c: c["heads"], ("model.heads",))),
    Input("model.ffn_hidden", "int", "FFN hidden size", "MLP inner width; empty = 4 × hidden (GELU) or 8/3 × hidden "
          "rounded up to 256 (SwiGLU).", "", 8, 10_000_000, link="ffn", column="ffn_hidden", step=256,
          derived=Derived("4·hidden (gelu) or 8/3·hidden rounded up to 256 (swiglu)", _ffn_default,
                          ("model.hidden", "model.mlp"))),
    Input("model.head_dim", "int", "Head dimension", "Width of one attention head, when it is not hidden / heads (Qwen3: "
          "128 with hidden 4096 and 64 heads; GPT-OSS: 64); for MLA the part without rotary embedding.", "", 1, 100_000,
          link="hdim", column="head_dim",
          derived=Derived("hidden / heads", lambda c: c["hidden"] / c["heads"], ("model.hidden", "model.heads"))),
    Input("model.attention", "choice", "Attention", "Multi-head (every head has its keys and values), grouped-query "
          "(Ainslie et al. 2023: model.kv_heads shared key/value heads) or multi-head latent attention (DeepSeek-V2 "
          "§2.1: keys and values compressed to a latent of model.mla_kv_lora_rank, the smallest KV cache).",
          choices=architecture.ATTENTION, choice_labels={"mha": "Multi-head", "gqa": "Grouped-query",
                                                         "mla": "Latent (MLA)"}, link="att", column="attention",
          derived=Derived("mha when model.kv_heads equals the heads, else gqa", _attention_default,
                          ("model.kv_heads", "model.heads"))),
    Input("model.mla_q_lora_rank", "int", "MLA query rank", "Multi-head latent attention: width the queries are "
          "compressed to (DeepSeek-V3: 1536); 0 = no query compression (DeepSeek-V2-Lite).", "", 0, 1_000_000,
          default=1536, link="mlaq", column="mla_q_rank", provenance="published", applies=mla_model),
    Input("model.mla_kv_lora_rank", "int", "MLA key/value rank", "Multi-head latent attention: the latent keys and "
          "values are compressed to, and what the KV cache stores per token and layer (DeepSeek-V2/V3: 512).", "",
          1, 1_000_000, default=512, link="mlakv", column="mla_kv_rank", provenance="published", applies=mla_model),
    Input("model.mla_rope_dim", "int", "MLA rotary width", "Multi-head latent attention: per-head width of the "
          "decoupled rotary key and query (DeepSeek-V2/V3: 64), cached once per token.", "", 0, 100_000, default=64,
          link="mlar", column="mla_rope_dim", provenance="published", applies=mla_model),
    Input("model.moe_experts", "int", "Routed experts", "Mixture-of-experts: routed experts per MoE layer (Shazeer et "
          "al. 2017; Fedus et al. 2022). 0 = a dense model.", "experts", 0, 100_000, default=0, link="moe",
          column="moe_experts"),
    Input("model.moe_top_k", "int", "Experts per token", "Mixture-of-experts: routed experts each token goes to "
          "(Mixtral: 2, DeepSeek-V3 and Qwen3: 8).", "experts", 1, 1024, default=2, link="topk", column="moe_top_k",
          applies=moe_model),
    Input("model.moe_shared_experts", "int", "Shared experts", "Mixture-of-experts: experts every token also goes to "
          "(DeepSeekMoE, Dai et al. 2024; DeepSeek-V3 and Llama 4: 1), of the routed experts' width.", "experts", 0,
          1024, default=0, link="shx", column="moe_shared", applies=moe_model),
    Input("model.moe_granularity", "int", "Expert granularity", "Mixture-of-experts: the dense FFN's width over one "
          "expert's (Krajewski et al. 2024, G = d_ff / d_expert); sets the expert width when it is not given. 1 = "
          "experts as wide as the dense FFN (Mixtral).", "", 1, 1024, default=1, link="gran",
          column="moe_granularity", applies=moe_model),
    Input("model.moe_ffn_hidden", "int", "Expert FFN hidden size", "Inner width of one expert; empty = the dense FFN's "
          "over the granularity (Mixtral: the dense FFN's). Fine-grained experts are narrower (DeepSeek-V3: 2048 "
          "beside hidden 7168).", "", 8, 10_000_000, link="effn", column="moe_ffn_hidden", step=256,
          derived=Derived("model.ffn_hidden / model.moe_granularity",
                          lambda c: np.maximum(np.round(c["ffn_hidden"] / c["moe_granularity"]), 8.0),
                          ("model.ffn_hidden", "model.moe_granularity")), applies=moe_model),
    Input("model.moe_dense_layers", "int", "Leading dense layers", "Mixture-of-experts: the first layers keep a dense "
          "FFN of model.ffn_hidden (DeepSeek-V3: 3).", "layers", 0, 10_000, default=0, link="mdl",
          column="moe_dense_layers", applies=moe_model),
    Input("model.moe_layer_step", "int", "MoE layer every", "Mixture-of-experts: after the leading dense layers, "
          "every k-th layer is MoE and the others dense (Llama 4 Maverick: 2; most: 1).", "layers", 1, 1000,
          default=1, link="mls", column="moe_layer_step", applies=moe_model),
    Input("model.tie_embeddings", "bool", "Tied embeddings", "One table for the input embedding and the output layer "
          "(GPT-2/3); the MoE models here keep two.", default=True, link="tie", column="tied"),
    # counted last of the model keys: the count reads the expert width and attention rules derive above it
    Input("model.params", "float", "Parameters", "Total parameters incl. embeddings. Give this alone and the shape is "
          "derived (GPT-3 proportions, hidden ≈ 128 × layers); with a shape, the count follows the shape.",
          "parameters", 1e5, 1e15, link="n", column="params", step=1e9, scale=BILLION, widget_unit="billions",
          derived=Derived("counted from the shape (all experts)", _params_counted, always=True),
          required_one_of="model size"),
    Input("model.mlp", "choice", "MLP", "GELU (GPT-3, Chinchilla: 2 matrices) or gated SwiGLU (LLaMA: 3 matrices).",
          choices=MLP_KINDS, choice_labels={"gelu": "GELU", "swiglu": "SwiGLU"}, default="gelu", link="mlp",
          column="glu"),
    Input("model.vocab", "int", "Vocabulary", "Embedding rows (tied input/output embedding).", "tokens", 1,
          10_000_000, default=51200, link="voc", column="vocab"),
    Input("model.seq_len", "int", "Sequence length", "Tokens per training sequence.", "tokens", 1, 10_000_000,
          default=2048, link="seq", column="seq_len", step=512),
)

TRAINING = (
    Input("training.tokens", "float", "Training tokens", "Tokens seen in training. Compute-optimal is about 20 per "
          "parameter (Hoffmann et al. 2022).", "tokens", 1e3, 1e16, link="tok", column="tokens", step=1e11,
          scale=BILLION, widget_unit="billions", provenance="published",
          derived=Derived("the preset's published tokens, else 20 × model.params (Hoffmann et al. 2022)",
                          lambda c: np.where(np.isfinite(c["preset_tokens"]), c["preset_tokens"], 20.0 * c["params"]),
                          ("model.params",))),
    Input("training.global_batch_seqs", "int", "Global batch", "Sequences per optimizer step over all GPUs. Need not "
          "be a multiple of micro-batch × data-parallel width: the remainder goes into a smaller last micro-batch.",
          "sequences", 1, 100_000_000, default=1024, link="gb", column="global_batch"),
    Input("training.precision", "choice", "Precision", "Data type of the matrix multiplies; sets the peak TFLOP/s "
          "used. fp8 keeps bf16 weights and activations (Transformer Engine recipe).", choices=PRECISIONS,
          default="bf16", link="prec", column="precision"),
    Input("training.recompute", "choice", "Activation recomputation", "Recompute activations in the backward pass to "
          "save memory (Korthikanti et al. 2022): selective = attention only, full = every layer (one more forward).",
          choices=RECOMPUTE, default="selective", link="rc", column="recompute"),
    Input("training.zero_stage", "int", "ZeRO stage", "Rajbhandari et al. 2020: shard optimizer states (1), also "
          "gradients (2), also weights (3) over the data-parallel GPUs. Needs ring or tree all-reduce.", "", 0, 3,
          link="zero", column="zero_stage",
          derived=Derived("1 with ring or tree all-reduce, 0 with a parameter server or asynchronous SGD",
                          lambda c: np.where(c["sync"] >= SYNC_PS, 0.0, 1.0), ("cluster.sync",))),
    Input("training.sequence_parallel", "bool", "Sequence parallelism", "Korthikanti et al. 2022: shards norm and "
          "dropout activations over the tensor-parallel group (less memory, same traffic).", default=True, link="sp",
          column="sequence_parallel"),
    Input("training.flash_attention", "bool", "Fused attention (FlashAttention)", "Dao et al. 2022: attention in "
          "tiles, so the sequence × sequence scores are never stored.", default=True, link="fa",
          column="flash_attention"),
    Input("training.moe_imbalance", "float", "Expert load imbalance", "Mixture-of-experts: tokens on the busiest "
          "expert-parallel rank over the mean (1 = balanced, as in force-balanced benchmark runs). The default is "
          "assumed between the maximal violations published for auxiliary-loss balancing (0.72) and loss-free "
          "balancing (0.04) by Wang et al. 2024 (Table 1).", "ratio", 1.0, 64.0, default=1.2, link="imb",
          column="moe_imbalance", step=0.05, spread=0.15, applies=moe_model),
    Input("training.moe_capacity_factor", "float", "Expert capacity factor", "Mixture-of-experts: tokens an expert "
          "takes at most, as a multiple of an even share (Fedus et al. 2022, Switch Transformer §2.1); the rest are "
          "dropped. \"dropless\" = no cap (MegaBlocks, Gale et al. 2023; Megatron-Core's default).", "ratio", 1.0,
          64.0, default="dropless", link="capf", column="moe_capacity", step=0.05, words={"dropless": 0.0},
          applies=moe_model),
    Input("training.sharding", "choice", "Data sharding", "Random (i.i.d.) shards, or sequential slices per worker, "
          "which need more updates: asynchronous SGD's assumed, or what a calibrated device measured.", choices=SHARDING, default="random", link="shard", column="sharding"),
)

CLUSTER = (
    Input("cluster.accelerator", "device", "Accelerator", "Datasheet peak TFLOP/s, memory, links and dated price "
          "per GPU-hour from the hardware catalog, or a calibrated device (profile:...).", default="H100-SXM",
          link="hw", column="accelerator"),
    Input("cluster.gpus", "int", "GPUs", "Total accelerators = tensor × pipeline × data parallel.", "GPUs", 1,
          10_000_000, default=8, link="gpus", column="gpus"),
    Input("cluster.gpus_per_node", "int", "GPUs per node", "GPUs joined by the fast in-node link (NVLink); empty = "
          "the accelerator's usual server, at most the GPU count.", "GPUs", 1, 1024, link="gpn",
          column="gpus_per_node", provenance="datasheet",
          derived=Derived("the accelerator's server size, at most cluster.gpus",
                          lambda c: np.minimum(c["hw_gpus_per_node"], c["gpus"]),
                          ("cluster.accelerator", "cluster.gpus"))),
    Input("cluster.tp", "int", "Tensor parallel", "Megatron tensor parallelism: each layer split over this many GPUs. "
          "Must divide the heads; keep it within a node.", "GPUs", 1, 1024, default=1, link="tp", column="tp"),
    Input("cluster.pp", "int", "Pipeline stages", "Layers split into this many stages (1F1B). Stages may hold "
          "different numbers of layers (see the first/last stage layers).", "stages", 1, 100_000, default=1,
          link="pp", column="pp"),
    Input("cluster.cp", "int", "Context parallel", "Megatron-Core context parallelism: each sequence split over this "
          "many GPUs, attention passing key/value blocks around a ring (Liu et al. 2023, Ring Attention). Multiplies "
          "into the layout like tensor and pipeline parallelism: GPUs = tp × cp × pp × data parallel.", "GPUs", 1,
          1024, default=1, link="cp", column="cp"),
    Input("cluster.ep", "int", "Expert parallel", "Mixture-of-experts: the routed experts split over this many GPUs, "
          "tokens sent to their experts and back by all-to-all (Lepikhin et al. 2021, GShard). Megatron-Core draws "
          "these GPUs from the data-parallel ones, so it divides the data-parallel width and the experts. Empty = "
          "the widest that stays within a node (1 for a dense model).", "GPUs", 1, 100_000, link="ep", column="ep",
          derived=Derived("the widest power of two dividing the experts and the data-parallel width within a node "
                          "(gpus per node / (tp × cp)); 1 for a dense model", _ep_default,
                          ("model.moe_experts", "cluster.gpus", "cluster.tp", "cluster.pp", "cluster.cp",
                           "cluster.gpus_per_node")), applies=moe_model),
    Input("cluster.first_stage_layers", "int", "Layers on the first stage", "Blocks on the first pipeline stage, "
          "which also holds the embedding (Megatron-LM --decoder-first-pipeline-num-layers); empty = even split "
          "when the layers divide, else the planner balances the stages.", "layers", 1, 10_000,
          link="fsl", column="first_stage_layers",
          absent="the planner chooses: see training.first_stage_layers in the plan"),
    Input("cluster.last_stage_layers", "int", "Layers on the last stage", "Blocks on the last pipeline stage, which "
          "also computes the logits and the loss (Megatron-LM --decoder-last-pipeline-num-layers); empty = even "
          "split when the layers divide, else balanced.", "layers", 1, 10_000, link="lsl",
          column="last_stage_layers",
          absent="the planner chooses: see training.last_stage_layers in the plan"),
    Input("cluster.sync", "choice", "Gradient sync", "How data-parallel workers combine gradients each step.",
          choices=SYNC_METHODS, choice_labels={"ring": "Ring all-reduce", "tree": "Tree all-reduce",
                                               "ps": "Parameter server", "async": "Asynchronous SGD"},
          default="ring", link="sync", column="sync"),
    Input("cluster.ps_servers", "int", "Parameter servers", "Server shards holding the weights (parameter-server "
          "sync only).", "servers", 1, 1_000_000, default=1, link="ps", column="ps_servers"),
    Input("cluster.async_kappa", "float", "Staleness penalty κ", "Asynchronous SGD: extra updates per step of "
          "staleness, U = U₀·(1 + κ·s).", "", 0.0, 10.0, default=0.02, link="kappa", column="async_kappa",
          step=0.01),
    Input("cluster.straggler_cv", "float", "Step-time spread between GPUs (CV)", "Coefficient of variation of per-GPU "
          "step time; the slowest worker sets the pace (Dutta et al. 2018). About 1% on dedicated clusters.",
          "fraction", 0.0, 2.0, default=0.01, link="cv", column="straggler_cv", step=0.01),
    Input("cluster.dp_overlap", "float", "Sync hidden behind backward", "Share of gradient sync that overlaps the "
          "backward pass (0 = none, 1 = all).", "fraction", 0.0, 1.0, default=0.8, link="ovl", column="dp_overlap",
          step=0.05),
)

# the layout knobs a practitioner tunes last: chosen, when left empty, by running the step model on the few legal
# values (simulator.training.choice), so they come after every input the step model reads
_LAYOUT_NEEDS = ("cluster.accelerator", "cluster.gpus", "cluster.tp", "cluster.pp", "training.global_batch_seqs",
                 "training.recompute", "training.precision", "model.layers")
_B_TRIED, _V_TRIED = choice.candidates_text(choice.MICRO_BATCH_CANDIDATES), choice.candidates_text(
    choice.INTERLEAVE_CANDIDATES)
LAYOUT = (
    Input("training.micro_batch_seqs", "int", "Micro-batch", "Sequences per forward/backward pass on one GPU; empty = "
          f"the fastest of {_B_TRIED} (up to the sequences per data-parallel rank) that fits in memory.",
          "sequences", 1, 1_000_000, link="mb", column="micro_batch",
          derived=Derived(f"{choice.TEXT} (of {_B_TRIED}, up to the sequences per data-parallel rank; 1 if none "
                          "fits)", choice.chosen_micro_batch, _LAYOUT_NEEDS)),
    Input("training.interleave", "int", "Interleaved stages per GPU", "Virtual pipeline stages per GPU (Narayanan et "
          "al. 2021): shrinks the bubble, costs more send/recv; needs pipeline stages > 1. Empty = the fastest of "
          f"{_V_TRIED} that divides every stage's layers and fits in memory.", "", 1, 1024, link="vpp",
          column="interleave",
          derived=Derived(f"{choice.TEXT} (of {_V_TRIED} dividing every pipeline stage's layers, with pp > 1; 1 if "
                          "none fits)", choice.chosen_interleave, _LAYOUT_NEEDS)),
)

INPUTS = (*MODEL, *TRAINING, *CLUSTER, *LAYOUT)
