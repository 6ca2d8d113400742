"""Accelerators as arrays: one row per device, so a million scenarios look their hardware up by index.

Every device-kind input gets the same hardware columns. The training cluster's (`cluster.accelerator`, model column
`accelerator`) keep their historic names (`hbm_GBps`, `hw_gpu_hour_usd`, `peak_tflops` at the training precision,
...); another device input's columns are prefixed by its column name less "accelerator", with `hw_` (model column
`serving_accelerator`: `serving_hw_hbm_GBps`, `serving_hw_peak_fp8_tflops`, ...). `hw_column` is that rule.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from threading import Lock
from types import MappingProxyType

import numpy as np

from simulator.catalog import PRECISIONS as DEVICE_DTYPES
from simulator.catalog import HardwareSpec
from simulator.compression.hardware import DEVICE_COLUMNS as COMPRESSION_COLUMNS
from simulator.compression.hardware import device_row as compression_row
from simulator.data_order import COLUMNS as DATA_ORDER_COLUMNS
from simulator.families.training_inputs import PRECISIONS
from simulator.serving.constants import DECODE_MEM_EFF, SERVING_MOE_EFF, STEP_OVERHEAD_S
from simulator.training.constants import DEFAULT_CONSTANTS

# bytes per weight / activation element in the compute dtype; fp8 training keeps bf16 weights and stores
# activations in bf16 (NVIDIA Transformer Engine recipe), so only its GEMM peak changes
PARAM_BYTES = np.array([{"bf16": 2.0, "fp16": 2.0, "fp8": 2.0, "fp32": 4.0, "tf32": 4.0}[p] for p in PRECISIONS])
PER_DEVICE = ("hbm_GB", "hbm_GBps", "intra_GBps", "intra_latency_s", "inter_GBps", "inter_latency_s", "tdp_W",
              "gemm_eff_max", "gemm_dim_half", "hbm_eff", "hw_gpu_hour_usd", "hw_gpus_per_node", "hw_purchase_usd",
              "decode_mem_eff", "step_overhead_s", "decode_kv_eff", "elementwise_eff", "a2a_eff", "moe_gemm_eff", "serve_moe_eff", *(f"hw_peak_{d}_tflops" for d in DEVICE_DTYPES),
              *DATA_ORDER_COLUMNS)
PER_DEVICE += tuple(c for c in COMPRESSION_COLUMNS if c not in PER_DEVICE)  # 16-bit and fp4 peaks, 2:4 support
NAN = float("nan")
FP8 = PRECISIONS.index("fp8")


def device_prefix(column: str) -> str:
    """The prefix of a device input's hardware columns: "" for the cluster's `accelerator`, else "<x>_hw_"."""
    head = column.removesuffix("accelerator")
    return f"{head}hw_" if head else ""


def hw_column(prefix: str, name: str) -> str:
    """The model column of hardware field `name` (as in PER_DEVICE) for a device input of `prefix`."""
    return f"{prefix}{name.removeprefix('hw_')}" if prefix else name


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
        "hw_purchase_usd": NAN if s.purchase_usd is None else s.purchase_usd,
        "decode_mem_eff": DECODE_MEM_EFF if s.decode_mem_eff is None else s.decode_mem_eff,
        "step_overhead_s": STEP_OVERHEAD_S if s.step_overhead_s is None else s.step_overhead_s,
        # decode attention reads the KV cache at the decode streaming rate unless a profile measured its own
        "decode_kv_eff": ((DECODE_MEM_EFF if s.decode_mem_eff is None else s.decode_mem_eff)
                          if s.decode_kv_eff is None else s.decode_kv_eff),
        # inference's norms, activations and residual adds run at the assumed memory efficiency unless fitted
        "elementwise_eff": k.hbm_eff if s.elementwise_eff is None else s.elementwise_eff,
        "a2a_eff": k.a2a_eff if s.a2a_eff is None else s.a2a_eff,
        "moe_gemm_eff": k.moe_gemm_eff if s.moe_gemm_eff is None else s.moe_gemm_eff,
        # serving's MoE layers: a calibrated device's moe_layer fit, else the correction fitted on published serving
        "serve_moe_eff": SERVING_MOE_EFF if s.moe_gemm_eff is None else s.moe_gemm_eff,
        **{f"hw_peak_{d}_tflops": s.peak_tflops.get(d, NAN) for d in DEVICE_DTYPES},
        **compression_row(s),  # 16-bit and fp4 peaks, 2:4 support (simulator/compression/hardware.py)
        # a calibrated device's measured data-order effect (simulator/data_order.py), else NaN: the assumed constant
        **{c: (s.data_order or {}).get(c, NAN) for c in DATA_ORDER_COLUMNS},
    }


class HardwareTable:
    """Device ids and per-id arrays; `columns(device_index, precision_code)` gives every row its hardware."""

    def __init__(self, devices: Mapping[str, HardwareSpec]):
        self.ids: tuple[str, ...] = tuple(devices)
        self.specs: tuple[HardwareSpec, ...] = tuple(devices.values())
        rows = [_row(s) for s in self.specs]
        # read-only: one table is shared by every plan on equal devices (see `hardware_table`)
        self.table: Mapping[str, np.ndarray] = MappingProxyType(
            {name: _read_only(np.array([r[name] for r in rows])) for name in PER_DEVICE})
        self.peaks = _read_only(np.array([[_peak_or_nan(s, p) for s in self.specs] for p in PRECISIONS]))  # (precision, device)

    def index(self, device_id: str) -> int:
        return self.ids.index(device_id)

    def columns(self, device: np.ndarray, precision: np.ndarray | None = None, prefix: str = "") -> dict[str, np.ndarray]:
        """The hardware columns of each row's device, named for a device input of `prefix` (see `hw_column`);
        with `precision` (the training cluster's), also its peak and element bytes at that precision."""
        device = device.astype(np.intp)
        cols = {hw_column(prefix, name): values[device] for name, values in self.table.items()}
        if precision is None:
            return cols
        precision = precision.astype(np.intp)
        cols["peak_tflops"] = self.peaks[precision, device]
        cols["param_bytes"] = PARAM_BYTES[precision]
        cols["act_bytes"] = cols["param_bytes"]
        # fp8 training runs the GEMMs in fp8 and attention in bf16 (NVIDIA Transformer Engine: fp8 for Linear layers)
        fp8 = precision == FP8
        cols["gemm_fp8"] = fp8.astype(float)
        cols["attn_peak_tflops"] = np.where(fp8, self.table["hw_peak_bf16_tflops"][device], cols["peak_tflops"])
        return cols


# The tables built lately, by their device ids in order. An entry serves a call only when its specs equal the
# call's by value (the dataclass's `==`): equal catalogs share one table, and a spec changed under the same id gets
# a table of its own, never a stale one. Why keep any: a plan looks its table up about 12 times, and building the
# 13 known devices' table takes about 90 µs; why not a hash of the specs' contents as the key: hashing every field
# of 13 specs takes longer (about 140 µs) than the build, while comparing them takes under 1 µs (the same objects,
# as `all_devices` returns) to about 16 µs (equal copies). Bounded; a lock, since app sessions run in threads.
TABLES_KEPT = 16
_tables: OrderedDict[tuple[str, ...], tuple[tuple[HardwareSpec, ...], HardwareTable]] = OrderedDict()
_tables_lock = Lock()


def _read_only(values: np.ndarray) -> np.ndarray:
    values.flags.writeable = False
    return values


def hardware_table(devices: Mapping[str, HardwareSpec]) -> HardwareTable:
    """The table of `devices`, built once per distinct catalog (ids and specs, compared by value) among the
    TABLES_KEPT used last; its arrays are read-only, since equal catalogs share it."""
    ids, specs = tuple(devices), tuple(devices.values())
    with _tables_lock:
        kept = _tables.get(ids)
        if kept is None or kept[0] != specs:
            kept = _tables[ids] = (specs, HardwareTable(devices))
        _tables.move_to_end(ids)
        while len(_tables) > TABLES_KEPT:
            _tables.popitem(last=False)
        return kept[1]
