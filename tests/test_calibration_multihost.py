"""Calibration across test hosts: network namespaces joined by veth links through a bridge (benchmarks/testhosts.py),
which share the machine's hostname, so the hostname resolves to none of their addresses (the multi-homed node,
the container, the cloud VM). Runs where root and `ip netns` are available; skips with the reason elsewhere."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.testhosts import available, test_hosts
from calibration.rows import read_rows

REPO = Path(__file__).resolve().parents[1]
WHY_NOT = available()
pytestmark = [pytest.mark.distributed, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_readmes_multi_node_command_works_across_two_test_hosts(tmp_path):
    """Node 0 hosts the rendezvous though its hostname is not its address, every node's collectives use the
    interface that routes to node 0, and every all-reduce across the hosts is measured (before: the rendezvous
    waited on a store nobody hosted, then the workers dialled `localhost` for the master)."""
    env = {**os.environ, "MODELFOLIO_CALIB_GRID": "tiny", "PYTHONUNBUFFERED": "1"}
    env.pop("MODELFOLIO_CALIB_FAIL", None)
    with test_hosts(2, rate_mbit=1000) as hosts:
        port = _free_port()
        procs = [hosts.popen(k, [sys.executable, "-m", "calibration", "run", "--quick", "--no-profile", "--only",
                                 "all_reduce", "--nproc", "1", "--nnodes", "2", "--node-rank", str(k),
                                 "--rdzv-endpoint", f"{hosts.addr(0)}:{port}", "--rdzv-id", "pytest-hosts",
                                 "--out", str(tmp_path / f"node{k}")],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in (0, 1)]
        outs = [p.communicate(timeout=240) for p in procs]
    for k, (p, (_, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, f"host {k}: {err[-3000:]}"
        rows = read_rows(tmp_path / f"node{k}" / "rows.jsonl")
        assert rows and all(r["status"] == "ok" and r["world_size"] == 2 for r in rows), rows
        log = next((tmp_path / f"node{k}" / "launch").glob("*.log")).read_text()
        assert f"--local-addr={hosts.addr(k)}" in log and f"is_host={'true' if k == 0 else 'false'}" in log
    assert not [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                if ns.startswith(f"mfh{hosts.tag}-")]  # torn down


def test_test_hosts_are_torn_down_when_the_block_fails():
    with pytest.raises(RuntimeError, match="inside"), test_hosts(2) as hosts:
        assert subprocess.run(["ip", "netns", "exec", hosts.netns(1), "ip", "-o", "addr"], capture_output=True,
                              text=True).stdout.count(hosts.addr(1)) == 1
        raise RuntimeError("a step failed inside")
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert hosts.netns(0) not in names and hosts.netns(1) not in names
    assert subprocess.run(["ip", "link", "show", hosts.bridge], capture_output=True).returncode != 0
