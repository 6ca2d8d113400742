"""What a plan's ranges include: each spread term by name, kind and size, in the user's words.

Three kinds move a range (simulator.evaluator.uncertain_columns): a device's fitted or assumed efficiencies and
bandwidths, the inputs declared with a spread (prices, traffic, ...), and the model's own error measured on
published results (simulator/model_error.py)."""

from __future__ import annotations

from collections.abc import Mapping

from simulator import model_error
from simulator.catalog import SPREAD_LABELS
from simulator.hardware_table import device_prefix
from simulator.inputs import BY_COLUMN
from simulator.plan import SpreadTerm
from simulator.resolve import DEVICE_INPUTS


def label_of(column: str) -> str:
    """The user's name of an uncertain column: an input's label, "GEMM efficiency (serving accelerator)", or a
    model-error term's label."""
    term = model_error.BY_COLUMN.get(column)
    if term is not None and not term.declared.input_key:
        return term.label
    inp = BY_COLUMN.get(column)
    if inp is not None:
        return inp.label  # the JSON has its `column` beside it
    for device in DEVICE_INPUTS:  # a device's column: "GEMM efficiency (serving accelerator)"
        prefix = device_prefix(device.column)
        if prefix and column.startswith(prefix):
            name = column.removeprefix(prefix)
            return f"{SPREAD_LABELS.get(name, name)} ({device.label.lower()})"
    declared = next((d for d in model_error.DECLARED if d.column == column), None)
    return declared.label if declared is not None else SPREAD_LABELS.get(column, column)


def kind_of(column: str) -> str:
    """'model error', 'input' or 'device'."""
    if column in model_error.BY_COLUMN or column in model_error.LOG_COLUMNS:
        return "model error"
    return "input" if column in BY_COLUMN else "device"


def _source(column: str, kind: str) -> str:
    if kind == "model error":
        term = model_error.BY_COLUMN.get(column)
        return term.describe() if term is not None else "not measured"
    if kind == "input":
        inp = BY_COLUMN[column]
        return f"{inp.provenance} spread of the input"
    return "the device's fitted standard error or held-out error (calibrated), or an assumed datasheet spread"


def spread_terms(spreads: Mapping[str, float]) -> tuple[SpreadTerm, ...]:
    """Every spread term of a plan (uncertain column -> σ), model error first, each largest first."""
    order = {"model error": 0, "device": 1, "input": 2}
    terms = [SpreadTerm(c, label_of(c), kind_of(c), float(s), "log" if c in model_error.LOG_COLUMNS else "relative",
                        _source(c, kind_of(c))) for c, s in spreads.items()]
    return tuple(sorted(terms, key=lambda t: (order[t.kind], -t.sigma, t.label)))
