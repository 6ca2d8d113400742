"""The one strict loader of calibration profiles, plus the accessors and predictors the simulator uses.

A profile is JSON only: nothing in it is ever executed (no pickle, no torch.load, no eval). The file is
size-capped before parsing, nesting depth is checked with a linear scan before `json.loads` sees it,
NaN/Infinity and duplicate keys are rejected, and every field the simulator reads is type-checked.
Schema: docs/profile-schema.md. Imports only stdlib + numpy (and the predictors in
simulator/profile_models.py and the bounded JSON reader simulator/safe_json.py, likewise pure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.profile_checks import (  # noqa: F401 - re-exported: simulator.profile.ProfileError etc.
    FIT_SECTIONS,
    FIT_STATUSES,
    KIND,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_FITS,
    MAX_MEASUREMENTS,
    ROW_STATUSES,
    SUPPORTED_SCHEMA_VERSIONS,
    TFLOPS_RANGE,
    ProfileError,
    fail,
)
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
from simulator.profile_schema import check_profile, check_row  # noqa: F401 - check_row re-exported
from simulator.safe_json import loads
from simulator.safe_json_errors import JSONInputError, shorten
from simulator.safe_json_read import read_bytes


def _read_bytes(source: str | Path | bytes | bytearray) -> bytes:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        if len(data) > MAX_FILE_BYTES:
            raise fail("", f"profile is {len(data)} bytes, over the {MAX_FILE_BYTES}-byte cap")
        return data
    if isinstance(source, str) and source.lstrip()[:1] == "{":
        return _read_bytes(source.encode("utf-8", errors="surrogatepass"))
    try:
        return read_bytes(source, max_bytes=MAX_FILE_BYTES)
    except JSONInputError as exc:
        if exc.kind == "read":
            raise fail("", f"cannot read profile file {shorten(source, 200)}: {exc.problem}") from None
        raise fail("", f"{exc.source}: {exc.problem}") from None


def parse_json(data: bytes) -> Any:
    """Strict JSON (simulator.safe_json): UTF-8, depth <= MAX_DEPTH, no NaN/Infinity/overflow, no duplicate
    keys, bounded numbers, strings, arrays and objects."""
    try:
        return loads(data, source="profile", max_bytes=MAX_FILE_BYTES, max_depth=MAX_DEPTH)
    except JSONInputError as exc:
        raise fail(exc.path, exc.problem) from None


def load_profile(source: str | Path | bytes) -> dict[str, Any]:
    """Parse and check a profile. `source`: file path, raw bytes, or a str holding JSON text ('{...')."""
    profile = parse_json(_read_bytes(source))
    check_profile(profile)
    return profile



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
