"""One calibration at a time per server process: the running one, freed when it ends or the server exits."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from pathlib import Path

from app_pages._calibrate_run import REPO_ROOT, CalibrationRun, new_run_dir

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
              cwd: Path = REPO_ROOT, budget_s: float | None = None, skip: Sequence[str] = (),
              force: bool = False) -> CalibrationRun:
    """Start a calibration unless one is already running in this server (then RunBusyError)."""
    with _ACTIVE_LOCK:
        busy = _ACTIVE.get("run")
        if busy is not None:
            raise RunBusyError(f"a calibration is already running (writing to {busy.out_dir}); "
                          "wait for it to finish or stop it first")
        run = CalibrationRun(out_dir or new_run_dir(), command, cwd, budget_s, skip, on_finish=_release, force=force)
        _ACTIVE["run"] = run
    return run.start()
