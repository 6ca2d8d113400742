"""Hardware catalog: accelerator specs read from `simulator/data/hardware.json` by one validated loader."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_CATALOG_PATH = Path(__file__).parent / "data" / "hardware.json"
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
SOURCE_GROUPS = ("peak_tflops", "hbm", "intra_node", "inter_node", "tdp", "price")
PROVENANCES = ("datasheet", "fitted", "measured", "assumed")  # where one group of a spec's numbers came from
# Assumed one-sigma relative spreads of the model columns a datasheet device sets (a datasheet states a peak,
# not what kernels reach), keyed by the training model's column names; all four are assumptions, not fits.
ASSUMED_SPREADS = {
    "gemm_eff_max": 0.10,  # public cuBLAS sweeps: large GEMMs at ~80-88% of peak; ±10% over libraries, shapes
    "hbm_eff": 0.10,       # Calculon A100 system (Isaev et al. 2023): memory efficiency 0.6-0.9 by size; ±10% about the 0.7 used
    "intra_GBps": 0.15,    # NCCL busbw/NVLink 0.77 is one point (nccl-tests #149); ±15% over topologies, sizes
    "inter_GBps": 0.15,    # Calculon's InfiniBand efficiency 0.9; ±15% over fabrics, rail layouts, message sizes
    "decode_mem_eff": 0.10,  # serving decode's share of datasheet HBM bandwidth (simulator/serving/constants.py); ±10%
}
SPREAD_LABELS = {"gemm_eff_max": "GEMM efficiency of the accelerator", "gemm_dim_half": "GEMM efficiency ramp",
                 "hbm_eff": "memory-bandwidth efficiency", "intra_GBps": "intra-node bandwidth",
                 "inter_GBps": "inter-node bandwidth", "decode_mem_eff": "decode memory-bandwidth efficiency",
                 "step_overhead_s": "fixed time per serving step",
                 "elementwise_eff": "elementwise (norms, activations) bandwidth efficiency",
                 "decode_kv_eff": "decode KV-cache read efficiency",
                 "a2a_eff": "all-to-all efficiency relative to all-reduce",
                 "moe_gemm_eff": "MoE layer speed relative to its dense GEMMs",
                 "seq_sync_lo": "sequential shards' extra updates, sync, fewest workers",
                 "seq_sync_hi": "sequential shards' extra updates, sync, most workers",
                 "seq_async_lo": "sequential shards' extra updates, async, fewest workers",
                 "seq_async_hi": "sequential shards' extra updates, async, most workers"}
_POSITIVE_FIELDS = ("hbm_GB", "hbm_GBps", "intra_node_GBps", "intra_node_latency_us", "inter_node_GBps",
                    "inter_node_latency_us", "gpus_per_node", "tdp_W", "gpu_hour_usd")
_ALIASES = {"h100": "H100-SXM", "h100sxm5": "H100-SXM", "h100pcie80gb": "H100-PCIe", "a100": "A100-80GB-SXM",
            "a10080gb": "A100-80GB-SXM", "a100sxm": "A100-80GB-SXM", "a100sxm440gb": "A100-40GB",
            "h200sxm": "H200", "h800sxm": "H800", "b200sxm": "B200", "mi300": "MI300X"}


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the accelerator and the field."""


class UnknownAccelerator(KeyError, ValueError):  # noqa: N818 (name fixed by the callers' API)
    """No accelerator matches the name; the message lists the known ids and the closest one."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class HardwareSpec:
    id: str
    display_name: str
    vendor: str
    peak_tflops: Mapping[str, float]  # dense (no sparsity), per dtype
    hbm_GB: float
    hbm_GBps: float
    intra_node_GBps: float  # per GPU, one direction
    intra_node_latency_s: float
    inter_node_GBps: float  # per GPU, one direction
    inter_node_latency_s: float
    gpus_per_node: int
    tdp_W: float
    gpu_hour_usd: float
    price_date: str  # ISO date the price was seen
    sources: Mapping[str, str]  # one per group in SOURCE_GROUPS
    provenance: str = "datasheet"  # device level: "fitted" when any group is fitted (see provenance_of)
    gemm_eff_max: float | None = None  # fitted large-GEMM fraction of peak (calibrated devices); None: model default
    gemm_dim_half: float | None = None  # fitted d½ of the model's GEMM efficiency curve; None: model default
    # per group in SOURCE_GROUPS: one of PROVENANCES
    provenance_of: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict.fromkeys(SOURCE_GROUPS, "datasheet"))
    # relative one-sigma uncertainty per model column this device sets (see device_spreads)
    spreads: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(ASSUMED_SPREADS))
    # correlation of two of those columns' errors, keyed by the sorted pair of column names, where both came from
    # one fit of a profile (simulator/correlations.py; sources["correlations"] names the fits); absent pairs: 0
    correlations: Mapping[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    # optional, for buying and serving (simulator/families/finance.py, serving.py); None: not known / model default
    purchase_usd: float | None = None  # price per GPU inside an 8-GPU server (system price / 8), on purchase_date
    purchase_date: str = ""
    decode_mem_eff: float | None = None  # fitted share of datasheet HBM bandwidth a decode step reaches
    step_overhead_s: float | None = None  # fitted fixed time per serving step (launches, scheduling)
    decode_kv_eff: float | None = None  # fitted share of HBM bandwidth decode attention reads the KV cache at (None: decode_mem_eff)
    elementwise_eff: float | None = None  # fitted share of HBM bandwidth inference's elementwise passes reach (None: hbm_eff)
    # calibrated devices: the all_to_all fit's busbw / the all_reduce fit's (None: TrainingConstants.a2a_eff), and
    # the moe_layer fit's grouped-GEMM efficiency relative to dense GEMMs of the same shape (None: moe_gemm_eff)
    a2a_eff: float | None = None
    moe_gemm_eff: float | None = None
    # calibrated devices: the profile's measured data-order effect (simulator/data_order.py COLUMNS; None: the
    # training model's assumed constant)
    data_order: Mapping[str, float] | None = None
    # calibrated devices: the profile's median held-out relative error (summary.mape_heldout_pct_median / 100), how
    # far its fits land on points they never saw; the model-error terms of a plan on it are at least this wide
    heldout_error: float | None = None

    def peak_for(self, precision: str) -> float:
        """Dense peak TFLOP/s for `precision`; tf32 falls back to fp32 where the chip has no tf32 unit."""
        key = precision.strip().lower()
        if key in self.peak_tflops:
            return self.peak_tflops[key]
        if key == "tf32" and "fp32" in self.peak_tflops:
            return self.peak_tflops["fp32"]
        raise ValueError(f'precision = "{precision}": {self.id} has no {key} unit; '
                         f"it supports {', '.join(self.peak_tflops)}.")


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _is_positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _parse(acc_id: str, raw: Any, where: str) -> HardwareSpec:
    at = f'{where}: accelerators["{acc_id}"]'
    if not isinstance(raw, dict):
        raise CatalogError(f"{at} must be an object, got {type(raw).__name__}")
    for field in ("display_name", "vendor", "price_date"):
        if not isinstance(raw.get(field), str) or not raw[field].strip():
            raise CatalogError(f"{at}.{field} = {raw.get(field)!r}: a non-empty string is required")
    try:
        dt.date.fromisoformat(raw["price_date"])
    except ValueError:
        raise CatalogError(f"{at}.price_date = {raw['price_date']!r}: use an ISO date, YYYY-MM-DD") from None
    for field in _POSITIVE_FIELDS:
        if not _is_positive(raw.get(field)):
            raise CatalogError(f"{at}.{field} = {raw.get(field)!r}: a positive number is required")
    if not isinstance(raw["gpus_per_node"], int):
        raise CatalogError(f"{at}.gpus_per_node = {raw['gpus_per_node']!r}: a whole number is required")
    peaks = raw.get("peak_tflops")
    if not isinstance(peaks, dict) or not peaks:
        raise CatalogError(f"{at}.peak_tflops = {peaks!r}: a non-empty {{dtype: TFLOP/s}} object is required")
    for dtype, value in peaks.items():
        if dtype not in PRECISIONS:
            raise CatalogError(f"{at}.peak_tflops.{dtype}: unknown dtype; use one of {', '.join(PRECISIONS)}")
        if not _is_positive(value):
            raise CatalogError(f"{at}.peak_tflops.{dtype} = {value!r}: a positive number is required")
    purchase = raw.get("purchase_usd")
    if purchase is not None:
        if not _is_positive(purchase):
            raise CatalogError(f"{at}.purchase_usd = {purchase!r}: a positive number (USD per GPU) is required")
        try:
            dt.date.fromisoformat(str(raw.get("purchase_date")))
        except ValueError:
            raise CatalogError(f"{at}.purchase_date = {raw.get('purchase_date')!r}: a purchase price needs its ISO "
                               "date, YYYY-MM-DD") from None
        if not isinstance(raw.get("sources", {}).get("purchase"), str):
            raise CatalogError(f"{at}.sources.purchase is missing: a purchase price needs its source")
    sources = raw.get("sources")
    if not isinstance(sources, dict):
        raise CatalogError(f"{at}.sources = {sources!r}: an object with {', '.join(SOURCE_GROUPS)} is required")
    for group in SOURCE_GROUPS:
        if not isinstance(sources.get(group), str) or not sources[group].strip():
            raise CatalogError(f"{at}.sources.{group} is missing: every number needs a source")
    return HardwareSpec(
        id=acc_id, display_name=raw["display_name"], vendor=raw["vendor"],
        peak_tflops={k: float(v) for k, v in peaks.items()},
        hbm_GB=float(raw["hbm_GB"]), hbm_GBps=float(raw["hbm_GBps"]),
        intra_node_GBps=float(raw["intra_node_GBps"]), intra_node_latency_s=raw["intra_node_latency_us"] / 1e6,
        inter_node_GBps=float(raw["inter_node_GBps"]), inter_node_latency_s=raw["inter_node_latency_us"] / 1e6,
        gpus_per_node=raw["gpus_per_node"], tdp_W=float(raw["tdp_W"]), gpu_hour_usd=float(raw["gpu_hour_usd"]),
        price_date=raw["price_date"], sources=dict(sources),
        provenance=raw.get("provenance", "datasheet"),
        provenance_of=dict.fromkeys(SOURCE_GROUPS, "datasheet"), spreads=dict(ASSUMED_SPREADS),
        purchase_usd=None if purchase is None else float(purchase), purchase_date=str(raw.get("purchase_date", "")),
    )


@lru_cache(maxsize=8)
def _load(path: Path) -> tuple[HardwareSpec, ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CatalogError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise CatalogError(f"{path}: schema_version = {data.get('schema_version') if isinstance(data, dict) else None!r}; "
                           "this loader reads schema_version 1")
    accelerators = data.get("accelerators")
    if not isinstance(accelerators, dict) or not accelerators:
        raise CatalogError(f"{path}: accelerators must be a non-empty object keyed by id")
    return tuple(_parse(acc_id, raw, path.name) for acc_id, raw in accelerators.items())


def load_catalog(path: str | Path | None = None) -> dict[str, HardwareSpec]:
    """All accelerators by id, in file order; the file is read and validated once per path."""
    return {spec.id: spec for spec in _load(Path(path or DEFAULT_CATALOG_PATH).resolve())}


def device_spreads(spec: HardwareSpec) -> dict[str, float]:
    """Relative one-sigma spread per model column (gemm_eff_max, hbm_eff, intra_GBps, inter_GBps, ...):
    the device's own, and the assumed datasheet spread for any column it does not state."""
    return {**ASSUMED_SPREADS, **spec.spreads}


def find_accelerator(name: str, devices: Mapping[str, HardwareSpec], field: str = "cluster.accelerator") -> HardwareSpec:
    """Spec by id among `devices`, case-insensitive, ignoring punctuation, also by display name or a common
    alias ("h100")."""
    index = {_normalize(alias): acc_id for alias, acc_id in _ALIASES.items() if acc_id in devices}
    for spec in devices.values():
        index[_normalize(spec.display_name)] = spec.id
        index[_normalize(spec.id)] = spec.id
    key = _normalize(name)
    if key in index:
        return devices[index[key]]
    close = difflib.get_close_matches(key, list(index), n=1, cutoff=0.5)
    hint = f'; did you mean "{index[close[0]]}"?' if close else "."
    raise UnknownAccelerator(f'{field} = "{name}": unknown accelerator; known: {", ".join(devices)}{hint}')


def get_accelerator(name: str, field: str = "cluster.accelerator") -> HardwareSpec:
    """A datasheet accelerator (see find_accelerator). Calibrated devices (profiles, shipped or uploaded) are
    found by simulator.devices.get_accelerator, which searches them too."""
    return find_accelerator(name, load_catalog(), field)
