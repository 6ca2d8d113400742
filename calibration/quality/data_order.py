"""The data-order measurement of the quality calibration (--full): the char LM trained by P worker processes under
torchrun (gloo), reading sequential or random shards, synchronised by all-reduce, a parameter server or
asynchronously (calibration/quality/data_order_worker.py), to one target loss; the extra updates that sequential
shards cost, fitted per way of synchronising and per P (calibration/quality/data_order_fit.py).

Runs go to `<out>/data_order_runs.jsonl` as each ends (fsync'd), so an interrupted run keeps them and `--resume`
runs only the missing ones. Each launch (one per P) has its share of the budget: the server starts a run only
when the median run so far still fits, and the launch is stopped at its share plus a grace. The section it returns
is the profile's `quality.data_order` (docs/profile-schema.md); the simulator reads it (simulator/data_order.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from calibration.quality.data_order_fit import fit_data_order
from calibration.quality.data_order_worker import read_runs, run_key

RUNS_NAME = "data_order_runs.jsonl"
REFERENCE = ("allreduce", "random", 0)
STARTUP_S = 8.0  # torchrun and P + 1 interpreters importing torch, per launch (measured 5-7 s on 2 cores)
GRACE_S = 30.0  # past its share, a launch is stopped (a run in flight is lost; the ones before it are kept)


@dataclass(frozen=True)
class DataOrderPlan:
    workers: tuple[int, ...] = (2, 4)
    repeats: int = 3
    sources: int = 8  # the corpus' blocks (calibration.quality.data.sourced_corpus)
    corpus_chars: int = 40_000  # small enough that each worker reads its shard several times over
    held_share: float = 0.1  # of each source, held out for the target loss
    eval_chars: int = 4_096
    d_model: int = 32
    layers: int = 2
    ctx: int = 32
    batch: int = 16  # windows per worker per update
    lr: float = 3e-3
    warmup: int = 10
    eval_every: int = 10  # synchronous updates between evaluations (asynchronous: P times as many)
    reference_updates: int = 150  # the reference run's updates: its loss there is the target
    cap_updates: int = 600  # no run goes past this (asynchronous: P times as many); beyond it: censored
    seed: int = 0


PLANS = {"full": DataOrderPlan(),
         "tiny": DataOrderPlan(workers=(2,), repeats=1, sources=4, corpus_chars=6_000, eval_chars=1_024, d_model=16,
                               layers=1, ctx=16, batch=4, eval_every=5, reference_updates=20, cap_updates=80)}


def runs_of(plan: DataOrderPlan) -> list[dict[str, Any]]:
    """The runs in the order they are worth most: the reference, then per repeat the sequential all-reduce and the
    asynchronous pair (a repeat's random all-reduce after the first), the parameter server's pair once as a check."""
    out = [dict(zip(("sync", "sharding", "repeat"), REFERENCE, strict=True))]
    for r in range(plan.repeats):
        pairs = [("allreduce", "sequential"), ("async", "random"), ("async", "sequential")]
        if r > 0:
            pairs.insert(0, ("allreduce", "random"))
        if r == 0:
            pairs += [("ps", "random"), ("ps", "sequential")]
        out += [{"sync": s, "sharding": sh, "repeat": r} for s, sh in pairs]
    return out


def _launch(spec_path: Path, workers: int, timeout_s: float, log: Callable[[str], None], log_path: Path) -> int | None:
    """torchrun with P + 1 ranks, followed as calibration's own launches are (bench/launch.py: its own process group,
    Ctrl-C safe, stopped at `timeout_s`); each finished run reported to `log`. None: stopped at the budget."""
    from calibration.bench.launch import REPO_ROOT, _run_and_follow

    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={workers + 1}", "--max-restarts=0",
           "--standalone", "-m", "calibration.quality.data_order_worker", str(spec_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}

    def done(d: dict[str, Any]) -> None:
        log(f"data order: P={workers} {d['key']}: {d['updates']} updates in {d['wall_s']:.1f} s")

    with log_path.open("a") as err:
        followed = _run_and_follow(cmd, env, err, time.monotonic() + timeout_s, done)
    if followed.timed_out:
        log(f"data order: P={workers} stopped at its budget; the runs it finished are kept")
        return None
    return followed.rc


def run_data_order(out: Path, plan: DataOrderPlan, budget_s: float, *, resume: bool = False,
                   log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Measure (what `out/data_order_runs.jsonl` lacks), fit; the `data_order` section, or None when no sequential
    run has its random partner."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / RUNS_NAME
    if not resume:
        runs_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    for i, p in enumerate(plan.workers):
        share_s = (budget_s - (time.perf_counter() - t0)) / (len(plan.workers) - i)
        spec = {**asdict(plan), "workers": p, "runs": runs_of(plan), "out": str(runs_path),
                "reference_key": run_key(*REFERENCE), "budget_s": max(0.0, share_s - STARTUP_S),
                "pg_timeout_s": max(60.0, share_s)}
        spec_path = out / f"data_order_P{p}.json"
        spec_path.write_text(json.dumps(spec))
        rc = _launch(spec_path, p, share_s + GRACE_S, log, out / f"data_order_P{p}.log")
        if rc not in (0, None):
            log(f"data order: P={p} ended with exit status {rc}; see {out / f'data_order_P{p}.log'}")
    records = read_runs(runs_path)
    fitted = fit_data_order(records)
    if not fitted["fits"]:
        return None
    return {"version": 1, "provenance": "measured (runs) and fitted (extra updates) by python -m calibration quality "
                                        "--full on this machine",
            "plan": asdict(plan), "duration_s": round(time.perf_counter() - t0, 2),
            "setup": (f"char LM ({plan.d_model} wide, {plan.layers} layers), {plan.batch} windows of {plan.ctx} "
                      f"characters per worker per update, AdamW lr {plan.lr:g}; a {plan.corpus_chars:,}-character "
                      f"corpus of {plan.sources} sources stored one after another; sequential: each worker reads its "
                      f"contiguous 1/P in order, random: windows drawn from the whole; target: the held-out loss "
                      f"of the reference run (synchronous, random) after {plan.reference_updates} updates"),
            **fitted}
