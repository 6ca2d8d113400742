"""Assumed constants of the serving model, each with its source; calibrated devices replace the device ones."""

from __future__ import annotations

# Share of datasheet HBM bandwidth a decode step reaches on a datasheet device (weights and KV cache streamed).
# Assumed 0.80: memory-bound GEMV/paged-attention kernels reach 75-90% of HBM bandwidth (LLM-Viewer, Yuan et al.
# 2024, arXiv 2402.16363, uses the datasheet bandwidth as the roofline; the training model's 0.70 is for small
# elementwise kernels, Calculon, Isaev et al. 2023). Spread in simulator.catalog.ASSUMED_SPREADS.
DECODE_MEM_EFF = 0.80
# Fixed time per engine step on a datasheet device: kernel launches and the gaps between them, the scheduler's and
# sampler's host work and the per-step response path (an eager PyTorch loop pays several ms, as the calibrated
# profiles measure). No published per-step figure was found, so this is a GLOBAL CORRECTION FITTED ON ONE SET AND
# CHECKED ON OTHERS: fitted on benchmarks/published/serving_trtllm_online.json (TensorRT-LLM 0.14 through Triton,
# BF16, Llama 3.1 8B TP1 and 70B TP4 on H100/H200, 2-32 requests/s: mean inter-token latency, 47 rows), the value
# at which the median ln(predicted / published) time per output token is 0 (2.89 ms); checked on the max-throughput
# sets serving_trtllm (release 1.0) and serving_trtllm_v017, whose median signed log-error it moves from +0.046 to
# +0.001 and from +0.051 to +0.019 (docs/serving.md). Until 2026-12-07 an assumed 0.5 ms.
STEP_OVERHEAD_S = 2.9e-3
# FP8 (and int8) GEMMs reach a smaller share of their doubled peak than 16-bit ones: measured on an H800 (FP8 dense
# peak 1,979 TFLOP/s), M = N = 8192 FP8 GEMMs reach 1,174 / 1,378 / 1,461 / 1,523 TFLOP/s at K = 2048 / 4096 / 8192
# / 16384 (tile-ai TileLang, benchmark/matmul_fp8/README.md, commit 6b1faf7, read in xwhzz/tilelang); the GEMM curve
# eff_max / (1 + d½(1/m + 1/n + 1/k)) with the model's d½ = 96 fits them with eff_max 0.73 (least squares over K >= 2048,
# the sizes of these models' layers), against the 0.82 assumed for 16-bit GEMMs (training constants). DeepGEMM's
# hand-tuned FP8 kernels: "1350+" TFLOP/s at release, "up to 1550" later (deepseek-ai/DeepGEMM README, 2025-04-18
# entry): 0.68-0.78 of peak. A low-precision GEMM's eff_max is the device's 16-bit one times this ratio (a
# calibrated device's fitted curve is scaled the same way).
LOW_PRECISION_GEMM_EFF_RATIO = 0.73 / 0.82
# Speed of a served mixture-of-experts layer relative to the roofline of its experts' GEMMs (the larger of their
# FLOPs at the GEMM curve and their weight reads at the decode streaming rate) on a datasheet device: what the
# routing, top-k, activation quantisation, permutation (scatter to experts) and finalize (weighted gather) kernels
# around the grouped GEMMs, and the grouped GEMMs' own tile waste, cost. One profile of TensorRT-LLM's CUTLASS MoE
# path (Qwen3-Next-80B decode, nsys) found the GEMMs 29% of the MoE layers' time (Morph, "Morph-Decode", 2026-04-09,
# morphllm.com/blog/morph-decode). No per-layer figure at serving batch sizes was found, so this is a GLOBAL
# CORRECTION FITTED ON ONE SET AND CHECKED ON OTHERS: fitted on the H200 and B200 rows of
# benchmarks/published/serving_trtllm_moe.json (TensorRT-LLM Performance Overview, maximum throughput, GPT-OSS,
# Qwen3, Llama 4 Maverick and DeepSeek-R1), the value at which their median ln(predicted / published) output
# tokens/s per GPU is 0; checked on that set's H100 rows, the four of the MoE issue among them (docs/serving.md,
# `python -m benchmarks.serving_moe_eff`). A calibrated device's moe_layer fit replaces it. Before 2026-12-07
# (night): 1.0, the experts at their GEMM roofline, which over-predicted these rows by a median 49%.
SERVING_MOE_EFF = 0.42
# Share of the memory left after the weights that the engine gives the KV cache: TensorRT-LLM's
# KvCacheConfig.free_gpu_memory_fraction default 0.9 (the rest is activations and workspace).
KV_MEMORY_FRACTION = 0.9
# 1 month = 365.25 / 12 days
HOURS_PER_MONTH = 365.25 * 24.0 / 12.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
