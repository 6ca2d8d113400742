"""`python -m calibration run`: plan the steps, skip those already measured (--resume), run local
benches in this process and distributed ones under torchrun, then hand the rows to the profile
writer.  Rows are appended as they are measured, so Ctrl-C or a crash loses nothing measured.

One run at a time per folder (calibration/run_lock.py). A write that fails (a full disk) stops the run cleanly:
recorded in run.json where possible, and a message names the rows file, whose rows so far are kept for --resume
(calibration/run_folder.py).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calibration.progress import Progress
from calibration.rows import RunWriteError, Step, append_row, finished_keys, read_rows, read_samples, touch
from calibration.run_config import RunConfig
from calibration.run_folder import (
    META_NAME,
    ROWS_NAME,
    SAMPLES_NAME,
    is_write_error,
    write_failed,
    write_run_meta,
)
from calibration.run_lock import RunLockError, acquire_lock
from calibration.run_pace import distributed_s, keep_pace, local_pace, pace_record
from calibration.run_plan import PlannedRun, plan_only, plan_run, print_plan, refused

INTERRUPTED = "interrupted"  # what `_Measuring.measure` returns after Ctrl-C or SIGTERM


def _execute_durable(steps: list[Any], cfg: Any, run_id: str, on_row: Any, samples_path: Path,
                     prior: dict[str, list[float]], on_round: Any, pace: Any = None) -> None:
    """`registry.execute_interleaved`, with every round's samples appended (one fsync'd write) to
    `samples_path`, one line per point, before `on_round(report)`; a point's samples stored by an earlier,
    interrupted or killed run (`prior`, by step key) are continued from, or make its row once they number
    cfg.min_repeats."""
    from calibration.bench import registry
    from calibration.rows import append_lines

    warmed = [0]

    def round_done(new: dict[str, list[float]], rep: dict[str, Any]) -> None:
        if new:
            t = time.time()
            append_lines(samples_path, [{"key": key, "run_id": run_id, "round": rep["round"], "times_s": xs,
                                         "t_unix": t} for key, xs in new.items()], "a round's samples")
        else:
            warmed[0] += 1
        on_round({**rep, "warmed": warmed[0]})

    registry.execute_interleaved(steps, cfg, run_id, on_row, prior=prior, on_round=round_done, pace=pace)


def run(cfg: RunConfig) -> int:
    """One calibration run in `cfg.out`, holding its lock throughout. Exit status: 0 done, 1 a write failed or
    the profile could not be written, 2 refused (the folder is in use, or holds rows without --resume),
    130 interrupted. With `plan_only`, the plan alone (`plan_only`)."""
    if cfg.plan_only:
        return plan_only(cfg)
    t0 = time.perf_counter()
    try:
        lock = acquire_lock(cfg.out)
    except RunLockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot use {cfg.out} as the run folder: {exc}", file=sys.stderr)
        return 1 if is_write_error(exc) else 2
    if lock.note:
        print(f"note: {lock.note}", file=sys.stderr)
    try:
        return _run_locked(cfg, t0)
    finally:
        lock.release()


def _run_locked(cfg: RunConfig, t0: float) -> int:
    """The run, its folder held: open the folder, plan, measure what is pending, then report and write the
    profile."""
    from calibration.env import capture_env

    rows_path, samples_path = cfg.out / ROWS_NAME, cfg.out / SAMPLES_NAME
    if _holds_an_unresumed_run(cfg, rows_path, samples_path):
        return 2
    try:  # created now, so every message naming them names files that exist
        touch(rows_path)
        touch(samples_path)
    except OSError as exc:
        return _stopped_by_write(exc, cfg, rows_path, t0)
    env = capture_env()
    try:
        run_id = write_run_meta(cfg.out, cfg, env)
    except OSError as exc:
        wrapped = RunWriteError.wrap(exc, cfg.out / META_NAME, "writing run.json") if is_write_error(exc) else exc
        return _stopped_by_write(wrapped, cfg, rows_path, t0)
    planned = plan_run(cfg, env)  # probe, then plan: the grids sized to the budget from this machine's speed
    env.update(planned.probe_env)
    print_plan(planned, starting=True, forced=cfg.force)
    if refused(planned, cfg):
        return 2
    measuring = _pending(cfg, planned, run_id, t0)
    outcome = measuring.measure()
    wall_s = time.perf_counter() - t0
    keep_pace(cfg.out, pace_record(planned, measuring.local, measuring.distributed, measuring.pace,
                                   measuring.stages))
    if isinstance(outcome, OSError):
        return write_failed(outcome, cfg, rows_path, wall_s)
    if outcome == INTERRUPTED:
        return _interrupted(cfg, wall_s)
    return _finished(cfg, run_id, measuring.n_todo, env, t0, wall_s)


def _holds_an_unresumed_run(cfg: RunConfig, rows_path: Path, samples_path: Path) -> bool:
    """Rows or samples of an earlier run in the folder, without --resume: refused, with a message."""
    if not cfg.resume and ((rows_path.exists() and read_rows(rows_path)) or read_samples(samples_path)):
        print(f"{rows_path} already holds rows (or {samples_path} samples): add --resume to continue that run, "
              f"or choose another --out", file=sys.stderr)
        return True
    return False


def _stopped_by_write(exc: OSError, cfg: RunConfig, rows_path: Path, t0: float) -> int:
    """A write failed before measuring began: the run ends as `write_failed` says (any other OSError is raised)."""
    if not is_write_error(exc):
        raise exc
    return write_failed(exc, cfg, rows_path, time.perf_counter() - t0)


def _pending(cfg: RunConfig, planned: PlannedRun, run_id: str, t0: float) -> _Measuring:
    """The planned steps not yet measured (with --resume: no finished row), with the samples stored for them."""
    from calibration.bench.grids import is_distributed
    from calibration.bench.launch import Rendezvous

    rows_path, samples_path = cfg.out / ROWS_NAME, cfg.out / SAMPLES_NAME
    done_keys = finished_keys(read_rows(rows_path)) if cfg.resume else set()
    prior = read_samples(samples_path) if cfg.resume else {}
    pending = [s for s in planned.steps if s.key() not in done_keys]
    rdzv = Rendezvous(cfg.nnodes, cfg.node_rank, cfg.rdzv_endpoint, cfg.rdzv_id or "modelfolio", cfg.ifname) \
        if cfg.nnodes > 1 and cfg.rdzv_endpoint else None
    if cfg.nnodes > 1 and rdzv is None:
        raise SystemExit("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (and the same --rdzv-id on every node)")
    return _Measuring(cfg, planned, run_id, prior, rdzv, [s for s in pending if not is_distributed(s)],
                      [s for s in pending if is_distributed(s)], t0=t0)


@dataclass
class _Measuring:
    """The pending steps of one run, measured stage by stage: the local benches, the torchrun launches, then the
    quality calibration; rows are appended to the folder's rows file as they come."""

    cfg: RunConfig
    planned: PlannedRun
    run_id: str
    prior: dict[str, list[float]]  # samples stored by an earlier run, by step key
    rdzv: Any  # launch.Rendezvous of a multi-node run, else None
    local: list[Any]
    distributed: list[Any]
    progress: Progress | None = None
    t0: float = 0.0  # when the run started (time.perf_counter): the budget counts from here
    stages: dict[str, float] = field(default_factory=dict)  # stage -> measured seconds
    pace: Any = None  # calibration.pace.Pace of the local benches (None: the test grid, or nothing local)

    @property
    def n_todo(self) -> int:
        return len(self.local) + len(self.distributed)

    @property
    def rows_path(self) -> Path:
        return self.cfg.out / ROWS_NAME

    @property
    def samples_path(self) -> Path:
        return self.cfg.out / SAMPLES_NAME

    def measure(self) -> OSError | str | None:
        """Every stage, in order; returns None when done, INTERRUPTED (Ctrl-C or SIGTERM), or the failed write
        (a full disk: stopped cleanly, what was written kept; a launch stops its ranks first)."""
        from calibration.bench.registry import set_run_threads

        set_run_threads()  # remeasure (validate) sets the same
        steps, devices = self.planned.steps, self.planned.devices
        with _sigterm_interrupts():
            self.progress = Progress(len(steps), len(steps) - self.n_todo, self.cfg.jsonl)
            print(f"calibration {self.planned.mode}: {self.n_todo} of {len(steps)} steps to run on "
                  f"{', '.join(devices)}, world sizes {self.planned.sizes}, rows -> {self.rows_path}", file=sys.stderr)
            try:
                if self.cfg.nnodes == 1:  # one node: local benches first; several: every node joins the launches first
                    self.local_benches()
                self.distributed_benches()
                if self.cfg.nnodes > 1:
                    self.local_benches()
                self.quality()
            except KeyboardInterrupt:
                return INTERRUPTED
            except OSError as exc:
                if not is_write_error(exc):
                    raise
                return exc
            finally:
                self.progress.close()
        return None

    def on_row(self, row: dict[str, Any]) -> None:
        from calibration.bench.launch import label

        assert self.progress is not None
        append_row(self.rows_path, row)
        self.progress.emit(label(Step.from_dict(row)), row["status"])

    def local_benches(self) -> None:
        """In this process, one interleaved group per device (on node 0 only: the other nodes skip them)."""
        from calibration.bench.launch import label

        assert self.progress is not None
        progress, local = self.progress, self.local
        if self.cfg.nnodes > 1 and self.cfg.node_rank != 0:
            for step in local:  # local benches: node 0 measures them, the other nodes only join launches
                progress.emit(label(step), "skipped")
            return
        started = time.perf_counter()
        later_s = distributed_s(self.planned, self.distributed, likely=True) if self.cfg.nnodes == 1 else 0.0
        self.pace = local_pace(self.planned, local, self.t0, later_s)
        try:
            self._local_groups(local)
        finally:
            self.stages["local"] = time.perf_counter() - started

    def _local_groups(self, local: list[Any]) -> None:
        from calibration.timing import timing_for

        assert self.progress is not None
        progress = self.progress
        for device in dict.fromkeys(s.device for s in local):
            group = [s for s in local if s.device == device]
            progress.emit(f"{device}: {len(group)} local steps, samples interleaved", advance=False,
                          stage="local")
            resumed = sum(len(self.prior.get(s.key(), [])) for s in group)
            if resumed:
                print(f"{device}: continuing from {resumed} samples stored in {self.samples_path}", file=sys.stderr)
            _execute_durable(group, timing_for(self.planned.mode, device), self.run_id, self.on_row,
                             self.samples_path, self.prior, functools.partial(progress.round, device, len(group)),
                             self.pace)

    def distributed_benches(self) -> None:
        """Under torchrun, one launch per (device, world size)."""
        started = time.perf_counter()
        try:
            self._launches()
        finally:
            self.stages["distributed"] = time.perf_counter() - started

    def _launches(self) -> None:
        from calibration.bench.launch import launch, record_not_launched

        assert self.progress is not None
        progress, distributed = self.progress, self.distributed
        for launch_index in itertools.count():
            if not distributed:
                return
            step = distributed[0]
            group = [s for s in distributed if (s.device, s.world_size) == (step.device, step.world_size)]
            progress.emit(f"torchrun {step.device} ws={step.world_size}: {len(group)} steps", advance=False,
                          stage="distributed")
            resumed = {s.key(): self.prior[s.key()] for s in group if self.prior.get(s.key())}
            if resumed:
                print(f"torchrun {step.device} ws={step.world_size}: continuing from "
                      f"{sum(map(len, resumed.values()))} samples stored in {self.samples_path}", file=sys.stderr)
            result = launch(group, device=step.device, world_size=step.world_size, rows_path=self.rows_path,
                            run_id=self.run_id, mode=self.planned.mode, work_dir=self.cfg.out / "launch",
                            index=launch_index, rdzv=self.rdzv, samples_path=self.samples_path, prior=resumed,
                            on_done=lambda msg: progress.emit(msg.get("label", "?"), msg.get("status")))
            keys = {s.key() for s in group}
            distributed = [s for s in distributed if s.key() not in keys]
            if result.broke and self.rdzv is not None and distributed:  # a node may be dead or out of reach
                record_not_launched(distributed, self.rows_path, self.run_id, result.broke,
                                    lambda msg: progress.emit(msg["label"], msg["status"]))
                return

    def quality(self) -> None:
        """The quality calibration (writes <out>/quality.json), when the run has a share for it."""
        from calibration.quality.hook import quality_share, run_step

        assert self.progress is not None
        progress, mode = self.progress, self.planned.mode
        if quality_share(self.cfg, mode) > 0:
            progress.note("quality calibration: training small models, then compressing and measuring them",
                          "quality")

        def quality_log(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)
            progress.note(msg, "quality")

        started = time.perf_counter()
        try:
            run_step(self.cfg, mode, log=quality_log, left_s=self.left_s())
        finally:
            self.stages["quality"] = time.perf_counter() - started

    def left_s(self) -> float | None:
        """Seconds of the run's budget still unspent (None for the test grid, which has no budget)."""
        info = self.planned.summary
        if info is None:
            return None
        return float(info["budget_s"]) - (time.perf_counter() - self.t0)

def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a page stopping its subprocess) stops the run like Ctrl-C: rows kept, exit 130."""
    try:
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupted(cfg: RunConfig, wall_s: float) -> int:
    rows_path, samples_path = cfg.out / ROWS_NAME, cfg.out / SAMPLES_NAME
    n_rows, n_samples = len(read_rows(rows_path)), sum(map(len, read_samples(samples_path).values()))
    print(f"interrupted after {wall_s:.1f} s; the {n_rows} rows so far are in {rows_path} and the "
          f"{n_samples} samples taken so far in {samples_path}. Continue with: python -m calibration run "
          f"--{cfg.mode} --out {cfg.out} --resume", file=sys.stderr)
    return 130


def _finished(cfg: RunConfig, run_id: str, n_todo: int, env: dict[str, Any], t0: float, wall_s: float) -> int:
    """The run's summary line, then the profile from every row of the folder (unless --no-profile)."""
    rows_path = cfg.out / ROWS_NAME
    rows = read_rows(rows_path)
    since_unix = time.time() - (time.perf_counter() - t0)  # --resume keeps the run id: count this invocation's rows
    failed = [r for r in rows if r.get("run_id") == run_id and r["status"] == "failed"
              and float(r.get("t_unix", 0.0)) >= since_unix]
    print(f"measured {n_todo} steps in {wall_s:.1f} s ({len(failed)} failed rows in this run); rows: {rows_path}")
    rc = _write_profile(cfg.out, rows, env) if cfg.write_profile else 0
    print(f"total wall time {time.perf_counter() - t0:.1f} s", flush=True)
    cause = every_distributed_step_failed(rows, run_id)
    if cause is not None:
        print(f"error: every distributed step of this run failed, so the profile has no collective, DDP or "
              f"parameter-server fit from it; the first failure: {cause}", file=sys.stderr, flush=True)
    elif failed:
        first = min(failed, key=lambda r: float(r.get("t_unix", 0.0)))
        print(f"note: the first failure: {' '.join(str(first.get('error')).split())[:400]}", file=sys.stderr)
    if failed:
        print("once the cause is gone, the same command with --resume measures only what is missing",
              file=sys.stderr, flush=True)
    return rc or (1 if cause is not None else 0)


def every_distributed_step_failed(rows: list[dict[str, Any]], run_id: str) -> str | None:
    """The first failure's cause, in one line, when this run had distributed steps and none of them succeeded
    (a rendezvous that never formed, a network the ranks cannot use); None otherwise."""
    from calibration.rows import DISTRIBUTED_BENCHES

    mine = [r for r in rows if r.get("run_id") == run_id and r.get("bench") in DISTRIBUTED_BENCHES]
    if not mine or any(r.get("status") == "ok" for r in mine):
        return None
    failed = [r for r in mine if r.get("status") == "failed"]
    if not failed:
        return None
    first = min(failed, key=lambda r: float(r.get("t_unix", 0.0)))
    return " ".join(str(first.get("error") or "no error recorded").split())[:400]


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
