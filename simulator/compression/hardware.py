"""The one place the compression model looks up its accelerator: peaks per number format and the 2:4 flag.

`device_row(spec)` gives the per-device columns the hardware table carries (`hw_peak_*_tflops`, NaN where the
chip has no such unit, and `hw_sparse_2_4`); `accelerator(cols)` picks them out of a row block. Both are
read from the serving accelerator's columns when the serving family declares one (else the training one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

HARDWARE_JSON = Path(__file__).resolve().parent.parent / "data" / "hardware.json"
DEVICE_COLUMNS = ("hw_peak16_tflops", "hw_peak_int8_tflops", "hw_peak_fp8_tflops", "hw_peak_fp4_tflops",
                  "hw_sparse_2_4")


@lru_cache(maxsize=1)
def _datasheet_flags() -> dict[str, dict[str, Any]]:
    """The `compression` object of each datasheet accelerator in hardware.json (2:4 support, fp4 peak)."""
    data = json.loads(HARDWARE_JSON.read_text(encoding="utf-8"))
    return {acc_id: dict(raw.get("compression", {})) for acc_id, raw in data["accelerators"].items()}


def device_row(spec: Any) -> dict[str, float]:
    """Per-device compression columns of a HardwareSpec: a calibrated device not in the datasheet catalog claims
    no 2:4 support and no fp4 unit (nothing measured says it has them)."""
    peaks = spec.peak_tflops
    flags = _datasheet_flags().get(spec.id, {})
    nan = float("nan")
    return {
        "hw_peak16_tflops": float(peaks.get("bf16", peaks.get("fp16", peaks.get("fp32", nan)))),
        "hw_peak_int8_tflops": float(peaks.get("int8", nan)),
        "hw_peak_fp8_tflops": float(peaks.get("fp8", nan)),
        "hw_peak_fp4_tflops": float(flags.get("fp4_tflops", nan)),
        "hw_sparse_2_4": 1.0 if flags.get("sparse_2_4", False) else 0.0,
    }


@dataclass(frozen=True)
class Accelerator:
    """What the speed model needs of the chip, per row."""

    hbm_GBps: np.ndarray
    hbm_eff: np.ndarray
    gemm_eff: np.ndarray
    peak16_tflops: np.ndarray
    peak_int8_tflops: np.ndarray
    peak_fp8_tflops: np.ndarray
    peak_fp4_tflops: np.ndarray
    sparse_2_4: np.ndarray  # 1.0 where the chip runs 2:4 sparse matrix multiplies at twice the dense rate


SERVING_PREFIX = "serving_hw_"  # the serving accelerator's hardware columns (simulator.hardware_table.device_prefix)


def accelerator(c) -> Accelerator:
    """The accelerator the compressed model runs on: the serving accelerator where the serving family declares one,
    else the training accelerator."""
    p = SERVING_PREFIX if f"{SERVING_PREFIX}hbm_GBps" in c else ""

    def col(name: str) -> np.ndarray:
        return c[f"{p}{name.removeprefix('hw_')}" if p else name]

    return Accelerator(col("hbm_GBps"), col("hbm_eff"), col("gemm_eff_max"), col("hw_peak16_tflops"),
                       col("hw_peak_int8_tflops"), col("hw_peak_fp8_tflops"), col("hw_peak_fp4_tflops"),
                       col("hw_sparse_2_4"))
