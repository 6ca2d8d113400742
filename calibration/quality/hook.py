"""How `python -m calibration run` includes the quality calibration: it takes budgets.quality_part_share of the run's budget
(the hardware plan gets the rest) and runs after the hardware benches, writing `<out>/quality.json`, which the
profile writer puts into the profile as its `quality` section."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from calibration.budgets import BUDGETS_S, quality_part_share

QUALITY_FLOOR = 0.5  # the least of its share the quality part is given when the benches before it overran


def quality_share(cfg: Any, mode: str) -> float:
    """The fraction of the budget for quality: none for the test grid, `--only`, or a node other than 0."""
    if mode not in ("quick", "full") or cfg.only is not None or cfg.node_rank != 0:
        return 0.0
    return quality_part_share(mode)


def quality_budget_s(cfg: Any, mode: str, left_s: float | None = None) -> float:
    """Its share of the run's budget, or what the run has left of its budget when that is less (the hardware
    benches overran: the quality part is sized to what is left, never below QUALITY_FLOOR of its share)."""
    share_s = (cfg.budget_s or BUDGETS_S[mode]) * quality_share(cfg, mode)
    if left_s is None:
        return share_s
    return max(min(share_s, left_s), QUALITY_FLOOR * share_s)


def run_step(cfg: Any, mode: str, log: Callable[[str], None] | None = None, left_s: float | None = None) -> None:
    """Run it; a failure (scikit-learn missing, a bug) is reported and the hardware profile is still written.
    Ctrl-C and failed writes (OSError) go to the runner, which handles them for every step. `log` gets the
    quality calibration's progress lines (stderr by default); `left_s`: the run's budget still unspent."""
    share = quality_share(cfg, mode)
    if share <= 0:
        return
    try:
        from calibration.quality.run import run_quality

        run_quality(cfg.out, mode, budget_s=quality_budget_s(cfg, mode, left_s), resume=cfg.resume, log=log)
    except ImportError as exc:
        print(f"quality calibration skipped: {exc}; install scikit-learn (pip install scikit-learn) and run "
              f"python -m calibration quality --{mode} -o {cfg.out} --into {cfg.out / 'profile.json'}", file=sys.stderr)
    except OSError:
        raise
    except Exception as exc:  # the hardware rows are complete: a quality failure must not lose their profile
        print(f"quality calibration failed: {type(exc).__name__}: {exc}; the points finished so far are in "
              f"{cfg.out / 'quality_points.jsonl'}", file=sys.stderr)
