"""Columns over a grid, each kept once per combination of the grid axes it varies along.

A sweep's rows are the product of its grid's axes (one per swept key, row-major). A column is stored over the axes
it depends on (`Column.axes`): a base input over none, a swept key over its own, anything computed over the union of
the axes of the columns its function read. A stage (a derived default, a validity rule, a family) runs on the
sub-grid of those axes, so the training model of a grid over GPUs × batch × tokens runs once per (GPUs, batch), not
once per token count; every figure is spread over all rows only at the end (`full`).

Which columns a stage reads is found by running it: first on the grid's first row (a view that records the columns
read), then on the sub-grid of their axes. A stage that reads more on the sub-grid than on the first row (a branch
taken on some rows only) meets `_Wider` and runs again on the wider sub-grid, so a result never misses an axis.
Stages are row-wise (each row's result depends on that row's columns only), as every model function here is.
A single axis (N independent rows) is the plain case: every stage runs on all N rows, with no first-row trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STAGE_ROWS = 65_536  # a stage on a larger sub-grid runs in blocks of this many rows (temporaries stay small)


def block_rows(rows: int) -> Callable[[Callable], Callable]:
    """Mark a stage whose temporaries are wider than its rows (a month-by-month money flow: rows × months) to run
    on blocks of at most `rows` rows, so that they stay in cache."""
    def mark(fn: Callable) -> Callable:
        fn.block_rows = rows  # type: ignore[attr-defined]
        return fn
    return mark


@dataclass(frozen=True)
class Column:
    axes: tuple[int, ...]  # the grid axes it varies along, ascending
    values: np.ndarray  # 1-D: one value per combination of `axes`, row-major


@dataclass(frozen=True)
class _Box:
    """Rows of the sub-grid of `axes`: fixed positions along its leading axes, the span [a, b) of the next one, the
    rest whole (span None: the whole sub-grid)."""

    axes: tuple[int, ...]
    fixed: tuple[int, ...]
    span: tuple[int, int] | None
    rows: int


class _Wider(BaseException):  # not an Exception: a stage's own `except Exception` must not swallow it
    def __init__(self, axes: tuple[int, ...]):
        super().__init__(axes)
        self.axes = axes


def _union(*axes: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(set().union(*axes)))


def spread(sizes: Sequence[int], axes: Sequence[int], values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """`values` over `axes` of a grid of `sizes`, repeated over every row of the grid (into `out` when given)."""
    shape = [s if a in axes else 1 for a, s in enumerate(sizes)]
    values = np.asarray(values).reshape(shape)
    if out is None:
        out = np.empty(math.prod(sizes), dtype=values.dtype)
    np.copyto(out.reshape(tuple(sizes)), values, casting="unsafe")
    return out


class Factored:
    """The columns of a grid of `sizes` (axis lengths, row-major), each over its own axes."""

    def __init__(self, sizes: Sequence[int], trial: bool = True):
        self.sizes = tuple(int(s) for s in sizes)
        self._n = math.prod(self.sizes)
        self.trial = trial  # run a stage on the first row first (a sweep); False: every stage on all rows
        self.cols: dict[str, Column] = {}
        # without trials: every column also over all rows, in a plain dict a stage reads directly (no view)
        self.plain: dict[str, np.ndarray] | None = None if trial else {}

    @property
    def n(self) -> int:
        return self._n

    def size(self, axes: Sequence[int]) -> int:
        if not axes:
            return 1
        return self._n if len(axes) == len(self.sizes) else math.prod(self.sizes[a] for a in axes)

    def put(self, name: str, values: Any, axes: Sequence[int] = ()) -> None:
        """Store `values` (one per combination of `axes`, or one for all) as column `name`."""
        values = np.asarray(values)
        values = values if values.ndim == 1 else values.reshape(-1)
        axes = tuple(axes)
        if values.size == 1:
            axes = ()
        elif values.size != self.size(axes):
            raise ValueError(f"column {name}: {values.size} values for axes {axes} of {self.size(axes)} combinations")
        self.set(name, Column(axes, values))

    def set(self, name: str, col: Column) -> None:
        self.cols[name] = col
        if self.plain is not None:
            n, values = self._n, col.values
            self.plain[name] = (values if values.size == n else np.full(n, values[0], dtype=values.dtype)
                                if values.size == 1 else spread(self.sizes, col.axes, values))

    def alias(self, name: str, source: str) -> None:
        self.set(name, self.cols[source])

    def axes_of(self, names: Iterable[str]) -> tuple[int, ...]:
        return _union(*(self.cols[k].axes for k in names if k in self.cols))

    def full(self, name: str, out: np.ndarray | None = None) -> np.ndarray:
        """Column `name` over every row of the grid (written into `out` when given)."""
        col = self.cols[name]
        return spread(self.sizes, col.axes, col.values, out)

    def own(self, name: str, dtype: np.dtype | type) -> np.ndarray | None:
        """Column `name`'s own array when it holds every row of the grid in `dtype` and no other column shares it
        (a figure then becomes the sweep's column as it is, with no copy: a million-row column is 8 MB of fresh
        pages), else None."""
        col = self.cols.get(name)
        if col is None or col.axes != tuple(range(len(self.sizes))) or col.values.dtype != dtype:
            return None
        values = col.values
        if not (values.flags.owndata and values.flags.writeable and values.size == self.n):
            return None
        shared = any(other.values is values or other.values.base is values for key, other in self.cols.items()
                     if key != name)
        return None if shared else values

    def rows(self, name: str, box: _Box) -> np.ndarray:
        """Column `name` on the rows of `box` (a box of a sub-grid whose axes hold the column's own)."""
        col = self.cols[name]
        if col.values.size == box.rows and (box.span is None or box.rows == 1):
            return col.values  # the whole sub-grid over the column's own axes (others of length 1), or one value
        if not col.axes:
            return np.broadcast_to(col.values, (box.rows,))
        k = len(box.fixed)
        pick: dict[int, int | slice] = dict(zip(box.axes, box.fixed, strict=False))
        if box.span is not None:
            pick[box.axes[k]] = slice(*box.span)
        part = col.values.reshape([self.sizes[a] for a in col.axes])[tuple(pick.get(a, slice(None)) for a in col.axes)]
        free = box.axes[k:]  # the box's own shape: its span, then whole axes
        target = [box.span[1] - box.span[0] if box.span is not None and i == 0 else self.sizes[a]
                  for i, a in enumerate(free)]
        shape = [t if a in col.axes else 1 for a, t in zip(free, target, strict=True)]
        return np.broadcast_to(part.reshape(shape), target).reshape(-1)

    def boxes(self, axes: tuple[int, ...], limit: int | None = None) -> Iterator[_Box]:
        """The sub-grid of `axes` in boxes of at most `limit` (default STAGE_ROWS) rows (or one row of the last
        axis's), in row order: fixed positions along the leading axes, a span of the next, the rest whole."""
        limit = STAGE_ROWS if limit is None else limit
        sizes = [self.sizes[a] for a in axes]
        if math.prod(sizes) <= limit:
            yield _Box(axes, (), None, math.prod(sizes))
            return
        j = 0
        while math.prod(sizes[j + 1:]) > limit:
            j += 1
        inner = math.prod(sizes[j + 1:])
        step = max(1, limit // inner)
        for fixed in np.ndindex(*sizes[:j]):
            for r0 in range(0, sizes[j], step):
                r1 = min(sizes[j], r0 + step)
                yield _Box(axes, tuple(int(i) for i in fixed), (r0, r1), (r1 - r0) * inner)

    def run(self, fn: Callable[[Mapping[str, np.ndarray]], Any]) -> tuple[tuple[int, ...], Any]:
        """(axes, result) of stage `fn` (columns -> an array or a dict of arrays), run on the sub-grid of the axes
        of what it reads."""
        if self.trial and self.sizes:
            first = _FirstRow(self)
            result = fn(first)
            axes = self.axes_of(first.read)
            if not axes:
                return (), result
        else:
            axes = tuple(range(len(self.sizes)))
            if self.plain is not None and self.n <= getattr(fn, "block_rows", STAGE_ROWS):
                return axes, fn(self.plain)  # every row at once, the columns as they are
        while True:
            try:
                return axes, self._run_on(fn, axes)
            except _Wider as wider:
                axes = _union(axes, wider.axes)

    def _run_on(self, fn: Callable[[Mapping[str, np.ndarray]], Any], axes: tuple[int, ...]) -> Any:
        m = self.size(axes)
        out: Any = None
        start = 0
        for box in self.boxes(axes, getattr(fn, "block_rows", None)):
            part = fn(_Rows(self, box))
            if box.rows == m:
                return part
            parts = part if isinstance(part, Mapping) else {None: part}
            if out is None:
                out = {k: np.empty(m, dtype=np.asarray(v).dtype) for k, v in parts.items()}
            for k, v in parts.items():
                out[k][start:start + box.rows] = v
            start += box.rows
        return out.get(None, out)

    def store(self, axes: tuple[int, ...], result: Mapping[str, Any]) -> None:
        """Keep a stage's dict of columns, each over `axes` (or one value for all)."""
        m = self.size(axes)
        for name, values in result.items():
            values = np.asarray(values)
            values = values if values.ndim == 1 else values.reshape(-1)
            self.put(name, values if values.size in (1, m) else np.broadcast_to(values, (m,)), axes)


class _View(Mapping):
    """Columns of a grid as a stage reads them (names as in the grid; `key in view` reads nothing)."""

    __slots__ = ("grid",)

    def __init__(self, grid: Factored):
        self.grid = grid

    def __getitem__(self, name: str) -> np.ndarray:
        raise NotImplementedError

    def __contains__(self, name: object) -> bool:
        return name in self.grid.cols

    def __iter__(self) -> Iterator[str]:
        return iter(self.grid.cols)

    def __len__(self) -> int:
        return len(self.grid.cols)


class _FirstRow(_View):
    """The grid's first row (1-element arrays), recording the columns read."""

    __slots__ = ("read",)

    def __init__(self, grid: Factored):
        super().__init__(grid)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        self.read.add(name)
        return self.grid.cols[name].values[:1]


class _Rows(_View):
    """The rows of a box of a sub-grid; reading a column that varies along another axis raises `_Wider`."""

    __slots__ = ("box", "every", "seen")

    def __init__(self, grid: Factored, box: _Box):
        super().__init__(grid)
        self.box = box
        self.every = len(box.axes) == len(grid.sizes)  # the box's axes are all the grid's: no read is wider
        self.seen: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        got = self.seen.get(name)
        if got is None:
            col = self.grid.cols[name]
            if not self.every and not set(col.axes) <= set(self.box.axes):
                raise _Wider(col.axes)
            got = self.seen[name] = self.grid.rows(name, self.box)
        return got


__all__ = ["STAGE_ROWS", "Column", "Factored", "block_rows", "spread"]
