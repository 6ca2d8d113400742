"""Which families a set of wanted figures needs: a family runs when its figures are needed.

Each family declares the families whose figures (or helper columns) its `run` reads (`Family.needs`;
tests/test_needs.py runs each family with only those present). The figures wanted (dotted keys such as
`serving.tpot_s`, or a family's name for all its figures, or "all") select the families that make them and,
transitively, those they read; they run in the registered order (simulator/families/__init__.py).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from simulator.errors import ScenarioError
from simulator.families import FAMILIES
from simulator.inputs import FIGURES
from simulator.registry import Family
from simulator.safe_json import shorten

ALL = "all"  # every family
BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}
OWNER: dict[str, Family] = {fig.key: f for f in FAMILIES for fig in f.figures}
INPUT_OWNER: dict[str, Family] = {inp.key: f for f in FAMILIES for inp in f.inputs}
# what a training plan shows (the Train page, its PDF, the GPU-count sweep): a sweep's default families
PLAN_FAMILIES = ("training", "goodput", "cost", "quality")


def _check(names: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """`names` as a list; a ScenarioError naming every unknown one and its closest known names."""
    names = [names] if isinstance(names, str) else list(names)
    known = [*FIGURES, *BY_NAME, ALL]
    allowed = set(known) | set(extra)
    problems = []
    for name in names:
        if not isinstance(name, str):
            problems.append(f"figures: {shorten(name, 60)} is not a figure name; give dotted keys such as "
                            "training.wall_days, or a family name")
        elif name not in allowed:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            problems.append(f"unknown figure {shorten(name, 60)}{hint} Figures are dotted keys such as "
                            f"training.wall_days or serving.tpot_s, or a family name ({', '.join(BY_NAME)}) for all "
                            f"its figures, or {ALL}")
    if problems:
        raise ScenarioError(problems)
    return names


def figures_of(names: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """The figure keys `names` stand for, in the order given (a family name: its figures; "all": every figure);
    names in `extra` (columns a sweep makes anyway, such as its grid keys) stand for no figure."""
    out: dict[str, None] = {}
    extra = set(extra)
    for name in _check(names, extra):
        if name == ALL:
            out.update(dict.fromkeys(FIGURES))
        elif name in BY_NAME:
            out.update(dict.fromkeys(fig.key for fig in BY_NAME[name].figures))
        elif name not in extra:
            out[name] = None
    return list(out)


def closure(families: Iterable[Family]) -> tuple[Family, ...]:
    """`families` and every family they need, transitively, in the registered order."""
    wanted: set[str] = set()
    todo = [f.name for f in families]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(BY_NAME[name].needs)
    return tuple(f for f in FAMILIES if f.name in wanted)


def families_for(names: Iterable[str] | None) -> tuple[Family, ...]:
    """The families that make the figures `names` (see `figures_of`), with those they need; None: every family."""
    if names is None:
        return FAMILIES
    names = _check(names)
    if ALL in names:
        return FAMILIES
    return closure(BY_NAME[n] if n in BY_NAME else OWNER[n] for n in names)


def default_families(given: Iterable[str]) -> tuple[Family, ...]:
    """A sweep's families when no figures are asked for: a training plan's (PLAN_FAMILIES) and the families of the
    inputs given or swept (`given`: dotted keys; a scenario that sets serving or finance inputs gets those figures),
    with those they need."""
    owners = [INPUT_OWNER[k] for k in given if k in INPUT_OWNER]
    return closure([*(BY_NAME[n] for n in PLAN_FAMILIES), *owners])


def sweep_figures(columns: Sequence[str] | None, given: Iterable[str], grid_keys: Iterable[str] = ()
                  ) -> tuple[list[str], tuple[Family, ...]]:
    """(figures a sweep returns, families it runs) for the `columns` asked (figures or family names; grid keys
    and the sweep's own columns are accepted and need nothing), or the default (`default_families` of `given`)."""
    if columns is None:
        families = default_families(given)
        return [fig.key for f in families for fig in f.figures], families
    figures = figures_of(columns, extra=[*grid_keys, *SWEEP_COLUMNS])
    return figures, closure(OWNER[k] for k in figures)


SWEEP_COLUMNS = ("model.params", "model.params_counted", "valid", "reason")  # every sweep has them


def run_families(cols: dict[str, Any], families: Sequence[Family]) -> dict[str, Any]:
    """Run `families`, in order, on resolved columns (each reads what those before it made); `cols` is updated.
    (A sweep runs each on the sub-grid of what it reads instead: simulator.sweeps.)"""
    for family in families:
        cols.update(family.run(cols))
    return cols


__all__ = ["ALL", "PLAN_FAMILIES", "SWEEP_COLUMNS", "closure", "default_families", "families_for", "figures_of",
           "run_families", "sweep_figures"]
