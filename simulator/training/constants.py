"""Model constants of the training cost model, each with its source or fit note.

One frozen set (`DEFAULT_CONSTANTS`) serves every scenario: nothing here is tuned per row of any
benchmark. Hardware numbers (peak, bandwidths, latencies) are inputs, not constants.
"""

from dataclasses import dataclass, field, fields


def _c(value: float, source: str):
    return field(default=value, metadata={"source": source})


@dataclass(frozen=True)
class TrainingConstants:
    # --- matrix-multiply efficiency (efficiency.py) ---
    gemm_eff_max: float = _c(
        0.82,
        "assumed from public A100 bf16 cuBLAS sweeps: large GEMMs sustain ~80-88% of 312 TFLOP/s; "
        "checked (not fitted) against Megatron Table 1, see docs/training-model.md")
    gemm_dim_half: float = _c(
        96.0,
        "assumed: a GEMM dimension of this many elements halves the efficiency contributed by that "
        "dimension (smooth stand-in for Calculon's A100 system table, Isaev et al. 2023)")
    # --- memory-bound kernels (efficiency.py) ---
    hbm_eff: float = _c(
        0.70,
        "assumed: fraction of datasheet HBM bandwidth reached by elementwise kernels; Calculon "
        "A100 system (Isaev et al. 2023) uses 0.6-0.9 by size")
    cross_entropy_bytes_per_logit: float = _c(
        26.0,
        "derived: Megatron vocab-parallel cross entropy casts logits to fp32 and makes ~6 fp32 passes "
        "(max, sub, exp, sum, log, grad) plus the 2-byte logit read")
    optimizer_bytes_per_param: float = _c(
        36.0,
        "derived: fused Adam reads fp32 param, grad, m, v (16 B), writes param, m, v (12 B) and the "
        "2-byte compute copy, plus grad zeroing and norm (~6 B)")
    flash_attn_eff: float = _c(
        0.60,
        "published range: FlashAttention-2 reaches 50-73% of A100 peak (Dao 2023, abstract); used for "
        "the fused attention kernel when flash_attention = 1")
    flash_bwd_factor: float = _c(
        2.5,
        "derived: the FlashAttention backward runs 5 matmuls (QKᵀ recomputed, dV, dP, dQ, dK) against "
        "2 forward (Dao 2023 §3)")
    # --- collectives (comm.py) ---
    intra_link_eff: float = _c(
        0.77,
        "published: ~230 GB/s NCCL all-reduce busbw on 300 GB/s A100 NVLink (nccl-tests issue #149)")
    inter_link_eff: float = _c(
        0.90,
        "published: Calculon's A100 system (Isaev et al. 2023) InfiniBand efficiency 0.9")
    # --- mixture-of-experts (moe.py) ---
    a2a_eff: float = _c(
        1.0,
        "assumed: all-to-all reaches the all-reduce's share of the link (intra_link_eff / inter_link_eff); DeepEP "
        "(DeepSeek 2025, README) measures 153 GB/s dispatch on 160 GB/s H800 NVLink and 43-58 GB/s over 50 GB/s "
        "RDMA; a calibrated profile's all_to_all fit replaces it (busbw of all-to-all / busbw of all-reduce)")
    moe_gemm_eff: float = _c(
        1.0,
        "assumed: a grouped expert GEMM runs at the dense GEMM efficiency of its per-expert shape (the curve of "
        "efficiency.py already slows small ones); a calibrated profile's moe_layer fit replaces it")
    # --- asynchronous SGD and data order (sync.py) ---
    noniid_async_penalty: float = _c(
        0.25,
        "assumed, adjustable: extra fraction of updates when asynchronous workers read sequential "
        "(non-shuffled, non-iid) shards, scaled by (1 - 1/dp); direction from Hsieh et al. 2020 "
        "'The Non-IID Data Quagmire' and Bottou 2009 on reshuffling, magnitude not published")
    # --- working memory (memory.py) ---
    mask_bytes: float = _c(
        1.0,
        "Korthikanti et al. 2022 §4.1: dropout masks are stored as one byte per element")


DEFAULT_CONSTANTS = TrainingConstants()


def constant_sources(k: TrainingConstants = DEFAULT_CONSTANTS) -> dict[str, tuple[float, str]]:
    """Every constant with its value and source note, for docs and the UI's provenance view."""
    return {f.name: (getattr(k, f.name), f.metadata["source"]) for f in fields(k)}
