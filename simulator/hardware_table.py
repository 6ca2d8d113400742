"""Accelerators as arrays: one row per device, so a million scenarios look their hardware up by index."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from simulator.catalog import HardwareSpec
from simulator.compression.hardware import DEVICE_COLUMNS as COMPRESSION_COLUMNS
from simulator.compression.hardware import device_row as compression_row
from simulator.families.training_inputs import PRECISIONS
from simulator.training.constants import DEFAULT_CONSTANTS

# bytes per weight / activation element in the compute dtype; fp8 training keeps bf16 weights and stores
# activations in bf16 (NVIDIA Transformer Engine recipe), so only its GEMM peak changes
PARAM_BYTES = np.array([{"bf16": 2.0, "fp16": 2.0, "fp8": 2.0, "fp32": 4.0, "tf32": 4.0}[p] for p in PRECISIONS])
PER_DEVICE = ("hbm_GB", "hbm_GBps", "intra_GBps", "intra_latency_s", "inter_GBps", "inter_latency_s", "tdp_W",
              "gemm_eff_max", "gemm_dim_half", "hbm_eff", "hw_gpu_hour_usd", "hw_gpus_per_node", *COMPRESSION_COLUMNS)


def _peak_or_nan(spec: HardwareSpec, precision: str) -> float:
    try:
        return spec.peak_for(precision)
    except ValueError:
        return float("nan")


def _row(s: HardwareSpec) -> dict[str, float]:
    k = DEFAULT_CONSTANTS
    return {
        "hbm_GB": s.hbm_GB, "hbm_GBps": s.hbm_GBps, "intra_GBps": s.intra_node_GBps,
        "intra_latency_s": s.intra_node_latency_s, "inter_GBps": s.inter_node_GBps,
        "inter_latency_s": s.inter_node_latency_s, "tdp_W": s.tdp_W,
        "gemm_eff_max": k.gemm_eff_max if s.gemm_eff_max is None else s.gemm_eff_max,
        "gemm_dim_half": k.gemm_dim_half if s.gemm_dim_half is None else s.gemm_dim_half,
        "hbm_eff": k.hbm_eff, "hw_gpu_hour_usd": s.gpu_hour_usd, "hw_gpus_per_node": float(s.gpus_per_node),
        **compression_row(s),  # peaks per number format and 2:4 support (simulator/compression/hardware.py)
    }


class HardwareTable:
    """Device ids and per-id arrays; `columns(device_index, precision_code)` gives every row its hardware."""

    def __init__(self, devices: Mapping[str, HardwareSpec]):
        self.ids: tuple[str, ...] = tuple(devices)
        self.specs: tuple[HardwareSpec, ...] = tuple(devices.values())
        rows = [_row(s) for s in self.specs]
        self.table = {name: np.array([r[name] for r in rows]) for name in PER_DEVICE}
        self.peaks = np.array([[_peak_or_nan(s, p) for s in self.specs] for p in PRECISIONS])  # (precision, device)

    def index(self, device_id: str) -> int:
        return self.ids.index(device_id)

    def columns(self, device: np.ndarray, precision: np.ndarray) -> dict[str, np.ndarray]:
        device = device.astype(np.intp)
        precision = precision.astype(np.intp)
        cols = {name: values[device] for name, values in self.table.items()}
        cols["peak_tflops"] = self.peaks[precision, device]
        cols["param_bytes"] = PARAM_BYTES[precision]
        cols["act_bytes"] = cols["param_bytes"]
        return cols


_CACHE: dict[tuple[tuple[str, int], ...], HardwareTable] = {}
_CACHE_SIZE = 16


def hardware_table(devices: Mapping[str, HardwareSpec]) -> HardwareTable:
    """The table of `devices`, built once per distinct set of device objects (the table keeps them alive, so
    an object id in the key is never reused while its entry exists)."""
    key = tuple((name, id(spec)) for name, spec in devices.items())
    table = _CACHE.get(key)
    if table is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        table = _CACHE[key] = HardwareTable(devices)
    return table
