"""Benchmark: faults across test hosts (issue 22, part 5). Two test hosts (benchmarks/testhosts.py), each sending
at `--rate` Mbit/s, run the README's multi-node calibration command (benchmarks/multihost.node_command) and one
fault is injected per try, on node 1:

  kill-worker  its torchrun worker killed (SIGKILL) once node 0 stored `--after-rounds` sampling rounds
  kill-group   its whole launch, torchrun and worker (their process groups), killed likewise
  cut          its link cut likewise (the bridge's end set down: a pulled cable), mended once both nodes exited
  straggler    its link slowed to `--slow` Mbit/s for the whole run, set against an unslowed run

For each: when the fault came (seconds into the run), each node's exit status and seconds from the fault to its
exit, the failure each node recorded, what was kept (ok rows, stored samples), and whether the same command plus
--resume, the fault removed, completed the run (how many steps it ran, how many of their samples it reused). The
straggler's second table sets each collective's fitted bus bandwidth and per-size times against the unslowed
run's: the ring runs at the slow link.

Run as root: `python -m benchmarks.multihost_faults [--faults kill-worker,kill-group,cut,straggler]
[--ops all_reduce,broadcast] [--rate 1000] [--slow 100] [--keep DIR]`; one JSON line per try, then the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.multihost import REPO, bench_env, fitted_collectives, free_port, node_command
from benchmarks.testhosts import TestHosts, available, run_each, skipped, test_hosts
from calibration.rows import read_rows, read_samples, step_key

FAULTS = ("kill-worker", "kill-group", "cut", "straggler")
EXIT_LIMIT_S = 900.0  # a node still running this long after the fault counts as hung (and is killed)
BANDWIDTH_BOUND_BYTES = 1 << 20  # sizes from 1 MiB on: the per-size slowdown is read where the link limits


def start(hosts: TestHosts, ops: tuple[str, ...], port: int, work: Path, label: str, *extra: str,
          env: dict[str, str] | None = None) -> list[subprocess.Popen]:
    """Every host's calibration run into work/node{k}, its output in work/node{k}.{label}.log."""
    procs = []
    for k in range(hosts.n):
        with (work / f"node{k}.{label}.log").open("w") as log:
            procs.append(hosts.popen(k, node_command(hosts, k, ops, port, work / f"node{k}", *extra), cwd=REPO,
                                     env=env or bench_env(), stdout=log, stderr=subprocess.STDOUT))
    return procs


def stored_rounds(run_dir: Path) -> int:
    """Sampling rounds a run stored so far (samples.jsonl holds a line per point per round)."""
    path = run_dir / "samples.jsonl"
    if not path.exists():
        return 0
    rounds = set()
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            rounds.add((rec.get("launch"), rec.get("round")))
    return len(rounds)


def wait_for_rounds(run_dir: Path, rounds: int, procs: list[subprocess.Popen], limit_s: float = 600.0) -> None:
    deadline = time.monotonic() + limit_s
    while stored_rounds(run_dir) < rounds:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"{run_dir} stored {stored_rounds(run_dir)} of {rounds} rounds, then the run "
                               f"{'ended' if any(p.poll() is not None for p in procs) else 'stalled'}")
        time.sleep(0.1)


def worker_pids(run_dir: Path, torchrun: bool = False) -> list[int]:
    """The torchrun workers of the run in `run_dir` (their command line names its launch spec), or with `torchrun`
    the torchrun processes that started them (whose command line names it too)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"calibration.dist_worker" in cmd and (b"torch.distributed.run" in cmd) == torchrun
                and any(str(run_dir).encode() in c for c in cmd)):
            pids.append(int(proc.name))
    return pids


def inject(fault: str, hosts: TestHosts, run_dir: Path) -> None:
    """The fault, on host 1 (whose run is in `run_dir`)."""
    if fault == "cut":
        hosts.link(1, up=False)
        return
    pids = worker_pids(run_dir)
    if not pids:
        raise RuntimeError(f"no torchrun worker of {run_dir} is running")
    if fault == "kill-worker":
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    else:  # kill-group: the launch's process group (calibration starts torchrun in a session of its own) and the
        #    workers' (torchrun starts each in a session of its own), at once
        for group in {os.getpgid(pid) for pid in [*worker_pids(run_dir, torchrun=True), *pids]}:
            os.killpg(group, signal.SIGKILL)


def wait_exits(procs: list[subprocess.Popen], since: float, limit_s: float = EXIT_LIMIT_S) -> list[dict[str, Any]]:
    """Each node's exit status and seconds from `since` (time.monotonic) to its exit; a node still running after
    `limit_s` is killed and reported hung."""
    ends: dict[int, dict[str, Any]] = {}
    while len(ends) < len(procs):
        for k, p in enumerate(procs):
            if k not in ends and p.poll() is not None:
                ends[k] = {"rc": p.returncode, "after_s": round(time.monotonic() - since, 1)}
        if time.monotonic() - since > limit_s:
            for k, p in enumerate(procs):
                if k not in ends:
                    p.kill()
                    p.wait()
                    ends[k] = {"rc": None, "after_s": None, "hung": True}
        time.sleep(0.1)
    return [ends[k] for k in range(len(procs))]


def recorded(run_dir: Path) -> dict[str, Any]:
    """What a node's folder holds: ok rows, stored samples, and the first failure's cause."""
    rows = read_rows(run_dir / "rows.jsonl")
    failed = [r for r in rows if r["status"] == "failed"]
    first = " ".join(str(min(failed, key=lambda r: r["t_unix"])["error"]).split()) if failed else None
    return {"ok_rows": sum(r["status"] == "ok" for r in rows), "failed_rows": len(failed),
            "samples": sum(map(len, read_samples(run_dir / "samples.jsonl").values())),
            "message": first.split("; log launch_")[0] if first else None}


def resumed(run_dir: Path, log: Path, since_unix: float) -> dict[str, Any]:
    """What --resume did in a node's folder: the steps it ran (its own count), the samples it reused from the
    broken run and took anew, and whether every planned step now has an ok row."""
    ran = re.search(r"(\d+) of (\d+) steps to run", log.read_text(errors="replace"))
    rows = read_rows(run_dir / "rows.jsonl")
    new = [r for r in rows if r["status"] == "ok" and float(r["t_unix"]) >= since_unix]
    reused = sum(int(r["extra"].get("resumed") or 0) for r in new)
    ok_keys = {step_key(r) for r in rows if r["status"] == "ok"}
    return {"steps_run": int(ran.group(1)) if ran else None, "planned": int(ran.group(2)) if ran else None,
            "samples_reused": reused, "samples_new": sum(len(r["times_s"]) for r in new) - reused,
            "complete": bool(ran) and len(ok_keys) == int(ran.group(2))}


@contextlib.contextmanager
def reaped() -> Iterator[list[subprocess.Popen]]:
    """A list to put started runs in; those still running when the block ends (an error, Ctrl-C) are killed
    before the test hosts go."""
    procs: list[subprocess.Popen] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def run_fault(fault: str, ops: tuple[str, ...], rate_mbit: float, after_rounds: int, work: Path,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """One fault on node 1 mid-run, then --resume on both nodes with the fault removed."""
    t0 = time.monotonic()
    with test_hosts(2, rate_mbit=rate_mbit) as hosts, reaped() as procs:
        port = free_port()
        procs += start(hosts, ops, port, work, "first", env=env)
        wait_for_rounds(work / "node0", after_rounds, procs)
        fault_at = time.monotonic()
        inject(fault, hosts, work / "node1")
        exits = wait_exits(procs, fault_at)
        kept = [recorded(work / f"node{k}") for k in (0, 1)]
        if fault == "cut":
            hosts.link(1, up=True)
        since = time.time()
        again = start(hosts, ops, port, work, "resume", "--resume", env=env)
        procs += again
        resume_exits = wait_exits(again, time.monotonic())
    return {"fault": fault, "ops": list(ops), "rate_mbit": rate_mbit, "injected_s": round(fault_at - t0, 1),
            "exits": exits, "kept": kept, "resume_exits": resume_exits,
            "resume": [resumed(work / f"node{k}", work / f"node{k}.resume.log", since) for k in (0, 1)],
            "wall_s": round(time.monotonic() - t0, 1)}


def medians_by_size(run_dir: Path) -> dict[tuple[str, int], float]:
    return {(r["bench"], int(r["params"]["bytes"])): float(r["median_s"]) for r in read_rows(run_dir / "rows.jsonl")
            if r["status"] == "ok" and r["world_size"] == 2}


def run_straggler(ops: tuple[str, ...], rate_mbit: float, slow_mbit: float, work: Path) -> dict[str, Any]:
    """The same run unslowed, then with node 1's link at `slow_mbit`: each collective's slowdown."""
    runs: dict[str, Any] = {}
    for name, slow in (("unslowed", rate_mbit), ("straggler", slow_mbit)):
        (work / name).mkdir()
        t0 = time.monotonic()
        with test_hosts(2, rate_mbit=rate_mbit) as hosts, reaped() as procs:
            hosts.shape(1, slow)
            procs += start(hosts, ops, free_port(), work / name, "first")
            exits = wait_exits(procs, t0)
        runs[name] = {"exits": exits, "wall_s": round(time.monotonic() - t0, 1),
                      "kept": recorded(work / name / "node0"), "fits": fitted_collectives(work / name / "node0", ops),
                      "medians": medians_by_size(work / name / "node0")}
    base, slow_run = runs["unslowed"], runs["straggler"]
    slowdown: dict[str, Any] = {}
    for op in ops:
        ratios = {size: slow_run["medians"][(b, size)] / t for (b, size), t in base["medians"].items()
                  if b == op and (b, size) in slow_run["medians"]}
        bound = [x for size, x in ratios.items() if size >= BANDWIDTH_BOUND_BYTES]
        fit_base, fit_slow = base["fits"].get(op), slow_run["fits"].get(op)
        slowdown[op] = {
            "busbw_MBps": [f["busbw_MBps"] if f else None for f in (fit_base, fit_slow)],
            "busbw_ratio": fit_base["busbw_MBps"] / fit_slow["busbw_MBps"] if fit_base and fit_slow else None,
            "median_time_ratio_from_1MiB": statistics.median(bound) if bound else None,
            "time_ratio_by_bytes": {str(size): round(x, 3) for size, x in sorted(ratios.items())}}
    for run in runs.values():
        run.pop("medians")
    return {"fault": "straggler", "ops": list(ops), "rate_mbit": rate_mbit, "slow_mbit": slow_mbit, "runs": runs,
            "slowdown": slowdown}


def _exit(e: dict[str, Any]) -> str:
    return "hung (killed)" if e.get("hung") else f"{e['rc']}, {e['after_s']:.0f} s"


def _short(message: str | None, limit: int = 260) -> str:
    if not message:
        return "-"
    text = message.replace("|", "/")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| fault (on node 1) | injected, s into the run | node 0: exit, s after fault | node 1: exit, s after "
             "fault | recorded by node 0 | recorded by node 1 | kept (node 0: ok rows, samples) | --resume completed "
             "it | re-measured | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["fault"] == "straggler":
            slow = r["runs"]["straggler"]
            done = all(e.get("rc") == 0 for e in slow["exits"])
            lines.append(f"| straggler: link at {r['slow_mbit']:g} Mbit/s (node 0: {r['rate_mbit']:g}) | 0 (all "
                         f"through) | {_exit(slow['exits'][0])} | {_exit(slow['exits'][1])} | "
                         f"{_short(slow['kept']['message']) if slow['kept']['message'] else 'none: completed'} | - "
                         f"| {slow['kept']['ok_rows']}, {slow['kept']['samples']} | not needed "
                         f"({'completed' if done else 'did not complete'}) | - | {slow['wall_s']:.0f} (unslowed: "
                         f"{r['runs']['unslowed']['wall_s']:.0f}) |")
            continue
        res, kept = r["resume"][0], r["kept"][0]
        completed = all(e.get("rc") == 0 for e in r["resume_exits"]) and all(x["complete"] for x in r["resume"])
        lines.append(f"| {r['fault']} | {r['injected_s']:.0f} | {_exit(r['exits'][0])} | {_exit(r['exits'][1])} | "
                     f"{_short(r['kept'][0]['message'])} | {_short(r['kept'][1]['message'])} | {kept['ok_rows']}, "
                     f"{kept['samples']} | {'yes' if completed else 'no'} | {res['steps_run']} of {res['planned']} "
                     f"steps ({res['samples_reused']} samples reused, {res['samples_new']} new) | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def slowdown_markdown(r: dict[str, Any]) -> str:
    lines = [f"| op | busbw MB/s, both links {r['rate_mbit']:g} Mbit/s | busbw MB/s, node 1 at {r['slow_mbit']:g} | "
             "slowdown (busbw) | slowdown (median time, sizes ≥ 1 MiB) | slowdown at the largest size |",
             "|---|---|---|---|---|---|"]
    for op, s in r["slowdown"].items():
        base, slow = s["busbw_MBps"]
        largest = list(s["time_ratio_by_bytes"].values())[-1] if s["time_ratio_by_bytes"] else None
        lines.append(f"| {op} | {_num(base)} | {_num(slow)} | {_times(s['busbw_ratio'])} | "
                     f"{_times(s['median_time_ratio_from_1MiB'])} | {_times(largest)} |")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _times(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}×"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    ap.add_argument("--ops", default="all_reduce,broadcast", help="collectives to run")
    ap.add_argument("--rate", type=float, default=1000.0, help="each host's sending rate, Mbit/s")
    ap.add_argument("--slow", type=float, default=100.0, help="the straggler's rate, Mbit/s")
    ap.add_argument("--after-rounds", type=int, default=3, help="inject once node 0 stored this many rounds")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    ns = ap.parse_args(argv)
    if skipped(available()):
        return 2
    faults, ops = ns.faults.split(","), tuple(ns.ops.split(","))
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        ap.error(f"--faults {','.join(unknown)}: choose from {', '.join(FAULTS)}")
    def run(fault: str, work: Path) -> dict[str, Any]:
        work.mkdir(parents=True)
        return (run_straggler(ops, ns.rate, ns.slow, work) if fault == "straggler"
                else run_fault(fault, ops, ns.rate, ns.after_rounds, work))

    results = run_each(faults, run, "modelfolio-faults-", ns.keep, names=faults)
    print(markdown(results))
    for r in results:
        if r["fault"] == "straggler":
            print()
            print(slowdown_markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
