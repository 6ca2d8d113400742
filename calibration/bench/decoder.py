"""A tiny pre-norm decoder with an explicit, preallocated KV cache (for prefill / decode timing)."""

from __future__ import annotations

import torch
from torch import nn


class Layer(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))

    def forward(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: int) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        k_cache[:, :, pos:pos + s] = k
        v_cache[:, :, pos:pos + s] = v
        keys, values = k_cache[:, :, :pos + s], v_cache[:, :, :pos + s]
        # prefill from an empty cache is causal; one new token attends to every cached position
        attn = nn.functional.scaled_dot_product_attention(q, keys, values, is_causal=(s > 1 and pos == 0))
        x = x + self.out(attn.transpose(1, 2).reshape(b, s, h))
        return x + self.ffn(self.ln2(x))


class TinyDecoder(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Layer(hidden, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, vocab, bias=False)
        self.heads = heads

    def new_cache(self, batch: int, max_ctx: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        w = self.head.weight
        hidden = w.shape[1]
        shape = (batch, self.heads, max_ctx, hidden // self.heads)
        return [(torch.zeros(shape, dtype=w.dtype, device=w.device),
                 torch.zeros(shape, dtype=w.dtype, device=w.device)) for _ in self.layers]

    def forward(self, tokens: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]],
                pos: int) -> torch.Tensor:
        """Logits of the last position only (what generation needs), cache filled at pos:pos+s."""
        x = self.embed(tokens)
        for layer, (k, v) in zip(self.layers, cache, strict=True):
            x = layer(x, k, v, pos)
        return self.head(self.ln(x[:, -1]))


def layer_params(layers: int, hidden: int) -> int:
    """Weights of the decoder layers (no embedding or head): 12·h² per layer plus biases/norms."""
    return layers * (12 * hidden * hidden + 13 * hidden)


def prefill_flops(layers: int, hidden: int, vocab: int, batch: int, prompt: int) -> float:
    # 2N per token for the matmuls plus causal attention 2·L·s²·h (half of 4·L·s²·h), PaLM App. B
    return (2.0 * layer_params(layers, hidden) * batch * prompt + 2.0 * layers * batch * prompt**2 * hidden
            + 2.0 * batch * hidden * vocab)


def decode_flops(layers: int, hidden: int, vocab: int, batch: int, context: int) -> float:
    return 2.0 * layer_params(layers, hidden) * batch + 4.0 * layers * batch * context * hidden \
        + 2.0 * batch * hidden * vocab


def decode_bytes(layers: int, hidden: int, vocab: int, batch: int, context: int, elt: int) -> float:
    # weights once, plus K and V for every cached position (Pope et al. 2022, Efficiently Scaling Transformer Inference)
    return float((layer_params(layers, hidden) + hidden * vocab) * elt + 2 * layers * batch * context * hidden * elt)
