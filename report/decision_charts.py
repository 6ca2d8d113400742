"""The decision's charts, shared by the Decide page and its PDF: the Pareto front of quality against total cost,
and the tornado of the inputs that move total cost most. Each comes as a frame (also the chart's table view), a
chart, and a text alternative."""

from __future__ import annotations

import functools
import json
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from report import formatting as fmt
from report.charts import OKABE_ITO, title_lines
from simulator.keys import split_key

# a five-pointed star as an SVG path on the unit square (Vega-Lite point shapes take SVG paths)
STAR = ("M0,-1L0.2245,-0.309L0.9511,-0.309L0.3633,0.118L0.5878,0.809L0,0.382L-0.5878,0.809L-0.3633,0.118"
        "L-0.9511,-0.309L-0.2245,-0.309Z")
COST_TITLE = "Total cost, USD (log scale; cheaper to the left)"
LOSS_TITLE = "Predicted loss, nats/token (better is lower)"
KIND_ORDER = ("candidate", "Pareto front", "recommended")
COST_TITLE_CHARS = 60  # the Pareto chart is full width: its cost title stays on one line there
TORNADO_LABEL_CHARS = 22  # an input's name on the tornado's axis breaks into lines of this many characters
# each bar's band, in pixels: room for a name of TORNADO_MAX_LINES lines of TORNADO_LINE_PX. A fixed step (not a
# height from this plan's bars) keeps the spec the same when another plan has other inputs, so the page swaps the
# data, not the chart
TORNADO_MAX_LINES = 4  # the longest uncertain input's name ("elementwise ... (serving accelerator)") at 22 characters
TORNADO_LINE_PX = 11
TORNADO_STEP_PX = TORNADO_MAX_LINES * TORNADO_LINE_PX + 6


def choice_text(choice: dict[str, Any]) -> str:
    parts = []
    if choice.get("model.moe_experts"):
        parts.append(f"MoE of {int(choice['model.moe_experts'])} experts")
    if "model.params" in choice:
        size = "params per token" if choice.get("model.moe_experts") else "params"
        parts.append(f"{fmt.short(choice['model.params'])} {size}")
    if "training.tokens" in choice:
        parts.append(f"{fmt.short(choice['training.tokens'])} tokens")
    if "cluster.gpus" in choice:
        parts.append(f"{int(choice['cluster.gpus']):,} GPUs (TP {choice.get('cluster.tp', 1)}, "
                     f"PP {choice.get('cluster.pp', 1)})")
    if "compression.weight_bits" in choice:
        bits, method = choice["compression.weight_bits"], choice.get("compression.quant_method", "")
        parts.append("16-bit weights" if bits >= 16 else f"{bits}-bit {method.upper()} weights".replace("  ", " "))
    if "serving.gpus_per_replica" in choice:
        parts.append(f"{choice['serving.gpus_per_replica']} GPUs per replica")
    return ", ".join(parts)


def pareto_frame(decision: Any, candidates: int | None = None) -> pd.DataFrame:
    """One row per point drawn: a sample of the feasible candidates (at most `candidates`), the front, and the
    recommendation."""
    cost, loss = decision.sample["total_cost_usd"], decision.sample["quality_loss"]
    if candidates is not None and len(cost) > candidates:
        keep = np.linspace(0, len(cost) - 1, candidates).round().astype(int)
        cost, loss = cost[keep], loss[keep]
    columns = ["Kind", "Total cost (USD)", "Loss", "Plan"]
    grey = pd.DataFrame({"Kind": "candidate", "Total cost (USD)": np.asarray(cost, dtype=float),
                         "Loss": np.asarray(loss, dtype=float), "Plan": ""}, columns=columns)
    rows = [{"Kind": "Pareto front", "Total cost (USD)": p.total_cost_usd, "Loss": p.quality_loss,
             "Plan": choice_text(p.choice)} for p in decision.pareto]
    if decision.recommendation is not None:
        rows.append({"Kind": "recommended", "Total cost (USD)": decision.total_cost_usd,
                     "Loss": decision.quality_loss, "Plan": recommended_text(decision)})
    other = other_architecture(decision)
    if other is not None:  # the other architecture's own front and pick, beside the overall front
        rows += [{"Kind": "other front", "Total cost (USD)": p.total_cost_usd, "Loss": p.quality_loss,
                  "Plan": choice_text(p.choice)} for p in other.front]
        if other.pick is not None:
            rows.append({"Kind": "other pick", "Total cost (USD)": other.pick.total_cost_usd,
                         "Loss": other.pick.quality_loss, "Plan": f"best {other.name}: {choice_text(other.pick.choice)}"})
    return pd.concat([grey, pd.DataFrame(rows, columns=columns)], ignore_index=True)


def other_architecture(decision: Any) -> Any:
    """The architecture (dense or mixture-of-experts) the recommendation is not, where the search held both."""
    kinds = getattr(decision, "architectures", ())
    if not kinds:
        return None
    mine = decision.architecture or kinds[0].name  # without a recommendation: the first (dense) is "mine"
    return next((k for k in kinds if k.name != mine), None)


def recommended_text(decision: Any) -> str:
    s = decision.recommendation.scenario
    choice = {"model.params": s.model.params, "training.tokens": s.training.tokens, "cluster.gpus": s.cluster.gpus,
              "cluster.tp": s.cluster.tp, "cluster.pp": s.cluster.pp}
    for key in ("compression.weight_bits", "compression.quant_method", "serving.gpus_per_replica"):
        section, name = split_key(key)
        if hasattr(s, section) and hasattr(getattr(s, section), name):
            choice[key] = getattr(getattr(s, section), name)
    return choice_text(choice)


def _layers_pareto() -> alt.LayerChart:
    """The chart's grammar, on named datasets filled per decision (`pareto_spec`): "candidate", "front",
    "recommended" and "budget" (each may be empty)."""
    x = alt.X("Total cost (USD):Q", scale=alt.Scale(type="log"), title=title_lines(COST_TITLE, COST_TITLE_CHARS),
              axis=alt.Axis(format="$~s", labelExpr="replace(datum.label, 'G', 'B')"))
    y = alt.Y("Loss:Q", title=LOSS_TITLE, scale=alt.Scale(zero=False))
    tip = [alt.Tooltip("Kind:N"), alt.Tooltip("Total cost (USD):Q", format="$,.0f"),
           alt.Tooltip("Loss:Q", format=".3f"), alt.Tooltip("Plan:N")]
    cand = alt.Chart(alt.NamedData("candidate")).mark_circle(size=12, opacity=0.35, color="#9a9a9a") \
        .encode(x=x, y=y, tooltip=tip)
    front = alt.Chart(alt.NamedData("front")).mark_line(point=alt.OverlayMarkDef(size=30, filled=True),
                                                        color=OKABE_ITO["blue"], interpolate="step-after") \
        .encode(x=x, y=y, tooltip=tip)
    star = alt.Chart(alt.NamedData("recommended")).mark_point(
        shape=STAR, size=420, filled=True, color=OKABE_ITO["vermillion"], stroke=OKABE_ITO["black"],
        strokeWidth=0.8).encode(x=x, y=y, tooltip=tip)
    label = alt.Chart(alt.NamedData("recommended")).mark_text(align="left", dx=12, dy=-12, fontWeight="bold") \
        .encode(x=x, y=y, text=alt.value("recommended"))
    rule = alt.Chart(alt.NamedData("budget")).mark_rule(strokeDash=[6, 4], color=OKABE_ITO["black"]).encode(x=x)
    rule_text = alt.Chart(alt.NamedData("budget")).mark_text(align="left", dx=4, baseline="top", y=4) \
        .encode(x=x, text="Text:N")
    # the other architecture (dense or mixture-of-experts): its own front, dashed, and its pick, a diamond
    other = alt.Chart(alt.NamedData("other front")).mark_line(
        point=alt.OverlayMarkDef(size=24, filled=True, shape="square"), color=OKABE_ITO["orange"],
        strokeDash=[5, 3], interpolate="step-after").encode(x=x, y=y, tooltip=tip)
    other_pick = alt.Chart(alt.NamedData("other pick")).mark_point(
        shape="diamond", size=260, filled=True, color=OKABE_ITO["orange"], stroke=OKABE_ITO["black"],
        strokeWidth=0.8).encode(x=x, y=y, tooltip=tip)
    other_label = alt.Chart(alt.NamedData("other pick")).mark_text(align="left", dx=10, dy=12) \
        .encode(x=x, y=y, text="Label:N")
    return alt.layer(cand, other, front, other_pick, other_label, star, label, rule, rule_text).properties(height=380)


@functools.cache
def _pareto_template() -> str:
    """The chart's Vega-Lite spec without data, built (and validated) once: Altair costs tens of milliseconds a
    chart, too slow for a page that redraws on every budget change."""
    return json.dumps(_layers_pareto().to_dict())


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))  # NaN as null, numpy types as JSON


def pareto_spec(frame: pd.DataFrame, budget_usd: float | None = None) -> dict[str, Any]:
    """The Pareto chart of `pareto_frame` as a Vega-Lite spec (the page and the PDF draw this same spec)."""
    spec = json.loads(_pareto_template())
    budget = pd.DataFrame({"Total cost (USD)": [budget_usd], "Text": [f"budget {fmt.usd(budget_usd or 0.0)}"]}) \
        if budget_usd is not None and budget_usd > 0 else pd.DataFrame(columns=["Total cost (USD)", "Text"])
    spec["datasets"] = {"candidate": _records(frame[frame["Kind"] == "candidate"]),
                        "front": _records(frame[frame["Kind"] == "Pareto front"]),
                        "recommended": _records(frame[frame["Kind"] == "recommended"]),
                        "other front": _records(frame[frame["Kind"] == "other front"]),
                        "other pick": _records(frame[frame["Kind"] == "other pick"].assign(
                            Label=lambda f: f["Plan"].str.split(":").str[0])),
                        "budget": _records(budget)}
    return spec


def shown_budget(decision: Any) -> float | None:
    """The budget the Pareto chart draws as a line: none for "cheapest reaching a quality target" (the page and the
    PDF both ask here)."""
    return decision.budget_usd if decision.objective != "cheapest_for_quality" else None


def describe_pareto(frame: pd.DataFrame, budget_usd: float | None, feasible: int | None = None) -> str:
    """The chart in words; `feasible`: how many candidates were feasible, of which the grey points are a sample."""
    front = frame[frame["Kind"] == "Pareto front"]
    n = int((frame["Kind"] == "candidate").sum())
    grey = (f"a sample of {n:,} of the {feasible:,} feasible candidates" if feasible is not None and feasible > n
            else f"{n:,} feasible candidates")
    text = (f"Predicted loss against total cost for {grey} (grey) and the {len(front)} plans no other plan beats "
            f"on both (the front, blue line)")
    rec = frame[frame["Kind"] == "recommended"]
    if len(rec):
        r = rec.iloc[0]
        text += f"; the recommended plan (star) costs {fmt.usd(r['Total cost (USD)'])} for a loss of {r['Loss']:.3f}"
    other = frame[frame["Kind"] == "other pick"]
    if len(frame[frame["Kind"] == "other front"]):
        name = other.iloc[0]["Plan"].split(":")[0].removeprefix("best ") if len(other) else "other architecture"
        text += f"; the orange dashed line is the front of the {name} plans alone"
        if len(other):
            o = other.iloc[0]
            text += f", the diamond its best: {fmt.usd(o['Total cost (USD)'])} for a loss of {o['Loss']:.3f}"
    if budget_usd:
        text += f"; the black dashed line is the budget, {fmt.usd(budget_usd)}"
    return text + "."


def tornado_frame(decision: Any, most: int = 8) -> pd.DataFrame:
    """The inputs that move total cost or loss at all, most first (at most `most`)."""
    rows = []
    moving = [s for s in decision.sensitivity if s.cost_swing_usd > 0 or s.loss_high != s.loss_low]
    for s in moving[:most]:
        rows.append({"Input": s.label, "At P10 (USD)": s.cost_low_usd, "At P90 (USD)": s.cost_high_usd,
                     "Loss at P10": s.loss_low, "Loss at P90": s.loss_high,
                     "Swing (USD)": s.cost_swing_usd, "Spread (1σ)": s.spread})
    return pd.DataFrame(rows, columns=["Input", "At P10 (USD)", "At P90 (USD)", "Loss at P10", "Loss at P90",
                                       "Swing (USD)", "Spread (1σ)"])


@functools.cache
def _tornado_template() -> str:
    y = alt.Y("Label:N", sort=None, title=None,
              axis=alt.Axis(labelLimit=0, labelExpr="split(datum.label, '\\n')", labelFontSize=10,
                            labelLineHeight=TORNADO_LINE_PX))
    tip = [alt.Tooltip("Input:N"), alt.Tooltip("At P10 (USD):Q", format="$,.0f"),
           alt.Tooltip("At P90 (USD):Q", format="$,.0f")]
    bars = alt.Chart(alt.NamedData("bars")).mark_bar(color=OKABE_ITO["sky_blue"], height=14).encode(
        x=alt.X("Low:Q", title=["Total cost (USD) with", "the input at P10, P90"],
                axis=alt.Axis(format="$~s"), scale=alt.Scale(zero=False)), x2="High:Q", y=y, tooltip=tip)
    rule = alt.Chart(alt.NamedData("plan")).mark_rule(color=OKABE_ITO["black"]).encode(x="x:Q")
    return json.dumps(alt.layer(bars, rule).properties(height=alt.Step(TORNADO_STEP_PX)).to_dict())


def tornado_spec(frame: pd.DataFrame, plan_cost_usd: float) -> dict[str, Any]:
    """The tornado as a Vega-Lite spec: one bar per input from its P10 to its P90 total cost, the plan as a rule."""
    spec = json.loads(_tornado_template())
    names = [_wrapped(name) for name in frame["Input"]]
    data = frame.assign(Low=frame[["At P10 (USD)", "At P90 (USD)"]].min(axis=1),
                        High=frame[["At P10 (USD)", "At P90 (USD)"]].max(axis=1), Label=names)
    spec["datasets"] = {"bars": _records(data), "plan": [{"x": plan_cost_usd}]}
    return spec


def _wrapped(name: str) -> str:
    """An input's name as the tornado's axis shows it: lines joined by newlines (its labelExpr splits them)."""
    lines = title_lines(name, TORNADO_LABEL_CHARS)
    return lines if isinstance(lines, str) else "\n".join(lines)


def describe_tornado(frame: pd.DataFrame, plan_cost_usd: float) -> str:
    if frame.empty:
        return "No input of this plan is marked uncertain."
    top = frame.iloc[0]
    return (f"Each bar is the total cost when one uncertain input moves to its P10 and P90 value, the others as "
            f"planned (the plan: {fmt.usd(plan_cost_usd)}). {top['Input']} moves it most, from "
            f"{fmt.usd(min(top['At P10 (USD)'], top['At P90 (USD)']))} to "
            f"{fmt.usd(max(top['At P10 (USD)'], top['At P90 (USD)']))}.")
