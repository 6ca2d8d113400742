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
}
