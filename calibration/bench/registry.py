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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calibration.bench.base import BenchFn, Measurement, Prepared, PrepareFn, SkipBench
from calibration.bench.footprint import footprint
from calibration.bench.resident import LazyPoint, Resident, partition
from calibration.rows import DISTRIBUTED_BENCHES, Step, make_row, read_rows, step_key
from calibration.timing import TimingConfig, is_oversubscribed, time_interleaved

FAIL_ENV = "MODELFOLIO_CALIB_FAIL"

_FUNCTIONS: dict[str, str] = {
    "gemm": "compute:gemm",
    "block_fwd_bwd": "compute:block_fwd_bwd",
    "moe_layer": "moe:moe_layer",
    "all_reduce": "collectives:all_reduce",
    "all_gather": "collectives:all_gather",
    "reduce_scatter": "collectives:reduce_scatter",
    "broadcast": "collectives:broadcast",
    "all_to_all": "collectives:all_to_all",
    "ps_push_pull": "collectives:ps_push_pull",
    "ddp_step": "ddp:ddp_step",
    "infer_linear": "inference:infer_linear",
    "prefill": "inference:prefill",
    "decode": "inference:decode",
    "prune_latency": "prune:prune_latency",
}


# local benches split into prepare + timing, so a run can interleave their samples (timing.time_interleaved)
_PREPARE: dict[str, str] = {
    "gemm": "compute:prepare_gemm",
    "block_fwd_bwd": "compute:prepare_block_fwd_bwd",
    "moe_layer": "moe:prepare_moe_layer",
    "infer_linear": "inference:prepare_infer_linear",
    "prefill": "inference:prepare_prefill",
    "decode": "inference:prepare_decode",
    "prune_latency": "prune:prepare_prune_latency",
}


def prepare_function(bench: str) -> PrepareFn | None:
    if bench not in _PREPARE:
        return None
    module, name = _PREPARE[bench].split(":")
    return getattr(importlib.import_module(f"calibration.bench.{module}"), name)


def bench_function(bench: str) -> BenchFn:
    try:
        module, name = _FUNCTIONS[bench].split(":")
    except KeyError:
        raise ValueError(f"unknown bench {bench!r}; known: {', '.join(_FUNCTIONS)}") from None
    return getattr(importlib.import_module(f"calibration.bench.{module}"), name)


def injected_failures() -> set[str]:
    return {b.strip() for b in os.environ.get(FAIL_ENV, "").split(",") if b.strip()}


def _oversubscribed(step: Step, ranks_per_node: int | None) -> bool:
    return is_oversubscribed(ranks_per_node or step.world_size, step.device) \
        if step.bench in DISTRIBUTED_BENCHES else False


def _check_injected(step: Step) -> None:
    if step.bench in injected_failures():
        raise RuntimeError(f"injected failure ({FAIL_ENV}={os.environ.get(FAIL_ENV)})")


def _ok_row(step: Step, m: Measurement, run_id: str, oversubscribed: bool) -> dict[str, Any]:
    # others' load on a shared machine skews timings; how the samples were taken (inner loop, warm-up,
    # CI of the median) and the CPU threads tell a re-measurement whether it repeats the same experiment
    extra = {**(getattr(m.times_s, "info", None) or {}), **m.extra, "loadavg_1m": _loadavg()}
    extra.setdefault("threads", _threads() if step.device == "cpu" else None)
    return make_row(step, run_id=run_id, times_s=m.times_s, flops=m.flops, bytes=m.bytes, extra=extra,
                    oversubscribed=oversubscribed, dtype=m.dtype, params=m.params)


def _error_row(step: Step, e: BaseException, run_id: str, oversubscribed: bool) -> dict[str, Any]:
    if isinstance(e, SkipBench):
        return make_row(step, run_id=run_id, status="skipped", error=str(e), oversubscribed=oversubscribed)
    tb = traceback.format_exception_only(type(e), e)[-1].strip()
    where = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    loc = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
    _free_cuda_cache(step.device)
    return make_row(step, run_id=run_id, status="failed", error=f"{tb}{loc}"[-2000:], oversubscribed=oversubscribed)


def execute(step: Step, cfg: TimingConfig, run_id: str, ranks_per_node: int | None = None) -> dict[str, Any]:
    """Run one step and return its row; never raises for a bench's own failure."""
    oversubscribed = _oversubscribed(step, ranks_per_node)
    try:
        _check_injected(step)
        m = bench_function(step.bench)(step, cfg)
        return _ok_row(step, m, run_id, oversubscribed)
    except Exception as e:
        return _error_row(step, e, run_id, oversubscribed)


PREPARED_BYTES_MAX = 1 << 30  # estimated operand bytes an interleaved group holds at once (resident.Resident)


def execute_interleaved(steps: list[Step], cfg: TimingConfig, run_id: str,
                        on_row: Callable[[dict[str, Any]], None],
                        prior: dict[str, list[float]] | None = None,
                        on_round: Callable[[dict[str, list[float]], dict[str, Any]], None] | None = None,
                        budget_bytes: int = PREPARED_BYTES_MAX, pace: Any = None) -> None:
    """Measure local steps together, their samples interleaved over the group's wall time
    (timing.time_interleaved); `on_row(row)` fires as each point finishes (or fails at once).
    The group holds at most `budget_bytes` of operands (estimated from the steps' shapes, `footprint`): it is
    split into parts that fit (`resident.partition`, each fit group whole where it fits), timed one after the
    other and reported as one group; each point is prepared when its warm-up needs it and dropped when it
    finishes (`resident.Resident`, which would also make a part's largest points take turns).
    Steps without a prepare function are executed one by one first (each row stored by `on_row` as it comes).
    `prior` (step key -> samples taken by an earlier, interrupted run) are continued from;
    `on_round(new samples by step key, report)` fires after each sampling round. `pace` (calibration.pace.Pace, by
    step key): keeps the group within its time budget, a point it leaves out getting a "skipped" row."""
    resident = Resident(budget_bytes)
    points: list[tuple[Step, LazyPoint]] = []
    for step in steps:
        prepare = prepare_function(step.bench)
        if prepare is None:
            on_row(execute(step, cfg, run_id))
            continue

        def build(step: Step = step, prepare: PrepareFn = prepare) -> Prepared:
            _check_injected(step)
            return prepare(step)

        points.append((step, resident.point(len(points), step.device, build, footprint(step))))
    parts = partition([s for s, _ in points], [lazy.parts for _, lazy in points], budget_bytes)

    def done(i: int, result: Any) -> None:
        step, lazy = points[i]
        if isinstance(result, BaseException):
            row = _error_row(step, result, run_id, False)
        else:
            try:
                if lazy.finish is None:  # resumed from stored samples: prepared only for its Measurement
                    lazy.get()
                assert lazy.finish is not None
                row = _ok_row(step, lazy.finish(result), run_id, False)
                row["extra"]["interleaved_part"] = [part_of[i] + 1, len(parts)]
                if lazy.builds > 1:
                    row["extra"]["prepared_times"] = lazy.builds
            except Exception as e:
                row = _error_row(step, e, run_id, False)
        lazy.release()
        if pace is not None:
            pace.finished(step.key())
        on_row(row)

    part_of = {i: k for k, part in enumerate(parts) for i in part}
    progress = _PartsProgress(len(points), len(parts))
    for k, part in enumerate(parts):
        def round_done(new: dict[int, list[float]], report: dict[str, Any], part: list[int] = part) -> None:
            if on_round is not None:
                on_round({points[part[j]][0].key(): xs for j, xs in sorted(new.items())}, progress.report(report))

        progress.start(k, len(part))
        paced = None if pace is None else _PartPace(pace, [points[i][0].key() for i in part])
        time_interleaved([points[i][1] for i in part], cfg, lambda j, result, part=part: done(part[j], result),
                         prior=[(prior or {}).get(points[i][0].key(), []) for i in part], on_round=round_done,
                         pace=paced)
        resident.clear()
        progress.finish()


class _PartPace:
    """A key-based Pace (calibration/pace.py) seen by one part's point indices (timing.Pacing)."""

    def __init__(self, pace: Any, keys: list[str]) -> None:
        self.pace, self.keys = pace, keys

    def admit(self, i: int) -> bool:
        return bool(self.pace.admit(self.keys[i]))

    def warmed(self, i: int, call_s: float) -> None:
        self.pace.warmed(self.keys[i], call_s)

    def sample_scale(self, sampling_s: float) -> float:
        return float(self.pace.sample_scale(sampling_s))

    def dropped(self, i: int) -> BaseException:
        return SkipBench(self.pace.reason())


class _PartsProgress:
    """A group's progress over its parts, as one report (`timing.RoundReport`'s keys, plus `part` and `parts`):
    counts add up over the parts done; the samples of parts not yet started are estimated at the mean
    planned per point so far."""

    def __init__(self, points: int, parts: int) -> None:
        self.points, self.parts = points, parts
        self.base = {"round": 0, "points_done": 0, "samples": 0, "samples_planned": 0, "elapsed_s": 0.0}
        self.part, self.part_points, self.points_before, self.last = 0, 0, 0, {}

    def start(self, k: int, n: int) -> None:
        self.part, self.part_points, self.last = k, n, {}

    def report(self, rep: dict[str, Any]) -> dict[str, Any]:
        self.last = rep
        b = self.base
        planned_here = rep.get("samples_planned", 0) if rep.get("phase") == "sampling" else 0
        planned = b["samples_planned"] + planned_here
        known = self.points_before + (self.part_points if planned_here else 0)
        left = self.points - known
        if known and left:
            planned += round(planned / known * left)
        samples = b["samples"] + rep.get("samples", 0)
        elapsed = b["elapsed_s"] + rep.get("elapsed_s", 0.0)
        eta = rep.get("eta_s")
        if eta is not None and samples:
            eta = round(elapsed / max(1, samples) * max(0, planned - samples), 1)
        return {**rep, "round": b["round"] + rep.get("round", 0), "points": self.points,
                "points_done": b["points_done"] + rep.get("points_done", 0), "samples": samples,
                "samples_planned": planned, "elapsed_s": round(elapsed, 2), "eta_s": eta,
                "part": self.part + 1, "parts": self.parts}

    def finish(self) -> None:
        rep, b = self.last, self.base
        b["round"] += rep.get("round", 0)
        b["points_done"] += self.part_points
        b["samples"] += rep.get("samples", 0)
        b["samples_planned"] += max(rep.get("samples_planned", 0), rep.get("samples", 0))
        b["elapsed_s"] += rep.get("elapsed_s", 0.0)
        self.points_before += self.part_points


INTERLEAVED_DISTRIBUTED = frozenset({"all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all",
                                     "ps_push_pull"})


def execute_collectives_interleaved(steps: list[Step], cfg: TimingConfig, run_id: str,
                                    ranks_per_node: int | None = None,
                                    prior: dict[str, list[float]] | None = None,
                                    on_round: Callable[[dict[str, list[float]]], None] | None = None,
                                    ) -> tuple[list[dict[str, Any]], bool]:
    """Rows for collective steps timed together, their samples interleaved (inside an initialised process
    group, on every rank: collectives.time_interleaved_collectives). A step whose setup fails on any rank
    becomes a failed row on all of them, agreed before anything is timed, so no rank waits in a collective
    the others skip; the rest are timed. Returns the rows in the steps' order and whether timing raised (the
group may then be broken: the caller writes the rows and ends the launch). `prior` (step key -> samples
    stored by a killed launch, the same on every rank) are continued from; `on_round(new samples by step key)`
    fires on every rank after each sampling round (times: the slowest rank's)."""
    import torch.distributed as dist

    from calibration.bench.collectives import SETUPS, time_interleaved_collectives

    setups: list[Any] = []
    for step in steps:
        try:
            _check_injected(step)
            setups.append(SETUPS[step.bench](step))
        except Exception as e:
            setups.append(e)
    mine = [None if not isinstance(su, BaseException) else _error_row(step, su, run_id, False)["error"]
            for step, su in zip(steps, setups, strict=True)]
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, [(isinstance(su, SkipBench), e) for su, e in zip(setups, mine, strict=True)])
    rows: list[dict[str, Any] | None] = [None] * len(steps)
    over = [_oversubscribed(step, ranks_per_node) for step in steps]
    timed_idx = []
    for i, step in enumerate(steps):
        bad = [(r, skip, err) for r, theirs in enumerate(everyone) for skip, err in [theirs[i]] if err is not None]
        if bad:
            r, skip, err = bad[0]
            rows[i] = make_row(step, run_id=run_id, status="skipped" if skip else "failed",
                               error=f"rank {r}: {err}", oversubscribed=over[i])
        else:
            timed_idx.append(i)
    broken = False
    try:
        samples = time_interleaved_collectives(
            [setups[i] for i in timed_idx], cfg, prior=[(prior or {}).get(steps[i].key(), []) for i in timed_idx],
            on_round=None if on_round is None else
            lambda new: on_round({steps[timed_idx[j]].key(): xs for j, xs in new.items()}))
    except Exception as e:  # a collective raised mid-way: the group may be broken, the caller stops
        broken = True
        for i in timed_idx:
            rows[i] = _error_row(steps[i], e, run_id, over[i])
    else:
        for i, times in zip(timed_idx, samples, strict=True):
            su = setups[i]
            m = Measurement(times, bytes=su.nbytes, extra=su.extra)
            rows[i] = _ok_row(steps[i], m, run_id, over[i])
    return [r for r in rows if r is not None], broken


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:
        return None


def set_run_threads() -> int:
    """The CPU threads a calibration run uses in-process: every CPU this process may use. The runner and
    `remeasure` both call this, so a re-measured point repeats the experiment it checks."""
    import torch

    from calibration.timing import available_cpus

    threads = available_cpus()
    torch.set_num_threads(threads)
    return threads


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
    set_run_threads()  # the same in-process threads as `calibration run` (torchrun workers set their own)
    steps = [Step.from_dict(r) for r in rows]
    out: dict[str, dict[str, Any]] = {}
    local = [s for s in steps if s.bench not in DISTRIBUTED_BENCHES]
    for device in sorted({s.device for s in local}):  # interleaved, as `calibration run` measures them
        execute_interleaved([s for s in local if s.device == device], timing_for(mode, device), run_id,
                            lambda row: out.__setitem__(step_key(row), row))
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
