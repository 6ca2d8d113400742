"""What a range includes, in words: the sentence under a P10-P90 and the table of every spread term of a plan
(simulator.plan.Plan.spreads). Formatting only: the terms and their sizes come from the plan."""

from __future__ import annotations

from typing import Any

from simulator.evaluator import move

METHOD = ("P10–P90 moves each uncertainty to its P10 and its P90 one at a time and combines the moves as "
          "independent: the model's own error, measured on published results it was not fitted on (leave one "
          "paper or model family out), the device's efficiencies and bandwidths, and every input with a spread.")
KIND_WORDS = {"model error": "model error", "device": "device", "input": "input"}
HEADER = ["Uncertainty", "Kind", "P10–P90 factor", "Where its size comes from"]
WIDTHS = [52, 20, 26, 82]


def factor(term: Any) -> str:
    """'×0.86–×1.16': what the term's P10 and P90 multiply its column by."""
    low, high = move(term.column, term.sigma)
    return f"×{low:.2f}–×{high:.2f}"


def includes(plan: Any, key: str) -> str:
    """'Includes the training step-time model error (measured on 23 published results ...), and 3 device and 2
    input spreads: GEMM efficiency, ...'; '' for a figure without a range."""
    terms = plan.range_terms(key)
    if not terms:
        return ""
    model = [t for t in terms if t.kind == "model error"]
    others = [t.label for t in terms if t.kind != "model error"]
    parts = [f"{t.label} ({t.source})" for t in model]
    if others:
        parts.append(f"{', '.join(others[:4])}{' and more' if len(others) > 4 else ''}")
    missing = "" if model else "; no model error of its own is measured for this figure"
    return f"Range includes: {'; '.join(parts)}{missing}."


def rows(plan: Any) -> list[list[str]]:
    """One row per spread term of the plan: label, kind, P10-P90 factor, source."""
    return [[t.label, KIND_WORDS.get(t.kind, t.kind), factor(t), t.source] for t in plan.spreads]


def summary(plan: Any) -> str:
    """'17 uncertainties: 2 model errors measured on published results, 10 device, 5 input.'"""
    kinds = [t.kind for t in plan.spreads]
    n_model = kinds.count("model error")
    return (f"{len(kinds)} uncertainties: {n_model} model error{'s' if n_model != 1 else ''} measured on published "
            f"results, {kinds.count('device')} device, {kinds.count('input')} input.")


def labels(plan: Any, key: str) -> str:
    """The spread terms that move figure `key`, largest first, for a table cell ('' without a range)."""
    return ", ".join(t.label for t in plan.range_terms(key))
