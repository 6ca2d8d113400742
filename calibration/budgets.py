"""The calibration's time budgets, in one plain module that the planner (probe.py), the runner and the quality
calibration read without importing each other."""

from __future__ import annotations

BUDGETS_S = {"quick": 180.0, "full": 900.0}  # predicted seconds of a whole `--quick` / `--full` calibration
QUALITY_SHARE = 0.25  # of the whole calibration's budget: 45 s of --quick's 180 s, 225 s of --full's 900 s
