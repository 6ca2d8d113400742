"""Nothing measured is lost inside a torchrun batch: SIGKILL of a rank, or of the runner, while the interleaved
collectives of a two-rank launch are being sampled, keeps every sampling round stored before it; --resume
continues from those samples and ends with the same points as an uninterrupted run, each measured once.
Tiny grids; MODELFOLIO_CALIB_SLOW makes each collective sample sleep so the batch lasts a few seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_calibration_runner import REPO, _env

from calibration.rows import read_rows, read_samples, step_key

ARGS = ["--quick", "--no-profile", "--device", "cpu", "--nproc", "2", "--only", "all_reduce,broadcast"]


def _run(out: Path, log: Path, *extra: str, slow: str = "0") -> subprocess.Popen:
    with log.open("w") as err:
        return subprocess.Popen([sys.executable, "-m", "calibration", "run", *ARGS, "--out", str(out), *extra],
                                cwd=REPO, env=_env(MODELFOLIO_CALIB_SLOW=slow), stdout=subprocess.DEVNULL,
                                stderr=err, text=True)


def _two_rank_keys(samples: dict[str, list[float]]) -> list[str]:
    return [k for k in samples if json.loads(k)[3] == 2]


def _rank_pids(out: Path) -> list[int]:
    """The torchrun workers of this run (their command line names the launch spec in out/launch)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"calibration.dist_worker" in cmd and any(str(out).encode() in c for c in cmd):
            pids.append(int(proc.name))
    return pids


def _wait_for(cond, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.distributed
@pytest.mark.parametrize("victim", ["rank", "runner"])
def test_sigkill_inside_a_torchrun_batch_keeps_its_rounds_and_resume_completes(tmp_path, victim):
    ref = _run(tmp_path / "ref", tmp_path / "ref.log")  # uninterrupted, for comparison
    assert ref.wait(timeout=120) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    expected = {step_key(r) for r in read_rows(tmp_path / "ref" / "rows.jsonl") if r["status"] == "ok"}
    assert len(expected) == 8  # two sizes x two collectives x world sizes 1 and 2

    out = tmp_path / "run"
    samples_path, rows_path = out / "samples.jsonl", out / "rows.jsonl"
    proc = _run(out, tmp_path / "first.log", slow="0.25")
    _wait_for(lambda: bool(_two_rank_keys(read_samples(samples_path))))  # a two-rank round is stored
    if victim == "rank":
        pids = _rank_pids(out)
        assert pids, "the two-rank launch is running"
        os.kill(pids[-1], signal.SIGKILL)
        assert proc.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()[-3000:]
    else:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        _wait_for(lambda: not _rank_pids(out), 30.0)  # the launch dies with its runner
    kept = read_samples(samples_path)
    rows_before = read_rows(rows_path)
    partial = [k for k in _two_rank_keys(kept) if k not in {step_key(r) for r in rows_before if r["status"] == "ok"}]
    assert partial, "the kill came inside the batch: some two-rank points have samples but no row"

    resumed = _run(out, tmp_path / "resume.log", "--resume")
    assert resumed.wait(timeout=120) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    assert "continuing from" in (tmp_path / "resume.log").read_text()
    rows = read_rows(rows_path)
    assert rows[: len(rows_before)] == rows_before  # nothing written before is touched
    ok = Counter(step_key(r) for r in rows if r["status"] == "ok")
    assert set(ok) == expected and max(ok.values()) == 1, "the same points as uninterrupted, each measured once"
    failed = {step_key(r) for r in rows if r["status"] != "ok"}
    assert failed <= expected and all(r["status"] == "ok" for r in rows[len(rows_before):])
    by_key = {step_key(r): r for r in rows if r["status"] == "ok"}
    for key in partial:  # the samples stored before the kill open the row that --resume made
        assert by_key[key]["times_s"][: len(kept[key])] == pytest.approx(kept[key]), key
        assert by_key[key]["extra"]["resumed"] == len(kept[key])
