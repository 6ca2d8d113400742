"""Charts of a profile's quality calibration (docs/profile-schema.md, "Quality"): how a small model's metric falls
with fewer weight bits or more sparsity, measured points against the fitted curve.

As in report.charts, a chart comes as `*_frame` (the tidy table it draws, also its table view), `*_chart` and
`describe_*` (its text alternative). The curves are evaluated by simulator.quality_curves.evaluate, the one
implementation of their formulas; nothing is refitted here. Okabe-Ito colours and never colour alone: each
series has its own point shape and line dash.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from report import formatting as fmt
from report.charts import OKABE_ITO, legend
from simulator.quality_curves import QualityCurve, QualitySection, along, to_metric

METRIC_LABELS = {"accuracy": "Accuracy, higher is better", "f1_macro": "Macro-F1, higher is better",
                 "loss_nats": "Loss (nats per character), lower is better"}
X_LABELS = {"bits": "Weight bits", "sparsity": "Sparsity (fraction of weights pruned)"}
PANEL_METRICS = ("accuracy", "loss_nats")  # the metric each small model's panel shows (others are in the table)
SERIES_COLOURS = [OKABE_ITO[c] for c in ("blue", "vermillion", "bluish_green", "reddish_purple", "orange", "sky_blue")]
SERIES_SHAPES = ["circle", "triangle-up", "square", "diamond", "cross", "triangle-down"]
SERIES_DASHES = [[1, 0], [6, 3], [2, 2], [8, 2, 2, 2], [4, 4], [1, 3]]
GRID_POINTS = 48
COLUMNS = ["Panel", "Series", "x", "Value", "Low", "High", "Kind"]
MEASURED, FITTED = "measured (mean ± std over folds)", "fitted curve (band: ± std of per-fold fits)"


def series_name(curve: QualityCurve) -> str:
    return f"{curve.method.replace('_', ' ')}, {'fine-tuned' if curve.finetuned else 'one-shot'}"


def panel_name(curve: QualityCurve) -> str:
    return f"{curve.model_name} · {curve.y_name} vs {curve.family}"


def panels(section: QualitySection) -> dict[str, list[QualityCurve]]:
    """The curves drawn, by panel: per small model and family (bits, sparsity), the model's main metric."""
    out: dict[str, list[QualityCurve]] = {}
    for curve in section.curves.values():
        if curve.y_name in PANEL_METRICS:
            out.setdefault(panel_name(curve), []).append(curve)
    return out


def quality_frame(curves: list[QualityCurve]) -> pd.DataFrame:
    """Measured points (mean, mean ± std) and each fitted curve with its band, for the curves of one panel."""
    parts = []
    for curve in curves:
        name = series_name(curve)
        pts = curve.points
        parts.append(pd.DataFrame({"Panel": panel_name(curve), "Series": name, "x": [p.x for p in pts],
                                   "Value": [p.mean for p in pts], "Low": [p.mean - p.std for p in pts],
                                   "High": [p.mean + p.std for p in pts], "Kind": MEASURED}))
        grid, band = along(curve, GRID_POINTS)
        parts.append(pd.DataFrame({"Panel": panel_name(curve), "Series": name, "x": grid, "Value": band.mean,
                                   "Low": band.low, "High": band.high, "Kind": FITTED}))
    parts = [p for p in parts if not p.empty]
    frame = pd.concat(parts, ignore_index=True)[COLUMNS] if parts else pd.DataFrame(columns=COLUMNS)
    return frame[np.isfinite(pd.to_numeric(frame["Value"], errors="coerce"))].reset_index(drop=True)


def dense_value(curves: list[QualityCurve]) -> float | None:
    """The dense (uncompressed) model's metric, the level every curve starts from (its fixed e_dense)."""
    for curve in curves:
        if "e_dense" in curve.params:
            return float(to_metric(curve.params["e_dense"], curve.y_transform))
    return None


def quality_chart(frame: pd.DataFrame, curves: list[QualityCurve]) -> alt.LayerChart:
    """One panel: a line and band per series (method, one-shot or fine-tuned), its measured points with error
    bars, and a grey dashed rule at the dense model's value."""
    series = list(dict.fromkeys(frame["Series"]))
    scale = {"domain": series}
    colour = alt.Color("Series:N", scale=alt.Scale(**scale, range=SERIES_COLOURS[:len(series)]),
                       legend=legend(most_columns=2))
    first = curves[0]
    x = alt.X("x:Q", title=X_LABELS.get(first.family, first.family), scale=alt.Scale(zero=False, nice=False))
    y = alt.Y("Value:Q", title=METRIC_LABELS.get(first.y_name, first.y_name), scale=alt.Scale(zero=False))
    fitted = alt.Chart(frame).transform_filter(alt.datum.Kind == FITTED)
    measured = alt.Chart(frame).transform_filter(alt.datum.Kind == MEASURED)
    tips = [alt.Tooltip("Series:N"), alt.Tooltip("x:Q", format=".3~g"), alt.Tooltip("Value:Q", format=".4~g"),
            alt.Tooltip("Low:Q", format=".4~g"), alt.Tooltip("High:Q", format=".4~g"), alt.Tooltip("Kind:N")]
    low, high, detail = alt.Y("Low:Q"), alt.Y2("High"), alt.Detail("Series:N")
    layers = [
        fitted.mark_area(opacity=0.15).encode(x=x, y=low, y2=high, color=colour, detail=detail),
        fitted.mark_line(strokeWidth=1.6).encode(
            x=x, y=y, color=colour, strokeDash=alt.StrokeDash("Series:N", scale=alt.Scale(
                **scale, range=SERIES_DASHES[:len(series)]), legend=None), tooltip=tips),
        measured.mark_rule().encode(x=x, y=low, y2=high, color=colour),
        measured.mark_point(filled=True, size=45).encode(
            x=x, y=y, color=colour, shape=alt.Shape("Series:N", scale=alt.Scale(
                **scale, range=SERIES_SHAPES[:len(series)]), legend=None), tooltip=tips),
    ]
    dense = dense_value(curves)
    if dense is not None:
        layers.append(alt.Chart(pd.DataFrame({"Value": [dense]})).mark_rule(color="#888888", strokeDash=[3, 3])
                      .encode(y=alt.Y("Value:Q")))
    return alt.layer(*layers).properties(title=panel_name(first), width="container", height=220)


def describe_quality(frame: pd.DataFrame, curves: list[QualityCurve]) -> str:
    """The text alternative: per series, the measured metric at the extreme point and the fit's held-out error."""
    if frame.empty or not curves:
        return "No quality curve was fitted for this panel."
    first = curves[0]
    dense = dense_value(curves)
    parts = []
    for curve in curves:
        pts = sorted(curve.points, key=lambda p: p.x)
        if not pts:
            continue
        hard = pts[0] if curve.family == "bits" else pts[-1]  # fewest bits, most sparsity
        loo = "n/a" if curve.loo_mae is None else f"{fmt.number(curve.loo_mae)}"
        parts.append(f"{series_name(curve)}: {fmt.number(hard.mean)} at {curve.family} = {fmt.short(hard.x)} "
                     f"(model {curve.model}, leave-one-out error {loo})")
    start = f"The dense model measures {fmt.number(dense)}. " if dense is not None else ""
    return (f"{panel_name(first)} ({X_LABELS.get(first.family, first.family).lower()}): {start}"
            + "; ".join(parts) + ". Points: measured means with ± one standard deviation over folds; lines: the "
            "fitted curves with a band of ± the standard deviation of the per-fold fits.")


def curves_table(section: QualitySection) -> pd.DataFrame:
    """Every fitted curve: its model, parameters, points and leave-one-point-out error (the metric's units)."""
    rows = [{"Curve": key, "Model": c.model,
             "Parameters": ", ".join(f"{k} = {fmt.number(v)}" for k, v in c.params.items()),
             "Points": len(c.points), "LOO mean abs error": c.loo_mae, "LOO largest": c.loo_max_abs}
            for key, c in section.curves.items()]
    return pd.DataFrame(rows, columns=["Curve", "Model", "Parameters", "Points", "LOO mean abs error", "LOO largest"])

