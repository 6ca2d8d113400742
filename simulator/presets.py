"""Published model shapes, usable from the CLI (`"model": {"preset": "llama-3-70b"}`) and the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    label: str  # names the parameter count the shape has when counted like every other model here
    model: dict[str, Any]  # model section; values ModelSpec defaults to are left out
    tokens: float  # training tokens of the published run
    source: str
    # (total, active) parameters as the publisher states them (None: not stated apart from the label); for tests
    published_params: tuple[float, float] | None = None
    # whether the publisher's active count includes the input embedding table (simulator.architecture.counts does)
    active_counts_input_embedding: bool = True


PRESETS: dict[str, Preset] = {
    "chinchilla-70b": Preset(
        "Chinchilla 65B (paper: 70B)", {"layers": 80, "hidden": 8192, "heads": 64, "vocab": 32000},
        1.4e12, "Hoffmann et al. 2022, Table 4 (80 layers, d_model 8192, 64 heads, 1.4T tokens); counted like GPT-3 "
        "(tied embedding, 4h GELU MLP) this shape has 65B parameters, the paper reports 70B"),
    "gpt3-175b": Preset(
        "GPT-3 175B", {"layers": 96, "hidden": 12288, "heads": 96, "vocab": 50257},
        300e9, "Brown et al. 2020, Table 2.1 (96 layers, d_model 12288, 96 heads, 300B tokens)"),
    "llama2-7b": Preset(
        "Llama 2 7B (6.6B counted)", {"layers": 32, "hidden": 4096, "heads": 32, "ffn_hidden": 11008, "mlp": "swiglu",
                       "vocab": 32000, "seq_len": 4096},
        2e12, "Touvron et al. 2023 (Llama 2), Table 1 and model card: 32 layers, 4096 hidden, 2T tokens"),
    "llama2-13b": Preset(
        "Llama 2 13B (12.9B counted)", {"layers": 40, "hidden": 5120, "heads": 40, "ffn_hidden": 13824, "mlp": "swiglu",
                        "vocab": 32000, "seq_len": 4096},
        2e12, "Touvron et al. 2023 (Llama 2): 40 layers, 5120 hidden, 40 heads, 2T tokens"),
    "llama2-70b": Preset(
        "Llama 2 70B (69B counted)", {"layers": 80, "hidden": 8192, "heads": 64, "kv_heads": 8,
                                        "ffn_hidden": 28672, "mlp": "swiglu", "vocab": 32000, "seq_len": 4096},
        2e12, "Touvron et al. 2023 (Llama 2): 80 layers, 8192 hidden, 64 heads with 8 KV heads (GQA), 2T tokens; "
        "counted with a tied embedding"),
    "llama-3-8b": Preset(
        "Llama 3 8B (7.5B counted)", {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 8,
                                        "ffn_hidden": 14336, "mlp": "swiglu", "vocab": 128256, "seq_len": 8192},
        15e12, "Dubey et al. 2024 (The Llama 3 Herd of Models), Table 3: 32 layers, 4096 hidden, FFN 14336, 32 heads, "
        "8 KV heads, vocabulary 128K, 15T tokens; counted with a tied embedding"),
    "llama-3-70b": Preset(
        "Llama 3 70B (69.5B counted)", {"layers": 80, "hidden": 8192, "heads": 64, "kv_heads": 8,
                                        "ffn_hidden": 28672, "mlp": "swiglu", "vocab": 128256, "seq_len": 8192},
        15e12, "Dubey et al. 2024, Table 3: 80 layers, 8192 hidden, FFN 28672, 64 heads, 8 KV heads, 15T tokens"),
    "llama-3-405b": Preset(
        "Llama 3 405B (404B counted)", {"layers": 126, "hidden": 16384, "heads": 128, "kv_heads": 8,
                                          "ffn_hidden": 53248, "mlp": "swiglu", "vocab": 128256, "seq_len": 8192},
        15.6e12, "Dubey et al. 2024, Table 3: 126 layers, 16384 hidden, FFN 53248, 128 heads, 8 KV heads; 15.6T "
        "tokens (§3.1)"),
    # mixture-of-experts models: shapes from their published configs (Hugging Face config.json of the release)
    "mixtral-8x7b": Preset(
        "Mixtral 8x7B (46.7B total, 12.9B active)",
        {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 8, "ffn_hidden": 14336, "mlp": "swiglu",
         "vocab": 32000, "seq_len": 4096, "tie_embeddings": False, "moe_experts": 8, "moe_top_k": 2},
        float("nan"), "Jiang et al. 2024 (Mixtral of Experts) §2 and Table 1: 32 layers, dim 4096, 32 heads, 8 KV "
        "heads, hidden 14336, 8 experts, top-2, 47B total / 13B active; training tokens not published",
        published_params=(46.7e9, 12.9e9)),
    "mixtral-8x22b": Preset(
        "Mixtral 8x22B (141B total, 39B active)",
        {"layers": 56, "hidden": 6144, "heads": 48, "kv_heads": 8, "ffn_hidden": 16384, "mlp": "swiglu",
         "vocab": 32768, "seq_len": 4096, "tie_embeddings": False, "moe_experts": 8, "moe_top_k": 2},
        float("nan"), "Mistral AI, Mixtral-8x22B-v0.1 config.json and release note (2024-04-17): 56 layers, hidden "
        "6144, 48 heads, 8 KV heads, intermediate 16384, 8 experts, top-2, 141B total / 39B active",
        published_params=(141e9, 39e9)),
    "qwen3-30b-a3b": Preset(
        "Qwen3-30B-A3B (30.5B total, 3.3B active)",
        {"layers": 48, "hidden": 2048, "heads": 32, "kv_heads": 4, "head_dim": 128, "ffn_hidden": 6144,
         "mlp": "swiglu", "vocab": 151936, "seq_len": 4096, "tie_embeddings": False, "moe_experts": 128,
         "moe_top_k": 8, "moe_ffn_hidden": 768},
        36e12, "Qwen Team 2025 (Qwen3 Technical Report) Table 2 and Qwen3-30B-A3B config.json: 48 layers, hidden "
        "2048, 32 query / 4 KV heads of 128, 128 experts of 768, top-8, 30.5B total / 3.3B active, 36T tokens",
        published_params=(30.5e9, 3.3e9)),
    "qwen3-235b-a22b": Preset(
        "Qwen3-235B-A22B (235B total, 22B active)",
        {"layers": 94, "hidden": 4096, "heads": 64, "kv_heads": 4, "head_dim": 128, "ffn_hidden": 12288,
         "mlp": "swiglu", "vocab": 151936, "seq_len": 4096, "tie_embeddings": False, "moe_experts": 128,
         "moe_top_k": 8, "moe_ffn_hidden": 1536},
        36e12, "Qwen Team 2025 (Qwen3 Technical Report) Table 2 and Qwen3-235B-A22B config.json: 94 layers, hidden "
        "4096, 64 query / 4 KV heads of 128, 128 experts of 1536, top-8, 235B total / 22B active, 36T tokens",
        published_params=(235e9, 22e9)),
    "gpt-oss-20b": Preset(
        "GPT-OSS-20B (20.9B total, 3.6B active)",
        {"layers": 24, "hidden": 2880, "heads": 64, "kv_heads": 8, "head_dim": 64, "ffn_hidden": 2880,
         "mlp": "swiglu", "vocab": 201088, "seq_len": 4096, "tie_embeddings": False, "moe_experts": 32,
         "moe_top_k": 4},
        float("nan"), "OpenAI 2025, gpt-oss-120b & gpt-oss-20b model card, Table 1 and config.json: 24 layers, "
        "residual width 2880, 64 query / 8 KV heads of 64, 32 experts of 2880, top-4; 20.91B total, 3.61B active "
        "(the card's active count leaves out the input embedding); tokens not published",
        published_params=(20.91e9, 3.61e9), active_counts_input_embedding=False),
    "gpt-oss-120b": Preset(
        "GPT-OSS-120B (116.8B total, 5.1B active)",
        {"layers": 36, "hidden": 2880, "heads": 64, "kv_heads": 8, "head_dim": 64, "ffn_hidden": 2880,
         "mlp": "swiglu", "vocab": 201088, "seq_len": 4096, "tie_embeddings": False, "moe_experts": 128,
         "moe_top_k": 4},
        float("nan"), "OpenAI 2025, gpt-oss-120b & gpt-oss-20b model card, Table 1 and config.json: 36 layers, "
        "residual width 2880, 64 query / 8 KV heads of 64, 128 experts of 2880, top-4; 116.83B total, 5.13B active "
        "(without the input embedding); tokens not published",
        published_params=(116.83e9, 5.13e9), active_counts_input_embedding=False),
    "llama-4-maverick": Preset(
        "Llama 4 Maverick (400B total, 17B active)",
        {"layers": 48, "hidden": 5120, "heads": 40, "kv_heads": 8, "ffn_hidden": 16384, "mlp": "swiglu",
         "vocab": 202048, "seq_len": 8192, "tie_embeddings": False, "moe_experts": 128, "moe_top_k": 1,
         "moe_shared_experts": 1, "moe_ffn_hidden": 8192, "moe_layer_step": 2},
        22e12, "Meta 2025, Llama 4 model card and Llama-4-Maverick-17B-128E config.json: 48 layers, hidden 5120, 40 "
        "heads, 8 KV heads, MoE every 2nd layer with 128 routed experts of 8192 and 1 shared, top-1, dense layers "
        "of 16384; 400B total / 17B active; ~22T tokens",
        published_params=(400e9, 17e9)),
    "deepseek-v3": Preset(
        "DeepSeek-V3 (671B total, 37B active)",
        {"layers": 61, "hidden": 7168, "heads": 128, "kv_heads": 128, "head_dim": 128, "attention": "mla",
         "mla_q_lora_rank": 1536, "mla_kv_lora_rank": 512, "mla_rope_dim": 64, "ffn_hidden": 18432,
         "mlp": "swiglu", "vocab": 129280, "seq_len": 4096, "tie_embeddings": False, "moe_experts": 256,
         "moe_top_k": 8, "moe_shared_experts": 1, "moe_ffn_hidden": 2048, "moe_dense_layers": 3},
        14.8e12, "DeepSeek-AI 2024 (DeepSeek-V3 Technical Report) §4.2 and config.json: 61 layers, hidden 7168, 128 "
        "heads of 128 (+64 rotary), MLA ranks 1536 (query) and 512 (key/value), first 3 layers dense (18432), then "
        "1 shared + 256 routed experts of 2048, top-8; 671B total / 37B active (without the MTP module); 14.8T tokens",
        published_params=(671e9, 37e9)),
}
