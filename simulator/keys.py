"""Dotted input keys ("cluster.tp") and the scenario sections they name: the one place a key is split."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any


def split_key(dotted: str) -> tuple[str, str]:
    """("cluster", "tp") of "cluster.tp"."""
    section, _, name = dotted.partition(".")
    return section, name


def nested(values: Mapping[str, Any], into: MutableMapping[str, Any] | None = None,
           skip_none: bool = True) -> dict[str, Any]:
    """Scenario sections from values by dotted key ("cluster.tp" -> {"cluster": {"tp": ...}}), written into `into`
    (a new dict by default) and returned; None (left empty, so the registry's default or rule applies) is left out
    unless `skip_none` is False."""
    out: Any = {} if into is None else into
    for key, value in values.items():
        if value is not None or not skip_none:
            section, name = split_key(key)
            out.setdefault(section, {})[name] = value
    return out
