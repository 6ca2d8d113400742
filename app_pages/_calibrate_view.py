"""Calibrate page output: the answer, key figures, the environment, every fit by section, and a comparison."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from app_pages._metric_cells import metric_cells
from report import calibration_charts as charts
from report import calibration_summary as summary
from report import formatting as fmt
from report.charts import for_page

COMPARE_A, COMPARE_B, COMPARE_FOR = "calibrate.compare_a", "calibrate.compare_b", "calibrate.compare_for"
SECTIONS = {"compute": "Compute", "collectives": "Collectives", "parameter_server": "Parameter server",
            "ddp": "DDP", "inference": "Inference"}
EMPTY = {  # what to do when a section holds no fit at all
    "compute": "No compute fits: run the calibration with the gemm bench (`python -m calibration run --quick`).",
    "collectives": "No collective was measured: collectives need at least 2 ranks on one machine. Run "
                   "`python -m calibration run --quick --nproc 2` (CPU ranks work; on GPUs, one rank per GPU).",
    "parameter_server": "No parameter-server rows: they need 2 or more ranks (`--nproc 2` or more).",
    "ddp": "No DDP steps were measured: they need 2 or more ranks (`--nproc 2` or more).",
    "inference": "No inference fits: run the calibration with the infer_linear, prefill, decode and prune benches.",
}


NOT_FITTED = ("More measurements let it fit: `python -m calibration run --full`, with `--nproc 2` or more for "
              "collectives, parameter server and DDP. Until then the simulator uses datasheet or assumed values here.")


def md(text: str) -> str:
    """Escape the dollar signs Streamlit's Markdown would read as LaTeX (our own text; names from files and
    links go through `fmt.md_escape` where they are put in)."""
    return text.replace("$", r"\$")


def answer(profile: dict[str, Any], spec: Any | None) -> None:
    st.markdown(f"#### {fmt.md_escape(summary.headline(profile, spec))}")
    for sentence in summary.emulated(profile):
        st.warning(fmt.md_escape(sentence), icon=":material/speed:")


def metrics(profile: dict[str, Any], spec: Any | None) -> None:
    """Achieved GEMM TFLOP/s per dtype (main device), all-reduce bus bandwidth, held-out error, rows."""
    gemms = [g for g in summary.gemm_throughput(profile) if g["device"] == summary.main_device(profile)][:3]
    figures = []
    for g in gemms:
        peak = summary.datasheet_peak(profile, spec, g["dtype"])
        share = f" {fmt.pct(g['tflops'] / peak[0])} of {fmt.plain(peak[0])} TFLOP/s ({peak[1]})." if peak else ""
        figures.append((f"{g['dtype']} TFLOP/s", summary.tflops_text(g["tflops"]),
                        f"{summary.describe_rate(g)} Higher is better.{share} The fit's plateau beyond the sizes "
                        "measured (`achieved_tflops`) is in the Compute tab."))
    bws = [b for b in summary.busbw(profile) if b["op"] == "all_reduce"]
    if bws:
        b = bws[0]
        figures.append(("All-reduce GB/s", fmt.plain(b["GBps"]),
                        f"Fitted: bus bandwidth (nccl-tests convention) at {b['world']} ranks, {b['path']} "
                        f"({b['model']}). Higher is better."))
    else:
        figures.append(("All-reduce GB/s", "n/a", "Not measured: this profile has no all-reduce fit with 2+ ranks "
                        "(run the calibration with --nproc 2 or more)."))
    mape = summary.heldout_median(profile)
    figures.append(("Held-out error", "n/a" if mape is None else f"{fmt.plain(mape)}%",
                    "Median over all fits of the mean absolute % error on points each fit never saw "
                    "(the largest quarter by size). Lower is better."))
    counts = summary.row_counts(profile)
    noisy = len(profile.get("summary", {}).get("noisy_rows") or [])
    figures.append(("Rows ok / failed", f"{counts['ok']} / {counts['failed']}",
                    f"Measurement rows: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped; {noisy} noisy (spread over 50% of the median)."))
    with metric_cells(len(figures), key="calibrate_metrics") as cells:
        for column, (label, value, help_text) in zip(cells, figures, strict=True):
            column.metric(label, value, help=md(help_text))


def environment(profile: dict[str, Any], spec: Any | None, source: str) -> None:
    with st.expander("Where these numbers come from: machine, software and run", icon=":material/info:"):
        st.caption(md(f"Source: {source}; created {profile['created_utc']}; schema v{profile['schema_version']}. "
                      "Figures above are fitted to this machine's measurements (docs/profile-schema.md)."))
        st.dataframe(summary.environment_frame(profile), hide_index=True, width="stretch")
        flags = profile.get("environment", {}).get("cpu_flags")
        if flags:
            st.caption("CPU flags: " + ", ".join(map(str, flags)))
        if spec is not None:
            st.markdown(f"Other pages plan on it as accelerator **`{spec.id}`**:")
            st.markdown("\n".join(f"- {group}: {md(text)}" for group, text in spec.sources.items()))
        for key in ("fits_not_done", "rows_dropped_by_writer", "non_finite_replaced"):
            items = profile.get("summary", {}).get(key) or []
            if items:
                st.caption(md(f"{key.replace('_', ' ')}: " + "; ".join(map(str, items))))


@st.cache_data(show_spinner=False, max_entries=128)
def _fit_view(profile_id: str, fit_path: str, _fit: dict[str, Any]) -> tuple[dict, dict, pd.DataFrame, str]:
    """Chart specs (fit, errors), point table and description of one fit (cached by profile id and path)."""
    points, curve = charts.points_frame(_fit), charts.curve_frame(_fit)
    spec, errors = charts.fit_chart(_fit, points, curve).to_dict(), charts.residual_chart(_fit, points).to_dict()
    return spec, errors, points, charts.describe_fit(fit_path, _fit, points, curve)


@st.cache_data(show_spinner=False, max_entries=32)
def _throughput_view(key: str, _profiles: dict[str, dict[str, Any]]) -> tuple[dict, pd.DataFrame, str]:
    frame = charts.throughput_frame(_profiles)
    return charts.throughput_chart(frame).to_dict(), frame, charts.describe_throughput(frame)


def chart(spec: dict, frame: pd.DataFrame, description: str, table_label: str, key: str) -> None:
    st.vega_lite_chart(spec=for_page(spec), width="stretch", alt=description, key=key)
    st.caption(md(description))
    with st.expander(f"Table: {table_label}"):
        st.dataframe(fmt.table_text(frame), hide_index=True, width="stretch")


def fit_detail(profile_id: str, section: str, path: tuple[str, ...], fit: dict[str, Any], parent: Mapping[str, Any]) -> None:
    label = summary.fit_label(path)
    if fit["status"] != "ok":
        st.warning(md(f"**{label}** was not fitted ({fit['status'].replace('_', ' ')}): {fit.get('reason', '')}. "
                      + NOT_FITTED), icon=":material/block:")
        return
    dotted = ".".join(("fits", section, *path))
    spec, errors, points, description = _fit_view(profile_id, dotted, fit)
    left, right = st.columns([3, 2])
    with left:
        st.vega_lite_chart(spec=for_page(spec), width="stretch", alt=description, key=f"chart_{section}")
        st.vega_lite_chart(spec=for_page(errors), width="stretch", key=f"chart_{section}_errors",
                           alt=f"Prediction error of each measured point of {label}, in percent.")
        st.caption(md(description))
        with st.expander(f"Table: measured and predicted points of {label}"):
            st.dataframe(fmt.table_text(points), hide_index=True, width="stretch")
    with right:
        st.markdown(f"**Model `{fit['model']}`**")
        st.code(fit.get("formula", ""), language=None, wrap_lines=True)
        st.dataframe(summary.params_frame(fit), hide_index=True, width="stretch")
        note = summary.undetermined_note(fit)
        if note:
            st.caption(md(note))
        held = fit.get("mape_heldout_pct")
        st.markdown(md(f"Error (MAPE): **{fmt.plain(fit.get('mape_train_pct'))}%** on {fit.get('n_train')} fitted "
                       f"points, **{'n/a' if held is None else fmt.plain(held) + '%'}** on {fit.get('n_heldout')} "
                       "held-out points."))
        st.caption(md(f"Held out: {fit.get('heldout_rule', '')}. Path: {dotted}."))
        measured = parent.get("overlap_fraction_measured")
        if isinstance(measured, dict):
            st.caption(md(f"Measured overlap fraction: median {fmt.plain(measured.get('median'))} "
                          f"(p25 {fmt.plain(measured.get('p25'))}, p75 {fmt.plain(measured.get('p75'))})."))
        candidates = (fit.get("selection") or {}).get("candidates")
        if candidates:
            with st.expander("Why this model"):
                st.caption(md(fit["selection"].get("rule", "")))
                table = pd.DataFrame(candidates).T.rename_axis("model").reset_index()
                st.dataframe(fmt.table_text(table), hide_index=True)


def _default_fit(section: str, by_label: dict[str, Any], profile: dict[str, Any]) -> str:
    """The headline GEMM fit on Compute; elsewhere the first fitted one on the main device (a world of one,
    which moves nothing, last)."""
    g = summary.gemm_throughput(profile)
    if section == "compute" and g and f"gemm · {g[0]['device']}/{g[0]['dtype']}" in by_label:
        return f"gemm · {g[0]['device']}/{g[0]['dtype']}"
    ok = sorted((label for label, (_, fit, _) in by_label.items() if fit["status"] == "ok"),
                key=lambda label: by_label[label][1].get("model") == "constant") or list(by_label)
    return next((label for label in ok if f"{summary.main_device(profile)}/" in label), ok[0])


def section_tab(profile_id: str, profile: dict[str, Any], section: str) -> None:
    entries = list(summary.iter_fits(profile["fits"][section]))
    if section == "compute" and summary.gemm_throughput(profile):
        st.markdown("##### GEMM throughput against size")
        spec, frame, description = _throughput_view(f"single:{profile_id}", {profile["name"]: profile})
        chart(spec, frame, description, "GEMM throughput by size", "chart_throughput")
    if not entries:
        st.info(EMPTY[section], icon=":material/info:")
        return
    by_label = {summary.fit_label(path): (path, fit, parent) for path, fit, parent in entries}
    labels = list(by_label)
    key = f"calibrate.fit.{section}"
    if st.session_state.get(key) not in labels:
        st.session_state[key] = _default_fit(section, by_label, profile)
    ok = sum(fit["status"] == "ok" for _, fit, _ in entries)
    choice = st.selectbox("Fit", labels, key=key, help=f"{len(entries)} fits in this section, {ok} fitted. "
                          "Each shows its measured points, curve, error per point, formula and parameters.")
    fit_detail(profile_id, section, *by_label[choice])
    with st.expander(f"Table: all {len(entries)} fits of this section"):
        st.dataframe(fmt.table_text(summary.fits_frame(section, entries)), hide_index=True, width="stretch")


def compare(options: dict[str, dict[str, Any]], labels: dict[str, str], active_id: str) -> None:
    """A against B: by default the active profile against the one active before it (or any other)."""
    ids, session = list(options), st.session_state
    previous = session.get(COMPARE_FOR)
    if previous != active_id or session.get(COMPARE_A) not in ids or session.get(COMPARE_B) not in ids:
        session[COMPARE_A], session[COMPARE_FOR] = active_id, active_id
        others = [i for i in ids if i != active_id]
        session[COMPARE_B] = previous if previous in others else (others or [active_id])[0]
    left, right = st.columns(2)
    a = left.selectbox("Profile A", ids, format_func=labels.get, key=COMPARE_A,
                       help="The reference: ratios are B / A.")
    b = right.selectbox("Profile B", ids, format_func=labels.get, key=COMPARE_B,
                        help="Compared with A.")
    if a == b:
        st.info("Both sides show the same profile: upload or run another one to see differences.",
                icon=":material/compare_arrows:")
    name_a, name_b = f"A: {options[a]['name']}", f"B: {options[b]['name']}"
    frame = summary.compare_frame(options[a], options[b], name_a, name_b)
    st.dataframe(fmt.table_text(frame, {summary.RATIO: "×"}), hide_index=True, width="stretch", column_config={
        summary.RATIO: st.column_config.Column(help="B divided by A; above 1: B is higher.")})
    st.markdown("##### GEMM throughput of both profiles")
    key = f"pair:{a}@{options[a]['created_utc']}|{b}@{options[b]['created_utc']}"
    spec, data, description = _throughput_view(key, {name_a: options[a], name_b: options[b]})
    chart(spec, data, description, "GEMM throughput of both profiles", "chart_compare")
