"""The small models the quality calibration trains: an MLP classifier and a character-level transformer LM.
Every weight matrix is an nn.Linear, so quantization and pruning reach every matmul the same way."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, n_in: int = 64, hidden: int = 128, n_out: int = 10, layers: int = 2) -> None:
        super().__init__()
        dims = [n_in] + [hidden] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = nn.functional.relu(layer(x))
        return self.head(x)


@dataclass(frozen=True)
class LMConfig:
    vocab: int
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ctx: int = 64


class Block(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.heads = cfg.heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.out(nn.functional.gelu(self.fc(self.ln2(x))))


class CharLM(nn.Module):
    """A pre-LayerNorm decoder (GPT-2 layout, as nanoGPT) over characters."""

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def non_embedding_params(model: nn.Module) -> int:
    """Parameters of the Linear layers (weights and biases): N as Kaplan et al. 2020 count it (no embeddings)."""
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters())


def prunable(model: nn.Module) -> list[nn.Linear]:
    """Every Linear but the output head (pruning the head's rows would delete classes or characters)."""
    return [m for name, m in model.named_modules() if isinstance(m, nn.Linear) and not name.endswith("head")]


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]
