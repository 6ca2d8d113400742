"""The schema of a calibration profile, checked field by field: what `simulator.profile.load_profile` accepts.

The loader checks everything a consumer reads -- simulator.device_profile (a profile becomes a device),
report.calibration_summary and report.calibration_charts (the Calibrate page), calibration.validate -- so none of
them can fail on an accepted file, and its ranges keep every figure planned on a profile's device finite.
docs/profile-schema.md lists the limits. Imports only stdlib and the simulator's pure modules."""

from __future__ import annotations

from typing import Any

from simulator.data_order import DataOrderError, parse_data_order
from simulator.names import NameProblemError, checked_name
from simulator.profile_checks import (
    ENV_BYTES,
    ENV_COUNTS,
    KIND,
    MAX_CORES,
    MAX_GEMM_DIM,
    MAX_MEASUREMENTS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    ROW_STATUSES,
    SUFFIX_RANGES,
    SUMMARY_TEXT_LISTS,
    SUPPORTED_SCHEMA_VERSIONS,
    TIME_RANGE,
    ProfileError,
    check_key,
    check_number,
    check_row_indices,
    check_scalar,
    check_short_list,
    check_text,
    check_within,
    check_world,
    describe_value,
    fail,
    is_int,
    need_field,
)
from simulator.profile_fit_schema import check_fits
from simulator.quality_curves import QualitySectionError, parse_quality


def check_profile(p: Any) -> None:
    if not isinstance(p, dict):
        raise fail("", f"a profile is a JSON object, got {describe_value(p)}")
    if p.get("kind") != KIND:
        kind = p.get("kind")
        shown = describe_value(kind) if isinstance(kind, str | list | dict) else repr(kind)
        raise fail("kind", f"expected {KIND!r}, got {shown}: not a Modelfolio profile")
    version = p.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        shown = describe_value(version) if isinstance(version, str | list | dict) else repr(version)
        raise fail("schema_version", f"unsupported version {shown}; this loader reads "
                    f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}")
    check_text(need_field(p, "created_utc", str, ""), "created_utc", 64, nullable=False)
    check_text(need_field(p, "name", str, ""), "name", MAX_NAME_CHARS, nullable=False, nonempty=True)
    try:  # the device's label and id: checked as every name is (simulator.names), kept on one line
        p["name"] = checked_name(p["name"], MAX_NAME_CHARS)
    except NameProblemError as exc:
        raise fail("name", str(exc)) from None
    _check_environment(need_field(p, "environment", dict, ""))
    summary = need_field(p, "summary", dict, "")
    if "run" in p:
        run = need_field(p, "run", dict, "")
        for key in run:
            check_key(key, "run")
    fits = need_field(p, "fits", dict, "")
    rows = need_field(p, "measurements", list, "")
    if len(rows) > MAX_MEASUREMENTS:
        raise fail("measurements", f"{len(rows)} rows exceed the cap of {MAX_MEASUREMENTS}")
    check_fits(fits, len(rows))
    _check_summary(summary, len(rows))
    for i, row in enumerate(rows):
        check_row(row, f"measurements[{i}]")
    if p.get("quality") is not None:  # optional: the quality calibration's curves (simulator.quality_curves)
        try:
            parse_quality(p["quality"])
            if isinstance(p["quality"], dict):  # and the data-order effect it measured (simulator.data_order)
                parse_data_order(p["quality"].get("data_order"))
        except (QualitySectionError, DataOrderError) as exc:
            raise ProfileError(str(exc)) from None


def _check_environment(env: dict[str, Any]) -> None:
    for key, value in env.items():
        check_key(key, "environment")
        where = f"environment.{key}"
        if isinstance(value, list):
            for i, item in enumerate(check_short_list(value, where)):
                check_scalar(item, f"{where}[{i}]", MAX_NAME_CHARS)
        elif isinstance(value, dict):
            for k, item in value.items():
                check_key(k, where)
                check_scalar(item, f"{where}.{k}", MAX_NAME_CHARS)
        else:
            check_scalar(value, where)
    for i, gpu in enumerate(check_short_list(env.get("gpu_names"), "environment.gpu_names")):
        check_text(gpu, f"environment.gpu_names[{i}]", MAX_NAME_CHARS, nullable=False, nonempty=True)
    check_short_list(env.get("cpu_flags"), "environment.cpu_flags")  # the page lists them: a list, of scalars (above)
    check_text(env.get("cpu_model"), "environment.cpu_model", MAX_NAME_CHARS)
    for key in ENV_COUNTS:
        value = env.get(key)
        if value is not None and (not is_int(value) or not 0 <= value <= MAX_CORES):
            raise fail(f"environment.{key}", f"expected a whole number in 0..{MAX_CORES:,} or null, "
                                              f"got {describe_value(value)}")
    for key in ENV_BYTES:
        check_within(env.get(key), f"environment.{key}", (0.0, 1e15, False, True), "cache size in bytes", nullable=True)
    peaks = env.get("peak_tflops")
    if peaks is not None:
        if not isinstance(peaks, dict):
            raise fail("environment.peak_tflops", f"expected an object of TFLOP/s per dtype, got {describe_value(peaks)}")
        for dtype, value in peaks.items():
            check_within(value, f"environment.peak_tflops.{dtype}", SUFFIX_RANGES[0][1], "peak in TFLOP/s",
                    nullable=True)
    check_within(env.get("mem_GBps"), "environment.mem_GBps", SUFFIX_RANGES[1][1], "bandwidth in GB/s", nullable=True)


def _check_summary(summary: dict[str, Any], n_rows: int) -> None:
    for key in summary:
        check_key(key, "summary")
    if summary.get("noisy_rows") is not None:
        check_row_indices(summary["noisy_rows"], "summary.noisy_rows", n_rows)
    for key in SUMMARY_TEXT_LISTS:
        for i, item in enumerate(check_short_list(summary.get(key), f"summary.{key}")):
            check_scalar(item, f"summary.{key}[{i}]")
    check_number(summary.get("mape_heldout_pct_median"), "summary.mape_heldout_pct_median", nullable=True,
            nonnegative=True)


def check_row(row: Any, path: str = "row") -> None:
    """Raise ProfileError if one measurement row breaks the contract the loader enforces."""
    if not isinstance(row, dict):
        raise fail(path, f"expected object, got {describe_value(row)}")
    check_text(need_field(row, "bench", str, path), f"{path}.bench", MAX_NAME_CHARS, nullable=False)
    status = row.get("status")
    if status not in ROW_STATUSES:
        shown = describe_value(status) if isinstance(status, str | list | dict) else repr(status)
        raise fail(f"{path}.status", f"expected one of {sorted(ROW_STATUSES)}, got {shown}")
    for key in ("device", "dtype"):
        check_text(row.get(key), f"{path}.{key}", MAX_NAME_CHARS)
    if status == "ok" and not isinstance(row.get("device"), str):
        raise fail(f"{path}.device", f"an ok row names its device, got {describe_value(row.get('device'))}")
    check_text(row.get("error"), f"{path}.error", MAX_TEXT_CHARS)
    check_text(row.get("run_id"), f"{path}.run_id", MAX_NAME_CHARS)
    for key, kind in (("params", dict), ("extra", dict), ("times_s", list), ("oversubscribed", bool)):
        if row.get(key) is not None and not isinstance(row[key], kind):
            raise fail(f"{path}.{key}", f"expected {kind.__name__}, got {describe_value(row[key])}")
    for key, value in (row.get("params") or {}).items():
        check_key(key, f"{path}.params")
        if isinstance(value, list):
            for i, item in enumerate(check_short_list(value, f"{path}.params.{key}")):
                check_scalar(item, f"{path}.params.{key}[{i}]", MAX_NAME_CHARS)
        else:
            check_scalar(value, f"{path}.params.{key}", MAX_NAME_CHARS)
    if row["bench"] == "gemm":
        for dim in ("m", "n", "k"):
            if dim in (row.get("params") or {}):
                check_within(row["params"][dim], f"{path}.params.{dim}", (1.0, float(MAX_GEMM_DIM), True, True),
                        "GEMM dimension")
    for key in ("median_s", "p25_s", "p75_s"):
        check_within(row.get(key), f"{path}.{key}", TIME_RANGE, "time in seconds", nullable=True)
    if status == "ok":
        check_number(row.get("median_s"), f"{path}.median_s", positive=True)
    for i, t in enumerate(row.get("times_s") or []):
        check_within(t, f"{path}.times_s[{i}]", TIME_RANGE, "time in seconds")
    for key in ("flops", "bytes"):
        check_number(row.get(key), f"{path}.{key}", nullable=True, nonnegative=True)
    if "world_size" in row:
        check_world(row["world_size"], f"{path}.world_size")
