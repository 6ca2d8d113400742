"""Train page output: the answer, key figures against the baseline, goodput and ranges, warnings, charts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import _chart_specs as specs
from report import charts, messages
from report import formatting as fmt
from report import ranges_text as range_words
from simulator.words import NO_NEARBY_FIT

BASELINE_NAME, CURRENT_NAME, STALE_NAME = "Baseline", "This plan", "Last valid plan"

# figure key -> (metric label, formatter of the value, formatter of a change, change in percent too, lower is better)
Metric = tuple[str, str, Callable[[float], str], Callable[[float], str], bool, bool]
METRIC_ROWS: tuple[tuple[Metric, ...], ...] = (  # two rows of four: readable at 1400 px with deltas
    (
        ("training.wall_days", "Time (days)", fmt.plain, fmt.days, True, True),
        ("training.cost_usd", "Compute cost", fmt.usd, fmt.usd, True, True),
        ("training.gpu_hours", "GPU-hours", fmt.short, fmt.short, True, True),
        ("training.energy_mwh", "Energy (MWh)", fmt.plain, fmt.mwh, True, True),
    ),
    (
        ("training.goodput", "Goodput", fmt.pct, fmt.points, False, False),
        ("training.mfu", "MFU", fmt.pct, fmt.points, False, False),
        ("training.memory_per_gpu_gb", "Memory (GB)", fmt.plain, fmt.gb, True, True),
        ("quality.loss", "Predicted loss", fmt.loss, fmt.loss, False, True),
    ),
)
RANGED = (("time", "training.wall_days"), ("cost", "training.cost_usd"), ("GPU-hours", "training.gpu_hours"))
WARNING_ICONS = {  # by PlanWarning.code, never by the warning's wording
    "memory": ":material/memory:", "tp_spans_nodes": ":material/lan:", "pipeline_bubble": ":material/hourglass_empty:",
    "sync_bound": ":material/sync_problem:", "uneven_batch": ":material/view_week:",
    "uneven_stages": ":material/view_week:", "goodput_first_order": ":material/restart_alt:",
}


def md(text: str) -> str:
    """Escape the dollar signs Streamlit's Markdown would read as LaTeX (our own text; names from files and
    links go through `fmt.md_escape` where they are put in)."""
    return text.replace("$", r"\$")


def hbm_GB(plan: Any) -> float:
    return plan.hardware.hbm_GB


def _help(plan: Any, dotted: str) -> str:
    figure = plan.figures[dotted]
    extra = " Shown as used / HBM capacity of one GPU." if figure.unit == "GB" else ""
    if figure.low is not None and figure.high is not None:
        extra += f" P10–P90: {fmt.span(figure.low, figure.high, figure.unit)}. {range_words.includes(plan, dotted)}"
    if dotted == "training.wall_days":
        extra += " " + goodput_text(plan)
    basis = f" Basis: {figure.basis}." if figure.basis else ""
    return md(f"{figure.label} ({figure.unit or 'yes/no'}). How: {figure.source}. Provenance: {figure.provenance}."
              f"{basis}{extra}")


def answer(plan: Any) -> None:
    st.markdown(f"#### {md(fmt.training_sentence(plan))}")


def answer_invalid(model: Mapping[str, Any] | None, tokens: float | None, gpus: int | None, hardware: str) -> None:
    """The headline while the inputs can't be simulated: still the model the inputs describe."""
    subject = fmt.training_subject((model or {}).get("params"), tokens)
    where = f" on {fmt.on_gpus(gpus, hardware)}" if gpus else ""
    st.markdown(f"#### {md(subject + where)}: this combination can't be simulated yet.")


def stale_banner(plan: Any) -> None:
    st.warning(md(f"Showing the last valid plan: {fmt.training_sentence(plan)} Its figures, charts and "
                  "exports are for those inputs, not the ones above; they update once the problem is fixed."),
               icon=":material/history:")


def metrics(plan: Any, baseline: Any | None, stale: bool = False) -> None:
    with st.container(border=True, key="train_metrics_stale" if stale else "train_metrics"):
        for row in METRIC_ROWS:
            for column, (dotted, label, show, show_change, percent, lower_better) in zip(
                st.columns(len(row)), row, strict=True
            ):
                figure = plan.figures[dotted]
                value = show(figure.value)
                if dotted == "training.memory_per_gpu_gb":  # used / capacity
                    value = f"{value} / {fmt.plain(hbm_GB(plan))}"
                if dotted == "training.goodput" and not plan.scenario.goodput.enabled:
                    value = "off"
                change = None
                if baseline is not None:
                    change = fmt.delta(figure.value, baseline.figures[dotted].value, show_change, percent)
                column.metric(label, value, change, delta_color="inverse" if lower_better else "normal",
                              help=_help(plan, dotted))
        st.caption(md(goodput_text(plan) + " " + ranges_text(plan)))


def goodput_text(plan: Any) -> str:
    """Expected against ideal wall time, with what the difference is made of."""
    t = plan.training
    ideal, wall = t["ideal_wall_days"].value, t["wall_days"].value
    if not plan.scenario.goodput.enabled:
        return (f"Goodput overheads are off: {fmt.days(wall)} is the ideal wall time (steps × step time), as "
                "peak-throughput tables quote it.")
    parts = ", ".join(f"{name} {fmt.days(t[key].value)}" for name, key in (
        ("checkpoints", "checkpoint_days"), ("failures and restarts", "failure_days"), ("evaluation", "eval_days"),
        ("start-up", "warmup_days")))
    return (f"Ideal {fmt.days(ideal)} if nothing fails; expected {fmt.days(wall)} with {parts} "
            f"(goodput {fmt.pct(t['goodput'].value)}).")


def ranges_text(plan: Any) -> str:
    shown = [f"{name} {fmt.span(f.low, f.high, f.unit)}" for name, key in RANGED
             if (f := plan.figures[key]).low is not None and f.high is not None]
    return (f"P10–P90 with the model's own error measured on published results and the device's and the inputs' "
            f"spreads: {' · '.join(shown)}." if shown else "")


def problems(plan: Any, on_apply: Any = None) -> None:
    """The plan's warnings in plain words, recognised by their code; a memory warning carries the nearby plans
    that would fit, each with a button that applies it (`on_apply(change)` with dotted scenario keys)."""
    for warning in plan.warnings:
        text, icon = md(messages.in_words(warning.text)), WARNING_ICONS.get(warning.code, ":material/warning:")
        if warning.code == "memory" and plan.suggestions:
            tips = "\n".join(f"- {md(str(s))}" for s in plan.suggestions)
            st.warning(f"{text} These nearby plans would fit:\n{tips}", icon=icon)
            if on_apply is not None:
                columns = st.columns(len(plan.suggestions))
                for i, (column, tip) in enumerate(zip(columns, plan.suggestions, strict=True)):
                    column.button(f"Apply: {tip.label}", key=f"apply_suggestion_{i}", on_click=on_apply,
                                  args=(tip.change,), help=f"Change the inputs to this plan ({tip.memory_per_gpu_gb:.0f} GB per GPU)")
        elif warning.code == "memory":
            st.warning(f"{text} {NO_NEARBY_FIT}", icon=icon)
        else:
            st.warning(text, icon=icon)


CHARTS = {"step": charts.step_chart, "memory": charts.memory_chart, "scaling": charts.scaling_chart}
# A chart's alt text says what it shows, never its numbers (the caption under it has them): Streamlit's frontend
# keys a chart on its alt text too, so an alt text that changes with the inputs rebuilds the chart from scratch on
# every rerun instead of swapping its data (Train: 338 -> 209 ms a change, docs/benchmarks.md, "Browser rerun").
ALT = {"step": "Stacked bars: seconds per optimizer step by part, for each plan shown.",
       "memory": "Stacked bars: memory per GPU by part against the GPU's capacity, for each plan shown.",
       "scaling": "Line chart: {} against the GPU count, this plan's count marked."}


def _draw(kind: str, frame: pd.DataFrame, alt: str, key: str, args: tuple = ()) -> None:
    st.vega_lite_chart(spec=charts.for_page(specs.spec(CHARTS[kind], frame, *args)), width="stretch", alt=alt,
                       key=key)


def _chart(kind: str, frame: pd.DataFrame, table: pd.DataFrame, description: str, table_label: str,
           key: str) -> None:
    _draw(kind, frame, ALT[kind], key)
    st.caption(md(description))
    with st.expander(f"Table: {table_label}"):
        st.dataframe(table, hide_index=True, width="stretch")


def breakdown_charts(plans: Mapping[str, Any]) -> None:
    left, right = st.columns(2)
    with left:
        st.markdown("##### Where each step's time goes")
        frame = charts.step_frame(plans)
        _chart("step", frame, charts.table_view(frame, charts.STEP_UNITS), charts.describe_step(frame),
               "step time by part", "chart_step")
    with right:
        st.markdown("##### Memory per GPU against its capacity")
        frame = charts.memory_frame(plans, {name: hbm_GB(p) for name, p in plans.items()})
        _chart("memory", frame, charts.table_view(frame, charts.MEMORY_UNITS), charts.describe_memory(frame),
               "memory per GPU by part", "chart_memory")


def scaling_charts(sweep: pd.DataFrame, gpus: int, baseline_gpus: int | None) -> None:
    st.markdown("##### Expected time and cost against GPU count")
    frame = charts.scaling_frame(sweep)
    if frame.empty:
        st.info("No other GPU count splits this global batch; change the batch or the parallelism to compare.")
        return
    columns = st.columns(2)
    for column, measure in zip(columns, charts.SCALING_MEASURES, strict=True):
        with column:
            description = charts.describe_scaling(frame, measure, gpus)
            alt = ALT["scaling"].format(charts.SCALING_MEASURES[measure][1])
            _draw("scaling", frame, alt, f"chart_{measure}", (measure, gpus, baseline_gpus))
            st.caption(md(description))
    skipped = sweep.loc[~sweep["valid"], "cluster.gpus"].astype(int).tolist()
    note = f" Left out (the batch or parallelism does not split): {', '.join(map(fmt.count, skipped))}." if skipped else ""
    with st.expander("Table: expected time and cost by GPU count"):
        st.dataframe(charts.table_view(frame, charts.SCALING_UNITS), hide_index=True, width="stretch")
        st.caption(f"Same model, tokens, batch and parallelism; only the data-parallel width changes.{note}")
