"""The global sensitivity of a decision in words and as a small table, shared by the Decide page and its PDF:
"Most of the spread in total cost comes from the price per GPU-hour (86%) and GEMM efficiency (11%)." Formatting
only: the indices, their shares and which inputs lead come from the Decision
(simulator.decision.sensitivity.GlobalSensitivity)."""

from __future__ import annotations

from typing import Any

from report import formatting as fmt
from report import messages

# how a sentence names each output (the figures' own labels are column headings: "Expected wall time")
OUTPUT_WORDS = {"decision.total_cost_usd": "total cost", "training.wall_days": "training time",
                "quality.loss": "predicted loss"}
TABLE_HEADER = ("Input", "Output", "Share", "First order", "Total order")
TABLE_ROWS_PER_OUTPUT = 4  # the inputs of largest share per output the table lists
NEARLY_ALL = 0.9  # one input with at least this share holds "nearly all" of the spread
MOST = 0.5  # the named inputs hold "most" of it from this share


def output_words(found: Any) -> str:
    return OUTPUT_WORDS.get(found.key, found.label.lower())


def share(x: float) -> str:
    """A share of the variance, to the percent: 0.4512 -> "45%", 0.003 -> "<1%"."""
    return "<1%" if 0 < x < 0.005 else f"{100 * x:.0f}%"


def _in_sentence(label: str) -> str:
    """An input's label inside a sentence: "Price per GPU-hour" -> "the price per GPU-hour"; a label opening with
    an acronym keeps it ("GEMM efficiency ...")."""
    first = label.split(" ", 1)[0]
    if first[:2].isupper():
        return label
    return "the " + label[0].lower() + label[1:]


def _listed(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def sentence(found: Any) -> str:
    """One output's leading inputs in words, or why it has no indices."""
    name = output_words(found)
    if found.why_none:
        return f"The {name} {found.why_none}."
    leading = found.leading()
    if not leading:
        return f"No uncertain input moves the {name}."
    named = _listed([f"{_in_sentence(i.label)} ({share(i.share)})" for i in leading])
    held = sum(i.share for i in leading)
    if len(leading) == 1 and held >= NEARLY_ALL:
        return f"Nearly all of the spread in {name} comes from {named}."
    if held >= MOST:
        return f"Most of the spread in {name} comes from {named}."
    return f"The spread in {name} is shared by many inputs; the largest are {named}."


def sentences(decision: Any) -> list[str]:
    """One sentence per output of the decision's global sensitivity ([] when none was computed)."""
    g = decision.global_sensitivity
    return [] if g is None else [sentence(found) for found in g.outputs]


def method_note(decision: Any) -> str:
    """What the shares are, in one line under the sentences."""
    g = decision.global_sensitivity
    if g is None:
        return messages.in_words("No global sensitivity was computed (decision.sobol_samples = 0).")
    grouped = " Inputs drawn together (correlated) count as one." if g.grouped else ""
    return (f"Share: the input's total-order Sobol' index (its part of the variance, interactions included) over "
            f"the sum of all inputs', with every uncertain input drawn together as in the {fmt.count(g.evaluations)}"
            f"-evaluation design ({fmt.count(g.base_samples)} base samples); first order: its part alone. "
            f"± is the 95% bootstrap interval.{grouped}")


def _index(value: float, conf: float) -> str:
    return f"{value:.2f} ± {conf:.2f}"


def table_rows(decision: Any, most: int = TABLE_ROWS_PER_OUTPUT) -> list[list[str]]:
    """Rows of TABLE_HEADER: per output, its `most` inputs of largest share (those with any share)."""
    g = decision.global_sensitivity
    rows: list[list[str]] = []
    for found in () if g is None else g.outputs:
        for i in [i for i in found.indices if i.share > 0][:most]:
            rows.append([i.label, found.label, share(i.share), _index(i.first, i.first_conf),
                         _index(i.total, i.total_conf)])
    return rows
