"""The one strict loader of calibration profiles, plus the accessors and predictors the simulator uses.

A profile is JSON only: nothing in it is ever executed (no pickle, no torch.load, no eval). The file is
size-capped before parsing, nesting depth is checked with a linear scan before `json.loads` sees it,
NaN/Infinity and duplicate keys are rejected, and every field the simulator reads is type-checked.
Schema: docs/profile-schema.md. Imports only stdlib + numpy (and the predictors in
simulator/profile_models.py, likewise pure).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from simulator.profile_models import (  # noqa: F401 - re-exported: simulator.profile.predict_s etc.
    BUS_FACTORS,
    COMPUTE_MODELS,
    INVENTORY_MODELS,
    REQUIRED_PARAMS,
    bus_factor,
    predict_s,
)

KIND = "modelfolio.calibration_profile"
SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 64
MAX_MEASUREMENTS = 100_000
FIT_SECTIONS: tuple[str, ...] = ("compute", "collectives", "parameter_server", "ddp", "inference")
ROW_STATUSES = ("ok", "failed", "skipped")  # tuples: membership never hashes an untrusted value
FIT_STATUSES = ("ok", "insufficient_data", "failed")
_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_POSITIVE_SUFFIXES = ("_s", "_tflops", "_GBps", "_flops", "_bytes")


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
        path = Path(source)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _fail("", f"{path} is {size} bytes, over the {MAX_FILE_BYTES}-byte cap")
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError, TypeError) as exc:
        if isinstance(exc, ProfileError):
            raise
        raise _fail("", f"cannot read profile file {source!r}: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _fail("", f"profile grew past the {MAX_FILE_BYTES}-byte cap while being read")
    return data


def _max_depth(data: bytes) -> int:
    """Deepest [ / { nesting outside strings, by a linear scan (no recursion, no parser)."""
    s = np.frombuffer(_STRING_RE.sub(b'""', data), dtype=np.uint8)
    step = ((s == ord("[")) | (s == ord("{"))).astype(np.int8) - ((s == ord("]")) | (s == ord("}"))).astype(np.int8)
    return int(np.cumsum(step, dtype=np.int32).max(initial=0))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (profiles must be JSON-finite; use null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows to infinity")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:80]!r}")
        out[key] = value
    return out


def parse_json(data: bytes) -> Any:
    """Strict JSON: UTF-8, depth <= MAX_DEPTH, no NaN/Infinity/overflow, no duplicate keys."""
    depth = _max_depth(data)
    if depth > MAX_DEPTH:
        raise _fail("", f"nesting depth {depth} exceeds the cap of {MAX_DEPTH}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail("", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        end = text.rstrip()
        truncated = exc.pos >= len(end) or exc.msg.startswith("Unterminated") or not end.endswith(("}", "]"))
        hint = " (file truncated?)" if truncated else ""
        raise _fail("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}") from None
    except RecursionError:
        raise _fail("", "nesting too deep to parse") from None
    except ValueError as exc:
        raise _fail("", f"not valid profile JSON: {exc}") from None


def load_profile(source: str | Path | bytes) -> dict[str, Any]:
    """Parse and check a profile. `source`: file path, raw bytes, or a str holding JSON text ('{...')."""
    profile = parse_json(_read_bytes(source))
    _check_profile(profile)
    return profile


# ---------------------------------------------------------------- checks


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _describe(v: Any) -> str:
    return f"{type(v).__name__} ({json.dumps(v)[:40]})"


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


def _check_profile(p: Any) -> None:
    if not isinstance(p, dict):
        raise _fail("", f"a profile is a JSON object, got {_describe(p)}")
    if p.get("kind") != KIND:
        raise _fail("kind", f"expected {KIND!r}, got {p.get('kind')!r}: not a Modelfolio profile")
    version = p.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        raise _fail("schema_version", f"unsupported version {version!r}; this loader reads "
                    f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}")
    for key in ("created_utc", "name"):
        _need(p, key, str, "")
    for key in ("environment", "summary", "fits"):
        _need(p, key, dict, "")
    for section in FIT_SECTIONS:
        _walk_fits(_need(p["fits"], section, dict, "fits"), f"fits.{section}")
    rows = _need(p, "measurements", list, "")
    if len(rows) > MAX_MEASUREMENTS:
        raise _fail("measurements", f"{len(rows)} rows exceed the cap of {MAX_MEASUREMENTS}")
    for i, row in enumerate(rows):
        check_row(row, f"measurements[{i}]")


def _walk_fits(section: dict[str, Any], path: str) -> None:
    stack = [(section, path)]
    while stack:
        node, where = stack.pop()
        if "status" in node and isinstance(node.get("status"), str):
            _check_fit(node, where)
            continue
        for key, child in node.items():
            if isinstance(child, dict):
                stack.append((child, f"{where}.{key}"))


def _check_fit(fit: dict[str, Any], path: str) -> None:
    status = fit["status"]
    if status not in FIT_STATUSES:
        raise _fail(f"{path}.status", f"expected one of {sorted(FIT_STATUSES)}, got {status!r}")
    if status != "ok":
        _need(fit, "reason", str, path)
        return
    model = _need(fit, "model", str, path)
    params = _need(fit, "params", dict, path)
    for name, value in params.items():
        _number(value, f"{path}.params.{name}", positive=name.endswith(_POSITIVE_SUFFIXES))
    missing = [n for n in REQUIRED_PARAMS.get(model, ()) if n not in params]
    if missing:
        raise _fail(f"{path}.params", f"model {model!r} needs {', '.join(missing)}")
    if model in ("alpha_beta", "flat_then_linear") and fit.get("op") not in tuple(BUS_FACTORS):
        raise _fail(f"{path}.op", f"expected one of {sorted(BUS_FACTORS)}, got {fit.get('op')!r}")
    if model in INVENTORY_MODELS:  # predicted through the GEMM fit it was built on, carried in the record
        gemm = _need(fit, "gemm_fit", dict, path)
        if _need(gemm, "model", str, f"{path}.gemm_fit") not in COMPUTE_MODELS:
            raise _fail(f"{path}.gemm_fit.model", f"expected one of {list(COMPUTE_MODELS)}, got {gemm['model']!r}")
        gparams = _need(gemm, "params", dict, f"{path}.gemm_fit")
        for name, value in gparams.items():
            _number(value, f"{path}.gemm_fit.params.{name}", positive=name.endswith(_POSITIVE_SUFFIXES))
        missing = [n for n in REQUIRED_PARAMS[gemm["model"]] if n not in gparams]
        if missing:
            raise _fail(f"{path}.gemm_fit.params", f"model {gemm['model']!r} needs {', '.join(missing)}")
    for name, value in _need(fit, "stderr", dict, path).items():
        _number(value, f"{path}.stderr.{name}", nullable=True, nonnegative=True)
    for key in ("n_train", "n_heldout"):
        if _need(fit, key, int, path) < 0:
            raise _fail(f"{path}.{key}", "must be >= 0")
    for key in ("mape_train_pct", "mape_heldout_pct"):
        _number(fit.get(key), f"{path}.{key}", nullable=True, nonnegative=True)
    _need(fit, "heldout_rule", str, path)
    points = _need(fit, "points", dict, path)
    for split in ("train", "heldout"):
        for i, pt in enumerate(_need(points, split, list, f"{path}.points")):
            where = f"{path}.points.{split}[{i}]"
            if not isinstance(pt, dict):
                raise _fail(where, f"expected object, got {_describe(pt)}")
            _number(pt.get("x"), f"{where}.x")
            _number(pt.get("measured"), f"{where}.measured", positive=True)
            _number(pt.get("predicted"), f"{where}.predicted", nullable=True)


def check_row(row: Any, path: str = "row") -> None:
    """Raise ProfileError if one measurement row breaks the contract the loader enforces."""
    if not isinstance(row, dict):
        raise _fail(path, f"expected object, got {_describe(row)}")
    _need(row, "bench", str, path)
    status = row.get("status")
    if status not in ROW_STATUSES:
        raise _fail(f"{path}.status", f"expected one of {sorted(ROW_STATUSES)}, got {status!r}")
    for key, kind in (("params", dict), ("extra", dict), ("times_s", list), ("oversubscribed", bool)):
        if row.get(key) is not None and not isinstance(row[key], kind):
            raise _fail(f"{path}.{key}", f"expected {kind.__name__}, got {_describe(row[key])}")
    for key in ("median_s", "p25_s", "p75_s"):
        _number(row.get(key), f"{path}.{key}", nullable=True, positive=True)
    if status == "ok":
        _number(row.get("median_s"), f"{path}.median_s", positive=True)
    for i, t in enumerate(row.get("times_s") or []):
        _number(t, f"{path}.times_s[{i}]", positive=True)
    for key in ("flops", "bytes"):
        _number(row.get(key), f"{path}.{key}", nullable=True, nonnegative=True)
    if "world_size" in row and (not isinstance(row["world_size"], int) or row["world_size"] < 1):
        raise _fail(f"{path}.world_size", f"expected an integer >= 1, got {_describe(row['world_size'])}")


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


def profile_label(profile: dict[str, Any]) -> str:
    """Short human label, e.g. 'AMD EPYC 9B45, calibrated 2026-11-28 (profile v1, 412 rows)'."""
    n_rows = len(profile.get("measurements", []))
    return f"{profile['name']} (profile v{profile['schema_version']}, {n_rows} rows)"
