"""The Train page's inputs as data: presets, page defaults, and one row per widget (label, unit, help)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from simulator.scenario import (
    MLP_KINDS,
    PRECISIONS,
    RECOMPUTE,
    SHARDING,
    SYNC_METHODS,
    ClusterSpec,
    FinanceSpec,
    ModelSpec,
    QualitySpec,
    TrainingSpec,
)

BILLION = 1e9
CUSTOM_SIZE, CUSTOM_SHAPE = "custom-size", "custom-shape"
MODEL_DEFAULTS = dataclasses.asdict(ModelSpec())


@dataclass(frozen=True)
class Preset:
    label: str
    model: dict[str, Any]  # model section without the values ModelSpec already defaults to
    tokens: float
    source: str


PRESETS: dict[str, Preset] = {
    "chinchilla-70b": Preset("Chinchilla 70B", {"layers": 80, "hidden": 8192, "heads": 64, "vocab": 32000},
                             1.4e12, "Hoffmann et al. 2022, Table 4 (80 layers, d_model 8192, 64 heads, 1.4T tokens); "
                             "counted like GPT-3 this shape has 65B parameters, the paper reports 70B"),
    "gpt3-175b": Preset("GPT-3 175B", {"layers": 96, "hidden": 12288, "heads": 96, "vocab": 50257},
                        300e9, "Brown et al. 2020, Table 2.1 (96 layers, d_model 12288, 96 heads, 300B tokens)"),
    "llama2-7b": Preset("LLaMA-2 7B-like", {"layers": 32, "hidden": 4096, "heads": 32, "ffn_hidden": 11008,
                                            "mlp": "swiglu", "vocab": 32000, "seq_len": 4096},
                        2e12, "Touvron et al. 2023 (Llama 2), Table 1 and model card: 32 layers, 4096 hidden, 2T tokens"),
    "llama2-13b": Preset("LLaMA-2 13B-like", {"layers": 40, "hidden": 5120, "heads": 40, "ffn_hidden": 13824,
                                              "mlp": "swiglu", "vocab": 32000, "seq_len": 4096},
                         2e12, "Touvron et al. 2023 (Llama 2): 40 layers, 5120 hidden, 40 heads, 2T tokens"),
    "llama2-70b": Preset("LLaMA-2 70B-like", {"layers": 80, "hidden": 8192, "heads": 64, "kv_heads": 8,
                                              "ffn_hidden": 28672, "mlp": "swiglu", "vocab": 32000, "seq_len": 4096},
                         2e12, "Touvron et al. 2023 (Llama 2): 80 layers, 8192 hidden, 64 heads with 8 KV heads (GQA), 2T tokens"),
}
PRESET_MODELS = {name: p.model for name, p in PRESETS.items()}
MODEL_CHOICES = {**{k: p.label for k, p in PRESETS.items()}, CUSTOM_SIZE: "Custom size (parameters)",
                 CUSTOM_SHAPE: "Custom shape (layers × hidden)"}

# The page opens on Chinchilla 70B trained on 1,024 H100s: 8-way tensor x 4-way pipeline x 32-way data parallel
DEFAULTS: dict[str, dict[str, Any]] = {
    "model": dict(PRESETS["chinchilla-70b"].model),
    "training": {**dataclasses.asdict(TrainingSpec()), "tokens": 1.4e12, "global_batch_seqs": 1536},
    "cluster": {**dataclasses.asdict(ClusterSpec()), "gpus": 1024, "tp": 8, "pp": 4},
    "finance": dataclasses.asdict(FinanceSpec()),
    "quality": dataclasses.asdict(QualitySpec()),
}
DEFAULT_PRESET = "chinchilla-70b"


@dataclass(frozen=True)
class Field:
    key: str  # dotted scenario key; also the widget key (with "_B" when entered in billions)
    label: str
    help: str
    kind: str = "int"  # int, float, choice, radio, bool
    low: float | None = None
    high: float | None = None
    step: float | None = None
    options: tuple[Any, ...] = ()
    labels: dict[Any, str] = dataclasses.field(default_factory=dict)
    optional: bool = False  # empty means "use the simulator's rule" (catalog price, server size)
    scale: float = 1.0  # scenario value = widget value × scale

    @property
    def widget_key(self) -> str:
        return f"{self.key}_B" if self.scale == BILLION else self.key


F = Field
TOKENS, GPUS = MAIN = (
    F("training.tokens", "Training tokens (billions)", "Tokens seen in training, in billions (1,400 = 1.4T). "
      "Compute-optimal is about 20 tokens per parameter (Hoffmann et al. 2022).", "float", 0.001, 1e7, 100.0, scale=BILLION),
    F("cluster.gpus", "GPUs", "Total number of accelerators. Must be a multiple of tensor × pipeline parallel "
      "(tp × pp); the + and − buttons step by tp × pp.", "int", 1, 10_000_000),
)
PARAMS = F("model.params", "Parameters (billions)", "Total parameters incl. embeddings, in billions. The shape is "
           "derived with GPT-3 proportions (hidden ≈ 128 × layers); see More settings → Model shape.",
           "float", 0.001, 1e6, 1.0, scale=BILLION)
SHAPE = (
    F("model.layers", "Layers", "Transformer blocks.", "int", 1, 10_000),
    F("model.hidden", "Hidden size", "Model width d_model; must be divisible by the heads.", "int", 8, 1_000_000, 128),
    F("model.heads", "Attention heads", "Query heads; tensor parallel must divide them.", "int", 1, 10_000),
    F("model.kv_heads", "KV heads", "Key/value heads for grouped-query attention; empty = same as the heads.",
      "int", 1, 10_000, optional=True),
    F("model.ffn_hidden", "FFN hidden size", "MLP inner width; empty = 4 × hidden (GELU) or 8/3 × hidden "
      "rounded to 256 (SwiGLU).", "int", 8, 10_000_000, 256, optional=True),
)
SHAPE_EXTRA = (
    F("model.mlp", "MLP", "GELU (GPT-3, Chinchilla) or gated SwiGLU (LLaMA).", "radio", options=MLP_KINDS,
      labels={"gelu": "GELU", "swiglu": "SwiGLU"}),
    F("model.vocab", "Vocabulary (tokens)", "Embedding rows; tied input/output embedding.", "int", 1, 10_000_000),
    F("model.seq_len", "Sequence length (tokens)", "Tokens per training sequence.", "int", 1, 10_000_000, 512),
)
PARALLEL = (
    F("cluster.tp", "Tensor parallel (GPUs per layer)", "Megatron tensor parallelism: each layer split over this many "
      "GPUs. Must divide the heads; keep it within a node.", "int", 1, 1024),
    F("cluster.pp", "Pipeline stages", "Layers split into this many stages (GPipe/1F1B); must divide the layers.",
      "int", 1, 100_000),
    F("training.interleave", "Interleaved stages per GPU", "Virtual pipeline stages per GPU (Narayanan et al. 2021): "
      "shrinks the bubble, costs more send/recv; needs pipeline stages > 1.", "int", 1, 1024),
    F("training.global_batch_seqs", "Global batch (sequences)", "Sequences per optimizer step over all GPUs; a multiple "
      "of micro-batch × data-parallel groups (GPUs ÷ (tp × pp)).", "int", 1, 100_000_000),
    F("training.micro_batch_seqs", "Micro-batch (sequences per GPU)", "Sequences per forward/backward pass on one GPU.",
      "int", 1, 1_000_000),
    F("cluster.gpus_per_node", "GPUs per node", "GPUs joined by the fast in-node link (NVLink); empty = the "
      "accelerator's usual server.", "int", 1, 1024, optional=True),
    F("training.sequence_parallel", "Sequence parallelism", "Korthikanti et al. 2022: shards norm and dropout "
      "activations over the tensor-parallel group (less memory, same traffic).", "bool"),
)
MEMORY = (
    F("training.precision", "Precision", "Data type of the matrix multiplies; sets the peak TFLOP/s used. fp8 keeps "
      "bf16 weights and activations.", "choice", options=PRECISIONS),
    F("training.recompute", "Activation recomputation", "Recompute activations in the backward pass to save memory: "
      "selective = attention only (cheap), full = every layer (one more forward pass).", "radio", options=RECOMPUTE),
    F("training.zero_stage", "ZeRO stage", "Rajbhandari et al. 2020: shard optimizer states (1), also gradients (2), "
      "also weights (3) over the data-parallel GPUs. Needs ring or tree sync.", "radio", options=(0, 1, 2, 3)),
    F("training.flash_attention", "Fused attention (FlashAttention)", "Dao et al. 2022: attention computed in tiles, "
      "so the sequence × sequence score matrix is never stored (less activation memory).", "bool"),
)
SYNC = (
    F("cluster.sync", "Gradient sync", "How data-parallel workers combine gradients each step.", "choice",
      options=SYNC_METHODS, labels={"ring": "Ring all-reduce", "tree": "Tree all-reduce",
                                    "ps": "Parameter server", "async": "Asynchronous SGD"}),
    F("cluster.ps_servers", "Parameter servers", "Server shards holding the weights (parameter-server sync only).",
      "int", 1, 1_000_000),
    F("cluster.async_kappa", "Staleness penalty κ", "Async SGD: extra updates needed per step of staleness, "
      "U = U₀·(1 + κ·s).", "float", 0.0, 10.0, 0.01),
    F("training.sharding", "Data sharding", "Random (i.i.d.) shards, or sequential slices per worker, which slow "
      "asynchronous SGD.", "radio", options=SHARDING),
    F("cluster.dp_overlap", "Sync hidden behind backward (fraction)", "Share of gradient sync that overlaps the "
      "backward pass (0 = none, 1 = all).", "float", 0.0, 1.0, 0.05),
    F("cluster.straggler_cv", "Step-time spread between GPUs (CV)", "Coefficient of variation of per-GPU step time; "
      "the slowest worker sets the pace (Dutta et al. 2018).", "float", 0.0, 2.0, 0.01),
)
MONEY = (
    F("finance.gpu_hour_usd", "Price ($ per GPU-hour)", "Rent per GPU-hour; empty = the catalog's dated on-demand "
      "price for the accelerator.", "float", 0.0, 10_000.0, 0.1, optional=True),
    F("finance.pue", "PUE (facility ÷ IT power)", "Power usage effectiveness: 1.1 hyperscaler, 1.25 typical "
      "(Cottier et al. 2024).", "float", 1.0, 5.0, 0.01),
    F("finance.co2_kg_per_kwh", "Grid carbon (kg CO2 per kWh)", "Carbon intensity of the electricity.", "float",
      0.0, 5.0, 0.01),
    F("finance.electricity_usd_per_kwh", "Electricity ($ per kWh)", "Price of electricity (US industrial 2025: "
      "$0.083).", "float", 0.0, 10.0, 0.005),
    F("finance.server_power_factor", "Server power ÷ GPU TDP", "Whole-server draw per GPU over the chip's TDP "
      "(Cottier et al. 2024: 1.82).", "float", 1.0, 10.0, 0.01),
    F("finance.power_utilization", "Average draw ÷ peak (fraction)", "Mean power over the server's peak during "
      "training (Cottier et al. 2024: 0.75).", "float", 0.0, 1.0, 0.05),
)
QUALITY = (
    F("quality.law", "Scaling law", "Published fit that predicts the loss from parameters and tokens.", "radio",
      options=("chinchilla", "epoch"), labels={"chinchilla": "Chinchilla (Hoffmann et al. 2022)",
                                               "epoch": "Epoch AI refit (Besiroglu et al. 2024)"}),
)
ACCELERATOR = F("cluster.accelerator", "Accelerator", "Datasheet peak TFLOP/s, memory, links and dated price per "
                "GPU-hour from the hardware catalog.", "choice")
SCENARIO_FIELDS = (*MAIN, ACCELERATOR, *PARALLEL, *MEMORY, *SYNC, *MONEY, *QUALITY)
MODEL_FIELDS = (PARAMS, *SHAPE, *SHAPE_EXTRA)
