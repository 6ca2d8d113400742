"""The measurement record: one JSON object per line in an append-only `rows.jsonl`.

This format is the contract with the fitting half (`calibration/fit`, `calibration/profile_writer.py`):

    {"bench", "device", "dtype", "params", "world_size", "oversubscribed", "repeats",
     "median_s", "p25_s", "p75_s", "times_s", "flops", "bytes", "status", "error",
     "extra", "t_unix", "run_id"}

Rows are written with one `os.write` on an O_APPEND descriptor and fsync'd, so a killed run leaves
at worst one truncated last line, which `read_rows` skips; a write that fails (a full disk) raises
`RunWriteError` naming the file, and the rows before it stay readable.  Imports no torch.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "failed", "skipped"]

BENCHES: tuple[str, ...] = (
    "gemm", "block_fwd_bwd", "moe_layer", "all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all",
    "ps_push_pull", "ddp_step", "infer_linear", "prefill", "decode", "prune_latency",
)
BENCH_TITLES: dict[str, str] = {  # what each bench measures, in a reader's words (the plan on the Calibrate page)
    "gemm": "matrix multiplies (GEMM)", "block_fwd_bwd": "transformer block, forward and backward",
    "moe_layer": "mixture-of-experts layer, forward", "all_to_all": "all-to-all",
    "all_reduce": "all-reduce", "all_gather": "all-gather", "reduce_scatter": "reduce-scatter",
    "broadcast": "broadcast", "ps_push_pull": "parameter-server push and pull", "ddp_step": "DDP training step",
    "infer_linear": "inference linear layers", "prefill": "prefill (prompt processing)",
    "decode": "decode (token generation)", "prune_latency": "pruned layers' latency",
}
DISTRIBUTED_BENCHES: frozenset[str] = frozenset(
    {"all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "ps_push_pull", "ddp_step"}
)
ROW_KEYS: tuple[str, ...] = (
    "bench", "device", "dtype", "params", "world_size", "oversubscribed", "repeats", "median_s",
    "p25_s", "p75_s", "times_s", "flops", "bytes", "status", "error", "extra", "t_unix", "run_id",
)


# what a failing write looks like (a full disk or quota, a read-only or failing device, a file over the size limit)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


class RunWriteError(OSError):
    """A file of the run could not be written (`filename`); what was written before it is kept."""

    @classmethod
    def wrap(cls, exc: OSError, path: str | os.PathLike[str], what: str) -> RunWriteError:
        out = cls(exc.errno, f"{exc.strerror or exc} ({what})", str(path))
        out.__cause__ = exc
        return out


@dataclass(frozen=True)
class Step:
    """One point to measure: what identifies a row, without its results."""

    bench: str
    device: str
    dtype: str | None
    params: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1

    def key(self) -> str:
        return step_key(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {"bench": self.bench, "device": self.device, "dtype": self.dtype,
                "params": dict(self.params), "world_size": self.world_size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        return cls(bench=d["bench"], device=d["device"], dtype=d.get("dtype"),
                   params=dict(d.get("params") or {}), world_size=int(d.get("world_size", 1)))


def step_key(row: dict[str, Any]) -> str:
    """Identity of a measured point: bench + device + dtype + world size + params (sorted)."""
    return json.dumps([row["bench"], row["device"], row.get("dtype"), int(row.get("world_size", 1)),
                       row.get("params") or {}], sort_keys=True, separators=(",", ":"))


def summarize(times_s: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """(median, p25, p75) with linear interpolation between order statistics; Nones when empty."""
    xs = sorted(float(t) for t in times_s if t is not None and math.isfinite(t))
    if not xs:
        return None, None, None

    def q(p: float) -> float:
        pos = p * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return q(0.5), q(0.25), q(0.75)


def make_row(step: Step, *, run_id: str, times_s: Iterable[float] = (), status: Status = "ok",
             error: str | None = None, flops: float | None = None, bytes: float | None = None,
             extra: dict[str, Any] | None = None, oversubscribed: bool = False,
             dtype: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete row.  `dtype`/`params` override the step's (a bench may learn its path at run time)."""
    times = [float(t) for t in times_s]
    median_s, p25_s, p75_s = summarize(times)
    return {
        "bench": step.bench,
        "device": step.device,
        "dtype": dtype if dtype is not None else step.dtype,
        "params": dict(params if params is not None else step.params),
        "world_size": int(step.world_size),
        "oversubscribed": bool(oversubscribed),
        "repeats": len(times),
        "median_s": median_s,
        "p25_s": p25_s,
        "p75_s": p75_s,
        "times_s": times,
        "flops": None if flops is None else float(flops),
        "bytes": None if bytes is None else float(bytes),
        "status": status,
        "error": error,
        "extra": dict(extra or {}),
        "t_unix": time.time(),
        "run_id": run_id,
    }


def failed_row(step: Step, error: str, *, run_id: str, oversubscribed: bool = False,
               status: Status = "failed") -> dict[str, Any]:
    return make_row(step, run_id=run_id, status=status, error=error[-2000:], oversubscribed=oversubscribed)


def _clean(value: Any) -> Any:
    """NaN/inf are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def append_row(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one row as one line, in a single write, then fsync.

    If the file ends in a partial line (a run killed mid-write), a newline is written first so the
    new row never merges with the fragment.
    """
    append_lines(path, [row], "a row")


def append_lines(path: str | os.PathLike[str], records: Sequence[dict[str, Any]], what: str = "lines") -> None:
    """Append JSON records, one a line, in a single write under the file's flock, then fsync."""
    data = b"".join((json.dumps(_clean(r), separators=(",", ":"), allow_nan=False) + "\n").encode()
                    for r in records)
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunWriteError.wrap(exc, p, f"opening {p.name} to append {what}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # ranks and the runner append to one file: one writer at a time
        size = os.fstat(fd).st_size
        if size and data:
            with p.open("rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    data = b"\n" + data
        written = 0
        while written < len(data):  # os.write may write less than asked
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:  # at worst a partial last line, which readers skip and the next append ends
        raise RunWriteError.wrap(exc, p, f"appending {what}") from exc
    finally:
        os.close(fd)  # closing releases the lock


def touch(path: str | os.PathLike[str]) -> None:
    """Create the file (empty) if it is missing, so a message naming it names a file that exists."""
    append_lines(path, [], "nothing (creating it)")


def read_samples(path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """`samples.jsonl` (one line per point per interleaved round: {"key", "times_s", ...}): every stored
    sample of each point, in order; a truncated or garbled line (a killed writer) is skipped."""
    p = Path(path)
    out: dict[str, list[float]] = {}
    if not p.exists():
        return out
    with p.open("rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw.decode("utf-8", errors="replace"))
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("times_s"), list):
                out.setdefault(rec["key"], []).extend(float(t) for t in rec["times_s"] if t is not None)
    return out


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete rows; a truncated or garbled line (a killed writer) is skipped, not fatal."""
    p = Path(path)
    if not p.exists():
        return []
    rows: list[dict[str, Any]] = []
    with p.open("rb") as f:
        for raw in f:
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "bench" in row and "status" in row:
                rows.append(row)
    return rows


def finished_keys(rows: Iterable[dict[str, Any]]) -> set[str]:
    """Keys of steps that need no re-run on --resume: measured ("ok") or deliberately "skipped".

    "failed" steps are retried on resume.
    """
    return {step_key(r) for r in rows if r.get("status") in ("ok", "skipped")}
