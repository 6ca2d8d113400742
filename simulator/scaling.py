"""The GPU counts a plan is compared against (the Train page's scaling charts, the PDF report): one choice, here."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from simulator.catalog import HardwareSpec
from simulator.scenario import Scenario
from simulator.sweeps import sweep

MAX_DOUBLINGS = 16  # GPU counts tried: tp·pp·dp for dp = 1, 2, 4, ... up to 2^16


def gpu_counts(scenario: Scenario) -> tuple[int, ...]:
    """Candidate GPU counts for the scaling chart: doublings of the data-parallel width, and the current count.

    Counts whose data-parallel width the global batch cannot feed are kept: the sweep marks them invalid and
    the page says they were left out.
    """
    c, t = scenario.cluster, scenario.training
    unit = c.tp * c.pp
    widest = max(t.global_batch_seqs // t.micro_batch_seqs, 1)
    counts = {unit * 2**k for k in range(MAX_DOUBLINGS + 1) if 2**k <= widest}
    return tuple(sorted(counts | {c.gpus}))


def gpu_sweep(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None = None) -> pd.DataFrame:
    """The scenario swept over `gpu_counts(scenario)`: everything else as planned."""
    return sweep(scenario, {"cluster.gpus": list(gpu_counts(scenario))}, devices)
