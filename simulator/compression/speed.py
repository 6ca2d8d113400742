"""Speed-up of a compressed model over its dense 16-bit self on one accelerator: decode and prefill rooflines.

Per step, time = max(bytes / (bandwidth·η_mem), FLOPs / (peak·η_gemm)) (roofline, Williams et al. 2009, as in
LLM-Viewer, Yuan et al. 2024, arXiv 2402.16363). Decode (one sequence at 2,048 tokens of context) is bound by
reading the weights and the KV cache; prefill (one 2,048-token prompt) by the matrix multiplies.
"""

from __future__ import annotations

import numpy as np

from simulator.compression.constants import CONTEXT_TOKENS, DECODE_BATCH, FORMATS, SPARSITY_PATTERNS
from simulator.compression.hardware import Accelerator
from simulator.compression.storage import model_bytes


def kv_bytes_per_token(layers, hidden, heads, kv_heads, kv_bits) -> np.ndarray:
    # K and V per layer: 2 · kv_heads · head_dim values (Ainslie et al. 2023 for grouped KV heads)
    return 2.0 * layers * kv_heads * (hidden / heads) * np.asarray(kv_bits, dtype=float) / 8.0


def step_flops(params_compute, layers, hidden, tokens, context) -> np.ndarray:
    # Kaplan et al. 2020, §2.1: forward FLOPs per token ≈ 2N + 2·n_layer·n_ctx·d_model
    return tokens * (2.0 * params_compute + 2.0 * layers * context * hidden)


def compute_peak(hw: Accelerator, weight_bits, act_bits, kv_bits, quant_format) -> np.ndarray:
    """Peak TFLOP/s the matrix multiplies run at. LLM-Viewer (`get_hardware_info`) takes the int8 peak only when
    weights, activations and KV are all ≤ 8 bits; likewise fp8 (fp format, all ≤ 8) and fp4 (fp, all ≤ 4), where
    the chip has that unit; otherwise the 16-bit peak (weight-only formats are dequantized to 16 bits)."""
    widest = np.maximum(np.maximum(weight_bits, act_bits), kv_bits)
    fp = np.asarray(quant_format) == FORMATS.index("fp")
    peak = hw.peak16_tflops
    peak = np.where(~fp & (widest <= 8) & np.isfinite(hw.peak_int8_tflops), hw.peak_int8_tflops, peak)
    peak = np.where(fp & (widest <= 8) & np.isfinite(hw.peak_fp8_tflops), hw.peak_fp8_tflops, peak)
    return np.where(fp & (widest <= 4) & np.isfinite(hw.peak_fp4_tflops), hw.peak_fp4_tflops, peak)


def _roofline_s(bytes_, flops, bandwidth_GBps, hbm_eff, peak_tflops, gemm_eff) -> np.ndarray:
    return np.maximum(bytes_ / (bandwidth_GBps * 1e9 * hbm_eff), flops / (peak_tflops * 1e12 * gemm_eff))


def speedups(c, hw: Accelerator) -> tuple[np.ndarray, np.ndarray]:
    """(decode, prefill) speed-up for rows of model columns (see families/compression.py for the names)."""
    n, layers, hidden, heads, kv_heads = c["params"], c["layers"], c["hidden"], c["heads"], c["kv_heads"]
    wb, ab, kb, fmt = c["weight_bits"], c["act_bits"], c["kv_bits"], c["quant_format"]
    s, pattern = np.asarray(c["sparsity"], dtype=float), np.asarray(c["sparsity_pattern"])
    pruned = (np.asarray(c["pruning_method"]) > 0) & (s > 0)
    # which sparsity a kernel can use: fewer rows always; 2:4 at 50% only on sparse tensor cores; else none
    rows = pruned & (pattern == SPARSITY_PATTERNS.index("rows"))
    two_four = pruned & (pattern == SPARSITY_PATTERNS.index("2:4")) & (hw.sparse_2_4 > 0)
    usable_s = np.where(rows | two_four, s, 0.0)
    weights = model_bytes(n, wb, fmt, c["group_size"], hidden, usable_s, pattern)
    dense_weights = 2.0 * np.asarray(n, dtype=float)
    params_compute = np.where(rows | two_four, (1.0 - s) * n, n)  # 2:4 runs at twice the dense rate
    peak = compute_peak(hw, wb, ab, kb, fmt)
    weight_only = (np.asarray(wb) < 16) & (np.asarray(ab) >= 16)
    dequant = np.where(weight_only, 1.0 + c["dequant_overhead"], 1.0)  # QServe (Lin et al. 2024): 20-90% of GEMM
    out = []
    for tokens, context, kv_tokens in ((DECODE_BATCH, CONTEXT_TOKENS, DECODE_BATCH * CONTEXT_TOKENS),
                                       (CONTEXT_TOKENS, CONTEXT_TOKENS / 2.0, CONTEXT_TOKENS)):
        kv16 = kv_tokens * kv_bytes_per_token(layers, hidden, heads, kv_heads, 16.0)
        dense = _roofline_s(dense_weights + kv16, step_flops(n, layers, hidden, tokens, context), hw.hbm_GBps,
                            hw.hbm_eff, hw.peak16_tflops, hw.gemm_eff)
        comp = _roofline_s(weights + kv16 * np.asarray(kb) / 16.0,
                           step_flops(params_compute, layers, hidden, tokens, context) * dequant,
                           hw.hbm_GBps, hw.hbm_eff, peak, hw.gemm_eff)
        out.append(dense / comp)
    return out[0], out[1]
