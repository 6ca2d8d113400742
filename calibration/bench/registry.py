"""Bench name -> function, the one place a step becomes a row, and `remeasure` for validation.

Hidden test hook: MODELFOLIO_CALIB_FAIL=bench[,bench...] makes those benches raise, so a test can
check that a failing benchmark becomes a "failed" row while the rest go on.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from calibration.bench.base import BenchFn, SkipBench
from calibration.rows import DISTRIBUTED_BENCHES, Step, make_row, read_rows, step_key
from calibration.timing import TimingConfig, is_oversubscribed

FAIL_ENV = "MODELFOLIO_CALIB_FAIL"

_FUNCTIONS: dict[str, str] = {
    "gemm": "compute:gemm",
    "block_fwd_bwd": "compute:block_fwd_bwd",
    "all_reduce": "collectives:all_reduce",
    "all_gather": "collectives:all_gather",
    "reduce_scatter": "collectives:reduce_scatter",
    "broadcast": "collectives:broadcast",
    "ps_push_pull": "collectives:ps_push_pull",
    "ddp_step": "ddp:ddp_step",
    "infer_linear": "inference:infer_linear",
    "prefill": "inference:prefill",
    "decode": "inference:decode",
    "prune_latency": "prune:prune_latency",
}


def bench_function(bench: str) -> BenchFn:
    try:
        module, name = _FUNCTIONS[bench].split(":")
    except KeyError:
        raise ValueError(f"unknown bench {bench!r}; known: {', '.join(_FUNCTIONS)}") from None
    return getattr(importlib.import_module(f"calibration.bench.{module}"), name)


def injected_failures() -> set[str]:
    return {b.strip() for b in os.environ.get(FAIL_ENV, "").split(",") if b.strip()}


def execute(step: Step, cfg: TimingConfig, run_id: str, ranks_per_node: int | None = None) -> dict[str, Any]:
    """Run one step and return its row; never raises for a bench's own failure."""
    oversubscribed = is_oversubscribed(ranks_per_node or step.world_size, step.device) \
        if step.bench in DISTRIBUTED_BENCHES else False
    try:
        if step.bench in injected_failures():
            raise RuntimeError(f"injected failure ({FAIL_ENV}={os.environ.get(FAIL_ENV)})")
        m = bench_function(step.bench)(step, cfg)
        extra = {**m.extra, "loadavg_1m": _loadavg()}  # others' load on a shared machine skews timings
        return make_row(step, run_id=run_id, times_s=m.times_s, flops=m.flops, bytes=m.bytes, extra=extra,
                        oversubscribed=oversubscribed, dtype=m.dtype, params=m.params)
    except SkipBench as e:
        return make_row(step, run_id=run_id, status="skipped", error=str(e), oversubscribed=oversubscribed)
    except Exception as e:
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        where = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
        loc = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
        _free_cuda_cache(step.device)
        return make_row(step, run_id=run_id, status="failed", error=f"{tb}{loc}"[-2000:],
                        oversubscribed=oversubscribed)


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _free_cuda_cache(device: str) -> None:
    if device == "cuda":
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:
            pass


def remeasure(rows: list[dict[str, Any]], nproc: int | None = None, mode: str = "quick") -> list[dict[str, Any]]:
    """Re-run exactly these points (bench, params, world_size, dtype, device): one new row per input,
    in the input's order.  Distributed points go through torchrun, one launch per (device, world)."""
    from calibration.bench.launch import launch
    from calibration.timing import timing_for

    run_id = f"remeasure-{time.strftime('%Y%m%dT%H%M%S')}"
    steps = [Step.from_dict(r) for r in rows]
    out: dict[str, dict[str, Any]] = {}
    local = [s for s in steps if s.bench not in DISTRIBUTED_BENCHES]
    for s in local:
        out[s.key()] = execute(s, timing_for(mode, s.device), run_id)
    groups: dict[tuple[str, int], list[Step]] = {}
    for s in steps:
        if s.bench in DISTRIBUTED_BENCHES:
            if nproc is not None and s.world_size > nproc:
                out[s.key()] = make_row(s, run_id=run_id, status="skipped",
                                        error=f"world_size {s.world_size} > nproc {nproc}")
                continue
            groups.setdefault((s.device, s.world_size), []).append(s)
    if groups:
        with tempfile.TemporaryDirectory(prefix="modelfolio-remeasure-") as tmp:
            rows_path = Path(tmp) / "rows.jsonl"
            for (device, world), group in groups.items():
                launch(group, device=device, world_size=world, rows_path=rows_path, run_id=run_id,
                       mode=mode, work_dir=Path(tmp))
            for r in read_rows(rows_path):
                out[step_key(r)] = r
    return [out.get(s.key()) or make_row(s, run_id=run_id, status="failed", error="not measured (launch failed)")
            for s in steps]
