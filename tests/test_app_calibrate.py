"""The Calibrate page through AppTest, and its subprocess runner driven by fake commands (no torch)."""

from __future__ import annotations

import copy
import json
import re
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from app_pages import _calibrate_run as runner  # noqa: E402
from app_pages import _calibrate_slot as slot  # noqa: E402
from app_pages import _calibrate_state as state  # noqa: E402
from app_pages._devices import UPLOADED  # noqa: E402
from report import calibration_charts as charts  # noqa: E402
from report import calibration_summary as summary  # noqa: E402
from simulator.device_profile import device_id  # noqa: E402
from simulator.devices import all_devices, shipped_profiles  # noqa: E402
from simulator.profile import ProfileError, bus_factor, load_profile  # noqa: E402

APP = str(ROOT / "app.py")
TIMEOUT_S = 30
SHIPPED_STEM = "h200-quick"
SHIPPED = f"shipped:{SHIPPED_STEM}"
RUN_WAIT_S = 20


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv(runner.RUNS_DIR_ENV, str(tmp_path / "runs"))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    active = slot.active_run()
    if active is not None:  # never leave a child behind for the next test
        active.stop()
        active.wait(RUN_WAIT_S)


def open_page(active: str | None = SHIPPED) -> AppTest:
    """The Calibrate page, with `active` chosen (None: whatever the page picks by itself)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    if active is not None:
        at.session_state[state.ACTIVE] = active
    at.switch_page("app_pages/calibrate.py").run()  # straight to the page: the home page's search is not needed
    assert not at.exception, [e.value for e in at.exception]
    return at


def headline(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("#### Active profile"))


def specs(at: AppTest) -> list[str]:
    return [c.proto.spec for c in at.get("vega_lite_chart")]


def allreduce_fit() -> dict:
    """An all-reduce alpha-beta fit at 2 ranks, points drawn from its own curve with +/-3% noise."""
    alpha_s, busbw = 5e-5, 2.3
    sizes = [float(2**p) for p in range(10, 26, 2)]
    pts = [{"x": s, "measured": (alpha_s + s * float(bus_factor("all_reduce", 2)) / (busbw * 1e9)) * (1 + e),
            "predicted": alpha_s + s * float(bus_factor("all_reduce", 2)) / (busbw * 1e9), "rows": [i],
            "world_size": 2} for i, (s, e) in enumerate(zip(sizes, np.tile([0.03, -0.03], 4), strict=True))]
    return {"status": "ok", "model": "alpha_beta", "op": "all_reduce", "world_size": 2,
            "formula": "t_s = alpha_s + message_bytes * c(n) / (busbw_GBps * 1e9)",
            "params": {"alpha_s": alpha_s, "busbw_GBps": busbw}, "stderr": {"alpha_s": 2e-6, "busbw_GBps": 0.04},
            "params_at_bound": [], "n_train": 6, "n_heldout": 2, "mape_train_pct": 3.0, "mape_heldout_pct": 3.0,
            "heldout_rule": "the largest 2 of 8 points by message_bytes", "x_name": "message_bytes",
            "y_name": "median_s", "y_kind": "time_s", "points": {"train": pts[:6], "heldout": pts[6:]}}


def variant() -> dict:
    """The shipped profile as another machine: every GEMM twice as slow (half the rates, twice the overhead), and
    an all-reduce fit."""
    p = copy.deepcopy(shipped_profiles()["h200-quick"])
    p["name"], p["created_utc"] = "Test rig, calibrated 2026-11-29", "2026-11-29T10:00:00+00:00"
    for fit in p["fits"]["compute"]["gemm"].values():
        if fit["status"] == "ok":
            params = fit["params"]
            params["overhead_s"] *= 2
            for rate in ("achieved_tflops", "mem_GBps", "cache_GBps", "dram_GBps"):
                if rate in params:
                    params[rate] /= 2
    p["fits"]["collectives"]["all_reduce"] = {"bus_factor": "2(n-1)/n", "by_world": {"2": allreduce_fit()}}
    return p


def variant_bytes() -> bytes:
    data = json.dumps(variant()).encode()
    load_profile(data)  # the fixture itself must pass the strict loader
    return data


# ---------------------------------------------------------------- the page


def test_the_reference_profile_of_the_development_machine_is_the_default():
    at = open_page(active=None)
    assert at.session_state[state.ACTIVE] == "shipped:cpu-reference"
    assert "TFLOP/s" in headline(at) and not at.error


def test_page_renders_the_shipped_profile_with_headline_metrics_and_fits():
    at = open_page()
    profile = shipped_profiles()[SHIPPED_STEM]
    bf16 = summary.gemm_rate(profile["fits"]["compute"]["gemm"]["cuda/bf16"], "bf16")["tflops"]
    pct = 100 * bf16 / 989.4  # H200 dense bf16 datasheet peak
    assert headline(at).startswith(f"#### Active profile: {profile['name']}: bf16 GEMMs reach {bf16:.0f} "
                                   f"TFLOP/s ({pct:.0f}% of datasheet); held-out error")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["bf16 TFLOP/s"] == f"{bf16:.0f}" and metrics["All-reduce GB/s"] == "n/a"
    rows = profile["measurements"]
    ok = sum(r.get("status") == "ok" for r in rows)
    failed = sum(r.get("status") == "failed" for r in rows)
    assert metrics["Rows ok / failed"] == f"{ok} / {failed}"
    assert at.session_state[state.ACTIVE] == SHIPPED
    assert device_id(profile) in all_devices()  # shipped: known to every session, nothing stored in this one
    assert not at.session_state[UPLOADED] if UPLOADED in at.session_state else True
    assert not at.error
    warnings = " ".join(w.value for w in at.warning)  # fits that were not made say why, without a crash
    assert "no usable non-oversubscribed ps_push_pull rows" in warnings  # one GPU: no parameter server
    charts_now = specs(at)
    assert any("GEMM size (FLOP per call" in s for s in charts_now)  # throughput overview
    assert any("Prediction error" in s or "0 is exact" in s for s in charts_now)  # residuals
    assert any("triangle-up" in s for s in charts_now)  # held-out points differ by shape, not colour only


def test_bad_upload_shows_the_loader_message_and_changes_nothing():
    at = open_page()
    before = headline(at)
    at.file_uploader(key=state.UPLOAD).upload("broken.json", b'{"kind": "something else"}', "application/json").run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # as rendered: the Markdown escapes removed
    assert any("broken.json was not loaded: kind: expected 'modelfolio.calibration_profile'" in e for e in errors)
    assert at.session_state[state.ACTIVE] == SHIPPED and headline(at) == before
    with pytest.raises(ProfileError, match="not valid JSON"):
        state.load_upload("cut.json", b'{"schema_version": 1, "kind"')


def test_good_upload_becomes_active_and_compare_shows_ratios():
    at = open_page()
    at.file_uploader(key=state.UPLOAD).upload("rig.json", variant_bytes(), "application/json").run()
    assert not at.exception and not at.error
    half = summary.gemm_throughput(variant())[0]["tflops"]
    assert headline(at).startswith(f"#### Active profile: Test rig, calibrated 2026-11-29: bf16 GEMMs reach {half:.0f}")
    assert "all-reduce moves 2.3 GB/s" in headline(at)
    assert {m.label: m.value for m in at.metric}["All-reduce GB/s"] == "2.3"
    assert device_id(variant()) in at.session_state[UPLOADED]  # plannable in this session only
    assert device_id(variant()) not in all_devices()
    assert any("Message size (bytes)" in s for s in specs(at))  # the collective fit drawn with its curve
    at.selectbox(key="calibrate.compare_b").set_value(SHIPPED).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if summary.RATIO in d.value.columns)
    row = table.set_index("Figure").loc["GEMM cuda/bf16"]
    assert row[summary.RATIO] == "2.00×"  # formatted as the page shows it
    assert any("GEMM throughput rises" in c.value for c in at.caption)
    assert any("A: Test rig" in s and "B: NVIDIA H200" in s for s in specs(at))  # one overlay of both


def test_a_profile_name_cannot_format_the_page():
    p = variant()
    p["name"] = "**Bold** [click](http://example.com) $x$ <b>rig</b>, calibrated 2026-11-29"
    at = open_page()
    at.file_uploader(key=state.UPLOAD).upload("md.json", json.dumps(p).encode(), "application/json").run()
    assert not at.exception and not at.error
    assert r"\*\*Bold\*\* \[click\](http://example.com) \$x\$ \<b\>rig\</b\>" in headline(at)


def accelerator_options(at: AppTest) -> list[str]:
    """The accelerator choices the Train page of this session offers (their labels)."""
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return list(at.selectbox(key="cluster.accelerator").options)


def two_sessions_one_upload() -> tuple[AppTest, AppTest]:
    mine, theirs = open_page(), open_page()
    mine.file_uploader(key=state.UPLOAD).upload("rig.json", variant_bytes(), "application/json").run()
    assert not mine.exception and not mine.error
    theirs.run()
    return mine, theirs


def test_an_upload_stays_in_the_session_that_made_it():
    mine, theirs = two_sessions_one_upload()
    rig = device_id(variant())
    assert rig in mine.session_state[UPLOADED]
    assert UPLOADED not in theirs.session_state or rig not in theirs.session_state[UPLOADED]
    assert rig not in all_devices()  # nothing process-wide


def test_the_train_page_offers_this_sessions_devices_only():
    mine, theirs = two_sessions_one_upload()
    assert any(o.startswith("Test rig") for o in accelerator_options(mine))
    assert not any(o.startswith("Test rig") for o in accelerator_options(theirs))
    assert any(o.startswith("NVIDIA H200, calibrated") for o in accelerator_options(theirs))  # shipped: everyone's


def test_an_upload_with_a_shipped_id_never_replaces_the_shipped_device():
    shipped = all_devices()[device_id(shipped_profiles()[SHIPPED_STEM])]
    impostor = copy.deepcopy(shipped_profiles()[SHIPPED_STEM])  # same name and time: the same id
    impostor["fits"]["compute"]["gemm"]["cuda/bf16"]["params"]["achieved_tflops"] /= 2
    at = open_page()
    at.file_uploader(key=state.UPLOAD).upload("same-id.json", json.dumps(impostor).encode(), "application/json").run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert f'device "{shipped.id}"' in warnings and "shipped reference profile" in warnings
    assert UPLOADED not in at.session_state or shipped.id not in at.session_state[UPLOADED]
    assert all_devices()[shipped.id] == shipped
    again = open_page()  # the shipped file itself, uploaded again: the same device, no clash
    again.file_uploader(key=state.UPLOAD).upload("h200.json", json.dumps(shipped_profiles()[SHIPPED_STEM]).encode(),
                                                 "application/json").run()
    assert not again.exception and "shipped reference profile" not in " ".join(w.value for w in again.warning)
    assert UPLOADED not in again.session_state or not again.session_state[UPLOADED]


def test_earlier_runs_on_disk_are_offered_and_a_corrupt_one_is_explained(tmp_path):
    good, bad = runner.runs_dir() / "calib-good", runner.runs_dir() / "calib-bad"
    good.mkdir(parents=True)
    bad.mkdir()
    (good / "profile.json").write_bytes(variant_bytes())
    (bad / "profile.json").write_text('{"schema_version": 1, "kind": "modelfolio.calibration_profile", "name": 5}')
    at = open_page(active=None)
    assert not at.exception
    assert at.session_state[state.ACTIVE] == "run:calib-good"  # your own newest measurement first
    assert headline(at).startswith("#### Active profile: Test rig")
    rejected = next(e for e in at.expander if e.label.startswith("Run folders whose profile the loader rejects: 1"))
    assert "calib-bad" in rejected.markdown[0].value
    at.selectbox(key=state.SELECT).set_value(SHIPPED).run()
    assert at.session_state[state.ACTIVE] == SHIPPED and "NVIDIA H200" in headline(at)


def test_compare_frame_and_curves_without_the_page():
    a, b = shipped_profiles()["h200-quick"], variant()
    frame = summary.compare_frame(a, b, "A", "B").set_index("Figure")
    assert frame.loc["GEMM cuda/bf16", summary.RATIO] == pytest.approx(0.5, rel=1e-3)
    assert np.isnan(frame.loc["all_reduce, 2 ranks", summary.RATIO])  # only B has it: no ratio, no crash
    curve = charts.curve_frame(allreduce_fit())
    assert len(curve) == charts.GRID_POINTS and (np.diff(curve["Predicted"]) > 0).all()
    assert charts.curve_frame(b["fits"]["inference"]["decode"]["cuda/bf16/L8-h1024"]).empty  # shown at points
    assert summary.fit_label(("all_reduce", "by_world", "2")) == "all_reduce · 2 ranks"
    odd = allreduce_fit()
    odd["points"]["train"][0]["predicted"] = None  # allowed by the schema: drawn without that point's error
    points = charts.points_frame(odd)
    assert points["Error (%)"].isna().sum() == 1
    assert "8 measured points (6 fitted, 2 held out)" in charts.describe_fit("odd", odd, points)
    charts.fit_chart(odd, points, charts.curve_frame(odd)).to_dict()
    charts.residual_chart(odd, points).to_dict()


# ---------------------------------------------------------------- the runner, with fake commands


def fake(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake_calibration.py"
    script.write_text("import json, pathlib, sys, time\nout = pathlib.Path(sys.argv[1])\n" + textwrap.dedent(body))
    return script


SUCCEEDS = """
    out.mkdir(parents=True, exist_ok=True)
    print("  0%|          | 0/3 [00:00<?, ?step/s]calibration quick: 3 steps", file=sys.stderr, flush=True)
    for i, step in enumerate(["gemm cpu fp32", "all_reduce ws=2", "decode"], 1):
        print("PROGRESS " + json.dumps({"done": i, "total": 3, "step": step, "status": "failed" if i == 2 else "ok"}),
              flush=True)
        print(f"\\r {33 * i}%|###   | {i}/3 [00:00<00:00, 9.1step/s, {step}]", end="", file=sys.stderr, flush=True)
    print("PROGRESS {not json", flush=True)
    (out / "rows.jsonl").write_text('{"bench": "gemm"}\\n')
    (out / "profile.json").write_text(pathlib.Path(sys.argv[2]).read_text())
    print("profile: " + str(out / "profile.json"), flush=True)
"""
FAILS = """
    print("PROGRESS " + json.dumps({"done": 1, "total": 5, "step": "gemm"}), flush=True)
    print("Traceback (most recent call last):\\nRuntimeError: boom in the GEMM bench", file=sys.stderr)
    sys.exit(1)
"""
NO_PROFILE = """
    print("PROGRESS " + json.dumps({"done": 1, "total": 1, "step": "gemm"}), flush=True)
"""
SLOW = """
    out.mkdir(parents=True, exist_ok=True)
    for i in range(1, 600):
        print("PROGRESS " + json.dumps({"done": i, "total": 600, "step": f"step {i}"}), flush=True)
        with (out / "rows.jsonl").open("a") as f:
            f.write(json.dumps({"bench": "gemm", "status": "ok"}) + "\\n")
        time.sleep(0.05)
"""


def start(tmp_path: Path, body: str, *extra: str) -> runner.CalibrationRun:
    out = runner.new_run_dir()
    return slot.start_run(out, [sys.executable, str(fake(tmp_path, body)), str(out), *extra], cwd=tmp_path)


def test_run_parses_progress_and_loads_the_profile(tmp_path):
    source = tmp_path / "source.json"
    source.write_bytes(variant_bytes())
    run = start(tmp_path, SUCCEEDS, str(source))
    assert run.snapshot().status in (runner.RUNNING, runner.DONE)
    snap = run.wait(RUN_WAIT_S)
    assert snap.status == runner.DONE, (snap.error, snap.stderr_tail)
    assert (snap.done, snap.total, snap.step, snap.failed_steps) == (3, 3, "decode", 1)
    assert snap.fraction == 1.0 and snap.returncode == 0 and snap.error is None
    assert snap.profile["name"] == "Test rig, calibrated 2026-11-29"
    assert snap.stderr_tail == ("calibration quick: 3 steps",)  # progress-bar redraws are not kept as errors
    assert "PROGRESS {not json" in snap.stdout_tail  # a malformed line is output, not progress
    assert slot.active_run() is None  # the slot is free again


@pytest.mark.parametrize(("body", "message", "in_stderr"), [
    (FAILS, "exited with code 1", "RuntimeError: boom in the GEMM bench"),
    (NO_PROFILE, "wrote no profile.json", None),
])
def test_run_failures_keep_the_reason_and_stderr(tmp_path, body, message, in_stderr):
    snap = start(tmp_path, body).wait(RUN_WAIT_S)
    assert snap.status == runner.FAILED and message in snap.error
    if in_stderr:
        assert in_stderr in snap.stderr_tail
    assert slot.active_run() is None


def test_a_command_that_cannot_start_fails_with_its_reason(tmp_path):
    run = slot.start_run(tmp_path / "out", [str(tmp_path / "no-such-python"), "-m", "calibration"])
    snap = run.snapshot()
    assert snap.status == runner.FAILED and "could not start" in snap.error and "no-such-python" in snap.error
    assert slot.active_run() is None


def test_one_run_at_a_time_and_stop_keeps_rows(tmp_path):
    run = start(tmp_path, SLOW)
    with pytest.raises(slot.RunBusyError, match="already running"):
        slot.start_run(tmp_path / "second")
    deadline = time.monotonic() + RUN_WAIT_S
    while run.snapshot().done < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop()
    snap = run.wait(RUN_WAIT_S)
    assert snap.status == runner.STOPPED and snap.done >= 2
    assert state.kept(snap.out_dir).rows >= 2  # what was measured stays on disk
    assert slot.active_run() is None


def test_parse_progress():
    assert runner.parse_progress('PROGRESS {"done": 3, "total": 20, "step": "x"}') == {"done": 3, "total": 20, "step": "x"}
    assert runner.parse_progress("PROGRESS [1, 2]") is None
    assert runner.parse_progress("measured 3 steps") is None


def test_page_starts_a_run_then_activates_its_profile(tmp_path, monkeypatch):
    source = tmp_path / "source.json"
    source.write_bytes(variant_bytes())
    script = fake(tmp_path, SUCCEEDS)
    monkeypatch.setattr(runner, "calibration_command", lambda out, **_: [sys.executable, str(script), str(out), str(source)])
    at = plan_then_start(tmp_path, monkeypatch)
    run = at.session_state[state.RUN]
    assert run.wait(RUN_WAIT_S).status == runner.DONE
    at.run()
    assert not at.exception
    assert at.session_state[state.ACTIVE] == f"run:{run.out_dir.name}"
    assert headline(at).startswith("#### Active profile: Test rig")
    assert any("is now the active profile" in s.value for s in at.success)


def test_page_shows_a_failed_run_with_its_stderr(tmp_path, monkeypatch):
    script = fake(tmp_path, FAILS)
    monkeypatch.setattr(runner, "calibration_command", lambda out, **_: [sys.executable, str(script), str(out)])
    at = plan_then_start(tmp_path, monkeypatch)
    at.session_state[state.RUN].wait(RUN_WAIT_S)
    at.run()
    assert any("Calibration failed" in e.value and "exited with code 1" in e.value for e in at.error)
    assert any("boom in the GEMM bench" in c.value for c in at.code)
    assert at.session_state[state.ACTIVE] == SHIPPED  # nothing the user had is lost


def test_server_config_caps_uploads_at_the_loader_cap_and_hides_tracebacks():
    import tomllib

    from simulator.safe_json_limits import MAX_PROFILE_BYTES

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_PROFILE_BYTES
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["address"] == "127.0.0.1"


# ---------------------------------------------------------------- plan, cancel, resume (issue 9, item 5)

PLAN = {"mode": "quick", "budget_s": 180.0, "predicted_s": 150.4, "launch_s": 16.0, "unplanned_s": 1021.6,
        "points": 177, "dropped": 90, "fits_budget": True, "devices": ["cpu"], "probe_s": 0.4,
        "benches": [{"bench": "gemm", "points": 7, "of": 30, "predicted_s": 2.1},
                    {"bench": "all_reduce", "points": 22, "of": 22, "predicted_s": 13.2}],
        "emulated": [{"device": "cpu", "dtype": "bf16", "points": 5, "benches": ["gemm"], "gflops": 1.0,
                      "fp32_gflops": 89.0}], "text": "plan: ..."}


def fake_preview(tmp_path: Path, monkeypatch, plan: dict | None = None, fail: bool = False) -> Path:
    """runner.preview_command replaced by a script printing `plan` (its budget from the argument) as a PLAN line."""
    script = tmp_path / "fake_preview.py"
    body = ("import json, sys\nplan = json.loads(sys.argv[1])\nplan['budget_s'] = float(sys.argv[2])\n"
            "print('probing...')\nprint('PLAN ' + json.dumps(plan))\n")
    if fail:
        body = "import sys\nprint('RuntimeError: no torch here', file=sys.stderr)\nsys.exit(3)\n"
    script.write_text(body)
    monkeypatch.setattr(runner, "preview_command", lambda budget_s, skip=(): [
        sys.executable, str(script), json.dumps(plan or PLAN), f"{budget_s:g}"])
    return script


def plan_then_start(tmp_path: Path, monkeypatch) -> AppTest:
    fake_preview(tmp_path, monkeypatch)
    at = open_page()
    at.button(key="calibrate.plan").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="calibrate.start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_plan_shows_benches_points_emulated_dtypes_and_the_predicted_duration(tmp_path, monkeypatch):
    fake_preview(tmp_path, monkeypatch)
    started: list[dict] = []
    monkeypatch.setattr(slot, "start_run", lambda **kw: started.append(kw) or runner.CalibrationRun(
        tmp_path / "never", [sys.executable, "-c", "pass"], tmp_path).start())
    at = open_page()
    assert not at.get("number_input")  # no plan yet: no budget, no Start
    at.button(key="calibrate.plan").click().run()
    assert not at.exception and not at.error
    text = " ".join(m.value for m in at.markdown)
    assert "**Plan:** 177 points in 2 benches on cpu, predicted **2:30** (min:s) for a budget of 3:00" in text
    assert "The full quick grids would take 17:02: 90 of their points are left out" in text
    warnings = [w.value for w in at.warning]
    assert ("bf16 is emulated on this CPU (probe: 1 GFLOP/s against 89 GFLOP/s in fp32): will be measured at 5 small "
            "points only; plans in bf16 on this machine will be slow.") in warnings
    table = next(d.value for d in at.dataframe if "Of the grid" in d.value.columns)
    assert table.set_index("Bench").loc["gemm", "Points"] == 7 and "torchrun start-ups" in set(table["Bench"])
    at.number_input(key=state.BUDGET).set_value(60.0).run()  # a new budget: plan again before starting
    assert at.button(key="calibrate.start").disabled
    at.button(key="calibrate.replan").click().run()
    assert "for a budget of 1:00" in " ".join(m.value for m in at.markdown)
    assert not at.button(key="calibrate.start").disabled
    at.button(key="calibrate.start").click().run()
    assert started == [{"budget_s": 60.0, "skip": (), "force": False}]  # the run gets the plan's budget


def test_a_failed_plan_says_why_and_starts_nothing(tmp_path, monkeypatch):
    fake_preview(tmp_path, monkeypatch, fail=True)
    at = open_page()
    at.button(key="calibrate.plan").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("No plan: the probe exited with code 3: RuntimeError: no torch here" in e for e in errors)
    assert state.PLAN not in at.session_state and state.RUN not in at.session_state


def test_the_real_plan_marks_a_slowed_dtype_emulated_and_fits_its_budget(monkeypatch):
    """calibration.probe.preview through the page's subprocess, with the probe's test hook slowing bf16."""
    from calibration.probe import SLOW_ENV

    monkeypatch.setenv(SLOW_ENV, "bf16")
    plan = runner.plan_run(60.0)
    assert plan["budget_s"] == 60.0 and plan["predicted_s"] > 0 and plan["points"] > 0
    assert [(e["device"], e["dtype"]) for e in plan["emulated"]] == [("cpu", "bf16")]
    assert 1 <= plan["emulated"][0]["points"] <= 5 * len(plan["benches"])
    assert plan["emulated"][0]["gflops"] < plan["emulated"][0]["fp32_gflops"] / 8
    assert plan["dropped"] > 0 and plan["unplanned_s"] > plan["predicted_s"]
    assert sum(b["points"] for b in plan["benches"]) == plan["points"]


CANCELLABLE = """
    out.mkdir(parents=True, exist_ok=True)
    try:
        for i in range(1, 600):
            with (out / "samples.jsonl").open("a") as f:
                f.write(json.dumps({"key": f"k{i}", "times_s": [0.1, 0.2, 0.3]}) + "\\n")
            with (out / "rows.jsonl").open("a") as f:
                f.write(json.dumps({"bench": "gemm", "status": "ok"}) + "\\n")
            print("PROGRESS " + json.dumps({"done": i, "total": 600, "step": f"step {i}"}), flush=True)
            time.sleep(0.05)
    except KeyboardInterrupt:  # what SIGINT (Ctrl-C) raises; SIGTERM would not get here
        (out / "interrupted").write_text(" ".join(sys.argv[2:]))
        sys.exit(130)
"""


def test_cancel_keeps_rows_names_existing_files_and_resumes(tmp_path, monkeypatch):
    script = fake(tmp_path, CANCELLABLE)
    monkeypatch.setattr(runner, "calibration_command", lambda out, **kw: [sys.executable, str(script), str(out),
                                                                         "--budget-s", f"{kw['budget_s']:g}"])
    at = plan_then_start(tmp_path, monkeypatch)
    run = at.session_state[state.RUN]
    deadline = time.monotonic() + RUN_WAIT_S
    while run.snapshot().done < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    at.run()
    assert any("Rows go to `" in c.value for c in at.caption)
    at.button(key="calibrate.cancel").click().run()
    snap = run.wait(RUN_WAIT_S)
    assert snap.status == runner.STOPPED and (snap.out_dir / "interrupted").read_text() == "--budget-s 180"  # SIGINT
    at.run()
    assert not at.exception
    message = next(w.value for w in at.warning if "Cancelled after" in w.value)
    named = [Path(p) for p in re.findall(r"`([^`]+\.jsonl)`", message)]
    assert {p.name for p in named} == {"rows.jsonl", "samples.jsonl"} and all(p.is_file() for p in named)
    kept = state.kept(snap.out_dir)
    assert kept.rows >= 3 and f"{kept.rows} finished rows in `{kept.rows_path}`" in message
    assert f"{kept.samples} samples in `{kept.samples_path}`" in message and kept.samples == 3 * kept.rows
    assert f"{snap.out_dir} --budget-s 180 --resume`" in message
    at.button(key="calibrate.resume").click().run()
    again = at.session_state[state.RUN]
    assert again is not run and again.out_dir == run.out_dir and again.command[-1] == "--resume"
    while again.snapshot().done < 1 and time.monotonic() < deadline + RUN_WAIT_S:
        time.sleep(0.05)
    again.stop()
    assert again.wait(RUN_WAIT_S).status == runner.STOPPED
    assert state.kept(snap.out_dir).rows > kept.rows  # the resumed run appended to the same files


def test_cancel_before_anything_was_measured_names_no_file(tmp_path):
    run = start(tmp_path, "time.sleep(30)\n")
    run.stop()
    snap = run.wait(RUN_WAIT_S)
    assert snap.status == runner.STOPPED
    from app_pages._calibrate_panel import kept_message

    text, resumable = kept_message(snap)
    assert not resumable and "nothing was kept" in text and ".jsonl" not in text


def test_an_emulated_dtype_of_the_active_profile_is_said_plainly():
    p = copy.deepcopy(shipped_profiles()["cpu-reference"])
    p["name"], p["created_utc"] = "Slow-bf16 rig, calibrated 2026-11-30", "2026-11-30T10:00:00+00:00"
    p["environment"]["emulated"] = ["bf16"]
    p["environment"]["probe"] = {"cpu.bf16.gflops": 1.0, "cpu.fp32.gflops": 89.0}
    at = open_page()
    at.file_uploader(key=state.UPLOAD).upload("slow.json", json.dumps(p).encode(), "application/json").run()
    assert not at.exception
    n = sum(r["status"] == "ok" and r["device"] == "cpu" and r["dtype"] == "bf16" for r in p["measurements"])
    assert (f"bf16 is emulated on this CPU (probe: 1 GFLOP/s against 89 GFLOP/s in fp32): was measured at {n} "
            "small points only; plans in bf16 on this machine will be slow.") in [w.value for w in at.warning]
    assert "fp32 GEMMs reach" in headline(at)  # the headline quotes a dtype the machine runs natively


# ---------------------------------------------------------------- one number per quantity (issue 9, item 6)


def test_one_gemm_throughput_figure_in_headline_key_figures_caption_and_comparison():
    profile = shipped_profiles()["cpu-reference"]
    at = open_page("shipped:cpu-reference")
    bf16 = summary.gemm_throughput(profile)[0]
    figure = summary.tflops_text(bf16["tflops"])
    assert figure == "0.805"  # the fitted rate at the largest GEMM measured, not the plateau parameter (0.916)
    assert f"bf16 GEMMs reach {figure} TFLOP/s" in headline(at)
    assert {m.label: m.value for m in at.metric}["bf16 TFLOP/s"] == figure
    caption = next(c.value for c in at.caption if "GEMM throughput rises" in c.value)
    assert f"cpu/bf16 of {profile['name']}: {figure} TFLOP/s" in caption
    frame = charts.throughput_frame({"p": profile})
    line = frame[(frame["Kind"] == "fitted model") & (frame["Series"] == "cpu/bf16")]
    assert line.loc[line["FLOP"].idxmax(), "TFLOP/s"] == pytest.approx(bf16["tflops"], rel=1e-9)  # the line's end
    assert summary.compare_frame(profile, profile, "A", "B").set_index("Figure").loc["GEMM cpu/bf16", "A"] == \
        pytest.approx(bf16["tflops"])


def test_parameters_the_data_do_not_determine_are_marked_with_what_it_means():
    at = open_page("shipped:cpu-reference")
    fit = shipped_profiles()["cpu-reference"]["fits"]["compute"]["gemm"]["cpu/bf16"]
    params = next(d.value for d in at.dataframe if "± std err" in d.value.columns).set_index("Parameter")
    assert params.loc["x_half_flops", "Relative"] == "86,658%"
    assert params.loc["overhead_s", "Relative"] == "3,785%"
    for name in ("x_half_flops", "overhead_s", "hill_exponent"):
        assert params.loc[name, "Note"].startswith("not determined by the data")
    assert params.loc["achieved_tflops", "Note"] == "" and params.loc["mem_GBps", "Note"] == ""
    note = next(c.value for c in at.caption if c.value.startswith("Not determined by the data"))
    assert "overhead_s, x_half_flops, hill_exponent" in note
    assert f"held-out error {summary.fmt.plain(fit['mape_heldout_pct'])}% on its 4 largest points" in note
    assert summary.undetermined({"params": {"a_s": 1.0}, "stderr": {"a_s": 0.5}}) == []
    assert summary.undetermined({"params": {"a_s": 1.0}, "stderr": {"a_s": 0.0}}) == ["a_s"]  # no influence at all


# ---------------------------------------------------------------- progress by samples, plans over budget (issue 18, 9)

SAMPLING = f"""
    sys.path.insert(0, {str(ROOT)!r})
    from calibration.progress import Progress  # the CLI's own progress lines

    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(6, 0, jsonl=True)
    progress.emit("cpu: 4 local steps, samples interleaved", advance=False, stage="local")
    for warmed in (1, 2, 3, 4):
        progress.round("cpu", 4, {{"phase": "warmup", "round": 0, "points": 4, "points_done": 0, "samples": 0,
                                   "samples_planned": 0, "elapsed_s": 0.1, "eta_s": None, "warmed": warmed}})
    for n in (1, 2):  # two rounds stored, no point finished: no row yet
        with (out / "samples.jsonl").open("a") as f:
            for k in range(4):
                f.write(json.dumps({{"key": f"k{{k}}", "round": n, "times_s": [0.01]}}) + "\\n")
        progress.round("cpu", 4, {{"phase": "sampling", "round": n, "points": 4, "points_done": 0,
                                   "samples": 4 * n, "samples_planned": 40, "elapsed_s": n, "eta_s": 9.0,
                                   "warmed": 4}})
    time.sleep(60)
"""


def test_progress_counts_rounds_and_samples_before_the_first_step_finishes(tmp_path, monkeypatch):
    """The CLI's own Progress lines through the page: through the interleaved group no step finishes, so the bar
    moves by samples (the CLI bar's position) and says the round and the samples, not 'Step 0 of 6'."""
    script = fake(tmp_path, SAMPLING)
    monkeypatch.setattr(runner, "calibration_command", lambda out, **_: [sys.executable, str(script), str(out)])
    at = plan_then_start(tmp_path, monkeypatch)
    run = at.session_state[state.RUN]
    deadline = time.monotonic() + RUN_WAIT_S
    while run.snapshot().rounds.get("samples", 0) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    snap = run.snapshot()
    assert snap.done == 0 and snap.rounds["samples"] == 8 and snap.phase == "sampling" and snap.stage == "local"
    at.run()
    assert not at.exception
    bar = at.get("progress")[0]
    assert bar.value > 0  # 8 of 40 samples of a 4-step group: 0.8 of 6 steps
    assert bar.proto.text.startswith("Sampling on cpu, round 2: 8 of about 40 samples, 0 of 4 points finished")
    assert "~0:09 left at this pace · 0 of 6 steps finished" in bar.proto.text
    caption = next(c.value for c in at.caption if "samples go to" in c.value)
    assert caption.startswith("No rows yet; samples go to `")
    assert "samples.jsonl` after every round (8 so far)." in caption


def test_warm_up_is_said_while_it_lasts():
    snap = runner.Snapshot(status=runner.RUNNING, out_dir=Path("x"), command=(), done=0, total=265, step="",
                           failed_steps=0, elapsed_s=42.0, returncode=None, error=None, stderr_tail=(),
                           stdout_tail=(), profile=None, stage="local", phase="warmup", device="cpu",
                           rounds={"points": 96.0, "warmed": 22.0, "samples": 0.0, "samples_planned": 0.0})
    from app_pages._calibrate_panel import progress_text

    assert progress_text(snap, 243.0) == ("Warming up on cpu: 22 of 96 points, each run until steady before its "
                                          "samples are timed · 0 of 265 steps finished · 0:42 elapsed of ~4:03 "
                                          "predicted")


def _over_budget_plan() -> dict:
    smaller = {**PLAN, "predicted_s": 170.0, "points": 165, "skip": ["block_fwd_bwd"], "fits_budget": True,
               "quality_s": 45.0}
    raised = {**PLAN, "budget_s": 330.0, "predicted_s": 320.0, "points": 177, "fits_budget": True, "quality_s": 82.5}
    return {**PLAN, "predicted_s": 243.0, "quality_s": 45.0, "fits_budget": False,
            "advice": {"budget_s": 330.0, "budget_plan": raised, "leave_out": ["block_fwd_bwd"],
                       "leave_out_plan": smaller}}


def test_an_over_budget_plan_says_so_before_it_starts_and_offers_what_fits(tmp_path, monkeypatch):
    script = fake_preview(tmp_path, monkeypatch, _over_budget_plan())
    calls = tmp_path / "calls"
    script.write_text(f"open({str(calls)!r}, 'a').write('x')\n" + script.read_text())  # counts the probes
    started: list[dict] = []
    monkeypatch.setattr(slot, "start_run", lambda **kw: started.append(kw) or runner.CalibrationRun(
        tmp_path / "never", [sys.executable, "-c", "pass"], tmp_path).start())
    at = open_page()
    at.button(key="calibrate.plan").click().run()
    assert not at.exception
    warning = next(w.value for w in at.warning if "Over budget" in w.value)
    assert warning.startswith("**Over budget:** predicted 4:03 against a budget of 3:00, with every fit already at "
                              "its fewest points")
    assert ("Leaving out transformer block, forward and backward (`block_fwd_bwd`) fits the budget (predicted 2:50)"
            in warning and "Or allow 5:30 to measure every bench." in warning)
    assert at.button(key="calibrate.start").label == "Start anyway"
    at.button(key="calibrate.shrink").click().run()  # the smaller plan, from the same probe
    assert not at.exception and calls.read_text() == "x"
    text = " ".join(m.value for m in at.markdown)
    assert "predicted **2:50** (min:s) for a budget of 3:00 (the quality calibration's 0:45 included)" in text
    assert "Left out: transformer block, forward and backward (`block_fwd_bwd`)." in text
    assert not [w for w in at.warning if "Over budget" in w.value]
    assert at.button(key="calibrate.start").label == "Start calibration"
    at.button(key="calibrate.restore").click().run()  # back, then the other fix: a larger budget
    assert any("Over budget" in w.value for w in at.warning)
    at.button(key="calibrate.allow").click().run()
    assert at.number_input(key=state.BUDGET).value == 330.0 and not at.button(key="calibrate.start").disabled
    assert "predicted **5:20** (min:s) for a budget of 5:30" in " ".join(m.value for m in at.markdown)
    at.button(key="calibrate.restore").click().run()
    at.button(key="calibrate.shrink").click().run()
    at.button(key="calibrate.start").click().run()
    assert started == [{"budget_s": 180.0, "skip": ("block_fwd_bwd",), "force": False}] and calls.read_text() == "x"


def test_start_anyway_runs_an_over_budget_plan_with_force(tmp_path, monkeypatch):
    """The CLI refuses a plan over its budget; the page's "Start anyway" is the user's choice to run it: --force."""
    fake_preview(tmp_path, monkeypatch, _over_budget_plan())
    started: list[dict] = []
    monkeypatch.setattr(slot, "start_run", lambda **kw: started.append(kw) or runner.CalibrationRun(
        tmp_path / "never", [sys.executable, "-c", "pass"], tmp_path).start())
    at = open_page()
    at.button(key="calibrate.plan").click().run()
    assert at.button(key="calibrate.start").label == "Start anyway"
    at.button(key="calibrate.start").click().run()
    assert not at.exception and started == [{"budget_s": 180.0, "skip": (), "force": True}]
    command = runner.calibration_command(tmp_path, 180.0, force=True)
    from calibration.cli import _parser

    assert "--force" in command and _parser().parse_args(command[3:]).force
    assert "--force" not in runner.calibration_command(tmp_path, 180.0)


def test_the_page_plans_and_runs_with_the_clis_own_commands(tmp_path):
    """Planning on the page is the run's own planning (`--plan-only`), and a left-out bench reaches the run."""
    plan = runner.preview_command(120.0, ("block_fwd_bwd",))
    assert plan[1:] == ["-m", "calibration", "run", "--quick", "--plan-only", "--budget-s", "120", "--skip",
                        "block_fwd_bwd", "--progress", "jsonl"]
    run = runner.calibration_command(tmp_path, 120.0, skip=("block_fwd_bwd", "decode"))
    assert run[run.index("--skip") + 1] == "block_fwd_bwd,decode"
    from calibration.cli import _parser

    ns = _parser().parse_args(plan[3:])
    assert ns.plan_only and ns.skip == "block_fwd_bwd" and ns.budget_s == 120.0
