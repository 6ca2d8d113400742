"""Cached simulator calls for the Train page (pure work).

Each call is keyed on the scenario's inputs as JSON (what the user chose, so derived values such as the catalog
price are derived again and stay marked derived) plus the session's device ids and fingerprints. The devices
themselves travel beside the key (`_devices`: Streamlit does not hash arguments whose name starts with "_").
The fingerprint keeps two sessions that uploaded different devices under the same id from sharing a result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pandas as pd
import streamlit as st

from simulator import evaluate, scaling  # scaling: the GPU counts, one copy shared with the PDF report
from simulator.catalog import HardwareSpec
from simulator.plan import Plan
from simulator.scenario import Scenario

Devices = Mapping[str, HardwareSpec]
DeviceKey = tuple[tuple[str, str], ...]


def inputs_json(scenario: Scenario) -> str:
    """The scenario as the user chose it (Scenario.inputs), canonical JSON: the cache key and the pinned form."""
    return json.dumps(scenario.inputs(), sort_keys=True)


def device_key(devices: Devices | None) -> DeviceKey:
    """(id, fingerprint) of each of this session's devices: part of every cache key, the specs themselves not."""
    return tuple(sorted((dev_id, hashlib.sha256(repr(spec).encode()).hexdigest()[:16])
                        for dev_id, spec in (devices or {}).items()))


def scenario_from(inputs: str, devices: Devices | None) -> Scenario:
    return Scenario.from_dict(json.loads(inputs), devices)


@st.cache_data(show_spinner=False, max_entries=256)
def _plan(inputs: str, device_ids: DeviceKey, _devices: Devices | None) -> Plan:
    return evaluate(scenario_from(inputs, _devices), _devices)


def plan_for(scenario: Scenario, devices: Devices | None) -> Plan:
    return plan_of(inputs_json(scenario), devices)


def plan_of(inputs: str, devices: Devices | None) -> Plan:
    """The plan of scenario inputs saved as JSON (a pinned baseline, the last valid plan)."""
    return _plan(inputs, device_key(devices), devices)


@st.cache_data(show_spinner=False, max_entries=256)
def _sweep(inputs: str, counts: tuple[int, ...], device_ids: DeviceKey, _devices: Devices | None) -> pd.DataFrame:
    return scaling.gpu_sweep(scenario_from(inputs, _devices), _devices)  # `counts`: part of the key only


def gpu_sweep(scenario: Scenario, devices: Devices | None) -> pd.DataFrame:
    return _sweep(inputs_json(scenario), scaling.gpu_counts(scenario), device_key(devices), devices)
