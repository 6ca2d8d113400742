"""Headline figures and tables of a calibration profile (docs/profile-schema.md). Pure functions of the dict.

The Calibrate page and any report read the same numbers from here: achieved GEMM throughput per device and
dtype, collective bus bandwidth per op and world size, held-out error, row counts, and side-by-side ratios.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pandas as pd

from report import formatting as fmt

DTYPE_ORDER = ("bf16", "fp16", "fp8", "int8", "tf32", "fp32")
UNITS = (("_tflops", "TFLOP/s"), ("_GBps", "GB/s"), ("_flops", "FLOP"), ("_bytes", "bytes"), ("_s", "s"))
SKIP_ENV = ("cpu_flags",)  # long lists shown in a caption rather than a table cell
RATIO = "B / A"  # the comparison's ratio column

FitEntry = tuple[tuple[str, ...], Mapping[str, Any], Mapping[str, Any]]  # (path in the section, fit, parent node)
_NO_PARENT: Mapping[str, Any] = MappingProxyType({})


def iter_fits(node: Mapping[str, Any], path: tuple[str, ...] = (), parent: Mapping[str, Any] | None = None
              ) -> Iterator[FitEntry]:
    """Every fit record under a section, depth first, in file order (the loader's own walk rule).

    The fit and its parent are the profile's own objects, to be read, never copies: a parent holding thousands of
    fits was once copied once per fit (memory quadratic in the fits: over 8 GB for 20,000 siblings)."""
    if isinstance(node.get("status"), str):
        yield path, node, _NO_PARENT if parent is None else parent
        return
    for key, child in node.items():
        if isinstance(child, dict):
            yield from iter_fits(child, (*path, key), node)


def fit_label(path: tuple[str, ...]) -> str:
    """("all_reduce", "by_world", "2") -> "all_reduce · 2 ranks"; ("gemm", "cuda/bf16") -> "gemm · cuda/bf16"."""
    parts, after_world = [], False
    for part in path:
        if part in ("by_world", "fit"):
            after_world = part == "by_world"
            continue
        if after_world:
            parts.append(f"{part} rank" + ("" if part == "1" else "s"))
        else:
            parts.append(part.replace("cross_world", "across world sizes"))
        after_world = False
    return " · ".join(parts) or "fit"


def unit_of(param: str) -> str:
    return next((unit for suffix, unit in UNITS if param.endswith(suffix)), "")


def _dtype_key(dtype: str) -> int:
    return DTYPE_ORDER.index(dtype) if dtype in DTYPE_ORDER else len(DTYPE_ORDER)


def main_device(profile: Mapping[str, Any]) -> str:
    return "cuda" if profile.get("environment", {}).get("gpu_names") else "cpu"


def gemm_throughput(profile: Mapping[str, Any], bench: str = "gemm") -> list[dict[str, Any]]:
    """Achieved large-GEMM TFLOP/s per fitted device/dtype, main device first, then bf16 before fp32."""
    out = []
    for key, fit in profile["fits"]["compute"].get(bench, {}).items():
        if isinstance(fit, dict) and fit.get("status") == "ok" and "achieved_tflops" in fit.get("params", {}):
            device, _, dtype = key.partition("/")
            out.append({"device": device, "dtype": dtype, "tflops": fit["params"]["achieved_tflops"],
                        "stderr": fit.get("stderr", {}).get("achieved_tflops"), "model": fit["model"],
                        "path": f"fits.compute.{bench}.{key}"})
    main = main_device(profile)
    return sorted(out, key=lambda r: (r["device"] != main, _dtype_key(r["dtype"]), r["dtype"]))


def busbw(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Fitted bus bandwidth per collective and world size (> 1 rank), all_reduce first."""
    out = []
    for op, node in profile["fits"]["collectives"].items():
        for world, fit in (node.get("by_world") or {}).items() if isinstance(node, dict) else ():
            if isinstance(fit, dict) and fit.get("status") == "ok" and "busbw_GBps" in fit.get("params", {}):
                out.append({"op": op, "world": int(world), "GBps": fit["params"]["busbw_GBps"],
                            "stderr": fit.get("stderr", {}).get("busbw_GBps"), "model": fit["model"],
                            "path": f"fits.collectives.{op}.by_world.{world}"})
    return sorted(out, key=lambda r: (r["op"] != "all_reduce", r["op"], -r["world"]))


def heldout_median(profile: Mapping[str, Any]) -> float | None:
    summary = profile.get("summary", {})
    if isinstance(summary.get("mape_heldout_pct_median"), int | float):
        return float(summary["mape_heldout_pct_median"])
    values = [f["mape_heldout_pct"] for section in profile["fits"].values() if isinstance(section, dict)
              for _, f, _ in iter_fits(section) if isinstance(f.get("mape_heldout_pct"), int | float)]
    return statistics.median(values) if values else None


def row_counts(profile: Mapping[str, Any]) -> dict[str, int]:
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    for row in profile.get("measurements", []):
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def datasheet_peak(profile: Mapping[str, Any], spec: Any | None, dtype: str) -> tuple[float, str] | None:
    """The peak the achieved rate is a fraction of: the profile's own environment.peak_tflops, else the
    datasheet of the matched accelerator. A CPU device's "peak" is its own fitted rate, so None there."""
    env_peaks = profile.get("environment", {}).get("peak_tflops")
    if isinstance(env_peaks, dict) and isinstance(env_peaks.get(dtype), int | float) and env_peaks[dtype] > 0:
        return float(env_peaks[dtype]), "environment.peak_tflops of the profile"
    if spec is not None and str(spec.sources.get("peak_tflops", "")).startswith("datasheet"):
        peak = spec.peak_tflops.get(dtype)
        if peak:
            return float(peak), f"{spec.display_name.split(',')[0]} datasheet"
    return None


def _tflops(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def headline(profile: Mapping[str, Any], spec: Any | None) -> str:
    """One sentence: who was measured, the best GEMM rate against its datasheet, bandwidth, held-out error."""
    parts = []
    gemms = [g for g in gemm_throughput(profile) if g["device"] == main_device(profile)] or gemm_throughput(profile)
    if gemms:
        g = gemms[0]
        peak = datasheet_peak(profile, spec, g["dtype"])
        share = f" ({fmt.pct(g['tflops'] / peak[0])} of datasheet)" if peak else ""
        parts.append(f"{g['dtype']} GEMMs reach {_tflops(g['tflops'])} TFLOP/s{share}")
    else:
        parts.append("no GEMM throughput was fitted")
    bws = busbw(profile)
    if bws:
        b = bws[0]
        parts.append(f"{b['op'].replace('_', '-')} moves {b['GBps']:.3g} GB/s (bus bandwidth) at {b['world']} ranks")
    mape = heldout_median(profile)
    error = f"held-out error {fmt.plain(mape)}% median" if mape is not None else "no fit had points to hold out"
    return f"Active profile: {profile['name']}: {'; '.join(parts)}; {error}."


def compare_frame(a: Mapping[str, Any], b: Mapping[str, Any], name_a: str, name_b: str) -> pd.DataFrame:
    """Headline numbers of two profiles side by side, with their ratio B / A where both have the figure."""
    rows: dict[str, dict[str, Any]] = {}

    def put(figure: str, unit: str, which: str, value: float | None) -> None:
        rows.setdefault(figure, {"Figure": figure, "Unit": unit, name_a: None, name_b: None})[which] = value

    for name, profile in ((name_a, a), (name_b, b)):
        for g in gemm_throughput(profile):
            put(f"GEMM {g['device']}/{g['dtype']}", "TFLOP/s", name, g["tflops"])
        for bw in busbw(profile):
            put(f"{bw['op']}, {bw['world']} ranks", "GB/s (bus)", name, bw["GBps"])
        put("Held-out error, median", "% (MAPE)", name, heldout_median(profile))
        put("Rows measured (ok)", "rows", name, float(row_counts(profile)["ok"]))
    frame = pd.DataFrame(list(rows.values()), columns=["Figure", "Unit", name_a, name_b])
    num_a, num_b = pd.to_numeric(frame[name_a]), pd.to_numeric(frame[name_b])
    frame[RATIO] = (num_b / num_a.where(num_a > 0)).round(3)
    return frame


def fits_frame(section: str, entries: list[FitEntry]) -> pd.DataFrame:
    """One line per fit of a section: status, model, points and train / held-out error, or why not fitted."""
    return pd.DataFrame([
        {"Fit": fit_label(path), "Status": fit["status"], "Model": fit.get("model", ""),
         "Train points": fit.get("n_train"), "Held-out points": fit.get("n_heldout"),
         "Train MAPE (%)": fit.get("mape_train_pct"), "Held-out MAPE (%)": fit.get("mape_heldout_pct"),
         "Note": fit.get("reason", "") if fit["status"] != "ok" else ", ".join(fit.get("params_at_bound") or []),
         "Path": ".".join(("fits", section, *path))}
        for path, fit, _ in entries
    ])


def params_frame(fit: Mapping[str, Any]) -> pd.DataFrame:
    """Fitted parameters with their standard errors and units (null stderr: not estimable)."""
    at_bound = set(fit.get("params_at_bound") or [])
    rows = []
    for name, value in fit.get("params", {}).items():
        err = fit.get("stderr", {}).get(name)
        rel = f"{100 * err / abs(value):.0f}%" if err is not None and value else ""
        rows.append({"Parameter": name, "Value": f"{value:.4g}", "± std err": "n/a" if err is None else f"{err:.2g}",
                     "Relative": rel, "Unit": unit_of(name),
                     "Note": "on its bound (stderr not estimable)" if name in at_bound else ""})
    return pd.DataFrame(rows, columns=["Parameter", "Value", "± std err", "Relative", "Unit", "Note"])


def environment_frame(profile: Mapping[str, Any]) -> pd.DataFrame:
    env = profile.get("environment", {})
    rows = [{"Field": key, "Value": ", ".join(map(str, value)) if isinstance(value, list) else
             ("" if value is None else str(value))} for key, value in env.items() if key not in SKIP_ENV]
    run = profile.get("run", {})
    rows += [{"Field": f"run.{key}", "Value": str(value)} for key, value in run.items() if not isinstance(value, dict)]
    return pd.DataFrame(rows, columns=["Field", "Value"])
