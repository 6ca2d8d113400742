"""The runner end to end: torchrun launches, a two-node rendezvous on 127.0.0.1, kill and resume,
failure injection, progress lines, validate wiring.  Grids are shrunk with MODELFOLIO_CALIB_GRID=tiny."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from collections import Counter
from pathlib import Path

import pytest

from calibration.rows import Step, read_rows, step_key

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "MODELFOLIO_CALIB_GRID": "tiny", "PYTHONUNBUFFERED": "1"}
    env.pop("MODELFOLIO_CALIB_FAIL", None)
    env.update(extra)
    return env


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calibration", "run", "--quick", "--no-profile", *args],
                          cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _progress(stdout: str) -> list[dict]:
    return [json.loads(line[len("PROGRESS "):]) for line in stdout.splitlines() if line.startswith("PROGRESS ")]


@pytest.mark.distributed
def test_collective_sweep_under_torchrun_two_ranks(tmp_path):
    from calibration.bench.launch import launch

    steps = [Step(b, "cpu", "fp32", {"bytes": n}, 2) for b in ("all_reduce", "all_gather", "reduce_scatter", "broadcast")
             for n in (1024, 65536)]
    steps.append(Step("ps_push_pull", "cpu", "fp32", {"bytes": 65536, "servers": 1, "workers": 1}, 2))
    seen: list[dict] = []
    result = launch(steps, device="cpu", world_size=2, rows_path=tmp_path / "rows.jsonl", run_id="t", mode="tiny",
                    work_dir=tmp_path, on_done=seen.append)
    rows = read_rows(tmp_path / "rows.jsonl")
    assert result.rc == 0 and result.missing == 0, result.log_path.read_text()[-2000:]
    assert [step_key(r) for r in rows] == [s.key() for s in steps] and len(seen) == len(steps)
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["world_size"] == 2 and r["oversubscribed"] is False and r["median_s"] > 0
        assert r["extra"]["interleaved_with"] == len(steps) - 1 and r["extra"]["best_of"] == 3
    assert rows[-1]["extra"]["server_in_bytes"] == 65536


@pytest.mark.distributed
def test_a_collective_failing_on_setup_is_recorded_and_the_others_are_timed(tmp_path, monkeypatch):
    from calibration.bench.launch import launch

    monkeypatch.setenv("MODELFOLIO_CALIB_FAIL", "broadcast")
    steps = [Step(b, "cpu", "fp32", {"bytes": 4096}, 2) for b in ("all_reduce", "broadcast", "all_gather")]
    steps.append(Step("ddp_step", "cpu", "fp32", {"layers": 1, "hidden": 64, "seq": 16, "batch": 2,
                                                   "grad_bytes": 1}, 2))
    result = launch(steps, device="cpu", world_size=2, rows_path=tmp_path / "rows.jsonl", run_id="t", mode="tiny",
                    work_dir=tmp_path)
    rows = {r["bench"]: r for r in read_rows(tmp_path / "rows.jsonl")}
    assert result.rc == 0, result.log_path.read_text()[-2000:]
    assert rows["broadcast"]["status"] == "failed" and "injected" in rows["broadcast"]["error"]
    assert rows["all_reduce"]["status"] == rows["all_gather"]["status"] == rows["ddp_step"]["status"] == "ok"
    assert rows["all_reduce"]["extra"]["interleaved_with"] == 1  # the two that could be timed, together


@pytest.mark.distributed
def test_two_node_rendezvous_on_localhost(tmp_path):
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "calibration", "run", "--quick", "--no-profile", "--only", "all_reduce",
         "--nproc", "1", "--nnodes", "2", "--node-rank", str(k), "--rdzv-endpoint", f"127.0.0.1:{port}",
         "--rdzv-id", "pytest-two-node", "--out", str(tmp_path / f"node{k}")],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    for k, (p, (_, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, f"node {k}: {err[-2000:]}"
        rows = read_rows(tmp_path / f"node{k}" / "rows.jsonl")
        assert rows and all(r["status"] == "ok" and r["world_size"] == 2 for r in rows), rows


@pytest.mark.distributed
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_kill_then_resume_keeps_rows_and_skips_finished_steps(tmp_path, sig):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "calibration", "run", "--quick", "--no-profile", "--nproc", "1",
            "--only", "gemm,all_reduce,broadcast", "--out", str(out)]
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.Popen(args, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=err, text=True)
    rows_path = out / "rows.jsonl"
    deadline = time.monotonic() + 60
    while len(read_rows(rows_path)) < 4 and time.monotonic() < deadline:  # the 4 GEMMs, then torchrun starts
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), log.read_text()[-3000:]
    before = read_rows(rows_path)
    assert len(before) >= 4 and all(r["status"] == "ok" for r in before)
    time.sleep(2.0)  # nothing left running may keep writing
    assert read_rows(rows_path) == before
    lines = rows_path.read_text().splitlines()
    assert all(json.loads(line) for line in lines[:-1])

    done = _cli("--nproc", "1", "--only", "gemm,all_reduce,broadcast", "--out", str(out), "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_rows(rows_path)
    counts = Counter(step_key(r) for r in rows)
    assert max(counts.values()) == 1, "a finished step was measured twice"
    assert Counter(r["bench"] for r in rows) == {"gemm": 4, "all_reduce": 2, "broadcast": 2}
    assert all(r["status"] == "ok" for r in rows)
    assert len({r["run_id"] for r in rows}) == 1


def test_failing_bench_is_recorded_and_the_rest_go_on_then_resume_retries_it(tmp_path):
    out = tmp_path / "run"
    first = _cli("--only", "gemm,prefill,decode", "--out", str(out), MODELFOLIO_CALIB_FAIL="gemm")
    assert first.returncode == 0, first.stderr[-2000:]
    rows = read_rows(out / "rows.jsonl")
    assert {r["status"] for r in rows if r["bench"] == "gemm"} == {"failed"}
    assert all("injected" in r["error"] for r in rows if r["bench"] == "gemm")
    assert {r["status"] for r in rows if r["bench"] != "gemm"} == {"ok"}
    progress = _progress(first.stdout)
    assert progress[-1]["done"] == progress[-1]["total"] == len(rows)

    again = _cli("--only", "gemm,prefill,decode", "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    rows2 = read_rows(out / "rows.jsonl")
    assert rows2[: len(rows)] == rows
    new = rows2[len(rows):]
    assert new and {r["bench"] for r in new} == {"gemm"} and {r["status"] for r in new} == {"ok"}


def test_existing_rows_without_resume_are_refused(tmp_path):
    out = tmp_path / "run"
    assert _cli("--only", "prefill", "--out", str(out)).returncode == 0
    refused = _cli("--only", "prefill", "--out", str(out))
    assert refused.returncode == 2 and "--resume" in refused.stderr


def test_unknown_bench_is_refused_with_the_list():
    from calibration.cli import main

    assert main(["run", "--quick", "--only", "gemm,warp_drive"]) == 2


def test_validate_dispatches_to_the_fitting_half(monkeypatch):
    from calibration.cli import main

    seen: list[list[str]] = []
    fake = types.ModuleType("calibration.validate")
    fake.main = lambda argv: seen.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "calibration.validate", fake)
    assert main(["validate", "runs/x/profile.json", "--holdout", "largest"]) == 0
    assert seen == [["runs/x/profile.json", "--holdout", "largest"]]


@pytest.mark.distributed
def test_remeasure_reruns_exactly_the_given_points():
    from calibration.bench.registry import remeasure
    from calibration.rows import make_row

    points = [make_row(Step("gemm", "cpu", "fp32", {"m": 32, "n": 32, "k": 32}), run_id="old", times_s=[1.0]),
              make_row(Step("all_reduce", "cpu", "fp32", {"bytes": 4096}, 2), run_id="old", times_s=[1.0])]
    fresh = remeasure(points, nproc=2, mode="tiny")
    assert [step_key(r) for r in fresh] == [step_key(p) for p in points]
    assert all(r["status"] == "ok" and r["run_id"] != "old" and r["median_s"] < 1.0 for r in fresh), fresh
