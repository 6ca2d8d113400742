"""The input registry and the model-family contract: each input and each output figure is declared once.

An `Input` holds everything any part of the product needs to know about one scenario key: its section and
name, type, unit, bounds, default (a constant, or a rule that derives it from other inputs), label, help, short
link key, and how it becomes a model column. Validation (one scenario or a million rows), the model columns,
share links, the app's widgets and docs/scenario.md are generated from these declarations.

A `Family` (training, cost, quality, ... one module each under `simulator/families/`) declares its inputs, its
output figures, the families it reads (`needs`) and one vectorised `columns -> columns` function. `evaluate`,
`sweep`, `Plan`, the charts and the CLI loop over the registered families; a sweep runs only the families its
wanted figures need (simulator/needs.py).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from simulator.keys import split_key

Kind = Literal["int", "float", "bool", "choice", "device"]
Provenance = Literal["measured", "fitted", "datasheet", "published", "assumed", "computed"]
Better = Literal["lower", "higher"] | None
Page = Literal["train", "compress", "deploy", "decide"]  # the app's pages that show inputs and figures (and their PDFs)
PAGES: tuple[Page, ...] = ("train", "compress", "deploy", "decide")
Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Derived:
    """A default computed from other inputs, one vectorised function for one row or a million.

    `fn(cols)` gets the model columns built so far (inputs by column name, hardware columns such as
    `hw_gpus_per_node`) and returns this input's column; `text` says how, for the docs and the notes.
    """

    text: str
    fn: Callable[[Columns], np.ndarray]
    needs: tuple[str, ...] = ()  # dotted keys it follows, as the widgets say ("auto (follows ...)")
    always: bool = False  # derived even when given (the given value stays in column `<column>_given` for checks)


class _Dotted:
    """`section` and `name` of a dotted `key` ("cluster.tp" -> "cluster", "tp")."""

    key: str

    @property
    def section(self) -> str:
        return split_key(self.key)[0]

    @property
    def name(self) -> str:
        return split_key(self.key)[1]


@dataclass(frozen=True)
class Input(_Dotted):
    key: str  # dotted scenario key, "cluster.tp"
    kind: Kind
    label: str  # what a widget and a table call it
    help: str  # one or two sentences: what it is, where its default comes from
    unit: str = ""  # "GPUs", "USD/GPU-hour"; "" for counts of nothing in particular and choices
    low: float | None = None  # inclusive bounds of numbers
    high: float | None = None
    choices: tuple[Any, ...] = ()  # allowed values of a choice, in code order
    choice_labels: Mapping[Any, str] = field(default_factory=dict)
    default: Any = None  # a constant; None with `derived` set means "derived", None alone means "no default"
    derived: Derived | None = None
    link: str = ""  # short key in share links
    column: str | None = None  # model column name; None: not a model column (e.g. the accelerator's name)
    step: float | None = None  # widget step
    scale: float = 1.0  # widget value × scale = scenario value (billions: 1e9)
    widget_unit: str = ""  # the unit the widget shows when scaled ("billions")
    absent: str = ""  # what an absent optional input means (no default, no derived rule)
    required_one_of: str = ""  # docs: a group of keys of which one set must be given ("model size")
    spread: float = 0.0  # relative one-sigma uncertainty of the default (assumed or published); 0 = exact
    # where the input acts at all (a plan's model columns -> rows): None = every plan. Elsewhere (an MoE's expert
    # imbalance on a dense model) its spread adds no range term, draw or tornado bar, and reports leave it out
    applies: Callable[[Columns], np.ndarray] | None = None
    informational: bool = False  # moves no output on purpose (kept for the record, e.g. a note)
    provenance: Provenance = "assumed"  # of the default value: assumed, published, datasheet
    words: Mapping[str, float] = field(default_factory=dict)  # named values of a number ("max" -> 0), outside low-high
    offered: tuple[float, ...] = ()  # the only values a number may take (bit widths): a page offers them as a list

    def __post_init__(self) -> None:
        for word, code in self.words.items():
            if self.low is not None and self.low <= code <= (self.high if self.high is not None else code):
                raise ValueError(f"{self.key}: the code {code} of {word!r} is a legal number; pick one outside bounds")

    def encode(self, value: Any) -> float:
        """The model column's value for one resolved scenario value."""
        if isinstance(value, str) and value in self.words:
            return float(self.words[value])
        if self.kind == "bool":
            return 1.0 if value else 0.0
        if self.kind == "choice":
            return float(self.choices.index(value))
        return float(value)

    def decode(self, number: float) -> Any:
        """Inverse of `encode` for derived values computed as columns."""
        for word, code in self.words.items():
            if number == code:
                return word
        if self.kind == "int":
            return round(float(number))
        if self.kind == "bool":
            return bool(number)
        if self.kind == "choice":
            return self.choices[int(number)]
        return float(number)

    def allowed_text(self) -> str:
        if self.kind == "choice":
            return ", ".join(str(c) for c in self.choices)
        if self.kind == "bool":
            return "true / false"
        if self.kind == "device":
            return "an accelerator id (`python -m simulator catalog`) or a calibrated `profile:...`"
        named = "".join(f' or "{w}"' for w in self.words)
        return f"{self.kind}, {self.low:g} to {self.high:g}{named}"


@dataclass(frozen=True)
class Rule:
    """A rule relating inputs, written once on columns: `broken(cols)` is True on the rows that break it.

    `message(row)` explains one broken row (a dict of that row's column values) and says what to change;
    `short` is the sweep's `reason` text. `severity="warning"`: legal but wasteful, reported, not refused.
    A message names fields by their dotted keys and values as `key = value` (the words of the JSON and the CLI);
    the pages and PDFs show it through report.messages.in_words, which says it with labels and units.
    """

    key: str  # the dotted key the message is about
    short: str
    broken: Callable[[Columns], np.ndarray]
    message: Callable[[Mapping[str, float]], str]
    severity: Literal["error", "warning"] = "error"
    code: str = ""  # stable id the app recognises warnings by


@dataclass(frozen=True)
class FigureSpec(_Dotted):
    """One output figure of a family: `key` is dotted ("training.wall_days") and is the sweep's column name."""

    key: str
    label: str
    unit: str
    how: str  # formula or source, with its citation
    better: Better = None
    provenance: Provenance = "computed"  # "computed" = a model output; its inputs' provenance is listed on the plan
    ranged: bool = False  # gets low/high from the propagated input uncertainty
    chart: bool = True  # False for internal helper columns a plan does not show
    yes_no: bool = False  # a yes/no figure: a sweep's column of booleans (False on the rows that break a rule)



@dataclass(frozen=True)
class FieldGroup:
    """Where some of a family's inputs appear on one page: a titled group of widgets, on the page itself (`main`)
    or under its "More settings". Groups of one title on one page, from several families, are one group: their
    keys in `order`, then in family order (simulator.presentation merges them)."""

    page: Page
    title: str
    keys: tuple[str, ...]
    main: bool = False
    radio: tuple[str, ...] = ()  # choices shown as buttons rather than a list
    order: int = 50  # where the group stands on its page (lower first)


@dataclass(frozen=True)
class Section:
    """Some of a family's figures on pages and their PDFs. A `headline` section's figures join the page's key
    figures (sorted by `order`, then family order); any other is a titled table of its own on the page and in the
    PDF: each figure with its value, P10-P90 and provenance, after `text`."""

    pages: tuple[Page, ...]
    title: str
    figures: tuple[str, ...]
    headline: bool = False
    order: int = 50
    text: str = ""


class OneEvaluation(dict):
    """The columns one plain call of a `Steps` family reads: `kept` holds what a step computed that the steps after
    it may reuse (a month-by-month array), for this call only. A sweep's steps get views of the grid instead."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.kept: dict[str, Any] = {}


def once(c: Columns, name: str, make: Callable[[], Any]) -> Any:
    """`make()`, made once per plain call of a `Steps` family and shared by its steps (kept in the call's
    `OneEvaluation` under `name`; never to be changed in place); elsewhere (a sweep's view) made each time."""
    kept = getattr(c, "kept", None)
    if kept is None:
        return make()
    if name not in kept:
        kept[name] = make()
    return kept[name]


class Steps:
    """A family's `run` written as steps, each reading the columns and what the steps before it made; called, the
    same as one function. A sweep runs each step on the sub-grid of the axes of what it reads (simulator.factored):
    a training step that does not read the tokens runs once per distinct step, not once per token count."""

    def __init__(self, *steps: Callable[[Columns], dict[str, np.ndarray]]):
        self.steps = steps

    def __call__(self, c: Columns) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        seen = OneEvaluation(c) if isinstance(c, dict) else ChainMap(out, c)  # a sweep's view: read on demand
        for step in self.steps:
            made = step(seen)
            out.update(made)
            if isinstance(seen, dict):
                seen.update(made)
        return out


def steps_of(run: Callable[[Columns], dict[str, np.ndarray]]) -> tuple[Callable[[Columns], dict[str, np.ndarray]], ...]:
    """A family's run as its steps (one step when it is one function)."""
    return run.steps if isinstance(run, Steps) else (run,)


@dataclass(frozen=True)
class Remedy:
    """Nearby plans a family proposes where its yes/no figure `figure` fails for a plan (UX: say what would make it
    work): `changes(scenario)` lists (the reader's label, the change as dotted keys -> values), the likeliest first.
    The evaluator evaluates them at once and keeps the first `most` under which `figure` holds, each with the value
    of `shown` (the plan's `suggestions`)."""

    figure: str
    shown: str
    changes: Callable[[Any], list[tuple[str, dict[str, Any]]]]
    most: int = 4


@dataclass(frozen=True)
class Family:
    """A model family: its inputs, its output figures, and `run(cols) -> new columns` on N rows at once.

    `run` reads input columns by column name and earlier families' figures by dotted key, and returns a
    dict of its figures' arrays by dotted key (plus any helper columns it wants later families to see); `Steps`
    when parts of it read fewer columns than others.
    """

    name: str
    inputs: tuple[Input, ...]
    figures: tuple[FigureSpec, ...]
    run: Callable[[Columns], dict[str, np.ndarray]]
    rules: tuple[Rule, ...] = ()
    # every family whose figures or helper columns `run` reads, even optionally (`c.get`, `key in c`): a family runs
    # only where its figures are wanted, after these (simulator/needs.py; checked by tests/test_needs.py)
    needs: tuple[str, ...] = ()
    doc: str = ""
    fields: tuple[FieldGroup, ...] = ()  # where its inputs appear on the pages (simulator.presentation)
    sections: tuple[Section, ...] = ()  # where its figures appear on the pages and in their PDFs
    remedies: tuple[Remedy, ...] = ()  # nearby plans to propose where one of its yes/no figures fails

    def __post_init__(self) -> None:
        own_inputs = {inp.key for inp in self.inputs}
        own_figures = {fig.key for fig in self.figures}
        for group in self.fields:
            stray = [k for k in (*group.keys, *group.radio) if k not in own_inputs]
            if stray or group.page not in PAGES or not set(group.radio) <= set(group.keys):
                raise ValueError(f"family {self.name}: field group {group.title!r} on {group.page!r} names "
                                 f"{stray or group.radio} (a group names this family's own inputs, on one of {PAGES})")
        for remedy in self.remedies:
            yes_no = {fig.key for fig in self.figures if fig.yes_no}
            if remedy.figure not in yes_no or remedy.shown not in own_figures:
                raise ValueError(f"family {self.name}: a remedy names {remedy.figure} and {remedy.shown} (its own "
                                 "yes/no figure, and its own figure to show)")
        for section in self.sections:
            stray = [k for k in section.figures if k not in own_figures]
            if stray or not set(section.pages) <= set(PAGES):
                raise ValueError(f"family {self.name}: section {section.title!r} names {stray or section.pages} "
                                 f"(a section names this family's own figures, on pages of {PAGES})")
