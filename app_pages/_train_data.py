"""Cached simulator calls for the Train page (pure work, keyed by the scenario's JSON)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from simulator import evaluate, sweep
from simulator.plan import Plan
from simulator.scenario import Scenario

MAX_DOUBLINGS = 16  # GPU counts tried: tp·pp·dp for dp = 1, 2, 4, ... up to 2^16


@st.cache_data(show_spinner=False, max_entries=256)
def plan_for(scenario_json: str) -> Plan:
    return evaluate(Scenario.from_json(scenario_json))


def gpu_counts(scenario: Scenario) -> tuple[int, ...]:
    """Candidate GPU counts for the scaling chart: doublings of the data-parallel width, and the current count.

    Counts whose data-parallel width does not divide the global batch are kept: the sweep marks them invalid
    and the page says they were left out.
    """
    c, t = scenario.cluster, scenario.training
    unit = c.tp * c.pp
    widest = max(t.global_batch_seqs // t.micro_batch_seqs, 1)
    counts = {unit * 2**k for k in range(MAX_DOUBLINGS + 1) if 2**k <= widest}
    return tuple(sorted(counts | {c.gpus}))


@st.cache_data(show_spinner=False, max_entries=256)
def gpu_sweep(scenario_json: str, counts: tuple[int, ...]) -> pd.DataFrame:
    return sweep(Scenario.from_json(scenario_json), {"cluster.gpus": list(counts)})
