"""The Compress page's charts, shared with its PDF: predicted quality at LLM scale (simulator.compression_curves:
perplexity ratio against weight bits, loss increase against sparsity, with their P10–P90 band and the plan's point)
and the quality measured on small models by the calibration (points with their spread across folds, the fitted
curve with its band across per-fold fits). Each frame gets a chart and a text alternative here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from report import formatting as fmt
from report.charts import OKABE_ITO, Y_TITLE_CHARS, legend, title_lines
from simulator.compression.constants import WEIGHT_BITS
from simulator.compression_curves import CHOSEN
from simulator.quality_curves import QualityCurve, QualitySection, along

COLOURS = [OKABE_ITO[c] for c in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple", "sky_blue",
                                  "yellow", "black")]
SHAPES = ["circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "circle", "square"]
FITTED_POINTS = 60  # points along each fitted curve
PPL_CAP = 4.0  # the bits chart's y axis stops here (a 1- or 2-bit collapse would flatten the rest); the table has all
PPL_TITLE = title_lines("Perplexity, compressed ÷ dense (log scale; lower is better)", Y_TITLE_CHARS)
DELTA_TITLE = title_lines("Loss increase, nats/token (log scale; lower is better)", Y_TITLE_CHARS)


# ---------------------------------------------------------------- predicted: bits


def _method_curves(curves: pd.DataFrame, chosen: pd.DataFrame, x: alt.X, value: str, title: str | list[str],
                   scale: alt.Scale, tip_x: alt.Tooltip, legend_columns: int) -> alt.LayerChart:
    """One line per method over `x` with its P10-P90 band (colour and point shape per method), and the plan's
    own point (`chosen`) marked."""
    methods = list(dict.fromkeys(curves["Method"]))
    colour = alt.Color("Method:N", scale=alt.Scale(domain=methods, range=COLOURS[:len(methods)]),
                       legend=legend("Method", most_columns=legend_columns))
    y = alt.Y(f"{value}:Q", title=title, scale=scale)
    tip = [alt.Tooltip("Method:N"), tip_x, alt.Tooltip(f"{value}:Q", format=".4f"),
           alt.Tooltip("P10:Q", format=".4f"), alt.Tooltip("P90:Q", format=".4f")]
    base = alt.Chart(curves)
    band = base.mark_area(opacity=0.15).encode(x=x, y=alt.Y("P10:Q", scale=scale, title=title), y2="P90:Q",
                                               color=colour)
    lines = base.mark_line(point=True).encode(x=x, y=y, color=colour, tooltip=tip,
                                              shape=alt.Shape("Method:N", scale=alt.Scale(domain=methods,
                                                                                          range=SHAPES[:len(methods)])))
    return alt.layer(band, lines, *_chosen_layers(chosen, x, y, scale, title)).properties(height=320)


def quant_chart(frame: pd.DataFrame) -> alt.LayerChart:
    data = frame.assign(**{c: frame[c].clip(upper=PPL_CAP) for c in ("Perplexity ratio", "P10", "P90")})
    x = alt.X("Weight bits:Q", title="Weight bits (fewer to the left)", scale=alt.Scale(type="log", base=2),
              axis=alt.Axis(values=list(WEIGHT_BITS), format="d"))
    scale = alt.Scale(type="log", domain=[1.0, PPL_CAP], clamp=True)
    return _method_curves(data, data[data["This plan"]], x, "Perplexity ratio", PPL_TITLE, scale,
                          alt.Tooltip("Weight bits:Q"), legend_columns=3)


def describe_quant(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "No quantization method is valid with this plan's other settings."
    text = (f"Predicted perplexity of the compressed model over the dense one against weight bits for "
            f"{frame['Method'].nunique()} methods, at this model and token budget (Kumar et al. 2024 eq. 2 with "
            "fitted constants; shaded: P10–P90)")
    at4 = frame[frame["Weight bits"] == 4].sort_values("Perplexity ratio")
    if len(at4):
        best = at4.iloc[0]
        text += f"; at 4 bits {best['Method']} is lowest, {best['Perplexity ratio']:.3f}"
    chosen = frame[frame["This plan"]]
    if len(chosen):
        r = chosen.iloc[0]
        text += (f"; this plan ({int(r['Weight bits'])}-bit {r['Method']}) is {r['Perplexity ratio']:.3f} "
                 f"(P10–P90 {r['P10']:.3f}–{r['P90']:.3f})")
    if (frame["Perplexity ratio"] > PPL_CAP).any():
        text += f"; ratios above {PPL_CAP:g} are drawn at the top edge (the table has them)"
    return text + "."


# ---------------------------------------------------------------- predicted: sparsity


def prune_chart(frame: pd.DataFrame) -> alt.LayerChart:
    data = frame[frame["Loss increase"] > 0]
    x = alt.X("Sparsity:Q", title=title_lines("Sparsity, share of weights removed (more to the right)"),
              axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]))
    return _method_curves(data[~data["This plan"]], data[data["This plan"]], x, "Loss increase", DELTA_TITLE,
                          alt.Scale(type="log"), alt.Tooltip("Sparsity:Q", format=".0%"), legend_columns=2)


def describe_prune(frame: pd.DataFrame) -> str:
    curves = frame[~frame["This plan"]]
    if curves.empty:
        return "No pruning method is valid with this plan's other settings."
    text = (f"Predicted loss increase against sparsity for {curves['Method'].nunique()} pruning methods with this "
            "plan's quantization (noise-equivalent bits in Kumar et al. 2024 eq. 2 plus Frantar et al. 2023 eq. 1; "
            "method offsets fitted on published Llama-2 rows, structured assumed; shaded: P10–P90 of the pruning "
            "fit's held-out error)")
    at50 = curves[np.isclose(curves["Sparsity"], 0.5)].sort_values("Loss increase")
    if len(at50):
        best, worst = at50.iloc[0], at50.iloc[-1]
        text += (f"; at 50% {best['Method']} adds {best['Loss increase']:.3f} nats/token and {worst['Method']} "
                 f"{worst['Loss increase']:.3f}")
    chosen = frame[frame["This plan"]]
    if len(chosen):
        r = chosen.iloc[0]
        text += (f"; this plan ({fmt.pct(r['Sparsity'])}) adds {r['Loss increase']:.4f} "
                 f"(P10–P90 {r['P10']:.4f}–{r['P90']:.4f})")
    return text + "."


def _chosen_layers(chosen: pd.DataFrame, x: alt.X, y: alt.Y, scale: alt.Scale, title: str | list[str]
                   ) -> list[alt.Chart]:
    """The plan's point: a diamond with its P10–P90 as a black bar, labelled."""
    if chosen.empty:
        return []
    data = chosen.assign(Text=CHOSEN)
    rule = alt.Chart(data).mark_rule(color=OKABE_ITO["black"], strokeWidth=1.5).encode(
        x=x, y=alt.Y("P10:Q", scale=scale, title=title), y2="P90:Q")
    point = alt.Chart(data).mark_point(shape="diamond", size=220, filled=True, color=OKABE_ITO["vermillion"],
                                       stroke=OKABE_ITO["black"], strokeWidth=0.8).encode(x=x, y=y)
    label = alt.Chart(data).mark_text(align="left", dx=10, dy=-10, fontWeight="bold").encode(x=x, y=y, text="Text:N")
    return [rule, point, label]


# ---------------------------------------------------------------- measured on small models

Y_TITLES = {"accuracy": "Accuracy, k-fold mean (higher is better)", "f1_macro": "Macro-F1, k-fold mean (higher is better)",
            "loss_nats": "Held-out loss, nats/character (lower is better)"}
METHOD_NAMES = {"rtn": "round-to-nearest", "qat": "quantization-aware fine-tune", "l1_unstructured": "L1 unstructured",
                "l2_rows": "L2 rows (structured)"}


def device_name(profile: Mapping[str, Any]) -> str:
    """Where the quality calibration ran: the GPU's or CPU's name from the profile's environment."""
    env = profile.get("environment", {}) if isinstance(profile, Mapping) else {}
    if str(profile.get("quality", {}).get("device", "")).startswith("cuda") and env.get("gpu_names"):
        return str(env["gpu_names"][0])
    return str(env.get("cpu_model") or profile.get("name") or "this machine")


def measured_title(profile: Mapping[str, Any], section: QualitySection, model_name: str) -> str:
    params = section.models.get(model_name, {}).get("params")
    size = f" ({int(params):,} params)" if isinstance(params, int | float) else ""
    return f"measured on {device_name(profile)}: {model_name}{size}"


def main_metric(section: QualitySection, model_name: str) -> str:
    """The metric drawn for a small model: the LM's loss, else the classifier's accuracy."""
    names = {c.y_name for c in section.curves.values() if c.model_name == model_name}
    return "loss_nats" if "loss_nats" in names else "accuracy"


def _curve_name(curve: QualityCurve) -> str:
    return f"{METHOD_NAMES.get(curve.method, curve.method)}, {'fine-tuned' if curve.finetuned else 'one-shot'}"


def measured_frame(section: QualitySection, model_name: str, family: str, y_name: str) -> pd.DataFrame:
    """One row per measured point (mean ± std across folds) and per point of each fitted curve (± the std of the
    per-fold fits), for one small model, one family (bits or sparsity) and one metric."""
    x_name = "Bits" if family == "bits" else "Sparsity"
    rows = []
    for curve in section.curves.values():
        if curve.model_name != model_name or curve.family != family or curve.y_name != y_name:
            continue
        name = _curve_name(curve)
        for p in curve.points:
            rows.append({"Curve": name, "Kind": "measured", x_name: p.x, "Value": p.mean, "Low": p.mean - p.std,
                         "High": p.mean + p.std, "Folds": p.n})
        grid, band = along(curve, FITTED_POINTS)
        for x, m, lo, hi in zip(grid, band.mean, band.low, band.high, strict=True):
            rows.append({"Curve": name, "Kind": "fitted", x_name: float(x), "Value": float(m), "Low": float(lo),
                         "High": float(hi), "Folds": len(curve.fold_params)})
    return pd.DataFrame(rows, columns=["Curve", "Kind", x_name, "Value", "Low", "High", "Folds"])


def measured_chart(frame: pd.DataFrame, y_name: str, title: str) -> alt.LayerChart:
    x_name = "Bits" if "Bits" in frame.columns else "Sparsity"
    curves = list(dict.fromkeys(frame["Curve"]))
    colour = alt.Color("Curve:N", scale=alt.Scale(domain=curves, range=COLOURS[:len(curves)]),
                       legend=legend(most_columns=2))
    x = (alt.X("Bits:Q", title="Weight bits (fewer to the left)", scale=alt.Scale(type="log", base=2),
               axis=alt.Axis(values=[1, 2, 3, 4, 8], format="d")) if x_name == "Bits"
         else alt.X("Sparsity:Q", title="Sparsity (more to the right)", axis=alt.Axis(format="%")))
    y_title = title_lines(Y_TITLES.get(y_name, y_name), Y_TITLE_CHARS)
    y = alt.Y("Value:Q", title=y_title, scale=alt.Scale(zero=False))
    fitted, measured = frame[frame["Kind"] == "fitted"], frame[frame["Kind"] == "measured"]
    tip = [alt.Tooltip("Curve:N"), alt.Tooltip(f"{x_name}:Q"), alt.Tooltip("Value:Q", format=".4f"),
           alt.Tooltip("Low:Q", format=".4f"), alt.Tooltip("High:Q", format=".4f"), alt.Tooltip("Folds:Q")]
    band = alt.Chart(fitted).mark_area(opacity=0.15).encode(x=x, y=alt.Y("Low:Q", title=y_title), y2="High:Q",
                                                            color=colour)
    line = alt.Chart(fitted).mark_line().encode(x=x, y=y, color=colour)
    bars = alt.Chart(measured).mark_rule().encode(x=x, y=alt.Y("Low:Q", title=y_title), y2="High:Q", color=colour)
    points = alt.Chart(measured).mark_point(filled=True, size=50).encode(
        x=x, y=y, color=colour, tooltip=tip,
        shape=alt.Shape("Curve:N", scale=alt.Scale(domain=curves, range=SHAPES[:len(curves)])))
    return alt.layer(band, line, bars, points).properties(height=280, title=alt.TitleParams(title_lines(title),
                                                                                             fontSize=12))


def describe_measured(frame: pd.DataFrame, y_name: str, title: str) -> str:
    measured = frame[frame["Kind"] == "measured"]
    if measured.empty:
        return f"No measured curve ({title})."
    x_name = "Bits" if "Bits" in frame.columns else "Sparsity"
    what = Y_TITLES.get(y_name, y_name).split(" (")[0].lower()
    parts = []
    for name, group in measured.groupby("Curve", sort=False):
        lo, hi = group.loc[group[x_name].idxmin()], group.loc[group[x_name].idxmax()]
        at = (lambda v: f"{v:g} bit{'' if v == 1 else 's'}") if x_name == "Bits" else fmt.pct
        parts.append(f"{name}: {hi['Value']:.3f} at {at(hi[x_name])}, {lo['Value']:.3f} at {at(lo[x_name])}")
    return (f"{what.capitalize()} against {x_name.lower()}, {title}: points are the k-fold mean with ± one standard "
            f"deviation across folds, lines the fitted curves with their band across per-fold fits. "
            + "; ".join(parts) + ".")


def kfold_table(raw_section: Mapping[str, Any], model_name: str) -> pd.DataFrame:
    """The calibration's k-fold table for one small model: each configuration's metrics (scikit-learn's accuracy,
    macro precision, recall and F1 for the classifier; loss and perplexity for the LM) as mean ± std (n folds)."""
    rows = []
    for r in raw_section.get("table", []):
        if r.get("model") != model_name:
            continue
        row = {"Model": r.get("model"), "Family": r.get("family"), "Method": METHOD_NAMES.get(r.get("method"),
                                                                                              r.get("method")),
               "Fine-tuned": "yes" if r.get("finetuned") else "no", "Bits or sparsity": r.get("x")}
        for metric, m in (r.get("metrics") or {}).items():
            if isinstance(m, Mapping) and "mean" in m:
                row[metric] = f"{m['mean']:.4f} ± {m.get('std', 0.0):.4f} (n={m.get('n', '?')})"
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")
