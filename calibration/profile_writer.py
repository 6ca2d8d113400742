"""Build and write the calibration profile (schema: docs/profile-schema.md).

The written file always passes the strict loader (`simulator.profile.load_profile`): rows that break the
row contract are replaced by a labelled failed stub (so indices stay aligned with fit points), every
non-finite number becomes null (listed in summary.non_finite_replaced), and the bytes are re-checked with
the loader before the atomic replace.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from calibration.fit import fit_all
from calibration.run_folder import META_NAME
from simulator.profile import KIND, SUPPORTED_SCHEMA_VERSIONS, ProfileError, check_row, load_profile

SCHEMA_VERSION = SUPPORTED_SCHEMA_VERSIONS[-1]
MAX_LISTED = 200
QUALITY_NAME = "quality.json"  # calibration.quality.run.SECTION_NAME
RUN_KEYS = ("run_id", "mode", "nproc", "nnodes")  # run.json's, copied to the profile's `run` (nnodes: ranks' nodes)
NOISY_IQR_FRACTION = 0.5  # measured on the 2-core development VM: with 2 threads the IQR can exceed 100% of the median


def jsonable(value: Any, path: str = "", replaced: list[str] | None = None) -> Any:
    """Plain JSON types; NaN/inf -> None (path appended to `replaced`); numpy scalars/arrays unwrapped."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{path}.{k}" if path else str(k), replaced) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v, f"{path}[{i}]", replaced) for i, v in enumerate(value)]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if math.isfinite(value):
            return float(value)
        if replaced is not None:
            replaced.append(path)
        return None
    return value


def clean_rows(rows: list[dict[str, Any]], replaced: list[str] | None = None
               ) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows the loader accepts; a row that breaks the contract becomes a failed stub in place."""
    out, dropped = [], []
    for i, row in enumerate(rows):
        r = jsonable(row, f"measurements[{i}]", replaced)
        try:
            check_row(r, f"measurements[{i}]")
        except ProfileError as exc:
            dropped.append(str(exc))
            bench = r.get("bench") if isinstance(r, dict) and isinstance(r.get("bench"), str) else "unknown"
            r = {"bench": bench, "status": "failed", "error": f"dropped by profile_writer: {exc}"[:2000]}
        out.append(r)
    return out, dropped


def profile_name(env: dict[str, Any], rows: list[dict[str, Any]], when: dt.datetime) -> str:
    gpus = env.get("gpu_names") if isinstance(env.get("gpu_names"), list) else []
    if gpus and any(r.get("device") == "cuda" for r in rows):
        device = f"{len(gpus)}x {gpus[0]}" if len(gpus) > 1 else str(gpus[0])
    else:
        device = str(env.get("cpu_model") or env.get("machine") or "unknown machine")
    return f"{device}, calibrated {when.date().isoformat()}"


def _walk_fits(node: Any, path: str):
    if isinstance(node, dict):
        if isinstance(node.get("status"), str):
            yield path, node
            return
        for k, v in node.items():
            yield from _walk_fits(v, f"{path}.{k}")


def summarize(rows: list[dict[str, Any]], fits: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    by_bench: dict[str, int] = {}
    for r in rows:
        by_status[r.get("status", "?")] = by_status.get(r.get("status", "?"), 0) + 1
        by_bench[r.get("bench", "?")] = by_bench.get(r.get("bench", "?"), 0) + 1
    heldout, insufficient = {}, []
    for path, fit in _walk_fits(fits, "fits"):
        if fit["status"] == "ok":
            heldout[path] = fit.get("mape_heldout_pct")
        else:
            insufficient.append(f"{path}: {fit.get('reason')}")
    values = [v for v in heldout.values() if v is not None and math.isfinite(v)]
    noisy = [i for i, r in enumerate(rows) if r.get("status") == "ok" and r.get("p25_s") and r.get("p75_s")
             and (r["p75_s"] - r["p25_s"]) > NOISY_IQR_FRACTION * r["median_s"]]
    compute = {f"{b}/{k}": f["params"]["achieved_tflops"] for b, g in fits["compute"].items()
               for k, f in g.items() if f.get("status") == "ok" and "achieved_tflops" in f["params"]}
    busbw = {f"{op}/{w}": f["params"].get("busbw_GBps") for op, g in fits["collectives"].items()
             for w, f in g["by_world"].items() if f.get("status") == "ok" and "busbw_GBps" in f["params"]}
    return {
        "rows_by_status": by_status, "rows_by_bench": by_bench,
        "oversubscribed_rows": sum(1 for r in rows if r.get("oversubscribed")),
        "noisy_rows": noisy[:MAX_LISTED],
        "noisy_note": f"indices of ok rows whose IQR exceeds {NOISY_IQR_FRACTION:.0%} of the median (a busy "
                      "machine); fits use them (robust loss) but their errors deserve less trust",
        "oversubscribed_note": "kept in measurements (oversubscribed: true) but never used in network fits "
                               "(collectives, parameter server, DDP): they time the scheduler",
        "rows_dropped_by_writer": dropped[:MAX_LISTED],
        "achieved_tflops": compute, "busbw_GBps": busbw,
        "mape_heldout_pct": heldout,
        "mape_heldout_pct_median": float(np.median(values)) if values else None,
        "fits_not_done": insufficient[:MAX_LISTED],
    }


def build_profile(rows: list[dict[str, Any]], env: dict[str, Any],
                  run_info: dict[str, Any] | None = None, quality: dict[str, Any] | None = None) -> dict[str, Any]:
    when = dt.datetime.now(dt.UTC)
    replaced: list[str] = []
    clean, dropped = clean_rows(rows, replaced)
    env_clean = jsonable(env, "environment", replaced)
    fits = fit_all(clean, env_clean)
    profile = {
        "schema_version": SCHEMA_VERSION, "kind": KIND,
        "created_utc": when.isoformat(timespec="seconds"),
        "name": profile_name(env_clean, clean, when),
        "environment": env_clean,
        "run": jsonable(run_info or {}),
        "summary": summarize(clean, fits, dropped),
        "fits": fits,
        "measurements": clean,
    }
    if quality is not None:
        profile["quality"] = quality
    profile = jsonable(profile, "", replaced)  # fits may hold non-finite values (e.g. an inf AICc)
    profile["summary"]["non_finite_replaced"] = replaced[:MAX_LISTED]
    profile["summary"]["non_finite_note"] = "NaN/inf values found at these paths were written as null"
    return profile


def read_quality(run_dir: Path) -> dict[str, Any] | None:
    """The quality calibration's section (`run_dir/quality.json`, written by calibration.quality.run), if any."""
    path = Path(run_dir) / QUALITY_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def read_run_info(run_dir: Path) -> dict[str, Any] | None:
    """The run's id, mode, ranks per node and node count (RUN_KEYS) from `run_dir/run.json`, if any: the device
    built from the profile needs to know whether its collectives crossed nodes (simulator/device_profile.py)."""
    path = Path(run_dir) / META_NAME
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    return {key: meta[key] for key in RUN_KEYS if key in meta} if isinstance(meta, dict) else None


def write_profile(run_dir: Path, rows: list[dict[str, Any]], env: dict[str, Any],
                  run_info: dict[str, Any] | None = None) -> Path:
    """run_dir/profile.json, atomically (temp file in the same folder, fsync, os.replace); with the quality
    section when the run folder holds one, and the run's options from its run.json when `run_info` is not given."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_info = run_info if run_info is not None else read_run_info(run_dir)
    data = json.dumps(build_profile(rows, env, run_info, read_quality(run_dir)), indent=1, allow_nan=False).encode()
    return _replace_checked(run_dir / "profile.json", data)


def attach_quality(profile_path: Path, section: dict[str, Any]) -> Path:
    """Put (or replace) the `quality` section of an existing profile, leaving everything else as it is; the result
    passes the loader before it atomically replaces the file."""
    profile_path = Path(profile_path)
    profile = load_profile(profile_path)
    profile["quality"] = jsonable(section, "quality")
    data = json.dumps(profile, indent=1, allow_nan=False).encode()
    return _replace_checked(profile_path, data)


def _replace_checked(final: Path, data: bytes) -> Path:
    load_profile(data)  # the writer never leaves a file its own loader rejects
    run_dir = final.parent
    tmp = run_dir / f".{final.name}.{os.getpid()}.tmp"
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(final)  # os.replace: atomic within one filesystem
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(run_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final
