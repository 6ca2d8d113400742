"""torchrun entry: `python -m torch.distributed.run ... -m calibration.dist_worker SPEC.json`.

Every rank runs every step of the spec; after each step the ranks exchange their status, and local
rank 0 of each node appends the row (times are already the max over ranks) and prints a
CALIB_STEP_DONE line for the runner's progress.  A process group that breaks ends the launch; the
runner records the steps it did not reach as failed.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from calibration.bench.launch import DONE_PREFIX, label
from calibration.bench.registry import execute
from calibration.rows import Step, append_row, failed_row
from calibration.timing import timing_for


def _init(device: str, pg_timeout_s: float) -> None:
    timeout = dt.timedelta(seconds=pg_timeout_s)
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device cuda requested but torch.cuda.is_available() is False on this rank")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl", timeout=timeout)
    else:
        dist.init_process_group("gloo", timeout=timeout)


def _merge(row: dict[str, Any], statuses: list[tuple[str, str | None]], step: Step, run_id: str) -> dict[str, Any]:
    """A step failed if any rank failed; the row says which rank and why."""
    failed = [(r, err) for r, (status, err) in enumerate(statuses) if status == "failed"]
    if failed and row["status"] != "failed":
        r, err = failed[0]
        return failed_row(step, f"rank {r}: {err}", run_id=run_id, oversubscribed=row["oversubscribed"])
    return row


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    device, run_id, rows_path = spec["device"], spec["run_id"], Path(spec["rows_path"])
    torch.set_num_threads(int(spec["threads"]))
    _init(device, float(spec["pg_timeout_s"]))
    rank, world = dist.get_rank(), dist.get_world_size()
    writer = int(os.environ.get("LOCAL_RANK", "0")) == 0
    cfg = timing_for(spec["mode"], device)
    broken = False
    for d in spec["steps"]:
        step = Step.from_dict(d)
        if step.world_size != world:
            row = failed_row(step, f"launched with world_size {world}, step wants {step.world_size}", run_id=run_id)
        else:
            row = execute(step, cfg, run_id, ranks_per_node=int(spec["ranks_per_node"]))
        try:
            statuses: list[Any] = [None] * world
            dist.all_gather_object(statuses, (row["status"], row["error"]))
            row = _merge(row, statuses, step, run_id)
        except Exception as e:  # the group is gone (a rank died or timed out): stop this launch
            broken = True
            if row["status"] == "ok":
                row = failed_row(step, f"rank {rank}: process group broke after the step: {e}", run_id=run_id)
        if writer:
            append_row(rows_path, row)
            print(DONE_PREFIX + json.dumps({"key": step.key(), "status": row["status"], "label": label(step)}),
                  flush=True)
        gc.collect()
        if broken:
            break
    if not broken:
        dist.barrier()
    dist.destroy_process_group()
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
