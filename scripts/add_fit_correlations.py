"""Add the parameter correlations ("corr", docs/profile-schema.md) to a profile's fits by refitting its stored
measurements with the current fitter (calibration.fit.fit_all, as `python -m calibration run` does), without
changing anything else: a fit gets the refit's "corr" only where the refit chose the same model and reproduced
every parameter to RTOL and every standard error to SE_RTOL; other fits are left as they are and listed.

    python scripts/add_fit_correlations.py simulator/data/profiles/cpu-reference.json [...]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from calibration.fit import fit_all
from simulator.profile import load_profile

RTOL = 1e-6  # parameters: the refit must be the same fit, not a neighbouring optimum
SE_RTOL = 1e-3  # standard errors come from the Jacobian at the optimum, a little more sensitive


def fit_records(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("status"), str):
            yield path, node
            return
        for key, child in node.items():
            yield from fit_records(child, (*path, key))


def _close(a: Any, b: Any, rtol: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def why_not_same(old: dict[str, Any], new: dict[str, Any] | None) -> str | None:
    """Why the refit `new` is not the stored fit `old` (None: it is)."""
    if new is None or new.get("status") != "ok":
        return "the refit has no such fit"
    if old.get("model") != new.get("model") or old.get("candidate", new.get("candidate")) != new.get("candidate"):
        return f"the refit chose {new.get('candidate') or new.get('model')}, not {old.get('candidate') or old.get('model')}"
    for key, rtol in (("params", RTOL), ("stderr", SE_RTOL)):
        if set(old[key]) != set(new[key]):
            return f"{key} names differ"
        off = [name for name in old[key] if not _close(old[key][name], new[key][name], rtol)]
        if off:
            return f"{key} {', '.join(off)} differ by more than {rtol:g} relative"
    return None


def add_correlations(profile: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the profile with corr added, fits given a corr, fits left alone with why)."""
    refit = fit_all(profile["measurements"], profile["environment"])
    new_at = dict(fit_records(refit))
    added, skipped = [], []
    for path, old in fit_records(profile["fits"]):
        if old.get("status") != "ok" or not old.get("params"):
            continue
        where = "fits." + ".".join(path)
        reason = why_not_same(old, new_at.get(path))
        if reason is not None:
            skipped.append(f"{where}: {reason}")
            continue
        corr = new_at[path].get("corr")
        old.pop("corr", None)
        if corr is None:
            continue
        items = list(old.items())
        at = next((i + 1 for i, (k, _) in enumerate(items) if k == "params_at_bound"), len(items))
        old.clear()
        old.update([*items[:at], ("corr", corr), *items[at:]])
        added.append(where)
    return profile, added, skipped


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        profile = json.loads(path.read_text(encoding="utf-8"))
        profile, added, skipped = add_correlations(profile)
        text = json.dumps(profile, indent=1, allow_nan=False)
        load_profile(text.encode())  # the strict loader accepts the result
        path.write_text(text, encoding="utf-8")
        print(f"{path}: corr added to {len(added)} fits; {len(skipped)} fits left alone")
        for line in skipped:
            print(f"  left alone: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
