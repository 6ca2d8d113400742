"""Assumed constants of the serving model, each with its source; calibrated devices replace the device ones."""

from __future__ import annotations

# Share of datasheet HBM bandwidth a decode step reaches on a datasheet device (weights and KV cache streamed).
# Assumed 0.80: memory-bound GEMV/paged-attention kernels reach 75-90% of HBM bandwidth (LLM-Viewer, Yuan et al.
# 2024, arXiv 2402.16363, uses the datasheet bandwidth as the roofline; the training model's 0.70 is for small
# elementwise kernels, Calculon, Isaev et al. 2023). Spread in simulator.catalog.ASSUMED_SPREADS.
DECODE_MEM_EFF = 0.80
# Fixed time per engine step on a datasheet device: kernel launches under CUDA graphs plus the scheduler,
# assumed 0.5 ms (a compiled engine; an eager PyTorch loop pays several ms, as the calibrated profiles measure).
STEP_OVERHEAD_S = 5e-4
# Share of the memory left after the weights that the engine gives the KV cache: TensorRT-LLM's
# KvCacheConfig.free_gpu_memory_fraction default 0.9 (the rest is activations and workspace).
KV_MEMORY_FRACTION = 0.9
# 1 month = 365.25 / 12 days
HOURS_PER_MONTH = 365.25 * 24.0 / 12.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
