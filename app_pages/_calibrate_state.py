"""Calibrate page state: which profiles can be chosen, which one is active, uploads, and finished runs.

Choices are the shipped reference profiles, the profiles of earlier runs found on disk, and what this session
uploaded or measured. The active profile's id lives in st.session_state["active_profile_id"] (a plain key, so
it survives page switches), and its device joins this session's devices (app_pages/_devices.py) so other pages
of this session, and no other session, can plan on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from app_pages import _calibrate_run as runner
from app_pages import _calibrate_slot as slot
from app_pages._devices import add_session_device
from calibration.rows import read_rows, read_samples
from calibration.run_folder import SAMPLES_NAME
from report.formatting import md_escape
from simulator.catalog import HardwareSpec
from simulator.device_profile import device_from_profile
from simulator.devices import shipped_profiles
from simulator.profile import ProfileError, load_profile

ACTIVE = "active_profile_id"
SESSION_PROFILES = "calibrate.profiles"  # id -> entry, for uploads and runs of this session
SELECT, UPLOAD, NOTICE, RUN = "calibrate.select", "calibrate.upload", "calibrate.notice", "calibrate.run"
PLAN, BUDGET = "calibrate.planned", "calibrate.budget_s"  # the last plan (`run --plan-only`), its budget
PLAN_BEFORE = "calibrate.plan_before"  # the over-budget plan one of its alternatives replaced (to go back to)
MAX_DISK_RUNS = 20

Entry = dict[str, Any]  # {"profile": dict, "source": str}


@st.cache_resource(show_spinner=False, max_entries=64)
def _load_run_profile(path: str, mtime_ns: int) -> dict[str, Any] | str:
    """A run's profile.json, loaded once per version of the file; the loader's message when it is rejected."""
    try:
        return load_profile(path)
    except ProfileError as exc:
        return str(exc)


def disk_runs() -> tuple[dict[str, Entry], list[str]]:
    """Profiles of earlier runs under the runs folder (newest first), and the files the loader rejected."""
    base = runner.runs_dir()
    files = sorted(base.glob("*/profile.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)[:MAX_DISK_RUNS]
    found, rejected = {}, []
    for path in files:
        loaded = _load_run_profile(str(path), path.stat().st_mtime_ns)
        if isinstance(loaded, str):
            rejected.append(f"{path}: {loaded}")
        else:
            found[f"run:{path.parent.name}"] = {"profile": loaded, "source": f"run {path.parent.name}"}
    return found, rejected


def choices() -> tuple[dict[str, Entry], list[str]]:
    """Every profile that can be made active, by id: this session's, earlier runs', then the shipped ones."""
    runs, rejected = disk_runs()
    shipped = {f"shipped:{stem}": {"profile": p, "source": f"shipped reference ({stem}.json)"}
               for stem, p in shipped_profiles().items()}
    return {**st.session_state.get(SESSION_PROFILES, {}), **runs, **shipped}, rejected


def label(entry: Entry) -> str:
    return f"{entry['profile']['name']} · {entry['source']} ({len(entry['profile']['measurements'])} rows)"


def add(profile_id: str, profile: dict[str, Any], source: str, make_active: bool = True) -> None:
    st.session_state.setdefault(SESSION_PROFILES, {})[profile_id] = {"profile": profile, "source": source}
    if make_active:
        st.session_state[ACTIVE] = profile_id


def active(options: dict[str, Entry]) -> str:
    """The active id; a missing or vanished one falls back to the newest own run, else the first shipped."""
    current = st.session_state.get(ACTIVE)
    if current not in options:
        own = [k for k in options if k.startswith("run:")]
        current = own[0] if own else next((k for k in options if k.startswith("shipped:")), next(iter(options)))
        st.session_state[ACTIVE] = current
    st.session_state[SELECT] = current  # the selectbox follows the active id, whoever changed it
    return current


def on_select() -> None:
    st.session_state[ACTIVE] = st.session_state[SELECT]


def load_upload(name: str, data: bytes) -> tuple[str, dict[str, Any]]:
    """An uploaded file through the one strict loader; ProfileError says what is wrong and where."""
    profile = load_profile(bytes(data))
    return f"upload:{hashlib.sha256(data).hexdigest()[:12]}", profile


def on_upload() -> None:
    """Upload callback: a good file is added and made active; a bad one changes nothing but the message."""
    upload = st.session_state.get(UPLOAD)
    if upload is None:
        return
    try:
        profile_id, profile = load_upload(upload.name, upload.getvalue())
    except ProfileError as exc:
        st.session_state[NOTICE] = ("error", f"{md_escape(upload.name[:80])} was not loaded: {md_escape(exc)}")
        return
    add(profile_id, profile, f"uploaded {upload.name[:80]}")
    st.session_state[NOTICE] = ("success", f"Loaded {md_escape(upload.name[:80])}; it is now the active profile.")


def register(profile: dict[str, Any]) -> tuple[HardwareSpec | None, str | None]:
    """Make the profile's device plannable in this session (accelerator "profile:<slug>"); say why when it
    cannot be. A shipped profile's device is already known to every session; one whose id clashes with it is
    refused, never put in its place."""
    try:
        spec = device_from_profile(profile)
    except ValueError as exc:
        return None, f"Other pages can't plan on this profile: {exc}. Calibrate with the GEMM bench to fix it."
    spec, problem = add_session_device(spec)
    if problem is not None:
        return None, f"Other pages can't plan on this profile: {problem}."
    return spec, None


def _start(start: Callable[[], runner.CalibrationRun]) -> None:
    """One calibration per server; a second click while one runs explains instead."""
    try:
        st.session_state[RUN] = start()
    except slot.RunBusyError as exc:
        st.session_state[NOTICE] = ("error", f"Not started: {exc}.")


def consume(run: runner.CalibrationRun) -> bool:
    """Take a finished run's profile into the choices and make it active, once. True when something changed."""
    if run.consumed:
        return False
    snap = run.snapshot()
    if not snap.finished:
        return False
    run.consumed = True
    if snap.profile is not None:
        add(f"run:{Path(snap.out_dir).name}", snap.profile, f"run {Path(snap.out_dir).name}")
    return True


@dataclasses.dataclass(frozen=True)
class Kept:
    """What a run folder holds: its rows and samples files (None where the file does not exist) and counts."""

    rows_path: Path | None
    rows: int
    samples_path: Path | None
    samples: int

    @property
    def anything(self) -> bool:
        return self.rows > 0 or self.samples > 0


def kept(out_dir: Path) -> Kept:
    """The rows and samples a (stopped) run left in `out_dir`, read as `--resume` will read them."""
    rows_path, samples_path = Path(out_dir) / "rows.jsonl", Path(out_dir) / SAMPLES_NAME
    return Kept(rows_path if rows_path.is_file() else None, len(read_rows(rows_path)),
                samples_path if samples_path.is_file() else None, sum(map(len, read_samples(samples_path).values())))


def start_run() -> None:
    """Start button: the planned run, with the plan's budget and the benches it leaves out; one per server. A plan
    over its budget is the "Start anyway" button: the run gets --force (the CLI refuses it otherwise)."""
    plan = st.session_state.get(PLAN) or {}
    _start(lambda: slot.start_run(budget_s=plan.get("budget_s"), skip=tuple(plan.get("skip") or ()),
                                  force=not plan.get("fits_budget", True)))


def resume_run() -> None:
    """Resume button: the stopped run again, in its folder, continuing from what it kept."""
    run: runner.CalibrationRun | None = st.session_state.get(RUN)
    if run is not None:
        _start(lambda: slot.start_run(run.out_dir, runner.resume_command(run.command), run.cwd))


def plan_run(budget_s: float, skip: tuple[str, ...] = ()) -> None:
    """Probe this machine and plan a run (seconds); the plan, or why there is none, goes to the session."""
    st.session_state.pop(PLAN_BEFORE, None)
    try:
        st.session_state[PLAN] = {**runner.plan_run(budget_s, skip), "budget_s": budget_s}
    except runner.PlanError as exc:
        st.session_state.pop(PLAN, None)
        st.session_state[NOTICE] = ("error", f"No plan: {md_escape(exc)}. The run was not started.")


def use_alternative(kind: str) -> None:
    """Callback: an over-budget plan replaced by one of the alternatives planned with it from the same probe
    (`advice`'s "leave_out_plan" or "budget_plan"; nothing is measured again); its budget goes to the input."""
    plan = st.session_state.get(PLAN) or {}
    alternative = (plan.get("advice") or {}).get(kind)
    if not isinstance(alternative, dict):
        return
    st.session_state[PLAN_BEFORE] = plan
    st.session_state[PLAN] = alternative
    st.session_state[BUDGET] = float(alternative["budget_s"])


def restore_plan() -> None:
    """Callback: back to the plan an alternative replaced."""
    before = st.session_state.pop(PLAN_BEFORE, None)
    if before is not None:
        st.session_state[PLAN] = before
        st.session_state[BUDGET] = float(before["budget_s"])
