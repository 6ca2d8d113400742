"""The run folder's records: its file names, run.json, and what a failed write (a full disk) leaves and says."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from calibration.rows import WRITE_ERRNOS, RunWriteError, read_rows
from calibration.run_config import RunConfig

ROWS_NAME, SAMPLES_NAME, META_NAME = "rows.jsonl", "samples.jsonl", "run.json"


def record_write_error(run_dir: Path, exc: OSError) -> None:
    """Best effort: note the failed write in run.json (the disk may still be full: then only the message tells)."""
    meta_path = run_dir / META_NAME
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        meta["write_error"] = {"file": exc.filename, "error": exc.strerror or str(exc), "errno": exc.errno,
                               "at_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(meta_path)


def is_write_error(exc: BaseException) -> bool:
    return isinstance(exc, RunWriteError) or (isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS)


def write_run_meta(run_dir: Path, cfg: RunConfig, env: dict[str, Any]) -> str:
    """Write run.json (the run's options and environment); returns the run id: kept from run.json when resuming,
    new otherwise."""
    meta_path = run_dir / META_NAME
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


def write_failed(exc: OSError, cfg: RunConfig, rows_path: Path, wall_s: float) -> int:
    """A failed write ends the run: recorded in run.json where possible, and a message naming the rows kept and how
    to continue (--resume); exit status 1."""
    run_dir = cfg.out
    record_write_error(run_dir, exc)
    kept = len(read_rows(rows_path))
    where = f"are kept in {rows_path}" if rows_path.exists() else f"(none; {rows_path} could not be created)"
    print(f"error: a write failed after {wall_s:.1f} s: {exc.strerror or exc} ({exc.filename or 'a file of the run'})"
          f"; the run stopped there. The {kept} rows measured before it {where}. Free some space, "
          f"then continue with: python -m calibration run --{cfg.mode} --out {run_dir} --resume", file=sys.stderr)
    return 1
