"""The runner end to end: torchrun launches, a two-node rendezvous on 127.0.0.1, kill and resume,
failure injection, progress lines, validate wiring.  Grids are shrunk with MODELFOLIO_CALIB_GRID=tiny."""

from __future__ import annotations

import errno
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

from calibration.rows import DISTRIBUTED_BENCHES, Step, read_rows, step_key
from calibration.run_config import RunConfig

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


# ---------------------------------------------------------------- bounded work: one run per folder, full disks, ranks


def _fake_benches(monkeypatch, tmp_path) -> RunConfig:
    """`runner.run` in this process with the local benches faked (no torch timing): each step's row at once."""
    import calibration.bench.registry as registry
    import calibration.env as env
    from calibration import run_plan, runner
    from calibration.rows import make_row

    def execute(steps, cfg, run_id, on_row, *durable):
        for step in steps:
            on_row(make_row(step, run_id=run_id, times_s=[1e-3, 2e-3, 3e-3]))

    monkeypatch.setenv("MODELFOLIO_CALIB_GRID", "tiny")
    monkeypatch.setattr(env, "capture_env", lambda: {"cpu_model": "Test CPU"})
    monkeypatch.setattr(registry, "set_run_threads", lambda: None)
    monkeypatch.setattr(registry, "execute_interleaved", execute)
    monkeypatch.setattr(runner, "_execute_durable", execute)
    monkeypatch.setattr(run_plan, "resolve_devices", lambda device: ["cpu"])
    return RunConfig(mode="quick", out=tmp_path / "run", only=frozenset({"gemm"}), device="cpu",
                     write_profile=False)


def test_a_second_run_on_the_same_folder_is_refused_naming_the_first(tmp_path, monkeypatch, capsys):
    from calibration import runner
    from calibration.run_lock import acquire_lock

    cfg = _fake_benches(monkeypatch, tmp_path)
    held = acquire_lock(cfg.out)
    try:
        assert runner.run(cfg) == 2
        err = capsys.readouterr().err
        assert f"pid {os.getpid()}" in err and "started 20" in err and "run.lock" in err, err
        assert not (cfg.out / "rows.jsonl").exists()
        other = _cli("--only", "gemm", "--out", str(cfg.out))  # another process: the same answer
        assert other.returncode == 2 and f"pid {os.getpid()}" in other.stderr, other.stderr[-2000:]
    finally:
        held.release()
    assert not (cfg.out / "run.lock").exists()
    assert runner.run(cfg) == 0
    assert read_rows(cfg.out / "rows.jsonl") and not (cfg.out / "run.lock").exists()


def test_a_stale_lock_of_a_dead_run_is_taken_over_with_a_note(tmp_path, monkeypatch, capsys):
    from calibration import runner

    cfg = _fake_benches(monkeypatch, tmp_path)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    cfg.out.mkdir(parents=True)
    (cfg.out / "run.lock").write_text(json.dumps({"pid": dead, "host": socket.gethostname(),
                                                   "started_utc": "2026-01-02T03:04:05+00:00"}))
    assert runner.run(cfg) == 0
    err = capsys.readouterr().err
    assert "note: took over the lock" in err and f"pid {dead}" in err and "2026-01-02T03:04:05" in err, err
    assert read_rows(cfg.out / "rows.jsonl") and not (cfg.out / "run.lock").exists()


def test_a_full_disk_stops_the_run_cleanly_and_keeps_what_was_written(tmp_path, monkeypatch, capsys):
    from calibration import runner

    cfg = _fake_benches(monkeypatch, tmp_path)
    rows_path = cfg.out / "rows.jsonl"
    real_write, appended = os.write, []

    def full_disk(fd: int, data: bytes) -> int:  # the third row finds the disk full
        if Path(f"/proc/self/fd/{fd}").readlink() == rows_path.resolve():
            if len(appended) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            appended.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    assert runner.run(cfg) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and f"kept in {rows_path}" in err and "--resume" in err, err
    assert "Traceback" not in err
    assert len(read_rows(rows_path)) == 2  # the rows before the failure, intact
    meta = json.loads((cfg.out / "run.json").read_text())
    assert meta["write_error"]["errno"] == errno.ENOSPC and meta["write_error"]["file"] == str(rows_path)
    assert not (cfg.out / "run.lock").exists()
    monkeypatch.setattr(os, "write", real_write)  # space freed: --resume measures the rest, nothing twice
    assert runner.run(RunConfig(**{**cfg.__dict__, "resume": True})) == 0
    rows = read_rows(rows_path)
    assert len(rows) > 2 and max(Counter(step_key(r) for r in rows).values()) == 1


def test_launch_files_are_named_per_run(tmp_path, monkeypatch):
    from calibration.bench import launch as launch_module

    monkeypatch.setattr(launch_module, "_run_and_follow", lambda *args, **kwargs: launch_module._Followed(0, False))
    steps = [Step("all_reduce", "cpu", "fp32", {"bytes": 1024}, 2)]
    for run_id in ("20261128T194529-ea6a96", "../odd id"):
        launch_module.launch(steps, device="cpu", world_size=2, rows_path=tmp_path / "rows.jsonl", run_id=run_id,
                             mode="tiny", work_dir=tmp_path / "launch")
    assert sorted(p.name for p in (tmp_path / "launch").iterdir()) == [
        "launch_.._odd_id_cpu_ws2_0.json", "launch_.._odd_id_cpu_ws2_0.log",
        "launch_20261128T194529-ea6a96_cpu_ws2_0.json", "launch_20261128T194529-ea6a96_cpu_ws2_0.log"]


def test_validate_caps_ranks_at_this_machine_unless_nproc_is_given(tmp_path, monkeypatch, capsys):
    from calibration import validate
    from simulator.devices import PROFILE_DIR

    profile = json.loads((PROFILE_DIR / "cpu-reference.json").read_text())
    for row in profile["measurements"]:  # an untrusted profile asks for 4,096 ranks
        if row["bench"] in DISTRIBUTED_BENCHES and row.get("world_size") == 2:
            row["world_size"] = 4096
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    seen: list[tuple[int, int | None]] = []

    def fake_remeasure(rows, nproc=None):
        seen.append((max(r.get("world_size", 1) for r in rows), nproc))
        return rows

    monkeypatch.setattr(validate, "_load_remeasure", lambda: fake_remeasure)
    monkeypatch.setattr(validate, "_available_cpus", lambda: 2)
    monkeypatch.setattr(validate, "_visible_gpus", lambda: 0)
    assert validate.main([str(path), "--context", "heldout"]) == 0
    out = capsys.readouterr()
    assert seen == [(1, None)], seen  # nothing over 2 ranks was handed to the launcher
    assert "ask for up to 4,096 ranks" in out.err and "2 CPUs" in out.err and "--nproc" in out.err, out.err
    assert "re-measure skipped: world_size 4096 > the 2 CPUs here" in out.out
    seen.clear()
    assert validate.main([str(path), "--nproc", "4096", "--context", "heldout"]) == 0  # the user's choice
    assert seen == [(4096, 4096)] and "ask for up to" not in capsys.readouterr().err
    assert validate.main([str(path), "--nproc", "0"]) == 2
    assert "--nproc 0" in capsys.readouterr().err


def test_progress_lines_carry_the_stage_and_the_bars_position_through_a_group(capsys):
    """Through an interleaved group no step finishes until its samples are in: the lines carry the bar's position
    (`steps_done`, moved by samples) and the stage, so a watcher (the Calibrate page) can show more than 0 steps."""
    from calibration.progress import Progress

    progress = Progress(10, 0, jsonl=True)
    progress.emit("cpu: 4 local steps, samples interleaved", advance=False, stage="local")
    progress.round("cpu", 4, {"phase": "sampling", "round": 3, "points": 4, "points_done": 0, "samples": 30,
                              "samples_planned": 60, "elapsed_s": 3.0, "eta_s": 3.0})
    progress.emit("gemm cpu fp32 ws=1 m=32", "ok")  # a point finishes: the bar does not go back
    progress.note("quality: digits fold 1/3: 40 variants in 5.1 s", "quality")
    progress.close()
    lines = _progress(capsys.readouterr().out)
    assert [p["stage"] for p in lines] == ["local", "local", "local", "quality"]
    assert [p["steps_done"] for p in lines] == [0, 2.0, 2.0, 2.0] and [p["done"] for p in lines] == [0, 0, 1, 1]
    assert lines[1]["samples"] == 30 and lines[1]["phase"] == "sampling" and lines[1]["device"] == "cpu"
    assert lines[3]["step"].startswith("quality: digits fold 1/3")


@pytest.mark.distributed
def test_a_run_whose_every_distributed_step_failed_exits_non_zero_with_the_first_cause(tmp_path):
    """Every collective failed (here injected; on real clusters a rendezvous that never formed, an interface the
    ranks cannot use): the run no longer exits 0 as if it had measured them, and says the first failure's cause."""
    done = _cli("--nproc", "1", "--only", "gemm,all_reduce,broadcast", "--out", str(tmp_path / "run"),
                MODELFOLIO_CALIB_FAIL="all_reduce,broadcast")
    assert done.returncode == 1, done.stderr[-2000:]
    line = next(x for x in done.stderr.splitlines() if x.startswith("error: every distributed step"))
    assert "the first failure: " in line and "injected failure" in line
    rows = read_rows(tmp_path / "run" / "rows.jsonl")
    assert {r["bench"] for r in rows if r["status"] == "ok"} == {"gemm"}  # what was measured is kept


def test_node_0_hosts_the_rendezvous_whatever_its_hostname_and_every_node_uses_the_routed_interface():
    from calibration.bench.launch import IFNAME_VARS, Rendezvous, interface_env, route_interface

    host, other = Rendezvous(2, 0, "10.0.0.1:29400", "job"), Rendezvous(2, 1, "10.0.0.1:29400", "job")
    assert host.args(0)[-1] == "--rdzv-conf=join_timeout=900,is_host=true"
    assert other.args(3)[-1] == "--rdzv-conf=join_timeout=900,is_host=false"
    assert "--rdzv-endpoint=10.0.0.1:29403" in other.args(3) and "--rdzv-id=job-3" in other.args(3)
    named = Rendezvous(2, 1, "10.0.0.1:29400", "job", ifname="ib0")
    assert interface_env(named, {}) == dict.fromkeys(IFNAME_VARS, "ib0")
    assert interface_env(named, {"GLOO_SOCKET_IFNAME": "eth1"}) == {"NCCL_SOCKET_IFNAME": "ib0"}  # the user's stays
    assert interface_env(None, {}) == {}  # one node: nothing to choose
    with pytest.raises(ValueError, match="HOST:PORT"):
        Rendezvous(2, 0, "10.0.0.1", "job").args(0)
    import shutil

    if shutil.which("ip"):
        assert route_interface("127.0.0.1") == "lo"
        assert interface_env(Rendezvous(2, 0, "127.0.0.1:29400", "job"), {}) == dict.fromkeys(IFNAME_VARS, "lo")
    assert route_interface("no-such-host.invalid") is None


def test_every_distributed_step_failed_names_the_first_cause_and_only_then():
    from calibration.runner import every_distributed_step_failed

    def row(bench, status, t, error=None, run="r"):
        return {"bench": bench, "status": status, "t_unix": t, "error": error, "run_id": run}

    failed = [row("gemm", "ok", 1), row("all_reduce", "failed", 3, "rc=1\n  Connection refused"),
              row("broadcast", "failed", 2, "timed out after 60 s")]
    assert every_distributed_step_failed(failed, "r") == "timed out after 60 s"
    assert every_distributed_step_failed([*failed, row("all_gather", "ok", 4)], "r") is None
    assert every_distributed_step_failed([row("gemm", "failed", 1, "x")], "r") is None  # no distributed steps
    assert every_distributed_step_failed(failed, "another run") is None
