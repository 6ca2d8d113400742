"""The building blocks of the profile schema: its limits, its error, and the checks of one value (a number within
a range, a short text, a key, a world size). simulator/profile_schema.py and simulator/profile_fit_schema.py
check a profile with them; docs/profile-schema.md lists the limits."""

from __future__ import annotations

import json
import math
from typing import Any

from simulator.profile_models import (
    COLLECTIVE_MODELS,
    COMPUTE_MODELS,
    DECODE_MODELS,
    INVENTORY_MODELS,
    MOE_MODELS,
    PREFILL_MODELS,
    PRUNING_MODELS,
    RATIO_MODELS,
)
from simulator.safe_json_limits import MAX_DEPTH as SAFE_MAX_DEPTH
from simulator.safe_json_limits import MAX_PROFILE_BYTES

KIND = "modelfolio.calibration_profile"
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
MAX_FILE_BYTES = MAX_PROFILE_BYTES  # the caps are declared once, in simulator.safe_json_limits
MAX_DEPTH = SAFE_MAX_DEPTH
MAX_MEASUREMENTS = 100_000
FIT_SECTIONS: tuple[str, ...] = ("compute", "collectives", "parameter_server", "ddp", "inference")
ROW_STATUSES = ("ok", "failed", "skipped")  # tuples: membership never hashes an untrusted value
FIT_STATUSES = ("ok", "insufficient_data", "failed")


class ProfileError(ValueError):
    """A profile that cannot be used; the message says what is wrong and where (a JSON path)."""


def fail(path: str, problem: str) -> ProfileError:
    return ProfileError(f"{path or '<root>'}: {problem}")


MAX_FITS = 5_000  # fit records in one profile (a full run writes about 40)
MAX_WORLD_SIZE = 1_000_000  # ranks: world-size keys ("by_world") and world_size fields
MAX_NAME_CHARS = 256  # name, keys, model and parameter names, GPU and CPU names, labels
MAX_TEXT_CHARS = 16_384  # longer text the page shows: reason, formula, heldout_rule, error, notes, environment
MAX_LIST_ITEMS = 100_000  # gpu_names, cpu_flags, the summary's lists, a point's rows
MAX_POINTS = 10_000  # points of one fit, train and held out together (a run writes tens)
MAX_CORES = 65_536  # environment CPU and GPU counts (a calibrated CPU's workers per node)
MAX_GEMM_DIM = 1_000_000  # m, n, k of a GEMM measurement
MAX_X = 1e30  # a fit point's x (FLOPs, bytes, tokens, seconds, a ratio): >= 0
MAX_FEATURE = 1e18  # a fit point's shape numbers (ws_bytes, batch, hidden, tokens, ...): > 0
MEASURED_RANGE = (1e-12, 1e12, True, True)  # a fit point's measured time (s) or ratio; |predicted| <= 1e12
TIME_RANGE = (1e-12, 1e9, True, True)  # a row's times (s): from a picosecond to about 30 years
TFLOPS_RANGE = (1e-5, 1e5)  # [low, high): 10 MFLOP/s (the fitter's lowest bound) to beyond any chip
GBPS_RANGE = (1e-6, 1e6)  # [low, high]: the fitter's own bounds (1 kB/s; an unconstrained memory term sits at 1e6)
MAX_SECONDS = 3600.0  # latencies, overheads, per-item times: >= 0 and below an hour
EFFICIENCY_MAX = 1.5  # achieved over peak, in (0, 1.5]: above 1 only against a conservative datasheet
MAX_CORR_PARAMS = 16  # parameters in a fit's correlation matrix (a model has at most 6)
CORR_TOLERANCE = 1e-9  # |r_ij - r_ji| and |r_ii - 1| a correlation matrix may be off by (rounding)

Range = tuple[float, float, bool, bool]  # low, high, low allowed, high allowed
NAMED_RANGES: dict[str, Range] = {
    "hill_exponent": (0.0, 8.0, False, True),
    "overlap_fraction": (-1.0, 1.0, True, True),
    "gemm_scale": (0.0, 100.0, False, True),
    "element_bytes": (0.0, 16.0, False, True),
    "fixed_ratio": (0.0, 1000.0, True, True),
    "density_ratio": (0.0, 1000.0, True, True),
    "cache_speedup": (0.0, 1000.0, False, True),
    # the MoE layer's speed over its dense parts (calibration/fit/moe.py); the fitter's bounds are 1e-3..1e2
    "moe_gemm_eff": (0.0, 100.0, False, True),
}
# an all-to-all's bus bandwidth over the all-reduce's at one world size (the device's a2a_eff): an all-to-all moves
# (n-1)/n of its buffer once, an all-reduce 2(n-1)/n with reductions, so the ratio sits near 1 (DeepEP's 153 GB/s on
# 160 GB/s NVLink); 100x either way is a different machine or a broken fit
A2A_EFF_RANGE = (1e-2, 1e2)
SUFFIX_RANGES: tuple[tuple[str, Range, str], ...] = (  # by unit suffix: (suffix, range, what it is)
    ("_tflops", (TFLOPS_RANGE[0], TFLOPS_RANGE[1], True, False), "throughput in TFLOP/s"),
    ("_GBps", (GBPS_RANGE[0], GBPS_RANGE[1], True, True), "bandwidth in GB/s"),
    ("_flops", (0.0, 1e21, False, True), "FLOP count"),
    ("_bytes", (0.0, 1e15, False, True), "byte count"),
    ("_s", (0.0, MAX_SECONDS, True, False), "time in seconds"),
)
# which models may sit where (a path prefix under fits); elsewhere any known model
MODELS_AT: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("compute", "gemm"), COMPUTE_MODELS),
    (("compute", "moe_layer"), MOE_MODELS),
    (("compute",), (*COMPUTE_MODELS, *(m for m in INVENTORY_MODELS if m not in MOE_MODELS))),
    (("collectives",), COLLECTIVE_MODELS),
    (("parameter_server",), ("sharded_ps",)),
    (("ddp",), ("ddp_overlap",)),
    (("inference", "roofline"), COMPUTE_MODELS),
    (("inference", "quantization"), RATIO_MODELS),
    (("inference", "prefill"), PREFILL_MODELS),
    (("inference", "decode"), DECODE_MODELS),
    (("inference", "pruning"), PRUNING_MODELS),
)
FLOPS_X_AT = (("compute",), ("inference", "roofline"))  # x is a FLOP count there: >= 1
Pattern = tuple[str | tuple[str, ...], ...]  # "*": any key; a tuple: one of these keys
# where consumers expect a fit record, and where they expect an object of fits or of containers
FIT_SLOTS: tuple[Pattern, ...] = (
    ("compute", "*", "*"), ("collectives", "*", "by_world", "*"), ("collectives", "*", "cross_world"),
    ("parameter_server", "sharded"), ("ddp", "by_world", "*", "fit"), ("ddp", "pooled"),
    ("inference", ("roofline", "prefill", "decode"), "*"), ("inference", ("quantization", "pruning"), "*", "fit"),
)
CONTAINER_SLOTS: tuple[Pattern, ...] = (
    ("compute", "*"), ("collectives", "*"), ("collectives", "*", "by_world"), ("ddp", "by_world"),
    ("ddp", "by_world", "*"), ("inference", "*"), ("inference", ("quantization", "pruning"), "*"),
)
FIT_TEXTS = ("reason", "formula", "heldout_rule", "note")
FIT_LABELS = ("model", "candidate", "label", "op", "x_name", "y_name", "y_kind", "bench", "device", "dtype", "path",
               "gemm_fit_source", "elem_GBps_source", "cache_bytes_source", "mem_GBps_source")
POINT_FEATURES = ("ws_bytes", "batch", "hidden", "context", "tokens", "layers", "heads", "vocab", "prompt", "experts",
                  "top_k", "expert_ffn")
POINT_RANKS = ("world_size", "servers", "workers")
ENV_COUNTS = ("logical_cpus", "physical_cores", "available_cpus", "gpu_count")
ENV_BYTES = ("l2_cache_bytes", "l3_cache_bytes")
SUMMARY_TEXT_LISTS = ("fits_not_done", "rows_dropped_by_writer", "non_finite_replaced")


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def describe_value(v: Any) -> str:
    if isinstance(v, str):
        return f"str ({json.dumps(v[:40])}{'...' if len(v) > 40 else ''})"
    if isinstance(v, list | dict):
        return f"{type(v).__name__} of {len(v)} items"
    return f"{type(v).__name__} ({json.dumps(v)[:40]})"


def key_text(key: str) -> str:
    return json.dumps(key[:60] + ("..." if len(key) > 60 else ""))


def need_field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    if key not in obj:
        raise fail(path, f"missing required key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise fail(f"{path}.{key}".lstrip("."), f"expected {names}, got {describe_value(value)}")
    return value


def check_number(v: Any, path: str, *, nullable: bool = False, positive: bool = False,
            nonnegative: bool = False) -> None:
    if v is None and nullable:
        return
    if not is_number(v):
        raise fail(path, f"expected a finite number{' or null' if nullable else ''}, got {describe_value(v)}")
    if positive and v <= 0:
        raise fail(path, f"must be > 0, got {v}")
    if nonnegative and v < 0:
        raise fail(path, f"must be >= 0, got {v}")


def check_within(v: Any, path: str, bounds: Range, what: str = "", *, nullable: bool = False) -> None:
    """A finite number inside `bounds`; a zero or negative throughput or bandwidth is called impossible."""
    if v is None and nullable:
        return
    check_number(v, path, nullable=nullable)
    low, high, low_ok, high_ok = bounds
    about = f" ({what})" if what else ""
    if low > 0 and v <= 0:
        raise fail(path, f"must be > 0, got {v:g}: a zero or negative {what or 'value'} is physically impossible")
    if v < low or (v == low and not low_ok):
        raise fail(path, f"must be {'>=' if low_ok else '>'} {low:g}, got {v:g}{about}")
    if v > high or (v == high and not high_ok):
        raise fail(path, f"must be {'<=' if high_ok else '<'} {high:g}, got {v:g}{about}")


def check_text(v: Any, path: str, limit: int, *, nullable: bool = True, nonempty: bool = False) -> None:
    if v is None and nullable:
        return
    if not isinstance(v, str):
        raise fail(path, f"expected a string{' or null' if nullable else ''}, got {describe_value(v)}")
    if len(v) > limit:
        raise fail(path, f"a string of {len(v):,} characters is over the cap of {limit:,}")
    if nonempty and not v.strip():
        raise fail(path, "must not be empty")


def check_key(key: str, path: str) -> None:
    if len(key) > MAX_NAME_CHARS:
        raise fail(path, f"key {key_text(key)} of {len(key):,} characters is over the cap of {MAX_NAME_CHARS}")


def check_short_list(v: Any, path: str, *, nullable: bool = True) -> list[Any]:
    if v is None and nullable:
        return []
    if not isinstance(v, list):
        raise fail(path, f"expected a list{' or null' if nullable else ''}, got {describe_value(v)}")
    if len(v) > MAX_LIST_ITEMS:
        raise fail(path, f"{len(v):,} items are over the cap of {MAX_LIST_ITEMS:,}")
    return v


def check_scalar(v: Any, path: str, limit: int = MAX_TEXT_CHARS) -> None:
    if isinstance(v, str):
        check_text(v, path, limit)
    elif isinstance(v, list | dict):
        raise fail(path, f"expected a number, string, true/false or null, got {describe_value(v)}")


def check_world(v: Any, path: str) -> None:
    if not is_int(v) or not 1 <= v <= MAX_WORLD_SIZE:
        raise fail(path, f"expected a world size, a whole number in 1..{MAX_WORLD_SIZE:,}, got {describe_value(v)}")


def check_world_key(key: str, path: str) -> None:
    """"<n>": the decimal digits of a world size, no sign, point, exponent or leading zero."""
    if not (key.isascii() and key.isdigit() and key[0] != "0" and len(key) <= 7 and int(key) <= MAX_WORLD_SIZE):
        raise fail(path, f"key {key_text(key)} is not a world size (a whole number in 1..{MAX_WORLD_SIZE:,}, "
                          'written as digits, e.g. "2")')


def check_row_indices(v: Any, path: str, n_rows: int) -> None:
    for j, i in enumerate(check_short_list(v, path, nullable=False)):
        if not is_int(i) or not 0 <= i < n_rows:
            raise fail(f"{path}[{j}]", f"expected a row index in 0..{n_rows - 1} (measurements has {n_rows} "
                                        f"rows), got {describe_value(i)}")


def matches_pattern(keys: tuple[str, ...], pattern: Pattern) -> bool:
    return len(keys) == len(pattern) and all(
        p == "*" or (k in p if isinstance(p, tuple) else k == p) for k, p in zip(keys, pattern, strict=True))
