"""torchrun entry: `python -m torch.distributed.run ... -m calibration.dist_worker SPEC.json`.

Every rank runs every step of the spec (consecutive collectives together, their samples interleaved, each
sampling round's samples appended durably to the spec's `samples_path` by local rank 0, which prints a CALIB_ROUND
line for the runner's deadline, and continued from rank 0's spec's `prior` samples when a killed launch is
resumed); after each step the ranks exchange their status, and local
rank 0 of each node appends the row (times are already the max over ranks) and prints a
CALIB_STEP_DONE line for the runner's progress.  A process group that breaks ends the launch: its rows say which
host failed and how (calibration/faults.py: peer died, connection lost, timed out), each rank that saw it prints a
CALIB_LAUNCH_BROKEN line (the runner then gives torchrun a short grace to exit, not the launch's whole time), and
the runner records the steps it did not reach as failed.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from calibration.bench.launch import BROKEN_PREFIX, DONE_PREFIX, ROUND_PREFIX, label
from calibration.bench.registry import INTERLEAVED_DISTRIBUTED, execute, execute_collectives_interleaved
from calibration.faults import Peer, diagnose, listen
from calibration.rows import Step, append_lines, append_row, failed_row
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


def _peer_table(node_rank: int, node_addr: str, port: int) -> list[Peer]:
    """Every rank's node, address and liveness port, by rank (one all_gather at the start of the launch)."""
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, (node_rank, node_addr, port))
    return [Peer(r, int(n), str(a), int(p)) for r, (n, a, p) in enumerate(everyone)]


def _name_the_fault(rows: list[dict[str, Any]], me: Peer, peers: list[Peer]) -> list[dict[str, Any]]:
    """A broken group's failed rows, their errors rewritten to name the host and the cause (faults.diagnose; the
    peers are probed once per distinct error)."""
    said: dict[str, str | None] = {}
    out = []
    for row in rows:
        error = row.get("error")
        if row["status"] == "failed" and error:
            if error not in said:
                said[error] = diagnose(error, me, peers)
            row = {**row, "error": said[error]} if said[error] else row
        out.append(row)
    return out


def _agreed_prior(mine: dict[str, list[float]]) -> dict[str, list[float]]:
    """Rank 0's stored samples, on every rank. Each node reads its own folder, and a fault can land between two
    nodes storing the same round (a worker killed, a link cut after one side's last read): ranks continuing from
    different samples would follow different schedules and wait in different collectives."""
    holder: list[Any] = [mine]
    dist.broadcast_object_list(holder, src=0)
    return dict(holder[0] or {})


INTERLEAVE_MAX_BYTES = 512 << 20  # message bytes timed together: bounds the buffers held at once


def _interleavable(steps: list[Step], start: int, world: int) -> list[Step]:
    """The run of collective steps from `start` on (this world size) to time together, at most
    INTERLEAVE_MAX_BYTES of messages; [] when steps[start] is not one (DDP steps are timed alone)."""
    batch: list[Step] = []
    total = 0.0
    for step in steps[start:]:
        nbytes = float(step.params.get("bytes") or 0)
        if step.bench not in INTERLEAVED_DISTRIBUTED or step.world_size != world or (
                batch and total + nbytes > INTERLEAVE_MAX_BYTES):
            break
        batch.append(step)
        total += nbytes
    return batch


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    device, run_id, rows_path = spec["device"], spec["run_id"], Path(spec["rows_path"])
    torch.set_num_threads(int(spec["threads"]))
    _init(device, float(spec["pg_timeout_s"]))
    rank, world = dist.get_rank(), dist.get_world_size()
    liveness = listen(spec.get("node_addr") or "127.0.0.1")  # open while this process lives (faults.probe)
    peers = _peer_table(int(spec.get("node_rank") or 0), spec.get("node_addr") or "127.0.0.1",
                        int(liveness.getsockname()[1]))
    writer = int(os.environ.get("LOCAL_RANK", "0")) == 0
    cfg = timing_for(spec["mode"], device)
    steps = [Step.from_dict(d) for d in spec["steps"]]
    ranks_per_node = int(spec["ranks_per_node"])
    samples_path = Path(spec["samples_path"]) if spec.get("samples_path") else None
    prior = _agreed_prior(spec.get("prior") or {})
    rounds = [0]

    def store_round(new: dict[str, list[float]]) -> None:
        """A round's samples (max over ranks), appended durably before the next round starts."""
        rounds[0] += 1
        if writer and samples_path is not None and new:
            t = time.time()
            append_lines(samples_path, [{"key": key, "run_id": run_id, "round": rounds[0], "times_s": xs,
                                         "t_unix": t, "launch": spec.get("tag")} for key, xs in new.items()],
                         "a round's samples")
            print(ROUND_PREFIX + json.dumps({"round": rounds[0]}), flush=True)  # progress: keeps the deadline ahead

    broken, i, fault = False, 0, ""
    while i < len(steps) and not broken:
        batch = _interleavable(steps, i, world)
        if batch:  # collectives of this launch, timed together (registry.execute_collectives_interleaved)
            rows, broken = execute_collectives_interleaved(batch, cfg, run_id, ranks_per_node, prior=prior,
                                                           on_round=store_round)
            rows = _name_the_fault(rows, peers[rank], peers) if broken else rows
        else:
            step = steps[i]
            batch = [step]
            if step.world_size != world:
                rows = [failed_row(step, f"launched with world_size {world}, step wants {step.world_size}",
                                   run_id=run_id)]
            else:
                rows = [execute(step, cfg, run_id, ranks_per_node=ranks_per_node)]
        for step, row in zip(batch, rows, strict=True):
            if not broken:
                try:
                    statuses: list[Any] = [None] * world
                    dist.all_gather_object(statuses, (row["status"], row["error"]))
                    row = _merge(row, statuses, step, run_id)
                except Exception as e:  # the group is gone (a rank died or timed out): stop this launch
                    broken = True
                    if row["status"] == "ok":
                        row = failed_row(step, diagnose(str(e), peers[rank], peers)
                                         or f"rank {rank}: process group broke after the step: {e}", run_id=run_id)
                    else:  # the step itself failed in the breaking group: its own error names the fault
                        row = _name_the_fault([row], peers[rank], peers)[0]
            fault = fault or (str(row["error"]) if broken and row["status"] == "failed" else "")
            if writer:
                append_row(rows_path, row)
                print(DONE_PREFIX + json.dumps({"key": step.key(), "status": row["status"], "label": label(step)}),
                      flush=True)
        i += len(batch)
        gc.collect()
    if not broken:
        dist.barrier()
    else:  # every row written: the runner need not wait on a torchrun whose store may be out of reach
        print(BROKEN_PREFIX + json.dumps({"rank": rank, "error": fault}), flush=True)
    dist.destroy_process_group()
    liveness.close()
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
