"""Scenario(s) -> the column arrays the vectorised models take, and the codes of categorical inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from simulator.catalog import HardwareSpec, all_devices, registry_version
from simulator.scenario import PRECISIONS, RECOMPUTE, SHARDING, SYNC_METHODS, Scenario
from simulator.training.constants import DEFAULT_CONSTANTS

CODES: dict[str, tuple[str, ...]] = {
    "training.recompute": RECOMPUTE,
    "cluster.sync": SYNC_METHODS,
    "training.sharding": SHARDING,
}
# bytes per weight / activation element in the compute dtype; fp8 training keeps bf16 weights and stores
# activations in bf16 (NVIDIA Transformer Engine recipe), so only its GEMM peak changes
PARAM_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 2.0, "fp32": 4.0, "tf32": 4.0}
ACT_BYTES = PARAM_BYTES

# column name -> dotted scenario key, for inputs copied as numbers
NUMERIC = {
    "layers": "model.layers",
    "hidden": "model.hidden",
    "heads": "model.heads",
    "kv_heads": "model.kv_heads",
    "ffn_hidden": "model.ffn_hidden",
    "vocab": "model.vocab",
    "seq_len": "model.seq_len",
    "params": "model.params",
    "tokens": "training.tokens",
    "global_batch": "training.global_batch_seqs",
    "micro_batch": "training.micro_batch_seqs",
    "zero_stage": "training.zero_stage",
    "interleave": "training.interleave",
    "gpus": "cluster.gpus",
    "gpus_per_node": "cluster.gpus_per_node",
    "tp": "cluster.tp",
    "pp": "cluster.pp",
    "ps_servers": "cluster.ps_servers",
    "async_kappa": "cluster.async_kappa",
    "straggler_cv": "cluster.straggler_cv",
    "dp_overlap": "cluster.dp_overlap",
    "gpu_hour_usd": "finance.gpu_hour_usd",
    "server_power_factor": "finance.server_power_factor",
    "power_utilization": "finance.power_utilization",
    "pue": "finance.pue",
    "co2_kg_per_kwh": "finance.co2_kg_per_kwh",
}
HARDWARE_COLUMNS = ("hbm_GB", "hbm_GBps", "intra_GBps", "intra_latency_s", "inter_GBps", "inter_latency_s", "tdp_W", "gemm_eff_max")


def get_value(scenario: Scenario, dotted: str):
    section, _, name = dotted.partition(".")
    return getattr(getattr(scenario, section), name)


@lru_cache(maxsize=4)
def _cached_table(version: int) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    return hardware_table(all_devices())


def default_hardware_table() -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """The table of every known device, rebuilt only when a calibrated device is registered."""
    all_devices()
    return _cached_table(registry_version())


def hardware_table(catalog: Mapping[str, HardwareSpec]) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Accelerator ids and per-id arrays (peak per precision as `peak_<precision>`, NaN where absent)."""
    ids = tuple(catalog)
    specs = [catalog[i] for i in ids]
    table = {
        "hbm_GB": np.array([s.hbm_GB for s in specs]),
        "hbm_GBps": np.array([s.hbm_GBps for s in specs]),
        "intra_GBps": np.array([s.intra_node_GBps for s in specs]),
        "intra_latency_s": np.array([s.intra_node_latency_s for s in specs]),
        "inter_GBps": np.array([s.inter_node_GBps for s in specs]),
        "inter_latency_s": np.array([s.inter_node_latency_s for s in specs]),
        "tdp_W": np.array([s.tdp_W for s in specs]),
        "gpu_hour_usd": np.array([s.gpu_hour_usd for s in specs]),
        "gpus_per_node": np.array([float(s.gpus_per_node) for s in specs]),
        "gemm_eff_max": np.array([s.gemm_eff_max or DEFAULT_CONSTANTS.gemm_eff_max for s in specs]),
    }
    for p in PRECISIONS:
        table[f"peak_{p}"] = np.array([_peak_or_nan(s, p) for s in specs])
    return ids, table


def _peak_or_nan(spec: HardwareSpec, precision: str) -> float:
    try:
        return spec.peak_for(precision)
    except ValueError:
        return float("nan")


def hardware_columns(accel_index: np.ndarray, precision_index: np.ndarray, table: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    cols = {name: table[name][accel_index] for name in HARDWARE_COLUMNS}
    peaks = np.stack([table[f"peak_{p}"] for p in PRECISIONS])  # (precision, accelerator)
    cols["peak_tflops"] = peaks[precision_index, accel_index]
    return cols


def scenario_columns(scenarios: Sequence[Scenario], overrides: Mapping[str, HardwareSpec] | None = None) -> dict[str, np.ndarray]:
    """Columns for a few resolved scenarios (a sweep builds its columns without Scenario objects)."""
    cols: dict[str, np.ndarray] = {
        name: np.array([float(get_value(s, key)) for s in scenarios]) for name, key in NUMERIC.items()
    }
    for key, allowed in CODES.items():
        cols[key.split(".")[1]] = np.array([float(allowed.index(get_value(s, key))) for s in scenarios])
    cols["glu"] = np.array([1.0 if s.model.mlp == "swiglu" else 0.0 for s in scenarios])
    cols["sequence_parallel"] = np.array([1.0 if s.training.sequence_parallel else 0.0 for s in scenarios])
    cols["flash_attention"] = np.array([1.0 if s.training.flash_attention else 0.0 for s in scenarios])
    cols["dp"] = cols["gpus"] / (cols["tp"] * cols["pp"])
    cols["param_bytes"] = np.array([PARAM_BYTES[s.training.precision] for s in scenarios])
    cols["act_bytes"] = np.array([ACT_BYTES[s.training.precision] for s in scenarios])
    ids, table = hardware_table({**all_devices(), **overrides}) if overrides else default_hardware_table()
    accel = np.array([ids.index(s.cluster.accelerator) for s in scenarios])
    prec = np.array([PRECISIONS.index(s.training.precision) for s in scenarios])
    cols.update(hardware_columns(accel, prec, table))
    return cols
