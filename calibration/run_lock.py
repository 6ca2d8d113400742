"""One run at a time per folder: `<out>/run.lock`, held (flock) for the run; a dead run's lock is taken over."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.rows import RunWriteError

LOCK_NAME = "run.lock"


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
