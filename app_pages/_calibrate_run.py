"""A calibration run as a subprocess the page can watch: `python -m calibration run --quick --out DIR`, and
the plan before it (the same command with `--plan-only`, a short subprocess: `plan_run`).

The child prints `PROGRESS {json}` lines on stdout (calibration.progress.Progress: one per finished step and one per
sampling round, with its phase, samples taken and planned, and the bar's position) and human progress bars on
stderr. Two reader threads fill the run's state under a lock; the page only ever reads `snapshot()`. When the
child exits, the run loads DIR/profile.json with the strict loader. No torch and no streamlit here: this module
only launches and watches a process (one at a time per server: app_pages/_calibrate_slot.py).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simulator.profile import ProfileError, load_profile

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS_DIR_ENV = "MODELFOLIO_RUNS_DIR"
PROGRESS_PREFIX = "PROGRESS "
TAIL_LINES = 40
KILL_AFTER_S = 15.0  # after Cancel, SIGINT first (the runner keeps its rows); SIGKILL the group if it lingers
_BAR_RE = re.compile(r"\s*\d+%\|[^|]*\|\s*\d+/\d+\s*\[[^\]]*\]")  # a tqdm bar: progress, not an error

RUNNING, DONE, FAILED, STOPPED = "running", "done", "failed", "stopped"


def runs_dir() -> Path:
    """Where page-started runs write: $MODELFOLIO_RUNS_DIR, else runs/ under the repository (git-ignored)."""
    return Path(os.environ.get(RUNS_DIR_ENV) or REPO_ROOT / "runs")


def new_run_dir(base: Path | None = None) -> Path:
    base = base or runs_dir()
    stem = f"calib-{time.strftime('%Y%m%d-%H%M%S')}"
    out, n = base / stem, 1
    while out.exists():
        n += 1
        out = base / f"{stem}-{n}"
    return out


def _plan_options(budget_s: float | None, skip: Sequence[str] = ()) -> list[str]:
    """The options a plan is made with: its budget and the benches it leaves out."""
    return [*(["--budget-s", f"{budget_s:g}"] if budget_s else []), *(["--skip", ",".join(skip)] if skip else [])]


def calibration_command(out_dir: Path, budget_s: float | None = None, resume: bool = False,
                        skip: Sequence[str] = (), force: bool = False) -> list[str]:
    """`python -m calibration run --quick` into `out_dir`, with its PROGRESS lines on stdout; `force`: a plan
    predicted over its budget runs anyway (the user chose "Start anyway")."""
    return [sys.executable, "-m", "calibration", "run", "--quick", "--out", str(out_dir),
            *_plan_options(budget_s, skip), "--progress", "jsonl", *(["--resume"] if resume else []),
            *(["--force"] if force else [])]


def shell_text(command: Sequence[str]) -> str:
    """A command as a user would type it: `python` for this interpreter, arguments quoted for a shell."""
    args = list(command)
    if args and args[0] == sys.executable:
        args[0] = "python"
    return shlex.join(args)


def resume_command(command: Sequence[str]) -> list[str]:
    """The same run, continued from the rows and samples it kept (`--resume`)."""
    return [*command, *([] if "--resume" in command else ["--resume"])]


# ---------------------------------------------------------------- the plan, before a run

PREVIEW_TIMEOUT_S = 120.0


class PlanError(RuntimeError):
    """The probe-and-plan subprocess failed; the message says how and ends with its last error lines."""


def preview_command(budget_s: float | None, skip: Sequence[str] = ()) -> list[str]:
    """The run's own planning, alone (`--plan-only`: probe, plan, print a PLAN line; nothing measured), in a
    subprocess so torch stays out of the page's process."""
    return [sys.executable, "-m", "calibration", "run", "--quick", "--plan-only", *_plan_options(budget_s, skip),
            "--progress", "jsonl"]


def plan_run(budget_s: float | None, skip: Sequence[str] = (), cwd: Path = REPO_ROOT,
             timeout_s: float = PREVIEW_TIMEOUT_S) -> dict[str, Any]:
    """Probe this machine and plan a quick run (`--plan-only`, a few seconds): benches, points, emulated dtypes,
    the predicted duration against the budget and, over it, what fits (calibration.probe.summary, advice).
    Blocks; raises PlanError with the reason."""
    command = preview_command(budget_s, skip)
    try:
        done = subprocess.run(command, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True,
                              text=True, encoding="utf-8", errors="replace", timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PlanError(f"the probe took over {timeout_s:.0f} s and was stopped") from None
    except OSError as exc:
        raise PlanError(f"could not start the probe ({exc})") from None
    line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("PLAN ")), None)
    tail = "\n".join(done.stderr.strip().splitlines()[-5:])
    if done.returncode != 0 or line is None:
        raise PlanError(f"the probe exited with code {done.returncode}" + (f": {tail}" if tail else ""))
    try:
        plan = json.loads(line[len("PLAN "):])
    except json.JSONDecodeError as exc:
        raise PlanError(f"the probe printed an unreadable plan ({exc})") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("predicted_s"), int | float):
        raise PlanError("the probe printed a plan without a predicted duration")
    return plan


def parse_progress(line: str) -> dict[str, Any] | None:
    """The payload of a `PROGRESS {json}` line, or None for any other line (or a malformed one)."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        msg = json.loads(line[len(PROGRESS_PREFIX):])
    except json.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) else None


ROUND_KEYS = ("round", "points", "points_done", "warmed", "samples", "samples_planned", "eta_s", "part",
              "parts")  # what a sampling round's PROGRESS line tells (calibration.progress.Progress.round)


def _number(value: Any) -> float | None:
    """A finite-or-infinite JSON number as a float; None for anything else (a bool, a string, NaN)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value == value else None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the page shows, copied under the lock. `stage` is what the run is doing ("local", "distributed",
    "quality"; None before the first line), `steps_done` the CLI bar's position (finished steps plus the share of an
    interleaved group's samples taken), and `rounds`, `phase` ("warmup" | "sampling") and `device` the last
    sampling round's report (ROUND_KEYS)."""

    status: str
    out_dir: Path
    command: tuple[str, ...]
    done: int
    total: int | None
    step: str
    failed_steps: int
    elapsed_s: float
    returncode: int | None
    error: str | None
    stderr_tail: tuple[str, ...]
    stdout_tail: tuple[str, ...]
    profile: dict[str, Any] | None
    stage: str | None = None
    steps_done: float = 0.0
    phase: str | None = None
    rounds: dict[str, float] = dataclasses.field(default_factory=dict)
    device: str = ""  # the device of the group `rounds` describes

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def fraction(self) -> float:
        return min(max(max(self.steps_done, self.done) / self.total, 0.0), 1.0) if self.total else 0.0


class CalibrationRun:
    """One subprocess and its watched state; `start` returns at once, the threads do the reading."""

    def __init__(self, out_dir: Path, command: Sequence[str] | None = None, cwd: Path = REPO_ROOT,
                 budget_s: float | None = None, skip: Sequence[str] = (),
                 on_finish: Callable[[CalibrationRun], None] | None = None, force: bool = False) -> None:
        self.out_dir, self.cwd = Path(out_dir), Path(cwd)
        self._on_finish = on_finish  # told once the run has finished (the server's slot frees itself)
        self.command = tuple(command or calibration_command(self.out_dir, budget_s=budget_s, skip=skip, force=force))
        self._lock = threading.Lock()
        self._status, self._done, self._total, self._step, self._failed_steps = RUNNING, 0, None, "starting", 0
        self._stage: str | None = None
        self._phase: str | None = None
        self._steps_done = 0.0
        self._rounds: dict[str, float] = {}
        self._device = ""
        self._returncode: int | None = None
        self._error: str | None = None
        self._profile: dict[str, Any] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._stdout: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._t0 = time.monotonic()
        self._t1: float | None = None
        self._stop_requested = False
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self.consumed = False  # set by the page once it has taken the result

    # ------------------------------------------------------------ control

    def start(self) -> CalibrationRun:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            self.out_dir.parent.mkdir(parents=True, exist_ok=True)
            self._proc = subprocess.Popen(
                self.command, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", bufsize=1,
                start_new_session=True,
            )
        except OSError as exc:
            self._finish(FAILED, None, f"could not start `{' '.join(self.command)}`: {exc}")
            return self
        err = threading.Thread(target=self._read_stderr, name="calibration-stderr", daemon=True)
        out = threading.Thread(target=self._read_stdout_then_wait, args=(err,), name="calibration-stdout",
                               daemon=True)
        self._threads = [err, out]
        err.start()
        out.start()
        return self

    def stop(self) -> None:
        """Cancel: SIGINT to the run's process group, as Ctrl-C in a terminal (the runner stops, its torchrun
        ranks with it, keeping every row and sample stored so far); SIGKILL the group if it lingers."""
        with self._lock:
            if self._status != RUNNING or self._proc is None:
                return
            self._stop_requested = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGINT)  # our own child's group (start_new_session)
        timer = threading.Timer(KILL_AFTER_S, self._kill_group)
        timer.daemon = True
        timer.start()

    def wait(self, timeout_s: float | None = None) -> Snapshot:
        """Block until the run has finished (tests and scripts; the page never waits)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        with self._lock:
            end = self._t1 if self._t1 is not None else time.monotonic()
            return Snapshot(
                status=self._status, out_dir=self.out_dir, command=self.command, done=self._done,
                total=self._total, step=self._step, failed_steps=self._failed_steps, elapsed_s=end - self._t0,
                returncode=self._returncode, error=self._error, stderr_tail=tuple(self._stderr),
                stdout_tail=tuple(self._stdout), profile=self._profile, stage=self._stage,
                steps_done=self._steps_done, phase=self._phase, rounds=dict(self._rounds), device=self._device,
            )

    # ------------------------------------------------------------ threads

    def _kill_group(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # our own child's group (start_new_session)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:  # text mode: "\r" from progress bars also ends a line
            line = _BAR_RE.sub("", raw).rstrip()  # a message printed after a bar redraw shares its line
            if line:
                with self._lock:
                    self._stderr.append(line)

    def _read_stdout_then_wait(self, stderr_reader: threading.Thread) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            msg = parse_progress(line)
            with self._lock:
                if msg is None:
                    if line:
                        self._stdout.append(line)
                    continue
                self._take(msg)
        stderr_reader.join()
        returncode = proc.wait()
        self._conclude(returncode)

    def _take(self, msg: dict[str, Any]) -> None:
        """One PROGRESS line into the state (under the lock); a field of the wrong type is ignored, not fatal."""
        self._done = int(_number(msg.get("done")) or 0)
        self._total = int(_number(msg.get("total")) or 0) or self._total
        self._step = str(msg.get("step", self._step))
        self._failed_steps += msg.get("status") == "failed"
        self._steps_done = _number(msg.get("steps_done")) or float(self._done)
        if isinstance(msg.get("stage"), str):
            self._stage = msg["stage"]
        if "samples_planned" in msg:  # a sampling round's (or warm-up's) report
            numbers = {k: _number(msg.get(k)) for k in ROUND_KEYS}
            self._rounds = {k: v for k, v in numbers.items() if v is not None}
            self._phase = str(msg.get("phase") or "sampling")
            self._device = str(msg.get("device") or "")

    def _conclude(self, returncode: int) -> None:
        if self._stop_requested:
            self._finish(STOPPED, returncode, None)
        elif returncode != 0:
            self._finish(FAILED, returncode, f"the calibration exited with code {returncode}")
        elif not (self.out_dir / "profile.json").is_file():
            self._finish(FAILED, returncode, f"the calibration finished but wrote no profile.json in {self.out_dir}")
        else:
            try:
                profile = load_profile(self.out_dir / "profile.json")
            except ProfileError as exc:
                self._finish(FAILED, returncode, f"{self.out_dir / 'profile.json'} was rejected by the loader: {exc}")
            else:
                self._finish(DONE, returncode, None, profile)

    def _finish(self, status: str, returncode: int | None, error: str | None,
                profile: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._status, self._returncode, self._error, self._profile = status, returncode, error, profile
            self._t1 = time.monotonic()
        if self._on_finish is not None:
            self._on_finish(self)
