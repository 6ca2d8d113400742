"""A run's pace, from the runner's side: the Pace of its local benches (calibration/pace.py) made from the plan,
the torchrun stage's predicted seconds, and the record of planned against measured that the run keeps
(`pace.json`) and prints as its last line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from calibration.run_plan import PlannedRun

PACE_NAME = "pace.json"  # planned against measured seconds, per stage and per local point


def distributed_s(planned: PlannedRun, distributed: list[Any], likely: bool = False) -> float:
    """The predicted seconds of the torchrun launches still to run (0 for the test grid): as planned, or what they
    likely take (the pace's: probe.DISTRIBUTED_STEP_LIKELY_S)."""
    if planned.sized is None or not distributed:
        return 0.0
    from calibration.probe import DISTRIBUTED_STEP_LIKELY_S
    from calibration.probe import distributed_s as predicted_s

    return predicted_s(distributed, DISTRIBUTED_STEP_LIKELY_S) if likely else predicted_s(distributed)


def local_pace(planned: PlannedRun, local: list[Any], t0: float, later_s: float) -> Any:
    """The pace of the local benches (calibration/pace.py): their points as planned, the hardware budget counted
    from the run's start; None for the test grid or no local points."""
    if planned.sized is None or not local:
        return None
    from calibration.pace import Pace, PlannedPoint
    from calibration.probe import group_key, point_parts
    from calibration.timing import timing_for

    sized = planned.sized
    points = [PlannedPoint(s.key(), group_key(s), sized.point_s.get(s.key(), 0.0), sized.call_s.get(s.key(), 0.0),
                           sized.nbytes.get(s.key(), 0.0)) for s in local]
    cfg = {s.key(): timing_for(planned.mode, s.device) for s in local}  # each point's timing loop
    return Pace(points, float(sized.budget_s), t0, later_s,
                parts=lambda c, p: point_parts(c, p.nbytes, cfg[p.key]))


def pace_record(planned: PlannedRun, local: list[Any], distributed: list[Any], pace: Any,
                stages: dict[str, float]) -> dict[str, Any] | None:
    """Planned against measured, for pace.json and the run's last lines: per stage and per local point (None for
    the test grid, which has no plan to compare with)."""
    info, sized = planned.summary, planned.sized
    if info is None or sized is None:
        return None
    planned_s = {"local": sum(sized.point_s.get(s.key(), 0.0) for s in local),
                 "distributed": distributed_s(planned, distributed), "quality": info.get("quality_s", 0.0)}
    points = [] if pace is None else [
        {"key": p.key, "predicted_point_s": round(p.point_s, 4), "predicted_call_s": p.call_s,
         "measured_call_s": pace.measured_call_s.get(p.key), "dropped": p.key in pace.dropped} for p in pace.points]
    return {"budget_s": info["budget_s"], "hardware_budget_s": info["hardware_budget_s"],
            "planned_s": {k: round(v, 2) for k, v in planned_s.items()},
            "measured_s": {k: round(v, 2) for k, v in stages.items()},
            "pace": None if pace is None else pace.record(), "points": points}


def keep_pace(out: Path, record: dict[str, Any] | None) -> None:
    """pace.json (each stage's and local point's planned against measured seconds) and one line saying it; a
    failed write only says so (the rows are what matter)."""
    if record is None:
        return
    planned, measured = record["planned_s"], record["measured_s"]
    parts = [f"{k} {planned.get(k, 0):.0f} s planned, {measured[k]:.0f} s measured" for k in measured]
    dropped = len((record.get("pace") or {}).get("dropped") or [])
    print(f"pace: {'; '.join(parts)}" + (f"; {dropped} points left out to keep the budget" if dropped else "")
          + f" (budget {record['budget_s']:.0f} s)", file=sys.stderr, flush=True)
    try:
        (out / PACE_NAME).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"note: {out / PACE_NAME} not written: {exc}", file=sys.stderr)
