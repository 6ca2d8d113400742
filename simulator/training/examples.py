"""Reference scenarios as input columns: a starting point for tests, notebooks and benchmarks."""

import numpy as np

from .codes import RECOMPUTE_FULL, SHARDING_RANDOM, SYNC_RING
from .flops import params_from_shape

# A100-80GB SXM in a DGX A100 node (NVIDIA datasheets; latencies as in Calculon's A100 system, Isaev et al. 2023)
A100_80GB = {
    "peak_tflops": 312.0, "hbm_GB": 80.0, "hbm_GBps": 2039.0,
    "intra_GBps": 300.0, "intra_latency_s": 10e-6,   # NVLink 3: 600 GB/s bidirectional
    "inter_GBps": 25.0, "inter_latency_s": 20e-6,    # 8× HDR 200 Gb/s per node = 25 GB/s per GPU
    "gpus_per_node": 8.0, "tdp_W": 400.0, "gpu_hour_usd": 1.59,
}

# Epoch AI defaults (Cottier et al. 2024): server power 1.82× TDP, 75% average draw, PUE 1.1
EPOCH_ENERGY = {"server_power_factor": 1.82, "power_utilization": 0.75, "pue": 1.10, "co2_kg_per_kwh": 0.4}

SYNC_DEFAULTS = {"sync": float(SYNC_RING), "ps_servers": 1.0, "async_kappa": 0.0, "straggler_cv": 0.0,
                 "sharding": float(SHARDING_RANDOM),
                 "dp_overlap": 0.0}


def gpt_columns(layers, hidden, heads, seq_len=2048.0, vocab=51200.0, **overrides) -> dict[str, np.ndarray]:
    """A GPT (GELU MLP, ffn = 4h, MHA) trained with Megatron defaults on A100-80GB; override any column."""
    cols = {
        "layers": layers, "hidden": hidden, "heads": heads, "kv_heads": heads, "ffn_hidden": 4.0 * hidden,
        "glu": 0.0, "vocab": vocab, "seq_len": seq_len,
        "tokens": 300e9, "global_batch": 1536.0, "micro_batch": 1.0, "recompute": float(RECOMPUTE_FULL),
        "zero_stage": 0.0,
        "sequence_parallel": 0.0, "interleave": 1.0, "param_bytes": 2.0, "act_bytes": 2.0,
        "gpus": 1024.0, "tp": 8.0, "pp": 8.0, "dp": 16.0,
        **SYNC_DEFAULTS, **A100_80GB, **EPOCH_ENERGY,
    }
    cols.update(overrides)
    if "params" not in overrides:
        cols["params"] = params_from_shape(cols["layers"], cols["hidden"], cols["heads"], cols["kv_heads"],
                                           cols["ffn_hidden"], cols["glu"], cols["vocab"])
    return {key: np.asarray(v, dtype=np.float64) for key, v in cols.items()}


def gpt3_175b_columns(**overrides) -> dict[str, np.ndarray]:
    """GPT-3 175B (Brown et al. 2020 Table 2.1: L 96, h 12288, 96 heads, s 2048, V 50257) on 1024 A100."""
    return gpt_columns(96.0, 12288.0, 96.0, seq_len=2048.0, vocab=50257.0, **overrides)
