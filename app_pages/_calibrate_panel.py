"""The calibration-run panel: plan (the run's own planning, `--plan-only`: a short probe of this machine, then the
plan with its predicted duration against the budget, its emulated dtypes and, over budget, what fits), start, live
progress by steps, sampling rounds and samples as the CLI reports them (a fragment that reruns every second while a
run is going, so the rest of the page never waits), Cancel, and the outcome: the new profile, what a cancelled run
kept and how to resume it, or the child's own error output."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import _calibrate_run as runner
from app_pages import _calibrate_slot as slot
from app_pages import _calibrate_state as state
from app_pages._calibrate_view import md
from calibration.budgets import BUDGETS_S
from calibration.probe import clock
from calibration.rows import BENCH_TITLES
from report import calibration_summary as summary

STDERR_LINES_SHOWN = 15
BUDGET_MIN_S, BUDGET_MAX_S, BUDGET_STEP_S = 10.0, 3600.0, 30.0  # the page's range for --budget-s


def budget_s() -> float:
    """The time budget the next plan is made for (the plan panel's input; the runner's quick default before)."""
    return float(st.session_state.get(state.BUDGET) or BUDGETS_S["quick"])


def plan_button() -> None:
    """Probe and plan (seconds); the plan shows below with its Start button."""
    busy = slot.active_run() is not None
    clicked = st.button(
        "Plan a calibration", icon=":material/play_arrow:", key="calibrate.plan", disabled=busy, width="stretch",
        help=md(f"Probes this machine for a few seconds, then shows what `python -m calibration run --quick` would "
                f"measure here and how long it would take, before anything runs (the run's own planning, "
                f"`--plan-only`). Runs write to "
                f"{runner.runs_dir()}/calib-<time>/." + (" A run is already going." if busy else "")))
    if clicked:
        with st.spinner("Probing this machine and planning the run (a few seconds)…"):
            state.plan_run(budget_s())


def benches_text(benches: list[str]) -> str:
    return ", ".join(f"{BENCH_TITLES.get(b, b)} (`{b}`)" for b in benches)


def _plan_table(plan: dict) -> pd.DataFrame:
    rows = [{"Bench": b["bench"], "Points": b["points"], "Of the grid": b["of"], "Predicted (s)": round(b["predicted_s"])}
            for b in plan.get("benches", [])]
    if plan.get("launch_s", 0) >= 0.5:
        rows.append({"Bench": "torchrun start-ups", "Points": None, "Of the grid": None,
                     "Predicted (s)": round(plan["launch_s"])})
    if plan.get("quality_s"):
        rows.append({"Bench": "quality calibration (its share of the budget)", "Points": None, "Of the grid": None,
                     "Predicted (s)": round(plan["quality_s"])})
    return pd.DataFrame(rows, columns=["Bench", "Points", "Of the grid", "Predicted (s)"])


def plan_sentence(plan: dict) -> str:
    """The plan in one sentence: points, benches, devices, predicted duration against the budget."""
    quality = (f" (the quality calibration's {clock(plan['quality_s'])} included)" if plan.get("quality_s") else "")
    text = (f"**Plan:** {plan['points']} points in {len(plan.get('benches', []))} benches on "
            f"{', '.join(plan.get('devices', []))}, predicted **{clock(plan['predicted_s'])}** (min:s) for a budget "
            f"of {clock(plan['budget_s'])}{quality}, from a {plan.get('probe_s', 0):.1f}-s probe of this machine.")
    if plan.get("skip"):
        text += f" Left out: {benches_text(plan['skip'])}."
    if plan.get("dropped"):
        text += (f" The full quick grids would take {clock(plan['unplanned_s'])}: {plan['dropped']} of their points "
                 "are left out, keeping each fit's smallest, plateau and largest points.")
    else:
        text += " Every point of the quick grids fits."
    return text


def over_budget_text(plan: dict) -> str | None:
    """For a plan predicted over its budget: by how much, and what fits (the page's buttons apply it)."""
    if plan.get("fits_budget", True):
        return None
    advice = plan.get("advice") or {}
    text = (f"**Over budget:** predicted {clock(plan['predicted_s'])} against a budget of {clock(plan['budget_s'])}, "
            "with every fit already at its fewest points, so the run would take longer than the budget.")
    smaller = advice.get("leave_out_plan")
    if advice.get("leave_out") and smaller:
        them = "them" if len(advice["leave_out"]) > 1 else "it"
        text += (f" Leaving out {benches_text(advice['leave_out'])} fits the budget (predicted "
                 f"{clock(smaller['predicted_s'])}); the profile then has no fit of {them}, and the simulator uses "
                 "datasheet or assumed values there.")
    if advice.get("budget_s"):
        text += f" Or allow {clock(advice['budget_s'])} to measure every bench."
    return text


def emulated_sentences(plan: dict) -> list[str]:
    return [summary.emulated_text(e["dtype"], e["device"], int(e["points"]), e.get("gflops"), e.get("fp32_gflops"),
                                  planned=True) for e in plan.get("emulated", [])]


def _discard() -> None:
    st.session_state.pop(state.PLAN, None)
    st.session_state.pop(state.PLAN_BEFORE, None)


def over_budget(plan: dict) -> None:
    """The over-budget warning with its fixes: leave out the benches that make it fit, or allow the budget it needs
    (each a plan made with the same probe, shown at once)."""
    text = over_budget_text(plan)
    if text is None:
        return
    st.warning(md(text), icon=":material/timer:")
    advice = plan.get("advice") or {}
    shrink, allow, _ = st.columns([1.6, 1.2, 1.2], vertical_alignment="bottom")
    if advice.get("leave_out") and advice.get("leave_out_plan"):
        shrink.button(f"Leave out {', '.join(advice['leave_out'])}", on_click=state.use_alternative,
                      args=("leave_out_plan",), key="calibrate.shrink", icon=":material/content_cut:",
                      type="primary", width="stretch",
                      help=md(f"Plans without {benches_text(advice['leave_out'])} (`--skip`), within the budget of "
                              f"{clock(plan['budget_s'])}; nothing is measured again."))
    if advice.get("budget_s") and advice.get("budget_plan"):
        allow.button(f"Allow {clock(advice['budget_s'])}", on_click=state.use_alternative, args=("budget_plan",),
                     key="calibrate.allow", icon=":material/more_time:", width="stretch",
                     help=md(f"Sets the time budget to {advice['budget_s']:g} s (`--budget-s`), enough for every "
                             "bench at this machine's probed speed."))


def plan_view() -> None:
    """The last plan with its Start button, while no run of this session is shown."""
    plan = st.session_state.get(state.PLAN)
    if plan is None or st.session_state.get(state.RUN) is not None:
        return
    with st.container(border=True, key="calibrate_plan"):
        st.markdown(md(plan_sentence(plan)))
        over_budget(plan)
        if st.session_state.get(state.PLAN_BEFORE) is not None:
            st.button("Back to the plan before", on_click=state.restore_plan, key="calibrate.restore",
                      icon=":material/undo:", type="tertiary")
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
                state.plan_run(budget_s(), tuple(plan.get("skip") or ()))
            st.rerun()
        busy = slot.active_run() is not None
        over = not plan.get("fits_budget", True)
        start.button("Start anyway" if over else "Start calibration", on_click=state.start_run,
                     icon=":material/play_arrow:", key="calibrate.start", disabled=busy or stale, width="stretch",
                     type="secondary" if over else "primary",
                     help=md("Runs this plan (`python -m calibration run --quick`) in the background; the page stays "
                             "usable and the new profile becomes active when it finishes."
                             + (f" Predicted {clock(plan['predicted_s'])}, over the {clock(plan['budget_s'])} "
                                "budget." if over else "")
                             + (" A run is already going." if busy else "")
                             + (" The budget changed: plan again first." if stale else "")))
        discard.button("Discard", on_click=_discard, key="calibrate.discard", type="tertiary", width="stretch")


def _dismiss() -> None:
    st.session_state.pop(state.RUN, None)
    st.session_state.pop(state.PLAN, None)


def progress_text(snap: runner.Snapshot, predicted_s: float | None) -> str:
    """The bar's label: what the run is doing, in the CLI's own counts (warm-up, sampling rounds and samples
    through the local benches' interleaved group, whose points all finish near its end; steps otherwise)."""
    elapsed = f"{clock(snap.elapsed_s)} elapsed" + (f" of ~{clock(predicted_s)} predicted" if predicted_s else "")
    r, on = snap.rounds, f" on {snap.device}" if snap.device else ""
    steps = f"{snap.done} of {snap.total} steps finished" if snap.total else ""
    local = snap.stage in (None, "local")
    if local and snap.phase == "warmup" and r.get("points"):
        return (f"Warming up{on}: {r.get('warmed', 0):.0f} of {r['points']:.0f} points, each run until steady "
                f"before its samples are timed · {steps} · {elapsed}")
    if local and snap.phase == "sampling" and r.get("samples_planned"):
        left = f" · ~{clock(r['eta_s'])} left at this pace" if r.get("eta_s") is not None else ""
        return (f"Sampling{on}, round {r.get('round', 0):.0f}: {r.get('samples', 0):,.0f} of about "
                f"{r['samples_planned']:,.0f} samples, {r.get('points_done', 0):.0f} of {r.get('points', 0):.0f} "
                f"points finished{left} · {steps} · {elapsed}")
    if snap.stage == "quality":
        return f"Quality calibration, after the {snap.total} hardware steps: {snap.step} · {elapsed}"
    if snap.total:
        return f"Step {snap.done} of {snap.total}: {snap.step} · {elapsed}"
    return f"Starting: loading torch, probing and planning the steps · {elapsed}"


def _running(snap: runner.Snapshot, run: runner.CalibrationRun) -> None:
    plan = st.session_state.get(state.PLAN)
    st.progress(snap.fraction, text=md(progress_text(snap, plan["predicted_s"] if plan else None)))
    left, right = st.columns([1, 4], vertical_alignment="center")
    left.button("Cancel", on_click=run.stop, icon=":material/stop:", key="calibrate.cancel",
                help="Stops the run as Ctrl-C would; the rows and samples measured so far stay on disk and the run "
                     "can be resumed.")
    kept = state.kept(snap.out_dir)
    failed = f" {snap.failed_steps} steps failed so far (they are recorded, not retried)." if snap.failed_steps else ""
    rows = (f"Rows go to `{kept.rows_path}` as points finish ({kept.rows} so far)" if kept.rows_path
            else "No rows yet")
    samples = (f"; samples go to `{kept.samples_path}` after every round ({kept.samples:,} so far)."
               if kept.samples_path else ".")
    right.caption(md(rows + samples + failed))


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
                      disabled=slot.active_run() is not None,
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
