"""This session's own devices (uploaded or measured profiles), kept in st.session_state, never process-wide.

Pages plan on `simulator.devices.all_devices(session_devices())`: the datasheet catalog and the shipped profiles,
which every session shares and nobody changes, plus the devices of this session only.
"""

from __future__ import annotations

import streamlit as st

from simulator.catalog import HardwareSpec
from simulator.devices import all_devices, check_new_device

UPLOADED = "devices.uploaded"  # id -> HardwareSpec, this session's calibrated devices


def session_devices() -> dict[str, HardwareSpec]:
    """This session's calibrated devices by id (a copy: change them with add_session_device)."""
    return dict(st.session_state.get(UPLOADED, {}))


def add_session_device(spec: HardwareSpec) -> tuple[HardwareSpec | None, str | None]:
    """Make `spec` plannable in this session: (the device to plan on, None), or (None, why not). A device with
    the id of a datasheet or shipped one is the shipped one when identical (nothing is stored) and refused when
    it differs, so a shipped device is never replaced."""
    problem = check_new_device(spec)
    if problem is not None:
        return None, problem
    known = all_devices().get(spec.id)
    if known is not None:  # identical to a shipped device (a downloaded reference profile uploaded again)
        return known, None
    st.session_state.setdefault(UPLOADED, {})[spec.id] = spec
    return spec, None
