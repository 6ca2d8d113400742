"""Calibrate: how fast is this hardware really, and how well do the fitted models predict it?"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import streamlit as st

from app_pages import _calibrate_panel as panel
from app_pages import _calibrate_run as runner
from app_pages import _calibrate_state as state
from app_pages import _calibrate_view as view
from report import formatting as fmt
from simulator.devices import PROFILE_DIR
from simulator.safe_json_limits import MAX_PROFILE_BYTES


def profile_files(active_id: str) -> list[str]:
    """The files the active profile was read from: a shipped file, or a run folder's files (an upload has none)."""
    kind, _, name = active_id.partition(":")
    if kind == "shipped":
        return [str(PROFILE_DIR / f"{name}.json")]
    if kind == "run":
        folder = runner.runs_dir() / name
        return sorted(str(p) for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return []


def profile_pdf(profile: dict[str, Any], spec: Any | None, source: str, files: list[str]) -> bytes:
    # fpdf and vl-convert load only when a PDF is asked for
    from report.calibration_pdf import calibration_pdf

    return calibration_pdf(profile, spec, source=source, files=files)


def pdf_button(column: Any, active_id: str, entry: dict[str, Any], spec: Any | None) -> None:
    """Deferred (built on click); its key follows the profile, else a changed profile downloads the old file."""
    profile = entry["profile"]
    version = hashlib.sha256(f"{active_id}@{profile['created_utc']}@{spec is not None}".encode()).hexdigest()[:12]
    stem = "".join(ch if ch.isalnum() else "-" for ch in Path(active_id.split(":")[-1]).stem)[:60] or "profile"
    column.download_button(
        "Download PDF", functools.partial(profile_pdf, profile, spec, entry["source"], profile_files(active_id)),
        f"calibration-{stem}.pdf", "application/pdf", icon=":material/picture_as_pdf:", key=f"calibrate.pdf.{version}",
        on_click="ignore", width="stretch",
        help="The active profile as an A4 report: headline, environment, every fit with its formula, parameters "
             "and held-out error, the charts, quality curves and provenance (docs/reports.md). Built when clicked.")


def controls(options: dict, active_id: str, entry: dict[str, Any], spec: Any | None) -> None:
    profile = entry["profile"]
    pick, upload, download, pdf, run = st.columns([3.4, 1.2, 1.3, 1.6, 1.6], vertical_alignment="bottom")
    pick.selectbox("Active profile", list(options), format_func=lambda i: state.label(options[i]), key=state.SELECT,
                   on_change=state.on_select,
                   help="The calibration other pages plan with: a shipped reference, an earlier run in the runs "
                        "folder, or one you uploaded or measured in this session.")
    with upload.popover("Upload", icon=":material/upload:", width="stretch"):
        st.file_uploader("Profile JSON", type=["json"], key=state.UPLOAD, on_change=state.on_upload,
                         max_upload_size=MAX_PROFILE_BYTES // 2**20,
                         help="A profile.json written by `python -m calibration run` (docs/profile-schema.md). "
                              "It is checked by the strict loader; a bad file changes nothing.")
    download.download_button(
        "Download", functools.partial(json.dumps, profile, indent=1, allow_nan=False), f"{active_id.split(':')[-1]}.json",
        "application/json", icon=":material/download:", key="calibrate.download", on_click="ignore", width="stretch",
        help="The active profile as JSON, to share or to upload on another machine.")
    pdf_button(pdf, active_id, entry, spec)
    with run:
        panel.plan_button()


def notice() -> None:
    kind, text = st.session_state.pop(state.NOTICE, (None, ""))
    if text:
        (st.success if kind == "success" else st.error)(view.md(text), icon=":material/info:")


def page() -> None:
    run = st.session_state.get(state.RUN)
    if run is not None:
        state.consume(run)  # a run that ended while another page was open
    options, rejected = state.choices()
    active_id = state.active(options)
    entry = options[active_id]
    profile = entry["profile"]
    spec, warning = state.register(profile)
    st.title("Calibrate")
    view.answer(profile, spec)
    view.metrics(profile, spec)
    controls(options, active_id, entry, spec)
    notice()
    panel.plan_view()
    panel.status()
    if warning:
        st.warning(view.md(warning), icon=":material/warning:")
    if spec is not None:
        st.caption(f"Other pages can plan on it as accelerator `{spec.id}` ({fmt.md_escape(spec.display_name)}).")
    view.environment(profile, spec, entry["source"])
    cache_id = f"{active_id}@{profile['created_utc']}"
    tabs = st.tabs([*view.SECTIONS.values(), "Compare"])
    for tab, section in zip(tabs, view.SECTIONS, strict=False):
        with tab:
            view.section_tab(cache_id, profile, section)
    with tabs[-1]:
        view.compare({i: e["profile"] for i, e in options.items()}, {i: state.label(e) for i, e in options.items()},
                     active_id)
    if rejected:
        with st.expander(f"Run folders whose profile the loader rejects: {len(rejected)}", icon=":material/warning:"):
            st.markdown("\n".join(f"- {view.md(r)}" for r in rejected))


page()
