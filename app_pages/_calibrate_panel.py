"""The calibration-run panel: plan (a short probe of this machine, then the plan with its predicted duration and
its emulated dtypes), start, live progress (a fragment that reruns every second while a run is going, so the rest
of the page never waits), Cancel, and the outcome: the new profile, what a cancelled run kept and how to resume
it, or the child's own error output."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import _calibrate_run as runner
from app_pages import _calibrate_state as state
from app_pages._calibrate_view import md
from calibration.probe import BUDGETS_S
from report import calibration_summary as summary

STDERR_LINES_SHOWN = 15
BUDGET_MIN_S, BUDGET_MAX_S, BUDGET_STEP_S = 10.0, 3600.0, 30.0  # the page's range for --budget-s


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def budget_s() -> float:
    """The time budget the next plan is made for (the plan panel's input; the runner's quick default before)."""
    return float(st.session_state.get(state.BUDGET) or BUDGETS_S["quick"])


def plan_button() -> None:
    """Probe and plan (seconds); the plan shows below with its Start button."""
    busy = runner.active_run() is not None
    clicked = st.button(
        "Plan a calibration", icon=":material/play_arrow:", key="calibrate.plan", disabled=busy, width="stretch",
        help=md(f"Probes this machine for a few seconds, then shows what `python -m calibration run --quick` would "
                f"measure here and how long it would take, before anything runs. Runs write to "
                f"{runner.runs_dir()}/calib-<time>/." + (" A run is already going." if busy else "")))
    if clicked:
        with st.spinner("Probing this machine and planning the run (a few seconds)…"):
            state.plan_run(budget_s())


def _plan_table(plan: dict) -> pd.DataFrame:
    rows = [{"Bench": b["bench"], "Points": b["points"], "Of the grid": b["of"], "Predicted (s)": round(b["predicted_s"])}
            for b in plan.get("benches", [])]
    if plan.get("launch_s", 0) >= 0.5:
        rows.append({"Bench": "torchrun start-ups", "Points": None, "Of the grid": None,
                     "Predicted (s)": round(plan["launch_s"])})
    return pd.DataFrame(rows, columns=["Bench", "Points", "Of the grid", "Predicted (s)"])


def plan_sentence(plan: dict) -> str:
    """The plan in one sentence: points, benches, devices, predicted duration against the budget."""
    text = (f"**Plan:** {plan['points']} points in {len(plan.get('benches', []))} benches on "
            f"{', '.join(plan.get('devices', []))}, predicted **{clock(plan['predicted_s'])}** (min:s) for a budget "
            f"of {clock(plan['budget_s'])}, from a {plan.get('probe_s', 0):.1f}-s probe of this machine.")
    if plan.get("dropped"):
        text += (f" The full quick grids would take {clock(plan['unplanned_s'])}: {plan['dropped']} of their points "
                 "are left out, keeping each fit's smallest, plateau and largest points.")
    else:
        text += " Every point of the quick grids fits."
    if not plan.get("fits_budget", True):
        text += (" Even each fit's fewest points exceed the budget: the run may take longer; raise the budget or "
                 "accept it.")
    return text


def emulated_sentences(plan: dict) -> list[str]:
    return [summary.emulated_text(e["dtype"], e["device"], int(e["points"]), e.get("gflops"), e.get("fp32_gflops"),
                                  planned=True) for e in plan.get("emulated", [])]


def _discard() -> None:
    st.session_state.pop(state.PLAN, None)


def plan_view() -> None:
    """The last plan with its Start button, while no run of this session is shown."""
    plan = st.session_state.get(state.PLAN)
    if plan is None or st.session_state.get(state.RUN) is not None:
        return
    with st.container(border=True, key="calibrate_plan"):
        st.markdown(md(plan_sentence(plan)))
        for sentence in emulated_sentences(plan):
            st.warning(md(sentence), icon=":material/speed:")
        with st.expander("Table: points and predicted seconds per bench"):
            st.dataframe(_plan_table(plan), hide_index=True, width="stretch")
        budget, again, start, discard = st.columns([2, 1.2, 1.6, 1], vertical_alignment="bottom")
        st.session_state.setdefault(state.BUDGET, float(plan["budget_s"]))
        budget.number_input("Time budget (s)", min_value=BUDGET_MIN_S, max_value=BUDGET_MAX_S, step=BUDGET_STEP_S,
                            key=state.BUDGET,
                            help="Seconds the run may take (`--budget-s`): the plan drops the most expensive points "
                                 "until its prediction fits, never below what each fit needs.")
        stale = budget_s() != float(plan["budget_s"])
        if again.button("Plan again", key="calibrate.replan", icon=":material/refresh:", width="stretch",
                        type="primary" if stale else "secondary",
                        help="Probe again and plan for the budget on the left."):
            with st.spinner("Probing this machine and planning the run (a few seconds)…"):
                state.plan_run(budget_s())
            st.rerun()
        busy = runner.active_run() is not None
        start.button("Start calibration", on_click=state.start_run, icon=":material/play_arrow:",
                     key="calibrate.start", disabled=busy or stale, width="stretch", type="primary",
                     help=md("Runs this plan (`python -m calibration run --quick`) in the background; the page stays "
                             "usable and the new profile becomes active when it finishes."
                             + (" A run is already going." if busy else "")
                             + (" The budget changed: plan again first." if stale else "")))
        discard.button("Discard", on_click=_discard, key="calibrate.discard", type="tertiary", width="stretch")


def _dismiss() -> None:
    st.session_state.pop(state.RUN, None)
    st.session_state.pop(state.PLAN, None)


def _running(snap: runner.Snapshot, run: runner.CalibrationRun) -> None:
    plan = st.session_state.get(state.PLAN)
    predicted = f" of ~{clock(plan['predicted_s'])} predicted" if plan else ""
    if snap.total:
        text = f"Step {snap.done} of {snap.total}: {snap.step} · {clock(snap.elapsed_s)} elapsed{predicted}"
    else:
        text = f"Starting: loading torch, probing and planning the steps · {clock(snap.elapsed_s)} elapsed{predicted}"
    st.progress(snap.fraction, text=md(text))
    left, right = st.columns([1, 4], vertical_alignment="center")
    left.button("Cancel", on_click=run.stop, icon=":material/stop:", key="calibrate.cancel",
                help="Stops the run as Ctrl-C would; the rows and samples measured so far stay on disk and the run "
                     "can be resumed.")
    kept = state.kept(snap.out_dir)
    failed = f" {snap.failed_steps} steps failed so far (they are recorded, not retried)." if snap.failed_steps else ""
    where = (f"Rows go to `{kept.rows_path}` as they are measured ({kept.rows} so far)." if kept.rows_path
             else "No rows yet.")
    right.caption(md(where + failed))


def kept_message(snap: runner.Snapshot) -> tuple[str, bool]:
    """What a cancelled run kept, naming only files that exist, and how to continue it; True if resumable."""
    kept = state.kept(snap.out_dir)
    head = f"Cancelled after {clock(snap.elapsed_s)}."
    if not kept.anything:
        return f"{head} Nothing had been measured yet, so nothing was kept and there is nothing to resume.", False
    parts = []
    if kept.rows_path is not None:
        parts.append(f"{kept.rows} finished rows in `{kept.rows_path}`")
    if kept.samples_path is not None:
        parts.append(f"{kept.samples} samples in `{kept.samples_path}`")
    command = runner.shell_text(runner.resume_command(snap.command))
    return (f"{head} Kept: {' and '.join(parts)}. Resume below, or continue in a terminal with `{command}` "
            "(measured points are not measured again).", True)


def _finished(snap: runner.Snapshot) -> None:
    where = md(str(snap.out_dir))
    if snap.status == runner.DONE:
        st.success(f"Calibrated in {clock(snap.elapsed_s)}: {md(snap.profile['name'])} is now the active profile "
                   f"({len(snap.profile['measurements'])} rows, {where}).", icon=":material/check_circle:")
    elif snap.status == runner.STOPPED:
        text, resumable = kept_message(snap)
        st.warning(md(text), icon=":material/stop_circle:")
        if resumable:
            st.button("Resume", on_click=state.resume_run, icon=":material/replay:", key="calibrate.resume",
                      disabled=runner.active_run() is not None,
                      help="Runs the same command with `--resume` in the same folder.")
    else:
        st.error(f"Calibration failed after {clock(snap.elapsed_s)}: {md(snap.error or 'unknown error')}. "
                 "Last lines of its error output:", icon=":material/error:")
        st.code("\n".join(snap.stderr_tail[-STDERR_LINES_SHOWN:]) or "(it wrote nothing to stderr)", language=None)
    if snap.stdout_tail or len(snap.stderr_tail) > STDERR_LINES_SHOWN:
        with st.expander("Full output tail"):
            st.code("\n".join((*snap.stdout_tail, "--- stderr ---", *snap.stderr_tail)), language=None)
    st.button("Dismiss", on_click=_dismiss, key="calibrate.dismiss", type="tertiary")


def _status() -> None:
    run: runner.CalibrationRun | None = st.session_state.get(state.RUN)
    if run is None:
        return
    snap = run.snapshot()
    if snap.finished and state.consume(run):
        st.rerun()  # the whole page: the new profile joins the choices and becomes active
    if snap.finished:
        _finished(snap)
    else:
        _running(snap, run)


def status() -> None:
    """Progress while this session's run goes (polled each second), its outcome once it has ended."""
    run = st.session_state.get(state.RUN)
    live = run is not None and not run.snapshot().finished
    st.fragment(_status, run_every="1s" if live else None)()
