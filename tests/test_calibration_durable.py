"""Nothing measured is lost, and progress moves: the runner killed (SIGINT, SIGKILL) at a random moment inside
its first interleaved group, after at least one sampling round, then --resume.  Tiny grids, with the
MODELFOLIO_CALIB_SLOW hook making each group last about a second and a half."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_calibration_runner import REPO, _env, _progress

from calibration.rows import read_rows, read_samples, step_key

ONLY = "gemm,prefill,decode"  # six local points in the tiny grid, one interleaved group


def _start(out: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path, Path]:
    args = [sys.executable, "-m", "calibration", "run", "--quick", "--no-profile", "--device", "cpu",
            "--only", ONLY, "--out", str(out), "--progress", "jsonl", *extra]
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("w") as so, stderr.open("w") as se:
        proc = subprocess.Popen(args, cwd=REPO, env=_env(MODELFOLIO_CALIB_SLOW="0.03"), stdout=so, stderr=se,
                                text=True)
    return proc, stdout, stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_mid_group_keeps_every_sample_and_resume_completes(tmp_path, sig):
    out = tmp_path / "run"
    rows_path, samples_path = out / "rows.jsonl", out / "samples.jsonl"
    proc, stdout, stderr = _start(out, tmp_path)
    deadline = time.monotonic() + 60
    while not read_samples(samples_path) and time.monotonic() < deadline:  # the first round is stored
        time.sleep(0.01)
    assert read_samples(samples_path), stderr.read_text()[-3000:]
    time.sleep(random.uniform(0.0, 0.4))
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), stderr.read_text()[-3000:]

    kept = read_samples(samples_path)
    rows_before = read_rows(rows_path)
    # (Ctrl-C makes rows of the points that already had their minimum samples: all six may be rows by then)
    progress = _progress(stdout.read_text())
    rounds = [p for p in progress if p.get("phase") == "sampling"]
    assert rounds, "a round was reported before the kill"
    # no progress line claims more than what is stored: samples in samples.jsonl or in rows
    stored = sum(map(len, kept.values()))
    assert max(p["samples"] for p in rounds) <= stored
    assert max(p["done"] for p in progress) <= len(rows_before)
    assert all(p["points_done"] <= len(rows_before) for p in rounds)
    if sig == signal.SIGINT:  # every file the message names exists
        err = stderr.read_text()
        named = re.findall(r"(/\S+\.jsonl)", err)
        assert named and all(Path(n).exists() for n in named), err[-2000:]

    time.sleep(0.5)
    (tmp_path / "again").mkdir()
    resumed, stdout2, stderr2 = _start(out, tmp_path / "again", "--resume")
    resumed.wait(timeout=120)
    assert resumed.returncode == 0, stderr2.read_text()[-3000:]
    rows = read_rows(rows_path)
    assert rows[: len(rows_before)] == rows_before
    counts = Counter(step_key(r) for r in rows)
    assert len(counts) == 6 and max(counts.values()) == 1, "every point exactly once"
    assert all(r["status"] == "ok" for r in rows)
    by_key = {step_key(r): r for r in rows}
    for key, samples in kept.items():  # every sample stored before the kill is in its point's row
        times = Counter(by_key[key]["times_s"])
        assert not Counter(samples) - times, key
    assert len({r["run_id"] for r in rows}) == 1
    progress2 = _progress(stdout2.read_text())
    assert progress2[-1]["done"] == progress2[-1]["total"] == 6


def test_rows_and_samples_files_exist_from_the_start_and_progress_is_off_on_request(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "calibration", "run", "--quick", "--no-profile", "--device", "cpu",
                           "--only", "prefill", "--out", str(out), "--progress", "bar"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PROGRESS" not in done.stdout
    assert (out / "rows.jsonl").exists() and (out / "samples.jsonl").exists()
    assert read_samples(out / "samples.jsonl") and read_rows(out / "rows.jsonl")
    for line in (out / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert rec["times_s"] and rec["round"] >= 1
