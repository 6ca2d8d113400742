"""What one `python -m calibration run` is asked to do: the command line's options as one frozen value."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunConfig:
    mode: str  # "quick" | "full"
    out: Path
    nproc: int | None = None
    resume: bool = False
    only: frozenset[str] | None = None
    device: str = "auto"  # "cpu" | "cuda" | "auto"
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    ifname: str | None = None  # the network interface of the collectives (--ifname); None: the one routing to node 0
    write_profile: bool = True
    budget_s: float | None = None  # predicted-time budget for the plan (default: budgets.BUDGETS_S[mode])
    progress: str = "auto"  # "jsonl": PROGRESS lines on stdout; "bar": only the bar; "auto": jsonl unless a tty
    skip: frozenset[str] | None = None  # benches left out (--skip); unlike --only, the quality calibration still runs
    plan_only: bool = False  # probe and print the plan (with jsonl, a PLAN line too); measure and write nothing
    force: bool = False  # run a plan predicted over its budget (refused without it, saying what fits)

    @property
    def jsonl(self) -> bool:
        return self.progress == "jsonl" or (self.progress == "auto" and not sys.stdout.isatty())
