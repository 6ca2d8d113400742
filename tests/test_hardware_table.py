"""The hardware table cache: an entry serves equal devices (compared by value), never a changed one."""

import copy
import dataclasses

import numpy as np
import pytest

from simulator import hardware_table as ht
from simulator.devices import all_devices


def _scaled(scale: float) -> dict:
    return {k: dataclasses.replace(v, hbm_GB=v.hbm_GB * scale) for k, v in all_devices().items()}


def test_equal_catalogs_share_one_table():
    devices = all_devices()
    assert ht.hardware_table(devices) is ht.hardware_table(all_devices())
    assert ht.hardware_table({k: copy.deepcopy(v) for k, v in devices.items()}) is ht.hardware_table(devices)


def test_a_changed_device_under_the_same_id_never_gets_a_stale_table():
    devices = all_devices()
    first = ht.hardware_table(devices)
    dev_id = next(iter(devices))
    changed = {**devices, dev_id: dataclasses.replace(devices[dev_id], hbm_GB=devices[dev_id].hbm_GB * 2)}
    table = ht.hardware_table(changed)
    assert table is not first
    assert table.table["hbm_GB"][table.index(dev_id)] == 2 * devices[dev_id].hbm_GB
    assert ht.hardware_table(devices).table["hbm_GB"][first.index(dev_id)] == devices[dev_id].hbm_GB


def test_catalogs_built_and_freed_in_turn_each_get_their_own_values():
    """Temporary specs are freed and their memory reused: an identity key could serve a freed catalog's table."""
    for scale in (2.0, 3.0, 4.0, 2.0):
        catalog = _scaled(scale)
        expected = np.array([spec.hbm_GB for spec in catalog.values()])
        np.testing.assert_array_equal(ht.hardware_table(catalog).table["hbm_GB"], expected)
        del catalog


def test_the_cache_is_bounded_and_its_tables_are_read_only():
    for scale in range(ht.TABLES_KEPT + 3):
        ht.hardware_table(_scaled(1.0 + scale))
    assert len(ht._tables) <= ht.TABLES_KEPT
    table = ht.hardware_table(all_devices())
    with pytest.raises(ValueError, match="read-only"):
        table.table["hbm_GB"][0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        table.peaks[0, 0] = 1.0
    with pytest.raises(TypeError):
        table.table["hbm_GB"] = np.zeros(3)  # type: ignore[index]
