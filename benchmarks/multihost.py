"""Benchmark: does calibration recover a network whose rate we imposed? Two test hosts (benchmarks/testhosts.py:
network namespaces behind a bridge, each host's sending rate capped with tc tbf) run the README's multi-node
command, `python -m calibration run --quick --only <collectives> --nproc 1 --nnodes 2 ...`, one rank per host; node
0's profile fits each collective (alpha-beta, bus bandwidth as nccl-tests defines it: busbw = algbw × c(n), c = 1
for a 2-rank all-reduce); the table sets the fitted bus bandwidth against the imposed rate (Mbit/s ÷ 8 = MB/s)
and says whether it is within 10%. With one link slower than the other, the ring runs at the slower: the fit should
find it as the bottleneck.

Run as root: `python -m benchmarks.multihost [--settings 200,1000,1000:200] [--ops all_reduce,all_gather]`
(a setting is one rate for both hosts, or host0:host1; 0: unshaped, the veth links as they are, so the CPU limits).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.testhosts import TestHosts, available, run_each, skipped, test_hosts

REPO = Path(__file__).resolve().parents[1]
OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast")
TARGET = 0.10  # fitted bus bandwidth within 10% of the imposed rate (issue 22)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_env() -> dict[str, str]:
    """This environment without calibration's test hooks (a real grid, nothing made to fail or look slow)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for var in ("MODELFOLIO_CALIB_GRID", "MODELFOLIO_CALIB_FAIL", "MODELFOLIO_PROBE_SLOW_DTYPE",
                "MODELFOLIO_CALIB_SLOW"):
        env.pop(var, None)
    return env


def node_command(hosts: TestHosts, k: int, ops: tuple[str, ...], port: int, out: Path, *extra: str) -> list[str]:
    """The README's multi-node calibration command for test host k, one rank per host, rendezvous on host 0."""
    return [sys.executable, "-m", "calibration", "run", "--quick", "--only", ",".join(ops), "--nproc", "1",
            "--nnodes", str(hosts.n), "--node-rank", str(k), "--rdzv-endpoint", f"{hosts.addr(0)}:{port}",
            "--rdzv-id", f"bench-{port}", "--out", str(out), *extra]


def fitted_collectives(run_dir: Path, ops: tuple[str, ...]) -> dict[str, Any]:
    """The profile's alpha-beta fit of each collective at world size 2 (bus bandwidth in MB/s, alpha in µs)."""
    fits: dict[str, Any] = {}
    profile = run_dir / "profile.json"
    if profile.exists():
        collectives = json.loads(profile.read_text()).get("fits", {}).get("collectives", {})
        for op in ops:
            fit = collectives.get(op, {}).get("by_world", {}).get("2", {})
            if fit.get("status") == "ok":
                fits[op] = {"busbw_MBps": 1000.0 * fit["params"]["busbw_GBps"],
                            "alpha_us": 1e6 * fit["params"]["alpha_s"], "model": fit.get("model"),
                            "heldout_mape_pct": fit.get("mape_heldout_pct")}
    return fits


def run_setting(rates_mbit: tuple[float, float], ops: tuple[str, ...], work: Path) -> dict[str, Any]:
    """Both hosts' calibration runs at these rates; node 0's fitted collectives at world size 2."""
    env = bench_env()
    t0 = time.perf_counter()
    with test_hosts(2) as hosts:
        for i, rate in enumerate(rates_mbit):
            if rate > 0:  # 0: the link as it is (veth: the CPU is the limit)
                hosts.shape(i, rate)
        port = free_port()
        procs = [hosts.popen(k, node_command(hosts, k, ops, port, work / f"node{k}", "--progress", "bar"),
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in (0, 1)]
        outs = [p.communicate(timeout=1800) for p in procs]
    rcs = [p.returncode for p in procs]
    return {"rates_mbit": list(rates_mbit), "rc": rcs, "wall_s": round(time.perf_counter() - t0, 1),
            "fits": fitted_collectives(work / "node0", ops),
            "stderr_tail": [o[1][-400:] for o in outs] if any(rcs) else None}


def bottleneck_MBps(op: str, rates_mbit: list[float]) -> float:
    """The imposed rate that limits `op` with 2 ranks, in MB/s (0 where nothing was imposed): a broadcast from rank
    0 only sends from host 0; the other collectives send both ways, so the slower host's rate limits them."""
    if any(x <= 0 for x in rates_mbit):
        return 0.0
    return (rates_mbit[0] if op == "broadcast" else min(rates_mbit)) / 8.0


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| imposed (host 0 / host 1, Mbit/s) | bottleneck MB/s | op | fitted busbw MB/s | error | within 10% | "
             "alpha µs | held-out MAPE % |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        rates = " / ".join(f"{x:g}" if x > 0 else "unshaped" for x in r["rates_mbit"])
        if not r["fits"]:
            lines.append(f"| {rates} | | (no fit: exit {r['rc']}) | | | | | |")
        for op, f in r["fits"].items():
            limit = bottleneck_MBps(op, r["rates_mbit"])
            err = f["busbw_MBps"] / limit - 1.0 if limit else float("nan")
            ok = "yes" if abs(err) <= TARGET else ("no" if limit else "-")
            lines.append(f"| {rates} | {limit:.1f} | {op} | {f['busbw_MBps']:.1f} | {err:+.1%} | {ok} | "
                         f"{f['alpha_us']:.0f} | {f['heldout_mape_pct']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="200,1000,1000:200",
                    help="comma-separated rates in Mbit/s, one for both hosts or host0:host1")
    ap.add_argument("--ops", default=",".join(OPS), help="collectives to run and fit")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    ns = ap.parse_args(argv)
    if skipped(available()):
        return 2
    settings = [tuple(float(x) for x in (s.split(":") if ":" in s else (s, s))) for s in ns.settings.split(",")]
    ops = tuple(ns.ops.split(","))
    results = run_each(settings, lambda rates, work: run_setting((rates[0], rates[1]), ops, work),
                       "modelfolio-multihost-", ns.keep)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
