"""Train page explanations: where each number comes from, and what changed from the pinned baseline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from app_pages._ranges import spread_table
from app_pages._train_view import md
from report import formatting as fmt
from report import messages, ranges_text, sections_text
from simulator.inputs import FIGURES, INPUTS
from simulator.registry import Input

PRESET_SHAPE = "the preset's shape"


def provenance(plan: Any) -> None:
    """Every figure with its value, P10–P90 range, provenance (computed figures: with the provenance of what they
    were computed from) and formula or source; then the accelerator's sources and how the inputs were completed."""
    with st.expander("Where do these numbers come from?", icon=":material/info:"):
        rows = [
            {"Figure": f.label, "Value": fmt.by_unit(f.value, f.unit),
             "P10–P90": sections_text.band(f),
             "Range includes": ranges_text.labels(plan, key), "Provenance": f.provenance, "Basis": f.basis,
             "How": messages.in_words(f.source)}
            for key, f in plan.figures.items() if key not in FIGURES or FIGURES[key].chart
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption("Computed figures are model outputs: their basis names the provenance of the inputs they were "
                   "computed from (measured, fitted, datasheet, published or assumed).")
        spread_table(plan)
        spec = plan.hardware
        st.markdown(f"**{fmt.md_escape(plan.hardware_label)}** ({spec.provenance}; price of {spec.price_date}):")
        st.markdown("\n".join(f"- {group}: {md(text)}" for group, text in spec.sources.items()))
        if plan.notes:
            st.markdown("**How the inputs were completed:**\n" + "\n".join(f"- {md(messages.in_words(n))}" for n in plan.notes))


def _label(inp: Input) -> str:
    text = inp.label
    return text if text[:2].isupper() else text[0].lower() + text[1:]


def show_input(inp: Input, value: Any, device_name: Callable[[str], str] = str) -> str:
    return fmt.input_text(inp, value, device_name)


def _reason(inp: Input, given: tuple[dict, dict]) -> str:
    if inp.section == "model" and any(g.get("model", {}).get("preset") for g in given) and inp.key != "model.params":
        return PRESET_SHAPE
    if inp.derived is not None:
        return messages.in_words(inp.derived.text)
    return inp.absent or "follows other inputs"


def changes(current: Any, baseline: Any, device_name: Callable[[str], str] = str) -> tuple[list[str], list[str]]:
    """What differs from the baseline: (changes the user made, compared on what each chose: Scenario.inputs(),
    and values that followed them, e.g. a catalog price that followed the accelerator), in the inputs' labels:
    (["GPUs 1,024 → 512"], ["price per GPU-hour $3.49 → $1.99 (the catalog's dated price ...)"])."""
    mine, theirs = current.inputs(), baseline.inputs()
    now, before = current.to_dict(), baseline.to_dict()
    made: list[str] = []
    followed: dict[str, list[str]] = {}
    for inp in INPUTS.values():
        chose_now, chose_before = mine.get(inp.section, {}).get(inp.name), theirs.get(inp.section, {}).get(inp.name)
        value_now, value_before = now[inp.section].get(inp.name), before[inp.section].get(inp.name)
        if chose_now != chose_before and value_now != value_before:
            made.append(f"{_label(inp)} {show_input(inp, value_before, device_name)} → "
                        f"{show_input(inp, value_now, device_name)}")
        elif value_now != value_before:
            reason = _reason(inp, (mine, theirs))
            followed.setdefault(reason, []).append(
                f"{_label(inp)} {show_input(inp, value_before, device_name)} → {show_input(inp, value_now, device_name)}")
    return made, [f"{', '.join(items)} ({reason})" for reason, items in followed.items()]


def changes_text(current: Any, baseline: Any, device_name: Callable[[str], str] = str) -> str:
    made, followed = changes(current, baseline, device_name)
    if not made and not followed:
        return "Same inputs as the baseline."
    text = "Changed from the baseline: " + ("; ".join(made) if made else "nothing you set") + "."
    if followed:
        text += " Followed: " + "; ".join(followed) + "."
    return text
