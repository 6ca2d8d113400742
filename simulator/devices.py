"""Every device the simulator knows, without a registry: the datasheet catalog, the shipped reference profiles'
devices (computed once, never changed) and a caller's own, passed explicitly as `all_devices(extra)`."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from simulator.catalog import HardwareSpec, find_accelerator, load_catalog
from simulator.device_profile import device_from_profile
from simulator.profile import load_profile

PROFILE_DIR = Path(__file__).parent / "data" / "profiles"


class DeviceClashError(ValueError):
    """A caller's device has the id of a datasheet or shipped device and differs from it."""


@lru_cache(maxsize=1)
def shipped_profiles() -> Mapping[str, dict[str, Any]]:
    """Reference profiles shipped with the package, by file stem: read once per process and shared, so the
    mapping is a read-only view; a caller that changes a profile changes a deep copy of it."""
    return MappingProxyType({path.stem: load_profile(path) for path in sorted(PROFILE_DIR.glob("*.json"))})


@lru_cache(maxsize=1)
def _shipped() -> tuple[tuple[str, HardwareSpec], ...]:
    specs = (device_from_profile(profile) for profile in shipped_profiles().values())
    return tuple((spec.id, spec) for spec in specs)


def shipped_devices() -> dict[str, HardwareSpec]:
    """The devices of the shipped reference profiles, by id (built once)."""
    return dict(_shipped())


@lru_cache(maxsize=1)
def _known() -> tuple[tuple[str, HardwareSpec], ...]:
    return (*load_catalog().items(), *_shipped())


def all_devices(extra: Mapping[str, HardwareSpec] | None = None) -> dict[str, HardwareSpec]:
    """The datasheet catalog, the shipped profiles' devices, then `extra` (an app session's uploaded devices,
    passed explicitly). A device of `extra` never replaces a known one: one that has a known id and differs
    from it raises DeviceClashError, naming both."""
    out = dict(_known())
    shipped = dict(_shipped())
    for dev_id, spec in (extra or {}).items():
        if dev_id != spec.id:
            raise ValueError(f'devices: key "{dev_id}" holds the device "{spec.id}"; key each device by its id')
        known = out.get(dev_id)
        if known is not None and known != spec:
            kind = "a shipped reference profile's device" if dev_id in shipped else "a datasheet accelerator"
            raise DeviceClashError(f'device "{dev_id}" ({spec.display_name}) has the id of {kind} ({known.display_name}), '
                              "which is never replaced; give the profile another name so that its id differs")
        out.setdefault(dev_id, spec)
    return out


def check_new_device(spec: HardwareSpec) -> str | None:
    """Why `spec` cannot join the known devices (a clash with a datasheet or shipped id), or None."""
    try:
        all_devices({spec.id: spec})
    except DeviceClashError as exc:
        return str(exc)
    return None


def get_accelerator(name: str, field: str = "cluster.accelerator",
                    extra: Mapping[str, HardwareSpec] | None = None) -> HardwareSpec:
    """Spec by id, display name or alias among all_devices(extra); UnknownAccelerator lists the known ids."""
    return find_accelerator(name, all_devices(extra), field)
