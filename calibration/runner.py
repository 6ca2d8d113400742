"""`python -m calibration run`: plan the steps, skip those already measured (--resume), run local
benches in this process and distributed ones under torchrun, then hand the rows to the profile
writer.  Rows are appended as they are measured, so Ctrl-C or a crash loses nothing measured.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRID_ENV = "MODELFOLIO_CALIB_GRID"  # hidden test hook: "tiny" shrinks every grid


@dataclass(frozen=True)
class RunConfig:
    mode: str  # "quick" | "full"
    out: Path
    nproc: int | None = None
    resume: bool = False
    only: frozenset[str] | None = None
    device: str = "auto"  # "cpu" | "cuda" | "auto"
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    write_profile: bool = True


class Progress:
    """A tqdm bar on stderr and a `PROGRESS {json}` line on stdout per finished step."""

    def __init__(self, total: int, done: int) -> None:
        from tqdm import tqdm

        self.total, self.done, self.failed = total, done, 0
        self.bar = tqdm(total=total, initial=done, file=sys.stderr, unit="step", dynamic_ncols=True)

    def emit(self, step: str, status: str | None = None, advance: bool = True) -> None:
        if advance:
            self.done += 1
            self.failed += status == "failed"
            self.bar.update(1)
        self.bar.set_postfix_str(step[:60], refresh=True)
        msg: dict[str, Any] = {"done": self.done, "total": self.total, "step": step}
        if status:
            msg["status"] = status
        print("PROGRESS " + json.dumps(msg), flush=True)

    def close(self) -> None:
        self.bar.close()


def world_sizes(mode: str, device: str, nproc: int | None, nnodes: int) -> list[int]:
    """World sizes to sweep: every 1..nproc ranks per node in full mode, powers of two and nproc in quick."""
    from calibration.timing import available_cpus

    if device == "cuda":
        import torch

        gpus = torch.cuda.device_count()
        per_node = min(nproc or gpus, gpus)  # nccl wants one GPU per rank
    else:
        per_node = nproc or available_cpus()
    if per_node < 1:
        return []
    if mode == "full":
        counts = list(range(1, per_node + 1))
    else:
        counts = sorted({1 << i for i in range(per_node.bit_length()) if 1 << i <= per_node} | {per_node})
    if mode == "tiny":
        counts = counts[-2:] if nnodes == 1 else counts[:1]
    return [c * nnodes for c in counts]


def resolve_devices(device: str) -> list[str]:
    import torch

    if device == "cpu":
        return ["cpu"]
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch.cuda.is_available() is False here; use --device cpu or auto")
        return ["cuda"]
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _run_meta(run_dir: Path, cfg: RunConfig, env: dict[str, Any]) -> str:
    """The run id: kept from run.json when resuming, new otherwise."""
    meta_path = run_dir / "run.json"
    if cfg.resume and meta_path.exists():
        run_id = json.loads(meta_path.read_text()).get("run_id") or uuid.uuid4().hex[:12]
    else:
        run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    meta = {"run_id": run_id, "mode": cfg.mode, "device": cfg.device, "nproc": cfg.nproc, "nnodes": cfg.nnodes,
            "node_rank": cfg.node_rank, "only": sorted(cfg.only) if cfg.only else None, "env": env}
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(meta_path)
    return run_id


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(cfg: RunConfig) -> int:
    from calibration.bench.grids import is_distributed, plan
    from calibration.bench.launch import Rendezvous, label, launch
    from calibration.bench.registry import execute_interleaved
    from calibration.env import capture_env
    from calibration.rows import Step, append_row, finished_keys, read_rows
    from calibration.timing import timing_for

    t0 = time.perf_counter()
    run_dir, rows_path = cfg.out, cfg.out / "rows.jsonl"
    if rows_path.exists() and read_rows(rows_path) and not cfg.resume:
        print(f"{rows_path} already holds rows: add --resume to continue that run, or choose another --out",
              file=sys.stderr)
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    mode = "tiny" if os.environ.get(GRID_ENV) == "tiny" else cfg.mode
    env = capture_env()
    run_id = _run_meta(run_dir, cfg, env)
    devices = resolve_devices(cfg.device)
    sizes = {d: world_sizes(mode, d, cfg.nproc, cfg.nnodes) for d in devices}
    steps = plan(mode, devices, sizes, env.get("l3_cache_bytes") or 32 << 20, set(cfg.only) if cfg.only else None)
    done_keys = finished_keys(read_rows(rows_path)) if cfg.resume else set()
    pending = [s for s in steps if s.key() not in done_keys]
    n_todo = len(pending)
    rdzv = Rendezvous(cfg.nnodes, cfg.node_rank, cfg.rdzv_endpoint, cfg.rdzv_id or "modelfolio") \
        if cfg.nnodes > 1 and cfg.rdzv_endpoint else None
    if cfg.nnodes > 1 and rdzv is None:
        raise SystemExit("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (and the same --rdzv-id on every node)")

    from calibration.bench.registry import set_run_threads

    set_run_threads()  # remeasure (validate) sets the same
    try:  # SIGTERM (a page stopping its subprocess) stops the run like Ctrl-C: rows kept, exit 130
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    progress = Progress(len(steps), len(steps) - len(pending))
    print(f"calibration {mode}: {len(pending)} of {len(steps)} steps to run on {', '.join(devices)}, "
          f"world sizes {sizes}, rows -> {rows_path}", file=sys.stderr)
    interrupted, launch_index = False, 0
    local = [s for s in pending if not is_distributed(s)]
    distributed = [s for s in pending if is_distributed(s)]

    def on_row(row: dict[str, Any]) -> None:
        append_row(rows_path, row)
        progress.emit(label(Step.from_dict(row)), row["status"])

    def run_local() -> None:
        if cfg.nnodes > 1 and cfg.node_rank != 0:
            for step in local:  # local benches: node 0 measures them, the other nodes only join launches
                progress.emit(label(step), "skipped")
            return
        for device in dict.fromkeys(s.device for s in local):
            group = [s for s in local if s.device == device]
            progress.emit(f"{device}: {len(group)} local steps, samples interleaved", advance=False)
            execute_interleaved(group, timing_for(mode, device), run_id, on_row)

    try:
        if cfg.nnodes == 1:  # one node: local benches first; several: every node joins the launches first
            run_local()
        while distributed:
            step = distributed[0]
            group = [s for s in distributed if (s.device, s.world_size) == (step.device, step.world_size)]
            progress.emit(f"torchrun {step.device} ws={step.world_size}: {len(group)} steps", advance=False)
            launch(group, device=step.device, world_size=step.world_size, rows_path=rows_path, run_id=run_id,
                   mode=mode, work_dir=run_dir / "launch", index=launch_index, rdzv=rdzv,
                   on_done=lambda msg: progress.emit(msg.get("label", "?"), msg.get("status")))
            launch_index += 1
            keys = {s.key() for s in group}
            distributed = [s for s in distributed if s.key() not in keys]
        if cfg.nnodes > 1:
            run_local()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    wall_s = time.perf_counter() - t0
    if interrupted:
        print(f"interrupted after {wall_s:.1f} s; rows so far are in {rows_path}. "
              f"Continue with: python -m calibration run --{cfg.mode} --out {run_dir} --resume", file=sys.stderr)
        return 130
    rows = read_rows(rows_path)
    failed = sum(r["status"] == "failed" for r in rows if r.get("run_id") == run_id)
    print(f"measured {n_todo} steps in {wall_s:.1f} s ({failed} failed rows in this run); rows: {rows_path}")
    rc = _write_profile(run_dir, rows, env) if cfg.write_profile else 0
    print(f"total wall time {time.perf_counter() - t0:.1f} s", flush=True)
    return rc


def _write_profile(run_dir: Path, rows: list[dict[str, Any]], env: dict[str, Any]) -> int:
    try:
        from calibration.profile_writer import write_profile
    except ImportError as e:
        print(f"profile not written: calibration.profile_writer is not available ({e}); "
              f"the rows are complete, build the profile later from {run_dir / 'rows.jsonl'}", file=sys.stderr)
        return 0
    try:
        path = write_profile(run_dir, rows, env)
    except Exception as e:
        print(f"profile not written: write_profile failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"profile: {path}", flush=True)
    return 0
