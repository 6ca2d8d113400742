"""Vectorised sweeps: a base scenario × a grid of values, evaluated with numpy broadcasting (no row loop).

Each row is resolved by the same functions as a single `Scenario` (simulator.resolve: encoding, defaults,
derived rules, validity rules), then the families that make the wanted figures run (simulator/needs.py:
`columns=` names figures or families; by default a training plan's families and those of the inputs the base
scenario gives or the grid sweeps). The grid stays factored (simulator.factored): each step runs once per
combination of the swept values it reads, one vectorised pass, and the figures are spread over every row at the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simulator.catalog import HardwareSpec, UnknownAccelerator
from simulator.errors import ScenarioError
from simulator.factored import Column, Factored, spread
from simulator.families.training_inputs import SHAPE_KEYS
from simulator.hardware_table import hardware_table
from simulator.inputs import ERRORS, FIGURES, INPUTS, coerce
from simulator.needs import families_for, run_families, sweep_figures
from simulator.registry import steps_of
from simulator.resolve import (
    device_catalog,
    encode_values,
    expand_preset,
    lookup_device,
    resolve_into,
    rule_codes,
)
from simulator.safe_json_errors import shorten
from simulator.scenario import Scenario

# a grid of at most this many rows runs each stage on all its rows (a stage costs about as much on a few hundred rows
# as on one: the first-row trial that finds its axes would double the cost of a small sweep, as the decision's local
# refinement runs them)
TRIAL_ROWS = 1024
# a grid larger than this is evaluated in parts (slices of its leading axis): a factored evaluation may hold some
# hundred columns over every row of a part (the figures of every family and their helpers): 2^20 rows × 8 B = 8 MB each,
# under 2 GB in all (the million-row benchmark grids are one part)
PART_ROWS = 2**20
# the result frame (rows × columns × 8 bytes) is refused past this, before any value is checked or allocated
MAX_FRAME_BYTES = 2 * 1024**3
RULE_MESSAGES = tuple(rule.short for rule in ERRORS)
BOOL_FIGURES = frozenset(key for key, fig in FIGURES.items() if fig.yes_no)


@dataclass(frozen=True)
class _Grid:
    values: dict[str, list[Any]]  # checked values per dotted key, in grid order
    shape: tuple[int, ...]

    @property
    def n(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


def _check_grid(base: Scenario, grid: Mapping[str, Sequence[Any]],
                devices: Mapping[str, HardwareSpec] | None, figures: int) -> _Grid:
    problems: list[str] = []
    clean: dict[str, list[Any]] = {}
    if not isinstance(grid, Mapping):
        raise ScenarioError(["sweep: the grid must map dotted keys to lists of values"])
    # memory of the result frame, from the list lengths alone (Python ints: no int64 overflow of the product)
    columns = figures + len(grid) + 4  # figures, grid keys, model.params(_counted), valid, reason
    lengths = [len(v) if not isinstance(v, np.ndarray) or v.ndim == 1 else 1 for v in grid.values()
               if isinstance(v, Sequence | np.ndarray) and not isinstance(v, str | bytes)]
    rows = math.prod(n for n in lengths if n > 0)
    if rows * columns * 8 > MAX_FRAME_BYTES:
        fit = MAX_FRAME_BYTES // (columns * 8)
        digits = int((rows * columns * 8).bit_length() * 0.30103)  # shown without float() or str() of a huge int
        need = f"{rows * columns * 8 / 1e9:,.3g} GB" if digits < 300 else f"about 10^{digits - 9} GB"
        many = f"{rows:,}" if digits < 300 else f"about 10^{int(rows.bit_length() * 0.30103)}"
        raise ScenarioError([f"sweep: {many} combinations × {columns} columns would need {need}, over the "
                             f"{MAX_FRAME_BYTES / 1e9:.3g} GB cap; at most {fit:,} rows fit. Split the grid or "
                             "sweep fewer values."])
    for key, values in grid.items():
        inp = INPUTS.get(key)
        if inp is None:
            problems.append(f"sweep: unknown key {shorten(key, 60)}; use dotted scenario keys such as cluster.gpus or "
                            "model.params")
            continue
        if inp.column is None:
            problems.append(f"sweep {key}: cannot be swept; sweep the keys it sets (for a preset: the model shape)")
            continue
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray) or len(values) == 0:
            problems.append(f"sweep {key}: give a non-empty list of values")
            continue
        coerced = []
        for v in values:
            value, problem = coerce(inp, v)
            if problem:
                problems.append(problem)
            elif value is None:
                problems.append(f"sweep {key}: null is not a value to sweep")
            elif inp.kind == "device":
                try:
                    coerced.append(lookup_device(value, devices, key).id)
                except UnknownAccelerator as exc:
                    problems.append(str(exc))
            else:
                coerced.append(value)
        clean[key] = coerced
    shape_swept = [k for k in SHAPE_KEYS if k in clean]
    base_given = expand_preset(dict(base.given))[0]
    if shape_swept and any(k not in clean and k not in base_given for k in SHAPE_KEYS):
        missing = [k for k in SHAPE_KEYS if k not in clean and k not in base_given]
        problems.append(f"sweep {', '.join(shape_swept)}: the base scenario has no explicit shape; sweep or give "
                        f"{', '.join(missing)} too, or sweep model.params")
    if problems:
        raise ScenarioError(problems)
    return _Grid(clean, tuple(len(v) for v in clean.values()))


def _parts(grid: _Grid) -> Iterator[tuple[int, _Grid]]:
    """(first row, grid) of consecutive parts of `grid` of at most PART_ROWS rows where it is larger: slices of its
    leading axis (one value each when even that is larger), so that the columns a factored evaluation holds over every
    row of a part stay within bounds."""
    if grid.n <= PART_ROWS or not grid.shape:
        yield 0, grid
        return
    first, *rest = grid.values.items()
    inner = grid.n // grid.shape[0]
    step = max(1, PART_ROWS // inner)
    for a in range(0, grid.shape[0], step):
        values = {first[0]: first[1][a:a + step], **dict(rest)}
        yield a * inner, _Grid(values, tuple(len(v) for v in values.values()))


def _resolved(base: Scenario, grid: _Grid, devices: Mapping[str, HardwareSpec] | None) -> Factored:
    """The grid's resolved columns, each over the axes it varies along: the base scenario's choices over none, each
    swept key over its own axis, derived values over those of what they read (a grid of at most TRIAL_ROWS rows: over
    its rows, one axis)."""
    table = hardware_table(device_catalog(devices))
    given, preset_tokens = expand_preset(dict(base.given))
    cols = {k: Column((), encode_values(k, [v], table)) for k, v in given.items()
            if INPUTS[k].column is not None and k not in grid.values}
    swept = {k: encode_values(k, v, table) for k, v in grid.values.items()}
    if grid.n > TRIAL_ROWS:
        factored = Factored(grid.shape)
        cols.update({k: Column((i,), v) for i, (k, v) in enumerate(swept.items())})
    else:  # a small grid as its rows written out: every stage on all of them, each column read as it is
        factored = Factored((grid.n,), trial=False)
        cols.update({k: Column((0,), spread(grid.shape, (i,), v)) for i, (k, v) in enumerate(swept.items())})
    resolve_into(factored, cols, table, Column((), np.array([preset_tokens], dtype=float)))
    return factored


def _grid_column(grid: _Grid, key: str) -> np.ndarray | pd.Categorical:
    """One grid key's values for every row: names as a categorical (codes, no per-row strings)."""
    values = grid.values[key]
    axis = list(grid.values).index(key)
    if isinstance(values[0], str):
        categories = list(dict.fromkeys(values))
        codes = spread(grid.shape, (axis,), np.array([categories.index(v) for v in values]))
        return pd.Categorical.from_codes(codes, categories=categories)
    return spread(grid.shape, (axis,), np.asarray(values))  # ints stay ints, so a CSV shows 256 rather than 256.0


def evaluate_columns(cols: dict[str, np.ndarray], figures: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run the families that make `figures` (dotted figure keys or family names; None: every family), and those
    they need, in order, on resolved columns (each reads what those before it made). An unknown name raises
    ScenarioError naming the closest known ones."""
    return run_families(cols, families_for(figures))


def _wanted(base: Scenario, grid: Mapping[str, Sequence[Any]], columns: Sequence[str] | None):
    """(figures, families) of a sweep: those `columns` asks for, else the default (simulator.needs.sweep_figures)."""
    if isinstance(columns, str):
        columns = [columns]
    keys = list(grid) if isinstance(grid, Mapping) else []
    return sweep_figures(columns, [*base.given, *keys], keys)


def sweep_arrays(base: Scenario, grid: Mapping[str, Sequence[Any]],
                 devices: Mapping[str, HardwareSpec] | None = None,
                 keep: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> dict[str, Any]:
    """`sweep` as a dict of columns (numpy arrays and categoricals), before any DataFrame is built.

    `columns` (or `keep`, its older name): the figures wanted, dotted keys or family names (a search over a million
    rows needs a few figures, not all); only the families they need run. Default: see `sweep`."""
    figures, families = _wanted(base, grid, columns if columns is not None else keep)
    g = _check_grid(base, grid, devices, len(figures))
    n = g.n
    dtypes = {key: np.dtype(bool if key in BOOL_FIGURES else float) for key in figures}
    out: dict[str, np.ndarray] = {}
    code, params = np.empty(n, dtype=np.int16), np.empty(n)
    steps = [step for family in families for step in steps_of(family.run)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start, part in _parts(g):
            stop = start + part.n
            factored = _resolved(base, part, devices)
            code[start:stop] = rule_codes(factored)
            for step in steps:
                factored.store(*factored.run(step))  # each on the sub-grid of the axes of what it reads
            for key, dtype in dtypes.items():
                own = factored.own(key, dtype) if part.n == n > TRIAL_ROWS else None
                if own is not None:  # a figure over every row, an array of its own: the sweep's column as it is
                    out[key] = own
                    continue
                column = out.setdefault(key, np.empty(n, dtype=dtype))
                if key in factored.cols:
                    factored.full(key, column[start:stop])
                else:
                    column[start:stop] = np.nan
            factored.full("params", params[start:stop])
    invalid = code != 0
    rows = np.flatnonzero(invalid)  # once: integer positions write much faster than a boolean mask per column
    for column in out.values():
        column[rows] = False if column.dtype == bool else np.nan
    frame: dict[str, Any] = {key: _grid_column(g, key) for key in g.values}
    frame["model.params_counted"] = params  # the count of each row's shape (the grid's value stays its input)
    if "model.params" not in frame:
        frame["model.params"] = params
    frame.update(out)
    frame["valid"] = ~invalid
    frame["reason"] = pd.Categorical.from_codes(code, categories=["", *RULE_MESSAGES])
    return frame


def sweep(base: Scenario, grid: Mapping[str, Sequence[Any]],
          devices: Mapping[str, HardwareSpec] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Evaluate every combination of `grid` (dotted keys -> values) over `base`; one row per combination.

    Rows that break a rule keep their inputs, get `valid = False`, a `reason`, and NaN outputs. `columns`: the
    figures wanted (dotted keys such as serving.tpot_s, family names such as "serving" for all their figures, or
    "all"); only the families they need run. Default: a training plan's figures (training, goodput, cost, quality)
    and those of every family whose inputs the base scenario gives or the grid sweeps (a scenario with a serving
    section gets the serving figures), with the families they read. `valid` and `reason` do not depend on it.
    """
    return pd.DataFrame(sweep_arrays(base, grid, devices, columns=columns), copy=False)
