"""The measured data-order effect: what a profile's `quality.data_order` section (calibration/quality/data_order.py)
says sequential (non-shuffled) shards cost in extra optimizer updates, as the training model's columns.

The section gives, per way of synchronising ("sync": all-reduce and the synchronous parameter server, which apply
the same updates; "async") and per number of workers P it measured, the mean extra fraction of updates
U_sequential / U_random - 1 over repeats and its standard deviation. The training model (training/sync.py)
interpolates it linearly in ln P between the fewest and the most workers measured and holds it beyond them; the
columns are NaN where the profile measured nothing, and the model then keeps its assumed constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KINDS = ("sync", "async")
COLUMNS = ("seq_p_lo", "seq_p_hi", "seq_sync_lo", "seq_sync_hi", "seq_async_lo", "seq_async_hi")
SPREAD_COLUMNS = {"seq_sync_lo": ("sync", "lo"), "seq_sync_hi": ("sync", "hi"),
                  "seq_async_lo": ("async", "lo"), "seq_async_hi": ("async", "hi")}
MAX_WORKERS = 4096
MAX_RELATIVE_SPREAD = 1.0  # an extra near zero has a relative spread without meaning; a σ of 100% says "unknown"


class DataOrderError(ValueError):
    """The section is malformed; the message names the path and what to change."""


@dataclass(frozen=True)
class Measured:
    workers: int
    extra: float  # mean of U_sequential / U_random - 1 over the repeats
    std: float | None  # over the repeats (None: one repeat)
    repeats: int


@dataclass(frozen=True)
class DataOrder:
    by_kind: dict[str, tuple[Measured, ...]]  # kind -> by workers, ascending
    setup: str

    def ends(self, kind: str) -> tuple[Measured, Measured] | None:
        got = self.by_kind.get(kind) or ()
        return (got[0], got[-1]) if got else None

    def columns(self) -> dict[str, float]:
        """The six model columns; P ends are shared, so a kind measured at other P than the other is left NaN."""
        out = dict.fromkeys(COLUMNS, math.nan)
        ends = {k: self.ends(k) for k in KINDS}
        ps = {(e[0].workers, e[1].workers) for e in ends.values() if e}
        if len(ps) != 1:
            return out
        (lo, hi), = ps
        out["seq_p_lo"], out["seq_p_hi"] = float(lo), float(hi)
        for kind, e in ends.items():
            if e:
                out[f"seq_{kind}_lo"], out[f"seq_{kind}_hi"] = e[0].extra, e[1].extra
        return out

    def spreads(self) -> dict[str, float]:
        """Relative one-sigma spread of each measured column: the repeats' standard deviation over the mean."""
        out = {}
        for col, (kind, end) in SPREAD_COLUMNS.items():
            e = self.ends(kind)
            if not e:
                continue
            m = e[0] if end == "lo" else e[1]
            if m.std is not None and m.extra != 0:
                out[col] = min(MAX_RELATIVE_SPREAD, abs(m.std / m.extra))
        return out

    def sentence(self) -> str:
        parts = []
        for kind in KINDS:
            for m in self.by_kind.get(kind) or ():
                sd = f"SD {100 * m.std:.0f} points, " if m.std is not None else ""
                parts.append(f"{kind} P={m.workers}: {m.extra:+.0%} ({sd}{m.repeats} repeats)")
        return ("measured: sequential shards' extra optimizer updates over random ones, "
                + "; ".join(parts) + f"; interpolated in ln P, held beyond; {self.setup}")


def _fail(path: str, what: str) -> DataOrderError:
    return DataOrderError(f"{path}: {what}; rerun `python -m calibration quality --full` or delete the section")


def _num(v: Any, path: str, nullable: bool = False) -> float | None:
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _fail(path, f"{v!r} is not a finite number")
    return float(v)


def parse_data_order(section: Any, path: str = "quality.data_order") -> DataOrder | None:
    """The section as a DataOrder (None: absent); DataOrderError names what is wrong."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise _fail(path, f"an object is required, got {type(section).__name__}")
    fits = section.get("fits")
    if not isinstance(fits, dict):
        raise _fail(f"{path}.fits", "an object of fits by kind is required")
    by_kind: dict[str, tuple[Measured, ...]] = {}
    for kind in KINDS:
        fit = fits.get(kind)
        if fit is None:
            continue
        at = f"{path}.fits.{kind}.extra_by_workers"
        table = fit.get("extra_by_workers") if isinstance(fit, dict) else None
        if not isinstance(table, dict) or not table:
            raise _fail(at, "a non-empty object keyed by the number of workers is required")
        rows = []
        for p, stats in table.items():
            if not str(p).isdigit() or not 2 <= int(p) <= MAX_WORKERS:
                raise _fail(f"{at}.{p}", f"the number of workers must be a whole number from 2 to {MAX_WORKERS}")
            if not isinstance(stats, dict):
                raise _fail(f"{at}.{p}", "an object with mean, std and n is required")
            extra = _num(stats.get("mean"), f"{at}.{p}.mean")
            assert extra is not None
            if extra <= -1.0:
                raise _fail(f"{at}.{p}.mean", f"{extra} would mean sequential shards need no updates at all")
            std = _num(stats.get("std"), f"{at}.{p}.std", nullable=True)
            n = stats.get("n")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise _fail(f"{at}.{p}.n", f"{n!r} is not a positive whole number of repeats")
            rows.append(Measured(int(p), extra, None if std is None else abs(std), n))
        by_kind[kind] = tuple(sorted(rows, key=lambda m: m.workers))
    if not by_kind:
        return None
    setup = section.get("setup")
    return DataOrder(by_kind, setup if isinstance(setup, str) else "")
