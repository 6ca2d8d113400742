"""The one strict loader of calibration profiles, plus the accessors and predictors the simulator uses.

A profile is JSON only: nothing in it is ever executed (no pickle, no torch.load, no eval). The file is
size-capped before parsing, nesting depth is checked with a linear scan before `json.loads` sees it,
NaN/Infinity and duplicate keys are rejected, and every field the simulator reads is type-checked.
Schema: docs/profile-schema.md. Imports only stdlib + numpy (and the predictors in
simulator/profile_models.py and the bounded JSON reader simulator/safe_json.py, likewise pure).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simulator.names import NameProblemError, checked_name
from simulator.profile_models import (  # noqa: F401 - re-exported: simulator.profile.predict_s etc.
    BUS_FACTORS,
    BUS_MODELS,
    COLLECTIVE_MODELS,
    COMPUTE_MODELS,
    DECODE_MODELS,
    INVENTORY_MODELS,
    KNOWN_MODELS,
    PREFILL_MODELS,
    PRUNING_MODELS,
    RATIO_MODELS,
    REQUIRED_PARAMS,
    bus_factor,
    predict_s,
)
from simulator.quality_curves import QualitySectionError, parse_quality
from simulator.safe_json import MAX_DEPTH as SAFE_MAX_DEPTH
from simulator.safe_json import MAX_PROFILE_BYTES, JSONInputError, loads, read_bytes, shorten

KIND = "modelfolio.calibration_profile"
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
MAX_FILE_BYTES = MAX_PROFILE_BYTES  # the caps are declared once, in simulator.safe_json
MAX_DEPTH = SAFE_MAX_DEPTH
MAX_MEASUREMENTS = 100_000
FIT_SECTIONS: tuple[str, ...] = ("compute", "collectives", "parameter_server", "ddp", "inference")
ROW_STATUSES = ("ok", "failed", "skipped")  # tuples: membership never hashes an untrusted value
FIT_STATUSES = ("ok", "insufficient_data", "failed")


class ProfileError(ValueError):
    """A profile that cannot be used; the message says what is wrong and where (a JSON path)."""


def _fail(path: str, problem: str) -> ProfileError:
    return ProfileError(f"{path or '<root>'}: {problem}")


def _read_bytes(source: str | Path | bytes | bytearray) -> bytes:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        if len(data) > MAX_FILE_BYTES:
            raise _fail("", f"profile is {len(data)} bytes, over the {MAX_FILE_BYTES}-byte cap")
        return data
    if isinstance(source, str) and source.lstrip()[:1] == "{":
        return _read_bytes(source.encode("utf-8", errors="surrogatepass"))
    try:
        return read_bytes(source, max_bytes=MAX_FILE_BYTES)
    except JSONInputError as exc:
        if exc.kind == "read":
            raise _fail("", f"cannot read profile file {shorten(source, 200)}: {exc.problem}") from None
        raise _fail("", f"{exc.source}: {exc.problem}") from None


def parse_json(data: bytes) -> Any:
    """Strict JSON (simulator.safe_json): UTF-8, depth <= MAX_DEPTH, no NaN/Infinity/overflow, no duplicate
    keys, bounded numbers, strings, arrays and objects."""
    try:
        return loads(data, source="profile", max_bytes=MAX_FILE_BYTES, max_depth=MAX_DEPTH)
    except JSONInputError as exc:
        raise _fail(exc.path, exc.problem) from None


def load_profile(source: str | Path | bytes) -> dict[str, Any]:
    """Parse and check a profile. `source`: file path, raw bytes, or a str holding JSON text ('{...')."""
    profile = parse_json(_read_bytes(source))
    _check_profile(profile)
    return profile


# ---------------------------------------------------------------- checks
#
# The loader checks everything a consumer reads -- simulator.devices (a profile becomes a device),
# report.calibration_summary and report.calibration_charts (the Calibrate page), calibration.validate -- so none of
# them can fail on an accepted file, and its ranges keep every figure planned on a profile's device finite.
# docs/profile-schema.md lists the limits.

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
_NAMED_RANGES: dict[str, Range] = {
    "hill_exponent": (0.0, 8.0, False, True),
    "overlap_fraction": (-1.0, 1.0, True, True),
    "gemm_scale": (0.0, 100.0, False, True),
    "element_bytes": (0.0, 16.0, False, True),
    "fixed_ratio": (0.0, 1000.0, True, True),
    "density_ratio": (0.0, 1000.0, True, True),
    "cache_speedup": (0.0, 1000.0, False, True),
}
_SUFFIX_RANGES: tuple[tuple[str, Range, str], ...] = (  # by unit suffix: (suffix, range, what it is)
    ("_tflops", (TFLOPS_RANGE[0], TFLOPS_RANGE[1], True, False), "throughput in TFLOP/s"),
    ("_GBps", (GBPS_RANGE[0], GBPS_RANGE[1], True, True), "bandwidth in GB/s"),
    ("_flops", (0.0, 1e21, False, True), "FLOP count"),
    ("_bytes", (0.0, 1e15, False, True), "byte count"),
    ("_s", (0.0, MAX_SECONDS, True, False), "time in seconds"),
)
# which models may sit where (a path prefix under fits); elsewhere any known model
_MODELS_AT: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("compute", "gemm"), COMPUTE_MODELS),
    (("compute",), (*COMPUTE_MODELS, *INVENTORY_MODELS)),
    (("collectives",), COLLECTIVE_MODELS),
    (("parameter_server",), ("sharded_ps",)),
    (("ddp",), ("ddp_overlap",)),
    (("inference", "roofline"), COMPUTE_MODELS),
    (("inference", "quantization"), RATIO_MODELS),
    (("inference", "prefill"), PREFILL_MODELS),
    (("inference", "decode"), DECODE_MODELS),
    (("inference", "pruning"), PRUNING_MODELS),
)
_FLOPS_X_AT = (("compute",), ("inference", "roofline"))  # x is a FLOP count there: >= 1
Pattern = tuple[str | tuple[str, ...], ...]  # "*": any key; a tuple: one of these keys
# where consumers expect a fit record, and where they expect an object of fits or of containers
_FIT_SLOTS: tuple[Pattern, ...] = (
    ("compute", "*", "*"), ("collectives", "*", "by_world", "*"), ("collectives", "*", "cross_world"),
    ("parameter_server", "sharded"), ("ddp", "by_world", "*", "fit"), ("ddp", "pooled"),
    ("inference", ("roofline", "prefill", "decode"), "*"), ("inference", ("quantization", "pruning"), "*", "fit"),
)
_CONTAINER_SLOTS: tuple[Pattern, ...] = (
    ("compute", "*"), ("collectives", "*"), ("collectives", "*", "by_world"), ("ddp", "by_world"),
    ("ddp", "by_world", "*"), ("inference", "*"), ("inference", ("quantization", "pruning"), "*"),
)
_FIT_TEXTS = ("reason", "formula", "heldout_rule", "note")
_FIT_LABELS = ("model", "candidate", "label", "op", "x_name", "y_name", "y_kind", "bench", "device", "dtype", "path",
               "gemm_fit_source", "elem_GBps_source", "cache_bytes_source")
_POINT_FEATURES = ("ws_bytes", "batch", "hidden", "context", "tokens", "layers", "heads", "vocab", "prompt")
_POINT_RANKS = ("world_size", "servers", "workers")
_ENV_COUNTS = ("logical_cpus", "physical_cores", "available_cpus", "gpu_count")
_ENV_BYTES = ("l2_cache_bytes", "l3_cache_bytes")
_SUMMARY_TEXT_LISTS = ("fits_not_done", "rows_dropped_by_writer", "non_finite_replaced")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _describe(v: Any) -> str:
    if isinstance(v, str):
        return f"str ({json.dumps(v[:40])}{'...' if len(v) > 40 else ''})"
    if isinstance(v, list | dict):
        return f"{type(v).__name__} of {len(v)} items"
    return f"{type(v).__name__} ({json.dumps(v)[:40]})"


def _key_text(key: str) -> str:
    return json.dumps(key[:60] + ("..." if len(key) > 60 else ""))


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    if key not in obj:
        raise _fail(path, f"missing required key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(f"{path}.{key}".lstrip("."), f"expected {names}, got {_describe(value)}")
    return value


def _number(v: Any, path: str, *, nullable: bool = False, positive: bool = False,
            nonnegative: bool = False) -> None:
    if v is None and nullable:
        return
    if not _is_number(v):
        raise _fail(path, f"expected a finite number{' or null' if nullable else ''}, got {_describe(v)}")
    if positive and v <= 0:
        raise _fail(path, f"must be > 0, got {v}")
    if nonnegative and v < 0:
        raise _fail(path, f"must be >= 0, got {v}")


def _within(v: Any, path: str, bounds: Range, what: str = "", *, nullable: bool = False) -> None:
    """A finite number inside `bounds`; a zero or negative throughput or bandwidth is called impossible."""
    if v is None and nullable:
        return
    _number(v, path, nullable=nullable)
    low, high, low_ok, high_ok = bounds
    about = f" ({what})" if what else ""
    if low > 0 and v <= 0:
        raise _fail(path, f"must be > 0, got {v:g}: a zero or negative {what or 'value'} is physically impossible")
    if v < low or (v == low and not low_ok):
        raise _fail(path, f"must be {'>=' if low_ok else '>'} {low:g}, got {v:g}{about}")
    if v > high or (v == high and not high_ok):
        raise _fail(path, f"must be {'<=' if high_ok else '<'} {high:g}, got {v:g}{about}")


def _text(v: Any, path: str, limit: int, *, nullable: bool = True, nonempty: bool = False) -> None:
    if v is None and nullable:
        return
    if not isinstance(v, str):
        raise _fail(path, f"expected a string{' or null' if nullable else ''}, got {_describe(v)}")
    if len(v) > limit:
        raise _fail(path, f"a string of {len(v):,} characters is over the cap of {limit:,}")
    if nonempty and not v.strip():
        raise _fail(path, "must not be empty")


def _key(key: str, path: str) -> None:
    if len(key) > MAX_NAME_CHARS:
        raise _fail(path, f"key {_key_text(key)} of {len(key):,} characters is over the cap of {MAX_NAME_CHARS}")


def _short_list(v: Any, path: str, *, nullable: bool = True) -> list[Any]:
    if v is None and nullable:
        return []
    if not isinstance(v, list):
        raise _fail(path, f"expected a list{' or null' if nullable else ''}, got {_describe(v)}")
    if len(v) > MAX_LIST_ITEMS:
        raise _fail(path, f"{len(v):,} items are over the cap of {MAX_LIST_ITEMS:,}")
    return v


def _scalar(v: Any, path: str, limit: int = MAX_TEXT_CHARS) -> None:
    if isinstance(v, str):
        _text(v, path, limit)
    elif isinstance(v, list | dict):
        raise _fail(path, f"expected a number, string, true/false or null, got {_describe(v)}")


def _world(v: Any, path: str) -> None:
    if not _is_int(v) or not 1 <= v <= MAX_WORLD_SIZE:
        raise _fail(path, f"expected a world size, a whole number in 1..{MAX_WORLD_SIZE:,}, got {_describe(v)}")


def _world_key(key: str, path: str) -> None:
    """"<n>": the decimal digits of a world size, no sign, point, exponent or leading zero."""
    if not (key.isascii() and key.isdigit() and key[0] != "0" and len(key) <= 7 and int(key) <= MAX_WORLD_SIZE):
        raise _fail(path, f"key {_key_text(key)} is not a world size (a whole number in 1..{MAX_WORLD_SIZE:,}, "
                          'written as digits, e.g. "2")')


def _row_indices(v: Any, path: str, n_rows: int) -> None:
    for j, i in enumerate(_short_list(v, path, nullable=False)):
        if not _is_int(i) or not 0 <= i < n_rows:
            raise _fail(f"{path}[{j}]", f"expected a row index in 0..{n_rows - 1} (measurements has {n_rows} "
                                        f"rows), got {_describe(i)}")


def _matches(keys: tuple[str, ...], pattern: Pattern) -> bool:
    return len(keys) == len(pattern) and all(
        p == "*" or (k in p if isinstance(p, tuple) else k == p) for k, p in zip(keys, pattern, strict=True))


def _check_profile(p: Any) -> None:
    if not isinstance(p, dict):
        raise _fail("", f"a profile is a JSON object, got {_describe(p)}")
    if p.get("kind") != KIND:
        kind = p.get("kind")
        shown = _describe(kind) if isinstance(kind, str | list | dict) else repr(kind)
        raise _fail("kind", f"expected {KIND!r}, got {shown}: not a Modelfolio profile")
    version = p.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        shown = _describe(version) if isinstance(version, str | list | dict) else repr(version)
        raise _fail("schema_version", f"unsupported version {shown}; this loader reads "
                    f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}")
    _text(_need(p, "created_utc", str, ""), "created_utc", 64, nullable=False)
    _text(_need(p, "name", str, ""), "name", MAX_NAME_CHARS, nullable=False, nonempty=True)
    try:  # the device's label and id: checked as every name is (simulator.names), kept on one line
        p["name"] = checked_name(p["name"], MAX_NAME_CHARS)
    except NameProblemError as exc:
        raise _fail("name", str(exc)) from None
    _check_environment(_need(p, "environment", dict, ""))
    summary = _need(p, "summary", dict, "")
    if "run" in p:
        run = _need(p, "run", dict, "")
        for key in run:
            _key(key, "run")
    fits = _need(p, "fits", dict, "")
    rows = _need(p, "measurements", list, "")
    if len(rows) > MAX_MEASUREMENTS:
        raise _fail("measurements", f"{len(rows)} rows exceed the cap of {MAX_MEASUREMENTS}")
    _check_fits(fits, len(rows))
    _check_summary(summary, len(rows))
    for i, row in enumerate(rows):
        check_row(row, f"measurements[{i}]")
    if p.get("quality") is not None:  # optional: the quality calibration's curves (simulator.quality_curves)
        try:
            parse_quality(p["quality"])
        except QualitySectionError as exc:
            raise ProfileError(str(exc)) from None


def _check_environment(env: dict[str, Any]) -> None:
    for key, value in env.items():
        _key(key, "environment")
        where = f"environment.{key}"
        if isinstance(value, list):
            for i, item in enumerate(_short_list(value, where)):
                _scalar(item, f"{where}[{i}]", MAX_NAME_CHARS)
        elif isinstance(value, dict):
            for k, item in value.items():
                _key(k, where)
                _scalar(item, f"{where}.{k}", MAX_NAME_CHARS)
        else:
            _scalar(value, where)
    for i, gpu in enumerate(_short_list(env.get("gpu_names"), "environment.gpu_names")):
        _text(gpu, f"environment.gpu_names[{i}]", MAX_NAME_CHARS, nullable=False, nonempty=True)
    _short_list(env.get("cpu_flags"), "environment.cpu_flags")  # the page lists them: a list, of scalars (above)
    _text(env.get("cpu_model"), "environment.cpu_model", MAX_NAME_CHARS)
    for key in _ENV_COUNTS:
        value = env.get(key)
        if value is not None and (not _is_int(value) or not 0 <= value <= MAX_CORES):
            raise _fail(f"environment.{key}", f"expected a whole number in 0..{MAX_CORES:,} or null, "
                                              f"got {_describe(value)}")
    for key in _ENV_BYTES:
        _within(env.get(key), f"environment.{key}", (0.0, 1e15, False, True), "cache size in bytes", nullable=True)
    peaks = env.get("peak_tflops")
    if peaks is not None:
        if not isinstance(peaks, dict):
            raise _fail("environment.peak_tflops", f"expected an object of TFLOP/s per dtype, got {_describe(peaks)}")
        for dtype, value in peaks.items():
            _within(value, f"environment.peak_tflops.{dtype}", _SUFFIX_RANGES[0][1], "peak in TFLOP/s",
                    nullable=True)
    _within(env.get("mem_GBps"), "environment.mem_GBps", _SUFFIX_RANGES[1][1], "bandwidth in GB/s", nullable=True)


def _check_summary(summary: dict[str, Any], n_rows: int) -> None:
    for key in summary:
        _key(key, "summary")
    if summary.get("noisy_rows") is not None:
        _row_indices(summary["noisy_rows"], "summary.noisy_rows", n_rows)
    for key in _SUMMARY_TEXT_LISTS:
        for i, item in enumerate(_short_list(summary.get(key), f"summary.{key}")):
            _scalar(item, f"summary.{key}[{i}]")
    _number(summary.get("mape_heldout_pct_median"), "summary.mape_heldout_pct_median", nullable=True,
            nonnegative=True)


def _check_fits(fits: dict[str, Any], n_rows: int) -> None:
    """Walk every section with an explicit stack (no recursion): positions, world-size keys, the fit cap, and each
    fit record."""
    for section in FIT_SECTIONS:
        _need(fits, section, dict, "fits")
    stack: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for section, node in reversed(list(fits.items())):
        _key(section, "fits")
        if not isinstance(node, dict):
            raise _fail(f"fits.{section}", f"expected an object of fits, got {_describe(node)}")
        stack.append(((section,), node))
    count = 0
    while stack:
        keys, node = stack.pop()
        where = "fits." + ".".join(keys)
        if isinstance(node.get("status"), str):
            if len(keys) == 1 or any(_matches(keys, c) for c in _CONTAINER_SLOTS):
                raise _fail(where, "expected an object holding fit records here, got a fit record")
            count += 1
            if count > MAX_FITS:
                raise _fail(where, f"more than {MAX_FITS:,} fit records: over the cap of {MAX_FITS:,} per profile")
            _check_fit(node, where, keys, n_rows)
            continue
        if "status" in node:
            raise _fail(f"{where}.status", f"a fit's status is a string, got {_describe(node['status'])}")
        if any(_matches(keys, f) for f in _FIT_SLOTS):
            raise _fail(where, 'expected a fit record (an object with a "status"), got an object without one')
        if keys[-1] == "by_world":
            for key in node:
                _world_key(key, where)
        if _matches(keys, ("ddp", "by_world", "*")) and node.get("overlap_fraction_measured") is not None:
            measured = node["overlap_fraction_measured"]
            if not isinstance(measured, dict):
                raise _fail(f"{where}.overlap_fraction_measured", f"expected an object, got {_describe(measured)}")
            for stat in ("median", "p25", "p75", "n"):
                _number(measured.get(stat), f"{where}.overlap_fraction_measured.{stat}", nullable=True)
        children = []
        for key, child in node.items():
            _key(key, where)
            child_keys = (*keys, key)
            if isinstance(child, dict):
                children.append((child_keys, child))
            elif any(_matches(child_keys, s) for s in (*_FIT_SLOTS, *_CONTAINER_SLOTS)):
                raise _fail(f"{where}.{key}", f"expected an object, got {_describe(child)}")
        stack.extend(reversed(children))  # depth first, in file order


def _models_at(keys: tuple[str, ...]) -> tuple[str, ...]:
    return next((models for prefix, models in _MODELS_AT if keys[: len(prefix)] == prefix), KNOWN_MODELS)


def _check_params(params: dict[str, Any], path: str, model: str) -> None:
    for name, value in params.items():
        _key(name, path)
        where = f"{path}.{name}"
        _number(value, where)
        if name in _NAMED_RANGES:
            _within(value, where, _NAMED_RANGES[name], name.replace("_", " "))
            continue
        for suffix, bounds, what in _SUFFIX_RANGES:
            if name.endswith(suffix):
                _within(value, where, bounds, what)
                break
    missing = [n for n in REQUIRED_PARAMS.get(model, ()) if n not in params]
    if missing:
        raise _fail(path, f"model {model!r} needs {', '.join(missing)}")


def _check_fit(fit: dict[str, Any], path: str, keys: tuple[str, ...], n_rows: int) -> None:
    """One fit record at `path`; `keys` locate it under fits (which models may sit there)."""
    status = fit["status"]
    if status not in FIT_STATUSES:
        raise _fail(f"{path}.status", f"expected one of {sorted(FIT_STATUSES)}, got {_describe(status)}")
    for key in fit:
        _key(key, path)
    for names, limit in ((_FIT_TEXTS, MAX_TEXT_CHARS), (_FIT_LABELS, MAX_NAME_CHARS)):
        for key in names:
            if key in fit:  # shown as text (a code block, a title, a lookup key): a string, never null
                _text(fit[key], f"{path}.{key}", limit, nullable=False)
    for i, name in enumerate(_short_list(fit.get("params_at_bound"), f"{path}.params_at_bound")):
        _text(name, f"{path}.params_at_bound[{i}]", MAX_NAME_CHARS, nullable=False)
    if "world_size" in fit:
        _world(fit["world_size"], f"{path}.world_size")
    for i, world in enumerate(_short_list(fit.get("world_sizes"), f"{path}.world_sizes")):
        if isinstance(world, str):
            _world_key(world, f"{path}.world_sizes[{i}]")
        else:
            _world(world, f"{path}.world_sizes[{i}]")
    if status != "ok":
        _need(fit, "reason", str, path)
        return
    model = _need(fit, "model", str, path)
    allowed = _models_at(keys)
    if model not in allowed:
        known = "a known model" if model not in KNOWN_MODELS else "a model fitted here"
        raise _fail(f"{path}.model", f"{_describe(model)} is not {known}; expected one of {', '.join(allowed)}")
    _check_params(_need(fit, "params", dict, path), f"{path}.params", model)
    if model in BUS_MODELS and fit.get("op") not in tuple(BUS_FACTORS):
        raise _fail(f"{path}.op", f"expected one of {sorted(BUS_FACTORS)}, got {_describe(fit.get('op'))}")
    if model in INVENTORY_MODELS:  # predicted through the GEMM fit it was built on, carried in the record
        gemm = _need(fit, "gemm_fit", dict, path)
        gmodel = _need(gemm, "model", str, f"{path}.gemm_fit")
        if gmodel not in COMPUTE_MODELS:
            raise _fail(f"{path}.gemm_fit.model", f"expected one of {list(COMPUTE_MODELS)}, got {_describe(gmodel)}")
        _check_params(_need(gemm, "params", dict, f"{path}.gemm_fit"), f"{path}.gemm_fit.params", gmodel)
    for name, value in _need(fit, "stderr", dict, path).items():
        _key(name, f"{path}.stderr")
        _number(value, f"{path}.stderr.{name}", nullable=True, nonnegative=True)
    for key in ("n_train", "n_heldout"):
        if _need(fit, key, int, path) < 0:
            raise _fail(f"{path}.{key}", "must be >= 0")
    for key in ("mape_train_pct", "mape_heldout_pct"):
        _number(fit.get(key), f"{path}.{key}", nullable=True, nonnegative=True)
    _need(fit, "heldout_rule", str, path)
    _check_corr(fit.get("corr"), f"{path}.corr", fit["params"])
    _check_fit_extras(fit, path)
    x_low = 1.0 if any(keys[: len(prefix)] == prefix for prefix in _FLOPS_X_AT) else 0.0
    points = _need(fit, "points", dict, path)
    splits = {split: _need(points, split, list, f"{path}.points") for split in ("train", "heldout")}
    if sum(map(len, splits.values())) > MAX_POINTS:
        raise _fail(f"{path}.points", f"{sum(map(len, splits.values())):,} points are over the cap of {MAX_POINTS:,}")
    for split, items in splits.items():
        for i, pt in enumerate(items):
            _check_point(pt, f"{path}.points.{split}[{i}]", n_rows, x_low)


def _check_fit_extras(fit: dict[str, Any], path: str) -> None:
    """What the Calibrate page shows of a fit beyond its numbers: model selection, efficiencies, derived values."""
    selection = fit.get("selection")
    if selection is not None:
        if not isinstance(selection, dict):
            raise _fail(f"{path}.selection", f"expected an object, got {_describe(selection)}")
        if "rule" in selection:
            _text(selection["rule"], f"{path}.selection.rule", MAX_TEXT_CHARS, nullable=False)
        candidates = selection.get("candidates")
        if candidates is not None:
            if not isinstance(candidates, dict):
                raise _fail(f"{path}.selection.candidates", f"expected an object, got {_describe(candidates)}")
            for name, scores in candidates.items():
                where = f"{path}.selection.candidates.{name}"
                _key(name, where)
                if not isinstance(scores, dict):
                    raise _fail(where, f"expected an object of scores, got {_describe(scores)}")
                for key, value in scores.items():
                    _key(key, where)
                    _scalar(value, f"{where}.{key}", MAX_NAME_CHARS)
    for key in ("efficiencies", "derived"):
        block = fit.get(key)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise _fail(f"{path}.{key}", f"expected an object, got {_describe(block)}")
        for name, value in block.items():
            _key(name, f"{path}.{key}")
            _scalar(value, f"{path}.{key}.{name}")
    eff = fit.get("efficiencies") or {}
    for name in ("eta_compute", "eta_memory"):
        _within(eff.get(name), f"{path}.efficiencies.{name}", (0.0, EFFICIENCY_MAX, False, True), "efficiency",
                nullable=True)
    _within(eff.get("peak_tflops"), f"{path}.efficiencies.peak_tflops", _SUFFIX_RANGES[0][1], "peak in TFLOP/s",
            nullable=True)
    _within(eff.get("mem_peak_GBps"), f"{path}.efficiencies.mem_peak_GBps", _SUFFIX_RANGES[1][1],
            "bandwidth in GB/s", nullable=True)


def _check_corr(corr: Any, path: str, params: dict[str, Any]) -> None:
    """A fit's optional correlation matrix of its parameters (docs/profile-schema.md): names among the fit's
    params, each once; a square, finite, symmetric matrix with a unit diagonal and |r| <= 1."""
    if corr is None:
        return
    if not isinstance(corr, dict):
        raise _fail(path, f"expected an object, got {_describe(corr)}")
    for key in corr:
        if key not in ("params", "log10_params", "matrix"):
            raise _fail(path, f"unknown key {_key_text(key)}; expected params, log10_params and matrix")
    names = _need(corr, "params", list, path)
    if not 2 <= len(names) <= MAX_CORR_PARAMS:
        raise _fail(f"{path}.params", f"expected 2 to {MAX_CORR_PARAMS} parameter names, got {len(names):,}")
    for i, name in enumerate(names):
        _text(name, f"{path}.params[{i}]", MAX_NAME_CHARS, nullable=False)
        if name not in params:
            raise _fail(f"{path}.params[{i}]", f"{_describe(name)} is not one of the fit's params")
        if name in names[:i]:
            raise _fail(f"{path}.params[{i}]", f"{_describe(name)} is named twice")
    for i, name in enumerate(_short_list(corr.get("log10_params"), f"{path}.log10_params")):
        if not isinstance(name, str) or name not in names:
            raise _fail(f"{path}.log10_params[{i}]", f"expected one of corr.params, got {_describe(name)}")
    matrix = _need(corr, "matrix", list, path)
    n = len(names)
    if len(matrix) != n:
        raise _fail(f"{path}.matrix", f"expected {n} rows (one per name in params), got {len(matrix):,}")
    for i, row in enumerate(matrix):
        if not isinstance(row, list) or len(row) != n:
            raise _fail(f"{path}.matrix[{i}]", f"expected a list of {n} numbers, got {_describe(row)}")
        for j, r in enumerate(row):
            _within(r, f"{path}.matrix[{i}][{j}]", (-1.0, 1.0, True, True), "correlation")
    for i in range(n):
        if abs(matrix[i][i] - 1.0) > CORR_TOLERANCE:
            raise _fail(f"{path}.matrix[{i}][{i}]", f"a parameter's correlation with itself is 1, got {matrix[i][i]:g}")
        for j in range(i):
            if abs(matrix[i][j] - matrix[j][i]) > CORR_TOLERANCE:
                raise _fail(f"{path}.matrix[{i}][{j}]", f"{matrix[i][j]:g} differs from matrix[{j}][{i}] = "
                                                        f"{matrix[j][i]:g}: a correlation matrix is symmetric")


def _check_point(pt: Any, where: str, n_rows: int, x_low: float) -> None:
    if not isinstance(pt, dict):
        raise _fail(where, f"expected object, got {_describe(pt)}")
    _within(pt.get("x"), f"{where}.x", (x_low, MAX_X, True, True))
    _within(pt.get("measured"), f"{where}.measured", MEASURED_RANGE, "measured time or ratio")
    _within(pt.get("predicted"), f"{where}.predicted", (-1e12, 1e12, True, True), nullable=True)
    if "rows" in pt:
        _row_indices(pt["rows"], f"{where}.rows", n_rows)
    for key in _POINT_FEATURES:
        if key in pt:
            _within(pt[key], f"{where}.{key}", (0.0, MAX_FEATURE, False, True))
    for key in _POINT_RANKS:
        if key in pt:
            _within(pt[key], f"{where}.{key}", (1.0, float(MAX_WORLD_SIZE), True, True), "number of ranks")
    for key, value in pt.items():
        _key(key, where)
        if isinstance(value, str):
            _text(value, f"{where}.{key}", MAX_NAME_CHARS)


def check_row(row: Any, path: str = "row") -> None:
    """Raise ProfileError if one measurement row breaks the contract the loader enforces."""
    if not isinstance(row, dict):
        raise _fail(path, f"expected object, got {_describe(row)}")
    _text(_need(row, "bench", str, path), f"{path}.bench", MAX_NAME_CHARS, nullable=False)
    status = row.get("status")
    if status not in ROW_STATUSES:
        shown = _describe(status) if isinstance(status, str | list | dict) else repr(status)
        raise _fail(f"{path}.status", f"expected one of {sorted(ROW_STATUSES)}, got {shown}")
    for key in ("device", "dtype"):
        _text(row.get(key), f"{path}.{key}", MAX_NAME_CHARS)
    if status == "ok" and not isinstance(row.get("device"), str):
        raise _fail(f"{path}.device", f"an ok row names its device, got {_describe(row.get('device'))}")
    _text(row.get("error"), f"{path}.error", MAX_TEXT_CHARS)
    _text(row.get("run_id"), f"{path}.run_id", MAX_NAME_CHARS)
    for key, kind in (("params", dict), ("extra", dict), ("times_s", list), ("oversubscribed", bool)):
        if row.get(key) is not None and not isinstance(row[key], kind):
            raise _fail(f"{path}.{key}", f"expected {kind.__name__}, got {_describe(row[key])}")
    for key, value in (row.get("params") or {}).items():
        _key(key, f"{path}.params")
        if isinstance(value, list):
            for i, item in enumerate(_short_list(value, f"{path}.params.{key}")):
                _scalar(item, f"{path}.params.{key}[{i}]", MAX_NAME_CHARS)
        else:
            _scalar(value, f"{path}.params.{key}", MAX_NAME_CHARS)
    if row["bench"] == "gemm":
        for dim in ("m", "n", "k"):
            if dim in (row.get("params") or {}):
                _within(row["params"][dim], f"{path}.params.{dim}", (1.0, float(MAX_GEMM_DIM), True, True),
                        "GEMM dimension")
    for key in ("median_s", "p25_s", "p75_s"):
        _within(row.get(key), f"{path}.{key}", TIME_RANGE, "time in seconds", nullable=True)
    if status == "ok":
        _number(row.get("median_s"), f"{path}.median_s", positive=True)
    for i, t in enumerate(row.get("times_s") or []):
        _within(t, f"{path}.times_s[{i}]", TIME_RANGE, "time in seconds")
    for key in ("flops", "bytes"):
        _number(row.get(key), f"{path}.{key}", nullable=True, nonnegative=True)
    if "world_size" in row:
        _world(row["world_size"], f"{path}.world_size")


# ---------------------------------------------------------------- accessors


def _ok(fit: Any) -> dict[str, Any] | None:
    return fit if isinstance(fit, dict) and fit.get("status") == "ok" else None


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def compute_fit(profile: dict[str, Any], device: str, dtype: str, bench: str = "gemm") -> dict[str, Any] | None:
    """fits.compute.<bench>["<device>/<dtype>"] when fitted, else None."""
    return _ok(_get(profile, "fits", "compute", bench, f"{device}/{dtype}"))


def collective_fit(profile: dict[str, Any], op: str, world_size: int) -> dict[str, Any] | None:
    """fits.collectives.<op>.by_world["<n>"] when fitted, else None (no silent extrapolation)."""
    return _ok(_get(profile, "fits", "collectives", op, "by_world", str(int(world_size))))


def collective_cross_world_fit(profile: dict[str, Any], op: str) -> dict[str, Any] | None:
    """One alpha/busbw pooled over the smaller worlds, checked on the largest: for other world sizes."""
    return _ok(_get(profile, "fits", "collectives", op, "cross_world"))


def parameter_server_fit(profile: dict[str, Any]) -> dict[str, Any] | None:
    return _ok(_get(profile, "fits", "parameter_server", "sharded"))


def param_corr(fit: dict[str, Any], a: str, b: str) -> float | None:
    """The correlation of a (loaded) fit's estimates of params `a` and `b` (as fitted: log10 where listed in
    corr.log10_params, which by the delta method is also their first-order correlation in linear units); None
    where the fit does not state it."""
    corr = fit.get("corr")
    if not isinstance(corr, dict) or a not in corr["params"] or b not in corr["params"]:
        return None
    return float(corr["matrix"][corr["params"].index(a)][corr["params"].index(b)])


def profile_label(profile: dict[str, Any]) -> str:
    """Short human label, e.g. 'AMD EPYC 9B45, calibrated 2026-11-28 (profile v1, 412 rows)'."""
    n_rows = len(profile.get("measurements", []))
    return f"{profile['name']} (profile v{profile['schema_version']}, {n_rows} rows)"
