"""The calibration-run panel: start button, live progress (a fragment that reruns every second while a run
is going, so the rest of the page never waits), Stop, and the outcome with the child's own error output."""

from __future__ import annotations

import streamlit as st

from app_pages import _calibrate_run as runner
from app_pages import _calibrate_state as state
from app_pages._calibrate_view import md

STDERR_LINES_SHOWN = 15


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def start_button() -> None:
    busy = runner.active_run() is not None
    st.button("Run calibration", on_click=state.start_run, icon=":material/play_arrow:", key="calibrate.start",
              disabled=busy, width="stretch",
              help=md(f"Measures this machine (`python -m calibration run --quick`, about 3 minutes on 2 cores) into "
                      f"{runner.runs_dir()}/calib-<time>/. The page stays usable; the new profile becomes active "
                      "when it finishes." + (" A run is already going." if busy else "")))


def _dismiss() -> None:
    st.session_state.pop(state.RUN, None)


def _running(snap: runner.Snapshot, run: runner.CalibrationRun) -> None:
    if snap.total:
        text = f"Step {snap.done} of {snap.total}: {snap.step} · {clock(snap.elapsed_s)} elapsed"
    else:
        text = f"Starting: loading torch and planning the steps · {clock(snap.elapsed_s)} elapsed"
    st.progress(snap.fraction, text=md(text))
    left, right = st.columns([1, 4], vertical_alignment="center")
    left.button("Stop", on_click=run.stop, icon=":material/stop:", key="calibrate.stop",
                help="Stops the run; rows measured so far stay on disk and the run can be resumed.")
    failed = f" {snap.failed_steps} steps failed so far (they are recorded, not retried)." if snap.failed_steps else ""
    right.caption(md(f"Rows go to {snap.out_dir}/rows.jsonl as they are measured.{failed}"))


def _finished(snap: runner.Snapshot) -> None:
    where = md(str(snap.out_dir))
    if snap.status == runner.DONE:
        st.success(f"Calibrated in {clock(snap.elapsed_s)}: {md(snap.profile['name'])} is now the active profile "
                   f"({len(snap.profile['measurements'])} rows, {where}).", icon=":material/check_circle:")
    elif snap.status == runner.STOPPED:
        rows = state.rows_on_disk(snap.out_dir)
        st.warning(f"Stopped after {clock(snap.elapsed_s)}. The {rows} rows measured so far stay in "
                   f"{where}/rows.jsonl; continue with `python -m calibration run --quick --out {where} --resume`.",
                   icon=":material/stop_circle:")
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
