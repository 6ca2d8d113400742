"""The real engine of the serving check: TinyDecoder with one KV-cache slot per running request (torch)."""

from __future__ import annotations

from typing import Any

import numpy as np


class TorchEngine:
    """TinyDecoder (calibration/bench/decoder.py) with a preallocated KV cache of `slots` sequences, run with Orca's
    selective batching (Yu et al. 2022, OSDI, §3.2): one iteration's decode tokens and new prompts form one token
    batch for every matrix product (the weights are read once per step), and only attention is split: each
    decoding slot's new token attends to its own cached context (a mask over the longest running context, as an
    engine without paged attention does), each new prompt causally to itself."""

    def __init__(self, layers: int, hidden: int, heads: int, vocab: int, slots: int, max_ctx: int, dtype: str,
                 prompt_tokens: int, seed: int = 0) -> None:
        import torch

        from calibration.bench.decoder import TinyDecoder
        from calibration.timing import torch_dtype

        torch.manual_seed(seed)
        self.torch = torch
        self.model = TinyDecoder(layers, hidden, heads, vocab).to(dtype=torch_dtype(dtype)).eval()
        self.cache = self.model.new_cache(slots, max_ctx)
        self.heads, self.head_dim = heads, hidden // heads
        self.prompts = torch.randint(0, vocab, (slots, prompt_tokens))
        self.next_token = torch.zeros(slots, dtype=torch.long)
        self.positions = torch.arange(max_ctx)

    def step(self, lengths: np.ndarray, first_slot: int, count: int) -> None:
        torch = self.torch
        b, s, end = len(lengths), self.prompts.shape[1], first_slot + count
        if b == 0 and count == 0:
            return
        tokens = torch.cat([self.next_token[:b], self.prompts[first_slot:end].reshape(-1)])
        pos = torch.from_numpy(np.asarray(lengths, dtype=np.int64))  # a new token's position = its cached context
        longest = int(lengths.max()) + 1 if b else 0
        rows = torch.arange(b)
        mask = (self.positions[:longest][None, :] <= pos[:, None])[:, None, None, :]
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def attention(qkv: Any, kc: Any, vc: Any) -> Any:
            """(tokens, 3·hidden) -> (tokens, hidden): the decode tokens against the cache, the prompts causally."""
            parts = []
            if b:
                q, k, v = qkv[:b].view(b, 1, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
                kc[rows, :, pos] = k[:, :, 0]
                vc[rows, :, pos] = v[:, :, 0]
                parts.append(sdpa(q, kc[:b, :, :longest], vc[:b, :, :longest], attn_mask=mask).reshape(b, -1))
            if count:
                q, k, v = qkv[b:].view(count, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
                kc[first_slot:end, :, :s] = k
                vc[first_slot:end, :, :s] = v
                parts.append(sdpa(q, k, v, is_causal=True).transpose(1, 2).reshape(count * s, -1))
            return torch.cat(parts) if len(parts) > 1 else parts[0]

        with torch.inference_mode():
            x = self.model.embed(tokens)
            for layer, (kc, vc) in zip(self.model.layers, self.cache, strict=True):
                x = x + layer.out(attention(layer.qkv(layer.ln1(x)), kc, vc))
                x = x + layer.ffn(layer.ln2(x))
            last = torch.cat([rows, b + s * torch.arange(1, count + 1) - 1])  # each sequence's newest token
            nxt = self.model.head(self.model.ln(x[last])).argmax(-1)  # greedy
            self.next_token[:b] = nxt[:b]
            self.next_token[first_slot:end] = nxt[b:]

    def move(self, src: int, dst: int) -> None:
        with self.torch.inference_mode():
            for k, v in self.cache:
                k[dst].copy_(k[src])
                v[dst].copy_(v[src])
            self.next_token[dst] = self.next_token[src]
            self.prompts[dst] = self.prompts[src]
