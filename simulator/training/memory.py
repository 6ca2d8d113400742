"""Memory per GPU: weights, gradients and optimizer states under ZeRO, plus activations."""

import numpy as np

from .codes import RECOMPUTE_FULL, RECOMPUTE_SELECTIVE
from .constants import DEFAULT_CONSTANTS, TrainingConstants
from .flops import ffn_matrices
from .layout import middle_stage_layers, stage_activations

GB = 1e9


def state_bytes_per_param(param_bytes):
    """(weight, gradient, optimizer) bytes per parameter for Adam.

    ZeRO (Rajbhandari 2020 §3): mixed precision keeps 2-byte weights and gradients and K = 12 bytes of
    fp32 master weight, momentum and variance. fp8 compute (param_bytes 1) keeps an fp8 weight copy,
    bf16 gradients and the same fp32 master (Micikevicius 2022 FP8 formats; Transformer Engine); fp32
    training (param_bytes 4) needs no master copy: 4 + 4 + 8.
    """
    w = np.asarray(param_bytes, np.float64)
    grad = np.maximum(w, 2.0)
    opt = 8.0 + np.where(w < 4.0, 4.0, 0.0)
    return w, grad, opt


def model_state_gb(params, tp, pp, dp, zero_stage, param_bytes):
    """Per-GPU weights, gradients, optimizer states in GB (1e9 B).

    ZeRO Fig. 1 (Rajbhandari et al. 2020): stage 1 shards optimizer states, 2 adds gradients, 3 adds weights,
    each over N_d = dp; under TP/PP, Ψ is first divided by t·p.
    """
    psi = params / (tp * pp)
    w, grad, opt = state_bytes_per_param(param_bytes)
    weights = psi * w / np.where(zero_stage >= 3, dp, 1.0)
    grads = psi * grad / np.where(zero_stage >= 2, dp, 1.0)
    optim = psi * opt / np.where(zero_stage >= 1, dp, 1.0)
    return weights / GB, grads / GB, optim / GB


def activation_bytes_per_layer(seq_len, micro_batch, hidden, heads, kv_heads, ffn_hidden, glu, tp,
                               sequence_parallel, recompute, act_bytes, flash_attention=0.0,
                               k: TrainingConstants = DEFAULT_CONSTANTS):
    """Stored activation bytes of one layer for one micro-batch on one GPU.

    Korthikanti et al. 2022 Table 2, generalised to GQA and GLU with Megatron's
    theoretical_memory_usage.py breakdown: sbh·(10 + 24/t + 5as/(ht)) at 2-byte activations;
    sequence parallelism also divides the 10·sbh by t; selective recomputation drops the 5as²b
    attention-score term, as does FlashAttention (Dao 2022), which keeps only fp32 softmax
    statistics (4 bytes per head and token); full recomputation keeps only the 2sbh layer input.
    """
    sbh = seq_len * micro_batch * hidden
    ab = act_bytes
    sp_div = np.where(sequence_parallel > 0, tp, 1.0)
    # LN1 and LN2 inputs, QKV and FC1 inputs, two dropout masks: 10·sbh at 2-byte activations
    replicated = (4.0 * ab + 2.0 * k.mask_bytes) * sbh / sp_div
    # Q, K, V, projection input, activation-function input(s), FC2 input: 24·sbh/t for MHA, ffn = 4h
    qkvo = ab * sbh * (2.0 + 2.0 * kv_heads / heads)
    mlp = ab * seq_len * micro_batch * ffn_hidden * ffn_matrices(glu)  # (1 + glu) act inputs + FC2 input
    split = (qkvo + mlp) / tp
    # softmax output, dropout mask, dropout output: 5·a·s²·b at 2-byte activations
    scores = (2.0 * ab + k.mask_bytes) * heads * seq_len * seq_len * micro_batch / tp
    flash_stats = 4.0 * heads * seq_len * micro_batch / tp
    scores = scores + flash_attention * (flash_stats - scores)
    full_store = replicated + split + np.where(recompute >= RECOMPUTE_SELECTIVE, 0.0, scores)
    checkpoint = ab * sbh / sp_div
    return np.where(recompute >= RECOMPUTE_FULL, checkpoint, full_store), replicated + split + scores


def activation_gb(layers, seq_len, micro_batch, hidden, heads, kv_heads, ffn_hidden, glu, vocab, tp, pp,
                  interleave, microbatches, sequence_parallel, recompute, act_bytes, flash_attention=0.0,
                  k: TrainingConstants = DEFAULT_CONSTANTS, first_stage_layers=None, last_stage_layers=None, cp=1.0,
                  extra_layer_bytes=None):
    """Activation GB on the worst pipeline stage.

    1F1B: stage i (0-based) holds min(p - i, m) micro-batches of its own layers (Narayanan 2021 §2.2);
    the first stage's first layer input is the embedding output, the last stage also holds fp16
    logits and two fp32 copies for the loss (Megatron theoretical_memory_usage.py); the worst of the
    first, the fullest middle and the last stage counts. `first_stage_layers` / `last_stage_layers`:
    the split used (layout.stage_split), ⌈L/p⌉ each when None. Interleaving (even split) multiplies the
    first stage's p micro-batches by 1 + (p-1)/(p·v) (same file, Korthikanti §4.2.3). Full
    recomputation re-materialises one layer at a time, so one layer's full activations are added. Context
    parallelism (`cp`) keeps s/cp of each sequence per GPU (its attention scores as (s/cp)², a lower bound: fused
    attention, the default, stores none); `extra_layer_bytes`: stored bytes per layer beyond a dense one's (MoE).
    """
    seq_len = seq_len / cp
    stored, one_layer_full = activation_bytes_per_layer(
        seq_len, micro_batch, hidden, heads, kv_heads, ffn_hidden, glu, tp, sequence_parallel, recompute,
        act_bytes, flash_attention, k)
    if extra_layer_bytes is not None:
        stored = stored + np.where(recompute >= RECOMPUTE_FULL, 0.0, extra_layer_bytes)
        one_layer_full = one_layer_full + extra_layer_bytes
    layers_per_stage = np.ceil(layers / pp)
    first = layers_per_stage if first_stage_layers is None else first_stage_layers
    last = layers_per_stage if last_stage_layers is None else last_stage_layers
    working = np.where(recompute >= RECOMPUTE_FULL, one_layer_full, 0.0)
    logits = seq_len * micro_batch * vocab / tp * (act_bytes + 8.0)
    # 1F1B, Narayanan 2021 §2.2: min(p - i, m) micro-batches on stage i (the embedding output is the
    # first layer's input, already among its stored tensors)
    a_first, a_middle, a_last = stage_activations(pp, first, middle_stage_layers(layers, pp, first, last), last,
                                                  microbatches, stored, logits)
    one_f1b = np.maximum(np.maximum(a_first, a_middle), a_last)
    # interleaved, Korthikanti 2022 §4.2.3 / Megatron theoretical_memory_usage.py: p·(1 + (p-1)/(p·v))
    # micro-batches of L/p layers on the first stage
    interleaved = np.maximum((pp + (pp - 1.0) / interleave) * layers_per_stage * stored
                             + np.where(pp <= 1, logits, 0.0), layers_per_stage * stored + logits)
    return (np.where(interleave > 1, interleaved, one_f1b) + working) / GB
