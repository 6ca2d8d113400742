"""The quality calibration's append-only JSONL records (its points, the data-order runs), read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_points(path: Path) -> list[dict[str, Any]]:
    """Every record of `path` with a string `key`, in order (a line cut short by a killed run is skipped)."""
    out = []
    if path.exists():
        for raw in path.read_bytes().splitlines():
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                out.append(rec)
    return out
