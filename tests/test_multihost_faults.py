"""A fault across test hosts (benchmarks/multihost_faults.py on the tiny grid): node 1's torchrun worker killed
with SIGKILL while the two hosts' collectives run. Each node records a failure that names node 1 by rank and
address and says what happened, both exit within seconds, the rounds stored before the kill are kept, and the same
command plus --resume completes the run from them, each point measured once. Runs where root and `ip netns` are
available; skips with the reason elsewhere."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from benchmarks.multihost_faults import run_fault
from benchmarks.testhosts import available
from calibration.rows import read_rows, step_key

WHY_NOT = available()
pytestmark = [pytest.mark.distributed, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]


def test_kill_9_of_node_1s_worker_is_named_and_resume_completes_the_run(tmp_path):
    env = {**os.environ, "MODELFOLIO_CALIB_GRID": "tiny", "MODELFOLIO_CALIB_SLOW": "0.3", "PYTHONUNBUFFERED": "1"}
    env.pop("MODELFOLIO_CALIB_FAIL", None)
    r = run_fault("kill-worker", ("all_reduce",), 1000.0, 1, tmp_path, env=env)

    assert [e["rc"] for e in r["exits"]] == [1, 1], r  # every distributed step failed: exit 1, not a hang
    assert all(e["after_s"] < 30 for e in r["exits"]), r["exits"]
    node0, node1 = (k["message"] for k in r["kept"])
    assert node0.startswith("peer died: node 1 (10.77.0.2), rank "), node0
    assert "seen by node 0 (10.77.0.1)" in node0 and "by peer" in node0, node0
    assert node1.startswith("worker died: node 1 (10.77.0.2): its worker, rank ") and "SIGKILL" in node1, node1
    assert r["kept"][0]["samples"] > 0, "the rounds stored before the kill are kept"

    assert [e["rc"] for e in r["resume_exits"]] == [0, 0], (tmp_path / "node0.resume.log").read_text()[-3000:]
    for k, res in enumerate(r["resume"]):
        assert res["complete"] and res["steps_run"] == res["planned"] > 0, res
        assert res["samples_reused"] > 0, res  # continued from the stored rounds, not measured again
        rows = read_rows(tmp_path / f"node{k}" / "rows.jsonl")
        ok = Counter(step_key(r) for r in rows if r["status"] == "ok")
        assert len(ok) == res["planned"] and max(ok.values()) == 1, "each point measured once"
