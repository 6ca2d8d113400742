"""Altair charts of a calibration profile: each fit's measured points against its curve, and GEMM throughput.

As in report.charts, a chart comes as `*_frame` (the tidy table it draws, also its table view), `*_chart` and
`describe_*` (its text alternative). Okabe-Ito colours, and never colour alone: fitted points are circles,
held-out points triangles, profiles in a comparison differ by line dash too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from report import calibration_summary as summary
from report import formatting as fmt
from report.charts import OKABE_ITO
from report.charts import legend as bottom_legend
from simulator.profile import BUS_MODELS, COMPUTE_MODELS, predict_s

FITTED, HELDOUT = "measured, used in the fit", "measured, held out of the fit"
SPLITS = {"train": FITTED, "heldout": HELDOUT}
SPLIT_SCALE = {"colour": [OKABE_ITO["blue"], OKABE_ITO["vermillion"]], "shape": ["circle", "triangle-up"]}
PROFILE_COLOURS = [OKABE_ITO[c] for c in ("blue", "orange", "bluish_green", "reddish_purple")]
SERIES_COLOURS = [OKABE_ITO[c] for c in ("orange", "sky_blue", "bluish_green", "blue", "vermillion", "reddish_purple",
                                          "black")]  # Okabe-Ito without yellow, too pale for thin lines on white
NO_WS_MODELS = ("linear_compute", "overhead_hill")
GROUP_FEATURES = {**dict.fromkeys(BUS_MODELS, ("world_size",)), "constant": ("world_size",),
                  "sharded_ps": ("servers", "workers")}
X_TITLES = {
    "flops": "Work per call (FLOP)", "message_bytes": "Message size (bytes)", "prompt": "Prompt length (tokens)",
    "batch * context": "Batch × context (tokens)", "sparsity": "Sparsity (fraction of weights pruned)",
    "hidden": "Hidden size", "batch": "Batch (sequences)", "grad_bytes": "Gradient size (bytes)",
    "compute_s + allreduce_s": "Compute + all-reduce time (s)",
}
Y_TITLES = {"time_s": "Time per call (s), lower is faster", "latency_ratio": "Latency, pruned / dense (×)",
            "speedup": "Speedup over fp32 (×), higher is faster"}
GRID_POINTS = 64
# a chart draws at most this many rows per layer (altair refuses more by default; a browser slows down well before):
# more points are thinned evenly, and the text and the table say so and keep them all
MAX_CHART_ROWS = 5_000
MAX_CURVES = 24  # curves of one fit (one per world size, server count or working set)
MAX_SERIES = 12  # device/dtype series per profile in the throughput chart


def _log_scale(values: pd.Series | np.ndarray) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size and v.min() > 0 and np.log10(v.max()) - np.log10(v.min()) >= np.log10(20))


def x_title(fit: Mapping[str, Any]) -> str:
    return X_TITLES.get(fit.get("x_name", "x"), str(fit.get("x_name", "x")))


def y_title(fit: Mapping[str, Any]) -> str:
    if fit.get("y_kind", "time_s") == "time_s":
        return Y_TITLES["time_s"]
    return Y_TITLES.get(fit.get("y_name", ""), str(fit.get("y_name", "measured")))


def points_frame(fit: Mapping[str, Any]) -> pd.DataFrame:
    """Measured points of a fit, its prediction at each, and the error in percent of the measurement."""
    rows = []
    for split, name in SPLITS.items():
        for pt in fit.get("points", {}).get(split, []):
            predicted = pt.get("predicted")
            rows.append({"x": pt["x"], "Measured": pt["measured"], "Predicted": predicted, "Point": name,
                         "Error (%)": None if predicted is None else 100 * (predicted - pt["measured"]) / pt["measured"],
                         "Rows": ", ".join(map(str, pt.get("rows", []))),
                         **{k: v for k, v in pt.items() if k in ("world_size", "ws_bytes", "batch", "hidden",
                                                                 "context", "servers", "workers", "tokens")}})
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(["x", "Measured", "Predicted", "Point", "Error (%)", "Rows",
                                                            *(k for r in rows for k in r)])))
    for column in ("x", "Measured", "Predicted", "Error (%)"):  # a missing prediction is NaN, never None
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def drawable(frame: pd.DataFrame, limit: int = MAX_CHART_ROWS) -> pd.DataFrame:
    """At most `limit` rows, evenly spaced through the frame (all of them when it is short enough)."""
    if len(frame) <= limit:
        return frame
    return frame.iloc[np.unique(np.linspace(0, len(frame) - 1, limit).round().astype(int))]


def _grid(x: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    lo, hi = (lo / 2, hi * 2) if lo == hi else (lo / 1.3, hi * 1.3)
    return np.geomspace(lo, hi, GRID_POINTS) if lo > 0 else np.linspace(lo, hi, GRID_POINTS)


def _typical_ws(points: pd.DataFrame, flops: np.ndarray) -> np.ndarray:
    """Working set typical of each size: a power law through the measured shapes (square GEMMs give
    ws ~ flops^(2/3)); odd shapes then show as points off the curve, with their own error below."""
    x, ws = points["x"].to_numpy(float), points["ws_bytes"].to_numpy(float)
    keep = np.isfinite(x) & np.isfinite(ws) & (x > 0) & (ws > 0)  # a point without its working set says nothing
    if not keep.any():
        return np.full_like(flops, np.nan)
    log_x, log_ws = np.log(x[keep]), np.log(ws[keep])
    if np.ptp(log_x) == 0:
        return np.full_like(flops, np.exp(log_ws.mean()))
    slope, intercept = np.polyfit(log_x, log_ws, 1)
    return np.exp(intercept + slope * np.log(flops))


def curve_frame(fit: Mapping[str, Any]) -> pd.DataFrame:
    """The fitted model evaluated by simulator.profile.predict_s on a log-spaced grid over the measured range.

    Context features come from the points: one curve per world size (collectives) or server/worker count
    (parameter server); a roofline's working set is held per shape when several points share one, else
    taken as the working set typical of each size. Empty when predict_s does not evaluate the model.
    """
    pts = points_frame(fit)
    model = fit.get("model", "")
    if pts.empty or fit.get("status") != "ok":
        return pd.DataFrame(columns=["x", "Predicted", "Curve"])
    keys: tuple[str, ...] = GROUP_FEATURES.get(model, ())
    interpolate_ws = False
    if model in COMPUTE_MODELS and model not in NO_WS_MODELS and "ws_bytes" in pts:
        repeated = pts["ws_bytes"].nunique() <= len(pts) / 2
        keys, interpolate_ws = (("ws_bytes",), False) if repeated else ((), True)
    keys = tuple(k for k in keys if k in pts)
    frames = []
    groups = pts.groupby(list(keys)) if keys else [((), pts)]
    try:
        for n, (group, sub) in enumerate(groups):
            if n == MAX_CURVES:  # one line per context, up to a legible number of them
                break
            grid = _grid(sub["x"].to_numpy(dtype=float))
            features: dict[str, Any] = dict(zip(keys, np.atleast_1d(group), strict=True))
            if model in COMPUTE_MODELS:
                features["flops"] = grid
                if interpolate_ws:
                    features["ws_bytes"] = _typical_ws(sub, grid)
            else:
                features["message_bytes"] = grid
            predicted = np.broadcast_to(predict_s(fit, **features), grid.shape)
            label = ", ".join(f"{k} = {fmt.short(v)}" for k, v in zip(keys, np.atleast_1d(group), strict=True))
            frames.append(pd.DataFrame({"x": grid, "Predicted": predicted, "Curve": label or "fitted model"}))
    except (KeyError, ValueError, TypeError):
        return pd.DataFrame(columns=["x", "Predicted", "Curve"])
    if not frames:
        return pd.DataFrame(columns=["x", "Predicted", "Curve"])
    curve = pd.concat(frames, ignore_index=True)
    return curve[np.isfinite(curve["Predicted"].to_numpy(float))].reset_index(drop=True)  # drawn where defined


def _split_encoding(show_legend: bool = True) -> dict[str, Any]:
    legend = bottom_legend(column_px=230, most_columns=2) if show_legend else None
    return {"color": alt.Color("Point:N", scale=alt.Scale(domain=list(SPLITS.values()), range=SPLIT_SCALE["colour"]),
                               legend=legend),
            "shape": alt.Shape("Point:N", scale=alt.Scale(domain=list(SPLITS.values()), range=SPLIT_SCALE["shape"]),
                               legend=legend)}


def _x_encoding(fit: Mapping[str, Any], log_x: bool, title: bool = True) -> alt.X:
    return alt.X("x:Q", title=x_title(fit) + (" · log scale" if log_x else "") if title else None,
                 scale=alt.Scale(type="log" if log_x else "linear", zero=False, nice=False),
                 axis=alt.Axis(format="~s" if log_x else "~g", labelOverlap=True))


def _tips(fit: Mapping[str, Any]) -> list[Any]:
    return [alt.Tooltip("Point:N"), alt.Tooltip("x:Q", title=fit.get("x_name", "x"), format=".3~g"),
            alt.Tooltip("Measured:Q", format=".3~g"), alt.Tooltip("Predicted:Q", format=".3~g"),
            alt.Tooltip("Error (%):Q", format="+.1f"), alt.Tooltip("Rows:N")]


def fit_chart(fit: Mapping[str, Any], points: pd.DataFrame, curve: pd.DataFrame) -> alt.LayerChart:
    """Measured points (circles fitted, triangles held out) and the fitted curve: a black line, or black
    crosses where the model is only evaluated at the measured points."""
    log_x = _log_scale(points["x"])
    log_y = _log_scale(pd.concat([points["Measured"], points["Predicted"].dropna(), curve["Predicted"]]))
    y = alt.Y("Measured:Q", title=y_title(fit) + (" · log scale" if log_y else ""),
              scale=alt.Scale(type="log" if log_y else "linear", zero=False),
              axis=alt.Axis(format="~s" if fit.get("y_kind", "time_s") == "time_s" else "~g"))
    points, curve = drawable(points), drawable(curve)
    measured = alt.Chart(points).mark_point(filled=True, size=70, opacity=0.9).encode(
        x=_x_encoding(fit, log_x), y=y, tooltip=_tips(fit), **_split_encoding())
    if not curve.empty:
        model = alt.Chart(curve).mark_line(color=OKABE_ITO["black"], strokeWidth=1.5).encode(
            x=alt.X("x:Q"), y=alt.Y("Predicted:Q"), detail=alt.Detail("Curve:N"),
            tooltip=[alt.Tooltip("Curve:N"), alt.Tooltip("Predicted:Q", format=".3~g")])
    else:
        model = alt.Chart(points.dropna(subset=["Predicted"])).mark_point(
            shape="cross", color=OKABE_ITO["black"], size=60).encode(x=alt.X("x:Q"), y=alt.Y("Predicted:Q"),
                                                                     tooltip=_tips(fit))
    return alt.layer(model, measured).properties(width="container", height=380)


def residual_chart(fit: Mapping[str, Any], points: pd.DataFrame) -> alt.LayerChart:
    """Prediction error per point, in % of the measurement, on the same x axis as fit_chart."""
    log_x = _log_scale(points["x"])
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888888").encode(y=alt.Y("y:Q"))
    errors = alt.Chart(drawable(points.dropna(subset=["Error (%)"]))).mark_point(filled=True, size=50).encode(
        x=_x_encoding(fit, log_x), y=alt.Y("Error (%):Q", title="Error (%), 0 is exact"), tooltip=_tips(fit),
        **_split_encoding(show_legend=False))
    return alt.layer(zero, errors).properties(width="container", height=190)  # Streamlit: height includes axes


def describe_fit(label: str, fit: Mapping[str, Any], points: pd.DataFrame, curve: pd.DataFrame | None = None) -> str:
    if fit.get("status") != "ok" or points.empty:
        return f"{label}: not fitted ({fit.get('reason', fit.get('status'))})."
    n_train, n_held = (points["Point"] == FITTED).sum(), (points["Point"] == HELDOUT).sum()
    held = fit.get("mape_heldout_pct")
    error = f"held-out error {fmt.plain(held)}%" if held is not None else "no points held out"
    worst = points.loc[points["Error (%)"].abs().idxmax()] if points["Error (%)"].notna().any() else None
    tail = (f" Largest miss: {worst['Error (%)']:+.0f}% at {fit.get('x_name', 'x')} = {fmt.short(worst['x'])}."
            if worst is not None else "")
    drawn = (" Black line: the fitted model over the measured range." if curve is not None and not curve.empty
             else " Black crosses: the model's prediction at each measured point.")
    if len(points) > MAX_CHART_ROWS:
        drawn += f" The chart draws {MAX_CHART_ROWS:,} of the {len(points):,} points, evenly spaced; the table lists all."
    return (f"{label}: {len(points)} measured points ({n_train} fitted, {n_held} held out), model {fit['model']}; "
            f"{error}, training error {fmt.plain(fit.get('mape_train_pct'))}%.{tail}{drawn}")


def throughput_frame(profiles: Mapping[str, Mapping[str, Any]], bench: str = "gemm") -> pd.DataFrame:
    """Measured GEMM throughput (FLOP / time) per profile and device/dtype, and the fitted rate of square GEMMs
    over the measured sizes (calibration_summary.gemm_rate_tflops: its right end is the page's GEMM figure)."""
    parts = []
    for name, profile in profiles.items():
        for key, fit in profile["fits"]["compute"].get(bench, {}).items():
            if not (isinstance(fit, dict) and fit.get("status") == "ok"):
                continue
            pts = points_frame(fit)
            if pts.empty:
                continue
            parts.append(pd.DataFrame({"Profile": name, "Series": key, "FLOP": pts["x"].to_numpy(float),
                                       "TFLOP/s": (pts["x"] / pts["Measured"] / 1e12).to_numpy(float),
                                       "Kind": pts["Point"].to_numpy(object)}))
            x = pts["x"].to_numpy(float)
            if fit.get("model") in COMPUTE_MODELS:
                grid = np.geomspace(x.min(), x.max(), GRID_POINTS) if x.min() > 0 else np.unique(x)
                with np.errstate(all="ignore"):
                    rate = np.asarray(summary.gemm_rate_tflops(fit, key.partition("/")[2], grid), dtype=float)
            else:  # not a function of size alone: the model's prediction at each measured point
                order = np.argsort(x, kind="stable")
                grid, rate = x[order], (pts["x"] / pts["Predicted"] / 1e12).to_numpy(float)[order]
            keep = np.isfinite(rate) & (rate > 0)
            parts.append(pd.DataFrame({"Profile": name, "Series": key, "FLOP": grid[keep], "TFLOP/s": rate[keep],
                                       "Kind": "fitted model"}))
    columns = ["Profile", "Series", "FLOP", "TFLOP/s", "Kind"]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def _first_series(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each profile's first MAX_SERIES device/dtype series (a chart of hundreds is unreadable)."""
    pairs = frame[["Profile", "Series"]].drop_duplicates()
    keep = pairs.groupby("Profile", sort=False).head(MAX_SERIES)
    return frame.merge(keep, on=["Profile", "Series"]) if len(keep) < len(pairs) else frame


def throughput_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Throughput against GEMM size, log-log. One profile: colour and shape by device/dtype. Several: colour
    and line dash by profile, point shape by device/dtype, and every curve labelled at its right end."""
    frame = drawable(_first_series(frame))
    several = frame["Profile"].nunique() > 1
    profiles = list(dict.fromkeys(frame["Profile"]))
    x = alt.X("FLOP:Q", title="GEMM size (FLOP per call, log scale)", scale=alt.Scale(type="log"),
              axis=alt.Axis(format="~s"))
    y = alt.Y("TFLOP/s:Q", title="TFLOP/s (log scale), higher is better", scale=alt.Scale(type="log"),
              axis=alt.Axis(format="~g"))
    legend = bottom_legend(column_px=230)
    if several:
        colour = alt.Color("Profile:N", scale=alt.Scale(domain=profiles, range=PROFILE_COLOURS[:len(profiles)]),
                           legend=legend)
        dash = alt.StrokeDash("Profile:N", scale=alt.Scale(domain=profiles, range=[[1, 0], [6, 3], [2, 2], [8, 2, 2, 2]]
                                                              [:len(profiles)]), legend=legend)
    else:
        colour = alt.Color("Series:N", scale=alt.Scale(range=SERIES_COLOURS), legend=legend,
                           title="device/dtype")
        dash = alt.StrokeDash("Profile:N", legend=None)
    tips = [alt.Tooltip("Profile:N"), alt.Tooltip("Series:N"), alt.Tooltip("Kind:N"),
            alt.Tooltip("FLOP:Q", format=".3~g"), alt.Tooltip("TFLOP/s:Q", format=".3~g")]
    lines = alt.Chart(frame).transform_filter(alt.datum.Kind == "fitted model").mark_line(strokeWidth=1.6).encode(
        x=x, y=y, color=colour, strokeDash=dash, detail=alt.Detail("Series:N"), tooltip=tips)
    dots = alt.Chart(frame).transform_filter(alt.datum.Kind != "fitted model").mark_point(
        size=45, filled=True, opacity=0.8).encode(
        x=x, y=y, color=colour, shape=alt.Shape("Series:N", legend=legend, title="device/dtype"), tooltip=tips)
    ends = alt.Chart(frame).transform_filter(alt.datum.Kind == "fitted model").transform_joinaggregate(
        last="max(FLOP)", groupby=["Profile", "Series"]).transform_filter("datum.FLOP == datum.last").mark_text(
        align="left", dx=4, fontSize=11).encode(x=x, y=y, text=alt.Text("Series:N"), color=colour)
    return alt.layer(lines, dots, ends).properties(width="container", height=420)


def describe_throughput(frame: pd.DataFrame) -> str:
    """The text alternative. Its TFLOP/s figures are the lines' right ends, the fitted rate at the largest size
    measured: the page's GEMM throughput (calibration_summary.gemm_rate, the same function at the same size)."""
    fitted = frame[frame["Kind"] == "fitted model"]
    if fitted.empty:
        return "No GEMM throughput was fitted in this profile."
    ends = fitted.loc[fitted.groupby(["Profile", "Series"], sort=False)["FLOP"].idxmax()]
    ends = ends.sort_values("TFLOP/s", ascending=False).head(6)
    parts = [f"{series} of {profile}: {summary.tflops_text(rate)} TFLOP/s"
             for series, profile, rate in zip(ends["Series"], ends["Profile"], ends["TFLOP/s"], strict=True)]
    text = ("GEMM throughput rises with size and levels off. Lines: the fitted rate of square GEMMs over the sizes "
            "measured; a line's right end, the fitted rate at the largest size measured, is that curve's GEMM "
            "throughput: " + "; ".join(parts) + ".")
    per_profile = frame[["Profile", "Series"]].drop_duplicates().groupby("Profile").size()
    if (per_profile > MAX_SERIES).any():
        text += f" The chart draws the first {MAX_SERIES} series of each profile; the table lists all."
    return text
