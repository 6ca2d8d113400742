"""Parameter count and FLOPs per token, model and hardware (with recomputation)."""

import numpy as np

from simulator.architecture import ffn_matrices

from .codes import RECOMPUTE_FULL, RECOMPUTE_SELECTIVE

__all__ = ["ffn_matrices", "flops_per_token", "layer_flops_per_token", "params_from_shape"]


def params_from_shape(layers, hidden, heads, kv_heads, ffn_hidden, glu, vocab, tied_embeddings=True):
    """Total parameters, embeddings included (one V·h table when tied, as GPT-2/3 and Megatron GPT).

    Counts weight matrices and the two norms per layer; omits biases and learned position
    embeddings (each < 0.1% of a GPT-3-sized model), so modern bias-free rotary models count exactly.
    """
    L, h = np.asarray(layers, np.float64), np.asarray(hidden, np.float64)
    kv_frac = np.asarray(kv_heads, np.float64) / np.asarray(heads, np.float64)
    # Megatron (Narayanan 2021 eq. 2) per layer: QKV h·(h + 2·kv·d) + output h² + MLP n·h·ffn + 2 norms
    per_layer = h * h * (2.0 + 2.0 * kv_frac) + ffn_matrices(glu) * h * ffn_hidden + 4.0 * h
    embed = np.asarray(vocab, np.float64) * h * np.where(tied_embeddings, 1.0, 2.0)
    return L * per_layer + embed + 2.0 * h


def layer_flops_per_token(hidden, heads, kv_heads, ffn_hidden, glu, seq_len):
    """Forward FLOPs of one transformer layer per token (2 per multiply-add), attention included."""
    h = np.asarray(hidden, np.float64)
    kv_frac = np.asarray(kv_heads, np.float64) / heads
    # Megatron num_floating_point_operations / 3: 4h²(1 + kv/a) + 2·h·ffn·n_mat + 4·s·h (QKᵀ and PV)
    return 4.0 * h * h * (1.0 + kv_frac) + 2.0 * h * ffn_hidden * ffn_matrices(glu) + 4.0 * seq_len * h


def flops_per_token_model(layers, hidden, heads, kv_heads, ffn_hidden, glu, vocab, seq_len):
    """Model FLOPs per trained token (as MFU counts); see flops_per_token."""
    return flops_per_token(layers, hidden, heads, kv_heads, ffn_hidden, glu, vocab, seq_len, 0.0)[0]


def flops_per_token_hw(layers, hidden, heads, kv_heads, ffn_hidden, glu, vocab, seq_len, recompute,
                       flash_attention=0.0):
    """Hardware FLOPs per token (as HFU counts); see flops_per_token."""
    return flops_per_token(layers, hidden, heads, kv_heads, ffn_hidden, glu, vocab, seq_len, recompute,
                           flash_attention)[1]


def flops_per_token(layers, hidden, heads, kv_heads, ffn_hidden, glu, vocab, seq_len, recompute,
                    flash_attention=0.0, delta_fwd=0.0):
    """(model, hardware) FLOPs per token.

    Model: Megatron training.py num_floating_point_operations, 12·L·h²·(1 + kv/a + (ffn/h)·g + s/h)
    + 6·h·V with g = 3/2 for SwiGLU; equals PaLM App. B 6N + 12·L·h·s for a GELU MLP with ffn = 4h.
    Hardware adds the recomputed forward work. Full recomputation re-runs each layer's forward
    (Narayanan 2021 App.: 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)), the logit layer is not recomputed);
    selective recomputation re-runs only QKᵀ, softmax and PV (Korthikanti 2022 §5): + 4·s·h per layer
    and token, unless FlashAttention already avoids storing them (its in-kernel backward recomputation
    is not counted, as is customary for HFU). `delta_fwd`: forward FLOPs per token of the whole stack beyond the
    dense formula (MoE layers, MLA or another head width: moe.flops_delta_per_token), 0 for a dense model.
    """
    L = np.asarray(layers, np.float64)
    layer_fwd = layer_flops_per_token(hidden, heads, kv_heads, ffn_hidden, glu, seq_len)
    # forward + backward = 3 × forward, for the layers and the 2·h·V logit layer
    model = 3.0 * (L * layer_fwd + 2.0 * np.asarray(hidden) * vocab) + 3.0 * delta_fwd
    attn_fwd = 4.0 * np.asarray(seq_len, np.float64) * hidden * (1.0 - np.asarray(flash_attention))
    extra = np.where(recompute >= RECOMPUTE_FULL, layer_fwd,
                     np.where(recompute >= RECOMPUTE_SELECTIVE, attn_fwd, 0.0))
    return model, model + L * extra + np.where(recompute >= RECOMPUTE_FULL, delta_fwd, 0.0)
