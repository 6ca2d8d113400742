"""A calibration run as a subprocess the page can watch: `python -m calibration run --quick --out DIR`.

The child prints one `PROGRESS {"done", "total", "step", "status"}` line per step on stdout and human
progress bars on stderr. Two reader threads fill a `RunState` under a lock; the page only ever reads
`snapshot()`. When the child exits, the run loads DIR/profile.json with the strict loader. No torch and
no streamlit here: this module only launches and watches a process.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.profile import ProfileError, load_profile

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS_DIR_ENV = "MODELFOLIO_RUNS_DIR"
PROGRESS_PREFIX = "PROGRESS "
TAIL_LINES = 40
KILL_AFTER_S = 15.0  # after Stop, SIGTERM first (the runner keeps its rows); SIGKILL the group if it lingers
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


def calibration_command(out_dir: Path) -> list[str]:
    return [sys.executable, "-m", "calibration", "run", "--quick", "--out", str(out_dir)]


def parse_progress(line: str) -> dict[str, Any] | None:
    """The payload of a `PROGRESS {json}` line, or None for any other line (or a malformed one)."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        msg = json.loads(line[len(PROGRESS_PREFIX):])
    except json.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) else None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the page shows, copied under the lock."""

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

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def fraction(self) -> float:
        return min(max(self.done / self.total, 0.0), 1.0) if self.total else 0.0


class CalibrationRun:
    """One subprocess and its watched state; `start` returns at once, the threads do the reading."""

    def __init__(self, out_dir: Path, command: Sequence[str] | None = None, cwd: Path = REPO_ROOT) -> None:
        self.out_dir, self.cwd = Path(out_dir), Path(cwd)
        self.command = tuple(command or calibration_command(self.out_dir))
        self._lock = threading.Lock()
        self._status, self._done, self._total, self._step, self._failed_steps = RUNNING, 0, None, "starting", 0
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
        """SIGTERM: the calibration runner stops like Ctrl-C and keeps the rows measured so far."""
        with self._lock:
            if self._status != RUNNING or self._proc is None:
                return
            self._stop_requested = True
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()
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
                stdout_tail=tuple(self._stdout), profile=self._profile,
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
                self._done = int(msg.get("done", self._done) or 0)
                self._total = int(msg["total"]) if msg.get("total") else self._total
                self._step = str(msg.get("step", self._step))
                self._failed_steps += msg.get("status") == "failed"
        stderr_reader.join()
        returncode = proc.wait()
        self._conclude(returncode)

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
        _release(self)


# ---------------------------------------------------------------- one run at a time, per server process

_ACTIVE: dict[str, CalibrationRun] = {}
_ACTIVE_LOCK = threading.Lock()


class RunBusyError(RuntimeError):
    """Another calibration is still running; two at once would time each other."""


def active_run() -> CalibrationRun | None:
    with _ACTIVE_LOCK:
        return _ACTIVE.get("run")


def _release(run: CalibrationRun) -> None:
    with _ACTIVE_LOCK:
        if _ACTIVE.get("run") is run:
            del _ACTIVE["run"]


@atexit.register
def _stop_active_at_exit() -> None:
    """A server that exits stops its calibration (its own session would otherwise outlive the server)."""
    run = active_run()
    if run is not None:
        run.stop()


def start_run(out_dir: Path | None = None, command: Sequence[str] | None = None,
              cwd: Path = REPO_ROOT) -> CalibrationRun:
    """Start a calibration unless one is already running in this server (then RunBusyError)."""
    with _ACTIVE_LOCK:
        busy = _ACTIVE.get("run")
        if busy is not None:
            raise RunBusyError(f"a calibration is already running (writing to {busy.out_dir}); "
                          "wait for it to finish or stop it first")
        run = CalibrationRun(out_dir or new_run_dir(), command, cwd)
        _ACTIVE["run"] = run
    return run.start()
