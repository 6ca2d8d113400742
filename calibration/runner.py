"""`python -m calibration run`: plan the steps, skip those already measured (--resume), run local
benches in this process and distributed ones under torchrun, then hand the rows to the profile
writer.  Rows are appended as they are measured, so Ctrl-C or a crash loses nothing measured.

One run at a time per folder: a run holds `<out>/run.lock` (an flock, plus its pid and start time for the
message a second run gets) until it ends; a lock left by a run that died is taken over, with a note. A write
that fails (a full disk) stops the run cleanly: recorded in run.json where possible, and a message names the
rows file, whose rows so far are kept for --resume.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.rows import WRITE_ERRNOS, RunWriteError

GRID_ENV = "MODELFOLIO_CALIB_GRID"  # hidden test hook: "tiny" shrinks every grid
LOCK_NAME = "run.lock"


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
    budget_s: float | None = None  # predicted-time budget for the plan (default: budgets.BUDGETS_S[mode])
    progress: str = "auto"  # "jsonl": PROGRESS lines on stdout; "bar": only the bar; "auto": jsonl unless a tty
    skip: frozenset[str] | None = None  # benches left out (--skip); unlike --only, the quality calibration still runs
    plan_only: bool = False  # probe and print the plan (with jsonl, a PLAN line too); measure and write nothing

    @property
    def jsonl(self) -> bool:
        return self.progress == "jsonl" or (self.progress == "auto" and not sys.stdout.isatty())


class Progress:
    """A tqdm bar on stderr (moving per sampling round inside an interleaved group) and, with `jsonl`, a
    `PROGRESS {json}` line on stdout per finished step and per round: {"done", "total", "step", "status"?, "stage",
    "steps_done"} plus, for a round, "phase" ("warmup" | "sampling"), "round", "points", "points_done", "samples",
    "samples_planned", "elapsed_s", "eta_s", "warmed" and "device". "stage" says what the run is doing ("local": the
    local benches' interleaved group; "distributed": the torchrun launches; "quality": the quality calibration);
    "steps_done" is the bar's position, finished steps plus the share of a group's planned samples taken (its steps
    finish only at the end of their samples, so through a group `done` alone stands still). A round's line is
    printed only after its samples are stored (fsync'd), so no line claims more than is kept.
    """

    def __init__(self, total: int, done: int, jsonl: bool = True) -> None:
        from tqdm import tqdm

        self.total, self.done, self.failed, self.jsonl = total, done, 0, jsonl
        self.stage = "starting"
        self.bar = tqdm(total=total, initial=done, file=sys.stderr, unit="step", dynamic_ncols=True)

    def _line(self, msg: dict[str, Any]) -> None:
        if self.jsonl:
            print("PROGRESS " + json.dumps({**msg, "stage": self.stage, "steps_done": self.bar.n}), flush=True)

    def emit(self, step: str, status: str | None = None, advance: bool = True, stage: str | None = None) -> None:
        if stage is not None:
            self.stage = stage
        if advance:
            self.done += 1
            self.failed += status == "failed"
            self.bar.n = max(self.done, self.bar.n)  # a round may have moved it past the finished steps
        self.bar.set_postfix_str(step[:60], refresh=True)
        msg: dict[str, Any] = {"done": self.done, "total": self.total, "step": step}
        if status:
            msg["status"] = status
        self._line(msg)

    def round(self, device: str, group_steps: int, rep: dict[str, Any]) -> None:
        """Progress inside an interleaved group: the bar moves by the fraction of the group's planned
        samples taken (steps finish only at the end of their samples), and the postfix tells the round."""
        frac = rep["samples"] / rep["samples_planned"] if rep.get("samples_planned") else 0.0
        finished_in_group = rep.get("points_done", 0)
        self.bar.n = round(min(self.total, self.done + max(0.0, group_steps * min(1.0, frac) - finished_in_group)),
                           2)
        eta = f", ~{rep['eta_s']:.0f} s left" if rep.get("eta_s") is not None else ""
        if rep.get("phase") == "warmup":
            text = f"{device}: warming up {rep.get('warmed', 0)}/{rep['points']} points"
        else:
            text = (f"{device}: round {rep['round']}, {rep['points_done']}/{rep['points']} points done, "
                    f"{rep['samples']}/{rep['samples_planned']} samples{eta}")
        self.bar.set_postfix_str(text, refresh=True)
        self._line({"done": self.done, "total": self.total, "step": text, **rep, "device": device})

    def note(self, text: str, stage: str) -> None:
        """A line of a stage that has no steps of its own (the quality calibration's progress)."""
        self.emit(text, advance=False, stage=stage)

    def close(self) -> None:
        self.bar.close()


SAMPLES_NAME = "samples.jsonl"


def _execute_durable(steps: list[Any], cfg: Any, run_id: str, on_row: Any, samples_path: Path,
                     prior: dict[str, list[float]], on_round: Any) -> None:
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

    registry.execute_interleaved(steps, cfg, run_id, on_row, prior=prior, on_round=round_done)


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


class RunLockError(RuntimeError):
    """Another live run holds the folder's lock; the message names it (pid, host, start time)."""


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True


def _holder(fd: int) -> dict[str, Any]:
    """What the lock file says about the run holding it ({} when empty or unreadable)."""
    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data.decode("utf-8", errors="replace")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _describe_holder(info: dict[str, Any]) -> str:
    if not info:
        return "a run that left no details"
    parts = [f"pid {info.get('pid', '?')}"]
    if info.get("host") and info.get("host") != socket.gethostname():
        parts.append(f"on {info['host']}")
    parts.append(f"started {info.get('started_utc', '?')}")
    if info.get("run_id"):
        parts.append(f"run {info['run_id']}")
    return ", ".join(str(p)[:120] for p in parts)


@dataclass
class RunLock:
    """`<run_dir>/run.lock`, held (flock) for one run; `note` says when a dead run's lock was taken over."""

    path: Path
    fd: int
    note: str | None = None

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == os.fstat(self.fd).st_ino:  # still ours: remove it, then unlock
                self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


def acquire_lock(run_dir: Path, run_id: str | None = None) -> RunLock:
    """Hold `run_dir/run.lock` for this run, or raise RunLockError naming the live run that holds it.

    The flock is the lock (the kernel drops it when its holder dies, however it dies); the file's JSON (pid, host,
    start time) is for messages. A file naming a run that no longer holds it is a stale lock: taken over, with a
    note. Where flock is unavailable (some network file systems) a live pid on this host holds the folder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            exclusive = True
        except BlockingIOError:
            info = _holder(fd)
            os.close(fd)
            raise RunLockError(f"{run_dir} is in use by another calibration run ({_describe_holder(info)}); wait "
                               f"for it to end or choose another --out (lock file {path})") from None
        except OSError:
            exclusive = False
        try:
            same = path.stat().st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if not same:  # the run holding it ended and removed the file while we waited: try the new one
            os.close(fd)
            continue
        previous = _holder(fd)
        note = None
        if previous and previous.get("pid") != os.getpid():
            same_host = previous.get("host") in (None, socket.gethostname())
            if not exclusive and same_host and _pid_alive(previous.get("pid")):
                os.close(fd)
                raise RunLockError(f"{run_dir} is in use by another calibration run ({_describe_holder(previous)}); "
                                   f"wait for it to end or choose another --out (lock file {path})")
            note = (f"took over the lock left in {run_dir} by a run that is no longer running "
                    f"({_describe_holder(previous)})")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id,
                "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "argv": sys.argv[:20]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise RunWriteError.wrap(exc, path, "writing the run lock") from exc
        return RunLock(path, fd, note)
    raise RunLockError(f"{run_dir}: the lock file {path} kept changing; another run is starting there")


def _record_write_error(run_dir: Path, exc: OSError) -> None:
    """Best effort: note the failed write in run.json (the disk may still be full: then only the message tells)."""
    meta_path = run_dir / "run.json"
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        meta["write_error"] = {"file": exc.filename, "error": exc.strerror or str(exc), "errno": exc.errno,
                               "at_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(meta_path)


def _is_write_error(exc: BaseException) -> bool:
    return isinstance(exc, RunWriteError) or (isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS)


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


@dataclass
class PlannedRun:
    """What a run will measure: its grid mode ("tiny" under the test hook), devices, world sizes per device, the
    steps in order (sized to the budget), and for a probed plan its summary (`probe.summary`, with "advice": what
    fits when it is over budget) and the probe's figures for the environment."""

    mode: str
    devices: list[str]
    sizes: dict[str, list[int]]
    steps: list[Any]
    summary: dict[str, Any] | None
    probe_env: dict[str, Any]


def plan_run(cfg: RunConfig, env: dict[str, Any]) -> PlannedRun:
    """The grids for this machine, probed and sized to the budget: the run's plan and --plan-only's, one code path.
    The hardware benches get the budget less the quality calibration's share (`quality.hook.quality_share`)."""
    from calibration.bench.grids import plan

    mode = "tiny" if os.environ.get(GRID_ENV) == "tiny" else cfg.mode
    devices = resolve_devices(cfg.device)
    sizes = {d: world_sizes(mode, d, cfg.nproc, cfg.nnodes) for d in devices}
    steps = plan(mode, devices, sizes, env.get("l3_cache_bytes") or 32 << 20, set(cfg.only) if cfg.only else None,
                 set(cfg.skip) if cfg.skip else None)
    if mode == "tiny":  # the test grid is neither probed nor sized
        return PlannedRun(mode, devices, sizes, steps, None, {})
    from calibration.bench.registry import set_run_threads
    from calibration.budgets import BUDGETS_S
    from calibration.probe import advice, fit_budget, probe, probe_environment, summary
    from calibration.quality.hook import quality_share

    set_run_threads()  # the threads the run measures with
    probes = {d: probe(d) for d in devices}
    share = quality_share(cfg, mode)
    budget_s = cfg.budget_s or BUDGETS_S.get(mode, 180.0)
    skip = tuple(sorted(cfg.skip or ()))
    sized = fit_budget(steps, probes, mode, budget_s * (1 - share))
    info = {**summary(sized, probes, mode, budget_s, share, skip),
            "advice": advice(steps, sized, probes, mode, budget_s, share, skip)}
    return PlannedRun(mode, devices, sizes, sized.steps, info, probe_environment(probes))


def print_plan(planned: PlannedRun, starting: bool) -> None:
    """The plan on stderr: points and seconds per bench, the quality calibration's share, and a warning when it is
    predicted over its budget, with what fits (the benches to leave out, or the budget it needs)."""
    from calibration.probe import over_budget_warning

    info = planned.summary
    if info is None:
        return
    lines = [info["text"]]
    if info.get("quality_s"):
        lines.append(f"  {'quality':16s} sized to its share of the budget when it starts, ~{info['quality_s']:.0f} s")
    if not info["fits_budget"]:
        lines.append("warning: " + over_budget_warning(info) + (
            " Starting anyway: Ctrl-C stops it and keeps what was measured (--resume continues)." if starting else ""))
    print("\n".join(lines), file=sys.stderr, flush=True)


def plan_only(cfg: RunConfig) -> int:
    """--plan-only: probe, plan and print (with jsonl, the summary as a `PLAN {json}` line on stdout); measures and
    writes nothing."""
    from calibration.env import capture_env

    planned = plan_run(cfg, capture_env())
    print_plan(planned, starting=False)
    if planned.summary is None:
        print(f"plan: {len(planned.steps)} steps (the test grid is not probed)", file=sys.stderr)
    elif cfg.jsonl:
        print("PLAN " + json.dumps(planned.summary), flush=True)
    return 0


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
        return 1 if _is_write_error(exc) else 2
    if lock.note:
        print(f"note: {lock.note}", file=sys.stderr)
    try:
        return _run_locked(cfg, t0)
    finally:
        lock.release()


def _write_failed(exc: OSError, cfg: RunConfig, rows_path: Path, wall_s: float) -> int:
    from calibration.rows import read_rows

    run_dir = cfg.out
    _record_write_error(run_dir, exc)
    kept = len(read_rows(rows_path))
    where = f"are kept in {rows_path}" if rows_path.exists() else f"(none; {rows_path} could not be created)"
    print(f"error: a write failed after {wall_s:.1f} s: {exc.strerror or exc} ({exc.filename or 'a file of the run'})"
          f"; the run stopped there. The {kept} rows measured before it {where}. Free some space, "
          f"then continue with: python -m calibration run --{cfg.mode} --out {run_dir} --resume", file=sys.stderr)
    return 1


def _run_locked(cfg: RunConfig, t0: float) -> int:
    from calibration.bench.grids import is_distributed
    from calibration.bench.launch import Rendezvous, label, launch
    from calibration.env import capture_env
    from calibration.rows import Step, append_row, finished_keys, read_rows, read_samples, touch
    from calibration.timing import timing_for

    run_dir, rows_path, samples_path = cfg.out, cfg.out / "rows.jsonl", cfg.out / SAMPLES_NAME
    if not cfg.resume and ((rows_path.exists() and read_rows(rows_path)) or read_samples(samples_path)):
        print(f"{rows_path} already holds rows (or {samples_path} samples): add --resume to continue that run, "
              f"or choose another --out", file=sys.stderr)
        return 2
    try:  # created now, so every message naming them names files that exist
        touch(rows_path)
        touch(samples_path)
    except OSError as exc:
        if not _is_write_error(exc):
            raise
        return _write_failed(exc, cfg, rows_path, time.perf_counter() - t0)
    env = capture_env()
    try:
        run_id = _run_meta(run_dir, cfg, env)
    except OSError as exc:
        if not _is_write_error(exc):
            raise
        return _write_failed(RunWriteError.wrap(exc, run_dir / "run.json", "writing run.json"), cfg, rows_path,
                             time.perf_counter() - t0)
    planned = plan_run(cfg, env)  # probe, then plan: the grids sized to the budget from this machine's speed
    env.update(planned.probe_env)
    print_plan(planned, starting=True)
    mode, devices, sizes, steps = planned.mode, planned.devices, planned.sizes, planned.steps
    done_keys = finished_keys(read_rows(rows_path)) if cfg.resume else set()
    prior = read_samples(samples_path) if cfg.resume else {}
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
    progress = Progress(len(steps), len(steps) - len(pending), cfg.jsonl)
    print(f"calibration {mode}: {len(pending)} of {len(steps)} steps to run on {', '.join(devices)}, "
          f"world sizes {sizes}, rows -> {rows_path}", file=sys.stderr)
    interrupted, launch_index = False, 0
    write_error: OSError | None = None
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
            progress.emit(f"{device}: {len(group)} local steps, samples interleaved", advance=False,
                          stage="local")
            resumed = sum(len(prior.get(s.key(), [])) for s in group)
            if resumed:
                print(f"{device}: continuing from {resumed} samples stored in {samples_path}", file=sys.stderr)
            _execute_durable(group, timing_for(mode, device), run_id, on_row, samples_path, prior,
                             functools.partial(progress.round, device, len(group)))

    try:
        if cfg.nnodes == 1:  # one node: local benches first; several: every node joins the launches first
            run_local()
        while distributed:
            step = distributed[0]
            group = [s for s in distributed if (s.device, s.world_size) == (step.device, step.world_size)]
            progress.emit(f"torchrun {step.device} ws={step.world_size}: {len(group)} steps", advance=False,
                          stage="distributed")
            resumed = {s.key(): prior[s.key()] for s in group if prior.get(s.key())}
            if resumed:
                print(f"torchrun {step.device} ws={step.world_size}: continuing from "
                      f"{sum(map(len, resumed.values()))} samples stored in {samples_path}", file=sys.stderr)
            launch(group, device=step.device, world_size=step.world_size, rows_path=rows_path, run_id=run_id,
                   mode=mode, work_dir=run_dir / "launch", index=launch_index, rdzv=rdzv,
                   on_done=lambda msg: progress.emit(msg.get("label", "?"), msg.get("status")),
                   samples_path=samples_path, prior=resumed)
            launch_index += 1
            keys = {s.key() for s in group}
            distributed = [s for s in distributed if s.key() not in keys]
        if cfg.nnodes > 1:
            run_local()
        from calibration.quality.hook import quality_share, run_step  # writes <out>/quality.json

        if quality_share(cfg, mode) > 0:
            progress.note("quality calibration: training small models, then compressing and measuring them",
                          "quality")

        def quality_log(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)
            progress.note(msg, "quality")

        run_step(cfg, mode, log=quality_log)
    except KeyboardInterrupt:
        interrupted = True
    except OSError as exc:  # a full disk: stop cleanly, keep what was written (a launch stops its ranks first)
        if not _is_write_error(exc):
            raise
        write_error = exc
    finally:
        progress.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    wall_s = time.perf_counter() - t0
    if write_error is not None:
        return _write_failed(write_error, cfg, rows_path, wall_s)
    if interrupted:
        n_rows, n_samples = len(read_rows(rows_path)), sum(map(len, read_samples(samples_path).values()))
        print(f"interrupted after {wall_s:.1f} s; the {n_rows} rows so far are in {rows_path} and the "
              f"{n_samples} samples taken so far in {samples_path}. Continue with: python -m calibration run --{cfg.mode} --out {run_dir} --resume", file=sys.stderr)
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
