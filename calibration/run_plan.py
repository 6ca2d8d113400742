"""A run's plan: devices, world sizes and steps for this machine, probed and sized to the budget (--plan-only too)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from calibration.run_config import RunConfig

GRID_ENV = "MODELFOLIO_CALIB_GRID"  # hidden test hook: "tiny" shrinks every grid


def world_sizes(mode: str, device: str, nproc: int | None, nnodes: int) -> list[int]:
    """World sizes to sweep: every 1..nproc ranks per node in full mode, powers of two and nproc in quick."""
    from calibration.timing import available_cpus

    if device == "cuda":
        import torch

        gpus = torch.cuda.device_count()
        per_node = min(nproc or gpus, gpus)  # nccl wants one GPU per rank
    else:
        per_node = nproc or available_cpus()
    if per_node < 1:
        return []
    if mode == "full":
        counts = list(range(1, per_node + 1))
    else:
        counts = sorted({1 << i for i in range(per_node.bit_length()) if 1 << i <= per_node} | {per_node})
    if mode == "tiny":
        counts = counts[-2:] if nnodes == 1 else counts[:1]
    return [c * nnodes for c in counts]


def resolve_devices(device: str) -> list[str]:
    import torch

    if device == "cpu":
        return ["cpu"]
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch.cuda.is_available() is False here; use --device cpu or auto")
        return ["cuda"]
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


@dataclass
class PlannedRun:
    """What a run will measure: its grid mode ("tiny" under the test hook), devices, world sizes per device, the
    steps in order (sized to the budget), and for a probed plan its summary (`probe.summary`, with "advice": what
    fits when it is over budget) and the probe's figures for the environment."""

    mode: str
    devices: list[str]
    sizes: dict[str, list[int]]
    steps: list[Any]
    summary: dict[str, Any] | None
    probe_env: dict[str, Any]
    sized: Any = None  # the probe.Plan: each local point's predicted seconds, for the run's pace (None: not probed)


def plan_run(cfg: RunConfig, env: dict[str, Any]) -> PlannedRun:
    """The grids for this machine, probed and sized to the budget: the run's plan and --plan-only's, one code path.
    The hardware benches get the budget less the quality calibration's share (`quality.hook.quality_share`)."""
    from calibration.bench.grids import plan

    mode = "tiny" if os.environ.get(GRID_ENV) == "tiny" else cfg.mode
    devices = resolve_devices(cfg.device)
    sizes = {d: world_sizes(mode, d, cfg.nproc, cfg.nnodes) for d in devices}
    steps = plan(mode, devices, sizes, env.get("l3_cache_bytes") or 32 << 20, set(cfg.only) if cfg.only else None,
                 set(cfg.skip) if cfg.skip else None)
    if mode == "tiny":  # the test grid is neither probed nor sized
        return PlannedRun(mode, devices, sizes, steps, None, {})
    from calibration.bench.registry import set_run_threads
    from calibration.budgets import BUDGETS_S
    from calibration.probe import advice, fit_budget, probe, probe_environment, summary
    from calibration.quality.hook import quality_share

    set_run_threads()  # the threads the run measures with
    probes = {d: probe(d) for d in devices}
    share = quality_share(cfg, mode)
    budget_s = cfg.budget_s or BUDGETS_S.get(mode, 180.0)
    skip = tuple(sorted(cfg.skip or ()))
    probe_s = sum(p.seconds for p in probes.values())  # spent already: the budget counts from the run's start
    sized = fit_budget(steps, probes, mode, max(budget_s * (1 - share) - probe_s, 0.0))
    info = {**summary(sized, probes, mode, budget_s, share, skip),
            "advice": advice(steps, sized, probes, mode, budget_s, share, skip)}
    return PlannedRun(mode, devices, sizes, sized.steps, info, probe_environment(probes), sized)


def refused(planned: PlannedRun, cfg: RunConfig) -> bool:
    """A plan predicted over its budget even with every fit at its fewest points is not started without --force
    (a budget is a promise: the message says what fits instead)."""
    return planned.summary is not None and not planned.summary["fits_budget"] and not cfg.force


def print_plan(planned: PlannedRun, starting: bool, forced: bool = False) -> None:
    """The plan on stderr: points and seconds per bench, the quality calibration's share, and, when it is
    predicted over its budget, what fits (the benches to leave out, or the budget it needs): an error that refuses
    the run unless `forced` (--force), a warning with --force or --plan-only."""
    from calibration.probe import over_budget_warning

    info = planned.summary
    if info is None:
        return
    lines = [info["text"]]
    if info.get("quality_s"):
        lines.append(f"  {'quality':16s} sized to its share of the budget when it starts, ~{info['quality_s']:.0f} s")
    if not info["fits_budget"]:
        if starting and not forced:
            lines.append("error: " + over_budget_warning(info) + " Not started: change the budget or the benches, "
                         "or add --force to run it anyway.")
        else:
            lines.append("warning: " + over_budget_warning(info) + (
                " Starting anyway (--force): Ctrl-C stops it and keeps what was measured (--resume continues)."
                if starting else ""))
    print("\n".join(lines), file=sys.stderr, flush=True)


def plan_only(cfg: RunConfig) -> int:
    """--plan-only: probe, plan and print (with jsonl, the summary as a `PLAN {json}` line on stdout); measures and
    writes nothing."""
    from calibration.env import capture_env

    planned = plan_run(cfg, capture_env())
    print_plan(planned, starting=False)
    if planned.summary is None:
        print(f"plan: {len(planned.steps)} steps (the test grid is not probed)", file=sys.stderr)
    elif cfg.jsonl:
        print("PLAN " + json.dumps(planned.summary), flush=True)
    return 0
