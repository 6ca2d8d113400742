"""Benchmark: does the simulator predict real data-parallel training across hosts from a calibrated profile?
(issue 22, part 4)

Three test hosts (benchmarks/testhosts.py) behind a bridge, every host's link capped at the same rate in both
directions (tc tbf on its own interface, as testhosts does, and on the bridge's end of its veth), as a full-duplex
NIC is. Hosts 0 and 1 are the workers, each pinned to one of the machine's two cores (taskset), so each is a
one-core host; host 2 is the parameter server, off the workers' links as the simulator's S servers on the
inter-node network are (unpinned: it computes only the Adam step).

Per setting (a link rate): (1) the README's multi-node calibration on hosts 0 and 1, one rank each, of the benches
a training step's prediction reads (gemm: the compute; all_reduce: the link); (2) the same small GPT trained for a
fixed number of steps after warm-up (benchmarks/multihost_train_worker.py) alone on each worker host (compute
only), with DistributedDataParallel, through a synchronous parameter server and asynchronously; (3) each run
described as a Scenario and predicted by `evaluate` on node 0's profile's device, the public path, nothing tuned
per row; (4) a markdown table of measured (median, p25-p75 over both workers' steps) against predicted step time,
and of its two parts apart: compute and communication.

Run as root: `python -m benchmarks.multihost_predict [--settings 200,1000] [--steps 12] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.testhosts import BURST_S, TestHosts, available, run_each, skipped, test_hosts
from simulator import Scenario, evaluate
from simulator.device_profile import device_from_profile
from simulator.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.15  # predicted step time within 15% of the measured median (issue 22)
CALIBRATED = "gemm,all_reduce"  # the fits a training step's prediction reads: GEMM throughput and curve, the link
MODES = ("ddp", "ps", "async")
SERVER_HOST = 2
RUN_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Model:
    """The trained GPT's shape and each worker's batch (one micro-batch per step)."""

    layers: int = 4
    hidden: int = 256
    heads: int = 4
    vocab: int = 4096
    seq: int = 128
    batch: int = 8

    def args(self) -> list[str]:
        return [f"--{k}={v}" for k, v in dataclasses.asdict(self).items()]


def unavailable() -> str | None:
    """None when this benchmark can run here, else why not: test hosts (root, iproute2), taskset, two CPUs."""
    why = available()
    if why is None and shutil.which("taskset") is None:
        why = "the worker hosts are pinned to a core each with `taskset` (util-linux), which is missing"
    if why is None and len(os.sched_getaffinity(0)) < 2:
        why = "two CPUs are needed, one per worker host"
    return why


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shape_both_ways(hosts: TestHosts, i: int, rate_mbit: float) -> None:
    """Host i sends and receives at most `rate_mbit`: testhosts' tbf on its interface, and the same bucket (the
    same burst rule, tc-tbf(8)) on the bridge's end of its link, which carries what the bridge sends to it."""
    hosts.shape(i, rate_mbit)
    burst_kbit = max(256, math.ceil(rate_mbit * 1000 * BURST_S))
    subprocess.run(["tc", "qdisc", "replace", "dev", hosts.outside(i), "root", "tbf", "rate", f"{rate_mbit:g}mbit",
                    "burst", f"{burst_kbit}kbit", "latency", "50ms"], check=True, capture_output=True, text=True,
                   timeout=30)


def _env(hosts: TestHosts, i: int) -> dict[str, str]:
    """Host i's environment: gloo on its own interface, one thread, none of calibration's test hooks."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GLOO_SOCKET_IFNAME": hosts.dev(i), "OMP_NUM_THREADS": "1"}
    for var in ("MODELFOLIO_CALIB_GRID", "MODELFOLIO_CALIB_FAIL", "MODELFOLIO_PROBE_SLOW_DTYPE", "MODELFOLIO_CALIB_SLOW"):
        env.pop(var, None)
    return env


def _cores(i: int) -> str:
    """Worker host i runs on core i alone; the server host on either."""
    return str(i) if i != SERVER_HOST else "0,1"


def _run_all(hosts: TestHosts, cmds: dict[int, list[str]], logs: Path) -> None:
    """Run `cmds` (host -> command) at once, each pinned to its host's core; raise with the failing host's log tail
    when any exits non-zero (the rest are then stopped)."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = {}
    for i, cmd in cmds.items():
        with (logs / f"host{i}.log").open("w") as log:
            procs[i] = hosts.popen(i, ["taskset", "-c", _cores(i), *cmd], cwd=REPO, env=_env(hosts, i),
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        for i, p in procs.items():
            rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
            if rc != 0:
                tail = (logs / f"host{i}.log").read_text()[-1500:]
                raise RuntimeError(f"host {i} exited {rc}: {' '.join(cmds[i][:6])} ...\n{tail}")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


def calibrate(hosts: TestHosts, work: Path, budget_s: float | None = None) -> Path:
    """The README's multi-node calibration on hosts 0 and 1 (one rank each) of CALIBRATED; node 0's profile."""
    port = free_port()
    budget = ["--budget-s", f"{budget_s:g}"] if budget_s else []
    cmds = {k: [sys.executable, "-m", "calibration", "run", "--quick", "--only", CALIBRATED, *budget, "--nproc", "1",
                "--nnodes", "2", "--node-rank", str(k), "--rdzv-endpoint", f"{hosts.addr(0)}:{port}",
                "--rdzv-id", f"predict-{port}", "--out", str(work / f"node{k}"), "--progress", "bar"]
            for k in (0, 1)}
    _run_all(hosts, cmds, work / "logs")
    return work / "node0" / "profile.json"


def train(hosts: TestHosts, mode: str, model: Model, work: Path, steps: int, warmup: int, port: int,
          workers: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    """One run of `mode` on the worker hosts `workers` ("local": each alone, no communication; the rest need both
    workers, and the server host for ps and async): the workers' step times after warm-up, pooled, and what the
    first reported (parameters, gradient bytes, DDP's buckets)."""
    ranks = {w: w for w in workers} | ({SERVER_HOST: SERVER_HOST} if mode in ("ps", "async") else {})
    out = work / f"{mode}-{len(workers)}"
    out.mkdir(parents=True, exist_ok=True)
    cmds = {i: [sys.executable, "-m", "benchmarks.multihost_train_worker", "--mode", mode, "--rank", str(r),
                "--init", f"tcp://{hosts.addr(0)}:{port}", f"--steps={steps}", f"--warmup={warmup}", *model.args(),
                "--out", str(out / f"rank{r}.json")] for i, r in ranks.items()}
    load = os.getloadavg()[0]
    _run_all(hosts, cmds, out / "logs")
    reports = [json.loads((out / f"rank{w}.json").read_text()) for w in workers]
    times = np.array([t for w in reports for t in w["times_s"][w["warmup"]:]])
    return {"mode": mode, "median_s": float(np.median(times)), "p25_s": float(np.percentile(times, 25)),
            "p75_s": float(np.percentile(times, 75)), "n": int(times.size), "params": reports[0]["params"],
            "grad_bytes": reports[0]["grad_bytes"], "bucket_bytes": reports[0].get("bucket_bytes"),
            "load_1m": round(load, 2)}


def ddp_overlap(bucket_bytes: list[int] | None) -> float:
    """The share of the gradient DDP can all-reduce while the backward still runs: every bucket but the last to be
    ready (DDP launches a bucket's all-reduce when its gradients are ready, in bucket order; Li et al. 2020 §3.2.3);
    the last one waits for the end of the backward. 0 without buckets."""
    if not bucket_bytes:
        return 0.0
    return 1.0 - bucket_bytes[-1] / sum(bucket_bytes)


def scenario(model: Model, device_id: str, devices: dict[str, Any], mode: str, overlap: float) -> Scenario:
    """The run as the simulator's inputs: fp32, no recomputation, no ZeRO (DDP and the server keep whole copies),
    one micro-batch of `batch` sequences per worker and step, one worker per node; "local" is one worker alone."""
    gpus = 1 if mode == "local" else 2
    sync = {"ddp": "ring", "ps": "ps", "async": "async", "local": "ring"}[mode]
    return Scenario.from_dict({
        "model": {"layers": model.layers, "hidden": model.hidden, "heads": model.heads, "vocab": model.vocab,
                  "seq_len": model.seq, "tie_embeddings": True, "mlp": "gelu"},
        "training": {"precision": "fp32", "global_batch_seqs": model.batch * gpus, "micro_batch_seqs": model.batch,
                     "recompute": "none", "zero_stage": 0, "flash_attention": True},
        "cluster": {"accelerator": device_id, "gpus": gpus, "gpus_per_node": 1, "sync": sync, "ps_servers": 1,
                    "dp_overlap": overlap},
    }, devices)


def predict(profile_path: Path, model: Model, mode: str, overlap: float) -> dict[str, float]:
    """The plan of the run on the profile's device: step, compute and exposed sync seconds, and what it read."""
    spec = device_from_profile(load_profile(profile_path))
    devices = {spec.id: spec}
    plan = evaluate(scenario(model, spec.id, devices, mode, overlap), devices)
    return {"step_s": plan.value("training.step_time_s"), "compute_s": plan.value("training.compute_s"),
            "exposed_sync_s": plan.value("training.dp_exposed_s"), "params": plan.value("model.total_params"),
            "inter_GBps": spec.inter_node_GBps, "inter_source": spec.sources.get("inter_node", "")}


def run_setting(rate_mbit: float, model: Model, work: Path, steps: int, warmup: int,
                budget_s: float | None = None, modes: tuple[str, ...] = MODES) -> dict[str, Any]:
    """Calibrate, measure the compute (one worker alone, then both at once, no communication), train every mode
    and predict each, at one link rate."""
    t0 = time.perf_counter()
    with test_hosts(3) as hosts:
        for i in range(3):
            shape_both_ways(hosts, i, rate_mbit)
        profile = calibrate(hosts, work / "calibration", budget_s)
        alone = train(hosts, "local", model, work, steps, warmup, 0, workers=(0,))
        both = train(hosts, "local", model, work, steps, warmup, 0)
        runs = {mode: train(hosts, mode, model, work, steps, warmup, 29600 + k) for k, mode in enumerate(modes)}
    rows = []
    for mode in modes:
        overlap = ddp_overlap(runs[mode]["bucket_bytes"]) if mode == "ddp" else 0.0
        rows.append({**runs[mode], "dp_overlap": overlap, "predicted": predict(profile, model, mode, overlap)})
    compute = {"alone": alone, "both": both, "predicted": predict(profile, model, "local", 0.0)}
    return {"rate_mbit": rate_mbit, "rows": rows, "compute": compute, "profile": str(profile),
            "wall_s": round(time.perf_counter() - t0, 1)}


def error(measured_s: float, predicted_s: float) -> float:
    """Predicted over measured, less one (+10%: predicted 10% slower than measured)."""
    return predicted_s / measured_s - 1.0


def markdown(results: list[dict[str, Any]]) -> str:
    """The table: each mode's step, measured against predicted, then its two parts apart: the compute (measured
    with no communication, one worker host alone and both at once) and the communication (measured: the step less
    the compute of both hosts at once; predicted: the plan's exposed gradient sync)."""
    lines = ["| link (both ways) | mode | measured step s (median, p25-p75) | predicted step s | error | within 15% | "
             "compute, measured s: one host alone / both at once | compute, predicted s (error vs alone) | "
             "communication, measured / predicted s (error) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["compute"]
        alone_s, both_s, compute_s = c["alone"]["median_s"], c["both"]["median_s"], c["predicted"]["compute_s"]
        compute = f"{alone_s:.3f} / {both_s:.3f} | {compute_s:.3f} ({error(alone_s, compute_s):+.1%})"
        for row in r["rows"]:
            err = error(row["median_s"], row["predicted"]["step_s"])
            comm_s, comm_pred_s = row["median_s"] - both_s, row["predicted"]["exposed_sync_s"]
            lines.append(f"| {r['rate_mbit']:g} Mbit/s | {row['mode']} | {row['median_s']:.3f} "
                         f"({row['p25_s']:.3f}-{row['p75_s']:.3f}) | {row['predicted']['step_s']:.3f} | {err:+.1%} | "
                         f"{'yes' if abs(err) <= TARGET else 'no'} | {compute} | {comm_s:.3f} / {comm_pred_s:.3f} "
                         f"({error(comm_s, comm_pred_s):+.1%}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="200,1000", help="comma-separated link rates, Mbit/s each way")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per worker after warm-up")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="keep runs, profiles and logs in this folder")
    ns = ap.parse_args(argv)
    if skipped(unavailable()):
        return 2
    model = Model()
    results = run_each([float(s) for s in ns.settings.split(",")],
                       lambda rate, work: run_setting(rate, model, work, ns.steps, ns.warmup),
                       "modelfolio-multihost-predict-", ns.keep)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
