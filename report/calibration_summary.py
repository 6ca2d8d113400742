"""Headline figures and tables of a calibration profile (docs/profile-schema.md). Pure functions of the dict.

The Calibrate page and any report read the same numbers from here: achieved GEMM throughput per device and
dtype, collective bus bandwidth per op and world size, held-out error, row counts, and side-by-side ratios.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from report import formatting as fmt
from simulator.device_curve import ELEMENT_BYTES
from simulator.profile import COMPUTE_MODELS, predict_s

DTYPE_ORDER = ("bf16", "fp16", "fp8", "int8", "tf32", "fp32")
UNITS = (("_tflops", "TFLOP/s"), ("_GBps", "GB/s"), ("_flops", "FLOP"), ("_bytes", "bytes"), ("_s", "s"))
SKIP_ENV = ("cpu_flags",)  # long lists shown in a caption rather than a table cell
RATIO = "B / A"  # the comparison's ratio column
UNDETERMINED_REL = 1.0  # a parameter whose standard error exceeds its value is not determined by the data

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


def gemm_rate_tflops(fit: Mapping[str, Any], dtype: str, flops: np.ndarray | float) -> np.ndarray:
    """Fitted TFLOP/s of square GEMMs (m = n = k) of these sizes: flops / the fit's predicted time, with the
    operands' bytes of that shape (3 n² elements, n = (flops / 2)^(1/3)) where the model has a memory term."""
    x = np.asarray(flops, dtype=float)
    ws_bytes = 3.0 * np.cbrt(x / 2.0) ** 2 * ELEMENT_BYTES.get(dtype, 2.0)
    return x / np.asarray(predict_s(dict(fit), flops=x, ws_bytes=ws_bytes), dtype=float) / 1e12


def gemm_rate(fit: Mapping[str, Any], dtype: str) -> dict[str, Any] | None:
    """THE GEMM throughput of a fit, the one number the page quotes everywhere (headline, key figures, chart
    caption, comparison): the fitted rate of a square GEMM at the largest size measured. Inside the measured
    range, so the data determine it (the fit's `achieved_tflops` is its plateau beyond the data, a parameter).
    Its range: the fit's held-out error (training error when nothing was held out)."""
    pts = [pt for split in ("train", "heldout") for pt in (fit.get("points") or {}).get(split, [])]
    if fit.get("status") != "ok" or not pts:
        return None
    at = float(max(pt["x"] for pt in pts))
    if fit.get("model") in COMPUTE_MODELS:
        tflops = float(gemm_rate_tflops(fit, dtype, at))
    else:  # a layer's inventory model (block_fwd_bwd): its own prediction at the largest layer measured
        tflops = max((at / pt["predicted"] / 1e12 for pt in pts if pt["x"] == at and pt.get("predicted")),
                     default=math.nan)
    if not math.isfinite(tflops) or tflops <= 0:
        return None
    held = fit.get("mape_heldout_pct")
    error, kind = (held, "held-out") if isinstance(held, int | float) else (fit.get("mape_train_pct"), "training")
    return {"tflops": tflops, "at_flops": at, "error_pct": error, "error_kind": kind}


def tflops_text(x: float) -> str:
    """How the page writes a TFLOP/s figure, everywhere: 3 significant figures, whole numbers from 100."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def gemm_throughput(profile: Mapping[str, Any], bench: str = "gemm") -> list[dict[str, Any]]:
    """GEMM throughput (`gemm_rate`) per fitted device/dtype: main device first, emulated dtypes last (the headline
    quotes the first), then bf16 before fp32."""
    out = []
    for key, fit in profile["fits"]["compute"].get(bench, {}).items():
        if not isinstance(fit, dict):
            continue
        device, _, dtype = key.partition("/")
        rate = gemm_rate(fit, dtype)
        if rate is not None:
            out.append({"device": device, "dtype": dtype, **rate, "model": fit["model"],
                        "path": f"fits.compute.{bench}.{key}"})
    main, slow = main_device(profile), set(profile.get("environment", {}).get("emulated") or [])
    return sorted(out, key=lambda r: (r["device"] != main, r["dtype"] in slow, _dtype_key(r["dtype"]), r["dtype"]))


def describe_rate(g: Mapping[str, Any]) -> str:
    """Where a GEMM throughput figure comes from, in one sentence (the key figure's help, the chart's caption)."""
    error = "n/a" if g["error_pct"] is None else f"{fmt.plain(g['error_pct'])}%"
    return (f"Fitted: a square GEMM at the largest size measured ({fmt.short(g['at_flops'])} FLOP per call) on "
            f"{g['device']}, model {g['model']} ({g['path']}); {g['error_kind']} error of the fit {error}.")


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


def emulated_text(dtype: str, device: str, points: int, gflops: float | None, fp32_gflops: float | None,
                  planned: bool) -> str:
    """The plain sentence for a dtype the probe found emulated (far slower than fp32), for a plan or a profile."""
    speed = (f" (probe: {fmt.plain(gflops)} GFLOP/s against {fmt.plain(fp32_gflops)} GFLOP/s in fp32)"
             if gflops and fp32_gflops else "")
    verb = "will be measured" if planned else "was measured"
    return (f"{dtype} is emulated on this {'CPU' if device == 'cpu' else 'GPU'}{speed}: {verb} at {points} small "
            f"point{'' if points == 1 else 's'} only; plans in {dtype} on this machine will be slow.")


def emulated(profile: Mapping[str, Any]) -> list[str]:
    """One sentence per dtype the profile's probe marked emulated (`environment.emulated`), with its probe figures
    (`environment.probe`) and the points measured in it."""
    env = profile.get("environment", {})
    probe = env.get("probe") if isinstance(env.get("probe"), dict) else {}
    main = main_device(profile)
    out = []
    for dtype in env.get("emulated") or []:
        device = next((d for d in (main, "cpu", "cuda") if f"{d}.{dtype}.gflops" in probe), main)
        points = sum(r.get("status") == "ok" and r.get("device") == device and r.get("dtype") == dtype
                     for r in profile.get("measurements", []))
        out.append(emulated_text(str(dtype), device, points, probe.get(f"{device}.{dtype}.gflops"),
                                 probe.get(f"{device}.fp32.gflops"), planned=False))
    return out


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


def headline(profile: Mapping[str, Any], spec: Any | None) -> str:
    """One sentence: who was measured, the best GEMM rate against its datasheet, bandwidth, held-out error."""
    parts = []
    gemms = [g for g in gemm_throughput(profile) if g["device"] == main_device(profile)] or gemm_throughput(profile)
    if gemms:
        g = gemms[0]
        peak = datasheet_peak(profile, spec, g["dtype"])
        share = f" ({fmt.pct(g['tflops'] / peak[0])} of datasheet)" if peak else ""
        parts.append(f"{g['dtype']} GEMMs reach {tflops_text(g['tflops'])} TFLOP/s{share}")
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
         "Note": fit.get("reason", "") if fit["status"] != "ok" else _note(fit),
         "Path": ".".join(("fits", section, *path))}
        for path, fit, _ in entries
    ])


def _note(fit: Mapping[str, Any]) -> str:
    """A fitted record's note (e.g. why a simpler model was kept) and the parameters the data do not determine."""
    parts = [str(fit["note"])] if fit.get("note") else []
    if undetermined(fit):
        parts.append("not determined by the data: " + ", ".join(undetermined(fit)))
    return "; ".join(parts)


def undetermined(fit: Mapping[str, Any]) -> list[str]:
    """Fitted parameters the data do not pin down: a relative standard error over UNDETERMINED_REL, an
    exactly zero one (the points do not depend on the parameter at all), or a value on its bound."""
    at_bound = set(fit.get("params_at_bound") or [])
    out = []
    for name, value in fit.get("params", {}).items():
        stderr = fit.get("stderr", {})
        if name not in stderr:
            continue  # not fitted (set from the data or the environment)
        err = stderr[name]
        if name in at_bound or (err is not None and (err == 0 or not value or err / abs(value) > UNDETERMINED_REL)):
            out.append(name)
    return out


def undetermined_note(fit: Mapping[str, Any]) -> str | None:
    """One sentence on what undetermined parameters mean for the fit's predictions, or None."""
    names = undetermined(fit)
    if not names or fit.get("status") != "ok":
        return None
    held, n_held = fit.get("mape_heldout_pct"), fit.get("n_heldout")
    check = (f"held-out error {fmt.plain(held)}% on its {n_held} largest points, training error "
             f"{fmt.plain(fit.get('mape_train_pct'))}%" if isinstance(held, int | float)
             else f"training error {fmt.plain(fit.get('mape_train_pct'))}%, no points held out")
    return (f"Not determined by the data: {', '.join(names)}. Very different values of "
            f"{'this parameter' if len(names) == 1 else 'these parameters'} fit the measured points about "
            f"equally well, so do not read {'it' if len(names) == 1 else 'them'} as a property of the machine; the "
            f"curve as a whole is still determined inside the measured range ({check}), while predictions well "
            "outside that range rest on these parameters and are uncertain.")


def params_frame(fit: Mapping[str, Any]) -> pd.DataFrame:
    """Fitted parameters with their standard errors and units; those the data do not determine are marked."""
    at_bound = set(fit.get("params_at_bound") or [])
    loose = set(undetermined(fit))
    rows = []
    for name, value in fit.get("params", {}).items():
        fitted = name in fit.get("stderr", {})
        err = fit.get("stderr", {}).get(name)
        rel = f"{100 * err / abs(value):,.0f}%" if err is not None and value else ""
        if name in at_bound:
            note = "not determined by the data: on its bound"
        elif name in loose:
            note = "not determined by the data"
        else:
            note = "" if fitted else "not fitted: set from the data or the machine"
        rows.append({"Parameter": name, "Value": fmt.number(value, 4),
                     "± std err": "n/a" if err is None else fmt.number(err, 2), "Relative": rel, "Unit": unit_of(name),
                     "Note": note})
    return pd.DataFrame(rows, columns=["Parameter", "Value", "± std err", "Relative", "Unit", "Note"])


def environment_frame(profile: Mapping[str, Any]) -> pd.DataFrame:
    env = profile.get("environment", {})
    rows = [{"Field": key, "Value": ", ".join(map(str, value)) if isinstance(value, list) else
             ("" if value is None else str(value))} for key, value in env.items() if key not in SKIP_ENV]
    run = profile.get("run", {})
    rows += [{"Field": f"run.{key}", "Value": str(value)} for key, value in run.items() if not isinstance(value, dict)]
    return pd.DataFrame(rows, columns=["Field", "Value"])
