"""The scenario reference (docs/scenario.md), generated from the dataclasses and validation rules."""

from __future__ import annotations

import dataclasses
import inspect
import re

from simulator.scenario import SECTIONS
from simulator.validation import RULES

DERIVED_DEFAULTS = {
    "model.params": "counted from the shape",
    "model.layers": "derived from model.params",
    "model.hidden": "derived from model.params",
    "model.heads": "derived from model.params",
    "model.kv_heads": "model.heads",
    "model.ffn_hidden": "4·hidden (gelu) or 8/3·hidden rounded to 256 (swiglu)",
    "training.tokens": "20 × model.params",
    "cluster.gpus_per_node": "the accelerator's server size, at most cluster.gpus",
    "finance.gpu_hour_usd": "the catalog's dated price",
}


def _comments(section_cls: type) -> dict[str, str]:
    source = inspect.getsource(section_cls)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+):[^#\n]*#\s*(.+)$", source, re.M)}


def _allowed(key: str) -> str:
    kind, low, high = RULES[key]
    if kind == "choice":
        return ", ".join(high)
    if kind == "bool":
        return "true / false"
    if kind == "str":
        return "an accelerator id (`python -m simulator catalog`)"
    return f"{kind}, {low:g} to {high:g}"


def scenario_reference() -> str:
    lines = [
        "# Scenario reference",
        "",
        "Generated from `simulator/scenario.py` and `simulator/validation.py` (`python -m simulator.scenario_doc`).",
        "Every key is optional except `model.params` or the shape (`model.layers`, `model.hidden`, `model.heads`).",
        "",
    ]
    for section, cls in SECTIONS.items():
        notes = _comments(cls)
        lines += [f"## `{section}`", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            default = DERIVED_DEFAULTS.get(key, f"`{f.default!r}`" if f.default is not None else "none")
            if f.default is not None and key not in DERIVED_DEFAULTS:
                default = f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`"
            lines.append(f"| `{key}` | {default} | {_allowed(key)} | {notes.get(f.name, '')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(scenario_reference(), end="")
