"""Train page output: the answer, key figures against the baseline, warnings, charts and their sources."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from report import charts
from report import formatting as fmt

BASELINE_NAME, CURRENT_NAME = "Baseline", "This plan"

# figure key -> (metric label, formatter of the value, formatter of a change, change in percent too, lower is better)
METRICS: tuple[tuple[str, str, Callable[[float], str], Callable[[float], str], bool, bool], ...] = (
    ("training.wall_days", "Time (days)", fmt.plain, fmt.days, True, True),
    ("training.cost_usd", "Compute cost", fmt.usd, fmt.usd, True, True),
    ("training.gpu_hours", "GPU-hours", fmt.short, fmt.short, True, True),
    ("training.mfu", "MFU", fmt.pct, fmt.points, False, False),
    ("training.energy_mwh", "Energy (MWh)", fmt.plain, fmt.mwh, True, True),
    ("training.memory_per_gpu_gb", "Memory (GB)", fmt.plain, fmt.gb, True, True),
    ("quality.loss", "Predicted loss", fmt.loss, fmt.loss, False, True),
)


def md(text: str) -> str:
    """Escape the dollar signs Streamlit's Markdown would read as LaTeX."""
    return text.replace("$", r"\$")


def hbm_GB(plan: Any) -> float:
    return plan.hardware.hbm_GB


def _figure(plan: Any, dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    return getattr(plan, section)[key]


def _help(figure: Any) -> str:
    extra = " Shown as used / HBM capacity of one GPU." if figure.unit == "GB" else ""
    if figure.low is not None and figure.high is not None:
        extra += f" Range: {fmt.by_unit(figure.low, figure.unit)} to {fmt.by_unit(figure.high, figure.unit)}."
    return md(f"{figure.label} ({figure.unit or 'yes/no'}). How: {figure.source}. Provenance: {figure.provenance}.{extra}")


def answer(plan: Any) -> None:
    st.markdown(f"#### {md(fmt.training_sentence(plan, hbm_GB(plan)))}")


def metrics(plan: Any, baseline: Any | None) -> None:
    with st.container(border=True, key="train_metrics"):
        for column, (dotted, label, show, show_change, percent, lower_better) in zip(
            st.columns(len(METRICS)), METRICS, strict=True
        ):
            figure = _figure(plan, dotted)
            value = show(figure.value)
            if dotted == "training.memory_per_gpu_gb":  # used / capacity
                value = f"{value} / {fmt.plain(hbm_GB(plan))}"
            change = None
            if baseline is not None:
                change = fmt.delta(figure.value, _figure(baseline, dotted).value, show_change, percent)
            column.metric(label, value, change, delta_color="inverse" if lower_better else "normal",
                          help=_help(figure))


def problems(plan: Any, on_apply: Any = None) -> None:
    """The plan's warnings in plain words; a memory warning carries the nearby plans that would fit, each with
    a button that applies it (`on_apply(change)` with dotted scenario keys)."""
    for warning in plan.warnings:
        text, memory = warning.text, warning.code == "memory"
        if memory and plan.suggestions:
            tips = "\n".join(f"- {md(str(s))}" for s in plan.suggestions)
            st.warning(f"{md(text)} These nearby plans would fit:\n{tips}", icon=":material/memory:")
            if on_apply is not None:
                columns = st.columns(len(plan.suggestions))
                for i, (column, tip) in enumerate(zip(columns, plan.suggestions, strict=True)):
                    column.button(f"Apply: {tip.label}", key=f"apply_suggestion_{i}", on_click=on_apply,
                                  args=(tip.change,), help=f"Change the inputs to this plan ({tip.memory_per_gpu_gb:.0f} GB per GPU)")
        elif memory:
            st.warning(f"{md(text)} No nearby change fits: try more GPUs with ZeRO stage 3, a smaller model, "
                       "or an accelerator with more memory.", icon=":material/memory:")
        else:
            st.warning(md(text), icon=":material/warning:")


def _chart(chart: Any, frame: pd.DataFrame, description: str, table_label: str, key: str) -> None:
    st.altair_chart(chart, width="stretch", alt=description, key=key)
    st.caption(md(description))
    with st.expander(f"Table: {table_label}"):
        st.dataframe(frame.drop(columns=["Short"], errors="ignore"), hide_index=True, width="stretch")


def breakdown_charts(plans: Mapping[str, Any]) -> None:
    left, right = st.columns(2)
    with left:
        st.markdown("##### Where each step's time goes")
        frame = charts.step_frame(plans)
        _chart(charts.step_chart(frame), frame, charts.describe_step(frame), "step time by part (s)", "chart_step")
    with right:
        st.markdown("##### Memory per GPU against its capacity")
        frame = charts.memory_frame(plans, {name: hbm_GB(p) for name, p in plans.items()})
        _chart(charts.memory_chart(frame), frame, charts.describe_memory(frame), "memory per GPU by part (GB)",
               "chart_memory")


def scaling_charts(sweep: pd.DataFrame, gpus: int, baseline_gpus: int | None) -> None:
    st.markdown("##### Time and cost against GPU count")
    frame = charts.scaling_frame(sweep)
    if frame.empty:
        st.info("No other GPU count splits this global batch evenly; change the batch or the parallelism to compare.")
        return
    columns = st.columns(2)
    for column, measure in zip(columns, charts.SCALING_MEASURES, strict=True):
        with column:
            chart = charts.scaling_chart(frame, measure, gpus, baseline_gpus)
            st.altair_chart(chart, width="stretch", alt=charts.describe_scaling(frame, measure, gpus),
                            key=f"chart_{measure}")
            st.caption(md(charts.describe_scaling(frame, measure, gpus)))
    skipped = sweep.loc[~sweep["valid"], "cluster.gpus"].astype(int).tolist()
    note = f" Left out (the batch or parallelism does not split): {', '.join(map(fmt.count, skipped))}." if skipped else ""
    with st.expander("Table: time and cost by GPU count"):
        st.dataframe(frame, hide_index=True, width="stretch")
        st.caption(f"Same model, tokens, batch and parallelism; only the data-parallel width changes.{note}")


def provenance(plan: Any) -> None:
    """Every figure with its unit, provenance and formula or source; then how the inputs were completed."""
    with st.expander("Where do these numbers come from?", icon=":material/info:"):
        rows = [
            {"Figure": f.label, "Value": fmt.by_unit(f.value, f.unit), "Provenance": f.provenance, "How": f.source}
            for section in (plan.training, plan.quality)
            for f in section.values()
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        spec = plan.hardware
        st.markdown(f"**{md(plan.hardware_label)}** ({spec.provenance}; price of {spec.price_date}):")
        st.markdown("\n".join(f"- {group}: {md(text)}" for group, text in spec.sources.items()))
        if plan.notes:
            st.markdown("**How the inputs were completed:**\n" + "\n".join(f"- {md(n)}" for n in plan.notes))


def changes(current: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Inputs that differ from the baseline, as "cluster.gpus: 1024 → 2048"."""
    out = []
    for section, values in current.items():
        for key, value in values.items():
            before = baseline.get(section, {}).get(key)
            if value != before:
                out.append(f"{section}.{key}: {before} → {value}")
    return out
