"""The calibration's time budgets, in one plain module that the planner (probe.py), the runner and the quality
calibration read without importing each other."""

from __future__ import annotations

BUDGETS_S = {"quick": 180.0, "full": 900.0}  # predicted seconds of a whole `--quick` / `--full` calibration
QUALITY_SHARE = 0.25  # of the whole calibration's budget: 45 s of --quick's 180 s, 225 s of --full's 900 s
# the data-order measurement's share (calibration/quality/data_order.py): --full only, 135 s of 900 s, taken
# from the hardware benches' share; --quick cannot fit its repeated multi-process runs beside the rest
DATA_ORDER_SHARE = {"full": 0.15}


def quality_part_share(mode: str) -> float:
    """The quality part's whole share of a `mode` run's budget: the curves' and, in --full, the data order's."""
    return QUALITY_SHARE + DATA_ORDER_SHARE.get(mode, 0.0)
